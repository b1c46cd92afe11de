/*
 * location.c - where pages' bytes live. The host location: the shared
 * arena, changed with the engine's vectorised kernels. The device location
 * (location.h): the same, plus a copy in device memory kept current through
 * the device's staging buffer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/seeds.h"
#include "calibrate.h"
#include "digest.h"
#include "engine.h"
#include "ops.h"
#include "state.h"

static uint64_t host_diff(const mmsb_engine *e, const page_entry *pe, uint64_t offset,
                          const uint8_t *src, uint64_t len, uint8_t *mask_out) {
    ASSERT(src != NULL && mask_out != NULL);
    ASSERT(len <= WRITE_BLOCK_BYTES && offset + len <= pe->size_bytes);
    return e->kern->diff(page_bytes(e, pe) + offset, src, len, mask_out);
}

static uint64_t host_delta(mmsb_engine *e, page_entry *pe, const mmsb_delta *d, bool store) {
    ASSERT(d->page_id != 0 && d->len > 0);
    ASSERT(d->offset + d->len <= pe->size_bytes);
    uint8_t *dst = page_bytes(e, pe) + d->offset;
    if (d->flags & MMSB_DELTA_SPARSE) {
        return e->kern->apply_sparse(dst, d->payload, d->payload_len, d->mask, d->len, store);
    }
    return e->kern->apply_dense(dst, d->payload, d->mask, d->len, store);
}

static void host_store(mmsb_engine *e, page_entry *pe, uint64_t offset, const uint8_t *src,
                       uint64_t len) {
    ASSERT(src != NULL && len > 0);
    ASSERT(offset + len <= pe->size_bytes);
    memcpy(page_bytes(e, pe) + offset, src, len);
}

static void host_load(const mmsb_engine *e, const page_entry *pe, uint64_t offset, uint8_t *dst,
                      uint64_t len) {
    ASSERT(dst != NULL && len > 0);
    ASSERT(offset + len <= pe->size_bytes);
    memcpy(dst, page_bytes(e, pe) + offset, len);
}

static void host_hash_chunks(mmsb_engine *e, const page_entry *pe, const uint64_t *chunks, uint32_t count,
                             h128 *out) {
    ASSERT(chunks != NULL && out != NULL && count <= DEVICE_HASH_BATCH);
    const uint8_t *bytes = page_bytes(e, pe);
    for (uint32_t i = 0; i < count; i++) {
        uint64_t at = chunks[i] * CHUNK_BYTES;
        ASSERT(at < pe->size_bytes);
        out[i] = e->kern->hash(bytes + at, min_u64(CHUNK_BYTES, pe->size_bytes - at), SEED_CHUNK);
    }
}

const location_ops location_host = {
    .name = "host",
    .diff = host_diff,
    .delta = host_delta,
    .store = host_store,
    .load = host_load,
    .hash_chunks = host_hash_chunks,
};

/* ---- the device location ------------------------------------------------------------------ */

_Static_assert((uint32_t)DEVICE_HASH_BATCH <= (uint32_t)GPU_DEV_HASH_MAX, "a digest batch is one device call");

static bool device_usable(const mmsb_engine *e) { return e->dv.dev != NULL && e->dv.failed == 0 && !e->dv.lost; }

/* The first device error: the pages go back to the host at the next settle.
 * The call that met it still succeeds (the mirror has every change), so
 * the error's words are kept for the engine info, not returned. */
static void device_fail(mmsb_engine *e, int rc) {
    ASSERT(rc < 0 && e->dv.dev != NULL);
    if (e->dv.failed != 0) return;
    e->dv.failed = rc;
    snprintf(e->dv.lost_detail, sizeof e->dv.lost_detail, "%s: %s", mmsb_strerror(rc), mmsb_last_error());
}

/* The hooks' point `name` refuses the step after it: an error to fail with. */
static int device_point(const mmsb_engine *e, const char *name, int code) {
    int refused = engine_point(e, name);
    if (refused == 0) return 0;
    return err_set(code, "%s refused (%s)", name, strerror(refused));
}

static bool device_submit(mmsb_engine *e) {
    ASSERT(device_usable(e));
    int rc = device_point(e, "gpu-submit", MMSB_EIO);
    if (rc == 0) rc = gpu_dev_submit(e->dv.dev);
    if (rc != 0) device_fail(e, rc);
    return rc == 0;
}

/* Stages [offset, offset + len) of the page's mirror for its copy, in
 * pieces the buffer can hold, submitting when it is full. */
static void stage_mirror(mmsb_engine *e, const page_entry *pe, uint64_t offset, uint64_t len) {
    ASSERT(offset + len <= pe->size_bytes);
    uint64_t piece_max = gpu_dev_stage_max(e->dv.dev);
    const uint8_t *src = page_bytes(e, pe) + offset;
    for (uint64_t done = 0; done < len && device_usable(e);) {
        uint64_t n = min_u64(len - done, piece_max);
        uint64_t at = pe->data_off + offset + done;
        if (!gpu_dev_stage_copy(e->dv.dev, at, src + done, n)) {
            if (!device_submit(e)) return;
            bool staged = gpu_dev_stage_copy(e->dv.dev, at, src + done, n);
            ASSERT(staged); /* an empty buffer holds any piece */
        }
        done += n;
    }
}

/* A delta goes to the copy as it is (mask and payload), or, when larger
 * than the buffer, as the mirror's bytes it changed. */
static void stage_delta(mmsb_engine *e, const page_entry *pe, const mmsb_delta *d, uint64_t changed) {
    bool sparse = (d->flags & MMSB_DELTA_SPARSE) != 0;
    gpu_delta g = {.offset = pe->data_off + d->offset, .len = d->len, .mask = d->mask, .payload = d->payload,
                   .payload_len = sparse ? d->payload_len : d->len, .sparse = sparse, .changed = changed};
    if ((d->len + 7) / 8 + g.payload_len > gpu_dev_stage_max(e->dv.dev)) {
        stage_mirror(e, pe, d->offset, d->len);
        return;
    }
    if (gpu_dev_stage_delta(e->dv.dev, &g)) return;
    if (!device_submit(e)) return;
    bool staged = gpu_dev_stage_delta(e->dv.dev, &g);
    ASSERT(staged);
}

static uint64_t device_delta(mmsb_engine *e, page_entry *pe, const mmsb_delta *d, bool store) {
    uint64_t changed = host_delta(e, pe, d, store);
    if (store && device_usable(e)) stage_delta(e, pe, d, changed);
    return changed;
}

static void device_store(mmsb_engine *e, page_entry *pe, uint64_t offset, const uint8_t *src, uint64_t len) {
    host_store(e, pe, offset, src, len);
    if (device_usable(e)) stage_mirror(e, pe, offset, len);
}

/* The digests of chunks of device pages (of one page or of many), from
 * their copies, in one device call; from the mirrors once the device has
 * failed. Digests come from the copy, so a copy that missed a change shows
 * in the digests and the state root. */
void location_hash_refs(mmsb_engine *e, const gpu_chunk_ref *refs, uint32_t count, h128 *out) {
    ASSERT(refs != NULL && out != NULL && count <= DEVICE_HASH_BATCH);
    int rc = 0;
    if (device_usable(e) && gpu_dev_staged(e->dv.dev) && !device_submit(e)) rc = e->dv.failed;
    if (rc == 0 && device_usable(e)) rc = device_point(e, "gpu-hash", MMSB_EIO);
    if (rc == 0 && device_usable(e)) rc = gpu_dev_hash_chunks(e->dv.dev, refs, count, out);
    if (rc != 0) device_fail(e, rc);
    if (device_usable(e)) return;
    for (uint32_t i = 0; i < count; i++) { /* the mirrors: at the copies' offsets in the arena */
        const gpu_chunk_ref *r = &refs[i];
        uint64_t at = r->chunk * CHUNK_BYTES;
        ASSERT(r->page_offset + r->page_bytes <= e->data.mem.bytes_max && at < r->page_bytes);
        out[i] = e->kern->hash(region_ptr(&e->data, r->page_offset) + at, min_u64(CHUNK_BYTES, r->page_bytes - at),
                               SEED_CHUNK);
    }
}

static void device_hash_chunks(mmsb_engine *e, const page_entry *pe, const uint64_t *chunks, uint32_t count,
                               h128 *out) {
    ASSERT(pe->flags & PE_DEVICE);
    ASSERT(count <= DEVICE_HASH_BATCH);
    for (uint32_t i = 0; i < count; i++) {
        e->dv.hash_refs[i] = (gpu_chunk_ref){.page_offset = pe->data_off, .page_bytes = pe->size_bytes,
                                             .chunk = chunks[i]};
    }
    location_hash_refs(e, e->dv.hash_refs, count, out);
}

int location_device_view(mmsb_engine *e, const page_entry *pe, const void **data_out, uint64_t *stream_out) {
    ASSERT(pe->flags & PE_DEVICE);
    if (device_usable(e) && gpu_dev_staged(e->dv.dev)) (void)device_submit(e);
    int rc = device_usable(e) ? device_point(e, "gpu-view", MMSB_EIO) : 0;
    if (rc == 0 && device_usable(e)) rc = gpu_dev_view(e->dv.dev, pe->data_off, pe->size_bytes, data_out, stream_out);
    if (rc != 0) device_fail(e, rc);
    if (!device_usable(e)) {
        return err_set(MMSB_EIO, "the device failed (%s); its pages move to the host at the next commit's end",
                       e->dv.lost_detail);
    }
    return 0;
}

/* COPY and CONCAT on the device: output bytes [lo, hi) moved from the
 * parents' copies (at e->dv.op_offsets) into the page's. */
static int move_output(mmsb_engine *e, const page_entry *pe, uint32_t op, const uint8_t *params,
                       const uint64_t *sizes, uint32_t n, uint64_t lo, uint64_t hi) {
    ASSERT(op == MMSB_OP_COPY || op == MMSB_OP_CONCAT);
    const uint64_t *from = e->dv.op_offsets;
    if (op == MMSB_OP_COPY) {
        uint64_t src, len;
        op_copy_source(params, sizes[0], &src, &len);
        ASSERT(n == 1 && len == pe->size_bytes);
        return gpu_dev_move(e->dv.dev, pe->data_off + lo, from[0] + src + lo, hi - lo);
    }
    int rc = 0;
    uint64_t base = 0;
    for (uint32_t k = 0; k < n && rc == 0; k++) {
        uint64_t a = max_u64(lo, base), b = min_u64(hi, base + sizes[k]);
        if (a < b) rc = gpu_dev_move(e->dv.dev, pe->data_off + a, from[k] + (a - base), b - a);
        base += sizes[k];
    }
    ASSERT(rc != 0 || base == pe->size_bytes);
    return rc;
}

location_computed location_compute_start(mmsb_engine *e, const page_entry *pe, uint32_t op, const uint8_t *params,
                                         const uint64_t *parent_ids, const uint64_t *parent_sizes, uint32_t n,
                                         uint64_t lo, uint64_t hi, uint8_t *out) {
    ASSERT(n >= 1 && n <= MMSB_DERIVE_PARENTS_MAX && lo <= hi && hi <= pe->size_bytes);
    ASSERT(op_is_builtin(op) && out != NULL);
    if (!(pe->flags & PE_DEVICE) || lo == hi || !device_usable(e)) return COMPUTED_HOST;
    bool lanewise = op >= MMSB_OP_XOR && op <= MMSB_OP_MAX_U64;
    if (lanewise && n > gpu_dev_op_room(e->dv.dev)) return COMPUTED_HOST; /* wait first */
    for (uint32_t k = 0; k < n; k++) {
        const page_entry *parent = entry_of(e, parent_ids[k]);
        if (!(parent->flags & PE_DEVICE)) return COMPUTED_HOST; /* mixed inputs: the host computes it */
        ASSERT(parent->size_bytes == parent_sizes[k]);
        e->dv.op_offsets[k] = parent->data_off;
    }
    if (gpu_dev_staged(e->dv.dev) && !device_submit(e)) return COMPUTED_HOST; /* the parents' changes first */
    int rc = device_point(e, "gpu-op", MMSB_EIO);
    if (rc == 0 && lanewise) rc = gpu_dev_op(e->dv.dev, op, e->dv.op_offsets, n, lo, hi, pe->data_off, out);
    if (rc == 0 && !lanewise) rc = move_output(e, pe, op, params, parent_sizes, n, lo, hi);
    if (rc != 0) {
        device_fail(e, rc); /* the copy may hold part of it: the mirrors are the truth from here */
        return COMPUTED_HOST;
    }
    return lanewise ? COMPUTED_BOTH : COMPUTED_COPY;
}

bool location_compute_wait(mmsb_engine *e) {
    ASSERT(e->dv.dev != NULL);
    if (!device_usable(e)) return false;
    int rc = device_point(e, "gpu-op-wait", MMSB_EIO);
    if (rc == 0) rc = gpu_dev_wait(e->dv.dev);
    if (rc != 0) device_fail(e, rc);
    return rc == 0;
}

location_computed location_compute(mmsb_engine *e, const page_entry *pe, uint32_t op, const uint8_t *params,
                                   const uint64_t *parent_ids, const uint64_t *parent_sizes, uint32_t n, uint64_t lo,
                                   uint64_t hi, uint8_t *out) {
    location_computed where = location_compute_start(e, pe, op, params, parent_ids, parent_sizes, n, lo, hi, out);
    if (where == COMPUTED_BOTH && !location_compute_wait(e)) return COMPUTED_HOST; /* out is void */
    return where;
}

void location_uncompute(mmsb_engine *e, const page_entry *pe, uint64_t lo, uint64_t hi) {
    ASSERT(pe->flags & PE_DEVICE);
    ASSERT(lo <= hi && hi <= pe->size_bytes);
    if (device_usable(e)) stage_mirror(e, pe, lo, hi - lo);
}

const location_ops location_device = {
    .name = "device",
    .diff = host_diff,
    .delta = device_delta,
    .store = device_store,
    .load = host_load,
    .hash_chunks = device_hash_chunks,
};

/* ---- opening, placement, settling ----------------------------------------------------------- */

enum {
    DEVICE_STAGING_BYTES = 4 * 1024 * 1024,
    EMULATED_THRESHOLD_BYTES = 4096, /* a chunk: the suite's pages of 4 KiB and up take the device path */
    EMULATED_CHECK_SIZES = 1,        /* 64 KiB: every test opens one, and it is slow */
};

/* The device kind asked for: the options', or MMSB_GPU's in place of AUTO. */
static int device_mode(const mmsb_engine *e, uint32_t *mode) {
    *mode = e->opts.gpu;
    const char *env = getenv("MMSB_GPU");
    if (*mode != MMSB_GPU_AUTO || env == NULL || env[0] == '\0') return 0;
    if (strcmp(env, "auto") == 0) return 0;
    if (strcmp(env, "off") == 0) *mode = MMSB_GPU_OFF;
    else if (strcmp(env, "emulate") == 0) *mode = MMSB_GPU_EMULATE;
    else return err_set(MMSB_EINVAL, "MMSB_GPU=%s: expected auto, off or emulate", env);
    return 0;
}

/* Opens the device and checks it against the host (calibrate.h). */
static int device_open_checked(mmsb_engine *e, uint32_t kind, calibrate_result *cal) {
    gpu_dev_config cfg = {.bytes_max = e->opts.arena_bytes_max, .staging_bytes = DEVICE_STAGING_BYTES};
    gpu_dev *d = NULL;
    int rc = kind == MMSB_GPU_EMULATE ? gpu_emulate_open(&cfg, &d) : gpu_cuda_open(&cfg, &d);
    if (rc == 0) rc = calibrate_check(e, d, kind == MMSB_GPU_EMULATE ? EMULATED_CHECK_SIZES : CALIBRATE_SIZES, cal);
    if (rc != 0) {
        gpu_dev_close(d);
        return rc;
    }
    e->dv.dev = d;
    return 0;
}

/* The option's threshold; else the emulated device's default; else the
 * one cached for this device, or the one just measured (then cached: a
 * cache that cannot be written costs a measurement at the next open). */
static void device_threshold(mmsb_engine *e, const calibrate_result *cal) {
    device_state *dv = &e->dv;
    if (e->opts.gpu_threshold_bytes != 0) {
        dv->threshold_bytes = e->opts.gpu_threshold_bytes;
        dv->threshold_source = MMSB_GPU_THRESHOLD_OPTION;
    } else if (gpu_dev_kind(dv->dev) == MMSB_GPU_EMULATE) {
        dv->threshold_bytes = EMULATED_THRESHOLD_BYTES;
        dv->threshold_source = MMSB_GPU_THRESHOLD_DEFAULT;
    } else {
        dv->threshold_source = MMSB_GPU_THRESHOLD_CALIBRATED;
        if (!calibrate_cache_read(e->dir_fd, gpu_dev_name(dv->dev), &dv->threshold_bytes)) {
            dv->threshold_bytes = cal->threshold_bytes;
            if (!e->read_only) (void)calibrate_cache_write(e->dir_fd, gpu_dev_name(dv->dev), dv->threshold_bytes);
        }
    }
    const char *kind = gpu_dev_kind(dv->dev) == MMSB_GPU_EMULATE ? "emulated device (MMSB_GPU_EMULATE)" : "CUDA";
    if (dv->threshold_bytes == UINT64_MAX) {
        snprintf(e->gpu.text, sizeof e->gpu.text, "%s: slower than the host at every size; pages by flag only", kind);
    } else {
        snprintf(e->gpu.text, sizeof e->gpu.text, "%s: pages of %llu bytes and up", kind,
                 (unsigned long long)dv->threshold_bytes);
    }
}

int location_open(mmsb_engine *e) {
    ASSERT(e->dv.dev == NULL && e->loc[LOCATION_HOST] != NULL);
    uint32_t mode;
    int rc = device_mode(e, &mode);
    if (rc != 0) return rc;
    if (mode == MMSB_GPU_OFF) {
        const char *by = e->opts.gpu == MMSB_GPU_OFF ? "MMSB_GPU_OFF" : "MMSB_GPU=off";
        snprintf(e->gpu.text, sizeof e->gpu.text, "off (%s)", by);
        return 0;
    }
    uint32_t kind = MMSB_GPU_EMULATE;
    if (mode == MMSB_GPU_AUTO) {
        gpu_probe(&e->gpu);
        if (e->gpu.devices <= 0) return 0;
        kind = MMSB_GPU_CUDA;
    }
    e->dv.op_offsets = malloc(MMSB_DERIVE_PARENTS_MAX * sizeof *e->dv.op_offsets);
    if (e->dv.op_offsets == NULL) return err_set(MMSB_ENOMEM, "mmsb_open: out of memory for the device location");
    calibrate_result cal;
    rc = device_open_checked(e, kind, &cal);
    if (rc != 0) { /* no device location: every page on the host, and the engine info says why */
        snprintf(e->gpu.text, sizeof e->gpu.text, "%s not used: %s: %.60s",
                 kind == MMSB_GPU_EMULATE ? "emulated device" : "CUDA device", mmsb_strerror(rc), mmsb_last_error());
        return 0;
    }
    e->loc[LOCATION_DEVICE] = &location_device;
    device_threshold(e, &cal);
    return vmap_open(&e->dv.ahead.out, NULL, DEVICE_AHEAD_BYTES, 1 << 20); /* address space only */
}

void location_close(mmsb_engine *e) {
    gpu_dev_close(e->dv.dev);
    e->dv.dev = NULL;
    free(e->dv.op_offsets);
    e->dv.op_offsets = NULL;
    vmap_close(&e->dv.ahead.out);
}

bool location_place(mmsb_engine *e, uint64_t data_off, uint64_t size_bytes, uint32_t want) {
    ASSERT(size_bytes > 0 && (want & ~(uint32_t)(PE_WANT_HOST | PE_WANT_DEVICE)) == 0);
    ASSERT(e->dv.dev != NULL);
    if (want & PE_WANT_HOST) return false;
    if (size_bytes < e->dv.threshold_bytes && !(want & PE_WANT_DEVICE)) return false;
    if (!device_usable(e)) return false;
    int rc = device_point(e, "gpu-alloc", MMSB_ENOMEM);
    if (rc == 0) rc = gpu_dev_back(e->dv.dev, data_off + size_bytes);
    if (rc != 0) { /* out of device memory: this page lives on the host */
        e->dv.fallbacks++;
        return false;
    }
    uint64_t piece_max = gpu_dev_stage_max(e->dv.dev);
    for (uint64_t done = 0; done < size_bytes; done += piece_max) {
        uint64_t n = min_u64(size_bytes - done, piece_max);
        if (gpu_dev_stage_zero(e->dv.dev, data_off + done, n)) continue;
        if (!device_submit(e)) return false;
        bool staged = gpu_dev_stage_zero(e->dv.dev, data_off + done, n);
        ASSERT(staged); /* an empty buffer holds any piece */
    }
    e->dv.pages++;
    e->dv.page_bytes += size_bytes;
    return true;
}

void location_forget(mmsb_engine *e, const page_entry *pe) {
    ASSERT(pe->flags & PE_DEVICE);
    ASSERT(e->dv.pages >= 1 && e->dv.page_bytes >= pe->size_bytes);
    e->dv.pages--;
    e->dv.page_bytes -= pe->size_bytes;
}

/* Every device page becomes a host page: its mirror has every change, and
 * its digests are computed again from it, in case the copy they came from
 * was wrong. */
static void device_demote_all(mmsb_engine *e) {
    ASSERT(e->dv.failed != 0 && !e->dv.lost && !e->cc.active);
    uint64_t id_end = atomic_load_explicit(&e->page_id_next, memory_order_relaxed);
    for (uint64_t id = 1; id < id_end && e->dv.pages > 0; id++) {
        page_entry *pe = entry_of(e, id);
        if ((pe->flags & (PE_LIVE | PE_DEVICE)) != (PE_LIVE | PE_DEVICE)) continue;
        location_forget(e, pe);
        entry_write_begin(pe);
        pe->flags &= ~(uint32_t)PE_DEVICE;
        digest_mark(e, id, pe, 0, pe->size_bytes);
        entry_write_end(pe);
    }
    ASSERT(e->dv.pages == 0 && e->dv.page_bytes == 0);
    e->dv.lost = true;
    snprintf(e->gpu.text, sizeof e->gpu.text, "lost: %.88s", e->dv.lost_detail);
}

void location_settle(mmsb_engine *e) {
    ASSERT(e->dv.dev != NULL);
    if (device_usable(e) && gpu_dev_staged(e->dv.dev)) (void)device_submit(e);
    if (e->dv.failed != 0 && !e->dv.lost) device_demote_all(e);
}
