/*
 * bench.h - the microbenchmark suite: named benchmarks, each producing
 * samples of one figure, run and summarised by main.c.
 *
 * Rules every benchmark follows (bench/README.md): the sizes in its name are
 * the sizes it uses; it checks its result once (bytes, a state root, a
 * count) so the work cannot be optimised away, and fails when the check
 * fails; it measures its own figure, never one derived from another.
 */
#ifndef MMSB_BENCH_H
#define MMSB_BENCH_H

#include <stdbool.h>
#include <stdint.h>

#include "../ffi/mmsb.h"

enum { BENCH_SAMPLES_MAX = 1 << 20, BENCH_CHECK_BYTES = 96, BENCH_NOTE_BYTES = 160 };

typedef struct bench_env {
    const char *dir;      /* a scratch directory on the file system measured */
    bool quick;           /* a short pass: fewer repetitions and operations */
    uint32_t reps;        /* repetitions of a throughput figure */
    bool gpu_present;     /* a CUDA device was found */
} bench_env;

typedef struct bench_out {
    double *samples;      /* in the benchmark's unit */
    uint32_t count;
    char check[BENCH_CHECK_BYTES]; /* what was checked, e.g. a root */
    char note[BENCH_NOTE_BYTES];   /* shown beside the figure */
    bool skipped;         /* with the reason in note */
} bench_out;

typedef int (*bench_fn)(const bench_env *env, const void *arg, bench_out *out);

/* Goals: on the median, or on the ratio of the median to the peer's. */
enum { GOAL_NONE = 0, GOAL_AT_MOST = 1, GOAL_AT_LEAST = 2, GOAL_RATIO_AT_MOST = 3, GOAL_RATIO_AT_LEAST = 4 };

typedef struct bench_def {
    const char *name;      /* "group/what/size" */
    const char *unit;      /* "ns", "us", "ms", "GB/s", "M/s", "K/s", "bytes" */
    bench_fn fn;
    const void *arg;
    const char *peer;      /* the benchmark it is compared with, or NULL */
    uint32_t goal_kind;    /* GOAL_* */
    double goal;           /* in the unit, or a ratio to the peer */
    const char *goal_from; /* "issue 2", ... */
    const char *reference; /* the replaced system's figure, in words */
    const char *plot;      /* the plot it is a point of, or NULL */
    const char *series;    /* its line in that plot */
    double x;              /* its x value there */
} bench_def;

/* Samples: added by the benchmark, summarised by the runner. */
int bench_sample(bench_out *out, double value);
uint64_t bench_now_ns(void);
/* A fresh store directory under env->dir (removed first if it exists). */
void bench_store_path(const bench_env *env, const char *name, char *out, uint64_t cap);
void bench_rmtree(const char *path);
/* Fails the benchmark with a message (returns -1). */
int bench_fail(bench_out *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Options for benchmark stores: no GPU probe, the given durability. */
void bench_options(mmsb_options *o, uint32_t durability);
/* A fresh store `name` in the scratch directory, opened with
 * bench_options, no checkpoint policy and room for 16 GiB of pages. */
int bench_open_store(const bench_env *env, const char *name, uint32_t durability, mmsb_engine **e, bench_out *out);
/* 64 bytes of one of two patterns (i even or odd), so alternating writes
 * change every byte. */
const uint8_t *bench_pattern64(uint64_t i);
/* The state root as hex into out->check. */
void bench_check_root(mmsb_engine *e, bench_out *out);

/* The groups (each returns its table). */
const bench_def *bench_group_core(uint32_t *count);
const bench_def *bench_group_log(uint32_t *count);
const bench_def *bench_group_prop(uint32_t *count);
const bench_def *bench_group_store(uint32_t *count);
const bench_def *bench_group_gpu(uint32_t *count);
const bench_def *bench_group_gpu_kernels(uint32_t *count);
const bench_def *bench_group_repl(uint32_t *count);

#endif /* MMSB_BENCH_H */
