/*
 * change.c - the two ways to change a page, mmsb_write (diffed against the
 * page) and mmsb_apply (an explicit delta), and their commits.
 *
 * Order: validate everything; find out what changes (diff, or a dry run of
 * the delta); append the DELTA records, built in place in the log buffer;
 * change the page; commit. A rejected call changes nothing, and a call that
 * would change no byte logs nothing and bumps no epoch.
 */
#include <string.h>

#include "../tlog/format.h"
#include "engine.h"

/* A change is logged in parts of at most this many bytes of range. */
_Static_assert((int)WRITE_BLOCK_BYTES == (int)DELTA_LEN_MAX, "one DELTA record per diff block");

int change_commit(mmsb_engine *e, uint64_t *seq_out) {
    h128 root;
    uint32_t every = e->opts.root_every_commits;
    bool with_root = (log_commits(e->log) + 1) % every == 0;
    if (with_root) digest_root(e, &root);
    return log_commit(e->log, with_root ? &root : NULL, 0, seq_out);
}

static void change_fill(mmsb_change *out, const page_entry *pe, uint64_t bytes_changed,
                        uint64_t seq) {
    if (out == NULL) return;
    out->epoch = pe->epoch;
    out->bytes_changed = bytes_changed;
    out->commit_seq = seq;
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

/* One part of a change, as a DELTA record: the bytes [base + first/8*8, ...]
 * of one block, whose mask (bit 0 = byte `base` of the page) has its set
 * bits between first and last. New values come from `dense` (byte i of the
 * block at dense[i]) or, when dense is NULL, packed in order from `packed`. */
typedef struct delta_part {
    uint64_t page_id, epoch, base;
    const uint8_t *mask;
    uint64_t block_len;
    uint64_t first, last, count;
    const uint8_t *dense;
    const uint8_t *packed;
} delta_part;

static int log_delta_part(mmsb_engine *e, const delta_part *part) {
    uint64_t start = part->first & ~7ull;
    uint64_t end = min_u64(part->block_len, (part->last | 7) + 1);
    uint64_t len = end - start, mask_bytes = (len + 7) / 8;
    const uint8_t *mask = part->mask + start / 8;
    bool full = part->count == len;
    uint64_t payload = DELTA_FIXED_BYTES + (full ? len : mask_bytes + part->count);
    uint8_t *p;
    int rc = log_append(e->log, REC_DELTA, (uint32_t)payload, &p);
    if (rc != 0) return rc;
    put_le64(p, part->page_id);
    put_le64(p + 8, part->epoch);
    put_le64(p + 16, part->base + start);
    put_le64(p + 24, len);
    put_le32(p + 32, full ? DELTA_FULL : DELTA_SPARSE);
    put_le32(p + 36, 0);
    uint8_t *body = p + DELTA_FIXED_BYTES;
    if (full) {
        memcpy(body, part->dense != NULL ? part->dense + start : part->packed, len);
    } else {
        memcpy(body, mask, mask_bytes);
        if (part->dense != NULL) {
            uint64_t n = e->kern->compress(body + mask_bytes, part->dense + start, mask, len);
            ASSERT(n == part->count);
        } else {
            memcpy(body + mask_bytes, part->packed, part->count);
        }
    }
    log_append_done(e->log);
    return 0;
}

/* ---- mmsb_write -------------------------------------------------------------------- */

static int write_logged(mmsb_engine *e, uint64_t id, uint64_t offset, const uint8_t *bytes,
                        uint64_t len, mmsb_change *out) {
    page_entry *pe = NULL;
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
    /* Diff block by block (the mask scratch is bounded), logging each block
     * that changes; then copy the changed span once. */
    uint64_t changed = 0, first = UINT64_MAX, last = 0;
    for (uint64_t block = 0; block < len; block += WRITE_BLOCK_BYTES) {
        uint64_t n = min_u64(WRITE_BLOCK_BYTES, len - block);
        uint64_t c = e->kern->diff(page + block, bytes + block, n, e->mask_scratch);
        if (c == 0) continue;
        delta_part part = {.page_id = id, .epoch = pe->epoch + 1, .base = offset + block,
                           .mask = e->mask_scratch, .block_len = n, .count = c,
                           .dense = bytes + block};
        bool any = mask_bounds(e->mask_scratch, (n + 7) / 8, &part.first, &part.last);
        ASSERT(any);
        rc = log_delta_part(e, &part);
        if (rc != 0) return rc;
        first = min_u64(first, block + part.first);
        last = block + part.last;
        changed += c;
    }
    uint64_t seq = 0;
    if (changed > 0) {
        entry_write_begin(pe);
        memcpy(page + first, bytes + first, last - first + 1);
        pe->epoch++;
        digest_mark(e, id, pe, offset + first, last - first + 1);
        entry_write_end(pe);
        rc = change_commit(e, &seq);
    }
    change_fill(out, pe, changed, seq);
    return rc;
}

MMSB_API int mmsb_write(mmsb_engine *engine, uint64_t page_id, uint64_t offset,
                        const void *bytes, uint64_t len, mmsb_change *change_out) {
    int rc = engine_enter(engine, "mmsb_write");
    if (rc != 0) return rc;
    rc = write_logged(engine, page_id, offset, bytes, len, change_out);
    engine_leave(engine);
    return rc;
}

/* ---- mmsb_apply -------------------------------------------------------------------- */

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

static uint64_t delta_run(const mmsb_engine *e, const mmsb_delta *d, uint8_t *dst, bool store) {
    if (d->flags & MMSB_DELTA_SPARSE) {
        return e->kern->apply_sparse(dst, d->payload, d->payload_len, d->mask, d->len, store);
    }
    return e->kern->apply_dense(dst, d->payload, d->mask, d->len, store);
}

/* Logs the delta as it was given, one DELTA record per block with bits set. */
static int log_delta(mmsb_engine *e, const mmsb_delta *d, uint64_t epoch) {
    bool sparse = (d->flags & MMSB_DELTA_SPARSE) != 0;
    uint64_t packed_off = 0;
    for (uint64_t block = 0; block < d->len; block += WRITE_BLOCK_BYTES) {
        uint64_t n = min_u64(WRITE_BLOCK_BYTES, d->len - block);
        const uint8_t *mask = d->mask + block / 8;
        delta_part part = {.page_id = d->page_id, .epoch = epoch, .base = d->offset + block,
                           .mask = mask, .block_len = n,
                           .count = e->kern->popcount(mask, (n + 7) / 8),
                           .dense = sparse ? NULL : d->payload + block,
                           .packed = sparse ? d->payload + packed_off : NULL};
        packed_off += part.count;
        if (part.count == 0) continue;
        mask_bounds(mask, (n + 7) / 8, &part.first, &part.last);
        int rc = log_delta_part(e, &part);
        if (rc != 0) return rc;
    }
    return 0;
}

static int apply_logged(mmsb_engine *e, const mmsb_delta *d, mmsb_change *out) {
    page_entry *pe = NULL;
    int rc = delta_check(e, d, &pe);
    if (rc != 0) return rc;
    uint8_t *dst = page_bytes(e, pe) + d->offset;
    uint64_t changed = d->len > 0 ? delta_run(e, d, dst, false) : 0;
    uint64_t seq = 0, first, last;
    if (changed > 0) {
        rc = log_delta(e, d, pe->epoch + 1);
        if (rc != 0) return rc;
        mask_bounds(d->mask, (d->len + 7) / 8, &first, &last);
        entry_write_begin(pe);
        uint64_t applied = delta_run(e, d, dst, true);
        ASSERT(applied == changed);
        pe->epoch++;
        digest_mark(e, d->page_id, pe, d->offset + first, last - first + 1);
        entry_write_end(pe);
        rc = change_commit(e, &seq);
    }
    change_fill(out, pe, changed, seq);
    return rc;
}

MMSB_API int mmsb_apply(mmsb_engine *engine, const mmsb_delta *delta, mmsb_change *change_out) {
    int rc = engine_enter(engine, "mmsb_apply");
    if (rc != 0) return rc;
    rc = apply_logged(engine, delta, change_out);
    engine_leave(engine);
    return rc;
}
