/*
 * change.c - the two ways to change a page: mmsb_write (diffed against the
 * page) and mmsb_apply (an explicit delta). Both validate everything before
 * they touch a byte, so a rejected call changes nothing.
 */
#include <string.h>

#include "engine.h"

static void change_fill(mmsb_change *out, const mmsb_engine *e, const page_entry *pe,
                        uint64_t bytes_changed) {
    if (out == NULL) return;
    out->epoch = pe->epoch;
    out->bytes_changed = bytes_changed;
    out->commit_seq = bytes_changed > 0 ? e->commit_seq : 0;
}

/* Offsets of the first and last set bits of a mask; false when none is set. */
static bool mask_bounds(const uint8_t *mask, uint64_t mask_bytes, uint64_t *first,
                        uint64_t *last) {
    uint64_t lo = 0;
    while (lo < mask_bytes && mask[lo] == 0) lo++;
    if (lo == mask_bytes) return false;
    uint64_t hi = mask_bytes - 1;
    while (mask[hi] == 0) hi--;
    *first = lo * 8 + (uint64_t)__builtin_ctz(mask[lo]);
    *last = hi * 8 + 31 - (uint64_t)__builtin_clz(mask[hi]);
    return true;
}

static int range_check(const page_entry *pe, uint64_t id, uint64_t offset, uint64_t len,
                       const char *fn) {
    if (offset > pe->size_bytes || len > pe->size_bytes - offset) {
        return err_set(MMSB_EINVAL, "%s: range offset %llu + len %llu exceeds page %llu of %llu bytes",
                       fn, (unsigned long long)offset, (unsigned long long)len,
                       (unsigned long long)id, (unsigned long long)pe->size_bytes);
    }
    return 0;
}

/* Commits bytes [first, last] of the page, already changed in place inside
 * the caller's seqlock window: one epoch, one commit. */
static void change_commit(mmsb_engine *e, uint64_t id, page_entry *pe, uint64_t first,
                          uint64_t last) {
    ASSERT(first <= last && last < pe->size_bytes);
    pe->epoch++;
    digest_mark(e, id, pe, first, last - first + 1);
    e->commit_seq++;
}

static int write_checked(mmsb_engine *e, uint64_t id, uint64_t offset, const uint8_t *bytes,
                         uint64_t len, mmsb_change *out) {
    page_entry *pe;
    int rc = page_lookup(e, id, "mmsb_write", &pe);
    if (rc == 0) rc = range_check(pe, id, offset, len, "mmsb_write");
    if (rc != 0) return rc;
    if (bytes == NULL && len > 0) {
        return err_set(MMSB_EINVAL, "mmsb_write: bytes is NULL with len %llu", (unsigned long long)len);
    }
    uint8_t *page = page_bytes(e, pe) + offset;
    if (ranges_overlap(bytes, len, page_bytes(e, pe), pe->size_bytes)) {
        return err_set(MMSB_EINVAL, "mmsb_write: bytes overlap page %llu itself", (unsigned long long)id);
    }
    /* Diff block by block (the mask scratch is bounded), remembering the
     * first and last changed byte; then copy that span once. */
    uint64_t changed = 0, first = UINT64_MAX, last = 0;
    for (uint64_t block = 0; block < len; block += WRITE_BLOCK_BYTES) {
        uint64_t n = min_u64(WRITE_BLOCK_BYTES, len - block);
        uint64_t c = e->kern->diff(page + block, bytes + block, n, e->mask_scratch);
        if (c == 0) continue;
        uint64_t f, l;
        bool any = mask_bounds(e->mask_scratch, (n + 7) / 8, &f, &l);
        ASSERT(any);
        first = min_u64(first, block + f);
        last = block + l;
        changed += c;
    }
    if (changed > 0) {
        entry_write_begin(pe);
        memcpy(page + first, bytes + first, last - first + 1);
        change_commit(e, id, pe, offset + first, offset + last);
        entry_write_end(pe);
    }
    change_fill(out, e, pe, changed);
    return 0;
}

MMSB_API int mmsb_write(mmsb_engine *engine, uint64_t page_id, uint64_t offset,
                        const void *bytes, uint64_t len, mmsb_change *change_out) {
    int rc = engine_enter(engine, "mmsb_write");
    if (rc != 0) return rc;
    rc = write_checked(engine, page_id, offset, bytes, len, change_out);
    engine_leave(engine);
    return rc;
}

/* Everything about a delta that can be wrong, checked before any byte moves. */
static int delta_check(mmsb_engine *e, const mmsb_delta *d, page_entry **pe_out) {
    if (d == NULL) return err_set(MMSB_EINVAL, "mmsb_apply: delta is NULL");
    const uint32_t known = MMSB_DELTA_SPARSE | MMSB_DELTA_EXPECT_EPOCH;
    if (d->flags & ~known) return err_set(MMSB_EINVAL, "mmsb_apply: unknown delta flags 0x%x", d->flags & ~known);
    if (d->reserved0 != 0) return err_set(MMSB_EINVAL, "mmsb_apply: delta reserved0 is %u, must be 0", d->reserved0);
    page_entry *pe;
    int rc = page_lookup(e, d->page_id, "mmsb_apply", &pe);
    if (rc == 0) rc = range_check(pe, d->page_id, d->offset, d->len, "mmsb_apply");
    if (rc != 0) return rc;
    uint64_t mask_bytes = (d->len + 7) / 8;
    if (d->mask == NULL && d->len > 0) return err_set(MMSB_EINVAL, "mmsb_apply: mask is NULL with len %llu", (unsigned long long)d->len);
    if (d->len % 8 != 0 && (d->mask[mask_bytes - 1] >> (d->len % 8)) != 0) {
        return err_set(MMSB_EINVAL, "mmsb_apply: mask byte %llu has bits set past len %llu",
                       (unsigned long long)(mask_bytes - 1), (unsigned long long)d->len);
    }
    bool sparse = (d->flags & MMSB_DELTA_SPARSE) != 0;
    uint64_t need = sparse ? e->kern->popcount(d->mask, mask_bytes) : d->len;
    if (d->payload_len != need) {
        return err_set(MMSB_EINVAL, "mmsb_apply: payload_len %llu, expected %llu (%s)",
                       (unsigned long long)d->payload_len, (unsigned long long)need,
                       sparse ? "sparse: popcount of the mask" : "dense: len");
    }
    if (d->payload == NULL && d->payload_len > 0) return err_set(MMSB_EINVAL, "mmsb_apply: payload is NULL with payload_len %llu", (unsigned long long)d->payload_len);
    const uint8_t *page = page_bytes(e, pe);
    if (ranges_overlap(d->mask, mask_bytes, page, pe->size_bytes) ||
        ranges_overlap(d->payload, d->payload_len, page, pe->size_bytes)) {
        return err_set(MMSB_EINVAL, "mmsb_apply: mask or payload overlaps page %llu itself",
                       (unsigned long long)d->page_id);
    }
    if ((d->flags & MMSB_DELTA_EXPECT_EPOCH) && pe->epoch != d->expected_epoch) {
        return err_set(MMSB_ECONFLICT, "mmsb_apply: page %llu is at epoch %llu, the delta expects %llu",
                       (unsigned long long)d->page_id, (unsigned long long)pe->epoch,
                       (unsigned long long)d->expected_epoch);
    }
    *pe_out = pe;
    return 0;
}

static int apply_checked(mmsb_engine *e, const mmsb_delta *d, mmsb_change *out) {
    page_entry *pe;
    int rc = delta_check(e, d, &pe);
    if (rc != 0) return rc;
    uint64_t first, last, changed = 0;
    if (d->len > 0 && mask_bounds(d->mask, (d->len + 7) / 8, &first, &last)) {
        uint8_t *dst = page_bytes(e, pe) + d->offset;
        entry_write_begin(pe);
        changed = (d->flags & MMSB_DELTA_SPARSE)
                      ? e->kern->apply_sparse(dst, d->payload, d->payload_len, d->mask, d->len)
                      : e->kern->apply_dense(dst, d->payload, d->mask, d->len);
        if (changed > 0) change_commit(e, d->page_id, pe, d->offset + first, d->offset + last);
        entry_write_end(pe);
    }
    change_fill(out, e, pe, changed);
    return 0;
}

MMSB_API int mmsb_apply(mmsb_engine *engine, const mmsb_delta *delta, mmsb_change *change_out) {
    int rc = engine_enter(engine, "mmsb_apply");
    if (rc != 0) return rc;
    rc = apply_checked(engine, delta, change_out);
    engine_leave(engine);
    return rc;
}
