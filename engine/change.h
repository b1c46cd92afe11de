/*
 * change.h - validating and applying one change of a page's bytes, shared
 * by the single calls and batches (change.c) and transactions (txn.c).
 */
#ifndef MMSB_CHANGE_H
#define MMSB_CHANGE_H

#include "state.h"

/* A page that a change may target: live, the range inside it, and not
 * derived (its bytes come from its parents). */
int change_target_check(mmsb_engine *e, uint64_t id, uint64_t offset, uint64_t len, const char *fn,
                        page_entry **pe_out) MUST_CHECK;
/* Everything about a delta that can be wrong; MMSB_ECONFLICT when its
 * expected epoch is not the page's. */
int change_delta_check(mmsb_engine *e, const mmsb_delta *d, const char *fn, page_entry **pe_out)
    MUST_CHECK;
/* In a commit: log and apply a validated write or delta; *changed_out is
 * the bytes that changed (0: nothing logged). */
int change_write(mmsb_engine *e, uint64_t id, page_entry *pe, uint64_t offset, const uint8_t *bytes,
                 uint64_t len, uint64_t *changed_out) MUST_CHECK;
int change_apply(mmsb_engine *e, const mmsb_delta *d, page_entry *pe, uint64_t *changed_out)
    MUST_CHECK;

#endif /* MMSB_CHANGE_H */
