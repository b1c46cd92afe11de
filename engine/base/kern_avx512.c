/*
 * kern_avx512.c - byte kernels for AVX-512 BW + VBMI2 (built with the
 * matching -m flags; only called when the CPU has them). A 64-byte block
 * maps to one 64-bit mask word, and masked loads and stores handle tails
 * without touching bytes past the range.
 */
#include <immintrin.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "kern.h"

/* The mask bits of a block of `bytes` (<= 64) bytes: a plain load for a
 * whole block, a short copy only for the tail. */
static __mmask64 load_mask(const uint8_t *mask, uint64_t bytes) {
    if (bytes == 64) return (__mmask64)load_u64(mask);
    uint64_t m = 0;
    memcpy(&m, mask, (bytes + 7) / 8);
    return (__mmask64)(m & low_bits_u64((uint32_t)bytes));
}

static uint64_t diff_avx512(const uint8_t *cur, const uint8_t *next, uint64_t len,
                            uint8_t *mask_out) {
    ASSERT((cur != NULL && next != NULL && mask_out != NULL) || len == 0);
    uint64_t changed = 0;
    uint64_t i = 0;
    for (; i + 64 <= len; i += 64) {
        __mmask64 k = _mm512_cmpneq_epi8_mask(_mm512_loadu_si512(cur + i),
                                              _mm512_loadu_si512(next + i));
        memcpy(mask_out + i / 8, &k, sizeof k);
        changed += (uint64_t)_mm_popcnt_u64(k);
    }
    if (i < len) {
        uint64_t rest = len - i;
        __mmask64 t = (__mmask64)low_bits_u64((uint32_t)rest);
        __mmask64 k = _mm512_mask_cmpneq_epi8_mask(t, _mm512_maskz_loadu_epi8(t, cur + i),
                                                   _mm512_maskz_loadu_epi8(t, next + i));
        memcpy(mask_out + i / 8, &k, (rest + 7) / 8);
        changed += (uint64_t)_mm_popcnt_u64(k);
    }
    ASSERT(changed <= len);
    return changed;
}

/* Stores only the bytes that change, so unchanged bytes are never rewritten. */
static uint64_t apply_dense_avx512(uint8_t *dst, const uint8_t *src, const uint8_t *mask,
                                   uint64_t len, bool store) {
    ASSERT((dst != NULL && src != NULL && mask != NULL) || len == 0);
    uint64_t changed = 0;
    for (uint64_t i = 0; i < len; i += 64) {
        __mmask64 m = load_mask(mask + i / 8, min_u64(64, len - i));
        if (m == 0) continue;
        __m512i s = _mm512_maskz_loadu_epi8(m, src + i);
        __m512i d = _mm512_maskz_loadu_epi8(m, dst + i);
        __mmask64 ne = _mm512_mask_cmpneq_epi8_mask(m, d, s);
        changed += (uint64_t)_mm_popcnt_u64(ne);
        if (store) _mm512_mask_storeu_epi8(dst + i, ne, s);
    }
    ASSERT(changed <= len);
    return changed;
}

/* One block of a sparse apply: expand the packed bytes to the mask's lanes,
 * store those that differ. Returns how many differed. */
static inline uint64_t sparse_block(uint8_t *dst, const uint8_t *packed, __mmask64 m, bool store) {
    __m512i s = _mm512_maskz_expandloadu_epi8(m, packed);
    __m512i d = _mm512_maskz_loadu_epi8(m, dst);
    __mmask64 ne = _mm512_mask_cmpneq_epi8_mask(m, d, s);
    if (store) _mm512_mask_storeu_epi8(dst, ne, s);
    return (uint64_t)_mm_popcnt_u64(ne);
}

/* Four blocks per step, with every load before any store: the payload
 * offsets come from four independent popcounts and the compiler need not
 * fear that a store feeds a later load, so the blocks overlap in the
 * pipeline (twice the speed of a one-block loop). */
static uint64_t apply_sparse_avx512(uint8_t *dst, const uint8_t *packed, uint64_t packed_len,
                                    const uint8_t *mask, uint64_t len, bool store) {
    ASSERT((dst != NULL && mask != NULL) || len == 0);
    ASSERT(packed != NULL || packed_len == 0);
    enum { WAYS = 4 };
    const uint8_t *packed_end = packed + packed_len;
    uint64_t changed = 0;
    uint64_t i = 0;
    for (; i + WAYS * 64 <= len; i += WAYS * 64) {
        __mmask64 m[WAYS], ne[WAYS];
        __m512i s[WAYS], d[WAYS];
        const uint8_t *at[WAYS];
        for (int w = 0; w < WAYS; w++) m[w] = (__mmask64)load_u64(mask + i / 8 + 8 * w);
        for (int w = 0; w < WAYS; w++) {
            at[w] = packed;
            packed += _mm_popcnt_u64(m[w]);
        }
        for (int w = 0; w < WAYS; w++) {
            s[w] = _mm512_maskz_expandloadu_epi8(m[w], at[w]);
            d[w] = _mm512_loadu_si512(dst + i + 64 * w); /* whole blocks here: no mask (2% at 4 KiB) */
        }
        for (int w = 0; w < WAYS; w++) {
            ne[w] = _mm512_mask_cmpneq_epi8_mask(m[w], d[w], s[w]);
            changed += (uint64_t)_mm_popcnt_u64(ne[w]);
        }
        for (int w = 0; store && w < WAYS; w++) _mm512_mask_storeu_epi8(dst + i + 64 * w, ne[w], s[w]);
    }
    for (; i < len; i += 64) {
        __mmask64 m = load_mask(mask + i / 8, min_u64(64, len - i));
        if (m == 0) continue;
        changed += sparse_block(dst + i, packed, m, store);
        packed += _mm_popcnt_u64(m);
    }
    ASSERT(packed == packed_end);
    return changed;
}

/* Compressed in a register, then stored under a mask of its first bytes:
 * the compress instruction's store-to-memory form is microcoded on AMD's
 * Zen 4, 30 times slower (3.1-3.6 us against 0.1 us for 4 KiB). */
static uint64_t compress_avx512(uint8_t *packed_out, const uint8_t *src,
                                const uint8_t *mask, uint64_t len) {
    ASSERT((packed_out != NULL && src != NULL && mask != NULL) || len == 0);
    uint8_t *out = packed_out;
    for (uint64_t i = 0; i < len; i += 64) {
        __mmask64 m = load_mask(mask + i / 8, min_u64(64, len - i));
        if (m == 0) continue;
        uint32_t count = (uint32_t)_mm_popcnt_u64(m);
        __m512i packed = _mm512_maskz_compress_epi8(m, _mm512_maskz_loadu_epi8(m, src + i));
        _mm512_mask_storeu_epi8(out, (__mmask64)low_bits_u64(count), packed);
        out += count;
    }
    ASSERT((uint64_t)(out - packed_out) <= len);
    return (uint64_t)(out - packed_out);
}

static h128 hash_avx512(const void *data, uint64_t len, uint64_t seed) {
    ASSERT(data != NULL || len == 0);
    XXH128_hash_t h = XXH3_128bits_withSeed(data, (size_t)len, seed);
    return (h128){.lo = h.low64, .hi = h.high64};
}

/* One step of a streaming XXH3-128 (the state's layout is the same in
 * every build of xxhash.h; only the accumulate loop differs). */
static void hash_update_avx512(void *xxh3_state, const void *data, uint64_t len) {
    ASSERT(xxh3_state != NULL && (data != NULL || len == 0));
    XXH3_128bits_update((XXH3_state_t *)xxh3_state, data, (size_t)len);
}

const kern_ops kern_avx512_ops = {
    .name = "avx512",
    .level = MMSB_KERNEL_AVX512,
    .diff = diff_avx512,
    .apply_dense = apply_dense_avx512,
    .apply_sparse = apply_sparse_avx512,
    .compress = compress_avx512,
    .popcount = kern_avx2_popcount,
    .hash = hash_avx512,
    .hash_update = hash_update_avx512,
};
