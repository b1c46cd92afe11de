/*
 * format.h - the log format of FORMAT.md in C: sizes, types, and the
 * encoding and decoding of headers and payloads. Decoders treat their input
 * as hostile: every length is checked before it is used.
 */
#ifndef MMSB_TLOG_FORMAT_H
#define MMSB_TLOG_FORMAT_H

#include <string.h>

#include "../engine/base/base.h"
#include "../engine/base/bytes.h"
#include "../engine/base/kern.h"

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
#define SEG_DOUBLINGS_MAX 8 /* SEG_BYTES_MIN << 8 = SEG_BYTES_MAX */

/* The size a writer gives segment number no under the segment_bytes option
 * `largest`: a log starts at SEG_BYTES_MIN and doubles up to `largest`, so
 * that a small store is small on disk (FORMAT.md). Each header records the
 * size its segment got; this is for making segments and for estimates. */
static inline uint64_t seg_size_grown(uint64_t largest, uint64_t no) {
    uint64_t doublings = no - 1 < SEG_DOUBLINGS_MAX ? no - 1 : SEG_DOUBLINGS_MAX;
    uint64_t size = SEG_BYTES_MIN << doublings;
    return size < largest ? size : largest;
}

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

/* Payload layouts (FORMAT.md): sizes of the fixed-size payloads and the
 * offsets of the fields that are not at the start. */
enum {
    CREATE_REC_BYTES = 24,        /* page id, size, flags, reserved u32 */
    CREATE_OFF_SIZE = 8,
    CREATE_OFF_FLAGS = 16,
    CREATE_OFF_RESERVED = 20,
    FREE_REC_BYTES = 8,           /* page id */
    UNDERIVE_REC_BYTES = 8,       /* child id */
    EDGE_REC_BYTES = 16,          /* parent id, child id */
    ABORT_REC_BYTES = 8,          /* first seq of the voided commit */
    SEAL_REC_BYTES = 16,          /* next segment, end offset */
    DELTA_OFF_EPOCH = 8,          /* after the page id */
    DELTA_OFF_RANGE = 16,         /* offset, len, form, reserved u32 */
    DERIVED_OFF_SIGNATURE = 16,
    DERIVED_OFF_RANGE = 32,
    RANGE_OFF_LEN = 8,
    RANGE_OFF_FORM = 16,
    RANGE_OFF_RESERVED = 20,
    DERIVE_OFF_OP = 8,            /* child id, then op, version, flags, count, params len, reserved */
    DERIVE_OFF_VERSION = 12,
    DERIVE_OFF_FLAGS = 16,
    DERIVE_OFF_PARENT_COUNT = 20,
    DERIVE_OFF_PARAMS_LEN = 24,
    DERIVE_OFF_RESERVED = 28,
    COMMIT_OFF_DURABLE = 8,       /* first seq, durable hint, flags, count, chain */
    COMMIT_OFF_FLAGS = 16,
    COMMIT_OFF_COUNT = 20,
    COMMIT_OFF_CHAIN = 24,
};
_Static_assert(DELTA_FIXED_BYTES == DELTA_OFF_RANGE + 24, "DELTA: id, epoch, range of 24 bytes");
_Static_assert(DERIVED_FIXED_BYTES == DERIVED_OFF_RANGE + 24, "DERIVED: id, epoch, signature, range");
_Static_assert(COMMIT_FIXED_BYTES == COMMIT_OFF_CHAIN + 16, "COMMIT: the chain ends the fixed part");
_Static_assert(DERIVE_FIXED_BYTES == DERIVE_OFF_RESERVED + 4, "DERIVE: the reserved word ends the fixed part");
enum { COMMIT_HAS_ROOT = 1, COMMIT_CLOSE = 2 };

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

/* A page's flags (PAGE_CREATE, checkpoints, export streams): 0, or one
 * placement, MMSB_PAGE_HOST or MMSB_PAGE_DEVICE. */
static inline bool page_flags_valid(uint32_t flags) {
    return flags == 0 || flags == MMSB_PAGE_HOST || flags == MMSB_PAGE_DEVICE;
}

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
/* ---- encoders: the inverse of the decoders above, byte for byte ---------------- */

void rec_encode_create(uint8_t out[CREATE_REC_BYTES], uint64_t page_id, uint64_t size_bytes, uint32_t flags);
void rec_encode_free(uint8_t out[FREE_REC_BYTES], uint64_t page_id);
void rec_encode_underive(uint8_t out[UNDERIVE_REC_BYTES], uint64_t child);
void rec_encode_edge(uint8_t out[EDGE_REC_BYTES], uint64_t parent, uint64_t child);
void rec_encode_abort(uint8_t out[ABORT_REC_BYTES], uint64_t first_seq);
void rec_encode_seal(uint8_t out[SEAL_REC_BYTES], uint64_t next_segment, uint64_t end_offset);
/* The payload bytes of a DERIVE record with d's counts. */
uint64_t rec_derive_bytes(uint32_t parent_count, uint32_t params_len);
/* DERIVE: the fixed part and d->params; the parents are put one by one. */
void rec_encode_derive(uint8_t *out, const rec_derive *d);
void rec_encode_derive_parent(uint8_t *out, uint32_t k, uint64_t parent);
/* The fixed part of a DELTA (signature NULL) or DERIVED record; the body
 * (d->form's bytes) follows at the returned offset and is the caller's. */
uint32_t rec_encode_delta_fixed(uint8_t *out, const rec_delta *d, const h128 *signature);
/* The fixed part of a COMMIT, chain zero; the chain is put later. */
void rec_encode_commit(uint8_t *out, const rec_commit *c, const h128 *root);
void rec_encode_commit_chain(uint8_t *out, h128 chain);

/* Checks any known type's payload; unknown skippable types pass. */
int rec_check_payload(const log_rec *r, const kern_ops *k);

const char *rec_type_name(uint16_t type);

#endif /* MMSB_TLOG_FORMAT_H */
