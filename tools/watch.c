/*
 * watch.c - what a replay by the tool checks besides what every replay
 * checks (CRCs, chain, structure, recorded state roots): after each commit,
 * every derived page of a built-in operation that the commit changed, or
 * whose parent it changed, is recomputed from its parents and compared with
 * what the logged DERIVED records made of it, and its signature with the one
 * its parents' epochs give. The first disagreement is a divergence.
 */
#include <stdlib.h>
#include <string.h>

#include "tool.h"

#define TOOL_ARENA_BYTES (64ull << 30) /* address space for replays: any default store fits */

/* Limits large enough for any store the library writes by default. */
static void tool_options(mmsb_options *o) {
    MMSB_OPTIONS_INIT(o);
    o->gpu = MMSB_GPU_OFF;
    o->arena_bytes_max = TOOL_ARENA_BYTES; /* address space only: filled as pages come */
    o->arena_grow_bytes = 8ull << 20;             /* small stores replay without a long prefault */
    o->flags = MMSB_OPEN_READONLY;
}

int tool_state(const char *dir, mmsb_engineinfo *info, char root[33]) {
    mmsb_options o;
    tool_options(&o);
    mmsb_engine *e;
    int rc = mmsb_open(dir, &o, &e);
    if (rc != 0) return rc;
    mmsb_digest d;
    *info = (mmsb_engineinfo){.struct_size = sizeof *info};
    rc = mmsb_engine_info(e, info);
    if (rc == 0) rc = mmsb_state_root(e, &d);
    if (rc == 0) mmsb_digest_hex(&d, root, 33);
    mmsb_close(e);
    return rc;
}

int tool_engine(const char *cmd, const char *dir, mmsb_engine **out) {
    mmsb_options o;
    tool_options(&o);
    int rc = engine_open_bare(dir, &o, out);
    if (rc != 0) {
        fprintf(stderr, "mmsb %s: %s: %s: %s\n", cmd, dir, mmsb_strerror(rc), mmsb_last_error());
        return EXIT_USAGE;
    }
    return 0;
}

int tool_checkpoint_meta(mmsb_engine *e, ckpt_meta *meta, bool *found) {
    *found = false;
    if (e->ck.damage != 0) return err_set(e->ck.damage, "%s", e->ck.damage_detail);
    if (e->ck.store == NULL) return 0;
    int rc = ckpt_read_begin(e->ck.store, meta, found);
    ckpt_read_end(e->ck.store);
    return rc;
}

void tool_h128_hex(h128 h, char out[33]) {
    uint8_t b[16];
    digest_to_bytes(h, b);
    cli_hex128(b, out);
}

void tool_root_hex(mmsb_engine *e, char out[33]) {
    h128 root;
    digest_root(e, &root);
    tool_h128_hex(root, out);
}

void replay_watch_free(replay_watch *w) {
    free(w->list);
    free(w->candidates);
    free(w->in);
    free(w->sizes);
    free(w->out);
    w->list = NULL;
    w->candidates = NULL;
    w->in = NULL;
    w->sizes = NULL;
    w->out = NULL;
}

static int grow(void **p, uint64_t *cap, uint64_t need, uint64_t elem) {
    if (need <= *cap) return 0;
    uint64_t n = *cap < 64 ? 64 : *cap;
    while (n < need) n *= 2;
    void *q = realloc(*p, n * elem);
    if (q == NULL) return err_set(MMSB_ENOMEM, "replay: out of memory for %llu entries", (unsigned long long)n);
    *p = q;
    *cap = n;
    return 0;
}

static int note_change(replay_watch *w, uint64_t page, uint64_t seq) {
    int rc = grow((void **)&w->list, &w->cap, w->count + 1, sizeof *w->list);
    if (rc == 0) w->list[w->count++] = (touched){.page = page, .seq = seq};
    return rc;
}

static int cmp_touched(const void *a, const void *b) {
    const touched *x = a, *y = b;
    if (x->page != y->page) return x->page < y->page ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int diverge(replay_watch *w, uint64_t seq, uint64_t page, uint64_t offset, uint32_t expected,
                   uint32_t actual, const char *what) {
    w->div = (divergence){.found = true, .seq = seq, .page = page, .offset = offset, .expected = expected,
                          .actual = actual};
    snprintf(w->div.what, sizeof w->div.what, "%s", what);
    return err_set(MMSB_ECORRUPT, "commit %llu: page %llu: %s", (unsigned long long)seq, (unsigned long long)page, what);
}

/* The last record of this commit that changed page (0: none did). */
static uint64_t last_change_seq(const replay_watch *w, uint64_t page) {
    uint64_t seq = 0;
    for (uint64_t i = 0; i < w->count; i++) {
        if (w->list[i].page == page && w->list[i].seq > seq) seq = w->list[i].seq;
    }
    return seq;
}

/* Recomputes derived page `id` (a built-in operation) from its parents now
 * and compares bytes and signature with the replayed ones. */
static int check_derived(replay_watch *w, mmsb_engine *e, uint64_t id, uint64_t commit_seq) {
    page_entry *pe = entry_of(e, id);
    uint32_t n = graph_node(&e->g, id);
    if (!(pe->flags & PE_LIVE) || n == 0 || graph_at(&e->g, n)->op == 0) return 0;
    const gnode *v = graph_at(&e->g, n);
    if (!op_is_builtin(v->op)) {
        w->derived_user++; /* a user operation: its code is not in the log */
        return 0;
    }
    uint64_t seq = last_change_seq(w, id);
    if (seq == 0) seq = commit_seq;
    h128 want = signature_of(e, n, false);
    if (want.lo != v->signature.lo || want.hi != v->signature.hi) {
        return diverge(w, seq, id, 0, 256, 256, "its signature is not the one its parents' epochs give: "
                       "a recompute is missing or was recorded with other inputs");
    }
    int rc = grow((void **)&w->in, &w->in_cap, v->parent_count, sizeof *w->in);
    if (rc == 0) rc = grow((void **)&w->sizes, &w->sizes_cap, v->parent_count, sizeof *w->sizes);
    if (rc == 0) rc = grow((void **)&w->out, &w->out_cap, pe->size_bytes, 1);
    if (rc != 0) return rc;
    for (uint32_t k = 0; k < v->parent_count; k++) {
        const page_entry *pp = entry_of(e, graph_at(&e->g, v->parents[k])->page_id);
        if ((pp->flags & PE_DEVICE) || (pe->flags & PE_DEVICE)) {
            w->derived_device++;
            return 0;
        }
        w->in[k] = page_bytes(e, pp);
        w->sizes[k] = pp->size_bytes;
    }
    op_compute(v->op, v->params, w->in, w->sizes, v->parent_count, 0, pe->size_bytes, w->out);
    const uint8_t *actual = page_bytes(e, pe);
    w->derived_checked++;
    if (memcmp(w->out, actual, pe->size_bytes) == 0) return 0;
    uint64_t off = 0;
    while (w->out[off] == actual[off]) off++;
    char what[160];
    snprintf(what, sizeof what, "the logged derived bytes differ from what operation %u computes, first at offset %llu",
             v->op, (unsigned long long)off);
    return diverge(w, seq, id, off, w->out[off], actual[off], what);
}

/* At a commit: the changed pages that are derived, and the derived
 * children of every changed page, each checked once, in id order. */
static int check_commit(replay_watch *w, mmsb_engine *e, uint64_t commit_seq) {
    if (w->count == 0) return 0;
    qsort(w->list, w->count, sizeof *w->list, cmp_touched);
    uint64_t cand = 0;
    int rc = 0;
    for (uint64_t i = 0; i < w->count && rc == 0; i++) {
        uint64_t id = w->list[i].page;
        if (i > 0 && w->list[i - 1].page == id) continue;
        uint32_t n = graph_node(&e->g, id);
        if (n == 0) continue;
        const gnode *v = graph_at(&e->g, n);
        rc = grow((void **)&w->candidates, &w->candidates_cap, cand + 1 + v->child_count, sizeof *w->candidates);
        if (rc != 0) break;
        w->candidates[cand++] = id;
        for (uint32_t k = 0; k < v->child_count; k++) w->candidates[cand++] = graph_at(&e->g, v->children[k])->page_id;
    }
    if (cand > 1) qsort(w->candidates, cand, sizeof *w->candidates, cmp_u64);
    for (uint64_t i = 0; i < cand && rc == 0; i++) {
        if (i > 0 && w->candidates[i] == w->candidates[i - 1]) continue;
        rc = check_derived(w, e, w->candidates[i], commit_seq);
    }
    w->count = 0;
    return rc;
}

uint64_t tool_record_page(const log_rec *r) {
    switch (r->type) {
    case REC_PAGE_CREATE:
    case REC_PAGE_FREE:
    case REC_DELTA:
    case REC_DERIVED:
    case REC_DERIVE:
    case REC_UNDERIVE: return get_le64(r->payload); /* lengths were checked by the cursor */
    case REC_EDGE_ADD:
    case REC_EDGE_REMOVE: return get_le64(r->payload + 8);
    default: return 0;
    }
}

int tool_cursor(mmsb_engine *e, uint32_t flags, log_cursor **out) {
    ckpt_meta m;
    bool found = false;
    /* A damaged checkpoint is reported by the commands that load it; here it
     * only means that no leftover segment is known to be covered. */
    if (tool_checkpoint_meta(e, &m, &found) != 0) found = false;
    return cursor_open(e->dir_fd, flags, e->kern, found ? m.segment : 0, out);
}

int tool_scan_log(mmsb_engine *e, const log_files *lf, tool_record_fn fn, void *ctx, log_end *end,
                  uint64_t **aborted, uint64_t *aborted_count) {
    log_cursor *c;
    int rc = tool_cursor(e, CURSOR_VERIFY, &c);
    if (rc != 0) return rc;
    progress prog;
    progress_start(&prog, "reading the log", lf != NULL ? lf->bytes : 0);
    bool done = false;
    log_rec r;
    while (rc == 0 && !done) {
        rc = cursor_next(c, &r, &done);
        if (rc != 0 || done) break;
        if (fn != NULL) fn(ctx, &r);
        if (lf != NULL) progress_update(&prog, log_files_done(lf, cursor_segment(c), r.offset));
    }
    progress_end(&prog);
    *end = *cursor_end(c);
    if (aborted != NULL) cursor_take_aborted(c, aborted, aborted_count);
    cursor_close(c);
    return rc;
}

int replay_watch_hook(void *ctx, mmsb_engine *e, const log_rec *r, uint64_t segment) {
    replay_watch *w = ctx;
    int rc = 0;
    uint64_t page = r->type == REC_PAGE_CREATE || r->type == REC_PAGE_FREE ? 0 : tool_record_page(r);
    if (page != 0 && w->derived_checks) rc = note_change(w, page, r->seq);
    if (r->type == REC_COMMIT) {
        if (get_le32(r->payload + 16) & COMMIT_HAS_ROOT) w->roots_checked++; /* replay compared it */
        if (w->derived_checks) rc = check_commit(w, e, r->seq);
    }
    if (rc == 0 && w->root_at_seq != 0 && r->seq == w->root_at_seq &&
        (r->type == REC_COMMIT || r->type == REC_CHECKPOINT)) {
        digest_root(e, &w->root_at);
        w->have_root_at = true;
    }
    if (w->prog != NULL) progress_update(w->prog, log_files_done(w->files, segment, r->offset));
    return rc;
}
