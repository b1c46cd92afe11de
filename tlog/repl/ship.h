/*
 * ship.h - publishing a store's committed log to a JetStream stream as
 * FORMAT.md's replication messages: the shipper that `mmsb ship` runs
 * beside a writer and that a writer in REPLICATED durability runs itself.
 *
 * The shipper reads the log with the cursor every reader uses, from the
 * last commit it shipped, and cuts what is committed into groups: the bytes
 * from one commit boundary to a later one, as they lie in the segment files,
 * in messages of at most 1 MiB that never span two segments. Every message
 * expects the stream's last sequence to be the one before it: the stream's
 * order is the log's, and a second shipper (or a promoted replica's)
 * fences the first.
 */
#ifndef MMSB_TLOG_REPL_SHIP_H
#define MMSB_TLOG_REPL_SHIP_H

#include "../cursor.h"
#include "link.h"

typedef struct shipper shipper;

typedef struct ship_stats {
    uint64_t groups, messages, duplicates, bytes;
    uint64_t shipped_seq; /* the stream holds the log up to this record; 0: nothing yet */
    uint64_t stream_last; /* the stream's last message */
    uint64_t at_segment;  /* the segment the next group starts in; 0: nothing shipped yet */
    uint64_t at_offset;   /* and the offset there */
} ship_stats;

/* Opens a shipper of the log in dir_fd (not taken) to the link's stream
 * (created with `replicas` copies when `create` and it does not exist), and
 * finds where the stream ends in this log. covered_segment is the store's
 * checkpoint segment (cursor_open). Refused: a stream that holds another
 * store's log or that does not exist (MMSB_EINVAL, MMSB_ENOTFOUND), one that
 * holds another history (MMSB_EFENCED), a log whose start a checkpoint
 * removed before the stream had it (MMSB_EINVAL). */
MUST_CHECK int shipper_open(int dir_fd, const kern_ops *kern, uint64_t covered_segment, nats_link *link, bool create,
                            int64_t replicas, shipper **out);
/* Whether to sync the segments before publishing what they hold (a shipper
 * beside a writer in NONE or GROUP durability); default on. */
void shipper_set_sync(shipper *s, bool sync_first);
/* Ships one group: the commits after the last one shipped, up to record
 * max_seq; *shipped is false when there was none. MMSB_EFENCED when the
 * stream moved on without it; MMSB_EREPLICA when the stream did not store a
 * message (it is sent again by the next call). */
MUST_CHECK int shipper_round(shipper *s, uint64_t max_seq, bool *shipped);
void shipper_get_stats(const shipper *s, ship_stats *out);
void shipper_close(shipper *s);

/* Where the stream's last whole group ends: the message with the LAST flag
 * found walking back from the stream's end (at most SHIP_WALK_BACK_MAX).
 * *found false when the stream holds none. */
enum { SHIP_WALK_BACK_MAX = 4096 };
MUST_CHECK int ship_last_group(nats_link *l, const link_stream *ls, frame_meta *meta, uint64_t *len,
                               uint64_t *stream_seq, bool *found);

#endif /* MMSB_TLOG_REPL_SHIP_H */
