/*
 * commit.c - the commit every writing call builds.
 *
 * The path of one change, top to bottom: the call validates everything
 * (change.c, txn.c, derive.c), logs the change's records and applies them
 * (page_change), then commit_finish propagates to derived pages, appends
 * the COMMIT, waits for the durability asked for and delivers the events;
 * the API layer then runs the checkpoint policy (role.c). The only failure
 * after the first record that is not an I/O error is a user operation
 * failing during propagation: the journal (kept whenever user operations
 * exist) restores every page, and an ABORT record voids the commit's
 * records in the log.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commit.h"
#include "digest.h"
#include "events.h"
#include "journal.h"
#include "page.h"
#include "propagate.h"

enum { JOURNAL_BYTES_MIN = 1 << 20 };

int commit_open(mmsb_engine *e) {
    ASSERT(e->opts.commit_bytes_max >= 1);
    ASSERT(e->cc.journal.base == NULL && !e->cc.active);
    uint64_t journal = max_u64(e->opts.commit_bytes_max, JOURNAL_BYTES_MIN);
    int rc = vmap_open(&e->cc.journal, NULL, journal, 1 << 20);
    if (rc == 0) rc = touched_open(e);
    if (rc == 0)
        rc = vmap_open(&e->cc.events, NULL, (uint64_t)MMSB_EVENTS_PER_COMMIT_MAX * sizeof(mmsb_event), 64 * 1024);
    if (rc == 0) rc = vmap_open(&e->op_out, NULL, e->opts.page_bytes_max, 1 << 20);
    ASSERT(rc != 0 || e->cc.journal.bytes_max >= JOURNAL_BYTES_MIN);
    return rc;
}

void commit_close(mmsb_engine *e) {
    ASSERT(e->touched.count == 0);
    ASSERT(!e->cc.active);
    vmap_close(&e->cc.journal);
    touched_close(e);
    vmap_close(&e->cc.events);
    vmap_close(&e->op_out);
    free(e->cc.changed);
    free(e->cc.include);
    e->cc.changed = e->cc.include = NULL;
    ASSERT(e->cc.journal.base == NULL);
}

void commit_begin(mmsb_engine *e) {
    commit_ctx *c = &e->cc;
    ASSERT(!c->active);
    ASSERT(e->touched.count == 0 && c->journal_used == 0);
    c->active = true;
    c->gen++;
    c->journaling = e->g.user_op_pages > 0;
    c->journal_lost = false;
    c->changed_count = c->include_count = 0;
    c->event_count = 0;
    c->events_lost = false;
    c->res = (mmsb_commit_result){.struct_size = sizeof c->res};
}

/* Restores every journaled page and signature, newest first. */
static void rollback(mmsb_engine *e) {
    commit_ctx *c = &e->cc;
    ASSERT(c->rolling_back && c->journaling && !c->journal_lost);
    journal_entry j;
    while (journal_pop(e, &j)) {
        if (j.len == 0) {
            graph_at(&e->g, graph_node(&e->g, j.page_id))->signature = j.old_signature;
            ckpt_mark(e, j.page_id);
            continue;
        }
        page_change_args undo = {.kind = PAGE_UNDO, .offset = j.offset, .len = j.len, .src = j.old_bytes,
                                 .epoch = j.old_epoch};
        page_change(e, j.page_id, entry_of(e, j.page_id), &undo);
    }
    ASSERT(c->journal_used == 0);
}

/* Undoes a commit that cannot finish: the pages from the journal, the
 * records with an ABORT. Without a journal (none was kept, or it overflowed)
 * nothing can be restored, and the engine refuses writes until it is
 * reopened. The caller's error detail (the cause) stays what it reports. */
void commit_abandon(mmsb_engine *e, int rc) {
    ASSERT(!e->cc.rolling_back);
    commit_ctx *c = &e->cc;
    ASSERT(c->active && rc < 0);
    bool rollable = journal_complete(e); /* while the commit is still active */
    c->active = false;
    touched_reset(e);
    bool rolled = false;
    if (log_pending(e->log) && rollable) {
        c->rolling_back = true;
        rollback(e);
        c->rolling_back = false;
        if (log_abort(e->log) == 0) e->sum.aborts++;
        rolled = true;
    }
    c->journal_used = 0;
    location_commit_end(e);
    if (rolled || !log_pending(e->log)) return;
    char cause[400];
    snprintf(cause, sizeof cause, "%s", mmsb_last_error());
    if (log_failed(e->log) == 0) { /* an I/O error already made the log fail, saying why */
        char why[600];
        snprintf(why, sizeof why, "a commit failed halfway (%.300s) and could not be rolled back%s; reopen the store",
                 cause, c->journal_lost ? " (it changed more than commit_bytes_max)" : "");
        log_fail(e->log, rc, why);
    }
    err_set(rc, "%s; the commit's pages may show its changes until the store is reopened (the log has none of them)",
            cause);
    ASSERT(log_failed(e->log) != 0); /* no later commit builds on what stayed */
}

static int append_commit(mmsb_engine *e, uint32_t durability, uint64_t *seq_out) {
    ASSERT(!e->cc.active && log_pending(e->log));
    ASSERT(e->opts.root_every_commits >= 1);
    h128 root;
    bool with_root = (log_commits(e->log) + 1) % e->opts.root_every_commits == 0;
    if (with_root) digest_root(e, &root);
    /* REPLICATED is GROUP on the local disk; the replication thread ships it. */
    uint32_t local = durability == MMSB_DURABILITY_REPLICATED ? MMSB_DURABILITY_GROUP : durability;
    return log_commit(e->log, with_root ? &root : NULL, local, seq_out);
}

int commit_finish(mmsb_engine *e, uint32_t durability, uint64_t *seq_out) {
    commit_ctx *c = &e->cc;
    ASSERT(c->active);
    ASSERT(durability <= MMSB_DURABILITY_REPLICATED);
    *seq_out = 0;
    int rc = propagate(e);
    if (rc != 0) {
        commit_abandon(e, rc);
        return rc;
    }
    c->active = false;
    c->journal_used = 0;
    touched_reset(e);
    location_commit_end(e);
    if (!log_pending(e->log)) return 0; /* nothing changed: no commit */
    rc = append_commit(e, durability, seq_out);
    if (rc != 0) return rc;
    ASSERT(*seq_out != 0);
    c->res.commit_seq = *seq_out;
    e->sum.commits++;
    e->sum.recomputes += c->res.recomputes;
    e->sum.skips += c->res.skips;
    e->sum.backdates += c->res.backdates;
    e->sum.delta_propagations += c->res.delta_propagations;
    events_deliver(e, *seq_out);
    return 0;
}

void commit_result_out(const mmsb_engine *e, mmsb_commit_result *out) {
    ASSERT(!e->cc.active);
    if (out == NULL) return;
    uint32_t size = out->struct_size;
    ASSERT(size >= sizeof *out); /* commit_result_check */
    memcpy(out, &e->cc.res, min_u64(size, sizeof *out));
    out->struct_size = size;
}

int commit_result_check(const mmsb_commit_result *out, const char *fn) {
    ASSERT(fn != NULL);
    if (out != NULL && out->struct_size < sizeof *out) {
        return err_set(MMSB_EINVAL, "%s: result->struct_size %u is below %zu", fn, out->struct_size, sizeof *out);
    }
    return 0;
}

int commit_durability_check(const mmsb_engine *e, uint32_t durability, const char *fn) {
    ASSERT(fn != NULL);
    if (durability > MMSB_DURABILITY_REPLICATED) {
        return err_set(MMSB_EINVAL, "%s: durability %u is not 0 or an MMSB_DURABILITY_* value", fn, durability);
    }
    if (durability == MMSB_DURABILITY_REPLICATED && e->repl == NULL) {
        return err_set(MMSB_EINVAL, "%s: REPLICATED durability needs replication (mmsb_options.replication_*)", fn);
    }
    return 0;
}
