/*
 * format.h - the log format of FORMAT.md in C: sizes, types, and the
 * encoding and decoding of headers and payloads. Decoders treat their input
 * as hostile: every length is checked before it is used.
 */
#ifndef MMSB_TLOG_FORMAT_H
#define MMSB_TLOG_FORMAT_H

#include <string.h>

#include "../engine/base.h"
#include "../engine/kern.h"

enum {
    LOG_FORMAT_VERSION = 2, /* 2: a page's epoch rises once per commit */
    SEG_HEADER_BYTES = 4096,
    REC_HEADER_BYTES = 32,
    REC_ALIGN = 8,
    REC_PAYLOAD_MAX = 1 << 20,
    DELTA_LEN_MAX = 65536,
    DELTA_FIXED_BYTES = 40,
    COMMIT_FIXED_BYTES = 40,
    COMMIT_ROOT_BYTES = 16,
};

#define SEG_MAGIC "MMSBLOG1"
#define SEG_BYTES_MIN (4ull << 20)
#define SEG_BYTES_MAX (1ull << 30)
#define SEED_CHAIN 0x4d4d53422d63686eull /* "MMSB-chn" */

/* Record types (FORMAT.md). Types from 0x8000 on may be skipped. */
enum {
    REC_PAGE_CREATE = 1,
    REC_PAGE_FREE = 2,
    REC_DELTA = 3,
    REC_COMMIT = 4,
    REC_SEAL = 5,
    REC_DERIVE = 6,
    REC_UNDERIVE = 7,
    REC_EDGE_ADD = 8,
    REC_EDGE_REMOVE = 9,
    REC_DERIVED = 10,
    REC_ABORT = 11,
    REC_CHECKPOINT = 12,
    REC_TYPE_KNOWN_MAX = 12,
    REC_TYPE_SKIPPABLE = 0x8000,
};

enum { DELTA_NONE = 0, DELTA_FULL = 1, DELTA_SPARSE = 2 };
enum {
    DERIVE_FIXED_BYTES = 32,
    DERIVED_FIXED_BYTES = 56,
    DERIVE_PARAMS_MAX = 4096,
    DERIVE_PARENTS_MAX = 65536,
};
enum { COMMIT_HAS_ROOT = 1, COMMIT_CLOSE = 2 };

/* ---- little-endian access ---------------------------------------------------- */

static inline uint16_t get_le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t get_le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t get_le64(const uint8_t *p) {
    return (uint64_t)get_le32(p) | ((uint64_t)get_le32(p + 4) << 32);
}
static inline void put_le16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* A 128-bit value in canonical (big-endian, high half first) byte order. */
static inline void put_h128(uint8_t *p, h128 h) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(h.hi >> (56 - 8 * i));
    for (int i = 0; i < 8; i++) p[8 + i] = (uint8_t)(h.lo >> (56 - 8 * i));
}
static inline h128 get_h128(const uint8_t *p) {
    h128 h = {0, 0};
    for (int i = 0; i < 8; i++) h.hi = (h.hi << 8) | p[i];
    for (int i = 0; i < 8; i++) h.lo = (h.lo << 8) | p[8 + i];
    return h;
}

static inline uint64_t rec_slot_bytes(uint64_t payload_len) {
    return align_up_u64(REC_HEADER_BYTES + payload_len, REC_ALIGN);
}

/* ---- segment header ------------------------------------------------------------ */

typedef struct seg_header {
    uint64_t salt;
    uint64_t segment_no;
    uint64_t first_seq;
    uint64_t segment_bytes;
    uint32_t generation;
    h128 chain_in;
} seg_header;

void seg_header_encode(const seg_header *h, uint8_t out[SEG_HEADER_BYTES]);
/* 0, or MMSB_ECORRUPT / MMSB_EVERSION with a detail naming what is wrong. */
int seg_header_decode(const uint8_t in[SEG_HEADER_BYTES], seg_header *h);
bool seg_header_is_zero(const uint8_t in[SEG_HEADER_BYTES]);

/* ---- records --------------------------------------------------------------------- */

typedef struct log_rec {
    uint16_t type;
    uint16_t flags;
    uint32_t generation;
    uint32_t length;     /* payload bytes */
    uint64_t seq;
    uint64_t offset;     /* of the header within its segment */
    const uint8_t *payload;
} log_rec;

typedef struct rec_delta {
    uint64_t page_id, epoch, offset, len;
    uint32_t form;
    const uint8_t *mask;   /* SPARSE only */
    const uint8_t *bytes;  /* len bytes (FULL) or popcount(mask) (SPARSE) */
    uint64_t bytes_len;
} rec_delta;

/* A derived page's change: its new signature, and a DELTA-like body
 * (form DELTA_NONE: the output was identical, only the signature moved). */
typedef struct rec_derived {
    rec_delta d;      /* page_id is the child; epoch is after the change */
    h128 signature;
} rec_derived;

typedef struct rec_derive {
    uint64_t child;
    uint32_t op, op_version, flags, parent_count, params_len;
    const uint8_t *parents; /* parent_count little-endian u64 page ids */
    const uint8_t *params;
} rec_derive;

typedef struct rec_commit {
    uint64_t first_seq, durable_hint;
    uint32_t flags, record_count;
    h128 chain, root;
} rec_commit;

/* Structural checks of payloads; popcount comes from the caller's kernels.
 * Each returns 0 or MMSB_ECORRUPT with a detail. */
int rec_decode_create(const log_rec *r, uint64_t *page_id, uint64_t *size_bytes, uint32_t *flags);
int rec_decode_free(const log_rec *r, uint64_t *page_id);
int rec_decode_delta(const log_rec *r, const kern_ops *k, rec_delta *d);
int rec_decode_commit(const log_rec *r, rec_commit *c);
int rec_decode_seal(const log_rec *r, uint64_t *next_segment, uint64_t *end_offset);
int rec_decode_derive(const log_rec *r, rec_derive *d);
int rec_decode_underive(const log_rec *r, uint64_t *child);
int rec_decode_edge(const log_rec *r, uint64_t *parent, uint64_t *child);
int rec_decode_derived(const log_rec *r, const kern_ops *k, rec_derived *d);
int rec_decode_abort(const log_rec *r, uint64_t *first_seq);

/* A checkpoint marker: the checkpoint covering the log up to the COMMIT
 * with sequence number commit_seq was written (engine/CHECKPOINTS.md). */
typedef struct rec_checkpoint {
    uint64_t number;      /* checkpoints written in this store, this one included */
    uint64_t commit_seq;
    h128 chain;           /* chain value of that commit */
    h128 root;            /* state root after it */
} rec_checkpoint;
enum { CHECKPOINT_REC_BYTES = 48 };
int rec_decode_checkpoint(const log_rec *r, rec_checkpoint *c);
void rec_encode_checkpoint(const rec_checkpoint *c, uint8_t out[CHECKPOINT_REC_BYTES]);
/* Checks any known type's payload; unknown skippable types pass. */
int rec_check_payload(const log_rec *r, const kern_ops *k);

const char *rec_type_name(uint16_t type);

#endif /* MMSB_TLOG_FORMAT_H */
