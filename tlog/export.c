/*
 * export.c - encoding and checked reading of the export stream (EXPORT.md).
 */
#include <stdlib.h>
#include <string.h>

#include "../engine/base/bytes.h"
#include "../engine/base/crc32c.h"
#include "export.h"

/* ---- header ----------------------------------------------------------------------- */

void xp_header_encode(const xp_header *h, uint8_t out[XP_HEADER_BYTES]) {
    ASSERT(h->page_id_next >= 1 && h->pages < h->page_id_next);
    ASSERT(h->derived <= h->pages && (h->commit_seq == 0) == (h->commits == 0));
    memset(out, 0, XP_HEADER_BYTES);
    memcpy(out, XP_MAGIC, 8);
    put_le32(out + 8, XP_FORMAT);
    put_le32(out + 12, XP_HEADER_BYTES);
    put_le64(out + 16, h->salt);
    put_le64(out + 24, h->commit_seq);
    put_le64(out + 32, h->commits);
    put_h128(out + 40, h->chain);
    put_h128(out + 56, h->root);
    put_le64(out + 72, h->page_id_next);
    put_le64(out + 80, h->pages);
    put_le64(out + 88, h->derived);
    put_le64(out + 96, h->page_bytes);
    put_le32(out + XP_HEADER_BYTES - 4, crc32c(0, out, XP_HEADER_BYTES - 4));
}

static bool all_zero(const uint8_t *p, uint32_t len) {
    ASSERT(p != NULL);
    for (uint32_t i = 0; i < len; i++) {
        if (p[i] != 0) return false;
    }
    return true;
}

/* What a state can be: counts that fit the ids, and pages only after a commit. */
static bool header_consistent(const xp_header *h) {
    if (h->page_id_next == 0 || h->pages > h->page_id_next - 1 || h->derived > h->pages) return false;
    if ((h->commit_seq == 0) != (h->commits == 0) || h->commits > h->commit_seq) return false;
    if (h->commit_seq == 0 && h->page_id_next != 1) return false;
    return h->pages == 0 ? h->page_bytes == 0 : h->page_bytes >= h->pages;
}

int xp_header_decode(const uint8_t in[XP_HEADER_BYTES], xp_header *h) {
    ASSERT(in != NULL && h != NULL);
    if (memcmp(in, XP_MAGIC, 8) != 0) return err_set(MMSB_ECORRUPT, "export stream: not an MMSB export (bad magic)");
    if (crc32c(0, in, XP_HEADER_BYTES - 4) != get_le32(in + XP_HEADER_BYTES - 4)) {
        return err_set(MMSB_ECORRUPT, "export stream: header CRC mismatch");
    }
    uint32_t version = get_le32(in + 8);
    if (version != XP_FORMAT) {
        return err_set(MMSB_EVERSION, "export stream: format version %u, this library reads %d", version, XP_FORMAT);
    }
    if (get_le32(in + 12) != XP_HEADER_BYTES || !all_zero(in + 104, 20)) {
        return err_set(MMSB_ECORRUPT, "export stream: bad header size or reserved bytes");
    }
    *h = (xp_header){.salt = get_le64(in + 16), .commit_seq = get_le64(in + 24), .commits = get_le64(in + 32),
                     .chain = get_h128(in + 40), .root = get_h128(in + 56), .page_id_next = get_le64(in + 72),
                     .pages = get_le64(in + 80), .derived = get_le64(in + 88), .page_bytes = get_le64(in + 96)};
    if (!header_consistent(h)) {
        return err_set(MMSB_ECORRUPT, "export stream: header counts disagree (record %llu, %llu commits, next id %llu, "
                       "%llu pages, %llu derived, %llu bytes)", (unsigned long long)h->commit_seq,
                       (unsigned long long)h->commits, (unsigned long long)h->page_id_next,
                       (unsigned long long)h->pages, (unsigned long long)h->derived,
                       (unsigned long long)h->page_bytes);
    }
    return 0;
}

/* ---- frames ------------------------------------------------------------------------- */

uint32_t xp_encode_page(uint8_t *body, const ckpt_page *p) {
    ASSERT(p->id >= 1 && p->size_bytes >= 1);
    put_le64(body, p->id);
    put_le64(body + 8, p->size_bytes);
    put_le64(body + 16, p->epoch);
    put_le32(body + 24, p->flags);
    put_le32(body + 28, 0);
    return XP_PAGE_BODY_BYTES;
}

uint32_t xp_encode_bytes_head(uint8_t *body, uint64_t page_id, uint64_t offset) {
    ASSERT(page_id >= 1);
    put_le64(body, page_id);
    put_le64(body + 8, offset);
    return XP_BYTES_HEAD_BYTES;
}

uint32_t xp_encode_derive(uint8_t *body, const ckpt_derive *d, const uint64_t *parents) {
    ASSERT(d->child >= 1 && d->op != 0);
    ASSERT(d->parent_count >= 1 && d->parent_count <= XP_PARENTS_MAX && d->params_len <= XP_PARAMS_MAX);
    put_le64(body, d->child);
    put_le32(body + 8, d->op);
    put_le32(body + 12, d->op_version);
    put_le32(body + 16, d->parent_count);
    put_le32(body + 20, d->params_len);
    put_h128(body + 24, d->signature);
    uint8_t *at = body + XP_DERIVE_HEAD_BYTES;
    for (uint32_t k = 0; k < d->parent_count; k++) put_le64(at + 8ull * k, parents[k]);
    at += 8ull * d->parent_count;
    if (d->params_len > 0) memcpy(at, d->params, d->params_len);
    return XP_DERIVE_HEAD_BYTES + 8 * d->parent_count + d->params_len;
}

uint32_t xp_encode_end(uint8_t *body, const xp_end *end) {
    put_le64(body, end->frames);
    put_le64(body + 8, end->pages);
    put_le64(body + 16, end->derived);
    put_le64(body + 24, end->page_bytes);
    put_h128(body + 32, end->root);
    return XP_END_BODY_BYTES;
}

void xp_frame_seal(uint8_t *frame, uint32_t type, uint32_t body_len) {
    ASSERT(type >= XP_PAGE && type <= XP_END);
    ASSERT(body_len <= XP_BODY_MAX);
    put_le32(frame + 4, body_len);
    put_le32(frame + 8, type);
    put_le32(frame + 12, 0);
    put_le32(frame, crc32c(0, frame + 4, XP_FRAME_HEAD_BYTES - 4 + (size_t)body_len));
}

/* ---- reading ------------------------------------------------------------------------ */

/* Up to len bytes; fewer only at the end of the stream. */
static int read_full(xp_reader *r, uint8_t *buf, uint64_t len, uint64_t *got) {
    ASSERT(buf != NULL && got != NULL);
    *got = 0;
    for (uint64_t calls = 0; *got < len; calls++) {
        ASSERT(calls <= len); /* every call but the last brings at least one byte */
        int64_t n = r->read(r->ctx, buf + *got, len - *got);
        if (n < 0) return (int)n;
        if (n == 0) break;
        ASSERT((uint64_t)n <= len - *got);
        *got += (uint64_t)n;
    }
    r->stream_bytes += *got;
    return 0;
}

int xp_reader_open(xp_reader *r, xp_read_fn read, void *ctx) {
    ASSERT(r != NULL && read != NULL);
    *r = (xp_reader){.read = read, .ctx = ctx, .stage = XP_PAGE};
    uint8_t head[XP_HEADER_BYTES];
    uint64_t got;
    int rc = read_full(r, head, sizeof head, &got);
    if (rc == 0 && got < sizeof head) {
        rc = got == 0 ? err_set(MMSB_ECORRUPT, "export stream: empty")
                      : err_set(MMSB_ECORRUPT, "export stream: cut inside its header (%llu bytes)",
                                (unsigned long long)got);
    }
    if (rc == 0) rc = xp_header_decode(head, &r->hdr);
    if (rc == 0) {
        r->frame = malloc(XP_FRAME_HEAD_BYTES + XP_BODY_MAX);
        if (r->frame == NULL) rc = err_set(MMSB_ENOMEM, "export stream: no memory for a frame");
    }
    return rc;
}

void xp_reader_close(xp_reader *r) {
    ASSERT(r != NULL);
    free(r->frame);
    r->frame = NULL;
}

static int bad(const xp_reader *r, const char *what) {
    return err_set(MMSB_ECORRUPT, "export stream: frame %llu (at byte %llu): %s", (unsigned long long)r->frames + 1,
                   (unsigned long long)r->stream_bytes, what);
}

static int take_page(xp_reader *r, const uint8_t *b, uint32_t len, xp_item *it) {
    if (len != XP_PAGE_BODY_BYTES) return bad(r, "PAGE of the wrong length");
    ckpt_page p = {.id = get_le64(b), .size_bytes = get_le64(b + 8), .epoch = get_le64(b + 16),
                   .flags = get_le32(b + 24)};
    if (p.id <= r->page_id || p.id >= r->hdr.page_id_next) return bad(r, "PAGE id out of order or range");
    if (p.size_bytes == 0 || !page_flags_valid(p.flags) || get_le32(b + 28) != 0) {
        return bad(r, "PAGE size or flags invalid");
    }
    if (p.epoch > r->hdr.commits) return bad(r, "PAGE epoch above the commits the header counts");
    if (r->pages == r->hdr.pages || p.size_bytes > r->hdr.page_bytes - r->page_bytes) {
        return bad(r, "more pages or page bytes than the header counts");
    }
    r->pages++;
    r->page_bytes += p.size_bytes;
    r->page_id = p.id;
    r->page_size = p.size_bytes;
    r->page_end = 0;
    it->page = p;
    return 0;
}

static int take_bytes(xp_reader *r, const uint8_t *b, uint32_t len, xp_item *it) {
    if (len <= XP_BYTES_HEAD_BYTES) return bad(r, "BYTES without bytes");
    uint64_t id = get_le64(b), off = get_le64(b + 8), n = len - XP_BYTES_HEAD_BYTES;
    if (r->page_id == 0 || id != r->page_id) return bad(r, "BYTES of a page other than the one before it");
    if (off < r->page_end || off >= r->page_size || n > r->page_size - off) {
        return bad(r, "BYTES overlap earlier ones or leave the page");
    }
    r->page_end = off + n;
    it->page = (ckpt_page){.id = id, .size_bytes = r->page_size, .bytes = b + XP_BYTES_HEAD_BYTES};
    it->offset = off;
    it->len = n;
    return 0;
}

static int take_derive(xp_reader *r, const uint8_t *b, uint32_t len, xp_item *it) {
    if (r->pages != r->hdr.pages) return bad(r, "DERIVE before the header's pages all came");
    if (len < XP_DERIVE_HEAD_BYTES) return bad(r, "DERIVE too short");
    ckpt_derive d = {.child = get_le64(b), .op = get_le32(b + 8), .op_version = get_le32(b + 12),
                     .parent_count = get_le32(b + 16), .params_len = get_le32(b + 20), .signature = get_h128(b + 24)};
    if (d.parent_count == 0 || d.parent_count > XP_PARENTS_MAX || d.params_len > XP_PARAMS_MAX || d.op == 0 ||
        len != XP_DERIVE_HEAD_BYTES + 8ull * d.parent_count + d.params_len) {
        return bad(r, "DERIVE operation, parent count or params length invalid");
    }
    if (d.child <= r->last_child || d.child >= r->hdr.page_id_next) return bad(r, "DERIVE child out of order or range");
    if (r->derived == r->hdr.derived) return bad(r, "more derived pages than the header counts");
    d.parents = b + XP_DERIVE_HEAD_BYTES;
    d.params = d.parents + 8ull * d.parent_count;
    for (uint32_t k = 0; k < d.parent_count; k++) {
        uint64_t parent = get_le64(d.parents + 8ull * k);
        if (parent == 0 || parent >= r->hdr.page_id_next) return bad(r, "DERIVE parent out of range");
    }
    r->derived++;
    r->last_child = d.child;
    r->stage = XP_DERIVE;
    it->derive = d;
    return 0;
}

/* The END frame, and nothing after it. */
static int take_end(xp_reader *r, const uint8_t *b, uint32_t len) {
    if (len != XP_END_BODY_BYTES) return bad(r, "END of the wrong length");
    const xp_header *h = &r->hdr;
    if (r->pages != h->pages || r->derived != h->derived || r->page_bytes != h->page_bytes) {
        return bad(r, "the stream ends before the pages the header counts");
    }
    h128 root = get_h128(b + 32);
    if (get_le64(b) != r->frames || get_le64(b + 8) != r->pages || get_le64(b + 16) != r->derived ||
        get_le64(b + 24) != r->page_bytes || root.lo != h->root.lo || root.hi != h->root.hi) {
        return bad(r, "END disagrees with the frames before it or the header");
    }
    uint8_t extra;
    uint64_t got;
    int rc = read_full(r, &extra, 1, &got);
    if (rc == 0 && got != 0) rc = bad(r, "bytes follow the END frame");
    r->stage = XP_END;
    return rc;
}

static int take(xp_reader *r, uint32_t type, const uint8_t *body, uint32_t len, xp_item *it) {
    ASSERT(r->stage == XP_PAGE || r->stage == XP_DERIVE);
    switch (type) {
    case XP_PAGE: return r->stage == XP_PAGE ? take_page(r, body, len, it) : bad(r, "PAGE after a DERIVE");
    case XP_BYTES: return r->stage == XP_PAGE ? take_bytes(r, body, len, it) : bad(r, "BYTES after a DERIVE");
    case XP_DERIVE: return take_derive(r, body, len, it);
    case XP_END: return take_end(r, body, len);
    default: return bad(r, "unknown frame type");
    }
}

int xp_reader_next(xp_reader *r, xp_item *it) {
    ASSERT(r->frame != NULL && it != NULL);
    ASSERT(r->stage != XP_END); /* nothing is read after the END frame */
    memset(it, 0, sizeof *it);
    uint64_t got;
    int rc = read_full(r, r->frame, XP_FRAME_HEAD_BYTES, &got);
    if (rc != 0) return rc;
    if (got < XP_FRAME_HEAD_BYTES) return bad(r, got == 0 ? "the stream ends without its END frame (cut short?)"
                                                          : "the stream ends inside a frame head");
    uint32_t len = get_le32(r->frame + 4), type = get_le32(r->frame + 8);
    if (len > XP_BODY_MAX || get_le32(r->frame + 12) != 0) return bad(r, "frame length or reserved field invalid");
    rc = read_full(r, r->frame + XP_FRAME_HEAD_BYTES, len, &got);
    if (rc != 0) return rc;
    if (got < len) return bad(r, "the stream ends inside a frame");
    if (crc32c(0, r->frame + 4, XP_FRAME_HEAD_BYTES - 4 + (size_t)len) != get_le32(r->frame)) {
        return bad(r, "CRC mismatch");
    }
    rc = take(r, type, r->frame + XP_FRAME_HEAD_BYTES, len, it);
    if (rc != 0) return rc;
    it->type = type;
    r->frames++;
    return 0;
}
