/*
 * digest.h - page digests and the state root (DIGESTS.md).
 */
#ifndef MMSB_DIGEST_H
#define MMSB_DIGEST_H

#include "state.h"

int digest_open(mmsb_engine *e) MUST_CHECK;
void digest_close(mmsb_engine *e);
/* Backs the digest's per-id tables for ids up to `id`: called before a
 * create, so that marking a page never faults or fails. */
int digest_reserve(mmsb_engine *e, uint64_t id) MUST_CHECK;
/* Bytes of the chunk tree of a page of size_bytes; 0 for one-chunk pages. */
uint64_t digest_aux_bytes(uint64_t size_bytes);
/* A new (all-zero) page: its digest is computed now, from the known hash of
 * a zero chunk, so creating pages never leaves hashing work behind. */
void digest_page_created(mmsb_engine *e, uint64_t id, page_entry *pe);
/* Bytes [offset, offset + len) of the page changed (or it was freed). */
void digest_mark(mmsb_engine *e, uint64_t id, page_entry *pe, uint64_t offset, uint64_t len);
void digest_page(mmsb_engine *e, page_entry *pe, h128 *digest_out);
void digest_root(mmsb_engine *e, h128 *root_out);
void digest_to_bytes(h128 h, uint8_t out[16]);

#endif /* MMSB_DIGEST_H */
