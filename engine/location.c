/*
 * location.c - the host location: page bytes in the shared arena, changed
 * with the engine's vectorised kernels.
 */
#include <string.h>

#include "state.h"

static uint64_t host_diff(const mmsb_engine *e, const page_entry *pe, uint64_t offset,
                          const uint8_t *src, uint64_t len, uint8_t *mask_out) {
    ASSERT(src != NULL && mask_out != NULL);
    ASSERT(len <= WRITE_BLOCK_BYTES && offset + len <= pe->size_bytes);
    return e->kern->diff(page_bytes(e, pe) + offset, src, len, mask_out);
}

static uint64_t host_delta(const mmsb_engine *e, page_entry *pe, const mmsb_delta *d, bool store) {
    ASSERT(d->page_id != 0 && d->len > 0);
    ASSERT(d->offset + d->len <= pe->size_bytes);
    uint8_t *dst = page_bytes(e, pe) + d->offset;
    if (d->flags & MMSB_DELTA_SPARSE) {
        return e->kern->apply_sparse(dst, d->payload, d->payload_len, d->mask, d->len, store);
    }
    return e->kern->apply_dense(dst, d->payload, d->mask, d->len, store);
}

static void host_store(const mmsb_engine *e, page_entry *pe, uint64_t offset, const uint8_t *src,
                       uint64_t len) {
    ASSERT(src != NULL && len > 0);
    ASSERT(offset + len <= pe->size_bytes);
    memcpy(page_bytes(e, pe) + offset, src, len);
}

static void host_load(const mmsb_engine *e, const page_entry *pe, uint64_t offset, uint8_t *dst,
                      uint64_t len) {
    ASSERT(dst != NULL && len > 0);
    ASSERT(offset + len <= pe->size_bytes);
    memcpy(dst, page_bytes(e, pe) + offset, len);
}

const location_ops location_host = {
    .name = "host",
    .diff = host_diff,
    .delta = host_delta,
    .store = host_store,
    .load = host_load,
};
