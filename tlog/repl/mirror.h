/*
 * mirror.h - a replica's log: the primary's log bytes, written where they
 * lay on the primary, each group checked before it counts.
 *
 * A follower receives byte ranges of the primary's segments (frame.h) in
 * log order. It writes them into its own segment files at the same places
 * and, at the end of every group (a commit boundary), reads what it wrote
 * with the log cursor from its last checked commit: CRCs, salt, sequence
 * numbers, generations, SEALs, segment headers and chain values, exactly as
 * recovery would. A group that fails is removed again and refused; nothing
 * after it is written. Checked groups are synced in batches (32 MiB), when
 * the log moves to the next segment, before the marker's hint names them,
 * and at close; a follower that crashes cuts what it had not synced and
 * takes it from the stream again. So the replica's log is the primary's log byte for byte, and a replica is
 * an ordinary store: readers open it read-only, the reading commands read
 * it, and once promoted (the REPLICA marker removed) a writer continues it.
 *
 * The REPLICA marker file names the stream the store follows and, as a
 * hint written after syncs, the stream sequence and log place reached. A
 * writer refuses a store that has one (engine.c).
 */
#ifndef MMSB_TLOG_REPL_MIRROR_H
#define MMSB_TLOG_REPL_MIRROR_H

#include "../cursor.h"
#include "frame.h"

enum { REPLICA_STREAM_MAX = 64 }; /* characters of a stream name, without the NUL */

typedef struct replica_marker {
    char stream[REPLICA_STREAM_MAX + 1];
    uint64_t salt;       /* 0 until the first group is checked */
    uint64_t stream_seq; /* the last message whose bytes were checked and synced */
    log_point synced;    /* the end of the last commit synced when the marker was written */
} replica_marker;

/* Reads dir_fd's REPLICA marker: *found false when there is none;
 * MMSB_ECORRUPT when it cannot be parsed. */
MUST_CHECK int replica_marker_read(int dir_fd, replica_marker *out, bool *found);
/* Removes the marker, durably (promotion). */
MUST_CHECK int replica_marker_remove(int dir_fd);
/* Whether a stream name is one this format accepts: 1 .. 64 of A-Z a-z 0-9 _ -. */
bool replica_stream_name_ok(const char *name);

typedef struct mirror_state {
    bool empty;            /* no checked commit yet */
    uint64_t salt;
    log_point valid;       /* the end of the last checked commit */
    log_point written;     /* the end of the bytes written (>= valid) */
    uint64_t last_commit_seq, commits;
    h128 chain;            /* of the last checked commit */
    uint64_t stream_seq;   /* the message that ended the last checked group */
    uint64_t groups_checked, bytes_written;
    uint64_t tail_cut_bytes; /* an unsynced tail cut at open (a crash of the follower) */
    uint64_t segment_bytes;  /* the size of the segment the log ends in (SEG_BYTES_MAX until one is open) */
} mirror_state;

typedef struct log_mirror log_mirror;

/* Opens (creating dir if needed) the replica in dir that follows `stream`:
 * takes the store's lock, checks or writes its marker, checks its log and
 * cuts whatever lies after its last commit. A directory that holds a store
 * which is not a replica of `stream` is refused. */
MUST_CHECK int mirror_open(const char *dir, const char *stream, const kern_ops *kern, log_mirror **out);
/* Takes one message (stream sequence stream_seq). *taken is false when the
 * replica already holds its bytes (a re-sent or replayed message). A message
 * that does not continue the log where it ends, or a group that fails its
 * check, is refused with MMSB_ECORRUPT and leaves the log as before it. */
MUST_CHECK int mirror_accept(log_mirror *m, const frame_meta *f, const uint8_t *body, uint64_t len, uint64_t stream_seq,
                  bool *taken);
/* The group the last mirror_accept finished (groups_checked counts them):
 * where it began (the commit before it; from_genesis: the log's start), its
 * last commit, and the aborted (first, ABORT) pairs inside it, so that a
 * replica's state can apply it (engine/replica.c). Valid until the next
 * mirror_accept. */
typedef struct mirror_group {
    bool from_genesis;
    cursor_start from;
    uint64_t to_seq;
    const uint64_t *aborted;
    uint64_t aborted_count;
} mirror_group;
void mirror_last_group(const log_mirror *m, mirror_group *out);
/* Writes the marker's hint (what is checked and synced now). */
MUST_CHECK int mirror_note(log_mirror *m);
void mirror_get_state(const log_mirror *m, mirror_state *out);
/* Notes the hint and releases everything. */
int mirror_close(log_mirror *m);

#endif /* MMSB_TLOG_REPL_MIRROR_H */
