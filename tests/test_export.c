/*
 * test_export.c - mmsb_export and mmsb_import: a store's state carried
 * through a stream into a new store reaches the same state root, page for
 * page and derivation for derivation, and goes on the same way under the
 * same operations; from every kind of store (live writer, read-only,
 * pruned, crashed, empty); and every bad argument, target directory or
 * damaged stream is refused with nothing left behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../engine/base/bytes.h"
#include "../engine/base/crc32c.h"
#include "../tlog/export.h"
#include "testutil.h"

enum { BIG_PAGE_BYTES = (1u << 20) + 3 * 4096 + 5, FUTURE_STEPS = 60 };

/* ---- helpers ------------------------------------------------------------------------------ */

static mmsb_options small_options(void) {
    mmsb_options o;
    tu_options_small(&o);
    return o;
}

static uint64_t new_page(mmsb_engine *e, uint64_t size) {
    uint64_t id;
    TU_OK(mmsb_page_create(e, size, 0, &id));
    return id;
}

static void write_random(mmsb_engine *e, rng *r, uint64_t id, uint64_t size) {
    uint8_t buf[512];
    uint64_t len = 1 + rng_below(r, size < sizeof buf ? size : sizeof buf);
    uint64_t off = rng_below(r, size - len + 1);
    rng_fill(r, buf, len);
    TU_OK(mmsb_write(e, id, off, buf, len, NULL));
}

static void derive(mmsb_engine *e, uint64_t child, uint32_t op, const uint64_t *parents, uint32_t count) {
    mmsb_derive_spec spec = {.struct_size = sizeof spec, .op = op, .parents = parents, .parent_count = count};
    TU_OK(mmsb_derive(e, child, &spec, NULL));
}

/* Base pages of several sizes (one over a MiB whose first MiB stays zero),
 * freed ids in the middle and at the end, and derived pages two levels deep. */
typedef struct world {
    uint64_t base[6], base_size[6];
    uint64_t xor_child, sum_child, cat_child, deep_child;
} world;

static void build_world(mmsb_engine *e, world *w, uint64_t seed) {
    rng r = {.state = seed};
    const uint64_t sizes[6] = {64, 64, 4096, 4096, 5000, BIG_PAGE_BYTES};
    for (int i = 0; i < 6; i++) {
        w->base[i] = new_page(e, sizes[i]);
        w->base_size[i] = sizes[i];
    }
    uint64_t doomed = new_page(e, 100);
    w->xor_child = new_page(e, 64);
    w->sum_child = new_page(e, 4096);
    w->cat_child = new_page(e, 128);
    w->deep_child = new_page(e, 128);
    uint64_t last = new_page(e, 8);
    TU_OK(mmsb_page_free(e, doomed));
    TU_OK(mmsb_page_free(e, last)); /* ids past the last live one were handed out */
    for (int round = 0; round < 40; round++) {
        int i = (int)rng_below(&r, 5);
        write_random(e, &r, w->base[i], w->base_size[i]);
    }
    uint8_t tail[64];
    memset(tail, 0xab, sizeof tail);
    TU_OK(mmsb_write(e, w->base[5], BIG_PAGE_BYTES - sizeof tail, tail, sizeof tail, NULL));
    derive(e, w->xor_child, MMSB_OP_XOR, (uint64_t[]){w->base[0], w->base[1]}, 2);
    derive(e, w->sum_child, MMSB_OP_SUM_U32, (uint64_t[]){w->base[2], w->base[3]}, 2);
    derive(e, w->cat_child, MMSB_OP_CONCAT, (uint64_t[]){w->base[1], w->xor_child}, 2);
    derive(e, w->deep_child, MMSB_OP_MAX_U8, (uint64_t[]){w->cat_child}, 1);
    for (int round = 0; round < 20; round++) write_random(e, &r, w->base[rng_below(&r, 4)], 64);
}

/* The test's source store, with the world built in it. */
static mmsb_engine *source_with_world(const char *src, world *w, uint64_t seed) {
    mmsb_options o = small_options();
    mmsb_engine *e = tu_open(src, &o);
    build_world(e, w, seed);
    return e;
}

/* An anonymous file holding e's export, at offset 0. */
static int export_fd(mmsb_engine *e, mmsb_transfer_info *info) {
    int fd = memfd_create("export", MFD_CLOEXEC);
    assert_true(fd >= 0);
    mmsb_transfer_info t = {.struct_size = sizeof t};
    TU_OK(mmsb_export(e, fd, info != NULL ? info : &t));
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

static char *import_path(const char *parent, const char *name) {
    char *p = malloc(strlen(parent) + strlen(name) + 2);
    sprintf(p, "%s/%s", parent, name);
    return p;
}

/* A fresh directory holding the places a test uses: a source store and
 * two import targets (none of them made yet). */
typedef struct places {
    char *parent, *src, *one, *two;
} places;

static places places_new(void) {
    places p = {.parent = tu_dir_new()};
    p.src = import_path(p.parent, "src");
    p.one = import_path(p.parent, "one");
    p.two = import_path(p.parent, "two");
    return p;
}

static void places_free(places *p) {
    free(p->src);
    free(p->one);
    free(p->two);
    tu_dir_remove(p->parent);
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static void assert_nothing_left(const char *dir) {
    char stage[4200];
    snprintf(stage, sizeof stage, "%s.importing", dir);
    if (exists(dir)) fail_msg("%s exists after a failed import", dir);
    if (exists(stage)) fail_msg("%s exists after a failed import", stage);
}

/* After a successful import: the store, and no staging directory. */
static void assert_nothing_left_but(const char *dir) {
    char stage[4200];
    snprintf(stage, sizeof stage, "%s.importing", dir);
    assert_true(exists(dir));
    assert_false(exists(stage));
}

/* Two engines hold the same pages (ids, sizes, epochs, bytes), the same
 * derivations (operation, parents, signature) and the same state root. */
static void assert_same_state(mmsb_engine *a, mmsb_engine *b) {
    tu_roots_match(a, b, true);
    mmsb_engineinfo ia = tu_info(a), ib = tu_info(b);
    assert_int_equal(ia.page_id_next, ib.page_id_next);
    assert_int_equal(ia.pages_live, ib.pages_live);
    static uint8_t ba[BIG_PAGE_BYTES], bb[BIG_PAGE_BYTES];
    for (uint64_t id = 1; id < ia.page_id_next; id++) {
        mmsb_pageinfo pa = {.struct_size = sizeof pa}, pb = {.struct_size = sizeof pb};
        int ra = mmsb_page_info(a, id, &pa), rb = mmsb_page_info(b, id, &pb);
        assert_int_equal(ra, rb);
        if (ra != 0) continue;
        assert_int_equal(pa.size_bytes, pb.size_bytes);
        assert_int_equal(pa.epoch, pb.epoch);
        assert_true(pa.size_bytes <= sizeof ba);
        TU_OK(mmsb_page_read(a, id, 0, ba, pa.size_bytes, NULL));
        TU_OK(mmsb_page_read(b, id, 0, bb, pb.size_bytes, NULL));
        assert_memory_equal(ba, bb, pa.size_bytes);
        mmsb_deriveinfo da = {.struct_size = sizeof da}, db = {.struct_size = sizeof db};
        uint64_t parents_a[8], parents_b[8];
        TU_OK(mmsb_derive_info(a, id, &da, parents_a, 8));
        TU_OK(mmsb_derive_info(b, id, &db, parents_b, 8));
        assert_int_equal(da.op, db.op);
        assert_int_equal(da.parent_count, db.parent_count);
        assert_int_equal(da.child_count, db.child_count);
        assert_memory_equal(da.signature.bytes, db.signature.bytes, sizeof da.signature.bytes);
        if (da.op != 0) assert_memory_equal(parents_a, parents_b, 8 * da.parent_count);
    }
}

/* The same operations on both engines: the same commits' results and roots
 * after each (propagation skips and recomputes alike, ids are handed out
 * alike). */
static void assert_same_future(mmsb_engine *a, mmsb_engine *b, const world *w, uint64_t seed) {
    mmsb_engine *e[2] = {a, b};
    uint64_t extra[2] = {0, 0};
    for (int step = 0; step < FUTURE_STEPS; step++) {
        mmsb_commit_result res[2];
        for (int k = 0; k < 2; k++) {
            rng r = {.state = seed + (uint64_t)step};
            res[k] = (mmsb_commit_result){.struct_size = sizeof res[k]};
            uint64_t pick = rng_below(&r, 6);
            uint8_t bytes[64];
            rng_fill(&r, bytes, sizeof bytes);
            mmsb_delta d = {.page_id = w->base[pick], .offset = rng_below(&r, 32), .len = 32, .payload = bytes,
                            .payload_len = 32,
                            .mask = (const uint8_t[4]){0xff, 0x0f, 0xf0, 0x3c}};
            if (step == 10) {
                extra[k] = new_page(e[k], 64);
            } else if (step == 20) {
                derive(e[k], extra[k], MMSB_OP_SUM_U64, (uint64_t[]){w->base[0], w->xor_child}, 2);
            } else if (step == 30) {
                TU_OK(mmsb_page_free(e[k], extra[k]));
            } else {
                TU_OK(mmsb_apply_batch(e[k], &d, 1, MMSB_DURABILITY_NONE, &res[k]));
            }
        }
        assert_int_equal(res[0].recomputes, res[1].recomputes);
        assert_int_equal(res[0].skips, res[1].skips);
        assert_int_equal(res[0].backdates, res[1].backdates);
        assert_int_equal(extra[0], extra[1]);
        tu_roots_match(a, b, true);
    }
}

/* ---- round trips -------------------------------------------------------------------------- */

/* A live writer's export, imported: the same state, and the same future. */
static void test_round_trip_from_writer(void **state) {
    (void)state;
    places at = places_new();
    const char *src = at.src, *dst = at.one;
    mmsb_options o = small_options();
    world w;
    mmsb_engine *a = source_with_world(src, &w, 7);
    mmsb_transfer_info out = {.struct_size = sizeof out}, in = {.struct_size = sizeof in};
    int fd = export_fd(a, &out);
    mmsb_engineinfo ia = tu_info(a);
    assert_int_equal(out.pages, ia.pages_live);
    assert_int_equal(out.derived, 5 - 1); /* xor, sum, cat, deep */
    assert_int_equal(out.page_id_next, ia.page_id_next);
    assert_int_equal(out.stream_bytes, (uint64_t)lseek(fd, 0, SEEK_END));
    assert_true(out.stream_bytes < out.page_bytes); /* the big page's zero MiB is left out */
    lseek(fd, 0, SEEK_SET);
    TU_OK(mmsb_import(dst, &o, fd, &in));
    close(fd);
    assert_int_equal(in.stream_bytes, out.stream_bytes);
    assert_int_equal(in.commit_seq, out.commit_seq);
    assert_memory_equal(in.state_root.bytes, out.state_root.bytes, 16);
    mmsb_digest root;
    TU_OK(mmsb_state_root(a, &root));
    assert_memory_equal(root.bytes, out.state_root.bytes, 16);
    mmsb_engine *b = tu_open(dst, &o);
    assert_same_state(a, b);
    assert_same_future(a, b, &w, 1000);
    TU_OK(mmsb_close(b)); /* and the imported store reopens to its new state */
    b = tu_open(dst, &o);
    assert_same_state(a, b);
    TU_OK(mmsb_close(a));
    TU_OK(mmsb_close(b));
    places_free(&at);
}

/* The log of an imported store: records continue the source's numbers and
 * its chain; the reader starts at the checkpoint like a pruned log's. */
static void test_imported_log_continues(void **state) {
    (void)state;
    places at = places_new();
    const char *src = at.src, *dst = at.one;
    mmsb_options o = small_options();
    world w;
    mmsb_engine *a = source_with_world(src, &w, 8);
    mmsb_transfer_info out = {.struct_size = sizeof out};
    int fd = export_fd(a, &out);
    TU_OK(mmsb_import(dst, &o, fd, NULL));
    close(fd);
    uint64_t records = 0;
    TU_OK(tu_log_read_all(dst, &records));
    assert_true(records >= 2); /* the checkpoint's marker and the import's clean close */
    mmsb_log_reader *rd;
    TU_OK(mmsb_log_open(dst, 0, &rd));
    mmsb_log_record rec = {.struct_size = sizeof rec};
    TU_OK(mmsb_log_next(rd, &rec));
    assert_int_equal(rec.seq, out.commit_seq + 1);
    assert_int_equal(rec.type, MMSB_REC_CHECKPOINT);
    TU_OK(mmsb_log_close(rd));
    mmsb_engine *b = tu_open(dst, &o);
    mmsb_change ch;
    TU_OK(mmsb_write(b, w.base[0], 0, "after", 5, &ch));
    assert_true(ch.commit_seq > out.commit_seq + 1);
    TU_OK(mmsb_close(b));
    b = tu_open(dst, &o);
    uint8_t got[5];
    TU_OK(mmsb_page_read(b, w.base[0], 0, got, 5, NULL));
    assert_memory_equal(got, "after", 5);
    TU_OK(mmsb_close(b));
    TU_OK(mmsb_close(a));
    places_free(&at);
}

/* A closed store whose log was pruned by retention, exported through a
 * read-only open; and an imported store exported and imported again. */
static void test_round_trip_pruned_and_twice(void **state) {
    (void)state;
    places at = places_new();
    const char *src = at.src, *one = at.one, *two = at.two;
    mmsb_options o = small_options();
    world w;
    mmsb_engine *a = source_with_world(src, &w, 9);
    uint8_t block[60000];
    rng r = {.state = 3};
    for (int i = 0; i < 200; i++) { /* about 12 MiB of log: several segments */
        rng_fill(&r, block, sizeof block);
        TU_OK(mmsb_write(a, w.base[5], 4096, block, sizeof block, NULL));
    }
    TU_OK(mmsb_checkpoint(a));
    TU_OK(mmsb_close(a));
    char seg1[4200];
    tu_segment_path(src, 1, seg1, sizeof seg1);
    assert_false(exists(seg1)); /* retention removed the first segments */
    mmsb_options ro = o;
    ro.flags = MMSB_OPEN_READONLY;
    mmsb_engine *reader = tu_open(src, &ro);
    int fd = export_fd(reader, NULL);
    TU_OK(mmsb_import(one, &o, fd, NULL));
    close(fd);
    mmsb_engine *b = tu_open(one, &ro);
    assert_same_state(reader, b);
    fd = export_fd(b, NULL);
    TU_OK(mmsb_import(two, &o, fd, NULL));
    close(fd);
    mmsb_engine *c = tu_open(two, &o);
    assert_same_state(reader, c);
    TU_OK(mmsb_close(c));
    TU_OK(mmsb_close(b));
    TU_OK(mmsb_close(reader));
    places_free(&at);
}

static void crashing_writer(const char *dir, void *ctx, int ready) {
    (void)ctx;
    mmsb_options o = small_options();
    o.durability = MMSB_DURABILITY_SYNC;
    mmsb_engine *e = tu_open(dir, &o);
    world w;
    build_world(e, &w, 11);
    tu_child_ready(ready);
    rng r = {.state = 12};
    for (uint64_t i = 0;; i++) write_random(e, &r, w.base[i % 5], w.base_size[i % 5]);
}

/* A store whose writer was killed mid-run: its read-only state exports, and
 * the import matches it (and the recovered writer's state). */
static void test_round_trip_crashed(void **state) {
    (void)state;
    places at = places_new();
    const char *src = at.src, *dst = at.one;
    assert_int_equal(mkdir(src, 0755), 0);
    int pid = tu_child_start(crashing_writer, src, NULL);
    usleep(50 * 1000);
    tu_child_kill(pid);
    mmsb_options o = small_options();
    mmsb_options ro = o;
    ro.flags = MMSB_OPEN_READONLY;
    mmsb_engine *reader = tu_open(src, &ro);
    int fd = export_fd(reader, NULL);
    TU_OK(mmsb_import(dst, &o, fd, NULL));
    close(fd);
    mmsb_engine *b = tu_open(dst, &o);
    assert_same_state(reader, b);
    TU_OK(mmsb_close(reader));
    mmsb_engine *a = tu_open(src, &o); /* recovery keeps what the reader saw */
    assert_same_state(a, b);
    TU_OK(mmsb_close(a));
    TU_OK(mmsb_close(b));
    places_free(&at);
}

/* The library's default options on both sides (64 MiB segments, SYNC,
 * the default limits), with a checkpoint and retention at the source. */
static void test_round_trip_default_options(void **state) {
    (void)state;
    places at = places_new();
    mmsb_options o;
    TU_OK(MMSB_OPTIONS_INIT(&o));
    o.gpu = tu_gpu();
    mmsb_engine *a = tu_open(at.src, &o);
    world w;
    build_world(a, &w, 17);
    TU_OK(mmsb_checkpoint(a));
    write_random(a, &(rng){.state = 5}, w.base[2], w.base_size[2]); /* and a suffix after it */
    int fd = export_fd(a, NULL);
    TU_OK(mmsb_import(at.one, &o, fd, NULL));
    close(fd);
    mmsb_engine *b = tu_open(at.one, &o);
    assert_same_state(a, b);
    assert_same_future(a, b, &w, 2000);
    TU_OK(mmsb_close(a));
    TU_OK(mmsb_close(b));
    places_free(&at);
}

/* A store with no commit, and one whose pages were all freed. */
static void test_round_trip_empty(void **state) {
    (void)state;
    places at = places_new();
    const char *src = at.src, *one = at.one, *two = at.two;
    mmsb_options o = small_options();
    mmsb_engine *a = tu_open(src, &o);
    mmsb_transfer_info t = {.struct_size = sizeof t};
    int fd = export_fd(a, &t);
    assert_int_equal(t.commit_seq, 0);
    assert_int_equal(t.page_id_next, 1);
    TU_OK(mmsb_import(one, &o, fd, &t));
    close(fd);
    mmsb_engine *b = tu_open(one, &o);
    assert_same_state(a, b);
    assert_int_equal(new_page(a, 10), new_page(b, 10));
    tu_roots_match(a, b, true);
    TU_OK(mmsb_close(b));
    TU_OK(mmsb_page_free(a, 1));
    fd = export_fd(a, &t);
    assert_int_equal(t.pages, 0);
    assert_int_equal(t.page_id_next, 2);
    TU_OK(mmsb_import(two, &o, fd, NULL));
    close(fd);
    b = tu_open(two, &o);
    assert_same_state(a, b);
    assert_int_equal(new_page(a, 10), 2);
    assert_int_equal(new_page(b, 10), 2);
    tu_roots_match(a, b, true);
    TU_OK(mmsb_close(a));
    TU_OK(mmsb_close(b));
    places_free(&at);
}

/* ---- a crash at any instant --------------------------------------------------------------- */

typedef struct import_job {
    int fd; /* the stream, at offset 0 (the child reads it through its own copy of the descriptor) */
} import_job;

static void importing_child(const char *dir, void *ctx, int ready) {
    import_job *job = ctx;
    mmsb_options o = small_options();
    o.durability = MMSB_DURABILITY_SYNC;
    tu_child_ready(ready);
    int rc = mmsb_import(dir, &o, job->fd, NULL);
    if (rc != 0) _exit(4);
    for (;;) pause(); /* until killed */
}

/* An import killed at random moments leaves either no store at dir or the
 * whole one: never a store that opens to another state. */
static void test_import_killed_at_any_moment(void **state) {
    (void)state;
    places at = places_new();
    mmsb_options o = small_options();
    mmsb_engine *a = tu_open(at.src, &o);
    rng r = {.state = 21};
    static uint8_t block[256 << 10];
    for (int i = 0; i < 64; i++) { /* 16 MiB of pages to carry */
        uint64_t id = new_page(a, sizeof block);
        rng_fill(&r, block, sizeof block);
        TU_OK(mmsb_write(a, id, 0, block, sizeof block, NULL));
    }
    import_job job = {.fd = export_fd(a, NULL)};
    char root[33];
    tu_root_hex(a, root);
    TU_OK(mmsb_close(a));
    /* An import's length here, so that the kills fall over the whole of it. */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    TU_OK(mmsb_import(at.one, &o, job.fd, NULL));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int64_t import_ns = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000000 + (t1.tv_nsec - t0.tv_nsec);
    assert_true(import_ns > 0);
    uint64_t import_us = (uint64_t)import_ns / 1000u;
    uint32_t whole = 0, none = 0;
    for (int round = 0; round < 12; round++) {
        char dir[4200], stage[4300];
        snprintf(dir, sizeof dir, "%s/round-%d", at.parent, round);
        snprintf(stage, sizeof stage, "%s.importing", dir);
        assert_int_equal(lseek(job.fd, 0, SEEK_SET), 0);
        int pid = tu_child_start(importing_child, dir, &job);
        usleep((useconds_t)rng_below(&r, import_us + import_us / 4 + 1));
        tu_child_kill(pid);
        if (exists(dir)) {
            mmsb_options ro = o;
            ro.flags = MMSB_OPEN_READONLY;
            mmsb_engine *b = tu_open(dir, &ro);
            char got[33];
            tu_root_hex(b, got);
            assert_string_equal(got, root);
            TU_OK(mmsb_close(b));
            whole++;
        } else {
            none++;
        }
        char *left = strdup(stage);
        if (exists(left)) tu_dir_remove(left); /* what the kill left: removed by hand, as documented */
        else free(left);
    }
    print_message("import (%llu us) killed 12 times: %u whole stores, %u none\n", (unsigned long long)import_us,
                  whole, none);
    close(job.fd);
    places_free(&at);
}

/* ---- refusals ------------------------------------------------------------------------------ */

static void test_import_refuses_bad_arguments(void **state) {
    (void)state;
    places at = places_new();
    const char *src = at.src, *dst = at.one;
    mmsb_options o = small_options();
    world w;
    mmsb_engine *a = source_with_world(src, &w, 13);
    int fd = export_fd(a, NULL);
    mmsb_transfer_info small = {.struct_size = 8};
    TU_ERR(mmsb_import(NULL, &o, fd, NULL), MMSB_EINVAL);
    TU_ERR(mmsb_import("", &o, fd, NULL), MMSB_EINVAL);
    TU_ERR(mmsb_import(dst, &o, -1, NULL), MMSB_EINVAL);
    TU_ERR(mmsb_import(dst, NULL, fd, NULL), MMSB_EINVAL);
    TU_ERR(mmsb_import(dst, &o, fd, &small), MMSB_EINVAL);
    mmsb_options bad = o;
    bad.flags = MMSB_OPEN_READONLY;
    TU_ERR(mmsb_import(dst, &bad, fd, NULL), MMSB_EINVAL);
    bad = o;
    bad.durability = MMSB_DURABILITY_REPLICATED;
    int rc = mmsb_import(dst, &bad, fd, NULL);
    assert_true(rc == MMSB_ENOTSUP || rc == MMSB_EINVAL);
    assert_nothing_left(dst);
    assert_int_equal(lseek(fd, 0, SEEK_CUR), 0); /* nothing was read */

    TU_ERR(mmsb_import(src, &o, fd, NULL), MMSB_EINVAL); /* a store is there */
    assert_non_null(strstr(mmsb_last_error(), "not an empty directory"));
    char stage[4200];
    snprintf(stage, sizeof stage, "%s.importing", dst);
    assert_int_equal(mkdir(stage, 0755), 0);
    TU_ERR(mmsb_import(dst, &o, fd, NULL), MMSB_EINVAL);
    assert_non_null(strstr(mmsb_last_error(), "remove it"));
    assert_int_equal(rmdir(stage), 0);

    bad = o;
    bad.pages_max = 4; /* the stream holds ids up to 12 */
    TU_ERR(mmsb_import(dst, &bad, fd, NULL), MMSB_ENOSPC);
    assert_nothing_left(dst);
    lseek(fd, 0, SEEK_SET);
    bad = o;
    bad.page_bytes_max = 4096; /* the stream holds larger pages */
    TU_ERR(mmsb_import(dst, &bad, fd, NULL), MMSB_ENOSPC);
    assert_non_null(strstr(mmsb_last_error(), "page_bytes_max"));
    assert_nothing_left(dst);
    lseek(fd, 0, SEEK_SET);
    bad = o;
    bad.arena_bytes_max = 1ull << 20; /* the big page does not fit */
    bad.arena_grow_bytes = 1ull << 20;
    bad.arena_prefault_bytes = 0;
    rc = mmsb_import(dst, &bad, fd, NULL);
    assert_true(rc == MMSB_ENOSPC || rc == MMSB_EINVAL);
    assert_nothing_left(dst);

    int unreadable = open(at.parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* read() fails: EISDIR */
    TU_ERR(mmsb_import(dst, &o, unreadable, NULL), MMSB_EIO);
    assert_non_null(strstr(mmsb_last_error(), "reading the stream"));
    assert_nothing_left(dst);
    close(unreadable);

    assert_int_equal(mkdir(dst, 0755), 0); /* an empty directory will do, named with trailing slashes */
    lseek(fd, 0, SEEK_SET);
    char slashed[4200];
    snprintf(slashed, sizeof slashed, "%s//", dst);
    TU_OK(mmsb_import(slashed, &o, fd, NULL));
    close(fd);
    assert_nothing_left_but(dst);
    TU_OK(mmsb_close(a));
    places_free(&at);
}

static void test_export_refuses_and_fails_cleanly(void **state) {
    (void)state;
    tu_store s = tu_store_open(NULL);
    world w;
    build_world(s.e, &w, 14);
    mmsb_transfer_info small = {.struct_size = 8};
    TU_ERR(mmsb_export(NULL, 1, NULL), MMSB_EINVAL);
    TU_ERR(mmsb_export(s.e, -1, NULL), MMSB_EINVAL);
    int fd = memfd_create("x", MFD_CLOEXEC);
    TU_ERR(mmsb_export(s.e, fd, &small), MMSB_EINVAL);
    close(fd);
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    close(pipefd[0]);
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    TU_ERR(mmsb_export(s.e, pipefd[1], NULL), MMSB_EIO); /* nobody reads */
    signal(SIGPIPE, old);
    close(pipefd[1]);
    char path[4200];
    snprintf(path, sizeof path, "%s/readonly-file", s.dir);
    fd = open(path, O_RDONLY | O_CREAT, 0644);
    TU_ERR(mmsb_export(s.e, fd, NULL), MMSB_EIO);
    close(fd);
    unlink(path);
    uint8_t x = 1;
    TU_OK(mmsb_write(s.e, w.base[0], 0, &x, 1, NULL)); /* the engine goes on */
    tu_store_close(&s);
}

/* ---- damaged streams ----------------------------------------------------------------------- */

static uint8_t *stream_bytes(mmsb_engine *e, size_t *size) {
    int fd = export_fd(e, NULL);
    *size = (size_t)lseek(fd, 0, SEEK_END);
    uint8_t *b = malloc(*size);
    assert_true(pread(fd, b, *size, 0) == (ssize_t)*size);
    close(fd);
    return b;
}

static int import_bytes(const char *dir, const uint8_t *b, size_t size) {
    int fd = memfd_create("in", MFD_CLOEXEC);
    assert_true(write(fd, b, size) == (ssize_t)size);
    lseek(fd, 0, SEEK_SET);
    mmsb_options o = small_options();
    int rc = mmsb_import(dir, &o, fd, NULL);
    close(fd);
    return rc;
}

/* Offset of the n-th frame of type `type` in a stream. */
static size_t frame_at(const uint8_t *b, size_t size, uint32_t type, int n) {
    for (size_t at = XP_HEADER_BYTES; at + XP_FRAME_HEAD_BYTES <= size;) {
        if (get_le32(b + at + 8) == type && n-- == 0) return at;
        at += XP_FRAME_HEAD_BYTES + get_le32(b + at + 4);
    }
    fail_msg("no frame of type %u", type);
    return 0;
}

static void reseal(uint8_t *b, size_t at) {
    xp_frame_seal(b + at, get_le32(b + at + 8), get_le32(b + at + 4));
}

static void expect_refused(const char *dir, const uint8_t *b, size_t size, const char *why) {
    int rc = import_bytes(dir, b, size);
    if (rc != MMSB_ECORRUPT && rc != MMSB_EVERSION)
        fail_msg("%s: import -> %d (%s): %s", why, rc, mmsb_strerror(rc), mmsb_last_error());
    assert_nothing_left(dir);
}

/* Every byte of a small stream flipped, every cut, and frames forged with
 * valid CRCs: each import fails and leaves nothing. */
static void test_import_refuses_damaged_streams(void **state) {
    (void)state;
    places at = places_new();
    const char *dst = at.one;
    tu_store s = tu_store_open(NULL);
    uint64_t p[3];
    for (int i = 0; i < 3; i++) p[i] = new_page(s.e, 16);
    TU_OK(mmsb_write(s.e, p[0], 0, "abcdefgh", 8, NULL));
    TU_OK(mmsb_write(s.e, p[1], 3, "xyz", 3, NULL));
    derive(s.e, p[2], MMSB_OP_XOR, p, 2);
    size_t size;
    uint8_t *good = stream_bytes(s.e, &size), *b = malloc(size);
    for (size_t off = 0; off < size; off++) {
        memcpy(b, good, size);
        b[off] ^= (uint8_t)(1u << (off % 8));
        char why[64];
        snprintf(why, sizeof why, "bit flipped at byte %zu", off);
        expect_refused(dst, b, size, why);
    }
    for (size_t cut = 0; cut < size; cut += 1 + (cut % 7)) expect_refused(dst, good, cut, "cut short");

    memcpy(b, good, size); /* a page byte changed, CRC fixed: the root tells */
    size_t bytes_at = frame_at(b, size, XP_BYTES, 0);
    b[bytes_at + XP_FRAME_HEAD_BYTES + XP_BYTES_HEAD_BYTES] ^= 1;
    reseal(b, bytes_at);
    expect_refused(dst, b, size, "a changed byte");
    assert_non_null(strstr(mmsb_last_error(), "root"));

    memcpy(b, good, size); /* a derivation whose parent is itself: a cycle */
    size_t derive_at = frame_at(b, size, XP_DERIVE, 0);
    put_le64(b + derive_at + XP_FRAME_HEAD_BYTES + XP_DERIVE_HEAD_BYTES, p[2]);
    reseal(b, derive_at);
    expect_refused(dst, b, size, "a derivation cycle");

    memcpy(b, good, size); /* a concatenation of two 16-byte pages into a 16-byte page */
    put_le32(b + derive_at + XP_FRAME_HEAD_BYTES + 8, MMSB_OP_CONCAT);
    reseal(b, derive_at);
    expect_refused(dst, b, size, "a derivation its sizes do not fit");

    memcpy(b, good, size); /* an epoch no commit count allows */
    size_t page_at = frame_at(b, size, XP_PAGE, 0);
    put_le64(b + page_at + XP_FRAME_HEAD_BYTES + 16, UINT64_MAX);
    reseal(b, page_at);
    expect_refused(dst, b, size, "an epoch above the commits");

    memcpy(b, good, size); /* a header whose byte count is as large as can be */
    put_le64(b + 96, UINT64_MAX);
    put_le32(b + XP_HEADER_BYTES - 4, crc32c(0, b, XP_HEADER_BYTES - 4));
    expect_refused(dst, b, size, "a header claiming every byte");

    memcpy(b, good, size); /* a later format */
    put_le32(b + 8, XP_FORMAT + 1);
    put_le32(b + XP_HEADER_BYTES - 4, crc32c(0, b, XP_HEADER_BYTES - 4));
    TU_ERR(import_bytes(dst, b, size), MMSB_EVERSION);
    assert_nothing_left(dst);

    TU_OK(import_bytes(dst, good, size)); /* the undamaged stream still imports */
    free(good);
    free(b);
    tu_store_close(&s);
    places_free(&at);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_from_writer),
        cmocka_unit_test(test_imported_log_continues),
        cmocka_unit_test(test_round_trip_pruned_and_twice),
        cmocka_unit_test(test_round_trip_crashed),
        cmocka_unit_test(test_round_trip_default_options),
        cmocka_unit_test(test_round_trip_empty),
        cmocka_unit_test(test_import_killed_at_any_moment),
        cmocka_unit_test(test_import_refuses_bad_arguments),
        cmocka_unit_test(test_export_refuses_and_fails_cleanly),
        cmocka_unit_test(test_import_refuses_damaged_streams),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
