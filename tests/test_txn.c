/*
 * test_txn.c - batches, transactions and events:
 * - a batch or a transaction is one commit; changes to one page apply in
 *   order; staged changes are invisible until the commit;
 * - an abort leaves no trace in state or log; a conflict, a bad staged
 *   change or a freed page fails the whole commit with nothing applied;
 * - events come after the commit, in order, and a callback cannot write;
 * - kill -9 in the middle of multi-page transactions over a DAG: after
 *   reopen the state is exactly the state after some prefix of the commits.
 */
#include <signal.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "../engine/engine.h"

static uint64_t page(mmsb_engine *e, uint64_t size) {
    uint64_t id;
    TU_OK(mmsb_page_create(e, size, 0, &id));
    return id;
}

static uint64_t epoch_of(mmsb_engine *e, uint64_t id) {
    mmsb_pageinfo info = {.struct_size = sizeof info};
    TU_OK(mmsb_page_info(e, id, &info));
    return info.epoch;
}

/* Records on disk (the caller syncs first). */
static uint64_t log_records(mmsb_engine *e, const char *dir) {
    TU_OK(mmsb_sync(e));
    mmsb_log_reader *r;
    TU_OK(mmsb_log_open(dir, 0, &r));
    mmsb_log_record rec = {.struct_size = sizeof rec};
    uint64_t n = 0;
    for (;;) {
        TU_OK(mmsb_log_next(r, &rec));
        if (rec.type == MMSB_REC_END) break;
        n++;
    }
    TU_OK(mmsb_log_close(r));
    return n;
}

static void test_transaction_commits_as_one(void **state) {
    (void)state;
    tu_store s = tu_store_open(NULL);
    uint64_t a = page(s.e, 64), b = page(s.e, 64);
    mmsb_txn *t;
    TU_OK(mmsb_txn_begin(s.e, &t));
    TU_OK(mmsb_txn_write(t, a, 0, "first", 5));
    uint8_t mask[1] = {0x03}, two[2] = {'X', 'Y'};
    mmsb_delta d = {.page_id = b, .offset = 8, .len = 2, .mask = mask, .payload = two, .payload_len = 2,
                    .flags = MMSB_DELTA_SPARSE | MMSB_DELTA_EXPECT_EPOCH, .expected_epoch = 0};
    TU_OK(mmsb_txn_apply(t, &d));
    TU_OK(mmsb_txn_write(t, a, 0, "second", 6)); /* same page: applies after the first */
    uint8_t buf[8];
    TU_OK(mmsb_page_read(s.e, a, 0, buf, 6, NULL));
    assert_memory_equal(buf, "\0\0\0\0\0\0", 6); /* staged: not visible */
    mmsb_commit_result r = {.struct_size = sizeof r};
    TU_OK(mmsb_txn_commit(t, MMSB_DURABILITY_SYNC, &r));
    assert_int_equal(r.pages_changed, 3);
    assert_true(r.commit_seq > 0);
    assert_int_equal(tu_info(s.e).durable_seq, r.commit_seq);
    TU_OK(mmsb_page_read(s.e, a, 0, buf, 6, NULL));
    assert_memory_equal(buf, "second", 6);
    assert_int_equal(epoch_of(s.e, a), 1); /* one commit: one epoch, however many changes */
    assert_int_equal(epoch_of(s.e, b), 1);
    TU_OK(mmsb_sync(s.e));
    /* create a, commit; create b, commit; 2 + 1 + 2 deltas, one commit */
    assert_int_equal(log_records(s.e, s.dir), 2 + 2 + 4);
    tu_store_close(&s);
}

static void test_abort_and_failed_commits_leave_nothing(void **state) {
    (void)state;
    tu_store s = tu_store_open(NULL);
    uint64_t a = page(s.e, 64), b = page(s.e, 64), gone = page(s.e, 64), der = page(s.e, 64);
    mmsb_derive_spec spec = {.struct_size = sizeof spec, .op = MMSB_OP_COPY, .parents = &a, .parent_count = 1};
    TU_OK(mmsb_derive(s.e, der, &spec, NULL));
    TU_OK(mmsb_sync(s.e));
    char root[33], after[33];
    tu_root_hex(s.e, root);
    uint64_t records = log_records(s.e, s.dir), seq = tu_info(s.e).commit_seq;
    mmsb_txn *t;
    /* abort */
    TU_OK(mmsb_txn_begin(s.e, &t));
    TU_OK(mmsb_txn_write(t, a, 0, "zzz", 3));
    TU_OK(mmsb_txn_abort(t));
    /* a conflict: the page moved on between staging and commit */
    TU_OK(mmsb_txn_begin(s.e, &t));
    TU_OK(mmsb_txn_write(t, a, 0, "aaa", 3));
    uint8_t mask[1] = {1}, v = 9;
    mmsb_delta d = {.page_id = b, .len = 1, .mask = mask, .payload = &v, .payload_len = 1,
                    .flags = MMSB_DELTA_EXPECT_EPOCH, .expected_epoch = 0};
    TU_OK(mmsb_txn_apply(t, &d));
    mmsb_delta bump = {.page_id = b, .offset = 5, .len = 1, .mask = mask, .payload = &v, .payload_len = 1};
    TU_OK(mmsb_apply(s.e, &bump, NULL));
    tu_root_hex(s.e, root);
    records = log_records(s.e, s.dir);
    seq = tu_info(s.e).commit_seq;
    TU_ERR(mmsb_txn_commit(t, 0, NULL), MMSB_ECONFLICT);
    assert_non_null(strstr(mmsb_last_error(), "staged change 1"));
    /* a freed page, a derived page */
    TU_OK(mmsb_txn_begin(s.e, &t));
    TU_OK(mmsb_txn_write(t, a, 0, "aaa", 3));
    TU_OK(mmsb_txn_write(t, gone, 0, "x", 1));
    mmsb_txn *t2;
    TU_OK(mmsb_txn_begin(s.e, &t2));
    TU_OK(mmsb_txn_write(t2, der, 0, "x", 1));
    tu_root_hex(s.e, root);
    TU_OK(mmsb_page_free(s.e, gone));
    tu_root_hex(s.e, root);
    records = log_records(s.e, s.dir);
    seq = tu_info(s.e).commit_seq;
    TU_ERR(mmsb_txn_commit(t, 0, NULL), MMSB_ENOTFOUND);
    TU_ERR(mmsb_txn_commit(t2, 0, NULL), MMSB_EINVAL);
    /* bad input is refused when staged */
    TU_OK(mmsb_txn_begin(s.e, &t));
    uint8_t stray[1] = {0xF0};
    mmsb_delta bad = {.page_id = a, .len = 3, .mask = stray, .payload = &v, .payload_len = 4};
    TU_ERR(mmsb_txn_apply(t, &bad), MMSB_EINVAL);
    TU_ERR(mmsb_txn_write(t, a, 0, NULL, 3), MMSB_EINVAL);
    TU_ERR(mmsb_txn_write(NULL, a, 0, "x", 1), MMSB_EINVAL);
    TU_ERR(mmsb_txn_commit(t, 9, NULL), MMSB_EINVAL);
    TU_ERR(mmsb_txn_begin(NULL, &t), MMSB_EINVAL);
    TU_OK(mmsb_txn_abort(NULL));
    tu_root_hex(s.e, after);
    assert_string_equal(root, after);
    assert_int_equal(tu_info(s.e).commit_seq, seq);
    TU_OK(mmsb_sync(s.e));
    assert_int_equal(log_records(s.e, s.dir), records);
    tu_store_close(&s);
}

static void test_staging_limit_and_busy_retry(void **state) {
    (void)state;
    mmsb_options o;
    tu_options_small(&o);
    o.txn_bytes_max = 4096;
    tu_store s = tu_store_open(&o);
    uint64_t a = page(s.e, 8192);
    uint8_t big[5000] = {1};
    mmsb_txn *t;
    TU_OK(mmsb_txn_begin(s.e, &t));
    TU_ERR(mmsb_txn_write(t, a, 0, big, sizeof big), MMSB_ENOSPC);
    TU_OK(mmsb_txn_write(t, a, 0, big, 1000));
    atomic_store(&s.e->busy, 1); /* another thread holds the writer role */
    TU_ERR(mmsb_txn_commit(t, 0, NULL), MMSB_EBUSY);
    atomic_store(&s.e->busy, 0);
    TU_OK(mmsb_txn_commit(t, 0, NULL)); /* still open: the retry commits */
    assert_int_equal(epoch_of(s.e, a), 1);
    tu_store_close(&s);
}

static void test_batch(void **state) {
    (void)state;
    tu_store s = tu_store_open(NULL);
    uint64_t a = page(s.e, 64), b = page(s.e, 64);
    uint8_t m[1] = {1}, x = 1, y = 2;
    mmsb_delta ds[3] = {
        {.page_id = a, .len = 1, .mask = m, .payload = &x, .payload_len = 1},
        {.page_id = b, .len = 1, .mask = m, .payload = &x, .payload_len = 1},
        {.page_id = a, .len = 1, .mask = m, .payload = &y, .payload_len = 1},
    };
    mmsb_commit_result r = {.struct_size = sizeof r};
    TU_OK(mmsb_apply_batch(s.e, ds, 3, 0, &r));
    assert_int_equal(r.pages_changed, 3);
    uint8_t got;
    TU_OK(mmsb_page_read(s.e, a, 0, &got, 1, NULL));
    assert_int_equal(got, 2); /* array order */
    assert_int_equal(epoch_of(s.e, a), 1); /* the commit changed it: one epoch */
    /* Expected epochs in a batch all mean the epoch before the commit, also
     * for a page the batch changes twice. */
    uint8_t z = 3, w = 4;
    mmsb_delta twice[2] = {
        {.page_id = a, .len = 1, .mask = m, .payload = &z, .payload_len = 1, .flags = MMSB_DELTA_EXPECT_EPOCH,
         .expected_epoch = 1},
        {.page_id = a, .offset = 1, .len = 1, .mask = m, .payload = &w, .payload_len = 1,
         .flags = MMSB_DELTA_EXPECT_EPOCH, .expected_epoch = 1},
    };
    TU_OK(mmsb_apply_batch(s.e, twice, 2, 0, &r));
    assert_int_equal(epoch_of(s.e, a), 2);
    TU_ERR(mmsb_apply_batch(s.e, twice, 2, 0, &r), MMSB_ECONFLICT);
    char root[33], after[33];
    tu_root_hex(s.e, root);
    ds[1].page_id = 999;
    TU_ERR(mmsb_apply_batch(s.e, ds, 3, 0, &r), MMSB_ENOTFOUND);
    assert_non_null(strstr(mmsb_last_error(), "delta 1"));
    ds[1].page_id = b;
    ds[2].flags = MMSB_DELTA_EXPECT_EPOCH, ds[2].expected_epoch = 7;
    TU_ERR(mmsb_apply_batch(s.e, ds, 3, 0, &r), MMSB_ECONFLICT);
    TU_ERR(mmsb_apply_batch(s.e, NULL, 2, 0, &r), MMSB_EINVAL);
    TU_ERR(mmsb_apply_batch(s.e, ds, 1, 99, &r), MMSB_EINVAL);
    r.struct_size = 8;
    TU_ERR(mmsb_apply_batch(s.e, ds, 1, 0, &r), MMSB_EINVAL);
    tu_root_hex(s.e, after);
    assert_string_equal(root, after);
    r.struct_size = sizeof r;
    TU_OK(mmsb_apply_batch(s.e, ds, 0, 0, &r));
    assert_int_equal(r.commit_seq, 0); /* nothing: no commit */
    tu_store_close(&s);
}

/* ---- events ----------------------------------------------------------------------------- */

typedef struct recorder {
    mmsb_engine *e;
    mmsb_event seen[32];
    int count;
    int write_rc, read_rc, other_thread_rc;
} recorder;

/* Another thread's writing call while the writer runs a callback: the
 * writer role is taken (EBUSY), and it is not the callback's own call. */
static void *write_from_other_thread(void *arg) {
    recorder *r = arg;
    uint8_t b = 2;
    r->other_thread_rc = mmsb_write(r->e, 1, 0, &b, 1, NULL);
    return NULL;
}

static void record(void *user, const mmsb_event *ev) {
    recorder *r = user;
    if (r->count < 32) r->seen[r->count++] = *ev;
    uint8_t b = 1, buf[4];
    r->write_rc = mmsb_write(r->e, 1, 0, &b, 1, NULL);
    r->read_rc = mmsb_page_read(r->e, 1, 0, buf, 4, NULL);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, write_from_other_thread, r), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
}

static void test_events(void **state) {
    (void)state;
    tu_store s = tu_store_open(NULL);
    recorder rec = {.e = s.e};
    uint64_t a = page(s.e, 16), b = page(s.e, 16), sub, sub2;
    mmsb_derive_spec spec = {.struct_size = sizeof spec, .op = MMSB_OP_COPY, .parents = &a, .parent_count = 1};
    TU_OK(mmsb_derive(s.e, b, &spec, NULL));
    TU_OK(mmsb_subscribe(s.e, MMSB_EVENT_PAGE_CHANGED | MMSB_EVENT_DERIVED | MMSB_EVENT_COMMIT, record, &rec, &sub));
    TU_OK(mmsb_subscribe(s.e, MMSB_EVENT_COMMIT, record, &rec, &sub2));
    mmsb_change ch;
    TU_OK(mmsb_write(s.e, a, 3, "hey", 3, &ch));
    assert_int_equal(rec.count, 4);
    assert_int_equal(rec.seen[0].type, MMSB_EVENT_PAGE_CHANGED);
    assert_int_equal(rec.seen[0].page_id, a);
    assert_int_equal(rec.seen[0].bytes_changed, 3);
    assert_int_equal(rec.seen[1].type, MMSB_EVENT_DERIVED);
    assert_int_equal(rec.seen[1].page_id, b);
    assert_int_equal(rec.seen[1].epoch, 1);
    assert_int_equal(rec.seen[2].type, MMSB_EVENT_COMMIT);
    assert_int_equal(rec.seen[3].type, MMSB_EVENT_COMMIT); /* the second subscriber */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(rec.seen[i].commit_seq, ch.commit_seq);
        assert_int_equal(rec.seen[i].flags, 0); /* nothing truncated */
    }
    assert_int_equal(rec.write_rc, MMSB_ECALLBACK);
    assert_int_equal(rec.other_thread_rc, MMSB_EBUSY);
    assert_int_equal(rec.read_rc, 0);
    TU_OK(mmsb_unsubscribe(s.e, sub));
    TU_OK(mmsb_unsubscribe(s.e, sub2));
    TU_ERR(mmsb_unsubscribe(s.e, sub), MMSB_ENOTFOUND);
    TU_OK(mmsb_write(s.e, a, 3, "you", 3, NULL));
    assert_int_equal(rec.count, 4);
    TU_ERR(mmsb_subscribe(s.e, 0, record, &rec, &sub), MMSB_EINVAL);
    TU_ERR(mmsb_subscribe(s.e, 0x100, record, &rec, &sub), MMSB_EINVAL);
    TU_ERR(mmsb_subscribe(s.e, MMSB_EVENT_COMMIT, NULL, &rec, &sub), MMSB_EINVAL);
    for (uint32_t i = 0; i < MMSB_SUBSCRIBERS_MAX; i++)
        TU_OK(mmsb_subscribe(s.e, MMSB_EVENT_COMMIT, record, &rec, &sub));
    TU_ERR(mmsb_subscribe(s.e, MMSB_EVENT_COMMIT, record, &rec, &sub), MMSB_ENOSPC);
    tu_store_close(&s);
}

/* ---- kill -9 during transactions and propagation ----------------------------------------- */

enum { KILLS = 60, BASES = 12, CHILDREN = 40 };

typedef struct dag_work {
    rng r;
    uint64_t all[BASES + CHILDREN];
    uint32_t pages;   /* pages created */
    uint32_t derived; /* children derived */
} dag_work;

/* One step of the sequence, one commit each: create the base pages, then
 * for each child create it and derive it from earlier pages, then one
 * transaction of writes to base pages per step. */
static int dag_step(mmsb_engine *e, dag_work *w, uint64_t *seq) {
    mmsb_commit_result r = {.struct_size = sizeof r};
    int rc;
    if (w->pages < BASES || (w->pages - BASES == w->derived && w->derived < CHILDREN)) {
        rc = mmsb_page_create(e, 4096, 0, &w->all[w->pages]);
        if (rc == 0) w->pages++;
        *seq = rc == 0 ? tu_info(e).commit_seq : 0;
        return rc;
    }
    if (w->derived < CHILDREN) {
        uint32_t i = w->derived, n = 1 + (uint32_t)rng_below(&w->r, 3);
        uint64_t parents[3];
        for (uint32_t k = 0; k < n; k++) parents[k] = w->all[rng_below(&w->r, BASES + i)];
        uint32_t op = n == 1 ? MMSB_OP_COPY : (i % 2 ? MMSB_OP_XOR : MMSB_OP_SUM_U32);
        mmsb_derive_spec spec = {.struct_size = sizeof spec, .op = op, .parents = parents, .parent_count = n};
        rc = mmsb_derive(e, w->all[BASES + i], &spec, &r);
        if (rc == 0) w->derived++;
        *seq = r.commit_seq;
        return rc;
    }
    mmsb_txn *t;
    rc = mmsb_txn_begin(e, &t);
    uint32_t n = 1 + (uint32_t)rng_below(&w->r, 6);
    uint8_t buf[700];
    for (uint32_t i = 0; rc == 0 && i < n; i++) {
        rng_fill(&w->r, buf, sizeof buf);
        rc = mmsb_txn_write(t, w->all[rng_below(&w->r, BASES)], rng_below(&w->r, 3000), buf, sizeof buf);
    }
    if (rc == 0) rc = mmsb_txn_commit(t, 0, &r);
    *seq = r.commit_seq;
    return rc;
}

static void dag_options(mmsb_options *o, uint32_t durability) {
    tu_options_small(o);
    o->durability = durability;
    o->root_every_commits = 3;
}

static _Noreturn void dag_child(const char *dir, int fd, uint64_t seed) {
    mmsb_options o;
    dag_options(&o, MMSB_DURABILITY_SYNC);
    mmsb_engine *e;
    if (mmsb_open(dir, &o, &e) != 0) _exit(3);
    dag_work w = {.r = {.state = seed}};
    for (;;) {
        uint64_t seq;
        if (dag_step(e, &w, &seq) != 0) _exit(5);
        if (write(fd, &seq, sizeof seq) != sizeof seq) _exit(6);
    }
}

static void dag_reference(uint64_t seed, uint64_t want_seq, char hex[33]) {
    mmsb_options o;
    dag_options(&o, MMSB_DURABILITY_NONE);
    tu_store s = tu_store_open(&o);
    dag_work w = {.r = {.state = seed}};
    uint64_t seq = 0;
    for (uint32_t guard = 0; seq < want_seq; guard++) {
        assert_true(guard < 100000);
        TU_OK(dag_step(s.e, &w, &seq));
    }
    tu_root_hex(s.e, hex);
    tu_store_close(&s);
    if (seq != want_seq)
        fail_msg("recovered commit %llu is not a commit of the sequence", (unsigned long long)want_seq);
}

static void test_kill9_during_transactions(void **state) {
    (void)state;
    rng r = {.state = 321};
    uint64_t acks = 0;
    for (int it = 0; it < KILLS; it++) {
        char *dir = tu_dir_new();
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        uint64_t seed = rng_next(&r);
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            dag_child(dir, fds[1], seed);
        }
        close(fds[1]);
        struct timespec delay = {0, (long)rng_below(&r, 60000) * 1000};
        nanosleep(&delay, NULL);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        assert_true(WIFSIGNALED(status));
        uint64_t acked = 0, seq;
        while (read(fds[0], &seq, sizeof seq) == sizeof seq) acked = seq, acks++;
        close(fds[0]);
        mmsb_options o;
        dag_options(&o, MMSB_DURABILITY_SYNC);
        mmsb_engine *e;
        TU_OK(mmsb_open(dir, &o, &e));
        uint64_t recovered = tu_info(e).commit_seq;
        assert_true(recovered >= acked);
        char got[33], want[33];
        tu_root_hex(e, got);
        TU_OK(mmsb_close(e));
        dag_reference(seed, recovered, want);
        assert_string_equal(got, want);
        tu_dir_remove(dir);
    }
    print_message("%d kills, %llu acknowledged commits in all, none lost\n", KILLS, (unsigned long long)acks);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transaction_commits_as_one),
        cmocka_unit_test(test_abort_and_failed_commits_leave_nothing),
        cmocka_unit_test(test_staging_limit_and_busy_retry),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_events),
        cmocka_unit_test(test_kill9_during_transactions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
