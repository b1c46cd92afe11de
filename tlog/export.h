/*
 * export.h - the export stream (EXPORT.md): a portable image of a store's
 * committed state, written by mmsb_export and read by mmsb_import.
 *
 * This file knows the stream's bytes and nothing of the engine. The reader
 * treats every byte as hostile: each frame is checked (CRC, length, type,
 * fields, order) before it is handed out, and it needs one frame's worth of
 * memory whatever the stream claims.
 */
#ifndef MMSB_TLOG_EXPORT_H
#define MMSB_TLOG_EXPORT_H

#include "checkpoint/lmdb_store.h"

enum {
    XP_FORMAT = 1,
    XP_HEADER_BYTES = 128,
    XP_FRAME_HEAD_BYTES = 16,
    XP_CHUNK_BYTES = 1 << 20,          /* a BYTES frame carries at most this many page bytes */
    XP_PAGE_BODY_BYTES = 32,
    XP_BYTES_HEAD_BYTES = 16,
    XP_DERIVE_HEAD_BYTES = 40,
    XP_END_BODY_BYTES = 48,
    XP_PARENTS_MAX = 65536,            /* MMSB_DERIVE_PARENTS_MAX */
    XP_PARAMS_MAX = 4096,              /* MMSB_DERIVE_PARAMS_MAX */
    XP_BODY_MAX = XP_BYTES_HEAD_BYTES + XP_CHUNK_BYTES,
};

/* Frame types, in the order a stream holds them. */
enum { XP_PAGE = 1, XP_BYTES = 2, XP_DERIVE = 3, XP_END = 4 };

#define XP_MAGIC "MMSBEXP1"

typedef struct xp_header {
    uint64_t salt;          /* the source store's (informative) */
    uint64_t commit_seq;    /* the last record the state holds; 0: a store without a commit */
    uint64_t commits;       /* commits up to it */
    h128 chain;             /* chain value of the last commit */
    h128 root;              /* state root */
    uint64_t page_id_next;
    uint64_t pages;         /* live pages */
    uint64_t derived;       /* derived pages */
    uint64_t page_bytes;    /* the live pages' sizes, summed */
} xp_header;

void xp_header_encode(const xp_header *h, uint8_t out[XP_HEADER_BYTES]);
MUST_CHECK int xp_header_decode(const uint8_t in[XP_HEADER_BYTES], xp_header *h);

/* Frame encoding: the body goes at frame + XP_FRAME_HEAD_BYTES; these write
 * it and return its length, and xp_frame_seal then fills the head. */
uint32_t xp_encode_page(uint8_t *body, const ckpt_page *p);
uint32_t xp_encode_bytes_head(uint8_t *body, uint64_t page_id, uint64_t offset);
/* The derivation's head, then its parent_count ids (`parents`: u64 in
 * memory order), then its params. */
uint32_t xp_encode_derive(uint8_t *body, const ckpt_derive *d, const uint64_t *parents);
typedef struct xp_end {
    uint64_t frames;        /* frames before the END frame */
    uint64_t pages, derived, page_bytes;
    h128 root;
} xp_end;
uint32_t xp_encode_end(uint8_t *body, const xp_end *end);
void xp_frame_seal(uint8_t *frame, uint32_t type, uint32_t body_len);

/* Reading. `read` fills up to len bytes and returns how many (0 at the
 * end of the stream), or a negative MMSB_E* code with the detail set. */
typedef int64_t (*xp_read_fn)(void *ctx, uint8_t *buf, uint64_t len);

typedef struct xp_item {
    uint32_t type;
    ckpt_page page;         /* XP_PAGE: bytes NULL; XP_BYTES: id, and bytes */
    uint64_t offset, len;   /* XP_BYTES: where in the page, how many */
    ckpt_derive derive;     /* XP_DERIVE: parents as little-endian u64 */
} xp_item;

typedef struct xp_reader {
    xp_read_fn read;
    void *ctx;
    uint8_t *frame;         /* one frame: head and the largest body */
    xp_header hdr;
    uint32_t stage;         /* the frame types allowed next */
    uint64_t page_id, page_size, page_end;  /* the page being read; where its bytes got to */
    uint64_t last_child;
    uint64_t frames, pages, derived, page_bytes;
    uint64_t stream_bytes;  /* read so far */
} xp_reader;

/* Reads and checks the header. On failure nothing is held. */
MUST_CHECK int xp_reader_open(xp_reader *r, xp_read_fn read, void *ctx);
/* The next frame, checked against the ones before it and the header; after
 * XP_END it has also checked that the stream ends there. Items point into
 * the reader's buffer until the next call. */
MUST_CHECK int xp_reader_next(xp_reader *r, xp_item *it);
void xp_reader_close(xp_reader *r);

#endif /* MMSB_TLOG_EXPORT_H */
