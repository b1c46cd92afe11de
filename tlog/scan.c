/*
 * scan.c - validating records in a segment image (see scan.h).
 */
#include "../engine/base/crc32c.h"
#include "scan.h"

void seg_scan_init(seg_scan *s, const uint8_t *base, uint64_t size, uint64_t salt,
                   uint32_t gen_min, uint64_t first_seq, const kern_ops *kern) {
    ASSERT(base != NULL && size >= SEG_HEADER_BYTES);
    *s = (seg_scan){.base = base, .size = size, .salt = salt, .gen_min = gen_min,
                    .next_seq = first_seq, .off = SEG_HEADER_BYTES, .check_crc = true,
                    .kern = kern};
    ASSERT(s->kern != NULL && first_seq >= 1);
}

static bool all_zero(const uint8_t *p, uint64_t len) {
    ASSERT(p != NULL || len == 0);
    for (uint64_t i = 0; i < len; i++) {
        if (p[i] != 0) return false;
    }
    return true;
}

/* Reads the header at off into rec; false with a detail when the fields do
 * not describe a record of this store that fits the image. */
static bool header_plausible(const seg_scan *s, uint64_t off, log_rec *rec) {
    ASSERT(off % REC_ALIGN == 0 && off + REC_HEADER_BYTES <= s->size);
    const uint8_t *h = s->base + off;
    rec->length = get_le32(h + 4);
    rec->type = get_le16(h + 8);
    rec->flags = get_le16(h + 10);
    rec->generation = get_le32(h + 12);
    rec->seq = get_le64(h + 16);
    rec->offset = off;
    rec->payload = h + REC_HEADER_BYTES;
    if (get_le64(h + 24) != s->salt) {
        err_set(MMSB_ECORRUPT, "salt %016llx is not this store's %016llx",
                (unsigned long long)get_le64(h + 24), (unsigned long long)s->salt);
        return false;
    }
    if (rec->length > REC_PAYLOAD_MAX || rec_slot_bytes(rec->length) > s->size - off) {
        err_set(MMSB_ECORRUPT, "length %u does not fit the segment", rec->length);
        return false;
    }
    if (rec->type == 0 || rec->flags != 0) {
        err_set(MMSB_ECORRUPT, "type %u flags %u", rec->type, rec->flags);
        return false;
    }
    if (rec->generation < s->gen_min) {
        err_set(MMSB_ECORRUPT, "generation %u below %u (a stale record)", rec->generation, s->gen_min);
        return false;
    }
    return true;
}

static bool crc_ok(const seg_scan *s, uint64_t off, const log_rec *rec) {
    ASSERT(off + rec_slot_bytes(rec->length) <= s->size);
    const uint8_t *h = s->base + off;
    return crc32c(0, h + 4, REC_HEADER_BYTES - 4 + (size_t)rec->length) == get_le32(h);
}

scan_result seg_scan_next(seg_scan *s, log_rec *rec) {
    ASSERT(s->off % REC_ALIGN == 0 && s->off <= s->size);
    if (s->size - s->off < REC_HEADER_BYTES) {
        if (all_zero(s->base + s->off, s->size - s->off)) return SCAN_ZEROS;
        err_set(MMSB_ECORRUPT, "%llu stray bytes at the end", (unsigned long long)(s->size - s->off));
        return SCAN_INVALID;
    }
    if (all_zero(s->base + s->off, REC_HEADER_BYTES)) return SCAN_ZEROS;
    if (!header_plausible(s, s->off, rec)) return SCAN_INVALID;
    if (rec->seq != s->next_seq) {
        err_set(MMSB_ECORRUPT, "sequence number %llu, expected %llu", (unsigned long long)rec->seq,
                (unsigned long long)s->next_seq);
        return SCAN_INVALID;
    }
    if (s->check_crc && !crc_ok(s, s->off, rec)) {
        err_set(MMSB_ECORRUPT, "CRC mismatch");
        return SCAN_INVALID;
    }
    uint64_t slot = rec_slot_bytes(rec->length);
    if (!all_zero(rec->payload + rec->length, slot - REC_HEADER_BYTES - rec->length)) {
        err_set(MMSB_ECORRUPT, "non-zero padding");
        return SCAN_INVALID;
    }
    if (rec_check_payload(rec, s->kern) != 0) return SCAN_INVALID;
    s->gen_min = rec->generation;
    s->next_seq++;
    s->off += slot;
    ASSERT(s->off <= s->size && s->off % REC_ALIGN == 0);
    return SCAN_RECORD;
}

bool seg_scan_synced_commit_after(const seg_scan *s, uint64_t from, uint64_t after_seq,
                                  uint64_t *found_off) {
    ASSERT(found_off != NULL && from >= SEG_HEADER_BYTES);
    for (uint64_t off = align_up_u64(from, REC_ALIGN); off + REC_HEADER_BYTES <= s->size;
         off += REC_ALIGN) {
        const uint8_t *h = s->base + off;
        /* Cheap rejections first: most offsets hold zeros or payload bytes. */
        if (get_le64(h + 24) != s->salt || get_le16(h + 8) != REC_COMMIT) continue;
        log_rec rec;
        if (!header_plausible(s, off, &rec) || rec.seq <= after_seq || !crc_ok(s, off, &rec)) continue;
        rec_commit c;
        if (rec_decode_commit(&rec, &c) != 0 || c.durable_hint <= after_seq) continue;
        *found_off = off;
        return true;
    }
    return false;
}

uint64_t seg_scan_nonzero_end(const seg_scan *s, uint64_t from) {
    ASSERT(from <= s->size);
    uint64_t end = s->size;
    /* Word at a time while aligned: segments are mostly zeros. */
    while (end > from && end % 8 != 0 && s->base[end - 1] == 0) end--;
    while (end >= from + 8 && get_le64(s->base + end - 8) == 0) end -= 8;
    while (end > from && s->base[end - 1] == 0) end--;
    ASSERT(end >= from && end <= s->size);
    return end;
}
