/*
 * checkpoint.h - the engine's checkpoints (CHECKPOINTS.md): the policy,
 * writing one into the LMDB store (tlog/checkpoint/), loading the latest,
 * and retention of the log segments it covers.
 */
#ifndef MMSB_CHECKPOINT_H
#define MMSB_CHECKPOINT_H

#include "state.h"

int checkpoint_open(mmsb_engine *e) MUST_CHECK;
int checkpoint_reserve(mmsb_engine *e, uint64_t id) MUST_CHECK;
void checkpoint_close(mmsb_engine *e);
int checkpoint_discard(mmsb_engine *e) MUST_CHECK;
/* Loads the latest checkpoint into an empty engine; *found false if none.
 * Any failure leaves a partly loaded engine: reset it. */
int checkpoint_load(mmsb_engine *e, ckpt_meta *meta, bool *found) MUST_CHECK;
/* Loading a state into an empty engine (a checkpoint, an import): a page,
 * at an id above the ones before it and below id_end, with its epoch and,
 * when p->bytes is not NULL, its bytes (with p->tail, the bytes from tail_at
 * on; else zeros, for PAGE_LOAD to fill);
 * then, after the pages and the derivations (derive_load), the next id and
 * the state root. fn names the caller in errors. */
int checkpoint_load_page(mmsb_engine *e, const ckpt_page *p, uint64_t id_end, const char *fn) MUST_CHECK;
int checkpoint_load_finish(mmsb_engine *e, uint64_t page_id_next, h128 *root) MUST_CHECK;
/* Derived page `id` as a checkpoint stores it (params point into the
 * graph), and the id of its parent k. */
void checkpoint_derive_of(mmsb_engine *e, uint64_t id, ckpt_derive *d);
uint64_t checkpoint_derive_parent(mmsb_engine *e, uint64_t id, uint32_t k);
/* After a writing call's commit: checkpoints when the policy says so. A
 * failure is kept in the engine info and tried again later: the commit
 * stands whatever the checkpoint does. */
void checkpoint_maybe(mmsb_engine *e);
/* Writes a checkpoint now (writer role held, between commits). */
int checkpoint_write(mmsb_engine *e) MUST_CHECK;
/* Removes the log segments the last checkpoint covers (retention), unless
 * MMSB_OPEN_KEEP_LOG or read-only, and notes the lowest one kept. */
void checkpoint_retain(mmsb_engine *e);

#endif /* MMSB_CHECKPOINT_H */
