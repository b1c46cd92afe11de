/*
 * kern.h - the byte kernels: masked apply (dense and sparse payloads), diff
 * into a bit mask, compress (gather masked bytes) and hashing.
 *
 * Masks carry one bit per byte, least significant bit first: bit i of mask
 * byte i / 8 stands for byte i of the range. Three implementations (portable,
 * AVX2 + BMI2, AVX-512 BW + VBMI2) give bit-identical results; the engine
 * picks one at open.
 */
#ifndef MMSB_KERN_H
#define MMSB_KERN_H

#include <string.h>

#include "base.h"


typedef struct kern_ops {
    const char *name;
    uint32_t level; /* MMSB_KERNEL_* */
    /* mask_out[(len + 7) / 8] = bytes where cur and next differ (bits past
     * len are 0); returns how many differ. */
    uint64_t (*diff)(const uint8_t *cur, const uint8_t *next, uint64_t len,
                     uint8_t *mask_out);
    /* dst[i] = src[i] where the mask bit is set; returns how many of those
     * bytes changed value. Mask bits past len are ignored. With store false
     * nothing is written: only the count (would anything change?). */
    uint64_t (*apply_dense)(uint8_t *dst, const uint8_t *src, const uint8_t *mask,
                            uint64_t len, bool store);
    /* As apply_dense, with the new values packed: packed_len bytes, which
     * must equal the number of mask bits set within len. */
    uint64_t (*apply_sparse)(uint8_t *dst, const uint8_t *packed, uint64_t packed_len,
                             const uint8_t *mask, uint64_t len, bool store);
    /* packed_out[k] = src[i] for the k-th set bit i; returns the count. */
    uint64_t (*compress)(uint8_t *packed_out, const uint8_t *src,
                         const uint8_t *mask, uint64_t len);
    /* Set bits in mask[0 .. mask_bytes). */
    uint64_t (*popcount)(const uint8_t *mask, uint64_t mask_bytes);
    /* XXH3-128 with a seed. */
    h128 (*hash)(const void *data, uint64_t len, uint64_t seed);
    /* Feeds a streaming XXH3-128 state (an XXH3_state_t) more bytes. */
    void (*hash_update)(void *xxh3_state, const void *data, uint64_t len);
} kern_ops;

extern const kern_ops kern_portable_ops;
extern const kern_ops kern_avx2_ops;
extern const kern_ops kern_avx512_ops;

/* Whether this CPU (and OS) runs the kernels of that level. */
bool kern_supported(uint32_t level);
/* Resolves MMSB_KERNEL_* (AUTO honours the MMSB_KERNEL environment variable).
 * MMSB_ENOTSUP when the CPU lacks the level asked for. */
MUST_CHECK int kern_select(uint32_t level, const kern_ops **ops_out);

/* ---- helpers shared by the implementations (word-at-a-time tricks) ------- */

static inline uint64_t load_u64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void store_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, sizeof v); }

/* Turns the 8 bits of m into 8 bytes of 0x00 / 0xFF (bit i -> byte i). */
static inline uint64_t spread_bits8(uint8_t m) {
    uint64_t x = m;
    x = (x | (x << 28)) & 0x0000000F0000000Full;
    x = (x | (x << 14)) & 0x0003000300030003ull;
    x = (x | (x << 7)) & 0x0101010101010101ull;
    return x * 0xFF;
}

/* Bit i set where byte i of x is not zero. */
static inline uint8_t nonzero_bytes8(uint64_t x) {
    const uint64_t low7 = 0x7F7F7F7F7F7F7F7Full;
    uint64_t t = ((x & low7) + low7) | x;
    t = (t >> 7) & 0x0101010101010101ull;
    return (uint8_t)((t * 0x0102040810204080ull) >> 56);
}

/* Mask of the low `bits` bits (bits <= 64). */
static inline uint64_t low_bits_u64(uint32_t bits) {
    return bits >= 64 ? ~0ull : (1ull << bits) - 1;
}

/* Offsets of the first and last set bits of a mask; false when none is set. */
static inline bool mask_bounds(const uint8_t *mask, uint64_t mask_bytes, uint64_t *first,
                               uint64_t *last) {
    ASSERT(mask != NULL && first != NULL && last != NULL);
    uint64_t lo = 0;
    while (lo < mask_bytes && mask[lo] == 0) lo++;
    if (lo == mask_bytes) return false;
    uint64_t hi = mask_bytes - 1;
    while (mask[hi] == 0) hi--;
    *first = lo * 8 + (uint64_t)__builtin_ctz(mask[lo]);
    *last = hi * 8 + 31 - (uint64_t)__builtin_clz(mask[hi]);
    ASSERT(*first <= *last && *last < 8 * mask_bytes);
    return true;
}

/* The portable kernels, for the tails of the vectorised ones. */
uint64_t kern_portable_diff(const uint8_t *cur, const uint8_t *next, uint64_t len,
                            uint8_t *mask_out);
uint64_t kern_portable_apply_dense(uint8_t *dst, const uint8_t *src,
                                   const uint8_t *mask, uint64_t len, bool store);
uint64_t kern_portable_apply_sparse(uint8_t *dst, const uint8_t *packed, uint64_t packed_len,
                                    const uint8_t *mask, uint64_t len, bool store);
uint64_t kern_portable_compress(uint8_t *packed_out, const uint8_t *src,
                                const uint8_t *mask, uint64_t len);
uint64_t kern_portable_popcount(const uint8_t *mask, uint64_t mask_bytes);
uint64_t kern_avx2_popcount(const uint8_t *mask, uint64_t mask_bytes);

#endif /* MMSB_KERN_H */
