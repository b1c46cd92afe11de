/*
 * engine.h - the engine handle and the page table, shared by the engine's
 * translation units.
 */
#ifndef MMSB_ENGINE_H
#define MMSB_ENGINE_H

#include <stdatomic.h>

#include "../gpu/gpu.h"
#include "../tlog/ckpt.h"
#include "../tlog/cursor.h"
#include "../tlog/writer.h"
#include "graph.h"
#include "kern.h"
#include "location.h"
#include "ops.h"
#include "region.h"
#include "vm.h"

enum {
    CHUNK_BYTES = 4096,            /* the digest's chunk size (DIGESTS.md) */
    WRITE_BLOCK_BYTES = 64 * 1024, /* a write is diffed in blocks this big */
};

/* page_entry.flags */
enum {
    PE_LIVE = 1u << 0,         /* the id names an existing page */
    PE_DIGEST_DIRTY = 1u << 1, /* bytes changed since the digest was computed */
    PE_DEVICE = 1u << 2,       /* the bytes live on the GPU */
};

/* One page-table entry, 48 bytes, in shared memory (a memfd) so that another
 * process can later map the table read-only. Readers copy an entry under its
 * seqlock: `seq` is odd while the writer changes the entry or the page. */
typedef struct page_entry {
    uint64_t data_off;   /* offset of the bytes in the data arena */
    uint64_t size_bytes;
    uint64_t epoch;
    union {
        h128 digest;     /* pages of one chunk: the page digest */
        struct {
            uint64_t aux_off; /* larger pages: offset of the chunk tree */
            uint64_t unused;
        } tree;
    } u;
    _Atomic uint32_t seq;
    uint32_t flags;      /* PE_* */
} page_entry;

_Static_assert(sizeof(page_entry) == 48, "page table entries are 48 bytes");

enum {
    LIVE_OPEN = 1,
    LIVE_CLOSED = 2,
    LIVE_HEADER_BYTES = 4096,
    LIVE_TOKEN_BYTES = 48,
};

enum { DIRTY_BATCH = 4096 }; /* positions taken from the dirty set at a time */

/* The ids whose state-tree leaf is stale, as a bit per leaf position with two
 * summary levels (a bit per word below), so that marking is three ORs and
 * the stale positions come out in ascending order without a sort. */
typedef struct dirty_set {
    vmap bits;     /* bit per position (id - 1) */
    vmap words;    /* bit per word of `bits` */
    vmap groups;   /* bit per word of `words` */
} dirty_set;

typedef struct digest_state {
    dirty_set dirty;
    vmap nodes;           /* h128 state-tree nodes of levels >= 2, heap order */
    uint32_t height;      /* levels above the leaves (>= 2); 2^height >= pages_max */
    uint32_t top;         /* the level kept up to date: enough for the ids in use */
    bool root_valid;
    h128 root;            /* the state root, when root_valid */
    h128 zero_chunk;      /* hash of a 4 KiB chunk of zeros: fresh pages' leaves */
    uint64_t batch[DIRTY_BATCH];
} digest_state;

/* The commit being built by the writer: what changed, how to undo it, and
 * the events to deliver once it is committed. */
typedef struct commit_ctx {
    uint64_t gen;            /* marks graph nodes touched by this commit */
    bool active;
    bool journaling;         /* keep old bytes: a user operation could fail */
    bool journal_lost;       /* the journal overflowed: no rollback possible */
    vmap journal;
    uint64_t journal_used;
    uint32_t *changed;       /* nodes changed in this commit that have children */
    uint32_t changed_count, changed_cap;
    uint32_t *include;       /* derived nodes to compute whatever changed */
    uint32_t include_count, include_cap;
    vmap events;             /* mmsb_event[] to deliver after the commit */
    uint64_t event_count;
    bool events_lost;
    mmsb_commit_result res;
} commit_ctx;

/* The pages a commit (being built, or being replayed) has changed so far:
 * a page's epoch rises once per commit that changes it, at its first change;
 * later changes in the same commit keep that epoch. A page's bit is backed
 * when the page is created; the list grows as commits need it, reserved
 * (touched_prepare) before anything of a change is logged, so marking never
 * fails. */
typedef struct touched_set {
    vmap bits;      /* a bit per page id */
    vmap ids;       /* uint64_t: the ids marked, to clear them at the end */
    uint64_t count;
} touched_set;

typedef struct subscriber {
    uint64_t id;
    uint32_t mask;
    mmsb_event_fn fn;
    void *user;
} subscriber;

typedef struct totals {
    uint64_t commits, recomputes, skips, backdates, delta_propagations, aborts;
} totals;

struct mmsb_engine {
    uint64_t magic;
    io_hooks hooks;       /* a simulator's (tlog/io.h): zero in every ordinary open */
    atomic_uint busy;     /* 1 while a thread is inside a writing call */
    mmsb_options opts;    /* as validated at open */
    const kern_ops *kern;
    const location_ops *loc[LOCATION_COUNT]; /* by location; NULL: none here */
    gpu_status gpu;
    char *dir;
    int dir_fd;
    int lock_fd;
    bool read_only;       /* MMSB_OPEN_READONLY: no lock, no log writer */
    vmap live;            /* the header for attached readers (writers only) */
    char live_token[LIVE_TOKEN_BYTES];
    uint64_t read_commit_seq; /* read-only: the last commit the state holds */
    vmap pages;           /* page_entry[pages_max]; index = id - 1 */
    region data;          /* page bytes (shared memfd) */
    region aux;           /* chunk trees of pages larger than one chunk */
    _Atomic uint64_t page_id_next;
    uint64_t pages_live;
    digest_state dig;
    log_writer *log;
    graph g;
    op_registry ops;
    commit_ctx cc;
    touched_set touched;
    totals sum;
    subscriber subs[MMSB_SUBSCRIBERS_MAX];
    uint32_t sub_count;
    uint64_t sub_next;
    bool in_callback;
    vmap op_out;                  /* a user operation's output (page_bytes_max) */
    vmap op_in;                   /* the parents of the page being computed */
    uint8_t *block;               /* one block of a built-in's output */
    struct {                      /* what the last open found in the log */
        uint64_t commits, records, dropped_records, dropped_bytes;
        uint32_t flags;           /* MMSB_RECOVERED_* */
        char detail[256];
    } recovered;
    struct {                      /* checkpoints (checkpoint.c) */
        ckpt_store *store;        /* NULL until opened */
        vmap dirty;               /* a bit per page id: changed since the last one */
        bool have;                /* `last` describes a checkpoint */
        ckpt_meta last;
        uint64_t stream_pos;      /* the log's stream position at the last one */
        uint64_t next_seq;        /* the log's next record after its marker */
        uint64_t written;         /* since open */
        uint64_t stall_ns_last, stall_ns_max;
        uint64_t segment_first;   /* the lowest log segment file kept */
        uint64_t segments_removed;
        bool loaded;              /* recovery started from one */
        int damage;               /* the store could not be opened: ECORRUPT / EVERSION, ... */
        char damage_detail[200];  /* ... and why (recovery treats it as a failed checkpoint) */
        bool rewrite;             /* the stored one was rejected: write all */
        char note[160];           /* why recovery did not use it, if it did not */
    } ck;
    uint8_t mask_scratch[WRITE_BLOCK_BYTES / 8];
};

#define ENGINE_MAGIC 0x4d4d5342454e4731ull /* "MMSBENG1" */

/* Takes the writer role for a call: MMSB_EINVAL for a bad handle, MMSB_EBUSY
 * when another thread holds it. */
int engine_enter(mmsb_engine *e, const char *fn);
/* The same for calls that change the store: MMSB_EREADONLY on a read-only
 * engine. */
int engine_enter_writer(mmsb_engine *e, const char *fn);
void engine_leave(mmsb_engine *e);
/* Validates a handle for the reading calls (no writer role). */
int engine_check(const mmsb_engine *e, const char *fn);

static inline page_entry *entry_of(const mmsb_engine *e, uint64_t id) {
    ASSERT(id >= 1 && id <= e->opts.pages_max);
    return (page_entry *)e->pages.base + (id - 1);
}

static inline uint8_t *page_bytes(const mmsb_engine *e, const page_entry *pe) {
    return region_ptr(&e->data, pe->data_off);
}

/* Where a page's bytes live: the operations that change them. */
static inline const location_ops *location_of(const mmsb_engine *e, const page_entry *pe) {
    const location_ops *l = e->loc[(pe->flags & PE_DEVICE) ? LOCATION_DEVICE : LOCATION_HOST];
    ASSERT(l != NULL); /* a page is only ever placed where a location exists */
    return l;
}

/* Something about page `id` (bytes, epoch, existence, derivation,
 * signature) changed: the next checkpoint writes it. */
static inline void ckpt_mark(mmsb_engine *e, uint64_t id) {
    ASSERT(id >= 1);
    ((uint64_t *)e->ck.dirty.base)[(id - 1) / 64] |= 1ull << ((id - 1) % 64);
}

/* ---- checkpoints (checkpoint.c) ---------------------------------------------------- */

int checkpoint_open(mmsb_engine *e);
int checkpoint_reserve(mmsb_engine *e, uint64_t id);
void checkpoint_close(mmsb_engine *e);
int checkpoint_discard(mmsb_engine *e);
/* Loads the latest checkpoint into an empty engine; *found false if none.
 * Any failure leaves a partly loaded engine: reset it. */
int checkpoint_load(mmsb_engine *e, ckpt_meta *meta, bool *found);
/* After a writing call's commit: checkpoints when the policy says so. */
int checkpoint_maybe(mmsb_engine *e);
/* Writes a checkpoint now (writer role held, between commits). */
int checkpoint_write(mmsb_engine *e);
/* Removes the log segments the last checkpoint covers (retention), unless
 * MMSB_OPEN_KEEP_LOG or read-only, and notes the lowest one kept. */
void checkpoint_retain(mmsb_engine *e);
/* Derivations as loaded from a checkpoint (derive.c). */
int derive_load(mmsb_engine *e, const ckpt_derive *d);

/* ---- reading pages: in this process, or from a writer's shared memory ------ */

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
                         uint64_t offset, void *dst, uint64_t len);

/* ---- live attach (attach.c): what another process maps ------------------------ */

#define LIVE_MAGIC 0x4d4d53424c495631ull /* "MMSBLIV1" */

/* The shared header a writer keeps for attached readers (its own memfd). */
typedef struct live_header {
    uint64_t magic;
    _Atomic uint32_t state;          /* LIVE_OPEN, then LIVE_CLOSED at close */
    uint32_t entry_bytes;            /* sizeof(page_entry) */
    _Atomic uint64_t page_id_next;
    uint64_t pages_max;
    uint64_t arena_bytes;
    char token[LIVE_TOKEN_BYTES];    /* also in the memfds' names */
} live_header;

/* The writer's side: the names of its memfds carry e->live_token; after
 * open it publishes DIR/ATTACH, at close it marks the header closed and
 * removes the file. */
void live_token_make(mmsb_engine *e);
int live_publish(mmsb_engine *e);
void live_retire(mmsb_engine *e);
static inline void live_note_next(mmsb_engine *e, uint64_t next) {
    if (e->live.base != NULL) {
        atomic_store_explicit(&((live_header *)e->live.base)->page_id_next, next, memory_order_release);
    }
}

/* The writer's lookup: MMSB_ENOTFOUND unless id names a live page. */
int page_lookup(mmsb_engine *e, uint64_t id, const char *fn, page_entry **pe_out);

/* Seqlock write side around any change of an entry or its page's bytes. */
static inline void entry_write_begin(page_entry *pe) {
    uint32_t s = atomic_load_explicit(&pe->seq, memory_order_relaxed);
    ASSERT((s & 1u) == 0);
    atomic_store_explicit(&pe->seq, s + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}

static inline void entry_write_end(page_entry *pe) {
    uint32_t s = atomic_load_explicit(&pe->seq, memory_order_relaxed);
    ASSERT((s & 1u) == 1);
    atomic_store_explicit(&pe->seq, s + 1, memory_order_release);
}

/* ---- pages (page.c): the steps shared by live changes and replay ------------- */

typedef struct page_alloc {
    uint64_t data_off, aux_off;
    bool zeroed;
} page_alloc;

/* Checks a new page's size against the limits and reserves its memory and
 * its id's table space; nothing is visible yet. */
int page_prepare(mmsb_engine *e, uint64_t size_bytes, const char *fn, page_alloc *out);
void page_prepare_undo(mmsb_engine *e, uint64_t size_bytes, const page_alloc *a);
/* Makes the prepared page visible as the next id. */
uint64_t page_publish(mmsb_engine *e, uint64_t size_bytes, const page_alloc *a);
/* Frees a live page. */
void page_remove(mmsb_engine *e, uint64_t id, page_entry *pe);

int touched_open(mmsb_engine *e);
void touched_close(mmsb_engine *e);
int touched_grow(mmsb_engine *e);
/* The commit ended (committed, abandoned, or replayed): none is touched. */
void touched_reset(mmsb_engine *e);

/* Inline: they run for every change. */
static inline bool touched_has(const mmsb_engine *e, uint64_t id) {
    ASSERT(id >= 1 && id <= e->opts.pages_max);
    const uint64_t *bits = (const uint64_t *)e->touched.bits.base;
    return (bits[(id - 1) / 64] >> ((id - 1) % 64)) & 1;
}

/* The epoch a change of page id gives it in the current commit: one above
 * its epoch before the commit. */
static inline uint64_t touched_epoch(const mmsb_engine *e, uint64_t id, const page_entry *pe) {
    return touched_has(e, id) ? pe->epoch : pe->epoch + 1;
}

/* Room to mark one more page; before a change is logged. */
static inline int touched_prepare(mmsb_engine *e) {
    const touched_set *t = &e->touched;
    return (t->count + 1) * sizeof(uint64_t) <= t->ids.bytes_ready ? 0 : touched_grow(e);
}

/* Page id changed in the current commit (its epoch is touched_epoch). */
static inline void touched_mark(mmsb_engine *e, uint64_t id) {
    if (touched_has(e, id)) return;
    touched_set *t = &e->touched;
    ASSERT((t->count + 1) * sizeof(uint64_t) <= t->ids.bytes_ready); /* touched_prepare */
    ((uint64_t *)t->bits.base)[(id - 1) / 64] |= 1ull << ((id - 1) % 64);
    ((uint64_t *)t->ids.base)[t->count++] = id;
}

/* ---- commits (router.c) ---------------------------------------------------------- */

void commit_begin(mmsb_engine *e);
/* Propagates, then appends the COMMIT (or none when nothing changed: then
 * *seq_out is 0). A failed propagation rolls everything back. */
int commit_finish(mmsb_engine *e, uint32_t durability, uint64_t *seq_out);
/* Ends a commit that failed before it finished: rolls back what it did. */
void commit_abandon(mmsb_engine *e, int rc);
/* Records a page's bytes [offset, offset + len) before they change, so a
 * failed commit can restore them (only while journaling). */
void commit_journal_bytes(mmsb_engine *e, uint64_t id, const page_entry *pe, uint64_t offset,
                          uint64_t len);
void commit_journal_signature(mmsb_engine *e, uint64_t id, h128 old);
/* Notes that a page changed (bytes [lo, hi), from old_epoch): for
 * propagation and events. */
void commit_changed(mmsb_engine *e, uint64_t id, const page_entry *pe, uint64_t old_epoch,
                    uint64_t lo, uint64_t hi, uint64_t bytes, uint32_t event);
void commit_result_out(const mmsb_engine *e, mmsb_commit_result *out);
int commit_result_check(const mmsb_commit_result *out, const char *fn);
/* Asks propagation to compute derived node n in this commit. */
int commit_include(mmsb_engine *e, uint32_t n);

/* A change of one page, as logged: one DELTA (or DERIVED) record per block
 * of up to 64 KiB with bits set. */
typedef struct delta_part {
    uint16_t type;            /* REC_DELTA or REC_DERIVED */
    uint64_t page_id, epoch, base;
    h128 signature;           /* REC_DERIVED */
    const uint8_t *mask;      /* bit 0 = byte `base` of the page */
    uint64_t block_len;
    uint64_t first, last, count;
    const uint8_t *dense;     /* new bytes, block-relative; or NULL and ... */
    const uint8_t *packed;    /* ... packed in mask order */
} delta_part;
int log_delta_part(mmsb_engine *e, const delta_part *part);
/* A DERIVED record without bytes: the signature moved, the bytes did not. */
int log_backdate(mmsb_engine *e, uint64_t id, uint64_t epoch, h128 signature);

/* ---- propagation (propagate.c) --------------------------------------------------- */

h128 signature_of(const mmsb_engine *e, uint32_t n, bool at_start);
int propagate(mmsb_engine *e);
int propagate_open(mmsb_engine *e);
void propagate_close(mmsb_engine *e);
int router_open(mmsb_engine *e);
void router_close(mmsb_engine *e);

/* ---- graph (derive.c) -------------------------------------------------------------- */

/* A page is being freed: MMSB_EBUSY when derived pages read it; drops its
 * node (and its parent edges) when it is itself derived. */
int derive_page_freeing(mmsb_engine *e, uint64_t id, bool check_only);
/* Replay of the graph records. */
int derive_replay(mmsb_engine *e, const log_rec *r);

/* ---- recovery (replay.c) ---------------------------------------------------------- */

/* Rebuilds the state from the log in the store directory and says where the
 * writer continues. */
int engine_recover(mmsb_engine *e, log_resume *resume);
/* The same for a read-only engine: changes no file, and starts over (a
 * bounded number of times) when a writer replaced the checkpoint meanwhile. */
int engine_recover_readonly(mmsb_engine *e);

/* mmsb_open with a simulator's I/O hooks (tests/test_sim.c); NULL: none. */
int engine_open(const char *dir, const mmsb_options *options, const io_hooks *hooks, mmsb_engine **out);
/* A named point of the engine's work, for the hooks: 0, or an errno that
 * the step after the point should fail with. */
int engine_point(const mmsb_engine *e, const char *point);

/* An engine over a store's files that changes none of them: no lock, no log
 * writer, the checkpoint store opened read-only when there is one, and no
 * state yet (for read-only opens and the mmsb tool). */
int engine_open_bare(const char *dir, const mmsb_options *options, mmsb_engine **out);
/* Releases an engine that has no log writer. */
void engine_close_bare(mmsb_engine *e);

/* Called after each record that a replay applied (records of aborted
 * commits are skipped); a nonzero return stops the replay with it. */
typedef int (*replay_hook_fn)(void *ctx, mmsb_engine *e, const log_rec *r, uint64_t segment);

typedef struct replay_plan {
    bool from_checkpoint;   /* load the checkpoint first (there must be one) */
    uint64_t to_seq;        /* stop after the last commit at or before it */
    replay_hook_fn hook;    /* or NULL */
    void *ctx;
} replay_plan;

typedef struct replay_result {
    log_end end;            /* how the log ended */
    ckpt_meta checkpoint;   /* the one loaded (from_checkpoint) */
    uint64_t commit_seq;    /* the last commit (or checkpoint marker) applied */
    uint64_t commits;       /* commits up to it, the checkpoint's included */
    uint64_t records;       /* records read in the applying pass */
    uint64_t failed_seq;    /* the record that failed to apply, if one did */
} replay_result;

/* Replays the log of e's store into e (a bare engine, still empty). Every
 * recorded state root is checked on the way, as at open. */
int engine_replay(mmsb_engine *e, const replay_plan *plan, replay_result *out);

/* ---- digests (digest.c) ---------------------------------------------------- */

int digest_open(mmsb_engine *e);
void digest_close(mmsb_engine *e);
/* Backs the digest's per-id tables for ids up to `id`: called before a
 * create, so that marking a page never faults or fails. */
int digest_reserve(mmsb_engine *e, uint64_t id);
/* Bytes of the chunk tree of a page of size_bytes; 0 for one-chunk pages. */
uint64_t digest_aux_bytes(uint64_t size_bytes);
/* A new (all-zero) page: its digest is computed now, from the known hash of
 * a zero chunk, so creating pages never leaves hashing work behind. */
void digest_page_created(mmsb_engine *e, uint64_t id, page_entry *pe);
/* Bytes [offset, offset + len) of the page changed (or it was freed). */
void digest_mark(mmsb_engine *e, uint64_t id, page_entry *pe, uint64_t offset,
                 uint64_t len);
void digest_page(mmsb_engine *e, page_entry *pe, h128 *digest_out);
void digest_root(mmsb_engine *e, h128 *root_out);
void digest_to_bytes(h128 h, uint8_t out[16]);

#endif /* MMSB_ENGINE_H */
