/*
 * role.h - the writer role every writing call takes, and the check every
 * reading call makes of its handle (role.c).
 */
#ifndef MMSB_ROLE_H
#define MMSB_ROLE_H

#include "state.h"

/* Takes the writer role for a call: MMSB_EINVAL for a bad handle,
 * MMSB_ECALLBACK from an event callback, MMSB_EBUSY when another thread
 * holds it. */
int engine_enter(mmsb_engine *e, const char *fn) MUST_CHECK;
/* The same for calls that change the store: MMSB_EREADONLY on a read-only
 * engine. */
int engine_enter_writer(mmsb_engine *e, const char *fn) MUST_CHECK;
void engine_leave(mmsb_engine *e);
/* Ends a writing call whose result is rc: after a commit (rc 0) the
 * checkpoint policy runs, then the role is released; returns rc. */
int engine_leave_writer(mmsb_engine *e, int rc);
/* Validates a handle for the reading calls (no writer role). */
int engine_check(const mmsb_engine *e, const char *fn) MUST_CHECK;

#endif /* MMSB_ROLE_H */
