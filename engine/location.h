/*
 * location.h - where a page's bytes live, and the byte operations done on
 * them.
 *
 * Nothing touches a page's bytes directly when it changes them: page_change
 * (page.c) asks the page's location (host memory today; device memory when
 * the GPU path provides one) to diff, apply and copy. A location only moves
 * bytes; logging, epochs, digest marks, the journal and events stay above
 * it, so every location gets the same log records and the same
 * determinism. Whole-page reads for digests and operation inputs still use
 * host pointers (page_bytes); a device location mirrors or stages them.
 */
#ifndef MMSB_LOCATION_H
#define MMSB_LOCATION_H

#include "base/base.h"

struct mmsb_engine;
struct page_entry;

enum { LOCATION_HOST = 0, LOCATION_DEVICE = 1, LOCATION_COUNT = 2 };

typedef struct location_ops {
    const char *name;
    /* Marks in mask_out (one bit per byte, LSB first) the bytes of
     * [offset, offset + len) that differ from src; returns how many. len is
     * at most WRITE_BLOCK_BYTES. */
    uint64_t (*diff)(const struct mmsb_engine *e, const struct page_entry *pe, uint64_t offset,
                     const uint8_t *src, uint64_t len, uint8_t *mask_out);
    /* Counts (store false) or also writes (store true) the masked bytes of
     * a validated delta that differ from the page; returns how many. */
    uint64_t (*delta)(struct mmsb_engine *e, struct page_entry *pe, const mmsb_delta *d, bool store);
    /* Copies src over the page's bytes [offset, offset + len). */
    void (*store)(struct mmsb_engine *e, struct page_entry *pe, uint64_t offset,
                  const uint8_t *src, uint64_t len);
    /* Copies the page's bytes [offset, offset + len) to dst. */
    void (*load)(const struct mmsb_engine *e, const struct page_entry *pe, uint64_t offset,
                 uint8_t *dst, uint64_t len);
    /* The digests of chunks[0 .. count) of the page (DIGESTS.md); count is at
     * most DEVICE_HASH_BATCH. */
    void (*hash_chunks)(struct mmsb_engine *e, const struct page_entry *pe, const uint64_t *chunks,
                        uint32_t count, h128 *out);
} location_ops;

extern const location_ops location_host;
/* A device page's bytes are in the shared arena as a host page's are (its
 * mirror, which every reader, checkpoint and the log use) and in device
 * memory at the same offset (its copy). Checks and the journal read the
 * mirror; a change is made to the mirror by the host kernels and staged for
 * the copy, which gets it at the commit's end (location_settle) or when the
 * staging buffer fills; digests are computed from the copy. */
extern const location_ops location_device;

/* The device location the options (or MMSB_GPU) ask for, if any: none
 * (AUTO, OFF), or the emulated device. Fills e->dv. */
int location_open(struct mmsb_engine *e) MUST_CHECK;
void location_close(struct mmsb_engine *e);
/* On an engine with a device: whether a new page (its bytes at data_off,
 * PE_WANT_* in want) is a device page: its size and flags say so, and the device has memory for it (if
 * not, it is placed on the host and counted). Then its copy is zeroed. */
bool location_place(struct mmsb_engine *e, uint64_t data_off, uint64_t size_bytes, uint32_t want);
/* Device page pe's copy once it holds every committed change (staged
 * changes submitted, then waited for); MMSB_EIO when the device fails. */
int location_device_view(struct mmsb_engine *e, const struct page_entry *pe, const void **data_out,
                         uint64_t *stream_out) MUST_CHECK;
/* What the device did for output bytes [lo, hi) of a derived device page. */
typedef enum location_computed {
    COMPUTED_HOST = 0, /* nothing: the host computes them; they reach the copy as any change does */
    COMPUTED_COPY = 1, /* the device wrote them into the page's copy (COPY, CONCAT: moved from the
                          parents' copies); the host computes them too, from the mirrors */
    COMPUTED_BOTH = 2, /* the device computed them into the page's copy and into out (lanewise) */
} location_computed;

/* Output bytes [lo, hi) of built-in `op` (params, parent_sizes: the
 * derivation's) for page pe, on the device when pe and its n parents are
 * all device pages: into the page's copy, and for a lanewise operation (XOR
 * .. MAX_U64) into out as well. A change of the page from the output then
 * needs no staging (page_change_args.copy_current). Otherwise, or when the
 * device fails, COMPUTED_HOST and nothing done. location_compute waits for
 * out; location_compute_start does not, so that the outputs of several
 * pages come in one location_compute_wait (false: the device failed, and
 * every COMPUTED_BOTH output started since the last wait is void). */
location_computed location_compute(struct mmsb_engine *e, const struct page_entry *pe, uint32_t op,
                                   const uint8_t *params, const uint64_t *parent_ids, const uint64_t *parent_sizes,
                                   uint32_t n, uint64_t lo, uint64_t hi, uint8_t *out);
location_computed location_compute_start(struct mmsb_engine *e, const struct page_entry *pe, uint32_t op,
                                         const uint8_t *params, const uint64_t *parent_ids,
                                         const uint64_t *parent_sizes, uint32_t n, uint64_t lo, uint64_t hi,
                                         uint8_t *out);
bool location_compute_wait(struct mmsb_engine *e);
/* A computed output that does not become a change after all (the commit
 * failed first): the page's copy gets its mirror's bytes [lo, hi) back. */
void location_uncompute(struct mmsb_engine *e, const struct page_entry *pe, uint64_t lo, uint64_t hi);
/* The digests of refs[0 .. count) (count at most DEVICE_HASH_BATCH):
 * chunks of device pages, of one page or many, in one device call (from
 * their mirrors once the device has failed). */
void location_hash_refs(struct mmsb_engine *e, const struct gpu_chunk_ref *refs, uint32_t count, h128 *out);
/* A device page was freed. */
void location_forget(struct mmsb_engine *e, const struct page_entry *pe);
/* The end of a commit (or of a replayed one) on an engine with a device
 * (location_commit_end, state.h, calls it): what is staged goes to the
 * device. After a device error every device page becomes a host page (its
 * mirror is current) and no page goes to the device again. Off the
 * commit's path of the pages it settles. */
void location_settle(struct mmsb_engine *e);

#endif /* MMSB_LOCATION_H */
