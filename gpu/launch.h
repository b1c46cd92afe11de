/*
 * launch.h - the kernels the device location launches (kernels.cu), as C
 * functions, so that the CUDA backend (gpu_cuda_dev.c) is plain C over the
 * CUDA runtime's C API. Each enqueues its work on `stream` (a cudaStream_t)
 * and returns the launch's cudaError_t, 0 when it was enqueued.
 */
#ifndef MMSB_GPU_LAUNCH_H
#define MMSB_GPU_LAUNCH_H

#include "dev_logic.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Items[0 .. n) on device memory mem (stage.h), their bytes in staging
 * (device memory); counts[op] (zeroed by the caller) gains what each op's
 * masked items changed. */
int gpu_launch_items(uint8_t *mem, const uint8_t *staging, const dev_item *items, uint32_t n,
                     unsigned long long *counts, void *stream);
/* The digests of count chunks of pages in device memory mem: refs holds
 * three words per chunk (its page's offset and size, its number: device.h's
 * gpu_chunk_ref); canonical form, 16 bytes each, into digests. */
int gpu_launch_chunk_list(const uint8_t *mem, const uint64_t *refs, uint32_t count, uint8_t *digests, void *stream);
/* A lanewise built-in over n parents (device pointers in in[0 .. n), an
 * array in device memory): output bytes [lo, hi) into out. */
int gpu_launch_op(uint32_t op, const uint8_t *const *in, uint32_t n, uint64_t lo, uint64_t hi, uint8_t *out,
                  void *stream);

/* The benchmark suite's kernel rows (bench/b_gpu_kern.c) launch these
 * too, on device-resident bytes: */
/* The mask of the bytes where next differs from cur (len bytes); *count
 * (zeroed by the caller) gains how many. */
int gpu_launch_diff(const uint8_t *cur, const uint8_t *next, uint64_t len, uint8_t *mask_out,
                    unsigned long long *count, void *stream);
/* A page's digest (engine/DIGESTS.md, canonical form) into digest_out:
 * the chunk digests, then a launch per tree level, level and above (16
 * bytes per chunk each) taking turns. */
int gpu_launch_page_digest(const uint8_t *page, uint64_t size, uint8_t *level, uint8_t *above, uint8_t *digest_out,
                           void *stream);

#ifdef __cplusplus
}
#endif

#endif /* MMSB_GPU_LAUNCH_H */
