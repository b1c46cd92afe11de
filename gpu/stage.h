/*
 * stage.h - staged device work as every backend sends it: a buffer of bytes
 * (masks, payloads, copies) and a list of items over it (dev_logic.h's
 * dev_item), each at most DEV_ITEM_BYTES of device memory, so that one
 * launch runs a whole submit with a block per item. The host builds it
 * here; the emulated device runs the items on the host and a CUDA device in
 * one kernel, through the same dev_item_run.
 *
 * Each staged op keeps the count of bytes the host changed on its mirror;
 * after the device ran the items, stage_check compares the device's counts
 * with them, so a copy that diverged from its mirror is found.
 */
#ifndef MMSB_GPU_STAGE_H
#define MMSB_GPU_STAGE_H

#include "dev_logic.h"
#include "device.h"

enum {
    STAGE_NOT_COUNTED = 0,          /* expected_plus1 of an op whose bytes are not counted */
    GPU_STAGE_BYTES_PER_ITEM = 64,  /* backends give a stage one item (and op) per this many bytes */
};

typedef struct gpu_stage {
    uint8_t *bytes; /* the caller's memory (pinned on a GPU) */
    uint64_t bytes_cap, bytes_used;
    dev_item *items;
    uint32_t items_cap, items_used;
    /* Per op: the host's changed-byte count plus one (STAGE_NOT_COUNTED:
     * a zero fill or a copy). */
    uint64_t *expected_plus1;
    uint32_t ops_cap, ops_used;
} gpu_stage;

void stage_init(gpu_stage *s, uint8_t *bytes, uint64_t bytes_cap, dev_item *items, uint32_t items_cap,
                uint64_t *expected_plus1, uint32_t ops_cap);
/* Forgets everything staged (after a submit). */
void stage_reset(gpu_stage *s);
/* The longest op, and the most bytes one op may carry. */
uint64_t stage_max(const gpu_stage *s);

/* false, and nothing staged, when there is no room now. */
bool stage_zero(gpu_stage *s, uint64_t offset, uint64_t len);
bool stage_copy(gpu_stage *s, uint64_t offset, const uint8_t *src, uint64_t len);
bool stage_delta(gpu_stage *s, const gpu_delta *d);

/* After the items ran: counts[op] is what the device changed for each op.
 * MMSB_EIO, naming the first op whose count differs from the host's. */
int stage_check(const gpu_stage *s, const uint64_t *counts, const char *device) MUST_CHECK;

#endif /* MMSB_GPU_STAGE_H */
