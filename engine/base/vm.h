/*
 * vm.h - reserved virtual memory that is backed and pre-faulted in steps.
 *
 * Every growing table of the engine (page table, arenas, dirty lists) is a
 * vmap: its whole maximum is reserved at open, so it never moves and never
 * needs a realloc; memory is backed and its page tables populated a step at a
 * time, so the hot path neither calls mmap nor takes page faults.
 */
#ifndef MMSB_VM_H
#define MMSB_VM_H

#include "base.h"

enum { VM_PAGE_BYTES = 4096 };

typedef struct vmap {
    uint8_t *base;
    uint64_t bytes_max;   /* reserved address space */
    uint64_t bytes_ready; /* [0, bytes_ready) is backed and pre-faulted */
    uint64_t step_bytes;  /* growth granularity of bytes_ready */
    int fd;               /* memfd for shareable maps, -1 for private ones */
} vmap;

/* Reserves bytes_max bytes. With a name, the memory is a memfd that another
 * process could map; without, it is private. */
MUST_CHECK int vmap_open(vmap *map, const char *memfd_name, uint64_t bytes_max,
              uint64_t step_bytes);
/* Makes [0, bytes) backed and pre-faulted. MMSB_ENOSPC when bytes exceeds
 * the reservation or the system cannot back it; nothing changes then. */
MUST_CHECK int vmap_ensure(vmap *map, uint64_t bytes);
void vmap_close(vmap *map);

#endif /* MMSB_VM_H */
