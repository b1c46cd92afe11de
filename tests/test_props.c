/*
 * test_props.c - properties of whole engines on random workloads:
 * - an engine matches a plain in-memory model (bytes, epochs, change counts);
 * - two engines fed the same operations have the same state root at every
 *   step, and one different operation gives a different root;
 * - random bad calls in between change nothing.
 */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

enum { PAGES_MAX = 64 };

typedef struct model_page {
    uint64_t id;
    uint64_t size;
    uint64_t epoch;
    uint8_t *bytes;
} model_page;

typedef struct model {
    model_page pages[PAGES_MAX];
    uint32_t count;
} model;

static uint64_t pick_size(rng *r) {
    static const uint64_t sizes[] = {64, 100, 2048, 4096, 4097, 12288, 70000, 1 << 20};
    return sizes[rng_below(r, sizeof sizes / sizeof sizes[0])];
}

/* Applies one random operation to the engine and the model; returns a short
 * code of what it did, so two runs can be compared. */
static void step(mmsb_engine *e, model *m, rng *r) {
    uint32_t what = (uint32_t)rng_below(r, 12);
    if (m->count == 0 || (what == 0 && m->count < PAGES_MAX)) {
        model_page *p = &m->pages[m->count++];
        p->size = pick_size(r);
        p->epoch = 0;
        p->bytes = calloc(p->size, 1);
        TU_OK(mmsb_page_create(e, p->size, 0, &p->id));
        return;
    }
    uint32_t k = (uint32_t)rng_below(r, m->count);
    model_page *p = &m->pages[k];
    if (what == 1) {
        TU_OK(mmsb_page_free(e, p->id));
        free(p->bytes);
        *p = m->pages[--m->count];
        return;
    }
    uint64_t off = rng_below(r, p->size);
    uint64_t room = p->size - off;
    uint64_t len = 1 + rng_below(r, room < 600 ? room : 600);
    uint8_t *bytes = malloc(len);
    rng_fill(r, bytes, len);
    /* Often rewrite what is there already, in part or whole. */
    if (rng_below(r, 3) == 0) memcpy(bytes, p->bytes + off, len);
    if (rng_below(r, 3) == 0) bytes[rng_below(r, len)] ^= 0x20;
    uint64_t want = 0;
    mmsb_change ch;
    if (what < 7) {
        for (uint64_t i = 0; i < len; i++) want += p->bytes[off + i] != bytes[i];
        TU_OK(mmsb_write(e, p->id, off, bytes, len, &ch));
        memcpy(p->bytes + off, bytes, len);
    } else {
        uint8_t *mask = calloc((len + 7) / 8, 1), *packed = malloc(len);
        uint64_t n = 0;
        for (uint64_t i = 0; i < len; i++) {
            if (rng_below(r, 2)) continue;
            mask[i / 8] |= (uint8_t)(1u << (i % 8));
            packed[n++] = bytes[i];
            want += p->bytes[off + i] != bytes[i];
            p->bytes[off + i] = bytes[i];
        }
        bool sparse = what >= 10;
        mmsb_delta d = {.page_id = p->id, .offset = off, .len = len, .mask = mask,
                        .payload = sparse ? packed : bytes, .payload_len = sparse ? n : len,
                        .flags = (sparse ? MMSB_DELTA_SPARSE : 0) | MMSB_DELTA_EXPECT_EPOCH,
                        .expected_epoch = p->epoch};
        TU_OK(mmsb_apply(e, &d, &ch));
        free(mask);
        free(packed);
    }
    p->epoch += want > 0;
    assert_int_equal(ch.bytes_changed, want);
    assert_int_equal(ch.epoch, p->epoch);
    free(bytes);
}

static void check_model(mmsb_engine *e, const model *m) {
    for (uint32_t k = 0; k < m->count; k++) {
        const model_page *p = &m->pages[k];
        uint8_t *buf = malloc(p->size);
        uint64_t epoch;
        TU_OK(mmsb_page_read(e, p->id, 0, buf, p->size, &epoch));
        assert_int_equal(epoch, p->epoch);
        assert_memory_equal(buf, p->bytes, p->size);
        free(buf);
    }
}

static void model_free_all(model *m) {
    for (uint32_t k = 0; k < m->count; k++) free(m->pages[k].bytes);
    m->count = 0;
}

static void test_engine_matches_model(void **state) {
    (void)state;
    tu_store s = tu_store_open(NULL);
    mmsb_engine *e = s.e;
    model m = {0};
    rng r = {.state = 31337};
    for (int i = 0; i < 3000; i++) {
        step(e, &m, &r);
        if (i % 100 == 0) check_model(e, &m);
    }
    check_model(e, &m);
    model_free_all(&m);
    tu_store_close(&s);
}

static void test_same_operations_same_root(void **state) {
    (void)state;
    tu_store sa = tu_store_open(NULL), sb = tu_store_open(NULL);
    mmsb_engine *a = sa.e, *b = sb.e;
    model ma = {0}, mb = {0};
    rng ra = {.state = 8}, rb = {.state = 8};
    for (int i = 0; i < 1000; i++) {
        step(a, &ma, &ra);
        step(b, &mb, &rb);
        tu_roots_match(a, b, true);
    }
    /* One more byte in one engine: the roots part. */
    uint8_t v = (uint8_t)(ma.pages[0].bytes[0] + 1);
    TU_OK(mmsb_write(a, ma.pages[0].id, 0, &v, 1, NULL));
    tu_roots_match(a, b, false);
    /* Putting the byte back restores the bytes but not the epoch: still apart. */
    v--;
    TU_OK(mmsb_write(a, ma.pages[0].id, 0, &v, 1, NULL));
    tu_roots_match(a, b, false);
    model_free_all(&ma);
    model_free_all(&mb);
    tu_store_close(&sa);
    tu_store_close(&sb);
}

/* The same pages with one freed, or created in another order, differ. */
static void test_different_operations_differ(void **state) {
    (void)state;
    tu_store sa = tu_store_open(NULL), sb = tu_store_open(NULL);
    mmsb_engine *a = sa.e, *b = sb.e;
    uint64_t id;
    TU_OK(mmsb_page_create(a, 4096, 0, &id));
    TU_OK(mmsb_page_create(a, 8192, 0, &id));
    TU_OK(mmsb_page_create(b, 8192, 0, &id));
    TU_OK(mmsb_page_create(b, 4096, 0, &id));
    tu_roots_match(a, b, false);
    TU_OK(mmsb_page_free(a, 1));
    TU_OK(mmsb_page_free(a, 2));
    TU_OK(mmsb_page_free(b, 1));
    TU_OK(mmsb_page_free(b, 2));
    tu_roots_match(a, b, true); /* both empty with next id 3 */
    TU_OK(mmsb_page_create(a, 64, 0, &id));
    tu_roots_match(a, b, false);
    tu_store_close(&sa);
    tu_store_close(&sb);
}

/* Bad calls sprinkled through a workload leave no trace: the root equals
 * that of a twin engine that never saw them. */
static void test_bad_calls_leave_no_trace(void **state) {
    (void)state;
    tu_store sa = tu_store_open(NULL), sb = tu_store_open(NULL);
    mmsb_engine *a = sa.e, *b = sb.e;
    model ma = {0}, mb = {0};
    rng ra = {.state = 99}, rb = {.state = 99}, bad = {.state = 1};
    uint8_t junk[64] = {1};
    uint8_t full_mask[8] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    for (int i = 0; i < 600; i++) {
        step(a, &ma, &ra);
        step(b, &mb, &rb);
        if (ma.count == 0) continue;
        model_page *p = &ma.pages[rng_below(&bad, ma.count)];
        mmsb_delta d = {.page_id = p->id, .offset = p->size - 10, .len = 64,
                        .mask = full_mask, .payload = junk, .payload_len = 64};
        switch (rng_below(&bad, 5)) {
        case 0: TU_ERR(mmsb_write(a, p->id, p->size, junk, 1, NULL), MMSB_EINVAL); break;
        case 1: TU_ERR(mmsb_apply(a, &d, NULL), MMSB_EINVAL); break;
        case 2:
            d.offset = 0, d.len = p->size < 64 ? p->size : 64, d.payload_len = d.len;
            d.flags = MMSB_DELTA_EXPECT_EPOCH, d.expected_epoch = p->epoch + 1;
            TU_ERR(mmsb_apply(a, &d, NULL), MMSB_ECONFLICT);
            break;
        case 3: TU_ERR(mmsb_page_free(a, 1000000), MMSB_ENOTFOUND); break;
        default: TU_ERR(mmsb_page_create(a, 0, 0, &d.page_id), MMSB_EINVAL); break;
        }
    }
    tu_roots_match(a, b, true);
    check_model(a, &ma);
    model_free_all(&ma);
    model_free_all(&mb);
    tu_store_close(&sa);
    tu_store_close(&sb);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_matches_model),
        cmocka_unit_test(test_same_operations_same_root),
        cmocka_unit_test(test_different_operations_differ),
        cmocka_unit_test(test_bad_calls_leave_no_trace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
