/*
 * read.c - the lock-free reading calls (info, read, view): a consistent
 * copy under the page's seqlock, retried while the writer changes it.
 */
#include <sched.h>
#include <string.h>
#include <time.h>

#include "read.h"
#include "role.h"

enum {
    READ_SPINS_BEFORE_YIELD = 64,
    READ_ATTEMPTS_BEFORE_SLEEP = 1 << 12,
    READ_SLEEP_NS = 20000,
    READ_ATTEMPTS_MAX = 1 << 20, /* a reader never spins forever: about 20 s at most */
};

/* A writer descheduled inside a page's section (a busy or virtual machine)
 * must not make readers give up in a fraction of a second: after a while of
 * spinning and yielding they wait between attempts instead. */
static void read_backoff(uint32_t attempt) {
    ASSERT(READ_ATTEMPTS_BEFORE_SLEEP < READ_ATTEMPTS_MAX);
    ASSERT(attempt < READ_ATTEMPTS_MAX);
    if (attempt >= READ_ATTEMPTS_BEFORE_SLEEP) {
        struct timespec ts = {0, READ_SLEEP_NS};
        nanosleep(&ts, NULL);
    } else if (attempt % READ_SPINS_BEFORE_YIELD == READ_SPINS_BEFORE_YIELD - 1) {
        sched_yield();
    }
}

/* The range is checked against the size seen in the same consistent read.
 * A torn copy could pair one page's offset with another's size: only what
 * lies inside the arena is read, and the seq check rejects the copy after. */
int page_read_consistent(const page_source *src, uint64_t id, const char *fn, entry_copy *copy,
                         uint64_t offset, void *dst, uint64_t len) {
    ASSERT(src != NULL && src->table != NULL && fn != NULL && copy != NULL);
    ASSERT(dst != NULL || len == 0);
    if (id == 0 || id >= src->ids_end) {
        return err_set(MMSB_ENOTFOUND, "%s: page %llu does not exist (ids so far: 1..%llu)",
                       fn, (unsigned long long)id, (unsigned long long)(src->ids_end - 1));
    }
    page_entry *pe = &src->table[id - 1];
    for (uint32_t attempt = 0; attempt < READ_ATTEMPTS_MAX; attempt++) {
        read_backoff(attempt);
        uint32_t s1 = atomic_load_explicit(&pe->seq, memory_order_acquire);
        if (s1 & 1u) continue;
        copy->data_off = __atomic_load_n(&pe->data_off, __ATOMIC_RELAXED);
        copy->size_bytes = __atomic_load_n(&pe->size_bytes, __ATOMIC_RELAXED);
        copy->epoch = __atomic_load_n(&pe->epoch, __ATOMIC_RELAXED);
        copy->flags = __atomic_load_n(&pe->flags, __ATOMIC_RELAXED);
        bool live = (copy->flags & PE_LIVE) != 0;
        bool in_range = offset <= copy->size_bytes && len <= copy->size_bytes - offset;
        bool in_arena = copy->data_off <= src->arena_bytes && copy->size_bytes <= src->arena_bytes - copy->data_off;
    ASSERT(!(in_range && len > 0) || offset + len <= copy->size_bytes);
    if (live && in_range && in_arena && dst != NULL && len > 0) memcpy(dst, src->arena + copy->data_off + offset, len);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&pe->seq, memory_order_relaxed) != s1) continue;
    if (!live) return err_set(MMSB_ENOTFOUND, "%s: page %llu was freed", fn, (unsigned long long)id);
    if (!in_arena) return err_set(MMSB_ECORRUPT, "%s: page %llu lies outside the arena", fn, (unsigned long long)id);
    if (!in_range) {
        return err_set(MMSB_EINVAL, "%s: range offset %llu + len %llu exceeds page %llu of %llu bytes", fn,
                       (unsigned long long)offset, (unsigned long long)len, (unsigned long long)id,
                       (unsigned long long)copy->size_bytes);
        }
        return 0;
    }
    return err_set(MMSB_EBUSY, "%s: page %llu kept changing for %u read attempts", fn,
                   (unsigned long long)id, (unsigned)READ_ATTEMPTS_MAX);
}

static int read_consistent(const mmsb_engine *e, uint64_t id, const char *fn,
                           entry_copy *copy, uint64_t offset, void *dst, uint64_t len) {
    ASSERT(e->magic == ENGINE_MAGIC);
    ASSERT(e->pages.base != NULL && e->data.mem.base != NULL);
    page_source src = {.table = (page_entry *)e->pages.base,
                       .ids_end = atomic_load_explicit(&e->page_id_next, memory_order_acquire),
                       .arena = e->data.mem.base, .arena_bytes = e->data.mem.bytes_max};
    return page_read_consistent(&src, id, fn, copy, offset, dst, len);
}

MMSB_API int mmsb_page_info(mmsb_engine *engine, uint64_t page_id, mmsb_pageinfo *info) {
    int rc = engine_check(engine, "mmsb_page_info");
    if (rc != 0) return rc;
    if (info == NULL) return err_set(MMSB_EINVAL, "mmsb_page_info: info is NULL");
    if (info->struct_size < sizeof(mmsb_pageinfo)) {
        return err_set(MMSB_EINVAL,
                       "mmsb_page_info: info->struct_size %u is below %zu; set it to sizeof(mmsb_pageinfo)",
                       info->struct_size, sizeof(mmsb_pageinfo));
    }
    entry_copy copy;
    rc = read_consistent(engine, page_id, "mmsb_page_info", &copy, 0, NULL, 0);
    if (rc != 0) return rc;
    ASSERT(copy.flags & PE_LIVE);
    *info = (mmsb_pageinfo){
        .struct_size = sizeof(mmsb_pageinfo),
        .location = (copy.flags & PE_DEVICE) ? MMSB_LOC_DEVICE : MMSB_LOC_HOST,
        .page_id = page_id,
        .size_bytes = copy.size_bytes,
        .epoch = copy.epoch,
        .flags = page_flags_of(copy.flags),
    };
    return 0;
}

MMSB_API int mmsb_page_read(mmsb_engine *engine, uint64_t page_id, uint64_t offset,
                            void *buf, uint64_t len, uint64_t *epoch_out) {
    int rc = engine_check(engine, "mmsb_page_read");
    if (rc != 0) return rc;
    if (buf == NULL && len > 0)
        return err_set(MMSB_EINVAL, "mmsb_page_read: buf is NULL with len %llu", (unsigned long long)len);
    if (ranges_overlap(buf, len, engine->data.mem.base, engine->data.mem.bytes_max)) {
        return err_set(MMSB_EINVAL, "mmsb_page_read: buf lies inside the engine's page arena");
    }
    entry_copy copy;
    rc = read_consistent(engine, page_id, "mmsb_page_read", &copy, offset, buf, len);
    if (rc == 0 && epoch_out != NULL) *epoch_out = copy.epoch;
    return rc;
}

MMSB_API int mmsb_page_view(mmsb_engine *engine, uint64_t page_id, const void **data_out,
                            uint64_t *size_out, uint64_t *epoch_out) {
    int rc = engine_check(engine, "mmsb_page_view");
    if (rc != 0) return rc;
    if (data_out == NULL) return err_set(MMSB_EINVAL, "mmsb_page_view: data_out is NULL");
    entry_copy copy;
    rc = read_consistent(engine, page_id, "mmsb_page_view", &copy, 0, NULL, 0);
    if (rc != 0) return rc;
    /* a device page's mirror: current at every commit (location.c) */
    *data_out = region_ptr(&engine->data, copy.data_off);
    ASSERT((copy.flags & PE_LIVE) && copy.size_bytes > 0);
    if (size_out != NULL) *size_out = copy.size_bytes;
    if (epoch_out != NULL) *epoch_out = copy.epoch;
    return 0;
}
