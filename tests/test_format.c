/*
 * test_format.c - every record encoder of tlog/format.c is the exact
 * inverse of its decoder: fields encoded then decoded come back equal, and
 * the payload has the size FORMAT.md gives it.
 */
#include <string.h>

#include "testutil.h"
#include "../tlog/format.h"

static const kern_ops *kernels(void) {
    const kern_ops *k = NULL;
    assert_int_equal(kern_select(MMSB_KERNEL_PORTABLE, &k), 0);
    return k;
}

static log_rec rec_of(uint16_t type, const uint8_t *payload, uint64_t len) {
    return (log_rec){.type = type, .length = (uint32_t)len, .seq = 1000, .payload = payload};
}

static void test_fixed_records(void **state) {
    (void)state;
    uint8_t b[CREATE_REC_BYTES];
    uint64_t a, c;
    uint32_t f;
    rec_encode_create(b, 7, 4096, 0);
    log_rec r = rec_of(REC_PAGE_CREATE, b, sizeof b);
    TU_OK(rec_decode_create(&r, &a, &c, &f));
    assert_true(a == 7 && c == 4096 && f == 0);
    rec_encode_free(b, 9);
    r = rec_of(REC_PAGE_FREE, b, FREE_REC_BYTES);
    TU_OK(rec_decode_free(&r, &a));
    assert_int_equal(a, 9);
    rec_encode_underive(b, 11);
    r = rec_of(REC_UNDERIVE, b, UNDERIVE_REC_BYTES);
    TU_OK(rec_decode_underive(&r, &a));
    assert_int_equal(a, 11);
    rec_encode_edge(b, 3, 4);
    r = rec_of(REC_EDGE_ADD, b, EDGE_REC_BYTES);
    TU_OK(rec_decode_edge(&r, &a, &c));
    assert_true(a == 3 && c == 4);
    rec_encode_abort(b, 990);
    r = rec_of(REC_ABORT, b, ABORT_REC_BYTES);
    TU_OK(rec_decode_abort(&r, &a));
    assert_int_equal(a, 990);
    rec_encode_seal(b, 5, 1 << 20);
    r = rec_of(REC_SEAL, b, SEAL_REC_BYTES);
    TU_OK(rec_decode_seal(&r, &a, &c));
    assert_true(a == 5 && c == 1 << 20);
}

static void test_derive_record(void **state) {
    (void)state;
    uint8_t params[5] = {1, 2, 3, 4, 5};
    rec_derive in = {.child = 12, .op = 3, .op_version = 2, .parent_count = 3, .params_len = 5, .params = params};
    uint8_t b[128];
    uint64_t len = rec_derive_bytes(3, 5);
    assert_int_equal(len, DERIVE_FIXED_BYTES + 24 + 5);
    rec_encode_derive(b, &in);
    for (uint32_t k = 0; k < 3; k++) rec_encode_derive_parent(b, k, 100 + k);
    log_rec r = rec_of(REC_DERIVE, b, len);
    rec_derive out;
    TU_OK(rec_decode_derive(&r, &out));
    assert_true(out.child == 12 && out.op == 3 && out.op_version == 2 && out.flags == 0);
    assert_true(out.parent_count == 3 && out.params_len == 5);
    for (uint32_t k = 0; k < 3; k++) assert_int_equal(get_le64(out.parents + 8 * k), 100 + k);
    assert_memory_equal(out.params, params, 5);
}

static void test_delta_records(void **state) {
    (void)state;
    const kern_ops *k = kernels();
    uint8_t b[DERIVED_FIXED_BYTES + 64];
    rec_delta in = {.page_id = 5, .epoch = 8, .offset = 4000, .len = 16, .form = DELTA_FULL};
    uint32_t fixed = rec_encode_delta_fixed(b, &in, NULL);
    assert_int_equal(fixed, DELTA_FIXED_BYTES);
    memset(b + fixed, 0x5a, 16);
    log_rec r = rec_of(REC_DELTA, b, fixed + 16);
    rec_delta out;
    TU_OK(rec_decode_delta(&r, k, &out));
    assert_true(out.page_id == 5 && out.epoch == 8 && out.offset == 4000 && out.len == 16);
    assert_true(out.form == DELTA_FULL && out.bytes_len == 16 && out.bytes == b + fixed);
    h128 sig = {.lo = 0x1234, .hi = 0x5678};
    in.form = DELTA_SPARSE;
    fixed = rec_encode_delta_fixed(b, &in, &sig);
    assert_int_equal(fixed, DERIVED_FIXED_BYTES);
    b[fixed] = 0x81; /* bytes 0 and 7 */
    b[fixed + 1] = 0;
    b[fixed + 2] = 0xaa;
    b[fixed + 3] = 0xbb;
    r = rec_of(REC_DERIVED, b, fixed + 4);
    rec_derived dd;
    TU_OK(rec_decode_derived(&r, k, &dd));
    assert_true(dd.signature.lo == sig.lo && dd.signature.hi == sig.hi && dd.d.form == DELTA_SPARSE);
    assert_true(dd.d.bytes_len == 2 && dd.d.mask == b + fixed);
    rec_delta none = {.page_id = 5, .epoch = 8, .form = DELTA_NONE};
    assert_int_equal(rec_encode_delta_fixed(b, &none, &sig), DERIVED_FIXED_BYTES);
    r = rec_of(REC_DERIVED, b, DERIVED_FIXED_BYTES);
    TU_OK(rec_decode_derived(&r, k, &dd));
    assert_int_equal(dd.d.form, DELTA_NONE);
}

static void test_commit_record(void **state) {
    (void)state;
    uint8_t b[COMMIT_FIXED_BYTES + COMMIT_ROOT_BYTES];
    h128 root = {.lo = 1, .hi = 2}, chain = {.lo = 3, .hi = 4};
    rec_commit in = {.first_seq = 990, .durable_hint = 900, .flags = COMMIT_HAS_ROOT, .record_count = 10};
    rec_encode_commit(b, &in, &root);
    rec_encode_commit_chain(b, chain);
    log_rec r = rec_of(REC_COMMIT, b, sizeof b);
    rec_commit out;
    TU_OK(rec_decode_commit(&r, &out));
    assert_true(out.first_seq == 990 && out.durable_hint == 900 && out.record_count == 10);
    assert_true(out.root.lo == 1 && out.root.hi == 2 && out.chain.lo == 3 && out.chain.hi == 4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_records),
        cmocka_unit_test(test_derive_record),
        cmocka_unit_test(test_delta_records),
        cmocka_unit_test(test_commit_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
