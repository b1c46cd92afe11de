/*
 * calibrate.h - a device's check at open, and the size threshold it earns.
 *
 * Before a device holds any page, calibrate_check runs the device path on
 * scratch device memory against the host kernels: a page copied over, a
 * dense and a sparse delta, every chunk digest compared. A device whose
 * results differ from the host's is not used (its pages would log wrong
 * roots). The same rounds are timed: what a page pays beyond the change to
 * its host bytes (which a device page's mirror gets too): the host's digest
 * against the device's staging, submit and digest, per size; the threshold
 * is the smallest size the device wins at. Timing decides placement only, which
 * is in no record, digest or root.
 *
 * The threshold is cached in the store's directory (file gpu-threshold),
 * one line per device name (which carries the driver's version), so that a
 * store's placement does not move with the timing's noise from one open to
 * the next; another device or driver measures again.
 */
#ifndef MMSB_CALIBRATE_H
#define MMSB_CALIBRATE_H

#include "../gpu/device.h"
#include "base/base.h"

struct mmsb_engine;

enum { CALIBRATE_SIZES = 4 };

typedef struct calibrate_result {
    uint32_t sizes;                         /* sizes checked */
    uint64_t size_bytes[CALIBRATE_SIZES];   /* 64 KiB .. 2 MiB (less on a smaller arena) */
    uint64_t host_ns[CALIBRATE_SIZES];      /* the best timed round */
    uint64_t device_ns[CALIBRATE_SIZES];
    uint64_t threshold_bytes;               /* the smallest size the device won at; UINT64_MAX: none */
} calibrate_result;

/* Checks (and times) the first `sizes` sizes on device d, which holds no
 * page yet. MMSB_EIO when the device's results differ from the host's (the
 * detail says where), or the device's own error. The hooks' point
 * gpu-check refuses it (tests). */
int calibrate_check(struct mmsb_engine *e, gpu_dev *d, uint32_t sizes, calibrate_result *out) MUST_CHECK;

/* The threshold cached for device in the store's directory, if any
 * (UINT64_MAX: the device won at no size). A missing, unreadable or
 * malformed file is no threshold. */
bool calibrate_cache_read(int dir_fd, const char *device, uint64_t *threshold);
/* Records device's threshold, keeping other devices' lines; a failure (an
 * MMSB_E* code) only means the next open measures again. */
int calibrate_cache_write(int dir_fd, const char *device, uint64_t threshold);

#endif /* MMSB_CALIBRATE_H */
