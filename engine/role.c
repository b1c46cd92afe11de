/*
 * role.c - one thread at a time holds an engine's writer role, for the
 * length of one call. A writing call from an event callback is refused
 * with its own code: the writer is in the middle of a commit there.
 */
#include "checkpoint.h"
#include "events.h"
#include "role.h"

int engine_check(const mmsb_engine *e, const char *fn) {
    ASSERT(fn != NULL);
    if (e == NULL) return err_set(MMSB_EINVAL, "%s: engine is NULL", fn);
    if (e->magic != ENGINE_MAGIC) return err_set(MMSB_EINVAL, "%s: engine is not an open MMSB engine", fn);
    return 0;
}

int engine_enter(mmsb_engine *e, const char *fn) {
    int rc = engine_check(e, fn);
    if (rc != 0) return rc;
    if (events_in_callback(e)) {
        return err_set(MMSB_ECALLBACK, "%s: called from an event callback; writing calls are not allowed there", fn);
    }
    if (atomic_exchange_explicit(&e->busy, 1, memory_order_acquire) != 0) {
        return err_set(MMSB_EBUSY, "%s: another thread is inside a writing call on this engine", fn);
    }
    ASSERT(!e->cc.active);
    return 0;
}

int engine_enter_writer(mmsb_engine *e, const char *fn) {
    ASSERT(fn != NULL);
    int rc = engine_enter(e, fn);
    if (rc == 0 && e->read_only) {
        engine_leave(e);
        rc = err_set(MMSB_EREADONLY, "%s: the engine was opened with MMSB_OPEN_READONLY", fn);
    }
    ASSERT(rc != 0 || (!e->read_only && e->log != NULL));
    return rc;
}

void engine_leave(mmsb_engine *e) {
    ASSERT(atomic_load_explicit(&e->busy, memory_order_relaxed) == 1);
    ASSERT(!e->cc.active); /* every commit a call began has finished or been abandoned */
    atomic_store_explicit(&e->busy, 0, memory_order_release);
}

int engine_leave_writer(mmsb_engine *e, int rc) {
    ASSERT(!e->read_only);
    if (rc == 0) checkpoint_maybe(e);
    engine_leave(e);
    ASSERT(rc <= 0);
    return rc;
}
