/*
 * b_gpu.c - the GPU rows: apply and diff by page size on host and device,
 * and the crossover size. The device path runs on the emulated device
 * (tests), but its CUDA backend is not built yet; until it is, these rows
 * say so, and say whether a device was found, instead of measuring
 * something else.
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"

static int bench_gpu(const bench_env *env, const void *arg, bench_out *out) {
    (void)arg;
    char dir[4096], probe[96] = "unknown";
    bench_store_path(env, "gpu-probe", dir, sizeof dir);
    mmsb_options o;
    bench_options(&o, MMSB_DURABILITY_NONE);
    o.gpu = MMSB_GPU_AUTO; /* the probe runs at open */
    mmsb_engine *e;
    if (mmsb_open(dir, &o, &e) == 0) {
        mmsb_engineinfo info = {.struct_size = sizeof info};
        if (mmsb_engine_info(e, &info) == 0) snprintf(probe, sizeof probe, "%s", info.gpu);
        mmsb_close(e);
    }
    bench_rmtree(dir);
    out->skipped = true;
    snprintf(out->note, sizeof out->note, "no CUDA device path in this build yet (GPU probe: %s)", probe);
    return 0;
}

static const bench_def GPU[] = {
    {"gpu/apply_and_diff_by_page_size/host_vs_device", "GB/s", bench_gpu, NULL, NULL, GOAL_NONE, 0, NULL, NULL, "gpu",
     "device", 0},
};

const bench_def *bench_group_gpu(uint32_t *count) {
    *count = sizeof GPU / sizeof GPU[0];
    return GPU;
}
