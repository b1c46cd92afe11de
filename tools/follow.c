/*
 * follow.c - `mmsb follow`: builds and keeps a replica store from a stream,
 * and `mmsb promote`: makes a replica a store a writer may open.
 *
 * Both go through the public API (mmsb_replica_*, mmsb_promote): the
 * follower takes the stream's messages in order, from the message after
 * the one its marker names (or the beginning); every group is checked
 * before it counts. A message that fails is refused with its stream
 * sequence and the reason, and the follower stops: nothing after it is
 * written.
 */
#include <stdio.h>

#include "repl.h"
#include "tool.h"

const char usage_follow[] =
    "usage: mmsb follow DIR --server URL[,URL..] --stream NAME [--once] [--json]\n"
    "\n"
    "Builds the replica store DIR from the JetStream stream NAME and keeps it\n"
    "current until SIGINT or SIGTERM (--once: until it holds the whole stream).\n"
    "Every group of records is checked (CRCs, salt, sequence, chain) before it\n"
    "counts, then applied to the replica's pages, which check every recorded state\n"
    "root; a message that fails is refused and the follower stops. Other processes\n"
    "attach to the follower's pages live (mmsb_attach_open) or open the replica\n"
    "read-only; `mmsb promote DIR` makes it a store a writer opens.\n";

const char usage_promote[] =
    "usage: mmsb promote DIR [--server URL[,URL..]] [--force] [--json]\n"
    "\n"
    "Turns the replica DIR (no follower running) into a store a writer opens:\n"
    "removes its REPLICA marker and opens it once as a writer (which checks its log).\n"
    "With --server, first checks that the replica holds the stream's last group\n"
    "(--force promotes a replica that lags; its writer's shipper is then refused\n"
    "by the stream, which holds commits the replica lacks).\n";

static void follow_report(const mmsb_replica_info *st, const char *root_hex, const char *dir, bool json) {
    if (json) {
        json_out j;
        json_begin(&j, stdout);
        json_str(&j, "command", "follow");
        json_str(&j, "dir", dir);
        json_u64(&j, "messages", st->messages);
        json_u64(&j, "groups_checked", st->groups);
        json_u64(&j, "bytes_written", st->bytes_written);
        json_u64(&j, "commit_seq", st->commit_seq);
        json_u64(&j, "commits", st->commits);
        json_u64(&j, "stream_seq", st->stream_seq);
        json_u64(&j, "stream_last_seq", st->stream_last_seq);
        json_u64(&j, "lag_records", st->lag_records);
        json_f64(&j, "lag_seconds", (double)st->lag_ns / 1e9);
        json_u64(&j, "tail_cut_bytes", st->tail_cut_bytes);
        json_str(&j, "state_root", root_hex);
        json_end(&j);
        return;
    }
    printf("mmsb follow %s: %llu messages, %llu groups checked; the replica holds the log up to record %llu "
           "(%llu commits), stream message %llu of %llu; lag %llu records, %.3f s; state root %s\n",
           dir, (unsigned long long)st->messages, (unsigned long long)st->groups,
           (unsigned long long)st->commit_seq, (unsigned long long)st->commits, (unsigned long long)st->stream_seq,
           (unsigned long long)st->stream_last_seq, (unsigned long long)st->lag_records, (double)st->lag_ns / 1e9,
           root_hex);
}

/* The replica's pages' state root, as hex. */
static int replica_root_hex(mmsb_replica *r, char hex[33]) {
    mmsb_engine *e = NULL;
    mmsb_digest root;
    int rc = mmsb_replica_engine(r, &e);
    if (rc == 0) rc = mmsb_state_root(e, &root);
    if (rc == 0) rc = mmsb_digest_hex(&root, hex, 33);
    return rc;
}

/* Polls until a stop signal, or (once) until a poll finds nothing and the
 * replica holds the stream's last group. A stream that does not answer is
 * tried again (for ever while running, REPL_ONCE_TRIES times with --once). */
static int follow_run(mmsb_replica *r, bool once) {
    int rc = 0;
    uint32_t failures = 0;
    while (!repl_stop_requested()) {
        uint64_t taken = 0;
        rc = mmsb_replica_poll(r, 100, &taken);
        mmsb_replica_info info = {.struct_size = sizeof info};
        if (rc == 0 && once && taken == 0) rc = mmsb_replica_info_get(r, &info);
        if (rc == MMSB_EREPLICA && (!once || ++failures < REPL_ONCE_TRIES)) {
            repl_warn("follow", rc);
            repl_sleep_ms(REPL_RETRY_MS);
            continue;
        }
        failures = 0;
        if (rc != 0 || (once && taken == 0 && info.lag_records == 0)) break;
    }
    return rc;
}

int cmd_follow(int argc, char **argv) {
    const char *server = NULL, *stream = NULL;
    bool once = false, server_seen = false, stream_seen = false;
    const cli_opt opts[] = {
        {"--server", OPT_TEXT, &server, &server_seen},
        {"--stream", OPT_TEXT, &stream, &stream_seen},
        {"--once", OPT_FLAG, &once, NULL},
    };
    cli_args a;
    int rc = cli_parse("follow", usage_follow, argc, argv, opts, ARRAY_LEN(opts), 1, &a);
    if (rc != 0) return rc == CLI_HELP ? EXIT_CLEAN : rc;
    if (!server_seen || !stream_seen) {
        fprintf(stderr, "mmsb follow: --server and --stream are needed\n\n%s", usage_follow);
        return EXIT_USAGE;
    }
    mmsb_replica *r = NULL;
    mmsb_options limits; /* the replica's pages: room for any store the library writes by default */
    tool_options(&limits);
    repl_signals_install();
    rc = mmsb_replica_open_with(a.pos[0], server, stream, &limits, &r);
    for (uint32_t tries = 1; rc == MMSB_EREPLICA && !repl_stop_requested() && (!once || tries < REPL_ONCE_TRIES);
         tries++) { /* the stream does not answer yet: a cluster electing its leaders, a server restarting */
        repl_warn("follow", rc);
        repl_sleep_ms(REPL_RETRY_MS);
        rc = mmsb_replica_open_with(a.pos[0], server, stream, &limits, &r);
    }
    if (rc == 0) rc = follow_run(r, once);
    if (rc != 0) cli_report("follow", rc);
    mmsb_replica_info info = {.struct_size = sizeof info};
    char root_hex[33];
    if (r != NULL && mmsb_replica_info_get(r, &info) == 0 && replica_root_hex(r, root_hex) == 0) {
        follow_report(&info, root_hex, a.pos[0], a.json);
    }
    int close_rc = mmsb_replica_close(r);
    if (close_rc != 0 && rc == 0) cli_report("follow", rc = close_rc);
    if (rc == 0) return EXIT_CLEAN;
    return rc == MMSB_ECORRUPT || rc == MMSB_EINVAL ? EXIT_PROBLEM : EXIT_USAGE;
}

int cmd_promote(int argc, char **argv) {
    const char *server = NULL;
    bool force = false;
    const cli_opt opts[] = {{"--server", OPT_TEXT, &server, NULL}, {"--force", OPT_FLAG, &force, NULL}};
    cli_args a;
    int rc = cli_parse("promote", usage_promote, argc, argv, opts, ARRAY_LEN(opts), 1, &a);
    if (rc != 0) return rc == CLI_HELP ? EXIT_CLEAN : rc;
    rc = mmsb_promote(a.pos[0], server, force ? MMSB_PROMOTE_FORCE : 0);
    mmsb_engineinfo info = {.struct_size = sizeof info};
    char root[33] = "";
    if (rc == 0) rc = tool_state(a.pos[0], &info, root);
    if (rc != 0) {
        cli_report("promote", rc);
        return rc == MMSB_ECORRUPT || rc == MMSB_EINVAL || rc == MMSB_EBUSY ? EXIT_PROBLEM : EXIT_USAGE;
    }
    if (a.json) {
        json_out j;
        json_begin(&j, stdout);
        json_str(&j, "command", "promote");
        json_str(&j, "dir", a.pos[0]);
        json_u64(&j, "commit_seq", info.commit_seq);
        json_u64(&j, "pages", info.pages_live);
        json_str(&j, "root", root);
        json_end(&j);
    } else {
        printf("mmsb promote %s: the store holds the log up to record %llu (%llu pages, state root %s); a writer "
               "opens it now\n", a.pos[0], (unsigned long long)info.commit_seq, (unsigned long long)info.pages_live,
               root);
    }
    return EXIT_CLEAN;
}
