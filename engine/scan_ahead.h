/*
 * scan_ahead.h - recovery's checking pass (every CRC, chain value and
 * record, and the verdict on how the log ends) run in a thread of its own,
 * ahead of the applying pass, which follows it commit by commit.
 *
 * The applying pass may apply a record only once the checking pass has seen
 * the end of its commit: the boundary published here is the last COMMIT or
 * CHECKPOINT marker checked so far, and every aborted range before it has
 * been published with it. So the applying pass never sees a record the
 * checking pass has not accepted, and never a record of an unfinished
 * commit; the two passes read the same bytes as before, only at the same
 * time, so the open takes about the longer pass instead of their sum.
 * Where no thread can be made, the checking pass runs first, as before.
 */
#ifndef MMSB_SCAN_AHEAD_H
#define MMSB_SCAN_AHEAD_H

#include <pthread.h>

#include "../tlog/cursor.h"
#include "state.h"

typedef struct scan_ahead {
    mmsb_engine *e;              /* read only: dir_fd, kern, opts.flags */
    const cursor_start *start;   /* the checkpoint's position, or NULL: genesis */
    bool threaded;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t moved;        /* the boundary moved, or the pass ended */
    /* Under lock while the thread runs. */
    bool done;
    uint64_t boundary;           /* records up to here lie in checked, whole commits */
    uint64_t *pairs;             /* the aborted (first, ABORT) ranges before boundary */
    uint64_t pair_count, pair_cap;
    _Atomic bool waiting;        /* the applying pass waits: publish what there is */
    int pairs_rc;                /* MMSB_ENOMEM when the shared ranges could not grow */
    /* The pass's results, read once it is done. */
    int rc;
    char error[512];
    log_end end;
    uint64_t *aborted, aborted_count; /* every aborted range (the caller takes them) */
} scan_ahead;

/* Starts the checking pass. 0, or an error that leaves nothing to stop. */
MUST_CHECK int scan_ahead_start(scan_ahead *s, mmsb_engine *e, const cursor_start *start);
/* Waits until records after `applied` (the last boundary applied) may be
 * applied or the pass is done; returns the boundary up to which they may,
 * and copies the aborted ranges known up to it into *pairs (grown with
 * realloc; the caller frees it). A return equal to `applied` means the
 * checking pass is done and nothing more may be applied. */
MUST_CHECK int scan_ahead_wait(scan_ahead *s, uint64_t applied, uint64_t *boundary_out, uint64_t **pairs,
                               uint64_t *pair_count, uint64_t *pair_cap);
/* Waits for the end of the pass: its rc (the error message set again on
 * this thread), with s->end and s->aborted filled. */
MUST_CHECK int scan_ahead_finish(scan_ahead *s);

#endif /* MMSB_SCAN_AHEAD_H */
