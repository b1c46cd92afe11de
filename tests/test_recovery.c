/*
 * test_recovery.c - recovery's decision table on damaged logs:
 * - cut at every byte offset inside the last records (file truncated, or the
 *   rest zeroed): the store opens at the last whole commit, with that
 *   commit's state root, and takes new changes;
 * - any byte flipped or overwritten before the tail: MMSB_ECORRUPT naming
 *   the segment, offset and sequence number; never a crash, never silent
 *   acceptance; with MMSB_OPEN_SALVAGE the valid prefix opens;
 * - a payload edited with its CRC fixed up: the chain value catches it;
 * - a segment of another store, a missing segment: rejected.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "../engine/base/crc32c.h"
#include "../tlog/format.h"

enum { COMMITS_MAX = 64, RECORDS_MAX = 256 };

typedef struct rec_pos {
    uint64_t seq, offset, end;
    uint32_t type;
} rec_pos;

/* A store of one segment with roots recorded at every commit. */
typedef struct fixture {
    char *dir;
    mmsb_options o;
    rec_pos recs[RECORDS_MAX];
    uint32_t rec_count;
    uint64_t commit_seqs[COMMITS_MAX];
    char roots[COMMITS_MAX][33];
    uint32_t commit_count;
    uint64_t data_end;
} fixture;

static void list_records(fixture *f) {
    mmsb_log_reader *r;
    TU_OK(mmsb_log_open(f->dir, 0, &r));
    mmsb_log_record rec = {.struct_size = sizeof rec};
    f->rec_count = 0;
    for (;;) {
        TU_OK(mmsb_log_next(r, &rec));
        if (rec.type == MMSB_REC_END) break;
        assert_true(f->rec_count < RECORDS_MAX);
        f->recs[f->rec_count++] = (rec_pos){.seq = rec.seq, .offset = rec.offset,
                                            .end = rec.offset + ((32 + rec.payload_len + 7) & ~7ull),
                                            .type = rec.type};
    }
    TU_OK(mmsb_log_close(r));
    f->data_end = f->recs[f->rec_count - 1].end;
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    f->dir = tu_dir_new();
    tu_options_small(&f->o);
    f->o.durability = MMSB_DURABILITY_SYNC;
    f->o.root_every_commits = 1;
    mmsb_engine *e = tu_open(f->dir, &f->o);
    rng r = {.state = 17};
    uint64_t id;
    mmsb_change ch;
    TU_OK(mmsb_page_create(e, 4096, 0, &id));
    f->commit_seqs[f->commit_count] = tu_info(e).commit_seq;
    tu_root_hex(e, f->roots[f->commit_count++]);
    uint8_t buf[300];
    for (int i = 0; i < 20; i++) {
        uint64_t len = 1 + rng_below(&r, sizeof buf);
        rng_fill(&r, buf, len);
        TU_OK(mmsb_write(e, id, rng_below(&r, 4096 - len), buf, len, &ch));
        f->commit_seqs[f->commit_count] = ch.commit_seq;
        tu_root_hex(e, f->roots[f->commit_count++]);
    }
    /* The close commit records the same root as the last change. */
    TU_OK(mmsb_close(e));
    list_records(f);
    /* Then the close's checkpoint marker and its commit: points the log may
     * end at, with the state of the last change. */
    for (uint32_t i = 0; i < f->rec_count; i++) {
        if (f->recs[i].type != MMSB_REC_CHECKPOINT && f->recs[i].seq <= f->commit_seqs[f->commit_count - 1]) continue;
        if (f->recs[i].type != MMSB_REC_CHECKPOINT && f->recs[i].type != MMSB_REC_COMMIT) continue;
        f->commit_seqs[f->commit_count] = f->recs[i].seq;
        strcpy(f->roots[f->commit_count], f->roots[f->commit_count - 1]);
        f->commit_count++;
    }
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    tu_dir_remove(f->dir);
    free(f);
    return 0;
}

/* The index of the last commit whose record ends at or before `cut`. */
static int last_commit_before(const fixture *f, uint64_t cut) {
    int k = -1;
    for (uint32_t i = 0; i < f->rec_count; i++) {
        bool point = f->recs[i].type == MMSB_REC_COMMIT || f->recs[i].type == MMSB_REC_CHECKPOINT;
        if (!point || f->recs[i].end > cut) continue;
        for (uint32_t c = 0; c < f->commit_count; c++) {
            if (f->commit_seqs[c] == f->recs[i].seq) k = (int)c;
        }
    }
    return k;
}

/* A copy of the store's segment, its first `keep` bytes, optionally followed
 * by zeros up to `zeros_to`. */
static char *damaged_copy(const fixture *f, uint64_t keep, uint64_t zeros_to) {
    char *copy = tu_dir_new();
    char from[4096], to[4096];
    tu_segment_path(f->dir, 1, from, sizeof from);
    tu_segment_path(copy, 1, to, sizeof to);
    uint8_t *buf = calloc(1, zeros_to > keep ? zeros_to : keep);
    tu_file_read(from, 0, buf, keep);
    tu_file_write(to, 0, buf, zeros_to > keep ? zeros_to : keep);
    free(buf);
    return copy;
}

/* Whether the fixture's bytes from the end of commit k up to `cut` are all
 * zero: recovery cannot tell such a tail from one never written. */
static bool tail_is_zero(const fixture *f, int k, uint64_t cut) {
    uint64_t end = 0;
    for (uint32_t i = 0; i < f->rec_count; i++) {
        if (f->recs[i].seq == f->commit_seqs[k]) end = f->recs[i].end;
    }
    assert_true(end > 0 && end <= cut);
    char path[4096];
    tu_segment_path(f->dir, 1, path, sizeof path);
    uint8_t buf[512];
    for (uint64_t off = end; off < cut; off += sizeof buf) {
        uint64_t n = cut - off < sizeof buf ? cut - off : sizeof buf;
        tu_file_read(path, off, buf, n);
        for (uint64_t i = 0; i < n; i++) {
            if (buf[i] != 0) return false;
        }
    }
    return true;
}

static void test_cut_at_every_offset(void **state) {
    fixture *f = *state;
    /* From the first record of the fourth-last commit to the end. */
    uint32_t commits_seen = 0, first = f->rec_count - 1;
    while (first > 0 && commits_seen < 4) commits_seen += f->recs[--first].type == MMSB_REC_COMMIT;
    uint64_t from = f->recs[first + 1].offset;
    int opened = 0;
    for (uint64_t cut = from; cut <= f->data_end; cut++) {
        bool zero_variant = cut % 2 == 1;
        char *copy = damaged_copy(f, cut, zero_variant ? f->data_end + 4096 : cut);
        mmsb_engine *e = NULL;
        TU_OK(mmsb_open(copy, &f->o, &e));
        int k = last_commit_before(f, cut);
        assert_true(k >= 0);
        mmsb_engineinfo info = tu_info(e);
        assert_int_equal(info.commit_seq, f->commit_seqs[k]);
        char root[33];
        tu_root_hex(e, root);
        assert_string_equal(root, f->roots[k]);
        bool at_commit_end = last_commit_before(f, cut) != last_commit_before(f, cut - 1);
        if (at_commit_end) {
            /* a cut just after a commit is a clean end: nothing dropped */
            assert_int_equal(info.recovery_dropped_bytes, 0);
            assert_int_equal(info.recovery_flags, 0);
        } else if (tail_is_zero(f, k, cut)) {
            /* the bytes after the commit happen to be zeros (the first byte of
             * a CRC, say): that is the look of an unwritten tail, a clean end */
            assert_int_equal(info.recovery_dropped_bytes, 0);
        } else if (info.recovery_dropped_bytes == 0) {
            fail_msg("cut at %llu (from %llu to %llu, zeros %d) dropped no bytes: %s",
                     (unsigned long long)cut, (unsigned long long)from, (unsigned long long)f->data_end,
                     zero_variant, info.recovery_detail);
        }
        if (cut % 29 == 0) {
            /* The store goes on from there, and keeps what comes next. */
            uint8_t b = (uint8_t)cut;
            mmsb_change ch;
            TU_OK(mmsb_write(e, 1, 7, &b, 1, &ch));
            b ^= 0xFF;
            TU_OK(mmsb_write(e, 1, 7, &b, 1, &ch));
            tu_root_hex(e, root);
            TU_OK(mmsb_close(e));
            TU_OK(mmsb_open(copy, &f->o, &e));
            char again[33];
            tu_root_hex(e, again);
            assert_string_equal(root, again);
        }
        TU_OK(mmsb_close(e));
        tu_dir_remove(copy);
        opened++;
    }
    print_message("opened %d cut copies\n", opened);
}

/* One flipped byte anywhere in the records before the last: corruption. */
static void test_flipped_bytes_are_corruption(void **state) {
    fixture *f = *state;
    rng r = {.state = 5};
    char seg[4096];
    int checked = 0;
    for (uint32_t i = 0; i + 1 < f->rec_count; i++) {
        for (int probe = 0; probe < 4; probe++) {
            uint64_t span = f->recs[i].end - f->recs[i].offset;
            uint64_t at = f->recs[i].offset + (probe == 0 ? 0 : rng_below(&r, span));
            char *copy = damaged_copy(f, f->data_end, f->data_end);
            tu_segment_path(copy, 1, seg, sizeof seg);
            uint8_t b;
            tu_file_read(seg, at, &b, 1);
            b ^= (uint8_t)(1u << rng_below(&r, 8));
            tu_file_write(seg, at, &b, 1);
            mmsb_engine *e = NULL;
            TU_ERR(mmsb_open(copy, &f->o, &e), MMSB_ECORRUPT);
            assert_null(e);
            assert_non_null(strstr(mmsb_last_error(), "log-0000000001.seg offset"));
            assert_non_null(strstr(mmsb_last_error(), "seq"));
            /* Salvage keeps the commits before the damage. */
            mmsb_options o = f->o;
            o.flags |= MMSB_OPEN_SALVAGE;
            TU_OK(mmsb_open(copy, &o, &e));
            mmsb_engineinfo info = tu_info(e);
            assert_true(info.recovery_flags & MMSB_RECOVERED_SALVAGED);
            int k = last_commit_before(f, f->recs[i].offset);
            if (info.commit_seq != (k >= 0 ? f->commit_seqs[k] : 0)) {
                print_message("record %u (seq %llu type %u) byte %llu: %s\n", i,
                              (unsigned long long)f->recs[i].seq, f->recs[i].type,
                              (unsigned long long)at, info.recovery_detail);
            }
            assert_int_equal(info.commit_seq, k >= 0 ? f->commit_seqs[k] : 0);
            char salvaged[33], reopened[33];
            tu_root_hex(e, salvaged);
            TU_OK(mmsb_close(e));
            /* The cut lasts: a plain open finds the salvaged state. */
            TU_OK(mmsb_open(copy, &f->o, &e));
            tu_root_hex(e, reopened);
            assert_string_equal(reopened, salvaged);
            TU_OK(mmsb_close(e));
            tu_dir_remove(copy);
            checked++;
        }
    }
    print_message("checked %d flips\n", checked);
}

/* The last record is the tail: damage there cuts it, nothing more. */
static void test_damage_in_last_record_is_a_torn_tail(void **state) {
    fixture *f = *state;
    const rec_pos *last = &f->recs[f->rec_count - 1];
    char seg[4096];
    for (uint64_t at = last->offset; at < last->end; at += 5) {
        char *copy = damaged_copy(f, f->data_end, f->data_end);
        tu_segment_path(copy, 1, seg, sizeof seg);
        uint8_t junk[3] = {0xde, 0xad, 0xbe};
        tu_file_write(seg, at, junk, sizeof junk);
        mmsb_engine *e = NULL;
        TU_OK(mmsb_open(copy, &f->o, &e));
        mmsb_engineinfo info = tu_info(e);
        assert_true(info.recovery_flags & MMSB_RECOVERED_TORN);
        assert_int_equal(info.commit_seq, f->commit_seqs[f->commit_count - 2]);
        TU_OK(mmsb_close(e));
        tu_dir_remove(copy);
    }
}

/* A DELTA payload changed, its CRC recomputed: only the chain notices. */
static void test_recomputed_crc_is_caught_by_the_chain(void **state) {
    fixture *f = *state;
    const rec_pos *delta = NULL;
    for (uint32_t i = 0; i < f->rec_count && delta == NULL; i++) {
        if (f->recs[i].type == MMSB_REC_DELTA && i > 4) delta = &f->recs[i];
    }
    assert_non_null(delta);
    char *copy = damaged_copy(f, f->data_end, f->data_end);
    char seg[4096];
    tu_segment_path(copy, 1, seg, sizeof seg);
    uint64_t len = delta->end - delta->offset;
    uint8_t *rec = malloc(len);
    tu_file_read(seg, delta->offset, rec, len);
    uint32_t payload_len = get_le32(rec + 4);
    rec[32 + payload_len - 1] ^= 0x01; /* the last new byte */
    put_le32(rec, crc32c(0, rec + 4, 28 + payload_len));
    tu_file_write(seg, delta->offset, rec, len);
    free(rec);
    mmsb_engine *e = NULL;
    TU_ERR(mmsb_open(copy, &f->o, &e), MMSB_ECORRUPT);
    assert_non_null(strstr(mmsb_last_error(), "chain value mismatch"));
    tu_dir_remove(copy);
}

/* Random junk over a span of records in the middle: corruption, no crash. */
static void test_overwritten_spans_are_corruption(void **state) {
    fixture *f = *state;
    rng r = {.state = 8};
    char seg[4096];
    for (int i = 0; i < 40; i++) {
        uint64_t limit = f->recs[f->rec_count - 1].offset;
        uint64_t at = f->recs[0].offset + rng_below(&r, limit - f->recs[0].offset - 64);
        uint8_t junk[64];
        rng_fill(&r, junk, sizeof junk);
        char *copy = damaged_copy(f, f->data_end, f->data_end);
        tu_segment_path(copy, 1, seg, sizeof seg);
        tu_file_write(seg, at, junk, 1 + rng_below(&r, sizeof junk));
        mmsb_engine *e = NULL;
        TU_ERR(mmsb_open(copy, &f->o, &e), MMSB_ECORRUPT);
        tu_dir_remove(copy);
    }
}

/* ---- several segments ------------------------------------------------------------ */

/* A store of three 4 MiB segments. */
static char *three_segments(const mmsb_options *o, uint64_t seed) {
    char *dir = tu_dir_new();
    mmsb_engine *e = tu_open(dir, o);
    uint64_t id;
    TU_OK(mmsb_page_create(e, 9u << 20, 0, &id));
    uint8_t *buf = malloc(9u << 20);
    rng r = {.state = seed};
    rng_fill(&r, buf, 9u << 20);
    TU_OK(mmsb_write(e, id, 0, buf, 9u << 20, NULL));
    free(buf);
    assert_int_equal(tu_info(e).log_segment, 3);
    TU_OK(mmsb_close(e));
    tu_checkpoint_remove(dir); /* so that opens read every segment */
    return dir;
}

static void test_other_store_segment_is_rejected(void **state) {
    (void)state;
    mmsb_options o;
    tu_options_small(&o);
    o.flags |= MMSB_OPEN_KEEP_LOG;
    char *a = three_segments(&o, 1), *b = three_segments(&o, 2);
    char seg_a[4096], seg_b[4096];
    tu_segment_path(a, 2, seg_a, sizeof seg_a);
    tu_segment_path(b, 2, seg_b, sizeof seg_b);
    uint8_t *buf = malloc(4u << 20);
    tu_file_read(seg_b, 0, buf, 4u << 20);
    tu_file_write(seg_a, 0, buf, 4u << 20);
    free(buf);
    mmsb_engine *e = NULL;
    TU_ERR(mmsb_open(a, &o, &e), MMSB_ECORRUPT);
    assert_non_null(strstr(mmsb_last_error(), "another store"));
    /* A missing middle segment is corruption too. */
    remove(seg_b);
    TU_ERR(mmsb_open(b, &o, &e), MMSB_ECORRUPT);
    assert_non_null(strstr(mmsb_last_error(), "missing"));
    tu_dir_remove(a);
    tu_dir_remove(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cut_at_every_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_bytes_are_corruption, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damage_in_last_record_is_a_torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recomputed_crc_is_caught_by_the_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overwritten_spans_are_corruption, setup, teardown),
        cmocka_unit_test(test_other_store_segment_is_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
