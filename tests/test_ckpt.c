/*
 * test_ckpt.c - checkpoints in LMDB and recovery from them:
 * - checkpoint + log suffix reaches the same state root as a replay from
 *   genesis, on random workloads with derived pages and checkpoints at
 *   random moments, and after SIGKILL at random moments (also in the middle
 *   of a checkpoint);
 * - incremental checkpoints, the log-bytes policy, the map growing when
 *   full (and a clear ENOSPC at its limit), log retention and keep-all;
 * - a damaged checkpoint is reported and replaced by a genesis replay when
 *   the whole log is there, and fails the open clearly when it is not;
 * - the layout: a page's bytes past the cut (its tail) fill whole LMDB
 *   pages; pages of every size around the cut come back; a format 1
 *   checkpoint (no tails) is read and built on; tails that do not match
 *   their pages are damage, and so is any record or tail changed at random;
 *   a large checkpoint leaves no heap behind, and when the environment
 *   cannot be opened again after one, that checkpoint stands and the next
 *   fails clearly.
 */
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "../engine/base/crc32c.h"
#include "../tlog/checkpoint/lmdb_store.h"
#include "testutil.h"

static uint64_t page(mmsb_engine *e, uint64_t size) {
    uint64_t id;
    TU_OK(mmsb_page_create(e, size, 0, &id));
    return id;
}

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* A workload step: writes to base pages (which reach derived ones), now and
 * then a new page, a freed page or a new derivation. Deterministic in r. */
typedef struct world {
    uint64_t base[16];
    uint32_t base_count;
} world;

static void build(mmsb_engine *e, world *w) {
    w->base_count = 16;
    for (uint32_t i = 0; i < w->base_count; i++) w->base[i] = page(e, 4096 + 512 * (i % 3 == 0));
    for (uint32_t i = 0; i + 1 < w->base_count; i += 2) {
        uint64_t parents[2] = {w->base[i], w->base[(i + 3) % w->base_count]};
        uint64_t child = page(e, 4096);
        uint64_t params[2] = {0, 4096};
        mmsb_derive_spec spec = {.struct_size = sizeof spec, .op = MMSB_OP_COPY, .parents = parents,
                                 .parent_count = 1, .params = params, .params_len = sizeof params};
        TU_OK(mmsb_derive(e, child, &spec, NULL));
        uint64_t sink = page(e, 4096);
        uint64_t xs[2] = {child, w->base[(i + 5) % w->base_count]};
        bool same = (xs[1] - 1) % 3 != 0; /* xor needs equal sizes */
        spec = (mmsb_derive_spec){.struct_size = sizeof spec, .op = same ? MMSB_OP_XOR : MMSB_OP_COPY,
                                  .parents = xs, .parent_count = same ? 2 : 1,
                                  .params = same ? NULL : params, .params_len = same ? 0 : sizeof params};
        TU_OK(mmsb_derive(e, sink, &spec, NULL));
    }
}

static int step(mmsb_engine *e, world *w, rng *r, uint64_t *seq_out) {
    uint8_t buf[256];
    uint64_t k = rng_below(r, 40);
    mmsb_change ch = {0};
    int rc;
    if (k == 0) {
        uint64_t id;
        rc = mmsb_page_create(e, 64 + rng_below(r, 8000), 0, &id);
        if (rc == 0) rc = mmsb_page_free(e, id);
        *seq_out = 0;
        return rc;
    }
    uint64_t id = w->base[rng_below(r, w->base_count)];
    uint64_t len = 1 + rng_below(r, sizeof buf);
    rng_fill(r, buf, len);
    rc = mmsb_write(e, id, rng_below(r, 4096 - len), buf, len, &ch);
    *seq_out = ch.commit_seq;
    return rc;
}

static void genesis_root(const char *dir, const mmsb_options *o, char hex[33]) {
    char *copy = tu_dir_new();
    tu_copy_dir(dir, copy); /* regular files only: the log, not the checkpoint */
    mmsb_engine *e = tu_open(copy, o);
    assert_int_equal(tu_info(e).recovered_from_checkpoint, 0);
    tu_root_hex(e, hex);
    TU_OK(mmsb_close(e));
    tu_dir_remove(copy);
}

static void small_ckpt_options(mmsb_options *o) {
    tu_options_small(o);
    o->flags |= MMSB_OPEN_KEEP_LOG;
    o->checkpoint_log_bytes = 0;
    o->checkpoint_map_bytes = 1u << 20;
}

/* ---- checkpoint + suffix == genesis ------------------------------------------------------ */

static void test_checkpoint_plus_suffix_equals_genesis(void **state) {
    (void)state;
    mmsb_options o;
    small_ckpt_options(&o);
    tu_store s = tu_store_open(&o);
    world w;
    build(s.e, &w);
    rng r = {.state = 3};
    uint64_t seq;
    for (int round = 0; round < 12; round++) {
        for (uint64_t n = rng_below(&r, 60); n > 0; n--) TU_OK(step(s.e, &w, &r, &seq));
        uint64_t before = tu_info(s.e).checkpoint_number;
        TU_OK(mmsb_checkpoint(s.e));
        mmsb_engineinfo info = tu_info(s.e);
        assert_int_equal(info.checkpoint_number, before + 1);
        TU_OK(mmsb_checkpoint(s.e)); /* nothing new: no checkpoint */
        assert_int_equal(tu_info(s.e).checkpoint_number, before + 1);
        for (uint64_t n = rng_below(&r, 30); n > 0; n--) TU_OK(step(s.e, &w, &r, &seq));
        /* Reopen from the checkpoint and the suffix, without a close. */
        char root[33], again[33], genesis[33];
        tu_root_hex(s.e, root);
        TU_OK(mmsb_sync(s.e));
        genesis_root(s.dir, &o, genesis);
        assert_string_equal(root, genesis);
        TU_OK(mmsb_close(s.e));
        s.e = tu_open(s.dir, &o);
        info = tu_info(s.e);
        assert_int_equal(info.recovered_from_checkpoint, 1);
        assert_string_equal(info.checkpoint_detail, "");
        tu_root_hex(s.e, again);
        assert_string_equal(root, again);
        /* Propagation goes on from the loaded graph like from the log. */
        TU_OK(mmsb_write(s.e, w.base[0], 0, "derived", 7, NULL));
    }
    char root[33], genesis[33];
    tu_root_hex(s.e, root);
    TU_OK(mmsb_sync(s.e));
    genesis_root(s.dir, &o, genesis);
    assert_string_equal(root, genesis);
    tu_store_close(&s);
}

/* ---- policy, growth, retention ----------------------------------------------------------- */

static void test_policy_growth_and_retention(void **state) {
    (void)state;
    mmsb_options o;
    small_ckpt_options(&o);
    o.flags &= ~MMSB_OPEN_KEEP_LOG;
    o.checkpoint_log_bytes = 6u << 20; /* more than a segment (4 MiB) */
    o.checkpoint_map_bytes_max = 64u << 20;
    tu_store s = tu_store_open(&o);
    uint64_t big = page(s.e, 3u << 20);
    uint8_t *buf = malloc(3u << 20);
    rng r = {.state = 9};
    for (int i = 0; i < 8; i++) {
        rng_fill(&r, buf, 3u << 20);
        TU_OK(mmsb_write(s.e, big, 0, buf, 3u << 20, NULL));
    }
    mmsb_engineinfo info = tu_info(s.e);
    assert_true(info.checkpoints_written >= 2);
    assert_true(info.checkpoint_map_bytes > (1u << 20)); /* grew from 1 MiB */
    assert_true(info.log_segments_removed > 0);
    assert_true(info.log_segment_first > 1);
    char seg[4096];
    tu_segment_path(s.dir, 1, seg, sizeof seg);
    assert_false(file_exists(seg));
    char root[33], again[33];
    tu_root_hex(s.e, root);
    TU_OK(mmsb_close(s.e));
    s.e = tu_open(s.dir, &o);
    tu_root_hex(s.e, again);
    assert_string_equal(root, again);
    /* At its limit the map refuses clearly, and nothing else changes. */
    TU_OK(mmsb_close(s.e));
    o.checkpoint_map_bytes_max = o.checkpoint_map_bytes = 1u << 20;
    s.e = tu_open(s.dir, &o);
    rng_fill(&r, buf, 3u << 20);
    TU_OK(mmsb_write(s.e, big, 0, buf, 3u << 20, NULL));
    uint64_t number = tu_info(s.e).checkpoint_number;
    int rc = mmsb_checkpoint(s.e);
    if (rc != 0) { /* the existing file may already be larger than 1 MiB */
        assert_int_equal(rc, MMSB_ENOSPC);
        assert_non_null(strstr(mmsb_last_error(), "map"));
        assert_int_equal(tu_info(s.e).checkpoint_number, number);
    }
    tu_root_hex(s.e, root);
    TU_OK(mmsb_close(s.e));
    s.e = tu_open(s.dir, &o);
    tu_root_hex(s.e, again);
    assert_string_equal(root, again);
    free(buf);
    tu_store_close(&s);
}

/* ---- damaged checkpoints ------------------------------------------------------------------ */

static void damage_checkpoint(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/checkpoint/data.mdb", dir);
    uint64_t size = tu_file_size(path);
    assert_true(size > 16384);
    /* Page bytes live in the leaf and overflow pages after the meta pages:
     * flip bytes all over them; LMDB or the root check must notice. */
    for (uint64_t at = 8192 + 100; at < size; at += 509) {
        uint8_t b;
        tu_file_read(path, at, &b, 1);
        b ^= 0x5a;
        tu_file_write(path, at, &b, 1);
    }
}

static void test_damaged_checkpoint_falls_back(void **state) {
    (void)state;
    mmsb_options o;
    small_ckpt_options(&o);
    tu_store s = tu_store_open(&o);
    world w;
    build(s.e, &w);
    rng r = {.state = 4};
    uint64_t seq;
    for (int i = 0; i < 200; i++) TU_OK(step(s.e, &w, &r, &seq));
    char root[33], again[33];
    tu_root_hex(s.e, root);
    TU_OK(mmsb_close(s.e));
    damage_checkpoint(s.dir);
    s.e = tu_open(s.dir, &o); /* the whole log is kept: genesis */
    mmsb_engineinfo info = tu_info(s.e);
    assert_int_equal(info.recovered_from_checkpoint, 0);
    assert_non_null(strstr(info.checkpoint_detail, "checkpoint not used"));
    tu_root_hex(s.e, again);
    assert_string_equal(root, again);
    /* The next checkpoint rewrites it whole, and it is good again. */
    TU_OK(mmsb_write(s.e, w.base[1], 0, "x", 1, NULL));
    tu_root_hex(s.e, root);
    TU_OK(mmsb_close(s.e));
    s.e = tu_open(s.dir, &o);
    assert_int_equal(tu_info(s.e).recovered_from_checkpoint, 1);
    tu_root_hex(s.e, again);
    assert_string_equal(root, again);
    TU_OK(mmsb_close(s.e));
    s.e = NULL;
    tu_dir_remove(s.dir);
}

/* Another store's checkpoint (copied over this one's): its salt differs from
 * the log's, so it is refused and the store comes back from genesis. */
static void test_checkpoint_of_another_store(void **state) {
    (void)state;
    mmsb_options o;
    small_ckpt_options(&o);
    tu_store a = tu_store_open(&o), b = tu_store_open(&o);
    world wa, wb;
    build(a.e, &wa);
    build(b.e, &wb);
    rng r = {.state = 9};
    uint64_t seq;
    for (int i = 0; i < 50; i++) TU_OK(step(a.e, &wa, &r, &seq));
    for (int i = 0; i < 80; i++) TU_OK(step(b.e, &wb, &r, &seq));
    char root[33], again[33];
    tu_root_hex(b.e, root);
    TU_OK(mmsb_close(a.e));
    TU_OK(mmsb_close(b.e));
    a.e = b.e = NULL;
    char from[4200], to[4200];
    snprintf(from, sizeof from, "%s/checkpoint", a.dir);
    snprintf(to, sizeof to, "%s/checkpoint", b.dir);
    tu_copy_dir(from, to);
    b.e = tu_open(b.dir, &o);
    mmsb_engineinfo info = tu_info(b.e);
    assert_int_equal(info.recovered_from_checkpoint, 0);
    assert_non_null(strstr(info.checkpoint_detail, "another store"));
    tu_root_hex(b.e, again);
    assert_string_equal(root, again);
    tu_store_close(&a);
    tu_store_close(&b);
}

static void test_damaged_checkpoint_without_log_fails(void **state) {
    (void)state;
    mmsb_options o;
    small_ckpt_options(&o);
    o.flags &= ~MMSB_OPEN_KEEP_LOG;
    tu_store s = tu_store_open(&o);
    uint64_t big = page(s.e, 3u << 20);
    uint8_t *buf = malloc(3u << 20);
    rng r = {.state = 5};
    for (int i = 0; i < 4; i++) {
        rng_fill(&r, buf, 3u << 20);
        TU_OK(mmsb_write(s.e, big, 0, buf, 3u << 20, NULL));
        TU_OK(mmsb_checkpoint(s.e)); /* removes the segments before it */
    }
    free(buf);
    TU_OK(mmsb_close(s.e));
    damage_checkpoint(s.dir);
    s.e = NULL;
    TU_ERR(mmsb_open(s.dir, &o, &s.e), MMSB_ECORRUPT);
    assert_null(s.e);
    assert_non_null(strstr(mmsb_last_error(), "checkpoint"));
    tu_dir_remove(s.dir);
}

/* Damage in the log after a good checkpoint is the log's fault: the open
 * fails, and the checkpoint is left as it was (not set aside). */
static void test_damaged_suffix_keeps_the_checkpoint(void **state) {
    (void)state;
    mmsb_options o;
    small_ckpt_options(&o);
    tu_store s = tu_store_open(&o);
    world w;
    build(s.e, &w);
    TU_OK(mmsb_close(s.e));
    s.e = NULL;
    /* A process that checkpoints, goes on, syncs and dies without a close
     * (whose checkpoint would cover everything). */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        mmsb_engine *e;
        rng r = {.state = 6};
        uint64_t seq;
        mmsb_options synced = o; /* synced commits: damage before one is corruption, not a torn tail */
        synced.durability = MMSB_DURABILITY_SYNC;
        if (mmsb_open(s.dir, &synced, &e) != 0) _exit(3);
        for (int i = 0; i < 50; i++) if (step(e, &w, &r, &seq) != 0) _exit(4);
        if (mmsb_checkpoint(e) != 0) _exit(5);
        for (int i = 0; i < 50; i++) if (step(e, &w, &r, &seq) != 0) _exit(6);
        _exit(mmsb_sync(e) == 0 ? 0 : 7);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* A DELTA after the first checkpoint marker, well before the end. */
    mmsb_log_reader *lr;
    TU_OK(mmsb_log_open(s.dir, 0, &lr));
    mmsb_log_record rec = {.struct_size = sizeof rec};
    uint64_t at = 0, segment = 0, deltas_after = 0, markers = 0;
    for (;;) {
        TU_OK(mmsb_log_next(lr, &rec));
        if (rec.type == MMSB_REC_END) break;
        markers += rec.type == MMSB_REC_CHECKPOINT; /* the first is the parent's close */
        if (markers == 2 && rec.type == MMSB_REC_DELTA && ++deltas_after == 10) {
            at = rec.offset + 40;
            segment = rec.segment;
        }
    }
    TU_OK(mmsb_log_close(lr));
    assert_true(at > 0);
    char seg[4096], kept[4096];
    tu_segment_path(s.dir, segment, seg, sizeof seg);
    uint8_t b;
    tu_file_read(seg, at, &b, 1);
    b ^= 0x01;
    tu_file_write(seg, at, &b, 1);
    TU_ERR(mmsb_open(s.dir, &o, &s.e), MMSB_ECORRUPT);
    assert_null(s.e);
    snprintf(kept, sizeof kept, "%s/checkpoint/data.mdb", s.dir);
    assert_true(file_exists(kept));
    snprintf(kept, sizeof kept, "%s/checkpoint.rejected", s.dir);
    assert_false(file_exists(kept));
    tu_dir_remove(s.dir);
}

/* ---- SIGKILL at random moments, checkpoints included ---------------------------------------- */

static _Noreturn void churn(const char *dir, const mmsb_options *o, uint64_t seed) {
    mmsb_engine *e;
    if (mmsb_open(dir, o, &e) != 0) _exit(3);
    world w;
    w.base_count = 16;
    for (uint32_t i = 0; i < 16; i++) w.base[i] = i + 1; /* built by the parent */
    rng r = {.state = seed};
    for (uint64_t n = 0;; n++) {
        uint64_t seq;
        if (step(e, &w, &r, &seq) != 0) _exit(4);
        if (n % 37 == 0 && mmsb_checkpoint(e) != 0) _exit(5);
    }
}

#if !defined(__SANITIZE_ADDRESS__) /* the sanitizer's allocator keeps no [heap] */
/* Resident bytes of the process's C heap ([heap] in smaps). */
static uint64_t heap_resident_bytes(void) {
    FILE *f = fopen("/proc/self/smaps", "r");
    assert_non_null(f);
    char line[512];
    bool in_heap = false;
    uint64_t kib = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        const char *dash = strchr(line, '-'), *space = strchr(line, ' ');
        if (isxdigit((unsigned char)line[0]) && dash != NULL && space != NULL && dash < space) { /* a mapping */
            in_heap = strstr(line, "[heap]") != NULL;
        } else if (in_heap && strncmp(line, "Rss:", 4) == 0) {
            kib += strtoull(line + 4, NULL, 10);
        }
    }
    fclose(f);
    return kib * 1024;
}
#endif

static void test_kill9_with_checkpoints(void **state) {
    (void)state;
    mmsb_options o;
    small_ckpt_options(&o);
    o.checkpoint_log_bytes = 256u << 10;
    char *dir = tu_dir_new();
    mmsb_engine *e = tu_open(dir, &o);
    world w;
    build(e, &w);
    assert_int_equal(w.base[0], 1);
    TU_OK(mmsb_close(e));
    rng r = {.state = 77};
    enum { KILLS = 12 };
    for (int k = 0; k < KILLS; k++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) churn(dir, &o, 1000 + (uint64_t)k);
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(20 + rng_below(&r, 120)) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        assert_true(WIFSIGNALED(status));
        e = tu_open(dir, &o);
        char root[33], genesis[33];
        tu_root_hex(e, root);
        mmsb_engineinfo a = tu_info(e);
        TU_OK(mmsb_close(e));
        genesis_root(dir, &o, genesis);
        if (strcmp(root, genesis) != 0) {
            print_message(
                "kill %d: from checkpoint %llu (seq %llu): commit %llu, %llu pages, %llu records, %s; detail %s\n", k,
                (unsigned long long)a.checkpoint_number, (unsigned long long)a.checkpoint_seq,
                (unsigned long long)a.commit_seq, (unsigned long long)a.pages_live,
                (unsigned long long)a.recovered_records, a.recovery_detail, a.checkpoint_detail);
            char *copy = tu_dir_new();
            tu_copy_dir(dir, copy);
            mmsb_engine *g = tu_open(copy, &o);
            mmsb_engineinfo b = tu_info(g);
            print_message("genesis: commit %llu, %llu pages, %llu records, %s\n", (unsigned long long)b.commit_seq,
                          (unsigned long long)b.pages_live, (unsigned long long)b.recovered_records, b.recovery_detail);
            TU_OK(mmsb_close(g));
        }
        assert_string_equal(root, genesis);
    }
    tu_dir_remove(dir);
}

/* ---- the layout: tails ------------------------------------------------------------------------------ */

/* Raw access to a closed store's checkpoint environment, as a damaged or an
 * older file would present itself. */
typedef struct ck_raw {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta, pages, tails;
    uint32_t psize;
} ck_raw;

static ck_raw ck_raw_open(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/checkpoint", dir);
    ck_raw r = {0};
    assert_int_equal(mdb_env_create(&r.env), 0);
    assert_int_equal(mdb_env_set_maxdbs(r.env, 4), 0);
    assert_int_equal(mdb_env_open(r.env, path, MDB_NOTLS, 0644), 0);
    MDB_stat st;
    assert_int_equal(mdb_env_stat(r.env, &st), 0);
    r.psize = st.ms_psize;
    assert_int_equal(mdb_txn_begin(r.env, NULL, 0, &r.txn), 0);
    assert_int_equal(mdb_dbi_open(r.txn, "meta", 0, &r.meta), 0);
    assert_int_equal(mdb_dbi_open(r.txn, "pages", 0, &r.pages), 0);
    assert_int_equal(mdb_dbi_open(r.txn, "tails", 0, &r.tails), 0);
    return r;
}

static void ck_raw_close(ck_raw *r) {
    assert_int_equal(mdb_txn_commit(r->txn), 0);
    mdb_env_close(r->env);
}

static MDB_stat ck_raw_stat(const ck_raw *r, MDB_dbi dbi) {
    MDB_stat st;
    assert_int_equal(mdb_stat(r->txn, dbi, &st), 0);
    return st;
}

static MDB_val ck_key(uint64_t id, uint8_t k[8]) {
    put_be64(k, id); /* the store's key: LMDB's byte order is id order */
    return (MDB_val){.mv_size = 8, .mv_data = k};
}

/* The meta record with its format field set (and its CRC made right). */
static void ck_raw_set_format(ck_raw *r, uint32_t format) {
    MDB_val key = {.mv_size = 5, .mv_data = "state"}, val;
    assert_int_equal(mdb_get(r->txn, r->meta, &key, &val), 0);
    assert_int_equal(val.mv_size, CKPT_META_BYTES);
    uint8_t m[CKPT_META_BYTES];
    memcpy(m, val.mv_data, sizeof m);
    put_le32(m, format);
    put_le32(m + 124, crc32c(0, m, 124));
    val = (MDB_val){.mv_size = sizeof m, .mv_data = m};
    assert_int_equal(mdb_put(r->txn, r->meta, &key, &val, 0), 0);
}

static uint32_t ck_raw_format(const ck_raw *r) {
    MDB_val key = {.mv_size = 5, .mv_data = "state"}, val;
    assert_int_equal(mdb_get(r->txn, r->meta, &key, &val), 0);
    return get_le32(val.mv_data);
}

static const uint64_t TAIL_SIZES[] = {1, 100, 2000, 4000, 4079, 4080, 4081, 4095, 4096, 4200, 6000, 8176, 8192,
                                      65536, 100000};
enum { TAIL_SIZE_COUNT = sizeof TAIL_SIZES / sizeof TAIL_SIZES[0] };

/* A closed store holding one page of each size (random bytes),
 * checkpointed at its close, and the options that open it again. */
typedef struct tails_fixture {
    mmsb_options o;
    tu_store s;
    uint64_t ids[TAIL_SIZE_COUNT];
    uint8_t *bytes[TAIL_SIZE_COUNT];
    char root[33]; /* the state root the store must come back with */
} tails_fixture;

static void tails_fixture_make(tails_fixture *f) {
    small_ckpt_options(&f->o);
    f->s = tu_store_open(&f->o);
    rng r = {.state = 31};
    for (uint32_t i = 0; i < TAIL_SIZE_COUNT; i++) {
        f->ids[i] = page(f->s.e, TAIL_SIZES[i]);
        f->bytes[i] = malloc(TAIL_SIZES[i]);
        rng_fill(&r, f->bytes[i], TAIL_SIZES[i]);
        TU_OK(mmsb_write(f->s.e, f->ids[i], 0, f->bytes[i], TAIL_SIZES[i], NULL));
    }
    tu_root_hex(f->s.e, f->root);
    TU_OK(mmsb_close(f->s.e));
    f->s.e = NULL;
}

static void tails_fixture_free(tails_fixture *f) {
    for (uint32_t i = 0; i < TAIL_SIZE_COUNT; i++) free(f->bytes[i]);
    tu_store_close(&f->s);
}

/* The engine holds the fixture's pages, and its root. */
static void expect_fixture(mmsb_engine *e, const tails_fixture *f) {
    char root[33];
    tu_root_hex(e, root);
    assert_string_equal(root, f->root);
    for (uint32_t i = 0; i < TAIL_SIZE_COUNT; i++) {
        uint8_t *got = malloc(TAIL_SIZES[i]);
        TU_OK(mmsb_page_read(e, f->ids[i], 0, got, TAIL_SIZES[i], NULL));
        assert_memory_equal(got, f->bytes[i], TAIL_SIZES[i]);
        free(got);
    }
}

/* Every size around LMDB's page size comes back from the checkpoint alone;
 * a page whose bytes fill whole LMDB pages once cut takes just those (a
 * 4 KiB page: one, where its whole value would take two). */
static void test_tails_fill_whole_pages(void **state) {
    (void)state;
    tails_fixture f;
    tails_fixture_make(&f);
    ck_raw raw = ck_raw_open(f.s.dir);
    uint64_t tails = 0, tail_pages = 0;
    for (uint32_t i = 0; i < TAIL_SIZE_COUNT; i++) {
        uint64_t at = ckpt_tail_at(TAIL_SIZES[i], raw.psize);
        assert_true(at <= TAIL_SIZES[i]);
        if (at == TAIL_SIZES[i]) continue;
        tails++;
        assert_int_equal((TAIL_SIZES[i] - at + 16) % raw.psize, 0);
        tail_pages += (TAIL_SIZES[i] - at + 16) / raw.psize;
    }
    if (raw.psize == 4096) assert_int_equal(tails, 8); /* 4080 .. 4200, 8176, 8192, 65536 */
    MDB_stat st = ck_raw_stat(&raw, raw.tails);
    assert_int_equal(st.ms_entries, tails);
    assert_int_equal(st.ms_overflow_pages, tail_pages);
    assert_int_equal(ck_raw_format(&raw), CKPT_FORMAT);
    ck_raw_close(&raw);
    f.s.e = tu_open(f.s.dir, &f.o);
    assert_int_equal(tu_info(f.s.e).recovered_from_checkpoint, 1);
    expect_fixture(f.s.e, &f);
    /* Freeing a page removes its tail; changing one rewrites it. */
    TU_OK(mmsb_page_free(f.s.e, f.ids[8]));
    TU_OK(mmsb_write(f.s.e, f.ids[13], 65000, "tail", 4, NULL));
    memcpy(f.bytes[13] + 65000, "tail", 4);
    TU_OK(mmsb_checkpoint(f.s.e));
    tu_root_hex(f.s.e, f.root);
    TU_OK(mmsb_close(f.s.e));
    raw = ck_raw_open(f.s.dir);
    assert_int_equal(ck_raw_stat(&raw, raw.tails).ms_entries, tails - 1);
    ck_raw_close(&raw);
    f.s.e = tu_open(f.s.dir, &f.o);
    assert_int_equal(tu_info(f.s.e).recovered_from_checkpoint, 1);
    char root[33];
    tu_root_hex(f.s.e, root);
    assert_string_equal(root, f.root);
    uint8_t got[4];
    TU_OK(mmsb_page_read(f.s.e, f.ids[13], 65000, got, 4, NULL));
    assert_memory_equal(got, "tail", 4);
    tails_fixture_free(&f);
}

/* Turns the checkpoint into what format 1 wrote: every page whole in its
 * record, no tails database. */
static void make_format_1(const char *dir) {
    ck_raw raw = ck_raw_open(dir);
    MDB_cursor *c;
    assert_int_equal(mdb_cursor_open(raw.txn, raw.tails, &c), 0);
    MDB_val k, tail;
    uint8_t whole[200000];
    for (int mrc = mdb_cursor_get(c, &k, &tail, MDB_FIRST); mrc == 0; mrc = mdb_cursor_get(c, &k, &tail, MDB_NEXT)) {
        MDB_val head;
        assert_int_equal(mdb_get(raw.txn, raw.pages, &k, &head), 0);
        assert_true(head.mv_size + tail.mv_size <= sizeof whole);
        memcpy(whole, head.mv_data, head.mv_size);
        memcpy(whole + head.mv_size, tail.mv_data, tail.mv_size);
        MDB_val v = {.mv_size = head.mv_size + tail.mv_size, .mv_data = whole};
        assert_int_equal(mdb_put(raw.txn, raw.pages, &k, &v, 0), 0);
    }
    mdb_cursor_close(c);
    assert_int_equal(mdb_drop(raw.txn, raw.tails, 1), 0);
    ck_raw_set_format(&raw, 1);
    assert_int_equal(mdb_txn_commit(raw.txn), 0);
    mdb_env_close(raw.env);
}

/* A store whose checkpoint a format 1 library wrote opens from it, read-only
 * and for writing; its next checkpoint is format 2, with tails for the
 * pages it writes and the older whole records beside them. */
static void test_format_1_checkpoint_is_read(void **state) {
    (void)state;
    tails_fixture f;
    tails_fixture_make(&f);
    make_format_1(f.s.dir);
    mmsb_options ro = f.o;
    ro.flags = (ro.flags | MMSB_OPEN_READONLY) & ~(uint32_t)MMSB_OPEN_CREATE;
    mmsb_engine *r = tu_open(f.s.dir, &ro);
    assert_int_equal(tu_info(r).recovered_from_checkpoint, 1);
    expect_fixture(r, &f);
    TU_OK(mmsb_close(r));
    f.s.e = tu_open(f.s.dir, &f.o);
    assert_int_equal(tu_info(f.s.e).recovered_from_checkpoint, 1);
    expect_fixture(f.s.e, &f);
    TU_OK(mmsb_write(f.s.e, f.ids[8], 0, "new", 3, NULL)); /* the 4 KiB page */
    memcpy(f.bytes[8], "new", 3);
    tu_root_hex(f.s.e, f.root);
    TU_OK(mmsb_close(f.s.e));
    ck_raw raw = ck_raw_open(f.s.dir);
    assert_int_equal(ck_raw_format(&raw), CKPT_FORMAT);
    assert_int_equal(ck_raw_stat(&raw, raw.tails).ms_entries, raw.psize == 4096 ? 1 : 0);
    ck_raw_close(&raw);
    f.s.e = tu_open(f.s.dir, &f.o);
    assert_int_equal(tu_info(f.s.e).recovered_from_checkpoint, 1);
    expect_fixture(f.s.e, &f);
    tails_fixture_free(&f);
}

typedef enum {
    TAIL_MISSING,     /* a cut page's tail deleted */
    TAIL_ORPHAN,      /* a tail for a page whose record is whole */
    TAIL_ORPHAN_LAST, /* the same after the last cut page */
    TAIL_SHORT,       /* a tail a byte short */
    TAIL_IN_FORMAT_1, /* a cut page under a format 1 meta record */
    TAIL_FORMAT_NEXT, /* a format this library does not know */
    TAIL_DAMAGE_KINDS,
} tail_damage;

static void damage_tails(const char *dir, const uint64_t ids[TAIL_SIZE_COUNT], tail_damage kind) {
    ck_raw raw = ck_raw_open(dir);
    uint8_t k[8], buf[8192];
    MDB_val key = ck_key(ids[8], k), val; /* the 4 KiB page: cut */
    if (kind == TAIL_MISSING) assert_int_equal(mdb_del(raw.txn, raw.tails, &key, NULL), 0);
    if (kind == TAIL_ORPHAN || kind == TAIL_ORPHAN_LAST) {
        key = ck_key(ids[kind == TAIL_ORPHAN ? 1 : TAIL_SIZE_COUNT - 1], k); /* 100 and 100,000 bytes: whole */
        val = (MDB_val){.mv_size = 100, .mv_data = buf};
        memset(buf, 7, 100);
        assert_int_equal(mdb_put(raw.txn, raw.tails, &key, &val, 0), 0);
    }
    if (kind == TAIL_SHORT) {
        assert_int_equal(mdb_get(raw.txn, raw.tails, &key, &val), 0);
        assert_true(val.mv_size > 1 && val.mv_size <= sizeof buf);
        memcpy(buf, val.mv_data, val.mv_size);
        val = (MDB_val){.mv_size = val.mv_size - 1, .mv_data = buf};
        assert_int_equal(mdb_put(raw.txn, raw.tails, &key, &val, 0), 0);
    }
    if (kind == TAIL_IN_FORMAT_1) ck_raw_set_format(&raw, 1);
    if (kind == TAIL_FORMAT_NEXT) ck_raw_set_format(&raw, CKPT_FORMAT + 1);
    ck_raw_close(&raw);
}

/* Tails that do not match their pages are a damaged checkpoint: the open
 * says why and replays the (whole) log instead; so is a format from a
 * later library. */
static void test_damaged_tails(void **state) {
    (void)state;
    static const char *const why[TAIL_DAMAGE_KINDS] = {"its tail is missing",       "no page holds its head",
                                                        "no page holds its head",    "its length does not match",
                                                        "id or size does not match", "format"};
    for (uint32_t kind = 0; kind < TAIL_DAMAGE_KINDS; kind++) {
        tails_fixture f;
        tails_fixture_make(&f);
        damage_tails(f.s.dir, f.ids, (tail_damage)kind);
        f.s.e = tu_open(f.s.dir, &f.o);
        mmsb_engineinfo info = tu_info(f.s.e);
        assert_int_equal(info.recovered_from_checkpoint, 0);
        if (strstr(info.checkpoint_detail, why[kind]) == NULL) print_message("%u: %s\n", kind, info.checkpoint_detail);
        assert_non_null(strstr(info.checkpoint_detail, why[kind]));
        expect_fixture(f.s.e, &f);
        tails_fixture_free(&f);
    }
    /* Format 2 with no tails database at all, as a read-only open finds it
     * (a writer's open would make an empty one first). */
    tails_fixture f;
    tails_fixture_make(&f);
    ck_raw raw = ck_raw_open(f.s.dir);
    assert_int_equal(mdb_drop(raw.txn, raw.tails, 1), 0);
    ck_raw_close(&raw);
    mmsb_options ro = f.o;
    ro.flags = (ro.flags | MMSB_OPEN_READONLY) & ~(uint32_t)MMSB_OPEN_CREATE;
    mmsb_engine *r = tu_open(f.s.dir, &ro);
    mmsb_engineinfo info = tu_info(r);
    assert_int_equal(info.recovered_from_checkpoint, 0);
    assert_non_null(strstr(info.checkpoint_detail, "without its tails database"));
    expect_fixture(r, &f);
    TU_OK(mmsb_close(r));
    tails_fixture_free(&f);
}

/* LMDB builds a write transaction in malloc'd pages: a checkpoint of many
 * changed pages gives that memory back to the system when it ends, instead
 * of leaving it in the process's heap (it was 1 GiB after 200,000 pages). */
static void test_large_checkpoint_leaves_no_heap(void **state) {
    (void)state;
#if defined(__SANITIZE_ADDRESS__)
    skip(); /* the sanitizer's allocator keeps its own heap */
#else
    mmsb_options o;
    tu_options_small(&o);
    o.arena_bytes_max = 1ull << 30;
    o.checkpoint_log_bytes = 0;
    tu_store s = tu_store_open(&o);
    uint64_t first;
    TU_OK(mmsb_page_create_many(s.e, 4096, 0, 40000, &first)); /* 320 MiB of LMDB pages to write */
    uint64_t before = heap_resident_bytes();
    TU_OK(mmsb_checkpoint(s.e));
    uint64_t after = heap_resident_bytes();
    assert_true(after < before + (32ull << 20));
    TU_OK(mmsb_close(s.e));
    s.e = NULL;
    ck_raw raw = ck_raw_open(s.dir); /* every page was cut: 160 MiB of one-page tails, none of them kept */
    if (raw.psize == 4096) assert_int_equal(ck_raw_stat(&raw, raw.tails).ms_entries, 40000);
    ck_raw_close(&raw);
    tu_store_close(&s);
#endif
}

/* The environment is opened again after a transaction with many one-page
 * tails; when that fails (here: its directory moved away under it), the
 * checkpoint just written stands, and the next one fails clearly until
 * the store is opened again. */
static void test_environment_lost_after_a_large_checkpoint(void **state) {
    (void)state;
    mmsb_options o;
    small_ckpt_options(&o);
    o.arena_bytes_max = 1ull << 30;
    tu_store s = tu_store_open(&o);
    uint64_t first;
    TU_OK(mmsb_page_create_many(s.e, 4096, 0, 3000, &first));
    char root[33], again[33], ck[4200], aside[4200];
    snprintf(ck, sizeof ck, "%s/checkpoint", s.dir);
    snprintf(aside, sizeof aside, "%s/checkpoint.aside", s.dir);
    TU_OK(mmsb_checkpoint(s.e)); /* makes the environment */
    for (uint64_t i = 0; i < 3000; i++) TU_OK(mmsb_write(s.e, first + i, 8, "y", 1, NULL));
    assert_int_equal(rename(ck, aside), 0);
    TU_OK(mmsb_checkpoint(s.e)); /* written (to the moved files); the reopen fails */
    uint64_t number = tu_info(s.e).checkpoint_number;
    TU_OK(mmsb_write(s.e, first, 0, "z", 1, NULL));
    TU_ERR(mmsb_checkpoint(s.e), MMSB_EIO);
    assert_non_null(strstr(mmsb_last_error(), "could not be opened again"));
    assert_int_equal(tu_info(s.e).checkpoint_number, number);
    TU_OK(mmsb_write(s.e, first, 0, "w", 1, NULL));
    tu_root_hex(s.e, root);
    TU_OK(mmsb_close(s.e)); /* its checkpoint fails too; the log holds everything */
    s.e = NULL;
    assert_int_equal(rename(aside, ck), 0);
    s.e = tu_open(s.dir, &o);
    mmsb_engineinfo info = tu_info(s.e);
    assert_int_equal(info.recovered_from_checkpoint, 1);
    assert_int_equal(info.checkpoint_number, number);
    tu_root_hex(s.e, again);
    assert_string_equal(root, again);
    tu_store_close(&s);
}

/* A page record or tail changed at random (a byte flipped, cut short or
 * grown), through LMDB so that the file's structure stays sound: the open
 * never trusts it blindly. It either finds the change harmless or falls
 * back to the log, and reaches the writer's state root either way. */
static void test_random_value_damage(void **state) {
    (void)state;
    tails_fixture f;
    tails_fixture_make(&f);
    rng r = {.state = 1234};
    uint32_t fell_back = 0;
    enum { ROUNDS = 40 };
    for (uint32_t round = 0; round < ROUNDS; round++) {
        char *dir = tu_dir_new(), from[4200], to[4200];
        tu_copy_dir(f.s.dir, dir);
        snprintf(from, sizeof from, "%s/checkpoint", f.s.dir);
        snprintf(to, sizeof to, "%s/checkpoint", dir);
        tu_copy_dir(from, to);
        ck_raw raw = ck_raw_open(dir);
        uint8_t k[8], buf[100100];
        MDB_val key = ck_key(f.ids[rng_below(&r, TAIL_SIZE_COUNT)], k), val;
        MDB_dbi dbi = rng_below(&r, 2) == 0 ? raw.pages : raw.tails;
        if (mdb_get(raw.txn, dbi, &key, &val) != 0) dbi = raw.pages; /* not cut: no tail */
        assert_int_equal(mdb_get(raw.txn, dbi, &key, &val), 0);
        assert_true(val.mv_size + 8 <= sizeof buf);
        memcpy(buf, val.mv_data, val.mv_size);
        size_t len = val.mv_size;
        uint64_t how = rng_below(&r, 3);
        if (how == 0) buf[rng_below(&r, len)] ^= (uint8_t)(1 + rng_below(&r, 255));
        if (how == 1) len -= 1 + rng_below(&r, 8); /* a record holds 24 bytes at least */
        if (how == 2) {
            uint64_t more = 1 + rng_below(&r, 8);
            rng_fill(&r, buf + len, more);
            len += more;
        }
        val = (MDB_val){.mv_size = len, .mv_data = buf};
        assert_int_equal(mdb_put(raw.txn, dbi, &key, &val, 0), 0);
        ck_raw_close(&raw);
        mmsb_engine *e = tu_open(dir, &f.o);
        fell_back += tu_info(e).recovered_from_checkpoint == 0;
        expect_fixture(e, &f);
        TU_OK(mmsb_close(e));
        tu_dir_remove(dir);
    }
    assert_true(fell_back > ROUNDS / 2); /* most changes are caught, not ignored */
    tails_fixture_free(&f);
}

/* The options a user starts from (the log pruned after each checkpoint,
 * the policy checkpointing every MiB) and commits of 8 whole 4 KiB pages
 * that straddle segment ends: the reopened store comes back from its cut
 * pages alone, and the reading commands agree with it. */
static void test_tails_on_a_pruned_store(void **state) {
    (void)state;
    enum { PAGES = 600, COMMITS = 400, PER_COMMIT = 8 };
    mmsb_options o;
    tu_options_small(&o);
    o.checkpoint_log_bytes = 1u << 20;
    tu_store s = tu_store_open(&o);
    uint64_t first;
    TU_OK(mmsb_page_create_many(s.e, 4096, 0, PAGES, &first));
    uint8_t *want = calloc(PAGES, 4096), ones[512];
    memset(ones, 0xff, sizeof ones);
    rng r = {.state = 77};
    for (uint32_t c = 0; c < COMMITS; c++) {
        mmsb_delta d[PER_COMMIT];
        for (uint32_t k = 0; k < PER_COMMIT; k++) {
            uint64_t i = rng_below(&r, PAGES);
            rng_fill(&r, want + i * 4096, 4096);
            d[k] = (mmsb_delta){.page_id = first + i, .len = 4096, .mask = ones, .payload = want + i * 4096,
                                .payload_len = 4096};
        }
        TU_OK(mmsb_apply_batch(s.e, d, PER_COMMIT, 0, NULL));
    }
    char root[33], again[33], seg[4200];
    tu_root_hex(s.e, root);
    assert_true(tu_info(s.e).checkpoint_number >= 5);
    TU_OK(mmsb_close(s.e));
    tu_segment_path(s.dir, 1, seg, sizeof seg);
    assert_int_not_equal(access(seg, F_OK), 0); /* retention removed the log's start */
    s.e = tu_open(s.dir, &o);
    assert_int_equal(tu_info(s.e).recovered_from_checkpoint, 1);
    tu_root_hex(s.e, again);
    assert_string_equal(root, again);
    uint8_t got[4096];
    for (uint64_t i = 0; i < PAGES; i++) {
        TU_OK(mmsb_page_read(s.e, first + i, 0, got, sizeof got, NULL));
        assert_memory_equal(got, want + i * 4096, sizeof got);
    }
    TU_OK(mmsb_close(s.e));
    s.e = NULL;
    tu_run v = TOOL(0, "verify", s.dir);
    tu_run_free(&v);
    v = TOOL(0, "replay", s.dir, "--verify");
    assert_non_null(strstr(v.out, root));
    tu_run_free(&v);
    free(want);
    tu_dir_remove(s.dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkpoint_plus_suffix_equals_genesis),
        cmocka_unit_test(test_policy_growth_and_retention),
        cmocka_unit_test(test_damaged_checkpoint_falls_back),
        cmocka_unit_test(test_checkpoint_of_another_store),
        cmocka_unit_test(test_damaged_checkpoint_without_log_fails),
        cmocka_unit_test(test_damaged_suffix_keeps_the_checkpoint),
        cmocka_unit_test(test_kill9_with_checkpoints),
        cmocka_unit_test(test_large_checkpoint_leaves_no_heap),
        cmocka_unit_test(test_tails_fill_whole_pages),
        cmocka_unit_test(test_format_1_checkpoint_is_read),
        cmocka_unit_test(test_damaged_tails),
        cmocka_unit_test(test_environment_lost_after_a_large_checkpoint),
        cmocka_unit_test(test_random_value_damage),
        cmocka_unit_test(test_tails_on_a_pruned_store),
    };
    assert_true(tu_tool_find());
    return cmocka_run_group_tests(tests, NULL, NULL);
}
