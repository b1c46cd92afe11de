/*
 * checkpoint.c - writing the engine's committed state to the LMDB checkpoint
 * store, and loading it back at open (engine/CHECKPOINTS.md).
 *
 * Incremental: every change of a page (bytes, epoch, creation, removal,
 * derivation, signature) sets its bit in ck.dirty; a checkpoint writes only
 * those pages, in id order, in one LMDB write transaction, then clears the
 * bits. Order of a checkpoint, each step only after the previous one is on
 * stable storage: log synced -> LMDB committed (synced by LMDB) -> marker
 * logged -> old segments removed. A crash between any two steps leaves
 * either the previous checkpoint or this one, each with the log it needs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../tlog/cursor.h"
#include "../tlog/repl/pin.h"
#include "checkpoint.h"
#include "derive.h"
#include "digest.h"
#include "engine.h"
#include "page.h"
#include "replicate.h"
#include "role.h"

enum { GROW_ATTEMPTS_MAX = 48 }; /* doublings: far more than 1 MiB -> 64 TiB */

static uint64_t monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ASSERT(ts.tv_sec >= 0 && ts.tv_nsec >= 0);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int checkpoint_open(mmsb_engine *e) {
    ASSERT(e->ck.store == NULL && e->ck.dirty.base == NULL);
    ASSERT(e->dir != NULL && e->opts.pages_max >= 1);
    uint64_t bytes = align_up_u64(e->opts.pages_max, 64) / 8;
    int rc = vmap_open(&e->ck.dirty, NULL, bytes, VM_PAGE_BYTES);
    if (rc != 0) return rc;
    page_ids_forget(e);
    rc = ckpt_open(e->dir, e->read_only, e->opts.checkpoint_map_bytes, e->opts.checkpoint_readers, &e->ck.store);
    if (rc == MMSB_ENOTFOUND) rc = 0; /* none written yet: the log holds everything */
    if (rc == MMSB_ECORRUPT || rc == MMSB_EVERSION) {
        /* A damaged environment is a checkpoint that fails validation:
         * recovery falls back to the log (checkpoint_load reports it). */
        e->ck.damage = rc;
        snprintf(e->ck.damage_detail, sizeof e->ck.damage_detail, "%s", mmsb_last_error());
        rc = 0;
    }
    return rc;
}

int checkpoint_reserve(mmsb_engine *e, uint64_t id) {
    ASSERT(e->ck.dirty.base != NULL);
    ASSERT(id >= 1 && id <= e->opts.pages_max);
    return vmap_ensure(&e->ck.dirty, align_up_u64(id, 64) / 8);
}

void checkpoint_close(mmsb_engine *e) {
    ASSERT(e->ck.store == NULL || !e->cc.active);
    ASSERT(e != NULL && (e->ck.store == NULL || e->ck.dirty.base != NULL));
    ckpt_close(e->ck.store);
    e->ck.store = NULL;
    vmap_close(&e->ck.dirty);
}

static void dirty_clear(mmsb_engine *e) {
    ASSERT(!e->cc.active);
    uint64_t next = atomic_load_explicit(&e->page_id_next, memory_order_relaxed);
    memset(e->ck.dirty.base, 0, align_up_u64(next, 64) / 8);
    ASSERT(next == 1 || !(((const uint64_t *)e->ck.dirty.base)[(next - 2) / 64] & (1ull << ((next - 2) % 64))));
}

/* ---- writing ------------------------------------------------------------------------------ */

void checkpoint_derive_of(mmsb_engine *e, uint64_t id, ckpt_derive *d) {
    uint32_t n = graph_node(&e->g, id);
    ASSERT(n != 0 && graph_at(&e->g, n)->page_id == id);
    ASSERT(graph_at(&e->g, n)->op != 0 && graph_at(&e->g, n)->parent_count >= 1);
    const gnode *v = graph_at(&e->g, n);
    *d = (ckpt_derive){.child = id, .op = v->op, .op_version = op_version(&e->ops, v->op),
                       .parent_count = v->parent_count, .params_len = v->params_len,
                       .signature = v->signature, .params = v->params};
}

uint64_t checkpoint_derive_parent(mmsb_engine *e, uint64_t id, uint32_t k) {
    const gnode *v = graph_at(&e->g, graph_node(&e->g, id));
    ASSERT(v->page_id == id && k < v->parent_count);
    return graph_at(&e->g, v->parents[k])->page_id;
}

static int put_derive(mmsb_engine *e, uint64_t id) {
    ckpt_derive d;
    checkpoint_derive_of(e, id, &d);
    uint8_t *parents;
    int rc = ckpt_put_derive(e->ck.store, &d, &parents);
    if (rc != 0) return rc;
    for (uint32_t k = 0; k < d.parent_count; k++) put_le64(parents + 8ull * k, checkpoint_derive_parent(e, id, k));
    return 0;
}

static int put_one(mmsb_engine *e, uint64_t id) {
    ASSERT(id >= 1 && id < atomic_load_explicit(&e->page_id_next, memory_order_relaxed));
    ASSERT(e->ck.store != NULL);
    const page_entry *pe = entry_of(e, id);
    if (!(pe->flags & PE_LIVE)) {
        int rc = ckpt_del_page(e->ck.store, id);
        return rc != 0 ? rc : ckpt_del_derive(e->ck.store, id);
    }
    /* Placement is not state: a device page is stored as its mirror, at the host location. */
    ckpt_page p = {.id = id, .size_bytes = pe->size_bytes, .epoch = pe->epoch, .flags = page_flags_of(pe->flags),
                   .location = MMSB_LOC_HOST};
    ckpt_page_dst dst;
    int rc = ckpt_put_page(e->ck.store, &p, &dst);
    if (rc != 0) return rc;
    const location_ops *loc = location_of(e, pe);
    if (dst.head_bytes > 0) loc->load(e, pe, 0, dst.head, dst.head_bytes);
    if (dst.tail != NULL) loc->load(e, pe, dst.head_bytes, dst.tail, pe->size_bytes - dst.head_bytes);
    uint32_t n = graph_node(&e->g, id);
    if (n != 0 && graph_at(&e->g, n)->op != 0) return put_derive(e, id);
    return ckpt_del_derive(e->ck.store, id);
}

/* One LMDB write transaction with every dirty page and the meta record. */
static int write_txn(mmsb_engine *e, const ckpt_meta *m) {
    ASSERT(m->page_id_next == atomic_load_explicit(&e->page_id_next, memory_order_relaxed));
    ASSERT(!e->read_only && e->ck.store != NULL);
    if (e->ck.rewrite) { /* every page id counts as changed */
        uint64_t ids = m->page_id_next - 1;
        memset(e->ck.dirty.base, 0xff, ids / 64 * 8);
        if (ids % 64 != 0) ((uint64_t *)e->ck.dirty.base)[ids / 64] |= (1ull << (ids % 64)) - 1;
    }
    int rc = ckpt_write_begin(e->ck.store, e->ck.rewrite);
    if (rc != 0) return rc;
    const uint64_t *bits = (const uint64_t *)e->ck.dirty.base;
    uint64_t words = align_up_u64(m->page_id_next - 1, 64) / 64;
    for (uint64_t w = 0; rc == 0 && w < words; w++) {
        for (uint64_t b = bits[w]; rc == 0 && b != 0; b &= b - 1) {
            rc = put_one(e, w * 64 + (uint64_t)__builtin_ctzll(b) + 1);
        }
    }
    int injected = rc == 0 ? engine_point(e, "checkpoint-commit") : 0;
    if (injected != 0)
        rc = err_set(err_from_errno(injected), "checkpoint: committing: %s (injected)", strerror(injected));
    if (rc == 0) return ckpt_write_commit(e->ck.store, m);
    ckpt_write_abort(e->ck.store);
    return rc;
}

static int write_growing(mmsb_engine *e, const ckpt_meta *m) {
    ASSERT(e->ck.store != NULL && !e->read_only);
    ASSERT(m->number >= 1 && m->commit_seq >= 1);
    for (uint32_t attempt = 0; attempt < GROW_ATTEMPTS_MAX; attempt++) {
        int rc = write_txn(e, m);
        if (rc != CKPT_FULL) return rc;
        rc = ckpt_grow(e->ck.store, e->opts.checkpoint_map_bytes_max);
        if (rc != 0) return rc;
    }
    return err_set(MMSB_ENOSPC, "checkpoint: still full after %d map doublings", GROW_ATTEMPTS_MAX);
}

/* Removes every segment file wholly before `keep`, the checkpoint's
 * segment, oldest first, so that what remains is always a contiguous run.
 * The directory says what is there, not a remembered number: a crash in an
 * earlier removal may have left any of them behind. A failure leaves the
 * rest for the next checkpoint (or open) to remove. */
static void remove_segments_before(mmsb_engine *e, uint64_t keep) {
    ASSERT(e->dir_fd >= 0);
    uint64_t *nos;
    uint32_t count;
    if (segment_list(e->dir_fd, &nos, &count) != 0) return;
    uint32_t removed = 0;
    bool keep_all = (e->opts.flags & MMSB_OPEN_KEEP_LOG) != 0;
    while (!keep_all && removed < count && nos[removed] < keep) {
        char name[32];
        segment_name(nos[removed], name);
        if (unlinkat(e->dir_fd, name, 0) != 0 && errno != ENOENT) break;
        removed++;
        engine_point(e, "segment-removed");
    }
    e->ck.segment_first = removed < count ? nos[removed] : keep; /* the lowest file kept */
    free(nos);
    if (removed > 0) fsync(e->dir_fd);
    e->ck.segments_removed += removed;
    ASSERT(removed <= count);
}

/* The lowest segment retention keeps, given the checkpoint's: lower where
 * a replication stream does not hold the log yet, this writer's own
 * (replicate.h) or one a shipper publishes to (its pin: mmsb ship, or an
 * earlier open's replication). 0 stays 0: nothing is removed. */
static uint64_t retention_keep(mmsb_engine *e, uint64_t checkpoint_segment) {
    uint64_t keep = checkpoint_segment;
    if (keep == 0) return 0;
    uint64_t floor = replicate_segment_floor(e);
    if (floor != 0) keep = min_u64(keep, floor);
    floor = ship_pin_floor(e->dir_fd);
    if (floor != 0) keep = min_u64(keep, floor);
    ASSERT(keep >= 1 && keep <= checkpoint_segment);
    return keep;
}

void checkpoint_retain(mmsb_engine *e) {
    ASSERT(e->dir_fd >= 0);
    ASSERT(!e->cc.active);
    /* keep 0 removes nothing: it only notes the lowest segment file */
    uint64_t keep = e->ck.have && !e->read_only ? e->ck.last.segment : 0;
    remove_segments_before(e, retention_keep(e, keep));
}

/* The LMDB environment, made whole or not at all (ckpt_create). */
static int checkpoint_store_create(mmsb_engine *e) {
    ASSERT(e->dir != NULL);
    ASSERT(e->ck.store == NULL && !e->read_only);
    const mmsb_options *o = &e->opts;
    int rc = ckpt_create(e->dir, o->checkpoint_map_bytes, o->checkpoint_readers);
    if (rc == 0) rc = ckpt_open(e->dir, false, o->checkpoint_map_bytes, o->checkpoint_readers, &e->ck.store);
    return rc;
}

int checkpoint_write(mmsb_engine *e) {
    ASSERT(!e->read_only && !e->cc.active);
    ASSERT(!log_pending(e->log));
    int rc = log_failed(e->log);
    if (rc != 0) return rc;
    log_pos pos;
    log_position(e->log, &pos);
    if (pos.commits == 0) return 0;                              /* nothing ever committed */
    if (e->ck.have && e->ck.next_seq == pos.next_seq) return 0; /* nothing since */
    uint64_t t0 = monotonic_ns();
    rc = log_sync(e->log); /* the checkpoint never gets ahead of the durable log */
    if (rc != 0) return rc;
    ckpt_meta m = {.format = CKPT_FORMAT, .salt = pos.salt, .number = e->ck.last.number + 1,
                   .commit_seq = pos.next_seq - 1, .next_seq = pos.next_seq, .commits = pos.commits,
                   .segment = pos.segment, .offset = pos.offset, .chain = pos.chain,
                   .page_id_next = atomic_load_explicit(&e->page_id_next, memory_order_relaxed),
                   .pages = e->pages_live, .derived = e->g.derived, .generation = pos.generation};
    digest_root(e, &m.root);
    ASSERT(m.commit_seq >= 1 && m.next_seq == m.commit_seq + 1);
    if (e->ck.store == NULL) rc = checkpoint_store_create(e); /* the store's first one */
    if (rc == 0) rc = write_growing(e, &m);
    if (rc != 0) return rc;
    engine_point(e, "checkpoint-committed");
    dirty_clear(e);
    e->ck.rewrite = false;
    e->ck.last = m;
    e->ck.have = true;
    e->ck.written++;
    rec_checkpoint marker = {.number = m.number, .commit_seq = m.commit_seq, .chain = m.chain, .root = m.root};
    rc = log_append_checkpoint(e->log, &marker);
    engine_point(e, "checkpoint-marked");
    log_position(e->log, &pos);
    e->ck.stream_pos = pos.stream_pos;
    e->ck.next_seq = pos.next_seq;
    ASSERT(rc != 0 || e->ck.next_seq == m.next_seq + 1 ||
           e->ck.next_seq == m.next_seq + 2); /* the marker, maybe after a SEAL */
    remove_segments_before(e, retention_keep(e, m.segment));
    e->ck.stall_ns_last = monotonic_ns() - t0;
    e->ck.stall_ns_max = max_u64(e->ck.stall_ns_max, e->ck.stall_ns_last);
    return rc;
}

void checkpoint_maybe(mmsb_engine *e) {
    ASSERT(!e->read_only && !e->cc.active);
    uint64_t every = e->opts.checkpoint_log_bytes;
    if (every == 0 || log_pending(e->log) || log_failed(e->log) != 0) return;
    uint64_t stream_pos = log_stream_pos(e->log);
    ASSERT(stream_pos >= e->ck.stream_pos);
    if (stream_pos - e->ck.stream_pos < every) return;
    if (checkpoint_write(e) != 0) {
        snprintf(e->ck.note, sizeof e->ck.note, "checkpoint failed: %.140s", mmsb_last_error());
        e->ck.stream_pos = stream_pos; /* next try after another checkpoint_log_bytes */
    }
}

MMSB_API int mmsb_checkpoint(mmsb_engine *engine) {
    int rc = engine_enter_writer(engine, "mmsb_checkpoint");
    if (rc != 0) return rc;
    rc = checkpoint_write(engine);
    engine_leave(engine);
    return rc;
}

/* A checkpoint that failed validation is set aside as checkpoint.rejected
 * (replacing an older one), for inspection, and a fresh store takes its
 * place: its LMDB structure itself may be damaged. */
int checkpoint_discard(mmsb_engine *e) {
    ASSERT(e->dir_fd >= 0 && !e->read_only);
    ckpt_close(e->ck.store);
    e->ck.store = NULL;
    static const char *const files[] = {"checkpoint.rejected/data.mdb", "checkpoint.rejected/lock.mdb"};
    for (uint32_t i = 0; i < ARRAY_LEN(files); i++) unlinkat(e->dir_fd, files[i], 0);
    unlinkat(e->dir_fd, "checkpoint.rejected", AT_REMOVEDIR);
    if (renameat(e->dir_fd, "checkpoint", e->dir_fd, "checkpoint.rejected") != 0 && errno != ENOENT) {
        return err_set(err_from_errno(errno), "checkpoint: cannot set the rejected one aside: %s", strerror(errno));
    }
    fsync(e->dir_fd);
    e->ck.have = false;
    e->ck.rewrite = true;
    e->ck.damage = 0;
    ASSERT(e->ck.store == NULL && !e->ck.have);
    return 0; /* the next checkpoint makes a fresh environment */
}

/* ---- loading ------------------------------------------------------------------------------ */

typedef struct load_ctx {
    mmsb_engine *e;
    const ckpt_meta *m;
    uint64_t pages;
} load_ctx;

int checkpoint_load_page(mmsb_engine *e, const ckpt_page *p, uint64_t id_end, const char *fn) {
    ASSERT(!e->cc.active && id_end >= 1);
    uint64_t next = atomic_load_explicit(&e->page_id_next, memory_order_relaxed);
    if (p->id < next || p->id >= id_end || !page_flags_valid(p->flags) || p->location != MMSB_LOC_HOST) {
        return err_set(MMSB_ECORRUPT, "%s: page %llu (size %llu, flags 0x%x, location %u) out of order or range",
                       fn, (unsigned long long)p->id, (unsigned long long)p->size_bytes, p->flags, p->location);
    }
    atomic_store_explicit(&e->page_id_next, p->id, memory_order_relaxed);
    page_alloc a;
    int rc = page_prepare(e, p->size_bytes, fn, &a);
    if (rc != 0) return rc;
    uint64_t id = page_publish(e, p->size_bytes, p->flags, &a);
    ASSERT(id == p->id);
    page_load_epoch(e, id, entry_of(e, id), p->epoch);
    if (p->bytes != NULL) {
        uint64_t head = p->tail != NULL ? p->tail_at : p->size_bytes;
        ASSERT(head <= p->size_bytes);
        page_change_args load = {.kind = PAGE_LOAD, .offset = 0, .len = head, .src = p->bytes, .epoch = p->epoch};
        if (head > 0) page_change(e, id, entry_of(e, id), &load);
        if (p->tail != NULL) {
            load = (page_change_args){.kind = PAGE_LOAD, .offset = head, .len = p->size_bytes - head,
                                      .src = p->tail, .epoch = p->epoch};
            page_change(e, id, entry_of(e, id), &load);
        }
    }
    ASSERT(entry_of(e, id)->epoch == p->epoch);
    return 0;
}

int checkpoint_load_finish(mmsb_engine *e, uint64_t page_id_next, h128 *root) {
    ASSERT(page_id_next >= atomic_load_explicit(&e->page_id_next, memory_order_relaxed));
    ASSERT(root != NULL && !e->cc.active);
    atomic_store_explicit(&e->page_id_next, page_id_next, memory_order_relaxed);
    /* Ids freed after the last live one have table entries too (every id
     * below the next one can be looked up and checkpointed). */
    uint64_t last = page_id_next - 1;
    int rc = 0;
    if (last >= 1) rc = vmap_ensure(&e->pages, last * sizeof(page_entry));
    if (rc == 0 && last >= 1) rc = checkpoint_reserve(e, last);
    if (rc == 0 && last >= 1) rc = digest_reserve(e, last);
    if (rc == 0 && last >= 1) rc = graph_reserve(&e->g, last);
    if (rc == 0) digest_root(e, root);
    return rc;
}

static int load_page(void *ctx, const ckpt_page *p) {
    load_ctx *x = ctx;
    ASSERT(x->e != NULL && x->m != NULL);
    int rc = checkpoint_load_page(x->e, p, x->m->page_id_next, "checkpoint");
    x->pages += rc == 0;
    return rc;
}

static int load_derive(void *ctx, const ckpt_derive *d) {
    ASSERT(d->child != 0);
    ASSERT(ctx != NULL && d != NULL);
    load_ctx *x = ctx;
    if (d->child >= x->m->page_id_next)
        return err_set(MMSB_ECORRUPT, "checkpoint: derivation of page %llu out of range", (unsigned long long)d->child);
    return derive_load(x->e, d, "checkpoint");
}

int checkpoint_load(mmsb_engine *e, ckpt_meta *meta, bool *found) {
    ASSERT(meta != NULL && found != NULL);
    ASSERT(atomic_load_explicit(&e->page_id_next, memory_order_relaxed) == 1 && e->pages_live == 0);
    *found = false;
    if (e->ck.damage != 0) {
        *found = true;
        return err_set(e->ck.damage, "%s", e->ck.damage_detail);
    }
    if (e->ck.store == NULL) return 0; /* none was ever written */
    int rc = ckpt_read_begin(e->ck.store, meta, found);
    if (rc != 0 || !*found) {
        ckpt_read_end(e->ck.store);
        return rc;
    }
    load_ctx x = {.e = e, .m = meta};
    if (meta->page_id_next - 1 > e->opts.pages_max) {
        rc = err_set(MMSB_ENOSPC, "checkpoint: it holds page ids up to %llu, above pages_max %llu",
                     (unsigned long long)(meta->page_id_next - 1), (unsigned long long)e->opts.pages_max);
    }
    if (rc == 0) rc = ckpt_read_pages(e->ck.store, load_page, &x);
    if (rc == 0) rc = ckpt_read_derives(e->ck.store, load_derive, &x);
    ckpt_read_end(e->ck.store);
    if (rc != 0) return rc;
    h128 root;
    rc = checkpoint_load_finish(e, meta->page_id_next, &root);
    if (rc != 0) return rc;
    if (x.pages != meta->pages || e->g.derived != meta->derived || root.lo != meta->root.lo ||
        root.hi != meta->root.hi) {
        return err_set(MMSB_ECORRUPT,
                       "checkpoint %llu: loaded %llu pages (%llu derived) with state root %016llx%016llx; "
                       "it recorded %llu (%llu) and %016llx%016llx",
                       (unsigned long long)meta->number, (unsigned long long)x.pages, (unsigned long long)e->g.derived,
                       (unsigned long long)root.hi, (unsigned long long)root.lo, (unsigned long long)meta->pages,
                       (unsigned long long)meta->derived, (unsigned long long)meta->root.hi,
                       (unsigned long long)meta->root.lo);
    }
    dirty_clear(e);
    e->ck.last = *meta;
    e->ck.have = true;
    ASSERT(e->pages_live == meta->pages);
    return 0;
}
