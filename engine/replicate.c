/*
 * replicate.c - the writer's own shipper (see replicate.h and README,
 * "Replication").
 *
 * Commits never wait for the stream: as in GROUP durability a commit
 * returns once appended, and its acknowledgement is mmsb_wait_replicated.
 * A thread publishes: it waits until commits are durable here (one sync
 * covers every commit before it), then ships them as one group, so many
 * commits share one publish round trip. The stream's expected last
 * sequence fences this writer once another one published: then the log is
 * failed with MMSB_EFENCED and every writing call reports it. A stream
 * that does not answer (no quorum, servers down) fails the waits that
 * began before the failure with MMSB_EREPLICA; the thread tries again, and
 * the same commits ship once the stream answers.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../tlog/repl/mirror.h"
#include "../tlog/repl/ship.h"
#include "replicate.h"

enum {
    IDLE_WAIT_US = 1000,     /* the thread's look at the log when there is nothing to ship */
    RETRY_WAIT_MS = 100,     /* after a failed round */
    TIMEOUT_MS_MAX = 600000,
};

struct replicator {
    nats_link *link;
    shipper *ship;
    uint64_t timeout_ms;
    char stream[REPLICA_STREAM_MAX + 1];
    pthread_t thread;
    bool thread_on;
    pthread_mutex_t mu;
    pthread_cond_t cv;       /* the thread and the waiters wake each other */
    bool stop;
    _Atomic uint64_t replicated_seq;
    _Atomic uint64_t floor_segment;
    uint64_t tried_committed; /* a round at this committed seq shipped nothing: wait for more */
    uint64_t error_gen;      /* rounds that failed, ever */
    int error;               /* the last round's failure; 0 after a success */
    int fenced;              /* sticky */
    char error_text[240];
    ship_stats st;
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct timespec at_ns(uint64_t ns) {
    return (struct timespec){.tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull)};
}

int replicate_options_check(const mmsb_options *o) {
    ASSERT(o != NULL);
    bool servers = o->replication_servers != NULL, stream = o->replication_stream != NULL;
    if (o->reserved3 != 0) return err_set(MMSB_EINVAL, "mmsb_open: reserved3 is %u, must be 0", o->reserved3);
    if (servers != stream) {
        return err_set(MMSB_EINVAL, "mmsb_open: replication needs both replication_servers and replication_stream");
    }
    if (!servers && o->durability == MMSB_DURABILITY_REPLICATED) {
        return err_set(MMSB_EINVAL, "mmsb_open: MMSB_DURABILITY_REPLICATED needs replication_servers and "
                       "replication_stream");
    }
    if (!servers) return 0;
    if (o->flags & MMSB_OPEN_READONLY) {
        return err_set(MMSB_EINVAL, "mmsb_open: a read-only engine publishes nothing: replication is for writers");
    }
    if (!replica_stream_name_ok(o->replication_stream)) {
        return err_set(MMSB_EINVAL, "mmsb_open: replication_stream must be 1 .. %d of A-Z a-z 0-9 _ -",
                       REPLICA_STREAM_MAX);
    }
    if (o->replication_servers[0] == '\0' || strlen(o->replication_servers) > 255) {
        return err_set(MMSB_EINVAL, "mmsb_open: replication_servers must be 1 .. 255 characters");
    }
    if (o->replication_timeout_ms == 0 || o->replication_timeout_ms > TIMEOUT_MS_MAX) {
        return err_set(MMSB_EINVAL, "mmsb_open: replication_timeout_ms %llu outside 1 .. %d",
                       (unsigned long long)o->replication_timeout_ms, TIMEOUT_MS_MAX);
    }
    if (o->replication_create > 5) {
        return err_set(MMSB_EINVAL, "mmsb_open: replication_create %u outside 0 .. 5", o->replication_create);
    }
    return 0;
}

/* ---- the thread ----------------------------------------------------------------- */

/* One round, mu not held: what is durable here goes to the stream. What
 * is durable already ships at once, while the log syncs what follows (the
 * group window), so syncing and publishing overlap; only when nothing new
 * is durable does the round wait for a sync of everything committed. */
static int round_once(mmsb_engine *e, replicator *r, uint64_t committed, bool *shipped) {
    *shipped = false;
    uint64_t target = log_durable_seq(e->log);
    int rc = 0;
    if (target <= atomic_load(&r->replicated_seq)) {
        rc = log_wait_durable(e->log, committed);
        target = committed;
    }
    ASSERT(target <= committed);
    if (rc == 0) rc = shipper_round(r->ship, target, shipped);
    return rc;
}

static void round_done(mmsb_engine *e, replicator *r, int rc, uint64_t committed, bool shipped) {
    ASSERT(r != NULL);
    if (rc == 0) {
        shipper_get_stats(r->ship, &r->st);
        atomic_store(&r->replicated_seq, r->st.shipped_seq);
        atomic_store(&r->floor_segment, r->st.at_segment);
        r->error = 0;
        r->tried_committed = shipped ? 0 : committed;
    } else {
        r->error = rc;
        r->error_gen++;
        snprintf(r->error_text, sizeof r->error_text, "%s", mmsb_last_error());
        if (rc == MMSB_EFENCED) {
            r->fenced = rc;
            log_fail(e->log, MMSB_EFENCED, r->error_text);
        }
    }
    pthread_cond_broadcast(&r->cv);
}

static void wait_for(replicator *r, uint64_t us) {
    struct timespec ts = at_ns(now_ns() + us * 1000);
    pthread_cond_timedwait(&r->cv, &r->mu, &ts);
}

static void *replicate_thread(void *arg) {
    mmsb_engine *e = arg;
    replicator *r = e->repl;
    pthread_mutex_lock(&r->mu);
    while (!r->stop && !r->fenced) {
        uint64_t committed = log_committed_seq(e->log);
        bool pending = committed > atomic_load(&r->replicated_seq) && committed != r->tried_committed;
        if (!pending || log_failed(e->log) != 0) {
            wait_for(r, IDLE_WAIT_US);
            continue;
        }
        pthread_mutex_unlock(&r->mu);
        bool shipped = false;
        int rc = round_once(e, r, committed, &shipped);
        pthread_mutex_lock(&r->mu);
        round_done(e, r, rc, committed, shipped);
        if (rc != 0 && !r->stop) wait_for(r, RETRY_WAIT_MS * 1000);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* ---- open and close --------------------------------------------------------------- */

static void replicator_free(replicator *r) {
    if (r == NULL) return;
    shipper_close(r->ship);
    link_close(r->link);
    free(r);
}

int replicate_open(mmsb_engine *e) {
    ASSERT(e != NULL && e->repl == NULL);
    const mmsb_options *o = &e->opts;
    if (o->replication_servers == NULL) return 0;
    ASSERT(!e->read_only && e->log != NULL);
    replicator *r = calloc(1, sizeof *r);
    if (r == NULL) return err_set(MMSB_ENOMEM, "mmsb_open: replication");
    r->timeout_ms = o->replication_timeout_ms;
    snprintf(r->stream, sizeof r->stream, "%s", o->replication_stream);
    uint64_t covered = e->ck.have ? e->ck.last.segment : 0;
    int rc = link_open(o->replication_servers, o->replication_stream, r->timeout_ms, &r->link);
    if (rc == 0) {
        rc = shipper_open(e->dir_fd, e->kern, covered, r->link, o->replication_create > 0,
                          o->replication_create > 0 ? (int64_t)o->replication_create : 1, &r->ship);
    }
    if (rc != 0) {
        char why[300];
        snprintf(why, sizeof why, "%s", mmsb_last_error());
        replicator_free(r);
        return err_set(rc, "mmsb_open: replication to stream %s: %s", o->replication_stream, why);
    }
    shipper_set_sync(r->ship, false); /* the thread waits for the log's own sync */
    shipper_get_stats(r->ship, &r->st);
    atomic_init(&r->replicated_seq, r->st.shipped_seq);
    atomic_init(&r->floor_segment, r->st.at_segment);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&r->mu, NULL);
    e->repl = r;
    if (pthread_create(&r->thread, NULL, replicate_thread, e) != 0) {
        e->repl = NULL;
        pthread_cond_destroy(&r->cv);
        pthread_mutex_destroy(&r->mu);
        replicator_free(r);
        return err_set(MMSB_ENOMEM, "mmsb_open: cannot start the replication thread");
    }
    r->thread_on = true;
    return 0;
}

void replicate_close(mmsb_engine *e) {
    replicator *r = e->repl;
    if (r == NULL) return;
    /* What is committed ships now, if the stream answers in time: the next
     * open (or mmsb ship) ships whatever does not. */
    if (e->log != NULL && log_failed(e->log) == 0) {
        uint64_t committed = log_committed_seq(e->log);
        uint64_t deadline = now_ns() + r->timeout_ms * 1000000ull;
        pthread_mutex_lock(&r->mu);
        uint64_t gen = r->error_gen;
        while (atomic_load(&r->replicated_seq) < committed && r->error_gen == gen && !r->fenced &&
               committed != r->tried_committed && now_ns() < deadline) {
            struct timespec ts = at_ns(deadline);
            pthread_cond_timedwait(&r->cv, &r->mu, &ts);
        }
        pthread_mutex_unlock(&r->mu);
    }
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (r->thread_on) pthread_join(r->thread, NULL);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    e->repl = NULL;
    replicator_free(r);
}

/* ---- what callers see -------------------------------------------------------------- */

uint64_t replicate_segment_floor(const mmsb_engine *e) {
    if (e->repl == NULL) return 0;
    uint64_t floor = atomic_load(&e->repl->floor_segment);
    return floor == 0 ? 1 : floor; /* nothing shipped yet: every segment is needed */
}

int replicate_wait(mmsb_engine *e, uint64_t commit_seq) {
    replicator *r = e->repl;
    ASSERT(r != NULL && e->log != NULL);
    int rc = log_wait_durable(e->log, commit_seq);
    if (rc != 0) return rc;
    uint64_t deadline = now_ns() + r->timeout_ms * 1000000ull;
    pthread_mutex_lock(&r->mu);
    uint64_t gen = r->error_gen;
    while (rc == 0 && atomic_load(&r->replicated_seq) < commit_seq) {
        if (r->fenced) {
            rc = err_set(MMSB_EFENCED, "mmsb_wait_replicated: %s", r->error_text);
        } else if (r->error_gen != gen) {
            rc = err_set(r->error, "mmsb_wait_replicated: commit %llu is not in the stream: %s",
                         (unsigned long long)commit_seq, r->error_text);
        } else if (now_ns() >= deadline) {
            rc = err_set(MMSB_EREPLICA, "mmsb_wait_replicated: the stream %s did not store commit %llu within "
                         "%llu ms%s%s", r->stream, (unsigned long long)commit_seq,
                         (unsigned long long)r->timeout_ms, r->error != 0 ? "; last problem: " : "",
                         r->error != 0 ? r->error_text : "");
        } else {
            pthread_cond_broadcast(&r->cv);
            struct timespec ts = at_ns(min_u64(deadline, now_ns() + 10 * 1000000ull));
            pthread_cond_timedwait(&r->cv, &r->mu, &ts);
        }
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

void replicate_info(const mmsb_engine *e, mmsb_engineinfo *out) {
    replicator *r = e->repl;
    if (r == NULL) {
        snprintf(out->replication, sizeof out->replication, "off");
        return;
    }
    pthread_mutex_lock(&r->mu);
    uint64_t replicated = atomic_load(&r->replicated_seq);
    uint64_t committed = e->log != NULL ? log_committed_seq(e->log) : replicated;
    out->replicated_seq = replicated;
    out->replication_lag_records = committed > replicated ? committed - replicated : 0;
    out->replication_messages = r->st.messages;
    out->replication_bytes = r->st.bytes;
    if (e->log != NULL) {
        log_pos pos;
        log_position(e->log, &pos);
        log_point shipped = {r->st.at_segment, r->st.at_offset}, end = {pos.segment, pos.offset};
        if (r->st.at_segment == 0) shipped = (log_point){1, 0}; /* nothing shipped: the whole log */
        out->replication_lag_bytes = log_point_distance(shipped, end, e->opts.segment_bytes);
    }
    if (r->fenced || r->error != 0) {
        snprintf(out->replication, sizeof out->replication, "stream %s: %s: %.100s", r->stream,
                 r->fenced ? "fenced" : "failing", r->error_text);
    } else {
        snprintf(out->replication, sizeof out->replication, "stream %s: holds the log up to record %llu",
                 r->stream, (unsigned long long)replicated);
    }
    pthread_mutex_unlock(&r->mu);
}
