/*
 * audit.c - read-only questions the mmsb tool asks of a replayed engine.
 */
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "digest.h"
#include "page.h"
#include "propagate.h"

int audit_page_get(mmsb_engine *e, uint64_t id, audit_page *out) {
    ASSERT(out != NULL);
    page_entry *pe;
    int rc = page_lookup(e, id, "audit", &pe);
    if (rc != 0) return rc;
    digest_page(e, pe, &out->digest);
    out->size_bytes = pe->size_bytes;
    out->epoch = pe->epoch;
    out->bytes = page_bytes(e, pe);
    out->device = (pe->flags & PE_DEVICE) != 0;
    ASSERT(out->size_bytes > 0 && out->bytes != NULL);
    return 0;
}

void audit_state_get(mmsb_engine *e, audit_state *out) {
    ASSERT(!e->cc.active);
    out->pages_live = e->pages_live;
    out->derived = e->g.derived;
    out->page_id_next = atomic_load_explicit(&e->page_id_next, memory_order_relaxed);
    digest_root(e, &out->root);
    ASSERT(out->pages_live < out->page_id_next);
}

int audit_checkpoint_meta(mmsb_engine *e, ckpt_meta *meta, bool *found) {
    ASSERT(meta != NULL && found != NULL);
    *found = false;
    if (e->ck.damage != 0) return err_set(e->ck.damage, "%s", e->ck.damage_detail);
    if (e->ck.store == NULL) return 0;
    int rc = ckpt_read_begin(e->ck.store, meta, found);
    ckpt_read_end(e->ck.store);
    return rc;
}

int audit_cursor(mmsb_engine *e, uint32_t flags, log_cursor **out) {
    ASSERT(e->read_only && e->log == NULL && out != NULL);
    ckpt_meta m;
    bool found = false;
    /* A damaged checkpoint is reported by the commands that load it; here it
     * only means that no leftover segment is known to be covered. */
    if (audit_checkpoint_meta(e, &m, &found) != 0) found = false;
    return cursor_open(e->dir_fd, flags, e->kern, found ? m.segment : 0, out);
}

const kern_ops *audit_kern(const mmsb_engine *e) {
    ASSERT(e->magic == ENGINE_MAGIC);
    ASSERT(e->kern != NULL);
    return e->kern;
}

uint32_t audit_child_count(const mmsb_engine *e, uint64_t id) {
    ASSERT(id != 0 && id <= e->opts.pages_max);
    uint32_t n = graph_node(&e->g, id);
    return n == 0 ? 0 : graph_at(&e->g, n)->child_count;
}

uint64_t audit_child(const mmsb_engine *e, uint64_t id, uint32_t k) {
    uint32_t n = graph_node(&e->g, id);
    ASSERT(n != 0 && k < graph_at(&e->g, n)->child_count);
    ASSERT(id != 0);
    return graph_at(&e->g, graph_at(&e->g, n)->children[k])->page_id;
}

static int grow(void **p, uint64_t *cap, uint64_t need, uint64_t item_bytes) {
    ASSERT(p != NULL && cap != NULL && item_bytes > 0);
    if (need <= *cap) return 0;
    void *q = realloc(*p, need * item_bytes);
    if (q == NULL) return err_set(MMSB_ENOMEM, "audit: %llu bytes of scratch", (unsigned long long)(need * item_bytes));
    *p = q;
    *cap = need;
    ASSERT(*cap >= need);
    return 0;
}

static int scratch_fit(audit_scratch *s, uint32_t parents, uint64_t size) {
    ASSERT(parents >= 1 && size > 0);
    uint64_t in_cap = s->in_cap;
    int rc = grow((void **)&s->in, &in_cap, parents, sizeof *s->in);
    if (rc == 0) rc = grow((void **)&s->sizes, &s->in_cap, parents, sizeof *s->sizes);
    if (rc == 0) rc = grow((void **)&s->out, &s->out_cap, size, 1);
    ASSERT(rc != 0 || (s->in_cap >= parents && s->out_cap >= size));
    return rc;
}

/* Recomputes node v's page from its parents into s->out (a device page's
 * mirror is current between commits). */
static void recompute(mmsb_engine *e, const gnode *v, const page_entry *pe, audit_scratch *s) {
    ASSERT(op_is_builtin(v->op) && s->in_cap >= v->parent_count);
    ASSERT(s->out_cap >= pe->size_bytes);
    for (uint32_t k = 0; k < v->parent_count; k++) {
        const page_entry *pp = entry_of(e, graph_at(&e->g, v->parents[k])->page_id);
        s->in[k] = page_bytes(e, pp);
        s->sizes[k] = pp->size_bytes;
    }
    op_compute(v->op, v->params, s->in, s->sizes, v->parent_count, 0, pe->size_bytes, s->out);
}

int audit_derived_check(mmsb_engine *e, uint64_t id, audit_scratch *s, audit_derived *out) {
    ASSERT(s != NULL && out != NULL && e->read_only);
    *out = (audit_derived){.verdict = AUDIT_NOT_DERIVED};
    uint64_t next = atomic_load_explicit(&e->page_id_next, memory_order_relaxed);
    if (id == 0 || id >= next) return 0;
    page_entry *pe = entry_of(e, id);
    uint32_t n = graph_node(&e->g, id);
    if (!(pe->flags & PE_LIVE) || n == 0 || graph_at(&e->g, n)->op == 0) return 0;
    const gnode *v = graph_at(&e->g, n);
    out->op = v->op;
    out->verdict = AUDIT_USER_OP;
    if (!op_is_builtin(v->op)) return 0;
    h128 want = signature_of(e, n, false);
    out->verdict = AUDIT_BAD_SIGNATURE;
    if (want.lo != v->signature.lo || want.hi != v->signature.hi) return 0;
    int rc = scratch_fit(s, v->parent_count, pe->size_bytes);
    if (rc != 0) return rc;
    recompute(e, v, pe, s);
    const uint8_t *actual = page_bytes(e, pe);
    out->verdict = AUDIT_SAME;
    if (memcmp(s->out, actual, pe->size_bytes) == 0) return 0;
    uint64_t off = 0;
    while (s->out[off] == actual[off]) off++;
    ASSERT(off < pe->size_bytes);
    *out = (audit_derived){.verdict = AUDIT_BAD_BYTES, .op = v->op, .offset = off, .expected = s->out[off],
                           .actual = actual[off]};
    return 0;
}

void audit_scratch_free(audit_scratch *s) {
    ASSERT(s != NULL);
    ASSERT(s->out != NULL || s->out_cap == 0);
    free(s->in);
    free(s->sizes);
    free(s->out);
    *s = (audit_scratch){0};
}
