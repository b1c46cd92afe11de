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
