/*
 * record.c - the records a change appends: the engine's values encoded by
 * tlog/format.c into the space the log writer hands out. In debug builds
 * (MMSB_DEBUG_RECORDS) each record is decoded again before it is done, so
 * an encoder and its decoder cannot drift apart unnoticed.
 */
#include <string.h>

#include "../tlog/writer.h"
#include "ops.h"
#include "record.h"

static void record_done(mmsb_engine *e, uint16_t type, const uint8_t *payload, uint64_t len) {
    ASSERT(type != 0 && payload != NULL);
    ASSERT(len <= REC_PAYLOAD_MAX);
#ifdef MMSB_DEBUG_RECORDS
    log_rec r = {.type = type, .length = (uint32_t)len, .seq = UINT64_MAX, .payload = payload};
    int rc = rec_check_payload(&r, e->kern);
    if (rc != 0) mmsb_assert_fail(mmsb_last_error(), __FILE__, __LINE__);
#else
    (void)type;
    (void)payload;
    (void)len;
#endif
    log_append_done(e->log);
}

int record_delta_part(mmsb_engine *e, const delta_part *part) {
    ASSERT(part->type == REC_DELTA || part->type == REC_DERIVED);
    ASSERT(part->count > 0 && part->first <= part->last && part->last < part->block_len);
    ASSERT(part->block_len <= DELTA_LEN_MAX && (part->dense != NULL) != (part->packed != NULL));
    uint64_t start = part->first & ~7ull;
    uint64_t end = min_u64(part->block_len, (part->last | 7) + 1);
    uint64_t len = end - start, mask_bytes = (len + 7) / 8;
    const uint8_t *mask = part->mask + start / 8;
    bool full = part->count == len;
    bool derived = part->type == REC_DERIVED;
    uint32_t fixed = derived ? DERIVED_FIXED_BYTES : DELTA_FIXED_BYTES;
    uint64_t payload = fixed + (full ? len : mask_bytes + part->count);
    uint8_t *p;
    int rc = log_append(e->log, part->type, (uint32_t)payload, &p);
    if (rc != 0) return rc;
    rec_delta d = {.page_id = part->page_id, .epoch = part->epoch, .offset = part->base + start,
                   .len = len, .form = full ? DELTA_FULL : DELTA_SPARSE};
    uint8_t *body = p + rec_encode_delta_fixed(p, &d, derived ? &part->signature : NULL);
    if (full) {
        memcpy(body, part->dense != NULL ? part->dense + start : part->packed, len);
    } else {
        memcpy(body, mask, mask_bytes);
        if (part->dense != NULL) {
            uint64_t n = e->kern->compress(body + mask_bytes, part->dense + start, mask, len);
            ASSERT(n == part->count);
        } else {
            memcpy(body + mask_bytes, part->packed, part->count);
        }
    }
    record_done(e, part->type, p, payload);
    return 0;
}

int record_backdate(mmsb_engine *e, uint64_t id, uint64_t epoch, h128 signature) {
    ASSERT(id != 0);
    ASSERT(signature.lo != 0 || signature.hi != 0);
    uint8_t *p;
    int rc = log_append(e->log, REC_DERIVED, DERIVED_FIXED_BYTES, &p);
    if (rc != 0) return rc;
    rec_delta d = {.page_id = id, .epoch = epoch, .form = DELTA_NONE};
    uint32_t fixed = rec_encode_delta_fixed(p, &d, &signature);
    ASSERT(fixed == DERIVED_FIXED_BYTES);
    record_done(e, REC_DERIVED, p, DERIVED_FIXED_BYTES);
    return 0;
}

int record_create(mmsb_engine *e, uint64_t id, uint64_t size_bytes, uint32_t flags) {
    ASSERT(id != 0 && id <= e->opts.pages_max);
    ASSERT(size_bytes != 0 && size_bytes <= e->opts.page_bytes_max);
    uint8_t *p;
    int rc = log_append(e->log, REC_PAGE_CREATE, CREATE_REC_BYTES, &p);
    if (rc != 0) return rc;
    rec_encode_create(p, id, size_bytes, flags);
    record_done(e, REC_PAGE_CREATE, p, CREATE_REC_BYTES);
    return 0;
}

int record_free(mmsb_engine *e, uint64_t id) {
    ASSERT(e->cc.active);
    ASSERT(id != 0 && id <= e->opts.pages_max);
    uint8_t *p;
    int rc = log_append(e->log, REC_PAGE_FREE, FREE_REC_BYTES, &p);
    if (rc != 0) return rc;
    rec_encode_free(p, id);
    record_done(e, REC_PAGE_FREE, p, FREE_REC_BYTES);
    return 0;
}

int record_derive(mmsb_engine *e, uint64_t child, uint32_t n) {
    ASSERT(e->cc.active && n != 0);
    const gnode *v = graph_at(&e->g, n);
    ASSERT(v->page_id == child && v->op != 0);
    rec_derive d = {.child = child, .op = v->op, .op_version = op_version(&e->ops, v->op),
                    .parent_count = v->parent_count, .params_len = v->params_len, .params = v->params};
    uint64_t len = rec_derive_bytes(v->parent_count, v->params_len);
    uint8_t *p;
    int rc = log_append(e->log, REC_DERIVE, (uint32_t)len, &p);
    if (rc != 0) return rc;
    rec_encode_derive(p, &d);
    for (uint32_t k = 0; k < v->parent_count; k++) {
        rec_encode_derive_parent(p, k, graph_at(&e->g, v->parents[k])->page_id);
    }
    record_done(e, REC_DERIVE, p, len);
    return 0;
}

int record_underive(mmsb_engine *e, uint64_t child) {
    ASSERT(e->cc.active);
    ASSERT(child != 0);
    uint8_t *p;
    int rc = log_append(e->log, REC_UNDERIVE, UNDERIVE_REC_BYTES, &p);
    if (rc != 0) return rc;
    rec_encode_underive(p, child);
    record_done(e, REC_UNDERIVE, p, UNDERIVE_REC_BYTES);
    return 0;
}

int record_edge(mmsb_engine *e, uint16_t type, uint64_t parent, uint64_t child) {
    ASSERT(type == REC_EDGE_ADD || type == REC_EDGE_REMOVE);
    ASSERT(e->cc.active);
    uint8_t *p;
    int rc = log_append(e->log, type, EDGE_REC_BYTES, &p);
    if (rc != 0) return rc;
    rec_encode_edge(p, parent, child);
    record_done(e, type, p, EDGE_REC_BYTES);
    return 0;
}
