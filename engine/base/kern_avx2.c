/*
 * kern_avx2.c - byte kernels for AVX2 + BMI2 (built with -mavx2 -mbmi2
 * -mpopcnt; only called when the CPU has them).
 */
#include <immintrin.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "kern.h"

static uint64_t diff_avx2(const uint8_t *cur, const uint8_t *next, uint64_t len,
                          uint8_t *mask_out) {
    ASSERT((cur != NULL && next != NULL && mask_out != NULL) || len == 0);
    uint64_t changed = 0;
    uint64_t i = 0;
    for (; i + 32 <= len; i += 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(cur + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(next + i));
        uint32_t m = ~(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(a, b));
        memcpy(mask_out + i / 8, &m, sizeof m);
        changed += (uint64_t)__builtin_popcount(m);
    }
    return changed + kern_portable_diff(cur + i, next + i, len - i, mask_out + i / 8);
}

/* 32 mask bits -> 32 bytes of 0x00 / 0xFF. */
static __m256i expand_bits32(uint32_t m) {
    const __m256i pick = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)m), pick);
    return _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit);
}

static uint64_t apply_dense_avx2(uint8_t *dst, const uint8_t *src, const uint8_t *mask,
                                 uint64_t len, bool store) {
    ASSERT((dst != NULL && src != NULL && mask != NULL) || len == 0);
    uint64_t changed = 0;
    uint64_t i = 0;
    for (; i + 32 <= len; i += 32) {
        uint32_t m;
        memcpy(&m, mask + i / 8, sizeof m);
        if (m == 0) continue;
        __m256i sel = expand_bits32(m);
        __m256i d = _mm256_loadu_si256((const __m256i *)(dst + i));
        __m256i s = _mm256_loadu_si256((const __m256i *)(src + i));
        __m256i ne = _mm256_andnot_si256(_mm256_cmpeq_epi8(d, s), sel);
        changed += (uint64_t)__builtin_popcount((uint32_t)_mm256_movemask_epi8(ne));
        if (store) _mm256_storeu_si256((__m256i *)(dst + i), _mm256_blendv_epi8(d, s, sel));
    }
    return changed + kern_portable_apply_dense(dst + i, src + i, mask + i / 8, len - i, store);
}

/* Eight bytes at a time: pdep spreads the next packed bytes to the masked
 * positions. Wide loads of the payload run while 8 bytes remain in it. */
static uint64_t apply_sparse_avx2(uint8_t *dst, const uint8_t *packed, uint64_t packed_len,
                                  const uint8_t *mask, uint64_t len, bool store) {
    ASSERT((dst != NULL && mask != NULL) || len == 0);
    ASSERT(packed != NULL || packed_len == 0);
    const uint8_t *packed_end = packed + packed_len;
    uint64_t changed = 0;
    uint64_t i = 0;
    for (; i + 8 <= len && packed_end - packed >= 8; i += 8) {
        uint8_t m = mask[i / 8];
        if (m == 0) continue;
        uint64_t sel = _pdep_u64(m, 0x0101010101010101ull) * 0xFF;
        uint64_t placed = _pdep_u64(load_u64(packed), sel);
        uint64_t d = load_u64(dst + i);
        changed += (uint64_t)__builtin_popcount(nonzero_bytes8((d ^ placed) & sel));
        if (store) store_u64(dst + i, (d & ~sel) | placed);
        packed += __builtin_popcount(m);
    }
    ASSERT(packed <= packed_end);
    return changed + kern_portable_apply_sparse(dst + i, packed, (uint64_t)(packed_end - packed),
                                                mask + i / 8, len - i, store);
}

static uint64_t compress_avx2(uint8_t *packed_out, const uint8_t *src,
                              const uint8_t *mask, uint64_t len) {
    ASSERT((packed_out != NULL && src != NULL && mask != NULL) || len == 0);
    uint8_t *out = packed_out;
    uint64_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint8_t m = mask[i / 8];
        if (m == 0) continue;
        uint64_t sel = _pdep_u64(m, 0x0101010101010101ull) * 0xFF;
        uint64_t v = _pext_u64(load_u64(src + i), sel);
        uint32_t take = (uint32_t)__builtin_popcount(m);
        memcpy(out, &v, take);
        out += take;
    }
    out += kern_portable_compress(out, src + i, mask + i / 8, len - i);
    ASSERT((uint64_t)(out - packed_out) <= len);
    return (uint64_t)(out - packed_out);
}

/* Also the AVX-512 kernels' popcount: any AVX-512 CPU runs it. */
uint64_t kern_avx2_popcount(const uint8_t *mask, uint64_t mask_bytes) {
    ASSERT(mask != NULL || mask_bytes == 0);
    uint64_t count = 0;
    uint64_t i = 0;
    for (; i + 8 <= mask_bytes; i += 8) count += (uint64_t)_mm_popcnt_u64(load_u64(mask + i));
    for (; i < mask_bytes; i++) count += (uint64_t)__builtin_popcount(mask[i]);
    ASSERT(count <= 8 * mask_bytes);
    return count;
}

static h128 hash_avx2(const void *data, uint64_t len, uint64_t seed) {
    ASSERT(data != NULL || len == 0);
    XXH128_hash_t h = XXH3_128bits_withSeed(data, (size_t)len, seed);
    return (h128){.lo = h.low64, .hi = h.high64};
}

const kern_ops kern_avx2_ops = {
    .name = "avx2",
    .level = MMSB_KERNEL_AVX2,
    .diff = diff_avx2,
    .apply_dense = apply_dense_avx2,
    .apply_sparse = apply_sparse_avx2,
    .compress = compress_avx2,
    .popcount = kern_avx2_popcount,
    .hash = hash_avx2,
};
