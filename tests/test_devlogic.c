/*
 * test_devlogic.c - the device kernels' per-element logic (gpu/dev_logic.h),
 * built for the host, run for every thread index and checked against what
 * the host computes: the CPU kernels (every variant this CPU runs), the
 * built-in operations of engine/ops.c, xxHash 0.8's XXH3-128 on every
 * length 0 .. 4096 with random seeds, and the engine's page digests. A GPU
 * runs the same text.
 */
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "testutil.h"
#include "../engine/base/kern.h"
#include "../engine/ops.h"
#include "../gpu/dev_logic.h"
#include "../gpu/stage.h"

enum { LEN_MAX = 70000, HASH_LEN_MAX = 4096, ROUNDS = 300 };

static uint64_t units_of(uint64_t len) { return (len + 7) / 8; }

static void same_bytes(const uint8_t *a, const uint8_t *b, uint64_t len) {
    if (len > 0) assert_memory_equal(a, b, len);
}

static void random_mask(rng *r, uint8_t *mask, uint64_t len) {
    uint64_t kind = rng_below(r, 4); /* empty, full, sparse, half */
    for (uint64_t i = 0; i < units_of(len); i++) {
        uint64_t w = rng_next(r);
        mask[i] = kind == 0 ? 0 : kind == 1 ? 0xFF : kind == 2 ? (uint8_t)(w & (w >> 8) & (w >> 16)) : (uint8_t)w;
    }
    if (len % 8 != 0) mask[len / 8] &= (uint8_t)((1u << (len % 8)) - 1);
}

/* Some bytes of b differ from a, at a random density. */
static void random_pair(rng *r, uint8_t *a, uint8_t *b, uint64_t len) {
    rng_fill(r, a, len);
    memcpy(b, a, len);
    uint64_t every = 1 + rng_below(r, 16);
    for (uint64_t i = 0; i < len; i++) {
        if (rng_below(r, every) == 0) b[i] = (uint8_t)(b[i] + 1 + rng_below(r, 255));
    }
}

static uint64_t random_len(rng *r) {
    uint64_t k = rng_below(r, 3);
    return k == 0 ? rng_below(r, 70) : k == 1 ? rng_below(r, 5000) : rng_below(r, LEN_MAX + 1);
}

static const kern_ops *const VARIANTS[] = {&kern_portable_ops, &kern_avx2_ops, &kern_avx512_ops};

static void test_diff_units_match_kernels(void **state) {
    (void)state;
    rng r = {11};
    uint8_t *a = malloc(LEN_MAX), *b = malloc(LEN_MAX), *m1 = malloc(LEN_MAX / 8 + 1), *m2 = malloc(LEN_MAX / 8 + 1);
    assert_non_null(a && b && m1 && m2);
    for (int round = 0; round < ROUNDS; round++) {
        uint64_t len = random_len(&r);
        random_pair(&r, a, b, len);
        uint64_t dev_count = 0;
        for (uint64_t t = 0; t < units_of(len); t++) dev_count += dev_diff_unit(a, b, len, t, m1);
        for (size_t v = 0; v < sizeof VARIANTS / sizeof VARIANTS[0]; v++) {
            if (!kern_supported(VARIANTS[v]->level)) continue;
            uint64_t host_count = VARIANTS[v]->diff(a, b, len, m2);
            assert_int_equal(dev_count, host_count);
            same_bytes(m1, m2, units_of(len));
        }
    }
    free(a), free(b), free(m1), free(m2);
}

/* Dense and sparse apply, storing and counting only, with the old bytes
 * kept: the same count and bytes as the host kernels. */
static void check_apply(rng *r, uint8_t *dst, uint8_t *src, uint8_t *mask, uint8_t *packed, uint8_t *work,
                        uint8_t *old, uint64_t len) {
    random_pair(r, dst, src, len);
    random_mask(r, mask, len);
    uint64_t packed_len = kern_portable_ops.compress(packed, src, mask, len);
    bool sparse = rng_below(r, 2) == 1, store = rng_below(r, 4) != 0;
    memcpy(work, dst, len);
    uint64_t dev_changed = 0, at = 0;
    for (uint64_t t = 0; t < units_of(len); t++) {
        dev_changed += sparse ? dev_apply_sparse_unit(work, packed, mask, len, t, at, store, old)
                              : dev_apply_dense_unit(work, src, mask, len, t, store, old);
        at += dev_popcount8(mask[t]);
    }
    assert_int_equal(at, packed_len);
    same_bytes(old, dst, len); /* the journal's copy: the bytes before */
    for (size_t v = 0; v < sizeof VARIANTS / sizeof VARIANTS[0]; v++) {
        const kern_ops *k = VARIANTS[v];
        if (!kern_supported(k->level)) continue;
        uint8_t *host = old; /* reused: it was checked above */
        memcpy(host, dst, len);
        uint64_t host_changed = sparse ? k->apply_sparse(host, packed, packed_len, mask, len, store)
                                       : k->apply_dense(host, src, mask, len, store);
        assert_int_equal(dev_changed, host_changed);
        same_bytes(work, host, len);
        memcpy(old, dst, len);
    }
}

static void test_apply_units_match_kernels(void **state) {
    (void)state;
    rng r = {12};
    uint8_t *dst = malloc(LEN_MAX), *src = malloc(LEN_MAX), *mask = malloc(LEN_MAX / 8 + 1);
    uint8_t *packed = malloc(LEN_MAX), *work = malloc(LEN_MAX), *old = malloc(LEN_MAX);
    assert_non_null(dst && src && mask && packed && work && old);
    for (int round = 0; round < ROUNDS; round++) check_apply(&r, dst, src, mask, packed, work, old, random_len(&r));
    free(dst), free(src), free(mask), free(packed), free(work), free(old);
}

static void test_compress_units_match_kernels(void **state) {
    (void)state;
    rng r = {13};
    uint8_t *src = malloc(LEN_MAX), *mask = malloc(LEN_MAX / 8 + 1), *p1 = malloc(LEN_MAX), *p2 = malloc(LEN_MAX);
    assert_non_null(src && mask && p1 && p2);
    for (int round = 0; round < ROUNDS; round++) {
        uint64_t len = random_len(&r), at = 0;
        rng_fill(&r, src, len);
        random_mask(&r, mask, len);
        for (uint64_t t = 0; t < units_of(len); t++) at += dev_compress_unit(p1, src, mask, len, t, at);
        for (size_t v = 0; v < sizeof VARIANTS / sizeof VARIANTS[0]; v++) {
            if (!kern_supported(VARIANTS[v]->level)) continue;
            assert_int_equal(VARIANTS[v]->compress(p2, src, mask, len), at);
            same_bytes(p1, p2, at);
        }
    }
    free(src), free(mask), free(p1), free(p2);
}

/* An inclusive prefix sum of vals[0 .. n) the way a block does it: a
 * dev_scan_step per thread, a step at a time, tmp as the other buffer. */
static void block_scan(uint64_t *vals, uint64_t *tmp, uint64_t n) {
    for (uint64_t d = 1; d < n; d *= 2) {
        for (uint64_t t = 0; t < n; t++) tmp[t] = dev_scan_step(vals, t, d);
        memcpy(vals, tmp, n * sizeof *vals);
    }
}

/* ---- staged items (gpu/stage.h) run as the kernel runs them ---------------------------- */

enum { STAGE_BYTES = 4 << 20, STAGE_ITEMS = STAGE_BYTES / 64, MEM_BYTES = 1 << 20 };

/* One item as a block of `threads` runs it (mmsb_k_apply_items): a unit
 * per thread in turn, or for a sparse item a run per thread placed by the
 * block's scan. Returns the bytes it changed. */
static uint64_t run_item_as_block(uint8_t *mem, const gpu_stage *st, const dev_item *it, uint64_t threads) {
    enum { THREADS_MAX = 256 };
    uint64_t units = dev_item_units(it), changed = 0;
    if (it->kind != DEV_ITEM_SPARSE) {
        for (uint64_t t = 0; t < threads; t++) {
            for (uint64_t u = t; u < units; u += threads) changed += dev_item_run(mem, st->bytes, it, u, 1, 0);
        }
        return changed;
    }
    uint64_t per = (units + threads - 1) / threads, counts[THREADS_MAX], scanned[THREADS_MAX], tmp[THREADS_MAX];
    assert_true(threads <= THREADS_MAX);
    for (uint64_t t = 0; t < threads; t++) scanned[t] = counts[t] = dev_item_count(st->bytes, it, t * per, per);
    block_scan(scanned, tmp, threads);
    for (uint64_t t = 0; t < threads; t++) {
        changed += dev_item_run(mem, st->bytes, it, t * per, per, scanned[t] - counts[t]);
    }
    return changed;
}

/* Random zero fills, copies and dense and sparse deltas, staged (split into
 * items of DEV_ITEM_BYTES) and run item by item as the kernel's blocks run
 * them, give the CPU kernels' bytes, and each op's count equals the host's
 * (stage_check); a wrong count is caught. */
static void test_staged_items_match_kernels(void **state) {
    (void)state;
    rng r = {31};
    uint8_t *dev = calloc(1, MEM_BYTES), *host = calloc(1, MEM_BYTES), *src = malloc(MEM_BYTES);
    uint8_t *mask = malloc(MEM_BYTES / 8), *packed = malloc(MEM_BYTES), *bytes = malloc(STAGE_BYTES);
    dev_item *items = malloc(STAGE_ITEMS * sizeof *items);
    uint64_t *expected = malloc(STAGE_ITEMS * sizeof *expected), *counts = malloc(STAGE_ITEMS * sizeof *counts);
    assert_true(dev && host && src && mask && packed && bytes && items && expected && counts);
    gpu_stage st;
    stage_init(&st, bytes, STAGE_BYTES, items, STAGE_ITEMS, expected, STAGE_ITEMS);
    for (int round = 0; round < 40; round++) {
        for (int op = 0; op < 12; op++) {
            uint64_t len = 1 + rng_below(&r, rng_below(&r, 2) == 0 ? 300 : 3 * DEV_ITEM_BYTES);
            uint64_t offset = rng_below(&r, MEM_BYTES - len + 1), kind = rng_below(&r, 4);
            rng_fill(&r, src, len);
            random_mask(&r, mask, len);
            bool staged;
            if (kind == 0) {
                memset(host + offset, 0, len);
                staged = stage_zero(&st, offset, len);
            } else if (kind == 1) {
                memcpy(host + offset, src, len);
                staged = stage_copy(&st, offset, src, len);
            } else {
                bool sparse = kind == 3;
                uint64_t packed_len = kern_portable_ops.compress(packed, src, mask, len);
                uint64_t changed = sparse ? kern_portable_ops.apply_sparse(host + offset, packed, packed_len, mask,
                                                                            len, true)
                                          : kern_portable_ops.apply_dense(host + offset, src, mask, len, true);
                gpu_delta g = {.offset = offset, .len = len, .mask = mask, .payload = sparse ? packed : src,
                               .payload_len = sparse ? packed_len : len, .sparse = sparse, .changed = changed};
                staged = stage_delta(&st, &g);
            }
            assert_true(staged); /* 12 ops of at most 192 KiB fit */
        }
        memset(counts, 0, st.ops_used * sizeof *counts);
        uint64_t threads = 32ull << rng_below(&r, 4);
        for (uint32_t i = 0; i < st.items_used; i++) {
            assert_true(st.items[i].len >= 1 && st.items[i].len <= DEV_ITEM_BYTES);
            counts[st.items[i].op] += run_item_as_block(dev, &st, &st.items[i], threads);
        }
        assert_int_equal(stage_check(&st, counts, "test"), 0);
        for (uint32_t op = 0; op < st.ops_used; op++) {
            if (st.expected_plus1[op] == STAGE_NOT_COUNTED) continue;
            counts[op]++; /* a device that changed one byte more */
            assert_int_equal(stage_check(&st, counts, "test"), MMSB_EIO);
            counts[op]--;
            break;
        }
        same_bytes(dev, host, MEM_BYTES);
        stage_reset(&st);
    }
    free(dev), free(host), free(src), free(mask), free(packed), free(bytes), free(items), free(expected), free(counts);
}

/* The kernels' three steps for a sparse delta (block counts, their offsets,
 * a scan inside each block), run on the host with random partitions
 * (threads per block, units per thread): every scan equals the serial sum,
 * and sparse apply and compress give the CPU kernels' bytes and counts. */
static void test_sparse_steps_match_kernels(void **state) {
    (void)state;
    rng r = {18};
    enum { THREADS_MAX = 64 };
    uint8_t *dst = malloc(LEN_MAX), *src = malloc(LEN_MAX), *mask = malloc(LEN_MAX / 8 + 1);
    uint8_t *packed = malloc(LEN_MAX), *work = malloc(LEN_MAX), *host = malloc(LEN_MAX), *p2 = malloc(LEN_MAX);
    uint64_t *offsets = malloc((LEN_MAX / 8 + 1) * sizeof *offsets), counts[THREADS_MAX], tmp[THREADS_MAX];
    assert_non_null(dst && src && mask && packed && work && host && p2 && offsets);
    for (int round = 0; round < ROUNDS; round++) {
        uint64_t len = random_len(&r), units = units_of(len);
        uint64_t threads = 1ull << rng_below(&r, 7), per = 1 + rng_below(&r, 5), per_block = threads * per;
        uint64_t blocks = units == 0 ? 1 : (units + per_block - 1) / per_block;
        random_pair(&r, dst, src, len);
        random_mask(&r, mask, len);
        uint64_t packed_len = kern_portable_ops.compress(packed, src, mask, len);
        bool store = rng_below(&r, 2) == 1;
        uint64_t total = 0;
        for (uint64_t b = 0; b < blocks; b++) { /* steps 1 and 2: block counts, then offsets */
            offsets[b] = total;
            total += dev_units_count(mask, units, b * per_block, per_block);
        }
        assert_int_equal(total, packed_len);
        memcpy(work, dst, len);
        uint64_t changed = 0, compressed = 0;
        for (uint64_t b = 0; b < blocks; b++) { /* step 3 */
            for (uint64_t t = 0; t < threads; t++) {
                counts[t] = dev_units_count(mask, units, b * per_block + t * per, per);
            }
            uint64_t serial[THREADS_MAX], sum = 0;
            for (uint64_t t = 0; t < threads; t++) serial[t] = (sum += counts[t]);
            uint64_t scanned[THREADS_MAX];
            memcpy(scanned, counts, threads * sizeof *counts);
            block_scan(scanned, tmp, threads);
            assert_memory_equal(scanned, serial, threads * sizeof *serial);
            for (uint64_t t = 0; t < threads; t++) {
                uint64_t first = b * per_block + t * per, at = offsets[b] + scanned[t] - counts[t];
                changed += dev_apply_sparse_run(work, packed, mask, len, first, per, at, store, NULL);
                compressed += dev_compress_run(p2, src, mask, len, first, per, at);
            }
        }
        assert_int_equal(compressed, packed_len);
        same_bytes(p2, packed, packed_len);
        memcpy(host, dst, len);
        assert_int_equal(changed, kern_portable_ops.apply_sparse(host, packed, packed_len, mask, len, store));
        same_bytes(work, host, len);
    }
    free(dst), free(src), free(mask), free(packed), free(work), free(host), free(p2), free(offsets);
}

/* Every lanewise built-in operation over 1 .. 12 parents and a random lane
 * range of them: the same bytes as op_compute. */
static void test_op_units_match_ops(void **state) {
    (void)state;
    rng r = {14};
    enum { PARENTS_MAX = 12, OP_LEN_MAX = 9000 };
    uint8_t *parents[PARENTS_MAX], *host = malloc(OP_LEN_MAX), *dev = malloc(OP_LEN_MAX);
    uint64_t sizes[PARENTS_MAX];
    for (int p = 0; p < PARENTS_MAX; p++) parents[p] = malloc(OP_LEN_MAX);
    const uint32_t ops[] = {MMSB_OP_XOR, MMSB_OP_SUM_U32, MMSB_OP_SUM_U64, MMSB_OP_MAX_U8, MMSB_OP_MAX_U32,
                            MMSB_OP_MAX_U64};
    for (int round = 0; round < ROUNDS; round++) {
        uint32_t op = ops[rng_below(&r, sizeof ops / sizeof ops[0])], n = 1 + (uint32_t)rng_below(&r, PARENTS_MAX);
        assert_true(dev_op_is_lanewise(op));
        uint64_t lane = op_lane(op), size = (1 + rng_below(&r, OP_LEN_MAX / lane)) * lane;
        uint64_t lo = rng_below(&r, size / lane + 1) * lane, hi = lo + rng_below(&r, (size - lo) / lane + 1) * lane;
        for (uint32_t p = 0; p < n; p++) {
            rng_fill(&r, parents[p], size);
            sizes[p] = size;
        }
        const uint8_t *const *in = (const uint8_t *const *)parents;
        op_compute(op, NULL, in, sizes, n, lo, hi, host);
        for (uint64_t t = 0; t < units_of(hi - lo); t++) dev_op_unit(op, in, n, lo, hi, t, dev);
        same_bytes(host, dev, hi - lo);
    }
    for (int p = 0; p < PARENTS_MAX; p++) free(parents[p]);
    free(host), free(dev);
}

static void check_hash(const uint8_t *data, uint64_t len, uint64_t seed) {
    uint8_t seeded[DEV_XXH_SECRET_BYTES];
    dev_xxh_secret_for_seed(dev_xxh_ksecret, seed, seeded);
    dev_h128 got = dev_xxh3_128(data, len, seed, dev_xxh_ksecret, seeded);
    XXH128_hash_t want = XXH3_128bits_withSeed(data, (size_t)len, seed);
    if (got.lo != want.low64 || got.hi != want.high64) {
        fail_msg("XXH3-128 of %llu bytes, seed %016llx: %016llx%016llx, xxHash says %016llx%016llx",
                 (unsigned long long)len, (unsigned long long)seed, (unsigned long long)got.hi,
                 (unsigned long long)got.lo, (unsigned long long)want.high64, (unsigned long long)want.low64);
    }
}

/* Every length a chunk can have, each at an odd address, with a random
 * seed, seed 0 and the digests' own seed; then a few longer inputs. */
static void test_xxh3_matches_xxhash(void **state) {
    (void)state;
    rng r = {15};
    enum { LONG_LEN_MAX = 1 << 20 };
    uint8_t *buf = malloc(LONG_LEN_MAX + 8);
    assert_non_null(buf);
    rng_fill(&r, buf, LONG_LEN_MAX + 8);
    for (uint64_t len = 0; len <= HASH_LEN_MAX; len++) {
        const uint8_t *data = buf + (len % 8);
        check_hash(data, len, rng_next(&r));
        check_hash(data, len, 0);
        check_hash(data, len, SEED_CHUNK);
    }
    for (int round = 0; round < 40; round++) {
        uint64_t len = HASH_LEN_MAX + rng_below(&r, LONG_LEN_MAX - HASH_LEN_MAX);
        check_hash(buf + rng_below(&r, 8), len, rng_next(&r));
    }
    free(buf);
}

/* The stripe step taken lane by lane in any order equals the whole step: a
 * kernel may give each lane to its own thread. */
static void test_xxh3_stripe_lanes_commute(void **state) {
    (void)state;
    rng r = {16};
    uint8_t stripe[DEV_XXH_STRIPE_BYTES], secret[DEV_XXH_SECRET_BYTES];
    for (int round = 0; round < 1000; round++) {
        rng_fill(&r, stripe, sizeof stripe);
        rng_fill(&r, secret, sizeof secret);
        uint64_t whole[8], lanes[8];
        for (int i = 0; i < 8; i++) whole[i] = lanes[i] = rng_next(&r);
        dev_xxh_stripe(whole, stripe, secret);
        uint32_t order = (uint32_t)rng_below(&r, 8);
        for (uint32_t k = 0; k < 8; k++) dev_xxh_stripe_lane(lanes, stripe, secret, (k * 5 + order) % 8);
        assert_memory_equal(whole, lanes, sizeof whole);
    }
}

/* A page's digest from the device logic (chunk digests, then the tree a
 * level at a time, as the kernels do it) equals the engine's, for sizes
 * around the chunk size and its powers of two. */
static void test_page_digest_matches_engine(void **state) {
    (void)state;
    rng r = {17};
    enum { SIZE_MAX_BYTES = 300 * 1024 };
    tu_store s = tu_store_open(NULL);
    uint8_t *bytes = malloc(SIZE_MAX_BYTES), *level = malloc(SIZE_MAX_BYTES / 256 + 64);
    uint8_t *above = malloc(SIZE_MAX_BYTES / 256 + 64), chunk_secret[DEV_XXH_SECRET_BYTES];
    assert_non_null(bytes && level && above);
    dev_xxh_secret_for_seed(dev_xxh_ksecret, SEED_CHUNK, chunk_secret);
    const uint64_t sizes[] = {1, 17, 240, 241, 4095, 4096, 4097, 8192, 8193, 3 * 4096, 5 * 4096 + 7, 65536,
                              65537, SIZE_MAX_BYTES};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0] + 20; k++) {
        uint64_t size = k < sizeof sizes / sizeof sizes[0] ? sizes[k] : 1 + rng_below(&r, SIZE_MAX_BYTES);
        uint64_t id;
        TU_OK(mmsb_page_create(s.e, size, 0, &id));
        rng_fill(&r, bytes, size);
        if (k % 3 == 1) memset(bytes, 0, size / 2); /* zero chunks, as a created page has */
        mmsb_change ch;
        TU_OK(mmsb_write(s.e, id, 0, bytes, size, &ch));
        mmsb_digest want;
        TU_OK(mmsb_page_digest(s.e, id, &want));
        uint64_t n = (size + DEV_CHUNK_BYTES - 1) / DEV_CHUNK_BYTES;
        for (uint64_t c = 0; c < n; c++) {
            dev_chunk_digest(bytes, size, c, dev_xxh_ksecret, chunk_secret, level + c * DEV_DIGEST_BYTES);
        }
        for (; n > 1; n = (n + 1) / 2) {
            for (uint64_t p = 0; p < (n + 1) / 2; p++) dev_merkle_parent(level, n, p, dev_xxh_ksecret, above);
            memcpy(level, above, (n + 1) / 2 * DEV_DIGEST_BYTES);
        }
        assert_memory_equal(level, want.bytes, DEV_DIGEST_BYTES);
    }
    free(bytes), free(level), free(above);
    tu_store_close(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diff_units_match_kernels),
        cmocka_unit_test(test_apply_units_match_kernels),
        cmocka_unit_test(test_compress_units_match_kernels),
        cmocka_unit_test(test_sparse_steps_match_kernels),
        cmocka_unit_test(test_staged_items_match_kernels),
        cmocka_unit_test(test_op_units_match_ops),
        cmocka_unit_test(test_xxh3_matches_xxhash),
        cmocka_unit_test(test_xxh3_stripe_lanes_commute),
        cmocka_unit_test(test_page_digest_matches_engine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
