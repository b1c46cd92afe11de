/*
 * testutil.h - what the test programs share: a seeded generator, temporary
 * store directories, and engine helpers that fail the test on any error.
 */
#ifndef MMSB_TESTUTIL_H
#define MMSB_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <cmocka.h>

#include "../ffi/mmsb.h"

/* splitmix64: small, fast, and the same sequence on every machine. */
typedef struct rng {
    uint64_t state;
} rng;

uint64_t rng_next(rng *r);
uint64_t rng_below(rng *r, uint64_t bound); /* uniform in [0, bound) */
void rng_fill(rng *r, void *buf, size_t len);

/* A fresh directory under $TMPDIR (or /tmp); free with tu_dir_remove. */
char *tu_dir_new(void);
void tu_dir_remove(char *dir);
/* A new tmpfs of `size` (mount's size= option, e.g. "12m") on a new
 * directory, for tests of a full file system; NULL (a message printed:
 * skipped) where this process may not mount one. */
char *tu_tmpfs_new(const char *size);
void tu_tmpfs_remove(char *mnt);
/* Removes a store's checkpoint (its LMDB directory): the next open replays
 * the log from genesis, for tests about the log itself. */
void tu_checkpoint_remove(const char *store_dir);

/* The options' gpu for tests: no device (MMSB_GPU_OFF), unless the run
 * asks for one through MMSB_GPU (make test-emulate: MMSB_GPU=emulate, and
 * the suite's pages of 4 KiB and up take the device path). */
uint32_t tu_gpu(void);
/* Options with small limits, so tests open quickly. */
void tu_options_small(mmsb_options *o);
mmsb_engine *tu_open(const char *dir, const mmsb_options *o);
void tu_root_hex(mmsb_engine *e, char hex[33]);
/* Asserts that two engines' state roots are equal (or differ). */
void tu_roots_match(mmsb_engine *a, mmsb_engine *b, bool want_equal);

/* An engine in a fresh directory of its own; closing removes both. */
typedef struct tu_store {
    char *dir;
    mmsb_engine *e;
} tu_store;

tu_store tu_store_open(const mmsb_options *o); /* NULL: tu_options_small */
void tu_store_close(tu_store *s);

/* ---- files ---------------------------------------------------------------- */

/* "<dir>/log-%010llu.seg" into out. */
void tu_segment_path(const char *dir, uint64_t segment_no, char *out, size_t out_size);
/* Copies every regular file of src into dst (created if missing). */
void tu_copy_dir(const char *src, const char *dst);
/* Reads or writes bytes of a file at an offset. */
void tu_file_read(const char *path, uint64_t off, void *buf, size_t len);
void tu_file_write(const char *path, uint64_t off, const void *buf, size_t len);
uint64_t tu_file_size(const char *path);
void tu_file_truncate(const char *path, uint64_t size);
void tu_file_copy(const char *from, const char *to);
/* Runs every file of a fuzz corpus directory (tests/corpus/NAME) through a
 * fuzz target's entry point; returns how many ran (at most 4096 files of up
 * to 4 MiB each). */
uint32_t tu_corpus_run(const char *dir, int (*target)(const uint8_t *data, size_t size));
/* The same, asserting the corpus is not empty (a fuzz driver's test). */
void tu_corpus_expect(const char *dir, int (*target)(const uint8_t *data, size_t size));
/* A fuzz driver's --write-seeds: count seeds made by make (malloc'd, freed
 * here) into dir/name-0, dir/name-1, ...; 0, or 1 when one was not written. */
int tu_seeds_write(const char *dir, const char *name, int count, uint8_t *(*make)(int which, size_t *size));
void tu_file_flip_bit(const char *path, uint64_t off, uint32_t bit);
/* A store's files and its checkpoint directory, into dst. */
void tu_copy_store(const char *src, const char *dst);
/* Reads a store's whole log through the public reader (mmsb_log_*),
 * which checks every CRC and chain link: its status, and the records read. */
int tu_log_read_all(const char *dir, uint64_t *records);
/* What tu_log_read_all reads, summed up: records by type (unknown types
 * under 0), the first record's seq, and the last commit's chain value. */
typedef struct tu_log_summary {
    uint64_t records;
    uint64_t by_type[16];
    uint64_t first_seq;
    char chain_hex[33];
} tu_log_summary;
int tu_log_summarise(const char *dir, tu_log_summary *out);

/* Forks a child that runs fn(dir, ctx, ready) and never returns; the
 * parent continues once the child called tu_child_ready(ready). Stop it
 * with tu_child_kill, which asserts it was still running. */
typedef void (*tu_child_fn)(const char *dir, void *ctx, int ready);
int tu_child_start(tu_child_fn fn, const char *dir, void *ctx);
void tu_child_ready(int ready);
void tu_child_kill(int pid);

/* ---- the mmsb program ------------------------------------------------------ */

/* What a run of the tool printed and returned. */
typedef struct tu_run {
    int status;    /* the exit status, or 128 + the signal that ended it */
    char *out;     /* stdout, NUL-terminated */
    char *err;
    size_t out_len;
} tu_run;

/* Finds the mmsb program beside the test programs (build/bin/mmsb). */
bool tu_tool_find(void);
/* Runs `mmsb args...` (NULL-terminated) with its progress bar off. */
tu_run tu_tool_run(const char *const *args);
void tu_run_free(tu_run *r);
/* Starts `mmsb args...` in the background, stdout and stderr appended to
 * log_path; tu_tool_wait returns its exit status (128 + a signal). */
/* In a forked child: it dies with the test (PR_SET_PDEATHSIG), or exits
 * at once when the test is already gone. */
void tu_die_with_parent(pid_t parent);
int tu_tool_spawn(const char *const *args, const char *log_path);
int tu_tool_wait(int pid);

/* Runs the tool and expects an exit status; returns the output. */
#define TOOL(want, ...)                                                                  \
    ({                                                                                   \
        const char *const args_[] = {__VA_ARGS__, NULL};                                 \
        tu_run r_ = tu_tool_run(args_);                                                  \
        if (r_.status != (want)) {                                                       \
            fail_msg("mmsb %s ...: exit %d, expected %d\nstdout: %.2000s\nstderr: %.2000s", \
                     args_[0], r_.status, (want), r_.out, r_.err);                       \
        }                                                                                \
        r_;                                                                              \
    })

/* The engine's info (asserting success). */
mmsb_engineinfo tu_info(mmsb_engine *e);

/* Fails the test with the library's detail message unless rc is 0. */
#define TU_OK(expr)                                                                \
    do {                                                                           \
        int tu_rc_ = (expr);                                                       \
        if (tu_rc_ != 0) {                                                         \
            fail_msg("%s -> %d (%s): %s", #expr, tu_rc_, mmsb_strerror(tu_rc_),    \
                     mmsb_last_error());                                           \
        }                                                                          \
    } while (0)

/* Expects a specific error code. */
#define TU_ERR(expr, code)                                                         \
    do {                                                                           \
        int tu_rc_ = (expr);                                                       \
        if (tu_rc_ != (code)) {                                                    \
            fail_msg("%s -> %d (%s), expected %s: %s", #expr, tu_rc_,              \
                     mmsb_strerror(tu_rc_), #code, mmsb_last_error());             \
        }                                                                          \
    } while (0)

#endif /* MMSB_TESTUTIL_H */
