/*
 * router.c - the one path every change takes: validate, change (log the
 * records, then the bytes), propagate, commit, deliver events.
 *
 * Single writes and deltas, batches and transactions all build a commit the
 * same way. Everything that can be wrong with the arguments is checked before
 * the first record is appended; a change that would change no byte logs
 * nothing. The only failure after that point that is not an I/O error is a
 * user operation failing during propagation: then the journal (old bytes,
 * old epochs, old signatures, kept whenever user operations exist) restores
 * every page and an ABORT record voids the commit's records in the log.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tlog/format.h"
#include "engine.h"

enum {
    BATCH_DELTAS_MAX = 1 << 24,
    JOURNAL_BYTES_MIN = 1 << 20,
};

/* ---- log records of changes ----------------------------------------------------- */

int log_delta_part(mmsb_engine *e, const delta_part *part) {
    uint64_t start = part->first & ~7ull;
    uint64_t end = min_u64(part->block_len, (part->last | 7) + 1);
    uint64_t len = end - start, mask_bytes = (len + 7) / 8;
    const uint8_t *mask = part->mask + start / 8;
    bool full = part->count == len;
    uint32_t fixed = part->type == REC_DERIVED ? DERIVED_FIXED_BYTES : DELTA_FIXED_BYTES;
    uint64_t payload = fixed + (full ? len : mask_bytes + part->count);
    uint8_t *p;
    int rc = log_append(e->log, part->type, (uint32_t)payload, &p);
    if (rc != 0) return rc;
    put_le64(p, part->page_id);
    put_le64(p + 8, part->epoch);
    uint8_t *range = p + 16;
    if (part->type == REC_DERIVED) {
        put_h128(p + 16, part->signature);
        range = p + 32;
    }
    put_le64(range, part->base + start);
    put_le64(range + 8, len);
    put_le32(range + 16, full ? DELTA_FULL : DELTA_SPARSE);
    put_le32(range + 20, 0);
    uint8_t *body = p + fixed;
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

int log_backdate(mmsb_engine *e, uint64_t id, uint64_t epoch, h128 signature) {
    uint8_t *p;
    int rc = log_append(e->log, REC_DERIVED, DERIVED_FIXED_BYTES, &p);
    if (rc != 0) return rc;
    memset(p, 0, DERIVED_FIXED_BYTES);
    put_le64(p, id);
    put_le64(p + 8, epoch);
    put_h128(p + 16, signature);
    log_append_done(e->log);
    return 0;
}

/* ---- the journal ----------------------------------------------------------------- */

enum { J_BYTES = 1, J_SIGNATURE = 2 };

typedef struct jentry {
    uint32_t kind;
    uint32_t pad0;
    uint64_t page_id, offset, len, old_epoch;
    h128 old_signature;
} jentry;

/* Appends an entry (header, old bytes, then its total size, so the journal
 * can be walked backwards). Overflow loses the ability to roll back, which
 * is only needed if a user operation fails (see commit_abandon). */
static void journal_push(mmsb_engine *e, const jentry *h, const page_entry *pe) {
    commit_ctx *c = &e->cc;
    if (!c->journaling || c->journal_lost) return;
    uint64_t total = sizeof *h + align_up_u64(h->len, 8) + sizeof(uint64_t);
    if (total > c->journal.bytes_max - c->journal_used ||
        vmap_ensure(&c->journal, c->journal_used + total) != 0) {
        c->journal_lost = true;
        return;
    }
    uint8_t *at = c->journal.base + c->journal_used;
    memcpy(at, h, sizeof *h);
    if (h->len > 0) location_of(e, pe)->load(e, pe, h->offset, at + sizeof *h, h->len);
    memcpy(at + total - sizeof(uint64_t), &total, sizeof total);
    c->journal_used += total;
}

void commit_journal_bytes(mmsb_engine *e, uint64_t id, const page_entry *pe, uint64_t offset,
                          uint64_t len) {
    jentry h = {.kind = J_BYTES, .page_id = id, .offset = offset, .len = len, .old_epoch = pe->epoch};
    journal_push(e, &h, pe);
}

void commit_journal_signature(mmsb_engine *e, uint64_t id, h128 old) {
    jentry h = {.kind = J_SIGNATURE, .page_id = id, .old_signature = old};
    journal_push(e, &h, NULL);
}

/* Undoes every journaled change, newest first. */
static void journal_rollback(mmsb_engine *e) {
    commit_ctx *c = &e->cc;
    uint64_t at = c->journal_used;
    while (at > 0) {
        uint64_t total;
        memcpy(&total, c->journal.base + at - sizeof total, sizeof total);
        ASSERT(total <= at);
        at -= total;
        jentry h;
        memcpy(&h, c->journal.base + at, sizeof h);
        if (h.kind == J_SIGNATURE) {
            graph_at(&e->g, graph_node(&e->g, h.page_id))->signature = h.old_signature;
            ckpt_mark(e, h.page_id);
            continue;
        }
        page_entry *pe = entry_of(e, h.page_id);
        ASSERT(pe->flags & PE_LIVE);
        entry_write_begin(pe);
        location_of(e, pe)->store(e, pe, h.offset, c->journal.base + at + sizeof h, h.len);
        pe->epoch = h.old_epoch;
        if (h.len > 0) digest_mark(e, h.page_id, pe, h.offset, h.len);
        entry_write_end(pe);
    }
    c->journal_used = 0;
}

/* ---- events ----------------------------------------------------------------------- */

static bool wants_events(const mmsb_engine *e, uint32_t type) {
    for (uint32_t i = 0; i < e->sub_count; i++) {
        if (e->subs[i].mask & type) return true;
    }
    return false;
}

static void event_push(mmsb_engine *e, uint32_t type, uint64_t id, uint64_t epoch, uint64_t bytes) {
    commit_ctx *c = &e->cc;
    if (!wants_events(e, type)) return;
    uint64_t need = (c->event_count + 1) * sizeof(mmsb_event);
    if (c->event_count == MMSB_EVENTS_PER_COMMIT_MAX || vmap_ensure(&c->events, need) != 0) {
        c->events_lost = true;
        return;
    }
    ((mmsb_event *)c->events.base)[c->event_count++] =
        (mmsb_event){.type = type, .page_id = id, .epoch = epoch, .bytes_changed = bytes};
}

/* Writing calls made from a callback fail in engine_enter (in_callback). */
static void deliver_events(mmsb_engine *e, uint64_t seq) {
    commit_ctx *c = &e->cc;
    if (e->sub_count == 0) return;
    e->in_callback = true;
    mmsb_event *events = (mmsb_event *)c->events.base;
    for (uint64_t k = 0; k <= c->event_count; k++) {
        mmsb_event ev = k < c->event_count
                            ? events[k]
                            : (mmsb_event){.type = MMSB_EVENT_COMMIT,
                                           .flags = c->events_lost ? MMSB_EVENT_TRUNCATED : 0u};
        ev.commit_seq = seq;
        for (uint32_t i = 0; i < e->sub_count; i++) {
            if (e->subs[i].mask & ev.type) e->subs[i].fn(e->subs[i].user, &ev);
        }
    }
    e->in_callback = false;
}

MMSB_API int mmsb_subscribe(mmsb_engine *engine, uint32_t event_mask, mmsb_event_fn fn,
                            void *user, uint64_t *subscription_out) {
    int rc = engine_enter(engine, "mmsb_subscribe");
    if (rc != 0) return rc;
    const uint32_t known = MMSB_EVENT_PAGE_CHANGED | MMSB_EVENT_DERIVED | MMSB_EVENT_COMMIT;
    if (fn == NULL || subscription_out == NULL || event_mask == 0 || (event_mask & ~known)) {
        rc = err_set(MMSB_EINVAL, "mmsb_subscribe: fn and subscription_out are required, event_mask 0x%x must be a non-empty set of MMSB_EVENT_*", event_mask);
    } else if (engine->sub_count == MMSB_SUBSCRIBERS_MAX) {
        rc = err_set(MMSB_ENOSPC, "mmsb_subscribe: %u subscriptions already", MMSB_SUBSCRIBERS_MAX);
    } else {
        *subscription_out = ++engine->sub_next;
        engine->subs[engine->sub_count++] = (subscriber){.id = engine->sub_next, .mask = event_mask, .fn = fn, .user = user};
    }
    engine_leave(engine);
    return rc;
}

MMSB_API int mmsb_unsubscribe(mmsb_engine *engine, uint64_t subscription) {
    int rc = engine_enter(engine, "mmsb_unsubscribe");
    if (rc != 0) return rc;
    rc = err_set(MMSB_ENOTFOUND, "mmsb_unsubscribe: no subscription %llu", (unsigned long long)subscription);
    for (uint32_t i = 0; i < engine->sub_count; i++) {
        if (engine->subs[i].id != subscription) continue;
        memmove(&engine->subs[i], &engine->subs[i + 1], (engine->sub_count - i - 1) * sizeof engine->subs[0]);
        engine->sub_count--;
        rc = 0;
        break;
    }
    engine_leave(engine);
    return rc;
}

/* ---- the commit ----------------------------------------------------------------------- */

static int list_push(uint32_t **list, uint32_t *count, uint32_t *cap, uint32_t v) {
    if (*count == *cap) {
        uint32_t grown = *cap == 0 ? 64 : 2 * *cap;
        uint32_t *l = realloc(*list, grown * sizeof *l);
        if (l == NULL) return err_set(MMSB_ENOMEM, "commit: node list of %u", grown);
        *list = l;
        *cap = grown;
    }
    (*list)[(*count)++] = v;
    return 0;
}

void commit_begin(mmsb_engine *e) {
    commit_ctx *c = &e->cc;
    ASSERT(!c->active);
    c->active = true;
    ASSERT(e->touched.count == 0);
    c->gen++;
    c->journaling = e->g.user_op_pages > 0;
    c->journal_lost = false;
    c->journal_used = 0;
    c->changed_count = c->include_count = 0;
    c->event_count = 0;
    c->events_lost = false;
    c->res = (mmsb_commit_result){.struct_size = sizeof c->res};
}

int commit_include(mmsb_engine *e, uint32_t n) {
    commit_ctx *c = &e->cc;
    return list_push(&c->include, &c->include_count, &c->include_cap, n);
}

void commit_changed(mmsb_engine *e, uint64_t id, const page_entry *pe, uint64_t old_epoch,
                    uint64_t lo, uint64_t hi, uint64_t bytes, uint32_t event) {
    commit_ctx *c = &e->cc;
    uint32_t n = graph_node(&e->g, id);
    if (n != 0) {
        gnode *v = graph_at(&e->g, n);
        if (v->changed_mark != c->gen) {
            v->changed_mark = c->gen;
            v->epoch_at_start = old_epoch;
            v->change_lo = lo;
            v->change_hi = hi;
            /* Out of memory here only loses the range shortcut: propagate
             * also finds changed parents by their mark. */
            if (v->child_count > 0) list_push(&c->changed, &c->changed_count, &c->changed_cap, n);
        } else {
            v->change_lo = min_u64(v->change_lo, lo);
            v->change_hi = max_u64(v->change_hi, hi);
        }
    }
    event_push(e, event, id, pe->epoch, bytes);
}

/* Undoes a commit that cannot finish: the pages from the journal, the
 * records with an ABORT. Without a journal (none was kept, or it overflowed)
 * nothing can be restored, and the engine refuses writes until it is
 * reopened. The caller's error detail (the cause) stays what it reports. */
void commit_abandon(mmsb_engine *e, int rc) {
    commit_ctx *c = &e->cc;
    ASSERT(c->active && rc < 0);
    c->active = false;
    touched_reset(e);
    if (!log_pending(e->log)) return;
    if (c->journaling && !c->journal_lost) {
        journal_rollback(e);
        if (log_abort(e->log) == 0) e->sum.aborts++;
        return;
    }
    char cause[400];
    snprintf(cause, sizeof cause, "%s", mmsb_last_error());
    if (log_failed(e->log) == 0) { /* an I/O error already made the log fail, saying why */
        char why[600];
        snprintf(why, sizeof why, "a commit failed halfway (%.300s) and could not be rolled back%s; reopen the store",
                 cause, c->journal_lost ? " (it changed more than commit_bytes_max)" : "");
        log_fail(e->log, rc, why);
    }
    err_set(rc, "%s; the commit's pages may show its changes until the store is reopened (the log has none of them)",
            cause);
}

static int append_commit(mmsb_engine *e, uint32_t durability, uint64_t *seq_out) {
    h128 root;
    bool with_root = (log_commits(e->log) + 1) % e->opts.root_every_commits == 0;
    if (with_root) digest_root(e, &root);
    return log_commit(e->log, with_root ? &root : NULL, durability, seq_out);
}

int commit_finish(mmsb_engine *e, uint32_t durability, uint64_t *seq_out) {
    commit_ctx *c = &e->cc;
    *seq_out = 0;
    int rc = propagate(e);
    if (rc != 0) {
        commit_abandon(e, rc);
        return rc;
    }
    c->active = false;
    touched_reset(e);
    if (!log_pending(e->log)) return 0; /* nothing changed: no commit */
    rc = append_commit(e, durability, seq_out);
    if (rc != 0) return rc;
    c->res.commit_seq = *seq_out;
    e->sum.commits++;
    e->sum.recomputes += c->res.recomputes;
    e->sum.skips += c->res.skips;
    e->sum.backdates += c->res.backdates;
    e->sum.delta_propagations += c->res.delta_propagations;
    deliver_events(e, *seq_out);
    /* The commit stands whatever the checkpoint does: a failed checkpoint is
     * reported in the engine info and tried again at the next commit. */
    checkpoint_maybe(e);
    return 0;
}

void commit_result_out(const mmsb_engine *e, mmsb_commit_result *out) {
    if (out == NULL) return;
    uint32_t size = out->struct_size;
    memcpy(out, &e->cc.res, min_u64(size, sizeof *out));
    out->struct_size = size;
}

int commit_result_check(const mmsb_commit_result *out, const char *fn) {
    if (out != NULL && out->struct_size < sizeof *out) {
        return err_set(MMSB_EINVAL, "%s: result->struct_size %u is below %zu", fn, out->struct_size, sizeof *out);
    }
    return 0;
}

static int durability_check(uint32_t durability, const char *fn) {
    if (durability > MMSB_DURABILITY_SYNC) {
        return err_set(MMSB_EINVAL, "%s: durability %u is not 0 or an MMSB_DURABILITY_* value", fn, durability);
    }
    return 0;
}

/* ---- changes of bytes ---------------------------------------------------------------- */

static int range_check(const page_entry *pe, uint64_t id, uint64_t offset, uint64_t len, const char *fn) {
    if (offset > pe->size_bytes || len > pe->size_bytes - offset) {
        return err_set(MMSB_EINVAL, "%s: range offset %llu + len %llu exceeds page %llu of %llu bytes",
                       fn, (unsigned long long)offset, (unsigned long long)len,
                       (unsigned long long)id, (unsigned long long)pe->size_bytes);
    }
    return 0;
}

/* A page that a change may target: live, in range, and not derived (its
 * bytes come from its parents). */
static int target_check(mmsb_engine *e, uint64_t id, uint64_t offset, uint64_t len,
                        const char *fn, page_entry **pe_out) {
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
    int rc = target_check(e, id, offset, len, fn, pe_out);
    if (rc != 0) return rc;
    if (bytes == NULL && len > 0) return err_set(MMSB_EINVAL, "%s: bytes is NULL with len %llu", fn, (unsigned long long)len);
    if (ranges_overlap(bytes, len, page_bytes(e, *pe_out), (*pe_out)->size_bytes)) {
        return err_set(MMSB_EINVAL, "%s: bytes overlap page %llu itself", fn, (unsigned long long)id);
    }
    return 0;
}

/* Diffs block by block (the mask scratch is bounded), logging each block
 * that changes; then copies the changed span once. */
static int write_validated(mmsb_engine *e, uint64_t id, page_entry *pe, uint64_t offset,
                           const uint8_t *bytes, uint64_t len, uint64_t *changed_out) {
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
        rc = log_delta_part(e, &part);
        if (rc != 0) return rc;
        first = min_u64(first, block + part.first);
        last = block + part.last;
        changed += c;
    }
    *changed_out = changed;
    if (rc != 0 || changed == 0) return rc;
    uint64_t old_epoch = pe->epoch;
    commit_journal_bytes(e, id, pe, offset + first, last - first + 1);
    entry_write_begin(pe);
    loc->store(e, pe, offset + first, bytes + first, last - first + 1);
    pe->epoch = epoch;
    touched_mark(e, id);
    digest_mark(e, id, pe, offset + first, last - first + 1);
    entry_write_end(pe);
    e->cc.res.pages_changed++;
    e->cc.res.bytes_changed += changed;
    commit_changed(e, id, pe, old_epoch, offset + first, offset + last + 1, changed, MMSB_EVENT_PAGE_CHANGED);
    return 0;
}

/* Everything about a delta that can be wrong, checked before any byte moves.
 * The expected epoch is checked against the page as it is now: before the
 * commit that holds the delta. */
static int delta_check(mmsb_engine *e, const mmsb_delta *d, const char *fn, page_entry **pe_out) {
    if (d == NULL) return err_set(MMSB_EINVAL, "%s: delta is NULL", fn);
    const uint32_t known = MMSB_DELTA_SPARSE | MMSB_DELTA_EXPECT_EPOCH;
    if (d->flags & ~known) return err_set(MMSB_EINVAL, "%s: unknown delta flags 0x%x", fn, d->flags & ~known);
    if (d->reserved0 != 0) return err_set(MMSB_EINVAL, "%s: delta reserved0 is %u, must be 0", fn, d->reserved0);
    page_entry *pe;
    int rc = target_check(e, d->page_id, d->offset, d->len, fn, &pe);
    if (rc != 0) return rc;
    uint64_t mask_bytes = (d->len + 7) / 8;
    if (d->mask == NULL && d->len > 0) return err_set(MMSB_EINVAL, "%s: mask is NULL with len %llu", fn, (unsigned long long)d->len);
    if (d->len % 8 != 0 && (d->mask[mask_bytes - 1] >> (d->len % 8)) != 0) {
        return err_set(MMSB_EINVAL, "%s: mask byte %llu has bits set past len %llu", fn,
                       (unsigned long long)(mask_bytes - 1), (unsigned long long)d->len);
    }
    bool sparse = (d->flags & MMSB_DELTA_SPARSE) != 0;
    uint64_t need = sparse ? e->kern->popcount(d->mask, mask_bytes) : d->len;
    if (d->payload_len != need) {
        return err_set(MMSB_EINVAL, "%s: payload_len %llu, expected %llu (%s)", fn,
                       (unsigned long long)d->payload_len, (unsigned long long)need,
                       sparse ? "sparse: popcount of the mask" : "dense: len");
    }
    if (d->payload == NULL && d->payload_len > 0) return err_set(MMSB_EINVAL, "%s: payload is NULL with payload_len %llu", fn, (unsigned long long)d->payload_len);
    const uint8_t *page = page_bytes(e, pe);
    if (ranges_overlap(d->mask, mask_bytes, page, pe->size_bytes) ||
        ranges_overlap(d->payload, d->payload_len, page, pe->size_bytes)) {
        return err_set(MMSB_EINVAL, "%s: mask or payload overlaps page %llu itself", fn, (unsigned long long)d->page_id);
    }
    if ((d->flags & MMSB_DELTA_EXPECT_EPOCH) && pe->epoch != d->expected_epoch) {
        return err_set(MMSB_ECONFLICT, "%s: page %llu is at epoch %llu, the delta expects %llu", fn,
                       (unsigned long long)d->page_id, (unsigned long long)pe->epoch,
                       (unsigned long long)d->expected_epoch);
    }
    *pe_out = pe;
    return 0;
}

/* Logs the delta as it was given, one DELTA record per block with bits set. */
static int log_delta(mmsb_engine *e, const mmsb_delta *d, uint64_t epoch) {
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
        int rc = log_delta_part(e, &part);
        if (rc != 0) return rc;
    }
    return 0;
}

static int apply_validated(mmsb_engine *e, const mmsb_delta *d, page_entry *pe, uint64_t *changed_out) {
    const location_ops *loc = location_of(e, pe);
    uint64_t changed = d->len > 0 ? loc->delta(e, pe, d, false) : 0;
    *changed_out = changed;
    if (changed == 0) return 0;
    uint64_t epoch = touched_epoch(e, d->page_id, pe);
    int rc = touched_prepare(e);
    if (rc == 0) rc = log_delta(e, d, epoch);
    if (rc != 0) return rc;
    uint64_t first = 0, last = 0, old_epoch = pe->epoch;
    bool any = mask_bounds(d->mask, (d->len + 7) / 8, &first, &last);
    ASSERT(any); /* something changed, so some bit is set */
    commit_journal_bytes(e, d->page_id, pe, d->offset + first, last - first + 1);
    entry_write_begin(pe);
    uint64_t applied = loc->delta(e, pe, d, true);
    ASSERT(applied == changed);
    pe->epoch = epoch;
    touched_mark(e, d->page_id);
    digest_mark(e, d->page_id, pe, d->offset + first, last - first + 1);
    entry_write_end(pe);
    e->cc.res.pages_changed++;
    e->cc.res.bytes_changed += changed;
    commit_changed(e, d->page_id, pe, old_epoch, d->offset + first, d->offset + last + 1, changed,
                   MMSB_EVENT_PAGE_CHANGED);
    return 0;
}

static void change_out(mmsb_change *out, const page_entry *pe, uint64_t changed, uint64_t seq) {
    if (out == NULL) return;
    out->epoch = pe->epoch;
    out->bytes_changed = changed;
    out->commit_seq = seq;
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
        rc = write_validated(engine, page_id, pe, offset, bytes, len, &changed);
        if (rc == 0) rc = commit_finish(engine, 0, &seq);
        else commit_abandon(engine, rc);
        if (rc == 0) change_out(change_out_, pe, changed, seq);
    }
    engine_leave(engine);
    return rc;
}

MMSB_API int mmsb_apply(mmsb_engine *engine, const mmsb_delta *delta, mmsb_change *change_out_) {
    int rc = engine_enter_writer(engine, "mmsb_apply");
    if (rc != 0) return rc;
    page_entry *pe = NULL;
    rc = delta_check(engine, delta, "mmsb_apply", &pe);
    if (rc == 0) {
        uint64_t changed = 0, seq = 0;
        commit_begin(engine);
        rc = apply_validated(engine, delta, pe, &changed);
        if (rc == 0) rc = commit_finish(engine, 0, &seq);
        else commit_abandon(engine, rc);
        if (rc == 0) change_out(change_out_, pe, changed, seq);
    }
    engine_leave(engine);
    return rc;
}

/* ---- batches ------------------------------------------------------------------------------ */

static int batch_run(mmsb_engine *e, const mmsb_delta *deltas, uint64_t count, uint32_t durability,
                     mmsb_commit_result *out) {
    if (deltas == NULL && count > 0) return err_set(MMSB_EINVAL, "mmsb_apply_batch: deltas is NULL with count %llu", (unsigned long long)count);
    if (count > BATCH_DELTAS_MAX) return err_set(MMSB_EINVAL, "mmsb_apply_batch: count %llu exceeds %d", (unsigned long long)count, BATCH_DELTAS_MAX);
    int rc = durability_check(durability, "mmsb_apply_batch");
    if (rc == 0) rc = commit_result_check(out, "mmsb_apply_batch");
    page_entry *pe;
    for (uint64_t i = 0; rc == 0 && i < count; i++) {
        rc = delta_check(e, &deltas[i], "mmsb_apply_batch", &pe);
        if (rc != 0) {
            char detail[512];
            snprintf(detail, sizeof detail, "%s", mmsb_last_error());
            rc = err_set(rc, "delta %llu: %s", (unsigned long long)i, detail);
        }
    }
    if (rc != 0) return rc;
    commit_begin(e);
    uint64_t seq, changed;
    for (uint64_t i = 0; rc == 0 && i < count; i++) {
        rc = apply_validated(e, &deltas[i], entry_of(e, deltas[i].page_id), &changed);
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
    engine_leave(engine);
    return rc;
}

/* ---- transactions --------------------------------------------------------------------------- */

enum { STAGED_WRITE = 1, STAGED_APPLY = 2 };

/* A staged change, followed in the buffer by its mask (APPLY) and bytes. */
typedef struct staged {
    uint32_t kind, flags;
    uint64_t page_id, offset, len, expected_epoch, payload_len;
} staged;

struct mmsb_txn {
    mmsb_engine *e;
    uint8_t *buf;
    uint64_t used, cap, count;
};

MMSB_API int mmsb_txn_begin(mmsb_engine *engine, mmsb_txn **txn_out) {
    int rc = engine_check(engine, "mmsb_txn_begin");
    if (rc != 0) return rc;
    if (txn_out == NULL) return err_set(MMSB_EINVAL, "mmsb_txn_begin: txn_out is NULL");
    if (engine->read_only) return err_set(MMSB_EREADONLY, "mmsb_txn_begin: the engine was opened with MMSB_OPEN_READONLY");
    mmsb_txn *t = calloc(1, sizeof *t);
    if (t == NULL) return err_set(MMSB_ENOMEM, "mmsb_txn_begin: out of memory");
    t->e = engine;
    *txn_out = t;
    return 0;
}

/* Copies one staged change in: header, then the pieces. */
static int stage(mmsb_txn *t, const staged *s, const uint8_t *mask, uint64_t mask_len,
                 const uint8_t *bytes, uint64_t bytes_len) {
    uint64_t need = sizeof *s + align_up_u64(mask_len, 8) + align_up_u64(bytes_len, 8);
    uint64_t limit = t->e->opts.txn_bytes_max;
    if (need > limit || t->used > limit - need) {
        return err_set(MMSB_ENOSPC, "transaction: staging %llu more bytes exceeds txn_bytes_max %llu",
                       (unsigned long long)need, (unsigned long long)limit);
    }
    if (t->used + need > t->cap) {
        uint64_t cap = max_u64(t->used + need, t->cap < 4096 ? 4096 : 2 * t->cap);
        uint8_t *b = realloc(t->buf, cap);
        if (b == NULL) return err_set(MMSB_ENOMEM, "transaction: staging buffer of %llu bytes", (unsigned long long)cap);
        t->buf = b;
        t->cap = cap;
    }
    uint8_t *at = t->buf + t->used;
    memcpy(at, s, sizeof *s);
    if (mask_len > 0) memcpy(at + sizeof *s, mask, mask_len);
    if (bytes_len > 0) memcpy(at + sizeof *s + align_up_u64(mask_len, 8), bytes, bytes_len);
    t->used += need;
    t->count++;
    return 0;
}

MMSB_API int mmsb_txn_write(mmsb_txn *txn, uint64_t page_id, uint64_t offset, const void *bytes,
                            uint64_t len) {
    if (txn == NULL) return err_set(MMSB_EINVAL, "mmsb_txn_write: txn is NULL");
    if (bytes == NULL && len > 0) return err_set(MMSB_EINVAL, "mmsb_txn_write: bytes is NULL with len %llu", (unsigned long long)len);
    if (offset > UINT64_MAX - len) return err_set(MMSB_EINVAL, "mmsb_txn_write: offset + len overflows");
    staged s = {.kind = STAGED_WRITE, .page_id = page_id, .offset = offset, .len = len, .payload_len = len};
    return stage(txn, &s, NULL, 0, bytes, len);
}

MMSB_API int mmsb_txn_apply(mmsb_txn *txn, const mmsb_delta *d) {
    if (txn == NULL || d == NULL) return err_set(MMSB_EINVAL, "mmsb_txn_apply: txn or delta is NULL");
    const uint32_t known = MMSB_DELTA_SPARSE | MMSB_DELTA_EXPECT_EPOCH;
    uint64_t mask_bytes = (d->len + 7) / 8;
    if ((d->flags & ~known) || d->reserved0 != 0 || (d->mask == NULL && d->len > 0) ||
        (d->payload == NULL && d->payload_len > 0) || d->offset > UINT64_MAX - d->len) {
        return err_set(MMSB_EINVAL, "mmsb_txn_apply: flags, reserved0, mask, payload or range invalid");
    }
    uint64_t need = (d->flags & MMSB_DELTA_SPARSE) ? txn->e->kern->popcount(d->mask, mask_bytes) : d->len;
    if (d->payload_len != need || (d->len % 8 != 0 && (d->mask[mask_bytes - 1] >> (d->len % 8)) != 0)) {
        return err_set(MMSB_EINVAL, "mmsb_txn_apply: payload_len %llu, expected %llu, or mask bits past len",
                       (unsigned long long)d->payload_len, (unsigned long long)need);
    }
    staged s = {.kind = STAGED_APPLY, .flags = d->flags, .page_id = d->page_id, .offset = d->offset,
                .len = d->len, .expected_epoch = d->expected_epoch, .payload_len = d->payload_len};
    return stage(txn, &s, d->mask, mask_bytes, d->payload, d->payload_len);
}

/* A staged change seen as a delta (APPLY) or a write. */
static void staged_at(const mmsb_txn *t, uint64_t *at, staged *s, mmsb_delta *d, const uint8_t **bytes) {
    memcpy(s, t->buf + *at, sizeof *s);
    const uint8_t *body = t->buf + *at + sizeof *s;
    uint64_t mask_len = s->kind == STAGED_APPLY ? align_up_u64((s->len + 7) / 8, 8) : 0;
    *d = (mmsb_delta){.page_id = s->page_id, .offset = s->offset, .len = s->len, .mask = body,
                      .payload = body + mask_len, .payload_len = s->payload_len,
                      .expected_epoch = s->expected_epoch, .flags = s->flags};
    *bytes = body + mask_len;
    *at += sizeof *s + mask_len + align_up_u64(s->payload_len, 8);
}

static int txn_check(mmsb_engine *e, const mmsb_txn *t) {
    uint64_t at = 0;
    for (uint64_t i = 0; i < t->count; i++) {
        staged s;
        mmsb_delta d;
        const uint8_t *bytes;
        page_entry *pe;
        staged_at(t, &at, &s, &d, &bytes);
        int rc = s.kind == STAGED_WRITE ? target_check(e, s.page_id, s.offset, s.len, "mmsb_txn_commit", &pe)
                                        : delta_check(e, &d, "mmsb_txn_commit", &pe);
        if (rc != 0) {
            char detail[512];
            snprintf(detail, sizeof detail, "%s", mmsb_last_error());
            return err_set(rc, "staged change %llu: %s", (unsigned long long)i, detail);
        }
    }
    return 0;
}

static int txn_run(mmsb_engine *e, const mmsb_txn *t, uint32_t durability, mmsb_commit_result *out) {
    int rc = durability_check(durability, "mmsb_txn_commit");
    if (rc == 0) rc = commit_result_check(out, "mmsb_txn_commit");
    if (rc == 0) rc = txn_check(e, t);
    if (rc != 0) return rc;
    commit_begin(e);
    uint64_t at = 0, changed, seq;
    for (uint64_t i = 0; rc == 0 && i < t->count; i++) {
        staged s;
        mmsb_delta d;
        const uint8_t *bytes;
        staged_at(t, &at, &s, &d, &bytes);
        page_entry *pe = entry_of(e, s.page_id);
        rc = s.kind == STAGED_WRITE ? write_validated(e, s.page_id, pe, s.offset, bytes, s.len, &changed)
                                    : apply_validated(e, &d, pe, &changed);
    }
    if (rc == 0) rc = commit_finish(e, durability, &seq);
    else commit_abandon(e, rc);
    if (rc == 0) commit_result_out(e, out);
    return rc;
}

MMSB_API int mmsb_txn_commit(mmsb_txn *txn, uint32_t durability, mmsb_commit_result *result) {
    if (txn == NULL) return err_set(MMSB_EINVAL, "mmsb_txn_commit: txn is NULL");
    mmsb_engine *e = txn->e;
    int rc = engine_enter_writer(e, "mmsb_txn_commit");
    if (rc == MMSB_EBUSY) return rc; /* the transaction stays open: retry */
    if (rc == 0) {
        rc = txn_run(e, txn, durability, result);
        engine_leave(e);
    }
    mmsb_txn_abort(txn);
    return rc;
}

MMSB_API int mmsb_txn_abort(mmsb_txn *txn) {
    if (txn == NULL) return 0;
    free(txn->buf);
    free(txn);
    return 0;
}

/* ---- lifetime --------------------------------------------------------------------------- */

int router_open(mmsb_engine *e) {
    uint64_t journal = max_u64(e->opts.commit_bytes_max, JOURNAL_BYTES_MIN);
    int rc = vmap_open(&e->cc.journal, NULL, journal, 1 << 20);
    if (rc == 0) rc = touched_open(e);
    if (rc == 0) rc = vmap_open(&e->cc.events, NULL, (uint64_t)MMSB_EVENTS_PER_COMMIT_MAX * sizeof(mmsb_event), 64 * 1024);
    if (rc == 0) rc = vmap_open(&e->op_out, NULL, e->opts.page_bytes_max, 1 << 20);
    if (rc == 0) {
        e->block = malloc(WRITE_BLOCK_BYTES);
        if (e->block == NULL) rc = err_set(MMSB_ENOMEM, "router: block scratch");
    }
    return rc;
}

void router_close(mmsb_engine *e) {
    vmap_close(&e->cc.journal);
    touched_close(e);
    vmap_close(&e->cc.events);
    vmap_close(&e->op_out);
    free(e->cc.changed);
    free(e->cc.include);
    free(e->block);
}
