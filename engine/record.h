/*
 * record.h - appending the records of a change to the log: the engine's
 * values in, tlog/format.c's encoders out. A record that is appended here
 * is decoded again in debug builds (MMSB_DEBUG_RECORDS) before it counts.
 */
#ifndef MMSB_RECORD_H
#define MMSB_RECORD_H

#include "../tlog/format.h"
#include "state.h"

/* A change of one page, as logged: one DELTA (or DERIVED) record per block
 * of up to 64 KiB with bits set. */
typedef struct delta_part {
    uint16_t type;            /* REC_DELTA or REC_DERIVED */
    uint64_t page_id, epoch, base;
    h128 signature;           /* REC_DERIVED */
    const uint8_t *mask;      /* bit 0 = byte `base` of the page */
    uint64_t block_len;
    uint64_t first, last, count;
    const uint8_t *dense;     /* new bytes, block-relative; or NULL and ... */
    const uint8_t *packed;    /* ... packed in mask order */
} delta_part;

int record_delta_part(mmsb_engine *e, const delta_part *part) MUST_CHECK;
/* A DERIVED record without bytes: the signature moved, the bytes did not. */
int record_backdate(mmsb_engine *e, uint64_t id, uint64_t epoch, h128 signature)
    MUST_CHECK;
int record_create(mmsb_engine *e, uint64_t id, uint64_t size_bytes, uint32_t flags)
    MUST_CHECK;
int record_free(mmsb_engine *e, uint64_t id) MUST_CHECK;
/* DERIVE of child n as the graph holds it now. */
int record_derive(mmsb_engine *e, uint64_t child, uint32_t n) MUST_CHECK;
int record_underive(mmsb_engine *e, uint64_t child) MUST_CHECK;
int record_edge(mmsb_engine *e, uint16_t type, uint64_t parent, uint64_t child)
    MUST_CHECK;

#endif /* MMSB_RECORD_H */
