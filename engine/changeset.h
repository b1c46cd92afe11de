/*
 * changeset.h - what the commit being built has changed so far: the graph
 * nodes to propagate from (with their changed ranges and epochs at the
 * start of the commit), derived nodes to compute, the commit's counters
 * and the events to deliver once it is committed. Changes and propagation
 * note into it; the commit reads it.
 */
#ifndef MMSB_CHANGESET_H
#define MMSB_CHANGESET_H

#include "state.h"

/* Page id changed (bytes [lo, hi), `bytes` of them, from old_epoch): for
 * propagation, the counters and an event of type `event`. */
void change_note(mmsb_engine *e, uint64_t id, const page_entry *pe, uint64_t old_epoch, uint64_t lo,
                 uint64_t hi, uint64_t bytes, uint32_t event);
/* Asks propagation to compute derived node n in this commit. */
int change_include(mmsb_engine *e, uint32_t n) MUST_CHECK;
/* A node's mark says this commit changed it. */
static inline bool change_marked(const mmsb_engine *e, const gnode *v) {
    return v->changed_mark == e->cc.gen;
}

#endif /* MMSB_CHANGESET_H */
