/*
 * chain.h - the commit chain hash of FORMAT.md: XXH3-128 over the previous
 * chain value and the logical fields of every record since the last commit.
 *
 * A commit's input is gathered in a small buffer and hashed in one call when
 * it fits (most commits are one small record); larger inputs switch to
 * XXH3's streaming state. Both give the same value for the same bytes.
 */
#ifndef MMSB_TLOG_CHAIN_H
#define MMSB_TLOG_CHAIN_H

#include "format.h"

enum { CHAIN_BUFFER_BYTES = 1024 };

typedef struct chain_hasher {
    _Alignas(64) uint8_t state[640]; /* an XXH3 streaming state; chain.c checks it fits */
    uint8_t buf[CHAIN_BUFFER_BYTES];
    uint32_t buffered;               /* bytes in buf, while not streaming */
    bool streaming;
    const struct kern_ops *kern;     /* hashes long inputs; NULL: this file's own XXH3 */
} chain_hasher;

/* The kernels whose XXH3 hashes long inputs (the value is the same with
 * any, or with none). A hasher's first call: before it, `kern` is unset. */
void chain_use_kernels(chain_hasher *c, const struct kern_ops *k);
void chain_begin(chain_hasher *c, h128 prev);
/* Adds one record: its type, flags, length field and seq, then `hashed_len`
 * bytes of payload (all of it, except for a COMMIT: see FORMAT.md). */
void chain_add(chain_hasher *c, uint16_t type, uint16_t flags, uint32_t length,
               uint64_t seq, const uint8_t *payload, uint64_t hashed_len);
h128 chain_end(chain_hasher *c);

/* What of a COMMIT payload is chained: first_seq, flags, record count, and
 * the root when present, written contiguously into out (at most 32 bytes). */
uint64_t chain_commit_part(const uint8_t *commit_payload, uint32_t length, uint8_t out[32]);

#endif /* MMSB_TLOG_CHAIN_H */
