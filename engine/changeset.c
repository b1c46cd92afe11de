/*
 * changeset.c - noting what the commit being built changed: the graph
 * marks and ranges propagation starts from, and the commit's events.
 */
#include <stdlib.h>

#include "changeset.h"
#include "events.h"

static int list_push(uint32_t **list, uint32_t *count, uint32_t *cap, uint32_t v) {
    ASSERT(list != NULL && count != NULL && cap != NULL);
    ASSERT(*count <= *cap);
    if (*count == *cap) {
        if (*cap >= UINT32_MAX / 2) return err_set(MMSB_ENOMEM, "commit: node list of %u", *cap);
        uint32_t grown = *cap == 0 ? 64 : 2 * *cap;
        uint32_t *l = realloc(*list, grown * sizeof *l);
        if (l == NULL) return err_set(MMSB_ENOMEM, "commit: node list of %u", grown);
        *list = l;
        *cap = grown;
    }
    (*list)[(*count)++] = v;
    return 0;
}

int change_include(mmsb_engine *e, uint32_t n) {
    commit_ctx *c = &e->cc;
    ASSERT(c->active);
    ASSERT(n != 0 && n < e->g.count);
    return list_push(&c->include, &c->include_count, &c->include_cap, n);
}

void change_note(mmsb_engine *e, uint64_t id, const page_entry *pe, uint64_t old_epoch, uint64_t lo,
                 uint64_t hi, uint64_t bytes, uint32_t event) {
    commit_ctx *c = &e->cc;
    ASSERT(c->active);
    ASSERT(lo < hi && hi <= pe->size_bytes && bytes > 0 && bytes <= hi - lo);
    ASSERT(pe->epoch == old_epoch + 1 || pe->epoch == old_epoch);
    c->res.pages_changed += event == MMSB_EVENT_PAGE_CHANGED;
    c->res.bytes_changed += event == MMSB_EVENT_PAGE_CHANGED ? bytes : 0;
    uint32_t n = graph_node(&e->g, id);
    if (n != 0) {
        gnode *v = graph_at(&e->g, n);
        if (!change_marked(e, v)) {
            v->changed_mark = c->gen;
            v->epoch_at_start = old_epoch;
            v->change_lo = lo;
            v->change_hi = hi;
            /* Out of memory here only loses the range shortcut: propagate
             * also finds changed parents by their mark. */
            if (v->child_count > 0) (void)list_push(&c->changed, &c->changed_count, &c->changed_cap, n);
        } else {
            v->change_lo = min_u64(v->change_lo, lo);
            v->change_hi = max_u64(v->change_hi, hi);
        }
    }
    if (e->sub_count > 0) events_push(e, event, id, pe->epoch, bytes);
}
