/*
 * repl.h - what `mmsb ship`, `mmsb follow` and `mmsb promote` share: the
 * stop signal, the server and stream options, and their words.
 */
#ifndef MMSB_TOOLS_REPL_H
#define MMSB_TOOLS_REPL_H

#include "../engine/base/base.h"
#include "cli.h"
#include "../tlog/repl/link.h"
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

int cmd_ship(int argc, char **argv);
int cmd_follow(int argc, char **argv);
int cmd_promote(int argc, char **argv);

#endif /* MMSB_TOOLS_REPL_H */
