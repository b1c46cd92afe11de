/*
 * commit.h - the commit every writing call builds: begin, then the calls'
 * changes (change.c, txn.c, derive.c), then finish: propagate, append the
 * COMMIT, wait for the durability asked for, deliver events. A commit
 * that cannot finish is abandoned: rolled back from the journal with an
 * ABORT record, or, without one, the log fails until the store reopens.
 * The checkpoint policy runs after the call, in the API layer (engine.c).
 */
#ifndef MMSB_COMMIT_H
#define MMSB_COMMIT_H

#include "state.h"

int commit_open(mmsb_engine *e) MUST_CHECK;
void commit_close(mmsb_engine *e);

void commit_begin(mmsb_engine *e);
/* Propagates, then appends the COMMIT (or none when nothing changed: then
 * *seq_out is 0). A failed propagation rolls everything back. */
int commit_finish(mmsb_engine *e, uint32_t durability, uint64_t *seq_out)
    MUST_CHECK;
/* Ends a commit that failed before it finished: rolls back what it did. */
void commit_abandon(mmsb_engine *e, int rc);
void commit_result_out(const mmsb_engine *e, mmsb_commit_result *out);
int commit_result_check(const mmsb_commit_result *out, const char *fn)
    MUST_CHECK;
int commit_durability_check(const mmsb_engine *e, uint32_t durability, const char *fn) MUST_CHECK;

#endif /* MMSB_COMMIT_H */
