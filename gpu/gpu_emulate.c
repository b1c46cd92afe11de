/*
 * gpu_emulate.c - the emulated device (MMSB_GPU_EMULATE): device memory is
 * private host memory, and submitted work runs at once, on the calling
 * thread, through the kernels' per-element logic (dev_logic.h) one unit at
 * a time, as a kernel's threads would.
 *
 * It is there so that every machine runs the device location's routing,
 * staging, batching and failure paths, and the device digests, in the whole
 * test suite: a device copy that a staging mistake left wrong shows as a
 * wrong digest, and a delta whose count on the copy differs from the host's
 * count on its mirror fails the submit. It is not fast, and not meant to be.
 */
#include <stdlib.h>
#include <string.h>

#include "../engine/base/bytes.h"
#include "../engine/base/vm.h"
#include "dev_logic.h"
#include "device.h"

enum { OP_ZERO = 1, OP_COPY = 2, OP_DELTA = 3 };

/* One staged op; its bytes follow it (COPY: len; DELTA: the mask, then the
 * payload), padded to 8. */
typedef struct stage_op {
    uint32_t kind;
    uint32_t sparse;
    uint64_t offset, len, payload_len, changed;
} stage_op;

struct gpu_dev {
    vmap mem;               /* the "device memory" */
    uint8_t *staging;
    uint64_t staging_bytes, staged_bytes;
    uint32_t staged_ops;
    uint64_t calls;
    const uint8_t **parents;    /* MMSB_DERIVE_PARENTS_MAX: an operation's inputs */
    uint8_t chunk_secret[DEV_XXH_SECRET_BYTES]; /* XXH3's secret for SEED_CHUNK */
};

int gpu_emulate_open(const gpu_dev_config *cfg, gpu_dev **out) {
    ASSERT(cfg != NULL && out != NULL);
    ASSERT(cfg->staging_bytes >= 2 * sizeof(stage_op) && cfg->staging_bytes % 8 == 0);
    *out = NULL;
    gpu_dev *d = calloc(1, sizeof *d);
    if (d == NULL) return err_set(MMSB_ENOMEM, "mmsb_open: out of memory for the emulated device");
    d->staging = malloc(cfg->staging_bytes);
    d->parents = malloc(MMSB_DERIVE_PARENTS_MAX * sizeof *d->parents);
    int rc = d->staging == NULL || d->parents == NULL
                 ? err_set(MMSB_ENOMEM, "mmsb_open: out of memory for the device's staging buffer")
                 : vmap_open(&d->mem, NULL, cfg->bytes_max, 2 * 1024 * 1024);
    if (rc != 0) {
        free(d->parents);
        free(d->staging);
        free(d);
        return rc;
    }
    d->staging_bytes = cfg->staging_bytes;
    dev_xxh_secret_for_seed(dev_xxh_ksecret, SEED_CHUNK, d->chunk_secret);
    *out = d;
    return 0;
}

void gpu_dev_close(gpu_dev *d) {
    if (d == NULL) return;
    vmap_close(&d->mem);
    free(d->parents);
    free(d->staging);
    free(d);
}

const char *gpu_dev_name(const gpu_dev *d) {
    ASSERT(d != NULL);
    return "emulated (host memory)";
}

uint64_t gpu_dev_calls(const gpu_dev *d) { return d->calls; }
uint64_t gpu_dev_backed(const gpu_dev *d) { return d->mem.bytes_ready; }
uint64_t gpu_dev_stage_max(const gpu_dev *d) { return d->staging_bytes - sizeof(stage_op) - 8; }
bool gpu_dev_staged(const gpu_dev *d) { return d->staged_ops > 0; }

int gpu_dev_back(gpu_dev *d, uint64_t end_bytes) {
    ASSERT(d != NULL);
    d->calls++;
    if (end_bytes <= d->mem.bytes_ready) return 0;
    if (end_bytes > d->mem.bytes_max) {
        return err_set(MMSB_ENOSPC, "emulated device: %llu bytes of device memory asked for, %llu at most",
                       (unsigned long long)end_bytes, (unsigned long long)d->mem.bytes_max);
    }
    return vmap_ensure(&d->mem, end_bytes);
}

/* Room for an op with `bytes` after its header: where it goes, or NULL. */
static uint8_t *stage_room(gpu_dev *d, const stage_op *op, uint64_t bytes) {
    ASSERT(op->len > 0 && op->offset + op->len <= d->mem.bytes_ready);
    ASSERT(bytes <= gpu_dev_stage_max(d));
    uint64_t need = sizeof *op + align_up_u64(bytes, 8);
    if (need > d->staging_bytes - d->staged_bytes) return NULL;
    uint8_t *at = d->staging + d->staged_bytes;
    memcpy(at, op, sizeof *op);
    d->staged_bytes += need;
    d->staged_ops++;
    ASSERT(d->staged_bytes <= d->staging_bytes);
    return at + sizeof *op;
}

bool gpu_dev_stage_zero(gpu_dev *d, uint64_t offset, uint64_t len) {
    stage_op op = {.kind = OP_ZERO, .offset = offset, .len = len};
    return stage_room(d, &op, 0) != NULL;
}

bool gpu_dev_stage_copy(gpu_dev *d, uint64_t offset, const uint8_t *src, uint64_t len) {
    ASSERT(src != NULL);
    stage_op op = {.kind = OP_COPY, .offset = offset, .len = len};
    uint8_t *at = stage_room(d, &op, len);
    if (at != NULL) memcpy(at, src, len);
    return at != NULL;
}

bool gpu_dev_stage_delta(gpu_dev *d, const gpu_delta *delta) {
    ASSERT(delta != NULL && delta->mask != NULL && delta->payload != NULL);
    ASSERT(delta->sparse ? delta->payload_len <= delta->len : delta->payload_len == delta->len);
    uint64_t mask_bytes = (delta->len + 7) / 8;
    stage_op op = {.kind = OP_DELTA, .sparse = delta->sparse, .offset = delta->offset, .len = delta->len,
                   .payload_len = delta->payload_len, .changed = delta->changed};
    uint8_t *at = stage_room(d, &op, mask_bytes + delta->payload_len);
    if (at == NULL) return false;
    memcpy(at, delta->mask, mask_bytes);
    memcpy(at + mask_bytes, delta->payload, delta->payload_len);
    return true;
}

/* A delta on the copy, one mask byte (a kernel's thread) at a time. */
static int run_delta(gpu_dev *d, const stage_op *op, const uint8_t *bytes) {
    uint8_t *dst = d->mem.base + op->offset;
    const uint8_t *mask = bytes, *payload = bytes + (op->len + 7) / 8;
    uint64_t units = (op->len + 7) / 8, changed = 0;
    if (op->sparse) {
        if (dev_units_count(mask, units, 0, units) != op->payload_len) {
            return err_set(MMSB_EIO, "emulated device: a sparse delta at %llu has %llu payload bytes for its mask",
                           (unsigned long long)op->offset, (unsigned long long)op->payload_len);
        }
        changed = dev_apply_sparse_run(dst, payload, mask, op->len, 0, units, 0, true, NULL);
    } else {
        for (uint64_t t = 0; t < units; t++) {
            changed += dev_apply_dense_unit(dst, payload, mask, op->len, t, true, NULL);
        }
    }
    if (changed != op->changed) {
        return err_set(MMSB_EIO,
                       "emulated device: a delta at offset %llu changed %llu bytes of the device copy, %llu of "
                       "the host's: the copy had diverged",
                       (unsigned long long)op->offset, (unsigned long long)changed,
                       (unsigned long long)op->changed);
    }
    return 0;
}

int gpu_dev_submit(gpu_dev *d) {
    ASSERT(d != NULL);
    d->calls++;
    uint64_t at = 0;
    int rc = 0;
    for (uint32_t i = 0; i < d->staged_ops && rc == 0; i++) {
        ASSERT(at + sizeof(stage_op) <= d->staged_bytes);
        stage_op op;
        memcpy(&op, d->staging + at, sizeof op);
        const uint8_t *bytes = d->staging + at + sizeof op;
        ASSERT(op.offset + op.len <= d->mem.bytes_ready);
        uint64_t carried = 0;
        if (op.kind == OP_ZERO) {
            memset(d->mem.base + op.offset, 0, op.len);
        } else if (op.kind == OP_COPY) {
            memcpy(d->mem.base + op.offset, bytes, op.len);
            carried = op.len;
        } else {
            ASSERT(op.kind == OP_DELTA);
            rc = run_delta(d, &op, bytes);
            carried = (op.len + 7) / 8 + op.payload_len;
        }
        at += sizeof op + align_up_u64(carried, 8);
    }
    ASSERT(rc != 0 || at == d->staged_bytes);
    d->staged_bytes = 0;
    d->staged_ops = 0;
    return rc;
}

int gpu_dev_hash_chunks(gpu_dev *d, uint64_t page_offset, uint64_t page_bytes, const uint64_t *chunks,
                        uint32_t count, h128 *out) {
    ASSERT(d != NULL && chunks != NULL && out != NULL && page_bytes > 0);
    ASSERT(page_offset + page_bytes <= d->mem.bytes_ready);
    d->calls++;
    const uint8_t *page = d->mem.base + page_offset;
    for (uint32_t i = 0; i < count; i++) {
        uint8_t canonical[DEV_DIGEST_BYTES];
        dev_chunk_digest(page, page_bytes, chunks[i], dev_xxh_ksecret, d->chunk_secret, canonical);
        out[i] = get_h128(canonical);
    }
    return 0;
}

int gpu_dev_op(gpu_dev *d, uint32_t op, const uint64_t *offsets, uint32_t n, uint64_t lo, uint64_t hi,
               uint8_t *out) {
    ASSERT(d != NULL && offsets != NULL && out != NULL);
    ASSERT(dev_op_is_lanewise(op) && n >= 1 && n <= MMSB_DERIVE_PARENTS_MAX && lo <= hi);
    d->calls++;
    for (uint32_t k = 0; k < n; k++) {
        ASSERT(offsets[k] + hi <= d->mem.bytes_ready);
        d->parents[k] = d->mem.base + offsets[k];
    }
    uint64_t units = (hi - lo + 7) / 8;
    for (uint64_t t = 0; t < units; t++) dev_op_unit(op, d->parents, n, lo, hi, t, out);
    return 0;
}

uint32_t gpu_dev_kind(const gpu_dev *d) {
    ASSERT(d != NULL);
    return MMSB_GPU_EMULATE;
}

int gpu_dev_view(gpu_dev *d, uint64_t offset, uint64_t len, const void **data_out, uint64_t *stream_out) {
    ASSERT(d != NULL && data_out != NULL && stream_out != NULL);
    ASSERT(len > 0 && offset + len <= d->mem.bytes_ready);
    d->calls++;
    *data_out = d->mem.base + offset;
    *stream_out = 0; /* submitted work is done when gpu_dev_submit returns */
    return 0;
}

int gpu_dev_read(gpu_dev *d, uint64_t offset, uint8_t *dst, uint64_t len) {
    ASSERT(d != NULL && dst != NULL);
    ASSERT(offset + len <= d->mem.bytes_ready);
    d->calls++;
    memcpy(dst, d->mem.base + offset, len);
    return 0;
}
