/*
 * frame.h - the replication message of FORMAT.md ("Replication"): a byte
 * range of one log segment, shipped as it lies on disk, with headers that
 * say where it goes and what it finishes.
 *
 * The log is already framed, CRC'd, salted and hash-chained, so a message
 * adds no encoding of its own: a follower writes the bytes where they lay on
 * the primary and checks them with the same cursor that recovery uses. The
 * header values are text (NATS headers); parsing treats them as hostile.
 */
#ifndef MMSB_TLOG_REPL_FRAME_H
#define MMSB_TLOG_REPL_FRAME_H

#include "../format.h"

enum {
    FRAME_BODY_MAX = (1 << 20) - 4096, /* log bytes in a message: with its headers, within NATS's default 1 MiB */
    FRAME_FIRST = 1u << 0,    /* the range starts a group (at a commit boundary) */
    FRAME_LAST = 1u << 1,     /* the range ends a group (at a commit boundary) */
    FRAME_VALUE_MAX = 48,     /* characters of one header value, with its NUL */
    FRAME_ID_MAX = 96,        /* characters of a message id, with its NUL */
};

/* A place in the log: a segment and a byte offset in it. */
typedef struct log_point {
    uint64_t segment, offset;
} log_point;

static inline int log_point_cmp(log_point a, log_point b) {
    if (a.segment != b.segment) return a.segment < b.segment ? -1 : 1;
    return (a.offset > b.offset) - (a.offset < b.offset);
}

/* Bytes of log from `from` to `to` (0 when `to` is not after it), the
 * segments between them counted whole at the size a writer gives them under
 * segment_bytes (seg_size_grown; a segment a SEAL ended early counts full:
 * an upper bound). */
static inline uint64_t log_point_distance(log_point from, log_point to, uint64_t segment_bytes) {
    if (log_point_cmp(to, from) <= 0) return 0;
    if (to.segment == from.segment) return to.offset - from.offset;
    uint64_t from_size = seg_size_grown(segment_bytes, from.segment);
    uint64_t first = from_size > from.offset ? from_size - from.offset : 0;
    uint64_t last = to.offset > SEG_HEADER_BYTES ? to.offset - SEG_HEADER_BYTES : 0;
    uint64_t between = 0, no = from.segment + 1;
    for (; no < to.segment && no <= SEG_DOUBLINGS_MAX + 1; no++) { /* the growing ones, at most 9 */
        between += seg_size_grown(segment_bytes, no) - SEG_HEADER_BYTES;
    }
    if (no < to.segment) between += (to.segment - no) * (seg_size_grown(segment_bytes, no) - SEG_HEADER_BYTES);
    return first + between + last;
}

/* What a message's headers say about its body. */
typedef struct frame_meta {
    uint64_t salt;      /* the store's identity */
    log_point at;       /* where the body's first byte lies */
    uint64_t first_seq; /* the first record that starts in the body; 0: none */
    uint64_t last_seq;  /* the last record that ends in it; with LAST, the group's last commit */
    uint32_t flags;     /* FRAME_FIRST, FRAME_LAST */
    h128 chain;         /* with LAST: the chain value of that commit */
} frame_meta;

/* The header names, in the order of frame_values. */
enum {
    FRAME_H_SALT,
    FRAME_H_SEGMENT,
    FRAME_H_OFFSET,
    FRAME_H_FIRST_SEQ,
    FRAME_H_LAST_SEQ,
    FRAME_H_FLAGS,
    FRAME_H_CHAIN,
    FRAME_H_COUNT,
};
extern const char *const frame_header_names[FRAME_H_COUNT];

typedef struct frame_values {
    char v[FRAME_H_COUNT][FRAME_VALUE_MAX];
} frame_values;

void frame_format(const frame_meta *m, frame_values *out);
/* 0, or MMSB_ECORRUPT naming the header that is missing (NULL) or wrong.
 * body_len is the message's data length. */
MUST_CHECK int frame_parse(const char *const values[FRAME_H_COUNT], uint64_t body_len, frame_meta *out);
/* The message id that makes a re-sent message a no-op: the store, the
 * place and a hash of the bytes, so that different bytes never share one. */
void frame_msg_id(const frame_meta *m, const uint8_t *body, uint64_t body_len, char out[FRAME_ID_MAX]);

#endif /* MMSB_TLOG_REPL_FRAME_H */
