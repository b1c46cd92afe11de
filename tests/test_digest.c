/*
 * test_digest.c - the digests against an independent implementation of
 * engine/DIGESTS.md computed from scratch out of the page bytes, after every
 * step of random workloads; plus a fixed known-answer root, so that any
 * change of the definition is caught.
 */
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "testutil.h"

/* ---- the definition, written from DIGESTS.md -------------------------------- */

typedef struct hv {
    uint8_t b[16]; /* canonical bytes; all zero = EMPTY */
} hv;

static const uint64_t SEED_CHUNK = 0x4d4d53422d63686bull;
static const uint64_t SEED_NODE = 0x4d4d53422d6e6f64ull;
static const uint64_t SEED_LEAF = 0x4d4d53422d6c6566ull;
static const uint64_t SEED_ROOT = 0x4d4d53422d726f6full;

static hv h(const void *data, size_t len, uint64_t seed) {
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits_withSeed(data, len, seed));
    hv out;
    memcpy(out.b, c.digest, 16);
    return out;
}

static int is_empty(hv x) {
    static const uint8_t zero[16];
    return memcmp(x.b, zero, 16) == 0;
}

static hv node(hv l, hv r) {
    if (is_empty(r)) return l;
    uint8_t buf[32];
    memcpy(buf, l.b, 16);
    memcpy(buf + 16, r.b, 16);
    return h(buf, 32, SEED_NODE);
}

/* Merkle root of n items, pairing neighbours level by level (in place). */
static hv merkle(hv *items, size_t n) {
    hv empty = {{0}};
    if (n == 0) return empty;
    while (n > 1) {
        size_t half = (n + 1) / 2;
        for (size_t i = 0; i < half; i++) {
            items[i] = node(items[2 * i], 2 * i + 1 < n ? items[2 * i + 1] : empty);
        }
        n = half;
    }
    return items[0];
}

static hv ref_page_digest(const uint8_t *bytes, uint64_t size) {
    size_t chunks = (size + 4095) / 4096;
    hv *leaves = malloc(chunks * sizeof *leaves);
    for (size_t i = 0; i < chunks; i++) {
        uint64_t len = size - i * 4096 < 4096 ? size - i * 4096 : 4096;
        leaves[i] = h(bytes + i * 4096, len, SEED_CHUNK);
    }
    hv d = merkle(leaves, chunks);
    free(leaves);
    return d;
}

static void le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* The root recomputed from nothing but the public reading calls. */
static hv ref_root(mmsb_engine *e) {
    mmsb_engineinfo info = {.struct_size = sizeof info};
    TU_OK(mmsb_engine_info(e, &info));
    size_t n = info.page_id_next - 1;
    hv *leaves = calloc(n + 1, sizeof *leaves);
    for (uint64_t id = 1; id < info.page_id_next; id++) {
        const void *data;
        uint64_t size, epoch;
        if (mmsb_page_view(e, id, &data, &size, &epoch) != 0) continue; /* freed: EMPTY */
        uint8_t buf[40];
        le64(buf, id);
        le64(buf + 8, size);
        le64(buf + 16, epoch);
        hv d = ref_page_digest(data, size);
        memcpy(buf + 24, d.b, 16);
        leaves[id - 1] = h(buf, 40, SEED_LEAF);
    }
    hv tree = merkle(leaves, n);
    free(leaves);
    uint8_t buf[32];
    memcpy(buf, tree.b, 16);
    le64(buf + 16, info.pages_live);
    le64(buf + 24, info.page_id_next);
    return h(buf, 32, SEED_ROOT);
}

static void assert_root_matches(mmsb_engine *e) {
    mmsb_digest got;
    TU_OK(mmsb_state_root(e, &got));
    hv want = ref_root(e);
    assert_memory_equal(got.bytes, want.b, 16);
}

/* ---- tests ------------------------------------------------------------------- */

static uint64_t pick_size(rng *r) {
    switch (rng_below(r, 6)) {
    case 0: return 1 + rng_below(r, 200);
    case 1: return 4096;
    case 2: return 4096 * (2 + rng_below(r, 7));
    case 3: return 4096 * (1 + rng_below(r, 5)) + 1 + rng_below(r, 4095);
    case 4: return 65536 + rng_below(r, 300000);
    default: return 1 + rng_below(r, 5000);
    }
}

typedef struct live_set {
    uint64_t ids[256];
    uint64_t sizes[256];
    uint32_t count;
} live_set;

/* One random step: create, free, write, or apply (dense or sparse). */
static void random_step(mmsb_engine *e, rng *r, live_set *ls) {
    uint32_t what = (uint32_t)rng_below(r, 10);
    if (ls->count == 0 || (what == 0 && ls->count < 256)) {
        uint64_t size = pick_size(r), id;
        TU_OK(mmsb_page_create(e, size, 0, &id));
        ls->ids[ls->count] = id;
        ls->sizes[ls->count++] = size;
        return;
    }
    uint32_t k = (uint32_t)rng_below(r, ls->count);
    uint64_t id = ls->ids[k], size = ls->sizes[k];
    if (what == 1) {
        TU_OK(mmsb_page_free(e, id));
        ls->ids[k] = ls->ids[--ls->count];
        ls->sizes[k] = ls->sizes[ls->count];
        return;
    }
    uint64_t off = rng_below(r, size);
    uint64_t len = 1 + rng_below(r, rng_below(r, 4) == 0 ? size - off : (size - off < 300 ? size - off : 300));
    uint8_t *bytes = malloc(len), *mask = calloc((len + 7) / 8, 1), *packed = malloc(len);
    rng_fill(r, bytes, len);
    if (what < 6) {
        TU_OK(mmsb_write(e, id, off, bytes, len, NULL));
    } else {
        uint64_t count = 0;
        for (uint64_t i = 0; i < len; i++) {
            if (rng_below(r, 4) == 0) {
                mask[i / 8] |= (uint8_t)(1u << (i % 8));
                packed[count++] = bytes[i];
            }
        }
        bool sparse = what >= 8;
        mmsb_delta d = {.page_id = id, .offset = off, .len = len, .mask = mask,
                        .payload = sparse ? packed : bytes, .payload_len = sparse ? count : len,
                        .flags = sparse ? MMSB_DELTA_SPARSE : 0};
        TU_OK(mmsb_apply(e, &d, NULL));
    }
    free(bytes);
    free(mask);
    free(packed);
}

static void test_incremental_equals_from_scratch(void **state) {
    (void)state;
    tu_store s = tu_store_open(NULL);
    mmsb_engine *e = s.e;
    rng r = {.state = 2024};
    live_set ls = {0};
    assert_root_matches(e); /* the empty store */
    for (int step = 0; step < 1500; step++) {
        random_step(e, &r, &ls);
        /* Ask now and then, so several changes pile up between roots. */
        if (rng_below(&r, 3) == 0) assert_root_matches(e);
        if (rng_below(&r, 5) == 0 && ls.count > 0) {
            uint64_t id = ls.ids[rng_below(&r, ls.count)];
            mmsb_digest got;
            TU_OK(mmsb_page_digest(e, id, &got));
            const void *data;
            uint64_t size;
            TU_OK(mmsb_page_view(e, id, &data, &size, NULL));
            hv want = ref_page_digest(data, size);
            assert_memory_equal(got.bytes, want.b, 16);
        }
    }
    assert_root_matches(e);
    tu_store_close(&s);
}

/* Roots asked after every step or only at the end agree. */
static void test_root_independent_of_when_asked(void **state) {
    (void)state;
    tu_store sa = tu_store_open(NULL), sb = tu_store_open(NULL);
    mmsb_engine *a = sa.e, *b = sb.e;
    rng ra = {.state = 5}, rb = {.state = 5};
    live_set la = {0}, lb = {0};
    mmsb_digest root;
    for (int step = 0; step < 800; step++) {
        random_step(a, &ra, &la);
        random_step(b, &rb, &lb);
        TU_OK(mmsb_state_root(a, &root));
    }
    tu_roots_match(a, b, true);
    tu_store_close(&sa);
    tu_store_close(&sb);
}

/* A large page: one changed byte rehashes one chunk, and the digest still
 * equals the from-scratch one, wherever the byte is. */
static void test_large_page_single_byte_changes(void **state) {
    (void)state;
    tu_store s = tu_store_open(NULL);
    mmsb_engine *e = s.e;
    uint64_t size = (8u << 20) + 123, id;
    TU_OK(mmsb_page_create(e, size, 0, &id));
    rng r = {.state = 11};
    for (int i = 0; i < 60; i++) {
        uint8_t v = (uint8_t)(1 + rng_below(&r, 255));
        uint64_t off = i == 0 ? size - 1 : rng_below(&r, size);
        TU_OK(mmsb_write(e, id, off, &v, 1, NULL));
        mmsb_digest got;
        TU_OK(mmsb_page_digest(e, id, &got));
        const void *data;
        TU_OK(mmsb_page_view(e, id, &data, NULL, NULL));
        hv want = ref_page_digest(data, size);
        assert_memory_equal(got.bytes, want.b, 16);
    }
    assert_root_matches(e);
    tu_store_close(&s);
}

/* Known answer: this exact state has this exact root, on every machine and
 * with every kernel. If this fails, the digest definition changed. */
static void test_known_answer(void **state) {
    (void)state;
    static const char *kernels[] = {"portable", "avx2", "avx512"};
    for (int k = 0; k < 3; k++) {
        setenv("MMSB_KERNEL", kernels[k], 1);
        char *dir = tu_dir_new();
        mmsb_options o;
        tu_options_small(&o);
        mmsb_engine *e = NULL;
        int rc = mmsb_open(dir, &o, &e);
        if (rc == MMSB_ENOTSUP) { /* this CPU lacks the level */
            tu_dir_remove(dir);
            continue;
        }
        TU_OK(rc);
        uint64_t a, b, c, d;
        TU_OK(mmsb_page_create(e, 1, 0, &a));
        TU_OK(mmsb_page_create(e, 4096, 0, &b));
        TU_OK(mmsb_page_create(e, 4097, 0, &c));
        TU_OK(mmsb_page_create(e, 100000, 0, &d));
        uint8_t text[] = "deterministic shared-memory page engine";
        TU_OK(mmsb_write(e, b, 1000, text, sizeof text, NULL));
        TU_OK(mmsb_write(e, c, 4093, text, 4, NULL)); /* across the chunk edge */
        TU_OK(mmsb_write(e, d, 99000, text, sizeof text, NULL));
        TU_OK(mmsb_page_free(e, a));
        assert_root_matches(e);
        char hex[33];
        tu_root_hex(e, hex);
        assert_string_equal(hex, "5b228551d11f1be97c369c5a232ca43a");
        TU_OK(mmsb_close(e));
        tu_dir_remove(dir);
    }
    unsetenv("MMSB_KERNEL");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_incremental_equals_from_scratch),
        cmocka_unit_test(test_root_independent_of_when_asked),
        cmocka_unit_test(test_large_page_single_byte_changes),
        cmocka_unit_test(test_known_answer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
