/*
 * cli.h - what the subcommands of the mmsb tool share.
 */
#ifndef MMSB_CLI_H
#define MMSB_CLI_H

#include <stdint.h>

#include "../ffi/mmsb.h"

/* Exit statuses of every subcommand. */
enum {
    EXIT_CLEAN = 0,   /* done, nothing wrong found */
    EXIT_PROBLEM = 1, /* a problem was found (corruption, divergence) */
    EXIT_USAGE = 2,   /* bad usage, or an I/O error */
};

int cmd_demo(int argc, char **argv);

/* What the derived-page part of the demo did. */
typedef struct dag_stats {
    uint64_t derived_pages, edges;
    uint64_t txns_committed, txns_unchanged, batches;
    uint64_t txns_conflicted, txns_refused, txns_aborted; /* each left the root as it was */
    uint64_t recomputes, skips, backdates, delta_propagations;
    uint64_t events_page_changed, events_derived, events_commit;
    uint64_t elapsed_ns;
} dag_stats;

/* Builds a DAG of derived pages in e and runs `txns` transactions and
 * batches against its base pages, drawing choices from *rng. */
int demo_dag(mmsb_engine *e, uint64_t *rng, uint64_t txns, dag_stats *st);

/* Prints "mmsb: <what>: <code text>: <detail>" to stderr. */
void cli_report(const char *what, int rc);
/* Parses a decimal unsigned integer; 0 on success. */
int cli_parse_u64(const char *text, uint64_t *out);
/* splitmix64: the demo's only source of choices, so a seed fixes a run. */
uint64_t cli_rng_next(uint64_t *state);
/* Nanoseconds of a monotonic clock, for reporting only (never state). */
uint64_t cli_now_ns(void);

#endif /* MMSB_CLI_H */
