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

/* Called after each record that a replay applied (records of aborted
 * commits are skipped); a nonzero return stops the replay with it. */
typedef int (*replay_hook_fn)(void *ctx, mmsb_engine *e, const log_rec *r, uint64_t segment);

typedef struct replay_plan {
    bool from_checkpoint;   /* load the checkpoint first (there must be one) */
    uint64_t to_seq;        /* stop after the last commit at or before it */
    replay_hook_fn hook;    /* or NULL */
    void *ctx;
} replay_plan;

typedef struct replay_result {
    log_end end;            /* how the log ended */
    ckpt_meta checkpoint;   /* the one loaded (from_checkpoint) */
    uint64_t commit_seq;    /* the last commit (or checkpoint marker) applied */
    uint64_t commits;       /* commits up to it, the checkpoint's included */
    uint64_t records;       /* records read in the applying pass */
    uint64_t failed_seq;    /* the record that failed to apply, if one did */
} replay_result;

/* Replays the log of e's store into e (a bare engine, still empty). Every
 * recorded state root is checked on the way, as at open. */
int engine_replay(mmsb_engine *e, const replay_plan *plan, replay_result *out);

#endif /* MMSB_REPLAY_H */
