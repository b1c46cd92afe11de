/*
 * replay.h - rebuilding the state from the log (recovery at open) and
 * replaying it into a bare engine (the mmsb tool's audits).
 */
#ifndef MMSB_REPLAY_H
#define MMSB_REPLAY_H

#include "../tlog/cursor.h"
#include "state.h"

/* Rebuilds the state from the log in the store directory and says where the
 * writer continues. */
int engine_recover(mmsb_engine *e, log_resume *resume) MUST_CHECK;
/* The same for a read-only engine: changes no file, and starts over (a
 * bounded number of times) when a writer replaced the checkpoint meanwhile. */
int engine_recover_readonly(mmsb_engine *e) MUST_CHECK;

/* A replica's state (e->follower) takes one more checked group of its log:
 * applies the records after `from` (the last commit applied; NULL: the
 * log's start) up to commit to_seq, skipping the aborted (first, ABORT)
 * pairs the group's check found, and checks every recorded state root. */
int engine_follow(mmsb_engine *e, const cursor_start *from, uint64_t to_seq, const uint64_t *aborted,
                  uint64_t aborted_count) MUST_CHECK;

#endif /* MMSB_REPLAY_H */
