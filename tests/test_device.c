/*
 * test_device.c - the device location, on the emulated device
 * (MMSB_GPU_EMULATE), which runs the same staging, batching, device digests
 * and failure paths as a GPU would, in host memory; with
 * MMSB_TEST_DEVICE=cuda (make test-gpu) the same tests on the CUDA device
 * that MMSB_GPU_AUTO finds:
 * - placement: by size against the threshold, by the page flags, counted in
 *   the engine info; the flags are logged and survive a reopen, a
 *   checkpoint, and an export and import;
 * - the same seeded workload on an engine with the device and one without
 *   reaches the same state root after every call, the same commit results,
 *   the same log records (all but the commits' salted chain), and each
 *   store reopens (replays) on the other kind of engine to the same root;
 * - the device view: a device page's copy holds its mirror's bytes at
 *   the page's epoch, checked all along the workload; host pages are
 *   refused;
 * - host pages never touch the device: a host-only workload makes no
 *   device call;
 * - derived pages whose parents are device pages are computed on the
 *   device (lanewise ones) or copied there (COPY, CONCAT), and their copies
 *   get the output without staging; a failed commit puts the mirror's
 *   bytes back;
 * - failures: a device without memory places new pages on the host; a
 *   failed submit, digest, view or operation moves every device page to the
 *   host, keeps every commit and root, and says so in the engine info.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../engine/calibrate.h"
#include "../engine/engine.h"
#include "../engine/state.h"
#include "testutil.h"

/* The device the tests run on (main sets it): MMSB_GPU_EMULATE, or
 * MMSB_GPU_AUTO for the CUDA device it finds. */
static uint32_t DEVICE = MMSB_GPU_EMULATE;

static bool on_cuda(void) { return DEVICE == MMSB_GPU_AUTO; }

static mmsb_options device_options(uint32_t gpu, uint64_t threshold_bytes) {
    mmsb_options o;
    tu_options_small(&o);
    o.gpu = gpu;
    o.gpu_threshold_bytes = threshold_bytes;
    return o;
}

static mmsb_pageinfo page_info(mmsb_engine *e, uint64_t id) {
    mmsb_pageinfo pi = {.struct_size = sizeof pi};
    TU_OK(mmsb_page_info(e, id, &pi));
    return pi;
}

static uint64_t create(mmsb_engine *e, uint64_t size, uint32_t flags) {
    uint64_t id;
    TU_OK(mmsb_page_create(e, size, flags, &id));
    return id;
}

/* A device page's copy (its device view) holds exactly its mirror's bytes,
 * at the epoch the page has. */
static void copy_matches_mirror(mmsb_engine *e, uint64_t id) {
    mmsb_device_view v = {.struct_size = sizeof v};
    TU_OK(mmsb_page_device_view(e, id, &v));
    const void *mirror;
    uint64_t size, epoch;
    TU_OK(mmsb_page_view(e, id, &mirror, &size, &epoch));
    assert_int_equal(v.device, on_cuda() ? MMSB_GPU_CUDA : MMSB_GPU_EMULATE);
    assert_int_equal(v.size_bytes, size);
    assert_int_equal(v.epoch, epoch);
    assert_ptr_not_equal(v.data, mirror);
    if (!on_cuda()) assert_memory_equal(v.data, mirror, size);
    uint8_t *copy = malloc(size); /* read back through the device itself */
    assert_non_null(copy);
    TU_OK(gpu_dev_read(e->dv.dev, entry_of(e, id)->data_off, copy, size));
    assert_memory_equal(copy, mirror, size);
    free(copy);
}

/* ---- placement -------------------------------------------------------------------------- */

static void test_placement_by_size_and_flags(void **state) {
    (void)state;
    mmsb_options o = device_options(DEVICE, 8192);
    tu_store s = tu_store_open(&o);
    mmsb_engineinfo info = tu_info(s.e);
    assert_true(strlen(info.gpu_device) > 0);
    assert_int_equal(info.gpu_threshold_bytes, 8192);
    assert_int_equal(info.gpu_threshold_source, MMSB_GPU_THRESHOLD_OPTION);
    uint64_t small = create(s.e, 100, 0), below = create(s.e, 8191, 0), at = create(s.e, 8192, 0);
    uint64_t big = create(s.e, 1 << 20, 0), big_host = create(s.e, 1 << 20, MMSB_PAGE_HOST);
    uint64_t tiny_device = create(s.e, 64, MMSB_PAGE_DEVICE);
    const struct { uint64_t id; uint32_t location, flags; } want[] = {
        {small, MMSB_LOC_HOST, 0},      {below, MMSB_LOC_HOST, 0},
        {at, MMSB_LOC_DEVICE, 0},       {big, MMSB_LOC_DEVICE, 0},
        {big_host, MMSB_LOC_HOST, MMSB_PAGE_HOST}, {tiny_device, MMSB_LOC_DEVICE, MMSB_PAGE_DEVICE},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        mmsb_pageinfo pi = page_info(s.e, want[i].id);
        assert_int_equal(pi.location, want[i].location);
        assert_int_equal(pi.flags, want[i].flags);
    }
    info = tu_info(s.e);
    assert_int_equal(info.gpu_pages, 3);
    assert_int_equal(info.gpu_page_bytes, 8192 + (1 << 20) + 64);
    /* a device page's host view is its mirror, current after the commit */
    uint8_t bytes[256];
    memset(bytes, 0x5a, sizeof bytes);
    TU_OK(mmsb_write(s.e, big, 4000, bytes, sizeof bytes, NULL));
    const void *view;
    uint64_t size;
    TU_OK(mmsb_page_view(s.e, big, &view, &size, NULL));
    assert_memory_equal((const uint8_t *)view + 4000, bytes, sizeof bytes);
    copy_matches_mirror(s.e, big);
    copy_matches_mirror(s.e, tiny_device);
    mmsb_device_view v = {.struct_size = sizeof v};
    TU_ERR(mmsb_page_device_view(s.e, small, &v), MMSB_ENOTSUP);
    assert_non_null(strstr(mmsb_last_error(), "host"));
    TU_ERR(mmsb_page_device_view(s.e, 999, &v), MMSB_ENOTFOUND);
    TU_ERR(mmsb_page_device_view(s.e, big, NULL), MMSB_EINVAL);
    v.struct_size = 8;
    TU_ERR(mmsb_page_device_view(s.e, big, &v), MMSB_EINVAL);
    TU_OK(mmsb_page_free(s.e, big));
    info = tu_info(s.e);
    assert_int_equal(info.gpu_pages, 2);
    assert_int_equal(info.gpu_page_bytes, 8192 + 64);

    /* the flags are logged: a reopen places the pages the same way */
    char *dir = s.dir;
    TU_OK(mmsb_close(s.e));
    s.e = tu_open(dir, &o);
    assert_int_equal(page_info(s.e, big_host).location, MMSB_LOC_HOST);
    assert_int_equal(page_info(s.e, tiny_device).location, MMSB_LOC_DEVICE);
    assert_int_equal(page_info(s.e, tiny_device).flags, MMSB_PAGE_DEVICE);
    assert_int_equal(page_info(s.e, at).location, MMSB_LOC_DEVICE);
    TU_OK(mmsb_checkpoint(s.e)); /* and a checkpoint keeps them */
    TU_OK(mmsb_close(s.e));
    s.e = tu_open(dir, &o);
    assert_true(tu_info(s.e).recovered_from_checkpoint);
    assert_int_equal(page_info(s.e, tiny_device).location, MMSB_LOC_DEVICE);
    assert_int_equal(page_info(s.e, big_host).flags, MMSB_PAGE_HOST);
    tu_store_close(&s);
}

/* An export carries the placement flags; the import places by them (and
 * by size), and reaches the same root. */
static void test_export_keeps_flags(void **state) {
    (void)state;
    mmsb_options o = device_options(DEVICE, 8192);
    tu_store s = tu_store_open(&o);
    uint64_t kept = create(s.e, 1 << 20, MMSB_PAGE_HOST), forced = create(s.e, 64, MMSB_PAGE_DEVICE);
    uint64_t big = create(s.e, 1 << 20, 0);
    uint8_t bytes[100];
    memset(bytes, 9, sizeof bytes);
    TU_OK(mmsb_write(s.e, forced, 0, bytes, 64, NULL));
    TU_OK(mmsb_write(s.e, big, 70000, bytes, sizeof bytes, NULL));
    char *dst = tu_dir_new();
    char path[4200], store[4200];
    snprintf(path, sizeof path, "%s/export", dst);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    TU_OK(mmsb_export(s.e, fd, NULL));
    snprintf(store, sizeof store, "%s/imported", dst);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    TU_OK(mmsb_import(store, &o, fd, NULL));
    close(fd);
    unlink(path);
    mmsb_engine *e = tu_open(store, &o);
    assert_int_equal(page_info(e, kept).flags, MMSB_PAGE_HOST);
    assert_int_equal(page_info(e, kept).location, MMSB_LOC_HOST);
    assert_int_equal(page_info(e, forced).flags, MMSB_PAGE_DEVICE);
    assert_int_equal(page_info(e, forced).location, MMSB_LOC_DEVICE);
    assert_int_equal(page_info(e, big).location, MMSB_LOC_DEVICE);
    copy_matches_mirror(e, big);
    tu_roots_match(e, s.e, true);
    TU_OK(mmsb_close(e));
    tu_dir_remove(dst);
    tu_store_close(&s);
}

static void test_default_threshold_and_refusals(void **state) {
    (void)state;
    mmsb_options o = device_options(DEVICE, 0);
    tu_store s = tu_store_open(&o);
    mmsb_engineinfo info = tu_info(s.e);
    if (on_cuda()) { /* measured at open: whatever it is, it is a measured size or none */
        assert_int_equal(info.gpu_threshold_source, MMSB_GPU_THRESHOLD_CALIBRATED);
        printf("test_device: calibrated threshold %llu bytes (0: none)\n",
               (unsigned long long)info.gpu_threshold_bytes);
    } else {
        assert_int_equal(info.gpu_threshold_bytes, 4096);
        assert_int_equal(info.gpu_threshold_source, MMSB_GPU_THRESHOLD_DEFAULT);
        assert_int_equal(page_info(s.e, create(s.e, 4096, 0)).location, MMSB_LOC_DEVICE);
        assert_int_equal(page_info(s.e, create(s.e, 4095, 0)).location, MMSB_LOC_HOST);
    }
    uint64_t id;
    TU_ERR(mmsb_page_create(s.e, 64, MMSB_PAGE_HOST | MMSB_PAGE_DEVICE, &id), MMSB_EINVAL);
    assert_non_null(strstr(mmsb_last_error(), "flags"));
    tu_store_close(&s);

    o = device_options(MMSB_GPU_OFF, 0);
    s = tu_store_open(&o);
    info = tu_info(s.e);
    assert_string_equal(info.gpu_device, "");
    assert_int_equal(info.gpu_threshold_source, MMSB_GPU_THRESHOLD_NONE);
    assert_int_equal(info.gpu_threshold_bytes, 0);
    TU_ERR(mmsb_page_create(s.e, 64, MMSB_PAGE_DEVICE, &id), MMSB_ENOTSUP);
    TU_ERR(mmsb_page_create_many(s.e, 64, MMSB_PAGE_DEVICE, 3, &id), MMSB_ENOTSUP);
    assert_int_equal(tu_info(s.e).pages_live, 0);
    assert_int_equal(page_info(s.e, create(s.e, 1 << 20, MMSB_PAGE_HOST)).location, MMSB_LOC_HOST);
    tu_store_close(&s);

    char *dir = tu_dir_new();
    mmsb_engine *e = NULL;
    /* MMSB_GPU stands in for AUTO only, and a value it does not know fails the open */
    const char *env = getenv("MMSB_GPU");
    char *saved = env != NULL ? strdup(env) : NULL;
    o = device_options(MMSB_GPU_AUTO, 0);
    setenv("MMSB_GPU", "cuda-please", 1);
    TU_ERR(mmsb_open(dir, &o, &e), MMSB_EINVAL);
    assert_non_null(strstr(mmsb_last_error(), "MMSB_GPU=cuda-please"));
    setenv("MMSB_GPU", "emulate", 1);
    o = device_options(MMSB_GPU_OFF, 0);
    e = tu_open(dir, &o);
    assert_string_equal(tu_info(e).gpu_device, "");
    TU_OK(mmsb_close(e));
    o = device_options(MMSB_GPU_AUTO, 0);
    e = tu_open(dir, &o);
    assert_int_equal(tu_info(e).gpu_threshold_source, MMSB_GPU_THRESHOLD_DEFAULT);
    TU_OK(mmsb_close(e));
    if (saved != NULL) setenv("MMSB_GPU", saved, 1);
    else unsetenv("MMSB_GPU");
    free(saved);
    tu_dir_remove(dir);
    dir = tu_dir_new();
    o = device_options(3, 0);
    TU_ERR(mmsb_open(dir, &o, &e), MMSB_EINVAL);
    o = device_options(DEVICE, (64ull << 20) + 1); /* above page_bytes_max */
    TU_ERR(mmsb_open(dir, &o, &e), MMSB_EINVAL);
    assert_non_null(strstr(mmsb_last_error(), "gpu_threshold_bytes"));
    tu_dir_remove(dir);
}

/* ---- the same workload with the device and without ---------------------------------------- */

typedef struct pair {
    tu_store s[2]; /* [0] with the emulated device, [1] without */
    mmsb_options o[2];
    uint64_t ids[64];
    uint32_t id_count;
    rng r;
    uint8_t *buf, *mask;
} pair;

enum { PAIR_BUF_BYTES = 6 << 20 };

static void roots_equal(pair *p) {
    char a[33], b[33];
    tu_root_hex(p->s[0].e, a);
    tu_root_hex(p->s[1].e, b);
    assert_string_equal(a, b);
}

/* One call on both engines: the same result, the same commit results. */
#define BOTH(p, call)                                                                             \
    do {                                                                                          \
        int rc_[2];                                                                               \
        mmsb_commit_result res_[2];                                                               \
        for (int k_ = 0; k_ < 2; k_++) {                                                          \
            mmsb_engine *E = (p)->s[k_].e;                                                        \
            mmsb_commit_result *R = &res_[k_];                                                    \
            *R = (mmsb_commit_result){.struct_size = sizeof *R};                                  \
            rc_[k_] = (call);                                                                     \
            (void)R;                                                                              \
        }                                                                                         \
        assert_int_equal(rc_[0], rc_[1]);                                                         \
        assert_memory_equal(&res_[0], &res_[1], sizeof res_[0]);                                  \
    } while (0)

static const uint64_t SIZES[] = {1, 100, 4095, 4096, 4097, 8192, 65539, 1 << 20, 5 << 20};

static uint64_t some_page(pair *p) { return p->ids[rng_below(&p->r, p->id_count)]; }

static uint64_t size_of(pair *p, uint64_t id) { return page_info(p->s[1].e, id).size_bytes; }

static void step_create(pair *p) {
    if (p->id_count == sizeof p->ids / sizeof p->ids[0]) return;
    uint64_t size = SIZES[rng_below(&p->r, sizeof SIZES / sizeof SIZES[0])];
    uint32_t flags = rng_below(&p->r, 8) == 0 ? MMSB_PAGE_HOST : 0;
    uint64_t id[2];
    for (int k = 0; k < 2; k++) TU_OK(mmsb_page_create(p->s[k].e, size, flags, &id[k]));
    assert_int_equal(id[0], id[1]);
    p->ids[p->id_count++] = id[0];
}

/* A delta over [off, off + len) of a page: dense or sparse, random mask. */
static mmsb_delta random_delta(pair *p, uint64_t id) {
    uint64_t size = size_of(p, id);
    uint64_t len = 1 + rng_below(&p->r, rng_below(&p->r, 4) == 0 ? size : (size < 9000 ? size : 9000));
    uint64_t off = rng_below(&p->r, size - len + 1);
    rng_fill(&p->r, p->mask, (len + 7) / 8);
    if (len % 8) p->mask[len / 8] &= (uint8_t)((1u << (len % 8)) - 1);
    rng_fill(&p->r, p->buf, len);
    mmsb_delta d = {.page_id = id, .offset = off, .len = len, .mask = p->mask, .payload = p->buf};
    if (rng_below(&p->r, 2)) {
        uint64_t set = 0;
        for (uint64_t i = 0; i < len; i++) set += (p->mask[i / 8] >> (i % 8)) & 1;
        d.flags = MMSB_DELTA_SPARSE;
        d.payload_len = set;
    } else {
        d.payload_len = len;
    }
    return d;
}

static void step_change(pair *p) {
    uint64_t id = some_page(p);
    uint64_t size = size_of(p, id);
    switch (rng_below(&p->r, 4)) {
    case 0: { /* a write, now and then of the whole page (past the staging buffer: 5 MiB) */
        uint64_t len = rng_below(&p->r, 6) == 0 ? size : 1 + rng_below(&p->r, size < 70000 ? size : 70000);
        uint64_t off = rng_below(&p->r, size - len + 1);
        rng_fill(&p->r, p->buf, len);
        if (rng_below(&p->r, 3) == 0) memset(p->buf, 0, len / 2);
        BOTH(p, mmsb_write(E, id, off, p->buf, len, NULL));
        break;
    }
    case 1:
    case 2: {
        mmsb_delta d = random_delta(p, id);
        BOTH(p, mmsb_apply_batch(E, &d, 1, 0, R));
        break;
    }
    default: { /* a transaction of two pages, committed or aborted */
        uint64_t other = some_page(p);
        uint8_t bytes[300];
        rng_fill(&p->r, bytes, sizeof bytes);
        bool commit = rng_below(&p->r, 4) != 0;
        int rc[2];
        for (int k = 0; k < 2; k++) {
            mmsb_txn *t;
            TU_OK(mmsb_txn_begin(p->s[k].e, &t));
            TU_OK(mmsb_txn_write(t, id, size > 300 ? size - 300 : 0, bytes, size < 300 ? size : 300));
            TU_OK(mmsb_txn_write(t, other, 0, bytes, 1));
            rc[k] = commit ? mmsb_txn_commit(t, 0, NULL) : mmsb_txn_abort(t); /* a derived page refuses it */
        }
        assert_int_equal(rc[0], rc[1]);
    }
    }
}

/* Derived pages: XOR and SUM_U32 of two parents of the child's size, COPY
 * and CONCAT of one. */
static void step_derive(pair *p) {
    uint64_t child = some_page(p), size = size_of(p, child);
    uint64_t parents[2];
    uint32_t found = 0;
    uint32_t start = (uint32_t)rng_below(&p->r, p->id_count);
    for (uint32_t k = 0; k < p->id_count && found < 2; k++) {
        uint64_t id = p->ids[(start + k) % p->id_count];
        if (id != child && size_of(p, id) == size) parents[found++] = id;
    }
    if (found < 2) return;
    uint32_t ops[4] = {MMSB_OP_XOR, MMSB_OP_SUM_U32, MMSB_OP_COPY, MMSB_OP_CONCAT};
    uint32_t op = ops[rng_below(&p->r, 4)];
    if (op == MMSB_OP_SUM_U32 && size % 4 != 0) op = MMSB_OP_XOR;
    bool one = op == MMSB_OP_COPY || op == MMSB_OP_CONCAT;
    mmsb_derive_spec spec = {.struct_size = sizeof spec, .op = op, .parents = parents, .parent_count = one ? 1 : 2};
    BOTH(p, mmsb_derive(E, child, &spec, R));
}

static void step_free(pair *p) {
    if (p->id_count < 8) return;
    uint32_t at = (uint32_t)rng_below(&p->r, p->id_count);
    uint64_t id = p->ids[at];
    int rc[2];
    for (int k = 0; k < 2; k++) rc[k] = mmsb_page_free(p->s[k].e, id);
    assert_int_equal(rc[0], rc[1]);
    if (rc[0] == 0) p->ids[at] = p->ids[--p->id_count];
    else assert_int_equal(rc[0], MMSB_EDEPENDENTS);
}

/* Each store reopens on the other kind of engine: the device's store
 * replays without a device, and the reverse. */
static void swap_reopen(pair *p) {
    for (int k = 0; k < 2; k++) TU_OK(mmsb_close(p->s[k].e));
    tu_store t = p->s[0];
    p->s[0] = p->s[1];
    p->s[1] = t;
    for (int k = 0; k < 2; k++) p->s[k].e = tu_open(p->s[k].dir, &p->o[k]);
    assert_true(tu_info(p->s[0].e).gpu_pages > 0);
    assert_int_equal(tu_info(p->s[1].e).gpu_pages, 0);
}

/* The two logs hold the same records: every payload but the commits'
 * chain (salted per store) and durable hint (timing). */
static void logs_equal(const char *a, const char *b) {
    mmsb_log_reader *r[2];
    TU_OK(mmsb_log_open(a, 0, &r[0]));
    TU_OK(mmsb_log_open(b, 0, &r[1]));
    uint64_t records = 0;
    for (;; records++) {
        mmsb_log_record x[2];
        for (int k = 0; k < 2; k++) {
            x[k] = (mmsb_log_record){.struct_size = sizeof x[k]};
            TU_OK(mmsb_log_next(r[k], &x[k]));
        }
        assert_int_equal(x[0].type, x[1].type);
        if (x[0].type == MMSB_REC_END) break;
        assert_int_equal(x[0].seq, x[1].seq);
        assert_int_equal(x[0].payload_len, x[1].payload_len);
        if (x[0].type != MMSB_REC_COMMIT) {
            assert_memory_equal(x[0].payload, x[1].payload, x[0].payload_len);
        } else { /* first seq; flags and count; the root, if any */
            assert_memory_equal(x[0].payload, x[1].payload, 8);
            assert_memory_equal(x[0].payload + 16, x[1].payload + 16, 8);
            assert_memory_equal(x[0].payload + 40, x[1].payload + 40, x[0].payload_len - 40);
        }
    }
    assert_true(records > 1000);
    TU_OK(mmsb_log_close(r[0]));
    TU_OK(mmsb_log_close(r[1]));
}

static void test_same_state_with_and_without_device(void **state) {
    (void)state;
    pair p = {.r = {0x6d6d7362646576ull}};
    p.o[0] = device_options(DEVICE, on_cuda() ? 4096 : 0); /* a calibrated one may place nothing */
    p.o[1] = device_options(MMSB_GPU_OFF, 0);
    for (int k = 0; k < 2; k++) p.o[k].flags |= MMSB_OPEN_KEEP_LOG; /* the logs stay whole, to compare */
    p.buf = malloc(PAIR_BUF_BYTES);
    p.mask = malloc(PAIR_BUF_BYTES / 8 + 1);
    assert_non_null(p.buf);
    assert_non_null(p.mask);
    for (int k = 0; k < 2; k++) p.s[k] = tu_store_open(&p.o[k]);
    for (int i = 0; i < 12; i++) step_create(&p);
    const char *steps_env = getenv("MMSB_TEST_STEPS"); /* make test-gpu: 100,000 */
    uint32_t steps = steps_env != NULL ? (uint32_t)strtoul(steps_env, NULL, 10) : 2500;
    for (uint32_t step = 0; step < steps; step++) {
        uint64_t what = rng_below(&p.r, 100);
        if (what < 6) step_create(&p);
        else if (what < 9) step_derive(&p);
        else if (what < 11) step_free(&p);
        else step_change(&p);
        roots_equal(&p);
        uint64_t id = some_page(&p);
        if (step % 8 == 0 && page_info(p.s[0].e, id).location == MMSB_LOC_DEVICE) copy_matches_mirror(p.s[0].e, id);
        if (step == 1200) swap_reopen(&p);
        if (step == 1200) roots_equal(&p);
    }
    mmsb_engineinfo with = tu_info(p.s[0].e), without = tu_info(p.s[1].e);
    assert_true(with.gpu_pages > 0 && with.gpu_calls > 0);
    assert_int_equal(with.gpu_lost, 0);
    assert_int_equal(with.commits, without.commits);
    assert_int_equal(with.recomputes, without.recomputes);
    assert_int_equal(with.skips, without.skips);
    assert_int_equal(with.backdates, without.backdates);
    swap_reopen(&p);
    roots_equal(&p);
    for (int k = 0; k < 2; k++) TU_OK(mmsb_close(p.s[k].e));
    logs_equal(p.s[0].dir, p.s[1].dir);
    for (int k = 0; k < 2; k++) tu_dir_remove(p.s[k].dir);
    free(p.buf);
    free(p.mask);
}

/* ---- host pages never touch the device ---------------------------------------------------- */

static void test_host_pages_make_no_device_call(void **state) {
    (void)state;
    mmsb_options o = device_options(DEVICE, 1 << 20);
    tu_store s = tu_store_open(&o);
    uint64_t calls_at_open = tu_info(s.e).gpu_calls;
    uint64_t a = create(s.e, 4096, 0), b = create(s.e, 65536, 0), c = create(s.e, 65536, 0);
    uint64_t parents[1] = {b};
    mmsb_derive_spec spec = {.struct_size = sizeof spec, .op = MMSB_OP_COPY, .parents = parents, .parent_count = 1};
    TU_OK(mmsb_derive(s.e, c, &spec, NULL));
    uint8_t bytes[512];
    for (uint32_t i = 0; i < 2000; i++) {
        memset(bytes, (int)i, sizeof bytes);
        TU_OK(mmsb_write(s.e, i % 2 ? a : b, (i * 97) % 3000, bytes, sizeof bytes, NULL));
        if (i % 100 == 0) {
            mmsb_digest root;
            TU_OK(mmsb_state_root(s.e, &root));
            TU_OK(mmsb_checkpoint(s.e));
        }
    }
    TU_OK(mmsb_page_free(s.e, a));
    mmsb_engineinfo info = tu_info(s.e);
    assert_int_equal(info.gpu_pages, 0);
    assert_int_equal(info.gpu_calls, calls_at_open);
    /* one device page, and the calls start */
    uint64_t big = create(s.e, 1 << 20, 0);
    TU_OK(mmsb_write(s.e, big, 0, bytes, sizeof bytes, NULL));
    mmsb_digest d;
    TU_OK(mmsb_page_digest(s.e, big, &d));
    assert_true(tu_info(s.e).gpu_calls > calls_at_open);
    tu_store_close(&s);
}

/* ---- failures -------------------------------------------------------------------------- */

typedef struct refusal {
    const char *point;
    int calls, refuse_from; /* refuse the point's calls from this one on (1 = the first) */
} refusal;

static int refuse_point(void *ctx, const io_event *ev) {
    refusal *r = ctx;
    if (ev->kind != IO_EV_POINT || strcmp(ev->point, r->point) != 0) return 0;
    return ++r->calls >= r->refuse_from ? ENOMEM : 0;
}

static void test_device_out_of_memory_places_on_host(void **state) {
    (void)state;
    mmsb_options o = device_options(DEVICE, 4096);
    char *dir = tu_dir_new();
    refusal r = {.point = "gpu-alloc", .refuse_from = 3};
    io_hooks hooks = {.fn = refuse_point, .ctx = &r};
    mmsb_engine *e = NULL;
    TU_OK(engine_open(dir, &o, &hooks, &e));
    uint64_t ids[5];
    for (int i = 0; i < 5; i++) ids[i] = create(e, 65536, 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(page_info(e, ids[i]).location, i < 2 ? MMSB_LOC_DEVICE : MMSB_LOC_HOST);
    }
    mmsb_engineinfo info = tu_info(e);
    assert_int_equal(info.gpu_pages, 2);
    assert_int_equal(info.gpu_fallbacks, 3);
    assert_int_equal(info.gpu_lost, 0);
    uint8_t bytes[100];
    memset(bytes, 7, sizeof bytes);
    for (int i = 0; i < 5; i++) TU_OK(mmsb_write(e, ids[i], 4000, bytes, sizeof bytes, NULL));
    char before[33];
    tu_root_hex(e, before);
    TU_OK(mmsb_close(e));
    o.gpu = MMSB_GPU_OFF;
    e = tu_open(dir, &o);
    char after[33];
    tu_root_hex(e, after);
    assert_string_equal(before, after);
    TU_OK(mmsb_close(e));
    tu_dir_remove(dir);
}

/* A device that fails mid-way (a submit, then a digest): every device page
 * goes back to the host, nothing committed is lost, the roots stay those of
 * an engine without a device. */
static void device_fails_at(const char *point) {
    mmsb_options o = device_options(DEVICE, 4096);
    char *dir = tu_dir_new();
    refusal r = {.point = point, .refuse_from = 4};
    io_hooks hooks = {.fn = refuse_point, .ctx = &r};
    mmsb_engine *e = NULL;
    TU_OK(engine_open(dir, &o, &hooks, &e));
    tu_store plain = tu_store_open(NULL);
    uint64_t ids[3];
    for (int i = 0; i < 3; i++) {
        ids[i] = create(e, 3 * 4096 + 5, 0);
        assert_int_equal(create(plain.e, 3 * 4096 + 5, 0), ids[i]);
    }
    uint8_t bytes[700];
    for (uint32_t i = 0; i < 40; i++) {
        memset(bytes, (int)(i + 1), sizeof bytes);
        TU_OK(mmsb_write(e, ids[i % 3], i * 301 % 11000, bytes, sizeof bytes, NULL));
        TU_OK(mmsb_write(plain.e, ids[i % 3], i * 301 % 11000, bytes, sizeof bytes, NULL));
        tu_roots_match(e, plain.e, true);
    }
    mmsb_engineinfo info = tu_info(e);
    assert_int_equal(info.gpu_lost, 1);
    assert_int_equal(info.gpu_pages, 0);
    assert_int_equal(info.gpu_threshold_source, MMSB_GPU_THRESHOLD_NONE);
    assert_non_null(strstr(info.gpu, point));
    for (int i = 0; i < 3; i++) assert_int_equal(page_info(e, ids[i]).location, MMSB_LOC_HOST);
    assert_int_equal(page_info(e, create(e, 1 << 20, 0)).location, MMSB_LOC_HOST);
    char before[33], after[33];
    tu_root_hex(e, before);
    TU_OK(mmsb_close(e));
    mmsb_options off = device_options(MMSB_GPU_OFF, 0);
    e = tu_open(dir, &off);
    tu_root_hex(e, after);
    assert_string_equal(before, after);
    TU_OK(mmsb_close(e));
    tu_dir_remove(dir);
    tu_store_close(&plain);
}

static void test_device_failure_moves_pages_to_host(void **state) {
    (void)state;
    device_fails_at("gpu-submit");
    device_fails_at("gpu-hash");
}

/* A lanewise operation over device pages runs on the device: refusing it
 * there shows it was asked for, and the page is computed on the host
 * instead, to the same bytes; the device is then given up. */
static void test_device_computes_derived_pages(void **state) {
    (void)state;
    mmsb_options o = device_options(DEVICE, 4096);
    tu_store s = tu_store_open(&o);
    TU_OK(mmsb_close(s.e));
    refusal r = {.point = "gpu-op", .refuse_from = 4};
    io_hooks hooks = {.fn = refuse_point, .ctx = &r};
    TU_OK(engine_open(s.dir, &o, &hooks, &s.e));
    tu_store plain = tu_store_open(NULL);
    mmsb_engine *both[2] = {s.e, plain.e};
    for (int k = 0; k < 2; k++) {
        uint64_t a = create(both[k], 65536, 0), b = create(both[k], 65536, 0), c = create(both[k], 65536, 0);
        uint64_t parents[2] = {a, b};
        mmsb_derive_spec spec = {.struct_size = sizeof spec, .op = MMSB_OP_SUM_U32, .parents = parents,
                                 .parent_count = 2};
        TU_OK(mmsb_derive(both[k], c, &spec, NULL));
        uint8_t bytes[5000];
        for (uint32_t i = 0; i < 4; i++) {
            memset(bytes, (int)(0x41 + i), sizeof bytes);
            TU_OK(mmsb_write(both[k], i % 2 ? a : b, 1000 + i / 2 * 7000, bytes, sizeof bytes, NULL));
        }
    }
    /* the derive and two writes (the second where both parents have bytes)
     * computed on the device, the third refused */
    assert_int_equal(r.calls, 4);
    tu_roots_match(s.e, plain.e, true);
    assert_int_equal(tu_info(s.e).gpu_lost, 1);
    tu_store_close(&plain);
    tu_store_close(&s);
}

/* Device pages derived from device pages (COPY of a range, CONCAT, XOR)
 * are written on the device: their copies get the output there, and only
 * the parents' changes cross to the device, as many bytes as on an engine
 * where the same pages have no children. A child of a host page is
 * staged as any change. Each ends with the bytes and root an engine
 * without a device has. */
typedef struct derived_pages {
    uint64_t a, b, copy, concat, xor_ab, sum, host, of_host;
} derived_pages;

static derived_pages make_derived(mmsb_engine *e, bool children) {
    derived_pages d = {.a = create(e, 65536, 0), .b = create(e, 32768, 0)};
    uint64_t b2 = create(e, 65536, 0);
    d.host = create(e, 65536, MMSB_PAGE_HOST);
    if (!children) return d;
    d.copy = create(e, 40000, 0);
    d.concat = create(e, 65536 + 32768, 0);
    d.xor_ab = create(e, 65536, 0);
    d.sum = create(e, 65536, 0);
    d.of_host = create(e, 65536, 0);
    uint8_t range[16];
    uint64_t src = 20000, len = 40000;
    memcpy(range, &src, 8);
    memcpy(range + 8, &len, 8);
    uint64_t ab[2] = {d.a, d.b}, aa[2] = {d.a, b2};
    mmsb_derive_spec copy = {.struct_size = sizeof copy, .op = MMSB_OP_COPY, .parents = &d.a, .parent_count = 1,
                             .params = range, .params_len = sizeof range};
    mmsb_derive_spec concat = {.struct_size = sizeof concat, .op = MMSB_OP_CONCAT, .parents = ab, .parent_count = 2};
    mmsb_derive_spec xor_ab = {.struct_size = sizeof xor_ab, .op = MMSB_OP_XOR, .parents = aa, .parent_count = 2};
    mmsb_derive_spec sum = {.struct_size = sizeof sum, .op = MMSB_OP_SUM_U32, .parents = aa, .parent_count = 2};
    mmsb_derive_spec of_host = {.struct_size = sizeof of_host, .op = MMSB_OP_COPY, .parents = &d.host,
                                .parent_count = 1};
    TU_OK(mmsb_derive(e, d.copy, &copy, NULL));
    TU_OK(mmsb_derive(e, d.concat, &concat, NULL));
    TU_OK(mmsb_derive(e, d.xor_ab, &xor_ab, NULL));
    TU_OK(mmsb_derive(e, d.sum, &sum, NULL));
    TU_OK(mmsb_derive(e, d.of_host, &of_host, NULL));
    return d;
}

static void write_parents(mmsb_engine *e, const derived_pages *d, uint32_t round) {
    uint8_t bytes[9000];
    memset(bytes, (int)(0x11 * (round + 1)), sizeof bytes);
    TU_OK(mmsb_write(e, d->a, 15000 + round * 3001, bytes, sizeof bytes, NULL));
    TU_OK(mmsb_write(e, d->b, 30000 - round * 1000, bytes, 2768, NULL));
}

static void test_device_writes_derived_pages_there(void **state) {
    (void)state;
    mmsb_options o = device_options(DEVICE, 4096);
    tu_store s = tu_store_open(&o), bare = tu_store_open(&o), plain = tu_store_open(NULL);
    derived_pages d = make_derived(s.e, true), p = make_derived(plain.e, true);
    (void)make_derived(bare.e, false);
    assert_int_equal(page_info(s.e, d.of_host).location, MMSB_LOC_DEVICE);
    uint8_t host_bytes[4096];
    memset(host_bytes, 0x5a, sizeof host_bytes);
    for (uint32_t round = 0; round < 6; round++) {
        uint64_t staged = gpu_dev_staged_bytes(s.e->dv.dev), bare_staged = gpu_dev_staged_bytes(bare.e->dv.dev);
        write_parents(s.e, &d, round);
        write_parents(bare.e, &d, round);
        write_parents(plain.e, &p, round);
        uint64_t sent = gpu_dev_staged_bytes(s.e->dv.dev) - staged;
        assert_int_equal(sent, gpu_dev_staged_bytes(bare.e->dv.dev) - bare_staged);
        tu_roots_match(s.e, plain.e, true);
    }
    uint64_t staged = gpu_dev_staged_bytes(s.e->dv.dev);
    TU_OK(mmsb_write(s.e, d.host, 100, host_bytes, sizeof host_bytes, NULL));
    TU_OK(mmsb_write(plain.e, p.host, 100, host_bytes, sizeof host_bytes, NULL));
    assert_true(gpu_dev_staged_bytes(s.e->dv.dev) - staged >= sizeof host_bytes); /* COPY of a host page */
    uint64_t children[5] = {d.copy, d.concat, d.xor_ab, d.sum, d.of_host};
    for (int i = 0; i < 5; i++) copy_matches_mirror(s.e, children[i]);
    tu_roots_match(s.e, plain.e, true);
    assert_int_equal(tu_info(s.e).gpu_lost, 0);
    tu_store_close(&plain);
    tu_store_close(&bare);
    tu_store_close(&s);
}

/* Lanewise device pages ready at one time (six children of one parent)
 * come from the device in one wait, not one each, with the bytes and root
 * an engine without a device gets. */
static void test_device_ready_pages_share_one_wait(void **state) {
    (void)state;
    enum { CHILDREN = 6 };
    mmsb_options o = device_options(DEVICE, 4096);
    tu_store s = tu_store_open(&o), plain = tu_store_open(NULL);
    mmsb_engine *both[2] = {s.e, plain.e};
    uint64_t a = 0, children[CHILDREN];
    for (int k = 0; k < 2; k++) {
        a = create(both[k], 65536, 0);
        uint64_t b = create(both[k], 65536, 0), parents[2] = {a, b};
        for (int i = 0; i < CHILDREN; i++) {
            children[i] = create(both[k], 65536, 0);
            mmsb_derive_spec spec = {.struct_size = sizeof spec, .op = i % 2 ? MMSB_OP_XOR : MMSB_OP_MAX_U32,
                                     .parents = parents, .parent_count = 2};
            TU_OK(mmsb_derive(both[k], children[i], &spec, NULL));
        }
    }
    uint8_t bytes[3000], mask[3000 / 8];
    memset(mask, 0xFF, sizeof mask);
    for (uint32_t round = 0; round < 4; round++) {
        memset(bytes, (int)(0x21 + round), sizeof bytes);
        uint64_t waits = gpu_dev_waits(s.e->dv.dev);
        mmsb_commit_result res[2];
        for (int k = 0; k < 2; k++) {
            res[k] = (mmsb_commit_result){.struct_size = sizeof res[k]};
            mmsb_delta d = {.page_id = a, .offset = round * 5000, .len = sizeof bytes, .mask = mask,
                            .payload = bytes, .payload_len = sizeof bytes};
            TU_OK(mmsb_apply_batch(both[k], &d, 1, 0, &res[k]));
        }
        assert_int_equal(gpu_dev_waits(s.e->dv.dev) - waits, 1);
        assert_int_equal(res[0].recomputes, CHILDREN);
        assert_int_equal(res[1].recomputes, CHILDREN);
        tu_roots_match(s.e, plain.e, true);
    }
    for (int i = 0; i < CHILDREN; i++) copy_matches_mirror(s.e, children[i]);
    tu_store_close(&plain);
    tu_store_close(&s);
}

/* A commit that fails after the device wrote a derived page's copy: its
 * copy gets the mirror's bytes back, whether the failure comes before the
 * change (its record refused: gpu-derived-record), after it (a later
 * page's user operation fails and the journal undoes the change), or
 * before the page's turn (XOR's record refused while SUM's output,
 * computed ahead with it, waits for its turn). */
static int fail_op(void *user, const mmsb_op_input *in, uint8_t *out, uint64_t out_len) {
    (void)in;
    memset(out, 7, out_len);
    return *(const bool *)user ? -1 : 0;
}

static void test_device_derived_copy_restored_on_failure(void **state) {
    (void)state;
    mmsb_options o = device_options(DEVICE, 4096);
    tu_store s = tu_store_open(&o);
    TU_OK(mmsb_close(s.e));
    refusal r = {.point = "gpu-derived-record", .refuse_from = INT32_MAX};
    io_hooks hooks = {.fn = refuse_point, .ctx = &r};
    TU_OK(engine_open(s.dir, &o, &hooks, &s.e));
    bool fail = false;
    TU_OK(mmsb_op_register(s.e, MMSB_OP_USER_FIRST, 1, fail_op, &fail));
    derived_pages d = make_derived(s.e, true);
    uint64_t user = create(s.e, 4096, MMSB_PAGE_HOST); /* after the children: computed last */
    mmsb_derive_spec spec = {.struct_size = sizeof spec, .op = MMSB_OP_USER_FIRST, .parents = &d.a,
                             .parent_count = 1};
    TU_OK(mmsb_derive(s.e, user, &spec, NULL));
    uint64_t children[4] = {d.copy, d.concat, d.xor_ab, d.sum};
    assert_int_equal(r.calls, 4); /* each device child's derive */
    /* the records refused, by the point's calls of a round: copy's, none,
     * xor's (copy, concat, xor, sum) */
    const int refused_at[3] = {1, 0, 3};
    char before[33], after[33];
    for (int round = 0; round < 3; round++) {
        tu_root_hex(s.e, before);
        uint8_t bytes[9000];
        memset(bytes, 0x99 + round, sizeof bytes);
        fail = round == 1;
        r.refuse_from = refused_at[round] != 0 ? r.calls + refused_at[round] : INT32_MAX;
        int rc = mmsb_write(s.e, d.a, 21000, bytes, sizeof bytes, NULL);
        assert_int_equal(rc, round == 1 ? MMSB_EOP : MMSB_EIO);
        if (round != 1) assert_non_null(strstr(mmsb_last_error(), "gpu-derived-record"));
        for (int i = 0; i < 4; i++) copy_matches_mirror(s.e, children[i]);
        tu_root_hex(s.e, after);
        assert_string_equal(before, after);
    }
    assert_int_equal(r.calls, 4 + 1 + 4 + 3);
    assert_int_equal(tu_info(s.e).gpu_lost, 0);
    tu_store_close(&s);
}

/* The wait for lanewise outputs fails (gpu-op-wait): the device is given
 * up, the pages are computed on the host in the same commit, and the roots
 * are an engine's without a device. */
static void test_device_op_wait_failure(void **state) {
    (void)state;
    mmsb_options o = device_options(DEVICE, 4096);
    tu_store s = tu_store_open(&o);
    TU_OK(mmsb_close(s.e));
    refusal r = {.point = "gpu-op-wait", .refuse_from = 2};
    io_hooks hooks = {.fn = refuse_point, .ctx = &r};
    TU_OK(engine_open(s.dir, &o, &hooks, &s.e));
    tu_store plain = tu_store_open(NULL);
    mmsb_engine *both[2] = {s.e, plain.e};
    uint64_t a = 0, child = 0;
    for (int k = 0; k < 2; k++) {
        a = create(both[k], 65536, 0);
        uint64_t b = create(both[k], 65536, 0), parents[2] = {a, b};
        child = create(both[k], 65536, 0);
        mmsb_derive_spec spec = {.struct_size = sizeof spec, .op = MMSB_OP_SUM_U64, .parents = parents,
                                 .parent_count = 2};
        TU_OK(mmsb_derive(both[k], child, &spec, NULL)); /* the first wait */
    }
    uint8_t bytes[4000];
    memset(bytes, 0x5c, sizeof bytes);
    for (int k = 0; k < 2; k++) TU_OK(mmsb_write(both[k], a, 800, bytes, sizeof bytes, NULL));
    assert_int_equal(r.calls, 2);
    assert_int_equal(tu_info(s.e).gpu_lost, 1);
    assert_int_equal(page_info(s.e, child).location, MMSB_LOC_HOST);
    tu_roots_match(s.e, plain.e, true);
    tu_store_close(&plain);
    tu_store_close(&s);
}

/* A device view whose wait fails: MMSB_EIO; the page is a host page after
 * the next commit, and nothing committed is lost. */
static void test_device_view_failure(void **state) {
    (void)state;
    mmsb_options o = device_options(DEVICE, 4096);
    tu_store s = tu_store_open(&o);
    TU_OK(mmsb_close(s.e));
    refusal r = {.point = "gpu-view", .refuse_from = 2};
    io_hooks hooks = {.fn = refuse_point, .ctx = &r};
    TU_OK(engine_open(s.dir, &o, &hooks, &s.e));
    uint64_t id = create(s.e, 65536, 0);
    uint8_t bytes[64];
    memset(bytes, 3, sizeof bytes);
    TU_OK(mmsb_write(s.e, id, 100, bytes, sizeof bytes, NULL));
    copy_matches_mirror(s.e, id);
    mmsb_device_view v = {.struct_size = sizeof v};
    TU_ERR(mmsb_page_device_view(s.e, id, &v), MMSB_EIO);
    assert_non_null(strstr(mmsb_last_error(), "gpu-view"));
    TU_OK(mmsb_write(s.e, id, 200, bytes, sizeof bytes, NULL));
    assert_int_equal(page_info(s.e, id).location, MMSB_LOC_HOST);
    TU_ERR(mmsb_page_device_view(s.e, id, &v), MMSB_ENOTSUP);
    uint8_t back[64];
    TU_OK(mmsb_page_read(s.e, id, 200, back, sizeof back, NULL));
    assert_memory_equal(back, bytes, sizeof bytes);
    assert_int_equal(tu_info(s.e).gpu_lost, 1);
    tu_store_close(&s);
}

/* The state root hashes the dirty chunks of every changed device page in
 * one device call, not one per page, and gets the root an engine without a
 * device gets. */
static void test_root_hashes_device_pages_in_one_call(void **state) {
    (void)state;
    mmsb_options o = device_options(DEVICE, 4096);
    o.root_every_commits = 1000; /* the commits below compute no root */
    tu_store s = tu_store_open(&o);
    mmsb_options off = device_options(MMSB_GPU_OFF, 0);
    off.root_every_commits = 1000;
    tu_store plain = tu_store_open(&off);
    uint64_t ids[12];
    uint8_t bytes[300];
    for (int i = 0; i < 12; i++) {
        ids[i] = create(s.e, (uint64_t)(i + 3) * 4096 + 7, 0);
        assert_int_equal(create(plain.e, (uint64_t)(i + 3) * 4096 + 7, 0), ids[i]);
        assert_int_equal(page_info(s.e, ids[i]).location, MMSB_LOC_DEVICE);
    }
    tu_roots_match(s.e, plain.e, true);
    for (int i = 0; i < 12; i++) {
        memset(bytes, i + 1, sizeof bytes);
        for (int k = 0; k < 3; k++) { /* three chunks of each page */
            TU_OK(mmsb_write(s.e, ids[i], (uint64_t)k * 4096 + 100, bytes, sizeof bytes, NULL));
            TU_OK(mmsb_write(plain.e, ids[i], (uint64_t)k * 4096 + 100, bytes, sizeof bytes, NULL));
        }
    }
    uint64_t before = tu_info(s.e).gpu_calls;
    char root[33], want[33];
    tu_root_hex(s.e, root);
    assert_int_equal(tu_info(s.e).gpu_calls - before, 1); /* 36 chunks of 12 pages: one call */
    tu_root_hex(plain.e, want);
    assert_string_equal(root, want);
    tu_store_close(&plain);
    tu_store_close(&s);
}

/* A device that fails its check at open is not used: the engine opens with
 * every page on the host, and the engine info says why. */
static void test_device_failing_its_check_is_not_used(void **state) {
    (void)state;
    mmsb_options o = device_options(DEVICE, 0);
    char *dir = tu_dir_new();
    refusal r = {.point = "gpu-check", .refuse_from = 1};
    io_hooks hooks = {.fn = refuse_point, .ctx = &r};
    mmsb_engine *e = NULL;
    TU_OK(engine_open(dir, &o, &hooks, &e));
    assert_int_equal(r.calls, 1);
    mmsb_engineinfo info = tu_info(e);
    assert_string_equal(info.gpu_device, "");
    assert_int_equal(info.gpu_threshold_source, MMSB_GPU_THRESHOLD_NONE);
    assert_non_null(strstr(info.gpu, "not used"));
    assert_non_null(strstr(info.gpu, "gpu-check"));
    assert_int_equal(page_info(e, create(e, 1 << 20, 0)).location, MMSB_LOC_HOST);
    uint64_t id;
    TU_ERR(mmsb_page_create(e, 4096, MMSB_PAGE_DEVICE, &id), MMSB_ENOTSUP);
    TU_OK(mmsb_close(e));
    tu_dir_remove(dir);
}

/* The check at open, at every size it measures (64 KiB to 2 MiB: deltas
 * split into many items, a copy in pieces), passes on the emulated device,
 * and reports each size's timing. */
static void test_device_check_at_every_size(void **state) {
    (void)state;
    mmsb_options o = device_options(DEVICE, 0);
    tu_store s = tu_store_open(&o);
    calibrate_result cal;
    TU_OK(calibrate_check(s.e, s.e->dv.dev, CALIBRATE_SIZES, &cal));
    assert_int_equal(cal.sizes, CALIBRATE_SIZES);
    for (uint32_t k = 0; k < CALIBRATE_SIZES; k++) {
        assert_int_equal(cal.size_bytes[k], (64u << 10) << (k == 3 ? 5 : 2 * k));
        assert_true(cal.host_ns[k] > 0 && cal.host_ns[k] < UINT64_MAX);
        assert_true(cal.device_ns[k] > 0 && cal.device_ns[k] < UINT64_MAX);
    }
    assert_true(cal.threshold_bytes == UINT64_MAX || cal.threshold_bytes >= cal.size_bytes[0]);
    tu_store_close(&s);
}

static void write_file(int dir_fd, const char *name, const char *text, size_t len) {
    int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
}

/* The threshold's cache: one line per device, other devices' lines kept,
 * and anything malformed read as no threshold (the next open measures). */
static void test_threshold_cache(void **state) {
    (void)state;
    char *dir = tu_dir_new();
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    uint64_t t = 0;
    assert_false(calibrate_cache_read(dfd, "gpu A", &t));
    TU_OK(calibrate_cache_write(dfd, "gpu A", 262144));
    TU_OK(calibrate_cache_write(dfd, "gpu B (driver 13.0)", UINT64_MAX));
    assert_true(calibrate_cache_read(dfd, "gpu A", &t));
    assert_int_equal(t, 262144);
    assert_true(calibrate_cache_read(dfd, "gpu B (driver 13.0)", &t));
    assert_true(t == UINT64_MAX);
    assert_false(calibrate_cache_read(dfd, "gpu B (driver 13.1)", &t));
    TU_OK(calibrate_cache_write(dfd, "gpu A", 65536)); /* replaced, B kept */
    assert_true(calibrate_cache_read(dfd, "gpu A", &t));
    assert_int_equal(t, 65536);
    assert_true(calibrate_cache_read(dfd, "gpu B (driver 13.0)", &t));
    static const char *const bad[] = {
        "mmsb gpu-threshold 2\n65536 gpu A\n", /* another format */
        "mmsb gpu-threshold 1\n65536 gpu A",   /* a torn line */
        "mmsb gpu-threshold 1\n0 gpu A\n",
        "mmsb gpu-threshold 1\n-5 gpu A\n",
        "mmsb gpu-threshold 1\n 65536 gpu A\n",
        "mmsb gpu-threshold 1\n65x36 gpu A\n",
        "mmsb gpu-threshold 1\n99999999999999999999999 gpu A\n",
        "mmsb gpu-threshold 1\n65536gpu A\n",
        "",
        "\n\n\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(dfd, "gpu-threshold", bad[i], strlen(bad[i]));
        assert_false(calibrate_cache_read(dfd, "gpu A", &t));
    }
    static const char nul[] = "mmsb gpu-threshold 1\n65536 gpu A\0\n";
    write_file(dfd, "gpu-threshold", nul, sizeof nul - 1);
    assert_false(calibrate_cache_read(dfd, "gpu A", &t));
    char *big = malloc(8192);
    assert_non_null(big);
    memset(big, 'x', 8192);
    memcpy(big, "mmsb gpu-threshold 1\n65536 gpu A\n", 32);
    write_file(dfd, "gpu-threshold", big, 8192);
    assert_false(calibrate_cache_read(dfd, "gpu A", &t));
    free(big);
    TU_OK(calibrate_cache_write(dfd, "gpu A", 4096)); /* a malformed file is replaced whole */
    assert_true(calibrate_cache_read(dfd, "gpu A", &t));
    assert_int_equal(t, 4096);
    static const char mixed[] = "mmsb gpu-threshold 1\n12x gpu C\n8192 gpu D\n";
    write_file(dfd, "gpu-threshold", mixed, sizeof mixed - 1); /* a damaged line of another device */
    TU_OK(calibrate_cache_write(dfd, "gpu A", 1024));
    char text[256] = {0};
    int fd = openat(dfd, "gpu-threshold", O_RDONLY);
    assert_true(fd >= 0 && read(fd, text, sizeof text - 1) > 0);
    close(fd);
    assert_string_equal(text, "mmsb gpu-threshold 1\n1024 gpu A\n8192 gpu D\n");
    /* random bytes after the magic (a file it may read): never past the
     * file, and a threshold only from a well-formed line */
    rng r = {0x6361636865};
    char *noise = malloc(5000);
    assert_non_null(noise);
    for (int round = 0; round < 3000; round++) {
        size_t len = (size_t)rng_below(&r, 4200);
        rng_fill(&r, noise, len);
        if (len >= 21 && rng_below(&r, 4) != 0) memcpy(noise, "mmsb gpu-threshold 1\n", 21);
        for (size_t k = 21; k < len; k++) { /* mostly digits, spaces, newlines and a device's letters */
            uint64_t pick = rng_below(&r, 8);
            if (pick < 6) noise[k] = "0123456789 \ngpu A"[rng_below(&r, 17)];
        }
        write_file(dfd, "gpu-threshold", noise, len);
        if (calibrate_cache_read(dfd, "gpu A", &t)) assert_true(t > 0);
    }
    free(noise);
    close(dfd);
    tu_dir_remove(dir);
}

/* With MMSB_TEST_DEVICE=cuda: the CUDA device, which must be found and
 * pass its check at open (else the run fails, saying why). */
static int choose_device(void) {
    const char *want = getenv("MMSB_TEST_DEVICE");
    if (want == NULL || strcmp(want, "cuda") != 0) return 0;
    DEVICE = MMSB_GPU_AUTO;
    mmsb_options o = device_options(DEVICE, 0);
    tu_store s = tu_store_open(&o);
    mmsb_engineinfo info = tu_info(s.e);
    bool found = s.e->dv.dev != NULL && gpu_dev_kind(s.e->dv.dev) == MMSB_GPU_CUDA;
    printf("test_device: %s: %s\n", found ? info.gpu_device : "no CUDA device in use", info.gpu);
    tu_store_close(&s);
    return found ? 0 : 1;
}

int main(void) {
    if (choose_device() != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_placement_by_size_and_flags),
        cmocka_unit_test(test_default_threshold_and_refusals),
        cmocka_unit_test(test_export_keeps_flags),
        cmocka_unit_test(test_same_state_with_and_without_device),
        cmocka_unit_test(test_host_pages_make_no_device_call),
        cmocka_unit_test(test_device_out_of_memory_places_on_host),
        cmocka_unit_test(test_device_failure_moves_pages_to_host),
        cmocka_unit_test(test_device_view_failure),
        cmocka_unit_test(test_device_computes_derived_pages),
        cmocka_unit_test(test_device_writes_derived_pages_there),
        cmocka_unit_test(test_device_ready_pages_share_one_wait),
        cmocka_unit_test(test_device_op_wait_failure),
        cmocka_unit_test(test_device_derived_copy_restored_on_failure),
        cmocka_unit_test(test_root_hashes_device_pages_in_one_call),
        cmocka_unit_test(test_device_failing_its_check_is_not_used),
        cmocka_unit_test(test_device_check_at_every_size),
        cmocka_unit_test(test_threshold_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
