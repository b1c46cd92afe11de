/*
 * test_api.c - every public function, its happy path and each way to call it
 * wrongly. After every rejected call the test checks that nothing changed:
 * not the bytes, not the epochs, not the state root.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "../engine/engine.h"

typedef struct fixture {
    tu_store store;
    mmsb_engine *e;
    uint64_t page;  /* a 4 KiB page */
    uint64_t big;   /* a 3-chunk page */
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    f->store = tu_store_open(NULL);
    f->e = f->store.e;
    TU_OK(mmsb_page_create(f->e, 4096, 0, &f->page));
    TU_OK(mmsb_page_create(f->e, 3 * 4096 - 5, 0, &f->big));
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    tu_store_close(&f->store);
    free(f);
    return 0;
}

/* Everything a call could change, to compare before and after. */
typedef struct snapshot {
    char root[33];
    uint64_t epoch_page, epoch_big, commit_seq;
    uint8_t bytes[4096];
} snapshot;

static void snap(fixture *f, snapshot *s) {
    memset(s, 0, sizeof *s); /* padding too: snapshots are compared bytewise */
    tu_root_hex(f->e, s->root);
    TU_OK(mmsb_page_read(f->e, f->page, 0, s->bytes, sizeof s->bytes, &s->epoch_page));
    mmsb_pageinfo info = {.struct_size = sizeof info};
    TU_OK(mmsb_page_info(f->e, f->big, &info));
    s->epoch_big = info.epoch;
    mmsb_engineinfo ei = {.struct_size = sizeof ei};
    TU_OK(mmsb_engine_info(f->e, &ei));
    s->commit_seq = ei.commit_seq;
}

static void assert_unchanged(fixture *f, const snapshot *before) {
    snapshot after;
    snap(f, &after);
    assert_memory_equal(before, &after, sizeof after);
}

/* Runs a call expected to fail with `code`, then checks nothing changed. */
#define REJECTED(f, expr, code)                                                    \
    do {                                                                           \
        snapshot before_;                                                          \
        snap((f), &before_);                                                       \
        TU_ERR((expr), (code));                                                    \
        assert_true(strlen(mmsb_last_error()) > 0);                                \
        assert_unchanged((f), &before_);                                           \
    } while (0)

/* ---- versions and errors ----------------------------------------------------- */

static void test_version(void **state) {
    (void)state;
    int major = -1, minor = -1, patch = -1;
    assert_string_equal(mmsb_version(&major, &minor, &patch), MMSB_VERSION_STRING);
    assert_int_equal(major, MMSB_VERSION_MAJOR);
    assert_int_equal(minor, MMSB_VERSION_MINOR);
    assert_int_equal(patch, MMSB_VERSION_PATCH);
    assert_non_null(mmsb_version(NULL, NULL, NULL));
    assert_int_equal(mmsb_abi_version(), MMSB_ABI_VERSION);
}

static void test_strerror(void **state) {
    (void)state;
    for (int code = MMSB_ERRCODE_LAST; code <= MMSB_ERRCODE_FIRST; code++) {
        const char *text = mmsb_strerror(code);
        assert_non_null(text);
        assert_null(strstr(text, "unknown"));
        for (int other = code + 1; other <= MMSB_ERRCODE_FIRST; other++) {
            assert_string_not_equal(text, mmsb_strerror(other));
        }
    }
    assert_string_equal(mmsb_strerror(0), "success");
    assert_string_equal(mmsb_strerror(-ENOENT), mmsb_strerror(ENOENT));
    assert_non_null(strstr(mmsb_strerror(-ENOENT), "No such file"));
    assert_string_equal(mmsb_strerror(-31000), "unknown error code");
    assert_string_equal(mmsb_strerror(-100000), "unknown error code");
}

/* ---- options and open ---------------------------------------------------------- */

/* What a program built against a newer header would pass. */
typedef struct options_next {
    mmsb_options v1;
    uint64_t future_field;
} options_next;

static void test_options_init(void **state) {
    (void)state;
    mmsb_options o;
    TU_ERR(mmsb_options_init(NULL, sizeof o, MMSB_ABI_VERSION), MMSB_EINVAL);
    const size_t v1 = offsetof(mmsb_options, replication_servers); /* 0.1's struct */
    TU_ERR(mmsb_options_init(&o, (uint32_t)v1 - 8, MMSB_ABI_VERSION), MMSB_EINVAL);
    TU_OK(MMSB_OPTIONS_INIT(&o));
    assert_int_equal(o.struct_size, sizeof o);
    assert_int_equal(o.abi_version, MMSB_ABI_VERSION);
    assert_int_equal(o.flags, MMSB_OPEN_CREATE);
    assert_int_equal(o.kernel, MMSB_KERNEL_AUTO);
    assert_int_equal(o.arena_bytes_max, 8ull << 30);
    assert_int_equal(o.pages_max, 1ull << 28);

    options_next next;
    memset(&next, 0xEE, sizeof next);
    TU_OK(mmsb_options_init(&next.v1, sizeof next, MMSB_ABI_VERSION));
    assert_int_equal(next.v1.struct_size, sizeof next);
    assert_int_equal(next.future_field, 0);

    /* A caller built with 0.1's header: its smaller structs still work. */
    memset(&o, 0xEE, sizeof o);
    TU_OK(mmsb_options_init(&o, (uint32_t)v1, MMSB_ABI_VERSION));
    assert_int_equal(o.struct_size, v1);
    assert_int_equal(((uint8_t *)&o)[v1], 0xEE); /* nothing written past its struct */
    char *dir = tu_dir_new();
    mmsb_options small;
    tu_options_small(&small);
    memcpy(&o, &small, v1);
    o.struct_size = (uint32_t)v1;
    memset((uint8_t *)&o + v1, 0xEE, sizeof o - v1); /* garbage where 0.1 had nothing */
    mmsb_engine *e = NULL;
    TU_OK(mmsb_open(dir, &o, &e));
    mmsb_engineinfo info;
    memset(&info, 0xEE, sizeof info);
    info.struct_size = (uint32_t)offsetof(mmsb_engineinfo, replicated_seq);
    TU_OK(mmsb_engine_info(e, &info));
    assert_int_equal(info.replicated_seq, 0xEEEEEEEEEEEEEEEEull); /* past its struct: untouched */
    info.struct_size = sizeof info;
    TU_OK(mmsb_engine_info(e, &info));
    assert_string_equal(info.replication, "off");
    TU_OK(mmsb_close(e));
    tu_dir_remove(dir);
}

static void test_replication_options_are_checked(void **state) {
    (void)state;
    char *dir = tu_dir_new();
    mmsb_engine *e = NULL;
    mmsb_options o;
    tu_options_small(&o);
    o.replication_servers = "nats://127.0.0.1:1";
    TU_ERR(mmsb_open(dir, &o, &e), MMSB_EINVAL); /* no stream */
    o.replication_stream = "bad name";
    TU_ERR(mmsb_open(dir, &o, &e), MMSB_EINVAL);
    o.replication_stream = "s";
    o.replication_timeout_ms = 0;
    TU_ERR(mmsb_open(dir, &o, &e), MMSB_EINVAL);
    o.replication_timeout_ms = 100;
    o.replication_create = 6;
    TU_ERR(mmsb_open(dir, &o, &e), MMSB_EINVAL);
    o.replication_create = 0;
    o.flags = MMSB_OPEN_READONLY;
    TU_ERR(mmsb_open(dir, &o, &e), MMSB_EINVAL); /* readers publish nothing */
    tu_options_small(&o);
    o.durability = MMSB_DURABILITY_REPLICATED;
    TU_ERR(mmsb_open(dir, &o, &e), MMSB_EINVAL); /* REPLICATED needs a stream */
    o.durability = MMSB_DURABILITY_REPLICATED + 1;
    TU_ERR(mmsb_open(dir, &o, &e), MMSB_EINVAL);
    /* Nothing listening: the open fails with the NATS words, and leaves nothing behind it. */
    tu_options_small(&o);
    o.replication_servers = "nats://127.0.0.1:1";
    o.replication_stream = "s";
    o.replication_timeout_ms = 200;
    TU_ERR(mmsb_open(dir, &o, &e), MMSB_EREPLICA);
    assert_non_null(strstr(mmsb_last_error(), "NATS"));
    assert_null(e);
    tu_options_small(&o);
    e = tu_open(dir, &o);
    TU_ERR(mmsb_wait_replicated(e, 1), MMSB_EINVAL);
    TU_ERR(mmsb_set_durability(e, MMSB_DURABILITY_REPLICATED), MMSB_EINVAL);
    TU_ERR(mmsb_wait_replicated(NULL, 1), MMSB_EINVAL);
    TU_OK(mmsb_close(e));
    mmsb_replica *r = (mmsb_replica *)0x1;
    TU_ERR(mmsb_replica_open(NULL, "x", "s", &r), MMSB_EINVAL);
    TU_ERR(mmsb_replica_open(dir, "nats://127.0.0.1:1", "s", &r), MMSB_EINVAL); /* a store, not a replica */
    TU_ERR(mmsb_replica_poll(NULL, 1, NULL), MMSB_EINVAL);
    TU_OK(mmsb_replica_close(NULL));
    TU_ERR(mmsb_promote(dir, NULL, 0), MMSB_EINVAL); /* not a replica */
    TU_ERR(mmsb_promote(dir, NULL, 0x80), MMSB_EINVAL);
    TU_ERR(mmsb_promote(NULL, NULL, 0), MMSB_EINVAL);
    tu_dir_remove(dir);
}

static void test_open_rejects_bad_options(void **state) {
    (void)state;
    char *dir = tu_dir_new();
    mmsb_engine *e = (mmsb_engine *)0x1;
    mmsb_options o;
    tu_options_small(&o);
    TU_ERR(mmsb_open(dir, NULL, &e), MMSB_EINVAL);
    assert_null(e);
    TU_ERR(mmsb_open(NULL, &o, &e), MMSB_EINVAL);
    TU_ERR(mmsb_open("", &o, &e), MMSB_EINVAL);
    TU_ERR(mmsb_open(dir, &o, NULL), MMSB_EINVAL);

    mmsb_options bad = o;
    bad.abi_version = MMSB_ABI_VERSION + 1;
    TU_ERR(mmsb_open(dir, &bad, &e), MMSB_EVERSION);
    assert_non_null(strstr(mmsb_last_error(), "ABI"));
    bad = o, bad.struct_size = 8;
    TU_ERR(mmsb_open(dir, &bad, &e), MMSB_EINVAL);
    bad = o, bad.flags = 0x80;
    TU_ERR(mmsb_open(dir, &bad, &e), MMSB_EINVAL);
    bad = o, bad.kernel = 17;
    TU_ERR(mmsb_open(dir, &bad, &e), MMSB_EINVAL);
    bad = o, bad.gpu = 9;
    TU_ERR(mmsb_open(dir, &bad, &e), MMSB_EINVAL);
    bad = o, bad.reserved0 = 1;
    TU_ERR(mmsb_open(dir, &bad, &e), MMSB_EINVAL);
    bad = o, bad.arena_bytes_max = 4096;
    TU_ERR(mmsb_open(dir, &bad, &e), MMSB_EINVAL);
    bad = o, bad.arena_bytes_max = 1ull << 62;
    TU_ERR(mmsb_open(dir, &bad, &e), MMSB_EINVAL);
    bad = o, bad.arena_grow_bytes = 100;
    TU_ERR(mmsb_open(dir, &bad, &e), MMSB_EINVAL);
    bad = o, bad.arena_prefault_bytes = o.arena_bytes_max + 4096;
    TU_ERR(mmsb_open(dir, &bad, &e), MMSB_EINVAL);
    bad = o, bad.page_bytes_max = 0;
    TU_ERR(mmsb_open(dir, &bad, &e), MMSB_EINVAL);
    bad = o, bad.page_bytes_max = o.arena_bytes_max + 1;
    TU_ERR(mmsb_open(dir, &bad, &e), MMSB_EINVAL);
    bad = o, bad.pages_max = 0;
    TU_ERR(mmsb_open(dir, &bad, &e), MMSB_EINVAL);
    bad = o, bad.pages_max = (1ull << 32) + 1;
    TU_ERR(mmsb_open(dir, &bad, &e), MMSB_EINVAL);

    /* A newer header's struct: fine while its extra fields are zero. */
    options_next next;
    TU_OK(mmsb_options_init(&next.v1, sizeof next, MMSB_ABI_VERSION));
    next.v1.arena_bytes_max = o.arena_bytes_max;
    next.v1.page_bytes_max = o.page_bytes_max;
    next.v1.pages_max = o.pages_max;
    next.v1.gpu = MMSB_GPU_OFF;
    TU_OK(mmsb_open(dir, &next.v1, &e));
    TU_OK(mmsb_close(e));
    next.future_field = 5;
    TU_ERR(mmsb_open(dir, &next.v1, &e), MMSB_ENOTSUP);
    tu_dir_remove(dir);
}

static void test_open_directory_rules(void **state) {
    (void)state;
    char *dir = tu_dir_new();
    char path[4096];
    mmsb_options o;
    tu_options_small(&o);
    mmsb_engine *e = NULL, *e2 = NULL;

    snprintf(path, sizeof path, "%s/missing", dir);
    o.flags = 0;
    TU_ERR(mmsb_open(path, &o, &e), MMSB_ENOTFOUND);
    assert_non_null(strstr(mmsb_last_error(), "MMSB_OPEN_CREATE"));
    o.flags = MMSB_OPEN_CREATE;
    TU_OK(mmsb_open(path, &o, &e));
    /* One engine per store: a second open is refused, also in-process. */
    TU_ERR(mmsb_open(path, &o, &e2), MMSB_EBUSY);
    assert_null(e2);
    TU_OK(mmsb_close(e));
    TU_OK(mmsb_open(path, &o, &e2));
    TU_OK(mmsb_close(e2));

    snprintf(path, sizeof path, "%s/file", dir);
    FILE *fp = fopen(path, "w");
    fclose(fp);
    TU_ERR(mmsb_open(path, &o, &e), MMSB_EINVAL);
    snprintf(path, sizeof path, "%s/no/such/parent", dir);
    TU_ERR(mmsb_open(path, &o, &e), MMSB_ENOTFOUND);
    assert_int_equal(mmsb_close(NULL), 0);
    tu_dir_remove(dir);
}

static void test_engine_info(void **state) {
    fixture *f = *state;
    mmsb_engineinfo info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    TU_OK(mmsb_engine_info(f->e, &info));
    assert_int_equal(info.pages_live, 2);
    assert_int_equal(info.page_id_next, 3);
    /* Two creates: PAGE_CREATE 1, COMMIT 2, PAGE_CREATE 3, COMMIT 4. */
    assert_int_equal(info.commit_seq, 4);
    assert_true(strcmp(info.io_backend, "io_uring") == 0 || strcmp(info.io_backend, "sync") == 0);
    assert_true(strlen(info.io_reason) > 0);
    assert_int_equal(info.durability, MMSB_DURABILITY_NONE);
    assert_string_equal(info.recovery_detail, "new store");
    assert_int_equal(info.pages_max, 1 << 16);
    assert_true(info.arena_bytes_used >= 4096 + 3 * 4096);
    assert_true(info.arena_bytes_faulted >= info.arena_bytes_used);
    /* Pre-faulting at open shows in the faulted bytes before any create. */
    mmsb_options o;
    tu_options_small(&o);
    o.arena_prefault_bytes = 3 << 20;
    tu_store s = tu_store_open(&o);
    TU_OK(mmsb_engine_info(s.e, &info));
    assert_true(info.arena_bytes_faulted >= 3 << 20);
    assert_int_equal(info.arena_bytes_used, 0);
    tu_store_close(&s);
    assert_true(strlen(info.kernel) > 0);
    if (tu_gpu() == MMSB_GPU_OFF) assert_string_equal(info.gpu, "off (MMSB_GPU_OFF)");
    info.struct_size = 4;
    TU_ERR(mmsb_engine_info(f->e, &info), MMSB_EINVAL);
    TU_ERR(mmsb_engine_info(f->e, NULL), MMSB_EINVAL);
    TU_ERR(mmsb_engine_info(NULL, &info), MMSB_EINVAL);
}

/* ---- pages ------------------------------------------------------------------------ */

static void test_page_create(void **state) {
    fixture *f = *state;
    uint64_t id;
    TU_OK(mmsb_page_create(f->e, 100, 0, &id));
    assert_int_equal(id, 3);
    const void *data;
    uint64_t size, epoch;
    TU_OK(mmsb_page_view(f->e, id, &data, &size, &epoch));
    assert_int_equal(size, 100);
    assert_int_equal(epoch, 0);
    assert_int_equal((uintptr_t)data % 64, 0);
    for (uint64_t i = 0; i < size; i++) assert_int_equal(((const uint8_t *)data)[i], 0);
    TU_OK(mmsb_page_view(f->e, f->big, &data, &size, &epoch));
    assert_int_equal((uintptr_t)data % 4096, 0);

    REJECTED(f, mmsb_page_create(f->e, 0, 0, &id), MMSB_EINVAL);
    REJECTED(f, mmsb_page_create(f->e, (64 << 20) + 1, 0, &id), MMSB_EINVAL);
    REJECTED(f, mmsb_page_create(f->e, 64, MMSB_PAGE_HOST | MMSB_PAGE_DEVICE, &id), MMSB_EINVAL);
    REJECTED(f, mmsb_page_create(f->e, 64, 4, &id), MMSB_EINVAL);
    REJECTED(f, mmsb_page_create(f->e, 64, 0, NULL), MMSB_EINVAL);
    REJECTED(f, mmsb_page_create(NULL, 64, 0, &id), MMSB_EINVAL);
}

static void test_page_create_reused_space_is_zero(void **state) {
    fixture *f = *state;
    uint8_t ones[8192];
    memset(ones, 0xFF, sizeof ones);
    uint64_t a, b, c;
    TU_OK(mmsb_page_create(f->e, 8192, 0, &a));
    TU_OK(mmsb_page_create(f->e, 300, 0, &c));
    TU_OK(mmsb_write(f->e, a, 0, ones, 8192, NULL));
    TU_OK(mmsb_write(f->e, c, 0, ones, 300, NULL));
    TU_OK(mmsb_page_free(f->e, a));
    TU_OK(mmsb_page_free(f->e, c));
    TU_OK(mmsb_page_create(f->e, 8192, 0, &b));
    TU_OK(mmsb_page_create(f->e, 290, 0, &c));
    uint8_t buf[8192];
    TU_OK(mmsb_page_read(f->e, b, 0, buf, sizeof buf, NULL));
    for (size_t i = 0; i < sizeof buf; i++) assert_int_equal(buf[i], 0);
    TU_OK(mmsb_page_read(f->e, c, 0, buf, 290, NULL));
    for (size_t i = 0; i < 290; i++) assert_int_equal(buf[i], 0);
}

static void test_page_limits_are_enospc(void **state) {
    (void)state;
    mmsb_options o;
    tu_options_small(&o);
    o.pages_max = 3;
    o.arena_bytes_max = 1 << 20;
    o.arena_grow_bytes = 1 << 16;
    o.page_bytes_max = 1 << 20;
    tu_store s = tu_store_open(&o);
    mmsb_engine *e = s.e;
    uint64_t id;
    char before[33], after[33];
    TU_OK(mmsb_page_create(e, 700 << 10, 0, &id));
    tu_root_hex(e, before);
    TU_ERR(mmsb_page_create(e, 400 << 10, 0, &id), MMSB_ENOSPC);
    assert_non_null(strstr(mmsb_last_error(), "arena full"));
    tu_root_hex(e, after);
    assert_string_equal(before, after);
    TU_OK(mmsb_page_create(e, 300 << 10, 0, &id));
    TU_OK(mmsb_page_free(e, id));
    TU_OK(mmsb_page_create(e, 64, 0, &id));
    assert_int_equal(id, 3);
    tu_root_hex(e, before);
    TU_ERR(mmsb_page_create(e, 64, 0, &id), MMSB_ENOSPC);
    assert_non_null(strstr(mmsb_last_error(), "pages_max"));
    tu_root_hex(e, after);
    assert_string_equal(before, after);
    tu_store_close(&s);
    /* The smallest limits: the state tree still has its four leaves. */
    for (uint64_t max = 1; max <= 2; max++) {
        tu_options_small(&o);
        o.pages_max = max;
        s = tu_store_open(&o);
        for (uint64_t k = 0; k < max; k++) TU_OK(mmsb_page_create(s.e, 64, 0, &id));
        TU_OK(mmsb_write(s.e, id, 0, "x", 1, NULL));
        tu_root_hex(s.e, before);
        TU_ERR(mmsb_page_create(s.e, 64, 0, &id), MMSB_ENOSPC);
        tu_root_hex(s.e, after);
        assert_string_equal(before, after);
        tu_store_close(&s);
    }
}

/* Many pages in one commit: consecutive ids, zero bytes, one commit, and the
 * same state (root) as creating them one by one, before and after a reopen;
 * every bad argument and every limit leaves nothing behind. */
static void test_page_create_many(void **state) {
    (void)state;
    mmsb_options o;
    tu_options_small(&o);
    o.pages_max = 1000;
    o.arena_bytes_max = 8 << 20;
    o.arena_grow_bytes = 1 << 20;
    o.page_bytes_max = 1 << 20;
    tu_store one = tu_store_open(&o), many = tu_store_open(&o);
    uint64_t id, first;
    for (int k = 0; k < 300; k++) TU_OK(mmsb_page_create(one.e, 4096, 0, &id));
    uint64_t commits_before = tu_info(many.e).commits;
    TU_OK(mmsb_page_create_many(many.e, 4096, 0, 300, &first));
    assert_int_equal(first, 1);
    assert_int_equal(tu_info(many.e).commits, commits_before + 1);
    uint64_t seq_after = tu_info(many.e).commit_seq;
    assert_int_equal(tu_info(many.e).pages_live, 300);
    uint8_t buf[4096];
    TU_OK(mmsb_page_read(many.e, 300, 0, buf, sizeof buf, NULL));
    for (size_t i = 0; i < sizeof buf; i++) assert_int_equal(buf[i], 0);
    char root_one[33], root_many[33];
    tu_root_hex(one.e, root_one);
    tu_root_hex(many.e, root_many);
    assert_string_equal(root_one, root_many);

    /* Nothing changes on a refusal: not the ids, not the pages, not the root. */
    const struct { uint64_t size; uint32_t flags; uint64_t count; int code; const char *says; } bad[] = {
        {4096, 0, 0, MMSB_EINVAL, "count"},
        {4096, 0, MMSB_PAGES_PER_CREATE_MAX + 1ull, MMSB_EINVAL, "count"},
        {4096, MMSB_PAGE_HOST | MMSB_PAGE_DEVICE, 2, MMSB_EINVAL, "flags"},
        {4096, 8, 2, MMSB_EINVAL, "flags"},
        {0, 0, 2, MMSB_EINVAL, "size_bytes"},
        {(1 << 20) + 1, 0, 2, MMSB_EINVAL, "size_bytes"},
        {4096, 0, 701, MMSB_ENOSPC, "pages_max"},
        {512 << 10, 0, 40, MMSB_ENOSPC, "arena"}, /* the arena runs out partway: all of it is given back */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        TU_ERR(mmsb_page_create_many(many.e, bad[i].size, bad[i].flags, bad[i].count, &first), bad[i].code);
        assert_non_null(strstr(mmsb_last_error(), bad[i].says));
        mmsb_engineinfo info = tu_info(many.e);
        assert_int_equal(info.pages_live, 300);
        assert_int_equal(info.commits, commits_before + 1);
        assert_true(info.commit_seq == seq_after); /* nothing committed (an aborted attempt adds no commit) */
        tu_root_hex(many.e, root_many);
        assert_string_equal(root_one, root_many);
    }
    TU_ERR(mmsb_page_create_many(many.e, 4096, 0, 2, NULL), MMSB_EINVAL);
    TU_ERR(mmsb_page_create_many(NULL, 4096, 0, 2, &first), MMSB_EINVAL);
    /* The space a refused call reserved is there for the next one. */
    TU_OK(mmsb_page_create_many(many.e, 4096, 0, 700, &first));
    assert_int_equal(first, 301);
    for (int k = 0; k < 700; k++) TU_OK(mmsb_page_create(one.e, 4096, 0, &id));
    tu_root_hex(one.e, root_one);
    tu_root_hex(many.e, root_many);
    assert_string_equal(root_one, root_many);
    TU_OK(mmsb_close(many.e));
    TU_OK(mmsb_open(many.dir, &o, &many.e)); /* the replay takes the commit of 700 CREATEs */
    tu_root_hex(many.e, root_many);
    assert_string_equal(root_one, root_many);
    tu_store_close(&one);
    tu_store_close(&many);
}

/* One commit of 100,000 CREATE records (5.6 MiB) spans a segment boundary: it
 * replays whole from genesis, and from a checkpoint after retention has
 * removed the segments it started in. */
static void test_page_create_many_straddles_segments(void **state) {
    (void)state;
    mmsb_options o;
    tu_options_small(&o);
    o.pages_max = 1 << 18;
    tu_store s = tu_store_open(&o);
    uint64_t first;
    TU_OK(mmsb_page_create_many(s.e, 64, 0, 100000, &first));
    assert_true(tu_info(s.e).log_segment >= 2);
    TU_OK(mmsb_write(s.e, first + 99999, 0, "z", 1, NULL));
    char before[33], after[33];
    tu_root_hex(s.e, before);
    TU_OK(mmsb_close(s.e)); /* checkpoints; retention removes the segments before it */
    char seg1[4200];
    snprintf(seg1, sizeof seg1, "%s/log-0000000001.seg", s.dir);
    struct stat st;
    assert_int_not_equal(stat(seg1, &st), 0);
    TU_OK(mmsb_open(s.dir, &o, &s.e));
    tu_root_hex(s.e, after);
    assert_string_equal(before, after);
    assert_int_equal(tu_info(s.e).pages_live, 100000);
    TU_OK(mmsb_page_create_many(s.e, 64, 0, 100000, &first)); /* again, after the checkpoint */
    assert_int_equal(first, 100001);
    tu_root_hex(s.e, before);
    TU_OK(mmsb_close(s.e));
    TU_OK(mmsb_open(s.dir, &o, &s.e));
    tu_root_hex(s.e, after);
    assert_string_equal(before, after);
    tu_store_close(&s);
}

static void test_page_free(void **state) {
    fixture *f = *state;
    uint64_t id, next;
    TU_OK(mmsb_page_create(f->e, 64, 0, &id));
    TU_OK(mmsb_page_free(f->e, id));
    REJECTED(f, mmsb_page_free(f->e, id), MMSB_ENOTFOUND);
    REJECTED(f, mmsb_page_free(f->e, 0), MMSB_ENOTFOUND);
    REJECTED(f, mmsb_page_free(f->e, 999), MMSB_ENOTFOUND);
    REJECTED(f, mmsb_page_free(NULL, f->page), MMSB_EINVAL);
    TU_OK(mmsb_page_create(f->e, 64, 0, &next));
    assert_int_equal(next, id + 1); /* never reused */
    mmsb_pageinfo info = {.struct_size = sizeof info};
    TU_ERR(mmsb_page_info(f->e, id, &info), MMSB_ENOTFOUND);
    assert_non_null(strstr(mmsb_last_error(), "freed"));
}

static void test_page_info(void **state) {
    fixture *f = *state;
    mmsb_pageinfo info = {.struct_size = sizeof info};
    TU_OK(mmsb_page_info(f->e, f->big, &info));
    assert_int_equal(info.page_id, f->big);
    assert_int_equal(info.size_bytes, 3 * 4096 - 5);
    assert_int_equal(info.epoch, 0);
    /* on the emulated device (make test-emulate), pages of 4 KiB and up live there */
    assert_int_equal(info.location, tu_gpu() == MMSB_GPU_OFF ? MMSB_LOC_HOST : MMSB_LOC_DEVICE);
    assert_int_equal(info.flags, 0);
    info.struct_size = 3;
    TU_ERR(mmsb_page_info(f->e, f->big, &info), MMSB_EINVAL);
    TU_ERR(mmsb_page_info(f->e, f->big, NULL), MMSB_EINVAL);
    TU_ERR(mmsb_page_info(NULL, f->big, &info), MMSB_EINVAL);
    info.struct_size = sizeof info;
    TU_ERR(mmsb_page_info(f->e, 77, &info), MMSB_ENOTFOUND);
}

static void test_page_read_and_view(void **state) {
    fixture *f = *state;
    uint8_t data[100], buf[200];
    for (int i = 0; i < 100; i++) data[i] = (uint8_t)(i + 1);
    TU_OK(mmsb_write(f->e, f->big, 4090, data, 100, NULL));
    uint64_t epoch = 99;
    TU_OK(mmsb_page_read(f->e, f->big, 4090, buf, 100, &epoch));
    assert_memory_equal(buf, data, 100);
    assert_int_equal(epoch, 1);
    TU_OK(mmsb_page_read(f->e, f->big, 3 * 4096 - 5, buf, 0, NULL));
    TU_OK(mmsb_page_read(f->e, f->big, 0, NULL, 0, NULL));
    const void *view;
    uint64_t size;
    TU_OK(mmsb_page_view(f->e, f->big, &view, &size, NULL));
    assert_memory_equal((const uint8_t *)view + 4090, data, 100);

    REJECTED(f, mmsb_page_read(f->e, f->big, 3 * 4096 - 5, buf, 1, NULL), MMSB_EINVAL);
    REJECTED(f, mmsb_page_read(f->e, f->big, UINT64_MAX, buf, 2, NULL), MMSB_EINVAL);
    REJECTED(f, mmsb_page_read(f->e, f->big, 2, buf, UINT64_MAX, NULL), MMSB_EINVAL);
    REJECTED(f, mmsb_page_read(f->e, f->big, 0, NULL, 5, NULL), MMSB_EINVAL);
    REJECTED(f, mmsb_page_read(f->e, f->big, 0, (void *)view, 5, NULL), MMSB_EINVAL);
    REJECTED(f, mmsb_page_read(f->e, 55, 0, buf, 5, NULL), MMSB_ENOTFOUND);
    REJECTED(f, mmsb_page_read(NULL, f->big, 0, buf, 5, NULL), MMSB_EINVAL);
    REJECTED(f, mmsb_page_view(f->e, f->big, NULL, &size, NULL), MMSB_EINVAL);
    REJECTED(f, mmsb_page_view(f->e, 0, &view, &size, NULL), MMSB_ENOTFOUND);
}

/* ---- changes --------------------------------------------------------------------- */

static void test_write_diffs_and_epochs(void **state) {
    fixture *f = *state;
    uint8_t data[64];
    memset(data, 7, sizeof data);
    mmsb_change ch;
    TU_OK(mmsb_write(f->e, f->page, 100, data, 64, &ch));
    assert_int_equal(ch.epoch, 1);
    assert_int_equal(ch.bytes_changed, 64);
    assert_true(ch.commit_seq > 0);
    /* The same bytes again change nothing: no epoch bump, no commit. */
    TU_OK(mmsb_write(f->e, f->page, 100, data, 64, &ch));
    assert_int_equal(ch.epoch, 1);
    assert_int_equal(ch.bytes_changed, 0);
    assert_int_equal(ch.commit_seq, 0);
    /* Only differing bytes count. */
    data[3] = 8;
    data[60] = 9;
    TU_OK(mmsb_write(f->e, f->page, 100, data, 64, &ch));
    assert_int_equal(ch.epoch, 2);
    assert_int_equal(ch.bytes_changed, 2);
    TU_OK(mmsb_write(f->e, f->page, 0, NULL, 0, &ch));
    assert_int_equal(ch.bytes_changed, 0);
    TU_OK(mmsb_write(f->e, f->page, 5, data, 1, NULL));

    const void *view;
    TU_OK(mmsb_page_view(f->e, f->page, &view, NULL, NULL));
    REJECTED(f, mmsb_write(f->e, f->page, 4090, data, 7, &ch), MMSB_EINVAL);
    REJECTED(f, mmsb_write(f->e, f->page, UINT64_MAX - 2, data, 7, &ch), MMSB_EINVAL);
    REJECTED(f, mmsb_write(f->e, f->page, 0, NULL, 7, &ch), MMSB_EINVAL);
    REJECTED(f, mmsb_write(f->e, f->page, 0, (const uint8_t *)view + 1, 7, &ch), MMSB_EINVAL);
    REJECTED(f, mmsb_write(f->e, 42, 0, data, 7, &ch), MMSB_ENOTFOUND);
    REJECTED(f, mmsb_write(NULL, f->page, 0, data, 7, &ch), MMSB_EINVAL);
}

static void test_write_large_crosses_blocks(void **state) {
    fixture *f = *state;
    uint64_t id;
    uint64_t size = 3 * WRITE_BLOCK_BYTES + 1000;
    TU_OK(mmsb_page_create(f->e, size, 0, &id));
    uint8_t *data = calloc(size, 1), *back = malloc(size);
    data[10] = 1;
    data[2 * WRITE_BLOCK_BYTES + 5] = 2;
    data[size - 1] = 3;
    mmsb_change ch;
    TU_OK(mmsb_write(f->e, id, 0, data, size, &ch));
    assert_int_equal(ch.bytes_changed, 3);
    assert_int_equal(ch.epoch, 1);
    TU_OK(mmsb_page_read(f->e, id, 0, back, size, NULL));
    assert_memory_equal(back, data, size);
    free(data);
    free(back);
}

static void test_apply_dense_and_sparse(void **state) {
    fixture *f = *state;
    uint8_t mask[2] = {0x05, 0x80}; /* bytes 0, 2 and 15 of the range */
    uint8_t dense[16];
    for (int i = 0; i < 16; i++) dense[i] = (uint8_t)(0x40 + i);
    mmsb_delta d = {.page_id = f->page, .offset = 32, .len = 16, .mask = mask,
                    .payload = dense, .payload_len = 16};
    mmsb_change ch;
    TU_OK(mmsb_apply(f->e, &d, &ch));
    assert_int_equal(ch.bytes_changed, 3);
    assert_int_equal(ch.epoch, 1);
    uint8_t buf[16];
    TU_OK(mmsb_page_read(f->e, f->page, 32, buf, 16, NULL));
    uint8_t want[16] = {0};
    want[0] = 0x40, want[2] = 0x42, want[15] = 0x4F;
    assert_memory_equal(buf, want, 16);

    /* The same change as a sparse delta: unchanged now. */
    uint8_t packed[3] = {0x40, 0x42, 0x4F};
    mmsb_delta s = d;
    s.flags = MMSB_DELTA_SPARSE;
    s.payload = packed;
    s.payload_len = 3;
    TU_OK(mmsb_apply(f->e, &s, &ch));
    assert_int_equal(ch.bytes_changed, 0);
    assert_int_equal(ch.epoch, 1);
    packed[1] = 0x99;
    TU_OK(mmsb_apply(f->e, &s, &ch));
    assert_int_equal(ch.bytes_changed, 1);
    assert_int_equal(ch.epoch, 2);

    /* Expected epoch: matching applies, stale conflicts and applies nothing. */
    packed[1] = 0x77;
    s.flags |= MMSB_DELTA_EXPECT_EPOCH;
    s.expected_epoch = 1;
    REJECTED(f, mmsb_apply(f->e, &s, &ch), MMSB_ECONFLICT);
    assert_non_null(strstr(mmsb_last_error(), "epoch 2"));
    s.expected_epoch = 2;
    TU_OK(mmsb_apply(f->e, &s, &ch));
    assert_int_equal(ch.epoch, 3);

    /* An empty mask or an empty range changes nothing. */
    uint8_t zero_mask[2] = {0, 0};
    mmsb_delta z = {.page_id = f->page, .offset = 0, .len = 16, .mask = zero_mask,
                    .payload = dense, .payload_len = 16};
    TU_OK(mmsb_apply(f->e, &z, &ch));
    assert_int_equal(ch.bytes_changed, 0);
    z.len = 0, z.mask = NULL, z.payload = NULL, z.payload_len = 0;
    TU_OK(mmsb_apply(f->e, &z, &ch));
    assert_int_equal(ch.bytes_changed, 0);
}

static void test_apply_rejects_bad_deltas(void **state) {
    fixture *f = *state;
    uint8_t mask[2] = {0x05, 0x80};
    uint8_t payload[16] = {1, 2, 3};
    const mmsb_delta good = {.page_id = f->page, .offset = 32, .len = 16, .mask = mask,
                             .payload = payload, .payload_len = 16};
    mmsb_delta d;
    mmsb_change ch;
    REJECTED(f, mmsb_apply(f->e, NULL, &ch), MMSB_EINVAL);
    REJECTED(f, mmsb_apply(NULL, &good, &ch), MMSB_EINVAL);
    d = good, d.flags = 0x10;
    REJECTED(f, mmsb_apply(f->e, &d, &ch), MMSB_EINVAL);
    d = good, d.reserved0 = 3;
    REJECTED(f, mmsb_apply(f->e, &d, &ch), MMSB_EINVAL);
    d = good, d.page_id = 1000;
    REJECTED(f, mmsb_apply(f->e, &d, &ch), MMSB_ENOTFOUND);
    d = good, d.offset = 4090;
    REJECTED(f, mmsb_apply(f->e, &d, &ch), MMSB_EINVAL);
    d = good, d.len = UINT64_MAX;
    REJECTED(f, mmsb_apply(f->e, &d, &ch), MMSB_EINVAL);
    d = good, d.mask = NULL;
    REJECTED(f, mmsb_apply(f->e, &d, &ch), MMSB_EINVAL);
    d = good, d.payload = NULL;
    REJECTED(f, mmsb_apply(f->e, &d, &ch), MMSB_EINVAL);
    d = good, d.payload_len = 15;
    REJECTED(f, mmsb_apply(f->e, &d, &ch), MMSB_EINVAL);
    d = good, d.flags = MMSB_DELTA_SPARSE; /* needs popcount = 3 */
    REJECTED(f, mmsb_apply(f->e, &d, &ch), MMSB_EINVAL);
    assert_non_null(strstr(mmsb_last_error(), "popcount"));
    uint8_t tail_mask[2] = {0x01, 0x10}; /* bit 12 set, len 10 */
    d = good, d.len = 10, d.payload_len = 10, d.mask = tail_mask;
    REJECTED(f, mmsb_apply(f->e, &d, &ch), MMSB_EINVAL);
    assert_non_null(strstr(mmsb_last_error(), "past len"));
    const void *view;
    TU_OK(mmsb_page_view(f->e, f->page, &view, NULL, NULL));
    d = good, d.payload = view;
    REJECTED(f, mmsb_apply(f->e, &d, &ch), MMSB_EINVAL);
    d = good, d.mask = (const uint8_t *)view + 100;
    REJECTED(f, mmsb_apply(f->e, &d, &ch), MMSB_EINVAL);
}

/* ---- digests ------------------------------------------------------------------------ */

static void test_digest_calls(void **state) {
    fixture *f = *state;
    mmsb_digest d1, d2, root1, root2;
    TU_OK(mmsb_page_digest(f->e, f->page, &d1));
    TU_OK(mmsb_state_root(f->e, &root1));
    uint8_t one = 1;
    TU_OK(mmsb_write(f->e, f->page, 4095, &one, 1, NULL));
    TU_OK(mmsb_page_digest(f->e, f->page, &d2));
    TU_OK(mmsb_state_root(f->e, &root2));
    assert_memory_not_equal(&d1, &d2, sizeof d1);
    assert_memory_not_equal(&root1, &root2, sizeof root1);
    char hex[33];
    TU_OK(mmsb_digest_hex(&root2, hex, sizeof hex));
    assert_int_equal(strlen(hex), 32);
    REJECTED(f, mmsb_page_digest(f->e, 404, &d1), MMSB_ENOTFOUND);
    REJECTED(f, mmsb_page_digest(f->e, f->page, NULL), MMSB_EINVAL);
    REJECTED(f, mmsb_state_root(f->e, NULL), MMSB_EINVAL);
    REJECTED(f, mmsb_state_root(NULL, &root1), MMSB_EINVAL);
    TU_ERR(mmsb_digest_hex(&root2, hex, 32), MMSB_EINVAL);
    TU_ERR(mmsb_digest_hex(NULL, hex, 33), MMSB_EINVAL);
    TU_ERR(mmsb_digest_hex(&root2, NULL, 33), MMSB_EINVAL);
}

/* ---- threading and independence ------------------------------------------------------ */

static void test_second_writer_is_busy(void **state) {
    fixture *f = *state;
    /* Stand in for another thread holding the writer role. */
    atomic_store(&f->e->busy, 1);
    uint8_t b = 1;
    mmsb_digest root;
    uint64_t id;
    TU_ERR(mmsb_write(f->e, f->page, 0, &b, 1, NULL), MMSB_EBUSY);
    TU_ERR(mmsb_page_create(f->e, 64, 0, &id), MMSB_EBUSY);
    TU_ERR(mmsb_state_root(f->e, &root), MMSB_EBUSY);
    TU_ERR(mmsb_close(f->e), MMSB_EBUSY);
    /* Reading calls do not need the role. */
    uint8_t buf[4];
    TU_OK(mmsb_page_read(f->e, f->page, 0, buf, 4, NULL));
    atomic_store(&f->e->busy, 0);
    TU_OK(mmsb_write(f->e, f->page, 0, &b, 1, NULL));
}

static void test_two_engines_are_independent(void **state) {
    (void)state;
    tu_store sa = tu_store_open(NULL), sb = tu_store_open(NULL);
    mmsb_engine *a = sa.e, *b = sb.e;
    uint64_t pa, pb;
    TU_OK(mmsb_page_create(a, 4096, 0, &pa));
    TU_OK(mmsb_page_create(b, 4096, 0, &pb));
    assert_int_equal(pa, 1);
    assert_int_equal(pb, 1);
    tu_roots_match(a, b, true);
    uint8_t x = 5;
    TU_OK(mmsb_write(a, pa, 0, &x, 1, NULL));
    uint8_t buf;
    TU_OK(mmsb_page_read(b, pb, 0, &buf, 1, NULL));
    assert_int_equal(buf, 0);
    tu_roots_match(a, b, false);
    tu_store_close(&sa);
    tu_store_close(&sb);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_options_init),
        cmocka_unit_test(test_replication_options_are_checked),
        cmocka_unit_test(test_open_rejects_bad_options),
        cmocka_unit_test(test_open_directory_rules),
        cmocka_unit_test_setup_teardown(test_engine_info, setup, teardown),
        cmocka_unit_test_setup_teardown(test_page_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_page_create_reused_space_is_zero, setup, teardown),
        cmocka_unit_test(test_page_limits_are_enospc),
        cmocka_unit_test(test_page_create_many),
        cmocka_unit_test(test_page_create_many_straddles_segments),
        cmocka_unit_test_setup_teardown(test_page_free, setup, teardown),
        cmocka_unit_test_setup_teardown(test_page_info, setup, teardown),
        cmocka_unit_test_setup_teardown(test_page_read_and_view, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_diffs_and_epochs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_large_crosses_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_dense_and_sparse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_rejects_bad_deltas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_digest_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_writer_is_busy, setup, teardown),
        cmocka_unit_test(test_two_engines_are_independent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
