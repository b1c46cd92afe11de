/*
 * repl.h - what `mmsb ship`, `mmsb follow` and `mmsb promote` share: the
 * stop signal, the server and stream options, and their words.
 */
#ifndef MMSB_TOOLS_REPL_H
#define MMSB_TOOLS_REPL_H

#include "../engine/base/base.h"
#include "cli.h"
#include "../tlog/repl/link.h"
#include "../tlog/repl/mirror.h"
#include "../tlog/repl/pin.h"
#include "../tlog/repl/ship.h"

/* Defaults of the replication commands. */
enum {
    REPL_TIMEOUT_MS = 5000,    /* a NATS request */
    REPL_POLL_MS = 2,          /* the shipper's wait for new commits, when idle */
    REPL_IDLE_FAST_ROUNDS = 50, /* ... for this many looks, then */
    REPL_POLL_IDLE_MS = 20,    /* ... this long */
    REPL_RETRY_MS = 500,       /* after the stream did not answer */
    REPL_ONCE_TRIES = 20,      /* --once: tries while the stream does not answer */
};

/* SIGINT and SIGTERM ask a running command to stop after its current step. */
void repl_signals_install(void);
bool repl_stop_requested(void);
void repl_sleep_ms(uint64_t ms);
/* 'mmsb CMD: retrying: ...' on stderr, at most every 5 seconds. */
void repl_warn(const char *cmd, int rc);

/* How a store and a stream it has to do with stand, asked of the stream:
 * the one a replica follows (the replica behind the stream), or one a
 * shipper publishes to (a pin: the stream behind the log). */
typedef struct stream_standing {
    char stream[REPLICA_STREAM_MAX + 1];
    bool replica;              /* the store follows it; else it ships to it */
    int rc;                    /* 0, or why the stream could not be asked (problem) */
    char problem[200];
    uint64_t stream_last_seq;  /* the stream's last message */
    uint64_t stream_commit_seq; /* the last commit it holds whole */
    uint64_t behind_records, behind_bytes; /* the side that lags (segments between counted whole) */
    uint64_t behind_ns;        /* a replica: age of the oldest message it lacks (wall clock) */
} stream_standing;

enum { STANDINGS_MAX = 1 + SHIP_PINS_MAX };

/* The standings of the store in dir, whose log ends at `end` (segments of
 * segment_bytes), with each of its streams, asked of `server`. */
void repl_standings(const char *dir, const char *server, const log_end *end, uint64_t segment_bytes,
                    stream_standing *out, uint32_t *count);

int cmd_ship(int argc, char **argv);
int cmd_follow(int argc, char **argv);
int cmd_promote(int argc, char **argv);

#endif /* MMSB_TOOLS_REPL_H */
