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
/* A named point of the engine's work, for the hooks: 0, or an errno that
 * the step after the point should fail with. */
int engine_point(const mmsb_engine *e, const char *point);

#endif /* MMSB_ENGINE_H */
