/*
 * audit.h - what the mmsb tool may ask of the engine beyond the public
 * API: a bare engine over a store's files, replaying its log into it, and
 * read-only questions about the replayed state. Nothing here changes a
 * store; the tool includes this header and no other engine header.
 */
#ifndef MMSB_AUDIT_H
#define MMSB_AUDIT_H

#include "../ffi/mmsb.h"
#include "../tlog/checkpoint/lmdb_store.h"
#include "../tlog/cursor.h"

/* The engine stays opaque here: everything the tool learns of it comes
 * through the functions below. */

/* An engine over a store's files that changes none of them: no lock, no log
 * writer, the checkpoint store opened read-only when there is one, and no
 * state yet (for read-only opens and the mmsb tool). */
int engine_open_bare(const char *dir, const mmsb_options *options, mmsb_engine **out)
    MUST_CHECK;
/* Releases an engine that has no log writer. */
void engine_close_bare(mmsb_engine *e);

/* Called after each record that a replay applied (records of aborted
 * commits are skipped, but not the ABORT that ends them: the state is then
 * the last commit's); a nonzero return stops the replay with it. */
typedef int (*replay_hook_fn)(void *ctx, mmsb_engine *e, const log_rec *r, uint64_t segment);

typedef struct replay_plan {
    bool from_checkpoint;   /* load the checkpoint first (there must be one) */
    uint64_t to_seq;        /* stop after the last commit at or before it */
    replay_hook_fn hook;    /* or NULL */
    void *ctx;
} replay_plan;

typedef struct replay_result {
    log_end end;            /* how the log ended */
    ckpt_meta checkpoint;   /* the one loaded (from_checkpoint) */
    uint64_t commit_seq;    /* the last commit (or checkpoint marker) applied */
    uint64_t commits;       /* commits up to it, the checkpoint's included */
    uint64_t records;       /* records read in the applying pass */
    uint64_t failed_seq;    /* the record that failed to apply, if one did */
} replay_result;

/* Replays the log of e's store into e (a bare engine, still empty). Every
 * recorded state root is checked on the way, as at open. */
int engine_replay(mmsb_engine *e, const replay_plan *plan, replay_result *out);


/* A page of a bare engine as replayed. `bytes` stays valid until the
 * engine changes or closes. */
typedef struct audit_page {
    uint64_t size_bytes, epoch;
    const uint8_t *bytes;
    h128 digest;
    bool device;
} audit_page;

/* MMSB_ENOTFOUND unless id names a live page. */
int audit_page_get(mmsb_engine *e, uint64_t id, audit_page *out) MUST_CHECK;

typedef struct audit_state {
    uint64_t pages_live, derived, page_id_next;
    h128 root;
} audit_state;
void audit_state_get(mmsb_engine *e, audit_state *out);

/* The checkpoint's meta record, if the store has one (*found); a damaged
 * checkpoint store is its error. */
int audit_checkpoint_meta(mmsb_engine *e, ckpt_meta *meta, bool *found) MUST_CHECK;
/* Opens e's log from its oldest record, skipping segments left over from
 * a retention that a crash interrupted (the checkpoint covers them). */
int audit_cursor(mmsb_engine *e, uint32_t flags, log_cursor **out) MUST_CHECK;
const kern_ops *audit_kern(const mmsb_engine *e);

/* The derived pages that read page id (its children), by page id. */
uint32_t audit_child_count(const mmsb_engine *e, uint64_t id);
uint64_t audit_child(const mmsb_engine *e, uint64_t id, uint32_t k);

/* What recomputing a derived page now says about its replayed bytes. */
typedef enum audit_verdict {
    AUDIT_NOT_DERIVED = 0, /* nothing to check */
    AUDIT_USER_OP,         /* a user operation: its code is not in the log */
    AUDIT_SAME,            /* signature and bytes as the operation gives them */
    AUDIT_BAD_SIGNATURE,   /* the signature is not the one the parents' epochs give */
    AUDIT_BAD_BYTES,       /* the bytes differ, first at `offset` */
} audit_verdict;

typedef struct audit_derived {
    audit_verdict verdict;
    uint32_t op;
    uint64_t offset;
    uint8_t expected, actual;
} audit_derived;

/* Scratch a caller keeps across checks (audit_scratch_free releases it). */
typedef struct audit_scratch {
    const uint8_t **in;
    uint64_t *sizes;
    uint8_t *out;
    uint64_t in_cap, out_cap;
} audit_scratch;

int audit_derived_check(mmsb_engine *e, uint64_t id, audit_scratch *s, audit_derived *out)
    MUST_CHECK;
void audit_scratch_free(audit_scratch *s);

#endif /* MMSB_AUDIT_H */
