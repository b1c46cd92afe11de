/*
 * page.h - the page table: looking pages up, creating and removing them,
 * and page_change(), the one function through which any page's bytes
 * change (a commit's changes, propagation, replay, a checkpoint load and a
 * rollback alike), so a location, a digest or a checkpoint mark can never
 * be right at one site and wrong at another.
 */
#ifndef MMSB_PAGE_H
#define MMSB_PAGE_H

#include "state.h"

/* The writer's lookup: MMSB_ENOTFOUND unless id names a live page. */
int page_lookup(mmsb_engine *e, uint64_t id, const char *fn, page_entry **pe_out)
    MUST_CHECK;

typedef struct page_alloc {
    uint64_t data_off, aux_off;
    bool zeroed;
} page_alloc;

/* Checks a new page's size against the limits and reserves its memory and
 * its id's table space; nothing is visible yet. */
int page_prepare(mmsb_engine *e, uint64_t size_bytes, const char *fn, page_alloc *out)
    MUST_CHECK;
/* The same for `count` pages from id `first` (the next id) for one commit,
 * published in id order, the tables reserved once; on
 * failure *prepared_out pages hold memory to give back (page_prepare_undo). */
int page_prepare_many(mmsb_engine *e, uint64_t first, uint64_t count, uint64_t size_bytes, const char *fn,
                      page_alloc *out, uint64_t *prepared_out) MUST_CHECK;
void page_prepare_undo(mmsb_engine *e, uint64_t size_bytes, const page_alloc *a);
/* A per-id table was opened again (so it is empty): the next create checks
 * every table's room again. */
void page_ids_forget(mmsb_engine *e);
/* Makes the prepared page visible as the next id (epoch 0, all zeros),
 * placed by its size and its MMSB_PAGE_* flags (valid ones). */
uint64_t page_publish(mmsb_engine *e, uint64_t size_bytes, uint32_t page_flags, const page_alloc *a);
/* The PE_WANT_* of valid MMSB_PAGE_* flags. */
uint32_t page_want_of(uint32_t page_flags);
/* A fresh page (epoch 0) being loaded takes its epoch; PAGE_LOAD then
 * brings its bytes. */
void page_load_epoch(mmsb_engine *e, uint64_t id, page_entry *pe, uint64_t epoch);
/* Frees a live page. */
void page_remove(mmsb_engine *e, uint64_t id, page_entry *pe);

/* How page_change changes the span [offset, offset + len). */
typedef enum page_change_kind {
    PAGE_COPY = 1,  /* src's len bytes replace the span (a commit's change or a replayed one) */
    PAGE_APPLY = 2, /* the masked bytes of a validated delta, whose set bits lie in the span */
    PAGE_LOAD = 3,  /* a page being loaded (its epoch set) takes bytes from a checkpoint or an import */
    PAGE_UNDO = 4,  /* a rollback restores journaled bytes and the epoch before them */
} page_change_kind;

typedef struct page_change_args {
    page_change_kind kind;
    uint64_t offset, len;    /* the span; len > 0 */
    const uint8_t *src;      /* COPY, LOAD, UNDO */
    const mmsb_delta *delta; /* APPLY */
    uint64_t epoch;          /* the page's epoch after the change */
    bool copy_current;       /* COPY of a device page whose copy already holds src
                                (location_compute): the mirror alone changes */
} page_change_args;

/* Changes a live page's bytes under its seqlock: journals the old bytes
 * (in a commit that keeps a journal), moves the bytes through the page's
 * location, sets the epoch, marks the page touched by the commit (COPY,
 * APPLY), its digest stale and its checkpoint entry dirty. COPY and APPLY
 * take the epoch one above the page's before the commit (touched_epoch);
 * LOAD the one page_load_epoch gave it; UNDO only while a commit rolls back, never above the
 * page's. Returns the bytes APPLY changed (0 for the other kinds). */
uint64_t page_change(mmsb_engine *e, uint64_t id, page_entry *pe, const page_change_args *a);

int touched_open(mmsb_engine *e) MUST_CHECK;
void touched_close(mmsb_engine *e);
int touched_grow(mmsb_engine *e) MUST_CHECK;
/* The commit ended (committed, abandoned, or replayed): none is touched. */
void touched_reset(mmsb_engine *e);

/* Inline: they run for every change. */
static inline bool touched_has(const mmsb_engine *e, uint64_t id) {
    ASSERT(id >= 1 && id <= e->opts.pages_max);
    const uint64_t *bits = (const uint64_t *)e->touched.bits.base;
    return (bits[(id - 1) / 64] >> ((id - 1) % 64)) & 1;
}

/* The epoch a change of page id gives it in the current commit: one above
 * its epoch before the commit. */
static inline uint64_t touched_epoch(const mmsb_engine *e, uint64_t id, const page_entry *pe) {
    return touched_has(e, id) ? pe->epoch : pe->epoch + 1;
}

/* Room to mark one more page; before a change is logged. */
static inline int touched_prepare(mmsb_engine *e) {
    const touched_set *t = &e->touched;
    return (t->count + 1) * sizeof(uint64_t) <= t->ids.bytes_ready ? 0 : touched_grow(e);
}

/* Page id changed in the current commit (its epoch is touched_epoch). */
static inline void touched_mark(mmsb_engine *e, uint64_t id) {
    if (touched_has(e, id)) return;
    touched_set *t = &e->touched;
    ASSERT((t->count + 1) * sizeof(uint64_t) <= t->ids.bytes_ready); /* touched_prepare */
    ((uint64_t *)t->bits.base)[(id - 1) / 64] |= 1ull << ((id - 1) % 64);
    ((uint64_t *)t->ids.base)[t->count++] = id;
    ASSERT(touched_has(e, id));
}

#endif /* MMSB_PAGE_H */
