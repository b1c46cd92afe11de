/*
 * state.h - the engine's state: the handle, the page table entry and the
 * per-module state they hold, with the few accessors every module uses.
 * It declares no module's functions; each module has its own header, which
 * includes this one (engine/README.md draws the include graph).
 */
#ifndef MMSB_STATE_H
#define MMSB_STATE_H

#include <stdatomic.h>

#include "../gpu/device.h"
#include "../gpu/gpu.h"
#include "../tlog/checkpoint/lmdb_store.h"
#include "../tlog/writer.h"
#include "base/kern.h"
#include "base/region.h"
#include "base/vm.h"
#include "graph.h"
#include "location.h"
#include "ops.h"

enum {
    CHUNK_BYTES = 4096,            /* the digest's chunk size (DIGESTS.md) */
    WRITE_BLOCK_BYTES = 64 * 1024, /* a write is diffed in blocks this big */
};

/* page_entry.flags */
enum {
    PE_LIVE = 1u << 0,         /* the id names an existing page */
    PE_DIGEST_DIRTY = 1u << 1, /* bytes changed since the digest was computed */
    PE_DEVICE = 1u << 2,       /* a device page: a copy on the device, the bytes here its mirror */
    PE_WANT_HOST = 1u << 3,    /* created with MMSB_PAGE_HOST */
    PE_WANT_DEVICE = 1u << 4,  /* created with MMSB_PAGE_DEVICE */
    PE_LEAVES_FRESH = 1u << 5, /* a device page whose dirty chunks' digests a batch across pages computed
                                  (digest_root): only the tree above them is left to do */
};

/* The MMSB_PAGE_* flags a page was created with. */
static inline uint32_t page_flags_of(uint32_t pe_flags) {
    return ((pe_flags & PE_WANT_HOST) ? MMSB_PAGE_HOST : 0u) | ((pe_flags & PE_WANT_DEVICE) ? MMSB_PAGE_DEVICE : 0u);
}

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
    uint64_t group_end; /* groups[0 .. group_end) may have bits set: what a take scans */
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
    bool rolling_back;       /* commit_abandon is restoring pages from the journal */
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

typedef struct replicator replicator; /* replicate.c */

enum { DEVICE_HASH_BATCH = 4096 }; /* chunk digests asked of the device at once: 16 MiB of a page per wait */
/* Propagation computes the lanewise outputs of up to this many ready device
 * pages, of this many bytes in all, in one wait (propagate.c). */
enum { DEVICE_AHEAD_MAX = 64, DEVICE_AHEAD_SCAN = 4 * DEVICE_AHEAD_MAX /* ready pages looked at for a batch */ };
#define DEVICE_AHEAD_BYTES (1ull << 30)

typedef struct device_ahead {
    vmap out;             /* the outputs' bytes */
    uint64_t out_used;
    uint32_t count, used; /* outputs computed, and taken by their pages' turns */
    uint32_t node[DEVICE_AHEAD_MAX];
    uint64_t lo[DEVICE_AHEAD_MAX], hi[DEVICE_AHEAD_MAX], at[DEVICE_AHEAD_MAX];
} device_ahead;

/* The device location (location.c): NULL dev, every page on the host. */
typedef struct device_state {
    gpu_dev *dev;
    uint64_t threshold_bytes;   /* pages this big or bigger go to the device */
    uint32_t threshold_source;  /* MMSB_GPU_THRESHOLD_* */
    int failed;                 /* a device error not yet acted on: an MMSB_E* code */
    bool lost;                  /* the device pages went back to the host, for good */
    char lost_detail[200];      /* why */
    uint64_t pages, page_bytes; /* device pages now, and their bytes */
    uint64_t fallbacks;         /* placed on the host: the device had no memory */
    uint64_t *op_offsets;       /* MMSB_DERIVE_PARENTS_MAX: an operation's parents on the device */
    uint64_t hash_chunks[DEVICE_HASH_BATCH];
    h128 hash_out[DEVICE_HASH_BATCH];
    gpu_chunk_ref hash_refs[DEVICE_HASH_BATCH]; /* the chunks of one device call */
    h128 *hash_dst[DEVICE_HASH_BATCH];          /* where each digest goes (digest_root's batches) */
    device_ahead ahead;
} device_state;

typedef struct totals {
    uint64_t commits, recomputes, skips, backdates, delta_propagations, aborts;
} totals;

/* Reader threads (read.c) read magic, pages, data and page_id_next on every
 * call, and the writer writes busy, the commit's state and the digest's on
 * every call: those live on cache lines of their own (ENGINE_LINE_BYTES),
 * or each write would take the lines back from every reader. */
enum { ENGINE_LINE_BYTES = 64 };

struct mmsb_engine {
    uint64_t magic;
    io_hooks hooks;       /* a simulator's (tlog/io.h): zero in every ordinary open */
    _Alignas(ENGINE_LINE_BYTES) atomic_uint busy; /* 1 while a thread is inside a writing call */
    _Alignas(ENGINE_LINE_BYTES) mmsb_options opts; /* as validated at open */
    const kern_ops *kern;
    const location_ops *loc[LOCATION_COUNT]; /* by location; NULL: none here */
    gpu_status gpu;
    device_state dv;
    char *dir;
    int dir_fd;
    int lock_fd;
    bool read_only;       /* MMSB_OPEN_READONLY: no lock, no log writer */
    bool follower;        /* a replica's state (read-only): advanced by engine_follow, published for attach */
    bool seeded;          /* an import's: its close ends the log with a clean close, commits or not */
    vmap live;            /* the header for attached readers (writers and followers) */
    char live_token[LIVE_TOKEN_BYTES];
    uint64_t read_commit_seq; /* read-only: the last commit the state holds */
    uint64_t read_commits;    /* read-only: commits up to it, and its chain value */
    h128 read_chain;
    vmap pages;           /* page_entry[pages_max]; index = id - 1 */
    region data;          /* page bytes (shared memfd) */
    region aux;           /* chunk trees of pages larger than one chunk */
    _Atomic uint64_t page_id_next;
    uint64_t pages_live;
    uint64_t ids_ready;        /* every per-id table has room for ids 1..this (page.c) */
    _Alignas(ENGINE_LINE_BYTES) digest_state dig;
    log_writer *log;
    replicator *repl;     /* the writer's shipper; NULL: no replication */
    char *repl_servers, *repl_stream; /* the options' strings, copied */
    graph g;
    op_registry ops;
    commit_ctx cc;
    touched_set touched;
    totals sum;
    subscriber subs[MMSB_SUBSCRIBERS_MAX];
    uint32_t sub_count;
    uint64_t sub_next;
    _Atomic uint32_t callback_tid; /* the writer thread while it runs event callbacks; else 0 */
    vmap op_out;                  /* a derived page's computed output (page_bytes_max) */
    vmap op_in;                   /* the parents of the page being computed */
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

static inline page_entry *entry_of(const mmsb_engine *e, uint64_t id) {
    ASSERT(id >= 1 && id <= e->opts.pages_max);
    ASSERT(id * sizeof(page_entry) <= e->pages.bytes_ready); /* page_prepare backed it */
    return (page_entry *)e->pages.base + (id - 1);
}

static inline uint8_t *page_bytes(const mmsb_engine *e, const page_entry *pe) {
    ASSERT(pe->data_off + pe->size_bytes <= e->data.mem.bytes_max);
    return region_ptr(&e->data, pe->data_off);
}

/* Where a page's bytes live: the operations that change them. */
static inline const location_ops *location_of(const mmsb_engine *e, const page_entry *pe) {
    const location_ops *l = e->loc[(pe->flags & PE_DEVICE) ? LOCATION_DEVICE : LOCATION_HOST];
    ASSERT(l != NULL); /* a page is only ever placed where a location exists */
    return l;
}

/* A commit's end for the device location (location_settle): an engine
 * without a device pays this one branch. */
static inline void location_commit_end(mmsb_engine *e) {
    if (e->dv.dev != NULL) location_settle(e);
}

/* Something about page `id` (bytes, epoch, existence, derivation,
 * signature) changed: the next checkpoint writes it. */
static inline void ckpt_mark(mmsb_engine *e, uint64_t id) {
    ASSERT(id >= 1 && id <= e->opts.pages_max);
    ASSERT((id - 1) / 64 * sizeof(uint64_t) < e->ck.dirty.bytes_ready); /* checkpoint_reserve */
    ((uint64_t *)e->ck.dirty.base)[(id - 1) / 64] |= 1ull << ((id - 1) % 64);
}

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

#endif /* MMSB_STATE_H */
