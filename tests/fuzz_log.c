/*
 * fuzz_log.c - feeds arbitrary bytes, as a segment image, to every reader of
 * log bytes: the segment header decoder, the record scanner with its payload
 * decoders, the tail look-ahead, and the chain hasher over what validates.
 * Nothing may crash, hang, or read outside the image.
 *
 * Built two ways:
 * - with clang and -fsanitize=fuzzer (make fuzz): a coverage-guided libFuzzer
 *   target, seeded with real segments;
 * - with FUZZ_DRIVER (make test): a plain program that writes real segments
 *   through the public API, then runs them and many seeded mutations of them
 *   through the same entry point (and, with --write-seeds DIR, saves the
 *   segments as the libFuzzer seed corpus).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/base/kern.h"
#include "../tlog/chain.h"
#include "../tlog/scan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { RECORDS_MAX = 1 << 16 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* The image as a file would present it: at least a header, and the
     * decoders see exactly `size` bytes of data. */
    size_t image = size < SEG_HEADER_BYTES ? SEG_HEADER_BYTES : size;
    uint8_t *buf = calloc(1, image);
    if (buf == NULL) return 0;
    memcpy(buf, data, size);
    seg_header h;
    uint64_t salt = get_le64(buf + 16), first_seq = 1;
    uint32_t gen = 0;
    if (seg_header_decode(buf, &h) == 0) {
        salt = h.salt;
        first_seq = h.first_seq;
        gen = h.generation;
    }
    seg_scan s;
    seg_scan_init(&s, buf, image, salt, gen, first_seq, &kern_portable_ops);
    /* Half the inputs skip the CRC, so that mutated payloads reach the
     * decoders behind it (which must be safe on any bytes). */
    s.check_crc = size == 0 || (data[size - 1] & 1) == 0;
    chain_hasher chain;
    chain_use_kernels(&chain, &kern_portable_ops);
    chain_begin(&chain, (h128){0, 0});
    log_rec rec;
    for (uint32_t n = 0; n < RECORDS_MAX && seg_scan_next(&s, &rec) == SCAN_RECORD; n++) {
        chain_add(&chain, rec.type, rec.flags, rec.length, rec.seq, rec.payload, rec.length);
        rec_delta d;
        if (rec.type == REC_DELTA && rec_decode_delta(&rec, &kern_portable_ops, &d) == 0) {
            /* Touch every byte the decoder says is there (ASan checks). */
            volatile uint8_t x = 0;
            for (uint64_t i = 0; d.mask != NULL && i < (d.len + 7) / 8; i++) x ^= d.mask[i];
            for (uint64_t i = 0; i < d.bytes_len; i++) x ^= d.bytes[i];
        }
    }
    (void)chain_end(&chain);
    uint64_t found;
    (void)seg_scan_synced_commit_after(&s, s.off + REC_ALIGN, s.next_seq > 0 ? s.next_seq - 1 : 0, &found);
    (void)seg_scan_nonzero_end(&s, s.off);
    free(buf);
    return 0;
}

#ifdef FUZZ_DRIVER
#include "testutil.h"

enum { SEEDS = 3, MUTATIONS = 3000 };

/* A real segment, cut just after its data. */
static uint8_t *make_seed(int which, size_t *size_out) {
    char *dir = tu_dir_new();
    mmsb_options o;
    tu_options_small(&o);
    o.root_every_commits = 1 + (uint32_t)which;
    mmsb_engine *e = tu_open(dir, &o);
    rng r = {.state = 40 + (uint64_t)which};
    uint64_t id;
    TU_OK(mmsb_page_create(e, 70000, 0, &id));
    uint8_t buf[2000], mask[250];
    for (int i = 0; i < 12; i++) {
        uint64_t len = 1 + rng_below(&r, sizeof buf);
        rng_fill(&r, buf, len);
        if (i % 3 == 2) {
            rng_fill(&r, mask, (len + 7) / 8);
            if (len % 8) mask[len / 8] &= (uint8_t)((1u << (len % 8)) - 1);
            mmsb_delta d = {.page_id = id, .offset = 10, .len = len, .mask = mask, .payload = buf, .payload_len = len};
            TU_OK(mmsb_apply(e, &d, NULL));
        } else {
            TU_OK(mmsb_write(e, id, rng_below(&r, 60000), buf, len, NULL));
        }
    }
    TU_OK(mmsb_page_free(e, id));
    TU_OK(mmsb_close(e));
    char seg[4096];
    tu_segment_path(dir, 1, seg, sizeof seg);
    uint8_t *image = malloc(64 << 10);
    tu_file_read(seg, 0, image, 64 << 10);
    size_t size = 64 << 10;
    while (size > SEG_HEADER_BYTES && image[size - 1] == 0) size--;
    *size_out = size + 8;
    tu_dir_remove(dir);
    return image;
}

static void mutate_and_run(const uint8_t *seed, size_t size, rng *r) {
    uint8_t *m = malloc(size);
    for (int i = 0; i < MUTATIONS; i++) {
        memcpy(m, seed, size);
        size_t len = size;
        switch (rng_below(r, 4)) {
        case 0: m[rng_below(r, size)] ^= (uint8_t)(1u << rng_below(r, 8)); break;
        case 1: len = rng_below(r, size + 1); break;
        case 2: {
            size_t at = rng_below(r, size), n = 1 + rng_below(r, 16);
            for (size_t k = at; k < at + n && k < size; k++) m[k] = (uint8_t)rng_next(r);
            break;
        }
        default: {
            /* A plausible header with hostile lengths. */
            size_t at = SEG_HEADER_BYTES + 8 * rng_below(r, (size - SEG_HEADER_BYTES) / 8);
            if (at + 8 <= size) put_le32(m + at + 4, (uint32_t)rng_next(r) >> rng_below(r, 32));
            break;
        }
        }
        LLVMFuzzerTestOneInput(m, len);
    }
    free(m);
}

static void test_readers_survive_mutations(void **state) {
    (void)state;
    rng r = {.state = 77};
    for (int s = 0; s < SEEDS; s++) {
        size_t size;
        uint8_t *seed = make_seed(s, &size);
        LLVMFuzzerTestOneInput(seed, size);
        mutate_and_run(seed, size, &r);
        free(seed);
    }
    uint8_t junk[9000];
    for (int i = 0; i < 200; i++) {
        rng_fill(&r, junk, sizeof junk);
        LLVMFuzzerTestOneInput(junk, rng_below(&r, sizeof junk));
    }
}

/* The kept corpus (tests/corpus/log): inputs that once reached new code. */
static void test_corpus(void **state) {
    (void)state;
    tu_corpus_expect(CORPUS_DIR, LLVMFuzzerTestOneInput);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--write-seeds") == 0) {
        return tu_seeds_write(argv[2], "segment", SEEDS, make_seed);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readers_survive_mutations),
        cmocka_unit_test(test_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#endif
