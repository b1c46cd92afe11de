/*
 * tool.h - the audit subcommands' view of the engine's internals: a bare
 * engine (no lock, no log writer) to replay into, the log cursor, and the
 * checks that `replay --verify` runs after every commit.
 */
#ifndef MMSB_TOOL_H
#define MMSB_TOOL_H

#include "../engine/audit.h"
#include "../engine/base/bytes.h"
#include "cli.h"

/* A bare engine over dir with the tool's limits (large enough for any
 * store the library can write); prints the problem and returns EXIT_USAGE
 * when it cannot be opened. */
int tool_engine(const char *cmd, const char *dir, mmsb_engine **out);
/* A read-only open of dir with the tool's options; prints the problem and
 * returns the exit status (1 a corrupt store, 2 else) when it fails. */
int tool_open_readonly(const char *cmd, const char *dir, mmsb_engine **out);
/* The state a read-only open of dir sees: its info and state root. */
int tool_state(const char *dir, mmsb_engineinfo *info, char root[33]);
/* Read-only options with limits large enough for any store the library
 * writes by default (64 GiB of arena address space, filled as pages come). */
void tool_options(mmsb_options *o);
/* The checkpoint's meta record, if the store has one. */
int tool_checkpoint_meta(mmsb_engine *e, ckpt_meta *meta, bool *found);
/* The state root of e now, as 32 hex digits. */
void tool_root_hex(mmsb_engine *e, char out[33]);
void tool_h128_hex(h128 h, char out[33]);

/* The page a record is about (the child of a graph record), or 0. */
uint64_t tool_record_page(const log_rec *r);

/* Opens e's log from its oldest record, skipping segments left over from a
 * retention that a crash interrupted (the checkpoint covers them). */
int tool_cursor(mmsb_engine *e, uint32_t flags, log_cursor **out);
/* Reads the whole log with every check on, calling fn (if not NULL) for
 * each valid record, with a progress bar; *end says how the log ended, and
 * when `aborted` is not NULL it gets the rolled-back ranges (free it). */
typedef void (*tool_record_fn)(void *ctx, const log_rec *r);
int tool_scan_log(mmsb_engine *e, const log_files *lf, tool_record_fn fn, void *ctx, log_end *end,
                  uint64_t **aborted, uint64_t *aborted_count);

/* A change recorded in the commit being replayed: (page, record seq). */
typedef struct touched {
    uint64_t page, seq;
} touched;

/* The first place where the replayed state disagrees with the log. */
typedef struct divergence {
    bool found;
    uint64_t seq, page, offset;
    uint32_t expected, actual;  /* bytes; 256+ when not a byte comparison */
    char what[256];
} divergence;

typedef struct replay_watch {
    bool derived_checks;        /* --verify: re-run built-in operations */
    uint64_t root_at_seq;       /* remember the root after this record; 0: no */
    bool have_root_at;
    h128 root_at;
    uint64_t roots_checked, derived_checked, derived_user;
    divergence div;
    touched *list;              /* this commit's changes */
    uint64_t count, cap;
    uint64_t *candidates;       /* derived pages to check at the commit */
    uint64_t candidates_cap;
    audit_scratch scratch;      /* the derived checks' buffers */
    progress *prog;
    const log_files *files;
} replay_watch;

/* The replay hook: counts root checks, runs the derived checks at each
 * commit, remembers the root at root_at_seq, drives the progress bar. */
int replay_watch_hook(void *ctx, mmsb_engine *e, const log_rec *r, uint64_t segment);
void replay_watch_free(replay_watch *w);

#endif /* MMSB_TOOL_H */
