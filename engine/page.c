/*
 * page.c - the page table on the writer's side: lookups, making a page
 * and removing one, page_change (the one place a page's bytes change),
 * and the set of pages the current commit has touched.
 */
#include <string.h>

#include "checkpoint.h"
#include "digest.h"
#include "journal.h"
#include "live.h"
#include "page.h"

int page_lookup(mmsb_engine *e, uint64_t id, const char *fn, page_entry **pe_out) {
    ASSERT(fn != NULL && pe_out != NULL);
    uint64_t next = atomic_load_explicit(&e->page_id_next, memory_order_relaxed);
    if (id == 0 || id >= next) {
        return err_set(MMSB_ENOTFOUND, "%s: page %llu does not exist (ids so far: 1..%llu)",
                       fn, (unsigned long long)id, (unsigned long long)(next - 1));
    }
    page_entry *pe = entry_of(e, id);
    if ((pe->flags & PE_LIVE) == 0) {
        return err_set(MMSB_ENOTFOUND, "%s: page %llu was freed", fn, (unsigned long long)id);
    }
    *pe_out = pe;
    ASSERT(pe->size_bytes > 0 && pe->size_bytes <= e->opts.page_bytes_max);
    return 0;
}

/* The highest id every per-id table has room for: each grows in steps, so
 * most creates find room already there and skip the tables. */
static uint64_t ids_covered(const mmsb_engine *e) {
    uint64_t ids = e->opts.pages_max;
    ids = min_u64(ids, e->pages.bytes_ready / sizeof(page_entry));
    ids = min_u64(ids, e->touched.bits.bytes_ready * 8);
    ids = min_u64(ids, e->dig.dirty.bits.bytes_ready * 8);
    ids = min_u64(ids, e->dig.dirty.words.bytes_ready / 8 * 4096);
    ids = min_u64(ids, e->ck.dirty.bytes_ready * 8);
    return min_u64(ids, e->g.node_of.bytes_ready / sizeof(uint32_t));
}

void page_ids_forget(mmsb_engine *e) { e->ids_ready = 0; }

/* The limits, and table space for every id up to `id`. */
static int reserve_ids(mmsb_engine *e, uint64_t id, uint64_t size_bytes, const char *fn) {
    ASSERT(fn != NULL);
    ASSERT(id >= atomic_load_explicit(&e->page_id_next, memory_order_relaxed));
    if (size_bytes == 0 || size_bytes > e->opts.page_bytes_max) {
        return err_set(MMSB_EINVAL, "%s: size_bytes %llu outside 1..%llu (page_bytes_max)", fn,
                       (unsigned long long)size_bytes, (unsigned long long)e->opts.page_bytes_max);
    }
    if (id > e->opts.pages_max) {
        return err_set(MMSB_ENOSPC, "%s: all %llu page ids are used (pages_max); ids are never reused",
                       fn, (unsigned long long)e->opts.pages_max);
    }
    if (id <= e->ids_ready) return 0;
    int rc = vmap_ensure(&e->pages, id * sizeof(page_entry));
    if (rc == 0) rc = vmap_ensure(&e->touched.bits, align_up_u64(id, 64) / 8);
    if (rc == 0) rc = digest_reserve(e, id);
    if (rc == 0) rc = checkpoint_reserve(e, id);
    if (rc == 0) rc = graph_reserve(&e->g, id);
    if (rc == 0) e->ids_ready = ids_covered(e);
    ASSERT(rc != 0 || e->ids_ready >= id);
    return rc;
}

/* A page's bytes (and its chunk tree's, for a larger page). */
static int alloc_bytes(mmsb_engine *e, uint64_t size_bytes, page_alloc *out) {
    ASSERT(out != NULL && size_bytes > 0);
    *out = (page_alloc){0};
    int rc = region_alloc(&e->data, size_bytes, &out->data_off, &out->zeroed);
    if (rc != 0) return rc;
    uint64_t aux_bytes = digest_aux_bytes(size_bytes);
    bool aux_zeroed;
    if (aux_bytes > 0) rc = region_alloc(&e->aux, aux_bytes, &out->aux_off, &aux_zeroed);
    if (rc != 0) region_free(&e->data, out->data_off, size_bytes);
    ASSERT(rc != 0 || out->data_off + size_bytes <= e->data.mem.bytes_max);
    return rc;
}

int page_prepare(mmsb_engine *e, uint64_t size_bytes, const char *fn, page_alloc *out) {
    ASSERT(fn != NULL && out != NULL);
    int rc = reserve_ids(e, atomic_load_explicit(&e->page_id_next, memory_order_relaxed), size_bytes, fn);
    return rc != 0 ? rc : alloc_bytes(e, size_bytes, out);
}

int page_prepare_many(mmsb_engine *e, uint64_t first, uint64_t count, uint64_t size_bytes, const char *fn,
                      page_alloc *out, uint64_t *prepared_out) {
    ASSERT(out != NULL && prepared_out != NULL && count >= 1);
    *prepared_out = 0;
    int rc = reserve_ids(e, first + count - 1, size_bytes, fn); /* once: it covers every lower id */
    for (uint64_t k = 0; rc == 0 && k < count; k++) {
        rc = alloc_bytes(e, size_bytes, &out[k]);
        if (rc == 0) *prepared_out = k + 1;
    }
    ASSERT(rc != 0 || *prepared_out == count);
    return rc;
}

void page_prepare_undo(mmsb_engine *e, uint64_t size_bytes, const page_alloc *a) {
    ASSERT(size_bytes > 0 && a != NULL);
    ASSERT(a->data_off + size_bytes <= e->data.mem.bytes_max);
    uint64_t aux_bytes = digest_aux_bytes(size_bytes);
    if (aux_bytes > 0) region_free(&e->aux, a->aux_off, aux_bytes);
    region_free(&e->data, a->data_off, size_bytes);
}

uint32_t page_want_of(uint32_t page_flags) {
    ASSERT(page_flags_valid(page_flags));
    uint32_t want = (page_flags & MMSB_PAGE_HOST) ? PE_WANT_HOST : 0u;
    return want | ((page_flags & MMSB_PAGE_DEVICE) ? PE_WANT_DEVICE : 0u);
}

uint64_t page_publish(mmsb_engine *e, uint64_t size_bytes, uint32_t page_flags, const page_alloc *a) {
    ASSERT(size_bytes > 0 && size_bytes <= e->opts.page_bytes_max);
    uint64_t id = atomic_load_explicit(&e->page_id_next, memory_order_relaxed);
    if (!a->zeroed) memset(region_ptr(&e->data, a->data_off), 0, size_bytes);
    uint32_t want = page_want_of(page_flags);
    bool device = e->dv.dev != NULL && location_place(e, a->data_off, size_bytes, want); /* no device: one branch */
    page_entry *pe = entry_of(e, id);
    ASSERT(!(pe->flags & PE_LIVE)); /* ids are never reused */
    entry_write_begin(pe);
    pe->data_off = a->data_off;
    pe->size_bytes = size_bytes;
    pe->epoch = 0;
    pe->u.tree.aux_off = a->aux_off;
    pe->u.tree.unused = 0;
    pe->flags = PE_LIVE | want | (device ? PE_DEVICE : 0u);
    digest_page_created(e, id, pe);
    entry_write_end(pe);
    atomic_store_explicit(&e->page_id_next, id + 1, memory_order_release);
    live_note_next(e, id + 1);
    e->pages_live++;
    ASSERT(e->pages_live < id + 1);
    return id;
}

void page_load_epoch(mmsb_engine *e, uint64_t id, page_entry *pe, uint64_t epoch) {
    ASSERT(pe == entry_of(e, id) && (pe->flags & PE_LIVE));
    ASSERT(pe->epoch == 0 && !e->cc.active);
    entry_write_begin(pe);
    pe->epoch = epoch;
    digest_mark(e, id, pe, 0, 0); /* the epoch is in the page's leaf */
    entry_write_end(pe);
}

void page_remove(mmsb_engine *e, uint64_t id, page_entry *pe) {
    ASSERT(pe == entry_of(e, id) && (pe->flags & PE_LIVE));
    ASSERT(e->pages_live >= 1);
    uint64_t aux_bytes = digest_aux_bytes(pe->size_bytes);
    if (pe->flags & PE_DEVICE) location_forget(e, pe);
    entry_write_begin(pe);
    pe->flags &= ~(uint32_t)(PE_LIVE | PE_DIGEST_DIRTY | PE_DEVICE | PE_WANT_HOST | PE_WANT_DEVICE);
    digest_mark(e, id, pe, 0, 0);
    entry_write_end(pe);
    region_free(&e->data, pe->data_off, pe->size_bytes);
    if (aux_bytes > 0) region_free(&e->aux, pe->u.tree.aux_off, aux_bytes);
    e->pages_live--;
}

/* ---- the pages a commit changed -------------------------------------------- */

int touched_open(mmsb_engine *e) {
    ASSERT(e->touched.bits.base == NULL && e->opts.pages_max >= 1);
    uint64_t ids = e->opts.pages_max;
    int rc = vmap_open(&e->touched.bits, NULL, align_up_u64(ids, 64) / 8, VM_PAGE_BYTES);
    if (rc == 0) rc = vmap_open(&e->touched.ids, NULL, ids * sizeof(uint64_t), VM_PAGE_BYTES);
    e->touched.count = 0;
    return rc;
}

void touched_close(mmsb_engine *e) {
    ASSERT(e != NULL);
    vmap_close(&e->touched.bits);
    vmap_close(&e->touched.ids);
}

int touched_grow(mmsb_engine *e) {
    ASSERT(e->touched.count < e->opts.pages_max);
    touched_set *t = &e->touched;
    return vmap_ensure(&t->ids, (t->count + 1) * sizeof(uint64_t));
}

void touched_reset(mmsb_engine *e) {
    ASSERT(e->touched.count <= e->opts.pages_max);
    touched_set *t = &e->touched;
    const uint64_t *ids = (const uint64_t *)t->ids.base;
    for (uint64_t i = 0; i < t->count; i++) {
        ((uint64_t *)t->bits.base)[(ids[i] - 1) / 64] &= ~(1ull << ((ids[i] - 1) % 64));
    }
    t->count = 0;
    ASSERT(t->count == 0);
}


/* ---- changing a page's bytes ------------------------------------------------- */

/* The epoch a change may give the page: COPY and APPLY the commit's epoch
 * for it, LOAD any on a fresh page, UNDO back to a journaled one. */
static bool epoch_allowed(const mmsb_engine *e, uint64_t id, const page_entry *pe, const page_change_args *a) {
    ASSERT(pe == entry_of(e, id));
    ASSERT(a->kind >= PAGE_COPY && a->kind <= PAGE_UNDO);
    switch (a->kind) {
    case PAGE_COPY:
    case PAGE_APPLY: return a->epoch == touched_epoch(e, id, pe);
    case PAGE_LOAD: return pe->epoch == a->epoch && !e->cc.active;
    case PAGE_UNDO: return e->cc.rolling_back && a->epoch <= pe->epoch;
    }
    return false;
}

uint64_t page_change(mmsb_engine *e, uint64_t id, page_entry *pe, const page_change_args *a) {
    ASSERT(pe == entry_of(e, id));
    ASSERT(pe->flags & PE_LIVE);
    ASSERT(a->len > 0 && a->offset < pe->size_bytes && a->len <= pe->size_bytes - a->offset);
    ASSERT(epoch_allowed(e, id, pe, a));
    ASSERT(a->kind == PAGE_APPLY ? a->delta != NULL && a->delta->page_id == id && a->offset >= a->delta->offset &&
                                       a->offset + a->len <= a->delta->offset + a->delta->len
                                 : a->src != NULL);
    bool in_commit = a->kind == PAGE_COPY || a->kind == PAGE_APPLY;
    if (in_commit && journal_complete(e)) journal_bytes(e, id, pe, a->offset, a->len);
    ASSERT(!a->copy_current || (a->kind == PAGE_COPY && (pe->flags & PE_DEVICE)));
    const location_ops *loc = a->copy_current ? &location_host : location_of(e, pe);
    uint64_t changed = 0;
    entry_write_begin(pe);
    if (a->kind == PAGE_APPLY) {
        changed = loc->delta(e, pe, a->delta, true);
    } else {
        loc->store(e, pe, a->offset, a->src, a->len);
    }
    pe->epoch = a->epoch;
    if (in_commit) touched_mark(e, id);
    digest_mark(e, id, pe, a->offset, a->len);
    entry_write_end(pe);
    ASSERT(pe->epoch == a->epoch && (pe->flags & PE_DIGEST_DIRTY));
    ASSERT(!in_commit || touched_has(e, id));
    return changed;
}
