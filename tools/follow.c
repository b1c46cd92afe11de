/*
 * follow.c - `mmsb follow`: builds and keeps a replica store from a stream,
 * and `mmsb promote`: makes a replica a store a writer may open.
 *
 * The follower takes the stream's messages in order, from the message after
 * the one its marker names (or the beginning), and hands each to the
 * replica's log (tlog/repl/mirror.h), which checks every group before it
 * counts. A message that fails is refused with its stream sequence and the
 * reason, and the follower stops: nothing after it is written.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include "../tlog/repl/mirror.h"
#include "repl.h"
#include "tool.h"

static const char FOLLOW_USAGE[] =
    "usage: mmsb follow DIR --server URL[,URL..] --stream NAME [--once] [--json]\n"
    "\n"
    "Builds the replica store DIR from the JetStream stream NAME and keeps it\n"
    "current until SIGINT or SIGTERM (--once: until it holds the whole stream).\n"
    "Every group of records is checked (CRCs, salt, sequence, chain) before it\n"
    "counts; a message that fails is refused and the follower stops. Readers open\n"
    "the replica read-only; `mmsb promote DIR` makes it a store a writer opens.\n";

static const char PROMOTE_USAGE[] =
    "usage: mmsb promote DIR [--server URL[,URL..]] [--force] [--json]\n"
    "\n"
    "Turns the replica DIR (no follower running) into a store a writer opens:\n"
    "removes its REPLICA marker and closes its log cleanly as a writer would.\n"
    "With --server, first checks that the replica holds the stream's last group\n"
    "(--force promotes a replica that lags; its writer's shipper is then refused\n"
    "by the stream, which holds commits the replica lacks).\n";

typedef struct follower {
    nats_link *link;
    log_mirror *mirror;
    uint64_t messages, taken, last_note_ns;
    uint64_t stream_last;
} follower;

static int take(follower *f, const link_msg *m) {
    frame_meta meta;
    int rc = frame_parse(m->values, m->len, &meta);
    bool taken = false;
    if (rc == 0) rc = mirror_accept(f->mirror, &meta, m->data, m->len, m->stream_seq, &taken);
    if (rc != 0) {
        return err_set(rc, "stream message %llu refused: %s", (unsigned long long)m->stream_seq, mmsb_last_error());
    }
    f->messages++;
    f->taken += taken;
    f->stream_last = m->stream_seq;
    uint64_t now = cli_now_ns();
    if (now - f->last_note_ns >= REPL_NOTE_MS * 1000000ull) {
        f->last_note_ns = now;
        return mirror_note(f->mirror);
    }
    return 0;
}

/* Takes messages until the stream has no more (once) or a stop signal. */
static int follow_run(follower *f, bool once) {
    mirror_state st;
    mirror_get_state(f->mirror, &st);
    link_stream ls;
    int rc = link_stream_info(f->link, &ls);
    if (rc == 0 && !ls.exists) rc = err_set(MMSB_ENOTFOUND, "there is no stream %s", link_subject(f->link) + 5);
    /* A cluster that just lost or regained a node may time out a consumer's
     * creation while it elects leaders: a few tries, a second apart. */
    uint64_t from = max_u64(st.stream_seq + 1, max_u64(ls.first_seq, 1));
    if (rc == 0) rc = link_subscribe(f->link, from);
    for (uint32_t tries = 1; rc == MMSB_EIO && tries < REPL_SUBSCRIBE_TRIES && !repl_stop_requested(); tries++) {
        repl_sleep_ms(1000);
        rc = link_subscribe(f->link, from);
    }
    uint64_t idle_ms = 0;
    while (rc == 0 && !repl_stop_requested()) {
        link_msg m;
        bool timed_out = false;
        rc = link_next(f->link, 100, &m, &timed_out);
        if (rc != 0) break;
        if (timed_out) {
            idle_ms += 100;
            rc = mirror_note(f->mirror); /* idle: the marker catches up */
            if (rc == 0 && once) rc = link_stream_info(f->link, &ls);
            if (rc == 0 && once && f->stream_last >= ls.last_seq && idle_ms >= 200) break;
            continue;
        }
        idle_ms = 0;
        rc = take(f, &m);
        link_msg_free(&m);
    }
    return rc;
}

static void follow_report(const follower *f, const mirror_state *sp, const char *dir, bool json) {
    mirror_state st = *sp;
    char chain[33];
    tool_h128_hex(st.chain, chain);
    if (json) {
        json_out j;
        json_begin(&j, stdout);
        json_str(&j, "command", "follow");
        json_str(&j, "dir", dir);
        json_u64(&j, "messages", f->messages);
        json_u64(&j, "messages_taken", f->taken);
        json_u64(&j, "groups_checked", st.groups_checked);
        json_u64(&j, "bytes_written", st.bytes_written);
        json_u64(&j, "last_commit_seq", st.last_commit_seq);
        json_u64(&j, "commits", st.commits);
        json_str(&j, "chain", chain);
        json_u64(&j, "stream_seq", st.stream_seq);
        json_u64(&j, "tail_cut_bytes", st.tail_cut_bytes);
        json_end(&j);
        return;
    }
    printf("mmsb follow %s: %llu messages (%llu new), %llu groups checked; the replica holds the log up to record "
           "%llu (%llu commits, chain %s), stream sequence %llu\n",
           dir, (unsigned long long)f->messages, (unsigned long long)f->taken, (unsigned long long)st.groups_checked,
           (unsigned long long)st.last_commit_seq, (unsigned long long)st.commits, chain,
           (unsigned long long)st.stream_seq);
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
    int rc = cli_parse("follow", FOLLOW_USAGE, argc, argv, opts, ARRAY_LEN(opts), 1, &a);
    if (rc != 0) return rc == CLI_HELP ? EXIT_CLEAN : rc;
    if (!server_seen || !stream_seen || !replica_stream_name_ok(stream)) {
        fprintf(stderr, "mmsb follow: --server and --stream are needed; a stream name is 1 .. %d of A-Z a-z 0-9 _ -"
                "\n\n%s", REPLICA_STREAM_MAX, FOLLOW_USAGE);
        return EXIT_USAGE;
    }
    follower f = {.last_note_ns = cli_now_ns()};
    const kern_ops *kern = NULL;
    rc = kern_select(MMSB_KERNEL_AUTO, &kern);
    if (rc == 0) rc = mirror_open(a.pos[0], stream, kern, &f.mirror);
    if (rc == 0) rc = link_open(server, stream, REPL_TIMEOUT_MS, &f.link);
    repl_signals_install();
    if (rc == 0) rc = follow_run(&f, once);
    if (rc != 0) cli_report("follow", rc);
    mirror_state st = {0};
    if (f.mirror != NULL) mirror_get_state(f.mirror, &st);
    int close_rc = mirror_close(f.mirror);
    if (close_rc != 0 && rc == 0) cli_report("follow", rc = close_rc);
    follow_report(&f, &st, a.pos[0], a.json);
    link_close(f.link);
    if (rc == 0) return EXIT_CLEAN;
    return rc == MMSB_ECORRUPT || rc == MMSB_EINVAL ? EXIT_PROBLEM : EXIT_USAGE;
}

/* ---- promote ---------------------------------------------------------------------- */

/* With a server: the replica must hold the stream's last group. */
static int promote_check(const char *dir, const char *server, const replica_marker *mk, bool force) {
    const kern_ops *kern = NULL;
    log_mirror *mirror = NULL;
    nats_link *link = NULL;
    int rc = kern_select(MMSB_KERNEL_AUTO, &kern);
    if (rc == 0) rc = mirror_open(dir, mk->stream, kern, &mirror);
    mirror_state st = {0};
    if (mirror != NULL) mirror_get_state(mirror, &st);
    if (rc == 0 && server != NULL) rc = link_open(server, mk->stream, REPL_TIMEOUT_MS, &link);
    link_stream ls;
    frame_meta last;
    uint64_t len = 0, seq = 0;
    bool found = false;
    if (link != NULL) rc = link_stream_info(link, &ls);
    if (link != NULL && rc == 0) rc = repl_last_group(link, &ls, &last, &len, &seq, &found);
    if (rc == 0 && found && !force &&
        (last.last_seq != st.last_commit_seq || last.chain.lo != st.chain.lo || last.chain.hi != st.chain.hi)) {
        rc = err_set(MMSB_EBUSY, "the replica holds the log up to record %llu, the stream up to %llu: run mmsb follow "
                     "--once first (or --force)", (unsigned long long)st.last_commit_seq,
                     (unsigned long long)last.last_seq);
    }
    link_close(link);
    int close_rc = mirror_close(mirror);
    return rc != 0 ? rc : close_rc;
}

static int promote(const char *dir, const char *server, bool force, mmsb_engineinfo *info) {
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) return err_set(MMSB_ENOTFOUND, "cannot open %s: %s", dir, strerror(errno));
    replica_marker mk;
    bool found = false;
    int rc = replica_marker_read(dir_fd, &mk, &found);
    if (rc == 0 && !found) rc = err_set(MMSB_EINVAL, "%s is not a replica (it has no REPLICA marker)", dir);
    if (rc == 0) rc = promote_check(dir, server, &mk, force);
    int lock_fd = rc == 0 ? openat(dir_fd, "LOCK", O_RDWR | O_CLOEXEC) : -1;
    if (rc == 0 && (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) != 0)) {
        rc = err_set(MMSB_EBUSY, "%s is in use (a follower runs on it)", dir);
    }
    if (rc == 0) rc = replica_marker_remove(dir_fd);
    if (lock_fd >= 0) close(lock_fd);
    close(dir_fd);
    mmsb_engine *e = NULL;
    mmsb_options o;
    MMSB_OPTIONS_INIT(&o);
    o.gpu = MMSB_GPU_OFF;
    if (rc == 0) rc = mmsb_open(dir, &o, &e);
    if (rc == 0) rc = mmsb_engine_info(e, info);
    int close_rc = e != NULL ? mmsb_close(e) : 0;
    return rc != 0 ? rc : close_rc;
}

int cmd_promote(int argc, char **argv) {
    const char *server = NULL;
    bool force = false;
    const cli_opt opts[] = {{"--server", OPT_TEXT, &server, NULL}, {"--force", OPT_FLAG, &force, NULL}};
    cli_args a;
    int rc = cli_parse("promote", PROMOTE_USAGE, argc, argv, opts, ARRAY_LEN(opts), 1, &a);
    if (rc != 0) return rc == CLI_HELP ? EXIT_CLEAN : rc;
    mmsb_engineinfo info = {.struct_size = sizeof info};
    rc = promote(a.pos[0], server, force, &info);
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
        json_end(&j);
    } else {
        printf("mmsb promote %s: the store holds the log up to record %llu (%llu pages); a writer opens it now\n",
               a.pos[0], (unsigned long long)info.commit_seq, (unsigned long long)info.pages_live);
    }
    return EXIT_CLEAN;
}
