/*
 * kernels.cu - the device kernels over the per-element logic of
 * dev_logic.h: grid-stride loops of one mask byte, eight page bytes, one
 * 4 KiB chunk or one tree node per thread, and for sparse deltas a block per
 * run of mask bytes.
 *
 * The device location launches the staged items, chunk-list digests and
 * operations through launch.h's C functions at the end of this file; the
 * GPU check (tests/test_gpu.cu) launches every kernel against the same
 * logic run on the host. The logic itself is tested on the host
 * (tests/test_devlogic.c) on every machine.
 */
#include <stdint.h>

#include <cuda_runtime.h>

#include "dev_logic.h"
#include "gpu.h"
#include "launch.h"

__constant__ uint8_t dev_ksecret_const[DEV_XXH_SECRET_BYTES] = {DEV_XXH_KSECRET_BYTES};

static __device__ uint64_t thread_first(void) { return (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; }
static __device__ uint64_t thread_step(void) { return (uint64_t)gridDim.x * blockDim.x; }

/* A warp's counts summed, then one atomic per warp. */
static __device__ void count_add(unsigned long long *total, uint32_t n) {
    for (int d = 16; d > 0; d /= 2) n += __shfl_down_sync(0xFFFFFFFFu, n, d);
    if ((threadIdx.x & 31u) == 0 && n != 0) atomicAdd(total, (unsigned long long)n);
}

/* Launched with a multiple of 32 threads per block: every lane of a warp
 * reaches count_add the same number of times. */
__global__ void mmsb_k_diff(const uint8_t *cur, const uint8_t *next, uint64_t len, uint8_t *mask_out,
                            unsigned long long *count) {
    uint64_t units = (len + 7) / 8, step = thread_step();
    for (uint64_t base = blockIdx.x * (uint64_t)blockDim.x; base < units; base += step) {
        uint64_t t = base + threadIdx.x;
        uint32_t n = t < units ? dev_diff_unit(cur, next, len, t, mask_out) : 0;
        count_add(count, n);
    }
}

__global__ void mmsb_k_apply_dense(uint8_t *dst, const uint8_t *src, const uint8_t *mask, uint64_t len, bool store,
                                   uint8_t *old_out, unsigned long long *changed) {
    uint64_t units = (len + 7) / 8, step = thread_step();
    for (uint64_t base = blockIdx.x * (uint64_t)blockDim.x; base < units; base += step) {
        uint64_t t = base + threadIdx.x;
        uint32_t n = t < units ? dev_apply_dense_unit(dst, src, mask, len, t, store, old_out) : 0;
        count_add(changed, n);
    }
}

/* ---- sparse deltas: three launches ------------------------------------------------------------
 *
 * A block of SCAN_THREADS threads owns SCAN_THREADS * per_thread
 * consecutive mask bytes. mmsb_k_mask_counts counts each block's set bits,
 * mmsb_k_offsets (one block) turns the counts into the blocks' offsets into
 * the packed bytes, and the apply or compress launch scans its threads'
 * own counts in shared memory to find each thread's offset. */
enum { SCAN_THREADS = 256 };

/* The inclusive prefix sum of one value per thread, in shared memory;
 * every thread of the block calls it. */
static __device__ uint64_t block_inclusive_scan(uint64_t mine) {
    __shared__ uint64_t buf[2][SCAN_THREADS];
    uint32_t from = 0;
    buf[0][threadIdx.x] = mine;
    __syncthreads();
    for (uint32_t d = 1; d < blockDim.x; d *= 2) {
        buf[from ^ 1][threadIdx.x] = dev_scan_step(buf[from], threadIdx.x, d);
        __syncthreads();
        from ^= 1;
    }
    uint64_t sum = buf[from][threadIdx.x];
    __syncthreads(); /* the buffers are free again when this returns */
    return sum;
}

static __device__ uint64_t thread_first_unit(uint64_t per_thread) {
    return ((uint64_t)blockIdx.x * blockDim.x + threadIdx.x) * per_thread;
}

/* Launched with SCAN_THREADS threads and one block per SCAN_THREADS *
 * per_thread mask bytes. */
__global__ void mmsb_k_mask_counts(const uint8_t *mask, uint64_t units, uint64_t per_thread, uint64_t *block_sums) {
    uint64_t sum = block_inclusive_scan(dev_units_count(mask, units, thread_first_unit(per_thread), per_thread));
    if (threadIdx.x == blockDim.x - 1) block_sums[blockIdx.x] = sum;
}

/* One block of SCAN_THREADS threads: sums[0 .. n) becomes its exclusive
 * prefix sum, each thread a run of it. */
__global__ void mmsb_k_offsets(uint64_t *sums, uint64_t n) {
    uint64_t per = (n + blockDim.x - 1) / blockDim.x, first = threadIdx.x * per, run = 0;
    for (uint64_t i = first; i < first + per && i < n; i++) run += sums[i];
    uint64_t at = block_inclusive_scan(run) - run;
    for (uint64_t i = first; i < first + per && i < n; i++) {
        uint64_t v = sums[i];
        sums[i] = at;
        at += v;
    }
}

/* Sparse apply, after the two launches above gave the blocks' offsets. */
__global__ void mmsb_k_apply_sparse(uint8_t *dst, const uint8_t *packed, const uint8_t *mask, uint64_t len,
                                    uint64_t per_thread, const uint64_t *offsets, bool store, uint8_t *old_out,
                                    unsigned long long *changed) {
    uint64_t units = (len + 7) / 8, first = thread_first_unit(per_thread);
    uint64_t mine = dev_units_count(mask, units, first, per_thread);
    uint64_t at = offsets[blockIdx.x] + block_inclusive_scan(mine) - mine;
    uint64_t n = dev_apply_sparse_run(dst, packed, mask, len, first, per_thread, at, store, old_out);
    count_add(changed, (uint32_t)n); /* at most 8 * per_thread */
}

__global__ void mmsb_k_compress(uint8_t *packed_out, const uint8_t *src, const uint8_t *mask, uint64_t len,
                                uint64_t per_thread, const uint64_t *offsets) {
    uint64_t units = (len + 7) / 8, first = thread_first_unit(per_thread);
    uint64_t mine = dev_units_count(mask, units, first, per_thread);
    uint64_t at = offsets[blockIdx.x] + block_inclusive_scan(mine) - mine;
    dev_compress_run(packed_out, src, mask, len, first, per_thread, at);
}

/* digests_out: 16 bytes per chunk, the canonical (big-endian) form of
 * engine/DIGESTS.md. One thread per chunk; the chunk seed's secret is made
 * once per block. */
__global__ void mmsb_k_chunk_digests(const uint8_t *page, uint64_t size, uint8_t *digests_out) {
    __shared__ uint8_t seeded[DEV_XXH_SECRET_BYTES];
    if (threadIdx.x == 0) dev_xxh_secret_for_seed(dev_ksecret_const, SEED_CHUNK, seeded);
    __syncthreads();
    uint64_t chunks = (size + DEV_CHUNK_BYTES - 1) / DEV_CHUNK_BYTES;
    for (uint64_t c = thread_first(); c < chunks; c += thread_step()) {
        dev_chunk_digest(page, size, c, dev_ksecret_const, seeded, digests_out + DEV_DIGEST_BYTES * c);
    }
}

/* One level of a page's chunk tree: (n + 1) / 2 parents of n nodes. A page
 * digest is the chunk digests, then one launch per level up to one node. */
__global__ void mmsb_k_merkle_level(const uint8_t *level, uint64_t n, uint8_t *above) {
    for (uint64_t p = thread_first(); p < (n + 1) / 2; p += thread_step()) {
        dev_merkle_parent(level, n, p, dev_ksecret_const, above);
    }
}

__global__ void mmsb_k_op(uint32_t op, const uint8_t *const *in, uint32_t n, uint64_t lo, uint64_t hi, uint8_t *out) {
    uint64_t units = (hi - lo + 7) / 8;
    for (uint64_t t = thread_first(); t < units; t += thread_step()) dev_op_unit(op, in, n, lo, hi, t, out);
}

/* ---- the device location's launches ---------------------------------------------------------- */

/* A block per item (grid-stride over the items): ZERO, COPY and DENSE
 * items a unit per thread in turn, so that neighbouring threads touch
 * neighbouring words; a SPARSE item a run of units per thread, its packed
 * offset from a block scan. Every branch is the same for the whole block
 * (the item's kind), as __syncthreads and count_add need. Launched with
 * SCAN_THREADS threads. */
__global__ void mmsb_k_apply_items(uint8_t *mem, const uint8_t *staging, const dev_item *items, uint32_t n,
                                   unsigned long long *counts) {
    for (uint32_t i = blockIdx.x; i < n; i += gridDim.x) {
        dev_item it = items[i];
        uint64_t units = dev_item_units(&it), changed = 0;
        if (it.kind == DEV_ITEM_SPARSE) {
            uint64_t per = (units + blockDim.x - 1) / blockDim.x, first = threadIdx.x * per;
            uint64_t mine = dev_item_count(staging, &it, first, per);
            uint64_t at = block_inclusive_scan(mine) - mine;
            changed = dev_item_run(mem, staging, &it, first, per, at);
        } else {
            for (uint64_t t = threadIdx.x; t < units; t += blockDim.x) {
                changed += dev_item_run(mem, staging, &it, t, 1, 0);
            }
        }
        count_add(&counts[it.op], (uint32_t)changed); /* at most DEV_ITEM_BYTES */
    }
}

__global__ void mmsb_k_chunk_list(const uint8_t *mem, const uint64_t *refs, uint32_t count, uint8_t *digests_out) {
    __shared__ uint8_t seeded[DEV_XXH_SECRET_BYTES];
    if (threadIdx.x == 0) dev_xxh_secret_for_seed(dev_ksecret_const, SEED_CHUNK, seeded);
    __syncthreads();
    for (uint64_t i = thread_first(); i < count; i += thread_step()) {
        const uint64_t *r = refs + 3 * i; /* page offset, page size, chunk */
        dev_chunk_digest(mem + r[0], r[1], r[2], dev_ksecret_const, seeded, digests_out + DEV_DIGEST_BYTES * i);
    }
}

enum { ITEM_BLOCKS_MAX = 8192, LIST_THREADS = 32, OP_THREADS = 256, OP_BLOCKS_MAX = 4096 };

extern "C" int gpu_launch_items(uint8_t *mem, const uint8_t *staging, const dev_item *items, uint32_t n,
                                unsigned long long *counts, void *stream) {
    uint32_t blocks = n < (uint32_t)ITEM_BLOCKS_MAX ? n : (uint32_t)ITEM_BLOCKS_MAX;
    if (blocks == 0) return 0;
    mmsb_k_apply_items<<<blocks, SCAN_THREADS, 0, (cudaStream_t)stream>>>(mem, staging, items, n, counts);
    return (int)cudaGetLastError();
}

extern "C" int gpu_launch_chunk_list(const uint8_t *mem, const uint64_t *refs, uint32_t count, uint8_t *digests,
                                     void *stream) {
    if (count == 0) return 0;
    uint32_t blocks = (count + LIST_THREADS - 1) / LIST_THREADS;
    mmsb_k_chunk_list<<<blocks, LIST_THREADS, 0, (cudaStream_t)stream>>>(mem, refs, count, digests);
    return (int)cudaGetLastError();
}

extern "C" int gpu_launch_op(uint32_t op, const uint8_t *const *in, uint32_t n, uint64_t lo, uint64_t hi,
                             uint8_t *out, void *stream) {
    uint64_t units = (hi - lo + 7) / 8, blocks = (units + OP_THREADS - 1) / OP_THREADS;
    if (units == 0) return 0;
    if (blocks > OP_BLOCKS_MAX) blocks = OP_BLOCKS_MAX;
    mmsb_k_op<<<(uint32_t)blocks, OP_THREADS, 0, (cudaStream_t)stream>>>(op, in, n, lo, hi, out);
    return (int)cudaGetLastError();
}

enum { DIFF_THREADS = 256, DIFF_BLOCKS_MAX = 4096 };

extern "C" int gpu_launch_diff(const uint8_t *cur, const uint8_t *next, uint64_t len, uint8_t *mask_out,
                               unsigned long long *count, void *stream) {
    uint64_t units = (len + 7) / 8, blocks = (units + DIFF_THREADS - 1) / DIFF_THREADS;
    if (units == 0) return 0;
    if (blocks > DIFF_BLOCKS_MAX) blocks = DIFF_BLOCKS_MAX;
    mmsb_k_diff<<<(uint32_t)blocks, DIFF_THREADS, 0, (cudaStream_t)stream>>>(cur, next, len, mask_out, count);
    return (int)cudaGetLastError();
}

extern "C" int gpu_launch_page_digest(const uint8_t *page, uint64_t size, uint8_t *level, uint8_t *above,
                                      uint8_t *digest_out, void *stream) {
    cudaStream_t st = (cudaStream_t)stream;
    uint64_t n = (size + DEV_CHUNK_BYTES - 1) / DEV_CHUNK_BYTES;
    uint32_t blocks = (uint32_t)((n + LIST_THREADS - 1) / LIST_THREADS);
    mmsb_k_chunk_digests<<<blocks, LIST_THREADS, 0, st>>>(page, size, level);
    cudaError_t e = cudaGetLastError();
    for (uint32_t levels = 0; n > 1 && e == cudaSuccess; levels++) { /* about log2(chunks) levels */
        uint64_t parents = (n + 1) / 2;
        mmsb_k_merkle_level<<<(uint32_t)((parents + OP_THREADS - 1) / OP_THREADS), OP_THREADS, 0, st>>>(level, n,
                                                                                                         above);
        e = cudaGetLastError();
        uint8_t *t = level;
        level = above;
        above = t;
        n = parents;
        if (levels >= 64) e = cudaErrorInvalidValue; /* more levels than a 64-bit size has */
    }
    if (e == cudaSuccess) e = cudaMemcpyAsync(digest_out, level, DEV_DIGEST_BYTES, cudaMemcpyDeviceToDevice, st);
    return (int)e;
}

