/*
 * page.c - page create and free (writer side), and the lock-free reading
 * calls: info, read and view.
 */
#include <sched.h>
#include <string.h>
#include <time.h>

#include "../tlog/format.h"
#include "engine.h"

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
    if (attempt >= READ_ATTEMPTS_BEFORE_SLEEP) {
        struct timespec ts = {0, READ_SLEEP_NS};
        nanosleep(&ts, NULL);
    } else if (attempt % READ_SPINS_BEFORE_YIELD == READ_SPINS_BEFORE_YIELD - 1) {
        sched_yield();
    }
}

int page_lookup(mmsb_engine *e, uint64_t id, const char *fn, page_entry **pe_out) {
    uint64_t next = atomic_load_explicit(&e->page_id_next, memory_order_relaxed);
    if (id == 0 || id >= next) {
        return err_set(MMSB_ENOTFOUND, "%s: page %llu does not exist (ids so far: 1..%llu)",
                       fn, (unsigned long long)id, (unsigned long long)(next - 1));
    }
    page_entry *pe = entry_of(e, id);
    if ((pe->flags & PE_LIVE) == 0) {
        return err_set(MMSB_ENOTFOUND, "%s: page %llu was freed", fn, (unsigned long long)id);
    }
    *pe_out = pe;
    return 0;
}

int page_prepare(mmsb_engine *e, uint64_t size_bytes, const char *fn, page_alloc *out) {
    if (size_bytes == 0 || size_bytes > e->opts.page_bytes_max) {
        return err_set(MMSB_EINVAL, "%s: size_bytes %llu outside 1..%llu (page_bytes_max)", fn,
                       (unsigned long long)size_bytes, (unsigned long long)e->opts.page_bytes_max);
    }
    uint64_t id = atomic_load_explicit(&e->page_id_next, memory_order_relaxed);
    if (id > e->opts.pages_max) {
        return err_set(MMSB_ENOSPC, "%s: all %llu page ids are used (pages_max); ids are never reused",
                       fn, (unsigned long long)e->opts.pages_max);
    }
    int rc = vmap_ensure(&e->pages, id * sizeof(page_entry));
    if (rc == 0) rc = vmap_ensure(&e->touched.bits, align_up_u64(id, 64) / 8);
    if (rc == 0) rc = digest_reserve(e, id);
    if (rc == 0) rc = checkpoint_reserve(e, id);
    if (rc == 0) rc = graph_reserve(&e->g, id);
    *out = (page_alloc){0};
    if (rc == 0) rc = region_alloc(&e->data, size_bytes, &out->data_off, &out->zeroed);
    if (rc != 0) return rc;
    uint64_t aux_bytes = digest_aux_bytes(size_bytes);
    bool aux_zeroed;
    if (aux_bytes > 0) rc = region_alloc(&e->aux, aux_bytes, &out->aux_off, &aux_zeroed);
    if (rc != 0) region_free(&e->data, out->data_off, size_bytes);
    return rc;
}

void page_prepare_undo(mmsb_engine *e, uint64_t size_bytes, const page_alloc *a) {
    uint64_t aux_bytes = digest_aux_bytes(size_bytes);
    if (aux_bytes > 0) region_free(&e->aux, a->aux_off, aux_bytes);
    region_free(&e->data, a->data_off, size_bytes);
}

uint64_t page_publish(mmsb_engine *e, uint64_t size_bytes, const page_alloc *a) {
    uint64_t id = atomic_load_explicit(&e->page_id_next, memory_order_relaxed);
    if (!a->zeroed) memset(region_ptr(&e->data, a->data_off), 0, size_bytes);
    page_entry *pe = entry_of(e, id);
    entry_write_begin(pe);
    pe->data_off = a->data_off;
    pe->size_bytes = size_bytes;
    pe->epoch = 0;
    pe->u.tree.aux_off = a->aux_off;
    pe->u.tree.unused = 0;
    pe->flags = PE_LIVE;
    digest_page_created(e, id, pe);
    entry_write_end(pe);
    atomic_store_explicit(&e->page_id_next, id + 1, memory_order_release);
    live_note_next(e, id + 1);
    e->pages_live++;
    return id;
}

void page_remove(mmsb_engine *e, uint64_t id, page_entry *pe) {
    uint64_t aux_bytes = digest_aux_bytes(pe->size_bytes);
    entry_write_begin(pe);
    pe->flags &= ~(uint32_t)(PE_LIVE | PE_DIGEST_DIRTY);
    digest_mark(e, id, pe, 0, 0);
    entry_write_end(pe);
    region_free(&e->data, pe->data_off, pe->size_bytes);
    if (aux_bytes > 0) region_free(&e->aux, pe->u.tree.aux_off, aux_bytes);
    e->pages_live--;
}

/* ---- the pages a commit changed -------------------------------------------- */

int touched_open(mmsb_engine *e) {
    uint64_t ids = e->opts.pages_max;
    int rc = vmap_open(&e->touched.bits, NULL, align_up_u64(ids, 64) / 8, VM_PAGE_BYTES);
    if (rc == 0) rc = vmap_open(&e->touched.ids, NULL, ids * sizeof(uint64_t), VM_PAGE_BYTES);
    e->touched.count = 0;
    return rc;
}

void touched_close(mmsb_engine *e) {
    vmap_close(&e->touched.bits);
    vmap_close(&e->touched.ids);
}

int touched_grow(mmsb_engine *e) {
    touched_set *t = &e->touched;
    return vmap_ensure(&t->ids, (t->count + 1) * sizeof(uint64_t));
}

void touched_reset(mmsb_engine *e) {
    touched_set *t = &e->touched;
    const uint64_t *ids = (const uint64_t *)t->ids.base;
    for (uint64_t i = 0; i < t->count; i++) {
        ((uint64_t *)t->bits.base)[(ids[i] - 1) / 64] &= ~(1ull << ((ids[i] - 1) % 64));
    }
    t->count = 0;
}

/* Memory first (it can run out), then the log record, then the page. */
static int create_logged(mmsb_engine *e, uint64_t size_bytes, uint32_t flags, uint64_t *page_id_out) {
    if (page_id_out == NULL) return err_set(MMSB_EINVAL, "mmsb_page_create: page_id_out is NULL");
    if (flags != 0) {
        return err_set(MMSB_EINVAL, "mmsb_page_create: unknown flags 0x%x (none are defined yet)", flags);
    }
    page_alloc a;
    int rc = page_prepare(e, size_bytes, "mmsb_page_create", &a);
    if (rc != 0) return rc;
    commit_begin(e);
    uint8_t *p;
    rc = log_append(e->log, REC_PAGE_CREATE, 24, &p);
    if (rc != 0) {
        commit_abandon(e, rc);
        page_prepare_undo(e, size_bytes, &a);
        return rc;
    }
    put_le64(p, atomic_load_explicit(&e->page_id_next, memory_order_relaxed));
    put_le64(p + 8, size_bytes);
    put_le32(p + 16, flags);
    put_le32(p + 20, 0);
    log_append_done(e->log);
    *page_id_out = page_publish(e, size_bytes, &a);
    uint64_t seq;
    return commit_finish(e, 0, &seq);
}

MMSB_API int mmsb_page_create(mmsb_engine *engine, uint64_t size_bytes, uint32_t flags,
                              uint64_t *page_id_out) {
    int rc = engine_enter_writer(engine, "mmsb_page_create");
    if (rc != 0) return rc;
    rc = create_logged(engine, size_bytes, flags, page_id_out);
    engine_leave(engine);
    return rc;
}

MMSB_API int mmsb_page_free(mmsb_engine *engine, uint64_t page_id) {
    int rc = engine_enter_writer(engine, "mmsb_page_free");
    if (rc != 0) return rc;
    page_entry *pe;
    uint8_t *p;
    rc = page_lookup(engine, page_id, "mmsb_page_free", &pe);
    if (rc == 0) rc = derive_page_freeing(engine, page_id, true);
    if (rc == 0) {
        commit_begin(engine);
        rc = log_append(engine->log, REC_PAGE_FREE, 8, &p);
        if (rc != 0) commit_abandon(engine, rc);
    }
    if (rc == 0) {
        put_le64(p, page_id);
        log_append_done(engine->log);
        page_remove(engine, page_id, pe);
        derive_page_freeing(engine, page_id, false);
        uint64_t seq;
        rc = commit_finish(engine, 0, &seq);
    }
    engine_leave(engine);
    return rc;
}

/* ---- reading calls ---------------------------------------------------------- */

/* The range is checked against the size seen in the same consistent read.
 * A torn copy could pair one page's offset with another's size: only what
 * lies inside the arena is read, and the seq check rejects the copy after. */
int page_read_consistent(const page_source *src, uint64_t id, const char *fn, entry_copy *copy,
                         uint64_t offset, void *dst, uint64_t len) {
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
        if (live && in_range && in_arena && dst != NULL && len > 0) memcpy(dst, src->arena + copy->data_off + offset, len);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&pe->seq, memory_order_relaxed) != s1) continue;
        if (!live) return err_set(MMSB_ENOTFOUND, "%s: page %llu was freed", fn, (unsigned long long)id);
        if (!in_arena) return err_set(MMSB_ECORRUPT, "%s: page %llu lies outside the arena", fn, (unsigned long long)id);
        if (!in_range) {
            return err_set(MMSB_EINVAL, "%s: range offset %llu + len %llu exceeds page %llu of %llu bytes",
                           fn, (unsigned long long)offset, (unsigned long long)len,
                           (unsigned long long)id, (unsigned long long)copy->size_bytes);
        }
        return 0;
    }
    return err_set(MMSB_EBUSY, "%s: page %llu kept changing for %u read attempts", fn,
                   (unsigned long long)id, (unsigned)READ_ATTEMPTS_MAX);
}

static int read_consistent(const mmsb_engine *e, uint64_t id, const char *fn,
                           entry_copy *copy, uint64_t offset, void *dst, uint64_t len) {
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
        return err_set(MMSB_EINVAL, "mmsb_page_info: info->struct_size %u is below %zu; set it to sizeof(mmsb_pageinfo)",
                       info->struct_size, sizeof(mmsb_pageinfo));
    }
    entry_copy copy;
    rc = read_consistent(engine, page_id, "mmsb_page_info", &copy, 0, NULL, 0);
    if (rc != 0) return rc;
    *info = (mmsb_pageinfo){
        .struct_size = sizeof(mmsb_pageinfo),
        .location = (copy.flags & PE_DEVICE) ? MMSB_LOC_DEVICE : MMSB_LOC_HOST,
        .page_id = page_id,
        .size_bytes = copy.size_bytes,
        .epoch = copy.epoch,
        .flags = 0,
    };
    return 0;
}

MMSB_API int mmsb_page_read(mmsb_engine *engine, uint64_t page_id, uint64_t offset,
                            void *buf, uint64_t len, uint64_t *epoch_out) {
    int rc = engine_check(engine, "mmsb_page_read");
    if (rc != 0) return rc;
    if (buf == NULL && len > 0) return err_set(MMSB_EINVAL, "mmsb_page_read: buf is NULL with len %llu", (unsigned long long)len);
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
    if (copy.flags & PE_DEVICE) {
        return err_set(MMSB_ENOTSUP, "mmsb_page_view: page %llu lives on the GPU; use mmsb_page_read",
                       (unsigned long long)page_id);
    }
    *data_out = region_ptr(&engine->data, copy.data_off);
    if (size_out != NULL) *size_out = copy.size_bytes;
    if (epoch_out != NULL) *epoch_out = copy.epoch;
    return 0;
}
