/*
 * events.h - subscriptions and the delivery of a commit's events.
 */
#ifndef MMSB_EVENTS_H
#define MMSB_EVENTS_H

#include "state.h"

/* Calls the subscribers with the commit's queued events, then COMMIT.
 * Writing calls made from a callback fail with MMSB_ECALLBACK. */
void events_deliver(mmsb_engine *e, uint64_t commit_seq);
/* Queues an event for the commit being built (when someone wants it). */
void events_push(mmsb_engine *e, uint32_t type, uint64_t id, uint64_t epoch, uint64_t bytes);
/* True on the writer thread while it runs the callbacks; another thread
 * reading the same atomic sees another thread's id. */
static inline bool events_in_callback(const mmsb_engine *e) {
    uint32_t tid = atomic_load_explicit(&e->callback_tid, memory_order_relaxed);
    return tid != 0 && tid == base_thread_id();
}

#endif /* MMSB_EVENTS_H */
