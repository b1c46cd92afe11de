/*
 * replicate.h - the writer's own shipper (MMSB_DURABILITY_REPLICATED and
 * mmsb_wait_replicated): a thread that publishes what is committed and
 * durable to the replication stream (tlog/repl/ship.h) and says how far
 * the stream holds the log.
 */
#ifndef MMSB_REPLICATE_H
#define MMSB_REPLICATE_H

#include "state.h"

/* Checks the replication options (a writer with servers and a stream, or
 * none of them). */
int replicate_options_check(const mmsb_options *o) MUST_CHECK;
/* After the log writer opened: connects, finds where the stream ends in
 * the log, and starts the thread. Nothing when replication is off. */
int replicate_open(mmsb_engine *e) MUST_CHECK;
/* Publishes what is committed (waiting at most the timeout), then stops the
 * thread and releases all. Before the log writer closes. */
void replicate_close(mmsb_engine *e);
/* The lowest segment the stream does not hold whole yet: retention keeps
 * it. 0: no replication, or nothing to keep. */
uint64_t replicate_segment_floor(const mmsb_engine *e);
int replicate_wait(mmsb_engine *e, uint64_t commit_seq) MUST_CHECK;
void replicate_info(const mmsb_engine *e, mmsb_engineinfo *out);

#endif /* MMSB_REPLICATE_H */
