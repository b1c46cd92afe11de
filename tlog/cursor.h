/*
 * cursor.h - reading a store's whole log in order: segment headers,
 * continuity between segments, records, chain values, and at the end the
 * verdict of FORMAT.md's decision table (clean end, torn tail, corruption).
 * Recovery, the public reader and the mmsb tool all read through it.
 */
#ifndef MMSB_TLOG_CURSOR_H
#define MMSB_TLOG_CURSOR_H

#include <dirent.h>

#include "chain.h"
#include "scan.h"

enum {
    CURSOR_VERIFY = 1u << 0,  /* check CRCs and chain values (off: already checked) */
    CURSOR_SALVAGE = 1u << 1, /* on corruption, end at the last good commit instead */
    /* A reader of a log being written (shippers, a replica's group check):
     * the first zeros or invalid record in the last segment end the read,
     * with no search beyond for synced data (a verdict only recovery needs:
     * it reads the rest of the segment). Records are checked as always. */
    CURSOR_LIVE = 1u << 2,
};

/* How the log ended, known once cursor_next reports done. */
typedef struct log_end {
    int status;                /* 0, or MMSB_ECORRUPT / MMSB_EVERSION / MMSB_EIO */
    char detail[256];          /* what ended it: torn tail, corruption, ... */
    bool empty;                /* no segment with a valid header */
    bool torn;                 /* an invalid tail was cut */
    bool salvaged;             /* corruption was cut (CURSOR_SALVAGE) */
    uint64_t salt;
    uint32_t generation_max;
    uint64_t records;          /* valid records read */
    uint64_t commits;          /* valid commits read */
    uint64_t last_seq;         /* of the last valid record */
    uint64_t last_commit_seq;  /* 0 when there is none */
    h128 chain;                /* chain value of the last valid commit */
    uint64_t dropped_records;  /* valid records after the last commit */
    uint64_t dropped_bytes;    /* bytes after the last commit that were cut */
    /* Where a writer continues: the end of the last valid commit. */
    uint64_t resume_segment;
    uint64_t resume_offset;
    uint64_t resume_first_seq;  /* first_seq of the resume segment's header */
    uint64_t segment_first;     /* lowest segment number present */
    uint64_t segment_last;      /* highest segment with a valid header */
    uint64_t segment_files;     /* segment files present, spares included */
    uint64_t first_seq;         /* of the first record read (1: the log is whole) */
    /* A log whose oldest kept segment begins inside a commit (the commit
     * started in a segment a checkpoint made obsolete): the records up to
     * and including this one finish that commit. They are covered by the
     * checkpoint, not damage; 0 when the log starts at a commit boundary. */
    uint64_t covered_to_seq;
    uint64_t leftover_segments; /* covered segment files not read (see cursor_open) */
} log_end;

typedef struct log_cursor log_cursor;

/* Where to start reading instead of the first segment: just after a commit
 * (a checkpoint's position). Segments before `segment` are not read. */
typedef struct cursor_start {
    uint64_t segment, offset;
    uint64_t next_seq;    /* the sequence number of the record at offset */
    uint64_t commit_seq;  /* of the commit that ends there */
    uint64_t commits;     /* commits up to and including it */
    h128 chain;           /* its chain value */
    uint64_t salt;
    uint32_t generation;  /* of the writer that wrote it: later records are not older */
} cursor_start;

/* Opens the log of the store in dir_fd (the descriptor is not taken) from
 * its oldest record. covered_segment is the segment of the store's
 * checkpoint (0: none): segment files below it that do not run without a gap
 * up to it are left over from a retention a crash interrupted; they are
 * covered by the checkpoint and not read (end->leftover_segments counts
 * them). Without a checkpoint a gap is corruption. */
MUST_CHECK int cursor_open(int dir_fd, uint32_t flags, const kern_ops *kern, uint64_t covered_segment,
                log_cursor **out);
/* The same from `start` (a checkpoint's position; NULL: the oldest record).
 * Segments before start->segment are not read. */
MUST_CHECK int cursor_open_at(int dir_fd, uint32_t flags, const kern_ops *kern, const cursor_start *start,
                   log_cursor **out);
/* The next valid record, or *done once the log has ended (then cursor_end
 * says how). Returns the end status when the log ended in corruption.
 * rec->payload stays valid until the next call (or cursor_close).
 * Valid records after the last commit are returned too: a caller that
 * applies records applies only those up to end->last_commit_seq, which a
 * first pass tells it. */
MUST_CHECK int cursor_next(log_cursor *c, log_rec *rec, bool *done);
const log_end *cursor_end(const log_cursor *c);
/* The segment the last returned record is in. */
uint64_t cursor_segment(const log_cursor *c);
/* The commits that were aborted, as pairs (first seq, ABORT seq) in log
 * order; the caller takes the array (free it). */
void cursor_take_aborted(log_cursor *c, uint64_t **pairs, uint64_t *count);
/* The aborted commits found so far, as cursor_take_aborted gives them; the
 * array stays the cursor's and moves when it grows (copy what is needed). */
void cursor_aborted_view(const log_cursor *c, const uint64_t **pairs, uint64_t *count);
/* Whether seq lies in one of the aborted ranges (sorted pairs). */
bool seq_aborted(const uint64_t *pairs, uint64_t count, uint64_t seq);
void cursor_close(log_cursor *c);

/* The store directory in dir_fd opened for listing on a descriptor of its
 * own (never a dup, whose read position other threads' listings share);
 * NULL with errno set when it cannot be. closedir() it. */
DIR *store_dir_listing(int dir_fd);
/* "log-%010llu.seg" */
void segment_name(uint64_t segment_no, char out[32]);
/* The segment files of the store in dir_fd, sorted by number: *numbers is
 * allocated (free it), *count at most SEGMENT_FILES_MAX. */
enum { SEGMENT_FILES_MAX = 1 << 20 };
MUST_CHECK int segment_list(int dir_fd, uint64_t **numbers, uint32_t *count);
/* Whether the sorted segment numbers have a gap. */
bool segment_gap(const uint64_t *numbers, uint32_t count);

#endif /* MMSB_TLOG_CURSOR_H */
