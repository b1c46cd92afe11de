/*
 * dev_logic.h - the per-element logic of the device kernels, written once.
 *
 * Every function here is a host-and-device function: nvcc builds it into the
 * CUDA kernels (gpu/kernels.cu), and gcc builds the same text for the host,
 * where tests/test_devlogic.c runs it for every thread index against the
 * host kernels (engine/base/kern.h), the built-in operations (engine/ops.c)
 * and xxHash itself. So the device's logic is covered on machines with no
 * GPU; what only a GPU can show (launch shapes, memory, streams) is left to
 * make test-gpu.
 *
 * The unit of work is one mask byte: thread t owns the page bytes
 * [8t, 8t + 8) (fewer at the end) and bit j of mask byte t stands for byte
 * 8t + j, the mask layout of mmsb_delta. A sparse delta's thread also needs
 * how many mask bits are set before its byte (an exclusive prefix sum that a
 * kernel gets from a block scan and a test from a loop).
 *
 * XXH3-128 (xxHash 0.8) is here for the digests of engine/DIGESTS.md: every
 * length a 4 KiB chunk can have, and more. It is built from the same steps
 * as the reference (a 512-bit stripe accumulation, a scramble, a merge), so
 * that a kernel can also split one chunk's stripes between threads.
 *
 * Bytes are read little-endian one at a time unless 8 are aligned: device
 * loads must be aligned, and the host does not care.
 */
#ifndef MMSB_GPU_DEV_LOGIC_H
#define MMSB_GPU_DEV_LOGIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/base/seeds.h"
#include "../ffi/mmsb.h"

#if defined(__CUDACC__)
#define DEV_HD static inline __host__ __device__
#else
#define DEV_HD static inline
#endif

/* Assertions stay on, on both sides: a device thread that finds one false
 * stops the kernel (the launch then fails with the device's error). */
#if defined(__CUDA_ARCH__)
#define DEV_ASSERT(c)                                                                                      \
    do {                                                                                                   \
        if (!(c)) __trap();                                                                                \
    } while (0)
#else
#define DEV_ASSERT(c)                                                                                      \
    do {                                                                                                   \
        if (!(c)) {                                                                                        \
            fprintf(stderr, "mmsb: device logic assertion failed: %s (%s:%d)\n", #c, __FILE__, __LINE__);  \
            abort();                                                                                       \
        }                                                                                                  \
    } while (0)
#endif

/* ---- bytes and words -------------------------------------------------------------------- */

DEV_HD uint64_t dev_le64(const uint8_t *p) {
#if defined(__CUDA_ARCH__)
    if (((uintptr_t)p & 7u) == 0) return *(const uint64_t *)(const void *)p;
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t w;
    memcpy(&w, p, sizeof w);
    return w;
#endif
    uint64_t v = 0;
    for (uint32_t i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

DEV_HD uint32_t dev_le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

DEV_HD void dev_put_le64(uint8_t *p, uint64_t v) {
    for (uint32_t i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

DEV_HD uint32_t dev_popcount8(uint8_t m) {
    uint32_t x = m;
    x = x - ((x >> 1) & 0x55u);
    x = (x & 0x33u) + ((x >> 2) & 0x33u);
    return (x + (x >> 4)) & 0x0Fu;
}

/* The bytes [8t, 8t + 8) of a page of len bytes that thread t owns. */
DEV_HD uint32_t dev_unit_bytes(uint64_t len, uint64_t t) {
    DEV_ASSERT(t <= UINT64_MAX / 8);
    uint64_t at = 8 * t;
    return at >= len ? 0u : (len - at >= 8 ? 8u : (uint32_t)(len - at));
}

/* ---- diff, apply, compress: one mask byte per thread -------------------------------------- */

/* Mask byte t of where cur and next differ (bits past len stay 0); returns
 * how many differ. */
DEV_HD uint32_t dev_diff_unit(const uint8_t *cur, const uint8_t *next, uint64_t len, uint64_t t,
                              uint8_t *mask_out) {
    uint32_t n = dev_unit_bytes(len, t), bits = 0;
    for (uint32_t j = 0; j < n; j++) bits |= (uint32_t)(cur[8 * t + j] != next[8 * t + j]) << j;
    mask_out[t] = (uint8_t)bits;
    return dev_popcount8((uint8_t)bits);
}

/* Where mask byte t is set, dst takes the new value: src[i] when src is
 * dense (as long as dst), or the k-th set bit of the whole mask takes
 * src[k] when it is packed (packed_at: how many bits are set in the mask
 * bytes before t). Returns how many of those bytes change value; with store
 * false nothing is written. old_out (may be NULL) gets dst's bytes before,
 * at the same offsets, for the journal. */
DEV_HD uint32_t dev_apply_unit(uint8_t *dst, const uint8_t *src, bool packed, const uint8_t *mask, uint64_t len,
                               uint64_t t, uint64_t packed_at, bool store, uint8_t *old_out) {
    DEV_ASSERT(dst != NULL && mask != NULL && t < (len + 7) / 8 && (src != NULL || mask[t] == 0));
    uint32_t n = dev_unit_bytes(len, t), changed = 0;
    uint8_t m = mask[t];
    for (uint32_t j = 0; j < n; j++) {
        uint64_t i = 8 * t + j;
        if (old_out != NULL) old_out[i] = dst[i];
        if (((m >> j) & 1u) == 0) continue;
        uint8_t v = packed ? src[packed_at++] : src[i];
        changed += dst[i] != v;
        if (store) dst[i] = v;
    }
    return changed;
}

DEV_HD uint32_t dev_apply_dense_unit(uint8_t *dst, const uint8_t *src, const uint8_t *mask, uint64_t len,
                                     uint64_t t, bool store, uint8_t *old_out) {
    return dev_apply_unit(dst, src, false, mask, len, t, 0, store, old_out);
}

DEV_HD uint32_t dev_apply_sparse_unit(uint8_t *dst, const uint8_t *packed, const uint8_t *mask, uint64_t len,
                                      uint64_t t, uint64_t packed_at, bool store, uint8_t *old_out) {
    return dev_apply_unit(dst, packed, true, mask, len, t, packed_at, store, old_out);
}

/* packed_out[packed_at ..] = the bytes of src that mask byte t selects;
 * returns how many. */
DEV_HD uint32_t dev_compress_unit(uint8_t *packed_out, const uint8_t *src, const uint8_t *mask, uint64_t len,
                                  uint64_t t, uint64_t packed_at) {
    uint32_t n = dev_unit_bytes(len, t), k = 0;
    uint8_t m = mask[t];
    for (uint32_t j = 0; j < n; j++) {
        if ((m >> j) & 1u) packed_out[packed_at + k++] = src[8 * t + j];
    }
    return k;
}

/* ---- sparse deltas across many threads: counts and a prefix sum ---------------------------- *
 *
 * A sparse delta's thread needs packed_at, the set bits before its units.
 * The kernels get it in three steps: each block counts the bits of its
 * units (dev_units_count), one block turns the counts into offsets (an
 * exclusive prefix sum), then each block's threads scan their own counts
 * in shared memory (dev_scan_step, a step per __syncthreads) and add the
 * block's offset. A thread owns a run of consecutive units. */

/* Set bits in mask bytes [first, first + count), stopping at units. */
DEV_HD uint64_t dev_units_count(const uint8_t *mask, uint64_t units, uint64_t first, uint64_t count) {
    uint64_t sum = 0;
    for (uint64_t t = first; t < first + count && t < units; t++) sum += dev_popcount8(mask[t]);
    return sum;
}

/* One step of an inclusive prefix sum over in[0 .. n) (Hillis and Steele):
 * after the steps d = 1, 2, 4, ... below n, element t holds in[0] + ... +
 * in[t]. Each step reads the previous step's values only. */
DEV_HD uint64_t dev_scan_step(const uint64_t *in, uint64_t t, uint64_t d) {
    DEV_ASSERT(d >= 1);
    return in[t] + (t >= d ? in[t - d] : 0);
}

/* The units [first, first + count) of a sparse apply or a compress, from
 * packed_at on; returns the changed bytes (apply) or the bytes packed
 * (compress). */
DEV_HD uint64_t dev_apply_sparse_run(uint8_t *dst, const uint8_t *packed, const uint8_t *mask, uint64_t len,
                                     uint64_t first, uint64_t count, uint64_t packed_at, bool store,
                                     uint8_t *old_out) {
    uint64_t units = (len + 7) / 8, changed = 0;
    for (uint64_t t = first; t < first + count && t < units; t++) {
        changed += dev_apply_sparse_unit(dst, packed, mask, len, t, packed_at, store, old_out);
        packed_at += dev_popcount8(mask[t]);
    }
    return changed;
}

DEV_HD uint64_t dev_compress_run(uint8_t *packed_out, const uint8_t *src, const uint8_t *mask, uint64_t len,
                                 uint64_t first, uint64_t count, uint64_t packed_at) {
    uint64_t units = (len + 7) / 8, packed = 0;
    for (uint64_t t = first; t < first + count && t < units; t++) {
        packed += dev_compress_unit(packed_out, src, mask, len, t, packed_at + packed);
    }
    return packed;
}

/* ---- staged work: items ---------------------------------------------------------------- *
 *
 * What the host stages for the device is a list of items over one buffer of
 * bytes (gpu/stage.h): each item is at most DEV_ITEM_BYTES of device memory
 * and one kind of work, so that one launch can give each item a block and
 * every block the same bounded work. An op larger than that (a page's zero
 * fill, a long delta) is several items; a sparse delta's items carry where
 * their packed bytes start, so no item needs another's count. Thread t of an
 * item owns its bytes [8t, 8t + 8), as above. */
enum {
    DEV_ITEM_BYTES = 64 * 1024,
    DEV_ITEM_ZERO = 1,   /* the bytes become 0 */
    DEV_ITEM_COPY = 2,   /* the bytes become staging[src ..] */
    DEV_ITEM_DENSE = 3,  /* masked: byte i takes staging[src + i] where mask bit i is set */
    DEV_ITEM_SPARSE = 4, /* masked: the k-th set bit takes staging[src + k] */
};

typedef struct dev_item {
    uint64_t dst;  /* device memory offset of the item's first byte */
    uint64_t src;  /* staging offset of its bytes (COPY, DENSE), or of its first packed byte (SPARSE) */
    uint64_t mask; /* staging offset of its first mask byte (DENSE, SPARSE) */
    uint32_t len;  /* bytes, 1 .. DEV_ITEM_BYTES */
    uint32_t kind; /* DEV_ITEM_* */
    uint32_t op;   /* the staged op it belongs to: whose changed-byte count it adds to */
    uint32_t reserved;
} dev_item;

DEV_HD uint64_t dev_item_units(const dev_item *it) { return ((uint64_t)it->len + 7) / 8; }

/* The set mask bits of an item's units [first, first + count): what a
 * SPARSE item's thread needs the prefix sum of; 0 for the other kinds. */
DEV_HD uint64_t dev_item_count(const uint8_t *staging, const dev_item *it, uint64_t first, uint64_t count) {
    if (it->kind != DEV_ITEM_SPARSE) return 0;
    return dev_units_count(staging + it->mask, dev_item_units(it), first, count);
}

/* Runs an item's units [first, first + count) on device memory mem;
 * packed_at: the set bits before unit first (SPARSE). Returns the bytes a
 * masked item changed (0 for ZERO and COPY, which are not counted). */
DEV_HD uint64_t dev_item_run(uint8_t *mem, const uint8_t *staging, const dev_item *it, uint64_t first,
                             uint64_t count, uint64_t packed_at) {
    DEV_ASSERT(it->len >= 1 && it->len <= DEV_ITEM_BYTES);
    uint8_t *dst = mem + it->dst;
    uint64_t units = dev_item_units(it), changed = 0;
    if (it->kind == DEV_ITEM_SPARSE) {
        return dev_apply_sparse_run(dst, staging + it->src, staging + it->mask, it->len, first, count, packed_at,
                                    true, NULL);
    }
    for (uint64_t t = first; t < first + count && t < units; t++) {
        uint32_t n = dev_unit_bytes(it->len, t);
        if (it->kind == DEV_ITEM_DENSE) {
            changed += dev_apply_dense_unit(dst, staging + it->src, staging + it->mask, it->len, t, true, NULL);
        } else if (it->kind == DEV_ITEM_COPY) {
            for (uint32_t j = 0; j < n; j++) dst[8 * t + j] = staging[it->src + 8 * t + j];
        } else {
            DEV_ASSERT(it->kind == DEV_ITEM_ZERO);
            for (uint32_t j = 0; j < n; j++) dst[8 * t + j] = 0;
        }
    }
    return changed;
}

/* ---- the built-in operations' lanes: eight bytes per thread -------------------------------- */

/* The built-in operations that combine parents lane by lane: MMSB_OP_XOR
 * to MMSB_OP_MAX_U64, in mmsb.h's numbering. */
DEV_HD bool dev_op_is_lanewise(uint32_t op) { return op >= MMSB_OP_XOR && op <= MMSB_OP_MAX_U64; }

DEV_HD uint64_t dev_combine8(uint32_t op, uint64_t a, uint64_t b) {
    uint64_t out = 0;
    switch (op) {
    case MMSB_OP_XOR: return a ^ b;
    case MMSB_OP_SUM_U64: return a + b;
    case MMSB_OP_MAX_U64: return a > b ? a : b;
    case MMSB_OP_SUM_U32:
    case MMSB_OP_MAX_U32:
        for (uint32_t k = 0; k < 64; k += 32) {
            uint32_t x = (uint32_t)(a >> k), y = (uint32_t)(b >> k);
            uint32_t r = op == MMSB_OP_SUM_U32 ? x + y : (x > y ? x : y);
            out |= (uint64_t)r << k;
        }
        return out;
    case MMSB_OP_MAX_U8:
        for (uint32_t k = 0; k < 64; k += 8) {
            uint8_t x = (uint8_t)(a >> k), y = (uint8_t)(b >> k);
            out |= (uint64_t)(x > y ? x : y) << k;
        }
        return out;
    default: DEV_ASSERT(!"not a lanewise operation"); return 0;
    }
}

/* out's bytes [8t, 8t + 8) of [lo, hi) (lo and hi multiples of the lane,
 * as op_compute has them) from the n parents' same bytes. */
DEV_HD void dev_op_unit(uint32_t op, const uint8_t *const *in, uint32_t n, uint64_t lo, uint64_t hi, uint64_t t,
                        uint8_t *out) {
    DEV_ASSERT(dev_op_is_lanewise(op) && n >= 1 && lo <= hi);
    uint32_t bytes = dev_unit_bytes(hi - lo, t);
    uint64_t at = lo + 8 * t;
    uint8_t word[8] = {0};
    for (uint32_t j = 0; j < bytes; j++) word[j] = in[0][at + j];
    uint64_t acc = dev_le64(word);
    for (uint32_t p = 1; p < n; p++) {
        for (uint32_t j = 0; j < bytes; j++) word[j] = in[p][at + j];
        acc = dev_combine8(op, acc, dev_le64(word));
    }
    for (uint32_t j = 0; j < bytes; j++) out[8 * t + j] = (uint8_t)(acc >> (8 * j));
}

/* ---- XXH3-128 ---------------------------------------------------------------------------- */

enum {
    DEV_XXH_SECRET_BYTES = 192, /* the default secret's size */
    DEV_XXH_STRIPE_BYTES = 64,
    DEV_XXH_SECRET_STEP = 8,    /* secret bytes one stripe moves on */
    DEV_XXH_STRIPES_PER_BLOCK = (DEV_XXH_SECRET_BYTES - DEV_XXH_STRIPE_BYTES) / DEV_XXH_SECRET_STEP,
    DEV_XXH_BLOCK_BYTES = DEV_XXH_STRIPE_BYTES * DEV_XXH_STRIPES_PER_BLOCK,
    DEV_XXH_MIDSIZE_MAX = 240,
    DEV_XXH_SECRET_MIN = 136,   /* the smallest secret: where 129..240's last mix reads */
    DEV_XXH_MID_START = 3,      /* 129..240: the secret's offset for rounds after the fourth */
    DEV_XXH_MID_LAST = 17,      /* ... and how far before DEV_XXH_SECRET_MIN the last one ends */
    DEV_XXH_LAST_STRIPE = 7,    /* long inputs: the last stripe's secret is this far back */
    DEV_XXH_MERGE_START = 11,   /* long inputs: where the merges read the secret */
};

/* xxHash's default secret, as a list for an initializer: the kernels keep a
 * copy in constant memory, the host uses dev_xxh_ksecret. */
#define DEV_XXH_KSECRET_BYTES                                                                           \
    0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c, 0xde, \
        0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f, 0xcb,   \
        0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21, 0xb8,   \
        0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c, 0x3c,   \
        0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3, 0x71,   \
        0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8, 0xa8,   \
        0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d, 0x8a,   \
        0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64, 0xea,   \
        0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb, 0x17,   \
        0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e, 0x2b,   \
        0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce, 0x45,   \
        0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e

static const uint8_t dev_xxh_ksecret[DEV_XXH_SECRET_BYTES] = {DEV_XXH_KSECRET_BYTES}; /* host code only */

#define DEV_P32_1 0x9E3779B1u
#define DEV_P32_2 0x85EBCA77u
#define DEV_P32_3 0xC2B2AE3Du
#define DEV_P64_1 0x9E3779B185EBCA87ull
#define DEV_P64_2 0xC2B2AE3D27D4EB4Full
#define DEV_P64_3 0x165667B19E3779F9ull
#define DEV_P64_4 0x85EBCA77C2B2AE63ull
#define DEV_P64_5 0x27D4EB2F165667C5ull
#define DEV_MIX_MUL 0x9FB21C651E98DF25ull

typedef struct dev_h128 {
    uint64_t lo, hi;
} dev_h128;

DEV_HD dev_h128 dev_mul128(uint64_t a, uint64_t b) {
    dev_h128 r;
#if defined(__CUDA_ARCH__)
    r.lo = a * b;
    r.hi = __umul64hi(a, b);
#else
    unsigned __int128 p = (unsigned __int128)a * b;
    r.lo = (uint64_t)p;
    r.hi = (uint64_t)(p >> 64);
#endif
    return r;
}

DEV_HD uint64_t dev_fold64(uint64_t a, uint64_t b) {
    dev_h128 p = dev_mul128(a, b);
    return p.lo ^ p.hi;
}

DEV_HD uint32_t dev_rotl32(uint32_t v, uint32_t r) { return (v << r) | (v >> (32 - r)); }
DEV_HD uint32_t dev_bswap32(uint32_t v) {
    return (v >> 24) | ((v >> 8) & 0xFF00u) | ((v << 8) & 0xFF0000u) | (v << 24);
}
DEV_HD uint64_t dev_bswap64(uint64_t v) {
    return ((uint64_t)dev_bswap32((uint32_t)v) << 32) | dev_bswap32((uint32_t)(v >> 32));
}

/* The two finishing mixes: XXH64's (for unmixed input) and XXH3's. */
DEV_HD uint64_t dev_avalanche64(uint64_t h) {
    h = (h ^ (h >> 33)) * DEV_P64_2;
    h = (h ^ (h >> 29)) * DEV_P64_3;
    return h ^ (h >> 32);
}

DEV_HD uint64_t dev_avalanche3(uint64_t h) {
    h = (h ^ (h >> 37)) * 0x165667919E3779F9ull;
    return h ^ (h >> 32);
}

DEV_HD dev_h128 dev_xxh_0to16(const uint8_t *in, uint64_t len, const uint8_t *sec, uint64_t seed) {
    dev_h128 h;
    if (len == 0) {
        h.lo = dev_avalanche64(seed ^ dev_le64(sec + 64) ^ dev_le64(sec + 72));
        h.hi = dev_avalanche64(seed ^ dev_le64(sec + 80) ^ dev_le64(sec + 88));
        return h;
    }
    if (len <= 3) {
        uint32_t lo = ((uint32_t)in[0] << 16) | ((uint32_t)in[len >> 1] << 24) | in[len - 1] |
                      ((uint32_t)len << 8);
        uint32_t hi = dev_rotl32(dev_bswap32(lo), 13);
        h.lo = dev_avalanche64(lo ^ ((uint64_t)(dev_le32(sec) ^ dev_le32(sec + 4)) + seed));
        h.hi = dev_avalanche64(hi ^ ((uint64_t)(dev_le32(sec + 8) ^ dev_le32(sec + 12)) - seed));
        return h;
    }
    if (len <= 8) {
        seed ^= (uint64_t)dev_bswap32((uint32_t)seed) << 32;
        uint64_t input = dev_le32(in) + ((uint64_t)dev_le32(in + len - 4) << 32);
        uint64_t keyed = input ^ ((dev_le64(sec + 16) ^ dev_le64(sec + 24)) + seed);
        dev_h128 m = dev_mul128(keyed, DEV_P64_1 + (len << 2));
        m.hi += m.lo << 1;
        m.lo ^= m.hi >> 3;
        m.lo = (m.lo ^ (m.lo >> 35)) * DEV_MIX_MUL;
        h.lo = m.lo ^ (m.lo >> 28);
        h.hi = dev_avalanche3(m.hi);
        return h;
    }
    uint64_t flip_lo = (dev_le64(sec + 32) ^ dev_le64(sec + 40)) - seed;
    uint64_t flip_hi = (dev_le64(sec + 48) ^ dev_le64(sec + 56)) + seed;
    uint64_t in_lo = dev_le64(in), in_hi = dev_le64(in + len - 8);
    dev_h128 m = dev_mul128(in_lo ^ in_hi ^ flip_lo, DEV_P64_1);
    m.lo += (len - 1) << 54;
    in_hi ^= flip_hi;
    m.hi += in_hi + (uint64_t)(uint32_t)in_hi * (DEV_P32_2 - 1);
    m.lo ^= dev_bswap64(m.hi);
    h = dev_mul128(m.lo, DEV_P64_2);
    h.hi += m.hi * DEV_P64_2;
    h.lo = dev_avalanche3(h.lo);
    h.hi = dev_avalanche3(h.hi);
    return h;
}

DEV_HD uint64_t dev_mix16(const uint8_t *in, const uint8_t *sec, uint64_t seed) {
    return dev_fold64(dev_le64(in) ^ (dev_le64(sec) + seed), dev_le64(in + 8) ^ (dev_le64(sec + 8) - seed));
}

DEV_HD dev_h128 dev_mix32(dev_h128 acc, const uint8_t *a, const uint8_t *b, const uint8_t *sec, uint64_t seed) {
    acc.lo += dev_mix16(a, sec, seed);
    acc.lo ^= dev_le64(b) + dev_le64(b + 8);
    acc.hi += dev_mix16(b, sec + 16, seed);
    acc.hi ^= dev_le64(a) + dev_le64(a + 8);
    return acc;
}

DEV_HD dev_h128 dev_xxh_mid_finish(dev_h128 acc, uint64_t len, uint64_t seed) {
    dev_h128 h;
    h.lo = dev_avalanche3(acc.lo + acc.hi);
    h.hi = 0 - dev_avalanche3(acc.lo * DEV_P64_1 + acc.hi * DEV_P64_4 + (len - seed) * DEV_P64_2);
    return h;
}

/* 17 .. 128 bytes: pairs of 16-byte blocks from both ends. */
DEV_HD dev_h128 dev_xxh_17to128(const uint8_t *in, uint64_t len, const uint8_t *sec, uint64_t seed) {
    dev_h128 acc;
    acc.lo = len * DEV_P64_1;
    acc.hi = 0;
    uint32_t pairs = (uint32_t)((len - 1) / 32); /* 0 .. 3 more pairs than the outer one */
    for (uint32_t k = pairs; k > 0; k--) {
        acc = dev_mix32(acc, in + 16 * k, in + len - 16 * (k + 1), sec + 32 * k, seed);
    }
    acc = dev_mix32(acc, in, in + len - 16, sec, seed);
    return dev_xxh_mid_finish(acc, len, seed);
}

/* 129 .. 240 bytes: 32-byte rounds, a mix after the fourth, the last 32
 * bytes again. */
DEV_HD dev_h128 dev_xxh_129to240(const uint8_t *in, uint64_t len, const uint8_t *sec, uint64_t seed) {
    dev_h128 acc;
    acc.lo = len * DEV_P64_1;
    acc.hi = 0;
    uint32_t rounds = (uint32_t)(len / 32);
    for (uint32_t i = 0; i < 4; i++) acc = dev_mix32(acc, in + 32 * i, in + 32 * i + 16, sec + 32 * i, seed);
    acc.lo = dev_avalanche3(acc.lo);
    acc.hi = dev_avalanche3(acc.hi);
    for (uint32_t i = 4; i < rounds; i++) {
        acc = dev_mix32(acc, in + 32 * i, in + 32 * i + 16, sec + DEV_XXH_MID_START + 32 * (i - 4), seed);
    }
    acc = dev_mix32(acc, in + len - 16, in + len - 32, sec + DEV_XXH_SECRET_MIN - DEV_XXH_MID_LAST - 16, 0 - seed);
    return dev_xxh_mid_finish(acc, len, seed);
}

/* The long path's secret for a seed: the default one with the seed added to
 * the first and taken from the second word of every 16 bytes. */
DEV_HD void dev_xxh_secret_for_seed(const uint8_t *ksecret, uint64_t seed, uint8_t out[DEV_XXH_SECRET_BYTES]) {
    for (uint32_t i = 0; i < DEV_XXH_SECRET_BYTES; i += 16) {
        dev_put_le64(out + i, dev_le64(ksecret + i) + seed);
        dev_put_le64(out + i + 8, dev_le64(ksecret + i + 8) - seed);
    }
}

DEV_HD void dev_xxh_acc_init(uint64_t acc[8]) {
    acc[0] = DEV_P32_3;
    acc[1] = DEV_P64_1;
    acc[2] = DEV_P64_2;
    acc[3] = DEV_P64_3;
    acc[4] = DEV_P64_4;
    acc[5] = DEV_P32_2;
    acc[6] = DEV_P64_5;
    acc[7] = DEV_P32_1;
}

/* One 64-bit lane of a 512-bit stripe: lane i's data goes to lane i ^ 1 as
 * it is, and to lane i multiplied by itself keyed. The two updates touch
 * different lanes, so a kernel may give each lane to its own thread and
 * exchange the data words between pairs. */
DEV_HD void dev_xxh_stripe_lane(uint64_t acc[8], const uint8_t *stripe, const uint8_t *sec, uint32_t i) {
    uint64_t data = dev_le64(stripe + 8 * i);
    uint64_t keyed = data ^ dev_le64(sec + 8 * i);
    acc[i ^ 1] += data;
    acc[i] += (keyed & 0xFFFFFFFFull) * (keyed >> 32);
}

DEV_HD void dev_xxh_stripe(uint64_t acc[8], const uint8_t *stripe, const uint8_t *sec) {
    for (uint32_t i = 0; i < 8; i++) dev_xxh_stripe_lane(acc, stripe, sec, i);
}

DEV_HD void dev_xxh_scramble(uint64_t acc[8], const uint8_t *sec) {
    for (uint32_t i = 0; i < 8; i++) {
        uint64_t a = acc[i] ^ (acc[i] >> 47) ^ dev_le64(sec + 8 * i);
        acc[i] = a * DEV_P32_1;
    }
}

DEV_HD uint64_t dev_xxh_merge(const uint64_t acc[8], const uint8_t *sec, uint64_t start) {
    uint64_t r = start;
    for (uint32_t i = 0; i < 4; i++) {
        r += dev_fold64(acc[2 * i] ^ dev_le64(sec + 16 * i), acc[2 * i + 1] ^ dev_le64(sec + 16 * i + 8));
    }
    return dev_avalanche3(r);
}

/* More than 240 bytes, with the seed's secret (dev_xxh_secret_for_seed):
 * blocks of 16 stripes, each followed by a scramble; then the stripes of
 * the last block; then the input's last 64 bytes; then the merges. */
DEV_HD dev_h128 dev_xxh_long(const uint8_t *in, uint64_t len, const uint8_t *sec) {
    DEV_ASSERT(len > DEV_XXH_MIDSIZE_MAX && sec != NULL);
    uint64_t acc[8];
    dev_xxh_acc_init(acc);
    uint64_t blocks = (len - 1) / DEV_XXH_BLOCK_BYTES;
    for (uint64_t b = 0; b < blocks; b++) {
        const uint8_t *block = in + b * DEV_XXH_BLOCK_BYTES;
        for (uint32_t s = 0; s < DEV_XXH_STRIPES_PER_BLOCK; s++) {
            dev_xxh_stripe(acc, block + s * DEV_XXH_STRIPE_BYTES, sec + s * DEV_XXH_SECRET_STEP);
        }
        dev_xxh_scramble(acc, sec + DEV_XXH_SECRET_BYTES - DEV_XXH_STRIPE_BYTES);
    }
    const uint8_t *tail = in + blocks * DEV_XXH_BLOCK_BYTES;
    uint64_t stripes = ((len - 1) - blocks * DEV_XXH_BLOCK_BYTES) / DEV_XXH_STRIPE_BYTES;
    for (uint64_t s = 0; s < stripes; s++) {
        dev_xxh_stripe(acc, tail + s * DEV_XXH_STRIPE_BYTES, sec + s * DEV_XXH_SECRET_STEP);
    }
    const uint8_t *last_sec = sec + DEV_XXH_SECRET_BYTES - DEV_XXH_STRIPE_BYTES - DEV_XXH_LAST_STRIPE;
    dev_xxh_stripe(acc, in + len - DEV_XXH_STRIPE_BYTES, last_sec);
    dev_h128 h;
    h.lo = dev_xxh_merge(acc, sec + DEV_XXH_MERGE_START, len * DEV_P64_1);
    h.hi = dev_xxh_merge(acc, sec + DEV_XXH_SECRET_BYTES - 64 - DEV_XXH_MERGE_START, ~(len * DEV_P64_2));
    return h;
}

/* XXH3-128 of in[0 .. len) with a seed. ksecret is the default secret (in
 * constant memory on the device); seeded_secret is dev_xxh_secret_for_seed
 * of it, needed only past 240 bytes (a kernel makes it once per block). */
DEV_HD dev_h128 dev_xxh3_128(const uint8_t *in, uint64_t len, uint64_t seed, const uint8_t *ksecret,
                             const uint8_t *seeded_secret) {
    DEV_ASSERT((in != NULL || len == 0) && ksecret != NULL);
    if (len <= 16) return dev_xxh_0to16(in, len, ksecret, seed);
    if (len <= 128) return dev_xxh_17to128(in, len, ksecret, seed);
    if (len <= DEV_XXH_MIDSIZE_MAX) return dev_xxh_129to240(in, len, ksecret, seed);
    return dev_xxh_long(in, len, seeded_secret);
}

/* ---- page digests (engine/DIGESTS.md) ------------------------------------------------------ */

enum { DEV_DIGEST_BYTES = 16, DEV_CHUNK_BYTES = 4096 };

/* A hash in its canonical form: 16 bytes, big-endian, high half first. */
DEV_HD void dev_digest_put(dev_h128 h, uint8_t out[DEV_DIGEST_BYTES]) {
    for (uint32_t i = 0; i < 8; i++) {
        out[i] = (uint8_t)(h.hi >> (56 - 8 * i));
        out[8 + i] = (uint8_t)(h.lo >> (56 - 8 * i));
    }
}

/* Chunk c of a page of size bytes: thread c's digest. */
DEV_HD void dev_chunk_digest(const uint8_t *page, uint64_t size, uint64_t c, const uint8_t *ksecret,
                             const uint8_t *chunk_secret, uint8_t out[DEV_DIGEST_BYTES]) {
    DEV_ASSERT(c < (size + DEV_CHUNK_BYTES - 1) / DEV_CHUNK_BYTES);
    uint64_t at = c * DEV_CHUNK_BYTES;
    uint64_t len = size - at < (uint64_t)DEV_CHUNK_BYTES ? size - at : (uint64_t)DEV_CHUNK_BYTES;
    dev_digest_put(dev_xxh3_128(page + at, len, SEED_CHUNK, ksecret, chunk_secret), out);
}

/* Node(L, R): L when R is EMPTY (all zeros), else H(L || R, SEED_NODE).
 * One tree level is one launch, a thread per parent. */
DEV_HD void dev_merkle_node(const uint8_t left[DEV_DIGEST_BYTES], const uint8_t right[DEV_DIGEST_BYTES],
                            const uint8_t *ksecret, uint8_t out[DEV_DIGEST_BYTES]) {
    uint8_t any = 0;
    for (uint32_t i = 0; i < DEV_DIGEST_BYTES; i++) any |= right[i];
    if (any == 0) {
        for (uint32_t i = 0; i < DEV_DIGEST_BYTES; i++) out[i] = left[i];
        return;
    }
    uint8_t pair[2 * DEV_DIGEST_BYTES];
    for (uint32_t i = 0; i < DEV_DIGEST_BYTES; i++) {
        pair[i] = left[i];
        pair[DEV_DIGEST_BYTES + i] = right[i];
    }
    /* 32 bytes never reach the long path, which alone needs the seeded secret */
    dev_digest_put(dev_xxh3_128(pair, sizeof pair, SEED_NODE, ksecret, NULL), out);
}

/* Parent p of a level of n nodes (the missing right child of an odd last
 * one is EMPTY); the level above has (n + 1) / 2. */
DEV_HD void dev_merkle_parent(const uint8_t *level, uint64_t n, uint64_t p, const uint8_t *ksecret,
                              uint8_t *above) {
    DEV_ASSERT(p < (n + 1) / 2);
    uint8_t empty[DEV_DIGEST_BYTES] = {0};
    const uint8_t *right = 2 * p + 1 < n ? level + (2 * p + 1) * DEV_DIGEST_BYTES : empty;
    dev_merkle_node(level + 2 * p * DEV_DIGEST_BYTES, right, ksecret, above + p * DEV_DIGEST_BYTES);
}

#endif /* MMSB_GPU_DEV_LOGIC_H */
