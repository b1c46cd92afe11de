/*
 * test_kernels.c - every kernel variant this CPU runs agrees, byte for byte,
 * with a plain byte-at-a-time reference, on random inputs of odd sizes,
 * alignments and mask densities; no kernel writes outside its range.
 */
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "testutil.h"
#include "../engine/base/crc32c.h"
#include "../engine/base/kern.h"

enum { GUARD = 64, GUARD_BYTE = 0xA5 };

static uint64_t ref_diff(const uint8_t *a, const uint8_t *b, uint64_t len, uint8_t *mask) {
    uint64_t count = 0;
    memset(mask, 0, (len + 7) / 8);
    for (uint64_t i = 0; i < len; i++) {
        if (a[i] != b[i]) {
            mask[i / 8] |= (uint8_t)(1u << (i % 8));
            count++;
        }
    }
    return count;
}

static int bit(const uint8_t *mask, uint64_t i) { return (mask[i / 8] >> (i % 8)) & 1; }

static uint64_t ref_apply_dense(uint8_t *dst, const uint8_t *src, const uint8_t *mask, uint64_t len) {
    uint64_t changed = 0;
    for (uint64_t i = 0; i < len; i++) {
        if (!bit(mask, i)) continue;
        changed += dst[i] != src[i];
        dst[i] = src[i];
    }
    return changed;
}

static uint64_t ref_apply_sparse(uint8_t *dst, const uint8_t *packed, const uint8_t *mask, uint64_t len) {
    uint64_t changed = 0;
    for (uint64_t i = 0; i < len; i++) {
        if (!bit(mask, i)) continue;
        changed += dst[i] != *packed;
        dst[i] = *packed++;
    }
    return changed;
}

static uint64_t ref_compress(uint8_t *out, const uint8_t *src, const uint8_t *mask, uint64_t len) {
    uint64_t n = 0;
    for (uint64_t i = 0; i < len; i++) {
        if (bit(mask, i)) out[n++] = src[i];
    }
    return n;
}

static uint64_t ref_popcount(const uint8_t *mask, uint64_t bytes) {
    uint64_t n = 0;
    for (uint64_t i = 0; i < bytes * 8; i++) n += (uint64_t)bit(mask, i);
    return n;
}

/* The variants this machine can run. */
static size_t variants(const kern_ops *out[3]) {
    size_t n = 0;
    const kern_ops *all[3] = {&kern_portable_ops, &kern_avx2_ops, &kern_avx512_ops};
    for (size_t i = 0; i < 3; i++) {
        if (kern_supported(all[i]->level)) out[n++] = all[i];
    }
    return n;
}

/* A buffer with guard bytes on both sides, at a chosen misalignment. */
typedef struct guarded {
    uint8_t *raw;
    uint8_t *p;
    uint64_t len;
} guarded;

static guarded g_new(uint64_t len, uint32_t misalign) {
    guarded g;
    g.len = len;
    g.raw = malloc(len + 2 * GUARD + 64);
    assert_non_null(g.raw);
    memset(g.raw, GUARD_BYTE, len + 2 * GUARD + 64);
    g.p = g.raw + GUARD + misalign;
    return g;
}

static void g_check(const guarded *g, uint32_t misalign) {
    for (uint64_t i = 0; i < GUARD + misalign; i++) assert_int_equal(g->raw[i], GUARD_BYTE);
    for (uint64_t i = 0; i < GUARD; i++) assert_int_equal(g->p[g->len + i], GUARD_BYTE);
}

static void random_mask(rng *r, uint8_t *mask, uint64_t len, uint32_t density_pct, int garbage_tail) {
    memset(mask, 0, (len + 7) / 8);
    for (uint64_t i = 0; i < len; i++) {
        if (rng_below(r, 100) < density_pct) mask[i / 8] |= (uint8_t)(1u << (i % 8));
    }
    if (garbage_tail && len % 8 != 0) mask[len / 8] |= (uint8_t)(0xFFu << (len % 8));
}

static uint64_t pick_len(rng *r) {
    switch (rng_below(r, 6)) {
    case 0: return rng_below(r, 9);
    case 1: return rng_below(r, 130);
    case 2: return 64 * (1 + rng_below(r, 8)) + rng_below(r, 3) - 1;
    case 3: return 4096 + rng_below(r, 200) - 100;
    case 4: return rng_below(r, 5000);
    default: return 65536 + rng_below(r, 70);
    }
}

static void check_one_case(rng *r, const kern_ops *k) {
    uint64_t len = pick_len(r);
    uint32_t mis[4];
    for (int i = 0; i < 4; i++) mis[i] = (uint32_t)rng_below(r, 64);
    static const uint32_t densities[] = {0, 1, 10, 50, 90, 100};
    uint32_t density = densities[rng_below(r, 6)];
    uint64_t mask_bytes = (len + 7) / 8;

    guarded a = g_new(len, mis[0]), b = g_new(len, mis[1]);
    guarded m = g_new(mask_bytes, mis[2]), out = g_new(len, mis[3]);
    rng_fill(r, a.p, len);
    memcpy(b.p, a.p, len);
    for (uint64_t i = 0; i < len; i++) {
        if (rng_below(r, 100) < density) b.p[i] = (uint8_t)(a.p[i] + 1 + rng_below(r, 255));
    }
    uint8_t *ref_mask = calloc(mask_bytes + 1, 1);
    uint8_t *ref_out = malloc(len + 1);
    uint8_t *packed = malloc(len + 1);

    /* diff */
    uint64_t want = ref_diff(a.p, b.p, len, ref_mask);
    memset(m.p, 0x5A, mask_bytes);
    assert_int_equal(k->diff(a.p, b.p, len, m.p), want);
    assert_memory_equal(m.p, ref_mask, mask_bytes);
    g_check(&m, mis[2]);

    /* apply dense with a random mask, stray bits past len included */
    random_mask(r, m.p, len, density, 1);
    memcpy(out.p, a.p, len);
    memcpy(ref_out, a.p, len);
    uint64_t ref_changed = ref_apply_dense(ref_out, b.p, m.p, len);
    assert_int_equal(k->apply_dense(out.p, b.p, m.p, len, false), ref_changed);
    assert_memory_equal(out.p, a.p, len); /* a dry run writes nothing */
    assert_int_equal(k->apply_dense(out.p, b.p, m.p, len, true), ref_changed);
    assert_memory_equal(out.p, ref_out, len);
    g_check(&out, mis[3]);

    /* compress, popcount, and apply sparse of the same change */
    uint64_t count = ref_compress(ref_out, b.p, m.p, len);
    memset(packed, 0xA5, len + 1);
    assert_int_equal(k->compress(packed, b.p, m.p, len), count);
    assert_memory_equal(packed, ref_out, count);
    for (uint64_t i = count; i <= len; i++) assert_int_equal(packed[i], 0xA5); /* nothing past the packed bytes */
    uint64_t pop = ref_popcount(m.p, mask_bytes);
    assert_int_equal(k->popcount(m.p, mask_bytes), pop);
    if (len % 8 == 0) assert_int_equal(pop, count);
    memcpy(out.p, a.p, len);
    memcpy(ref_out, a.p, len);
    assert_int_equal(ref_apply_sparse(ref_out, packed, m.p, len), ref_changed);
    uint8_t *exact = malloc(count + 1); /* ASan sees any read past the payload */
    memcpy(exact, packed, count);
    assert_int_equal(k->apply_sparse(out.p, exact, count, m.p, len, false), ref_changed);
    assert_memory_equal(out.p, a.p, len);
    assert_int_equal(k->apply_sparse(out.p, exact, count, m.p, len, true), ref_changed);
    free(exact);
    assert_memory_equal(out.p, ref_out, len);
    g_check(&out, mis[3]);

    free(a.raw);
    free(b.raw);
    free(m.raw);
    free(out.raw);
    free(ref_mask);
    free(ref_out);
    free(packed);
}

static void test_variants_agree_with_reference(void **state) {
    (void)state;
    const kern_ops *v[3];
    size_t n = variants(v);
    assert_true(n >= 1);
    for (size_t i = 0; i < n; i++) {
        rng r = {.state = 0xC0FFEE + i};
        for (int iter = 0; iter < 1500; iter++) check_one_case(&r, v[i]);
    }
}

/* apply(diff(a, b)) turns a into b, whether the payload is dense or sparse. */
static void test_apply_of_diff_is_identity(void **state) {
    (void)state;
    const kern_ops *v[3];
    size_t n = variants(v);
    rng r = {.state = 42};
    for (int iter = 0; iter < 400; iter++) {
        uint64_t len = pick_len(&r);
        uint8_t *a = malloc(len + 1), *b = malloc(len + 1), *x = malloc(len + 1);
        uint8_t *mask = malloc(len / 8 + 1), *packed = malloc(len + 1);
        rng_fill(&r, a, len);
        memcpy(b, a, len);
        uint64_t flips = rng_below(&r, len + 1);
        for (uint64_t f = 0; f < flips; f++) b[rng_below(&r, len)] ^= (uint8_t)(1 + rng_below(&r, 255));
        for (size_t i = 0; i < n; i++) {
            uint64_t diffs = v[i]->diff(a, b, len, mask);
            memcpy(x, a, len);
            assert_int_equal(v[i]->apply_dense(x, b, mask, len, true), diffs);
            assert_memory_equal(x, b, len);
            uint64_t k = v[i]->compress(packed, b, mask, len);
            assert_int_equal(k, diffs);
            memcpy(x, a, len);
            assert_int_equal(v[i]->apply_sparse(x, packed, k, mask, len, true), diffs);
            assert_memory_equal(x, b, len);
        }
        free(a);
        free(b);
        free(x);
        free(mask);
        free(packed);
    }
}

static void test_word_helpers_exhaustive(void **state) {
    (void)state;
    rng r = {.state = 7};
    for (uint32_t m = 0; m < 256; m++) {
        uint64_t spread = spread_bits8((uint8_t)m);
        uint64_t x = 0;
        for (int i = 0; i < 8; i++) {
            uint8_t byte = (uint8_t)(spread >> (8 * i));
            assert_int_equal(byte, ((m >> i) & 1) ? 0xFF : 0x00);
            uint8_t v = ((m >> i) & 1) ? (uint8_t)(1 + rng_below(&r, 255)) : 0;
            if ((m >> i) & 1 && i % 3 == 0) v = (i % 2) ? 0x80 : 0x01;
            x |= (uint64_t)v << (8 * i);
        }
        assert_int_equal(nonzero_bytes8(x), m);
    }
}

static void test_select_honours_environment(void **state) {
    (void)state;
    const kern_ops *ops = NULL;
    setenv("MMSB_KERNEL", "portable", 1);
    assert_int_equal(kern_select(MMSB_KERNEL_AUTO, &ops), 0);
    assert_string_equal(ops->name, "portable");
    setenv("MMSB_KERNEL", "sse9", 1);
    assert_int_equal(kern_select(MMSB_KERNEL_AUTO, &ops), MMSB_EINVAL);
    assert_non_null(strstr(mmsb_last_error(), "sse9"));
    unsetenv("MMSB_KERNEL");
    assert_int_equal(kern_select(MMSB_KERNEL_AUTO, &ops), 0);
    assert_int_equal(kern_select(99, &ops), MMSB_EINVAL);
    if (!kern_supported(MMSB_KERNEL_AVX512)) {
        assert_int_equal(kern_select(MMSB_KERNEL_AVX512, &ops), MMSB_ENOTSUP);
    }
}

/* Hash variants agree (they are one function, XXH3-128, built three ways). */
static void test_hash_variants_agree(void **state) {
    (void)state;
    const kern_ops *v[3];
    size_t n = variants(v);
    rng r = {.state = 99};
    uint8_t buf[10000];
    rng_fill(&r, buf, sizeof buf);
    for (uint64_t len = 0; len < sizeof buf; len = len * 2 + 1 + rng_below(&r, 7)) {
        h128 want = v[0]->hash(buf, len, 12345);
        for (size_t i = 1; i < n; i++) {
            h128 got = v[i]->hash(buf, len, 12345);
            assert_true(got.lo == want.lo && got.hi == want.hi);
        }
    }
}

/* Streaming through each variant's hash_update (the log's chain hash does)
 * gives the one-shot hash of the same bytes, fed in pieces of any size. */
static void test_hash_update_streams(void **state) {
    (void)state;
    const kern_ops *v[3];
    size_t n = variants(v);
    rng r = {.state = 11};
    enum { LEN = 70000 };
    uint8_t *buf = malloc(LEN);
    assert_non_null(buf);
    rng_fill(&r, buf, LEN);
    XXH3_state_t *st = malloc(sizeof *st);
    assert_non_null(st);
    for (size_t i = 0; i < n; i++) {
        XXH3_INITSTATE(st);
        XXH3_128bits_reset_withSeed(st, 777);
        for (uint64_t at = 0; at < LEN;) {
            uint64_t piece = 1 + rng_below(&r, 9000);
            if (piece > LEN - at) piece = LEN - at;
            v[i]->hash_update(st, buf + at, piece);
            at += piece;
        }
        XXH128_hash_t got = XXH3_128bits_digest(st);
        h128 want = v[0]->hash(buf, LEN, 777);
        assert_true(got.low64 == want.lo && got.high64 == want.hi);
    }
    free(st);
    free(buf);
}

/* The CRC with three chains joined agrees with the table on every length
 * around the chain block sizes, at every alignment and starting value, and
 * its joining constants are the ones the polynomial gives; so does every
 * length up to 3 KiB, which short inputs' three streams cover, and so
 * does the single chain of a CPU without carry-less multiply. */
static void test_crc32c_agrees_with_table(void **state) {
    (void)state;
    assert_int_equal(crc32c_shift_constant(4096), 0x35d73a62u);
    assert_int_equal(crc32c_shift_constant(512), 0x74c360a4u);
    assert_int_equal(crc32c_shift_constant(0), 0x80000000u);
    assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u); /* the standard check value */
    assert_int_equal(crc32c_xpow(8 * 4096), crc32c_shift_constant(4096));
    for (uint32_t n = 8; n <= 504; n += 8) { /* the short inputs' joins: x^(8 * bytes - 33) */
        assert_int_equal(crc32c_short_constant(n, 0), crc32c_xpow(8ull * 2 * n - 33));
        assert_int_equal(crc32c_short_constant(n, 1), crc32c_xpow(8ull * n - 33));
    }
    enum { MAX = 3 * 4096 * 3 + 600 };
    uint8_t *buf = malloc(MAX + 8);
    assert_non_null(buf);
    rng r = {.state = 7};
    rng_fill(&r, buf, MAX + 8);
    static const uint64_t around[] = {0, 1, 7, 8, 9, 1535, 1536, 1537, 12287, 12288, 12289, 24576, 36863, MAX};
    for (size_t i = 0; i < sizeof around / sizeof around[0]; i++) {
        for (uint32_t align = 0; align < 8; align++) {
            uint64_t len = around[i];
            uint32_t seed = (uint32_t)rng_next(&r);
            assert_int_equal(crc32c(seed, buf + align, len), crc32c_portable(seed, buf + align, len));
        }
    }
    for (uint64_t len = 0; len <= 2 * 1536; len++) { /* every short length, the three streams' and after */
        uint32_t seed = (uint32_t)rng_next(&r), align = (uint32_t)rng_below(&r, 8);
        assert_int_equal(crc32c(seed, buf + align, len), crc32c_portable(seed, buf + align, len));
        assert_int_equal(crc32c_without_clmul(seed, buf + align, len), crc32c_portable(seed, buf + align, len));
    }
    for (uint32_t round = 0; round < 200; round++) {
        uint64_t len = rng_below(&r, MAX);
        assert_int_equal(crc32c(0, buf, len), crc32c_portable(0, buf, len));
    }
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_word_helpers_exhaustive),
        cmocka_unit_test(test_variants_agree_with_reference),
        cmocka_unit_test(test_apply_of_diff_is_identity),
        cmocka_unit_test(test_select_honours_environment),
        cmocka_unit_test(test_hash_variants_agree),
        cmocka_unit_test(test_crc32c_agrees_with_table),
        cmocka_unit_test(test_hash_update_streams),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
