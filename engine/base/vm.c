/*
 * vm.c - reserved, step-wise pre-faulted memory (see vm.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vm.h"

int vmap_open(vmap *map, const char *memfd_name, uint64_t bytes_max,
              uint64_t step_bytes) {
    ASSERT(map != NULL);
    ASSERT(bytes_max > 0);
    ASSERT(step_bytes > 0 && step_bytes % VM_PAGE_BYTES == 0);
    memset(map, 0, sizeof *map);
    map->fd = -1;
    map->bytes_max = align_up_u64(bytes_max, VM_PAGE_BYTES);
    map->step_bytes = step_bytes;

    int prot = PROT_READ | PROT_WRITE;
    void *base;
    if (memfd_name != NULL) {
        int fd = memfd_create(memfd_name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0) {
            int saved = errno;
            return err_set(err_from_errno(saved), "memfd_create(%s): %s",
                           memfd_name, strerror(saved));
        }
        /* A sparse file: memory is only committed by vmap_ensure. */
        if (ftruncate(fd, (off_t)map->bytes_max) != 0) {
            int saved = errno;
            close(fd);
            return err_set(MMSB_ENOMEM, "ftruncate(%s, %llu): %s", memfd_name,
                           (unsigned long long)map->bytes_max, strerror(saved));
        }
        base = mmap(NULL, map->bytes_max, prot, MAP_SHARED | MAP_NORESERVE, fd, 0);
        if (base == MAP_FAILED) {
            int saved = errno;
            close(fd);
            return err_set(MMSB_ENOMEM, "mmap(%s, %llu bytes): %s", memfd_name,
                           (unsigned long long)map->bytes_max, strerror(saved));
        }
        map->fd = fd;
    } else {
        base = mmap(NULL, map->bytes_max, prot,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (base == MAP_FAILED) {
            int saved = errno;
            return err_set(MMSB_ENOMEM, "mmap(anonymous, %llu bytes): %s",
                           (unsigned long long)map->bytes_max, strerror(saved));
        }
    }
    map->base = base;
    ASSERT(map->bytes_ready == 0 && map->bytes_max % VM_PAGE_BYTES == 0);
    return 0;
}

/* Touches one byte per page for kernels without MADV_POPULATE_WRITE. The
 * range is fresh (never handed out), so rewriting its bytes changes nothing. */
static void touch_pages(uint8_t *start, uint64_t len) {
    ASSERT(start != NULL && len % VM_PAGE_BYTES == 0);
    for (uint64_t off = 0; off < len; off += VM_PAGE_BYTES) {
        volatile uint8_t *p = start + off;
        *p = *p;
    }
}

int vmap_ensure(vmap *map, uint64_t bytes) {
    ASSERT(map != NULL && map->base != NULL);
    if (bytes <= map->bytes_ready) return 0;
    if (bytes > map->bytes_max) {
        return err_set(MMSB_ENOSPC, "needs %llu bytes, reservation is %llu",
                       (unsigned long long)bytes, (unsigned long long)map->bytes_max);
    }
    uint64_t target = align_up_u64(bytes, map->step_bytes);
    target = min_u64(target, map->bytes_max);
    uint64_t start = map->bytes_ready;
    uint64_t len = target - start;
    ASSERT(len > 0 && start % VM_PAGE_BYTES == 0);

    if (map->fd >= 0 && fallocate(map->fd, 0, (off_t)start, (off_t)len) != 0) {
        int saved = errno;
        return err_set(MMSB_ENOSPC, "cannot back %llu more bytes of shared memory: %s",
                       (unsigned long long)len, strerror(saved));
    }
    if (madvise(map->base + start, len, MADV_POPULATE_WRITE) != 0) {
        int saved = errno;
        if (saved != EINVAL) {
            return err_set(MMSB_ENOSPC, "cannot pre-fault %llu more bytes: %s",
                           (unsigned long long)len, strerror(saved));
        }
        touch_pages(map->base + start, len);
    }
    map->bytes_ready = target;
    ASSERT(map->bytes_ready >= bytes);
    return 0;
}

void vmap_close(vmap *map) {
    ASSERT(map != NULL);
    if (map->base == NULL) return; /* never opened, or already closed */
    munmap(map->base, map->bytes_max);
    if (map->fd >= 0) close(map->fd);
    memset(map, 0, sizeof *map);
    map->fd = -1;
    ASSERT(map->base == NULL && map->bytes_ready == 0);
}
