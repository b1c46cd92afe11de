/*
 * b_gpu_kern.c - the device's kernels on bytes already in device memory,
 * by page size (4 KiB to 256 MiB): masked apply (dense, and sparse with
 * half the bytes set), diff (half the bytes differ) and a page's digest
 * (its chunks' digests, then its tree), timed with CUDA events around
 * repeated launches of the kernels the device location uses, each result
 * checked against the host's. Each row's peer is the host's row of the same
 * work (kernels/..., and kernels/page_digest/... below, which runs on every
 * machine). No transfer is in these figures: the end-to-end rows (b_gpu.c)
 * are what a commit costs. Skipped where the build has no CUDA or there is
 * no device.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/base/bytes.h"
#include "../engine/base/kern.h"
#include "../engine/base/seeds.h"
#include "../gpu/dev_logic.h"
#include "bench.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)

typedef enum { DK_APPLY_DENSE, DK_APPLY_SPARSE, DK_DIFF, DK_DIGEST } dev_kernel;

typedef struct dev_kernel_arg {
    dev_kernel kind;
    uint64_t size;
} dev_kernel_arg;

/* The bytes every row starts from: `from` and `to` differ in half their
 * bytes (alternate bytes of each word, by a fixed pseudo-random choice);
 * mask marks them and packed holds to's bytes there. */
typedef struct half_bytes {
    uint8_t *from, *to, *mask, *packed;
    uint64_t size, differing;
} half_bytes;

static void half_free(half_bytes *h) {
    free(h->from);
    free(h->to);
    free(h->mask);
    free(h->packed);
}

static int half_make(const kern_ops *k, uint64_t size, half_bytes *h) {
    *h = (half_bytes){.size = size};
    h->from = aligned_alloc(64, size);
    h->to = aligned_alloc(64, size);
    h->mask = aligned_alloc(64, size / 8);
    h->packed = aligned_alloc(64, size);
    if (h->from == NULL || h->to == NULL || h->mask == NULL || h->packed == NULL) return -1;
    uint64_t s = 0x2545F4914F6CDD1Dull;
    for (uint64_t i = 0; i < size; i += 8) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t flip = (s >> 63) ? 0x00FF00FF00FF00FFull : 0xFF00FF00FF00FF00ull;
        uint64_t a = s ^ (s >> 29), b = a ^ flip;
        memcpy(h->from + i, &a, 8);
        memcpy(h->to + i, &b, 8);
    }
    h->differing = k->diff(h->from, h->to, size, h->mask);
    uint64_t packed = k->compress(h->packed, h->to, h->mask, size);
    return packed == h->differing ? 0 : -1;
}

/* A page's digest on the host: its kernels' XXH3-128 of each chunk, then
 * the tree (engine/DIGESTS.md), canonical form into out. */
static void host_page_digest(const kern_ops *k, const uint8_t *page, uint64_t size, uint8_t *level, uint8_t *above,
                             uint8_t out[DEV_DIGEST_BYTES]) {
    uint64_t n = (size + DEV_CHUNK_BYTES - 1) / DEV_CHUNK_BYTES;
    for (uint64_t c = 0; c < n; c++) {
        uint64_t at = c * DEV_CHUNK_BYTES, len = size - at < DEV_CHUNK_BYTES ? size - at : DEV_CHUNK_BYTES;
        h128 d = k->hash(page + at, len, SEED_CHUNK);
        put_h128(level + c * DEV_DIGEST_BYTES, d);
    }
    for (uint32_t levels = 0; n > 1 && levels < 64; levels++) {
        for (uint64_t p = 0; p < (n + 1) / 2; p++) dev_merkle_parent(level, n, p, dev_xxh_ksecret, above);
        uint8_t *t = level;
        level = above;
        above = t;
        n = (n + 1) / 2;
    }
    memcpy(out, level, DEV_DIGEST_BYTES);
}

/* Launches per sample: about 1 GiB of work, 2 to 2,000 launches. */
static uint64_t inner_of(const bench_env *env, uint64_t size, uint64_t bytes_per_sample) {
    uint64_t inner = bytes_per_sample / size;
    inner = inner < 2 ? 2 : inner > 2000 ? 2000 : inner;
    return env->quick ? (inner + 3) / 4 : inner;
}

static int bench_host_digest(const bench_env *env, const void *arg, bench_out *out) {
    const dev_kernel_arg *a = arg;
    const kern_ops *k;
    if (kern_select(MMSB_KERNEL_AUTO, &k) != 0) return bench_fail(out, "no kernels");
    half_bytes h;
    uint64_t tree_bytes = (a->size / DEV_CHUNK_BYTES + 1) * DEV_DIGEST_BYTES;
    uint8_t *level = malloc(tree_bytes), *above = malloc(tree_bytes), digest[DEV_DIGEST_BYTES], first[16];
    int rc = half_make(k, a->size, &h) == 0 && level != NULL && above != NULL ? 0 : bench_fail(out, "out of memory");
    uint64_t inner = inner_of(env, a->size, 256 * MiB);
    if (rc == 0) host_page_digest(k, h.to, a->size, level, above, first);
    for (uint32_t r = 0; r < env->reps && rc == 0; r++) {
        uint64_t t0 = bench_now_ns();
        for (uint64_t i = 0; i < inner; i++) host_page_digest(k, h.to, a->size, level, above, digest);
        double secs = (double)(bench_now_ns() - t0) / 1e9;
        rc = bench_sample(out, (double)a->size * (double)inner / secs / 1e9);
    }
    if (rc == 0 && memcmp(first, digest, sizeof digest) != 0) rc = bench_fail(out, "the digest changed");
    snprintf(out->check, sizeof out->check, "%s kernels; digest %02x%02x%02x%02x...", k->name, digest[0], digest[1],
             digest[2], digest[3]);
    free(level);
    free(above);
    half_free(&h);
    return rc;
}

#ifdef MMSB_BENCH_CUDA
#include <cuda_runtime_api.h>

#include "../gpu/launch.h"
#include "../gpu/stage.h"

typedef struct dev_run {
    uint8_t *page, *other, *staging, *mask, *level, *above, *digest;
    dev_item *items;
    uint32_t items_used;
    unsigned long long *count;
    cudaStream_t stream;
    cudaEvent_t t0, t1;
} dev_run;

static int cuda_failed(bench_out *out, cudaError_t e, const char *what) {
    return bench_fail(out, "CUDA: %s: %s", what, cudaGetErrorString(e));
}

/* The delta from `from` to `to` as the device location stages it (dense:
 * every mask bit set and to's bytes; sparse: the mask and packed bytes),
 * copied to the device with the page holding `from`. */
static cudaError_t stage_on_device(const half_bytes *h, bool sparse, dev_run *d) {
    uint64_t n = h->size, expected[1];
    uint64_t cap = n / 8 + n + 64, items_cap = 8 * cap / DEV_ITEM_BYTES + 1; /* what stage_init asks */
    uint8_t *bytes = malloc(cap), *ones = malloc(n / 8);
    dev_item *items = malloc(items_cap * sizeof *items);
    if (bytes == NULL || ones == NULL || items == NULL) {
        free(bytes), free(ones), free(items);
        return cudaErrorMemoryAllocation;
    }
    memset(ones, 0xFF, n / 8);
    gpu_stage s;
    stage_init(&s, bytes, cap, items, (uint32_t)items_cap, expected, 1);
    gpu_delta g = {.offset = 0, .len = n, .mask = sparse ? h->mask : ones, .payload = sparse ? h->packed : h->to,
                   .payload_len = sparse ? h->differing : n, .sparse = sparse, .changed = h->differing};
    bool staged = stage_delta(&s, &g);
    cudaError_t e = staged ? cudaSuccess : cudaErrorInvalidValue;
    if (e == cudaSuccess) e = cudaMalloc((void **)&d->staging, s.bytes_used);
    if (e == cudaSuccess) e = cudaMalloc((void **)&d->items, s.items_used * sizeof *items);
    if (e == cudaSuccess) e = cudaMemcpy(d->staging, bytes, s.bytes_used, cudaMemcpyHostToDevice);
    if (e == cudaSuccess) e = cudaMemcpy(d->items, items, s.items_used * sizeof *items, cudaMemcpyHostToDevice);
    d->items_used = s.items_used;
    free(bytes), free(ones), free(items);
    return e;
}

static cudaError_t dev_setup(const dev_kernel_arg *a, const half_bytes *h, dev_run *d) {
    uint64_t n = a->size, tree = (n / DEV_CHUNK_BYTES + 1) * DEV_DIGEST_BYTES;
    cudaError_t e = cudaSetDevice(0);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&d->stream, cudaStreamNonBlocking);
    if (e == cudaSuccess) e = cudaEventCreate(&d->t0);
    if (e == cudaSuccess) e = cudaEventCreate(&d->t1);
    if (e == cudaSuccess) e = cudaMalloc((void **)&d->page, n);
    if (e == cudaSuccess) e = cudaMalloc((void **)&d->count, sizeof *d->count);
    if (e == cudaSuccess) e = cudaMemcpy(d->page, a->kind == DK_DIGEST ? h->to : h->from, n, cudaMemcpyHostToDevice);
    if (e == cudaSuccess) e = cudaMemset(d->count, 0, sizeof *d->count);
    if (e == cudaSuccess && (a->kind == DK_APPLY_DENSE || a->kind == DK_APPLY_SPARSE)) {
        e = stage_on_device(h, a->kind == DK_APPLY_SPARSE, d);
    }
    if (e == cudaSuccess && a->kind == DK_DIFF) {
        e = cudaMalloc((void **)&d->other, n);
        if (e == cudaSuccess) e = cudaMalloc((void **)&d->mask, n / 8);
        if (e == cudaSuccess) e = cudaMemcpy(d->other, h->to, n, cudaMemcpyHostToDevice);
    }
    if (e == cudaSuccess && a->kind == DK_DIGEST) {
        e = cudaMalloc((void **)&d->level, tree);
        if (e == cudaSuccess) e = cudaMalloc((void **)&d->above, tree);
        if (e == cudaSuccess) e = cudaMalloc((void **)&d->digest, DEV_DIGEST_BYTES);
    }
    return e;
}

static void dev_free(dev_run *d) {
    void *bufs[] = {d->page, d->other, d->staging, d->mask, d->level, d->above, d->digest, d->items, d->count};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) (void)cudaFree(bufs[i]);
    if (d->t0 != NULL) (void)cudaEventDestroy(d->t0);
    if (d->t1 != NULL) (void)cudaEventDestroy(d->t1);
    if (d->stream != NULL) (void)cudaStreamDestroy(d->stream);
}

static cudaError_t dev_once(const dev_kernel_arg *a, dev_run *d) {
    switch (a->kind) {
    case DK_APPLY_DENSE:
    case DK_APPLY_SPARSE:
        return (cudaError_t)gpu_launch_items(d->page, d->staging, d->items, d->items_used, d->count, d->stream);
    case DK_DIFF: return (cudaError_t)gpu_launch_diff(d->page, d->other, a->size, d->mask, d->count, d->stream);
    case DK_DIGEST:
        return (cudaError_t)gpu_launch_page_digest(d->page, a->size, d->level, d->above, d->digest, d->stream);
    }
    return cudaErrorInvalidValue;
}

/* After the first launch: the count the host's kernels gave (apply, diff);
 * after all of them, the page equals `to` (apply), or the digest the
 * host's (digest). */
static int dev_check(const dev_kernel_arg *a, const half_bytes *h, const kern_ops *k, dev_run *d, bool first,
                     bench_out *out) {
    cudaError_t e = cudaStreamSynchronize(d->stream);
    if (e != cudaSuccess) return cuda_failed(out, e, "the kernels");
    if (a->kind == DK_DIGEST) {
        if (first) return 0;
        uint64_t tree = (a->size / DEV_CHUNK_BYTES + 1) * DEV_DIGEST_BYTES;
        uint8_t got[DEV_DIGEST_BYTES], want[DEV_DIGEST_BYTES], *level = malloc(tree), *above = malloc(tree);
        if (level == NULL || above == NULL) return free(level), free(above), bench_fail(out, "out of memory");
        host_page_digest(k, h->to, a->size, level, above, want);
        free(level), free(above);
        e = cudaMemcpy(got, d->digest, sizeof got, cudaMemcpyDeviceToHost);
        if (e != cudaSuccess) return cuda_failed(out, e, "reading the digest");
        return memcmp(got, want, sizeof got) == 0 ? 0 : bench_fail(out, "the device's digest is not the host's");
    }
    if (first) {
        unsigned long long count = 0;
        e = cudaMemcpy(&count, d->count, sizeof count, cudaMemcpyDeviceToHost);
        if (e != cudaSuccess) return cuda_failed(out, e, "reading the count");
        if (count != h->differing) return bench_fail(out, "the device counted %llu bytes, the host %llu", count,
                                                     (unsigned long long)h->differing);
        return 0;
    }
    uint8_t *back = malloc(a->kind == DK_DIFF ? a->size / 8 : a->size);
    if (back == NULL) return bench_fail(out, "out of memory");
    bool diff = a->kind == DK_DIFF;
    e = cudaMemcpy(back, diff ? d->mask : d->page, diff ? a->size / 8 : a->size, cudaMemcpyDeviceToHost);
    bool same = e == cudaSuccess && memcmp(back, diff ? h->mask : h->to, diff ? a->size / 8 : a->size) == 0;
    free(back);
    if (e != cudaSuccess) return cuda_failed(out, e, "reading the result");
    return same ? 0 : bench_fail(out, "the device's result is not the host's");
}

static int dev_measure(const bench_env *env, const dev_kernel_arg *a, dev_run *d, bench_out *out) {
    uint64_t inner = inner_of(env, a->size, 1024 * MiB);
    int rc = 0;
    for (uint32_t r = 0; r < env->reps && rc == 0; r++) {
        cudaError_t e = cudaEventRecord(d->t0, d->stream);
        for (uint64_t i = 0; i < inner && e == cudaSuccess; i++) e = dev_once(a, d);
        if (e == cudaSuccess) e = cudaEventRecord(d->t1, d->stream);
        if (e == cudaSuccess) e = cudaEventSynchronize(d->t1);
        float ms = 0;
        if (e == cudaSuccess) e = cudaEventElapsedTime(&ms, d->t0, d->t1);
        if (e != cudaSuccess) return cuda_failed(out, e, "timing the kernels");
        rc = bench_sample(out, (double)a->size * (double)inner / ((double)ms / 1e3) / 1e9);
    }
    return rc;
}

static int bench_device(const bench_env *env, const void *arg, bench_out *out) {
    const dev_kernel_arg *a = arg;
    int devices = 0;
    cudaError_t e = cudaGetDeviceCount(&devices);
    if (e != cudaSuccess || devices == 0) {
        out->skipped = true;
        snprintf(out->note, sizeof out->note, "no CUDA device (%s)",
                 e != cudaSuccess ? cudaGetErrorString(e) : "none found");
        return 0;
    }
    const kern_ops *k;
    if (kern_select(MMSB_KERNEL_AUTO, &k) != 0) return bench_fail(out, "no kernels");
    half_bytes h;
    dev_run d = {0};
    int rc = half_make(k, a->size, &h) == 0 ? 0 : bench_fail(out, "out of memory");
    if (rc == 0 && (e = dev_setup(a, &h, &d)) != cudaSuccess) rc = cuda_failed(out, e, "setting up");
    if (rc == 0 && (e = dev_once(a, &d)) != cudaSuccess) rc = cuda_failed(out, e, "the first launch");
    if (rc == 0) rc = dev_check(a, &h, k, &d, true, out);
    if (rc == 0) rc = dev_measure(env, a, &d, out);
    if (rc == 0) rc = dev_check(a, &h, k, &d, false, out);
    snprintf(out->check, sizeof out->check, "%llu of %llu bytes differ; checked against the host",
             (unsigned long long)h.differing, (unsigned long long)a->size);
    dev_free(&d);
    half_free(&h);
    return rc;
}
#else
static int bench_device(const bench_env *env, const void *arg, bench_out *out) {
    (void)env, (void)arg;
    out->skipped = true;
    snprintf(out->note, sizeof out->note, "this build has no CUDA (nvcc not found, or GPU=0)");
    return 0;
}
#endif

#define HOST_DIGEST(size_, name_)                                                                          \
    {"kernels/page_digest/" name_, "GB/s", bench_host_digest, &(const dev_kernel_arg){DK_DIGEST, size_}, NULL, \
     GOAL_NONE, 0, NULL, NULL, "gpu_kernels", "host: page digest", (double)(size_)}
#define DEVICE_ROW(kind_, what_, series_, size_, name_, goal_kind_, goal_)                                  \
    {"gpu/kernels/" what_ "/" name_, "GB/s", bench_device, &(const dev_kernel_arg){kind_, size_},            \
     "kernels/" what_ "/" name_, goal_kind_, goal_, (goal_kind_) == GOAL_NONE ? NULL : "issue 14", NULL,      \
     "gpu_kernels", "device: " series_, (double)(size_)}
/* A kind's rows by size; goal_kind_ and goal_ at 64 MiB. */
#define KIND_ROWS(kind_, what_, series_, goal_kind_, goal_)                                                 \
    DEVICE_ROW(kind_, what_, series_, 4 * KiB, "4KiB", GOAL_NONE, 0),                                       \
        DEVICE_ROW(kind_, what_, series_, 64 * KiB, "64KiB", GOAL_NONE, 0),                                 \
        DEVICE_ROW(kind_, what_, series_, 1 * MiB, "1MiB", GOAL_NONE, 0),                                   \
        DEVICE_ROW(kind_, what_, series_, 16 * MiB, "16MiB", GOAL_NONE, 0),                                 \
        DEVICE_ROW(kind_, what_, series_, 64 * MiB, "64MiB", goal_kind_, goal_),                            \
        DEVICE_ROW(kind_, what_, series_, 256 * MiB, "256MiB", GOAL_NONE, 0)

/* Issue 14's goals on an H200, at 64 MiB: masked apply of a device-resident
 * delta at 1.5 TB/s, a page digest at 1 TB/s. */
static const bench_def GPU_KERNELS[] = {
    HOST_DIGEST(4 * KiB, "4KiB"),
    HOST_DIGEST(64 * KiB, "64KiB"),
    HOST_DIGEST(1 * MiB, "1MiB"),
    HOST_DIGEST(16 * MiB, "16MiB"),
    HOST_DIGEST(64 * MiB, "64MiB"),
    HOST_DIGEST(256 * MiB, "256MiB"),
    KIND_ROWS(DK_APPLY_DENSE, "apply_dense", "apply dense", GOAL_AT_LEAST, 1500),
    KIND_ROWS(DK_APPLY_SPARSE, "apply_sparse_half", "apply sparse (half)", GOAL_NONE, 0),
    KIND_ROWS(DK_DIFF, "diff_half", "diff (half differ)", GOAL_NONE, 0),
    KIND_ROWS(DK_DIGEST, "page_digest", "page digest", GOAL_AT_LEAST, 1000),
};

const bench_def *bench_group_gpu_kernels(uint32_t *count) {
    *count = sizeof GPU_KERNELS / sizeof GPU_KERNELS[0];
    return GPU_KERNELS;
}
