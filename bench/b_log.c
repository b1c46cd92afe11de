/*
 * b_log.c - durability and the log, against their peers on the same file
 * system in the same run: a raw pwrite + fdatasync loop, a raw sequential
 * pwrite loop, and LMDB holding the same 4 KiB pages (a page per key).
 */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

enum { PAGES = 64, KiB = 1024, MiB = 1024 * 1024 };

static int make_pages(mmsb_engine *e, uint64_t size, uint64_t *ids, uint32_t n) {
    int rc = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++) rc = mmsb_page_create(e, size, 0, &ids[i]);
    return rc;
}

/* ---- raw file peers ------------------------------------------------------------------------ */

typedef struct raw_arg {
    uint32_t per_sync;   /* writes per fdatasync */
    uint64_t write_bytes;
    bool latency;        /* samples in microseconds per round, not K writes/s */
} raw_arg;

static int raw_file(const bench_env *env, const char *name, uint64_t prealloc, int *fd, bench_out *out) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", env->dir, name);
    unlink(path);
    *fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (*fd < 0) return bench_fail(out, "%s: %s", path, strerror(errno));
    unlink(path); /* gone when closed */
    if (prealloc > 0 && posix_fallocate(*fd, 0, (off_t)prealloc) != 0) {
        close(*fd);
        return bench_fail(out, "fallocate failed");
    }
    if (prealloc > 0) fdatasync(*fd);
    return 0;
}

/* pwrite of `write_bytes` then fdatasync per `per_sync` writes: one sample
 * per sync round, in durable writes per second (K/s), or in microseconds
 * per round (the latency the SYNC mode competes with). */
static int bench_raw_sync(const bench_env *env, const void *arg, bench_out *out) {
    const raw_arg *a = arg;
    uint64_t rounds = env->quick ? 50 : 300;
    if (a->per_sync > 4) rounds = rounds * 4 / a->per_sync + 8;
    uint64_t span = rounds * a->per_sync * a->write_bytes;
    int fd;
    if (raw_file(env, "raw-sync", span, &fd, out) != 0) return -1;
    uint8_t *buf = aligned_alloc(4096, a->write_bytes < 4096 ? 4096 : a->write_bytes);
    if (buf == NULL) {
        close(fd);
        return bench_fail(out, "out of memory");
    }
    memset(buf, 0x77, a->write_bytes);
    int rc = 0;
    uint64_t off = 0;
    for (uint64_t r = 0; r < rounds && rc == 0; r++) {
        uint64_t t0 = bench_now_ns();
        for (uint32_t k = 0; k < a->per_sync && rc == 0; k++, off += a->write_bytes) {
            if (pwrite(fd, buf, a->write_bytes, (off_t)off) != (ssize_t)a->write_bytes)
                rc = bench_fail(out, "pwrite failed");
        }
        if (rc == 0 && fdatasync(fd) != 0) rc = bench_fail(out, "fdatasync failed");
        double ns = (double)(bench_now_ns() - t0);
        if (rc == 0) rc = bench_sample(out, a->latency ? ns / 1000 : a->per_sync / ns * 1e6);
    }
    snprintf(out->check, sizeof out->check, "%llu bytes written and synced", (unsigned long long)off);
    free(buf);
    close(fd);
    return rc;
}

/* Sequential 64 KiB pwrites into a preallocated file, one fdatasync at the
 * end of each repetition: the log append's peer. */
static int bench_raw_seq(const bench_env *env, const void *arg, bench_out *out) {
    const raw_arg *a = arg;
    uint64_t total = env->quick ? 128ull * MiB : 512ull * MiB;
    int fd;
    if (raw_file(env, "raw-seq", total, &fd, out) != 0) return -1;
    uint8_t *buf = aligned_alloc(4096, a->write_bytes);
    int rc = buf != NULL ? 0 : bench_fail(out, "out of memory");
    uint32_t reps = env->reps < 5 ? env->reps : 5;
    for (uint32_t r = 0; r < reps && rc == 0; r++) {
        memset(buf, (int)r + 1, a->write_bytes);
        uint64_t t0 = bench_now_ns();
        for (uint64_t off = 0; off < total && rc == 0; off += a->write_bytes) {
            if (pwrite(fd, buf, a->write_bytes, (off_t)off) != (ssize_t)a->write_bytes)
                rc = bench_fail(out, "pwrite failed");
        }
        if (rc == 0 && fdatasync(fd) != 0) rc = bench_fail(out, "fdatasync failed");
        if (rc == 0) rc = bench_sample(out, (double)total / (double)(bench_now_ns() - t0));
    }
    snprintf(out->check, sizeof out->check, "%llu MiB per repetition", (unsigned long long)(total / MiB));
    free(buf);
    close(fd);
    return rc;
}

/* ---- MMSB durability ------------------------------------------------------------------------- */

typedef struct group_arg {
    uint32_t per_sync;  /* commits per mmsb_sync; 0: the group window decides */
    uint32_t durability;
} group_arg;

/* K commits (64 bytes into one of 64 pages of 4 KiB each) then mmsb_sync:
 * one fdatasync for K commits; a sample is durable updates per second. */
static int bench_group(const bench_env *env, const void *arg, bench_out *out) {
    const group_arg *a = arg;
    mmsb_engine *e;
    if (bench_open_store(env, "durability", a->durability, &e, out) != 0) return -1;
    uint64_t ids[PAGES];
    int rc = make_pages(e, 4096, ids, PAGES);
    uint64_t rounds = env->quick ? 50 : 300, n = 0;
    if (a->per_sync > 4) rounds = rounds * 4 / a->per_sync + 8;
    uint32_t k_per = a->per_sync;
    if (a->per_sync == 0) { /* a long run; the group window groups the commits */
        rounds = env->reps < 5 ? env->reps : 5;
        k_per = env->quick ? 20000 : 100000;
    }
    for (uint64_t r = 0; r < rounds && rc == 0; r++) {
        uint64_t t0 = bench_now_ns();
        for (uint32_t k = 0; k < k_per && rc == 0; k++, n++) {
            rc = mmsb_write(e, ids[n % PAGES], (n / PAGES * 64) % 4096, bench_pattern64(n / (PAGES * 64)), 64, NULL);
        }
        if (rc == 0) rc = mmsb_sync(e);
        if (rc == 0) rc = bench_sample(out, k_per / ((double)(bench_now_ns() - t0) / 1e9) / 1e3);
    }
    mmsb_engineinfo info = {.struct_size = sizeof info};
    if (rc == 0) rc = mmsb_engine_info(e, &info);
    if (rc == 0 && info.durable_seq != info.commit_seq) rc = bench_fail(out, "not all durable");
    if (rc == 0) {
        snprintf(out->note, sizeof out->note, "%llu commits, %llu fdatasyncs", (unsigned long long)info.commits,
                 (unsigned long long)info.log_syncs);
        bench_check_root(e, out);
    }
    if (rc > 0 || rc < -1) rc = bench_fail(out, "%s", mmsb_last_error());
    mmsb_close(e);
    return rc;
}

/* Whole 64 KiB pages rewritten in SYNC, one commit each, through about
 * 190 MiB of log: a sample per commit, until it is on stable storage. The
 * log grows through segments of 4 to 64 MiB meanwhile, and each next one is
 * zeroed while the one before fills: the max and p99 are what a commit pays
 * while that happens. */
static int bench_sync_64k(const bench_env *env, const void *arg, bench_out *out) {
    (void)arg;
    uint64_t commits = env->quick ? 1000 : 3000, slow = 0;
    mmsb_engine *e;
    if (bench_open_store(env, "sync64k", MMSB_DURABILITY_SYNC, &e, out) != 0) return -1;
    uint8_t *buf = malloc(64 * KiB);
    uint64_t ids[16];
    int rc = buf != NULL ? make_pages(e, 64 * KiB, ids, 16) : bench_fail(out, "out of memory");
    for (uint64_t i = 0; i < commits && rc == 0; i++) {
        memset(buf, (int)(i / 16 % 255) + 1, 64 * KiB);
        uint64_t t0 = bench_now_ns();
        rc = mmsb_write(e, ids[i % 16], 0, buf, 64 * KiB, NULL);
        double us = (double)(bench_now_ns() - t0) / 1e3;
        slow += us > 10000;
        if (rc == 0) rc = bench_sample(out, us);
    }
    mmsb_engineinfo info = {.struct_size = sizeof info};
    if (rc == 0) rc = mmsb_engine_info(e, &info);
    if (rc == 0 && info.durable_seq != info.commit_seq) rc = bench_fail(out, "not all durable");
    if (rc == 0) {
        snprintf(out->note, sizeof out->note, "%llu commits over %llu MiB of log, %llu of them over 10 ms",
                 (unsigned long long)commits, (unsigned long long)(info.log_bytes_written >> 20),
                 (unsigned long long)slow);
        bench_check_root(e, out);
    }
    if (rc > 0 || rc < -1) rc = bench_fail(out, "%s", mmsb_last_error());
    free(buf);
    mmsb_close(e);
    return rc;
}

/* ---- log bandwidth --------------------------------------------------------------------------- */

/* Whole 64 KiB pages rewritten (every byte changes), NONE, then one sync:
 * GB/s of log written. */
static int bench_append(const bench_env *env, const void *arg, bench_out *out) {
    (void)arg;
    uint64_t total = env->quick ? 128ull * MiB : 512ull * MiB;
    uint32_t reps = env->reps < 5 ? env->reps : 5;
    uint8_t *buf = malloc(64 * KiB);
    int rc = buf != NULL ? 0 : bench_fail(out, "out of memory");
    for (uint32_t r = 0; r < reps && rc == 0; r++) {
        mmsb_engine *e;
        if (bench_open_store(env, "append", MMSB_DURABILITY_NONE, &e, out) != 0) {
            rc = -1;
            break;
        }
        uint64_t ids[16];
        rc = make_pages(e, 64 * KiB, ids, 16);
        uint64_t t0 = bench_now_ns();
        for (uint64_t i = 0; i < total / (64 * KiB) && rc == 0; i++) {
            memset(buf, (int)(i / 16 % 255) + 1, 64 * KiB);
            rc = mmsb_write(e, ids[i % 16], 0, buf, 64 * KiB, NULL);
        }
        if (rc == 0) rc = mmsb_sync(e);
        uint64_t ns = bench_now_ns() - t0;
        mmsb_engineinfo info = {.struct_size = sizeof info};
        if (rc == 0) rc = mmsb_engine_info(e, &info);
        if (rc == 0) rc = bench_sample(out, (double)info.log_bytes_written / (double)ns);
        if (rc == 0) bench_check_root(e, out);
        if (rc > 0 || rc < -1) rc = bench_fail(out, "%s", mmsb_last_error());
        mmsb_close(e);
    }
    free(buf);
    return rc;
}

/* ---- LMDB peers -------------------------------------------------------------------------------- */

typedef struct lmdb_arg {
    unsigned env_flags;
    uint32_t per_txn;
    uint64_t puts, quick_puts;
} lmdb_arg;

static int lmdb_open_env(const bench_env *env, const lmdb_arg *a, MDB_env **out_env, MDB_dbi *dbi, bench_out *out) {
    char dir[4096];
    bench_store_path(env, "lmdb", dir, sizeof dir);
    if (mkdir(dir, 0755) != 0) return bench_fail(out, "mkdir %s", dir);
    MDB_env *m;
    MDB_txn *t;
    int mrc = mdb_env_create(&m);
    if (mrc == 0) mrc = mdb_env_set_mapsize(m, 4ull << 30);
    if (mrc == 0) mrc = mdb_env_open(m, dir, a->env_flags, 0644);
    if (mrc == 0) mrc = mdb_txn_begin(m, NULL, 0, &t);
    if (mrc == 0) mrc = mdb_dbi_open(t, NULL, 0, dbi);
    if (mrc == 0) mrc = mdb_txn_commit(t);
    *out_env = m;
    return mrc == 0 ? 0 : bench_fail(out, "lmdb: %s", mdb_strerror(mrc));
}

/* Puts of whole 4 KiB pages over 64 keys, per_txn puts per transaction:
 * one sample per repetition, in puts per second (K/s). */
static int bench_lmdb(const bench_env *env, const void *arg, bench_out *out) {
    const lmdb_arg *a = arg;
    MDB_env *m = NULL;
    MDB_dbi dbi;
    int rc = lmdb_open_env(env, a, &m, &dbi, out);
    uint8_t page[4096];
    uint64_t puts = env->quick ? a->quick_puts : a->puts, done = 0;
    uint32_t reps = env->reps < 5 ? env->reps : 5;
    for (uint32_t r = 0; r < reps && rc == 0; r++) {
        uint64_t t0 = bench_now_ns();
        for (uint64_t i = 0; i < puts && rc == 0; i += a->per_txn) {
            MDB_txn *t;
            int mrc = mdb_txn_begin(m, NULL, 0, &t);
            for (uint32_t k = 0; k < a->per_txn && mrc == 0; k++, done++) {
                uint64_t key = done % PAGES;
                memset(page, (int)(done & 0xFF), sizeof page);
                MDB_val kv = {sizeof key, &key}, vv = {sizeof page, page};
                mrc = mdb_put(t, dbi, &kv, &vv, 0);
            }
            mrc = mrc == 0 ? mdb_txn_commit(t) : (mdb_txn_abort(t), mrc);
            if (mrc != 0) rc = bench_fail(out, "lmdb: %s", mdb_strerror(mrc));
        }
        if (rc == 0) rc = bench_sample(out, (double)puts / ((double)(bench_now_ns() - t0) / 1e9) / 1e3);
    }
    if (m != NULL && (a->env_flags & MDB_NOSYNC)) mdb_env_sync(m, 1);
    snprintf(out->check, sizeof out->check, "%llu puts of 4 KiB pages", (unsigned long long)done);
    if (m != NULL) mdb_env_close(m);
    return rc;
}

/* ---- the table ------------------------------------------------------------------------------------ */

#define RAW(k_, name_)                                                                                                 \
    {                                                                                                                  \
        "peer/pwrite_fdatasync/" name_, "K/s", bench_raw_sync, &(const raw_arg){k_, 192, false}, NULL, GOAL_NONE, 0,   \
            NULL, NULL, "durability", "raw pwrite of 192 B x K + fdatasync", (double)(k_)                              \
    }
#define GROUP(k_, name_)                                                                                               \
    {                                                                                                                  \
        "durability/64B_into_4KiB/" name_, "K/s", bench_group, &(const group_arg){k_, MMSB_DURABILITY_GROUP},          \
            "peer/pwrite_fdatasync/" name_, GOAL_NONE, 0, NULL, NULL, "durability", "MMSB: K commits + mmsb_sync",     \
            (double)(k_)                                                                                               \
    }

static const bench_def LOG[] = {
    {"peer/pwrite_fdatasync/4KiB", "us", bench_raw_sync, &(const raw_arg){1, 4096, true}, NULL, GOAL_NONE, 0, NULL,
     NULL, NULL, NULL, 0},
    RAW(1, "1_per_sync"),
    RAW(4, "4_per_sync"),
    RAW(16, "16_per_sync"),
    RAW(64, "64_per_sync"),
    RAW(256, "256_per_sync"),
    GROUP(1, "1_per_sync"),
    GROUP(4, "4_per_sync"),
    GROUP(16, "16_per_sync"),
    GROUP(64, "64_per_sync"),
    GROUP(256, "256_per_sync"),
    {"durability/64B_into_4KiB/GROUP_window_updates", "K/s", bench_group, &(const group_arg){0, MMSB_DURABILITY_GROUP},
     "lmdb/put_4KiB_page/1000_per_txn_sync", GOAL_AT_LEAST, 3000, "issue 17", NULL, NULL, NULL, 0},
    {"durability/64B_into_4KiB/SYNC_updates", "K/s", bench_group, &(const group_arg){1, MMSB_DURABILITY_SYNC},
     "lmdb/put_4KiB_page/1_per_txn_sync", GOAL_NONE, 0, NULL, NULL, NULL, NULL, 0},
    {"durability/64B_into_4KiB/NONE_updates", "K/s", bench_group, &(const group_arg){0, MMSB_DURABILITY_NONE},
     "lmdb/put_4KiB_page/1_per_txn_writemap_nosync", GOAL_NONE, 0, NULL, NULL, NULL, NULL, 0},
    {"durability/64KiB_SYNC/commit_latency_across_segments", "us", bench_sync_64k, NULL, NULL, GOAL_NONE, 0, NULL,
     NULL, NULL, NULL, 0},
    {"lmdb/put_4KiB_page/1_per_txn_sync", "K/s", bench_lmdb, &(const lmdb_arg){0, 1, 300, 60}, NULL, GOAL_NONE, 0, NULL,
     NULL, NULL, NULL, 0},
    {"lmdb/put_4KiB_page/1_per_txn_nosync", "K/s", bench_lmdb, &(const lmdb_arg){MDB_NOSYNC, 1, 50000, 10000}, NULL,
     GOAL_NONE, 0, NULL, NULL, NULL, NULL, 0},
    {"lmdb/put_4KiB_page/1_per_txn_writemap_nosync", "K/s", bench_lmdb,
     &(const lmdb_arg){MDB_WRITEMAP | MDB_NOSYNC, 1, 100000, 20000}, NULL, GOAL_NONE, 0, NULL, NULL, NULL, NULL, 0},
    {"lmdb/put_4KiB_page/1000_per_txn_sync", "K/s", bench_lmdb, &(const lmdb_arg){0, 1000, 50000, 10000}, NULL,
     GOAL_NONE, 0, NULL, NULL, NULL, NULL, 0},
    {"peer/pwrite_sequential/64KiB_writes", "GB/s", bench_raw_seq, &(const raw_arg){0, 64 * KiB, false}, NULL,
     GOAL_NONE, 0, NULL, NULL, NULL, NULL, 0},
    {"log/append/64KiB_full_page_changes_NONE", "GB/s", bench_append, NULL, "peer/pwrite_sequential/64KiB_writes",
     GOAL_RATIO_AT_LEAST, 0.8, "issue 3", NULL, NULL, NULL, 0},
};

const bench_def *bench_group_log(uint32_t *count) {
    *count = sizeof LOG / sizeof LOG[0];
    return LOG;
}
