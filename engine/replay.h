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

#endif /* MMSB_REPLAY_H */
