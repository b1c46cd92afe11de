/*
 * gpu.h - the device side of MMSB as the engine sees it.
 *
 * Built with CUDA (nvcc found, GPU not forced to 0) it is gpu_cuda.cu;
 * otherwise gpu_none.c, which reports that no device can be used. The engine
 * never depends on which one is linked: with no device, every page is on the
 * host.
 */
#ifndef MMSB_GPU_H
#define MMSB_GPU_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { GPU_TEXT_BYTES = 96 };

typedef struct gpu_status {
    int32_t devices;             /* usable CUDA devices; 0 when none */
    char text[GPU_TEXT_BYTES];   /* what the probe found, for people */
} gpu_status;

/* Looks for CUDA devices. Never fails: the finding is in *status. */
void gpu_probe(gpu_status *status);

#ifdef __cplusplus
}
#endif

#endif /* MMSB_GPU_H */
