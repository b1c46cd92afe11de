/*
 * propagate.h - recomputing derived pages at commit (PROPAGATION.md).
 */
#ifndef MMSB_PROPAGATE_H
#define MMSB_PROPAGATE_H

#include "state.h"

/* Derived node n's epoch signature from its parents' epochs now, or (at
 * start) from their epochs when the commit began. */
h128 signature_of(const mmsb_engine *e, uint32_t n, bool at_start);
/* Recomputes what the commit's changes reach; called by commit_finish. */
int propagate(mmsb_engine *e) MUST_CHECK;
int propagate_open(mmsb_engine *e) MUST_CHECK;
void propagate_close(mmsb_engine *e);

#endif /* MMSB_PROPAGATE_H */
