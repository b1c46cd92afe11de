/*
 * replay.c - rebuilding an engine's state from its log at open.
 *
 * Pass 1 reads the whole log through the cursor, which checks every CRC,
 * chain value and record structure and decides how the log ends (FORMAT.md's
 * decision table). Pass 2 applies the records of every valid commit, in
 * order, and checks each recorded state root against the rebuilt state. At
 * open the two run at once: pass 1 in a thread of its own, pass 2 behind it,
 * applying a commit only once pass 1 has checked the whole of it
 * (scan_ahead.h); if pass 1 then finds the log damaged, what pass 2 applied
 * is thrown away as before. A
 * record that is valid on disk but impossible for the state (a delta to a
 * page that does not exist, a wrong epoch, a root that differs) is
 * corruption too. With MMSB_OPEN_SALVAGE such an error rebuilds the state
 * again up to the last commit before it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tlog/cursor.h"
#include "audit.h"
#include "checkpoint.h"
#include "derive.h"
#include "digest.h"
#include "engine.h"
#include "page.h"
#include "replay.h"
#include "scan_ahead.h"

typedef struct good_commit {
    uint64_t seq, commits, segment, end_offset;
    h128 chain;
} good_commit;

typedef struct replay_ctx {
    mmsb_engine *e;
    uint64_t limit_seq;       /* apply records up to this sequence number */
    const uint64_t *aborted;  /* (first, ABORT) sequence number pairs */
    uint64_t aborted_count;
    good_commit good;         /* the last commit applied and checked */
    replay_hook_fn hook;      /* or NULL */
    void *hook_ctx;
    uint64_t at_seq;          /* the record being applied */
} replay_ctx;

static int replay_create(replay_ctx *x, const log_rec *r) {
    ASSERT(r->type == REC_PAGE_CREATE && !x->e->cc.active);
    uint64_t id, size;
    uint32_t flags;
    int rc = rec_decode_create(r, &id, &size, &flags);
    if (rc != 0) return rc;
    uint64_t next = atomic_load(&x->e->page_id_next);
    if (id != next || !page_flags_valid(flags)) {
        return err_set(MMSB_ECORRUPT, "PAGE_CREATE seq %llu: page %llu with flags 0x%x, expected page %llu",
                       (unsigned long long)r->seq, (unsigned long long)id, flags, (unsigned long long)next);
    }
    page_alloc a;
    rc = page_prepare(x->e, size, "recovery", &a);
    if (rc != 0) return rc;
    page_publish(x->e, size, flags, &a);
    ASSERT(atomic_load(&x->e->page_id_next) == id + 1);
    return 0;
}

static int replay_free(replay_ctx *x, const log_rec *r) {
    ASSERT(r->type == REC_PAGE_FREE && !x->e->cc.active);
    uint64_t id;
    page_entry *pe;
    int rc = rec_decode_free(r, &id);
    if (rc == 0 && page_lookup(x->e, id, "recovery", &pe) != 0) {
        rc = err_set(MMSB_ECORRUPT, "PAGE_FREE seq %llu: page %llu does not exist",
                     (unsigned long long)r->seq, (unsigned long long)id);
    }
    if (rc == 0 && derive_page_freeing(x->e, id, true) != 0) {
        rc = err_set(MMSB_ECORRUPT, "PAGE_FREE seq %llu: page %llu still has derived pages",
                     (unsigned long long)r->seq, (unsigned long long)id);
    }
    if (rc == 0) {
        page_remove(x->e, id, pe);
        rc = derive_page_freeing(x->e, id, false);
        ASSERT(rc == 0); /* checked just above */
    }
    return rc;
}

/* A page's epoch rises once per commit: its first DELTA (or DERIVED) in a
 * commit carries the epoch one above the page's, every later one of the
 * same commit that same epoch; a DERIVED of the NONE form only moves the
 * signature (the page's epoch as it is). */
static int replay_bytes(replay_ctx *x, const log_rec *r, const rec_delta *d, const h128 *signature) {
    ASSERT(r->type == REC_DELTA || r->type == REC_DERIVED);
    ASSERT((r->type == REC_DERIVED) == (signature != NULL));
    page_entry *pe;
    uint32_t n = graph_node(&x->e->g, d->page_id);
    bool derived = n != 0 && graph_at(&x->e->g, n)->op != 0;
    if (page_lookup(x->e, d->page_id, "recovery", &pe) != 0 || d->offset > pe->size_bytes ||
        d->len > pe->size_bytes - d->offset || derived != (signature != NULL)) {
        return err_set(MMSB_ECORRUPT, "%s seq %llu: page %llu has no bytes %llu..%llu or is %sderived",
                       rec_type_name(r->type), (unsigned long long)r->seq, (unsigned long long)d->page_id,
                       (unsigned long long)d->offset, (unsigned long long)(d->offset + d->len),
                       derived ? "" : "not ");
    }
    bool none = d->form == DELTA_NONE;
    bool epoch_ok = none ? d->epoch == pe->epoch : d->epoch == touched_epoch(x->e, d->page_id, pe);
    int rc = none ? 0 : touched_prepare(x->e);
    if (rc != 0) return rc;
    if (!epoch_ok) {
        return err_set(MMSB_ECORRUPT, "%s seq %llu: page %llu is at epoch %llu, the record says %llu",
                       rec_type_name(r->type), (unsigned long long)r->seq, (unsigned long long)d->page_id,
                       (unsigned long long)pe->epoch, (unsigned long long)d->epoch);
    }
    if (signature != NULL) {
        graph_at(&x->e->g, n)->signature = *signature;
        ckpt_mark(x->e, d->page_id);
    }
    if (none) return 0;
    mmsb_delta sparse = {.page_id = d->page_id, .offset = d->offset, .len = d->len, .mask = d->mask,
                         .payload = d->bytes, .payload_len = d->bytes_len, .flags = MMSB_DELTA_SPARSE};
    bool full = d->form == DELTA_FULL;
    page_change_args a = {.kind = full ? PAGE_COPY : PAGE_APPLY, .offset = d->offset, .len = d->len,
                          .src = full ? d->bytes : NULL, .delta = full ? NULL : &sparse, .epoch = d->epoch};
    page_change(x->e, d->page_id, pe, &a);
    return 0;
}

static int replay_delta(replay_ctx *x, const log_rec *r) {
    ASSERT(r->length >= DELTA_FIXED_BYTES);
    ASSERT(r->type == REC_DELTA && x->e != NULL);
    rec_delta d;
    int rc = rec_decode_delta(r, x->e->kern, &d);
    return rc != 0 ? rc : replay_bytes(x, r, &d, NULL);
}

static int replay_derived(replay_ctx *x, const log_rec *r) {
    ASSERT(r->length >= DERIVED_FIXED_BYTES);
    ASSERT(r->type == REC_DERIVED && x->e != NULL);
    rec_derived d;
    int rc = rec_decode_derived(r, x->e->kern, &d);
    return rc != 0 ? rc : replay_bytes(x, r, &d.d, &d.signature);
}

static int replay_commit(replay_ctx *x, const log_rec *r, uint64_t segment) {
    ASSERT(r->type == REC_COMMIT && segment >= 1);
    ASSERT(x->e->touched.count == 0); /* replay_record reset it */
    rec_commit c;
    int rc = rec_decode_commit(r, &c);
    if (rc != 0) return rc;
    location_commit_end(x->e);
    if (c.flags & COMMIT_HAS_ROOT) {
        h128 root;
        digest_root(x->e, &root);
        if (root.lo != c.root.lo || root.hi != c.root.hi) {
            return err_set(MMSB_ECORRUPT,
                           "COMMIT seq %llu: replayed state root %016llx%016llx, the log recorded %016llx%016llx",
                           (unsigned long long)r->seq, (unsigned long long)root.hi,
                           (unsigned long long)root.lo, (unsigned long long)c.root.hi,
                           (unsigned long long)c.root.lo);
        }
    }
    x->good = (good_commit){.seq = r->seq, .commits = x->good.commits + 1, .segment = segment,
                            .end_offset = r->offset + rec_slot_bytes(r->length), .chain = c.chain};
    ASSERT(x->good.end_offset > SEG_HEADER_BYTES);
    return 0;
}

static int replay_record(replay_ctx *x, const log_rec *r, uint64_t segment) {
    ASSERT(r->seq == x->at_seq && r->seq <= x->limit_seq);
    switch (r->type) {
    case REC_PAGE_CREATE: return replay_create(x, r);
    case REC_PAGE_FREE: return replay_free(x, r);
    case REC_DELTA: return replay_delta(x, r);
    case REC_DERIVED: return replay_derived(x, r);
    case REC_DERIVE:
    case REC_UNDERIVE:
    case REC_EDGE_ADD:
    case REC_EDGE_REMOVE: return derive_replay(x->e, r);
    case REC_COMMIT:
        touched_reset(x->e); /* the next commit's changes bump epochs again */
        return replay_commit(x, r, segment);
    case REC_CHECKPOINT: /* between commits: a place to continue from */
        x->good.seq = r->seq;
        x->good.segment = segment;
        x->good.end_offset = r->offset + rec_slot_bytes(r->length);
        return 0;
    default: return 0; /* SEAL, ABORT, and types a reader may skip */
    }
}

/* One record of pass 2: read, counted, and applied unless aborted. */
static int replay_next(replay_ctx *x, log_cursor *c, bool *done) {
    log_rec r;
    int rc = cursor_next(c, &r, done);
    if (rc != 0 || *done) return rc;
    x->e->recovered.records++;
    if (seq_aborted(x->aborted, x->aborted_count, r.seq)) {
        /* The ABORT itself is a point between commits (a checkpoint may
         * cover it): the hook sees it, with the last commit's state. */
        bool point = r.type == REC_ABORT && x->hook != NULL;
        return point ? x->hook(x->hook_ctx, x->e, &r, cursor_segment(c)) : 0;
    }
    x->at_seq = r.seq;
    rc = replay_record(x, &r, cursor_segment(c));
    if (rc == 0 && x->hook != NULL) rc = x->hook(x->hook_ctx, x->e, &r, cursor_segment(c));
    return rc;
}

/* Pass 2: applies every record up to limit_seq. */
static int replay_pass(mmsb_engine *e, replay_ctx *x, const cursor_start *start) {
    ASSERT(x->e == e && x->limit_seq >= x->good.seq);
    log_cursor *c;
    int rc = cursor_open_at(e->dir_fd, 0, e->kern, start, &c);
    if (rc != 0) return rc;
    bool done = false;
    while (rc == 0 && !done && x->good.seq < x->limit_seq) rc = replay_next(x, c, &done);
    cursor_close(c);
    if (rc == 0 && x->good.seq != x->limit_seq) {
        rc = err_set(MMSB_ECORRUPT, "recovery: the log ended before commit %llu", (unsigned long long)x->limit_seq);
    }
    return rc;
}

/* Back to an empty engine, for a second replay with a lower limit. */
static int reset_state(mmsb_engine *e) {
    ASSERT(!e->cc.active && e->log == NULL);
    uint64_t next = atomic_load(&e->page_id_next);
    for (uint64_t id = 1; id < next; id++) {
        page_entry *pe = entry_of(e, id);
        if (pe->flags & PE_LIVE) page_remove(e, id, pe);
    }
    ASSERT(e->pages_live == 0);
    page_ids_forget(e);
    graph_close(&e->g);
    int rc = graph_open(&e->g, e->opts.pages_max);
    if (rc == 0) rc = graph_reserve(&e->g, next);
    if (rc != 0) return rc;
    memset(e->pages.base, 0, (next - 1) * sizeof(page_entry));
    touched_reset(e);
    atomic_store(&e->page_id_next, 1);
    digest_close(e);
    return digest_open(e);
}

/* Pass 1: how the log ends, and which commits were aborted; *limit is the
 * last commit (or checkpoint marker) at or before to_seq. */
static int scan_log_to(mmsb_engine *e, const cursor_start *start, uint64_t to_seq, log_end *end,
                       uint64_t **aborted, uint64_t *aborted_count, uint64_t *limit) {
    ASSERT(end != NULL && aborted != NULL && aborted_count != NULL && limit != NULL);
    uint32_t flags = CURSOR_VERIFY | ((e->opts.flags & MMSB_OPEN_SALVAGE) ? CURSOR_SALVAGE : 0);
    log_cursor *c;
    int rc = cursor_open_at(e->dir_fd, flags, e->kern, start, &c);
    if (rc != 0) return rc;
    bool done = false;
    log_rec r;
    *limit = start != NULL ? start->commit_seq : 0;
    while (rc == 0 && !done) {
        rc = cursor_next(c, &r, &done);
        bool boundary = rc == 0 && !done && (r.type == REC_COMMIT || r.type == REC_CHECKPOINT);
        if (boundary && r.seq <= to_seq) *limit = r.seq;
    }
    *end = *cursor_end(c);
    ASSERT(*limit <= to_seq || (start != NULL && *limit == start->commit_seq));
    cursor_take_aborted(c, aborted, aborted_count);
    cursor_close(c);
    return rc;
}

static int recover_from(mmsb_engine *e, const log_end *end_in, const cursor_start *start,
                        const uint64_t *aborted, uint64_t aborted_count, replay_ctx *x, int rc, log_resume *resume);
static void fill_resume(const log_end *end, const good_commit *g, log_resume *resume) {
    ASSERT(end != NULL && g != NULL && resume != NULL);
    ASSERT(g->segment >= 1 && g->end_offset >= SEG_HEADER_BYTES);
    *resume = (log_resume){
        .salt = end->salt,
        .generation = end->generation_max + 1,
        .next_seq = g->seq != 0 ? g->seq + 1 : end->resume_first_seq,
        .chain = g->chain,
        .commits = g->commits,
        .segment_no = g->segment,
        .offset = g->end_offset,
        .segment_files_last = end->segment_first + end->segment_files - 1,
    };
}

/* Pass 2 behind pass 1 (scan_ahead.h): applies records up to the last
 * commit pass 1 has checked, waiting for it when it gets there. */
static int replay_behind(mmsb_engine *e, replay_ctx *x, const cursor_start *start, scan_ahead *s) {
    ASSERT(x->e == e && x->limit_seq == UINT64_MAX && x->aborted == NULL);
    log_cursor *c;
    int rc = cursor_open_at(e->dir_fd, 0, e->kern, start, &c);
    if (rc != 0) return rc;
    uint64_t *pairs = NULL, pair_count = 0, pair_cap = 0, allowed = x->good.seq;
    bool done = false;
    while (rc == 0 && !done) {
        if (x->good.seq >= allowed) {
            rc = scan_ahead_wait(s, x->good.seq, &allowed, &pairs, &pair_count, &pair_cap);
            x->aborted = pairs;
            x->aborted_count = pair_count;
            if (rc != 0 || allowed <= x->good.seq) break; /* pass 1 is done, and so is this */
        }
        rc = replay_next(x, c, &done);
    }
    cursor_close(c);
    x->aborted = NULL; /* recover_from gives pass 1's own list */
    x->aborted_count = 0;
    free(pairs);
    return rc;
}

/* Replays the log from `start` (a checkpoint's position) or from genesis. */
static int recover_log(mmsb_engine *e, const cursor_start *start, log_resume *resume) {
    ASSERT(start == NULL || start->next_seq > start->commit_seq);
    ASSERT(resume != NULL && e->log == NULL);
    memset(&e->recovered, 0, sizeof e->recovered);
    scan_ahead s;
    int rc = scan_ahead_start(&s, e, start);
    if (rc != 0) return rc;
    replay_ctx x = {.e = e, .limit_seq = UINT64_MAX};
    if (start != NULL) {
        x.good = (good_commit){.seq = start->commit_seq, .commits = start->commits, .segment = start->segment,
                               .end_offset = start->offset, .chain = start->chain};
    }
    int applied_rc = replay_behind(e, &x, start, &s);
    rc = scan_ahead_finish(&s);
    if (rc == 0 && start == NULL && !s.end.empty && s.end.first_seq != 1) {
        rc = err_set(MMSB_ECORRUPT, "recovery: the log starts at record %llu (segments before it were removed after a "
                     "checkpoint), and there is no usable checkpoint", (unsigned long long)s.end.first_seq);
    }
    if (rc == 0) rc = recover_from(e, &s.end, start, s.aborted, s.aborted_count, &x, applied_rc, resume);
    free(s.aborted);
    return rc;
}

static cursor_start start_of(const ckpt_meta *m) {
    ASSERT(m->salt != 0 && m->generation >= 1);
    ASSERT(m->segment >= 1 && m->offset >= SEG_HEADER_BYTES && m->next_seq > m->commit_seq);
    return (cursor_start){.segment = m->segment, .offset = m->offset, .next_seq = m->next_seq,
                          .commit_seq = m->commit_seq, .commits = m->commits, .chain = m->chain,
                          .salt = m->salt, .generation = m->generation};
}

/* Open = the latest checkpoint + the log after it. When that fails (a
 * checkpoint that fails validation, a log position that cannot be followed,
 * a damaged suffix), the store is replayed from genesis if the whole log is
 * there. Only when that succeeds is the checkpoint set aside (it disagrees
 * with a good log); when the log is what is damaged, the checkpoint stays as
 * it is and the open fails naming both problems. */
int engine_recover(mmsb_engine *e, log_resume *resume) {
    ASSERT(resume != NULL && e->log == NULL && !e->cc.active);
    ckpt_meta m;
    bool found = false;
    int rc = checkpoint_load(e, &m, &found);
    if (rc == 0 && found) {
        cursor_start st = start_of(&m);
        rc = recover_log(e, &st, resume);
        if (rc == 0) {
            e->ck.loaded = true;
            e->ck.stream_pos = 0;
            return 0;
        }
    }
    if (rc == 0) return recover_log(e, NULL, resume); /* no checkpoint yet */
    char why[200];
    snprintf(why, sizeof why, "%s", mmsb_last_error());
    e->ck.have = false;
    rc = reset_state(e);
    if (rc == 0) rc = recover_log(e, NULL, resume);
    if (rc == 0 && found && e->recovered.records == 0) {
        return err_set(MMSB_ECORRUPT, "recovery: the checkpoint cannot be used (%s) and there is no log to replay",
                       why);
    }
    if (rc != 0) {
        char detail[300];
        snprintf(detail, sizeof detail, "%s", mmsb_last_error());
        return err_set(rc, "%.200s; the checkpoint could not be used either: %.200s", detail, why);
    }
    snprintf(e->ck.note, sizeof e->ck.note, "checkpoint not used: %.130s", why);
    return e->read_only ? 0 : checkpoint_discard(e); /* a reader changes no file */
}

/* Applies the log again from the start (the checkpoint, loaded again, or
 * genesis) up to limit: after a salvage cut, or when pass 2 got past the
 * end pass 1 settled on (which its boundaries rule out; kept as a net). */
static int replay_again(mmsb_engine *e, const cursor_start *start, const good_commit *first, const uint64_t *aborted,
                        uint64_t aborted_count, uint64_t limit, replay_ctx *x) {
    ASSERT(limit >= first->seq);
    e->recovered.records = 0;
    int rc = reset_state(e);
    if (rc == 0 && start != NULL) { /* the same checkpoint again, then the log to `limit` */
        ckpt_meta m;
        bool found;
        rc = checkpoint_load(e, &m, &found);
        if (rc == 0 && (!found || m.commit_seq != start->commit_seq))
            rc = err_set(MMSB_EIO, "recovery: the checkpoint changed during salvage");
    }
    *x = (replay_ctx){.e = e, .limit_seq = limit, .good = *first, .aborted = aborted, .aborted_count = aborted_count};
    if (rc == 0 && limit > first->seq) rc = replay_pass(e, x, start);
    return rc;
}

/* What pass 2 left (x, and its rc), judged against how pass 1 says the log
 * ends; salvage when asked; where the writer continues. */
static int recover_from(mmsb_engine *e, const log_end *end_in, const cursor_start *start,
                        const uint64_t *aborted, uint64_t aborted_count, replay_ctx *x, int rc, log_resume *resume) {
    ASSERT(end_in != NULL && resume != NULL && x != NULL);
    ASSERT(aborted != NULL || aborted_count == 0);
    log_end end = *end_in;
    e->recovered.dropped_records = end.dropped_records;
    e->recovered.dropped_bytes = end.dropped_bytes;
    e->recovered.flags = (end.torn ? MMSB_RECOVERED_TORN : 0) | (end.salvaged ? MMSB_RECOVERED_SALVAGED : 0);
    snprintf(e->recovered.detail, sizeof e->recovered.detail, "%s",
             end.empty ? "new store" : end.detail[0] ? end.detail : "clean end");
    if (end.empty) {
        if (rc != 0) return rc;
        ASSERT(e->recovered.records == 0);
        *resume = (log_resume){.new_store = true, .segment_no = 1, .next_seq = 1};
        if (end.segment_files > 0) resume->segment_files_last = end.segment_first + end.segment_files - 1;
        return 0;
    }
    if (end.generation_max == UINT32_MAX) return err_set(MMSB_ENOSPC, "recovery: log generations exhausted");
    /* Without a commit, continue at the start of the first segment. */
    good_commit first = {.segment = end.resume_segment, .end_offset = end.resume_offset, .chain = end.chain};
    if (start != NULL) {
        first = (good_commit){.seq = start->commit_seq, .commits = start->commits, .segment = start->segment,
                              .end_offset = start->offset, .chain = start->chain};
    } else {
        /* Pass 2 began before pass 1 knew these: what no applied record set comes from the end. */
        if (x->good.commits == 0) x->good.chain = end.chain;
        if (x->good.seq == 0) x->good = first;
    }
    if (rc == 0 && x->good.seq > end.last_commit_seq) {
        rc = replay_again(e, start, &first, aborted, aborted_count, end.last_commit_seq, x);
    }
    if (rc == 0 && x->good.seq != end.last_commit_seq) {
        rc = err_set(MMSB_ECORRUPT, "recovery: the log ended before commit %llu",
                     (unsigned long long)end.last_commit_seq);
    }
    if (rc != 0 && (e->opts.flags & MMSB_OPEN_SALVAGE)) {
        good_commit keep = x->good;
        snprintf(e->recovered.detail, sizeof e->recovered.detail, "salvaged: %.200s", mmsb_last_error());
        e->recovered.flags |= MMSB_RECOVERED_SALVAGED;
        e->recovered.dropped_records += end.last_seq - keep.seq;
        rc = replay_again(e, start, &first, aborted, aborted_count, keep.seq, x);
    }
    if (rc != 0) return rc;
    e->recovered.commits = x->good.commits;
    fill_resume(&end, &x->good, resume);
    ASSERT(resume->next_seq >= 1 && resume->generation > end.generation_max);
    if (x->good.seq == 0) resume->next_seq = end.resume_first_seq;
    resume->cut_tail = (e->recovered.flags & MMSB_RECOVERED_SALVAGED) != 0;
    return 0;
}

/* ---- reading without writing ------------------------------------------------------- */

enum { READONLY_ATTEMPTS_MAX = 8 };

/* The number of the checkpoint a writer has stored now (0: none), opening
 * the checkpoint store when a writer created it since. */
static uint64_t checkpoint_number_now(mmsb_engine *e) {
    ASSERT(e->log == NULL);
    ASSERT(e->read_only && e->dir != NULL);
    if (e->ck.store == NULL) {
        if (ckpt_open(e->dir, true, e->opts.checkpoint_map_bytes, e->opts.checkpoint_readers, &e->ck.store) != 0) {
            return 0;
        }
        e->ck.damage = 0; /* a writer replaced a damaged one */
    }
    ckpt_meta m;
    bool found = false;
    int rc = ckpt_read_begin(e->ck.store, &m, &found);
    ckpt_read_end(e->ck.store);
    return rc == 0 && found ? m.number : 0;
}

/* A writer may write a new checkpoint and remove the log segments the one
 * being read needed; then nothing read so far is wrong, only outdated, and
 * the reader starts over from the new checkpoint. */
int engine_recover_readonly(mmsb_engine *e) {
    ASSERT(!e->cc.active);
    ASSERT(e->read_only && e->log == NULL);
    int rc = 0;
    for (uint32_t attempt = 0; attempt < READONLY_ATTEMPTS_MAX; attempt++) {
        uint64_t number = checkpoint_number_now(e);
        log_resume resume;
        rc = engine_recover(e, &resume);
        if (rc == 0) {
            e->read_commit_seq = resume.new_store ? 0 : resume.next_seq - 1;
            e->read_commits = resume.new_store ? 0 : resume.commits;
            e->read_chain = resume.new_store ? (h128){0} : resume.chain;
            checkpoint_retain(e);
            return 0;
        }
        if (checkpoint_number_now(e) == number) return rc;
        char why[200];
        snprintf(why, sizeof why, "%s", mmsb_last_error());
        e->ck.have = false;
        e->ck.note[0] = '\0';
        int reset_rc = reset_state(e);
        if (reset_rc != 0) return reset_rc;
        err_set(rc, "%s", why);
    }
    return err_set(rc, "mmsb_open: the writer replaced the checkpoint %u times while this read-only open read it; "
                   "last problem: %.200s", READONLY_ATTEMPTS_MAX, mmsb_last_error());
}

int engine_follow(mmsb_engine *e, const cursor_start *from, uint64_t to_seq, const uint64_t *aborted,
                  uint64_t aborted_count) {
    ASSERT(e->follower && e->read_only && e->log == NULL && !e->cc.active);
    ASSERT(from == NULL || (from->commit_seq == e->read_commit_seq && to_seq > from->commit_seq));
    ASSERT(from != NULL || e->read_commit_seq == 0);
    good_commit first = {0};
    if (from != NULL) first = (good_commit){.seq = from->commit_seq, .commits = from->commits};
    replay_ctx x = {.e = e, .limit_seq = to_seq, .good = first, .aborted = aborted, .aborted_count = aborted_count};
    int rc = replay_pass(e, &x, from);
    if (rc == 0) e->read_commit_seq = x.good.seq;
    ASSERT(rc != 0 || e->read_commit_seq == to_seq);
    return rc;
}

int engine_replay(mmsb_engine *e, const replay_plan *plan, replay_result *out) {
    ASSERT(e->read_only && e->log == NULL && plan != NULL && out != NULL);
    ASSERT(atomic_load(&e->page_id_next) == 1); /* a bare engine, still empty */
    memset(out, 0, sizeof *out);
    memset(&e->recovered, 0, sizeof e->recovered);
    cursor_start st;
    const cursor_start *start = NULL;
    if (plan->from_checkpoint) {
        bool found = false;
        int rc = checkpoint_load(e, &out->checkpoint, &found);
        if (rc != 0) return rc;
        if (!found) return err_set(MMSB_ENOTFOUND, "replay: the store has no checkpoint");
        if (out->checkpoint.commit_seq > plan->to_seq) {
            return err_set(MMSB_EINVAL, "replay: the checkpoint holds the state after record %llu, past %llu; "
                           "replay from genesis", (unsigned long long)out->checkpoint.commit_seq,
                           (unsigned long long)plan->to_seq);
        }
        st = start_of(&out->checkpoint);
        start = &st;
    }
    uint64_t *aborted = NULL, aborted_count = 0, limit = 0;
    int rc = scan_log_to(e, start, plan->to_seq, &out->end, &aborted, &aborted_count, &limit);
    if (rc == 0 && start == NULL && !out->end.empty && out->end.first_seq != 1) {
        rc = err_set(MMSB_ENOTFOUND, "replay: the log starts at record %llu (the segments before it were removed "
                     "after a checkpoint; keep them with MMSB_OPEN_KEEP_LOG), so it cannot be replayed from genesis",
                     (unsigned long long)out->end.first_seq);
    }
    good_commit first = {0};
    if (start != NULL) first = (good_commit){.seq = start->commit_seq, .commits = start->commits};
    replay_ctx x = {.e = e, .limit_seq = limit, .good = first, .aborted = aborted, .aborted_count = aborted_count,
                    .hook = plan->hook, .hook_ctx = plan->ctx};
    if (rc == 0 && limit > first.seq) rc = replay_pass(e, &x, start);
    free(aborted);
    out->commit_seq = x.good.seq;
    out->failed_seq = rc != 0 ? x.at_seq : 0;
    out->commits = x.good.commits;
    out->records = e->recovered.records;
    e->read_commit_seq = x.good.seq;
    ASSERT(rc != 0 || out->commit_seq == limit || limit <= first.seq);
    return rc;
}
