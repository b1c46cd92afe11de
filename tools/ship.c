/*
 * ship.c - `mmsb ship`: publishes a store's committed log to a JetStream
 * stream, beside the writer (tlog/repl/ship.h does the work). What it
 * publishes it syncs first, so a replica never holds a commit the primary
 * could still lose in a crash.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../tlog/repl/mirror.h"
#include "../tlog/repl/pin.h"
#include "../tlog/repl/ship.h"
#include "repl.h"
#include "tool.h"

const char usage_ship[] =
    "usage: mmsb ship DIR --server URL[,URL..] --stream NAME [--create] [--replicas N] [--once] [--json]\n"
    "       mmsb ship DIR --stream NAME --unpin [--json]\n"
    "\n"
    "Publishes the store's committed log to the JetStream stream NAME (subject\n"
    "mmsb.NAME), one message per group of commits (at most 1 MiB each), and keeps\n"
    "going as the writer commits, until SIGINT or SIGTERM. A restarted shipper\n"
    "resumes where the stream ends. --create makes the stream (--replicas copies,\n"
    "default 1) when it does not exist. --once ships what is committed and exits.\n"
    "\n"
    "The shipper pins the log (DIR/ship-NAME.pin): the writer's retention keeps\n"
    "every segment the stream does not hold yet, however long the shipper is away.\n"
    "--unpin gives the stream up: the pin goes, and retention removes those\n"
    "segments again.\n";

typedef struct ship_args {
    const char *server, *stream;
    bool create, once, unpin;
    uint64_t replicas;
} ship_args;

static void ship_report(const ship_stats *st, const char *dir, bool json) {
    if (json) {
        json_out j;
        json_begin(&j, stdout);
        json_str(&j, "command", "ship");
        json_str(&j, "dir", dir);
        json_u64(&j, "groups", st->groups);
        json_u64(&j, "messages", st->messages);
        json_u64(&j, "duplicates", st->duplicates);
        json_u64(&j, "bytes", st->bytes);
        json_u64(&j, "shipped_to_seq", st->shipped_seq);
        json_u64(&j, "stream_last_seq", st->stream_last);
        json_end(&j);
        return;
    }
    printf("mmsb ship %s: %llu groups, %llu messages (%llu already in the stream), %llu bytes; the stream holds "
           "the log up to record %llu (stream sequence %llu)\n",
           dir, (unsigned long long)st->groups, (unsigned long long)st->messages,
           (unsigned long long)st->duplicates, (unsigned long long)st->bytes, (unsigned long long)st->shipped_seq,
           (unsigned long long)st->stream_last);
}

/* Ships until a stop signal, or (once) until nothing is left. A stream
 * that does not answer (a server down, no quorum) is tried again: for ever
 * while running, REPL_ONCE_TRIES times with --once. */
static int ship_run(shipper *s, bool once) {
    int rc = 0;
    uint32_t failures = 0, idle = 0;
    while (!repl_stop_requested()) {
        bool shipped = false;
        rc = shipper_round(s, UINT64_MAX, &shipped);
        if (rc == MMSB_EREPLICA && (!once || ++failures < REPL_ONCE_TRIES)) {
            repl_warn("ship", rc);
            repl_sleep_ms(REPL_RETRY_MS);
            continue;
        }
        failures = 0;
        if (rc != 0 || (once && !shipped)) break;
        /* Idle: look again soon, then less often (each look reads the log). */
        idle = shipped ? 0 : idle + 1;
        if (!shipped) repl_sleep_ms(idle < REPL_IDLE_FAST_ROUNDS ? REPL_POLL_MS : REPL_POLL_IDLE_MS);
    }
    return rc;
}

/* The store's checkpoint segment: segments below it may be leftovers of an
 * interrupted retention, covered by the checkpoint (cursor_open). */
static int covered_segment(const char *dir, uint64_t *out) {
    mmsb_engine *e = NULL;
    if (tool_engine("ship", dir, &e) != 0) return err_set(MMSB_ENOTFOUND, "cannot open the store %s", dir);
    ckpt_meta m;
    bool found = false;
    if (tool_checkpoint_meta(e, &m, &found) != 0) found = false;
    *out = found ? m.segment : 0;
    engine_close_bare(e);
    return 0;
}

/* Gives a stream up: its pin no longer holds the log's segments. */
static int ship_unpin(const char *dir, const char *stream, bool json) {
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    bool removed = false;
    int rc = dir_fd < 0 ? err_set(MMSB_ENOTFOUND, "cannot open %s: %s", dir, strerror(errno))
                        : ship_pin_remove(dir_fd, stream, &removed);
    if (dir_fd >= 0) close(dir_fd);
    if (rc != 0) {
        cli_report("ship", rc);
        return EXIT_USAGE;
    }
    if (json) {
        json_out j;
        json_begin(&j, stdout);
        json_str(&j, "command", "ship");
        json_str(&j, "dir", dir);
        json_str(&j, "unpinned", stream);
        json_bool(&j, "removed", removed);
        json_end(&j);
    } else {
        printf("mmsb ship %s: %s\n", dir, removed ? "the stream's pin is removed: retention may remove the segments "
               "it held" : "no pin for that stream");
    }
    return EXIT_CLEAN;
}

int cmd_ship(int argc, char **argv) {
    ship_args sa = {.replicas = 1};
    bool server_seen = false, stream_seen = false;
    const cli_opt opts[] = {
        {"--server", OPT_TEXT, &sa.server, &server_seen}, {"--stream", OPT_TEXT, &sa.stream, &stream_seen},
        {"--create", OPT_FLAG, &sa.create, NULL},         {"--replicas", OPT_U64, &sa.replicas, NULL},
        {"--once", OPT_FLAG, &sa.once, NULL},             {"--unpin", OPT_FLAG, &sa.unpin, NULL},
    };
    cli_args a;
    int rc = cli_parse("ship", usage_ship, argc, argv, opts, ARRAY_LEN(opts), 1, &a);
    if (rc != 0) return rc == CLI_HELP ? EXIT_CLEAN : rc;
    if (sa.unpin && stream_seen && replica_stream_name_ok(sa.stream)) return ship_unpin(a.pos[0], sa.stream, a.json);
    if (!server_seen || !stream_seen || !replica_stream_name_ok(sa.stream) || sa.replicas < 1 || sa.replicas > 5) {
        fprintf(stderr, "mmsb ship: --server and --stream are needed; a stream name is 1 .. %d of A-Z a-z 0-9 _ -; "
                "--replicas is 1 .. 5\n\n%s", REPLICA_STREAM_MAX, usage_ship);
        return EXIT_USAGE;
    }
    const kern_ops *kern = NULL;
    nats_link *link = NULL;
    shipper *s = NULL;
    uint64_t covered = 0;
    int dir_fd = open(a.pos[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    rc = dir_fd < 0 ? err_set(MMSB_ENOTFOUND, "cannot open %s: %s", a.pos[0], strerror(errno))
                    : kern_select(MMSB_KERNEL_AUTO, &kern);
    if (rc == 0) rc = covered_segment(a.pos[0], &covered);
    if (rc == 0) rc = link_open(sa.server, sa.stream, REPL_TIMEOUT_MS, &link);
    repl_signals_install();
    if (rc == 0) rc = shipper_open(dir_fd, kern, covered, link, sa.create, (int64_t)sa.replicas, &s);
    if (rc == 0) rc = ship_run(s, sa.once);
    if (rc != 0) cli_report("ship", rc);
    ship_stats st = {0};
    if (s != NULL) shipper_get_stats(s, &st);
    ship_report(&st, a.pos[0], a.json);
    shipper_close(s);
    link_close(link);
    if (dir_fd >= 0) close(dir_fd);
    if (rc == 0) return EXIT_CLEAN;
    return rc == MMSB_EFENCED || rc == MMSB_ECORRUPT || rc == MMSB_EINVAL ? EXIT_PROBLEM : EXIT_USAGE;
}
