/*
 * fuzz_export.c - feeds arbitrary bytes, as an export stream, to the
 * stream's reader (tlog/export.c), frame after frame up to its END. Nothing
 * may crash, hang, read outside the input or hand out a frame that breaks
 * the stream's rules (order, ranges, counts), whatever the bytes say.
 *
 * Built two ways, like fuzz_log.c:
 * - with clang and -fsanitize=fuzzer (make fuzz): a coverage-guided target,
 *   seeded with real export streams;
 * - with FUZZ_DRIVER (make test): a plain program that exports real stores
 *   through the public API and reads them and many seeded mutations of them
 *   (flipped bits, cut streams, frames swapped, dropped or repeated, hostile
 *   lengths), checking what the reader hands out against the stream's rules.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/base/bytes.h"
#include "../tlog/export.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct mem_in {
    const uint8_t *data;
    size_t size, off;
} mem_in;

static int64_t mem_read(void *ctx, uint8_t *buf, uint64_t len) {
    mem_in *m = ctx;
    uint64_t n = len < m->size - m->off ? len : m->size - m->off;
    if (n > 0) memcpy(buf, m->data + m->off, n);
    m->off += n;
    return (int64_t)n;
}

/* What the reader promises of the items it hands out. */
static void check_item(const xp_reader *r, const xp_item *it, uint64_t *last_page) {
    if (it->type == XP_PAGE) {
        if (it->page.id <= *last_page || it->page.id >= r->hdr.page_id_next || it->page.size_bytes == 0) abort();
        *last_page = it->page.id;
    } else if (it->type == XP_BYTES) {
        if (it->page.id != *last_page || it->len == 0 || it->offset + it->len > it->page.size_bytes) abort();
    } else if (it->type == XP_DERIVE) {
        if (it->derive.parent_count == 0 || it->derive.child >= r->hdr.page_id_next) abort();
    }
    if (r->pages > r->hdr.pages || r->derived > r->hdr.derived || r->page_bytes > r->hdr.page_bytes) abort();
}

/* Returns 1 when the whole stream was taken (it ends with END and nothing after). */
static int read_stream(const uint8_t *data, size_t size) {
    mem_in m = {.data = data, .size = size};
    xp_reader r;
    if (xp_reader_open(&r, mem_read, &m) != 0) {
        xp_reader_close(&r);
        return 0;
    }
    int rc = 0;
    xp_item it = {0};
    uint64_t last_page = 0;
    for (size_t frames = 0; rc == 0 && it.type != XP_END; frames++) {
        if (frames > size / XP_FRAME_HEAD_BYTES) abort(); /* every frame takes bytes */
        rc = xp_reader_next(&r, &it);
        if (rc == 0) check_item(&r, &it, &last_page);
    }
    xp_reader_close(&r);
    return rc == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    read_stream(data, size);
    return 0;
}

#ifdef FUZZ_DRIVER
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "testutil.h"

enum { SEEDS = 2, MUTATIONS = 3000 };

/* A real export: pages of several sizes (one over a MiB, with a run of zeros
 * the stream leaves out), freed ids, and derived pages. */
static uint8_t *make_seed(int which, size_t *size) {
    char *dir = tu_dir_new();
    mmsb_options o;
    tu_options_small(&o);
    mmsb_engine *e = tu_open(dir, &o);
    uint64_t ids[8];
    const uint64_t sizes[8] = {64, 4096, 5000, 100, (1u << 20) + 100, 64, 64, 7};
    uint32_t pages = which == 0 ? 3 : 8;
    for (uint32_t i = 0; i < pages; i++) TU_OK(mmsb_page_create(e, sizes[i], 0, &ids[i]));
    uint8_t buf[4096];
    memset(buf, 0x5a, sizeof buf);
    for (uint32_t i = 0; i < pages; i++) TU_OK(mmsb_write(e, ids[i], sizes[i] - 7, buf, 7, NULL));
    mmsb_derive_spec spec = {.struct_size = sizeof spec, .op = MMSB_OP_XOR, .parents = ids, .parent_count = 1};
    if (which == 1) {
        uint64_t pair[2] = {ids[5], ids[6]};
        spec.parents = pair;
        spec.parent_count = 2;
        TU_OK(mmsb_derive(e, ids[0], &spec, NULL));
        TU_OK(mmsb_page_free(e, ids[2]));
    }
    int fd = memfd_create("export", 0);
    assert_true(fd >= 0);
    TU_OK(mmsb_export(e, fd, NULL));
    TU_OK(mmsb_close(e));
    *size = (size_t)lseek(fd, 0, SEEK_END);
    uint8_t *image = malloc(*size);
    assert_true(pread(fd, image, *size, 0) == (ssize_t)*size);
    close(fd);
    tu_dir_remove(dir);
    return image;
}

/* The frame boundaries of a well-formed stream. */
static size_t frame_offsets(const uint8_t *s, size_t size, size_t *offs, size_t cap) {
    size_t n = 0;
    for (size_t at = XP_HEADER_BYTES; at + XP_FRAME_HEAD_BYTES <= size && n < cap;) {
        offs[n++] = at;
        at += XP_FRAME_HEAD_BYTES + get_le32(s + at + 4);
    }
    return n;
}

static void mutate(uint8_t *m, size_t *len, const uint8_t *seed, size_t size, rng *r) {
    size_t offs[64], n = frame_offsets(seed, size, offs, 64);
    switch (rng_below(r, 5)) {
    case 0:
        for (uint64_t k = 0; k < 1 + rng_below(r, 3); k++) m[rng_below(r, size)] ^= (uint8_t)(1u << rng_below(r, 8));
        break;
    case 1: /* a hostile length or type in a frame head */
        if (n > 0) put_le32(m + offs[rng_below(r, n)] + 4 + 4 * rng_below(r, 2), (uint32_t)rng_next(r));
        break;
    case 2: { /* a frame dropped */
        if (n < 2) break;
        size_t k = rng_below(r, n - 1), end = offs[k + 1];
        memmove(m + offs[k], m + end, size - end);
        *len = size - (end - offs[k]);
        break;
    }
    case 3: { /* the first frame repeated in place of a later one of the same size */
        if (n < 2) break;
        size_t k = 1 + rng_below(r, n - 1), a = offs[0], b = offs[k];
        size_t la = XP_FRAME_HEAD_BYTES + get_le32(seed + a + 4), lb = XP_FRAME_HEAD_BYTES + get_le32(seed + b + 4);
        if (la == lb) memcpy(m + b, seed + a, la);
        break;
    }
    default:
        *len = rng_below(r, size);
        break;
    }
}

static void test_reader_survives_mutations(void **state) {
    (void)state;
    rng r = {.state = 31};
    for (int s = 0; s < SEEDS; s++) {
        size_t size;
        uint8_t *seed = make_seed(s, &size);
        assert_int_equal(read_stream(seed, size), 1); /* a real stream reads whole */
        for (size_t cut = 0; cut < size; cut += 1 + size / 97) assert_int_equal(read_stream(seed, cut), 0);
        uint8_t *m = malloc(size + 1);
        memcpy(m, seed, size);
        m[size] = 0;
        assert_int_equal(read_stream(m, size + 1), 0); /* a byte after END */
        uint32_t refused = 0;
        for (int i = 0; i < MUTATIONS; i++) {
            memcpy(m, seed, size);
            size_t len = size;
            mutate(m, &len, seed, size, &r);
            refused += read_stream(m, len) == 0;
        }
        print_message("export stream %d (%zu bytes): %u of %d mutations refused\n", s, size, refused, MUTATIONS);
        assert_true(refused > MUTATIONS / 2);
        free(m);
        free(seed);
    }
    uint8_t junk[4096];
    for (int i = 0; i < 300; i++) {
        rng_fill(&r, junk, sizeof junk);
        if (i % 2 == 0) memcpy(junk, XP_MAGIC, 8);
        assert_int_equal(read_stream(junk, rng_below(&r, sizeof junk)), 0);
    }
}

/* The kept corpus (tests/corpus/export): inputs that once reached new code. */
static void test_corpus(void **state) {
    (void)state;
    tu_corpus_expect(CORPUS_DIR, LLVMFuzzerTestOneInput);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--write-seeds") == 0) {
        return tu_seeds_write(argv[2], "export", SEEDS, make_seed);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reader_survives_mutations),
        cmocka_unit_test(test_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#endif
