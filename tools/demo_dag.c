/*
 * demo_dag.c - the derived-page half of `mmsb demo`: builds a seeded DAG of
 * a few hundred derived pages over a set of base pages (built-in operations
 * and two user operations), then runs transactions and batches against the
 * base pages and counts what propagation did: recomputes, skips, backdates.
 * Some transactions are meant to fail (a stale expected epoch, a user
 * operation that refuses its input) or are aborted; the demo checks that
 * each of those left the state root as it was.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

enum {
    BASE_PAGES = 48,
    BASE_BYTES = 4096,
    SLICE_BYTES = 1024,
    L1_SLICES = 64,  /* COPY of a 1 KiB range of a base page */
    L1_MIXES = 96,   /* XOR, SUM_U32, MAX_U8 of 2..4 base pages */
    L2_CONCATS = 32, /* CONCAT of 4 slices: 4 KiB */
    L2_MIXES = 48,   /* SUM_U64, MAX_U32, XOR of 4 KiB pages of levels 1..2 */
    L3_HISTOGRAMS = 24,
    DAG_PAGES_MAX = 512,
    DAG_PARENTS_MAX = 8,
    HIST_BYTES = 256 * 4,
    GUARD_BYTES = 64,
    GUARD_REFUSES = 0xEE, /* the guard operation fails on this first byte */
    OP_HISTOGRAM = MMSB_OP_USER_FIRST,
    OP_GUARD = MMSB_OP_USER_FIRST + 1,
    TXN_PAGES_MAX = 4,
    WRITE_BYTES_MAX = 64,
};

typedef struct dag {
    mmsb_engine *e;
    uint64_t *rng;
    uint64_t base[BASE_PAGES];
    uint64_t slices[L1_SLICES];
    uint64_t wide[DAG_PAGES_MAX]; /* derived 4 KiB pages, in creation order */
    uint32_t wide_count;
    uint64_t level2[L2_CONCATS + L2_MIXES];
    uint32_t level2_count;
    uint64_t hist[L3_HISTOGRAMS];
    uint64_t guard_parent;
    dag_stats *st;
} dag;

/* 256 little-endian u32 counts of the byte values of all parents. */
static int op_histogram(void *user, const mmsb_op_input *in, uint8_t *out, uint64_t out_len) {
    (void)user;
    if (out_len != HIST_BYTES) return -1;
    uint32_t counts[256] = {0};
    for (uint32_t p = 0; p < in->parent_count; p++) {
        for (uint64_t i = 0; i < in->parent_sizes[p]; i++) counts[in->parent_bytes[p][i]]++;
    }
    for (uint32_t v = 0; v < 256; v++) {
        for (uint32_t b = 0; b < 4; b++) out[v * 4 + b] = (uint8_t)(counts[v] >> (8 * b));
    }
    return 0;
}

/* The first bytes of its parent, unless the parent starts with the refused
 * value: then the whole commit fails and nothing of it is applied. */
static int op_guard(void *user, const mmsb_op_input *in, uint8_t *out, uint64_t out_len) {
    (void)user;
    if (in->parent_count != 1 || in->parent_sizes[0] < out_len) return -1;
    if (in->parent_bytes[0][0] == GUARD_REFUSES) return -2;
    memcpy(out, in->parent_bytes[0], out_len);
    return 0;
}

static uint64_t below(dag *g, uint64_t bound) { return bound == 0 ? 0 : cli_rng_next(g->rng) % bound; }

static void add_counts(dag_stats *st, const mmsb_commit_result *r) {
    st->recomputes += r->recomputes;
    st->skips += r->skips;
    st->backdates += r->backdates;
    st->delta_propagations += r->delta_propagations;
}

static int derive(dag *g, uint64_t size, uint32_t op, const uint64_t *parents, uint32_t count,
                  const void *params, uint64_t params_len, uint64_t *id_out) {
    int rc = mmsb_page_create(g->e, size, 0, id_out);
    if (rc != 0) return rc;
    mmsb_derive_spec spec = {.struct_size = sizeof spec, .op = op, .parents = parents,
                             .parent_count = count, .params = params, .params_len = params_len};
    mmsb_commit_result r = {.struct_size = sizeof r};
    rc = mmsb_derive(g->e, *id_out, &spec, &r);
    if (rc == 0) g->st->derived_pages++;
    if (rc == 0) g->st->edges += count;
    return rc;
}

/* count distinct picks from pool[0 .. n) */
static void pick(dag *g, const uint64_t *pool, uint32_t n, uint32_t count, uint64_t *out) {
    for (uint32_t k = 0; k < count; k++) {
        bool again = true;
        for (uint32_t tries = 0; again && tries < 64; tries++) {
            out[k] = pool[below(g, n)];
            again = false;
            for (uint32_t j = 0; j < k; j++) again |= out[j] == out[k];
        }
    }
}

static int build_level1(dag *g) {
    int rc = 0;
    for (uint32_t i = 0; rc == 0 && i < L1_SLICES; i++) {
        uint64_t parent = g->base[below(g, BASE_PAGES)];
        uint64_t range[2] = {SLICE_BYTES * below(g, BASE_BYTES / SLICE_BYTES), SLICE_BYTES};
        uint8_t params[16];
        for (uint32_t b = 0; b < 16; b++) params[b] = (uint8_t)(range[b / 8] >> (8 * (b % 8)));
        rc = derive(g, SLICE_BYTES, MMSB_OP_COPY, &parent, 1, params, sizeof params, &g->slices[i]);
    }
    static const uint32_t ops[] = {MMSB_OP_XOR, MMSB_OP_SUM_U32, MMSB_OP_MAX_U8};
    for (uint32_t i = 0; rc == 0 && i < L1_MIXES; i++) {
        uint64_t parents[DAG_PARENTS_MAX];
        uint32_t count = 2 + (uint32_t)below(g, 3);
        pick(g, g->base, BASE_PAGES, count, parents);
        rc = derive(g, BASE_BYTES, ops[i % 3], parents, count, NULL, 0, &g->wide[g->wide_count]);
        g->wide_count += rc == 0;
    }
    return rc;
}

/* Level 2 reads level 1 and earlier level-2 pages: diamonds and chains. */
static int build_level2(dag *g) {
    int rc = 0;
    for (uint32_t i = 0; rc == 0 && i < L2_CONCATS; i++) {
        uint64_t parents[4];
        pick(g, g->slices, L1_SLICES, 4, parents);
        rc = derive(g, BASE_BYTES, MMSB_OP_CONCAT, parents, 4, NULL, 0, &g->wide[g->wide_count]);
        if (rc == 0) g->level2[g->level2_count++] = g->wide[g->wide_count++];
    }
    static const uint32_t ops[] = {MMSB_OP_SUM_U64, MMSB_OP_MAX_U32, MMSB_OP_XOR};
    for (uint32_t i = 0; rc == 0 && i < L2_MIXES; i++) {
        uint64_t parents[DAG_PARENTS_MAX];
        uint32_t count = 2 + (uint32_t)below(g, 3);
        pick(g, g->wide, g->wide_count, count, parents);
        rc = derive(g, BASE_BYTES, ops[i % 3], parents, count, NULL, 0, &g->wide[g->wide_count]);
        if (rc == 0) g->level2[g->level2_count++] = g->wide[g->wide_count++];
    }
    return rc;
}

static int build_level3(dag *g) {
    int rc = 0;
    for (uint32_t i = 0; rc == 0 && i < L3_HISTOGRAMS; i++) {
        uint64_t parents[DAG_PARENTS_MAX];
        uint32_t count = 2 + (uint32_t)below(g, 5);
        pick(g, g->level2, g->level2_count, count, parents);
        rc = derive(g, HIST_BYTES, OP_HISTOGRAM, parents, count, NULL, 0, &g->hist[i]);
    }
    uint64_t sink = 0;
    if (rc == 0) rc = derive(g, HIST_BYTES, MMSB_OP_XOR, g->hist, L3_HISTOGRAMS, NULL, 0, &sink);
    g->guard_parent = g->base[0];
    if (rc == 0) rc = derive(g, GUARD_BYTES, OP_GUARD, &g->guard_parent, 1, NULL, 0, &sink);
    return rc;
}

static int build(dag *g) {
    int rc = mmsb_op_register(g->e, OP_HISTOGRAM, 1, op_histogram, NULL);
    if (rc == 0) rc = mmsb_op_register(g->e, OP_GUARD, 1, op_guard, NULL);
    for (uint32_t i = 0; rc == 0 && i < BASE_PAGES; i++) rc = mmsb_page_create(g->e, BASE_BYTES, 0, &g->base[i]);
    for (uint32_t i = 0; rc == 0 && i < BASE_PAGES; i++) {
        uint8_t bytes[BASE_BYTES];
        for (uint32_t b = 0; b < BASE_BYTES; b++) bytes[b] = (uint8_t)cli_rng_next(g->rng);
        bytes[0] = (uint8_t)(bytes[0] == GUARD_REFUSES ? 0 : bytes[0]);
        rc = mmsb_write(g->e, g->base[i], 0, bytes, BASE_BYTES, NULL);
    }
    if (rc == 0) rc = build_level1(g);
    if (rc == 0) rc = build_level2(g);
    if (rc == 0) rc = build_level3(g);
    return rc;
}

/* Stages small writes to a few base pages. With `same`, the bytes written
 * are the ones already there: the commit changes nothing. */
static int stage_writes(dag *g, mmsb_txn *t, bool same) {
    uint32_t pages = 1 + (uint32_t)below(g, TXN_PAGES_MAX);
    int rc = 0;
    for (uint32_t p = 0; rc == 0 && p < pages; p++) {
        uint64_t id = g->base[below(g, BASE_PAGES)];
        uint64_t len = 1 + below(g, WRITE_BYTES_MAX);
        uint64_t off = 1 + below(g, BASE_BYTES - len); /* byte 0 belongs to the guard */
        uint8_t bytes[WRITE_BYTES_MAX];
        rc = mmsb_page_read(g->e, id, off, bytes, len, NULL);
        for (uint64_t i = 0; rc == 0 && !same && i < len; i++) bytes[i] = (uint8_t)cli_rng_next(g->rng);
        if (rc == 0) rc = mmsb_txn_write(t, id, off, bytes, len);
    }
    return rc;
}

static int root_hex(dag *g, char hex[33]) {
    mmsb_digest root;
    int rc = mmsb_state_root(g->e, &root);
    if (rc == 0) mmsb_digest_hex(&root, hex, 33);
    return rc;
}

/* A transaction that must fail with `expected`, or be aborted (expected 0),
 * and leave the state root as it was. */
static int failing_txn(dag *g, mmsb_txn *t, int expected) {
    char before[33], after[33];
    int rc = root_hex(g, before);
    if (rc != 0) return rc;
    int got = expected == 0 ? mmsb_txn_abort(t) : mmsb_txn_commit(t, 0, NULL);
    rc = root_hex(g, after);
    if (rc != 0) return rc;
    if (got != expected || strcmp(before, after) != 0) {
        fprintf(stderr, "mmsb demo: a transaction expected to end with %s ended with %s%s\n",
                mmsb_strerror(expected), mmsb_strerror(got),
                strcmp(before, after) != 0 ? " and changed the state root" : "");
        return MMSB_EINVAL;
    }
    return 0;
}

/* Stages a delta on a base page with an epoch it no longer has. */
static int stage_stale(dag *g, mmsb_txn *t) {
    uint64_t id = g->base[below(g, BASE_PAGES)];
    mmsb_pageinfo info = {.struct_size = sizeof info};
    int rc = mmsb_page_info(g->e, id, &info);
    uint8_t mask = 0xFF, payload[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    mmsb_delta d = {.page_id = id, .offset = 8, .len = 8, .mask = &mask, .payload = payload,
                    .payload_len = 8, .expected_epoch = info.epoch + 1, .flags = MMSB_DELTA_EXPECT_EPOCH};
    if (rc == 0) rc = stage_writes(g, t, false);
    if (rc == 0) rc = mmsb_txn_apply(t, &d);
    return rc;
}

static int stage_refused(dag *g, mmsb_txn *t) {
    uint8_t refused = GUARD_REFUSES;
    int rc = stage_writes(g, t, false);
    if (rc == 0) rc = mmsb_txn_write(t, g->guard_parent, 0, &refused, 1);
    return rc;
}

/* A batch of dense deltas, two to each of a few base pages. */
static int batch(dag *g) {
    enum { BATCH_DELTAS = 2 * TXN_PAGES_MAX };
    mmsb_delta deltas[BATCH_DELTAS];
    uint8_t masks[BATCH_DELTAS][WRITE_BYTES_MAX / 8], payloads[BATCH_DELTAS][WRITE_BYTES_MAX];
    for (uint32_t k = 0; k < BATCH_DELTAS; k++) {
        for (uint32_t i = 0; i < WRITE_BYTES_MAX; i++) payloads[k][i] = (uint8_t)cli_rng_next(g->rng);
        for (uint32_t i = 0; i < WRITE_BYTES_MAX / 8; i++) masks[k][i] = (uint8_t)cli_rng_next(g->rng);
        uint64_t id = k % 2 == 0 ? g->base[1 + below(g, BASE_PAGES - 1)] : deltas[k - 1].page_id;
        deltas[k] = (mmsb_delta){.page_id = id, .offset = 64 * (1 + below(g, 62)), .len = WRITE_BYTES_MAX,
                                 .mask = masks[k], .payload = payloads[k], .payload_len = WRITE_BYTES_MAX};
    }
    mmsb_commit_result r = {.struct_size = sizeof r};
    int rc = mmsb_apply_batch(g->e, deltas, BATCH_DELTAS, 0, &r);
    if (rc == 0) add_counts(g->st, &r);
    g->st->batches += rc == 0;
    return rc;
}

static int one_txn(dag *g) {
    uint64_t what = below(g, 100);
    if (what < 10) return batch(g);
    mmsb_txn *t = NULL;
    int rc = mmsb_txn_begin(g->e, &t);
    if (rc != 0) return rc;
    if (what < 15) {
        rc = stage_stale(g, t);
        g->st->txns_conflicted++;
        return rc != 0 ? (mmsb_txn_abort(t), rc) : failing_txn(g, t, MMSB_ECONFLICT);
    }
    if (what < 20) {
        rc = stage_refused(g, t);
        g->st->txns_refused++;
        return rc != 0 ? (mmsb_txn_abort(t), rc) : failing_txn(g, t, MMSB_EOP);
    }
    rc = stage_writes(g, t, what < 30);
    if (rc == 0 && what >= 95) {
        g->st->txns_aborted++;
        return failing_txn(g, t, 0);
    }
    if (rc != 0) return (mmsb_txn_abort(t), rc);
    mmsb_commit_result r = {.struct_size = sizeof r};
    rc = mmsb_txn_commit(t, 0, &r);
    if (rc == 0) add_counts(g->st, &r);
    g->st->txns_committed += rc == 0 && r.commit_seq != 0;
    g->st->txns_unchanged += rc == 0 && r.commit_seq == 0;
    return rc;
}

static void on_event(void *user, const mmsb_event *ev) {
    dag_stats *st = user;
    st->events_page_changed += ev->type == MMSB_EVENT_PAGE_CHANGED;
    st->events_derived += ev->type == MMSB_EVENT_DERIVED;
    st->events_commit += ev->type == MMSB_EVENT_COMMIT;
}

int demo_dag(mmsb_engine *e, uint64_t *rng, uint64_t txns, dag_stats *st) {
    dag g = {.e = e, .rng = rng, .st = st};
    uint64_t sub = 0;
    int rc = build(&g);
    if (rc != 0) {
        cli_report("building the DAG", rc);
        return rc;
    }
    rc = mmsb_subscribe(e, MMSB_EVENT_PAGE_CHANGED | MMSB_EVENT_DERIVED | MMSB_EVENT_COMMIT, on_event,
                        st, &sub);
    uint64_t t0 = cli_now_ns();
    for (uint64_t i = 0; rc == 0 && i < txns; i++) rc = one_txn(&g);
    st->elapsed_ns = cli_now_ns() - t0;
    if (rc != 0) cli_report("transactions", rc);
    int unsub_rc = sub == 0 ? 0 : mmsb_unsubscribe(e, sub);
    return rc != 0 ? rc : unsub_rc;
}
