/*
 * engine.h - the API layer's own helpers: opening and closing engines,
 * and the writer role every writing call takes (engine.c).
 */
#ifndef MMSB_ENGINE_H
#define MMSB_ENGINE_H

#include "../tlog/io.h"
#include "state.h"

/* mmsb_open with a simulator's I/O hooks (tests/test_sim.c); NULL: none. */
int engine_open(const char *dir, const mmsb_options *options, const io_hooks *hooks, mmsb_engine **out)
    MUST_CHECK;
/* A replica's state (engine/replica.c): a read-only engine over the
 * replica's directory, whose lock the follower holds already, rebuilt from
 * the log there, published for live attach, and advanced by engine_follow
 * (replay.h). options: the limits of the state (NULL: the defaults). */
int engine_open_follower(const char *dir, const mmsb_options *options, mmsb_engine **out) MUST_CHECK;
void engine_close_follower(mmsb_engine *e);
/* The caller's options in this library's layout, checked as mmsb_open
 * checks them. */
int engine_options(const mmsb_options *in, mmsb_options *out) MUST_CHECK;
/* A new store in dir (which must hold none) whose state does not come
 * from its own log: `seed` loads it into the empty engine and says where
 * the log starts (resume: next_seq, chain, commits; a new store's first
 * segment). The writer is open, nothing is published; the caller writes
 * the checkpoint that holds the state (an import, engine/export.c). */
typedef int (*engine_seed_fn)(void *ctx, mmsb_engine *e, log_resume *resume);
int engine_open_seeded(const char *dir, const mmsb_options *options, engine_seed_fn seed, void *ctx,
                       mmsb_engine **out) MUST_CHECK;
/* A named point of the engine's work, for the hooks: 0, or an errno that
 * the step after the point should fail with. */
int engine_point(const mmsb_engine *e, const char *point);

#endif /* MMSB_ENGINE_H */
