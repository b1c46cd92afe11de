/*
 * test_region.c - the arena allocator against a model: no two live
 * allocations overlap, alignment holds, freed space coalesces back to an
 * empty arena, a full arena says MMSB_ENOSPC, the same calls give the
 * same layout, and freeing a block of units never writes into its bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "../engine/base/region.h"

enum { ARENA = 64 << 20, GRAINS = ARENA / 64, LIVE_MAX = 4096 };

typedef struct alloc {
    uint64_t off;
    uint64_t bytes;
    uint8_t tag;
} alloc;

typedef struct model {
    region r;
    uint8_t *owned; /* per 64-byte grain: 1 while a live allocation holds it */
    alloc live[LIVE_MAX];
    uint32_t count;
    uint64_t bytes_used;
} model;

static void model_open(model *m) {
    memset(m, 0, sizeof *m);
    TU_OK(region_open(&m->r, "mmsb-test", ARENA, 1 << 20));
    m->owned = calloc(GRAINS, 1);
    assert_non_null(m->owned);
}

static void model_close(model *m) {
    region_close(&m->r);
    free(m->owned);
}

static void mark(model *m, const alloc *a, uint8_t owned) {
    uint64_t rounded = region_rounded_bytes(a->bytes);
    for (uint64_t g = a->off / 64; g < (a->off + rounded) / 64; g++) {
        assert_int_equal(m->owned[g], !owned);
        m->owned[g] = owned;
    }
}

/* Returns 0 or the allocator's error. */
static int model_alloc(model *m, uint64_t bytes, uint8_t tag) {
    uint64_t off;
    bool zeroed;
    int rc = region_alloc(&m->r, bytes, &off, &zeroed);
    if (rc != 0) return rc;
    assert_true(m->count < LIVE_MAX);
    assert_int_equal(off % (bytes > SMALL_BYTES_MAX ? 4096 : 64), 0);
    uint8_t *p = region_ptr(&m->r, off);
    if (zeroed) {
        for (uint64_t i = 0; i < bytes; i++) assert_int_equal(p[i], 0);
    }
    memset(p, tag, bytes);
    alloc a = {.off = off, .bytes = bytes, .tag = tag};
    m->live[m->count] = a;
    mark(m, &a, 1);
    m->count++;
    m->bytes_used += region_rounded_bytes(bytes);
    assert_int_equal(m->r.bytes_used, m->bytes_used);
    return 0;
}

static void model_free(model *m, uint32_t k) {
    alloc a = m->live[k];
    const uint8_t *p = region_ptr(&m->r, a.off);
    for (uint64_t i = 0; i < a.bytes; i++) assert_int_equal(p[i], a.tag);
    mark(m, &a, 0);
    m->live[k] = m->live[--m->count];
    region_free(&m->r, a.off, a.bytes);
    m->bytes_used -= region_rounded_bytes(a.bytes);
    assert_int_equal(m->r.bytes_used, m->bytes_used);
}

static uint64_t pick_size(rng *r) {
    switch (rng_below(r, 5)) {
    case 0: return 1 + rng_below(r, SMALL_BYTES_MAX);
    case 1: return 4096;
    case 2: return 4096 * (1 + rng_below(r, 16));
    case 3: return SMALL_BYTES_MAX + 1 + rng_below(r, 100000);
    default: return 1 + rng_below(r, 1 << 20);
    }
}

static void run_random(model *m, uint64_t seed, uint64_t *trace, uint32_t steps) {
    rng r = {.state = seed};
    for (uint32_t s = 0; s < steps; s++) {
        bool do_alloc = m->count == 0 || (m->count < LIVE_MAX && rng_below(&r, 100) < 55);
        if (do_alloc) {
            int rc = model_alloc(m, pick_size(&r), (uint8_t)(1 + rng_below(&r, 255)));
            assert_true(rc == 0 || rc == MMSB_ENOSPC);
            trace[s] = rc == 0 ? m->live[m->count - 1].off : UINT64_MAX;
        } else {
            uint32_t k = (uint32_t)rng_below(&r, m->count);
            trace[s] = m->live[k].off;
            model_free(m, k);
        }
    }
}

static void test_random_against_model(void **state) {
    (void)state;
    model *m = malloc(sizeof *m);
    model_open(m);
    uint64_t *trace = calloc(20000, sizeof *trace);
    run_random(m, 1, trace, 20000);
    while (m->count > 0) model_free(m, m->count - 1);
    /* Everything coalesced back: the frontier is at the start again. */
    assert_int_equal(m->r.frontier, 0);
    assert_int_equal(m->r.fl_bitmap, 0);
    assert_int_equal(m->r.allocations_live, 0);
    model_close(m);
    free(m);
    free(trace);
}

static void test_same_calls_same_layout(void **state) {
    (void)state;
    model *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    uint64_t *ta = calloc(5000, sizeof *ta), *tb = calloc(5000, sizeof *tb);
    model_open(a);
    model_open(b);
    run_random(a, 77, ta, 5000);
    run_random(b, 77, tb, 5000);
    assert_memory_equal(ta, tb, 5000 * sizeof *ta);
    model_close(a);
    model_close(b);
    free(a);
    free(b);
    free(ta);
    free(tb);
}

static void test_full_arena_is_enospc_and_recovers(void **state) {
    (void)state;
    model *m = malloc(sizeof *m);
    model_open(m);
    int rc = 0;
    uint32_t made = 0;
    while (rc == 0 && made < LIVE_MAX) {
        rc = model_alloc(m, 1 << 20, 3);
        made += rc == 0;
    }
    assert_int_equal(rc, MMSB_ENOSPC);
    assert_int_equal(made, ARENA / (1 << 20));
    assert_non_null(strstr(mmsb_last_error(), "arena full"));
    /* Free every other one: 1 MiB holes do not fit 2 MiB, but do fit 1 MiB. */
    for (uint32_t k = 0; k < m->count;) {
        if ((m->live[k].off >> 20) % 2 == 0) {
            model_free(m, k);
        } else {
            k++;
        }
    }
    assert_int_equal(model_alloc(m, 2 << 20, 4), MMSB_ENOSPC);
    TU_OK(model_alloc(m, 1 << 20, 5));
    /* Freeing neighbours merges holes into room for a larger block. */
    while (m->count > 0) model_free(m, 0);
    TU_OK(model_alloc(m, ARENA, 6));
    model_close(m);
    free(m);
}

static void test_small_classes_reuse_slabs(void **state) {
    (void)state;
    model *m = malloc(sizeof *m);
    model_open(m);
    for (int i = 0; i < 64; i++) TU_OK(model_alloc(m, 64, 1));
    assert_int_equal(m->r.frontier, 1); /* 64 slots of 64 bytes: one unit */
    TU_OK(model_alloc(m, 64, 2));
    assert_int_equal(m->r.frontier, 2);
    uint64_t off = m->live[10].off;
    model_free(m, 10);
    TU_OK(model_alloc(m, 50, 3)); /* same class: takes the freed slot */
    assert_int_equal(m->live[m->count - 1].off, off);
    while (m->count > 0) model_free(m, 0);
    assert_int_equal(m->r.frontier, 0);
    model_close(m);
    free(m);
}

/* Freed units keep their bytes: the free lists and block sizes live in the
 * side table, so freeing a cold page does not touch it. Blocks freed in an
 * order that coalesces on both sides, then reused. */
static void test_free_leaves_unit_bytes_alone(void **state) {
    (void)state;
    region r;
    TU_OK(region_open(&r, "mmsb-test", ARENA, 1 << 20));
    enum { BLOCKS = 6 };
    static const uint64_t units[BLOCKS] = {3, 1, 2, 1, 5, 1};
    uint64_t off[BLOCKS];
    for (uint32_t i = 0; i < BLOCKS; i++) {
        bool zeroed;
        TU_OK(region_alloc(&r, units[i] * REGION_UNIT_BYTES, &off[i], &zeroed));
        memset(region_ptr(&r, off[i]), 0xA0 + (int)i, units[i] * REGION_UNIT_BYTES);
    }
    static const uint32_t order[BLOCKS - 1] = {1, 3, 2, 0, 4}; /* the last block stays, holding the frontier */
    for (uint32_t k = 0; k < BLOCKS - 1; k++) {
        uint32_t i = order[k];
        region_free(&r, off[i], units[i] * REGION_UNIT_BYTES);
        for (uint32_t j = 0; j < BLOCKS; j++) {
            const uint8_t *p = region_ptr(&r, off[j]);
            for (uint64_t b = 0; b < units[j] * REGION_UNIT_BYTES; b++) assert_int_equal(p[b], 0xA0 + j);
        }
    }
    /* One coalesced block of 12 units before the last: a request for all of it starts at the first. */
    uint64_t again;
    bool zeroed;
    TU_OK(region_alloc(&r, 12 * REGION_UNIT_BYTES, &again, &zeroed));
    assert_int_equal(again, off[0]);
    assert_false(zeroed);
    region_free(&r, again, 12 * REGION_UNIT_BYTES);
    region_free(&r, off[5], units[5] * REGION_UNIT_BYTES);
    assert_int_equal(r.frontier, 0);
    assert_int_equal(r.allocations_live, 0);
    region_close(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_against_model),
        cmocka_unit_test(test_same_calls_same_layout),
        cmocka_unit_test(test_full_arena_is_enospc_and_recovers),
        cmocka_unit_test(test_small_classes_reuse_slabs),
        cmocka_unit_test(test_free_leaves_unit_bytes_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
