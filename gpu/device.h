/*
 * device.h - a device as the engine's device location drives it: device
 * memory, a bounded staging buffer of changes on their way there, and the
 * work that reads that memory (chunk digests).
 *
 * Device memory is laid out at the offsets of the engine's data arena: a
 * device page's copy lives at its mirror's offset, so no second allocator
 * and no per-page table are needed, and a page's copy is found from its
 * page-table entry alone. gpu_dev_back makes the offsets below a bound
 * usable, which is where running out of device memory shows.
 *
 * Changes are staged, not sent one by one: each is a small header and its
 * bytes in the staging buffer (pinned host memory on a GPU), and
 * gpu_dev_submit hands everything staged to the device in one batch, in
 * staging order, without waiting. Work that reads device memory waits for
 * what was submitted first. A staged op that does not fit waits for a
 * submit; one larger than the whole buffer is split by the caller
 * (gpu_dev_stage_max).
 *
 * Backends (device_impl.h): the emulated device (gpu_emulate.c), host
 * memory run through this same interface with the kernels' own per-element
 * logic (dev_logic.h), so that CPU-only machines exercise every path above
 * it; and a CUDA device (gpu_cuda_dev.c). Both stage the same items
 * (stage.h) and run them through the same per-element function.
 *
 * Every function but the queries counts as one call into the device
 * runtime (gpu_dev_calls), which is how a test shows that host pages never
 * touch it. Errors are MMSB_E* codes with the detail set (err_set).
 */
#ifndef MMSB_GPU_DEVICE_H
#define MMSB_GPU_DEVICE_H

#include "../engine/base/base.h"

typedef struct gpu_dev gpu_dev;

enum {
    GPU_DEV_NAME_BYTES = 64,
    GPU_DEV_HASH_MAX = 4096, /* chunk digests one gpu_dev_hash_chunks computes */
};

typedef struct gpu_dev_config {
    uint64_t bytes_max;     /* device memory for offsets [0, bytes_max) */
    uint64_t staging_bytes; /* the staging buffer, headers included */
} gpu_dev_config;

/* The emulated device (MMSB_GPU_EMULATE). */
int gpu_emulate_open(const gpu_dev_config *cfg, gpu_dev **out) MUST_CHECK;
/* CUDA device 0 (MMSB_GPU_AUTO found one): MMSB_ENOTSUP in a build without
 * CUDA or when the device lacks what the backend needs, MMSB_ENOMEM, or
 * MMSB_EIO with the CUDA runtime's words. */
int gpu_cuda_open(const gpu_dev_config *cfg, gpu_dev **out) MUST_CHECK;
/* Waits for submitted work, then frees everything. NULL is a no-op. */
void gpu_dev_close(gpu_dev *d);

/* For people: the device's name. */
const char *gpu_dev_name(const gpu_dev *d);
/* Calls into the device runtime since open. */
uint64_t gpu_dev_calls(const gpu_dev *d);
/* Bytes of device memory usable now: offsets [0, this). */
uint64_t gpu_dev_backed(const gpu_dev *d);
/* The most bytes one staged op may carry (its mask and payload together). */
uint64_t gpu_dev_stage_max(const gpu_dev *d);
/* Whether anything is staged and not yet submitted. */
bool gpu_dev_staged(const gpu_dev *d);

/* Makes device memory back offsets [0, end_bytes); MMSB_ENOMEM (out of
 * device memory) or MMSB_ENOSPC (past bytes_max) when it cannot. */
int gpu_dev_back(gpu_dev *d, uint64_t end_bytes) MUST_CHECK;

/* Stage an op: false (and nothing staged) when the buffer has no room for
 * it now; submit, then stage it again. Never a call into the runtime. */
bool gpu_dev_stage_zero(gpu_dev *d, uint64_t offset, uint64_t len);
bool gpu_dev_stage_copy(gpu_dev *d, uint64_t offset, const uint8_t *src, uint64_t len);
/* A masked change of [offset, offset + len): the mask (one bit per byte,
 * as mmsb_delta's) and a dense payload of len bytes, or a sparse one of
 * popcount(mask) bytes. changed: the bytes it changes, as the host counted
 * them on its mirror (the device checks its own count against it). */
typedef struct gpu_delta {
    uint64_t offset, len;
    const uint8_t *mask;
    const uint8_t *payload;
    uint64_t payload_len;
    bool sparse;
    uint64_t changed;
} gpu_delta;
bool gpu_dev_stage_delta(gpu_dev *d, const gpu_delta *delta);

/* Sends everything staged to the device, in staging order; does not wait.
 * An error means some of it may not have reached device memory. */
int gpu_dev_submit(gpu_dev *d) MUST_CHECK;
/* One chunk of a page's copy: the page's offset and size, and the chunk's
 * number. */
typedef struct gpu_chunk_ref {
    uint64_t page_offset, page_bytes, chunk;
} gpu_chunk_ref;

/* The chunk digests (DIGESTS.md: XXH3-128 of each 4 KiB chunk, SEED_CHUNK)
 * of refs[0 .. count) (count at most GPU_DEV_HASH_MAX), of one page or of
 * many, in one wait for submitted work and the result. */
int gpu_dev_hash_chunks(gpu_dev *d, const gpu_chunk_ref *refs, uint32_t count, h128 *out) MUST_CHECK;
/* A lanewise built-in operation (MMSB_OP_XOR .. MMSB_OP_MAX_U64; lo and hi
 * multiples of its lane) over the copies of n parents at offsets[0 .. n):
 * output bytes [lo, hi) go to the device memory of a page at dst (page
 * byte x at dst + x) and to out (host memory, byte 0 = page byte lo),
 * after the work submitted before it. It waits for nothing: out holds the
 * bytes once gpu_dev_wait returns 0, so that many operations share one
 * wait. The operations between two waits have at most
 * MMSB_DERIVE_PARENTS_MAX parents in all (gpu_dev_op_room); no parent
 * overlaps [dst + lo, dst + hi). */
int gpu_dev_op(gpu_dev *d, uint32_t op, const uint64_t *offsets, uint32_t n, uint64_t lo, uint64_t hi, uint64_t dst,
               uint8_t *out) MUST_CHECK;
/* Parents the operations before the next wait may still have. */
uint32_t gpu_dev_op_room(const gpu_dev *d);
/* Waits for everything submitted and every operation; an error means some
 * outputs may be missing. */
int gpu_dev_wait(gpu_dev *d) MUST_CHECK;
/* Copies device bytes [src, src + len) to [dst, dst + len) (not
 * overlapping), after the work submitted before it; does not wait. Nothing
 * may be staged (submit first), so that it keeps its place in the order. */
int gpu_dev_move(gpu_dev *d, uint64_t dst, uint64_t src, uint64_t len) MUST_CHECK;
/* Waits for operations since open (gpu_dev_wait), for the tests. */
uint64_t gpu_dev_waits(const gpu_dev *d);
/* Bytes staged since open (copies' bytes, deltas' masks and payloads):
 * what crossed to the device, for the tests. */
uint64_t gpu_dev_staged_bytes(const gpu_dev *d);
/* The device's kind: MMSB_GPU_EMULATE or MMSB_GPU_CUDA. */
uint32_t gpu_dev_kind(const gpu_dev *d);
/* Where device bytes [offset, offset + len) are, for a consumer on the
 * device, once submitted work is done (waits); its stream in *stream_out. */
int gpu_dev_view(gpu_dev *d, uint64_t offset, uint64_t len, const void **data_out, uint64_t *stream_out)
    MUST_CHECK;
/* Copies device bytes [offset, offset + len) to dst; waits first. */
int gpu_dev_read(gpu_dev *d, uint64_t offset, uint8_t *dst, uint64_t len) MUST_CHECK;

#endif /* MMSB_GPU_DEVICE_H */
