/*
 * test_threads.c - readers on other threads while the writer writes: every
 * read is consistent (all bytes from the epoch it reports), a page freed
 * under a reader gives MMSB_ENOTFOUND, never garbage or a crash; listings
 * of the store directory on several threads at once each see every segment;
 * durability calls on other threads, which seal the log's records as they
 * flush them, leave the same log as a run without them.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "../tlog/cursor.h"

enum { PAGE_BYTES = 8192, WRITES = 20000, READERS = 2 };

typedef struct shared {
    mmsb_engine *e;
    uint64_t id;
    atomic_int stop;
    uint64_t reads;
    uint64_t torn;
    uint64_t not_found;
    uint64_t errors; /* any other result: cmocka cannot assert off the main thread */
} shared;

/* The writer keeps every byte of the page equal to its epoch modulo 256, so
 * a read that mixes two epochs is visible. */
static void *reader(void *arg) {
    shared *s = arg;
    uint8_t *buf = malloc(PAGE_BYTES);
    uint64_t reads = 0, torn = 0, not_found = 0, errors = 0;
    while (!atomic_load(&s->stop)) {
        uint64_t epoch;
        int rc = mmsb_page_read(s->e, s->id, 0, buf, PAGE_BYTES, &epoch);
        if (rc == MMSB_ENOTFOUND) {
            not_found++;
            continue;
        }
        if (rc != 0) {
            errors++;
            continue;
        }
        for (size_t i = 0; i < PAGE_BYTES; i++) {
            if (buf[i] != (uint8_t)epoch) {
                torn++;
                break;
            }
        }
        mmsb_pageinfo info = {.struct_size = sizeof info};
        rc = mmsb_page_info(s->e, s->id, &info);
        errors += rc != 0 && rc != MMSB_ENOTFOUND;
        reads++;
    }
    free(buf);
        __atomic_fetch_add(&s->reads, reads, __ATOMIC_RELAXED);
    __atomic_fetch_add(&s->torn, torn, __ATOMIC_RELAXED);
    __atomic_fetch_add(&s->not_found, not_found, __ATOMIC_RELAXED);
    __atomic_fetch_add(&s->errors, errors, __ATOMIC_RELAXED);
    return NULL;
}

static void test_readers_never_see_torn_pages(void **state) {
    (void)state;
    tu_store store = tu_store_open(NULL);
    shared s = {.e = store.e};
    TU_OK(mmsb_page_create(s.e, PAGE_BYTES, 0, &s.id));
    pthread_t threads[READERS];
    for (int i = 0; i < READERS; i++) assert_int_equal(pthread_create(&threads[i], NULL, reader, &s), 0);
    uint8_t *page = malloc(PAGE_BYTES);
    for (uint64_t epoch = 1; epoch <= WRITES; epoch++) {
        memset(page, (uint8_t)epoch, PAGE_BYTES);
        mmsb_change ch;
        TU_OK(mmsb_write(s.e, s.id, 0, page, PAGE_BYTES, &ch));
        assert_int_equal(ch.epoch, epoch);
    }
    /* Free the page under the readers: they must report it gone. */
    TU_OK(mmsb_page_free(s.e, s.id));
    uint64_t other;
    TU_OK(mmsb_page_create(s.e, PAGE_BYTES, 0, &other));
    for (int spin = 0; spin < 1000; spin++) {
        memset(page, (uint8_t)spin, PAGE_BYTES);
        TU_OK(mmsb_write(s.e, other, 0, page, PAGE_BYTES, NULL));
    }
    atomic_store(&s.stop, 1);
    for (int i = 0; i < READERS; i++) pthread_join(threads[i], NULL);
    assert_int_equal(s.torn, 0);
    assert_int_equal(s.errors, 0);
    assert_true(s.reads > 0);
    print_message("reads %llu, torn %llu, not found after free %llu\n",
                  (unsigned long long)s.reads, (unsigned long long)s.torn,
                  (unsigned long long)s.not_found);
    free(page);
    tu_store_close(&store);
}

enum { LIST_FILES = 300, LIST_ROUNDS = 300, LISTERS = 3 };

typedef struct lister {
    int dir_fd;
    uint64_t short_lists; /* listings that missed segments, or failed */
} lister;

static void *list_segments(void *arg) {
    lister *l = arg;
    for (int round = 0; round < LIST_ROUNDS; round++) {
        uint64_t *nos = NULL;
        uint32_t count = 0;
        if (segment_list(l->dir_fd, &nos, &count) != 0 || count != LIST_FILES) l->short_lists++;
        free(nos);
    }
    return NULL;
}

/* Recovery's two passes, the shipper and retention list the same directory
 * through the store's one descriptor: a listing that shared its read
 * position with the others (a dup) could skip entries another moved past. */
static void test_concurrent_listings_see_every_segment(void **state) {
    (void)state;
    char *dir = tu_dir_new();
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(dir_fd >= 0);
    for (uint64_t no = 1; no <= LIST_FILES; no++) {
        char name[32];
        segment_name(no, name);
        int fd = openat(dir_fd, name, O_CREAT | O_WRONLY, 0644);
        assert_true(fd >= 0);
        close(fd);
    }
    lister l[LISTERS];
    pthread_t threads[LISTERS];
    for (int i = 0; i < LISTERS; i++) {
        l[i] = (lister){.dir_fd = dir_fd};
        assert_int_equal(pthread_create(&threads[i], NULL, list_segments, &l[i]), 0);
    }
    for (int i = 0; i < LISTERS; i++) pthread_join(threads[i], NULL);
    for (int i = 0; i < LISTERS; i++) assert_int_equal(l[i].short_lists, 0);
    close(dir_fd);
    tu_dir_remove(dir);
}

/* ---- durability calls on other threads ------------------------------------------ */

enum { SYNCERS = 2, SEALED_COMMITS = 6000 };

typedef struct syncer_ctx {
    mmsb_engine *e;
    _Atomic uint64_t last_seq; /* the writer's last commit */
    atomic_int stop;
    uint64_t calls, errors;
} syncer_ctx;

/* mmsb_sync and mmsb_wait_durable flush, and so seal, on this thread,
 * while the writer appends and the flusher seals too. */
static void *syncer(void *arg) {
    syncer_ctx *c = arg;
    uint64_t calls = 0, errors = 0;
    while (!atomic_load(&c->stop)) {
        uint64_t seq = atomic_load(&c->last_seq);
        int rc = calls % 2 == 0 || seq == 0 ? mmsb_sync(c->e) : mmsb_wait_durable(c->e, seq);
        errors += rc != 0;
        calls++;
    }
    __atomic_fetch_add(&c->calls, calls, __ATOMIC_RELAXED);
    __atomic_fetch_add(&c->errors, errors, __ATOMIC_RELAXED);
    return NULL;
}

/* Small and large writes in GROUP; with `threads`, SYNCERS threads flush
 * meanwhile. Returns the last commit's chain value as read back (the
 * reader checks every CRC and chain link on the way). */
static void sealed_workload(bool threads, char hex[33]) {
    mmsb_options o;
    tu_options_small(&o);
    o.durability = MMSB_DURABILITY_GROUP;
    o.log_buffer_bytes = 1u << 20;
    tu_store s = tu_store_open(&o);
    uint64_t ids[4];
    for (int i = 0; i < 4; i++) TU_OK(mmsb_page_create(s.e, 16384, 0, &ids[i]));
    syncer_ctx c = {.e = s.e};
    pthread_t t[SYNCERS];
    for (int i = 0; threads && i < SYNCERS; i++) assert_int_equal(pthread_create(&t[i], NULL, syncer, &c), 0);
    rng r = {.state = 99};
    uint8_t buf[9000];
    for (int i = 0; i < SEALED_COMMITS; i++) {
        uint64_t len = i % 16 == 5 ? 4096 + rng_below(&r, 4000) : 1 + rng_below(&r, 200);
        rng_fill(&r, buf, len);
        mmsb_change ch;
        TU_OK(mmsb_write(s.e, ids[i % 4], rng_below(&r, 16384 - len), buf, len, &ch));
        atomic_store(&c.last_seq, ch.commit_seq);
    }
    atomic_store(&c.stop, 1);
    for (int i = 0; threads && i < SYNCERS; i++) pthread_join(t[i], NULL);
    assert_int_equal(c.errors, 0);
    assert_true(!threads || c.calls > 0);
    TU_OK(mmsb_close(s.e));
    tu_log_summary sum;
    TU_OK(tu_log_summarise(s.dir, &sum));
    /* the creates, the writes, the close */
    assert_int_equal(sum.by_type[MMSB_REC_COMMIT], 4 + SEALED_COMMITS + 1);
    memcpy(hex, sum.chain_hex, 33);
    tu_dir_remove(s.dir);
}

/* Whichever thread seals, the log is the same: the chain of a run with
 * other threads flushing all the while equals that of a run without. */
static void test_syncs_on_other_threads_seal_the_same_log(void **state) {
    (void)state;
    char alone[33], beside[33];
    sealed_workload(false, alone);
    sealed_workload(true, beside);
    assert_string_equal(alone, beside);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readers_never_see_torn_pages),
        cmocka_unit_test(test_concurrent_listings_see_every_segment),
        cmocka_unit_test(test_syncs_on_other_threads_seal_the_same_log),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
