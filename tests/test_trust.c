/*
 * test_trust.c - the defects that long-lived stores showed, one test each:
 * recovery must never drop acknowledged commits silently, and the reading
 * commands must never cry wolf on a healthy store nor pass a damaged one.
 *
 * - a damaged header of the newest segment (its commits were dropped);
 * - reading commands on a store whose oldest kept segment begins inside a
 *   commit (they reported corruption), with default options too;
 * - one epoch per commit, whatever the number of changes in it;
 * - a store whose creation hit a full disk (it could never be opened);
 * - `mmsb diff` with a missing second store (it aborted);
 * - reading and checkpointing commands on an empty directory (they made a
 *   store);
 * - the demo's attached reader (it could miss the writer);
 * - error texts that said what did not happen;
 * - a segment left behind by a crash in retention (a gap, later);
 * - a checkpoint file whose LMDB pages disagree (LMDB looped or aborted).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../engine/audit.h"
#include "../engine/engine.h"
#include "../tlog/cursor.h"
#include "../engine/base/crc32c.h"
#include "testutil.h"

enum { KiB = 1024, MiB = 1024 * 1024 };

/* ---- helpers ----------------------------------------------------------------------- */

static void path_in(const char *dir, const char *name, char *out, size_t cap) {
    int n = snprintf(out, cap, "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < cap);
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Every reading command on dir, expecting exit status `want`. */
static void reading_commands_exit(const char *dir, int want, uint64_t page) {
    char id[32];
    snprintf(id, sizeof id, "%llu", (unsigned long long)page);
    const char *const cmds[][6] = {
        {"verify", dir, NULL},
        {"replay", dir, "--verify", NULL},
        {"dump", dir, NULL},
        {"stats", dir, NULL},
        {"history", dir, "--page", id, NULL},
        {"page", dir, "--page", id, NULL},
        {"diff", dir, dir, NULL},
    };
    for (size_t i = 0; i < ARRAY_LEN(cmds); i++) {
        tu_run r = tu_tool_run(cmds[i]);
        if (r.status != want) {
            fail_msg("mmsb %s %s: exit %d, expected %d\nstdout: %.1500s\nstderr: %.1500s", cmds[i][0], dir,
                     r.status, want, r.out, r.err);
        }
        tu_run_free(&r);
    }
}

/* ---- 1. a damaged header of the newest segment ------------------------------------------ */

/* 76 SYNC writes of 64 KiB: two segments of 4 MiB, closed cleanly. */
static char *store_two_segments(bool keep_log, char root[33]) {
    mmsb_options o;
    tu_options_small(&o);
    o.durability = MMSB_DURABILITY_SYNC;
    if (keep_log) o.flags |= MMSB_OPEN_KEEP_LOG;
    tu_store s = tu_store_open(&o);
    uint64_t id;
    TU_OK(mmsb_page_create(s.e, 64 * KiB, 0, &id));
    rng r = {.state = 76};
    uint8_t *buf = malloc(64 * KiB);
    for (int i = 0; i < 76; i++) {
        rng_fill(&r, buf, 64 * KiB);
        TU_OK(mmsb_write(s.e, id, 0, buf, 64 * KiB, NULL));
    }
    free(buf);
    assert_int_equal(tu_info(s.e).log_segment, 2);
    tu_root_hex(s.e, root);
    char *dir = s.dir;
    TU_OK(mmsb_close(s.e));
    return dir;
}

static const uint32_t HEADER_SPOTS[] = {0, 7, 9, 17, 25, 33, 41, 49, 57, 71, 100, 2048, 4091, 4093};

static void test_damaged_newest_header(void **state) {
    (void)state;
    char root[33];
    char *orig = store_two_segments(true, root);
    tu_checkpoint_remove(orig);
    mmsb_options o;
    tu_options_small(&o);
    for (size_t i = 0; i < ARRAY_LEN(HEADER_SPOTS); i++) {
        char *dir = tu_dir_new(), seg[4096];
        tu_copy_store(orig, dir);
        tu_segment_path(dir, 2, seg, sizeof seg);
        tu_file_flip_bit(seg, HEADER_SPOTS[i], (uint32_t)i % 8);
        mmsb_engine *e = NULL;
        TU_ERR(mmsb_open(dir, &o, &e), MMSB_ECORRUPT);
        assert_non_null(strstr(mmsb_last_error(), "log-0000000002.seg"));
        tu_run r = TOOL(1, "verify", dir);
        tu_run_free(&r);
        r = TOOL(1, "dump", dir);
        tu_run_free(&r);
        r = TOOL(1, "stats", dir);
        tu_run_free(&r);
        uint64_t n;
        assert_int_equal(tu_log_read_all(dir, &n), MMSB_ECORRUPT);
        /* Salvage keeps the valid prefix (segment 1) and says what it dropped. */
        o.flags |= MMSB_OPEN_SALVAGE;
        TU_OK(mmsb_open(dir, &o, &e));
        assert_true(tu_info(e).recovery_flags & MMSB_RECOVERED_SALVAGED);
        assert_true(tu_info(e).recovery_dropped_bytes > 0);
        TU_OK(mmsb_close(e));
        o.flags &= ~MMSB_OPEN_SALVAGE;
        tu_dir_remove(dir);
    }
    tu_dir_remove(orig);
}

/* Pruned: segment 1 went with the close's checkpoint, which is removed
 * here too. Nothing can be salvaged, and the store never passes for empty. */
static void test_damaged_newest_header_pruned(void **state) {
    (void)state;
    char root[33];
    char *dir = store_two_segments(false, root), seg[4096];
    tu_segment_path(dir, 1, seg, sizeof seg);
    assert_false(exists(seg));
    tu_checkpoint_remove(dir);
    tu_segment_path(dir, 2, seg, sizeof seg);
    tu_file_flip_bit(seg, 30, 1);
    mmsb_options o;
    tu_options_small(&o);
    mmsb_engine *e = NULL;
    TU_ERR(mmsb_open(dir, &o, &e), MMSB_ECORRUPT);
    o.flags |= MMSB_OPEN_SALVAGE;
    TU_ERR(mmsb_open(dir, &o, &e), MMSB_ECORRUPT);
    tu_run r = TOOL(1, "verify", dir);
    tu_run_free(&r);
    tu_dir_remove(dir);
}

/* With the whole log and the close's checkpoint kept, the checkpoint is not
 * set aside for a genesis replay that would stop short. */
static void test_damaged_newest_header_keep_log(void **state) {
    (void)state;
    char root[33];
    char *dir = store_two_segments(true, root), seg[4096], path[4096];
    tu_segment_path(dir, 2, seg, sizeof seg);
    tu_file_flip_bit(seg, 40, 3);
    mmsb_options o;
    tu_options_small(&o);
    o.flags |= MMSB_OPEN_KEEP_LOG;
    mmsb_engine *e = NULL;
    TU_ERR(mmsb_open(dir, &o, &e), MMSB_ECORRUPT);
    path_in(dir, "checkpoint.rejected", path, sizeof path);
    assert_false(exists(path));
    path_in(dir, "checkpoint/data.mdb", path, sizeof path);
    assert_true(exists(path));
    tu_run r = TOOL(1, "verify", dir);
    tu_run_free(&r);
    /* Put the bit back: everything is there, with the root it closed with. */
    tu_file_flip_bit(seg, 40, 3);
    e = tu_open(dir, &o);
    char again[33];
    tu_root_hex(e, again);
    assert_string_equal(root, again);
    TU_OK(mmsb_close(e));
    tu_dir_remove(dir);
}

/* A store of one segment whose header is damaged is not a new, empty store. */
static void test_damaged_only_header(void **state) {
    (void)state;
    mmsb_options o;
    tu_options_small(&o);
    tu_store s = tu_store_open(&o);
    uint64_t id;
    TU_OK(mmsb_page_create(s.e, 4096, 0, &id));
    TU_OK(mmsb_write(s.e, id, 0, "abc", 3, NULL));
    char *dir = s.dir, seg[4096];
    TU_OK(mmsb_close(s.e));
    tu_checkpoint_remove(dir);
    tu_segment_path(dir, 1, seg, sizeof seg);
    tu_file_flip_bit(seg, 20, 0);
    mmsb_engine *e = NULL;
    TU_ERR(mmsb_open(dir, &o, &e), MMSB_ECORRUPT);
    assert_non_null(strstr(mmsb_last_error(), "header"));
    tu_run r = TOOL(1, "verify", dir);
    tu_run_free(&r);
    tu_dir_remove(dir);
}

/* What a crash between a SEAL and the next header leaves: a segment with a
 * zero or half-written header and nothing after it. That is a clean end. */
static void test_unfinished_new_segment(void **state) {
    (void)state;
    char root[33];
    char *orig = store_two_segments(true, root);
    tu_checkpoint_remove(orig);
    mmsb_options o;
    tu_options_small(&o);
    for (int torn = 0; torn < 2; torn++) {
        char *dir = tu_dir_new(), seg[4096];
        tu_copy_store(orig, dir);
        tu_segment_path(dir, 2, seg, sizeof seg);
        uint64_t size = tu_file_size(seg);
        tu_file_truncate(seg, 0);
        tu_file_truncate(seg, size);
        if (torn) { /* the first 512 bytes of a header reached the disk */
            tu_segment_path(orig, 2, seg, sizeof seg);
            uint8_t head[512];
            tu_file_read(seg, 0, head, sizeof head);
            tu_segment_path(dir, 2, seg, sizeof seg);
            tu_file_write(seg, 0, head, sizeof head);
        }
        mmsb_engine *e = tu_open(dir, &o);
        assert_int_equal(tu_info(e).log_segment, 1); /* the writer goes on in segment 1 */
        TU_OK(mmsb_close(e));
        reading_commands_exit(dir, 0, 1);
        tu_dir_remove(dir);
    }
    tu_dir_remove(orig);
}

/* ---- 2. reading commands on a store that lost segments to retention ------------------- */

/* Whether the store's oldest kept segment begins inside a commit that a
 * checkpoint covers (the state the reading commands used to reject). */
static bool begins_inside_commit(const char *dir) {
    mmsb_engine *e;
    mmsb_options o;
    tu_options_small(&o);
    TU_OK(engine_open_bare(dir, &o, &e));
    ckpt_meta m;
    bool found = false;
    if (e->ck.store != NULL) {
        TU_OK(ckpt_read_begin(e->ck.store, &m, &found));
        ckpt_read_end(e->ck.store);
    }
    log_cursor *c;
    TU_OK(cursor_open(e->dir_fd, CURSOR_VERIFY, e->kern, found ? m.segment : 0, &c));
    bool done = false;
    log_rec rec;
    while (!done) TU_OK(cursor_next(c, &rec, &done));
    bool inside = cursor_end(c)->covered_to_seq != 0 && cursor_end(c)->first_seq > 1;
    cursor_close(c);
    engine_close_bare(e);
    return inside;
}

/* Writes batches of `per` deltas of `bytes` each until the checkpoint has
 * removed segments and the oldest kept one begins inside a commit. */
static uint64_t grow_until_pruned_inside_commit(const char *dir, const mmsb_options *o, uint32_t per,
                                               uint64_t bytes) {
    uint8_t *buf = malloc(bytes * per), *mask = malloc(bytes / 8);
    memset(mask, 0xff, bytes / 8);
    rng r = {.state = bytes + per};
    uint64_t ids[8];
    mmsb_engine *e = tu_open(dir, o);
    for (int i = 0; i < 8; i++) TU_OK(mmsb_page_create(e, bytes, 0, &ids[i]));
    for (int round = 0; round < 40; round++) {
        mmsb_engineinfo before = tu_info(e);
        for (uint32_t guard = 0; tu_info(e).checkpoints_written == before.checkpoints_written; guard++) {
            assert_true(guard < 100000);
            mmsb_delta d[8];
            for (uint32_t k = 0; k < per; k++) {
                rng_fill(&r, buf + k * bytes, bytes);
                d[k] = (mmsb_delta){.page_id = ids[(k + round) % 8], .len = bytes, .mask = mask,
                                    .payload = buf + k * bytes, .payload_len = bytes};
            }
            TU_OK(mmsb_apply_batch(e, d, 1, 0, NULL)); /* a single change too */
            rng_fill(&r, buf, bytes);
            TU_OK(mmsb_apply_batch(e, d, per, 0, NULL));
        }
        if (tu_info(e).log_segments_removed == 0) continue;
        TU_OK(mmsb_close(e));
        if (begins_inside_commit(dir)) break;
        e = tu_open(dir, o);
    }
    free(buf);
    free(mask);
    assert_true(begins_inside_commit(dir));
    return ids[0];
}

static void check_pruned_store(const char *dir, uint64_t page) {
    reading_commands_exit(dir, 0, page);
    tu_run r = TOOL(0, "verify", dir);
    assert_non_null(strstr(r.out, "covered by the checkpoint"));
    tu_run_free(&r);
    uint64_t n = 0;
    TU_OK(tu_log_read_all(dir, &n));
    assert_true(n > 0);
}

static void test_pruned_store_small_segments(void **state) {
    (void)state;
    mmsb_options o;
    tu_options_small(&o);
    o.checkpoint_log_bytes = 8 * MiB;
    char *dir = tu_dir_new();
    uint64_t page = grow_until_pruned_inside_commit(dir, &o, 8, 16 * KiB);
    check_pruned_store(dir, page);
    tu_dir_remove(dir);
}

/* The same with the library's default options (only durability relaxed, to
 * keep the test quick; it does not change what lands on disk). */
static void test_pruned_store_default_options(void **state) {
    (void)state;
    mmsb_options o;
    TU_OK(MMSB_OPTIONS_INIT(&o));
    o.durability = MMSB_DURABILITY_NONE;
    char *dir = tu_dir_new();
    uint64_t page = grow_until_pruned_inside_commit(dir, &o, 4, 64 * KiB);
    check_pruned_store(dir, page);
    mmsb_engine *e = tu_open(dir, &o); /* and the writer opens it as before */
    TU_OK(mmsb_close(e));
    tu_dir_remove(dir);
}

/* ---- 3. one epoch per commit ---------------------------------------------------------- */

static uint64_t epoch_of(mmsb_engine *e, uint64_t id) {
    mmsb_pageinfo info = {.struct_size = sizeof info};
    TU_OK(mmsb_page_info(e, id, &info));
    return info.epoch;
}

static void test_one_epoch_per_commit(void **state) {
    (void)state;
    tu_store s = tu_store_open(NULL);
    uint64_t a, b;
    TU_OK(mmsb_page_create(s.e, 256 * KiB, 0, &a));
    TU_OK(mmsb_page_create(s.e, 64, 0, &b));
    uint8_t m[1] = {1}, v[3] = {1, 2, 3};
    mmsb_delta ds[4] = {
        {.page_id = a, .len = 1, .mask = m, .payload = &v[0], .payload_len = 1},
        {.page_id = b, .len = 1, .mask = m, .payload = &v[0], .payload_len = 1},
        {.page_id = a, .offset = 1, .len = 1, .mask = m, .payload = &v[1], .payload_len = 1},
        {.page_id = a, .offset = 2, .len = 1, .mask = m, .payload = &v[2], .payload_len = 1},
    };
    TU_OK(mmsb_apply_batch(s.e, ds, 4, 0, NULL));
    assert_int_equal(epoch_of(s.e, a), 1);
    assert_int_equal(epoch_of(s.e, b), 1);
    /* A transaction: two writes to a, one of them larger than a record. */
    uint8_t *big = malloc(200 * KiB);
    memset(big, 9, 200 * KiB);
    mmsb_txn *t;
    TU_OK(mmsb_txn_begin(s.e, &t));
    TU_OK(mmsb_txn_write(t, a, 0, big, 200 * KiB));
    TU_OK(mmsb_txn_write(t, b, 4, "x", 1));
    TU_OK(mmsb_txn_write(t, a, 100, "yz", 2));
    TU_OK(mmsb_txn_commit(t, 0, NULL));
    free(big);
    assert_int_equal(epoch_of(s.e, a), 2);
    assert_int_equal(epoch_of(s.e, b), 2);
    mmsb_change ch;
    TU_OK(mmsb_write(s.e, a, 5, "q", 1, &ch));
    assert_int_equal(ch.epoch, 3);
    char root[33], again[33];
    tu_root_hex(s.e, root);
    TU_OK(mmsb_close(s.e));
    /* Replay agrees, and the log says the same epoch in every record. */
    tu_checkpoint_remove(s.dir);
    mmsb_options o;
    tu_options_small(&o);
    s.e = tu_open(s.dir, &o);
    assert_int_equal(epoch_of(s.e, a), 3);
    assert_int_equal(epoch_of(s.e, b), 2);
    tu_root_hex(s.e, again);
    assert_string_equal(root, again);
    mmsb_log_reader *r;
    TU_OK(mmsb_log_open(s.dir, 0, &r));
    mmsb_log_record rec = {.struct_size = sizeof rec};
    uint32_t deltas_of_a_at_2 = 0;
    for (;;) {
        TU_OK(mmsb_log_next(r, &rec));
        if (rec.type == MMSB_REC_END) break;
        if (rec.type == MMSB_REC_DELTA && rec.page_id == a) {
            assert_true(rec.epoch >= 1 && rec.epoch <= 3);
            deltas_of_a_at_2 += rec.epoch == 2;
        }
    }
    TU_OK(mmsb_log_close(r));
    assert_int_equal(deltas_of_a_at_2, 5); /* 200 KiB: four records of 64 KiB or less, then one */
    tu_store_close(&s);
}

/* A store of an earlier format is refused by its version, not as damage. */
static void test_older_format_refused(void **state) {
    (void)state;
    tu_store s = tu_store_open(NULL);
    char *dir = s.dir, seg[4096];
    TU_OK(mmsb_close(s.e));
    tu_checkpoint_remove(dir);
    tu_segment_path(dir, 1, seg, sizeof seg);
    uint8_t head[SEG_HEADER_BYTES];
    tu_file_read(seg, 0, head, sizeof head);
    put_le32(head + 8, 1);
    put_le32(head + SEG_HEADER_BYTES - 4, crc32c(0, head, SEG_HEADER_BYTES - 4));
    tu_file_write(seg, 0, head, sizeof head);
    mmsb_options o;
    tu_options_small(&o);
    mmsb_engine *e = NULL;
    TU_ERR(mmsb_open(dir, &o, &e), MMSB_EVERSION);
    assert_non_null(strstr(mmsb_last_error(), "format version 1"));
    tu_dir_remove(dir);
}

/* ---- 4. creation on a full disk ---------------------------------------------------------- */

static void test_creation_is_atomic(void **state) {
    (void)state;
    char *mnt = tu_tmpfs_new("8k");
    if (mnt == NULL) return;
    char dir[4096], path[4096];
    path_in(mnt, "store", dir, sizeof dir);
    mmsb_options o;
    tu_options_small(&o);
    mmsb_engine *e = NULL;
    TU_ERR(mmsb_open(dir, &o, &e), MMSB_ENOSPC);
    path_in(dir, "checkpoint", path, sizeof path);
    assert_false(exists(path));
    tu_segment_path(dir, 1, path, sizeof path);
    assert_false(exists(path));
    /* Not a store: reading commands say so and create nothing. */
    tu_run r = TOOL(2, "verify", dir);
    assert_non_null(strstr(r.err, "no MMSB store"));
    tu_run_free(&r);
    /* With room again, it is created as if the first try never happened. */
    assert_int_equal(mount("tmpfs", mnt, "tmpfs", MS_REMOUNT, "size=64m"), 0);
    e = tu_open(dir, &o);
    uint64_t id;
    TU_OK(mmsb_page_create(e, 4096, 0, &id));
    TU_OK(mmsb_close(e));
    e = tu_open(dir, &o);
    TU_OK(mmsb_close(e));
    reading_commands_exit(dir, 0, id);
    tu_tmpfs_remove(mnt);
}

/* A data file too short for LMDB's meta pages, as an earlier version left
 * when a store's creation hit a full disk: it never held a checkpoint. */
static void test_unfinished_checkpoint_environment(void **state) {
    (void)state;
    tu_store s = tu_store_open(NULL);
    uint64_t id;
    TU_OK(mmsb_page_create(s.e, 4096, 0, &id));
    char *dir = s.dir, path[4096];
    TU_OK(mmsb_close(s.e));
    tu_checkpoint_remove(dir);
    path_in(dir, "checkpoint", path, sizeof path);
    assert_int_equal(mkdir(path, 0755), 0);
    path_in(dir, "checkpoint/data.mdb", path, sizeof path);
    tu_file_write(path, 0, "", 0);
    mmsb_options o;
    tu_options_small(&o);
    mmsb_engine *e = tu_open(dir, &o);
    TU_OK(mmsb_checkpoint(e));
    TU_OK(mmsb_close(e));
    assert_true(tu_file_size(path) > 8192);
    reading_commands_exit(dir, 0, id);
    tu_dir_remove(dir);
}

/* A crash while a store's first checkpoint environment was being built
 * leaves checkpoint.new: not a checkpoint, and the next creation replaces it. */
static void test_crashed_checkpoint_creation(void **state) {
    (void)state;
    tu_store s = tu_store_open(NULL);
    uint64_t id;
    TU_OK(mmsb_page_create(s.e, 4096, 0, &id));
    char *dir = s.dir, path[4096];
    TU_OK(mmsb_close(s.e));
    tu_checkpoint_remove(dir);
    path_in(dir, "checkpoint.new", path, sizeof path);
    assert_int_equal(mkdir(path, 0755), 0);
    path_in(dir, "checkpoint.new/data.mdb", path, sizeof path);
    tu_file_write(path, 0, "half an environment", 19);
    reading_commands_exit(dir, 0, id); /* read from the log alone */
    mmsb_options o;
    tu_options_small(&o);
    mmsb_engine *e = tu_open(dir, &o);
    TU_OK(mmsb_write(e, id, 0, "x", 1, NULL));
    TU_OK(mmsb_checkpoint(e));
    assert_int_equal(tu_info(e).checkpoints_written, 1);
    TU_OK(mmsb_close(e));
    assert_false(exists(path));
    path_in(dir, "checkpoint/data.mdb", path, sizeof path);
    assert_true(exists(path));
    reading_commands_exit(dir, 0, id);
    tu_dir_remove(dir);
}

/* Found by the simulator: a checkpoint of a store that has no commit yet
 * covered "commit 0", which no reader accepts. There is nothing to write. */
static void test_checkpoint_before_any_commit(void **state) {
    (void)state;
    tu_store s = tu_store_open(NULL);
    TU_OK(mmsb_checkpoint(s.e));
    assert_int_equal(tu_info(s.e).checkpoints_written, 0);
    uint64_t id;
    TU_OK(mmsb_page_create(s.e, 4096, 0, &id));
    char *dir = s.dir;
    TU_OK(mmsb_close(s.e));
    reading_commands_exit(dir, 0, id);
    mmsb_options o;
    tu_options_small(&o);
    mmsb_engine *e = tu_open(dir, &o);
    TU_OK(mmsb_close(e));
    tu_dir_remove(dir);
}

/* Found by the simulator: after the log failed, mmsb_close reported success,
 * as if everything committed were durable. */
static void test_close_after_log_failure(void **state) {
    (void)state;
    mmsb_options o;
    tu_options_small(&o);
    o.durability = MMSB_DURABILITY_SYNC;
    tu_store s = tu_store_open(&o);
    uint64_t id;
    TU_OK(mmsb_page_create(s.e, 4096, 0, &id));
    log_faults(s.e->log)->sync_errno = EIO;
    TU_ERR(mmsb_write(s.e, id, 0, "x", 1, NULL), MMSB_EIO);
    TU_ERR(mmsb_close(s.e), MMSB_EIO);
    assert_non_null(strstr(mmsb_last_error(), "may be lost"));
    tu_dir_remove(s.dir);
}

/* ---- 5 and 6. the tool on what is not a store --------------------------------------- */

static void test_not_a_store(void **state) {
    (void)state;
    char *dir = tu_dir_new(), missing[4096], file[4096], empty[4096];
    path_in(dir, "missing", missing, sizeof missing);
    path_in(dir, "file", file, sizeof file);
    path_in(dir, "empty", empty, sizeof empty);
    tu_file_write(file, 0, "not a store", 11);
    assert_int_equal(mkdir(empty, 0755), 0);
    tu_store s = tu_store_open(NULL);
    TU_OK(mmsb_close(s.e));
    const char *bad[] = {missing, file, empty};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        tu_run r = TOOL(2, "diff", s.dir, bad[i]);
        assert_non_null(strstr(r.err, bad[i]));
        tu_run_free(&r);
        r = TOOL(2, "diff", bad[i], s.dir);
        tu_run_free(&r);
        r = TOOL(2, "checkpoint", bad[i]);
        tu_run_free(&r);
        reading_commands_exit(bad[i], 2, 1);
    }
    /* Nothing was made in the empty directory, by the tool or by an open
     * without MMSB_OPEN_CREATE. */
    mmsb_options o;
    tu_options_small(&o);
    o.flags = 0;
    mmsb_engine *e = NULL;
    TU_ERR(mmsb_open(empty, &o, &e), MMSB_ENOTFOUND);
    assert_non_null(strstr(mmsb_last_error(), "MMSB_OPEN_CREATE"));
    char *list[] = {"LOCK", "checkpoint", "log-0000000001.seg"};
    for (size_t i = 0; i < ARRAY_LEN(list); i++) {
        char path[4096];
        path_in(empty, list[i], path, sizeof path);
        assert_false(exists(path));
    }
    tu_dir_remove(s.dir);
    tu_dir_remove(dir);
}

/* ---- 7. the demo's attached reader ------------------------------------------------------- */

static _Noreturn void reader_child(const char *demo_dir, void *ctx, int ready) {
    (void)ctx;
    tu_child_ready(ready);
    char store[4096], flag[4096];
    path_in(demo_dir, "run-1", store, sizeof store);
    path_in(demo_dir, "reader-attached", flag, sizeof flag);
    mmsb_attach *a = NULL;
    for (int i = 0; i < 20000 && mmsb_attach_open(store, &a) != 0; i++) usleep(1000);
    if (a == NULL) _exit(3);
    int fd = open(flag, O_CREAT | O_WRONLY, 0644);
    if (fd < 0) _exit(4);
    close(fd);
    uint64_t reads = 0;
    uint8_t buf[16];
    for (uint64_t i = 0; i < 200000; i++) { /* 20 s at most */
        int rc = mmsb_attach_read(a, 1 + i % 16, 0, buf, sizeof buf, NULL);
        reads += rc == 0;
        if (rc == MMSB_ENOTFOUND && strstr(mmsb_last_error(), "closed") != NULL) break;
        usleep(100);
    }
    mmsb_attach_close(a);
    _exit(reads > 0 ? 0 : 5);
}

static void test_demo_waits_for_its_reader(void **state) {
    (void)state;
    char *dir = tu_dir_new(), flag[4096];
    path_in(dir, "reader-attached", flag, sizeof flag);
    int pid = tu_child_start(reader_child, dir, NULL);
    tu_run r = TOOL(0, "demo", dir, "--ops", "300", "--txns", "100", "--wait-reader", flag);
    tu_run_free(&r);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0); /* it attached and read while the demo wrote */
    /* No reader: the demo fails instead of going on as if one had read. */
    r = TOOL(2, "demo", dir, "--ops", "10", "--txns", "10", "--wait-reader", flag, "--reader-timeout", "1");
    assert_non_null(strstr(r.err, "no reader attached"));
    tu_run_free(&r);
    tu_dir_remove(dir);
}

/* ---- 8. error texts ---------------------------------------------------------------------- */

/* A commit larger than the log's ring (1 MiB here) makes the writer flush
 * while it appends: the failure meets it halfway through the commit. */
static void test_error_texts(void **state) {
    (void)state;
    tu_store s = tu_store_open(NULL);
    uint64_t id;
    enum { BIG = 1536 * KiB };
    TU_OK(mmsb_page_create(s.e, BIG, 0, &id));
    uint8_t *buf = malloc(BIG);
    memset(buf, 0x5a, BIG);
    io_faults *f = log_faults(s.e->log);
    f->write_errno = ENOSPC;
    f->writes_ok = 0;
    TU_ERR(mmsb_write(s.e, id, 0, buf, BIG, NULL), MMSB_ENOSPC);
    assert_null(strstr(mmsb_last_error(), "commit_bytes_max"));
    assert_non_null(strstr(mmsb_last_error(), "No space left on device"));
    TU_ERR(mmsb_write(s.e, id, 0, buf, 10, NULL), MMSB_ENOSPC);
    assert_non_null(strstr(mmsb_last_error(), "No space left on device"));
    free(buf);
    /* EBUSY's text does not claim a lock when a thread holds the engine. */
    assert_null(strstr(mmsb_strerror(MMSB_EBUSY), "locked by another engine"));
    mmsb_close(s.e);
    tu_dir_remove(s.dir);
}

/* LMDB's commit on a full file system says ENOSPC, not an I/O error. */
static void test_checkpoint_on_full_disk(void **state) {
    (void)state;
    char *mnt = tu_tmpfs_new("12m");
    if (mnt == NULL) return;
    char dir[4096];
    path_in(mnt, "store", dir, sizeof dir);
    mmsb_options o;
    tu_options_small(&o);
    o.checkpoint_log_bytes = 0;
    mmsb_engine *e = tu_open(dir, &o);
    uint64_t id;
    TU_OK(mmsb_page_create(e, 5 * MiB, 0, &id));
    uint8_t *buf = malloc(5 * MiB);
    memset(buf, 1, 5 * MiB);
    TU_OK(mmsb_write(e, id, 0, buf, 5 * MiB, NULL)); /* the log holds it; LMDB will not */
    free(buf);
    int rc = mmsb_checkpoint(e);
    assert_int_equal(rc, MMSB_ENOSPC);
    TU_OK(mmsb_close(e));
    tu_tmpfs_remove(mnt);
}

/* Fills the file system that holds `dir` until it has no block left. */
static void fill_file_system(const char *dir) {
    char path[4096];
    path_in(dir, "filler", path, sizeof path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    static uint8_t zeros[64 * 1024];
    for (uint32_t guard = 0; guard < 1u << 20; guard++) {
        ssize_t n = write(fd, zeros, sizeof zeros);
        if (n <= 0) {
            assert_int_equal(errno, ENOSPC);
            break;
        }
    }
    close(fd);
}

/* The first checkpoint on a file system with no block left: LMDB's lock
 * file would be a hole written through a mapping (SIGBUS on the first
 * store); its blocks are allocated first, so the call fails with
 * MMSB_ENOSPC, and the engine goes on once there is room again. */
static void test_first_checkpoint_with_no_block_left(void **state) {
    (void)state;
    char *mnt = tu_tmpfs_new("16m");
    if (mnt == NULL) return;
    char dir[4096], filler[4096];
    path_in(mnt, "store", dir, sizeof dir);
    path_in(mnt, "filler", filler, sizeof filler);
    mmsb_options o;
    tu_options_small(&o);
    o.checkpoint_log_bytes = 0;
    mmsb_engine *e = tu_open(dir, &o);
    uint64_t id;
    TU_OK(mmsb_page_create(e, 4096, 0, &id));
    TU_OK(mmsb_write(e, id, 0, "before", 6, NULL));
    fill_file_system(mnt);
    TU_ERR(mmsb_checkpoint(e), MMSB_ENOSPC);
    assert_non_null(strstr(mmsb_last_error(), "No space left on device"));
    assert_int_equal(unlink(filler), 0);
    TU_OK(mmsb_write(e, id, 0, "after", 5, NULL));
    TU_OK(mmsb_checkpoint(e));
    char root[33];
    tu_root_hex(e, root);
    TU_OK(mmsb_close(e));
    e = tu_open(dir, &o);
    char again[33];
    tu_root_hex(e, again);
    assert_string_equal(root, again);
    TU_OK(mmsb_close(e));
    tu_tmpfs_remove(mnt);
}

/* ---- 9. a segment left behind by an interrupted retention ---------------------------- */

static void fill_to_segment(mmsb_engine *e, uint64_t id, uint64_t segment) {
    uint8_t buf[32 * KiB];
    rng r = {.state = segment};
    for (uint32_t guard = 0; tu_info(e).log_segment < segment; guard++) {
        assert_true(guard < 100000);
        rng_fill(&r, buf, sizeof buf);
        TU_OK(mmsb_write(e, id, 0, buf, sizeof buf, NULL));
    }
}

static void test_leftover_segment(void **state) {
    (void)state;
    mmsb_options o;
    tu_options_small(&o);
    o.checkpoint_log_bytes = 0;
    tu_store s = tu_store_open(&o);
    uint64_t id;
    TU_OK(mmsb_page_create(s.e, 32 * KiB, 0, &id));
    fill_to_segment(s.e, id, 2);
    char seg1[4096], keep[4096];
    tu_segment_path(s.dir, 1, seg1, sizeof seg1);
    path_in(s.dir, "seg1.copy", keep, sizeof keep);
    tu_file_copy(seg1, keep);
    TU_OK(mmsb_checkpoint(s.e)); /* removes segment 1 */
    assert_false(exists(seg1));
    fill_to_segment(s.e, id, 4);
    TU_OK(mmsb_checkpoint(s.e)); /* removes segments 2 and 3 */
    char root[33];
    tu_root_hex(s.e, root);
    TU_OK(mmsb_close(s.e));
    /* A crash between the checkpoint's LMDB commit and the removal of the
     * segments it covers, in an earlier checkpoint, left segment 1. */
    assert_int_equal(rename(keep, seg1), 0);
    reading_commands_exit(s.dir, 0, id); /* a covered segment is no gap */
    uint64_t n;
    TU_OK(tu_log_read_all(s.dir, &n));
    /* The next writer removes it. */
    mmsb_engine *e = tu_open(s.dir, &o);
    assert_false(exists(seg1));
    char again[33];
    tu_root_hex(e, again);
    assert_string_equal(root, again);
    fill_to_segment(e, id, 6);
    TU_OK(mmsb_checkpoint(e));
    TU_OK(mmsb_close(e));
    reading_commands_exit(s.dir, 0, id);
    tu_dir_remove(s.dir);
}

/* ---- 10. a checkpoint file whose LMDB pages disagree ------------------------------------ */

enum { MIX_TRIALS = 24, MIX_WAIT_S = 30, LMDB_PAGE = 4096 };

/* Many pages, a checkpoint after every round: the LMDB tree has depth and
 * free pages. Keeps a copy of data.mdb as of an early checkpoint. */
static char *store_with_old_checkpoint(char old_path[4096], char root[33]) {
    mmsb_options o;
    tu_options_small(&o);
    o.flags |= MMSB_OPEN_KEEP_LOG;
    o.checkpoint_log_bytes = 0;
    tu_store s = tu_store_open(&o);
    enum { PAGES = 1500 };
    static uint64_t ids[PAGES];
    for (int i = 0; i < PAGES; i++)
        TU_OK(mmsb_page_create(s.e, i % 3 == 0 ? 4096 + i % 700 : 64 + i % 500, 0, &ids[i]));
    uint8_t buf[256];
    path_in(s.dir, "data.old", old_path, 4096);
    for (int round = 0; round < 8; round++) {
        for (int i = 0; i < PAGES; i += 3) {
            memset(buf, round * 7 + i, sizeof buf);
            TU_OK(mmsb_write(s.e, ids[(i + round) % PAGES], 0, buf, 32 + (uint64_t)(i % 30), NULL));
        }
        TU_OK(mmsb_checkpoint(s.e));
        if (round == 2) {
            char data[4096];
            path_in(s.dir, "checkpoint/data.mdb", data, sizeof data);
            tu_file_copy(data, old_path);
        }
    }
    tu_root_hex(s.e, root);
    TU_OK(mmsb_close(s.e));
    return s.dir;
}

/* Old pages over new ones, as a drive that lost or reordered flushes leaves
 * them: chosen by a seeded generator, meta pages sometimes included. */
static void mix_pages(const char *data, const char *old, uint64_t seed) {
    rng r = {.state = seed};
    uint64_t size = tu_file_size(data), old_size = tu_file_size(old);
    uint64_t pages = (size < old_size ? size : old_size) / LMDB_PAGE;
    uint32_t share = (uint32_t)rng_below(&r, 4); /* a quarter .. all of the pages */
    bool metas = rng_below(&r, 2) == 0;
    uint8_t page[LMDB_PAGE];
    for (uint64_t p = metas ? 0 : 2; p < pages; p++) {
        if (rng_below(&r, 4) > share) continue;
        tu_file_read(old, p * LMDB_PAGE, page, sizeof page);
        tu_file_write(data, p * LMDB_PAGE, page, sizeof page);
    }
}

/* In a child, with a deadline: LMDB must neither loop nor abort. */
static _Noreturn void open_and_check(const char *dir, void *ctx, int ready) {
    const char *root = ctx;
    tu_child_ready(ready);
    alarm(MIX_WAIT_S);
    mmsb_options o;
    tu_options_small(&o);
    o.flags |= MMSB_OPEN_KEEP_LOG;
    for (int readonly = 1; readonly >= 0; readonly--) {
        o.flags = readonly ? MMSB_OPEN_READONLY : MMSB_OPEN_KEEP_LOG;
        mmsb_engine *e = NULL;
        if (mmsb_open(dir, &o, &e) != 0) _exit(10 + readonly);
        mmsb_digest d;
        char hex[33];
        if (mmsb_state_root(e, &d) != 0 || mmsb_digest_hex(&d, hex, sizeof hex) != 0) _exit(12);
        if (strcmp(hex, root) != 0) _exit(13); /* the log rebuilt the state, or the checkpoint was whole */
        if (mmsb_close(e) != 0) _exit(14);
    }
    _exit(0);
}

static void test_inconsistent_checkpoint_file(void **state) {
    (void)state;
    char old[4096], root[33];
    char *orig = store_with_old_checkpoint(old, root);
    uint32_t rejected = 0;
    for (uint64_t trial = 0; trial < MIX_TRIALS; trial++) {
        char *dir = tu_dir_new(), data[4096], path[4096];
        tu_copy_store(orig, dir);
        path_in(dir, "checkpoint/data.mdb", data, sizeof data);
        mix_pages(data, old, 1000 + trial);
        tu_run r = tu_tool_run((const char *const[]){"verify", dir, NULL});
        if (r.status != 0 && r.status != 1)
            fail_msg("trial %llu: verify exit %d: %s", (unsigned long long)trial, r.status, r.err);
        tu_run_free(&r);
        int pid = tu_child_start(open_and_check, dir, root);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fail_msg("trial %llu: the open %s %d", (unsigned long long)trial,
                     WIFEXITED(status) ? "exited" : "died of signal",
                     WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        }
        path_in(dir, "checkpoint.rejected", path, sizeof path);
        rejected += exists(path);
        tu_dir_remove(dir);
    }
    print_message("%d damaged checkpoint files: %u set aside after a genesis replay, none hung or aborted\n",
                  MIX_TRIALS, rejected);
    assert_true(rejected > 0);
    tu_dir_remove(orig);
}

/* Flipped bits anywhere in the file: the same. The first trials hit the
 * meta pages' map size and last page, which LMDB reads before any tree to
 * size its map (found by the simulator: the open failed with ENOMEM). */
static void test_flipped_checkpoint_file(void **state) {
    (void)state;
    char old[4096], root[33];
    char *orig = store_with_old_checkpoint(old, root);
    /* map size beyond 64 TiB; last page beyond the map */
    static const uint64_t meta_fields[] = {16 + 16 + 6, 16 + 16 + 7, 16 + 120 + 5, 16 + 120 + 6};
    for (size_t i = 0; i < ARRAY_LEN(meta_fields); i++) {
        char *dir = tu_dir_new(), data[4096];
        tu_copy_store(orig, dir);
        path_in(dir, "checkpoint/data.mdb", data, sizeof data);
        tu_file_flip_bit(data, meta_fields[i], 1);
        tu_file_flip_bit(data, LMDB_PAGE + meta_fields[i], 1);
        tu_run r = TOOL(1, "verify", dir); /* before the writer below sets the checkpoint aside */
        assert_non_null(strstr(r.out, "meta page"));
        tu_run_free(&r);
        int pid = tu_child_start(open_and_check, dir, root);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        tu_dir_remove(dir);
    }
    for (uint64_t trial = 0; trial < MIX_TRIALS; trial++) {
        char *dir = tu_dir_new(), data[4096];
        tu_copy_store(orig, dir);
        path_in(dir, "checkpoint/data.mdb", data, sizeof data);
        rng r = {.state = 77 + trial};
        uint64_t size = tu_file_size(data);
        for (uint64_t k = 0; k < 1 + trial % 6; k++) {
            uint64_t at = rng_below(&r, 2) ? rng_below(&r, size) : rng_below(&r, 4 * LMDB_PAGE);
            tu_file_flip_bit(data, at, (uint32_t)rng_below(&r, 8));
        }
        int pid = tu_child_start(open_and_check, dir, root);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fail_msg("trial %llu: the open %s %d", (unsigned long long)trial,
                     WIFEXITED(status) ? "exited" : "died of signal",
                     WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        }
        tu_dir_remove(dir);
    }
    tu_dir_remove(orig);
}

static int setup(void **state) {
    (void)state;
    return tu_tool_find() ? 0 : -1;
}

/* Writes until the next record would not fit the segment with its SEAL,
 * then checkpoints: the marker rolls the log over and is the first record
 * of the next segment. Large writes first, so default 64 MiB segments fill
 * quickly, then small ones to land in the window. */
static void checkpoint_at_segment_end(mmsb_engine *e, const mmsb_options *o, uint64_t id) {
    enum { SEAL_SLOT = 48, MARKER_SLOT = 80 };
    static uint8_t big[4096];
    log_pos pos;
    log_position(e->log, &pos);
    uint8_t b[8] = {0};
    for (uint32_t i = 0; i < 1u << 22 && o->segment_bytes - pos.offset >= MARKER_SLOT + SEAL_SLOT; i++) {
        if (o->segment_bytes - pos.offset > 64 * 1024) {
            memset(big, (int)(i % 251) + 1, sizeof big);
            TU_OK(mmsb_write(e, id, 0, big, sizeof big, NULL));
        } else {
            put_le64(b, i + 1);
            TU_OK(mmsb_write(e, id, 0, b, sizeof b, NULL));
        }
        log_position(e->log, &pos);
    }
    assert_true(o->segment_bytes - pos.offset < MARKER_SLOT + SEAL_SLOT);
    uint64_t segment = pos.segment;
    TU_OK(mmsb_checkpoint(e));
    log_position(e->log, &pos);
    assert_int_equal(pos.segment, segment + 1);
    assert_int_equal(pos.offset, SEG_HEADER_BYTES + MARKER_SLOT);
}

/* A checkpoint marker that does not fit the segment's end comes after the
 * SEAL, as the first record of the next segment: the SEAL does not open a
 * commit, and the store reopens (found by a kill test: it did not). */
static void test_checkpoint_marker_after_seal(void **state) {
    (void)state;
    mmsb_options o;
    tu_options_small(&o);
    o.checkpoint_log_bytes = 0;
    o.flags |= MMSB_OPEN_KEEP_LOG;
    char *dir = tu_dir_new();
    mmsb_engine *e = tu_open(dir, &o);
    uint64_t id;
    TU_OK(mmsb_page_create(e, 4096, 0, &id));
    checkpoint_at_segment_end(e, &o, id);
    uint8_t b[8] = {7};
    TU_OK(mmsb_write(e, id, 8, b, sizeof b, NULL));
    char root[33], again[33];
    tu_root_hex(e, root);
    TU_OK(mmsb_close(e));
    e = tu_open(dir, &o);
    tu_root_hex(e, again);
    assert_string_equal(root, again);
    TU_OK(mmsb_close(e));
    tu_checkpoint_remove(dir); /* and from genesis, through the marker */
    e = tu_open(dir, &o);
    tu_root_hex(e, again);
    assert_string_equal(root, again);
    TU_OK(mmsb_close(e));
    tu_run r = TOOL(0, "verify", dir);
    tu_run_free(&r);
    tu_dir_remove(dir);
}

/* The same with the default options (64 MiB segments, retention on): a
 * crash image taken right after the marker opens from that checkpoint
 * through the SEAL; after a clean close, retention removes the segment with
 * the SEAL and the marker heads the pruned log, which every reading command
 * and a reopen accept. */
static void test_checkpoint_marker_after_seal_default_options(void **state) {
    (void)state;
    mmsb_options o;
    TU_OK(MMSB_OPTIONS_INIT(&o));
    o.durability = MMSB_DURABILITY_NONE; /* a fsync per write would take minutes */
    o.gpu = tu_gpu();
    char *dir = tu_dir_new(), *crash = tu_dir_new();
    mmsb_engine *e = tu_open(dir, &o);
    uint64_t id;
    TU_OK(mmsb_page_create(e, 4096, 0, &id));
    checkpoint_at_segment_end(e, &o, id);
    uint8_t b[8] = {9};
    TU_OK(mmsb_write(e, id, 8, b, sizeof b, NULL));
    TU_OK(mmsb_sync(e));
    char root[33], again[33];
    tu_root_hex(e, root);
    tu_copy_store(dir, crash);
    mmsb_engine *c = tu_open(crash, &o);
    tu_root_hex(c, again);
    assert_string_equal(root, again);
    assert_int_equal(tu_info(c).recovered_from_checkpoint, 1);
    TU_OK(mmsb_close(c));
    TU_OK(mmsb_close(e));
    char seg1[4096];
    tu_segment_path(dir, 1, seg1, sizeof seg1);
    assert_int_not_equal(access(seg1, F_OK), 0); /* retention removed it */
    e = tu_open(dir, &o);
    tu_root_hex(e, again);
    assert_string_equal(root, again);
    TU_OK(mmsb_close(e));
    tu_run runs[] = {TOOL(0, "verify", dir), TOOL(0, "stats", dir), TOOL(0, "dump", dir),
                     TOOL(0, "history", dir, "--page", "1"), TOOL(0, "replay", dir, "--verify")};
    for (uint32_t i = 0; i < ARRAY_LEN(runs); i++) tu_run_free(&runs[i]);
    uint64_t records = 0;
    TU_OK(tu_log_read_all(dir, &records));
    assert_true(records > 0);
    tu_dir_remove(crash);
    tu_dir_remove(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_damaged_newest_header),
        cmocka_unit_test(test_damaged_newest_header_pruned),
        cmocka_unit_test(test_damaged_newest_header_keep_log),
        cmocka_unit_test(test_damaged_only_header),
        cmocka_unit_test(test_unfinished_new_segment),
        cmocka_unit_test(test_pruned_store_small_segments),
        cmocka_unit_test(test_pruned_store_default_options),
        cmocka_unit_test(test_one_epoch_per_commit),
        cmocka_unit_test(test_older_format_refused),
        cmocka_unit_test(test_creation_is_atomic),
        cmocka_unit_test(test_unfinished_checkpoint_environment),
        cmocka_unit_test(test_crashed_checkpoint_creation),
        cmocka_unit_test(test_checkpoint_before_any_commit),
        cmocka_unit_test(test_close_after_log_failure),
        cmocka_unit_test(test_not_a_store),
        cmocka_unit_test(test_demo_waits_for_its_reader),
        cmocka_unit_test(test_error_texts),
        cmocka_unit_test(test_checkpoint_on_full_disk),
        cmocka_unit_test(test_first_checkpoint_with_no_block_left),
        cmocka_unit_test(test_leftover_segment),
        cmocka_unit_test(test_inconsistent_checkpoint_file),
        cmocka_unit_test(test_flipped_checkpoint_file),
        cmocka_unit_test(test_checkpoint_marker_after_seal),
        cmocka_unit_test(test_checkpoint_marker_after_seal_default_options),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
