/*
 * read.h - consistent lock-free reads of a page, from the writer's own
 * memory or from another process that mapped it (attach.c).
 */
#ifndef MMSB_READ_H
#define MMSB_READ_H

#include "state.h"

/* What a consistent read saw of an entry. */
typedef struct entry_copy {
    uint64_t data_off;
    uint64_t size_bytes;
    uint64_t epoch;
    uint32_t flags;
} entry_copy;

/* The memory a page reader needs; the writer's own, or mapped read-only by
 * another process (attach.c). Ids below ids_end may exist. */
typedef struct page_source {
    page_entry *table;      /* entry of id i at table[i - 1] */
    uint64_t ids_end;
    const uint8_t *arena;
    uint64_t arena_bytes;
} page_source;

/* A consistent read of an entry and, when dst is not NULL, of `len` bytes
 * at `offset` of its page, retried while the writer changes it (seqlock). */
int page_read_consistent(const page_source *src, uint64_t id, const char *fn, entry_copy *copy,
                         uint64_t offset, void *dst, uint64_t len) MUST_CHECK;

#endif /* MMSB_READ_H */
