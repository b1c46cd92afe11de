/*
 * scan.h - validation of the records of one segment image in memory. This is
 * the part of the reader that sees raw bytes from disk; the fuzz target
 * drives it directly.
 */
#ifndef MMSB_TLOG_SCAN_H
#define MMSB_TLOG_SCAN_H

#include "format.h"

typedef struct seg_scan {
    const uint8_t *base;  /* the segment image, header included */
    uint64_t size;        /* bytes of it present (a short file ends early) */
    uint64_t salt;
    uint32_t gen_min;     /* a record's generation may not be lower */
    uint64_t next_seq;    /* the sequence number the next record must have */
    uint64_t off;         /* where the next record starts */
    bool check_crc;       /* false once a first pass has validated the bytes */
    const kern_ops *kern;
} seg_scan;

typedef enum {
    SCAN_RECORD,  /* *rec is a valid record */
    SCAN_ZEROS,   /* zeros (or the end of the image) where a record would start */
    SCAN_INVALID, /* bytes that are not a valid record; the detail says why */
} scan_result;

void seg_scan_init(seg_scan *s, const uint8_t *base, uint64_t size, uint64_t salt,
                   uint32_t gen_min, uint64_t first_seq, const kern_ops *kern);
scan_result seg_scan_next(seg_scan *s, log_rec *rec);

/* Looks at every record-aligned offset from `from` on for a valid COMMIT of
 * this store with a generation of at least gen_min, a sequence number above
 * after_seq and a durable hint above after_seq: proof that what failed to
 * validate before it had been synced. */
bool seg_scan_synced_commit_after(const seg_scan *s, uint64_t from, uint64_t after_seq,
                                  uint64_t *found_off);
/* Offset just past the last non-zero byte of the image at or after `from`
 * (== from when the rest is zeros). */
uint64_t seg_scan_nonzero_end(const seg_scan *s, uint64_t from);

#endif /* MMSB_TLOG_SCAN_H */
