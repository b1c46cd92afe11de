/*
 * test_gpu.cu - the CUDA kernels (gpu/kernels.cu) against the same logic run
 * on the host (gpu/dev_logic.h, which test_devlogic checks against the CPU
 * kernels and xxHash): diff, dense and sparse apply with the old bytes,
 * compress, the lanewise operations, chunk digests and tree levels, on random inputs from 1 byte to
 * 256 MiB. Run by make test-gpu; with no CUDA device it says why and exits
 * 77 (skipped).
 */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../gpu/dev_logic.h"

__global__ void mmsb_k_diff(const uint8_t *cur, const uint8_t *next, uint64_t len, uint8_t *mask_out,
                            unsigned long long *count);
__global__ void mmsb_k_apply_dense(uint8_t *dst, const uint8_t *src, const uint8_t *mask, uint64_t len, bool store,
                                   uint8_t *old_out, unsigned long long *changed);
__global__ void mmsb_k_chunk_digests(const uint8_t *page, uint64_t size, uint8_t *digests_out);
__global__ void mmsb_k_merkle_level(const uint8_t *level, uint64_t n, uint8_t *above);
__global__ void mmsb_k_mask_counts(const uint8_t *mask, uint64_t units, uint64_t per_thread, uint64_t *block_sums);
__global__ void mmsb_k_offsets(uint64_t *sums, uint64_t n);
__global__ void mmsb_k_apply_sparse(uint8_t *dst, const uint8_t *packed, const uint8_t *mask, uint64_t len,
                                    uint64_t per_thread, const uint64_t *offsets, bool store, uint8_t *old_out,
                                    unsigned long long *changed);
__global__ void mmsb_k_compress(uint8_t *packed_out, const uint8_t *src, const uint8_t *mask, uint64_t len,
                                uint64_t per_thread, const uint64_t *offsets);
__global__ void mmsb_k_op(uint32_t op, const uint8_t *const *in, uint32_t n, uint64_t lo, uint64_t hi, uint8_t *out);

enum { THREADS = 256, BLOCKS_MAX = 4096, SKIPPED = 77, SCAN_THREADS = 256 };

static int failures;

#define CHECK_CUDA(call)                                                                                   \
    do {                                                                                                   \
        cudaError_t err_ = (call);                                                                         \
        if (err_ != cudaSuccess) {                                                                         \
            fprintf(stderr, "test_gpu: %s: %s (%s:%d)\n", #call, cudaGetErrorString(err_), __FILE__, __LINE__); \
            exit(1);                                                                                       \
        }                                                                                                  \
    } while (0)

static void expect(bool ok, const char *what, uint64_t size) {
    if (ok) return;
    fprintf(stderr, "test_gpu: FAIL %s at %llu bytes\n", what, (unsigned long long)size);
    failures++;
}

/* splitmix64, as the C tests' generator */
static uint64_t next_random(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void fill(uint64_t *state, uint8_t *p, uint64_t len) {
    for (uint64_t i = 0; i < len; i += 8) {
        uint64_t v = next_random(state);
        memcpy(p + i, &v, len - i < 8 ? len - i : 8);
    }
}

static uint32_t blocks_for(uint64_t units) {
    uint64_t b = (units + THREADS - 1) / THREADS;
    return (uint32_t)(b == 0 ? 1 : b > (uint64_t)BLOCKS_MAX ? (uint64_t)BLOCKS_MAX : b);
}

static void *dev_copy(const void *host, uint64_t len) {
    void *d;
    CHECK_CUDA(cudaMalloc(&d, len == 0 ? 1 : len));
    if (len > 0) CHECK_CUDA(cudaMemcpy(d, host, len, cudaMemcpyHostToDevice));
    return d;
}

static void host_copy(void *host, const void *d, uint64_t len) {
    if (len > 0) CHECK_CUDA(cudaMemcpy(host, d, len, cudaMemcpyDeviceToHost));
}

/* diff, then dense apply of that mask (counting, then storing with the old
 * bytes kept): the device's masks, counts and bytes equal the host's. */
static void check_diff_apply(uint64_t *rng, uint64_t size) {
    uint64_t units = (size + 7) / 8;
    uint8_t *a = (uint8_t *)malloc(size), *b = (uint8_t *)malloc(size), *mask = (uint8_t *)malloc(units);
    uint8_t *got = (uint8_t *)malloc(size > units ? size : units);
    fill(rng, a, size);
    memcpy(b, a, size);
    for (uint64_t i = 0; i < size; i += 1 + next_random(rng) % 5) b[i] ^= (uint8_t)(1 + next_random(rng) % 255);
    uint64_t want = 0;
    for (uint64_t t = 0; t < units; t++) want += dev_diff_unit(a, b, size, t, mask);
    uint8_t *da = (uint8_t *)dev_copy(a, size), *db = (uint8_t *)dev_copy(b, size), *dmask, *dold;
    unsigned long long *dcount, count = 0;
    CHECK_CUDA(cudaMalloc(&dmask, units));
    CHECK_CUDA(cudaMalloc(&dold, size));
    CHECK_CUDA(cudaMalloc(&dcount, sizeof count));
    CHECK_CUDA(cudaMemset(dcount, 0, sizeof count));
    mmsb_k_diff<<<blocks_for(units), THREADS>>>(da, db, size, dmask, dcount);
    CHECK_CUDA(cudaDeviceSynchronize());
    host_copy(&count, dcount, sizeof count);
    host_copy(got, dmask, units);
    expect(count == want && memcmp(got, mask, units) == 0, "diff", size);
    for (int store = 0; store <= 1; store++) {
        CHECK_CUDA(cudaMemset(dcount, 0, sizeof count));
        mmsb_k_apply_dense<<<blocks_for(units), THREADS>>>(da, db, dmask, size, store != 0, dold, dcount);
        CHECK_CUDA(cudaDeviceSynchronize());
        host_copy(&count, dcount, sizeof count);
        expect(count == want, store ? "apply (storing)" : "apply (counting)", size);
        host_copy(got, dold, size);
        expect(memcmp(got, a, size) == 0, "apply's old bytes", size);
    }
    host_copy(got, da, size);
    expect(memcmp(got, b, size) == 0, "apply's new bytes", size);
    cudaFree(da), cudaFree(db), cudaFree(dmask), cudaFree(dold), cudaFree(dcount);
    free(a), free(b), free(mask), free(got);
}

/* Sparse apply and compress in their three launches, with 1 and 16 mask
 * bytes per thread: the host's packed bytes, counts, old and new bytes. */
static void check_sparse(uint64_t *rng, uint64_t size) {
    uint64_t units = (size + 7) / 8;
    uint8_t *dst = (uint8_t *)malloc(size), *src = (uint8_t *)malloc(size), *mask = (uint8_t *)malloc(units);
    uint8_t *packed = (uint8_t *)malloc(size), *want = (uint8_t *)malloc(size), *got = (uint8_t *)malloc(size);
    fill(rng, dst, size);
    fill(rng, src, size);
    fill(rng, mask, units);
    if (size % 8 != 0) mask[units - 1] &= (uint8_t)((1u << (size % 8)) - 1);
    uint64_t packed_len = dev_compress_run(packed, src, mask, size, 0, units, 0);
    memcpy(want, dst, size);
    uint64_t want_changed = dev_apply_sparse_run(want, packed, mask, size, 0, units, 0, true, NULL);
    uint8_t *ddst = (uint8_t *)dev_copy(dst, size), *dsrc = (uint8_t *)dev_copy(src, size);
    uint8_t *dmask = (uint8_t *)dev_copy(mask, units), *dpacked, *dold;
    uint64_t *dsums;
    unsigned long long *dcount, count = 0;
    CHECK_CUDA(cudaMalloc(&dpacked, size));
    CHECK_CUDA(cudaMalloc(&dold, size));
    CHECK_CUDA(cudaMalloc(&dcount, sizeof count));
    const uint64_t pers[] = {1, 16};
    for (int k = 0; k < 2; k++) {
        uint64_t per = pers[k], blocks = (units + SCAN_THREADS * per - 1) / (SCAN_THREADS * per);
        CHECK_CUDA(cudaMalloc(&dsums, blocks * sizeof *dsums));
        mmsb_k_mask_counts<<<(uint32_t)blocks, SCAN_THREADS>>>(dmask, units, per, dsums);
        mmsb_k_offsets<<<1, SCAN_THREADS>>>(dsums, blocks);
        CHECK_CUDA(cudaMemset(dpacked, 0, size));
        mmsb_k_compress<<<(uint32_t)blocks, SCAN_THREADS>>>(dpacked, dsrc, dmask, size, per, dsums);
        CHECK_CUDA(cudaDeviceSynchronize());
        host_copy(got, dpacked, packed_len);
        expect(memcmp(got, packed, packed_len) == 0, "compress", size);
        CHECK_CUDA(cudaMemcpy(ddst, dst, size, cudaMemcpyHostToDevice));
        CHECK_CUDA(cudaMemset(dcount, 0, sizeof count));
        mmsb_k_apply_sparse<<<(uint32_t)blocks, SCAN_THREADS>>>(ddst, dpacked, dmask, size, per, dsums, true, dold,
                                                               dcount);
        CHECK_CUDA(cudaDeviceSynchronize());
        host_copy(&count, dcount, sizeof count);
        expect(count == want_changed, "sparse apply's count", size);
        host_copy(got, ddst, size);
        expect(memcmp(got, want, size) == 0, "sparse apply's new bytes", size);
        host_copy(got, dold, size);
        expect(memcmp(got, dst, size) == 0, "sparse apply's old bytes", size);
        cudaFree(dsums);
    }
    cudaFree(ddst), cudaFree(dsrc), cudaFree(dmask), cudaFree(dpacked), cudaFree(dold), cudaFree(dcount);
    free(dst), free(src), free(mask), free(packed), free(want), free(got);
}

/* A page digest: the chunk launch, then a launch per tree level. */
static void check_digest(uint64_t *rng, uint64_t size) {
    uint8_t *page = (uint8_t *)malloc(size), secret[DEV_XXH_SECRET_BYTES];
    fill(rng, page, size);
    dev_xxh_secret_for_seed(dev_xxh_ksecret, SEED_CHUNK, secret);
    uint64_t chunks = (size + DEV_CHUNK_BYTES - 1) / DEV_CHUNK_BYTES, n = chunks;
    uint8_t *level = (uint8_t *)malloc(chunks * DEV_DIGEST_BYTES);
    uint8_t *above = (uint8_t *)malloc(chunks * DEV_DIGEST_BYTES);
    uint8_t *got = (uint8_t *)malloc(chunks * DEV_DIGEST_BYTES);
    for (uint64_t c = 0; c < chunks; c++) dev_chunk_digest(page, size, c, dev_xxh_ksecret, secret, level + c * 16);
    uint8_t *dpage = (uint8_t *)dev_copy(page, size), *dlevel, *dabove;
    CHECK_CUDA(cudaMalloc(&dlevel, chunks * DEV_DIGEST_BYTES));
    CHECK_CUDA(cudaMalloc(&dabove, chunks * DEV_DIGEST_BYTES));
    mmsb_k_chunk_digests<<<blocks_for(chunks), THREADS>>>(dpage, size, dlevel);
    CHECK_CUDA(cudaDeviceSynchronize());
    host_copy(got, dlevel, chunks * DEV_DIGEST_BYTES);
    expect(memcmp(got, level, chunks * DEV_DIGEST_BYTES) == 0, "chunk digests", size);
    for (; n > 1; n = (n + 1) / 2) {
        for (uint64_t p = 0; p < (n + 1) / 2; p++) dev_merkle_parent(level, n, p, dev_xxh_ksecret, above);
        memcpy(level, above, (n + 1) / 2 * DEV_DIGEST_BYTES);
        mmsb_k_merkle_level<<<blocks_for((n + 1) / 2), THREADS>>>(dlevel, n, dabove);
        CHECK_CUDA(cudaDeviceSynchronize());
        CHECK_CUDA(cudaMemcpy(dlevel, dabove, (n + 1) / 2 * DEV_DIGEST_BYTES, cudaMemcpyDeviceToDevice));
    }
    host_copy(got, dlevel, DEV_DIGEST_BYTES);
    expect(memcmp(got, level, DEV_DIGEST_BYTES) == 0, "page digest", size);
    cudaFree(dpage), cudaFree(dlevel), cudaFree(dabove);
    free(page), free(level), free(above), free(got);
}

/* Each lanewise operation over 10 parents. */
static void check_ops(uint64_t *rng, uint64_t size) {
    enum { PARENTS = 10 };
    size = size / 8 * 8 + 8; /* whole u64 lanes */
    uint8_t *in[PARENTS], *din[PARENTS], **dptrs;
    for (int p = 0; p < PARENTS; p++) {
        in[p] = (uint8_t *)malloc(size);
        fill(rng, in[p], size);
        din[p] = (uint8_t *)dev_copy(in[p], size);
    }
    dptrs = (uint8_t **)dev_copy(din, sizeof din);
    uint8_t *want = (uint8_t *)malloc(size), *got = (uint8_t *)malloc(size), *dout;
    CHECK_CUDA(cudaMalloc(&dout, size));
    for (uint32_t op = MMSB_OP_XOR; op <= MMSB_OP_MAX_U64; op++) {
        for (uint64_t t = 0; t < size / 8; t++) dev_op_unit(op, in, PARENTS, 0, size, t, want);
        mmsb_k_op<<<blocks_for(size / 8), THREADS>>>(op, dptrs, PARENTS, 0, size, dout);
        CHECK_CUDA(cudaDeviceSynchronize());
        host_copy(got, dout, size);
        expect(memcmp(got, want, size) == 0, "lanewise operation", size);
    }
    for (int p = 0; p < PARENTS; p++) free(in[p]), cudaFree(din[p]);
    cudaFree(dptrs), cudaFree(dout);
    free(want), free(got);
}

int main(void) {
    int devices = 0;
    cudaError_t err = cudaGetDeviceCount(&devices);
    if (err != cudaSuccess || devices == 0) {
        printf("test_gpu: no CUDA device (%s); nothing run\n", err != cudaSuccess ? cudaGetErrorString(err) : "none");
        return SKIPPED;
    }
    cudaDeviceProp prop;
    CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
    printf("test_gpu: %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);
    uint64_t rng = 42;
    const uint64_t sizes[] = {1, 7, 8, 4095, 4096, 4097, 65537, (1ull << 20) + 3, 16ull << 20, 256ull << 20};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        check_diff_apply(&rng, sizes[k]);
        check_sparse(&rng, sizes[k]);
        check_digest(&rng, sizes[k]);
        if (sizes[k] <= (16ull << 20)) check_ops(&rng, sizes[k]);
        printf("test_gpu: %llu bytes checked\n", (unsigned long long)sizes[k]);
    }
    printf("test_gpu: %s\n", failures == 0 ? "all kernels agree with the host" : "FAILED");
    return failures == 0 ? 0 : 1;
}
