/*
 * format.c - encoding and checked decoding of segment headers and record
 * payloads (FORMAT.md).
 */
#include "../engine/base/crc32c.h"
#include "format.h"

/* ---- segment header ----------------------------------------------------------- */

void seg_header_encode(const seg_header *h, uint8_t out[SEG_HEADER_BYTES]) {
    ASSERT(h->salt != 0 && h->segment_no >= 1 && h->first_seq >= 1);
    ASSERT(h->segment_bytes >= SEG_BYTES_MIN && h->segment_bytes <= SEG_BYTES_MAX && h->generation >= 1);
    memset(out, 0, SEG_HEADER_BYTES);
    memcpy(out, SEG_MAGIC, 8);
    put_le32(out + 8, LOG_FORMAT_VERSION);
    put_le32(out + 12, SEG_HEADER_BYTES);
    put_le64(out + 16, h->salt);
    put_le64(out + 24, h->segment_no);
    put_le64(out + 32, h->first_seq);
    put_le64(out + 40, h->segment_bytes);
    put_le32(out + 48, h->generation);
    put_h128(out + 56, h->chain_in);
    put_le32(out + SEG_HEADER_BYTES - 4, crc32c(0, out, SEG_HEADER_BYTES - 4));
}

bool seg_header_is_zero(const uint8_t in[SEG_HEADER_BYTES]) {
    ASSERT(SEG_HEADER_BYTES % 8 == 0);
    ASSERT(in != NULL);
    for (uint32_t i = 0; i < SEG_HEADER_BYTES; i++) {
        if (in[i] != 0) return false;
    }
    return true;
}

int seg_header_decode(const uint8_t in[SEG_HEADER_BYTES], seg_header *h) {
    ASSERT(in != NULL && h != NULL);
    if (memcmp(in, SEG_MAGIC, 8) != 0) return err_set(MMSB_ECORRUPT, "segment header: bad magic");
    uint32_t crc = crc32c(0, in, SEG_HEADER_BYTES - 4);
    if (crc != get_le32(in + SEG_HEADER_BYTES - 4)) {
        return err_set(MMSB_ECORRUPT, "segment header: CRC mismatch");
    }
    uint32_t version = get_le32(in + 8);
    if (version != LOG_FORMAT_VERSION) {
        return err_set(MMSB_EVERSION, "segment header: format version %u, this library reads %d",
                       version, LOG_FORMAT_VERSION);
    }
    if (get_le32(in + 12) != SEG_HEADER_BYTES || get_le32(in + 52) != 0) {
        return err_set(MMSB_ECORRUPT, "segment header: bad header size or reserved field");
    }
    h->salt = get_le64(in + 16);
    h->segment_no = get_le64(in + 24);
    h->first_seq = get_le64(in + 32);
    h->segment_bytes = get_le64(in + 40);
    h->generation = get_le32(in + 48);
    h->chain_in = get_h128(in + 56);
    if (h->segment_no == 0 || h->first_seq == 0 || h->segment_bytes < SEG_BYTES_MIN ||
        h->segment_bytes > SEG_BYTES_MAX || h->segment_bytes % REC_ALIGN != 0) {
        return err_set(MMSB_ECORRUPT, "segment header: number %llu, first seq %llu, size %llu out of range",
                       (unsigned long long)h->segment_no, (unsigned long long)h->first_seq,
                       (unsigned long long)h->segment_bytes);
    }
    return 0;
}

/* ---- payloads -------------------------------------------------------------------- */

static int bad_length(const log_rec *r, uint64_t want) {
    ASSERT(r != NULL && want > 0);
    ASSERT(r->length != want);
    return err_set(MMSB_ECORRUPT, "%s record seq %llu: payload of %u bytes, expected %llu",
                   rec_type_name(r->type), (unsigned long long)r->seq, r->length,
                   (unsigned long long)want);
}

int rec_decode_create(const log_rec *r, uint64_t *page_id, uint64_t *size_bytes, uint32_t *flags) {
    ASSERT(r->type == REC_PAGE_CREATE);
    ASSERT(r->payload != NULL || r->length == 0);
    if (r->length != CREATE_REC_BYTES) return bad_length(r, CREATE_REC_BYTES);
    *page_id = get_le64(r->payload);
    *size_bytes = get_le64(r->payload + CREATE_OFF_SIZE);
    *flags = get_le32(r->payload + CREATE_OFF_FLAGS);
    if (*page_id == 0 || *size_bytes == 0 || get_le32(r->payload + CREATE_OFF_RESERVED) != 0) {
        return err_set(MMSB_ECORRUPT, "PAGE_CREATE seq %llu: page %llu of %llu bytes",
                       (unsigned long long)r->seq, (unsigned long long)*page_id,
                       (unsigned long long)*size_bytes);
    }
    return 0;
}

int rec_decode_free(const log_rec *r, uint64_t *page_id) {
    ASSERT(r->type == REC_PAGE_FREE);
    ASSERT(r->payload != NULL || r->length == 0);
    if (r->length != FREE_REC_BYTES) return bad_length(r, FREE_REC_BYTES);
    *page_id = get_le64(r->payload);
    if (*page_id == 0) return err_set(MMSB_ECORRUPT, "PAGE_FREE seq %llu: page 0", (unsigned long long)r->seq);
    return 0;
}

/* The body shared by DELTA and DERIVED: offset, len, form and a reserved
 * word at `range`, then the bytes of the form from `body` to the end. */
static int decode_delta_body(const log_rec *r, const kern_ops *k, const uint8_t *range,
                             const uint8_t *body, rec_delta *d) {
    ASSERT(range >= r->payload && body >= range && k != NULL);
    ASSERT(body <= r->payload + r->length);
    d->offset = get_le64(range);
    d->len = get_le64(range + RANGE_OFF_LEN);
    d->form = get_le32(range + RANGE_OFF_FORM);
    uint64_t have = (uint64_t)(r->payload + r->length - body);
    d->mask = NULL;
    d->bytes = body;
    d->bytes_len = 0;
    if (get_le32(range + RANGE_OFF_RESERVED) != 0)
        return err_set(MMSB_ECORRUPT, "%s seq %llu: reserved field set", rec_type_name(r->type),
                       (unsigned long long)r->seq);
    if (d->form == DELTA_NONE) {
        if (r->type != REC_DERIVED || d->len != 0 || d->offset != 0 || have != 0) {
            return err_set(MMSB_ECORRUPT, "%s seq %llu: an empty body with a range", rec_type_name(r->type),
                           (unsigned long long)r->seq);
        }
        return 0;
    }
    if (d->len == 0 || d->len > DELTA_LEN_MAX || d->offset > UINT64_MAX - d->len) {
        return err_set(MMSB_ECORRUPT, "%s seq %llu: offset %llu len %llu out of range", rec_type_name(r->type),
                       (unsigned long long)r->seq, (unsigned long long)d->offset, (unsigned long long)d->len);
    }
    if (d->form == DELTA_FULL) {
        if (have != d->len) return bad_length(r, r->length - have + d->len);
        d->bytes_len = d->len;
        return 0;
    }
    if (d->form != DELTA_SPARSE) {
        return err_set(MMSB_ECORRUPT, "%s seq %llu: unknown form %u", rec_type_name(r->type),
                       (unsigned long long)r->seq, d->form);
    }
    uint64_t mask_bytes = (d->len + 7) / 8;
    if (have < mask_bytes) return bad_length(r, r->length - have + mask_bytes);
    d->mask = body;
    uint8_t last = d->mask[mask_bytes - 1];
    if (d->len % 8 != 0 && (last >> (d->len % 8)) != 0) {
        return err_set(MMSB_ECORRUPT, "%s seq %llu: mask has bits past len", rec_type_name(r->type),
                       (unsigned long long)r->seq);
    }
    d->bytes_len = k->popcount(d->mask, mask_bytes);
    if (d->bytes_len == 0)
        return err_set(MMSB_ECORRUPT, "%s seq %llu: empty mask", rec_type_name(r->type), (unsigned long long)r->seq);
    if (have != mask_bytes + d->bytes_len) return bad_length(r, r->length - have + mask_bytes + d->bytes_len);
    d->bytes = d->mask + mask_bytes;
    return 0;
}

int rec_decode_delta(const log_rec *r, const kern_ops *k, rec_delta *d) {
    ASSERT(r->type == REC_DELTA);
    ASSERT(r->payload != NULL || r->length == 0);
    if (r->length < DELTA_FIXED_BYTES) return bad_length(r, DELTA_FIXED_BYTES);
    const uint8_t *p = r->payload;
    d->page_id = get_le64(p);
    d->epoch = get_le64(p + DELTA_OFF_EPOCH);
    int rc = decode_delta_body(r, k, p + DELTA_OFF_RANGE, p + DELTA_FIXED_BYTES, d);
    if (rc == 0 && (d->page_id == 0 || d->epoch == 0 || d->form == DELTA_NONE)) {
        rc = err_set(MMSB_ECORRUPT, "DELTA seq %llu: page %llu epoch %llu form %u", (unsigned long long)r->seq,
                     (unsigned long long)d->page_id, (unsigned long long)d->epoch, d->form);
    }
    return rc;
}

int rec_decode_derived(const log_rec *r, const kern_ops *k, rec_derived *d) {
    ASSERT(r->type == REC_DERIVED);
    ASSERT(r->payload != NULL || r->length == 0);
    if (r->length < DERIVED_FIXED_BYTES) return bad_length(r, DERIVED_FIXED_BYTES);
    const uint8_t *p = r->payload;
    d->d.page_id = get_le64(p);
    d->d.epoch = get_le64(p + DELTA_OFF_EPOCH);
    d->signature = get_h128(p + DERIVED_OFF_SIGNATURE);
    int rc = decode_delta_body(r, k, p + DERIVED_OFF_RANGE, p + DERIVED_FIXED_BYTES, &d->d);
    if (rc == 0 && (d->d.page_id == 0 || (d->d.form != DELTA_NONE && d->d.epoch == 0))) {
        rc = err_set(MMSB_ECORRUPT, "DERIVED seq %llu: page %llu epoch %llu", (unsigned long long)r->seq,
                     (unsigned long long)d->d.page_id, (unsigned long long)d->d.epoch);
    }
    return rc;
}

int rec_decode_derive(const log_rec *r, rec_derive *d) {
    ASSERT(r->type == REC_DERIVE);
    ASSERT(r->payload != NULL || r->length == 0);
    if (r->length < DERIVE_FIXED_BYTES) return bad_length(r, DERIVE_FIXED_BYTES);
    const uint8_t *p = r->payload;
    d->child = get_le64(p);
    d->op = get_le32(p + DERIVE_OFF_OP);
    d->op_version = get_le32(p + DERIVE_OFF_VERSION);
    d->flags = get_le32(p + DERIVE_OFF_FLAGS);
    d->parent_count = get_le32(p + DERIVE_OFF_PARENT_COUNT);
    d->params_len = get_le32(p + DERIVE_OFF_PARAMS_LEN);
    if (d->child == 0 || d->op == 0 || d->parent_count == 0 || d->parent_count > DERIVE_PARENTS_MAX ||
        d->params_len > DERIVE_PARAMS_MAX || get_le32(p + DERIVE_OFF_RESERVED) != 0) {
        return err_set(MMSB_ECORRUPT, "DERIVE seq %llu: page %llu op %u with %u parents and %u param bytes",
                       (unsigned long long)r->seq, (unsigned long long)d->child, d->op, d->parent_count, d->params_len);
    }
    uint64_t want = DERIVE_FIXED_BYTES + 8ull * d->parent_count + d->params_len;
    if (r->length != want) return bad_length(r, want);
    d->parents = p + DERIVE_FIXED_BYTES;
    d->params = d->parents + 8ull * d->parent_count;
    return 0;
}

int rec_decode_underive(const log_rec *r, uint64_t *child) {
    ASSERT(r->type == REC_UNDERIVE);
    ASSERT(r->payload != NULL || r->length == 0);
    if (r->length != UNDERIVE_REC_BYTES) return bad_length(r, UNDERIVE_REC_BYTES);
    *child = get_le64(r->payload);
    return *child == 0 ? err_set(MMSB_ECORRUPT, "UNDERIVE seq %llu: page 0", (unsigned long long)r->seq) : 0;
}

int rec_decode_edge(const log_rec *r, uint64_t *parent, uint64_t *child) {
    ASSERT(r->type == REC_EDGE_ADD || r->type == REC_EDGE_REMOVE);
    ASSERT(r->payload != NULL || r->length == 0);
    if (r->length != EDGE_REC_BYTES) return bad_length(r, EDGE_REC_BYTES);
    *parent = get_le64(r->payload);
    *child = get_le64(r->payload + 8);
    if (*parent == 0 || *child == 0 || *parent == *child) {
        return err_set(MMSB_ECORRUPT, "%s seq %llu: edge %llu -> %llu", rec_type_name(r->type),
                       (unsigned long long)r->seq, (unsigned long long)*parent, (unsigned long long)*child);
    }
    return 0;
}

int rec_decode_abort(const log_rec *r, uint64_t *first_seq) {
    ASSERT(r->type == REC_ABORT);
    ASSERT(r->payload != NULL || r->length == 0);
    if (r->length != ABORT_REC_BYTES) return bad_length(r, ABORT_REC_BYTES);
    *first_seq = get_le64(r->payload);
    if (*first_seq > r->seq)
        return err_set(MMSB_ECORRUPT, "ABORT seq %llu: first seq %llu after it", (unsigned long long)r->seq,
                       (unsigned long long)*first_seq);
    return 0;
}

int rec_decode_checkpoint(const log_rec *r, rec_checkpoint *c) {
    ASSERT(r->type == REC_CHECKPOINT);
    ASSERT(r->payload != NULL || r->length == 0);
    if (r->length != CHECKPOINT_REC_BYTES) return bad_length(r, CHECKPOINT_REC_BYTES);
    c->number = get_le64(r->payload);
    c->commit_seq = get_le64(r->payload + 8);
    c->chain = get_h128(r->payload + 16);
    c->root = get_h128(r->payload + 32);
    if (c->number == 0 || c->commit_seq == 0 || c->commit_seq >= r->seq) {
        return err_set(MMSB_ECORRUPT, "CHECKPOINT seq %llu: number %llu, commit %llu", (unsigned long long)r->seq,
                       (unsigned long long)c->number, (unsigned long long)c->commit_seq);
    }
    return 0;
}

void rec_encode_checkpoint(const rec_checkpoint *c, uint8_t out[CHECKPOINT_REC_BYTES]) {
    ASSERT(out != NULL && c->commit_seq >= 1);
    ASSERT(c->number >= 1 && c->commit_seq >= 1);
    put_le64(out, c->number);
    put_le64(out + 8, c->commit_seq);
    put_h128(out + 16, c->chain);
    put_h128(out + 32, c->root);
}

int rec_decode_commit(const log_rec *r, rec_commit *c) {
    ASSERT(r->type == REC_COMMIT);
    ASSERT(r->payload != NULL || r->length == 0);
    if (r->length < COMMIT_FIXED_BYTES) return bad_length(r, COMMIT_FIXED_BYTES);
    const uint8_t *p = r->payload;
    c->first_seq = get_le64(p);
    c->durable_hint = get_le64(p + COMMIT_OFF_DURABLE);
    c->flags = get_le32(p + COMMIT_OFF_FLAGS);
    c->record_count = get_le32(p + COMMIT_OFF_COUNT);
    c->chain = get_h128(p + COMMIT_OFF_CHAIN);
    uint64_t want = COMMIT_FIXED_BYTES + ((c->flags & COMMIT_HAS_ROOT) ? COMMIT_ROOT_BYTES : 0);
    if (r->length != want) return bad_length(r, want);
    if (c->flags & ~(uint32_t)(COMMIT_HAS_ROOT | COMMIT_CLOSE)) {
        return err_set(MMSB_ECORRUPT, "COMMIT seq %llu: unknown flags 0x%x", (unsigned long long)r->seq, c->flags);
    }
    if (c->first_seq > r->seq || r->seq - c->first_seq != c->record_count) {
        return err_set(MMSB_ECORRUPT, "COMMIT seq %llu: first seq %llu and count %u disagree",
                       (unsigned long long)r->seq, (unsigned long long)c->first_seq, c->record_count);
    }
    c->root = (c->flags & COMMIT_HAS_ROOT) ? get_h128(p + COMMIT_FIXED_BYTES) : (h128){0, 0};
    return 0;
}

int rec_decode_seal(const log_rec *r, uint64_t *next_segment, uint64_t *end_offset) {
    ASSERT(r->type == REC_SEAL);
    ASSERT(r->payload != NULL || r->length == 0);
    if (r->length != SEAL_REC_BYTES) return bad_length(r, SEAL_REC_BYTES);
    *next_segment = get_le64(r->payload);
    *end_offset = get_le64(r->payload + 8);
    return 0;
}

int rec_check_payload(const log_rec *r, const kern_ops *k) {
    ASSERT(r != NULL && k != NULL);
    uint64_t a, b;
    uint32_t f;
    rec_delta d;
    rec_commit c;
    rec_derive dv;
    rec_derived dd;
    rec_checkpoint ck;
    switch (r->type) {
    case REC_PAGE_CREATE: return rec_decode_create(r, &a, &b, &f);
    case REC_PAGE_FREE: return rec_decode_free(r, &a);
    case REC_DELTA: return rec_decode_delta(r, k, &d);
    case REC_COMMIT: return rec_decode_commit(r, &c);
    case REC_SEAL: return rec_decode_seal(r, &a, &b);
    case REC_DERIVE: return rec_decode_derive(r, &dv);
    case REC_UNDERIVE: return rec_decode_underive(r, &a);
    case REC_EDGE_ADD:
    case REC_EDGE_REMOVE: return rec_decode_edge(r, &a, &b);
    case REC_DERIVED: return rec_decode_derived(r, k, &dd);
    case REC_ABORT: return rec_decode_abort(r, &a);
    case REC_CHECKPOINT: return rec_decode_checkpoint(r, &ck);
    default: break;
    }
    if (r->type >= REC_TYPE_SKIPPABLE) return 0;
    return err_set(MMSB_ECORRUPT, "record seq %llu: unknown type %u", (unsigned long long)r->seq, r->type);
}

const char *rec_type_name(uint16_t type) {
    ASSERT(REC_TYPE_SKIPPABLE > REC_TYPE_KNOWN_MAX);
    _Static_assert(REC_TYPE_KNOWN_MAX == 12, "a name for every known type below");
    static const char *const names[] = {"INVALID", "PAGE_CREATE", "PAGE_FREE", "DELTA", "COMMIT", "SEAL",
                                        "DERIVE", "UNDERIVE", "EDGE_ADD", "EDGE_REMOVE", "DERIVED", "ABORT",
                                        "CHECKPOINT"};
    if (type < ARRAY_LEN(names)) return names[type];
    return type >= REC_TYPE_SKIPPABLE ? "SKIPPABLE" : "UNKNOWN";
}

/* ---- encoders ------------------------------------------------------------------------ */

void rec_encode_create(uint8_t out[CREATE_REC_BYTES], uint64_t page_id, uint64_t size_bytes, uint32_t flags) {
    ASSERT(out != NULL);
    ASSERT(page_id != 0 && size_bytes != 0);
    put_le64(out, page_id);
    put_le64(out + CREATE_OFF_SIZE, size_bytes);
    put_le32(out + CREATE_OFF_FLAGS, flags);
    put_le32(out + CREATE_OFF_RESERVED, 0);
}

void rec_encode_free(uint8_t out[FREE_REC_BYTES], uint64_t page_id) {
    ASSERT(out != NULL);
    ASSERT(page_id != 0);
    put_le64(out, page_id);
}

void rec_encode_underive(uint8_t out[UNDERIVE_REC_BYTES], uint64_t child) {
    ASSERT(out != NULL);
    ASSERT(child != 0);
    put_le64(out, child);
}

void rec_encode_edge(uint8_t out[EDGE_REC_BYTES], uint64_t parent, uint64_t child) {
    ASSERT(parent != 0 && child != 0);
    ASSERT(parent != child);
    put_le64(out, parent);
    put_le64(out + 8, child);
}

void rec_encode_abort(uint8_t out[ABORT_REC_BYTES], uint64_t first_seq) {
    ASSERT(out != NULL);
    ASSERT(first_seq != 0);
    put_le64(out, first_seq);
}

void rec_encode_seal(uint8_t out[SEAL_REC_BYTES], uint64_t next_segment, uint64_t end_offset) {
    ASSERT(next_segment >= 2);
    ASSERT(end_offset % REC_ALIGN == 0);
    put_le64(out, next_segment);
    put_le64(out + 8, end_offset);
}

uint64_t rec_derive_bytes(uint32_t parent_count, uint32_t params_len) {
    ASSERT(parent_count <= DERIVE_PARENTS_MAX);
    ASSERT(params_len <= DERIVE_PARAMS_MAX);
    return DERIVE_FIXED_BYTES + 8ull * parent_count + params_len;
}

void rec_encode_derive(uint8_t *out, const rec_derive *d) {
    ASSERT(d->child != 0 && d->op != 0);
    ASSERT(d->parent_count >= 1 && d->parent_count <= DERIVE_PARENTS_MAX);
    ASSERT(d->params_len <= DERIVE_PARAMS_MAX && (d->params != NULL || d->params_len == 0));
    put_le64(out, d->child);
    put_le32(out + DERIVE_OFF_OP, d->op);
    put_le32(out + DERIVE_OFF_VERSION, d->op_version);
    put_le32(out + DERIVE_OFF_FLAGS, d->flags);
    put_le32(out + DERIVE_OFF_PARENT_COUNT, d->parent_count);
    put_le32(out + DERIVE_OFF_PARAMS_LEN, d->params_len);
    put_le32(out + DERIVE_OFF_RESERVED, 0);
    if (d->params_len > 0) memcpy(out + DERIVE_FIXED_BYTES + 8ull * d->parent_count, d->params, d->params_len);
}

void rec_encode_derive_parent(uint8_t *out, uint32_t k, uint64_t parent) {
    ASSERT(k < get_le32(out + DERIVE_OFF_PARENT_COUNT));
    ASSERT(parent != 0);
    put_le64(out + DERIVE_FIXED_BYTES + 8ull * k, parent);
}

uint32_t rec_encode_delta_fixed(uint8_t *out, const rec_delta *d, const h128 *signature) {
    ASSERT(d->page_id != 0);
    ASSERT(d->form <= DELTA_SPARSE && (d->form == DELTA_NONE) == (d->len == 0));
    ASSERT(d->len <= DELTA_LEN_MAX);
    put_le64(out, d->page_id);
    put_le64(out + DELTA_OFF_EPOCH, d->epoch);
    uint8_t *range = out + DELTA_OFF_RANGE;
    if (signature != NULL) {
        put_h128(out + DERIVED_OFF_SIGNATURE, *signature);
        range = out + DERIVED_OFF_RANGE;
    }
    put_le64(range, d->offset);
    put_le64(range + RANGE_OFF_LEN, d->len);
    put_le32(range + RANGE_OFF_FORM, d->form);
    put_le32(range + RANGE_OFF_RESERVED, 0);
    return signature != NULL ? DERIVED_FIXED_BYTES : DELTA_FIXED_BYTES;
}

void rec_encode_commit(uint8_t *out, const rec_commit *c, const h128 *root) {
    ASSERT(c->first_seq != 0);
    ASSERT(((c->flags & COMMIT_HAS_ROOT) != 0) == (root != NULL));
    put_le64(out, c->first_seq);
    put_le64(out + COMMIT_OFF_DURABLE, c->durable_hint);
    put_le32(out + COMMIT_OFF_FLAGS, c->flags);
    put_le32(out + COMMIT_OFF_COUNT, c->record_count);
    memset(out + COMMIT_OFF_CHAIN, 0, 16);
    if (root != NULL) put_h128(out + COMMIT_FIXED_BYTES, *root);
}

void rec_encode_commit_chain(uint8_t *out, h128 chain) {
    ASSERT(out != NULL && get_le64(out) != 0); /* after rec_encode_commit */
    put_h128(out + COMMIT_OFF_CHAIN, chain);
}
