/*
 * device_impl.h - what a backend of device.h fills in: its functions, and
 * the part of a device every backend shares (the staging, the call count).
 * Only backends and gpu/device.c include it.
 */
#ifndef MMSB_GPU_DEVICE_IMPL_H
#define MMSB_GPU_DEVICE_IMPL_H

#include "stage.h"

typedef struct gpu_dev_ops {
    uint32_t kind; /* MMSB_GPU_EMULATE, MMSB_GPU_CUDA */
    int (*back)(gpu_dev *d, uint64_t end_bytes);
    /* Runs d->stage's items (there is at least one op); the caller resets it. */
    int (*submit)(gpu_dev *d);
    int (*hash_chunks)(gpu_dev *d, const gpu_chunk_ref *refs, uint32_t count, h128 *out);
    /* An operation whose parents take entries [parents_at, parents_at + n)
     * of the backend's parent table until the next wait. */
    int (*op)(gpu_dev *d, uint32_t op, const uint64_t *offsets, uint32_t n, uint32_t parents_at, uint64_t lo,
              uint64_t hi, uint64_t dst, uint8_t *out);
    int (*wait)(gpu_dev *d);
    int (*move)(gpu_dev *d, uint64_t dst, uint64_t src, uint64_t len);
    int (*view)(gpu_dev *d, uint64_t offset, uint64_t len, const void **data_out, uint64_t *stream_out);
    int (*read)(gpu_dev *d, uint64_t offset, uint8_t *dst, uint64_t len);
    void (*close)(gpu_dev *d);
} gpu_dev_ops;

/* The first member of every backend's device. */
struct gpu_dev {
    const gpu_dev_ops *ops;
    gpu_stage stage;           /* what is staged and not yet submitted */
    uint64_t calls;
    uint64_t staged_bytes;     /* gpu_dev_staged_bytes */
    uint32_t op_parents;       /* the parents of the operations since the last wait */
    uint64_t waits;            /* gpu_dev_waits */
    uint64_t backed_bytes;     /* offsets [0, this) have device memory */
    uint64_t bytes_max;
    char name[GPU_DEV_NAME_BYTES];
};

#endif /* MMSB_GPU_DEVICE_IMPL_H */
