/*
 * lmdb_store.h - the checkpoint store: an LMDB environment in the store's
 * `checkpoint/` directory holding the materialised state as of one commit.
 *
 * This file knows LMDB and the byte layout of the values (CHECKPOINTS.md in
 * engine/); it knows nothing of the engine. Every value read back is
 * checked for length and ranges before it is handed out: the files are
 * treated as hostile like the log.
 */
#ifndef MMSB_TLOG_CKPT_H
#define MMSB_TLOG_CKPT_H

#include "../format.h"

enum {
    CKPT_FORMAT = 2,     /* written; format 1 (no tails) is still read */
    CKPT_FORMAT_MIN = 1,
    CKPT_META_BYTES = 128,
    CKPT_PAGE_HEAD_BYTES = 24,
    CKPT_DERIVE_HEAD_BYTES = 32,
    CKPT_FULL = 1, /* a put or commit ran out of map: grow and redo */
    CKPT_STALE = 2, /* the file no longer holds the snapshot asked for: begin again */
};
#define CKPT_TXN_NEWEST UINT64_MAX
#define CKPT_MAP_BYTES_LIMIT (1ull << 46) /* checkpoint_map_bytes_max's limit, 64 TiB */

typedef struct ckpt_meta {
    uint32_t format;
    uint64_t salt;
    uint64_t number;        /* checkpoints written in this store, this one included */
    uint64_t commit_seq;    /* the last commit it contains */
    uint64_t next_seq;      /* the record after it (and after nothing else) */
    uint64_t commits;       /* commits up to and including commit_seq */
    uint64_t segment, offset; /* where the log continues */
    h128 chain;             /* chain value of commit_seq */
    h128 root;              /* state root after it */
    uint64_t page_id_next;
    uint64_t pages;         /* live pages */
    uint64_t derived;       /* derived pages */
    uint32_t generation;    /* of the writer then: records after it are not older */
} ckpt_meta;

typedef struct ckpt_page {
    uint64_t id, size_bytes, epoch;
    uint32_t flags, location;
    const uint8_t *bytes;   /* size_bytes of them, or tail_at when tail is not NULL (reading) */
    const uint8_t *tail;    /* bytes [tail_at, size_bytes), from the "tails" database, or NULL */
    uint64_t tail_at;
} ckpt_page;

/* Where a page's bytes go when it is written: [0, head_bytes) at head, the
 * rest (if any) at tail. */
typedef struct ckpt_page_dst {
    uint8_t *head;
    uint64_t head_bytes;
    uint8_t *tail;          /* NULL when head_bytes is the page's size */
} ckpt_page_dst;

typedef struct ckpt_derive {
    uint64_t child;
    uint32_t op, op_version, parent_count, params_len;
    h128 signature;
    const uint8_t *parents; /* parent_count little-endian u64 ids */
    const uint8_t *params;
} ckpt_derive;

typedef struct ckpt_store ckpt_store;

#define CKPT_DIR "checkpoint"
#define CKPT_NEW_DIR "checkpoint.new" /* a creation in progress */

/* Opens the environment in dir/checkpoint; MMSB_ENOTFOUND when there is
 * none (a store makes its first one at its first checkpoint). */
MUST_CHECK int ckpt_open(const char *dir, bool read_only, uint64_t map_bytes, uint32_t readers, ckpt_store **out);
/* Creates an empty environment with its databases, whole or not at all:
 * built and synced in dir/checkpoint.new, then renamed to dir/checkpoint.
 * There must be no dir/checkpoint. */
MUST_CHECK int ckpt_create(const char *dir, uint64_t map_bytes, uint32_t readers);
void ckpt_close(ckpt_store *s);
uint64_t ckpt_map_bytes(const ckpt_store *s);

/* Writing: one LMDB write transaction. Any function may return CKPT_FULL:
 * then call ckpt_write_abort, ckpt_grow, and start over. */
/* With `reset`, the transaction starts by emptying the pages (and their
 * tails) and the derivations (a full rewrite). */
MUST_CHECK int ckpt_write_begin(ckpt_store *s, bool reset);
/* Reserves the page's value (and tail) and says where its bytes go. */
MUST_CHECK int ckpt_put_page(ckpt_store *s, const ckpt_page *p, ckpt_page_dst *dst);
/* Where the value of a page of size_bytes is cut in a file of LMDB pages of
 * psize bytes: the bytes before it stay in the page's record, the rest is
 * its tail (== size_bytes: no tail). */
uint64_t ckpt_tail_at(uint64_t size_bytes, uint32_t psize);
/* Writes the derivation (d->parents is ignored) and returns where its
 * parent_count little-endian u64 parent ids go. */
MUST_CHECK int ckpt_put_derive(ckpt_store *s, const ckpt_derive *d, uint8_t **parents_out);
/* Removes the page's records (page and derivation), if any. */
MUST_CHECK int ckpt_del_page(ckpt_store *s, uint64_t id);
MUST_CHECK int ckpt_del_derive(ckpt_store *s, uint64_t id);
MUST_CHECK int ckpt_write_commit(ckpt_store *s, const ckpt_meta *m);
void ckpt_write_abort(ckpt_store *s);
/* Doubles the map (up to map_max); MMSB_ENOSPC beyond. */
MUST_CHECK int ckpt_grow(ckpt_store *s, uint64_t map_max);

/* Checks the structure of the LMDB file data_path as of transaction `want`
 * (CKPT_TXN_NEWEST: the newest, the one LMDB opens), so that LMDB can read
 * that snapshot without looping or aborting (lmdb_check.c); with
 * overflow_headers also each overflow page's header (which a writer's LMDB
 * trusts when it frees pages). *txnid: the transaction checked.
 * MMSB_ECORRUPT names the damage; CKPT_STALE: the file holds that
 * transaction's meta page no longer (or a writer rewrote it meanwhile). */
MUST_CHECK int ckpt_check_file(const char *data_path, bool overflow_headers, uint64_t want, uint64_t *txnid);
/* Checks only what LMDB reads when it opens the file: the meta pages (magic,
 * version, page size) and, of the newest, the map size and last page. */
MUST_CHECK int ckpt_check_meta(const char *data_path);
/* The same on bytes in memory: the file's first `bytes` bytes. */
MUST_CHECK int ckpt_check_image(const uint8_t *img, uint64_t bytes, bool overflow_headers, uint64_t want,
                                uint64_t *txnid);

/* Reading: one LMDB read transaction, a consistent snapshot (MVCC) that
 * does not block the writer. *found is false when no checkpoint was ever
 * written; then the iterators are not to be called. */
MUST_CHECK int ckpt_read_begin(ckpt_store *s, ckpt_meta *meta, bool *found);
typedef int (*ckpt_page_fn)(void *ctx, const ckpt_page *p);
typedef int (*ckpt_derive_fn)(void *ctx, const ckpt_derive *d);
MUST_CHECK int ckpt_read_pages(ckpt_store *s, ckpt_page_fn fn, void *ctx);
MUST_CHECK int ckpt_read_derives(ckpt_store *s, ckpt_derive_fn fn, void *ctx);
void ckpt_read_end(ckpt_store *s);

#endif /* MMSB_TLOG_CKPT_H */
