/*
 * audit.h - what the mmsb tool may ask of the engine beyond the public
 * API: a bare engine over a store's files, replaying its log into it, and
 * read-only questions about the replayed state. Nothing here changes a
 * store; the tool includes this header and no other engine header.
 */
#ifndef MMSB_AUDIT_H
#define MMSB_AUDIT_H

#include "../tlog/checkpoint/lmdb_store.h"
#include "../tlog/cursor.h"
#include "engine.h"
#include "replay.h"

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
    AUDIT_ON_DEVICE,       /* a page or a parent on the device: not compared */
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
