/*
 * test_crash.c - kill -9 at random moments.
 *
 * A child process opens a store and commits a seeded sequence of changes,
 * writing each commit's sequence number to a pipe once the commit is
 * acknowledged as durable (SYNC: when the call returns; GROUP: when
 * mmsb_wait_durable returns). The parent kills it with SIGKILL after a random
 * delay, reopens the store, and checks that every acknowledged commit is
 * there and that the state is exactly the state after that many commits of
 * the same sequence, replayed in a second store: nothing lost, nothing
 * uncommitted visible.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

enum { ITERATIONS = 120, PAGES = 8, DELAY_US_MAX = 40000 };

typedef struct work {
    rng r;
    uint64_t step;
    uint64_t ids[PAGES];
    uint32_t pages;
} work;

/* One change of the seeded sequence; every step commits exactly once. */
static int work_step(mmsb_engine *e, work *w, uint64_t *commit_seq) {
    w->step++;
    if (w->pages < PAGES && (w->pages == 0 || rng_below(&w->r, 10) == 0)) {
        int rc = mmsb_page_create(e, 4096 + rng_below(&w->r, 20000), 0, &w->ids[w->pages]);
        if (rc == 0) w->pages++;
        if (rc == 0) *commit_seq = tu_info(e).commit_seq;
        return rc;
    }
    uint64_t id = w->ids[rng_below(&w->r, w->pages)];
    uint8_t buf[512];
    uint64_t len = 9 + rng_below(&w->r, sizeof buf - 9);
    rng_fill(&w->r, buf, len);
    memcpy(buf, &w->step, 8); /* a new step number: the bytes always change */
    mmsb_change ch;
    int rc = mmsb_write(e, id, rng_below(&w->r, 4096 - len), buf, len, &ch);
    if (rc == 0) *commit_seq = ch.commit_seq;
    return rc;
}

static void options_for(mmsb_options *o, uint32_t durability) {
    tu_options_small(o);
    o->durability = durability;
    o->root_every_commits = 4;
}

static _Noreturn void child(const char *dir, uint32_t durability, int ack_fd, uint64_t seed) {
    mmsb_options o;
    options_for(&o, durability);
    mmsb_engine *e = NULL;
    if (mmsb_open(dir, &o, &e) != 0) _exit(3);
    work w = {.r = {.state = seed}};
    for (;;) {
        uint64_t seq;
        if (work_step(e, &w, &seq) != 0) _exit(4);
        if (durability == MMSB_DURABILITY_GROUP && mmsb_wait_durable(e, seq) != 0) _exit(5);
        if (write(ack_fd, &seq, sizeof seq) != sizeof seq) _exit(6);
    }
}

/* The state after the same steps, up to the commit with that sequence
 * number, in a fresh store. */
static void reference_root(uint64_t seed, uint64_t commit_seq, char hex[33]) {
    mmsb_options o;
    options_for(&o, MMSB_DURABILITY_NONE);
    tu_store s = tu_store_open(&o);
    work w = {.r = {.state = seed}};
    uint64_t seq = 0;
    for (uint32_t guard = 0; seq < commit_seq; guard++) {
        assert_true(guard < 1000000);
        TU_OK(work_step(s.e, &w, &seq));
    }
    assert_int_equal(seq, commit_seq); /* the recovered point is a commit of the sequence */
    tu_root_hex(s.e, hex);
    tu_store_close(&s);
}

static void crash_many_times(uint32_t durability) {
    rng r = {.state = 1000 + durability};
    uint64_t acked_total = 0;
    for (int it = 0; it < ITERATIONS; it++) {
        char *dir = tu_dir_new();
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        uint64_t seed = rng_next(&r);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            child(dir, durability, fds[1], seed);
        }
        close(fds[1]);
        struct timespec delay = {0, (long)(rng_below(&r, DELAY_US_MAX) * 1000)};
        nanosleep(&delay, NULL);
        kill(pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status)); /* killed, not failed */
        uint64_t acked = 0, seq;
        while (read(fds[0], &seq, sizeof seq) == sizeof seq) acked = seq;
        close(fds[0]);

        mmsb_options o;
        options_for(&o, MMSB_DURABILITY_SYNC);
        mmsb_engine *e = NULL;
        TU_OK(mmsb_open(dir, &o, &e));
        mmsb_engineinfo info = tu_info(e);
        assert_true(info.commit_seq >= acked); /* nothing acknowledged is lost */
        char got[33], want[33];
        tu_root_hex(e, got);
        TU_OK(mmsb_close(e));
        reference_root(seed, info.commit_seq, want);
        assert_string_equal(got, want); /* exactly a prefix of the sequence */
        acked_total += acked;
        tu_dir_remove(dir);
    }
    print_message("%d kills, %llu acknowledged commits in all, none lost\n", ITERATIONS,
                  (unsigned long long)acked_total);
}

static void test_kill9_sync(void **state) {
    (void)state;
    crash_many_times(MMSB_DURABILITY_SYNC);
}

static void test_kill9_group_wait_durable(void **state) {
    (void)state;
    crash_many_times(MMSB_DURABILITY_GROUP);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9_sync),
        cmocka_unit_test(test_kill9_group_wait_durable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
