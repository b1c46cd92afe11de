/*
 * reader.c - the public log reader (mmsb_log_open / next / close).
 *
 * Opening reads the whole log once to learn where it ends and which records
 * are committed; the records are then handed out by a second pass, so every
 * record carries its `committed` flag. A writer may append meanwhile: the
 * reader stops at the end it saw at open (a snapshot).
 */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "checkpoint/lmdb_store.h"
#include "cursor.h"

enum { READER_CKPT_MAP_BYTES = 1 << 20, READER_CKPT_READERS = 126 };

struct mmsb_log_reader {
    int dir_fd;
    uint64_t covered_segment; /* the checkpoint's segment, when segments have a gap */
    const kern_ops *kern;
    log_cursor *cursor;
    log_end end;      /* from the first pass */
    uint64_t *aborted;/* (first, ABORT) pairs from the first pass */
    uint64_t aborted_count;
    bool finished;
};

/* Only a log whose segment files have a gap needs the checkpoint: to know
 * whether the files before the gap are leftovers of an interrupted
 * retention that it covers (see cursor_open). Without a readable checkpoint
 * the gap is reported as it is. */
static int find_covered_segment(mmsb_log_reader *r, const char *dir) {
    ASSERT(r->dir_fd >= 0 && dir != NULL);
    ASSERT(r->covered_segment == 0);
    uint64_t *nos;
    uint32_t count;
    int rc = segment_list(r->dir_fd, &nos, &count);
    if (rc != 0) return rc;
    bool gap = segment_gap(nos, count);
    free(nos);
    ckpt_store *s = NULL;
    if (!gap || ckpt_open(dir, true, READER_CKPT_MAP_BYTES, READER_CKPT_READERS, &s) != 0) return 0;
    ckpt_meta m;
    bool found = false;
    if (ckpt_read_begin(s, &m, &found) == 0 && found) r->covered_segment = m.segment;
    ckpt_read_end(s);
    ckpt_close(s);
    return 0;
}

static int first_pass(mmsb_log_reader *r) {
    ASSERT(r->cursor == NULL && r->aborted == NULL);
    log_cursor *c;
    int rc = cursor_open(r->dir_fd, CURSOR_VERIFY, r->kern, r->covered_segment, &c);
    if (rc != 0) return rc;
    bool done = false;
    log_rec rec;
    while (!done && cursor_next(c, &rec, &done) == 0) {
    }
    r->end = *cursor_end(c);
    cursor_take_aborted(c, &r->aborted, &r->aborted_count);
    cursor_close(c);
    ASSERT(r->end.last_commit_seq <= r->end.last_seq);
    return 0;
}

MMSB_API int mmsb_log_open(const char *dir, uint32_t flags, mmsb_log_reader **reader_out) {
    if (reader_out == NULL) return err_set(MMSB_EINVAL, "mmsb_log_open: reader_out is NULL");
    *reader_out = NULL;
    if (dir == NULL) return err_set(MMSB_EINVAL, "mmsb_log_open: dir is NULL");
    if (flags != 0) return err_set(MMSB_EINVAL, "mmsb_log_open: flags 0x%x (none are defined)", flags);
    mmsb_log_reader *r = calloc(1, sizeof *r);
    if (r == NULL) return err_set(MMSB_ENOMEM, "mmsb_log_open: out of memory");
    r->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = r->dir_fd < 0 ? err_set(MMSB_ENOTFOUND, "mmsb_log_open: cannot open directory %s", dir) : 0;
    if (rc == 0) rc = kern_select(MMSB_KERNEL_AUTO, &r->kern);
    if (rc == 0) rc = find_covered_segment(r, dir);
    if (rc == 0) rc = first_pass(r);
    if (rc == 0) rc = cursor_open(r->dir_fd, CURSOR_VERIFY, r->kern, r->covered_segment, &r->cursor);
    if (rc != 0) {
        mmsb_log_close(r);
        return rc;
    }
    *reader_out = r;
    ASSERT(r->cursor != NULL && r->kern != NULL);
    return 0;
}

static void fill_record(mmsb_log_reader *r, const log_rec *lr, mmsb_log_record *out) {
    ASSERT(lr->seq <= r->end.last_seq);
    ASSERT(out->struct_size >= sizeof *out);
    uint32_t size = out->struct_size;
    memset(out, 0, sizeof *out);
    out->struct_size = size;
    out->type = lr->type;
    out->seq = lr->seq;
    out->segment = cursor_segment(r->cursor);
    out->offset = lr->offset;
    out->generation = lr->generation;
    out->payload_len = lr->length;
    out->payload = lr->payload;
    out->committed = lr->seq <= r->end.last_commit_seq && lr->type != REC_ABORT &&
                     !seq_aborted(r->aborted, r->aborted_count, lr->seq);
    rec_delta d;
    rec_commit c;
    uint32_t page_flags;
    switch (lr->type) {
    case REC_PAGE_CREATE: rec_decode_create(lr, &out->page_id, &out->size_bytes, &page_flags); break;
    case REC_PAGE_FREE: rec_decode_free(lr, &out->page_id); break;
    case REC_DELTA:
        rec_decode_delta(lr, r->kern, &d);
        out->page_id = d.page_id;
        out->epoch = d.epoch;
        out->offset_in_page = d.offset;
        out->len = d.len;
        out->mask = d.mask;
        out->bytes = d.bytes;
        out->bytes_len = d.bytes_len;
        break;
    case REC_COMMIT:
        rec_decode_commit(lr, &c);
        out->first_seq = c.first_seq;
        out->has_root = (c.flags & COMMIT_HAS_ROOT) != 0;
        put_h128(out->chain.bytes, c.chain);
        put_h128(out->root.bytes, c.root);
        break;
    default: break;
    }
}

MMSB_API int mmsb_log_next(mmsb_log_reader *reader, mmsb_log_record *record) {
    if (reader == NULL || record == NULL) return err_set(MMSB_EINVAL, "mmsb_log_next: reader or record is NULL");
    if (record->struct_size < sizeof(mmsb_log_record)) {
        return err_set(MMSB_EINVAL, "mmsb_log_next: record->struct_size %u is below %zu",
                       record->struct_size, sizeof(mmsb_log_record));
    }
    log_rec lr;
    bool done = reader->finished;
    int rc = done ? 0 : cursor_next(reader->cursor, &lr, &done);
    if (rc == 0 && !done && lr.seq > reader->end.last_seq) done = true; /* appended after open */
    if (rc != 0 || done) {
        reader->finished = true;
        uint32_t size = record->struct_size;
        memset(record, 0, sizeof *record);
        record->struct_size = size;
        record->type = MMSB_REC_END;
        if (rc == 0 && reader->end.status != 0) {
            rc = err_set(reader->end.status, "log corrupt: %s", reader->end.detail);
        }
        return rc;
    }
    fill_record(reader, &lr, record);
    ASSERT(record->type == lr.type && record->seq == lr.seq);
    return 0;
}

MMSB_API int mmsb_log_close(mmsb_log_reader *reader) {
    if (reader == NULL) return 0;
    ASSERT(reader->aborted != NULL || reader->aborted_count == 0);
    cursor_close(reader->cursor);
    free(reader->aborted);
    if (reader->dir_fd >= 0) close(reader->dir_fd);
    free(reader);
    return 0;
}
