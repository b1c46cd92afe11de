/*
 * test_readonly.c - read-only opens (MMSB_OPEN_READONLY):
 * - a closed store opens read-only to the same pages, epochs and state root,
 *   and every writing call fails with MMSB_EREADONLY, changing nothing;
 * - bad flag combinations and a directory without a store are refused;
 * - a reader process opens the store again and again while a writer process
 *   writes, checkpoints and removes old log segments: every open succeeds
 *   and sees whole commits only (every byte of a page equals its epoch).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static mmsb_engine *open_ro(const char *dir) {
    mmsb_options o;
    tu_options_small(&o);
    o.flags = MMSB_OPEN_READONLY;
    mmsb_engine *e = NULL;
    TU_OK(mmsb_open(dir, &o, &e));
    return e;
}

static void fill_store(mmsb_engine *e, uint64_t ids[4]) {
    for (int i = 0; i < 4; i++) TU_OK(mmsb_page_create(e, 8192, 0, &ids[i]));
    uint8_t buf[100];
    for (int round = 0; round < 20; round++) {
        memset(buf, round + 1, sizeof buf);
        TU_OK(mmsb_write(e, ids[round % 4], (uint64_t)round * 50, buf, sizeof buf, NULL));
        if (round == 10) TU_OK(mmsb_checkpoint(e));
    }
    uint64_t parents[1] = {ids[0]};
    mmsb_derive_spec spec = {.struct_size = sizeof spec, .op = MMSB_OP_COPY, .parents = parents, .parent_count = 1};
    TU_OK(mmsb_derive(e, ids[3], &spec, NULL));
}

static void test_readonly_matches_writer(void **state) {
    (void)state;
    tu_store s = tu_store_open(NULL);
    uint64_t ids[4];
    fill_store(s.e, ids);
    char want[33];
    tu_root_hex(s.e, want);
    TU_OK(mmsb_close(s.e));
    s.e = NULL;

    mmsb_engine *r = open_ro(s.dir);
    char got[33];
    tu_root_hex(r, got);
    assert_string_equal(got, want);
    mmsb_engineinfo info = tu_info(r);
    assert_int_equal(info.pages_live, 4);
    assert_int_equal(info.derived_pages, 1);
    assert_int_equal(info.recovered_from_checkpoint, 1);
    assert_true(info.commit_seq > 0);
    assert_string_equal(info.io_backend, "none");
    uint8_t b[8];
    uint64_t epoch = 0;
    TU_OK(mmsb_page_read(r, ids[1], 50, b, sizeof b, &epoch));
    assert_int_equal(b[0], 2);
    assert_true(epoch > 0);

    /* Every writing call is refused and changes nothing. */
    uint64_t id;
    TU_ERR(mmsb_page_create(r, 4096, 0, &id), MMSB_EREADONLY);
    TU_ERR(mmsb_page_create_many(r, 4096, 0, 10, &id), MMSB_EREADONLY);
    TU_ERR(mmsb_page_free(r, ids[1]), MMSB_EREADONLY);
    TU_ERR(mmsb_write(r, ids[1], 0, b, sizeof b, NULL), MMSB_EREADONLY);
    uint8_t mask = 1;
    mmsb_delta d = {.page_id = ids[1], .len = 1, .mask = &mask, .payload = b, .payload_len = 1};
    TU_ERR(mmsb_apply(r, &d, NULL), MMSB_EREADONLY);
    TU_ERR(mmsb_apply_batch(r, &d, 1, 0, NULL), MMSB_EREADONLY);
    mmsb_txn *t = NULL;
    TU_ERR(mmsb_txn_begin(r, &t), MMSB_EREADONLY);
    assert_null(t);
    TU_ERR(mmsb_underive(r, ids[3], NULL), MMSB_EREADONLY);
    TU_ERR(mmsb_edge_add(r, ids[1], ids[3], NULL), MMSB_EREADONLY);
    TU_ERR(mmsb_checkpoint(r), MMSB_EREADONLY);
    TU_ERR(mmsb_set_durability(r, MMSB_DURABILITY_NONE), MMSB_EREADONLY);
    assert_non_null(strstr(mmsb_last_error(), "READONLY"));
    TU_OK(mmsb_sync(r));
    TU_OK(mmsb_wait_durable(r, info.commit_seq));
    TU_ERR(mmsb_wait_durable(r, info.commit_seq + 1), MMSB_EINVAL);
    tu_root_hex(r, got);
    assert_string_equal(got, want);

    TU_OK(mmsb_close(r));
    tu_store_close(&s);
}

static void test_readonly_refusals(void **state) {
    (void)state;
    mmsb_options o;
    tu_options_small(&o);
    char *dir = tu_dir_new();
    mmsb_engine *e = NULL;
    o.flags = MMSB_OPEN_READONLY | MMSB_OPEN_CREATE;
    TU_ERR(mmsb_open(dir, &o, &e), MMSB_EINVAL);
    o.flags = MMSB_OPEN_READONLY | MMSB_OPEN_SALVAGE;
    TU_ERR(mmsb_open(dir, &o, &e), MMSB_EINVAL);
    o.flags = MMSB_OPEN_READONLY;
    TU_ERR(mmsb_open(dir, &o, &e), MMSB_ENOTFOUND);
    assert_non_null(strstr(mmsb_last_error(), "no MMSB store"));
    char missing[4200];
    snprintf(missing, sizeof missing, "%s/nothing-here", dir);
    TU_ERR(mmsb_open(missing, &o, &e), MMSB_ENOTFOUND);
    assert_null(e);
    tu_dir_remove(dir);
}

/* A store without a checkpoint yet: the read-only open replays the log. */
static void test_readonly_without_checkpoint(void **state) {
    (void)state;
    tu_store s = tu_store_open(NULL);
    uint64_t id;
    TU_OK(mmsb_page_create(s.e, 4096, 0, &id));
    uint8_t b[16];
    memset(b, 7, sizeof b);
    TU_OK(mmsb_write(s.e, id, 0, b, sizeof b, NULL));
    TU_OK(mmsb_sync(s.e));
    tu_checkpoint_remove(s.dir); /* as if none was ever written */
    mmsb_engine *r = open_ro(s.dir);
    mmsb_engineinfo info = tu_info(r);
    assert_int_equal(info.pages_live, 1);
    assert_int_equal(info.recovered_from_checkpoint, 0);
    char a[33], c[33];
    tu_root_hex(r, a);
    tu_root_hex(s.e, c);
    assert_string_equal(a, c);
    TU_OK(mmsb_close(r));
    tu_store_close(&s);
}

enum { LIVE_PAGES = 8, LIVE_PAGE_BYTES = 65536, LIVE_READS = 40 };

/* The writer: every commit rewrites a page with its new epoch's byte. */
static void live_writer(const char *dir, void *ctx, int ready) {
    (void)ctx;
    mmsb_options o;
    tu_options_small(&o);
    o.checkpoint_log_bytes = 1u << 20; /* many checkpoints, and segments removed */
    mmsb_engine *e = tu_open(dir, &o);
    uint64_t ids[LIVE_PAGES];
    for (int i = 0; i < LIVE_PAGES; i++) TU_OK(mmsb_page_create(e, LIVE_PAGE_BYTES, 0, &ids[i]));
    TU_OK(mmsb_checkpoint(e));
    tu_child_ready(ready);
    static uint8_t buf[LIVE_PAGE_BYTES];
    for (uint64_t n = 0;; n++) {
        uint64_t id = ids[n % LIVE_PAGES];
        mmsb_pageinfo pi = {.struct_size = sizeof pi};
        TU_OK(mmsb_page_info(e, id, &pi));
        memset(buf, (int)((pi.epoch + 1) % 256), sizeof buf);
        if (mmsb_write(e, id, 0, buf, sizeof buf, NULL) != 0) _exit(4);
    }
}

static void check_pages(mmsb_engine *r) {
    static uint8_t buf[LIVE_PAGE_BYTES];
    for (uint64_t id = 1; id <= LIVE_PAGES; id++) {
        uint64_t epoch;
        TU_OK(mmsb_page_read(r, id, 0, buf, sizeof buf, &epoch));
        for (uint32_t i = 0; i < LIVE_PAGE_BYTES; i++) {
            if (buf[i] != (uint8_t)epoch)
                fail_msg("page %llu byte %u is %u at epoch %llu", (unsigned long long)id, i, buf[i],
                         (unsigned long long)epoch);
        }
    }
}

static void test_readonly_beside_live_writer(void **state) {
    (void)state;
    char *dir = tu_dir_new();
    int pid = tu_child_start(live_writer, dir, NULL);
    uint64_t seq_before = 0, checkpoints_seen = 0, last_ck = 0;
    for (int i = 0; i < LIVE_READS; i++) {
        mmsb_engine *r = open_ro(dir);
        mmsb_engineinfo info = tu_info(r);
        assert_true(info.commit_seq >= seq_before); /* never goes back */
        seq_before = info.commit_seq;
        if (info.checkpoint_number != last_ck) checkpoints_seen++;
        last_ck = info.checkpoint_number;
        check_pages(r);
        TU_OK(mmsb_close(r));
        usleep(20000);
    }
    tu_child_kill(pid); /* the writer was still writing */
    assert_true(checkpoints_seen >= 2);
    tu_dir_remove(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readonly_matches_writer),
        cmocka_unit_test(test_readonly_refusals),
        cmocka_unit_test(test_readonly_without_checkpoint),
        cmocka_unit_test(test_readonly_beside_live_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
