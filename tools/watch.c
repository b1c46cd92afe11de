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

void tool_options(mmsb_options *o) {
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

int tool_open_readonly(const char *cmd, const char *dir, mmsb_engine **out) {
    mmsb_options o;
    tool_options(&o);
    *out = NULL;
    int rc = mmsb_open(dir, &o, out);
    if (rc == 0) return 0;
    cli_report_open(cmd, dir, rc);
    return rc == MMSB_ECORRUPT || rc == MMSB_EVERSION ? EXIT_PROBLEM : EXIT_USAGE;
}

int tool_engine(const char *cmd, const char *dir, mmsb_engine **out) {
    mmsb_options o;
    tool_options(&o);
    int rc = engine_open_bare(dir, &o, out);
    if (rc != 0) {
        cli_report_open(cmd, dir, rc);
        return EXIT_USAGE;
    }
    return 0;
}

int tool_checkpoint_meta(mmsb_engine *e, ckpt_meta *meta, bool *found) {
    return audit_checkpoint_meta(e, meta, found);
}

void tool_h128_hex(h128 h, char out[33]) {
    uint8_t b[16];
    put_h128(b, h);
    cli_hex128(b, out);
}

void tool_root_hex(mmsb_engine *e, char out[33]) {
    audit_state st;
    audit_state_get(e, &st);
    tool_h128_hex(st.root, out);
}

void replay_watch_free(replay_watch *w) {
    free(w->list);
    free(w->candidates);
    audit_scratch_free(&w->scratch);
    w->list = NULL;
    w->candidates = NULL;
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
    return err_set(MMSB_ECORRUPT, "commit %llu: page %llu: %s", (unsigned long long)seq, (unsigned long long)page,
                   what);
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
    audit_derived d;
    int rc = audit_derived_check(e, id, &w->scratch, &d);
    if (rc != 0) return rc;
    uint64_t seq = last_change_seq(w, id);
    if (seq == 0) seq = commit_seq;
    switch (d.verdict) {
    case AUDIT_NOT_DERIVED: return 0;
    case AUDIT_USER_OP: w->derived_user++; return 0;
    case AUDIT_SAME: w->derived_checked++; return 0;
    case AUDIT_BAD_SIGNATURE:
        return diverge(w, seq, id, 0, 256, 256, "its signature is not the one its parents' epochs give: "
                       "a recompute is missing or was recorded with other inputs");
    case AUDIT_BAD_BYTES: break;
    }
    w->derived_checked++;
    char what[160];
    snprintf(what, sizeof what, "the logged derived bytes differ from what operation %u computes, first at offset %llu",
             d.op, (unsigned long long)d.offset);
    return diverge(w, seq, id, d.offset, d.expected, d.actual, what);
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
        uint32_t children = audit_child_count(e, id);
        rc = grow((void **)&w->candidates, &w->candidates_cap, cand + 1 + children, sizeof *w->candidates);
        if (rc != 0) break;
        w->candidates[cand++] = id;
        for (uint32_t k = 0; k < children; k++) w->candidates[cand++] = audit_child(e, id, k);
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

int tool_cursor(mmsb_engine *e, uint32_t flags, log_cursor **out) { return audit_cursor(e, flags, out); }

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
        if (get_le32(r->payload + COMMIT_OFF_FLAGS) & COMMIT_HAS_ROOT) w->roots_checked++; /* replay compared it */
        if (w->derived_checks) rc = check_commit(w, e, r->seq);
    }
    if (rc == 0 && w->root_at_seq != 0 && r->seq == w->root_at_seq &&
        (r->type == REC_COMMIT || r->type == REC_CHECKPOINT || r->type == REC_ABORT)) {
        audit_state st;
        audit_state_get(e, &st);
        w->root_at = st.root;
        w->have_root_at = true;
    }
    if (w->prog != NULL) progress_update(w->prog, log_files_done(w->files, segment, r->offset));
    return rc;
}
