/*
 * live.h - the writer's side of live attach: the shared header another
 * process maps to read this engine's pages (attach.c reads it).
 */
#ifndef MMSB_LIVE_H
#define MMSB_LIVE_H

#include "state.h"

#define LIVE_MAGIC 0x4d4d53424c495631ull /* "MMSBLIV1" */

/* The shared header a writer keeps for attached readers (its own memfd). */
typedef struct live_header {
    uint64_t magic;
    _Atomic uint32_t state;          /* LIVE_OPEN, then LIVE_CLOSED at close */
    uint32_t entry_bytes;            /* sizeof(page_entry) */
    _Atomic uint64_t page_id_next;
    uint64_t pages_max;
    uint64_t arena_bytes;
    char token[LIVE_TOKEN_BYTES];    /* also in the memfds' names */
} live_header;

_Static_assert(sizeof(live_header) <= LIVE_HEADER_BYTES, "the live header fits its page");

/* The writer's side: the names of its memfds carry e->live_token; after
 * open it publishes DIR/ATTACH, at close it marks the header closed and
 * removes the file. */
void live_token_make(mmsb_engine *e);
int live_publish(mmsb_engine *e) MUST_CHECK;
void live_retire(mmsb_engine *e);
static inline void live_note_next(mmsb_engine *e, uint64_t next) {
    if (e->live.base != NULL) {
        atomic_store_explicit(&((live_header *)e->live.base)->page_id_next, next, memory_order_release);
    }
}

#endif /* MMSB_LIVE_H */
