/*
 * region.h - the allocator behind the page-data arena (and the private arena
 * of per-page digest trees).
 *
 * Allocations of more than SMALL_BYTES_MAX bytes take whole 4 KiB units from a
 * two-level segregated-fit allocator: O(1) allocate and free, free blocks
 * coalesce with their neighbours, and a free block next to the frontier gives
 * its units back to it. Free-block bookkeeping is one bit per unit plus a
 * side table of unit_meta, touched only at the edges of free blocks and for
 * slab units: live pages cost no metadata here, and freeing a page never
 * touches its bytes (a cold page freed would otherwise cost a cache miss, and
 * on a shadow-paged VM a first touch of microseconds). Smaller allocations
 * come from one-unit slabs of a single size class.
 *
 * Every decision depends only on the sequence of calls, so two engines fed
 * the same operations lay out their pages identically.
 */
#ifndef MMSB_REGION_H
#define MMSB_REGION_H

#include "vm.h"

enum {
    REGION_UNIT_BYTES = 4096,
    SMALL_GRAIN_BYTES = 64,
    SMALL_BYTES_MAX = 2048,
    SMALL_CLASSES = SMALL_BYTES_MAX / SMALL_GRAIN_BYTES,
    TLSF_SL_BITS = 4,
    TLSF_SL_COUNT = 1 << TLSF_SL_BITS,
    TLSF_FL_COUNT = 32,
};

/* The largest region: unit indices must fit in 32 bits for the slab links. */
#define REGION_BYTES_MAX ((uint64_t)UINT32_MAX * REGION_UNIT_BYTES)

/* What the allocator knows of one unit: a slab unit's state, or, at the first
 * and last unit of a free block, its size (and at the first, its list links). */
typedef struct unit_meta {
    uint32_t next; /* unit + 1 of the next partial slab of the class, or free block of the list; 0 = none */
    uint32_t prev; /* unit + 1 of the previous one; 0 = none */
    union {
        struct {
            uint16_t used;      /* slots in use */
            uint16_t bump;      /* slots handed out at least once */
            uint16_t free_head; /* slot + 1 of the first free slot; 0 = none */
            uint8_t class_idx;  /* 1 .. SMALL_CLASSES */
            uint8_t pad0;
        } slab;
        struct {
            uint32_t units; /* the free block's size, at its first and last unit */
            uint32_t pad1;
        } block;
    } u;
} unit_meta;

typedef struct region {
    vmap mem;        /* the memory handed out */
    vmap edge_bits;  /* bit per unit: first or last unit of a free block */
    vmap metas;      /* unit_meta per unit, touched only for slabs and free-block edges */
    uint64_t units_max;
    uint64_t frontier;   /* units below: allocated or on a free list */
    uint64_t high_water; /* units below were handed out at least once */
    uint64_t bytes_used; /* rounded bytes held by live allocations */
    uint64_t allocations_live;
    uint64_t fl_bitmap;
    uint32_t sl_bitmap[TLSF_FL_COUNT];
    uint32_t heads[TLSF_FL_COUNT][TLSF_SL_COUNT]; /* unit + 1 of a free block; 0 = none */
    uint32_t partial[SMALL_CLASSES + 1]; /* unit + 1 of a partial slab */
} region;

MUST_CHECK int region_open(region *r, const char *memfd_name, uint64_t bytes_max,
                uint64_t grow_bytes);
void region_close(region *r);

/* The bytes an allocation of `bytes` holds once rounded to its class. */
uint64_t region_rounded_bytes(uint64_t bytes);

/* Allocates bytes (> 0). The offset is 64-byte aligned, and 4 KiB aligned for
 * more than SMALL_BYTES_MAX bytes. *zeroed_out tells whether the memory is
 * known to be zero (never handed out before). MMSB_ENOSPC when full; nothing
 * changes then. */
MUST_CHECK int region_alloc(region *r, uint64_t bytes, uint64_t *offset_out, bool *zeroed_out);
/* Frees what region_alloc(bytes) returned at offset. */
void region_free(region *r, uint64_t offset, uint64_t bytes);

static inline uint8_t *region_ptr(const region *r, uint64_t offset) {
    ASSERT(offset < r->mem.bytes_max);
    return r->mem.base + offset;
}

#endif /* MMSB_REGION_H */
