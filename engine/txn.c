/*
 * txn.c - transactions: changes staged in the caller's thread (copies of
 * its bytes, no lock taken, nothing validated against pages yet), then
 * validated all together and applied as one commit at mmsb_txn_commit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "change.h"
#include "commit.h"
#include "role.h"

enum { STAGED_WRITE = 1, STAGED_APPLY = 2 };

/* A staged change, followed in the buffer by its mask (APPLY) and bytes. */
typedef struct staged {
    uint32_t kind, flags;
    uint64_t page_id, offset, len, expected_epoch, payload_len;
} staged;

struct mmsb_txn {
    mmsb_engine *e;
    uint8_t *buf;
    uint64_t used, cap, count;
};

MMSB_API int mmsb_txn_begin(mmsb_engine *engine, mmsb_txn **txn_out) {
    int rc = engine_check(engine, "mmsb_txn_begin");
    if (rc != 0) return rc;
    if (txn_out == NULL) return err_set(MMSB_EINVAL, "mmsb_txn_begin: txn_out is NULL");
    if (engine->read_only)
        return err_set(MMSB_EREADONLY, "mmsb_txn_begin: the engine was opened with MMSB_OPEN_READONLY");
    mmsb_txn *t = calloc(1, sizeof *t);
    if (t == NULL) return err_set(MMSB_ENOMEM, "mmsb_txn_begin: out of memory");
    t->e = engine;
    ASSERT(t->used == 0 && t->count == 0 && t->buf == NULL);
    *txn_out = t;
    return 0;
}

/* Copies one staged change in: header, then the pieces. */
static int stage(mmsb_txn *t, const staged *s, const uint8_t *mask, uint64_t mask_len,
                 const uint8_t *bytes, uint64_t bytes_len) {
    ASSERT(t != NULL && t->e != NULL && s != NULL);
    ASSERT((mask != NULL || mask_len == 0) && (bytes != NULL || bytes_len == 0));
    uint64_t need = sizeof *s + align_up_u64(mask_len, 8) + align_up_u64(bytes_len, 8);
    uint64_t limit = t->e->opts.txn_bytes_max;
    if (need > limit || t->used > limit - need) {
        return err_set(MMSB_ENOSPC, "transaction: staging %llu more bytes exceeds txn_bytes_max %llu",
                       (unsigned long long)need, (unsigned long long)limit);
    }
    if (t->used + need > t->cap) {
        uint64_t cap = max_u64(t->used + need, t->cap < 4096 ? 4096 : 2 * t->cap);
        uint8_t *b = realloc(t->buf, cap);
        if (b == NULL)
            return err_set(MMSB_ENOMEM, "transaction: staging buffer of %llu bytes", (unsigned long long)cap);
        t->buf = b;
        t->cap = cap;
    }
    uint8_t *at = t->buf + t->used;
    memcpy(at, s, sizeof *s);
    if (mask_len > 0) memcpy(at + sizeof *s, mask, mask_len);
    if (bytes_len > 0) memcpy(at + sizeof *s + align_up_u64(mask_len, 8), bytes, bytes_len);
    t->used += need;
    t->count++;
    ASSERT(t->used <= t->cap && t->used <= t->e->opts.txn_bytes_max);
    return 0;
}

MMSB_API int mmsb_txn_write(mmsb_txn *txn, uint64_t page_id, uint64_t offset, const void *bytes,
                            uint64_t len) {
    if (txn == NULL) return err_set(MMSB_EINVAL, "mmsb_txn_write: txn is NULL");
    if (bytes == NULL && len > 0)
        return err_set(MMSB_EINVAL, "mmsb_txn_write: bytes is NULL with len %llu", (unsigned long long)len);
    if (offset > UINT64_MAX - len) return err_set(MMSB_EINVAL, "mmsb_txn_write: offset + len overflows");
    staged s = {.kind = STAGED_WRITE, .page_id = page_id, .offset = offset, .len = len, .payload_len = len};
    ASSERT(txn->e != NULL && !txn->e->read_only);
    return stage(txn, &s, NULL, 0, bytes, len);
}

MMSB_API int mmsb_txn_apply(mmsb_txn *txn, const mmsb_delta *d) {
    if (txn == NULL || d == NULL) return err_set(MMSB_EINVAL, "mmsb_txn_apply: txn or delta is NULL");
    const uint32_t known = MMSB_DELTA_SPARSE | MMSB_DELTA_EXPECT_EPOCH;
    uint64_t mask_bytes = (d->len + 7) / 8;
    if ((d->flags & ~known) || d->reserved0 != 0 || (d->mask == NULL && d->len > 0) ||
        (d->payload == NULL && d->payload_len > 0) || d->offset > UINT64_MAX - d->len) {
        return err_set(MMSB_EINVAL, "mmsb_txn_apply: flags, reserved0, mask, payload or range invalid");
    }
    uint64_t need = (d->flags & MMSB_DELTA_SPARSE) ? txn->e->kern->popcount(d->mask, mask_bytes) : d->len;
    if (d->payload_len != need || (d->len % 8 != 0 && (d->mask[mask_bytes - 1] >> (d->len % 8)) != 0)) {
        return err_set(MMSB_EINVAL, "mmsb_txn_apply: payload_len %llu, expected %llu, or mask bits past len",
                       (unsigned long long)d->payload_len, (unsigned long long)need);
    }
    staged s = {.kind = STAGED_APPLY, .flags = d->flags, .page_id = d->page_id, .offset = d->offset,
                .len = d->len, .expected_epoch = d->expected_epoch, .payload_len = d->payload_len};
    return stage(txn, &s, d->mask, mask_bytes, d->payload, d->payload_len);
}

/* A staged change seen as a delta (APPLY) or a write. */
static void staged_at(const mmsb_txn *t, uint64_t *at, staged *s, mmsb_delta *d, const uint8_t **bytes) {
    ASSERT(*at + sizeof *s <= t->used);
    memcpy(s, t->buf + *at, sizeof *s);
    const uint8_t *body = t->buf + *at + sizeof *s;
    uint64_t mask_len = s->kind == STAGED_APPLY ? align_up_u64((s->len + 7) / 8, 8) : 0;
    *d = (mmsb_delta){.page_id = s->page_id, .offset = s->offset, .len = s->len, .mask = body,
                      .payload = body + mask_len, .payload_len = s->payload_len,
                      .expected_epoch = s->expected_epoch, .flags = s->flags};
    *bytes = body + mask_len;
    *at += sizeof *s + mask_len + align_up_u64(s->payload_len, 8);
    ASSERT(s->kind == STAGED_WRITE || s->kind == STAGED_APPLY);
    ASSERT(*at <= t->used);
}

static int txn_check(mmsb_engine *e, const mmsb_txn *t) {
    ASSERT(t->used <= t->cap);
    ASSERT(t->e == e && !e->cc.active);
    uint64_t at = 0;
    for (uint64_t i = 0; i < t->count; i++) {
        staged s;
        mmsb_delta d;
        const uint8_t *bytes;
        page_entry *pe;
        staged_at(t, &at, &s, &d, &bytes);
        int rc = s.kind == STAGED_WRITE ? change_target_check(e, s.page_id, s.offset, s.len, "mmsb_txn_commit", &pe)
                                        : change_delta_check(e, &d, "mmsb_txn_commit", &pe);
        if (rc != 0) {
            char detail[512];
            snprintf(detail, sizeof detail, "%s", mmsb_last_error());
            return err_set(rc, "staged change %llu: %s", (unsigned long long)i, detail);
        }
    }
    return 0;
}

static int txn_run(mmsb_engine *e, const mmsb_txn *t, uint32_t durability, mmsb_commit_result *out) {
    ASSERT(t->e == e && !e->read_only);
    int rc = commit_durability_check(e, durability, "mmsb_txn_commit");
    if (rc == 0) rc = commit_result_check(out, "mmsb_txn_commit");
    if (rc == 0) rc = txn_check(e, t);
    if (rc != 0) return rc;
    commit_begin(e);
    uint64_t at = 0, changed, seq;
    for (uint64_t i = 0; rc == 0 && i < t->count; i++) {
        staged s;
        mmsb_delta d;
        const uint8_t *bytes;
        staged_at(t, &at, &s, &d, &bytes);
        page_entry *pe = entry_of(e, s.page_id);
        rc = s.kind == STAGED_WRITE ? change_write(e, s.page_id, pe, s.offset, bytes, s.len, &changed)
                                    : change_apply(e, &d, pe, &changed);
    }
    ASSERT(rc != 0 || at == t->used); /* every staged change was applied */
    if (rc == 0) rc = commit_finish(e, durability, &seq);
    else commit_abandon(e, rc);
    if (rc == 0) commit_result_out(e, out);
    return rc;
}

MMSB_API int mmsb_txn_commit(mmsb_txn *txn, uint32_t durability, mmsb_commit_result *result) {
    if (txn == NULL) return err_set(MMSB_EINVAL, "mmsb_txn_commit: txn is NULL");
    mmsb_engine *e = txn->e;
    int rc = engine_enter_writer(e, "mmsb_txn_commit");
    if (rc == MMSB_EBUSY || rc == MMSB_ECALLBACK) return rc; /* the transaction stays open: retry */
    if (rc == 0) {
        rc = txn_run(e, txn, durability, result);
        rc = engine_leave_writer(e, rc);
    }
    mmsb_txn_abort(txn);
    return rc;
}

MMSB_API int mmsb_txn_abort(mmsb_txn *txn) {
    if (txn == NULL) return 0;
    free(txn->buf);
    free(txn);
    return 0;
}

