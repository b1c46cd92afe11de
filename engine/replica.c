/*
 * replica.c - the public follower and promotion (mmsb_replica_*,
 * mmsb_promote; README, "Replication"): a replica's log kept from a stream
 * through tlog/repl/mirror.h, and the step that makes it a writer's store.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "../tlog/repl/mirror.h"
#include "../tlog/repl/ship.h"
#include "engine.h"
#include "replay.h"
#include "role.h"
#include "state.h"

enum {
    REPLICA_TIMEOUT_MS = 5000,   /* a NATS request */
    SUBSCRIBE_TRIES = 10,        /* a consumer's creation while a cluster elects leaders */
    NOTE_EVERY_NS = 1000000000,  /* the marker's hint, at most once a second */
    POLL_BURST_NS = 1000000000,  /* a poll returns after this long even while messages come */
    STATE_WAIT_NS = 10000000000ull, /* a group waits this long for a reader's call on the pages to end */
    STATE_PAUSE_NS = 20000,
};

struct mmsb_replica {
    uint64_t magic;
    nats_link *link;
    log_mirror *mirror;
    mmsb_engine *state;          /* the replica's pages, following its log */
    bool subscribed;
    int refused;                 /* sticky: a message failed its checks */
    char refused_text[300];
    uint64_t messages, last_note_ns;
    uint64_t last_taken_publish_ns; /* the stream's time of the last message taken (wall clock, reporting only) */
};

#define REPLICA_MAGIC 0x4d4d5342524550ull /* "MMSBREP" */

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t wall_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

MMSB_API int mmsb_replica_open(const char *dir, const char *servers, const char *stream, mmsb_replica **replica_out) {
    return mmsb_replica_open_with(dir, servers, stream, NULL, replica_out);
}

MMSB_API int mmsb_replica_open_with(const char *dir, const char *servers, const char *stream,
                                    const mmsb_options *options, mmsb_replica **replica_out) {
    if (replica_out == NULL) return err_set(MMSB_EINVAL, "mmsb_replica_open: replica_out is NULL");
    *replica_out = NULL;
    if (dir == NULL || dir[0] == '\0' || servers == NULL || stream == NULL) {
        return err_set(MMSB_EINVAL, "mmsb_replica_open: dir, servers and stream are needed");
    }
    const kern_ops *kern = NULL;
    mmsb_replica *r = calloc(1, sizeof *r);
    if (r == NULL) return err_set(MMSB_ENOMEM, "mmsb_replica_open");
    r->magic = REPLICA_MAGIC;
    r->last_note_ns = mono_ns();
    int rc = kern_select(MMSB_KERNEL_AUTO, &kern);
    if (rc == 0) rc = mirror_open(dir, stream, kern, &r->mirror);
    if (rc == 0) rc = engine_open_follower(dir, options, &r->state); /* the log the mirror checked, replayed */
    if (rc == 0) rc = link_open(servers, stream, REPLICA_TIMEOUT_MS, &r->link);
    link_stream ls;
    if (rc == 0) rc = link_stream_info(r->link, &ls);
    if (rc == 0 && !ls.exists) rc = err_set(MMSB_ENOTFOUND, "mmsb_replica_open: there is no stream %s", stream);
    if (rc != 0) {
        mmsb_replica_close(r);
        return rc;
    }
    *replica_out = r;
    return 0;
}

static int replica_check(mmsb_replica *r, const char *fn) {
    if (r == NULL || r->magic != REPLICA_MAGIC) return err_set(MMSB_EINVAL, "%s: not a replica handle", fn);
    return 0;
}

/* From the message after the last one checked. */
static int subscribe(mmsb_replica *r) {
    mirror_state st;
    mirror_get_state(r->mirror, &st);
    link_stream ls;
    int rc = link_stream_info(r->link, &ls);
    if (rc != 0) return rc;
    uint64_t from = max_u64(st.stream_seq + 1, max_u64(ls.first_seq, 1));
    rc = link_subscribe(r->link, from);
    for (uint32_t tries = 1; rc == MMSB_EREPLICA && tries < SUBSCRIBE_TRIES; tries++) {
        struct timespec pause = {.tv_sec = 1};
        nanosleep(&pause, NULL);
        rc = link_subscribe(r->link, from);
    }
    r->subscribed = rc == 0;
    return rc;
}

/* The state takes the group the mirror just checked and synced. The
 * group's bytes are valid; a failure here is a state the log cannot make
 * (a primary's defect) or a limit of the replica's options: either way
 * the replica takes nothing more. */
static int apply_group(mmsb_replica *r) {
    mirror_group g;
    mirror_last_group(r->mirror, &g);
    /* A reader's call that takes the pages' role (a state root, the info)
     * is short: the group waits for it. */
    uint64_t until = mono_ns() + STATE_WAIT_NS;
    int rc = engine_enter(r->state, "mmsb_replica_poll");
    for (uint32_t n = 0; rc == MMSB_EBUSY && mono_ns() < until && n < UINT32_MAX; n++) {
        struct timespec pause = {.tv_nsec = STATE_PAUSE_NS};
        nanosleep(&pause, NULL);
        rc = engine_enter(r->state, "mmsb_replica_poll");
    }
    if (rc != 0) return rc;
    rc = engine_follow(r->state, g.from_genesis ? NULL : &g.from, g.to_seq, g.aborted, g.aborted_count);
    engine_leave(r->state);
    if (rc != 0) {
        return err_set(rc, "replica state: applying the group up to record %llu failed: %.200s",
                       (unsigned long long)g.to_seq, mmsb_last_error());
    }
    return 0;
}

static int take(mmsb_replica *r, const link_msg *m, uint64_t *taken) {
    frame_meta meta;
    int rc = frame_parse(m->values, m->len, &meta);
    bool took = false;
    mirror_state before;
    mirror_get_state(r->mirror, &before);
    if (rc == 0) rc = mirror_accept(r->mirror, &meta, m->data, m->len, m->stream_seq, &took);
    mirror_state after;
    mirror_get_state(r->mirror, &after);
    if (rc == 0 && after.groups_checked != before.groups_checked) rc = apply_group(r);
    if (rc != 0) {
        r->refused = rc;
        snprintf(r->refused_text, sizeof r->refused_text, "stream message %llu refused: %.240s",
                 (unsigned long long)m->stream_seq, mmsb_last_error());
        return err_set(rc, "%s", r->refused_text);
    }
    r->messages++;
    *taken += took;
    r->last_taken_publish_ns = m->publish_ns;
    uint64_t now = mono_ns();
    if (now - r->last_note_ns < NOTE_EVERY_NS) return 0;
    r->last_note_ns = now;
    return mirror_note(r->mirror);
}

MMSB_API int mmsb_replica_poll(mmsb_replica *replica, uint32_t timeout_ms, uint64_t *taken_out) {
    int rc = replica_check(replica, "mmsb_replica_poll");
    if (rc != 0) return rc;
    uint64_t taken = 0;
    if (replica->refused != 0) return err_set(replica->refused, "%s", replica->refused_text);
    if (!replica->subscribed) rc = subscribe(replica);
    uint64_t until = mono_ns() + POLL_BURST_NS;
    while (rc == 0 && mono_ns() < until) {
        link_msg m;
        bool timed_out = false;
        rc = link_next(replica->link, timeout_ms, &m, &timed_out);
        if (rc != 0 || timed_out) break;
        rc = take(replica, &m, &taken);
        link_msg_free(&m);
    }
    if (rc == 0 && taken == 0) rc = mirror_note(replica->mirror); /* idle: the hint catches up */
    if (taken_out != NULL) *taken_out = taken;
    return rc;
}

/* The replica info's size in 0.2.0, before lag_bytes: still taken. */
#define REPLICA_INFO_SIZE_V2 offsetof(mmsb_replica_info, lag_bytes)

MMSB_API int mmsb_replica_info_get(mmsb_replica *replica, mmsb_replica_info *info) {
    int rc = replica_check(replica, "mmsb_replica_info_get");
    if (rc != 0) return rc;
    if (info == NULL || info->struct_size < REPLICA_INFO_SIZE_V2) {
        return err_set(MMSB_EINVAL, "mmsb_replica_info_get: info is NULL or its struct_size is below %zu",
                       REPLICA_INFO_SIZE_V2);
    }
    mirror_state st;
    mirror_get_state(replica->mirror, &st);
    mmsb_replica_info out = {.struct_size = sizeof out};
    out.commit_seq = st.last_commit_seq;
    out.commits = st.commits;
    out.stream_seq = st.stream_seq;
    out.messages = replica->messages;
    out.groups = st.groups_checked;
    out.bytes_written = st.bytes_written;
    out.tail_cut_bytes = st.tail_cut_bytes;
    link_stream ls;
    rc = link_stream_info(replica->link, &ls);
    frame_meta last;
    uint64_t len = 0, seq = 0;
    bool found = false;
    if (rc == 0) rc = ship_last_group(replica->link, &ls, &last, &len, &seq, &found);
    if (rc == 0) {
        out.stream_last_seq = ls.last_seq;
        out.lag_records = found && last.last_seq > st.last_commit_seq ? last.last_seq - st.last_commit_seq : 0;
        log_point stream_end = {last.at.segment, last.at.offset + len};
        out.lag_bytes = found ? log_point_distance(st.valid, stream_end, st.segment_bytes) : 0;
        uint64_t now = wall_ns();
        bool behind = out.lag_records > 0 && replica->last_taken_publish_ns != 0;
        out.lag_ns = behind && now > replica->last_taken_publish_ns ? now - replica->last_taken_publish_ns : 0;
    }
    uint32_t size = info->struct_size;
    memcpy(info, &out, min_u64(size, sizeof out)); /* an older header's struct gets its fields */
    info->struct_size = size;
    return rc;
}

MMSB_API int mmsb_replica_engine(mmsb_replica *replica, mmsb_engine **engine_out) {
    int rc = replica_check(replica, "mmsb_replica_engine");
    if (rc != 0) return rc;
    if (engine_out == NULL) return err_set(MMSB_EINVAL, "mmsb_replica_engine: engine_out is NULL");
    ASSERT(replica->state != NULL && replica->state->follower);
    *engine_out = replica->state;
    return 0;
}

MMSB_API int mmsb_replica_close(mmsb_replica *replica) {
    if (replica == NULL) return 0;
    int rc = replica_check(replica, "mmsb_replica_close");
    if (rc != 0) return rc;
    engine_close_follower(replica->state); /* attached readers see it closed */
    rc = mirror_close(replica->mirror);
    link_close(replica->link);
    replica->magic = 0;
    free(replica);
    return rc;
}

/* ---- promotion ------------------------------------------------------------------------ */

/* With servers: the replica must hold the stream's last whole group. */
static int promote_check(const char *dir, const char *servers, const replica_marker *mk, bool force) {
    const kern_ops *kern = NULL;
    log_mirror *mirror = NULL;
    nats_link *link = NULL;
    int rc = kern_select(MMSB_KERNEL_AUTO, &kern);
    if (rc == 0) rc = mirror_open(dir, mk->stream, kern, &mirror); /* checks the log, cuts an unsynced tail */
    mirror_state st = {0};
    if (mirror != NULL) mirror_get_state(mirror, &st);
    if (rc == 0 && servers != NULL) rc = link_open(servers, mk->stream, REPLICA_TIMEOUT_MS, &link);
    link_stream ls;
    frame_meta last;
    uint64_t len = 0, seq = 0;
    bool found = false;
    if (link != NULL) rc = link_stream_info(link, &ls);
    if (link != NULL && rc == 0) rc = ship_last_group(link, &ls, &last, &len, &seq, &found);
    bool same = found && last.last_seq == st.last_commit_seq && last.chain.lo == st.chain.lo &&
                last.chain.hi == st.chain.hi;
    if (rc == 0 && found && !same && !force) {
        rc = err_set(MMSB_EBUSY, "mmsb_promote: the replica holds the log up to record %llu, the stream up to %llu: "
                     "follow it first (mmsb follow --once), or force", (unsigned long long)st.last_commit_seq,
                     (unsigned long long)last.last_seq);
    }
    link_close(link);
    int close_rc = mirror_close(mirror);
    return rc != 0 ? rc : close_rc;
}

/* Removes the marker under the store's lock: no follower may run meanwhile. */
static int unmark(const char *dir) {
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) return err_set(MMSB_ENOTFOUND, "mmsb_promote: cannot open %s: %s", dir, strerror(errno));
    int lock_fd = openat(dir_fd, "LOCK", O_RDWR | O_CLOEXEC);
    int rc = 0;
    if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = err_set(MMSB_EBUSY, "mmsb_promote: %s is in use (a follower or a writer runs on it)", dir);
    }
    if (rc == 0) rc = replica_marker_remove(dir_fd);
    if (lock_fd >= 0) close(lock_fd);
    close(dir_fd);
    return rc;
}

MMSB_API int mmsb_promote(const char *dir, const char *servers, uint32_t flags) {
    if (dir == NULL || dir[0] == '\0') return err_set(MMSB_EINVAL, "mmsb_promote: dir is NULL or empty");
    if (flags & ~MMSB_PROMOTE_FORCE) return err_set(MMSB_EINVAL, "mmsb_promote: unknown flags 0x%x", flags);
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) return err_set(MMSB_ENOTFOUND, "mmsb_promote: cannot open %s: %s", dir, strerror(errno));
    replica_marker mk;
    bool found = false;
    int rc = replica_marker_read(dir_fd, &mk, &found);
    close(dir_fd);
    if (rc == 0 && !found) rc = err_set(MMSB_EINVAL, "mmsb_promote: %s is not a replica (no REPLICA marker)", dir);
    if (rc == 0) rc = promote_check(dir, servers, &mk, (flags & MMSB_PROMOTE_FORCE) != 0);
    if (rc == 0) rc = unmark(dir);
    if (rc != 0) return rc;
    /* Opened once as a writer: recovery checks the log the writer will
     * continue (with a new generation) before the caller relies on it. */
    mmsb_options o;
    MMSB_OPTIONS_INIT(&o);
    o.flags = 0;
    o.gpu = MMSB_GPU_OFF;
    mmsb_engine *e = NULL;
    rc = mmsb_open(dir, &o, &e);
    if (rc == 0) rc = mmsb_close(e);
    return rc;
}
