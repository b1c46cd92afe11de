/*
 * link.h - the connection to a NATS JetStream stream that replication uses: the
 * few calls shipping and following make, with errors as MMSB_E* codes and
 * the server's words in mmsb_last_error().
 */
#ifndef MMSB_TLOG_REPL_LINK_H
#define MMSB_TLOG_REPL_LINK_H

#include "frame.h"

enum { LINK_SUBJECT_MAX = 80, LINK_SERVERS_MAX = 16 };

typedef struct nats_link nats_link;

/* One message of the stream: its headers (NULL when absent), its bytes
 * (valid until link_msg_free) and its stream sequence. */
typedef struct link_msg {
    void *handle;
    const char *values[FRAME_H_COUNT];
    const uint8_t *data;
    uint64_t len;
    uint64_t stream_seq;
    uint64_t publish_ns; /* when the stream stored it (wall clock, for lag reports); 0: unknown */
} link_msg;

typedef struct link_stream {
    bool exists;
    uint64_t first_seq, last_seq, messages;
    int64_t replicas;
} link_stream;

/* Connects to servers ("nats://host:port[,...]") for `stream`, whose
 * messages carry the subject "mmsb.<stream>". */
MUST_CHECK int link_open(const char *servers, const char *stream, uint64_t timeout_ms, nats_link **out);
void link_close(nats_link *l);
const char *link_subject(const nats_link *l);
const char *link_stream_name(const nats_link *l);

/* What the stream holds; MMSB_EINVAL when it exists but does not take the
 * link's subject. */
MUST_CHECK int link_stream_info(nats_link *l, link_stream *out);
/* Creates the stream: file storage, `replicas` copies, nothing expires. */
MUST_CHECK int link_stream_create(nats_link *l, int64_t replicas);

/* Message stream_seq of the stream; MMSB_ENOTFOUND when there is none. */
MUST_CHECK int link_get(nats_link *l, uint64_t stream_seq, link_msg *out);
void link_msg_free(link_msg *m);

/* Publishes one message, which the stream stores only if its last message
 * is expect_last (0: the stream is empty): MMSB_EFENCED when it is not (the
 * stream moved on: another writer published). *stream_seq_out is where it
 * was stored; *duplicate says the stream held it already (the same id). */
MUST_CHECK int link_publish(nats_link *l, const frame_meta *meta, const uint8_t *body, uint64_t len,
                            uint64_t expect_last, uint64_t *stream_seq_out, bool *duplicate);

/* Receives the stream's messages in order from start_seq on. */
MUST_CHECK int link_subscribe(nats_link *l, uint64_t start_seq);
/* The next message, or *timed_out after timeout_ms without one. */
MUST_CHECK int link_next(nats_link *l, uint64_t timeout_ms, link_msg *out, bool *timed_out);

#endif /* MMSB_TLOG_REPL_LINK_H */
