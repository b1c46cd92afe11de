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
/* A named point of the engine's work, for the hooks: 0, or an errno that
 * the step after the point should fail with. */
int engine_point(const mmsb_engine *e, const char *point);

#endif /* MMSB_ENGINE_H */
