/*
 * b_store.c - replay from genesis, reopening a store with and without a
 * checkpoint, checkpoints and the writer's stall, and memory per page.
 *
 * The stores these figures read are built once per run (outside any
 * timing) and kept in the scratch directory for the figures that follow.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tlog/checkpoint/lmdb_store.h"
#include "bench.h"

enum { KiB = 1024, MiB = 1024 * 1024 };
#define GiB (1024ull * MiB)

/* ---- stores to read ------------------------------------------------------------------------------- */

typedef struct built {
    bool done;
    char dir[4096];
    uint64_t log_bytes, records;
    char root[33];
} built;

static built small_store, large_store;

static int close_keep(mmsb_engine *e, built *b, bench_out *out) {
    mmsb_engineinfo info = {.struct_size = sizeof info};
    mmsb_digest d;
    int rc = mmsb_sync(e); /* every byte written, so the log's size does not depend on the flusher's progress */
    if (rc == 0) rc = mmsb_engine_info(e, &info);
    if (rc == 0) rc = mmsb_state_root(e, &d);
    if (rc == 0) mmsb_digest_hex(&d, b->root, sizeof b->root);
    b->log_bytes = info.log_bytes_written;
    rc = rc == 0 ? mmsb_close(e) : (mmsb_close(e), rc);
    b->done = rc == 0;
    return rc == 0 ? 0 : bench_fail(out, "building a store: %s", mmsb_last_error());
}

static int open_build(const bench_env *env, const char *name, built *b, mmsb_engine **e, bench_out *out) {
    bench_store_path(env, name, b->dir, sizeof b->dir);
    mmsb_options o;
    bench_options(&o, MMSB_DURABILITY_NONE);
    o.flags |= MMSB_OPEN_KEEP_LOG;
    o.checkpoint_log_bytes = 0; /* one checkpoint, at close */
    o.segment_bytes = 256ull * MiB;
    o.log_buffer_bytes = 64ull * MiB;
    o.group_window_bytes = 8ull * MiB;
    int rc = mmsb_open(b->dir, &o, e);
    return rc == 0 ? 0 : bench_fail(out, "open: %s", mmsb_last_error());
}

/* 64-byte changes over 64 pages of 4 KiB: two records (DELTA, COMMIT) each. */
static int build_small(const bench_env *env, bench_out *out) {
    if (small_store.done) return 0;
    mmsb_engine *e;
    if (open_build(env, "replay-small", &small_store, &e, out) != 0) return -1;
    uint64_t ids[64], n = 2000000;
    int rc = 0;
    for (int i = 0; i < 64 && rc == 0; i++) rc = mmsb_page_create(e, 4096, 0, &ids[i]);
    uint8_t b[64];
    for (uint64_t i = 0; i < n && rc == 0; i++) {
        memset(b, (int)(i / 4096 % 250) + 1, sizeof b);
        rc = mmsb_write(e, ids[i % 64], (i / 64 * 64) % 4096, b, sizeof b, NULL);
    }
    return rc == 0 ? close_keep(e, &small_store, out) : (mmsb_close(e), bench_fail(out, "%s", mmsb_last_error()));
}

/* Whole 64 KiB pages rewritten until the log holds 1 GiB. */
static int build_large(const bench_env *env, bench_out *out) {
    if (large_store.done) return 0;
    mmsb_engine *e;
    if (open_build(env, "replay-large", &large_store, &e, out) != 0) return -1;
    uint64_t ids[64];
    int rc = 0;
    for (int i = 0; i < 64 && rc == 0; i++) rc = mmsb_page_create(e, 64 * KiB, 0, &ids[i]);
    uint8_t *b = malloc(64 * KiB);
    if (b == NULL) rc = MMSB_ENOMEM;
    for (uint64_t i = 0; i < GiB / (64 * KiB) && rc == 0; i++) {
        memset(b, (int)(i / 64 % 250) + 1, 64 * KiB);
        rc = mmsb_write(e, ids[i % 64], 0, b, 64 * KiB, NULL);
    }
    free(b);
    return rc == 0 ? close_keep(e, &large_store, out) : (mmsb_close(e), bench_fail(out, "%s", mmsb_last_error()));
}

/* The checkpoint is moved aside (and back) to make an open replay from genesis. */
static int checkpoint_aside(const built *b, bool aside) {
    char from[4200], to[4200];
    snprintf(from, sizeof from, "%s/%s", b->dir, aside ? "checkpoint" : "checkpoint.away");
    snprintf(to, sizeof to, "%s/%s", b->dir, aside ? "checkpoint.away" : "checkpoint");
    if (!aside) bench_rmtree(to); /* the empty one a writer's open made meanwhile */
    return rename(from, to);
}

typedef struct open_arg {
    bool large;          /* the 1 GiB store of 64 KiB changes */
    bool with_checkpoint;
    bool read_only;      /* a read-only open (a replay), else a writer's open */
    uint32_t unit;       /* 0: ms per open, 1: M records/s, 2: GB/s of log */
} open_arg;

static int bench_open(const bench_env *env, const void *arg, bench_out *out) {
    const open_arg *a = arg;
    built *b = a->large ? &large_store : &small_store;
    int rc = a->large ? build_large(env, out) : build_small(env, out);
    if (rc != 0) return rc;
    if (!a->with_checkpoint && checkpoint_aside(b, true) != 0) return bench_fail(out, "cannot move the checkpoint");
    mmsb_options o;
    bench_options(&o, MMSB_DURABILITY_NONE);
    o.flags = a->read_only ? MMSB_OPEN_READONLY : MMSB_OPEN_KEEP_LOG;
    uint32_t reps = env->reps < 5 ? env->reps : 5;
    for (uint32_t r = 0; r < reps && rc == 0; r++) {
        mmsb_engine *e;
        uint64_t t0 = bench_now_ns();
        rc = mmsb_open(b->dir, &o, &e);
        double ns = (double)(bench_now_ns() - t0);
        mmsb_engineinfo info = {.struct_size = sizeof info};
        if (rc == 0) rc = mmsb_engine_info(e, &info);
        if (rc == 0 && (info.recovered_from_checkpoint != 0) != a->with_checkpoint) rc = bench_fail(out, "wrong start");
        double v = a->unit == 0   ? ns / 1e6
                   : a->unit == 1 ? (double)info.recovered_records / ns * 1e3
                                  : (double)b->log_bytes / ns;
        if (rc == 0) rc = bench_sample(out, v);
        if (rc == 0) bench_check_root(e, out);
        if (rc == 0 && strstr(out->check, b->root) == NULL) rc = bench_fail(out, "another state root: %s", out->check);
        if (rc == 0) {
            snprintf(out->note, sizeof out->note, "%llu records, %llu MiB of log",
                     (unsigned long long)info.recovered_records, (unsigned long long)(b->log_bytes / MiB));
        }
        mmsb_close(e);
    }
    if (!a->with_checkpoint) checkpoint_aside(b, false);
    if (rc > 0 || rc < -1) rc = bench_fail(out, "%s", mmsb_last_error());
    return rc;
}

/* ---- checkpoints ------------------------------------------------------------------------------------- */

enum { CK_PAGES = 10000, CK_CHANGED = 1000 };

static int open_ck(const bench_env *env, uint64_t log_bytes, mmsb_engine **e, bench_out *out) {
    char dir[4096];
    bench_store_path(env, "checkpoint", dir, sizeof dir);
    mmsb_options o;
    bench_options(&o, MMSB_DURABILITY_NONE);
    o.checkpoint_log_bytes = log_bytes;
    int rc = mmsb_open(dir, &o, e);
    return rc == 0 ? 0 : bench_fail(out, "open: %s", mmsb_last_error());
}

static int bench_checkpoint(const bench_env *env, const void *arg, bench_out *out) {
    (void)arg;
    mmsb_engine *e;
    if (open_ck(env, 0, &e, out) != 0) return -1;
    int rc = 0;
    uint64_t id;
    for (uint32_t i = 0; i < CK_PAGES && rc == 0; i++) rc = mmsb_page_create(e, 4096, 0, &id);
    if (rc == 0) rc = mmsb_checkpoint(e);
    uint8_t b[64];
    for (uint32_t r = 0; r < env->reps && rc == 0; r++) {
        memset(b, (int)r + 1, sizeof b);
        for (uint32_t i = 0; i < CK_CHANGED && rc == 0; i++) {
            rc = mmsb_write(e, 1 + (i * 7 + r * 13) % CK_PAGES, 0, b, sizeof b, NULL);
        }
        if (rc == 0) rc = mmsb_checkpoint(e);
        mmsb_engineinfo info = {.struct_size = sizeof info};
        if (rc == 0) rc = mmsb_engine_info(e, &info);
        if (rc == 0) rc = bench_sample(out, (double)info.checkpoint_stall_ns_last / 1e6);
    }
    snprintf(out->note, sizeof out->note, "log synced + LMDB commit + marker, of %u pages", CK_PAGES);
    if (rc == 0) bench_check_root(e, out);
    if (rc > 0 || rc < -1) rc = bench_fail(out, "%s", mmsb_last_error());
    mmsb_close(e);
    return rc;
}

/* Every write timed alone while the policy checkpoints every 4 MiB of log:
 * the median is a plain write, the tail shows the writer's stall. */
static int bench_stall(const bench_env *env, const void *arg, bench_out *out) {
    (void)arg;
    mmsb_engine *e;
    if (open_ck(env, 4 * MiB, &e, out) != 0) return -1;
    int rc = 0;
    uint64_t id;
    for (uint32_t i = 0; i < CK_CHANGED && rc == 0; i++) rc = mmsb_page_create(e, 4096, 0, &id);
    uint8_t b[64];
    uint64_t n = env->quick ? 100000 : 400000;
    for (uint64_t i = 0; i < n && rc == 0; i++) {
        memset(b, (int)(i / CK_CHANGED % 250) + 1, sizeof b);
        uint64_t t0 = bench_now_ns();
        rc = mmsb_write(e, 1 + i % CK_CHANGED, (i / CK_CHANGED * 64) % 4096, b, sizeof b, NULL);
        if (rc == 0) rc = bench_sample(out, (double)(bench_now_ns() - t0) / 1e3);
    }
    mmsb_engineinfo info = {.struct_size = sizeof info};
    if (rc == 0) rc = mmsb_engine_info(e, &info);
    if (rc == 0) {
        snprintf(out->note, sizeof out->note, "%llu checkpoints; stall max %.2f ms",
                 (unsigned long long)info.checkpoints_written, (double)info.checkpoint_stall_ns_max / 1e6);
        bench_check_root(e, out);
    }
    if (rc > 0 || rc < -1) rc = bench_fail(out, "%s", mmsb_last_error());
    mmsb_close(e);
    return rc;
}

/* ---- the checkpoint file's structure check --------------------------------------------------------- */

enum { CHECK_PAGES = 100000 };

static built check_store;

/* 100,000 pages of 4 KiB, each written once, closed with a checkpoint of
 * about 800 MiB of LMDB file (two overflow pages per value). */
static int build_check_store(const bench_env *env, bench_out *out) {
    if (check_store.done) return 0;
    bench_store_path(env, "check", check_store.dir, sizeof check_store.dir);
    mmsb_options o;
    bench_options(&o, MMSB_DURABILITY_NONE);
    o.checkpoint_log_bytes = 0;
    mmsb_engine *e;
    if (mmsb_open(check_store.dir, &o, &e) != 0) return bench_fail(out, "open: %s", mmsb_last_error());
    int rc = 0;
    uint8_t b[64];
    for (uint32_t i = 0; i < CHECK_PAGES && rc == 0; i++) {
        uint64_t id;
        memset(b, (int)(i % 250) + 1, sizeof b);
        rc = mmsb_page_create(e, 4096, 0, &id);
        if (rc == 0) rc = mmsb_write(e, id, 0, b, sizeof b, NULL);
    }
    return rc == 0 ? close_keep(e, &check_store, out) : (mmsb_close(e), bench_fail(out, "%s", mmsb_last_error()));
}

/* arg 0: what a reader checks (the trees); 1: what a writer's open checks
 * (also each overflow page's header); 2: the writer's whole reopen. */
static int bench_check(const bench_env *env, const void *arg, bench_out *out) {
    int what = *(const int *)arg;
    if (build_check_store(env, out) != 0) return -1;
    char data[4200];
    snprintf(data, sizeof data, "%s/checkpoint/data.mdb", check_store.dir);
    mmsb_options o;
    bench_options(&o, MMSB_DURABILITY_NONE);
    o.flags = 0;
    uint32_t reps = env->reps < 5 ? env->reps : 5;
    int rc = 0;
    for (uint32_t r = 0; r < reps && rc == 0; r++) {
        uint64_t txnid = 0, t0 = bench_now_ns();
        mmsb_engine *e = NULL;
        if (what < 2) rc = ckpt_check_file(data, what == 1, CKPT_TXN_NEWEST, &txnid);
        else rc = mmsb_open(check_store.dir, &o, &e);
        double ms = (double)(bench_now_ns() - t0) / 1e6;
        if (e != NULL) mmsb_close(e);
        if (rc == 0) rc = bench_sample(out, ms);
    }
    struct stat st;
    uint64_t file_mib = stat(data, &st) == 0 ? (uint64_t)st.st_size / MiB : 0;
    snprintf(out->note, sizeof out->note, "%u pages of 4 KiB in the checkpoint (%llu MiB of LMDB file)", CHECK_PAGES,
             (unsigned long long)file_mib);
    return rc > 0 || rc < -1 ? bench_fail(out, "%s", mmsb_last_error()) : rc;
}

/* ---- memory ------------------------------------------------------------------------------------------- */

static uint64_t rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, resident = 0;
    if (f != NULL) {
        if (fscanf(f, "%llu %llu", &size, &resident) != 2) resident = 0;
        fclose(f);
    }
    return resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

enum { MEM_PAGES = 1000000 };

/* One engine with a million 4 KiB pages, each written once, root computed:
 * resident bytes after the open and at the end. Two rows read it. */
typedef struct mem_run {
    bool done;
    int rc;
    uint64_t rss_open, rss_end;
    uint64_t arena_faulted_open, arena_faulted_end, arena_used_end; /* mmsb_engineinfo */
    char check[BENCH_CHECK_BYTES], why[BENCH_NOTE_BYTES];
} mem_run;

static uint64_t arena_info(mmsb_engine *e, uint64_t *used_out) {
    mmsb_engineinfo info = {.struct_size = sizeof info};
    if (mmsb_engine_info(e, &info) != 0) return 0;
    if (used_out != NULL) *used_out = info.arena_bytes_used;
    return info.arena_bytes_faulted;
}

static mem_run mem;

static void measure_memory(const bench_env *env) {
    if (mem.done) return;
    mem.done = true;
    char dir[4096];
    bench_store_path(env, "memory", dir, sizeof dir);
    mmsb_options o;
    bench_options(&o, MMSB_DURABILITY_NONE);
    o.checkpoint_log_bytes = 0;
    o.arena_bytes_max = 8 * GiB;
    mmsb_engine *e;
    mem.rc = mmsb_open(dir, &o, &e);
    if (mem.rc != 0) {
        snprintf(mem.why, sizeof mem.why, "open: %s", mmsb_last_error());
        return;
    }
    mem.rss_open = rss_bytes();
    mem.arena_faulted_open = arena_info(e, NULL);
    uint64_t id;
    uint8_t b[64];
    memset(b, 0x42, sizeof b);
    for (uint32_t i = 0; i < MEM_PAGES && mem.rc == 0; i++) {
        mem.rc = mmsb_page_create(e, 4096, 0, &id);
        if (mem.rc == 0) mem.rc = mmsb_write(e, id, (i % 64) * 64, b, sizeof b, NULL);
    }
    bench_out tmp = {0};
    if (mem.rc == 0) bench_check_root(e, &tmp); /* the state tree is built too */
    snprintf(mem.check, sizeof mem.check, "%s", tmp.check);
    mem.rss_end = rss_bytes();
    mem.arena_faulted_end = arena_info(e, &mem.arena_used_end);
    if (mem.rc == 0 && mem.arena_faulted_end < mem.arena_used_end + mem.arena_faulted_open) mem.rc = -1;
    if (mem.rc != 0) snprintf(mem.why, sizeof mem.why, "%s", mmsb_last_error());
    mmsb_close(e);
    bench_rmtree(dir);
}

/* arg 0: resident bytes per page in all; 1: beyond the page bytes, what
 * the engine held right after its open, and the arena's pre-faulted reserve
 * (at most one arena_grow_bytes step, whatever the page count: not per-page
 * metadata); 2: that reserve. */
static int bench_memory(const bench_env *env, const void *arg, bench_out *out) {
    measure_memory(env);
    if (mem.rc != 0) return bench_fail(out, "%s", mem.why);
    snprintf(out->check, sizeof out->check, "%s", mem.check);
    int what = *(const int *)arg;
    uint64_t reserve = mem.arena_faulted_end - mem.arena_faulted_open - mem.arena_used_end;
    if (what == 0) {
        snprintf(out->note, sizeof out->note, "%.2f GiB resident for %u pages (goal: 4.2 GiB)",
                 (double)mem.rss_end / (double)GiB, MEM_PAGES);
        return bench_sample(out, (double)mem.rss_end / MEM_PAGES);
    }
    if (what == 2) {
        snprintf(out->note, sizeof out->note, "pre-faulted and not yet held: at most one arena_grow_bytes step");
        return bench_sample(out, (double)reserve);
    }
    double grown = (double)(mem.rss_end - mem.rss_open) - (double)(mem.arena_faulted_end - mem.arena_faulted_open);
    snprintf(out->note, sizeof out->note, "page table, state tree, dirty sets; the arena's reserve (%.0f MiB) apart",
             (double)reserve / (double)MiB);
    return bench_sample(out, grown / MEM_PAGES);
}

/* ---- a store of ten million pages ---------------------------------------------------------------------- */

enum { BIG_PAGES = 10000000, BIG_PER_COMMIT = 1000000, BIG_PAGE_BYTES = 64 };

/* Ten million 64-byte pages made a million to a commit, a checkpoint at
 * close, and a reopen from it: four rows read one run. */
typedef struct big_run {
    bool done;
    int rc;
    double create_ns_per_page, rss_per_page, close_s, reopen_s;
    char check[BENCH_CHECK_BYTES], why[BENCH_NOTE_BYTES];
} big_run;

static big_run big;

static int big_open(const char *dir, mmsb_engine **e) {
    mmsb_options o;
    bench_options(&o, MMSB_DURABILITY_NONE);
    o.checkpoint_log_bytes = 0;
    o.arena_bytes_max = 8 * GiB;
    o.pages_max = 1ull << 24;
    o.checkpoint_map_bytes = 4 * GiB;
    int rc = mmsb_open(dir, &o, e);
    if (rc != 0) snprintf(big.why, sizeof big.why, "open: %s", mmsb_last_error());
    return rc;
}

static void measure_big(const bench_env *env) {
    if (big.done) return;
    big.done = true;
    char dir[4096];
    bench_store_path(env, "ten-million", dir, sizeof dir);
    mmsb_engine *e;
    if ((big.rc = big_open(dir, &e)) != 0) return;
    uint64_t rss_open = rss_bytes(), first, t0 = bench_now_ns();
    for (uint32_t i = 0; i < BIG_PAGES / BIG_PER_COMMIT && big.rc == 0; i++)
        big.rc = mmsb_page_create_many(e, BIG_PAGE_BYTES, 0, BIG_PER_COMMIT, &first);
    big.create_ns_per_page = (double)(bench_now_ns() - t0) / BIG_PAGES;
    bench_out tmp = {0};
    if (big.rc == 0) bench_check_root(e, &tmp);
    big.rss_per_page = (double)(rss_bytes() - rss_open) / BIG_PAGES;
    if (big.rc != 0) snprintf(big.why, sizeof big.why, "%s", mmsb_last_error());
    t0 = bench_now_ns();
    int rc = mmsb_close(e);
    big.close_s = (double)(bench_now_ns() - t0) / 1e9;
    if (big.rc == 0 && rc != 0) {
        big.rc = rc;
        snprintf(big.why, sizeof big.why, "close: %s", mmsb_last_error());
    }
    t0 = bench_now_ns();
    if (big.rc == 0 && (big.rc = big_open(dir, &e)) == 0) {
        big.reopen_s = (double)(bench_now_ns() - t0) / 1e9;
        bench_out again = {0};
        bench_check_root(e, &again);
        if (strcmp(again.check, tmp.check) != 0) {
            big.rc = -1;
            snprintf(big.why, sizeof big.why, "the reopened root differs from the one before close");
        }
        mmsb_close(e);
    }
    snprintf(big.check, sizeof big.check, "%s", tmp.check);
    bench_rmtree(dir);
}

/* arg: which figure (0 create, 1 resident, 2 close, 3 reopen). */
static int bench_big(const bench_env *env, const void *arg, bench_out *out) {
    if (env->quick) {
        out->skipped = true;
        snprintf(out->note, sizeof out->note, "ten million pages: not in a quick pass");
        return 0;
    }
    measure_big(env);
    if (big.rc != 0) return bench_fail(out, "%s", big.why);
    snprintf(out->check, sizeof out->check, "%s", big.check);
    const double figure[] = {big.create_ns_per_page, big.rss_per_page, big.close_s, big.reopen_s};
    int which = *(const int *)arg;
    ASSERT(which >= 0 && which < 4);
    if (which == 1) snprintf(out->note, sizeof out->note, "the pages' own bytes are 64 of it");
    if (which == 2) snprintf(out->note, sizeof out->note, "writes the checkpoint of every page");
    return bench_sample(out, figure[which]);
}

/* ---- attached readers ------------------------------------------------------------------------------- */

enum { ATTACH_PAGES = 64, ATTACH_READS = 200000 };

/* A reader process attached to the writer below: reads of whole 4 KiB
 * pages, each checked whole (every byte equals its epoch mod 256), in
 * million reads per second, one sample per 10,000 reads. */
static void attach_reader(const char *dir, int out_fd, uint32_t reads) {
    mmsb_attach *a = NULL;
    for (int i = 0; i < 1000 && mmsb_attach_open(dir, &a) != 0; i++) usleep(1000);
    double rates[ATTACH_READS / 10000];
    uint32_t n = 0, torn = 0;
    static uint8_t buf[4096];
    for (uint32_t i = 0; a != NULL && i < reads; i += 10000) {
        uint64_t t0 = bench_now_ns();
        for (uint32_t k = 0; k < 10000; k++) {
            uint64_t epoch;
            if (mmsb_attach_read(a, 1 + (i + k) % ATTACH_PAGES, 0, buf, sizeof buf, &epoch) != 0) torn++;
            else torn += buf[0] != (uint8_t)epoch || buf[4095] != (uint8_t)epoch;
        }
        rates[n++] = 10000.0 / (double)(bench_now_ns() - t0) * 1e3;
    }
    double header[2] = {(double)n, (double)torn};
    if (a == NULL) header[0] = -1;
    if (write(out_fd, header, sizeof header) != sizeof header || write(out_fd, rates, n * sizeof(double)) < 0) _exit(3);
    _exit(0);
}

static int bench_attach(const bench_env *env, const void *arg, bench_out *out) {
    (void)arg;
    char dir[4096];
    bench_store_path(env, "attach", dir, sizeof dir);
    mmsb_options o;
    bench_options(&o, MMSB_DURABILITY_NONE);
    o.checkpoint_log_bytes = 0;
    mmsb_engine *e;
    if (mmsb_open(dir, &o, &e) != 0) return bench_fail(out, "open: %s", mmsb_last_error());
    int rc = 0;
    uint64_t id;
    for (uint32_t i = 0; i < ATTACH_PAGES && rc == 0; i++) rc = mmsb_page_create(e, 4096, 0, &id);
    int fds[2];
    if (rc != 0 || pipe(fds) != 0) {
        mmsb_close(e);
        return bench_fail(out, "setup failed");
    }
    uint32_t reads = env->quick ? ATTACH_READS / 4 : ATTACH_READS;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        attach_reader(dir, fds[1], reads);
    }
    close(fds[1]);
    static uint8_t page[4096];
    uint64_t writes = 0;
    struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
    while (rc == 0 && poll(&pfd, 1, 0) == 0) { /* write until the reader reports */
        uint64_t k = writes % ATTACH_PAGES;
        mmsb_pageinfo pi = {.struct_size = sizeof pi};
        rc = mmsb_page_info(e, 1 + k, &pi);
        memset(page, (int)((pi.epoch + 1) % 256), sizeof page);
        if (rc == 0) rc = mmsb_write(e, 1 + k, 0, page, sizeof page, NULL);
        writes++;
    }
    double header[2] = {0, 0}, rates[ATTACH_READS / 10000];
    bool got = read(fds[0], header, sizeof header) == sizeof header && header[0] >= 0;
    uint32_t n = got ? (uint32_t)header[0] : 0;
    if (got && read(fds[0], rates, n * sizeof(double)) != (ssize_t)(n * sizeof(double))) got = false;
    close(fds[0]);
    waitpid(pid, NULL, 0);
    for (uint32_t i = 0; got && rc == 0 && i < n; i++) rc = bench_sample(out, rates[i]);
    if (rc == 0 && !got) rc = bench_fail(out, "the reader process failed");
    if (rc == 0 && header[1] != 0) rc = bench_fail(out, "%.0f torn or failed reads", header[1]);
    snprintf(out->note, sizeof out->note, "%u reads, none torn, while %llu writes of 4 KiB ran", reads,
             (unsigned long long)writes);
    if (rc == 0) bench_check_root(e, out);
    mmsb_close(e);
    return rc > 0 || rc < -1 ? bench_fail(out, "%s", mmsb_last_error()) : rc;
}

/* ---- the table ---------------------------------------------------------------------------------------- */

static const bench_def STORE[] = {
    {"log/replay_from_genesis/4M_records_of_2M_64B_changes", "M/s", bench_open,
     &(const open_arg){false, false, true, 1}, NULL, GOAL_AT_LEAST, 5, "issue 5 (or >= 1 GB/s)", NULL, NULL, NULL, 0},
    {"log/replay_from_genesis/1GiB_of_64KiB_changes", "GB/s", bench_open, &(const open_arg){true, false, true, 2}, NULL,
     GOAL_AT_LEAST, 2, "issue 17", NULL, NULL, NULL, 0},
    {"log/reopen/1GiB_log_with_checkpoint", "ms", bench_open, &(const open_arg){true, true, false, 0}, NULL,
     GOAL_AT_MOST, 1000, "issue 5", NULL, NULL, NULL, 0},
    {"log/reopen/1GiB_log_without_checkpoint", "ms", bench_open, &(const open_arg){true, false, false, 0}, NULL,
     GOAL_AT_MOST, 600, "issue 17", NULL, NULL, NULL, 0},
    {"checkpoint/1000_changed_4KiB_pages", "ms", bench_checkpoint, NULL, NULL, GOAL_AT_MOST, 20, "issue 5", NULL, NULL,
     NULL, 0},
    {"checkpoint/write_latency_with_a_checkpoint_every_4MiB", "us", bench_stall, NULL, NULL, GOAL_NONE, 0, NULL, NULL,
     NULL, NULL, 0},
    {"checkpoint/structure_check/100k_4KiB_pages_trees", "ms", bench_check, &(const int){0}, NULL, GOAL_NONE, 0, NULL,
     NULL, NULL, NULL, 0},
    {"checkpoint/structure_check/100k_4KiB_pages_with_overflow_headers", "ms", bench_check, &(const int){1}, NULL,
     GOAL_NONE, 0, NULL, NULL, NULL, NULL, 0},
    {"log/reopen/100k_4KiB_pages_with_checkpoint", "ms", bench_check, &(const int){2}, NULL, GOAL_NONE, 0, NULL, NULL,
     NULL, NULL, 0},
    {"attach/read_4KiB_page_while_a_writer_writes", "M/s", bench_attach, NULL, NULL, GOAL_NONE, 0, NULL, NULL, NULL,
     NULL, 0},
    {"memory/resident_bytes_per_4KiB_page/1M_pages", "bytes", bench_memory, &(const int){0}, NULL, GOAL_AT_MOST,
     4.2 * 1073741824.0 / MEM_PAGES, "issue 2", NULL, NULL, NULL, 0},
    {"memory/metadata_bytes_per_page_beyond_its_bytes_and_arena_reserve/1M_pages", "bytes", bench_memory,
     &(const int){1}, NULL, GOAL_AT_MOST, 64, "issue 17", NULL, NULL, NULL, 0},
    {"memory/arena_reserve_bytes/1M_pages", "bytes", bench_memory, &(const int){2}, NULL, GOAL_NONE, 0, NULL, NULL,
     NULL, NULL, 0},
    /* After the memory rows: the resident size they read is the process's. */
    {"store/10M_64B_pages/create_1M_per_commit", "ns", bench_big, &(const int){0}, NULL, GOAL_NONE, 0, NULL, NULL,
     NULL, NULL, 0},
    {"store/10M_64B_pages/resident_bytes_per_page", "bytes", bench_big, &(const int){1}, NULL, GOAL_NONE, 0, NULL,
     NULL, NULL, NULL, 0},
    {"store/10M_64B_pages/close_with_checkpoint", "s", bench_big, &(const int){2}, NULL, GOAL_NONE, 0, NULL, NULL,
     NULL, NULL, 0},
    {"store/10M_64B_pages/reopen_from_checkpoint", "s", bench_big, &(const int){3}, NULL, GOAL_NONE, 0, NULL, NULL,
     NULL, NULL, 0},
};

const bench_def *bench_group_store(uint32_t *count) {
    *count = sizeof STORE / sizeof STORE[0];
    return STORE;
}
