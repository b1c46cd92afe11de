/*
 * test_faults.c - I/O failures leave the engine in the documented state:
 * the failing call reports the error, every later writing call is refused
 * with it until the store is reopened, reads keep working, and a reopen
 * recovers every commit acknowledged before the failure. Failures are
 * injected into the writer's I/O layer (write and fdatasync errors, short
 * writes), and a real full file system is used when a tmpfs can be mounted.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "../engine/engine.h"

typedef struct run {
    tu_store s;
    mmsb_options o;
    uint64_t page;
    uint64_t acked_seq; /* last commit that returned 0 */
    char acked_root[33];
} run;

static void run_open(run *r, uint32_t durability) {
    tu_options_small(&r->o);
    r->o.durability = durability;
    r->s = tu_store_open(&r->o);
    TU_OK(mmsb_page_create(r->s.e, 4096, 0, &r->page));
    r->acked_seq = tu_info(r->s.e).commit_seq;
    tu_root_hex(r->s.e, r->acked_root);
}

/* Writes until a call fails; returns its code. */
static int write_until_failure(run *r) {
    for (uint32_t i = 1; i < 10000; i++) {
        uint8_t b[16];
        memset(b, (uint8_t)i, sizeof b);
        mmsb_change ch;
        int rc = mmsb_write(r->s.e, r->page, i % 4000, b, sizeof b, &ch);
        if (rc != 0) return rc;
        r->acked_seq = ch.commit_seq;
        tu_root_hex(r->s.e, r->acked_root);
    }
    fail_msg("no failure happened");
    return 0;
}

/* After the failure: refused writes, working reads, and a reopen that
 * holds every acknowledged commit (and, when `exact`, nothing more). */
static void check_failed_then_reopen(run *r, int code, bool exact) {
    uint8_t b = 0x55, buf[8];
    uint64_t id;
    TU_ERR(mmsb_write(r->s.e, r->page, 0, &b, 1, NULL), code);
    assert_non_null(strstr(mmsb_last_error(), "failed earlier"));
    TU_ERR(mmsb_page_create(r->s.e, 64, 0, &id), code);
    TU_ERR(mmsb_sync(r->s.e), code);
    TU_OK(mmsb_page_read(r->s.e, r->page, 0, buf, sizeof buf, NULL));
    /* Close says it again: what was not durable then may be lost. */
    TU_ERR(mmsb_close(r->s.e), code);
    assert_non_null(strstr(mmsb_last_error(), "may be lost"));
    TU_OK(mmsb_open(r->s.dir, &r->o, &r->s.e));
    mmsb_engineinfo info = tu_info(r->s.e);
    assert_true(info.commit_seq >= r->acked_seq);
    if (exact) {
        assert_int_equal(info.commit_seq, r->acked_seq);
        char root[33];
        tu_root_hex(r->s.e, root);
        assert_string_equal(root, r->acked_root);
    }
    /* And the reopened store takes changes again. */
    TU_OK(mmsb_write(r->s.e, r->page, 0, &b, 1, NULL));
    tu_store_close(&r->s);
}

static void fail_write(uint32_t durability, int errnum, int code) {
    run r;
    run_open(&r, durability);
    io_faults *f = log_faults(r.s.e->log);
    f->writes_ok = 5;
    f->write_errno = errnum;
    assert_int_equal(write_until_failure(&r), code);
    f->write_errno = 0; /* the store's files are fine again; the engine is not */
    check_failed_then_reopen(&r, code, true);
}

static void test_write_eio_sync(void **state) { (void)state; fail_write(MMSB_DURABILITY_SYNC, EIO, MMSB_EIO); }
static void test_write_enospc_sync(void **state) { (void)state; fail_write(MMSB_DURABILITY_SYNC, ENOSPC, MMSB_ENOSPC); }

/* A failed fdatasync: the bytes may or may not have reached the disk, so
 * the failed commit may or may not be there after reopen; the ones before
 * it are. */
static void test_sync_eio(void **state) {
    (void)state;
    run r;
    run_open(&r, MMSB_DURABILITY_SYNC);
    io_faults *f = log_faults(r.s.e->log);
    f->syncs_ok = 4;
    f->sync_errno = EIO;
    assert_int_equal(write_until_failure(&r), MMSB_EIO);
    f->sync_errno = 0;
    check_failed_then_reopen(&r, MMSB_EIO, false);
}

/* In GROUP mode the flusher thread meets the error: the commit already
 * returned, so the error comes from mmsb_wait_durable and every call after. */
static void test_group_flusher_failure(void **state) {
    (void)state;
    run r;
    run_open(&r, MMSB_DURABILITY_GROUP);
    TU_OK(mmsb_sync(r.s.e));
    r.acked_seq = tu_info(r.s.e).durable_seq;
    tu_root_hex(r.s.e, r.acked_root);
    io_faults *f = log_faults(r.s.e->log);
    f->write_errno = EIO;
    uint8_t b = 9;
    mmsb_change ch;
    TU_OK(mmsb_write(r.s.e, r.page, 0, &b, 1, &ch)); /* returns at once */
    TU_ERR(mmsb_wait_durable(r.s.e, ch.commit_seq), MMSB_EIO);
    f->write_errno = 0;
    check_failed_then_reopen(&r, MMSB_EIO, true);
}

/* Many pages in one commit whose write fails: the call reports it, and
 * after the reopen none of the pages exists (the state root is the one of
 * before the call); the store takes changes again. */
static void test_create_many_write_eio(void **state) {
    (void)state;
    run r;
    run_open(&r, MMSB_DURABILITY_SYNC);
    io_faults *f = log_faults(r.s.e->log);
    f->write_errno = EIO;
    uint64_t first;
    TU_ERR(mmsb_page_create_many(r.s.e, 4096, 0, 5000, &first), MMSB_EIO);
    f->write_errno = 0;
    check_failed_then_reopen(&r, MMSB_EIO, true); /* the root of before the call, exactly */
}

/* Writes cut short by the kernel are resubmitted until complete. */
static void test_short_writes_complete(void **state) {
    (void)state;
    run r;
    run_open(&r, MMSB_DURABILITY_SYNC);
    log_faults(r.s.e->log)->short_write_max = 7;
    uint8_t buf[3000];
    rng g = {.state = 4};
    for (int i = 0; i < 20; i++) {
        rng_fill(&g, buf, sizeof buf);
        TU_OK(mmsb_write(r.s.e, r.page, rng_below(&g, 1000), buf, sizeof buf, NULL));
    }
    char before[33], after[33];
    tu_root_hex(r.s.e, before);
    assert_true(tu_info(r.s.e).log_writes > 20 * 3000 / 7);
    TU_OK(mmsb_close(r.s.e));
    TU_OK(mmsb_open(r.s.dir, &r.o, &r.s.e));
    tu_root_hex(r.s.e, after);
    assert_string_equal(before, after);
    tu_store_close(&r.s);
}

/* io_uring takes a round's requests and runs none of them (seen once, in
 * the kernel): the round is cancelled after the stall time and done again
 * with pwrite + fdatasync, which the store keeps using; every commit is
 * there after reopen. */
static void test_uring_stall_falls_back(void **state) {
    (void)state;
    run r;
    run_open(&r, MMSB_DURABILITY_SYNC);
    if (strcmp(tu_info(r.s.e).io_backend, "io_uring") != 0) {
        tu_store_close(&r.s);
        skip(); /* MMSB_IO=sync or no io_uring here: nothing to stall */
    }
    io_faults *f = log_faults(r.s.e->log);
    f->uring_stall_ms = 50;
    f->uring_stalls = 1;
    uint8_t buf[3000];
    rng g = {.state = 5};
    for (int i = 0; i < 20; i++) {
        rng_fill(&g, buf, sizeof buf);
        TU_OK(mmsb_write(r.s.e, r.page, rng_below(&g, 1000), buf, sizeof buf, NULL));
    }
    assert_int_equal(f->uring_stalls, 0);
    mmsb_engineinfo info = tu_info(r.s.e);
    assert_string_equal(info.io_backend, "sync");
    assert_non_null(strstr(info.io_reason, "stalled"));
    assert_int_equal(info.durable_seq, info.commit_seq);
    char before[33], after[33];
    tu_root_hex(r.s.e, before);
    TU_OK(mmsb_close(r.s.e));
    TU_OK(mmsb_open(r.s.dir, &r.o, &r.s.e));
    tu_root_hex(r.s.e, after);
    assert_string_equal(before, after);
    assert_string_equal(tu_info(r.s.e).io_backend, "io_uring"); /* a new open probes again */
    tu_store_close(&r.s);
}

/* A real full file system: the log's next segment cannot be allocated. */
static void test_full_filesystem(void **state) {
    (void)state;
    char *mnt = tu_tmpfs_new("6m");
    if (mnt == NULL) return;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/store", mnt);
    mmsb_options o;
    tu_options_small(&o);
    o.durability = MMSB_DURABILITY_SYNC;
    mmsb_engine *e = tu_open(dir, &o);
    uint64_t id;
    TU_OK(mmsb_page_create(e, 5u << 20, 0, &id));
    char root[33];
    tu_root_hex(e, root);
    uint64_t acked = tu_info(e).commit_seq;
    uint8_t *buf = malloc(5u << 20);
    memset(buf, 0x77, 5u << 20);
    TU_ERR(mmsb_write(e, id, 0, buf, 5u << 20, NULL), MMSB_ENOSPC);
    TU_ERR(mmsb_write(e, id, 0, buf, 1, NULL), MMSB_ENOSPC);
    TU_ERR(mmsb_close(e), MMSB_ENOSPC);
    TU_OK(mmsb_open(dir, &o, &e));
    assert_int_equal(tu_info(e).commit_seq, acked);
    char again[33];
    tu_root_hex(e, again);
    assert_string_equal(root, again);
    /* Small changes still fit in the first segment. */
    TU_OK(mmsb_write(e, id, 0, buf, 1000, NULL));
    TU_OK(mmsb_close(e));
    free(buf);
    tu_tmpfs_remove(mnt);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_eio_sync),
        cmocka_unit_test(test_write_enospc_sync),
        cmocka_unit_test(test_sync_eio),
        cmocka_unit_test(test_group_flusher_failure),
        cmocka_unit_test(test_short_writes_complete),
        cmocka_unit_test(test_create_many_write_eio),
        cmocka_unit_test(test_uring_stall_falls_back),
        cmocka_unit_test(test_full_filesystem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
