/*
 * gpu_cuda.cu - the device side of a build with CUDA: finds the devices the
 * CUDA runtime can use and says so. With no driver or no device the engine
 * runs everything on the host.
 */
#include <cuda_runtime.h>
#include <stdio.h>

#include "gpu.h"

extern "C" void gpu_probe(gpu_status *status) {
    int runtime_version = 0;
    cudaRuntimeGetVersion(&runtime_version);
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count <= 0) {
        status->devices = 0;
        snprintf(status->text, sizeof status->text, "none (CUDA %d.%d runtime: %s)",
                 runtime_version / 1000, (runtime_version % 1000) / 10,
                 err != cudaSuccess ? cudaGetErrorString(err) : "no device");
        return;
    }
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) prop.name[0] = '\0';
    status->devices = count;
    snprintf(status->text, sizeof status->text, "%d CUDA device%s: %s (sm_%d%d)", count,
             count == 1 ? "" : "s", prop.name, prop.major, prop.minor);
}
