/*
 * test_attach.c - live read-only attach from another process:
 * - attaching to a directory without a running engine, to a closed one and
 *   to one whose writer was killed gives MMSB_ENOTFOUND, clearly; a damaged
 *   or foreign ATTACH file is refused (ECORRUPT, EVERSION, ENOTFOUND);
 * - a reader process hammers pages that a writer process rewrites so that
 *   every byte of a page equals its epoch modulo 256, and frees and creates
 *   pages meanwhile: tens of thousands of reads, not one torn, freed pages a
 *   clear MMSB_ENOTFOUND;
 * - once the writer closes, an attached reader gets MMSB_ENOTFOUND.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "../engine/live.h"

enum { PAGES = 16, PAGE_BYTES = 16384, READS = 60000 };

static mmsb_attach *attach(const char *dir) {
    mmsb_attach *a = NULL;
    TU_OK(mmsb_attach_open(dir, &a));
    return a;
}

/* Rewrites pages so that each byte equals the new epoch; every 64th round
 * frees the last page and creates a new one. */
static void writer(const char *dir, void *ctx, int ready) {
    (void)ctx;
    mmsb_engine *e = tu_open(dir, NULL);
    uint64_t ids[PAGES];
    for (int i = 0; i < PAGES; i++) TU_OK(mmsb_page_create(e, PAGE_BYTES, 0, &ids[i]));
    tu_child_ready(ready);
    static uint8_t buf[PAGE_BYTES];
    for (uint64_t n = 0;; n++) {
        uint32_t k = (uint32_t)(n % PAGES);
        if (n % 64 == 63) {
            if (mmsb_page_free(e, ids[PAGES - 1]) != 0 || mmsb_page_create(e, PAGE_BYTES, 0, &ids[PAGES - 1]) != 0)
                _exit(4);
            continue;
        }
        mmsb_pageinfo pi = {.struct_size = sizeof pi};
        if (mmsb_page_info(e, ids[k], &pi) != 0) _exit(5);
        memset(buf, (int)((pi.epoch + 1) % 256), sizeof buf);
        if (mmsb_write(e, ids[k], 0, buf, sizeof buf, NULL) != 0) _exit(6);
    }
}

static void test_no_engine(void **state) {
    (void)state;
    char *dir = tu_dir_new();
    mmsb_attach *a = NULL;
    TU_ERR(mmsb_attach_open(dir, &a), MMSB_ENOTFOUND);
    assert_non_null(strstr(mmsb_last_error(), "no engine is running"));
    assert_null(a);
    TU_ERR(mmsb_attach_open(NULL, &a), MMSB_EINVAL);
    TU_ERR(mmsb_attach_open(dir, NULL), MMSB_EINVAL);
    TU_OK(mmsb_attach_close(NULL));
    uint8_t b[1];
    TU_ERR(mmsb_attach_read(NULL, 1, 0, b, 1, NULL), MMSB_EINVAL);
    /* A read-only engine publishes nothing, and leaves a writer's file alone. */
    mmsb_engine *e = tu_open(dir, NULL);
    TU_OK(mmsb_close(e));
    mmsb_options o;
    tu_options_small(&o);
    o.flags = MMSB_OPEN_READONLY;
    TU_OK(mmsb_open(dir, &o, &e));
    TU_ERR(mmsb_attach_open(dir, &a), MMSB_ENOTFOUND);
    TU_OK(mmsb_close(e));
    tu_dir_remove(dir);
}

/* DIR/ATTACH is read as hostile input. */
static void test_bad_attach_files(void **state) {
    (void)state;
    char *dir = tu_dir_new();
    char path[4200], text[256];
    snprintf(path, sizeof path, "%s/ATTACH", dir);
    static const char *const garbage[] = {"", "mmsb-attach", "hello world\n", "mmsb-attach 1\npid -4\n",
                                          "mmsb-attach 1\npid 1\ntoken x\nlive_fd -1\npages_fd 1\narena_fd 2\n"};
    mmsb_attach *a = NULL;
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(garbage[i], f);
        fclose(f);
        TU_ERR(mmsb_attach_open(dir, &a), MMSB_ECORRUPT);
        assert_null(a);
    }
    FILE *f = fopen(path, "w");
    fputs("mmsb-attach 99\npid 1\ntoken x\nlive_fd 3\npages_fd 4\narena_fd 5\n", f);
    fclose(f);
    TU_ERR(mmsb_attach_open(dir, &a), MMSB_EVERSION);
    /* This process's own descriptors, which are no engine's memory. */
    snprintf(text, sizeof text, "mmsb-attach 1\npid %d\ntoken t\nlive_fd 0\npages_fd 1\narena_fd 2\n", (int)getpid());
    f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    TU_ERR(mmsb_attach_open(dir, &a), MMSB_ENOTFOUND);
    assert_non_null(strstr(mmsb_last_error(), "another name"));
    tu_dir_remove(dir);
}

static void test_reads_are_never_torn(void **state) {
    (void)state;
    char *dir = tu_dir_new();
    int pid = tu_child_start(writer, dir, NULL);
    mmsb_attach *a = attach(dir);
    static uint8_t buf[PAGE_BYTES];
    uint64_t ok = 0, freed = 0, epochs_seen = 0, last_epoch = 0;
    for (uint32_t i = 0; i < READS; i++) {
        uint64_t id = 1 + i % (PAGES + 8), epoch = 0;
        int rc = mmsb_attach_read(a, id, 0, buf, sizeof buf, &epoch);
        if (rc == MMSB_ENOTFOUND) {
            freed++; /* freed, or not created yet */
            continue;
        }
        TU_OK(rc);
        for (uint32_t k = 0; k < PAGE_BYTES; k++) {
            if (buf[k] != (uint8_t)epoch)
                fail_msg("torn read: page %llu byte %u is %u at epoch %llu", (unsigned long long)id, k, buf[k],
                         (unsigned long long)epoch);
        }
        epochs_seen += epoch != last_epoch;
        last_epoch = epoch;
        ok++;
    }
    mmsb_pageinfo pi = {.struct_size = sizeof pi};
    TU_OK(mmsb_attach_page_info(a, 1, &pi));
    assert_int_equal(pi.size_bytes, PAGE_BYTES);
    TU_ERR(mmsb_attach_read(a, 1, PAGE_BYTES - 1, buf, 2, NULL), MMSB_EINVAL);
    tu_child_kill(pid);
    assert_true(ok > READS / 2);
    assert_true(freed > 0);
    assert_true(epochs_seen > 100); /* the writer was writing all along */
    TU_OK(mmsb_attach_close(a));
    TU_ERR(mmsb_attach_open(dir, &a), MMSB_ENOTFOUND); /* killed: the file is stale */
    assert_non_null(strstr(mmsb_last_error(), "is gone"));
    tu_dir_remove(dir);
}

static void test_closed_engine(void **state) {
    (void)state;
    char *dir = tu_dir_new();
    int ready[2], go[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(go), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        mmsb_engine *e = tu_open(dir, NULL);
        uint64_t id;
        if (mmsb_page_create(e, 64, 0, &id) != 0 || mmsb_write(e, id, 0, "live", 4, NULL) != 0) _exit(3);
        char c = 'r';
        if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1) _exit(4);
        _exit(mmsb_close(e) == 0 ? 0 : 5);
    }
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    mmsb_attach *a = attach(dir);
    char buf[4];
    uint64_t epoch;
    TU_OK(mmsb_attach_read(a, 1, 0, buf, 4, &epoch));
    assert_memory_equal(buf, "live", 4);
    assert_int_equal(epoch, 1);
    assert_int_equal(write(go[1], "g", 1), 1);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    TU_ERR(mmsb_attach_read(a, 1, 0, buf, 4, &epoch), MMSB_ENOTFOUND);
    assert_non_null(strstr(mmsb_last_error(), "has closed"));
    TU_OK(mmsb_attach_close(a));
    TU_ERR(mmsb_attach_open(dir, &a), MMSB_ENOTFOUND);
    tu_dir_remove(dir);
}

/* The writer's header is another process's memory: a header that claims
 * more pages than the table this reader mapped (a bug or a hostile writer)
 * gives MMSB_ENOTFOUND past the table, never a read outside it. */
static void test_header_claims_more_than_the_table(void **state) {
    (void)state;
    char *dir = tu_dir_new();
    mmsb_engine *e = tu_open(dir, NULL);
    uint64_t id;
    TU_OK(mmsb_page_create(e, 64, 0, &id));
    TU_OK(mmsb_write(e, id, 0, "safe", 4, NULL));
    mmsb_attach *a = attach(dir);
    live_header *h = (live_header *)e->live.base;
    uint64_t pages_max = h->pages_max;
    h->pages_max = 1ull << 40;
    atomic_store(&h->page_id_next, 1ull << 39);
    char buf[4];
    TU_ERR(mmsb_attach_read(a, pages_max + 1000, 0, buf, 4, NULL), MMSB_ENOTFOUND);
    TU_ERR(mmsb_attach_read(a, (1ull << 39) - 1, 0, buf, 4, NULL), MMSB_ENOTFOUND);
    TU_OK(mmsb_attach_read(a, id, 0, buf, 4, NULL));
    assert_memory_equal(buf, "safe", 4);
    h->pages_max = pages_max;
    atomic_store(&h->page_id_next, id + 1);
    TU_OK(mmsb_attach_close(a));
    TU_OK(mmsb_close(e));
    tu_dir_remove(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_engine),
        cmocka_unit_test(test_bad_attach_files),
        cmocka_unit_test(test_reads_are_never_torn),
        cmocka_unit_test(test_closed_engine),
        cmocka_unit_test(test_header_claims_more_than_the_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
