/*
 * gpu_none.c - the device side of a build without CUDA.
 */
#include <stdio.h>

#include "device.h"
#include "gpu.h"

void gpu_probe(gpu_status *status) {
    status->devices = 0;
    snprintf(status->text, sizeof status->text, "none (built without CUDA)");
}

int gpu_cuda_open(const gpu_dev_config *cfg, gpu_dev **out) {
    ASSERT(cfg != NULL && out != NULL);
    *out = NULL;
    return err_set(MMSB_ENOTSUP, "built without CUDA");
}
