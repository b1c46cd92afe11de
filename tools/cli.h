/*
 * cli.h - what the subcommands of the mmsb tool share.
 */
#ifndef MMSB_CLI_H
#define MMSB_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

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
/* Why dir could not be opened, in the tool's terms (no such directory, no
 * store there, in use) rather than the library's (open flags). */
void cli_report_open(const char *cmd, const char *dir, int rc);
/* The library's detail message without the C function name it starts with. */
const char *cli_error_detail(void);
/* Parses a decimal unsigned integer; 0 on success. */
int cli_parse_u64(const char *text, uint64_t *out);
/* splitmix64: the demo's only source of choices, so a seed fixes a run. */
uint64_t cli_rng_next(uint64_t *state);
/* Nanoseconds of a monotonic clock, for reporting only (never state). */
uint64_t cli_now_ns(void);

/* ---- the audit subcommands (audit.c, inspect.c) --------------------------------- */

int cmd_verify(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_checkpoint(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_history(int argc, char **argv);
int cmd_page(int argc, char **argv);
int cmd_pages(int argc, char **argv);
int cmd_salvage(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_import(int argc, char **argv);

/* Each command's --help text; its first lines are the synopsis that
 * `mmsb --help` lists. */
extern const char usage_demo[], usage_verify[], usage_replay[], usage_dump[], usage_stats[], usage_pages[],
    usage_history[], usage_page[], usage_diff[], usage_checkpoint[], usage_salvage[], usage_ship[],
    usage_follow[], usage_promote[], usage_export[], usage_import[];

/* ---- arguments (out.c) ------------------------------------------------------------ */

typedef enum { OPT_FLAG, OPT_U64, OPT_TEXT } opt_kind;

typedef struct cli_opt {
    const char *name;    /* "--to" */
    opt_kind kind;
    void *out;           /* bool, uint64_t or const char * */
    bool *seen;          /* or NULL */
} cli_opt;

enum { CLI_POSITIONAL_MAX = 2, CLI_OPTS_MAX = 16, CLI_HELP = -1 };

typedef struct cli_args {
    const char *pos[CLI_POSITIONAL_MAX];
    uint32_t pos_count;
    bool json;
} cli_args;

/* Parses argv (argv[0]: the command's name) against opts with getopt_long:
 * "--to 9", "--to=9", unique abbreviations, and "--" before operands that
 * start with '-'; --json and --help (-h) are always known. Returns
 * 0, CLI_HELP after printing the usage to stdout, or EXIT_USAGE after
 * printing what is wrong and the usage to stderr. */
int cli_parse(const char *cmd, const char *usage, int argc, char **argv, const cli_opt *opts,
              uint32_t opt_count, uint32_t pos_want, cli_args *out);

/* ---- JSON output (out.c): a streaming writer with a bounded depth ------------------ */

enum { JSON_DEPTH_MAX = 8 };

typedef struct json_out {
    FILE *f;
    uint32_t depth;
    bool first[JSON_DEPTH_MAX];
} json_out;

void json_begin(json_out *j, FILE *f);   /* the top-level object */
void json_end(json_out *j);              /* closes it, with a newline */
void json_obj(json_out *j, const char *key); /* key NULL inside an array */
void json_arr(json_out *j, const char *key);
void json_close_obj(json_out *j);
void json_close_arr(json_out *j);
void json_u64(json_out *j, const char *key, uint64_t v);
void json_f64(json_out *j, const char *key, double v);
void json_bool(json_out *j, const char *key, bool v);
void json_str(json_out *j, const char *key, const char *v);
void json_hex(json_out *j, const char *key, const uint8_t *bytes, uint64_t len);

/* ---- progress on stderr (out.c) --------------------------------------------------- */

/* A bar on stderr for runs over a second, only when stderr is a terminal
 * (MMSB_NO_PROGRESS=1 turns it off). Redrawn at most ten times a second. */
typedef struct progress {
    bool on;
    const char *what;
    uint64_t total, start_ns, drawn_ns;
} progress;

void progress_start(progress *p, const char *what, uint64_t total);
void progress_update(progress *p, uint64_t done);
void progress_end(progress *p);

/* ---- a store's log files (out.c) --------------------------------------------------- */

typedef struct log_files {
    uint64_t count;          /* segment files */
    uint64_t first, last;    /* their numbers; 0 when none */
    uint64_t bytes;          /* their total size */
    uint64_t segment_bytes;  /* size of the first one */
    uint64_t segment_bytes_max; /* of the largest (segments grow: tlog/FORMAT.md) */
} log_files;

/* Lists dir's segment files: EXIT_USAGE (with a message) when dir is not a
 * readable directory. */
int log_files_list(const char *cmd, const char *dir, log_files *out);
/* Bytes read so far when at (segment, offset): for the progress bar. */
uint64_t log_files_done(const log_files *lf, uint64_t segment, uint64_t offset);

/* Writes len bytes as lowercase hex digits to f. */
void cli_hex_write(FILE *f, const uint8_t *bytes, uint64_t len);
/* Prints a digest as 32 hex digits into out. */
void cli_hex128(const uint8_t bytes[16], char out[33]);

#endif /* MMSB_CLI_H */
