/*
 * bytes.h - fixed-width integers and 128-bit hashes in the byte orders that
 * the log, the checkpoint store and the hash inputs use.
 */
#ifndef MMSB_BYTES_H
#define MMSB_BYTES_H

#include <string.h>

#include "base.h"

/* Every multi-byte value on disk is little-endian, except 128-bit hashes
 * (big-endian, high half first). On a little-endian machine a value moves
 * with one unaligned load or store; the byte-by-byte forms are the
 * definition, used elsewhere. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define MMSB_LITTLE_ENDIAN 1
#else
#define MMSB_LITTLE_ENDIAN 0
#endif

static inline uint16_t get_le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t get_le32(const uint8_t *p) {
    if (MMSB_LITTLE_ENDIAN) {
        uint32_t v;
        memcpy(&v, p, sizeof v);
        return v;
    }
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t get_le64(const uint8_t *p) {
    if (MMSB_LITTLE_ENDIAN) {
        uint64_t v;
        memcpy(&v, p, sizeof v);
        return v;
    }
    return (uint64_t)get_le32(p) | ((uint64_t)get_le32(p + 4) << 32);
}
static inline void put_le16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void put_le32(uint8_t *p, uint32_t v) {
    if (MMSB_LITTLE_ENDIAN) {
        memcpy(p, &v, sizeof v);
        return;
    }
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void put_le64(uint8_t *p, uint64_t v) {
    if (MMSB_LITTLE_ENDIAN) {
        memcpy(p, &v, sizeof v);
        return;
    }
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* A 64-bit value in big-endian byte order. */
static inline void put_be64(uint8_t *p, uint64_t v) {
    if (MMSB_LITTLE_ENDIAN) {
        v = __builtin_bswap64(v);
        memcpy(p, &v, sizeof v);
        return;
    }
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (56 - 8 * i));
}
static inline uint64_t get_be64(const uint8_t *p) {
    uint64_t v = 0;
    if (MMSB_LITTLE_ENDIAN) {
        memcpy(&v, p, sizeof v);
        return __builtin_bswap64(v);
    }
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

/* A 128-bit value in canonical (big-endian, high half first) byte order. */
static inline void put_h128(uint8_t *p, h128 h) {
    put_be64(p, h.hi);
    put_be64(p + 8, h.lo);
}
static inline h128 get_h128(const uint8_t *p) { return (h128){.lo = get_be64(p + 8), .hi = get_be64(p)}; }

#endif /* MMSB_BYTES_H */
