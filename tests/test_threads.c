/*
 * test_threads.c - readers on other threads while the writer writes: every
 * read is consistent (all bytes from the epoch it reports), a page freed
 * under a reader gives MMSB_ENOTFOUND, never garbage or a crash.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readers_never_see_torn_pages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
