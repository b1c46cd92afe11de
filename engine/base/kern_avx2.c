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

/* EXPAND_CTRL[m]: the pshufb control that moves packed bytes 0, 1, ... to
 * the positions of m's set bits (bit j -> byte j) and zeroes the others
 * (0x80). Byte j of entry m is the number of set bits of m below j when bit
 * j is set. A table, not pdep: pdep is microcoded (hundreds of cycles) on
 * some AVX2 CPUs, and one byte at a time either way. */
static const uint64_t EXPAND_CTRL[256] = {
    0x8080808080808080ull, 0x8080808080808000ull, 0x8080808080800080ull, 0x8080808080800100ull,
    0x8080808080008080ull, 0x8080808080018000ull, 0x8080808080010080ull, 0x8080808080020100ull,
    0x8080808000808080ull, 0x8080808001808000ull, 0x8080808001800080ull, 0x8080808002800100ull,
    0x8080808001008080ull, 0x8080808002018000ull, 0x8080808002010080ull, 0x8080808003020100ull,
    0x8080800080808080ull, 0x8080800180808000ull, 0x8080800180800080ull, 0x8080800280800100ull,
    0x8080800180008080ull, 0x8080800280018000ull, 0x8080800280010080ull, 0x8080800380020100ull,
    0x8080800100808080ull, 0x8080800201808000ull, 0x8080800201800080ull, 0x8080800302800100ull,
    0x8080800201008080ull, 0x8080800302018000ull, 0x8080800302010080ull, 0x8080800403020100ull,
    0x8080008080808080ull, 0x8080018080808000ull, 0x8080018080800080ull, 0x8080028080800100ull,
    0x8080018080008080ull, 0x8080028080018000ull, 0x8080028080010080ull, 0x8080038080020100ull,
    0x8080018000808080ull, 0x8080028001808000ull, 0x8080028001800080ull, 0x8080038002800100ull,
    0x8080028001008080ull, 0x8080038002018000ull, 0x8080038002010080ull, 0x8080048003020100ull,
    0x8080010080808080ull, 0x8080020180808000ull, 0x8080020180800080ull, 0x8080030280800100ull,
    0x8080020180008080ull, 0x8080030280018000ull, 0x8080030280010080ull, 0x8080040380020100ull,
    0x8080020100808080ull, 0x8080030201808000ull, 0x8080030201800080ull, 0x8080040302800100ull,
    0x8080030201008080ull, 0x8080040302018000ull, 0x8080040302010080ull, 0x8080050403020100ull,
    0x8000808080808080ull, 0x8001808080808000ull, 0x8001808080800080ull, 0x8002808080800100ull,
    0x8001808080008080ull, 0x8002808080018000ull, 0x8002808080010080ull, 0x8003808080020100ull,
    0x8001808000808080ull, 0x8002808001808000ull, 0x8002808001800080ull, 0x8003808002800100ull,
    0x8002808001008080ull, 0x8003808002018000ull, 0x8003808002010080ull, 0x8004808003020100ull,
    0x8001800080808080ull, 0x8002800180808000ull, 0x8002800180800080ull, 0x8003800280800100ull,
    0x8002800180008080ull, 0x8003800280018000ull, 0x8003800280010080ull, 0x8004800380020100ull,
    0x8002800100808080ull, 0x8003800201808000ull, 0x8003800201800080ull, 0x8004800302800100ull,
    0x8003800201008080ull, 0x8004800302018000ull, 0x8004800302010080ull, 0x8005800403020100ull,
    0x8001008080808080ull, 0x8002018080808000ull, 0x8002018080800080ull, 0x8003028080800100ull,
    0x8002018080008080ull, 0x8003028080018000ull, 0x8003028080010080ull, 0x8004038080020100ull,
    0x8002018000808080ull, 0x8003028001808000ull, 0x8003028001800080ull, 0x8004038002800100ull,
    0x8003028001008080ull, 0x8004038002018000ull, 0x8004038002010080ull, 0x8005048003020100ull,
    0x8002010080808080ull, 0x8003020180808000ull, 0x8003020180800080ull, 0x8004030280800100ull,
    0x8003020180008080ull, 0x8004030280018000ull, 0x8004030280010080ull, 0x8005040380020100ull,
    0x8003020100808080ull, 0x8004030201808000ull, 0x8004030201800080ull, 0x8005040302800100ull,
    0x8004030201008080ull, 0x8005040302018000ull, 0x8005040302010080ull, 0x8006050403020100ull,
    0x0080808080808080ull, 0x0180808080808000ull, 0x0180808080800080ull, 0x0280808080800100ull,
    0x0180808080008080ull, 0x0280808080018000ull, 0x0280808080010080ull, 0x0380808080020100ull,
    0x0180808000808080ull, 0x0280808001808000ull, 0x0280808001800080ull, 0x0380808002800100ull,
    0x0280808001008080ull, 0x0380808002018000ull, 0x0380808002010080ull, 0x0480808003020100ull,
    0x0180800080808080ull, 0x0280800180808000ull, 0x0280800180800080ull, 0x0380800280800100ull,
    0x0280800180008080ull, 0x0380800280018000ull, 0x0380800280010080ull, 0x0480800380020100ull,
    0x0280800100808080ull, 0x0380800201808000ull, 0x0380800201800080ull, 0x0480800302800100ull,
    0x0380800201008080ull, 0x0480800302018000ull, 0x0480800302010080ull, 0x0580800403020100ull,
    0x0180008080808080ull, 0x0280018080808000ull, 0x0280018080800080ull, 0x0380028080800100ull,
    0x0280018080008080ull, 0x0380028080018000ull, 0x0380028080010080ull, 0x0480038080020100ull,
    0x0280018000808080ull, 0x0380028001808000ull, 0x0380028001800080ull, 0x0480038002800100ull,
    0x0380028001008080ull, 0x0480038002018000ull, 0x0480038002010080ull, 0x0580048003020100ull,
    0x0280010080808080ull, 0x0380020180808000ull, 0x0380020180800080ull, 0x0480030280800100ull,
    0x0380020180008080ull, 0x0480030280018000ull, 0x0480030280010080ull, 0x0580040380020100ull,
    0x0380020100808080ull, 0x0480030201808000ull, 0x0480030201800080ull, 0x0580040302800100ull,
    0x0480030201008080ull, 0x0580040302018000ull, 0x0580040302010080ull, 0x0680050403020100ull,
    0x0100808080808080ull, 0x0201808080808000ull, 0x0201808080800080ull, 0x0302808080800100ull,
    0x0201808080008080ull, 0x0302808080018000ull, 0x0302808080010080ull, 0x0403808080020100ull,
    0x0201808000808080ull, 0x0302808001808000ull, 0x0302808001800080ull, 0x0403808002800100ull,
    0x0302808001008080ull, 0x0403808002018000ull, 0x0403808002010080ull, 0x0504808003020100ull,
    0x0201800080808080ull, 0x0302800180808000ull, 0x0302800180800080ull, 0x0403800280800100ull,
    0x0302800180008080ull, 0x0403800280018000ull, 0x0403800280010080ull, 0x0504800380020100ull,
    0x0302800100808080ull, 0x0403800201808000ull, 0x0403800201800080ull, 0x0504800302800100ull,
    0x0403800201008080ull, 0x0504800302018000ull, 0x0504800302010080ull, 0x0605800403020100ull,
    0x0201008080808080ull, 0x0302018080808000ull, 0x0302018080800080ull, 0x0403028080800100ull,
    0x0302018080008080ull, 0x0403028080018000ull, 0x0403028080010080ull, 0x0504038080020100ull,
    0x0302018000808080ull, 0x0403028001808000ull, 0x0403028001800080ull, 0x0504038002800100ull,
    0x0403028001008080ull, 0x0504038002018000ull, 0x0504038002010080ull, 0x0605048003020100ull,
    0x0302010080808080ull, 0x0403020180808000ull, 0x0403020180800080ull, 0x0504030280800100ull,
    0x0403020180008080ull, 0x0504030280018000ull, 0x0504030280010080ull, 0x0605040380020100ull,
    0x0403020100808080ull, 0x0504030201808000ull, 0x0504030201800080ull, 0x0605040302800100ull,
    0x0504030201008080ull, 0x0605040302018000ull, 0x0605040302010080ull, 0x0706050403020100ull,
};

/* Two table entries (or any two 8-byte loads) as one 16-byte vector. */
static inline __m128i two_u64(const void *lo, const void *hi) {
    __m128d v = _mm_castsi128_pd(_mm_loadl_epi64((const __m128i *)lo));
    return _mm_castpd_si128(_mm_loadh_pd(v, (const double *)hi));
}

/* Thirty-two bytes at a time, in four groups of eight (one mask byte each):
 * each group's new values come from an 8-byte load at its own packed
 * offset, so every group's shuffle control is its table entry as it is
 * (plus a constant 8 in the upper half of a lane), and one pshufb places
 * them all. The control's high bit marks the bytes that keep their value
 * (the blend's selector), and the bytes that change are counted from a
 * compare. 51 instructions per 32 bytes (counted in the assembly),
 * against 55 when each 16-byte half read its packed bytes in one
 * load (its upper group's control moved by a popcount times 0x01..01 in a
 * general register) and the kept bytes were expanded from the mask bits
 * (10.5 -> 12.7-13.1 GB/s at 4 KiB, bench/README.md). */
static uint64_t apply_sparse_avx2(uint8_t *dst, const uint8_t *packed, uint64_t packed_len,
                                  const uint8_t *mask, uint64_t len, bool store) {
    ASSERT((dst != NULL && mask != NULL) || len == 0);
    ASSERT(packed != NULL || packed_len == 0);
    const uint8_t *packed_end = packed + packed_len;
    /* Groups 1 and 3 read from byte 8 of their lane: their indexes + 8
     * (an index stays < 16; 0x80 + 8 keeps the high bit). */
    const __m256i odd_groups = _mm256_setr_epi64x(0, 0x0808080808080808ll, 0, 0x0808080808080808ll);
    uint64_t changed = 0;
    uint64_t i = 0;
    for (; i + 32 <= len && packed_end - packed >= 32; i += 32) {
        uint32_t m;
        memcpy(&m, mask + i / 8, sizeof m);
        if (m == 0) continue;
        uint32_t at1 = (uint32_t)__builtin_popcount(m & 0xFFu);
        uint32_t at2 = (uint32_t)__builtin_popcount(m & 0xFFFFu);
        uint32_t at3 = (uint32_t)__builtin_popcount(m & 0xFFFFFFu);
        __m256i ctrl = _mm256_set_m128i(two_u64(&EXPAND_CTRL[(m >> 16) & 0xFF], &EXPAND_CTRL[m >> 24]),
                                        two_u64(&EXPAND_CTRL[m & 0xFF], &EXPAND_CTRL[(m >> 8) & 0xFF]));
        ctrl = _mm256_add_epi8(ctrl, odd_groups);
        __m256i src = _mm256_set_m128i(two_u64(packed + at2, packed + at3), two_u64(packed, packed + at1));
        __m256i placed = _mm256_shuffle_epi8(src, ctrl);
        __m256i d = _mm256_loadu_si256((const __m256i *)(dst + i));
        __m256i next = _mm256_blendv_epi8(placed, d, ctrl);
        uint32_t same = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(d, next));
        changed += (uint64_t)__builtin_popcount(~same);
        if (store) _mm256_storeu_si256((__m256i *)(dst + i), next);
        packed += __builtin_popcount(m);
    }
    ASSERT(packed <= packed_end);
    return changed + kern_portable_apply_sparse(dst + i, packed, (uint64_t)(packed_end - packed),
                                                mask + i / 8, len - i, store);
}

/* The bytes of src[0, 8) that mask byte m selects, packed at out. */
static uint8_t *compress8(uint8_t *out, const uint8_t *src, uint8_t m) {
    uint64_t sel = _pdep_u64(m, 0x0101010101010101ull) * 0xFF;
    uint64_t v = _pext_u64(load_u64(src), sel);
    uint32_t take = (uint32_t)__builtin_popcount(m);
    memcpy(out, &v, take); /* no further: out may end a log record, whose padding stays zero */
    return out + take;
}

static uint64_t compress_avx2(uint8_t *packed_out, const uint8_t *src,
                              const uint8_t *mask, uint64_t len) {
    ASSERT((packed_out != NULL && src != NULL && mask != NULL) || len == 0);
    uint8_t *out = packed_out;
    uint64_t i = 0;
    /* 64 bytes per mask word: a derived page's change is mostly runs of
     * unchanged (or wholly changed) bytes. */
    for (; i + 64 <= len; i += 64) {
        uint64_t word = load_u64(mask + i / 8);
        if (word == 0) continue;
        if (word == UINT64_MAX) {
            memcpy(out, src + i, 64);
            out += 64;
            continue;
        }
        for (uint32_t k = 0; k < 8; k++, word >>= 8) {
            if ((uint8_t)word != 0) out = compress8(out, src + i + 8 * k, (uint8_t)word);
        }
    }
    for (; i + 8 <= len; i += 8) {
        if (mask[i / 8] != 0) out = compress8(out, src + i, mask[i / 8]);
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

/* One step of a streaming XXH3-128 (the state's layout is the same in
 * every build of xxhash.h; only the accumulate loop differs). */
static void hash_update_avx2(void *xxh3_state, const void *data, uint64_t len) {
    ASSERT(xxh3_state != NULL && (data != NULL || len == 0));
    XXH3_128bits_update((XXH3_state_t *)xxh3_state, data, (size_t)len);
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
    .hash_update = hash_update_avx2,
};
