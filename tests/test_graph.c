/*
 * test_graph.c - derived pages and propagation:
 * - cycles are refused (self edges, long cycles) and change nothing;
 * - each built-in operation computes what it says, and checks its sizes;
 * - crafted graphs give exact counts of recomputes, skips and backdates, and
 *   a diamond recomputes its sink once;
 * - user operations: their output, a new version recomputing, a failure
 *   rolling the whole commit back (bytes, epochs, root) with an ABORT in the
 *   log; replay needs no user code;
 * - freeing a parent is refused, edges come and go;
 * - from-scratch consistency: random DAGs with diamonds, chains and fan-out,
 *   random batches and transactions; after every commit the state root equals
 *   that of an engine that recomputes every derived page from scratch, also
 *   across close and reopen.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/engine.h"
#include "testutil.h"

static uint64_t page(mmsb_engine *e, uint64_t size) {
    uint64_t id;
    TU_OK(mmsb_page_create(e, size, 0, &id));
    return id;
}

static int derive(mmsb_engine *e, uint64_t child, uint32_t op, const uint64_t *parents, uint32_t n,
                  const void *params, uint64_t params_len, mmsb_commit_result *res) {
    mmsb_derive_spec s = {.struct_size = sizeof s, .op = op, .parents = parents, .parent_count = n,
                          .params = params, .params_len = params_len};
    return mmsb_derive(e, child, &s, res);
}

static void fill(mmsb_engine *e, uint64_t id, uint64_t size, uint8_t seed) {
    uint8_t *buf = malloc(size);
    for (uint64_t i = 0; i < size; i++) buf[i] = (uint8_t)(seed * 31 + i * 7);
    TU_OK(mmsb_write(e, id, 0, buf, size, NULL));
    free(buf);
}

static void read_all(mmsb_engine *e, uint64_t id, uint8_t *buf, uint64_t size) {
    TU_OK(mmsb_page_read(e, id, 0, buf, size, NULL));
}

static uint64_t epoch_of(mmsb_engine *e, uint64_t id) {
    mmsb_pageinfo info = {.struct_size = sizeof info};
    TU_OK(mmsb_page_info(e, id, &info));
    return info.epoch;
}

/* ---- cycles and bad input ---------------------------------------------------------- */

static void test_cycles_are_refused(void **state) {
    (void)state;
    tu_store s = tu_store_open(NULL);
    enum { N = 1000 };
    uint64_t ids[N];
    ids[0] = page(s.e, 64);
    for (int i = 1; i < N; i++) {
        ids[i] = page(s.e, 64);
        TU_OK(derive(s.e, ids[i], MMSB_OP_XOR, &ids[i - 1], 1, NULL, 0, NULL));
    }
    char before[33], after[33];
    tu_root_hex(s.e, before);
    uint64_t seq = tu_info(s.e).commit_seq;
    /* Closing a 1000-long cycle, a 2-cycle, a self edge. */
    uint64_t last = ids[N - 1];
    TU_ERR(derive(s.e, ids[0], MMSB_OP_COPY, &last, 1, NULL, 0, NULL), MMSB_ECYCLE);
    assert_non_null(strstr(mmsb_last_error(), "cycle"));
    TU_ERR(derive(s.e, ids[5], MMSB_OP_COPY, &ids[6], 1, NULL, 0, NULL), MMSB_ECYCLE);
    TU_ERR(derive(s.e, ids[7], MMSB_OP_COPY, &ids[7], 1, NULL, 0, NULL), MMSB_ECYCLE);
    TU_ERR(mmsb_edge_add(s.e, ids[N - 1], ids[1], NULL), MMSB_ECYCLE);
    tu_root_hex(s.e, after);
    assert_string_equal(before, after);
    assert_int_equal(tu_info(s.e).commit_seq, seq);
    mmsb_deriveinfo di = {.struct_size = sizeof di};
    uint64_t parent;
    TU_OK(mmsb_derive_info(s.e, ids[5], &di, &parent, 1));
    assert_int_equal(di.op, MMSB_OP_XOR);
    assert_int_equal(parent, ids[4]);
    assert_int_equal(tu_info(s.e).edges, N - 1);
    /* The chain still works end to end. */
    fill(s.e, ids[0], 64, 9);
    uint8_t a[64], z[64];
    read_all(s.e, ids[0], a, 64);
    read_all(s.e, last, z, 64);
    assert_memory_equal(a, z, 64);
    tu_store_close(&s);
}

static void test_bad_derivations(void **state) {
    (void)state;
    tu_store s = tu_store_open(NULL);
    uint64_t a = page(s.e, 64), b = page(s.e, 128), c = page(s.e, 64), d = page(s.e, 100);
    uint64_t two[2] = {a, c};
    mmsb_derive_spec spec = {.struct_size = sizeof spec, .op = MMSB_OP_XOR, .parents = two, .parent_count = 2};
    char before[33], after[33];
    tu_root_hex(s.e, before);
    TU_ERR(derive(s.e, b, MMSB_OP_XOR, two, 2, NULL, 0, NULL), MMSB_EINVAL); /* sizes differ */
    TU_ERR(derive(s.e, b, MMSB_OP_COPY, two, 2, NULL, 0, NULL), MMSB_EINVAL); /* two parents */
    TU_ERR(derive(s.e, d, MMSB_OP_SUM_U32, two, 2, NULL, 0, NULL), MMSB_EINVAL);
    uint64_t range[2] = {10, 60};
    TU_ERR(derive(s.e, c, MMSB_OP_COPY, &a, 1, range, 16, NULL), MMSB_EINVAL); /* 60 != 64 */
    TU_ERR(derive(s.e, c, MMSB_OP_COPY, &a, 1, range, 8, NULL), MMSB_EINVAL);
    TU_ERR(derive(s.e, c, 99, &a, 1, NULL, 0, NULL), MMSB_EINVAL);
    TU_ERR(derive(s.e, c, MMSB_OP_USER_FIRST + 5, &a, 1, NULL, 0, NULL), MMSB_ENOTFOUND);
    TU_ERR(derive(s.e, c, MMSB_OP_XOR, &a, 0, NULL, 0, NULL), MMSB_EINVAL);
    uint64_t ghost = 999;
    TU_ERR(derive(s.e, c, MMSB_OP_COPY, &ghost, 1, NULL, 0, NULL), MMSB_ENOTFOUND);
    TU_ERR(derive(s.e, 777, MMSB_OP_COPY, &a, 1, NULL, 0, NULL), MMSB_ENOTFOUND);
    TU_ERR(mmsb_derive(s.e, c, NULL, NULL), MMSB_EINVAL);
    spec.flags = 1;
    TU_ERR(mmsb_derive(s.e, c, &spec, NULL), MMSB_EINVAL);
    spec.flags = 0, spec.struct_size = 4;
    TU_ERR(mmsb_derive(s.e, c, &spec, NULL), MMSB_EINVAL);
    TU_ERR(mmsb_underive(s.e, a, NULL), MMSB_EINVAL); /* not derived */
    TU_ERR(mmsb_edge_add(s.e, a, c, NULL), MMSB_EINVAL);
    tu_root_hex(s.e, after);
    assert_string_equal(before, after);
    assert_int_equal(tu_info(s.e).edges, 0);
    /* A derived page cannot be written directly, and its parent cannot go. */
    TU_OK(derive(s.e, c, MMSB_OP_COPY, &a, 1, NULL, 0, NULL));
    uint8_t x = 1;
    TU_ERR(mmsb_write(s.e, c, 0, &x, 1, NULL), MMSB_EINVAL);
    assert_non_null(strstr(mmsb_last_error(), "derived"));
    TU_ERR(mmsb_page_free(s.e, a), MMSB_EDEPENDENTS);
    TU_OK(mmsb_page_free(s.e, c)); /* a derived page may go: its edges go with it */
    TU_OK(mmsb_page_free(s.e, a));
    assert_int_equal(tu_info(s.e).edges, 0);
    assert_int_equal(tu_info(s.e).derived_pages, 0);
    tu_store_close(&s);
}

/* ---- built-in operations ------------------------------------------------------------ */

static void test_builtin_ops_compute(void **state) {
    (void)state;
    tu_store s = tu_store_open(NULL);
    enum { S = 256 };
    uint64_t a = page(s.e, S), b = page(s.e, S), c = page(s.e, S);
    fill(s.e, a, S, 1);
    fill(s.e, b, S, 2);
    fill(s.e, c, S, 3);
    uint8_t pa[S], pb[S], pc[S], got[3 * S], want[3 * S];
    read_all(s.e, a, pa, S);
    read_all(s.e, b, pb, S);
    read_all(s.e, c, pc, S);
    uint64_t abc[3] = {a, b, c};
    struct { uint32_t op; uint64_t size; } cases[] = {
        {MMSB_OP_XOR, S}, {MMSB_OP_SUM_U32, S}, {MMSB_OP_SUM_U64, S}, {MMSB_OP_MAX_U8, S},
        {MMSB_OP_MAX_U32, S}, {MMSB_OP_MAX_U64, S}, {MMSB_OP_CONCAT, 3 * S},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        uint64_t child = page(s.e, cases[k].size);
        TU_OK(derive(s.e, child, cases[k].op, abc, 3, NULL, 0, NULL));
        read_all(s.e, child, got, cases[k].size);
        for (uint64_t i = 0; i < S; i += 8) {
            uint64_t x, y, z, r = 0;
            memcpy(&x, pa + i, 8), memcpy(&y, pb + i, 8), memcpy(&z, pc + i, 8);
            uint32_t x32[2], y32[2], z32[2], r32[2];
            memcpy(x32, &x, 8), memcpy(y32, &y, 8), memcpy(z32, &z, 8);
            switch (cases[k].op) {
            case MMSB_OP_XOR: r = x ^ y ^ z; break;
            case MMSB_OP_SUM_U64: r = x + y + z; break;
            case MMSB_OP_MAX_U64: r = x > y ? x : y, r = r > z ? r : z; break;
            case MMSB_OP_SUM_U32:
            case MMSB_OP_MAX_U32:
                for (int l = 0; l < 2; l++) {
                    uint32_t m = x32[l] > y32[l] ? x32[l] : y32[l];
                    r32[l] = cases[k].op == MMSB_OP_SUM_U32 ? x32[l] + y32[l] + z32[l] : (m > z32[l] ? m : z32[l]);
                }
                memcpy(&r, r32, 8);
                break;
            case MMSB_OP_MAX_U8:
                for (int l = 0; l < 8; l++) {
                    uint8_t m = pa[i + l] > pb[i + l] ? pa[i + l] : pb[i + l];
                    ((uint8_t *)&r)[l] = m > pc[i + l] ? m : pc[i + l];
                }
                break;
            default: break;
            }
            memcpy(want + i, &r, 8);
        }
        if (cases[k].op == MMSB_OP_CONCAT) {
            memcpy(want, pa, S), memcpy(want + S, pb, S), memcpy(want + 2 * S, pc, S);
        }
        assert_memory_equal(got, want, cases[k].size);
        assert_int_equal(epoch_of(s.e, child), 1);
    }
    uint64_t part = page(s.e, 100), range[2] = {50, 100};
    TU_OK(derive(s.e, part, MMSB_OP_COPY, &a, 1, range, 16, NULL));
    read_all(s.e, part, got, 100);
    assert_memory_equal(got, pa + 50, 100);
    tu_store_close(&s);
}

/* ---- exact counts -------------------------------------------------------------------------- */

static void assert_counts(const mmsb_commit_result *r, uint64_t recomputes, uint64_t skips, uint64_t backdates) {
    assert_int_equal(r->recomputes, recomputes);
    assert_int_equal(r->skips, skips);
    assert_int_equal(r->backdates, backdates);
}

static void write_byte(mmsb_engine *e, uint64_t id, uint64_t off, uint8_t v, mmsb_commit_result *r) {
    mmsb_delta d = {
        .page_id = id, .offset = off, .len = 1, .mask = (const uint8_t *)"\1", .payload = &v, .payload_len = 1};
    TU_OK(mmsb_apply_batch(e, &d, 1, 0, r));
}

static void test_counts_chain_diamond_backdate(void **state) {
    (void)state;
    tu_store s = tu_store_open(NULL);
    mmsb_commit_result r = {.struct_size = sizeof r};
    /* chain: a -> b -> c */
    uint64_t a = page(s.e, 64), b = page(s.e, 64), c = page(s.e, 64);
    TU_OK(derive(s.e, b, MMSB_OP_COPY, &a, 1, NULL, 0, NULL));
    TU_OK(derive(s.e, c, MMSB_OP_COPY, &b, 1, NULL, 0, NULL));
    write_byte(s.e, a, 3, 7, &r);
    assert_counts(&r, 2, 0, 0);
    assert_int_equal(r.delta_propagations, 2);
    assert_int_equal(epoch_of(s.e, c), 1); /* derive computed zeros: no change; now one */
    /* diamond: d -> e, d -> f, (e, f) -> g = e ^ f, always zero */
    uint64_t d = page(s.e, 64), e = page(s.e, 64), f = page(s.e, 64), g = page(s.e, 64);
    TU_OK(derive(s.e, e, MMSB_OP_COPY, &d, 1, NULL, 0, NULL));
    TU_OK(derive(s.e, f, MMSB_OP_COPY, &d, 1, NULL, 0, NULL));
    uint64_t ef[2] = {e, f};
    TU_OK(derive(s.e, g, MMSB_OP_XOR, ef, 2, NULL, 0, NULL));
    write_byte(s.e, d, 0, 1, &r);
    assert_counts(&r, 2, 0, 1); /* e, f recomputed; g once, to the same bytes */
    assert_int_equal(epoch_of(s.e, g), 0);
    /* backdate then skip: h = max(x, all-ones) never changes; i = copy(h) */
    uint64_t x = page(s.e, 64), ones = page(s.e, 64), h = page(s.e, 64), i = page(s.e, 64);
    uint8_t ff[64];
    memset(ff, 0xFF, sizeof ff);
    TU_OK(mmsb_write(s.e, ones, 0, ff, 64, NULL));
    uint64_t xo[2] = {x, ones};
    TU_OK(derive(s.e, h, MMSB_OP_MAX_U8, xo, 2, NULL, 0, NULL));
    TU_OK(derive(s.e, i, MMSB_OP_COPY, &h, 1, NULL, 0, NULL));
    uint64_t hi_epoch = epoch_of(s.e, h);
    write_byte(s.e, x, 5, 9, &r);
    assert_counts(&r, 0, 1, 1); /* h backdated; i skipped */
    assert_int_equal(epoch_of(s.e, h), hi_epoch);
    /* an unrelated write touches no derived page */
    uint64_t lone = page(s.e, 64);
    write_byte(s.e, lone, 0, 1, &r);
    assert_counts(&r, 0, 0, 0);
    mmsb_engineinfo info = tu_info(s.e);
    assert_true(info.recomputes >= 4 && info.skips >= 1 && info.backdates >= 2);
    tu_store_close(&s);
}

/* ---- user operations ------------------------------------------------------------------------ */

/* out[i] = sum of parents' bytes at i, plus the param byte; fails when the
 * first parent's first byte is 0x66. */
static int user_sum(void *user, const mmsb_op_input *in, uint8_t *out, uint64_t out_len) {
    int *calls = user;
    (*calls)++;
    if (in->parent_bytes[0][0] == 0x66) return 42;
    uint8_t add = in->params_len > 0 ? in->params[0] : 0;
    for (uint64_t i = 0; i < out_len; i++) {
        uint8_t v = add;
        for (uint32_t p = 0; p < in->parent_count; p++) v = (uint8_t)(v + in->parent_bytes[p][i]);
        out[i] = v;
    }
    return 0;
}

enum { OP_SUM = MMSB_OP_USER_FIRST + 1, OP_MIX = MMSB_OP_USER_FIRST + 2 };

/* A user operation that never fails: out[i] mixes every parent's byte i and
 * its neighbour, so it is not element-wise. */
static int user_mix(void *user, const mmsb_op_input *in, uint8_t *out, uint64_t out_len) {
    (void)user;
    for (uint64_t i = 0; i < out_len; i++) {
        uint8_t v = (uint8_t)i;
        for (uint32_t p = 0; p < in->parent_count; p++) {
            uint64_t size = in->parent_sizes[p];
            v = (uint8_t)(v * 31 + in->parent_bytes[p][i % size] + in->parent_bytes[p][(i + 1) % size]);
        }
        out[i] = v;
    }
    return 0;
}

static int user_fail(void *user, const mmsb_op_input *in, uint8_t *out, uint64_t out_len) {
    (void)user, (void)in, (void)out, (void)out_len;
    return 7;
}

static void test_user_ops_and_rollback(void **state) {
    (void)state;
    tu_store s = tu_store_open(NULL);
    int calls = 0;
    TU_OK(mmsb_op_register(s.e, OP_SUM, 1, user_sum, &calls));
    TU_ERR(mmsb_op_register(s.e, 5, 1, user_sum, &calls), MMSB_EINVAL);
    uint64_t a = page(s.e, 32), b = page(s.e, 32), c = page(s.e, 32), d = page(s.e, 32);
    uint64_t ab[2] = {a, b};
    uint8_t three = 3;
    TU_OK(derive(s.e, c, OP_SUM, ab, 2, &three, 1, NULL));
    TU_OK(derive(s.e, d, MMSB_OP_COPY, &c, 1, NULL, 0, NULL));
    uint8_t buf[32];
    read_all(s.e, d, buf, 32);
    assert_int_equal(buf[0], 3);
    mmsb_commit_result r = {.struct_size = sizeof r};
    write_byte(s.e, a, 0, 10, &r);
    read_all(s.e, d, buf, 32);
    assert_int_equal(buf[0], 13);
    /* A failing operation: the whole batch goes back, nothing is applied. */
    char before[33], after[33];
    tu_root_hex(s.e, before);
    uint64_t seq = tu_info(s.e).commit_seq, epoch_a = epoch_of(s.e, a), epoch_c = epoch_of(s.e, c);
    uint8_t v1 = 0x66, v2 = 0x11;
    mmsb_delta two[2] = {
        {.page_id = b, .offset = 1, .len = 1, .mask = (const uint8_t *)"\1", .payload = &v2, .payload_len = 1},
        {.page_id = a, .offset = 0, .len = 1, .mask = (const uint8_t *)"\1", .payload = &v1, .payload_len = 1},
    };
    TU_ERR(mmsb_apply_batch(s.e, two, 2, 0, &r), MMSB_EOP);
    assert_non_null(strstr(mmsb_last_error(), "returned 42"));
    tu_root_hex(s.e, after);
    assert_string_equal(before, after);
    assert_int_equal(epoch_of(s.e, a), epoch_a);
    assert_int_equal(epoch_of(s.e, c), epoch_c);
    read_all(s.e, a, buf, 32);
    assert_int_equal(buf[0], 10);
    assert_int_equal(tu_info(s.e).aborts, 1);
    assert_int_equal(tu_info(s.e).commit_seq, seq);
    /* A new version recomputes the operation's pages at once; one whose
     * function fails is refused and the registration stays as it was. */
    uint64_t epoch_d = epoch_of(s.e, d);
    TU_OK(mmsb_op_register(s.e, OP_SUM, 3, user_mix, NULL));
    mmsb_op_input mix_in = {.parent_count = 2};
    uint8_t pa[32], pb[32], want[32];
    read_all(s.e, a, pa, 32);
    read_all(s.e, b, pb, 32);
    const uint8_t *const mix_bytes[2] = {pa, pb};
    const uint64_t mix_sizes[2] = {32, 32};
    mix_in.parent_bytes = mix_bytes;
    mix_in.parent_sizes = mix_sizes;
    user_mix(NULL, &mix_in, want, 32);
    read_all(s.e, d, buf, 32);
    assert_memory_equal(buf, want, 32);
    assert_int_equal(epoch_of(s.e, d), epoch_d + 1);
    tu_root_hex(s.e, before);
    TU_ERR(mmsb_op_register(s.e, OP_SUM, 4, user_fail, NULL), MMSB_EOP);
    tu_root_hex(s.e, after);
    assert_string_equal(before, after);
    mmsb_deriveinfo di = {.struct_size = sizeof di};
    TU_OK(mmsb_derive_info(s.e, c, &di, NULL, 0));
    assert_int_equal(di.op_version, 3);
    /* The same version with another function recomputes nothing. */
    seq = tu_info(s.e).commit_seq;
    TU_OK(mmsb_op_register(s.e, OP_SUM, 3, user_mix, &calls));
    assert_int_equal(tu_info(s.e).commit_seq, seq);
    /* The engine goes on after the aborts. */
    TU_OK(mmsb_op_register(s.e, OP_SUM, 2, user_sum, &calls));
    read_all(s.e, d, buf, 32);
    assert_int_equal(buf[0], 13);
    write_byte(s.e, b, 2, 1, &r);
    assert_int_equal(r.recomputes, 2);
    tu_root_hex(s.e, before);
    /* Replay needs no user code: reopen without registering. */
    TU_OK(mmsb_close(s.e));
    mmsb_options o;
    tu_options_small(&o);
    TU_OK(mmsb_open(s.dir, &o, &s.e));
    tu_root_hex(s.e, after);
    assert_string_equal(before, after);
    /* But computing again needs it: refused, rolled back. */
    TU_ERR(mmsb_write(s.e, a, 5, "z", 1, NULL), MMSB_ENOTFOUND);
    tu_root_hex(s.e, after);
    assert_string_equal(before, after);
    TU_OK(mmsb_op_register(s.e, OP_SUM, 2, user_sum, &calls));
    TU_OK(mmsb_write(s.e, a, 5, "z", 1, NULL));
    /* The log holds the ABORT, and the reader marks its records. */
    TU_OK(mmsb_sync(s.e));
    mmsb_log_reader *rd;
    TU_OK(mmsb_log_open(s.dir, 0, &rd));
    mmsb_log_record rec = {.struct_size = sizeof rec};
    int aborts = 0, uncommitted = 0;
    for (;;) {
        TU_OK(mmsb_log_next(rd, &rec));
        if (rec.type == MMSB_REC_END) break;
        aborts += rec.type == MMSB_REC_ABORT;
        uncommitted += !rec.committed;
    }
    TU_OK(mmsb_log_close(rd));
    assert_int_equal(aborts, 2);
    assert_true(uncommitted >= 4);
    tu_store_close(&s);
}

/* Refuses recovery its checking thread, as when none can be made. */
static int no_scan_thread(void *ctx, const io_event *ev) {
    bool refused = ev->kind == IO_EV_POINT && strcmp(ev->point, "recovery-scan-thread") == 0;
    *(int *)ctx += refused;
    return refused ? EAGAIN : 0;
}

/* Refuses recovery memory for its copies of the rolled-back ranges at the
 * ctx->refuse_at-th time it grows one (either pass). */
typedef struct ranges_refusal {
    int calls, refuse_at;
} ranges_refusal;

static int no_range_memory(void *ctx, const io_event *ev) {
    ranges_refusal *r = ctx;
    if (ev->kind != IO_EV_POINT || strcmp(ev->point, "recovery-aborted-ranges") != 0) return 0;
    return ++r->calls == r->refuse_at ? ENOMEM : 0;
}

/* A log long enough that recovery's checking pass publishes its progress
 * many times (scan_ahead.c), with rolled-back commits (ABORT records) all
 * along it: the applying pass behind it must skip exactly their records,
 * from genesis and from a checkpoint, in a writer's and a read-only open,
 * and with no thread for the checking pass (it runs first then). */
static void test_long_log_with_aborts_replays(void **state) {
    (void)state;
    tu_store s = tu_store_open(NULL);
    int calls = 0;
    TU_OK(mmsb_op_register(s.e, OP_SUM, 1, user_sum, &calls));
    uint64_t a = page(s.e, 32), b = page(s.e, 32), c = page(s.e, 32);
    uint64_t ab[2] = {a, b};
    TU_OK(derive(s.e, c, OP_SUM, ab, 2, NULL, 0, NULL));
    mmsb_commit_result r = {.struct_size = sizeof r};
    uint64_t aborted = 0;
    for (uint32_t i = 0; i < 4000; i++) {
        mmsb_delta d = {.page_id = a, .offset = 0, .len = 1, .mask = (const uint8_t *)"\1"};
        uint8_t v = i % 9 == 4 ? 0x66 : (uint8_t)(i * 37 % 200); /* 0x66 makes the operation refuse */
        d.payload = &v;
        d.payload_len = 1;
        int rc = mmsb_apply_batch(s.e, &d, 1, 0, &r);
        if (v == 0x66) {
            assert_int_equal(rc, MMSB_EOP);
            aborted++;
        } else {
            TU_OK(rc);
        }
        write_byte(s.e, b, 1 + i % 31, (uint8_t)i, &r);
    }
    mmsb_engineinfo info = tu_info(s.e);
    assert_int_equal(info.aborts, aborted);
    assert_true(info.commit_seq > 3 * 4096); /* several publications of the checking pass */
    char want[33], got[33];
    tu_root_hex(s.e, want);
    TU_OK(mmsb_close(s.e));
    mmsb_options o;
    tu_options_small(&o);
    for (int from_genesis = 0; from_genesis < 2; from_genesis++) {
        if (from_genesis) tu_checkpoint_remove(s.dir);
        for (int read_only = 1; read_only >= 0; read_only--) {
            o.flags = read_only ? MMSB_OPEN_READONLY : 0;
            TU_OK(mmsb_open(s.dir, &o, &s.e));
            tu_root_hex(s.e, got);
            assert_string_equal(want, got);
            assert_int_equal(tu_info(s.e).recovered_from_checkpoint != 0, !from_genesis);
            TU_OK(mmsb_close(s.e));
        }
        o.flags = MMSB_OPEN_READONLY;
        int refusals = 0;
        io_hooks hooks = {.fn = no_scan_thread, .ctx = &refusals};
        TU_OK(engine_open(s.dir, &o, &hooks, &s.e));
        assert_true(refusals >= 1);
        tu_root_hex(s.e, got);
        assert_string_equal(want, got);
        TU_OK(mmsb_close(s.e));
        /* Out of memory for the rolled-back ranges (from genesis: the
         * checkpoint covers them all), at each growth in turn and in both
         * kinds of open: the open fails and leaves the store as it was (the
         * next open gets the same root). */
        int failed = 0;
        for (int refuse_at = 1; from_genesis && refuse_at <= 6; refuse_at++) {
            for (int read_only = 1; read_only >= 0; read_only--) {
                o.flags = read_only ? MMSB_OPEN_READONLY : 0;
                ranges_refusal refusal = {.refuse_at = refuse_at};
                io_hooks ranges = {.fn = no_range_memory, .ctx = &refusal};
                int rc = engine_open(s.dir, &o, &ranges, &s.e);
                if (refusal.calls >= refuse_at) {
                    assert_int_equal(rc, MMSB_ENOMEM);
                    failed++;
                } else {
                    TU_OK(rc);
                    TU_OK(mmsb_close(s.e));
                }
                o.flags = MMSB_OPEN_READONLY;
                TU_OK(mmsb_open(s.dir, &o, &s.e));
                tu_root_hex(s.e, got);
                assert_string_equal(want, got);
                TU_OK(mmsb_close(s.e));
            }
        }
        assert_true(!from_genesis || failed >= 4); /* 2 refused growths, each in both kinds of open */
    }
    o.flags = 0;
    TU_OK(mmsb_open(s.dir, &o, &s.e));
    tu_store_close(&s);
}

/* A store with four pages of 16 bytes, the first two filled. */
static tu_store four_pages(uint64_t ids[4]) {
    tu_store s = tu_store_open(NULL);
    for (int i = 0; i < 4; i++) ids[i] = page(s.e, 16);
    fill(s.e, ids[0], 16, 1);
    fill(s.e, ids[1], 16, 2);
    return s;
}

/* Closes and reopens the store (a replay of its log): the same root. */
static void reopen_keeps_root(tu_store *s) {
    char root[33], again[33];
    tu_root_hex(s->e, root);
    TU_OK(mmsb_close(s->e));
    mmsb_options o;
    tu_options_small(&o);
    TU_OK(mmsb_open(s->dir, &o, &s->e));
    tu_root_hex(s->e, again);
    assert_string_equal(root, again);
}

static void test_edges_come_and_go(void **state) {
    (void)state;
    uint64_t ids[4];
    tu_store s = four_pages(ids);
    uint64_t a = ids[0], b = ids[1], c = ids[2], x = ids[3];
    TU_OK(derive(s.e, x, MMSB_OP_XOR, &a, 1, NULL, 0, NULL));
    TU_OK(mmsb_edge_add(s.e, b, x, NULL));
    TU_OK(mmsb_edge_add(s.e, c, x, NULL));
    uint8_t pa[16], pb[16], px[16];
    read_all(s.e, a, pa, 16);
    read_all(s.e, b, pb, 16);
    read_all(s.e, x, px, 16);
    for (int i = 0; i < 16; i++) assert_int_equal(px[i], pa[i] ^ pb[i]);
    uint64_t stranger = page(s.e, 16);
    TU_ERR(mmsb_edge_remove(s.e, stranger, x, NULL), MMSB_ENOTFOUND);
    TU_ERR(mmsb_edge_remove(s.e, x, a, NULL), MMSB_EINVAL); /* a is not derived */
    TU_OK(mmsb_edge_remove(s.e, b, x, NULL));
    read_all(s.e, x, px, 16);
    assert_memory_equal(px, pa, 16);
    TU_OK(mmsb_edge_remove(s.e, c, x, NULL));
    TU_ERR(mmsb_edge_remove(s.e, a, x, NULL), MMSB_EINVAL); /* the last one */
    TU_OK(mmsb_underive(s.e, x, NULL));
    TU_OK(mmsb_write(s.e, x, 0, "plain again", 11, NULL));
    assert_int_equal(tu_info(s.e).edges, 0);
    reopen_keeps_root(&s);
    tu_store_close(&s);
}

/* A page may be a parent twice (XOR of a page with itself). Redefining the
 * child without it, or an edge refused as a cycle (the old parents are put
 * back), once released that parent's node twice: an assertion ended the
 * process (the crash simulator found it). */
static void test_parent_listed_twice(void **state) {
    (void)state;
    uint64_t ids[4];
    tu_store s = four_pages(ids);
    uint64_t a = ids[0], b = ids[1], c = ids[2], d = ids[3];
    uint64_t twice[] = {a, a};
    TU_OK(derive(s.e, c, MMSB_OP_XOR, twice, 2, NULL, 0, NULL));
    uint8_t pc[16], pb[16], zero[16] = {0};
    read_all(s.e, c, pc, 16);
    assert_memory_equal(pc, zero, 16); /* a ^ a */
    TU_OK(derive(s.e, c, MMSB_OP_XOR, &b, 1, NULL, 0, NULL)); /* redefined without a */
    read_all(s.e, c, pc, 16);
    read_all(s.e, b, pb, 16);
    assert_memory_equal(pc, pb, 16);
    TU_OK(derive(s.e, c, MMSB_OP_XOR, twice, 2, NULL, 0, NULL));
    TU_OK(derive(s.e, d, MMSB_OP_XOR, &c, 1, NULL, 0, NULL));
    char before[33], after[33];
    tu_root_hex(s.e, before);
    TU_ERR(mmsb_edge_add(s.e, d, c, NULL), MMSB_ECYCLE); /* refused: c keeps a, a */
    tu_root_hex(s.e, after);
    assert_string_equal(before, after);
    mmsb_deriveinfo info = {.struct_size = sizeof info};
    uint64_t parents[4];
    TU_OK(mmsb_derive_info(s.e, c, &info, parents, 4));
    assert_int_equal(info.parent_count, 2);
    assert_int_equal(parents[0], a);
    assert_int_equal(parents[1], a);
    TU_OK(mmsb_edge_remove(s.e, a, c, NULL)); /* one of the two goes */
    TU_OK(mmsb_derive_info(s.e, c, &info, parents, 4));
    assert_int_equal(info.parent_count, 1);
    read_all(s.e, c, pc, 16);
    uint8_t pa[16];
    read_all(s.e, a, pa, 16);
    assert_memory_equal(pc, pa, 16);
    TU_OK(mmsb_edge_add(s.e, a, c, NULL)); /* and comes back */
    TU_OK(mmsb_underive(s.e, d, NULL));
    TU_OK(mmsb_underive(s.e, c, NULL));
    TU_OK(mmsb_page_free(s.e, a));
    reopen_keeps_root(&s);
    tu_store_close(&s);
}

/* ---- from-scratch consistency ------------------------------------------------------------------ */

enum { BASE = 500, DERIVED = 2500, SIZE = 256, HALF = 128 };

typedef struct world {
    uint64_t base[BASE], half[BASE];
} world;

/* A DAG: base pages (and half-size ones for concatenations); each derived
 * page picks an operation and parents among all earlier pages, with long
 * chains (the previous derived page), fan-out (a few hot base pages) and
 * diamonds (shared parents). */
static void build_world(mmsb_engine *e, world *w, uint64_t seed) {
    rng r = {.state = seed};
    TU_OK(mmsb_op_register(e, OP_MIX, 1, user_mix, NULL));
    uint64_t all[BASE + DERIVED];
    uint32_t n = 0;
    for (int i = 0; i < BASE; i++) {
        w->base[i] = all[n++] = page(e, SIZE);
        w->half[i] = page(e, HALF);
        fill(e, w->base[i], SIZE, (uint8_t)i);
        fill(e, w->half[i], HALF, (uint8_t)(i + 7));
    }
    static const uint32_t ops[] = {MMSB_OP_XOR, MMSB_OP_SUM_U32, MMSB_OP_SUM_U64, MMSB_OP_MAX_U8,
                                   MMSB_OP_MAX_U32, MMSB_OP_MAX_U64, MMSB_OP_COPY, MMSB_OP_CONCAT, OP_MIX};
    for (int i = 0; i < DERIVED; i++) {
        uint64_t child = page(e, SIZE);
        uint32_t op = ops[rng_below(&r, sizeof ops / sizeof ops[0])];
        uint64_t parents[8];
        uint32_t count = op == MMSB_OP_COPY ? 1 : 1 + (uint32_t)rng_below(&r, 5);
        if (op == MMSB_OP_CONCAT) {
            count = 2;
            parents[0] = w->half[rng_below(&r, BASE)];
            parents[1] = w->half[rng_below(&r, 8)];
        } else {
            for (uint32_t k = 0; k < count; k++) {
                uint64_t pick = rng_below(&r, 10);
                parents[k] = pick == 0 ? all[n - 1]                     /* chains */
                             : pick == 1 ? w->base[rng_below(&r, 4)]   /* fan-out */
                                         : all[rng_below(&r, n)];      /* anything earlier */
            }
        }
        TU_OK(derive(e, child, op, parents, count, NULL, 0, NULL));
        all[n++] = child;
    }
}

/* A random commit: a batch of deltas, or a transaction of writes and deltas,
 * over random base pages. */
static void random_commit(mmsb_engine *e, const world *w, rng *r) {
    uint8_t bytes[8][40], masks[8][5];
    mmsb_delta d[8];
    uint32_t k = 1 + (uint32_t)rng_below(r, 8);
    for (uint32_t i = 0; i < k; i++) {
        uint64_t id = rng_below(r, 4) == 0 ? w->half[rng_below(r, 16)] : w->base[rng_below(r, BASE)];
        uint64_t size = (id - 1) % 2 == 0 ? SIZE : HALF;
        rng_fill(r, bytes[i], sizeof bytes[i]);
        rng_fill(r, masks[i], sizeof masks[i]);
        d[i] = (mmsb_delta){.page_id = id, .offset = rng_below(r, size - 40), .len = 40,
                            .mask = masks[i], .payload = bytes[i], .payload_len = 40};
    }
    if (rng_below(r, 2) == 0) {
        TU_OK(mmsb_apply_batch(e, d, k, 0, NULL));
        return;
    }
    mmsb_txn *t;
    TU_OK(mmsb_txn_begin(e, &t));
    for (uint32_t i = 0; i < k; i++) {
        if (i % 2) TU_OK(mmsb_txn_write(t, d[i].page_id, d[i].offset, d[i].payload, 16));
        else TU_OK(mmsb_txn_apply(t, &d[i]));
    }
    TU_OK(mmsb_txn_commit(t, 0, NULL));
}

static void test_incremental_equals_from_scratch(void **state) {
    (void)state;
    mmsb_options inc, full;
    tu_options_small(&inc);
    full = inc;
    full.propagation = MMSB_PROPAGATE_FULL;
    tu_store a = tu_store_open(&inc), b = tu_store_open(&full);
    world *wa = calloc(1, sizeof *wa), *wb = calloc(1, sizeof *wb);
    build_world(a.e, wa, 11);
    build_world(b.e, wb, 11);
    tu_roots_match(a.e, b.e, true);
    rng ra = {.state = 5}, rb = {.state = 5};
    for (int step = 0; step < 150; step++) {
        random_commit(a.e, wa, &ra);
        random_commit(b.e, wb, &rb);
        tu_roots_match(a.e, b.e, true);
        if (step == 70) { /* across a close and reopen, too */
            TU_OK(mmsb_close(a.e));
            TU_OK(mmsb_open(a.dir, &inc, &a.e));
            TU_OK(mmsb_op_register(a.e, OP_MIX, 1, user_mix, NULL));
            tu_roots_match(a.e, b.e, true);
        }
    }
    mmsb_engineinfo ia = tu_info(a.e), ib = tu_info(b.e);
    print_message("incremental: %llu recomputes (%llu from deltas), %llu skips, %llu backdates; "
                  "from scratch: %llu recomputes, %llu backdates\n",
                  (unsigned long long)ia.recomputes, (unsigned long long)ia.delta_propagations,
                  (unsigned long long)ia.skips, (unsigned long long)ia.backdates,
                  (unsigned long long)ib.recomputes, (unsigned long long)ib.backdates);
    assert_true(ia.delta_propagations > 0);
    assert_true(ia.recomputes + ia.backdates + ia.skips < ib.recomputes + ib.backdates);
    free(wa);
    free(wb);
    tu_store_close(&a);
    tu_store_close(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cycles_are_refused),
        cmocka_unit_test(test_bad_derivations),
        cmocka_unit_test(test_builtin_ops_compute),
        cmocka_unit_test(test_counts_chain_diamond_backdate),
        cmocka_unit_test(test_user_ops_and_rollback),
        cmocka_unit_test(test_long_log_with_aborts_replays),
        cmocka_unit_test(test_edges_come_and_go),
        cmocka_unit_test(test_parent_listed_twice),
        cmocka_unit_test(test_incremental_equals_from_scratch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
