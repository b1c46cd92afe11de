/*
 * base.h - what every translation unit of the library shares: always-on
 * assertions, the error helper and small integer utilities.
 */
#ifndef MMSB_BASE_H
#define MMSB_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../ffi/mmsb.h"

/* Assertions stay on in every build: a broken invariant in a storage engine
 * must stop the process before it writes a wrong byte. */
_Noreturn void mmsb_assert_fail(const char *expr, const char *file, int line);
#define ASSERT(cond)                                                           \
    (__builtin_expect(!!(cond), 1) ? (void)0                                   \
                                   : mmsb_assert_fail(#cond, __FILE__, __LINE__))

/* A 128-bit hash (XXH3-128): page digests, signatures, the log chain. */
typedef struct h128 {
    uint64_t lo;
    uint64_t hi;
} h128;

/* On functions whose result must be checked (an error code, mostly). */
#define MUST_CHECK __attribute__((warn_unused_result))

#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Records the calling thread's detail message and returns code, so that a
 * failure path reads `return err_set(MMSB_EINVAL, "...", ...);`. */
int err_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Maps an errno value from a failed system call to an MMSB code. */
int err_from_errno(int errnum);
/* The calling thread's kernel id (never 0); it never reaches state. */
uint32_t base_thread_id(void);

static inline uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }
static inline uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }
static inline bool is_pow2_u64(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

static inline uint64_t align_up_u64(uint64_t v, uint64_t align) {
    ASSERT(is_pow2_u64(align));
    ASSERT(v <= UINT64_MAX - (align - 1));
    return (v + align - 1) & ~(align - 1);
}

/* floor(log2(v)) for v > 0. */
static inline uint32_t log2_floor_u64(uint64_t v) {
    ASSERT(v != 0);
    return 63u - (uint32_t)__builtin_clzll(v);
}

/* ceil(log2(v)) for v > 0. */
static inline uint32_t log2_ceil_u64(uint64_t v) {
    ASSERT(v != 0);
    return v == 1 ? 0 : log2_floor_u64(v - 1) + 1;
}

/* True when [a, a + a_len) and [b, b + b_len) share a byte. */
static inline bool ranges_overlap(const void *a, uint64_t a_len, const void *b,
                                  uint64_t b_len) {
    uintptr_t a0 = (uintptr_t)a, b0 = (uintptr_t)b;
    if (a_len == 0 || b_len == 0) return false;
    return a0 < b0 + b_len && b0 < a0 + a_len;
}

#endif /* MMSB_BASE_H */
