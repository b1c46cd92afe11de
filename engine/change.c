/*
 * change.c - the writing calls that change pages: create, free, write,
 * apply and apply_batch. Each one reads top to bottom: validate every
 * argument, begin a commit, log the change's records, apply them to the
 * page (page_change), note the change, finish the commit (propagate,
 * COMMIT, durability, events); the checkpoint policy runs as the call
 * leaves (engine_leave_writer). A change that would change no byte logs
 * nothing and commits nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "change.h"
#include "changeset.h"
#include "commit.h"
#include "derive.h"
#include "page.h"
#include "record.h"
#include "role.h"

enum { BATCH_DELTAS_MAX = 1 << 24 };

/* ---- create and free --------------------------------------------------------- */

/* A create's placement flags: one of them at most, and the device only
 * where there is a device location. */
static int create_flags_check(const mmsb_engine *e, uint32_t flags, const char *fn) {
    if (!page_flags_valid(flags)) {
        return err_set(MMSB_EINVAL, "%s: flags 0x%x are not 0, MMSB_PAGE_HOST or MMSB_PAGE_DEVICE", fn, flags);
    }
    if ((flags & MMSB_PAGE_DEVICE) && e->dv.dev == NULL) {
        return err_set(MMSB_ENOTSUP, "%s: MMSB_PAGE_DEVICE, but this engine has no device (gpu: %s)", fn,
                       e->gpu.text);
    }
    return 0;
}

/* Memory first (it can run out), then the log record, then the page. */
static int create_logged(mmsb_engine *e, uint64_t size_bytes, uint32_t flags, uint64_t *page_id_out) {
    ASSERT(!e->read_only && !e->cc.active);
    if (page_id_out == NULL) return err_set(MMSB_EINVAL, "mmsb_page_create: page_id_out is NULL");
    int rc = create_flags_check(e, flags, "mmsb_page_create");
    if (rc != 0) return rc;
    page_alloc a;
    rc = page_prepare(e, size_bytes, "mmsb_page_create", &a);
    if (rc != 0) return rc;
    commit_begin(e);
    uint64_t id = atomic_load_explicit(&e->page_id_next, memory_order_relaxed);
    rc = record_create(e, id, size_bytes, flags);
    if (rc != 0) {
        commit_abandon(e, rc);
        page_prepare_undo(e, size_bytes, &a);
        return rc;
    }
    *page_id_out = page_publish(e, size_bytes, flags, &a);
    ASSERT(*page_id_out == id);
    uint64_t seq;
    return commit_finish(e, 0, &seq);
}

MMSB_API int mmsb_page_create(mmsb_engine *engine, uint64_t size_bytes, uint32_t flags,
                              uint64_t *page_id_out) {
    int rc = engine_enter_writer(engine, "mmsb_page_create");
    if (rc != 0) return rc;
    rc = create_logged(engine, size_bytes, flags, page_id_out);
    return engine_leave_writer(engine, rc);
}

static void undo_prepared(mmsb_engine *e, uint64_t size_bytes, const page_alloc *a, uint64_t count) {
    ASSERT(a != NULL || count == 0);
    for (uint64_t k = count; k > 0; k--) page_prepare_undo(e, size_bytes, &a[k - 1]);
}

static int create_many_check(const mmsb_engine *e, uint32_t flags, uint64_t count, const uint64_t *first_out) {
    ASSERT(e != NULL);
    const char *fn = "mmsb_page_create_many";
    if (first_out == NULL) return err_set(MMSB_EINVAL, "%s: first_id_out is NULL", fn);
    int rc = create_flags_check(e, flags, fn);
    if (rc != 0) return rc;
    if (count == 0 || count > MMSB_PAGES_PER_CREATE_MAX) {
        return err_set(MMSB_EINVAL, "%s: count %llu outside 1..%u", fn, (unsigned long long)count,
                       MMSB_PAGES_PER_CREATE_MAX);
    }
    uint64_t next = atomic_load_explicit(&e->page_id_next, memory_order_relaxed);
    if (next + count - 1 > e->opts.pages_max) {
        return err_set(MMSB_ENOSPC, "%s: %llu pages from id %llu pass pages_max (%llu); ids are never reused", fn,
                       (unsigned long long)count, (unsigned long long)next, (unsigned long long)e->opts.pages_max);
    }
    return 0;
}

/* As create_logged for `count` pages in one commit: all the memory first,
 * then every record, then the pages, so that a failure leaves nothing. */
static int create_many_logged(mmsb_engine *e, uint64_t size_bytes, uint32_t flags, uint64_t count,
                              uint64_t *first_out) {
    ASSERT(!e->read_only && !e->cc.active);
    int rc = create_many_check(e, flags, count, first_out);
    if (rc != 0) return rc;
    page_alloc *a = malloc(count * sizeof *a); /* one per call, never per page */
    if (a == NULL) return err_set(MMSB_ENOMEM, "mmsb_page_create_many: %llu allocations", (unsigned long long)count);
    uint64_t first = atomic_load_explicit(&e->page_id_next, memory_order_relaxed), prepared = 0;
    rc = page_prepare_many(e, first, count, size_bytes, "mmsb_page_create_many", a, &prepared);
    if (rc == 0) commit_begin(e);
    for (uint64_t k = 0; k < count && rc == 0; k++) {
        rc = record_create(e, first + k, size_bytes, flags);
        if (rc != 0) commit_abandon(e, rc);
    }
    if (rc != 0) {
        undo_prepared(e, size_bytes, a, prepared);
        free(a);
        return rc;
    }
    for (uint64_t k = 0; k < count; k++) {
        uint64_t id = page_publish(e, size_bytes, flags, &a[k]);
        ASSERT(id == first + k);
    }
    free(a);
    *first_out = first;
    uint64_t seq;
    return commit_finish(e, 0, &seq);
}

MMSB_API int mmsb_page_create_many(mmsb_engine *engine, uint64_t size_bytes, uint32_t flags, uint64_t count,
                                   uint64_t *first_id_out) {
    int rc = engine_enter_writer(engine, "mmsb_page_create_many");
    if (rc != 0) return rc;
    rc = create_many_logged(engine, size_bytes, flags, count, first_id_out);
    return engine_leave_writer(engine, rc);
}

static int free_logged(mmsb_engine *e, uint64_t page_id) {
    ASSERT(!e->read_only && !e->cc.active);
    page_entry *pe;
    int rc = page_lookup(e, page_id, "mmsb_page_free", &pe);
    if (rc == 0) rc = derive_page_freeing(e, page_id, true);
    if (rc != 0) return rc;
    commit_begin(e);
    rc = record_free(e, page_id);
    if (rc != 0) {
        commit_abandon(e, rc);
        return rc;
    }
    page_remove(e, page_id, pe);
    rc = derive_page_freeing(e, page_id, false);
    ASSERT(rc == 0); /* checked above, and nothing changed the graph since */
    uint64_t seq;
    return commit_finish(e, 0, &seq);
}

MMSB_API int mmsb_page_free(mmsb_engine *engine, uint64_t page_id) {
    int rc = engine_enter_writer(engine, "mmsb_page_free");
    if (rc != 0) return rc;
    rc = free_logged(engine, page_id);
    return engine_leave_writer(engine, rc);
}

/* ---- validation -------------------------------------------------------------- */

static int range_check(const page_entry *pe, uint64_t id, uint64_t offset, uint64_t len, const char *fn) {
    ASSERT(pe != NULL && (pe->flags & PE_LIVE) && fn != NULL);
    ASSERT(id >= 1);
    if (offset > pe->size_bytes || len > pe->size_bytes - offset) {
        return err_set(MMSB_EINVAL, "%s: range offset %llu + len %llu exceeds page %llu of %llu bytes",
                       fn, (unsigned long long)offset, (unsigned long long)len,
                       (unsigned long long)id, (unsigned long long)pe->size_bytes);
    }
    return 0;
}

int change_target_check(mmsb_engine *e, uint64_t id, uint64_t offset, uint64_t len, const char *fn,
                        page_entry **pe_out) {
    ASSERT(fn != NULL && pe_out != NULL);
    ASSERT(!e->cc.active || e->touched.count <= e->opts.pages_max);
    int rc = page_lookup(e, id, fn, pe_out);
    if (rc == 0) rc = range_check(*pe_out, id, offset, len, fn);
    if (rc != 0) return rc;
    uint32_t n = graph_node(&e->g, id);
    if (n != 0 && graph_at(&e->g, n)->op != 0) {
        return err_set(MMSB_EINVAL, "%s: page %llu is derived; change its parents instead", fn, (unsigned long long)id);
    }
    return 0;
}

static int write_check(mmsb_engine *e, uint64_t id, uint64_t offset, const uint8_t *bytes,
                       uint64_t len, const char *fn, page_entry **pe_out) {
    ASSERT(pe_out != NULL && fn != NULL);
    int rc = change_target_check(e, id, offset, len, fn, pe_out);
    if (rc != 0) return rc;
    if (bytes == NULL && len > 0)
        return err_set(MMSB_EINVAL, "%s: bytes is NULL with len %llu", fn, (unsigned long long)len);
    if (ranges_overlap(bytes, len, page_bytes(e, *pe_out), (*pe_out)->size_bytes)) {
        return err_set(MMSB_EINVAL, "%s: bytes overlap page %llu itself", fn, (unsigned long long)id);
    }
    return 0;
}

static int mask_check(const mmsb_delta *d, const char *fn) {
    ASSERT(d != NULL && fn != NULL);
    uint64_t mask_bytes = (d->len + 7) / 8;
    if (d->mask == NULL && d->len > 0)
        return err_set(MMSB_EINVAL, "%s: mask is NULL with len %llu", fn, (unsigned long long)d->len);
    if (d->len % 8 != 0 && (d->mask[mask_bytes - 1] >> (d->len % 8)) != 0) {
        return err_set(MMSB_EINVAL, "%s: mask byte %llu has bits set past len %llu", fn,
                       (unsigned long long)(mask_bytes - 1), (unsigned long long)d->len);
    }
    return 0;
}

/* Everything about a delta that can be wrong, checked before any byte moves.
 * The expected epoch is checked against the page as it is now: before the
 * commit that holds the delta. */
int change_delta_check(mmsb_engine *e, const mmsb_delta *d, const char *fn, page_entry **pe_out) {
    ASSERT(fn != NULL && pe_out != NULL);
    if (d == NULL) return err_set(MMSB_EINVAL, "%s: delta is NULL", fn);
    const uint32_t known = MMSB_DELTA_SPARSE | MMSB_DELTA_EXPECT_EPOCH;
    if (d->flags & ~known) return err_set(MMSB_EINVAL, "%s: unknown delta flags 0x%x", fn, d->flags & ~known);
    if (d->reserved0 != 0) return err_set(MMSB_EINVAL, "%s: delta reserved0 is %u, must be 0", fn, d->reserved0);
    page_entry *pe;
    int rc = change_target_check(e, d->page_id, d->offset, d->len, fn, &pe);
    if (rc == 0) rc = mask_check(d, fn);
    if (rc != 0) return rc;
    bool sparse = (d->flags & MMSB_DELTA_SPARSE) != 0;
    uint64_t need = sparse ? e->kern->popcount(d->mask, (d->len + 7) / 8) : d->len;
    if (d->payload_len != need) {
        return err_set(MMSB_EINVAL, "%s: payload_len %llu, expected %llu (%s)", fn,
                       (unsigned long long)d->payload_len, (unsigned long long)need,
                       sparse ? "sparse: popcount of the mask" : "dense: len");
    }
    if (d->payload == NULL && d->payload_len > 0)
        return err_set(MMSB_EINVAL, "%s: payload is NULL with payload_len %llu", fn,
                       (unsigned long long)d->payload_len);
    const uint8_t *page = page_bytes(e, pe);
    if (ranges_overlap(d->mask, (d->len + 7) / 8, page, pe->size_bytes) ||
        ranges_overlap(d->payload, d->payload_len, page, pe->size_bytes)) {
        return err_set(MMSB_EINVAL, "%s: mask or payload overlaps page %llu itself", fn,
                       (unsigned long long)d->page_id);
    }
    if ((d->flags & MMSB_DELTA_EXPECT_EPOCH) && pe->epoch != d->expected_epoch) {
        return err_set(MMSB_ECONFLICT, "%s: page %llu is at epoch %llu, the delta expects %llu", fn,
                       (unsigned long long)d->page_id, (unsigned long long)pe->epoch,
                       (unsigned long long)d->expected_epoch);
    }
    *pe_out = pe;
    ASSERT(pe == entry_of(e, d->page_id));
    return 0;
}

/* ---- changing bytes: log, apply, note ------------------------------------------ */

/* Diffs block by block (the mask scratch is bounded), logging each block
 * that changes; then changes the changed span once. */
int change_write(mmsb_engine *e, uint64_t id, page_entry *pe, uint64_t offset, const uint8_t *bytes,
                 uint64_t len, uint64_t *changed_out) {
    ASSERT(e->cc.active);
    ASSERT(offset + len <= pe->size_bytes);
    const location_ops *loc = location_of(e, pe);
    uint64_t changed = 0, first = UINT64_MAX, last = 0, epoch = touched_epoch(e, id, pe);
    int rc = touched_prepare(e);
    for (uint64_t block = 0; rc == 0 && block < len; block += WRITE_BLOCK_BYTES) {
        uint64_t n = min_u64(WRITE_BLOCK_BYTES, len - block);
        uint64_t c = loc->diff(e, pe, offset + block, bytes + block, n, e->mask_scratch);
        if (c == 0) continue;
        delta_part part = {.type = REC_DELTA, .page_id = id, .epoch = epoch,
                           .base = offset + block, .mask = e->mask_scratch, .block_len = n,
                           .count = c, .dense = bytes + block};
        bool any = mask_bounds(e->mask_scratch, (n + 7) / 8, &part.first, &part.last);
        ASSERT(any);
        rc = record_delta_part(e, &part);
        if (rc != 0) return rc;
        first = min_u64(first, block + part.first);
        last = block + part.last;
        changed += c;
    }
    *changed_out = changed;
    if (rc != 0 || changed == 0) return rc;
    uint64_t old_epoch = pe->epoch;
    page_change_args a = {.kind = PAGE_COPY, .offset = offset + first, .len = last - first + 1,
                          .src = bytes + first, .epoch = epoch};
    page_change(e, id, pe, &a);
    change_note(e, id, pe, old_epoch, offset + first, offset + last + 1, changed, MMSB_EVENT_PAGE_CHANGED);
    return 0;
}

/* Logs the delta as it was given, one DELTA record per block with bits set. */
static int record_delta(mmsb_engine *e, const mmsb_delta *d, uint64_t epoch) {
    ASSERT(e->cc.active && epoch >= 1);
    bool sparse = (d->flags & MMSB_DELTA_SPARSE) != 0;
    uint64_t packed_off = 0;
    for (uint64_t block = 0; block < d->len; block += WRITE_BLOCK_BYTES) {
        uint64_t n = min_u64(WRITE_BLOCK_BYTES, d->len - block);
        const uint8_t *mask = d->mask + block / 8;
        delta_part part = {.type = REC_DELTA, .page_id = d->page_id, .epoch = epoch,
                           .base = d->offset + block, .mask = mask, .block_len = n,
                           .count = e->kern->popcount(mask, (n + 7) / 8),
                           .dense = sparse ? NULL : d->payload + block,
                           .packed = sparse ? d->payload + packed_off : NULL};
        packed_off += part.count;
        if (part.count == 0) continue;
        mask_bounds(mask, (n + 7) / 8, &part.first, &part.last);
        int rc = record_delta_part(e, &part);
        if (rc != 0) return rc;
    }
    ASSERT(packed_off <= d->len);
    return 0;
}

int change_apply(mmsb_engine *e, const mmsb_delta *d, page_entry *pe, uint64_t *changed_out) {
    ASSERT(e->cc.active);
    ASSERT(pe == entry_of(e, d->page_id));
    const location_ops *loc = location_of(e, pe);
    uint64_t changed = d->len > 0 ? loc->delta(e, pe, d, false) : 0;
    *changed_out = changed;
    if (changed == 0) return 0;
    uint64_t epoch = touched_epoch(e, d->page_id, pe);
    int rc = touched_prepare(e);
    if (rc == 0) rc = record_delta(e, d, epoch);
    if (rc != 0) return rc;
    uint64_t first = 0, last = 0, old_epoch = pe->epoch;
    bool any = mask_bounds(d->mask, (d->len + 7) / 8, &first, &last);
    ASSERT(any); /* something changed, so some bit is set */
    page_change_args a = {.kind = PAGE_APPLY, .offset = d->offset + first, .len = last - first + 1,
                          .delta = d, .epoch = epoch};
    uint64_t applied = page_change(e, d->page_id, pe, &a);
    ASSERT(applied == changed);
    change_note(e, d->page_id, pe, old_epoch, d->offset + first, d->offset + last + 1, changed,
                MMSB_EVENT_PAGE_CHANGED);
    return 0;
}

/* ---- the calls --------------------------------------------------------------------- */

static void change_out(mmsb_change *out, const page_entry *pe, uint64_t changed, uint64_t seq) {
    ASSERT(pe != NULL && changed <= pe->size_bytes);
    if (out == NULL) return;
    out->epoch = pe->epoch;
    out->bytes_changed = changed;
    out->commit_seq = seq;
    ASSERT((changed == 0) == (seq == 0)); /* a change that changes nothing commits nothing */
}

MMSB_API int mmsb_write(mmsb_engine *engine, uint64_t page_id, uint64_t offset,
                        const void *bytes, uint64_t len, mmsb_change *change_out_) {
    int rc = engine_enter_writer(engine, "mmsb_write");
    if (rc != 0) return rc;
    page_entry *pe = NULL;
    rc = write_check(engine, page_id, offset, bytes, len, "mmsb_write", &pe);
    if (rc == 0) {
        uint64_t changed = 0, seq = 0;
        commit_begin(engine);
        rc = change_write(engine, page_id, pe, offset, bytes, len, &changed);
        if (rc == 0) rc = commit_finish(engine, 0, &seq);
        else commit_abandon(engine, rc);
        if (rc == 0) change_out(change_out_, pe, changed, seq);
    }
    return engine_leave_writer(engine, rc);
}

MMSB_API int mmsb_apply(mmsb_engine *engine, const mmsb_delta *delta, mmsb_change *change_out_) {
    int rc = engine_enter_writer(engine, "mmsb_apply");
    if (rc != 0) return rc;
    page_entry *pe = NULL;
    rc = change_delta_check(engine, delta, "mmsb_apply", &pe);
    if (rc == 0) {
        uint64_t changed = 0, seq = 0;
        commit_begin(engine);
        rc = change_apply(engine, delta, pe, &changed);
        if (rc == 0) rc = commit_finish(engine, 0, &seq);
        else commit_abandon(engine, rc);
        if (rc == 0) change_out(change_out_, pe, changed, seq);
    }
    return engine_leave_writer(engine, rc);
}

static int batch_check(mmsb_engine *e, const mmsb_delta *deltas, uint64_t count, uint32_t durability,
                       const mmsb_commit_result *out) {
    ASSERT(!e->cc.active);
    if (deltas == NULL && count > 0)
        return err_set(MMSB_EINVAL, "mmsb_apply_batch: deltas is NULL with count %llu", (unsigned long long)count);
    if (count > BATCH_DELTAS_MAX)
        return err_set(MMSB_EINVAL, "mmsb_apply_batch: count %llu exceeds %d", (unsigned long long)count,
                       BATCH_DELTAS_MAX);
    int rc = commit_durability_check(e, durability, "mmsb_apply_batch");
    if (rc == 0) rc = commit_result_check(out, "mmsb_apply_batch");
    page_entry *pe;
    for (uint64_t i = 0; rc == 0 && i < count; i++) {
        rc = change_delta_check(e, &deltas[i], "mmsb_apply_batch", &pe);
        if (rc != 0) {
            char detail[512];
            snprintf(detail, sizeof detail, "%s", mmsb_last_error());
            rc = err_set(rc, "delta %llu: %s", (unsigned long long)i, detail);
        }
    }
    return rc;
}

static int batch_run(mmsb_engine *e, const mmsb_delta *deltas, uint64_t count, uint32_t durability,
                     mmsb_commit_result *out) {
    ASSERT(!e->read_only && !e->cc.active);
    int rc = batch_check(e, deltas, count, durability, out);
    if (rc != 0) return rc;
    commit_begin(e);
    uint64_t seq, changed;
    for (uint64_t i = 0; rc == 0 && i < count; i++) {
        rc = change_apply(e, &deltas[i], entry_of(e, deltas[i].page_id), &changed);
    }
    if (rc == 0) rc = commit_finish(e, durability, &seq);
    else commit_abandon(e, rc);
    if (rc == 0) commit_result_out(e, out);
    return rc;
}

MMSB_API int mmsb_apply_batch(mmsb_engine *engine, const mmsb_delta *deltas, uint64_t count,
                              uint32_t durability, mmsb_commit_result *result) {
    int rc = engine_enter_writer(engine, "mmsb_apply_batch");
    if (rc != 0) return rc;
    rc = batch_run(engine, deltas, count, durability, result);
    return engine_leave_writer(engine, rc);
}
