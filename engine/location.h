/*
 * location.h - where a page's bytes live, and the byte operations done on
 * them.
 *
 * Nothing touches a page's bytes directly when it changes them: page_change
 * (page.c) asks the page's location (host memory today; device memory when
 * the GPU path provides one) to diff, apply and copy. A location only moves
 * bytes; logging, epochs, digest marks, the journal and events stay above
 * it, so every location gets the same log records and the same
 * determinism. Whole-page reads for digests and operation inputs still use
 * host pointers (page_bytes); a device location mirrors or stages them.
 */
#ifndef MMSB_LOCATION_H
#define MMSB_LOCATION_H

#include "base/base.h"

struct mmsb_engine;
struct page_entry;

enum { LOCATION_HOST = 0, LOCATION_DEVICE = 1, LOCATION_COUNT = 2 };

typedef struct location_ops {
    const char *name;
    /* Marks in mask_out (one bit per byte, LSB first) the bytes of
     * [offset, offset + len) that differ from src; returns how many. len is
     * at most WRITE_BLOCK_BYTES. */
    uint64_t (*diff)(const struct mmsb_engine *e, const struct page_entry *pe, uint64_t offset,
                     const uint8_t *src, uint64_t len, uint8_t *mask_out);
    /* Counts (store false) or also writes (store true) the masked bytes of
     * a validated delta that differ from the page; returns how many. */
    uint64_t (*delta)(const struct mmsb_engine *e, struct page_entry *pe, const mmsb_delta *d,
                      bool store);
    /* Copies src over the page's bytes [offset, offset + len). */
    void (*store)(const struct mmsb_engine *e, struct page_entry *pe, uint64_t offset,
                  const uint8_t *src, uint64_t len);
    /* Copies the page's bytes [offset, offset + len) to dst. */
    void (*load)(const struct mmsb_engine *e, const struct page_entry *pe, uint64_t offset,
                 uint8_t *dst, uint64_t len);
} location_ops;

extern const location_ops location_host;

#endif /* MMSB_LOCATION_H */
