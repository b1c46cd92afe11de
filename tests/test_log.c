/*
 * test_log.c - the transaction log as a user sees it: every change survives
 * close and reopen byte for byte, the durability modes do what they say,
 * changes larger than a record or a segment round-trip, the reader API
 * returns what was written, unknown skippable records are skipped, and the
 * chain of a fixed workload is the pinned value.
 * run.sh runs this program (and every other) once per I/O backend.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "../engine/engine.h"

/* Everything an engine's state is made of, to compare across a reopen. */
typedef struct state_copy {
    char root[33];
    uint64_t next_id;
    uint64_t sizes[64], epochs[64];
    uint8_t *bytes[64];
} state_copy;

static void state_take(mmsb_engine *e, state_copy *s) {
    memset(s, 0, sizeof *s);
    tu_root_hex(e, s->root);
    mmsb_engineinfo info = tu_info(e);
    s->next_id = info.page_id_next;
    assert_true(s->next_id <= 64);
    for (uint64_t id = 1; id < s->next_id; id++) {
        mmsb_pageinfo pi = {.struct_size = sizeof pi};
        if (mmsb_page_info(e, id, &pi) != 0) continue;
        s->sizes[id] = pi.size_bytes;
        s->bytes[id] = malloc(pi.size_bytes);
        TU_OK(mmsb_page_read(e, id, 0, s->bytes[id], pi.size_bytes, &s->epochs[id]));
    }
}

static void state_check_and_free(mmsb_engine *e, state_copy *want) {
    state_copy got;
    state_take(e, &got);
    assert_string_equal(got.root, want->root);
    assert_int_equal(got.next_id, want->next_id);
    for (uint64_t id = 1; id < want->next_id; id++) {
        assert_int_equal(got.sizes[id], want->sizes[id]);
        assert_int_equal(got.epochs[id], want->epochs[id]);
        if (want->bytes[id] != NULL) assert_memory_equal(got.bytes[id], want->bytes[id], want->sizes[id]);
        free(got.bytes[id]);
        free(want->bytes[id]);
    }
}

/* A seeded mix of creates (small to multi-record), frees, writes and deltas. */
static void workload(mmsb_engine *e, uint64_t seed, int ops) {
    rng r = {.state = seed};
    uint64_t ids[32], sizes[32];
    uint32_t n = 0;
    static const uint64_t size_choices[] = {64, 4096, 5000, 70000, 300000};
    uint8_t *buf = malloc(300000), *mask = malloc(300000 / 8 + 1);
    for (int op = 0; op < ops; op++) {
        uint32_t what = (uint32_t)rng_below(&r, 10);
        if (n == 0 || (what == 0 && n < 32)) {
            sizes[n] = size_choices[rng_below(&r, 5)];
            TU_OK(mmsb_page_create(e, sizes[n], 0, &ids[n]));
            n++;
            continue;
        }
        uint32_t k = (uint32_t)rng_below(&r, n);
        if (what == 1) {
            TU_OK(mmsb_page_free(e, ids[k]));
            ids[k] = ids[--n];
            sizes[k] = sizes[n];
            continue;
        }
        uint64_t off = rng_below(&r, sizes[k]);
        uint64_t len = 1 + rng_below(&r, sizes[k] - off);
        rng_fill(&r, buf, len);
        if (what < 6) {
            TU_OK(mmsb_write(e, ids[k], off, buf, len, NULL));
        } else {
            rng_fill(&r, mask, (len + 7) / 8);
            if (len % 8) mask[len / 8] &= (uint8_t)((1u << (len % 8)) - 1);
            mmsb_delta d = {.page_id = ids[k], .offset = off, .len = len, .mask = mask,
                            .payload = buf, .payload_len = len};
            TU_OK(mmsb_apply(e, &d, NULL));
        }
    }
    free(buf);
    free(mask);
}

static void reopen_rebuilds_state(uint32_t durability) {
    mmsb_options o;
    tu_options_small(&o);
    o.durability = durability;
    o.root_every_commits = 3;
    tu_store s = tu_store_open(&o);
    workload(s.e, 7 + durability, 300);
    state_copy before;
    state_take(s.e, &before);
    uint64_t commit_seq = tu_info(s.e).commit_seq;
    TU_OK(mmsb_close(s.e));
    TU_OK(mmsb_open(s.dir, &o, &s.e));
    mmsb_engineinfo info = tu_info(s.e);
    assert_true(info.commit_seq > commit_seq); /* the close added its own commit */
    assert_int_equal(info.recovery_dropped_records, 0);
    assert_int_equal(info.recovery_flags, 0);
    assert_true(info.recovered_commits > 0);
    state_check_and_free(s.e, &before);
    /* And once more, after more changes on top of the recovered state. */
    workload(s.e, 99, 50);
    state_take(s.e, &before);
    TU_OK(mmsb_close(s.e));
    TU_OK(mmsb_open(s.dir, &o, &s.e));
    state_check_and_free(s.e, &before);
    tu_store_close(&s);
}

static void test_reopen_none(void **state) { (void)state; reopen_rebuilds_state(MMSB_DURABILITY_NONE); }
static void test_reopen_group(void **state) { (void)state; reopen_rebuilds_state(MMSB_DURABILITY_GROUP); }
static void test_reopen_sync(void **state) { (void)state; reopen_rebuilds_state(MMSB_DURABILITY_SYNC); }

/* A store opened and closed without changes keeps its log as it was. */
static void test_reopen_without_changes_adds_nothing(void **state) {
    (void)state;
    tu_store s = tu_store_open(NULL);
    uint64_t id;
    TU_OK(mmsb_page_create(s.e, 100, 0, &id));
    TU_OK(mmsb_close(s.e));
    mmsb_options o;
    tu_options_small(&o);
    TU_OK(mmsb_open(s.dir, &o, &s.e));
    uint64_t seq = tu_info(s.e).commit_seq;
    TU_OK(mmsb_close(s.e));
    TU_OK(mmsb_open(s.dir, &o, &s.e));
    assert_int_equal(tu_info(s.e).commit_seq, seq);
    tu_store_close(&s);
}

static void test_durability_modes(void **state) {
    (void)state;
    mmsb_options o;
    tu_options_small(&o);
    o.durability = MMSB_DURABILITY_SYNC;
    tu_store s = tu_store_open(&o);
    uint64_t id;
    mmsb_change ch;
    uint8_t b = 1;
    TU_OK(mmsb_page_create(s.e, 4096, 0, &id));
    TU_OK(mmsb_write(s.e, id, 0, &b, 1, &ch));
    assert_int_equal(tu_info(s.e).durable_seq, ch.commit_seq); /* SYNC: durable on return */

    TU_OK(mmsb_set_durability(s.e, MMSB_DURABILITY_NONE));
    b = 2;
    TU_OK(mmsb_write(s.e, id, 0, &b, 1, &ch));
    assert_true(tu_info(s.e).durable_seq < ch.commit_seq);
    TU_OK(mmsb_sync(s.e)); /* NONE: sync is the barrier */
    assert_int_equal(tu_info(s.e).durable_seq, ch.commit_seq);

    TU_OK(mmsb_set_durability(s.e, MMSB_DURABILITY_GROUP));
    b = 3;
    TU_OK(mmsb_write(s.e, id, 0, &b, 1, &ch));
    /* GROUP: durable within the window (1 ms here), without asking. */
    struct timespec pause = {0, 1000000};
    for (int i = 0; i < 2000 && tu_info(s.e).durable_seq < ch.commit_seq; i++) nanosleep(&pause, NULL);
    assert_int_equal(tu_info(s.e).durable_seq, ch.commit_seq);
    b = 4;
    TU_OK(mmsb_write(s.e, id, 0, &b, 1, &ch));
    TU_OK(mmsb_wait_durable(s.e, ch.commit_seq));
    assert_true(tu_info(s.e).durable_seq >= ch.commit_seq);
    /* Group commit: many commits, far fewer syncs. */
    uint64_t syncs = tu_info(s.e).log_syncs;
    for (int i = 0; i < 200; i++) {
        b = (uint8_t)(10 + i);
        TU_OK(mmsb_write(s.e, id, 1, &b, 1, &ch));
    }
    TU_OK(mmsb_wait_durable(s.e, ch.commit_seq));
    assert_true(tu_info(s.e).log_syncs - syncs < 100);

    TU_ERR(mmsb_wait_durable(s.e, ch.commit_seq + 1000), MMSB_EINVAL);
    TU_ERR(mmsb_set_durability(s.e, 0), MMSB_EINVAL);
    TU_ERR(mmsb_set_durability(s.e, 9), MMSB_EINVAL);
    TU_ERR(mmsb_sync(NULL), MMSB_EINVAL);
    TU_ERR(mmsb_wait_durable(NULL, 1), MMSB_EINVAL);
    tu_store_close(&s);
}

/* segment_bytes alone shrinks the log: the ring's default (16 MiB, more
 * than a small segment) follows it, and a store of small segments rolls
 * over and reopens; a ring the caller chose is still checked as given. */
static void test_small_segments_by_segment_bytes_alone(void **state) {
    (void)state;
    mmsb_options o;
    TU_OK(MMSB_OPTIONS_INIT(&o));
    o.gpu = tu_gpu();
    o.durability = MMSB_DURABILITY_NONE;
    o.arena_bytes_max = 256ull << 20;
    o.page_bytes_max = 1ull << 20;
    o.segment_bytes = 4ull << 20;
    tu_store s = tu_store_open(&o);
    uint64_t page;
    TU_OK(mmsb_page_create(s.e, 64 << 10, 0, &page));
    uint8_t buf[64 << 10];
    for (int i = 0; i < 200; i++) { /* 12.5 MiB of log: three roll-overs */
        memset(buf, i + 1, sizeof buf);
        TU_OK(mmsb_write(s.e, page, 0, buf, sizeof buf, NULL));
    }
    assert_true(tu_info(s.e).log_segment >= 4);
    char before[33], after[33];
    tu_root_hex(s.e, before);
    TU_OK(mmsb_close(s.e));
    TU_OK(mmsb_open(s.dir, &o, &s.e));
    tu_root_hex(s.e, after);
    assert_string_equal(before, after);
    tu_store_close(&s);
    mmsb_options chosen = o;
    chosen.log_buffer_bytes = 8ull << 20; /* chosen, not the default: refused */
    char *dir = tu_dir_new();
    mmsb_engine *e = NULL;
    TU_ERR(mmsb_open(dir, &chosen, &e), MMSB_EINVAL);
    assert_non_null(strstr(mmsb_last_error(), "log_buffer_bytes"));
    tu_dir_remove(dir);
}

/* Writes `count` commits of `bytes` to page (a byte per commit) and returns
 * the last byte written. */
static uint8_t write_rounds(mmsb_engine *e, uint64_t page, uint64_t bytes, int count, uint8_t first) {
    uint8_t *buf = malloc(bytes);
    assert_non_null(buf);
    for (int i = 0; i < count; i++) {
        memset(buf, (uint8_t)(first + i), bytes);
        TU_OK(mmsb_write(e, page, 0, buf, bytes, NULL));
    }
    free(buf);
    return (uint8_t)(first + count - 1);
}

/* Reopens dir with segment_bytes and checks the root and the page's bytes. */
static void reopen_same(const char *dir, mmsb_options *o, uint64_t seg_bytes, const char *root, uint64_t page,
                        uint8_t last) {
    o->segment_bytes = seg_bytes;
    mmsb_engine *e;
    TU_OK(mmsb_open(dir, o, &e));
    char now[33];
    tu_root_hex(e, now);
    assert_string_equal(now, root);
    uint8_t b[2];
    TU_OK(mmsb_page_read(e, page, 0, b, sizeof b, NULL));
    assert_int_equal(b[0], last);
    TU_OK(mmsb_close(e));
}

/* The size of segment no of dir, as its file says. */
static uint64_t segment_file_size(const char *dir, uint64_t no) {
    char seg[4200];
    tu_segment_path(dir, no, seg, sizeof seg);
    return tu_file_size(seg);
}

/* A store reopened with another segment_bytes: the segment it resumes in
 * keeps the size its header gives (readers stop there), and new segments
 * take the new sizes. Once, a writer wrote past a smaller segment's end
 * (the records were acknowledged and lost at the next open) and refused a
 * larger one by assertion. The syncing mode makes each spare slow to zero
 * (32 MiB) while a 4 MiB segment fills, which also once let the flusher
 * make a spare under the number a roll-over had just taken. */
static void test_reopen_with_other_segment_bytes(void **state) {
    (void)state;
    mmsb_options o;
    tu_options_small(&o);
    o.durability = MMSB_DURABILITY_SYNC;
    o.log_buffer_bytes = 4ull << 20;
    o.flags |= MMSB_OPEN_KEEP_LOG; /* every segment stays, to be measured */
    tu_store s = tu_store_open(&o); /* 4 MiB segments */
    uint64_t page;
    TU_OK(mmsb_page_create(s.e, 1 << 20, 0, &page));
    write_rounds(s.e, page, 1 << 20, 10, 1);
    assert_int_equal(tu_info(s.e).log_segment, 3);
    TU_OK(mmsb_close(s.e));
    o.segment_bytes = 64ull << 20; /* larger: segment 3 stays 4 MiB, segment 4 is 32 */
    TU_OK(mmsb_open(s.dir, &o, &s.e));
    uint8_t last = write_rounds(s.e, page, 1 << 20, 12, 20);
    assert_int_equal(tu_info(s.e).log_segment, 4);
    char root[33];
    tu_root_hex(s.e, root);
    TU_OK(mmsb_close(s.e));
    assert_int_equal(segment_file_size(s.dir, 3), 4ull << 20);
    assert_int_equal(segment_file_size(s.dir, 4), 32ull << 20);
    reopen_same(s.dir, &o, 4ull << 20, root, page, last);
    s.e = NULL;

    o.segment_bytes = 4ull << 20; /* smaller: segment 4 stays 32 MiB, then 4 MiB ones */
    TU_OK(mmsb_open(s.dir, &o, &s.e));
    last = write_rounds(s.e, page, 1 << 20, 40, 40);
    assert_true(tu_info(s.e).log_segment >= 6);
    tu_root_hex(s.e, root);
    TU_OK(mmsb_close(s.e));
    assert_int_equal(segment_file_size(s.dir, 4), 32ull << 20);
    assert_int_equal(segment_file_size(s.dir, 5), 4ull << 20);
    reopen_same(s.dir, &o, 64ull << 20, root, page, last);
    s.e = NULL;
    tu_store_close(&s);
}

/* A log starts at 4 MiB and doubles to segment_bytes: a small store is
 * small on disk, in every durability mode. */
static void test_segments_grow(void **state) {
    (void)state;
    uint32_t modes[] = {MMSB_DURABILITY_NONE, MMSB_DURABILITY_GROUP, MMSB_DURABILITY_SYNC};
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        mmsb_options o;
        tu_options_small(&o);
        o.segment_bytes = 64ull << 20; /* the default */
        o.log_buffer_bytes = 16ull << 20;
        o.durability = modes[m];
        o.flags |= MMSB_OPEN_KEEP_LOG;
        tu_store s = tu_store_open(&o);
        uint64_t page;
        TU_OK(mmsb_page_create(s.e, 64, 0, &page));
        TU_OK(mmsb_write(s.e, page, 0, "one page", 8, NULL));
        TU_OK(mmsb_sync(s.e));
        struct stat st;
        char seg[4200];
        tu_segment_path(s.dir, 1, seg, sizeof seg);
        assert_int_equal(stat(seg, &st), 0);
        assert_int_equal(st.st_size, 4ull << 20);
        assert_true((uint64_t)st.st_blocks * 512 <= (4ull << 20) + (64u << 10));
        mmsb_engine *e = s.e;
        uint64_t big;
        TU_OK(mmsb_page_create(e, 1 << 20, 0, &big));
        uint8_t last = write_rounds(e, big, 1 << 20, 40, 1); /* 40 MiB: segments of 4, 8, 16, 32 */
        char root[33];
        tu_root_hex(e, root);
        TU_OK(mmsb_close(e));
        static const uint64_t sizes_mib[] = {4, 8, 16, 32};
        for (uint64_t no = 1; no <= 4; no++) assert_int_equal(segment_file_size(s.dir, no), sizes_mib[no - 1] << 20);
        reopen_same(s.dir, &o, 64ull << 20, root, big, last);
        s.e = NULL;
        tu_store_close(&s);
    }
}

/* The next segment's zeros (SYNC and GROUP) are written a slice at a time
 * by the flusher, each slice synced before the next: a slice that fails
 * drops that segment (the roll-over makes it itself), and a roll-over that
 * comes before the last slice takes the segment part-zeroed. */
typedef struct slice_hook {
    int calls, refuse_from; /* refuse from this call on (0: never) */
    long delay_ns;          /* each slice waits this long first */
} slice_hook;

static int spare_slice_hook(void *ctx, const io_event *ev) {
    slice_hook *h = ctx; /* only the flusher thread calls it at this point */
    if (ev->kind != IO_EV_POINT || strcmp(ev->point, "log-spare-slice") != 0) return 0;
    h->calls++;
    if (h->delay_ns > 0) nanosleep(&(struct timespec){.tv_nsec = h->delay_ns}, NULL);
    return h->refuse_from != 0 && h->calls >= h->refuse_from ? ENOSPC : 0;
}

/* True when dir holds a segment still under its temporary name. */
static bool temp_segment_left(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    bool found = false;
    for (struct dirent *ent = readdir(d); ent != NULL && !found; ent = readdir(d)) {
        size_t n = strlen(ent->d_name);
        found = n > 4 && strcmp(ent->d_name + n - 4, ".new") == 0;
    }
    closedir(d);
    return found;
}

/* 40 MiB of whole-page changes of 1 MiB (segments of 4, 8, 16 and 32 MiB;
 * changes straddle their ends), with slices as the hook says. With
 * keep_log every segment is measured; without it checkpoints every 4 MiB
 * and retention removes segments while spares are being zeroed. */
static void spare_slices_with(uint32_t durability, slice_hook h, bool keep_log) {
    mmsb_options o;
    tu_options_small(&o);
    o.durability = durability;
    o.segment_bytes = 64ull << 20; /* the default: spares of 8, 16 and 32 MiB, several slices each */
    o.log_buffer_bytes = 4ull << 20;
    if (keep_log) o.flags |= MMSB_OPEN_KEEP_LOG;
    else o.checkpoint_log_bytes = 4ull << 20;
    char *dir = tu_dir_new();
    io_hooks hooks = {.fn = spare_slice_hook, .ctx = &h};
    mmsb_engine *e = NULL;
    TU_OK(engine_open(dir, &o, &hooks, &e));
    uint64_t page;
    TU_OK(mmsb_page_create(e, 1 << 20, 0, &page));
    uint8_t last = write_rounds(e, page, 1 << 20, 40, 1);
    assert_int_equal(tu_info(e).log_segment, 4);
    char root[33];
    tu_root_hex(e, root);
    TU_OK(mmsb_close(e));
    assert_true(h.calls >= 1); /* the slices ran (and were refused, where asked) */
    assert_false(temp_segment_left(dir));
    static const uint64_t sizes_mib[] = {4, 8, 16, 32};
    char seg[4200];
    tu_segment_path(dir, 1, seg, sizeof seg);
    if (!keep_log) assert_int_equal(access(seg, F_OK), -1); /* retention removed it */
    for (uint64_t no = keep_log ? 1 : 4; no <= 4; no++) {
        assert_int_equal(segment_file_size(dir, no), sizes_mib[no - 1] << 20);
    }
    reopen_same(dir, &o, 64ull << 20, root, page, last);
    tu_dir_remove(dir);
}

static void test_spare_zeros_in_slices(void **state) {
    (void)state;
    uint32_t modes[] = {MMSB_DURABILITY_SYNC, MMSB_DURABILITY_GROUP};
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        for (int keep = 0; keep < 2; keep++) {
            spare_slices_with(modes[m], (slice_hook){0}, keep);                   /* as a user's store */
            spare_slices_with(modes[m], (slice_hook){.refuse_from = 1}, keep);    /* no spare is ever whole */
            spare_slices_with(modes[m], (slice_hook){.refuse_from = 3}, keep);    /* dropped part-way */
            spare_slices_with(modes[m], (slice_hook){.delay_ns = 20000000}, keep); /* taken part-zeroed */
        }
    }
}

/* A crash while the flusher zeroed a spare leaves it under its temporary
 * name, part-written. No reader lists it, a read-only open beside it works,
 * and the writer makes that segment over it when it comes to it. */
static void test_spare_draft_left_by_a_crash(void **state) {
    (void)state;
    mmsb_options o;
    tu_options_small(&o);
    o.durability = MMSB_DURABILITY_SYNC;
    o.segment_bytes = 64ull << 20;
    o.flags |= MMSB_OPEN_KEEP_LOG; /* segment 2 stays, to be measured */
    tu_store s = tu_store_open(&o);
    uint64_t page;
    TU_OK(mmsb_page_create(s.e, 1 << 20, 0, &page));
    write_rounds(s.e, page, 1 << 20, 1, 1);
    TU_OK(mmsb_close(s.e));
    char seg[4200], draft[4300];
    tu_segment_path(s.dir, 2, seg, sizeof seg);
    snprintf(draft, sizeof draft, "%s.new", seg);
    uint8_t junk[4096];
    memset(junk, 0xA5, sizeof junk); /* half-written: not zeros, not a header */
    tu_file_write(draft, 0, junk, sizeof junk);
    mmsb_options ro = o;
    ro.flags = MMSB_OPEN_READONLY;
    mmsb_engine *reader;
    TU_OK(mmsb_open(s.dir, &ro, &reader));
    TU_OK(mmsb_close(reader));
    TU_OK(mmsb_open(s.dir, &o, &s.e));
    uint8_t last = write_rounds(s.e, page, 1 << 20, 12, 2); /* into segment 3 */
    assert_int_equal(tu_info(s.e).log_segment, 3);
    char root[33];
    tu_root_hex(s.e, root);
    TU_OK(mmsb_close(s.e));
    assert_false(temp_segment_left(s.dir));
    assert_int_equal(segment_file_size(s.dir, 2), 8ull << 20);
    reopen_same(s.dir, &o, 64ull << 20, root, page, last);
    s.e = NULL;
    tu_store_close(&s);
}

static void test_log_options_rejected(void **state) {
    (void)state;
    char *dir = tu_dir_new();
    mmsb_engine *e = NULL;
    mmsb_options o, bad;
    tu_options_small(&o);
    bad = o, bad.durability = 0;
    TU_ERR(mmsb_open(dir, &bad, &e), MMSB_EINVAL);
    bad = o, bad.io_backend = 7;
    TU_ERR(mmsb_open(dir, &bad, &e), MMSB_EINVAL);
    bad = o, bad.segment_bytes = 1 << 20;
    TU_ERR(mmsb_open(dir, &bad, &e), MMSB_EINVAL);
    bad = o, bad.segment_bytes = (4u << 20) + 100;
    TU_ERR(mmsb_open(dir, &bad, &e), MMSB_EINVAL);
    bad = o, bad.log_buffer_bytes = o.segment_bytes * 2;
    TU_ERR(mmsb_open(dir, &bad, &e), MMSB_EINVAL);
    bad = o, bad.group_window_us = 0;
    TU_ERR(mmsb_open(dir, &bad, &e), MMSB_EINVAL);
    bad = o, bad.group_window_bytes = 0;
    TU_ERR(mmsb_open(dir, &bad, &e), MMSB_EINVAL);
    bad = o, bad.root_every_commits = 0;
    TU_ERR(mmsb_open(dir, &bad, &e), MMSB_EINVAL);
    bad = o, bad.propagation = 7;
    TU_ERR(mmsb_open(dir, &bad, &e), MMSB_EINVAL);
    bad = o, bad.commit_bytes_max = 100;
    TU_ERR(mmsb_open(dir, &bad, &e), MMSB_EINVAL);
    bad = o, bad.txn_bytes_max = 0;
    TU_ERR(mmsb_open(dir, &bad, &e), MMSB_EINVAL);
    bad = o, bad.flags = 0x40;
    TU_ERR(mmsb_open(dir, &bad, &e), MMSB_EINVAL);
    /* The environment picks the backend, and says so. */
    setenv("MMSB_IO", "floppy", 1);
    TU_ERR(mmsb_open(dir, &o, &e), MMSB_EINVAL);
    setenv("MMSB_IO", "sync", 1);
    TU_OK(mmsb_open(dir, &o, &e));
    mmsb_engineinfo info = tu_info(e);
    assert_string_equal(info.io_backend, "sync");
    assert_non_null(strstr(info.io_reason, "MMSB_IO"));
    TU_OK(mmsb_close(e));
    unsetenv("MMSB_IO");
    tu_dir_remove(dir);
}

/* A 12 MiB page rewritten whole: 64 KiB records, across 4 MiB segments. */
static void test_large_change_spans_segments(void **state) {
    (void)state;
    mmsb_options o;
    tu_options_small(&o);
    o.durability = MMSB_DURABILITY_GROUP;
    tu_store s = tu_store_open(&o);
    uint64_t size = 12u << 20, id;
    TU_OK(mmsb_page_create(s.e, size, 0, &id));
    uint8_t *buf = malloc(size);
    rng r = {.state = 3};
    rng_fill(&r, buf, size);
    mmsb_change ch;
    TU_OK(mmsb_write(s.e, id, 0, buf, size, &ch));
    assert_int_equal(ch.epoch, 1);
    uint64_t nonzero = 0;
    for (uint64_t i = 0; i < size; i++) nonzero += buf[i] != 0;
    assert_int_equal(ch.bytes_changed, nonzero); /* the page was all zeros */
    assert_true(tu_info(s.e).log_segment >= 4);
    state_copy before;
    state_take(s.e, &before);
    TU_OK(mmsb_close(s.e));
    TU_OK(mmsb_open(s.dir, &o, &s.e));
    state_check_and_free(s.e, &before);
    free(buf);
    tu_store_close(&s);
}

/* ---- the reader ---------------------------------------------------------------- */

static void test_reader_returns_what_was_written(void **state) {
    (void)state;
    mmsb_options o;
    tu_options_small(&o);
    o.root_every_commits = 2;
    tu_store s = tu_store_open(&o);
    uint64_t id;
    TU_OK(mmsb_page_create(s.e, 4096, 0, &id));
    const char text[] = "hello";
    TU_OK(mmsb_write(s.e, id, 100, text, 5, NULL));
    uint8_t mask[1] = {0x05}, packed[2] = {'A', 'B'};
    mmsb_delta d = {.page_id = id, .offset = 200, .len = 3, .mask = mask, .payload = packed,
                    .payload_len = 2, .flags = MMSB_DELTA_SPARSE};
    TU_OK(mmsb_apply(s.e, &d, NULL));
    TU_OK(mmsb_page_free(s.e, id));
    TU_OK(mmsb_sync(s.e));

    mmsb_log_reader *r;
    TU_OK(mmsb_log_open(s.dir, 0, &r));
    mmsb_log_record rec = {.struct_size = sizeof rec};
    static const uint32_t want[] = {MMSB_REC_PAGE_CREATE, MMSB_REC_COMMIT, MMSB_REC_DELTA,
                                    MMSB_REC_COMMIT, MMSB_REC_DELTA, MMSB_REC_COMMIT,
                                    MMSB_REC_PAGE_FREE, MMSB_REC_COMMIT, MMSB_REC_END};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        TU_OK(mmsb_log_next(r, &rec));
        assert_int_equal(rec.type, want[i]);
        if (rec.type == MMSB_REC_END) break;
        assert_int_equal(rec.seq, i + 1);
        assert_int_equal(rec.segment, 1);
        assert_int_equal(rec.committed, 1);
        if (rec.type == MMSB_REC_PAGE_CREATE) assert_int_equal(rec.size_bytes, 4096);
        if (rec.type == MMSB_REC_COMMIT) {
            assert_int_equal(rec.has_root, (i + 1) / 2 % 2 == 0);
            assert_int_equal(rec.first_seq, i);
        }
        if (rec.type == MMSB_REC_DELTA && i == 2) {
            assert_int_equal(rec.offset_in_page, 100);
            assert_int_equal(rec.len, 5);
            assert_null(rec.mask); /* every byte changed: FULL */
            assert_memory_equal(rec.bytes, text, 5);
            assert_int_equal(rec.epoch, 1);
        }
        if (rec.type == MMSB_REC_DELTA && i == 4) {
            assert_int_equal(rec.offset_in_page, 200);
            assert_non_null(rec.mask);
            assert_int_equal(rec.mask[0], 0x05);
            assert_int_equal(rec.bytes_len, 2);
            assert_memory_equal(rec.bytes, packed, 2);
            assert_int_equal(rec.epoch, 2);
        }
    }
    TU_OK(mmsb_log_next(r, &rec)); /* stays at the end */
    assert_int_equal(rec.type, MMSB_REC_END);
    rec.struct_size = 8;
    TU_ERR(mmsb_log_next(r, &rec), MMSB_EINVAL);
    TU_ERR(mmsb_log_next(NULL, &rec), MMSB_EINVAL);
    TU_OK(mmsb_log_close(r));
    TU_OK(mmsb_log_close(NULL));
    TU_ERR(mmsb_log_open(s.dir, 1, &r), MMSB_EINVAL);
    TU_ERR(mmsb_log_open(NULL, 0, &r), MMSB_EINVAL);
    TU_ERR(mmsb_log_open("/nonexistent/mmsb", 0, &r), MMSB_ENOTFOUND);
    tu_store_close(&s);
}

/* Records of a type a reader may skip (0x8000 and up) are chained and kept,
 * but change nothing on replay; an unknown required type is corruption. */
static void append_raw_and_commit(mmsb_engine *e, uint16_t type) {
    uint8_t *p;
    TU_OK(log_append(e->log, type, 12, &p));
    memcpy(p, "future data!", 12);
    log_append_done(e->log);
    uint64_t seq;
    TU_OK(log_commit(e->log, NULL, MMSB_DURABILITY_SYNC, &seq));
}

/* A PAGE_CREATE record whose flags no library writes (both placements,
 * or an unknown bit), chained and committed as the writer would: replay
 * refuses it as corruption, naming the flags, whatever the engine's device. */
static void test_page_create_flags_checked_on_replay(void **state) {
    (void)state;
    static const uint32_t bad[] = {MMSB_PAGE_HOST | MMSB_PAGE_DEVICE, 0x4, 0x80000000u};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mmsb_options o;
        tu_options_small(&o);
        tu_store s = tu_store_open(&o);
        uint64_t id;
        TU_OK(mmsb_page_create(s.e, 64, MMSB_PAGE_HOST, &id)); /* a valid flag replays */
        uint8_t *p;
        TU_OK(log_append(s.e->log, REC_PAGE_CREATE, CREATE_REC_BYTES, &p));
        rec_encode_create(p, id + 1, 64, bad[i]);
        log_append_done(s.e->log);
        uint64_t seq;
        TU_OK(log_commit(s.e->log, NULL, MMSB_DURABILITY_SYNC, &seq));
        TU_OK(mmsb_close(s.e));
        tu_checkpoint_remove(s.dir);
        TU_ERR(mmsb_open(s.dir, &o, &s.e), MMSB_ECORRUPT);
        char want[32];
        snprintf(want, sizeof want, "flags 0x%x", bad[i]);
        assert_non_null(strstr(mmsb_last_error(), want));
        tu_dir_remove(s.dir);
    }
}

static void test_skippable_and_unknown_types(void **state) {
    (void)state;
    mmsb_options o;
    tu_options_small(&o);
    tu_store s = tu_store_open(&o);
    uint64_t id;
    TU_OK(mmsb_page_create(s.e, 64, 0, &id));
    append_raw_and_commit(s.e, 0x8001);
    char root[33];
    tu_root_hex(s.e, root);
    TU_OK(mmsb_close(s.e));
    TU_OK(mmsb_open(s.dir, &o, &s.e));
    char again[33];
    tu_root_hex(s.e, again);
    assert_string_equal(root, again);
    append_raw_and_commit(s.e, 77);
    TU_OK(mmsb_close(s.e));
    tu_checkpoint_remove(s.dir); /* the close's checkpoint would cover the record */
    TU_ERR(mmsb_open(s.dir, &o, &s.e), MMSB_ECORRUPT);
    assert_non_null(strstr(mmsb_last_error(), "unknown type 77"));
    s.e = NULL;
    tu_dir_remove(s.dir);
}

/* ---- the log's bytes are fixed by the workload -------------------------------- */

enum { OP_FAILS_ON_EE = MMSB_OP_USER_FIRST + 1 };

/* A copy of the first 64 bytes of its parent that fails when the parent
 * starts with 0xEE: the commit that tries it ends in an ABORT record. */
static int copy_unless_ee(void *user, const mmsb_op_input *in, uint8_t *out, uint64_t out_len) {
    (void)user;
    if (in->parent_bytes[0][0] == 0xEE) return 1;
    memcpy(out, in->parent_bytes[0], out_len);
    return 0;
}

/* The workload: small writes, batches, a transaction, derived pages, an
 * aborted commit, checkpoint markers, NONE, GROUP and SYNC commits, records
 * of a few KiB among small ones (sealed by the writer, the small ones by
 * whoever flushes), and changes large enough to straddle 4 MiB segments (a
 * SEAL inside a commit). At round `reopen_at` (if any) the store is closed
 * and opened again with `o`, and the user operation registered again. */
static void chain_workload(tu_store *s, const mmsb_options *o, int reopen_at) {
    mmsb_engine *e = s->e;
    uint64_t ids[8], big, child, user_child;
    for (int i = 0; i < 8; i++) TU_OK(mmsb_page_create(e, 4096, 0, &ids[i]));
    TU_OK(mmsb_page_create(e, 3u << 20, 0, &big));
    TU_OK(mmsb_page_create(e, 4096, 0, &child));
    TU_OK(mmsb_page_create(e, 64, 0, &user_child));
    mmsb_derive_spec copy = {.struct_size = sizeof copy, .op = MMSB_OP_COPY, .parents = &ids[0], .parent_count = 1};
    TU_OK(mmsb_derive(e, child, &copy, NULL));
    TU_OK(mmsb_op_register(e, OP_FAILS_ON_EE, 1, copy_unless_ee, NULL));
    const uint64_t params[2] = {0, 64};
    mmsb_derive_spec user = {.struct_size = sizeof user, .op = OP_FAILS_ON_EE, .parents = &ids[1],
                             .parent_count = 1, .params = params, .params_len = sizeof params};
    TU_OK(mmsb_derive(e, user_child, &user, NULL));
    uint8_t *buf = malloc(3u << 20);
    assert_non_null(buf);
    rng r = {.state = 17};
    for (int round = 0; round < 300; round++) {
        if (round == reopen_at) {
            TU_OK(mmsb_close(e));
            TU_OK(mmsb_open(s->dir, o, &s->e));
            e = s->e;
            TU_OK(mmsb_op_register(e, OP_FAILS_ON_EE, 1, copy_unless_ee, NULL));
        }
        uint8_t bytes[96];
        rng_fill(&r, bytes, sizeof bytes);
        uint64_t id = ids[rng_below(&r, 8)], off = rng_below(&r, 4096 - sizeof bytes);
        TU_OK(mmsb_write(e, id, off, bytes, 1 + rng_below(&r, sizeof bytes), NULL));
        if (round % 50 == 7) { /* a batch of sparse deltas */
            mmsb_delta d[4];
            uint8_t mask[4][4];
            for (int k = 0; k < 4; k++) {
                rng_fill(&r, mask[k], sizeof mask[k]);
                mask[k][0] |= 1;
                d[k] = (mmsb_delta){.page_id = ids[k], .offset = 64 * (uint64_t)k, .len = 32, .mask = mask[k],
                                    .payload = bytes, .payload_len = 32};
            }
            TU_OK(mmsb_apply_batch(e, d, 4, 0, NULL));
        }
        if (round % 60 == 11) { /* a transaction */
            mmsb_txn *t;
            TU_OK(mmsb_txn_begin(e, &t));
            TU_OK(mmsb_txn_write(t, ids[2], 10, bytes, 20));
            TU_OK(mmsb_txn_write(t, ids[3], 30, bytes + 20, 40));
            TU_OK(mmsb_txn_commit(t, 0, NULL));
        }
        if (round % 70 == 13) { /* the user operation fails: rolled back, an ABORT in the log */
            TU_ERR(mmsb_write(e, ids[1], 0, "\xEE", 1, NULL), MMSB_EOP);
        }
        if (round % 25 == 3) { /* a record large enough that the writer seals it as it appends it */
            rng_fill(&r, buf, 6000);
            TU_OK(mmsb_write(e, big, (uint64_t)round * 8192 % (3u << 20), buf, 6000, NULL));
        }
        if (round == 150) TU_OK(mmsb_set_durability(e, MMSB_DURABILITY_GROUP));
        if (round == 200) TU_OK(mmsb_set_durability(e, MMSB_DURABILITY_NONE));
        if (round % 100 == 42) TU_OK(mmsb_checkpoint(e));
        if (round % 100 == 77) { /* 3 MiB in one commit, in SYNC */
            rng_fill(&r, buf, 3u << 20);
            TU_OK(mmsb_set_durability(e, MMSB_DURABILITY_SYNC));
            TU_OK(mmsb_write(e, big, 0, buf, 3u << 20, NULL));
            TU_OK(mmsb_set_durability(e, MMSB_DURABILITY_NONE));
        }
    }
    free(buf);
}

/* Every record's CRC covers the store's salt, but a commit's chain value
 * covers only what the records say: the same workload gives the same chain
 * in any store, and this value pins it, so any change to what the writer
 * puts in the log (or to where it computes the CRCs and chain) shows here.
 * The reader checks every CRC and every chain link on the way. The values
 * were computed with the writer before sealing moved to the flusher. */
static void test_chain_of_a_fixed_workload_is_pinned(void **state) {
    (void)state;
    mmsb_options o;
    tu_options_small(&o);
    o.checkpoint_log_bytes = 0;
    o.log_buffer_bytes = 1u << 20; /* the smallest ring: it wraps many times */
    o.flags |= MMSB_OPEN_KEEP_LOG;   /* the reader sees every record */
    tu_store s = tu_store_open(&o);
    chain_workload(&s, &o, -1);
    TU_OK(mmsb_close(s.e));
    tu_log_summary sum;
    TU_OK(tu_log_summarise(s.dir, &sum));
    assert_true(sum.by_type[MMSB_REC_ABORT] >= 4 && sum.by_type[MMSB_REC_CHECKPOINT] >= 2);
    assert_true(sum.by_type[MMSB_REC_SEAL] >= 2 && sum.by_type[MMSB_REC_DERIVED] >= 10);
    assert_string_equal(sum.chain_hex, "056212116f1f444ccb60f9b08b8dd043");
    tu_dir_remove(s.dir);
}

/* The same workload on a store that lives as users' stores do: the policy
 * checkpoints every MiB and retention removes the segments before each
 * checkpoint, and the store is closed and reopened halfway, so the writer
 * resumes the chain from what recovery found. */
static void test_chain_pinned_across_retention_and_reopen(void **state) {
    (void)state;
    mmsb_options o;
    tu_options_small(&o);
    o.checkpoint_log_bytes = 1u << 20;
    o.log_buffer_bytes = 1u << 20;
    tu_store s = tu_store_open(&o);
    chain_workload(&s, &o, 120);
    TU_OK(mmsb_close(s.e));
    tu_log_summary sum;
    TU_OK(tu_log_summarise(s.dir, &sum));
    assert_true(sum.first_seq > 1); /* retention removed the first segments */
    assert_true(sum.by_type[MMSB_REC_COMMIT] >= 10 && sum.by_type[MMSB_REC_CHECKPOINT] >= 1);
    assert_string_equal(sum.chain_hex, "6d5ddd1399247a778709993f5afecd19");
    tu_dir_remove(s.dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reopen_none),
        cmocka_unit_test(test_reopen_group),
        cmocka_unit_test(test_reopen_sync),
        cmocka_unit_test(test_reopen_without_changes_adds_nothing),
        cmocka_unit_test(test_durability_modes),
        cmocka_unit_test(test_log_options_rejected),
        cmocka_unit_test(test_small_segments_by_segment_bytes_alone),
        cmocka_unit_test(test_reopen_with_other_segment_bytes),
        cmocka_unit_test(test_segments_grow),
        cmocka_unit_test(test_spare_zeros_in_slices),
        cmocka_unit_test(test_spare_draft_left_by_a_crash),
        cmocka_unit_test(test_large_change_spans_segments),
        cmocka_unit_test(test_reader_returns_what_was_written),
        cmocka_unit_test(test_skippable_and_unknown_types),
        cmocka_unit_test(test_page_create_flags_checked_on_replay),
        cmocka_unit_test(test_chain_of_a_fixed_workload_is_pinned),
        cmocka_unit_test(test_chain_pinned_across_retention_and_reopen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
