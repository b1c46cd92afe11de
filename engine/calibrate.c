/*
 * calibrate.c - a device's check at open, the threshold it earns, and the
 * cache of that threshold in the store's directory (calibrate.h).
 *
 * The check runs the device path on scratch device memory (offsets from 0:
 * no page is placed yet, and a page's copy is zeroed when it is placed):
 * a copy of a page, a dense and a sparse delta, and every chunk digest,
 * each compared with what the host kernels make of the same bytes. It is
 * also the measurement, per size, of what each kind of page pays beyond
 * the change to its host bytes, which both have: the host's digest against
 * the device's staging, submit and digest.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/seeds.h"
#include "calibrate.h"
#include "engine.h"
#include "state.h"

enum {
    CHECK_ROUNDS = 3,     /* timed rounds per size, after one untimed */
    CACHE_BYTES_MAX = 4096,
    CACHE_LINES_MAX = 16, /* devices one store remembers */
};
static const uint64_t check_sizes[CALIBRATE_SIZES] = {64u << 10, 256u << 10, 1u << 20, 2u << 20};
static const char cache_name[] = "gpu-threshold";
static const char cache_magic[] = "mmsb gpu-threshold 1";

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The check's bytes: a fixed sequence (xorshift), the same on every run. */
static void fill(uint8_t *p, uint64_t len, uint64_t *state) {
    for (uint64_t i = 0; i < len; i++) {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        p[i] = (uint8_t)(*state >> 24);
    }
}

typedef struct check_bufs {
    uint8_t *page, *payload, *packed, *mask;
    h128 host[GPU_DEV_HASH_MAX], dev[GPU_DEV_HASH_MAX];
    gpu_chunk_ref refs[GPU_DEV_HASH_MAX];
} check_bufs;

/* Stages and submits, in pieces the staging buffer holds. */
static int dev_copy(gpu_dev *d, uint64_t offset, const uint8_t *src, uint64_t len) {
    uint64_t piece_max = gpu_dev_stage_max(d);
    for (uint64_t done = 0; done < len; done += piece_max) {
        uint64_t n = min_u64(len - done, piece_max);
        if (!gpu_dev_stage_copy(d, offset + done, src + done, n)) {
            int rc = gpu_dev_submit(d);
            if (rc != 0) return rc;
            bool staged = gpu_dev_stage_copy(d, offset + done, src + done, n);
            ASSERT(staged);
        }
    }
    return gpu_dev_submit(d);
}

static int dev_delta(gpu_dev *d, const gpu_delta *g) {
    ASSERT(!gpu_dev_staged(d));
    bool staged = gpu_dev_stage_delta(d, g);
    ASSERT(staged); /* the check's deltas fit an empty buffer */
    return gpu_dev_submit(d);
}

/* Every chunk digest of [0, size) on both sides, compared. */
static int compare_digests(mmsb_engine *e, gpu_dev *d, check_bufs *b, uint64_t size, bool device_only) {
    uint64_t chunks = (size + CHUNK_BYTES - 1) / CHUNK_BYTES;
    for (uint64_t first = 0; first < chunks; first += GPU_DEV_HASH_MAX) {
        uint32_t n = (uint32_t)min_u64(chunks - first, GPU_DEV_HASH_MAX);
        for (uint32_t i = 0; i < n; i++) b->refs[i] = (gpu_chunk_ref){.page_bytes = size, .chunk = first + i};
        int rc = gpu_dev_hash_chunks(d, b->refs, n, b->dev);
        if (rc != 0) return rc;
        if (device_only) continue;
        for (uint32_t i = 0; i < n; i++) {
            uint64_t at = (first + i) * CHUNK_BYTES;
            b->host[i] = e->kern->hash(b->page + at, min_u64(CHUNK_BYTES, size - at), SEED_CHUNK);
            if (b->host[i].lo != b->dev[i].lo || b->host[i].hi != b->dev[i].hi) {
                return err_set(MMSB_EIO, "chunk %llu of a %llu-byte page: the device's digest differs from the host's",
                               (unsigned long long)(first + i), (unsigned long long)size);
            }
        }
    }
    return 0;
}

/* A dense delta over [0, size) applied on the host, as both kinds of page
 * have it applied to their bytes here, and the host's digest of them,
 * which is what a host page pays beyond that (timed). */
static uint64_t host_round(mmsb_engine *e, check_bufs *b, uint64_t size, uint64_t *changed) {
    *changed = e->kern->apply_dense(b->page, b->payload, b->mask, size, true);
    uint64_t t0 = now_ns();
    for (uint64_t at = 0; at < size; at += CHUNK_BYTES) {
        b->host[0] = e->kern->hash(b->page + at, min_u64(CHUNK_BYTES, size - at), SEED_CHUNK);
    }
    return now_ns() - t0;
}

/* One size: the page to the device, then rounds of a dense delta on both
 * sides (timed), a sparse one, and the digests compared. */
static int check_size(mmsb_engine *e, gpu_dev *d, check_bufs *b, uint64_t size, uint32_t rounds,
                      calibrate_result *out, uint32_t k) {
    uint64_t rng = 0x6d6d73622d636b31u ^ size;
    fill(b->page, size, &rng);
    int rc = dev_copy(d, 0, b->page, size);
    uint64_t host_best = UINT64_MAX, dev_best = UINT64_MAX;
    for (uint32_t r = 0; r <= rounds && rc == 0; r++) {
        fill(b->payload, size, &rng);
        fill(b->mask, (size + 7) / 8, &rng);
        uint64_t changed;
        uint64_t host_ns = host_round(e, b, size, &changed);
        gpu_delta g = {.len = size, .mask = b->mask, .payload = b->payload, .payload_len = size, .changed = changed};
        uint64_t t0 = now_ns();
        rc = dev_delta(d, &g);
        if (rc == 0) rc = compare_digests(e, d, b, size, true);
        uint64_t dev_ns = now_ns() - t0;
        if (r > 0) host_best = min_u64(host_best, host_ns), dev_best = min_u64(dev_best, dev_ns);
    }
    if (rc == 0) { /* a sparse delta over every other mask byte's bits */
        for (uint64_t i = 0; i < (size + 7) / 8; i++) b->mask[i] = (uint8_t)(i % 2 == 0 ? b->mask[i] : 0);
        fill(b->payload, size, &rng);
        uint64_t packed_len = e->kern->compress(b->packed, b->payload, b->mask, size);
        uint64_t changed = e->kern->apply_sparse(b->page, b->packed, packed_len, b->mask, size, true);
        gpu_delta g = {.len = size, .mask = b->mask, .payload = b->packed, .payload_len = packed_len,
                       .sparse = true, .changed = changed};
        rc = dev_delta(d, &g);
    }
    if (rc == 0) rc = compare_digests(e, d, b, size, false);
    out->host_ns[k] = host_best;
    out->device_ns[k] = dev_best;
    return rc;
}

static void bufs_free(check_bufs *b) {
    if (b == NULL) return;
    free(b->page);
    free(b->payload);
    free(b->packed);
    free(b->mask);
    free(b);
}

int calibrate_check(mmsb_engine *e, gpu_dev *d, uint32_t sizes, calibrate_result *out) {
    ASSERT(e != NULL && d != NULL && out != NULL && sizes >= 1 && sizes <= CALIBRATE_SIZES);
    *out = (calibrate_result){.threshold_bytes = UINT64_MAX};
    while (sizes > 1 && check_sizes[sizes - 1] > e->opts.arena_bytes_max) sizes--;
    uint64_t size_max = min_u64(check_sizes[sizes - 1], e->opts.arena_bytes_max);
    int rc = engine_point(e, "gpu-check");
    if (rc != 0) return err_set(MMSB_EIO, "gpu-check refused (%s)", strerror(rc));
    rc = gpu_dev_back(d, size_max);
    if (rc != 0) return rc;
    check_bufs *b = calloc(1, sizeof *b);
    if (b != NULL) {
        b->page = malloc(size_max);
        b->payload = malloc(size_max);
        b->packed = malloc(size_max);
        b->mask = malloc((size_max + 7) / 8);
    }
    if (b == NULL || b->page == NULL || b->payload == NULL || b->packed == NULL || b->mask == NULL) {
        bufs_free(b);
        return err_set(MMSB_ENOMEM, "mmsb_open: out of memory for the device's check");
    }
    for (uint32_t k = 0; k < sizes && rc == 0; k++) {
        uint64_t size = min_u64(check_sizes[k], size_max);
        rc = check_size(e, d, b, size, CHECK_ROUNDS, out, k);
        out->sizes = k + 1;
        out->size_bytes[k] = size;
        if (rc == 0 && out->threshold_bytes == UINT64_MAX && out->device_ns[k] < out->host_ns[k]) {
            out->threshold_bytes = size;
        }
    }
    bufs_free(b);
    return rc;
}

/* ---- the cache: one line per device, "THRESHOLD NAME" -------------------------------------- */

/* A well-formed cache line: its threshold ("none" is UINT64_MAX) and the
 * device it names. */
static bool cache_parse(const char *line, uint64_t *threshold, const char **device) {
    const char *space = strchr(line, ' ');
    if (space == NULL || space == line || space[1] == '\0') return false;
    *device = space + 1;
    if ((size_t)(space - line) == 4 && strncmp(line, "none", 4) == 0) {
        *threshold = UINT64_MAX;
        return true;
    }
    uint64_t v = 0;
    for (const char *p = line; p < space; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10) return false;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *threshold = v;
    return v > 0;
}

/* The threshold on a cache line, if the line is well formed and names
 * device. */
static bool cache_line(const char *line, const char *device, uint64_t *threshold) {
    const char *named;
    uint64_t v;
    if (!cache_parse(line, &v, &named) || strcmp(named, device) != 0) return false;
    *threshold = v;
    return true;
}

/* The file's text, NUL-terminated, if it is there and no larger than
 * CACHE_BYTES_MAX; its lines are read as hostile bytes. */
static bool cache_load(int dir_fd, char text[CACHE_BYTES_MAX + 1]) {
    int fd = openat(dir_fd, cache_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return false;
    ssize_t n = read(fd, text, CACHE_BYTES_MAX + 1);
    close(fd);
    if (n < 0 || n > CACHE_BYTES_MAX || memchr(text, '\0', (size_t)n) != NULL) return false;
    text[n] = '\0';
    size_t magic_len = strlen(cache_magic);
    return strncmp(text, cache_magic, magic_len) == 0 && text[magic_len] == '\n';
}

bool calibrate_cache_read(int dir_fd, const char *device, uint64_t *threshold) {
    ASSERT(device != NULL && threshold != NULL);
    char text[CACHE_BYTES_MAX + 1];
    if (!cache_load(dir_fd, text)) return false;
    char *line = text + strlen(cache_magic) + 1;
    for (uint32_t i = 0; i < CACHE_LINES_MAX && *line != '\0'; i++) {
        char *end = strchr(line, '\n');
        if (end == NULL) return false; /* a torn last line */
        *end = '\0';
        if (cache_line(line, device, threshold)) return true;
        line = end + 1;
    }
    return false;
}

int calibrate_cache_write(int dir_fd, const char *device, uint64_t threshold) {
    ASSERT(device != NULL && strchr(device, '\n') == NULL);
    char old[CACHE_BYTES_MAX + 1], text[CACHE_BYTES_MAX + 1];
    int len = threshold == UINT64_MAX ? snprintf(text, sizeof text, "%s\nnone %s\n", cache_magic, device)
                                      : snprintf(text, sizeof text, "%s\n%llu %s\n", cache_magic,
                                                 (unsigned long long)threshold, device);
    ASSERT(len > 0 && len < (int)sizeof text);
    if (cache_load(dir_fd, old)) { /* keep other devices' well-formed lines */
        char *line = old + strlen(cache_magic) + 1;
        for (uint32_t i = 1; i < CACHE_LINES_MAX && *line != '\0'; i++) {
            char *end = strchr(line, '\n');
            if (end == NULL) break;
            *end = '\0';
            uint64_t ignored;
            const char *named;
            bool other = cache_parse(line, &ignored, &named) && strcmp(named, device) != 0;
            int n = other ? snprintf(text + len, sizeof text - (size_t)len, "%s\n", line) : 0;
            if (n < 0 || n >= (int)sizeof text - len) break;
            len += n;
            line = end + 1;
        }
    }
    /* a new file renamed over the old: a reader sees one or the other */
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%s.tmp", cache_name);
    int fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) return err_from_errno(errno);
    bool written = write(fd, text, (size_t)len) == len;
    int err = errno;
    close(fd);
    if (!written || renameat(dir_fd, tmp, dir_fd, cache_name) != 0) {
        if (written) err = errno;
        unlinkat(dir_fd, tmp, 0);
        return err_from_errno(err != 0 ? err : EIO);
    }
    return 0;
}
