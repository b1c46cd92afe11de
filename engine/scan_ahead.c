/*
 * scan_ahead.c - recovery's checking pass in a thread of its own (see
 * scan_ahead.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "scan_ahead.h"

/* Records the checking pass reads between two publications when the
 * applying pass is not waiting: a lock per this many records, not per
 * commit (a log of 64-byte changes holds two records per commit). */
enum { PUBLISH_EVERY_RECORDS = 4096 };

/* Room for `need` pairs in *pairs (doubling at least); false when memory
 * cannot be had (or the hook point "recovery-aborted-ranges" refuses it). */
static bool pairs_grow(const scan_ahead *s, uint64_t **pairs, uint64_t *cap, uint64_t need) {
    ASSERT(need > *cap);
    uint64_t want = need > 2 * *cap ? need : 2 * *cap;
    if (engine_point(s->e, "recovery-aborted-ranges") != 0) return false;
    uint64_t *grown = realloc(*pairs, 2 * want * sizeof *grown);
    if (grown == NULL) return false;
    *pairs = grown;
    *cap = want;
    return true;
}

/* Copies the cursor's aborted ranges the applying pass does not have yet,
 * then moves the boundary to the last commit checked. Under s->lock. */
static void publish_locked(scan_ahead *s, log_cursor *c) {
    ASSERT(s != NULL && c != NULL);
    const uint64_t *pairs;
    uint64_t count;
    cursor_aborted_view(c, &pairs, &count);
    ASSERT(count >= s->pair_count);
    if (count > s->pair_cap && s->pairs_rc == 0 && !pairs_grow(s, &s->pairs, &s->pair_cap, count)) {
        s->pairs_rc = MMSB_ENOMEM;
    }
    if (s->pairs_rc != 0) return; /* the boundary stays: nothing past it is applied */
    if (count > s->pair_count) {
        memcpy(s->pairs + 2 * s->pair_count, pairs + 2 * s->pair_count, 2 * (count - s->pair_count) * sizeof *pairs);
    }
    s->pair_count = count;
    uint64_t boundary = cursor_end(c)->last_commit_seq;
    if (boundary > s->boundary) s->boundary = boundary;
    ASSERT(s->pair_count <= s->pair_cap || s->pair_count == 0);
}

static void publish(scan_ahead *s, log_cursor *c) {
    pthread_mutex_lock(&s->lock);
    publish_locked(s, c);
    pthread_cond_signal(&s->moved);
    pthread_mutex_unlock(&s->lock);
}

/* A log whose first segments were removed cannot be replayed without the
 * checkpoint that covers them: nothing of it is published then (recovery
 * reports it once the pass is done, as it did before the passes overlapped). */
static bool may_apply(const scan_ahead *s, log_cursor *c) {
    return s->start != NULL || cursor_end(c)->first_seq == 1;
}

static int scan_records(scan_ahead *s, log_cursor *c) {
    ASSERT(s != NULL && c != NULL);
    uint64_t since = 0, published = 0;
    bool done = false;
    log_rec r;
    for (;;) {
        int rc = cursor_next(c, &r, &done);
        if (rc != 0 || done) return rc;
        if (!may_apply(s, c)) continue;
        uint64_t boundary = cursor_end(c)->last_commit_seq;
        bool asked = atomic_load_explicit(&s->waiting, memory_order_relaxed) && boundary > published;
        if (++since >= PUBLISH_EVERY_RECORDS || asked) {
            publish(s, c);
            published = boundary;
            since = 0;
        }
    }
}

static void *scan_main(void *arg) {
    scan_ahead *s = arg;
    mmsb_engine *e = s->e;
    uint32_t flags = CURSOR_VERIFY | ((e->opts.flags & MMSB_OPEN_SALVAGE) ? CURSOR_SALVAGE : 0);
    log_cursor *c = NULL;
    int rc = cursor_open_at(e->dir_fd, flags, e->kern, s->start, &c);
    if (rc == 0) rc = scan_records(s, c);
    if (rc != 0) snprintf(s->error, sizeof s->error, "%s", mmsb_last_error());
    pthread_mutex_lock(&s->lock);
    if (c != NULL) {
        if (rc == 0 && may_apply(s, c)) publish_locked(s, c); /* the last commit, and every range */
        s->end = *cursor_end(c);
        cursor_take_aborted(c, &s->aborted, &s->aborted_count);
        cursor_close(c);
    }
    s->rc = rc;
    s->done = true;
    pthread_cond_broadcast(&s->moved);
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int scan_ahead_start(scan_ahead *s, mmsb_engine *e, const cursor_start *start) {
    ASSERT(s != NULL && e != NULL);
    memset(s, 0, sizeof *s);
    s->e = e;
    s->start = start;
    s->boundary = start != NULL ? start->commit_seq : 0;
    atomic_init(&s->waiting, false);
    if (pthread_mutex_init(&s->lock, NULL) != 0) return err_set(MMSB_ENOMEM, "recovery: cannot make a lock");
    if (pthread_cond_init(&s->moved, NULL) != 0) {
        pthread_mutex_destroy(&s->lock);
        return err_set(MMSB_ENOMEM, "recovery: cannot make a condition variable");
    }
    s->threaded = engine_point(e, "recovery-scan-thread") == 0 && pthread_create(&s->thread, NULL, scan_main, s) == 0;
    if (!s->threaded) scan_main(s); /* no thread to be had: the checking pass first, as before */
    ASSERT(s->threaded || s->done);
    return 0;
}

static int take_pairs(scan_ahead *s, uint64_t **pairs, uint64_t *count, uint64_t *cap) {
    ASSERT(*count <= s->pair_count);
    if (s->pair_count > *cap && !pairs_grow(s, pairs, cap, s->pair_count)) {
        return err_set(MMSB_ENOMEM, "recovery: aborted ranges");
    }
    if (s->pair_count > *count) {
        memcpy(*pairs + 2 * *count, s->pairs + 2 * *count, 2 * (s->pair_count - *count) * sizeof **pairs);
    }
    *count = s->pair_count;
    return 0;
}

int scan_ahead_wait(scan_ahead *s, uint64_t applied, uint64_t *boundary_out, uint64_t **pairs,
                    uint64_t *pair_count, uint64_t *pair_cap) {
    ASSERT(s != NULL && boundary_out != NULL && pairs != NULL && pair_count != NULL && pair_cap != NULL);
    pthread_mutex_lock(&s->lock);
    while (!s->done && s->boundary <= applied) {
        atomic_store_explicit(&s->waiting, true, memory_order_relaxed);
        pthread_cond_wait(&s->moved, &s->lock);
    }
    atomic_store_explicit(&s->waiting, false, memory_order_relaxed);
    int rc = s->pairs_rc != 0 ? err_set(s->pairs_rc, "recovery: aborted ranges") : take_pairs(s, pairs, pair_count,
                                                                                          pair_cap);
    *boundary_out = s->boundary > applied ? s->boundary : applied;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int scan_ahead_finish(scan_ahead *s) {
    ASSERT(s != NULL);
    if (s->threaded) pthread_join(s->thread, NULL);
    ASSERT(s->done);
    pthread_cond_destroy(&s->moved);
    pthread_mutex_destroy(&s->lock);
    free(s->pairs);
    s->pairs = NULL;
    s->pair_count = s->pair_cap = 0;
    return s->rc != 0 ? err_set(s->rc, "%s", s->error) : 0;
}
