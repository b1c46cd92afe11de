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

/* Prints "mmsb: <what>: <code text>: <detail>" to stderr. */
void cli_report(const char *what, int rc);
/* Parses a decimal unsigned integer; 0 on success. */
int cli_parse_u64(const char *text, uint64_t *out);
/* Nanoseconds of a monotonic clock, for reporting only (never state). */
uint64_t cli_now_ns(void);

#endif /* MMSB_CLI_H */
