/*
 * gpu_none.c - the device side of a build without CUDA.
 */
#include <stdio.h>

#include "gpu.h"

void gpu_probe(gpu_status *status) {
    status->devices = 0;
    snprintf(status->text, sizeof status->text, "none (built without CUDA)");
}
