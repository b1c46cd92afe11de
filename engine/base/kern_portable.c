/*
 * kern_portable.c - byte kernels in plain C, eight bytes at a time. They are
 * the reference the vectorised kernels are tested against, and they handle
 * the vectorised kernels' tails.
 */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "kern.h"

uint64_t kern_portable_diff(const uint8_t *cur, const uint8_t *next, uint64_t len,
                            uint8_t *mask_out) {
    ASSERT((cur != NULL && next != NULL && mask_out != NULL) || len == 0);
    uint64_t changed = 0;
    uint64_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint8_t m = nonzero_bytes8(load_u64(cur + i) ^ load_u64(next + i));
        mask_out[i / 8] = m;
        changed += (uint64_t)__builtin_popcount(m);
    }
    if (i < len) {
        uint8_t m = 0;
        for (uint64_t j = 0; i + j < len; j++) {
            m |= (uint8_t)((cur[i + j] != next[i + j]) << j);
        }
        mask_out[i / 8] = m;
        changed += (uint64_t)__builtin_popcount(m);
    }
    ASSERT(changed <= len);
    return changed;
}

uint64_t kern_portable_apply_dense(uint8_t *dst, const uint8_t *src,
                                   const uint8_t *mask, uint64_t len, bool store) {
    ASSERT((dst != NULL && src != NULL && mask != NULL) || len == 0);
    uint64_t changed = 0;
    uint64_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint8_t m = mask[i / 8];
        if (m == 0) continue;
        uint64_t sel = spread_bits8(m);
        uint64_t d = load_u64(dst + i);
        uint64_t s = load_u64(src + i);
        changed += (uint64_t)__builtin_popcount(nonzero_bytes8((d ^ s) & sel));
        if (store) store_u64(dst + i, (d & ~sel) | (s & sel));
    }
    if (i < len) {
        uint8_t m = (uint8_t)(mask[i / 8] & low_bits_u64((uint32_t)(len - i)));
        for (uint32_t j = 0; m != 0; j++, m >>= 1) {
            if ((m & 1u) == 0) continue;
            changed += dst[i + j] != src[i + j];
            if (store) dst[i + j] = src[i + j];
        }
    }
    ASSERT(changed <= len);
    return changed;
}

uint64_t kern_portable_apply_sparse(uint8_t *dst, const uint8_t *packed, uint64_t packed_len,
                                    const uint8_t *mask, uint64_t len, bool store) {
    ASSERT((dst != NULL && mask != NULL) || len == 0);
    ASSERT(packed != NULL || packed_len == 0);
    const uint8_t *packed_end = packed + packed_len;
    uint64_t changed = 0;
    for (uint64_t i = 0; i < len; i += 8) {
        uint8_t m = mask[i / 8];
        if (len - i < 8) m &= (uint8_t)low_bits_u64((uint32_t)(len - i));
        if (m == 0xFF) {
            uint64_t d = load_u64(dst + i);
            uint64_t s = load_u64(packed);
            changed += (uint64_t)__builtin_popcount(nonzero_bytes8(d ^ s));
            if (store) store_u64(dst + i, s);
            packed += 8;
            continue;
        }
        while (m != 0) {
            uint32_t j = (uint32_t)__builtin_ctz(m);
            m &= (uint8_t)(m - 1);
            changed += dst[i + j] != *packed;
            if (store) dst[i + j] = *packed;
            packed++;
        }
    }
    ASSERT(packed == packed_end);
    return changed;
}

uint64_t kern_portable_compress(uint8_t *packed_out, const uint8_t *src,
                                const uint8_t *mask, uint64_t len) {
    ASSERT((packed_out != NULL && src != NULL && mask != NULL) || len == 0);
    uint8_t *out = packed_out;
    for (uint64_t i = 0; i < len; i += 8) {
        uint8_t m = mask[i / 8];
        if (len - i < 8) m &= (uint8_t)low_bits_u64((uint32_t)(len - i));
        if (m == 0xFF) {
            memcpy(out, src + i, 8);
            out += 8;
            continue;
        }
        while (m != 0) {
            uint32_t j = (uint32_t)__builtin_ctz(m);
            m &= (uint8_t)(m - 1);
            *out++ = src[i + j];
        }
    }
    ASSERT((uint64_t)(out - packed_out) <= len);
    return (uint64_t)(out - packed_out);
}

uint64_t kern_portable_popcount(const uint8_t *mask, uint64_t mask_bytes) {
    ASSERT(mask != NULL || mask_bytes == 0);
    uint64_t count = 0;
    uint64_t i = 0;
    for (; i + 8 <= mask_bytes; i += 8) count += (uint64_t)__builtin_popcountll(load_u64(mask + i));
    for (; i < mask_bytes; i++) count += (uint64_t)__builtin_popcount(mask[i]);
    ASSERT(count <= 8 * mask_bytes);
    return count;
}

static h128 hash_portable(const void *data, uint64_t len, uint64_t seed) {
    ASSERT(data != NULL || len == 0);
    XXH128_hash_t h = XXH3_128bits_withSeed(data, (size_t)len, seed);
    return (h128){.lo = h.low64, .hi = h.high64};
}

/* One step of a streaming XXH3-128 (the state's layout is the same in
 * every build of xxhash.h; only the accumulate loop differs). */
static void hash_update_portable(void *xxh3_state, const void *data, uint64_t len) {
    ASSERT(xxh3_state != NULL && (data != NULL || len == 0));
    XXH3_128bits_update((XXH3_state_t *)xxh3_state, data, (size_t)len);
}

const kern_ops kern_portable_ops = {
    .name = "portable",
    .level = MMSB_KERNEL_PORTABLE,
    .diff = kern_portable_diff,
    .apply_dense = kern_portable_apply_dense,
    .apply_sparse = kern_portable_apply_sparse,
    .compress = kern_portable_compress,
    .popcount = kern_portable_popcount,
    .hash = hash_portable,
    .hash_update = hash_update_portable,
};
