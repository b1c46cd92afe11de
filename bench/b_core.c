/*
 * b_core.c - pages (create, free, read), the byte kernels against memcpy,
 * the write path without and with the log, and the write beside reader
 * threads.
 *
 * Figures in ns are means over batches of BATCH consecutive operations (one
 * sample per batch), so the clock's own cost (about 20 ns) is amortised;
 * figures in GB/s are one sample per repetition of a loop of at least a
 * few milliseconds.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/base/kern.h"
#include "bench.h"

enum { BATCH = 16, KiB = 1024, MiB = 1024 * 1024 };

/* ---- pages ------------------------------------------------------------------------------ */

typedef struct page_arg {
    uint64_t size, count, quick_count;
} page_arg;

static uint64_t count_of(const bench_env *env, const page_arg *a) { return env->quick ? a->quick_count : a->count; }

static int bench_create(const bench_env *env, const void *arg, bench_out *out) {
    const page_arg *a = arg;
    uint64_t n = count_of(env, a);
    mmsb_engine *e;
    if (bench_open_store(env, "pages", MMSB_DURABILITY_NONE, &e, out) != 0) return -1;
    int rc = 0;
    uint64_t id = 0;
    for (uint64_t i = 0; i < n && rc == 0; i += BATCH) {
        uint64_t t0 = bench_now_ns();
        for (uint32_t k = 0; k < BATCH && rc == 0; k++) rc = mmsb_page_create(e, a->size, 0, &id);
        rc = rc != 0 ? rc : bench_sample(out, (double)(bench_now_ns() - t0) / BATCH);
    }
    if (rc == 0 && id != (n + BATCH - 1) / BATCH * BATCH) rc = bench_fail(out, "last id %llu", (unsigned long long)id);
    if (rc == 0) bench_check_root(e, out);
    mmsb_close(e);
    return rc;
}

/* Pages made 1,000 to a commit (mmsb_page_create_many): a sample is the
 * time per page of one such commit. */
static int bench_create_many(const bench_env *env, const void *arg, bench_out *out) {
    const page_arg *a = arg;
    enum { PER_COMMIT = 1000 };
    uint64_t n = count_of(env, a) / PER_COMMIT * PER_COMMIT;
    mmsb_engine *e;
    if (bench_open_store(env, "pages", MMSB_DURABILITY_NONE, &e, out) != 0) return -1;
    int rc = 0;
    uint64_t first = 0;
    for (uint64_t i = 0; i < n && rc == 0; i += PER_COMMIT) {
        uint64_t t0 = bench_now_ns();
        rc = mmsb_page_create_many(e, a->size, 0, PER_COMMIT, &first);
        rc = rc != 0 ? rc : bench_sample(out, (double)(bench_now_ns() - t0) / PER_COMMIT);
    }
    if (rc == 0 && first + PER_COMMIT - 1 != n) rc = bench_fail(out, "last id %llu", (unsigned long long)first);
    if (rc == 0) bench_check_root(e, out);
    mmsb_close(e);
    return rc;
}

static int bench_free(const bench_env *env, const void *arg, bench_out *out) {
    const page_arg *a = arg;
    uint64_t n = count_of(env, a) / BATCH * BATCH;
    mmsb_engine *e;
    if (bench_open_store(env, "pages", MMSB_DURABILITY_NONE, &e, out) != 0) return -1;
    int rc = 0;
    uint64_t id = 0;
    for (uint64_t i = 0; i < n && rc == 0; i++) rc = mmsb_page_create(e, a->size, 0, &id);
    for (uint64_t i = 1; i <= n && rc == 0; i += BATCH) {
        uint64_t t0 = bench_now_ns();
        for (uint32_t k = 0; k < BATCH && rc == 0; k++) rc = mmsb_page_free(e, i + k);
        rc = rc != 0 ? rc : bench_sample(out, (double)(bench_now_ns() - t0) / BATCH);
    }
    mmsb_engineinfo info = {.struct_size = sizeof info};
    if (rc == 0 && (mmsb_engine_info(e, &info) != 0 || info.pages_live != 0)) rc = bench_fail(out, "pages left");
    snprintf(out->check, sizeof out->check, "%llu pages freed, none left", (unsigned long long)n);
    mmsb_close(e);
    return rc;
}

static int bench_read(const bench_env *env, const void *arg, bench_out *out) {
    const page_arg *a = arg;
    mmsb_engine *e;
    if (bench_open_store(env, "pages", MMSB_DURABILITY_NONE, &e, out) != 0) return -1;
    enum { PAGES = 256 };
    uint64_t ids[PAGES];
    uint8_t *buf = malloc(a->size), *fill = malloc(a->size);
    int rc = buf != NULL && fill != NULL ? 0 : bench_fail(out, "out of memory");
    for (uint32_t i = 0; i < PAGES && rc == 0; i++) {
        memset(fill, (int)i + 1, a->size);
        rc = mmsb_page_create(e, a->size, 0, &ids[i]);
        if (rc == 0) rc = mmsb_write(e, ids[i], 0, fill, a->size, NULL);
    }
    uint64_t n = count_of(env, a), sum = 0, epoch;
    for (uint64_t i = 0; i < n && rc == 0; i += BATCH) {
        uint64_t t0 = bench_now_ns();
        for (uint32_t k = 0; k < BATCH && rc == 0; k++) {
            rc = mmsb_page_read(e, ids[(i + k) % PAGES], 0, buf, a->size, &epoch);
            sum += buf[a->size - 1];
        }
        rc = rc != 0 ? rc : bench_sample(out, (double)(bench_now_ns() - t0) / BATCH);
    }
    uint64_t want = 0;
    for (uint64_t i = 0; i < (n + BATCH - 1) / BATCH * BATCH; i++) want += (uint8_t)((i % PAGES) + 1);
    if (rc == 0 && sum != want)
        rc = bench_fail(out, "read bytes sum %llu, expected %llu", (unsigned long long)sum, (unsigned long long)want);
    snprintf(out->check, sizeof out->check, "sum of last bytes %llu", (unsigned long long)sum);
    free(buf);
    free(fill);
    mmsb_close(e);
    return rc;
}

/* ---- kernels ------------------------------------------------------------------------------ */

typedef enum { K_MEMCPY, K_APPLY_DENSE, K_APPLY_SPARSE, K_DIFF, K_COMPRESS } kernel_kind;

typedef struct kernel_arg {
    kernel_kind kind;
    uint64_t size;
} kernel_arg;

typedef struct kernel_bufs {
    uint8_t *dst, *src, *mask, *packed;
    uint64_t packed_len;
} kernel_bufs;

/* Half the bytes in a fixed pseudo-random pattern differ between dst and src. */
static int kernel_setup(const kernel_arg *a, const kern_ops *k, kernel_bufs *b) {
    uint64_t n = a->size;
    b->dst = aligned_alloc(64, n);
    b->src = aligned_alloc(64, n);
    b->mask = aligned_alloc(64, n / 8);
    b->packed = aligned_alloc(64, n);
    if (b->dst == NULL || b->src == NULL || b->mask == NULL || b->packed == NULL) return -1;
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (uint64_t i = 0; i < n; i += 8) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        memcpy(b->src + i, &x, 8);
        uint64_t y = x ^ (x >> 1 & 0x5555555555555555ull ? 0xFF00FF00FF00FF00ull : 0x00FF00FF00FF00FFull);
        memcpy(b->dst + i, &y, 8);
    }
    k->diff(b->dst, b->src, n, b->mask); /* the mask of the bytes that differ */
    b->packed_len = k->compress(b->packed, b->src, b->mask, n);
    if (a->kind == K_APPLY_DENSE) memset(b->mask, 0xFF, n / 8);
    return 0;
}

static void kernel_free(kernel_bufs *b) {
    free(b->dst);
    free(b->src);
    free(b->mask);
    free(b->packed);
}

static uint64_t kernel_once(const kernel_arg *a, const kern_ops *k, kernel_bufs *b) {
    switch (a->kind) {
    case K_MEMCPY: memcpy(b->dst, b->src, a->size); return b->dst[a->size - 1];
    case K_APPLY_DENSE: return k->apply_dense(b->dst, b->src, b->mask, a->size, true);
    case K_APPLY_SPARSE: return k->apply_sparse(b->dst, b->packed, b->packed_len, b->mask, a->size, true);
    case K_DIFF: return k->diff(b->dst, b->src, a->size, b->mask);
    case K_COMPRESS: return k->compress(b->packed, b->src, b->mask, a->size);
    }
    return 0;
}

static int bench_kernel(const bench_env *env, const void *arg, bench_out *out) {
    const kernel_arg *a = arg;
    const kern_ops *k;
    if (kern_select(MMSB_KERNEL_AUTO, &k) != 0) return bench_fail(out, "no kernels");
    kernel_bufs b = {0};
    if (kernel_setup(a, k, &b) != 0) {
        kernel_free(&b);
        return bench_fail(out, "out of memory");
    }
    /* Enough calls for about 4 ms per sample at 20 GB/s. */
    uint64_t inner = (80ull * MiB) / a->size;
    if (inner == 0) inner = 1;
    if (env->quick) inner = (inner + 3) / 4;
    uint64_t sink = 0;
    for (uint64_t i = 0; i < inner; i++) sink += kernel_once(a, k, &b); /* warm-up */
    int rc = 0;
    for (uint32_t r = 0; r < env->reps && rc == 0; r++) {
        uint64_t t0 = bench_now_ns();
        for (uint64_t i = 0; i < inner; i++) sink += kernel_once(a, k, &b);
        double secs = (double)(bench_now_ns() - t0) / 1e9;
        rc = bench_sample(out, (double)a->size * (double)inner / secs / 1e9);
    }
    /* The check: dst now equals src (apply, memcpy), or the mask counts the differences (diff) and the
     * packed bytes (compress). */
    bool ok = a->kind == K_DIFF || a->kind == K_COMPRESS ? k->popcount(b.mask, a->size / 8) == b.packed_len
                                                          : memcmp(b.dst, b.src, a->size) == 0;
    if (a->kind == K_COMPRESS) ok = ok && k->compress(b.packed, b.src, b.mask, a->size) == b.packed_len;
    if (rc == 0 && !ok) rc = bench_fail(out, "result check failed");
    snprintf(out->check, sizeof out->check, "%s kernels; %llu differing bytes; sink %llu", k->name,
             (unsigned long long)b.packed_len, (unsigned long long)sink);
    kernel_free(&b);
    return rc;
}

/* ---- writes -------------------------------------------------------------------------------- */

typedef struct write_arg {
    uint32_t durability; /* 0: no engine, the kernels' diff + apply only */
    uint64_t count, quick_count;
} write_arg;

static int bench_write_kernels_only(const bench_env *env, const write_arg *a, bench_out *out) {
    const kern_ops *k;
    if (kern_select(MMSB_KERNEL_AUTO, &k) != 0) return bench_fail(out, "no kernels");
    uint8_t *page = aligned_alloc(4096, 4096);
    if (page == NULL) return bench_fail(out, "out of memory");
    memset(page, 0, 4096);
    uint8_t mask[8];
    uint64_t n = env->quick ? a->quick_count : a->count, changed = 0;
    int rc = 0;
    for (uint64_t i = 0; i < n && rc == 0; i += BATCH) {
        uint64_t t0 = bench_now_ns();
        for (uint32_t j = 0; j < BATCH; j++) {
            uint64_t off = ((i + j) * 64) % 4096;
            const uint8_t *src = bench_pattern64((i + j) / 64);
            if (k->diff(page + off, src, 64, mask) != 0) changed += k->apply_dense(page + off, src, mask, 64, true);
        }
        rc = bench_sample(out, (double)(bench_now_ns() - t0) / BATCH);
    }
    uint64_t batches = (n + BATCH - 1) / BATCH;
    if (rc == 0 && changed != batches * BATCH * 64)
        rc = bench_fail(out, "%llu bytes changed", (unsigned long long)changed);
    snprintf(out->check, sizeof out->check, "%llu bytes changed", (unsigned long long)changed);
    free(page);
    return rc;
}

static int bench_write(const bench_env *env, const void *arg, bench_out *out) {
    const write_arg *a = arg;
    if (a->durability == 0) return bench_write_kernels_only(env, a, out);
    mmsb_engine *e;
    if (bench_open_store(env, "writes", a->durability, &e, out) != 0) return -1;
    uint64_t id;
    int rc = mmsb_page_create(e, 4096, 0, &id);
    uint64_t n = env->quick ? a->quick_count : a->count, changed = 0;
    uint32_t batch = a->durability == MMSB_DURABILITY_SYNC ? 1 : BATCH;
    for (uint64_t i = 0; i < n && rc == 0; i += batch) {
        uint64_t t0 = bench_now_ns();
        for (uint32_t j = 0; j < batch && rc == 0; j++) {
            mmsb_change ch;
            rc = mmsb_write(e, id, ((i + j) * 64) % 4096, bench_pattern64((i + j) / 64), 64, &ch);
            changed += ch.bytes_changed;
        }
        double ns = (double)(bench_now_ns() - t0) / batch;
        rc = rc != 0 ? rc : bench_sample(out, a->durability == MMSB_DURABILITY_SYNC ? ns / 1000 : ns);
    }
    if (rc == 0) rc = mmsb_sync(e);
    uint64_t writes = (n + batch - 1) / batch * batch;
    if (rc == 0 && changed != writes * 64) rc = bench_fail(out, "%llu bytes changed", (unsigned long long)changed);
    if (rc == 0) bench_check_root(e, out);
    if (rc > 0 || rc < -1) rc = bench_fail(out, "%s", mmsb_last_error());
    mmsb_close(e);
    return rc;
}

/* ---- writes beside reader threads -------------------------------------------------------------- */

enum { READER_THREADS_MAX = 4, READER_PAGES = 64 };

typedef struct reader_ctx {
    mmsb_engine *e;
    const uint64_t *ids;
    atomic_bool *stop;
    uint64_t reads;
    int rc;
} reader_ctx;

/* Reads whole 4 KiB pages, round the writer's pages, until told to stop. */
static void *reader_main(void *arg) {
    reader_ctx *r = arg;
    uint8_t buf[4096];
    uint64_t epoch;
    for (uint64_t i = 0; r->rc == 0 && !atomic_load_explicit(r->stop, memory_order_relaxed); i++) {
        r->rc = mmsb_page_read(r->e, r->ids[i % READER_PAGES], 0, buf, sizeof buf, &epoch);
        r->reads++;
    }
    return NULL;
}

/* The logged NONE write of 64 bytes while `threads` threads of the same
 * process read 4 KiB pages the writer is writing (the seqlock's readers):
 * a sample is the writer's time per write; the note says what the readers
 * read meanwhile. */
static int bench_write_beside_readers(const bench_env *env, const void *arg, bench_out *out) {
    uint32_t threads = *(const uint32_t *)arg;
    ASSERT(threads >= 1 && threads <= READER_THREADS_MAX);
    mmsb_engine *e;
    if (bench_open_store(env, "readers", MMSB_DURABILITY_NONE, &e, out) != 0) return -1;
    uint64_t ids[READER_PAGES];
    int rc = mmsb_page_create_many(e, 4096, 0, READER_PAGES, &ids[0]);
    for (uint32_t k = 1; k < READER_PAGES; k++) ids[k] = ids[0] + k;
    atomic_bool stop = false;
    reader_ctx ctx[READER_THREADS_MAX] = {0};
    pthread_t tid[READER_THREADS_MAX];
    uint32_t started = 0;
    for (; rc == 0 && started < threads; started++) {
        ctx[started] = (reader_ctx){.e = e, .ids = ids, .stop = &stop};
        if (pthread_create(&tid[started], NULL, reader_main, &ctx[started]) != 0) break;
    }
    if (rc == 0 && started < threads) rc = bench_fail(out, "cannot start reader threads");
    uint64_t n = env->quick ? 100000 : 500000, t_start = bench_now_ns();
    for (uint64_t i = 0; i < n && rc == 0; i += BATCH) {
        uint64_t t0 = bench_now_ns();
        for (uint32_t j = 0; j < BATCH && rc == 0; j++)
            rc = mmsb_write(e, ids[(i + j) % READER_PAGES], ((i + j) * 64) % 4096, bench_pattern64((i + j) / 64), 64,
                            NULL);
        rc = rc != 0 ? rc : bench_sample(out, (double)(bench_now_ns() - t0) / BATCH);
    }
    double secs = (double)(bench_now_ns() - t_start) / 1e9;
    atomic_store(&stop, true);
    uint64_t reads = 0;
    for (uint32_t k = 0; k < started; k++) {
        pthread_join(tid[k], NULL);
        reads += ctx[k].reads;
        if (rc == 0 && ctx[k].rc != 0) rc = bench_fail(out, "reader: %s", mmsb_strerror(ctx[k].rc));
    }
    snprintf(out->note, sizeof out->note, "%u reader thread%s read %.2f M pages/s meanwhile", threads,
             threads == 1 ? "" : "s", (double)reads / secs / 1e6);
    if (rc == 0) bench_check_root(e, out);
    if (rc > 0 || rc < -1) rc = bench_fail(out, "%s", mmsb_last_error());
    mmsb_close(e);
    return rc;
}

/* ---- the table ------------------------------------------------------------------------------ */

static const page_arg P4K = {4096, 200000, 40000}, P1M = {1 * MiB, 512, 128};
static const write_arg W_KERN = {0, 2000000, 400000}, W_NONE = {MMSB_DURABILITY_NONE, 1000000, 200000},
                       W_GROUP = {MMSB_DURABILITY_GROUP, 1000000, 200000}, W_SYNC = {MMSB_DURABILITY_SYNC, 400, 100};

#define KERNEL(kind_, size_, name_, series_, peer_)                                                         \
    {"kernels/" name_, "GB/s", bench_kernel, &(const kernel_arg){kind_, size_}, peer_, GOAL_NONE, 0, NULL, NULL, \
     "kernels", series_, (double)(size_)}
/* Issue 2: at least half of memcpy's bandwidth at 4 KiB and 1 MiB. */
#define KERNEL_GOAL(kind_, size_, name_, series_, peer_, goal_)                                                  \
    {"kernels/" name_, "GB/s", bench_kernel, &(const kernel_arg){kind_, size_}, peer_, GOAL_RATIO_AT_LEAST, goal_, \
     "issue 2", NULL, "kernels", series_, (double)(size_)}

static const bench_def CORE[] = {
    {"pages/create/4KiB", "ns", bench_create, &P4K, NULL, GOAL_AT_MOST, 150, "issue 2", "6.09 us per allocation", NULL,
     NULL, 0},
    {"pages/create/4KiB_1000_per_commit", "ns", bench_create_many, &P4K, NULL, GOAL_AT_MOST, 150, "issue 17",
     "6.09 us per allocation", NULL, NULL, 0},
    {"pages/create/1MiB", "ns", bench_create, &P1M, NULL, GOAL_NONE, 0, NULL, NULL, NULL, NULL, 0},
    {"pages/free/4KiB", "ns", bench_free, &P4K, NULL, GOAL_AT_MOST, 300, "issue 17", NULL, NULL, NULL, 0},
    {"pages/read/4KiB", "ns", bench_read, &P4K, NULL, GOAL_NONE, 0, NULL, NULL, NULL, NULL, 0},
    KERNEL(K_MEMCPY, 4 * KiB, "memcpy/4KiB", "memcpy", NULL),
    KERNEL(K_MEMCPY, 64 * KiB, "memcpy/64KiB", "memcpy", NULL),
    KERNEL(K_MEMCPY, 1 * MiB, "memcpy/1MiB", "memcpy", NULL),
    KERNEL(K_MEMCPY, 16 * MiB, "memcpy/16MiB", "memcpy", NULL),
    KERNEL(K_MEMCPY, 64 * MiB, "memcpy/64MiB", "memcpy", NULL),
    KERNEL(K_MEMCPY, 256 * MiB, "memcpy/256MiB", "memcpy", NULL),
    KERNEL_GOAL(K_APPLY_DENSE, 4 * KiB, "apply_dense/4KiB", "apply dense", "kernels/memcpy/4KiB", 0.5),
    KERNEL(K_APPLY_DENSE, 64 * KiB, "apply_dense/64KiB", "apply dense", "kernels/memcpy/64KiB"),
    KERNEL_GOAL(K_APPLY_DENSE, 1 * MiB, "apply_dense/1MiB", "apply dense", "kernels/memcpy/1MiB", 0.5),
    KERNEL(K_APPLY_DENSE, 16 * MiB, "apply_dense/16MiB", "apply dense", "kernels/memcpy/16MiB"),
    KERNEL(K_APPLY_DENSE, 64 * MiB, "apply_dense/64MiB", "apply dense", "kernels/memcpy/64MiB"),
    KERNEL(K_APPLY_DENSE, 256 * MiB, "apply_dense/256MiB", "apply dense", "kernels/memcpy/256MiB"),
    KERNEL_GOAL(K_APPLY_SPARSE, 4 * KiB, "apply_sparse_half/4KiB", "apply sparse (half the bytes)",
                "kernels/memcpy/4KiB", 0.5),
    KERNEL(K_APPLY_SPARSE, 64 * KiB, "apply_sparse_half/64KiB", "apply sparse (half the bytes)",
           "kernels/memcpy/64KiB"),
    KERNEL_GOAL(K_APPLY_SPARSE, 1 * MiB, "apply_sparse_half/1MiB", "apply sparse (half the bytes)",
                "kernels/memcpy/1MiB", 0.5),
    KERNEL(K_APPLY_SPARSE, 16 * MiB, "apply_sparse_half/16MiB", "apply sparse (half the bytes)",
           "kernels/memcpy/16MiB"),
    KERNEL(K_APPLY_SPARSE, 64 * MiB, "apply_sparse_half/64MiB", "apply sparse (half the bytes)",
           "kernels/memcpy/64MiB"),
    KERNEL(K_APPLY_SPARSE, 256 * MiB, "apply_sparse_half/256MiB", "apply sparse (half the bytes)",
           "kernels/memcpy/256MiB"),
    KERNEL_GOAL(K_DIFF, 4 * KiB, "diff_half/4KiB", "diff (half the bytes differ)", "kernels/memcpy/4KiB", 0.5),
    KERNEL(K_DIFF, 64 * KiB, "diff_half/64KiB", "diff (half the bytes differ)", "kernels/memcpy/64KiB"),
    KERNEL_GOAL(K_DIFF, 1 * MiB, "diff_half/1MiB", "diff (half the bytes differ)", "kernels/memcpy/1MiB", 0.5),
    KERNEL(K_DIFF, 16 * MiB, "diff_half/16MiB", "diff (half the bytes differ)", "kernels/memcpy/16MiB"),
    KERNEL(K_DIFF, 64 * MiB, "diff_half/64MiB", "diff (half the bytes differ)", "kernels/memcpy/64MiB"),
    KERNEL(K_DIFF, 256 * MiB, "diff_half/256MiB", "diff (half the bytes differ)", "kernels/memcpy/256MiB"),
    KERNEL(K_COMPRESS, 4 * KiB, "compress_half/4KiB", "compress (half the bytes)", "kernels/memcpy/4KiB"),
    KERNEL(K_COMPRESS, 64 * KiB, "compress_half/64KiB", "compress (half the bytes)", "kernels/memcpy/64KiB"),
    KERNEL(K_COMPRESS, 1 * MiB, "compress_half/1MiB", "compress (half the bytes)", "kernels/memcpy/1MiB"),
    {"writes/64B_into_4KiB/diff_and_apply_kernels_no_log", "ns", bench_write, &W_KERN, NULL, GOAL_AT_MOST, 100,
     "issue 2", NULL, NULL, NULL, 0},
    {"writes/64B_into_4KiB/logged_NONE", "ns", bench_write, &W_NONE, NULL, GOAL_AT_MOST, 100, "issue 17",
     "2.2 M empty deltas/s (455 ns each)", NULL, NULL, 0},
    {"writes/64B_into_4KiB/logged_NONE_beside_1_reader_thread", "ns", bench_write_beside_readers, &(const uint32_t){1},
     NULL, GOAL_NONE, 0, NULL, NULL, NULL, NULL, 0},
    {"writes/64B_into_4KiB/logged_NONE_beside_2_reader_threads", "ns", bench_write_beside_readers,
     &(const uint32_t){2}, NULL, GOAL_NONE, 0, NULL, NULL, NULL, NULL, 0},
    {"writes/64B_into_4KiB/logged_NONE_beside_4_reader_threads", "ns", bench_write_beside_readers,
     &(const uint32_t){4}, NULL, GOAL_NONE, 0, NULL, NULL, NULL, NULL, 0},
    {"writes/64B_into_4KiB/logged_GROUP_call", "ns", bench_write, &W_GROUP, NULL, GOAL_NONE, 0, NULL, NULL, NULL, NULL,
     0},
    {"writes/64B_into_4KiB/logged_SYNC", "us", bench_write, &W_SYNC, "peer/pwrite_fdatasync/4KiB", GOAL_RATIO_AT_MOST,
     1.1, "issue 3", NULL, NULL, NULL, 0},
};

const bench_def *bench_group_core(uint32_t *count) {
    *count = sizeof CORE / sizeof CORE[0];
    return CORE;
}
