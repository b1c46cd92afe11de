/*
 * chain.c - the commit chain hash (see chain.h and FORMAT.md).
 */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "chain.h"
#include "../engine/base/kern.h"

_Static_assert(sizeof(XXH3_state_t) <= sizeof(((chain_hasher *)0)->state),
               "chain_hasher has room for an XXH3 state");
_Static_assert(_Alignof(XXH3_state_t) <= 64, "chain_hasher is aligned enough");

enum { CHAIN_SHORT_BYTES = 240 }; /* XXH3's inputs up to this length take no stripes */

static XXH3_state_t *state_of(chain_hasher *c) { return (XXH3_state_t *)(void *)c->state; }

static void feed(chain_hasher *c, const uint8_t *data, uint64_t len) {
    ASSERT(data != NULL && len > 0);
    ASSERT(c->buffered <= CHAIN_BUFFER_BYTES);
    if (!c->streaming && c->buffered + len <= CHAIN_BUFFER_BYTES) {
        memcpy(c->buf + c->buffered, data, len);
        c->buffered += (uint32_t)len;
        return;
    }
    XXH3_state_t *st = state_of(c);
    if (!c->streaming) {
        XXH3_INITSTATE(st);
        XXH3_128bits_reset_withSeed(st, SEED_CHAIN);
        XXH3_128bits_update(st, c->buf, c->buffered);
        c->streaming = true;
    }
    /* Large inputs take the kernels' accumulate loop (the CPU's widest):
     * this file is built for the baseline ISA. */
    if (c->kern != NULL) c->kern->hash_update(st, data, len);
    else XXH3_128bits_update(st, data, (size_t)len);
}

void chain_use_kernels(chain_hasher *c, const kern_ops *k) {
    ASSERT(c != NULL && (k == NULL || k->hash_update != NULL));
    c->kern = k;
}

void chain_begin(chain_hasher *c, h128 prev) {
    ASSERT(c != NULL);
    c->streaming = false;
    c->buffered = 16;
    put_h128(c->buf, prev);
    ASSERT(c->buffered <= CHAIN_BUFFER_BYTES);
}

void chain_add(chain_hasher *c, uint16_t type, uint16_t flags, uint32_t length,
               uint64_t seq, const uint8_t *payload, uint64_t hashed_len) {
    ASSERT(type != 0 && seq >= 1);
    ASSERT(payload != NULL || hashed_len == 0);
    uint8_t head[16];
    put_le16(head, type);
    put_le16(head + 2, flags);
    put_le32(head + 4, length);
    put_le64(head + 8, seq);
    feed(c, head, sizeof head);
    if (hashed_len > 0) feed(c, payload, hashed_len);
}

h128 chain_end(chain_hasher *c) {
    ASSERT(c->buffered >= 16); /* chain_begin put the previous value */
    /* A commit of more than one small record passes 240 bytes, where XXH3
     * accumulates stripes: the kernels' build does that in the CPU's widest
     * vectors (the same hash). */
    if (!c->streaming && c->kern != NULL && c->buffered > CHAIN_SHORT_BYTES) {
        return c->kern->hash(c->buf, c->buffered, SEED_CHAIN);
    }
    XXH128_hash_t h = c->streaming ? XXH3_128bits_digest(state_of(c))
                                   : XXH3_128bits_withSeed(c->buf, c->buffered, SEED_CHAIN);
    return (h128){.lo = h.low64, .hi = h.high64};
}

uint64_t chain_commit_part(const uint8_t *commit_payload, uint32_t length, uint8_t out[32]) {
    ASSERT(length == COMMIT_FIXED_BYTES || length == COMMIT_FIXED_BYTES + COMMIT_ROOT_BYTES);
    memcpy(out, commit_payload, 8);           /* first_seq */
    ASSERT(commit_payload != NULL && out != NULL);
    memcpy(out + 8, commit_payload + 16, 8);  /* flags, record count */
    if (length == COMMIT_FIXED_BYTES) return 16;
    memcpy(out + 16, commit_payload + COMMIT_FIXED_BYTES, COMMIT_ROOT_BYTES);
    return 32;
}
