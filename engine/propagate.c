/*
 * propagate.c - recomputing derived pages at commit.
 *
 * The affected set is every derived page downstream of a page this commit
 * changed (or every derived page, in MMSB_PROPAGATE_FULL). It is processed in
 * topological order, smallest page id first among the ready ones (Kahn's
 * algorithm with a min-heap), so each page is handled once per commit, after
 * all of its parents, in an order that depends on the graph alone.
 *
 * For each page, its epoch signature - a hash of the operation, its version,
 * its params and every parent's id and epoch - decides:
 * - unchanged since its last computation: skip (no work at all);
 * - otherwise compute it: built-ins only over the output range that the
 *   parents' changed ranges map to, when the page was up to date before this
 *   commit (element-wise operations: bit-identical to a full recompute), else
 *   the whole page; user operations always the whole page;
 * - output identical to its bytes: backdate (new signature, same epoch, so
 *   its children skip too); else log the DERIVED parts and change it.
 */
#define XXH_INLINE_ALL
#include <string.h>
#include <xxhash.h>

#include "changeset.h"
#include "engine.h"
#include "journal.h"
#include "page.h"
#include "propagate.h"
#include "record.h"

#define SEED_SIGNATURE 0x4d4d53422d736967ull /* "MMSB-sig" */

enum { SIGNATURE_BUFFER_BYTES = 2048 };

/* ---- signatures ---------------------------------------------------------------- */

/* A signature under construction: small inputs are gathered and hashed in
 * one call; large ones (many parents, long params) go through XXH3's
 * streaming state, which gives the same value. */
typedef struct sig_builder {
    uint8_t buf[SIGNATURE_BUFFER_BYTES];
    uint64_t used;
    bool streaming;
    XXH3_state_t st;
} sig_builder;

static void sig_add(sig_builder *b, const void *data, uint64_t len) {
    ASSERT(len <= (1ull << 32));
    ASSERT(b->used <= sizeof b->buf);
    ASSERT(data != NULL || len == 0);
    if (len == 0) return;
    if (!b->streaming && b->used + len > sizeof b->buf) {
        XXH3_INITSTATE(&b->st);
        XXH3_128bits_reset_withSeed(&b->st, SEED_SIGNATURE);
        XXH3_128bits_update(&b->st, b->buf, b->used);
        b->streaming = true;
    }
    if (b->streaming) {
        XXH3_128bits_update(&b->st, data, len);
    } else {
        memcpy(b->buf + b->used, data, len);
        b->used += len;
    }
}

static h128 sig_end(sig_builder *b) {
    ASSERT(b != NULL);
    ASSERT(b->streaming || b->used <= sizeof b->buf);
    XXH128_hash_t h = b->streaming ? XXH3_128bits_digest(&b->st)
                                   : XXH3_128bits_withSeed(b->buf, b->used, SEED_SIGNATURE);
    /* zero means "never computed": no signature may be zero */
    return (h128){.lo = h.low64, .hi = h.high64 | (h.low64 == 0 && h.high64 == 0)};
}

/* A parent's id and epoch: written straight into the buffer while it has
 * room, so the many-parents walk costs no call per parent. */
static inline void sig_add_parent(sig_builder *b, uint64_t page_id, uint64_t epoch) {
    if (!b->streaming && b->used + 16 <= sizeof b->buf) {
        put_le64(b->buf + b->used, page_id);
        put_le64(b->buf + b->used + 8, epoch);
        b->used += 16;
        return;
    }
    uint8_t item[16];
    put_le64(item, page_id);
    put_le64(item + 8, epoch);
    sig_add(b, item, sizeof item);
}

/* The signature from the parents' epochs now, or (at_start) from their
 * epochs when the commit began. */
h128 signature_of(const mmsb_engine *e, uint32_t n, bool at_start) {
    ASSERT(n != 0 && n < e->g.count);
    const gnode *v = graph_at(&e->g, n);
    ASSERT(v->op != 0 && v->parent_count >= 1);
    uint8_t head[16];
    put_le32(head, v->op);
    put_le32(head + 4, op_version(&e->ops, v->op));
    put_le32(head + 8, v->params_len);
    put_le32(head + 12, v->parent_count);
    sig_builder b; /* not zeroed: a few KiB, and only `used` bytes are read */
    b.used = 0;
    b.streaming = false;
    sig_add(&b, head, sizeof head);
    sig_add(&b, v->params, v->params_len);
    /* Parents sit at random places: ask for all their nodes, then all their
     * page-table entries, before reading any, so the misses overlap. */
    for (uint32_t k = 0; k < v->parent_count; k++) __builtin_prefetch(&e->g.nodes[v->parents[k]]);
    for (uint32_t k = 0; k < v->parent_count; k++) {
        __builtin_prefetch(entry_of(e, e->g.nodes[v->parents[k]].page_id));
    }
    for (uint32_t k = 0; k < v->parent_count; k++) {
        const gnode *p = graph_at(&e->g, v->parents[k]);
        bool before = at_start && change_marked(e, p);
        sig_add_parent(&b, p->page_id, before ? p->epoch_at_start : entry_of(e, p->page_id)->epoch);
    }
    h128 sig = sig_end(&b);
    ASSERT(sig.lo != 0 || sig.hi != 0);
    return sig;
}

static bool h128_eq(h128 a, h128 b) { return a.lo == b.lo && a.hi == b.hi; }

/* ---- the affected set and its order ---------------------------------------------------- */

/* Marks the derived pages downstream of the changed ones (or all of them),
 * lists them in g->found_f, and counts each one's affected parents. */
static uint32_t collect(mmsb_engine *e) {
    ASSERT(e->cc.active && e->g.derived > 0);
    graph *g = &e->g;
    commit_ctx *c = &e->cc;
    uint32_t n = 0, sp = 0;
    if (e->opts.propagation == MMSB_PROPAGATE_FULL) {
        for (uint32_t v = 1; v < g->count; v++) {
            if (g->nodes[v].op == 0 || g->nodes[v].free_next != 0) continue;
            g->nodes[v].mark = c->gen;
            g->found_f[n++] = v;
        }
    } else {
        for (uint32_t i = 0; i < c->changed_count; i++) g->stack[sp++] = c->changed[i];
        for (uint32_t i = 0; i < c->include_count; i++) {
            uint32_t v = c->include[i];
            if (g->nodes[v].mark == c->gen) continue;
            g->nodes[v].mark = c->gen;
            g->found_f[n++] = v;
            g->stack[sp++] = v;
        }
        while (sp > 0) {
            const gnode *v = &g->nodes[g->stack[--sp]];
            for (uint32_t k = 0; k < v->child_count; k++) {
                uint32_t ch = v->children[k];
                if (g->nodes[ch].mark == c->gen) continue;
                g->nodes[ch].mark = c->gen;
                g->found_f[n++] = ch;
                g->stack[sp++] = ch;
            }
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        gnode *v = &g->nodes[g->found_f[i]];
        v->indeg = 0;
        for (uint32_t k = 0; k < v->parent_count; k++) v->indeg += g->nodes[v->parents[k]].mark == c->gen;
    }
    return n;
    ASSERT(n <= g->count);
}

/* A binary min-heap of the ready pages' ids, in g->pool (free during a
 * commit: only graph edits reorder with it). The keys sit in the heap
 * itself, so a sift compares neighbours in one array instead of reaching
 * into a node per comparison; the node is looked up once, when popped. */
static void heap_push(graph *g, uint32_t *size, uint32_t v) {
    ASSERT(g->pool != NULL && v < g->count);
    ASSERT(*size < g->count && v != 0);
    uint64_t *h = g->pool, key = g->nodes[v].page_id;
    uint32_t i = (*size)++;
    while (i > 0 && h[(i - 1) / 2] > key) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = key;
}

static uint32_t heap_pop(graph *g, uint32_t *size) {
    ASSERT(g->pool != NULL);
    ASSERT(*size >= 1 && *size <= g->count);
    uint64_t *h = g->pool, top = h[0], last = h[--(*size)];
    uint32_t i = 0;
    for (;;) { /* at most log2(count) steps: each one doubles i */
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < *size && h[l] < last) m = l;
        if (r < *size && h[r] < (m == i ? last : h[m])) m = r;
        if (m == i) break;
        h[i] = h[m];
        i = m;
    }
    if (*size > 0) h[i] = last;
    uint32_t n = graph_node(g, top);
    ASSERT(n != 0 && g->nodes[n].page_id == top);
    return n;
}

/* ---- computing one page ---------------------------------------------------------------------- */

typedef struct inputs {
    const uint8_t *bytes[DERIVE_PARENTS_MAX];
    uint64_t sizes[DERIVE_PARENTS_MAX];
    uint64_t ids[DERIVE_PARENTS_MAX];
    uint64_t epochs[DERIVE_PARENTS_MAX];
} inputs;

static void gather(const mmsb_engine *e, const gnode *v, inputs *in) {
    ASSERT(v->parent_count >= 1 && v->parent_count <= DERIVE_PARENTS_MAX);
    for (uint32_t k = 0; k < v->parent_count; k++) {
        const gnode *p = graph_at(&e->g, v->parents[k]);
        const page_entry *pe = entry_of(e, p->page_id);
        in->bytes[k] = page_bytes(e, pe);
        /* where the parent changed: what the op reads first (no division
         * here: one per parent sat at the DAG profile's hottest spot) */
        __builtin_prefetch(in->bytes[k] + (p->change_lo < pe->size_bytes ? p->change_lo : 0));
        in->sizes[k] = pe->size_bytes;
        in->ids[k] = p->page_id;
        in->epochs[k] = pe->epoch;
    ASSERT(pe->flags & PE_LIVE);
    }
}

/* The output range the parents' changes map to; false when the page must
 * be computed whole (it was stale before this commit, or a user op). */
static bool changed_range(const mmsb_engine *e, uint32_t n, const inputs *in, h128 start_sig,
                          uint64_t *lo, uint64_t *hi) {
    ASSERT(lo != NULL && hi != NULL && *lo <= *hi);
    const gnode *v = graph_at(&e->g, n);
    if (!op_is_builtin(v->op) || e->opts.propagation == MMSB_PROPAGATE_FULL) return false;
    if (!h128_eq(v->signature, start_sig)) return false;
    uint64_t size = entry_of(e, v->page_id)->size_bytes;
    *lo = UINT64_MAX;
    *hi = 0;
    for (uint32_t k = 0; k < v->parent_count; k++) {
        const gnode *p = graph_at(&e->g, v->parents[k]);
        if (!change_marked(e, p)) continue;
        uint64_t a, b;
        op_map_range(v->op, v->params, in->sizes, k, p->change_lo, p->change_hi, size, &a, &b);
        if (a < b) {
            *lo = min_u64(*lo, a);
            *hi = max_u64(*hi, b);
        }
    }
    if (*lo >= *hi) *lo = *hi = 0;
    ASSERT(*lo <= *hi && *hi <= size);
    return *hi - *lo <= size / 2;
}

/* Computes a built-in's output [lo, hi) into `out` (whose byte 0 is the
 * page's byte lo), block by block. */
static void compute_builtin(const gnode *v, const inputs *in, uint64_t lo, uint64_t hi, uint8_t *out) {
    ASSERT(out != NULL && in != NULL);
    ASSERT(op_is_builtin(v->op) && lo <= hi);
    for (uint64_t block = lo; block < hi; block += WRITE_BLOCK_BYTES) {
        uint64_t len = min_u64(WRITE_BLOCK_BYTES, hi - block);
        op_compute(v->op, v->params, in->bytes, in->sizes, v->parent_count, block, block + len, out + (block - lo));
    }
}

/* Diffs the output [lo, hi) (in `out`, byte 0 = page byte lo) against the
 * page block by block and logs every block that differs; *first and *last
 * bound the changed bytes (page offsets, last exclusive). */
static int record_output(mmsb_engine *e, const gnode *v, const page_entry *pe, const uint8_t *out,
                         uint64_t lo, uint64_t hi, h128 sig, uint64_t *changed_out, uint64_t *first_out,
                         uint64_t *last_out) {
    ASSERT(lo <= hi && hi <= pe->size_bytes && out != NULL);
    ASSERT(pe == entry_of(e, v->page_id));
    const location_ops *loc = location_of(e, pe);
    uint64_t changed = 0, epoch = touched_epoch(e, v->page_id, pe);
    ASSERT(epoch == pe->epoch + 1); /* a derived page changes once per commit, here */
    for (uint64_t block = lo; block < hi; block += WRITE_BLOCK_BYTES) {
        uint64_t len = min_u64(WRITE_BLOCK_BYTES, hi - block);
        const uint8_t *src = out + (block - lo);
        uint64_t c = loc->diff(e, pe, block, src, len, e->mask_scratch);
        if (c == 0) continue;
        delta_part part = {.type = REC_DERIVED, .page_id = v->page_id, .epoch = epoch, .base = block,
                           .signature = sig, .mask = e->mask_scratch, .block_len = len, .count = c, .dense = src};
        bool any = mask_bounds(e->mask_scratch, (len + 7) / 8, &part.first, &part.last);
        ASSERT(any);
        int rc = record_delta_part(e, &part);
        if (rc != 0) return rc;
        *first_out = min_u64(*first_out, block + part.first);
        *last_out = block + part.last + 1;
        changed += c;
    }
    *changed_out = changed;
    ASSERT(changed == 0 || (*first_out < *last_out && *last_out <= hi && *first_out >= lo));
    return 0;
}

static int run_user_op(mmsb_engine *e, const gnode *v, const inputs *in, uint64_t size) {
    ASSERT(in != NULL && v->page_id != 0);
    ASSERT(!op_is_builtin(v->op) && size > 0);
    const user_op *u = op_find(&e->ops, v->op);
    if (u == NULL) {
        return err_set(MMSB_ENOTFOUND,
                       "page %llu is derived by user operation %u, which is not registered in this engine",
                       (unsigned long long)v->page_id, v->op);
    }
    int rc = vmap_ensure(&e->op_out, size);
    if (rc != 0) return rc;
    mmsb_op_input input = {.child_id = v->page_id, .parent_count = v->parent_count, .op_version = u->version,
                           .parent_ids = in->ids, .parent_epochs = in->epochs, .parent_bytes = in->bytes,
                           .parent_sizes = in->sizes, .params = v->params, .params_len = v->params_len};
    int user_rc = u->fn(u->user, &input, e->op_out.base, size);
    if (user_rc != 0) {
        return err_set(MMSB_EOP, "user operation %u for page %llu returned %d; the commit is rolled back",
                       v->op, (unsigned long long)v->page_id, user_rc);
    }
    return 0;
}

/* What computing node n takes: its signature now, whether it is skipped,
 * and the output range to compute (inputs gathered into `in`). */
typedef struct plan {
    h128 sig;
    bool skip, ranged;
    uint64_t lo, hi;
} plan;

static inline void plan_of(mmsb_engine *e, uint32_t n, inputs *in, plan *p) {
    gnode *v = graph_at(&e->g, n);
    p->sig = signature_of(e, n, false); /* a skip needs no more: most pages of a large set skip */
    p->skip = e->opts.propagation != MMSB_PROPAGATE_FULL && h128_eq(p->sig, v->signature);
    if (p->skip) return;
    h128 start_sig = signature_of(e, n, true);
    gather(e, v, in);
    p->lo = 0;
    p->hi = entry_of(e, v->page_id)->size_bytes;
    p->ranged = changed_range(e, n, in, start_sig, &p->lo, &p->hi);
}

/* ---- lanewise outputs of device pages computed ahead ------------------------------------------- */

/* The device returns a lanewise output after a wait. The pages ready at
 * one time do not read one another and their parents are final, so
 * their outputs are asked for together, before their turns, and come in
 * one wait; each is taken at its page's turn, in the same order as ever
 * (the log and every result are the same). An output not taken (the
 * commit failed first) gets the mirror's bytes back into its page's copy. */

static bool ahead_wanted(const mmsb_engine *e, uint32_t n) {
    const gnode *v = graph_at(&e->g, n);
    return v->op >= MMSB_OP_XOR && v->op <= MMSB_OP_MAX_U64 && (entry_of(e, v->page_id)->flags & PE_DEVICE);
}

/* Asks for node m's output ahead; false when the batch is full. */
static bool ahead_one(mmsb_engine *e, uint32_t m, inputs *in) {
    device_ahead *a = &e->dv.ahead;
    ASSERT(a->count < DEVICE_AHEAD_MAX);
    plan p;
    plan_of(e, m, in, &p);
    if (p.skip || p.lo == p.hi) return true;
    if (a->out_used + (p.hi - p.lo) > DEVICE_AHEAD_BYTES || vmap_ensure(&a->out, a->out_used + p.hi - p.lo) != 0) {
        return false;
    }
    const gnode *v = graph_at(&e->g, m);
    const page_entry *pe = entry_of(e, v->page_id);
    location_computed where = location_compute_start(e, pe, v->op, v->params, in->ids, in->sizes, v->parent_count,
                                                      p.lo, p.hi, a->out.base + a->out_used);
    if (where != COMPUTED_BOTH) return gpu_dev_op_room(e->dv.dev) >= v->parent_count; /* host: at its turn */
    a->node[a->count] = m;
    a->lo[a->count] = p.lo;
    a->hi[a->count] = p.hi;
    a->at[a->count++] = a->out_used;
    a->out_used += p.hi - p.lo;
    return a->count < DEVICE_AHEAD_MAX;
}

/* At the turn of node n, a lanewise device page, with `ready` other pages
 * ready (their ids in keys): when the outputs asked for before are all
 * taken, asks for n's and those of the others (the first DEVICE_AHEAD_SCAN
 * looked at) that the device computes, and waits once. */
static void ahead_start(mmsb_engine *e, uint32_t n, const uint64_t *keys, uint32_t ready, inputs *in) {
    device_ahead *a = &e->dv.ahead;
    ASSERT(a->used <= a->count);
    if (a->used < a->count || !ahead_wanted(e, n)) return;
    a->count = a->used = 0;
    a->out_used = 0;
    bool room = ahead_one(e, n, in);
    ready = ready < DEVICE_AHEAD_SCAN ? ready : DEVICE_AHEAD_SCAN;
    for (uint32_t i = 0; i < ready && room; i++) { /* heap order: any order gives the same outputs */
        uint32_t m = graph_node(&e->g, keys[i]);
        if (ahead_wanted(e, m)) room = ahead_one(e, m, in);
    }
    if (a->count > 0 && !location_compute_wait(e)) a->count = 0; /* void: computed on the host at their turns */
}

/* Node n's output computed ahead, [lo, hi) of it: its bytes, or NULL. */
static const uint8_t *ahead_take(mmsb_engine *e, uint32_t n, uint64_t lo, uint64_t hi) {
    device_ahead *a = &e->dv.ahead;
    for (uint32_t i = a->used; i < a->count; i++) { /* taken in turn order, mostly the first one left */
        if (a->node[i] != n) continue;
        ASSERT(a->lo[i] == lo && a->hi[i] == hi); /* its parents were final when it was asked for */
        if (i != a->used) { /* keep the ones left at [used, count) */
            uint32_t u = a->used;
            uint32_t t_node = a->node[u];
            uint64_t t_lo = a->lo[u], t_hi = a->hi[u], t_at = a->at[u];
            a->node[u] = a->node[i], a->lo[u] = a->lo[i], a->hi[u] = a->hi[i], a->at[u] = a->at[i];
            a->node[i] = t_node, a->lo[i] = t_lo, a->hi[i] = t_hi, a->at[i] = t_at;
        }
        return a->out.base + a->at[a->used++];
    }
    return NULL;
}

/* The commit failed: outputs not taken give their copies the mirrors'
 * bytes back. */
static void ahead_abandon(mmsb_engine *e) {
    device_ahead *a = &e->dv.ahead;
    for (uint32_t i = a->used; i < a->count; i++) {
        location_uncompute(e, entry_of(e, graph_at(&e->g, a->node[i])->page_id), a->lo[i], a->hi[i]);
    }
    a->count = a->used = 0;
}

/* ---- computing one page, continued -------------------------------------------------------------- */

/* The output bytes [lo, hi) of node n into *out (byte 0 = page byte lo):
 * e->op_out, or an output computed ahead; *where: whether the device wrote
 * them into a device page's copy. */
static int produce(mmsb_engine *e, uint32_t n, const inputs *in, uint64_t lo, uint64_t hi, const uint8_t **out,
                   location_computed *where) {
    const gnode *v = graph_at(&e->g, n);
    const page_entry *pe = entry_of(e, v->page_id);
    ASSERT(lo <= hi && hi <= pe->size_bytes);
    ASSERT(op_is_builtin(v->op) || (lo == 0 && hi == pe->size_bytes));
    *where = COMPUTED_HOST;
    *out = e->op_out.base;
    if (!op_is_builtin(v->op)) return run_user_op(e, v, in, pe->size_bytes); /* the whole page */
    if (e->dv.ahead.count > e->dv.ahead.used && (*out = ahead_take(e, n, lo, hi)) != NULL) {
        *where = COMPUTED_BOTH;
        return 0;
    }
    *out = e->op_out.base; /* ahead_take's NULL */
    int rc = vmap_ensure(&e->op_out, hi - lo);
    if (rc != 0) return rc;
    if (pe->flags & PE_DEVICE) { /* a host page's one location check: no call */
        *where = location_compute(e, pe, v->op, v->params, in->ids, in->sizes, v->parent_count, lo, hi, e->op_out.base);
    }
    if (*where != COMPUTED_BOTH) compute_builtin(v, in, lo, hi, e->op_out.base);
    return 0;
}

/* record_output for an output the device may have written into the page's
 * copy already: if it is not logged, the copy gets its mirror's bytes back
 * (no change was made, so there is no journal entry to undo it). */
static int record_computed(mmsb_engine *e, const gnode *v, const page_entry *pe, location_computed where,
                           const uint8_t *out, const plan *p, uint64_t *changed, uint64_t *first, uint64_t *last) {
    int rc = 0;
    if (where != COMPUTED_HOST && engine_point(e, "gpu-derived-record") != 0) { /* as a failed log append */
        rc = err_set(MMSB_EIO, "the record of page %llu was refused (gpu-derived-record)",
                     (unsigned long long)v->page_id);
    }
    if (rc == 0) rc = record_output(e, v, pe, out, p->lo, p->hi, p->sig, changed, first, last);
    if (rc != 0 && where != COMPUTED_HOST) location_uncompute(e, pe, p->lo, p->hi);
    return rc;
}

static int compute(mmsb_engine *e, uint32_t n, inputs *in) {
    ASSERT(e->cc.active && n != 0);
    gnode *v = graph_at(&e->g, n);
    commit_ctx *c = &e->cc;
    plan p;
    plan_of(e, n, in, &p);
    if (p.skip) {
        c->res.skips++;
        return 0;
    }
    page_entry *pe = entry_of(e, v->page_id);
    location_computed where = COMPUTED_HOST;
    const uint8_t *out = NULL;
    int rc = touched_prepare(e);
    if (rc == 0) rc = produce(e, n, in, p.lo, p.hi, &out, &where);
    if (rc != 0) return rc;
    uint64_t changed = 0, first = UINT64_MAX, last = 0, old_epoch = pe->epoch;
    if (journal_complete(e)) journal_signature(e, v->page_id, v->signature);
    rc = record_computed(e, v, pe, where, out, &p, &changed, &first, &last);
    if (rc != 0) return rc;
    if (changed > 0) {
        page_change_args a = {.kind = PAGE_COPY, .offset = first, .len = last - first,
                              .src = out + (first - p.lo), .epoch = old_epoch + 1,
                              .copy_current = where != COMPUTED_HOST};
        page_change(e, v->page_id, pe, &a);
    }
    bool sig_changed = !h128_eq(p.sig, v->signature);
    v->signature = p.sig;
    ckpt_mark(e, v->page_id);
    if (changed == 0) {
        /* Only the full mode computes a page whose signature did not change;
         * the log already holds that signature. */
        c->res.backdates++;
        return sig_changed ? record_backdate(e, v->page_id, pe->epoch, p.sig) : 0;
    }
    c->res.recomputes++;
    ASSERT(pe->epoch == old_epoch + 1);
    c->res.delta_propagations += p.ranged;
    change_note(e, v->page_id, pe, old_epoch, first, last, changed, MMSB_EVENT_DERIVED);
    return 0;
}

int propagate_open(mmsb_engine *e) {
    ASSERT(e->op_in.base == NULL);
    return vmap_open(&e->op_in, NULL, sizeof(inputs), VM_PAGE_BYTES);
}

void propagate_close(mmsb_engine *e) { vmap_close(&e->op_in); }

int propagate(mmsb_engine *e) {
    commit_ctx *c = &e->cc;
    ASSERT(c->active);
    graph *g = &e->g;
    /* A commit that changed nothing has nothing to recompute, in either mode. */
    if (c->changed_count == 0 && c->include_count == 0) return 0;
    if (g->derived == 0) return 0;
    uint32_t count = collect(e), ready = 0;
    for (uint32_t i = 0; i < count; i++) {
        if (g->nodes[g->found_f[i]].indeg == 0) heap_push(g, &ready, g->found_f[i]);
    }
    inputs *in = (inputs *)(void *)e->op_in.base;
    for (uint32_t done = 0; ready > 0; done++) {
        ASSERT(done < count);
        uint32_t n = heap_pop(g, &ready);
        if (e->dv.dev != NULL) ahead_start(e, n, g->pool, ready, in);
        int rc = compute(e, n, in);
        if (rc != 0) {
            if (e->dv.dev != NULL) ahead_abandon(e);
            return rc;
        }
        const gnode *v = &g->nodes[n];
        for (uint32_t k = 0; k < v->child_count; k++) {
            gnode *ch = &g->nodes[v->children[k]];
            if (ch->mark == c->gen && --ch->indeg == 0) heap_push(g, &ready, v->children[k]);
        }
    }
    ASSERT(e->dv.ahead.used == e->dv.ahead.count); /* every page computed ahead had its turn */
    e->dv.ahead.count = e->dv.ahead.used = 0;
    return 0;
}
