/*
 * repl.h - what `mmsb ship`, `mmsb follow` and `mmsb promote` share: the
 * stop signal, the server and stream options, and their words.
 */
#ifndef MMSB_TOOLS_REPL_H
#define MMSB_TOOLS_REPL_H

#include "../engine/base/base.h"
#include "cli.h"
#include "nats_link.h"

/* Defaults of the replication commands. */
enum {
    REPL_TIMEOUT_MS = 5000,    /* a NATS request */
    REPL_POLL_MS = 2,          /* the shipper's wait for new commits, when idle */
    REPL_NOTE_MS = 1000,       /* the follower's marker hint, at most this often */
    REPL_WALK_BACK_MAX = 4096, /* messages looked at to find where a group ended */
    REPL_SUBSCRIBE_TRIES = 10, /* a consumer's creation, while a cluster elects leaders */
};

/* SIGINT and SIGTERM ask a running command to stop after its current step. */
void repl_signals_install(void);
bool repl_stop_requested(void);
void repl_sleep_ms(uint64_t ms);

/* Where the stream's last whole group ends: the message with the LAST flag
 * found walking back from the stream's end. *found false when the stream
 * holds none (empty, or only a group's first parts). */
MUST_CHECK int repl_last_group(nats_link *l, const link_stream *ls, frame_meta *meta, uint64_t *len,
                               uint64_t *stream_seq, bool *found);

int cmd_ship(int argc, char **argv);
int cmd_follow(int argc, char **argv);
int cmd_promote(int argc, char **argv);

#endif /* MMSB_TOOLS_REPL_H */
