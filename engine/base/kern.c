/*
 * kern.c - choosing the byte kernels at run time.
 */
#include <stdlib.h>
#include <string.h>

#include "kern.h"

bool kern_supported(uint32_t level) {
    __builtin_cpu_init();
    switch (level) {
    case MMSB_KERNEL_PORTABLE: return true;
    case MMSB_KERNEL_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2") &&
               __builtin_cpu_supports("popcnt");
    case MMSB_KERNEL_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vbmi2") && __builtin_cpu_supports("bmi2") &&
               __builtin_cpu_supports("popcnt");
    default: return false;
    }
}

static const kern_ops *ops_of(uint32_t level) {
    ASSERT(level != MMSB_KERNEL_AUTO);
    switch (level) {
    case MMSB_KERNEL_PORTABLE: return &kern_portable_ops;
    case MMSB_KERNEL_AVX2: return &kern_avx2_ops;
    case MMSB_KERNEL_AVX512: return &kern_avx512_ops;
    default: return NULL;
    }
}

static int level_from_env(const char *text, uint32_t *level_out) {
    ASSERT(text != NULL && level_out != NULL);
    static const struct {
        const char *name;
        uint32_t level;
    } names[] = {{"portable", MMSB_KERNEL_PORTABLE},
                 {"avx2", MMSB_KERNEL_AVX2},
                 {"avx512", MMSB_KERNEL_AVX512}};
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        if (strcmp(text, names[i].name) == 0) {
            *level_out = names[i].level;
            ASSERT(*level_out != MMSB_KERNEL_AUTO);
            return 0;
        }
    }
    return err_set(MMSB_EINVAL, "MMSB_KERNEL=%s: expected portable, avx2 or avx512", text);
}

int kern_select(uint32_t level, const kern_ops **ops_out) {
    ASSERT(ops_out != NULL);
    if (level == MMSB_KERNEL_AUTO) {
        const char *env = getenv("MMSB_KERNEL");
        if (env != NULL && env[0] != '\0') {
            int rc = level_from_env(env, &level);
            if (rc != 0) return rc;
        } else {
            level = kern_supported(MMSB_KERNEL_AVX512) ? MMSB_KERNEL_AVX512
                    : kern_supported(MMSB_KERNEL_AVX2) ? MMSB_KERNEL_AVX2
                                                       : MMSB_KERNEL_PORTABLE;
        }
    }
    const kern_ops *ops = ops_of(level);
    if (ops == NULL) return err_set(MMSB_EINVAL, "kernel level %u is not an MMSB_KERNEL_* value", level);
    if (!kern_supported(level)) {
        return err_set(MMSB_ENOTSUP, "this CPU cannot run the %s kernels", ops->name);
    }
    *ops_out = ops;
    ASSERT((*ops_out)->diff != NULL && (*ops_out)->hash != NULL && (*ops_out)->hash_update != NULL);
    return 0;
}
