/*
 * events.c - subscriptions, and the events of a commit: queued while it is
 * built, delivered in the order they were queued once it is committed.
 */
#include <string.h>

#include "events.h"
#include "role.h"

static bool wants_events(const mmsb_engine *e, uint32_t type) {
    ASSERT(e->sub_count <= MMSB_SUBSCRIBERS_MAX);
    ASSERT(type != 0);
    for (uint32_t i = 0; i < e->sub_count; i++) {
        if (e->subs[i].mask & type) return true;
    }
    return false;
}

void events_push(mmsb_engine *e, uint32_t type, uint64_t id, uint64_t epoch, uint64_t bytes) {
    commit_ctx *c = &e->cc;
    ASSERT(c->active);
    ASSERT(type == MMSB_EVENT_PAGE_CHANGED || type == MMSB_EVENT_DERIVED);
    if (!wants_events(e, type)) return;
    uint64_t need = (c->event_count + 1) * sizeof(mmsb_event);
    if (c->event_count == MMSB_EVENTS_PER_COMMIT_MAX || vmap_ensure(&c->events, need) != 0) {
        c->events_lost = true;
        return;
    }
    ((mmsb_event *)c->events.base)[c->event_count++] =
        (mmsb_event){.type = type, .page_id = id, .epoch = epoch, .bytes_changed = bytes};
}

void events_deliver(mmsb_engine *e, uint64_t seq) {
    ASSERT(e->sub_count <= MMSB_SUBSCRIBERS_MAX);
    commit_ctx *c = &e->cc;
    ASSERT(!c->active && seq != 0);
    if (e->sub_count == 0) return;
    ASSERT(atomic_load_explicit(&e->callback_tid, memory_order_relaxed) == 0);
    atomic_store_explicit(&e->callback_tid, base_thread_id(), memory_order_relaxed);
    mmsb_event *events = (mmsb_event *)c->events.base;
    for (uint64_t k = 0; k <= c->event_count; k++) {
        mmsb_event ev = k < c->event_count
                            ? events[k]
                            : (mmsb_event){.type = MMSB_EVENT_COMMIT,
                                           .flags = c->events_lost ? MMSB_EVENT_TRUNCATED : 0u};
        ev.commit_seq = seq;
        for (uint32_t i = 0; i < e->sub_count; i++) {
            if (e->subs[i].mask & ev.type) e->subs[i].fn(e->subs[i].user, &ev);
        }
    }
    atomic_store_explicit(&e->callback_tid, 0, memory_order_relaxed);
}

MMSB_API int mmsb_subscribe(mmsb_engine *engine, uint32_t event_mask, mmsb_event_fn fn,
                            void *user, uint64_t *subscription_out) {
    int rc = engine_enter(engine, "mmsb_subscribe");
    if (rc != 0) return rc;
    const uint32_t known = MMSB_EVENT_PAGE_CHANGED | MMSB_EVENT_DERIVED | MMSB_EVENT_COMMIT;
    if (fn == NULL || subscription_out == NULL || event_mask == 0 || (event_mask & ~known)) {
        rc = err_set(MMSB_EINVAL,
                     "mmsb_subscribe: fn and subscription_out are required, "
                     "event_mask 0x%x must be a non-empty set of MMSB_EVENT_*",
                     event_mask);
    } else if (engine->sub_count == MMSB_SUBSCRIBERS_MAX) {
        rc = err_set(MMSB_ENOSPC, "mmsb_subscribe: %u subscriptions already", MMSB_SUBSCRIBERS_MAX);
    } else {
        *subscription_out = ++engine->sub_next;
        engine->subs[engine->sub_count++] =
            (subscriber){.id = engine->sub_next, .mask = event_mask, .fn = fn, .user = user};
        ASSERT(engine->sub_count <= MMSB_SUBSCRIBERS_MAX);
    }
    engine_leave(engine);
    return rc;
}

MMSB_API int mmsb_unsubscribe(mmsb_engine *engine, uint64_t subscription) {
    int rc = engine_enter(engine, "mmsb_unsubscribe");
    if (rc != 0) return rc;
    rc = err_set(MMSB_ENOTFOUND, "mmsb_unsubscribe: no subscription %llu", (unsigned long long)subscription);
    for (uint32_t i = 0; i < engine->sub_count; i++) {
        if (engine->subs[i].id != subscription) continue;
        memmove(&engine->subs[i], &engine->subs[i + 1], (engine->sub_count - i - 1) * sizeof engine->subs[0]);
        engine->sub_count--;
        rc = 0;
        break;
    }
    engine_leave(engine);
    return rc;
}
