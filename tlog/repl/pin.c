/*
 * pin.c - shippers' pins on a store's log (see pin.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "mirror.h"
#include "pin.h"

#define PIN_PREFIX "ship-"
#define PIN_SUFFIX ".pin"
enum { PIN_BYTES_MAX = 256, PIN_NAME_BYTES = REPLICA_STREAM_MAX + 16, DIR_ENTRIES_MAX = 1 << 22 };

static void pin_name(const char *stream, char out[PIN_NAME_BYTES]) {
    snprintf(out, PIN_NAME_BYTES, PIN_PREFIX "%s" PIN_SUFFIX, stream);
}

static int pin_err(const char *what, const char *name) {
    int saved = errno;
    return err_set(err_from_errno(saved), "shipping pin: %s %s: %s", what, name, strerror(saved));
}

int ship_pin_write(int dir_fd, const char *stream, uint64_t segment) {
    ASSERT(dir_fd >= 0 && segment >= 1);
    if (!replica_stream_name_ok(stream)) return err_set(MMSB_EINVAL, "shipping pin: bad stream name");
    char name[PIN_NAME_BYTES], tmp[PIN_NAME_BYTES + 4], text[PIN_BYTES_MAX];
    pin_name(stream, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", name);
    int n = snprintf(text, sizeof text, "mmsb-ship-pin 1\nstream %s\nsegment %llu\n", stream,
                     (unsigned long long)segment);
    ASSERT(n > 0 && n < (int)sizeof text);
    bool existed = faccessat(dir_fd, name, F_OK, 0) == 0;
    int fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return pin_err("cannot create", tmp);
    /* A lost update leaves the older pin, which keeps more: only a new pin
     * must be durable before the shipper relies on it. */
    bool ok = write(fd, text, (size_t)n) == n && (existed || fdatasync(fd) == 0);
    int saved = errno;
    close(fd);
    errno = saved;
    if (!ok) return pin_err("cannot write", tmp);
    if (renameat(dir_fd, tmp, dir_fd, name) != 0) return pin_err("cannot rename", tmp);
    if (!existed && fsync(dir_fd) != 0) return pin_err("cannot sync the directory of", name);
    return 0;
}

int ship_pin_remove(int dir_fd, const char *stream, bool *removed) {
    ASSERT(dir_fd >= 0 && removed != NULL);
    *removed = false;
    if (!replica_stream_name_ok(stream)) return err_set(MMSB_EINVAL, "shipping pin: bad stream name");
    char name[PIN_NAME_BYTES];
    pin_name(stream, name);
    if (unlinkat(dir_fd, name, 0) != 0) return errno == ENOENT ? 0 : pin_err("cannot remove", name);
    *removed = true;
    return fsync(dir_fd) == 0 ? 0 : pin_err("cannot sync the directory of", name);
}

/* A pin's text, parsed strictly; false when it is not one. */
static bool pin_parse(const char *text, ship_pin *out) {
    char stream[REPLICA_STREAM_MAX + 2];
    unsigned long long segment = 0;
    int used = 0;
    if (sscanf(text, "mmsb-ship-pin 1\nstream %65s\nsegment %llu\n%n", stream, &segment, &used) != 2) return false;
    if (text[used] != '\0' || segment == 0 || !replica_stream_name_ok(stream)) return false;
    char canonical[PIN_BYTES_MAX];
    snprintf(canonical, sizeof canonical, "mmsb-ship-pin 1\nstream %s\nsegment %llu\n", stream, segment);
    if (strcmp(canonical, text) != 0) return false; /* the exact text ship_pin_write writes, nothing else */
    memcpy(out->stream, stream, strlen(stream) + 1); /* a valid name fits */
    out->segment = segment;
    return true;
}

static void pin_load(int dir_fd, const char *name, ship_pin *out) {
    char text[PIN_BYTES_MAX + 1];
    int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, text, PIN_BYTES_MAX) : -1;
    if (fd >= 0) close(fd);
    text[n > 0 ? n : 0] = '\0';
    if (n > 0 && pin_parse(text, out)) return;
    /* Unreadable: it keeps every segment, under the name its file gives. */
    size_t len = strlen(name) - strlen(PIN_PREFIX) - strlen(PIN_SUFFIX);
    snprintf(out->stream, sizeof out->stream, "%.*s", (int)(len < 64 ? len : 64), name + strlen(PIN_PREFIX));
    out->segment = 1;
}

static bool is_pin_name(const char *name) {
    size_t n = strlen(name), pre = strlen(PIN_PREFIX), suf = strlen(PIN_SUFFIX);
    return n > pre + suf && n < PIN_NAME_BYTES && memcmp(name, PIN_PREFIX, pre) == 0 &&
           strcmp(name + n - suf, PIN_SUFFIX) == 0;
}

int ship_pins_read(int dir_fd, ship_pin *pins, uint32_t cap, uint32_t *count) {
    ASSERT(dir_fd >= 0 && count != NULL && (pins != NULL || cap == 0));
    *count = 0;
    DIR *d = store_dir_listing(dir_fd);
    if (d == NULL) return pin_err("cannot list", "the store directory");
    int rc = 0;
    struct dirent *de;
    for (uint32_t seen = 0; rc == 0 && seen < DIR_ENTRIES_MAX && (de = readdir(d)) != NULL; seen++) {
        if (!is_pin_name(de->d_name)) continue;
        if (*count == cap) {
            rc = err_set(MMSB_ECORRUPT, "shipping pin: more than %u pin files", cap);
            break;
        }
        pin_load(dir_fd, de->d_name, &pins[(*count)++]);
    }
    closedir(d);
    return rc;
}

uint64_t ship_pin_floor(int dir_fd) {
    ship_pin pins[SHIP_PINS_MAX];
    uint32_t count = 0;
    if (ship_pins_read(dir_fd, pins, SHIP_PINS_MAX, &count) != 0) return 1; /* unsure: keep everything */
    uint64_t floor = 0;
    for (uint32_t i = 0; i < count; i++) floor = floor == 0 ? pins[i].segment : min_u64(floor, pins[i].segment);
    return floor;
}
