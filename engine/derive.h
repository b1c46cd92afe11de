/*
 * derive.h - derivations and edges: what the rest of the engine asks of
 * derive.c besides its API calls.
 */
#ifndef MMSB_DERIVE_H
#define MMSB_DERIVE_H

#include "../tlog/checkpoint/lmdb_store.h"
#include "state.h"

/* A page is being freed: MMSB_EDEPENDENTS when derived pages read it;
 * drops its node (and its parent edges) when it is itself derived. */
int derive_page_freeing(mmsb_engine *e, uint64_t id, bool check_only) MUST_CHECK;
/* Replay of the graph records. */
int derive_replay(mmsb_engine *e, const log_rec *r) MUST_CHECK;
/* Derivations as loaded from a checkpoint. */
int derive_load(mmsb_engine *e, const ckpt_derive *d, const char *fn) MUST_CHECK;

#endif /* MMSB_DERIVE_H */
