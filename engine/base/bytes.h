/*
 * bytes.h - fixed-width integers and 128-bit hashes in the byte orders that
 * the log, the checkpoint store and the hash inputs use.
 */
#ifndef MMSB_BYTES_H
#define MMSB_BYTES_H

#include "base.h"

static inline uint16_t get_le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t get_le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t get_le64(const uint8_t *p) {
    return (uint64_t)get_le32(p) | ((uint64_t)get_le32(p + 4) << 32);
}
static inline void put_le16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* A 128-bit value in canonical (big-endian, high half first) byte order. */
static inline void put_h128(uint8_t *p, h128 h) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(h.hi >> (56 - 8 * i));
    for (int i = 0; i < 8; i++) p[8 + i] = (uint8_t)(h.lo >> (56 - 8 * i));
}
static inline h128 get_h128(const uint8_t *p) {
    h128 h = {0, 0};
    for (int i = 0; i < 8; i++) h.hi = (h.hi << 8) | p[i];
    for (int i = 0; i < 8; i++) h.lo = (h.lo << 8) | p[8 + i];
    return h;
}

#endif /* MMSB_BYTES_H */
