/*
 * b_gpu.c - the GPU rows: the same work on a device page and on a host page
 * of one engine with a CUDA device (pages placed by flag), through the
 * public API, end to end: a logged 4 KiB change of a 64 MiB page, a whole
 * page rewritten by size (the crossover plot), and SUM_U32 over ten 64 MiB
 * parents. Without a CUDA device in use the rows are skipped with the
 * probe's words; MMSB_GPU=emulate runs them on the emulated device, which
 * checks the rows, not a GPU's speed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

enum { PARENTS = 10 };
static const uint64_t MiB64 = 64ull << 20;

typedef struct gpu_arg {
    uint32_t flags;      /* MMSB_PAGE_DEVICE or MMSB_PAGE_HOST */
    uint64_t page_bytes; /* the whole-page rows */
} gpu_arg;

/* An engine whose pages go to the device by flag only; 1 when there is
 * no CUDA device in use (out->skipped, with the reason). */
static int open_gpu(const bench_env *env, mmsb_engine **e, bench_out *out) {
    char dir[4096];
    bench_store_path(env, "gpu", dir, sizeof dir);
    mmsb_options o;
    bench_options(&o, MMSB_DURABILITY_NONE);
    o.gpu = MMSB_GPU_AUTO;
    o.arena_bytes_max = 16ull << 30;
    o.page_bytes_max = 1ull << 30;
    o.gpu_threshold_bytes = o.page_bytes_max; /* no page by size: by flag only */
    o.checkpoint_log_bytes = 0;
    if (mmsb_open(dir, &o, e) != 0) return bench_fail(out, "open: %s", mmsb_last_error());
    mmsb_engineinfo info = {.struct_size = sizeof info};
    if (mmsb_engine_info(*e, &info) != 0) return bench_fail(out, "engine info: %s", mmsb_last_error());
    if (strstr(info.gpu, "CUDA:") == info.gpu) return 0;
    if (strstr(info.gpu, "emulated device") == info.gpu) {
        snprintf(out->note, sizeof out->note, "on the emulated device (MMSB_GPU=emulate): not a GPU's figure");
        return 0;
    }
    mmsb_close(*e);
    *e = NULL;
    out->skipped = true;
    snprintf(out->note, sizeof out->note, "no CUDA device in use (%s)", info.gpu);
    return 1;
}

static int close_gpu(mmsb_engine *e, bench_out *out, uint32_t flags, uint64_t page_id) {
    mmsb_pageinfo pi = {.struct_size = sizeof pi};
    int rc = mmsb_page_info(e, page_id, &pi);
    bool where = rc == 0 && pi.location == (flags == MMSB_PAGE_DEVICE ? MMSB_LOC_DEVICE : MMSB_LOC_HOST);
    bench_check_root(e, out);
    mmsb_close(e);
    return where ? 0 : bench_fail(out, "page %llu is not where it was placed", (unsigned long long)page_id);
}

/* One logged 4 KiB change of a 64 MiB page: the end-to-end commit. */
static int bench_write_4k(const bench_env *env, const void *arg, bench_out *out) {
    const gpu_arg *a = arg;
    mmsb_engine *e;
    int rc = open_gpu(env, &e, out);
    if (rc != 0) return rc < 0 ? rc : 0;
    uint64_t id;
    if (mmsb_page_create(e, MiB64, a->flags, &id) != 0) return bench_fail(out, "create: %s", mmsb_last_error());
    static uint8_t block[2][4096];
    memset(block[0], 0x11, sizeof block[0]);
    memset(block[1], 0x22, sizeof block[1]);
    uint8_t *whole = calloc(1, MiB64); /* every byte touched once first: no first touch is timed */
    if (whole == NULL) return bench_fail(out, "out of memory");
    memset(whole, 0x33, MiB64);
    rc = mmsb_write(e, id, 0, whole, MiB64, NULL);
    free(whole);
    if (rc != 0) return bench_fail(out, "write: %s", mmsb_last_error());
    uint32_t n = env->quick ? 200 : 5000;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t at = (uint64_t)(i * 7919u % (uint32_t)(MiB64 / 4096)) * 4096;
        uint64_t t0 = bench_now_ns();
        if (mmsb_write(e, id, at, block[(i / 16) & 1], 4096, NULL) != 0) {
            return bench_fail(out, "write: %s", mmsb_last_error());
        }
        bench_sample(out, (double)(bench_now_ns() - t0) / 1e3);
    }
    return close_gpu(e, out, a->flags, id);
}

/* A logged 64-byte write into a 4 KiB host page of an engine with a device
 * in use: ns per write, against the same write with no device (its peer). */
static int bench_small_host_write(const bench_env *env, const void *arg, bench_out *out) {
    (void)arg;
    enum { WRITES_PER_SAMPLE = 16 };
    mmsb_engine *e;
    int rc = open_gpu(env, &e, out);
    if (rc != 0) return rc < 0 ? rc : 0;
    uint64_t id, changed = 0, n = env->quick ? 200000 : 1000000;
    if (mmsb_page_create(e, 4096, MMSB_PAGE_HOST, &id) != 0) return bench_fail(out, "create: %s", mmsb_last_error());
    for (uint64_t i = 0; i < n && rc == 0; i += WRITES_PER_SAMPLE) {
        uint64_t t0 = bench_now_ns();
        for (uint32_t j = 0; j < WRITES_PER_SAMPLE && rc == 0; j++) {
            mmsb_change ch;
            rc = mmsb_write(e, id, ((i + j) * 64) % 4096, bench_pattern64((i + j) / 64), 64, &ch);
            changed += ch.bytes_changed;
        }
        if (rc == 0) bench_sample(out, (double)(bench_now_ns() - t0) / WRITES_PER_SAMPLE);
    }
    if (rc != 0) return bench_fail(out, "write: %s", mmsb_last_error());
    if (changed != n * 64) return bench_fail(out, "%llu bytes changed", (unsigned long long)changed);
    return close_gpu(e, out, MMSB_PAGE_HOST, id);
}

/* The whole page rewritten, alternating two contents: GB/s. */
static int bench_rewrite(const bench_env *env, const void *arg, bench_out *out) {
    const gpu_arg *a = arg;
    mmsb_engine *e;
    int rc = open_gpu(env, &e, out);
    if (rc != 0) return rc < 0 ? rc : 0;
    uint8_t *buf[2] = {malloc(a->page_bytes), malloc(a->page_bytes)};
    uint64_t id;
    if (buf[0] == NULL || buf[1] == NULL || mmsb_page_create(e, a->page_bytes, a->flags, &id) != 0) {
        free(buf[0]), free(buf[1]);
        return bench_fail(out, "create: %s", mmsb_last_error());
    }
    memset(buf[0], 0x3C, a->page_bytes);
    memset(buf[1], 0xC3, a->page_bytes);
    uint32_t reps = env->quick ? 3 : (uint32_t)(a->page_bytes >= MiB64 ? 10 : 40);
    for (uint32_t i = 0; i < reps && rc == 0; i++) {
        uint64_t t0 = bench_now_ns();
        rc = mmsb_write(e, id, 0, buf[i & 1], a->page_bytes, NULL);
        if (rc == 0) bench_sample(out, (double)a->page_bytes / (double)(bench_now_ns() - t0));
    }
    free(buf[0]), free(buf[1]);
    if (rc != 0) return bench_fail(out, "write: %s", mmsb_last_error());
    return close_gpu(e, out, a->flags, id);
}

/* SUM_U32 of ten 64 MiB parents, the whole child computed (mmsb_derive
 * again, one commit): ms per commit. */
static int bench_sum(const bench_env *env, const void *arg, bench_out *out) {
    const gpu_arg *a = arg;
    mmsb_engine *e;
    int rc = open_gpu(env, &e, out);
    if (rc != 0) return rc < 0 ? rc : 0;
    uint64_t parents[PARENTS], child;
    uint8_t *fill = malloc(MiB64);
    if (fill == NULL) return bench_fail(out, "out of memory");
    for (uint32_t k = 0; k < PARENTS && rc == 0; k++) {
        memset(fill, (int)(k + 1), MiB64);
        rc = mmsb_page_create(e, MiB64, a->flags, &parents[k]);
        if (rc == 0) rc = mmsb_write(e, parents[k], 0, fill, MiB64, NULL);
    }
    free(fill);
    if (rc == 0) rc = mmsb_page_create(e, MiB64, a->flags, &child);
    mmsb_derive_spec spec = {.struct_size = sizeof spec, .op = MMSB_OP_SUM_U32, .parents = parents,
                             .parent_count = PARENTS};
    if (rc == 0) rc = mmsb_derive(e, child, &spec, NULL);
    if (rc != 0) return bench_fail(out, "setting up: %s", mmsb_last_error());
    uint32_t n = env->quick ? 3 : 10;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        uint64_t t0 = bench_now_ns();
        rc = mmsb_derive(e, child, &spec, NULL);
        if (rc == 0) bench_sample(out, (double)(bench_now_ns() - t0) / 1e6);
    }
    if (rc != 0) return bench_fail(out, "derive: %s", mmsb_last_error());
    uint32_t lane;
    if (mmsb_page_read(e, child, 0, &lane, sizeof lane, NULL) != 0 || lane != 0x37373737u) { /* 1+2+...+10 = 55 */
        mmsb_close(e);
        return bench_fail(out, "the child's first lane is %08x, not 37373737", lane);
    }
    return close_gpu(e, out, a->flags, child);
}

static const gpu_arg DEVICE = {.flags = MMSB_PAGE_DEVICE}, HOST = {.flags = MMSB_PAGE_HOST};
static const gpu_arg DEV_64K = {MMSB_PAGE_DEVICE, 64u << 10}, HOST_64K = {MMSB_PAGE_HOST, 64u << 10};
static const gpu_arg DEV_1M = {MMSB_PAGE_DEVICE, 1u << 20}, HOST_1M = {MMSB_PAGE_HOST, 1u << 20};
static const gpu_arg DEV_16M = {MMSB_PAGE_DEVICE, 16u << 20}, HOST_16M = {MMSB_PAGE_HOST, 16u << 20};
static const gpu_arg DEV_64M = {MMSB_PAGE_DEVICE, 64u << 20}, HOST_64M = {MMSB_PAGE_HOST, 64u << 20};

static const bench_def GPU[] = {
    {"gpu/write_64B_into_4KiB_host_page/device_in_use", "ns", bench_small_host_write, NULL,
     "writes/64B_into_4KiB/logged_NONE", GOAL_RATIO_AT_MOST, 1.1, "issue 14", NULL, NULL, NULL, 0},
    {"gpu/write_4KiB_into_64MiB_page/host", "us", bench_write_4k, &HOST, NULL, GOAL_NONE, 0, NULL, NULL, NULL,
     NULL, 0},
    {"gpu/write_4KiB_into_64MiB_page/device", "us", bench_write_4k, &DEVICE, NULL, GOAL_AT_MOST, 50, "issue 14",
     NULL, NULL, NULL, 0},
    {"gpu/rewrite_whole_page/64KiB/host", "GB/s", bench_rewrite, &HOST_64K, NULL, GOAL_NONE, 0, NULL, NULL, "gpu",
     "host", 65536},
    {"gpu/rewrite_whole_page/64KiB/device", "GB/s", bench_rewrite, &DEV_64K, NULL, GOAL_NONE, 0, NULL, NULL, "gpu",
     "device", 65536},
    {"gpu/rewrite_whole_page/1MiB/host", "GB/s", bench_rewrite, &HOST_1M, NULL, GOAL_NONE, 0, NULL, NULL, "gpu",
     "host", 1048576},
    {"gpu/rewrite_whole_page/1MiB/device", "GB/s", bench_rewrite, &DEV_1M, NULL, GOAL_NONE, 0, NULL, NULL, "gpu",
     "device", 1048576},
    {"gpu/rewrite_whole_page/16MiB/host", "GB/s", bench_rewrite, &HOST_16M, NULL, GOAL_NONE, 0, NULL, NULL, "gpu",
     "host", 16777216},
    {"gpu/rewrite_whole_page/16MiB/device", "GB/s", bench_rewrite, &DEV_16M, NULL, GOAL_NONE, 0, NULL, NULL, "gpu",
     "device", 16777216},
    {"gpu/rewrite_whole_page/64MiB/host", "GB/s", bench_rewrite, &HOST_64M, NULL, GOAL_NONE, 0, NULL, NULL, "gpu",
     "host", 67108864},
    {"gpu/rewrite_whole_page/64MiB/device", "GB/s", bench_rewrite, &DEV_64M, NULL, GOAL_NONE, 0, NULL, NULL, "gpu",
     "device", 67108864},
    {"gpu/sum_u32_of_10_64MiB_parents/whole_child/host", "ms", bench_sum, &HOST, NULL, GOAL_NONE, 0, NULL, NULL,
     NULL, NULL, 0},
    {"gpu/sum_u32_of_10_64MiB_parents/whole_child/device", "ms", bench_sum, &DEVICE,
     "gpu/sum_u32_of_10_64MiB_parents/whole_child/host", GOAL_RATIO_AT_MOST, 0.1, "issue 14", NULL, NULL, NULL, 0},
};

const bench_def *bench_group_gpu(uint32_t *count) {
    *count = sizeof GPU / sizeof GPU[0];
    return GPU;
}
