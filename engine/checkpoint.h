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
