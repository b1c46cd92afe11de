/*
 * fuzz_ckpt.c - feeds arbitrary bytes, as the checkpoint's LMDB file, to
 * the structure check that runs before LMDB reads a tree (tlog/checkpoint/lmdb_check.c).
 * Nothing may crash, hang, or read outside the image, whatever the pages say.
 *
 * Built two ways, like fuzz_log.c:
 * - with clang and -fsanitize=fuzzer (make fuzz): a coverage-guided target,
 *   seeded with real checkpoint files;
 * - with FUZZ_DRIVER (make test): a plain program that makes real checkpoint
 *   files through the public API (a tree with depth, overflow pages and free
 *   pages), then checks them and many seeded mutations of them: flipped
 *   bits, pages of an older version of the file over newer ones, swapped
 *   pages, hostile node offsets and page numbers, cut files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tlog/checkpoint/lmdb_store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint64_t txnid;
    int refused = 0; /* either answer is fine: neither may crash, hang or read outside */
    for (int headers = 0; headers < 2; headers++) {
        refused += ckpt_check_image(data, size, headers != 0, CKPT_TXN_NEWEST, &txnid) != 0;
    }
    if (size >= 160) refused += ckpt_check_image(data, size, false, get_le64(data + 144), &txnid) != 0; /* meta 0's */
    return refused < 0;
}

#ifdef FUZZ_DRIVER
#include "testutil.h"

enum { SEEDS = 2, MUTATIONS = 1500, LMDB_PAGE = 4096 };

static uint8_t *file_image(const char *path, size_t *size) {
    *size = tu_file_size(path);
    uint8_t *b = malloc(*size);
    assert_non_null(b);
    tu_file_read(path, 0, b, *size);
    return b;
}

/* A real checkpoint file, and the same file some checkpoints earlier. */
static uint8_t *make_seed(int which, size_t *size, uint8_t **older, size_t *older_size) {
    char *dir = tu_dir_new(), data[4096];
    mmsb_options o;
    tu_options_small(&o);
    o.checkpoint_log_bytes = 0;
    mmsb_engine *e = tu_open(dir, &o);
    snprintf(data, sizeof data, "%s/checkpoint/data.mdb", dir);
    uint64_t ids[600];
    uint32_t pages = which == 0 ? 60 : 600;
    for (uint32_t i = 0; i < pages; i++) TU_OK(mmsb_page_create(e, i % 4 == 0 ? 5000 : 100 + i, 0, &ids[i]));
    uint8_t buf[64];
    for (int round = 0; round < 5; round++) {
        for (uint32_t i = round; i < pages; i += 3) {
            memset(buf, round + (int)i, sizeof buf);
            TU_OK(mmsb_write(e, ids[i], 0, buf, sizeof buf, NULL));
        }
        TU_OK(mmsb_checkpoint(e));
        if (round == 1) *older = file_image(data, older_size);
    }
    TU_OK(mmsb_close(e));
    uint8_t *image = file_image(data, size);
    tu_dir_remove(dir);
    return image;
}

static void mutate(uint8_t *m, size_t *len, const uint8_t *older, size_t older_size, rng *r) {
    size_t size = *len, pages = size / LMDB_PAGE;
    switch (rng_below(r, 6)) {
    case 0:
        for (uint64_t k = 0; k < 1 + rng_below(r, 4); k++) m[rng_below(r, size)] ^= (uint8_t)(1u << rng_below(r, 8));
        break;
    case 1: { /* an older version of some pages */
        for (size_t p = 0; p < pages && (p + 1) * LMDB_PAGE <= older_size; p++) {
            if (rng_below(r, 3) == 0) memcpy(m + p * LMDB_PAGE, older + p * LMDB_PAGE, LMDB_PAGE);
        }
        break;
    }
    case 2: { /* two pages swapped */
        size_t a = rng_below(r, pages), b = rng_below(r, pages);
        uint8_t tmp[LMDB_PAGE];
        memcpy(tmp, m + a * LMDB_PAGE, LMDB_PAGE);
        memcpy(m + a * LMDB_PAGE, m + b * LMDB_PAGE, LMDB_PAGE);
        memcpy(m + b * LMDB_PAGE, tmp, LMDB_PAGE);
        break;
    }
    case 3: { /* a hostile 16-bit value in a page header or node table */
        size_t at = rng_below(r, pages) * LMDB_PAGE + 8 + 2 * rng_below(r, 40);
        uint16_t v = (uint16_t)rng_next(r);
        if (at + 2 <= size) memcpy(m + at, &v, 2);
        break;
    }
    case 4: { /* a hostile page number in a meta page or a node */
        size_t at = rng_below(r, 2) == 0 ? 16 + 8 * rng_below(r, 18) : rng_below(r, size - 8);
        uint64_t v = rng_below(r, 2) ? rng_below(r, pages + 4) : rng_next(r);
        memcpy(m + at, &v, 8);
        break;
    }
    default:
        *len = rng_below(r, size + 1);
        break;
    }
}

/* The newest file alone, for --write-seeds. */
static uint8_t *make_seed_only(int which, size_t *size) {
    size_t older_size;
    uint8_t *older, *seed = make_seed(which, size, &older, &older_size);
    free(older);
    return seed;
}

static void test_check_survives_mutations(void **state) {
    (void)state;
    rng r = {.state = 99};
    for (int s = 0; s < SEEDS; s++) {
        size_t size, older_size;
        uint8_t *older, *seed = make_seed(s, &size, &older, &older_size);
        uint64_t txnid;
        TU_OK(ckpt_check_image(seed, size, true, CKPT_TXN_NEWEST, &txnid)); /* a real file passes */
        TU_OK(ckpt_check_image(older, older_size, true, CKPT_TXN_NEWEST, &txnid));
        uint8_t *m = malloc(size);
        uint32_t refused = 0;
        for (int i = 0; i < MUTATIONS; i++) {
            memcpy(m, seed, size);
            size_t len = size;
            mutate(m, &len, older, older_size, &r);
            refused += ckpt_check_image(m, len, true, CKPT_TXN_NEWEST, &txnid) != 0;
            LLVMFuzzerTestOneInput(m, len);
        }
        print_message("checkpoint file %d: %u of %d mutations refused\n", s, refused, MUTATIONS);
        assert_true(refused > 0);
        free(m);
        free(seed);
        free(older);
    }
    uint8_t junk[3 * LMDB_PAGE];
    for (int i = 0; i < 200; i++) {
        rng_fill(&r, junk, sizeof junk);
        LLVMFuzzerTestOneInput(junk, rng_below(&r, sizeof junk));
    }
}

/* The kept corpus (tests/corpus/ckpt): inputs that once reached new code. */
static void test_corpus(void **state) {
    (void)state;
    tu_corpus_expect(CORPUS_DIR, LLVMFuzzerTestOneInput);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--write-seeds") == 0) {
        return tu_seeds_write(argv[2], "checkpoint", SEEDS, make_seed_only);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_survives_mutations),
        cmocka_unit_test(test_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#endif
