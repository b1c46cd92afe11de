/*
 * device.c - device.h's functions over a backend (device_impl.h): the
 * staging every backend shares, the call count, and the checks of the
 * arguments, once for all backends.
 */
#include "device_impl.h"

void gpu_dev_close(gpu_dev *d) {
    if (d != NULL) d->ops->close(d);
}

const char *gpu_dev_name(const gpu_dev *d) { return d->name; }
uint64_t gpu_dev_calls(const gpu_dev *d) { return d->calls; }
uint64_t gpu_dev_staged_bytes(const gpu_dev *d) { return d->staged_bytes; }
uint64_t gpu_dev_waits(const gpu_dev *d) { return d->waits; }
uint64_t gpu_dev_backed(const gpu_dev *d) { return d->backed_bytes; }
uint64_t gpu_dev_stage_max(const gpu_dev *d) { return stage_max(&d->stage); }
bool gpu_dev_staged(const gpu_dev *d) { return d->stage.ops_used > 0; }
uint32_t gpu_dev_kind(const gpu_dev *d) { return d->ops->kind; }

int gpu_dev_back(gpu_dev *d, uint64_t end_bytes) {
    ASSERT(d != NULL);
    d->calls++;
    if (end_bytes <= d->backed_bytes) return 0;
    if (end_bytes > d->bytes_max) {
        return err_set(MMSB_ENOSPC, "%s: %llu bytes of device memory asked for, %llu at most", d->name,
                       (unsigned long long)end_bytes, (unsigned long long)d->bytes_max);
    }
    int rc = d->ops->back(d, end_bytes);
    ASSERT(rc != 0 || d->backed_bytes >= end_bytes);
    return rc;
}

bool gpu_dev_stage_zero(gpu_dev *d, uint64_t offset, uint64_t len) {
    ASSERT(len > 0 && offset + len <= d->backed_bytes);
    return stage_zero(&d->stage, offset, len);
}

bool gpu_dev_stage_copy(gpu_dev *d, uint64_t offset, const uint8_t *src, uint64_t len) {
    ASSERT(len > 0 && offset + len <= d->backed_bytes);
    if (!stage_copy(&d->stage, offset, src, len)) return false;
    d->staged_bytes += len;
    return true;
}

bool gpu_dev_stage_delta(gpu_dev *d, const gpu_delta *delta) {
    ASSERT(delta != NULL && delta->len > 0 && delta->offset + delta->len <= d->backed_bytes);
    if (!stage_delta(&d->stage, delta)) return false;
    d->staged_bytes += (delta->len + 7) / 8 + delta->payload_len;
    return true;
}

int gpu_dev_submit(gpu_dev *d) {
    ASSERT(d != NULL);
    d->calls++;
    int rc = d->stage.ops_used > 0 ? d->ops->submit(d) : 0;
    stage_reset(&d->stage);
    return rc;
}

int gpu_dev_hash_chunks(gpu_dev *d, const gpu_chunk_ref *refs, uint32_t count, h128 *out) {
    ASSERT(d != NULL && refs != NULL && out != NULL && count <= GPU_DEV_HASH_MAX);
    for (uint32_t i = 0; i < count; i++) {
        const gpu_chunk_ref *r = &refs[i];
        ASSERT(r->page_bytes > 0 && r->page_offset + r->page_bytes <= d->backed_bytes);
        ASSERT(r->chunk < (r->page_bytes + DEV_CHUNK_BYTES - 1) / DEV_CHUNK_BYTES);
    }
    d->calls++;
    return count == 0 ? 0 : d->ops->hash_chunks(d, refs, count, out);
}

int gpu_dev_op(gpu_dev *d, uint32_t op, const uint64_t *offsets, uint32_t n, uint64_t lo, uint64_t hi, uint64_t dst,
               uint8_t *out) {
    ASSERT(d != NULL && offsets != NULL && out != NULL);
    ASSERT(dev_op_is_lanewise(op) && n >= 1 && n <= gpu_dev_op_room(d) && lo <= hi);
    ASSERT(dst + hi <= d->backed_bytes);
    for (uint32_t k = 0; k < n; k++) {
        ASSERT(offsets[k] + hi <= d->backed_bytes);
        ASSERT(offsets[k] + hi <= dst + lo || dst + hi <= offsets[k] + lo); /* no parent is written */
    }
    d->calls++;
    uint32_t at = d->op_parents;
    d->op_parents += n;
    return d->ops->op(d, op, offsets, n, at, lo, hi, dst, out);
}

uint32_t gpu_dev_op_room(const gpu_dev *d) {
    ASSERT(d->op_parents <= MMSB_DERIVE_PARENTS_MAX);
    return MMSB_DERIVE_PARENTS_MAX - d->op_parents;
}

int gpu_dev_wait(gpu_dev *d) {
    ASSERT(d != NULL);
    d->calls++;
    d->waits++;
    int rc = d->ops->wait(d);
    d->op_parents = 0;
    return rc;
}

int gpu_dev_move(gpu_dev *d, uint64_t dst, uint64_t src, uint64_t len) {
    ASSERT(d != NULL && d->stage.ops_used == 0);
    ASSERT(len > 0 && dst + len <= d->backed_bytes && src + len <= d->backed_bytes);
    ASSERT(dst + len <= src || src + len <= dst);
    d->calls++;
    return d->ops->move(d, dst, src, len);
}

int gpu_dev_view(gpu_dev *d, uint64_t offset, uint64_t len, const void **data_out, uint64_t *stream_out) {
    ASSERT(d != NULL && data_out != NULL && stream_out != NULL);
    ASSERT(len > 0 && offset + len <= d->backed_bytes);
    d->calls++;
    return d->ops->view(d, offset, len, data_out, stream_out);
}

int gpu_dev_read(gpu_dev *d, uint64_t offset, uint8_t *dst, uint64_t len) {
    ASSERT(d != NULL && dst != NULL);
    ASSERT(offset + len <= d->backed_bytes);
    d->calls++;
    return len == 0 ? 0 : d->ops->read(d, offset, dst, len);
}
