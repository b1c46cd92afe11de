/*
 * salvage.c - `mmsb salvage`: a damaged store copied into a new directory
 * and cut there at its last good commit, with a report of what was lost.
 * The original is only read: whatever the cut drops stays in it for a
 * closer look (dump, verify).
 */
#include <dirent.h>
#include <errno.h>
#include <assert.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tool.h"

const char usage_salvage[] =
    "usage: mmsb salvage DIR COPY [--json]\n"
    "\n"
    "Copies the store in DIR into the new directory COPY (its log segments and its\n"
    "checkpoint) and opens the copy the way a salvage open does: the log is cut at\n"
    "the last commit whose records, chain and state root check out, and everything\n"
    "after it is dropped. DIR is not changed. Reports the last good commit, the\n"
    "records and bytes dropped, and the copy's state root; the copy then opens,\n"
    "verifies and replays as any store does. The copy is a store of its own: a\n"
    "replica's marker and shipping pins are not copied. DIR must not be open in a\n"
    "writer or a follower (the copy is refused while one runs).\n"
    "Exit status: 0 nothing was dropped, 1 the copy lost records or bytes,\n"
    "2 usage or I/O error (COPY must not exist yet).\n";

enum { COPY_CHUNK_BYTES = 8 << 20, COPY_BUFFER_BYTES = 1 << 20, DIR_ENTRIES_MAX = 1 << 20 };

static bool is_segment_name(const char *name) {
    size_t len = strlen(name);
    return strncmp(name, "log-", 4) == 0 && len > 8 && strcmp(name + len - 4, ".seg") == 0;
}

/* Up to want bytes from in to out at their file offsets: by the kernel
 * where it can, else through a buffer (another file system, an old kernel). */
static ssize_t copy_some(int in, int out, uint64_t want, uint8_t *buf, size_t buf_bytes) {
    ssize_t n = copy_file_range(in, NULL, out, NULL, want, 0);
    if (n >= 0 || (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP)) return n;
    n = read(in, buf, want < buf_bytes ? want : buf_bytes);
    if (n <= 0) return n;
    for (ssize_t put = 0; put < n;) {
        ssize_t w = write(out, buf + put, (size_t)(n - put));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        put += w;
    }
    return n;
}

/* Copies the regular file `name` from one directory to the other, size for
 * size, and syncs it. */
static int copy_file(int from_dir, int to_dir, const char *name) {
    int in = openat(from_dir, name, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (in < 0 || fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (in >= 0) close(in);
        return in < 0 ? -errno : -EINVAL;
    }
    int out = openat(to_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    int rc = out < 0 ? -errno : 0;
    uint64_t done = 0;
    static_assert(COPY_BUFFER_BYTES <= COPY_CHUNK_BYTES, "a buffered step fits a chunk");
    uint8_t *buf = rc == 0 ? malloc(COPY_BUFFER_BYTES) : NULL;
    if (rc == 0 && buf == NULL) rc = -ENOMEM;
    for (uint64_t steps = 0; rc == 0 && done < (uint64_t)st.st_size; steps++) {
        ASSERT(steps <= (uint64_t)st.st_size); /* every step copies at least one byte */
        uint64_t want = (uint64_t)st.st_size - done < COPY_CHUNK_BYTES ? (uint64_t)st.st_size - done
                                                                        : COPY_CHUNK_BYTES;
        ssize_t n = copy_some(in, out, want, buf, COPY_BUFFER_BYTES);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) rc = n < 0 ? -errno : -EIO; /* 0: the file shrank under us */
        else done += (uint64_t)n;
    }
    free(buf);
    if (rc == 0 && fsync(out) != 0) rc = -errno;
    if (out >= 0) close(out);
    close(in);
    return rc;
}

/* The segments of DIR, then its checkpoint's data file: what a store is. */
static int copy_store(int from_dir, int to_dir, const char *from, uint64_t *files) {
    DIR *d = store_dir_listing(from_dir);
    if (d == NULL) return -errno;
    int rc = 0;
    struct dirent *ent;
    for (uint32_t n = 0; rc == 0 && n < DIR_ENTRIES_MAX && (ent = readdir(d)) != NULL; n++) {
        if (!is_segment_name(ent->d_name)) continue;
        rc = copy_file(from_dir, to_dir, ent->d_name);
        if (rc != 0) fprintf(stderr, "mmsb salvage: copying %s/%s: %s\n", from, ent->d_name, strerror(-rc));
        *files += rc == 0;
    }
    closedir(d);
    int ck_from = openat(from_dir, "checkpoint", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rc != 0 || ck_from < 0) return rc; /* no checkpoint: the log alone is the store */
    int ck_to = mkdirat(to_dir, "checkpoint", 0755) == 0 ? openat(to_dir, "checkpoint", O_RDONLY | O_DIRECTORY) : -1;
    rc = ck_to < 0 ? -errno : copy_file(ck_from, ck_to, "data.mdb");
    if (rc == -ENOENT) rc = 0; /* an empty checkpoint directory */
    if (rc != 0) fprintf(stderr, "mmsb salvage: copying %s/checkpoint/data.mdb: %s\n", from, strerror(-rc));
    *files += rc == 0;
    if (ck_to >= 0 && fsync(ck_to) != 0 && rc == 0) rc = -errno;
    if (ck_to >= 0) close(ck_to);
    close(ck_from);
    if (rc == 0 && fsync(to_dir) != 0) rc = -errno;
    return rc;
}

/* Holds DIR's LOCK shared for the copy, so that no writer or follower (they
 * hold it exclusively) runs on it meanwhile. -1 with a message if one does. */
static int lock_source(int from_dir, const char *from) {
    int fd = openat(from_dir, "LOCK", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? -2 : -1; /* a store no writer ever opened */
    if (flock(fd, LOCK_SH | LOCK_NB) == 0) return fd;
    fprintf(stderr, "mmsb salvage: %s: the store is in use by another process (a writer or a follower); "
                    "stop it first\n", from);
    close(fd);
    return -1;
}

typedef struct salvage_result {
    mmsb_engineinfo info;
    char root[33];
    uint64_t files;
} salvage_result;

/* The copy, opened with salvage on and closed again. */
static int salvage_copy(const char *copy, salvage_result *res) {
    mmsb_options o;
    tool_options(&o);
    o.flags = MMSB_OPEN_SALVAGE | MMSB_OPEN_KEEP_LOG; /* keep every segment: the copy stays auditable */
    mmsb_engine *e = NULL;
    int rc = mmsb_open(copy, &o, &e);
    if (rc != 0) {
        cli_report_open("salvage", copy, rc);
        return rc;
    }
    res->info = (mmsb_engineinfo){.struct_size = sizeof res->info};
    mmsb_digest d;
    rc = mmsb_engine_info(e, &res->info);
    /* The open made the cut (the damaged bytes are zeros in the copy); a
     * checkpoint of the salvaged state spares the copy's next open a replay. */
    if (rc == 0) rc = mmsb_checkpoint(e);
    if (rc == 0) rc = mmsb_state_root(e, &d);
    if (rc == 0) mmsb_digest_hex(&d, res->root, sizeof res->root);
    int close_rc = mmsb_close(e);
    if (rc == 0) rc = close_rc;
    if (rc != 0) fprintf(stderr, "mmsb salvage: %s: %s: %s\n", copy, mmsb_strerror(rc), cli_error_detail());
    return rc;
}

static bool salvage_lost(const mmsb_engineinfo *info) {
    return info->recovery_dropped_records > 0 || info->recovery_dropped_bytes > 0 ||
           (info->recovery_flags & MMSB_RECOVERED_SALVAGED) != 0;
}

static void salvage_report(const char *from, const char *copy, const salvage_result *res, bool json) {
    const mmsb_engineinfo *in = &res->info;
    if (json) {
        json_out j;
        json_begin(&j, stdout);
        json_str(&j, "command", "salvage");
        json_str(&j, "dir", from);
        json_str(&j, "copy", copy);
        json_u64(&j, "files_copied", res->files);
        json_u64(&j, "last_good_commit_seq", in->commit_seq);
        json_u64(&j, "dropped_records", in->recovery_dropped_records);
        json_u64(&j, "dropped_bytes", in->recovery_dropped_bytes);
        json_bool(&j, "salvaged", (in->recovery_flags & MMSB_RECOVERED_SALVAGED) != 0);
        json_bool(&j, "torn_tail", (in->recovery_flags & MMSB_RECOVERED_TORN) != 0);
        json_str(&j, "detail", in->recovery_detail);
        if (in->checkpoint_detail[0] != '\0') json_str(&j, "checkpoint_detail", in->checkpoint_detail);
        json_u64(&j, "pages", in->pages_live);
        json_str(&j, "root", res->root);
        json_bool(&j, "lost", salvage_lost(in));
        json_end(&j);
        return;
    }
    printf("mmsb salvage %s -> %s: %llu files copied; %s\n", from, copy, (unsigned long long)res->files,
           in->recovery_detail);
    if (in->checkpoint_detail[0] != '\0') printf("checkpoint: %s\n", in->checkpoint_detail);
    printf("the copy holds the log up to commit record %llu: %llu pages, state root %s\n",
           (unsigned long long)in->commit_seq, (unsigned long long)in->pages_live, res->root);
    if (salvage_lost(in)) {
        printf("dropped: %llu valid records after it, %llu bytes of log from the cut on (still in %s)\n",
               (unsigned long long)in->recovery_dropped_records, (unsigned long long)in->recovery_dropped_bytes,
               from);
    } else {
        printf("nothing was dropped\n");
    }
}

int cmd_salvage(int argc, char **argv) {
    cli_args a;
    int rc = cli_parse("salvage", usage_salvage, argc, argv, NULL, 0, 2, &a);
    if (rc != 0) return rc == CLI_HELP ? EXIT_CLEAN : rc;
    const char *from = a.pos[0], *copy = a.pos[1];
    int from_dir = open(from, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (from_dir < 0) {
        fprintf(stderr, "mmsb salvage: %s: %s\n", from, strerror(errno));
        return EXIT_USAGE;
    }
    int lock_fd = lock_source(from_dir, from);
    if (lock_fd == -1) {
        close(from_dir);
        return EXIT_USAGE;
    }
    int to_dir = mkdir(copy, 0755) == 0 ? open(copy, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (to_dir < 0) {
        fprintf(stderr, "mmsb salvage: %s: %s%s\n", copy, strerror(errno),
                errno == EEXIST ? " (salvage writes a new directory and never overwrites one)" : "");
    }
    salvage_result res = {0};
    rc = to_dir < 0 ? -1 : copy_store(from_dir, to_dir, from, &res.files);
    if (lock_fd >= 0) close(lock_fd);
    if (to_dir >= 0) close(to_dir);
    close(from_dir);
    if (rc != 0) {
        if (to_dir >= 0) fprintf(stderr, "mmsb salvage: %s holds a partial copy, not a store: remove it\n", copy);
        return EXIT_USAGE;
    }
    if (res.files == 0) {
        fprintf(stderr, "mmsb salvage: %s: no MMSB store here (no log segment or checkpoint)\n", from);
        rmdir(copy); /* made by this run, and empty */
        return EXIT_USAGE;
    }
    if (salvage_copy(copy, &res) != 0) {
        fprintf(stderr, "mmsb salvage: the files copied to %s are left as they are: remove them\n", copy);
        return EXIT_USAGE;
    }
    salvage_report(from, copy, &res, a.json);
    return salvage_lost(&res.info) ? EXIT_PROBLEM : EXIT_CLEAN;
}
