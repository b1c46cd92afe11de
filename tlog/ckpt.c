/*
 * ckpt.c - the checkpoint store in LMDB (see ckpt.h).
 *
 * Three named databases: "meta" (one value, key "state"), "pages" and
 * "derive", keyed by the page id as 8 big-endian bytes so that LMDB's byte
 * order is id order. Sizes and limits are set explicitly at open: the map
 * (grown by doubling when a write runs out of it), the reader slots, and
 * four databases. Stale reader slots of dead processes are cleared at open
 * and before every write.
 */
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ckpt.h"
#include "crc32c.h"

enum { PATH_BYTES_MAX = 4096 };

struct ckpt_store {
    MDB_env *env;
    MDB_dbi meta, pages, derive;
    MDB_txn *txn;       /* the open write or read transaction, or NULL */
    bool writing;
    bool read_only;
    uint64_t map_bytes;
};

static int lmdb_err(int mrc, const char *what) {
    if (mrc == MDB_MAP_FULL || mrc == MDB_TXN_FULL) return CKPT_FULL;
    int code = mrc == ENOSPC ? MMSB_ENOSPC : mrc == ENOMEM ? MMSB_ENOMEM
             : (mrc == MDB_CORRUPTED || mrc == MDB_INVALID || mrc == MDB_PAGE_NOTFOUND) ? MMSB_ECORRUPT
             : mrc == MDB_VERSION_MISMATCH ? MMSB_EVERSION : MMSB_EIO;
    return err_set(code, "checkpoint: %s: %s", what, mdb_strerror(mrc));
}

static void key_of(uint64_t id, uint8_t out[8]) {
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)(id >> (56 - 8 * i));
}

static uint64_t id_of(const uint8_t in[8]) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | in[i];
    return v;
}

static int open_dbis(ckpt_store *s) {
    MDB_txn *t;
    int mrc = mdb_txn_begin(s->env, NULL, s->read_only ? MDB_RDONLY : 0, &t);
    if (mrc != 0) return lmdb_err(mrc, "opening the databases");
    unsigned flags = s->read_only ? 0 : MDB_CREATE;
    mrc = mdb_dbi_open(t, "meta", flags, &s->meta);
    if (mrc == 0) mrc = mdb_dbi_open(t, "pages", flags, &s->pages);
    if (mrc == 0) mrc = mdb_dbi_open(t, "derive", flags, &s->derive);
    if (mrc == MDB_NOTFOUND) {
        mdb_txn_abort(t);
        return err_set(MMSB_ENOTFOUND, "checkpoint: no checkpoint databases");
    }
    if (mrc == 0) mrc = mdb_txn_commit(t);
    else mdb_txn_abort(t);
    return mrc == 0 ? 0 : lmdb_err(mrc, "opening the databases");
}

static int open_env(ckpt_store *s, const char *path, uint32_t readers) {
    int mrc = mdb_env_create(&s->env);
    if (mrc == 0) mrc = mdb_env_set_maxdbs(s->env, 4);
    if (mrc == 0) mrc = mdb_env_set_maxreaders(s->env, readers);
    if (mrc == 0) mrc = mdb_env_set_mapsize(s->env, s->map_bytes);
    /* MDB_NOTLS: read transactions are not tied to threads (the engine's
     * calls may come from any thread, one at a time). */
    unsigned flags = MDB_NOTLS | (s->read_only ? MDB_RDONLY : 0);
    if (mrc == 0) mrc = mdb_env_open(s->env, path, flags, 0644);
    if (mrc == ENOENT && s->read_only) return err_set(MMSB_ENOTFOUND, "checkpoint: %s holds no environment yet", path);
    if (mrc != 0) return lmdb_err(mrc, path);
    MDB_envinfo info;
    if (mdb_env_info(s->env, &info) == 0) s->map_bytes = info.me_mapsize; /* a larger existing map wins */
    int dead = 0;
    mdb_reader_check(s->env, &dead);
    return open_dbis(s);
}

int ckpt_open(const char *dir, bool read_only, uint64_t map_bytes, uint32_t readers, ckpt_store **out) {
    ASSERT(dir != NULL && out != NULL && map_bytes > 0 && readers > 0);
    *out = NULL;
    char path[PATH_BYTES_MAX];
    if (snprintf(path, sizeof path, "%s/checkpoint", dir) >= (int)sizeof path) {
        return err_set(MMSB_EINVAL, "checkpoint: directory path too long");
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno != ENOENT) return err_set(MMSB_EIO, "checkpoint: %s: %s", path, strerror(errno));
        if (read_only) return err_set(MMSB_ENOTFOUND, "checkpoint: %s does not exist", path);
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            return err_set(MMSB_EIO, "checkpoint: cannot create %s: %s", path, strerror(errno));
        }
    }
    ckpt_store *s = calloc(1, sizeof *s);
    if (s == NULL) return err_set(MMSB_ENOMEM, "checkpoint: out of memory");
    s->read_only = read_only;
    s->map_bytes = map_bytes;
    int rc = open_env(s, path, readers);
    if (rc != 0) {
        ckpt_close(s);
        return rc == CKPT_FULL ? err_set(MMSB_ENOSPC, "checkpoint: map full at open") : rc;
    }
    *out = s;
    return 0;
}

void ckpt_close(ckpt_store *s) {
    if (s == NULL) return;
    if (s->txn != NULL) mdb_txn_abort(s->txn);
    if (s->env != NULL) mdb_env_close(s->env);
    free(s);
}

uint64_t ckpt_map_bytes(const ckpt_store *s) { return s->map_bytes; }

/* ---- writing ------------------------------------------------------------------------ */

int ckpt_write_begin(ckpt_store *s, bool reset) {
    ASSERT(s->txn == NULL && !s->read_only);
    int dead = 0;
    mdb_reader_check(s->env, &dead);
    int mrc = mdb_txn_begin(s->env, NULL, 0, &s->txn);
    if (mrc != 0) {
        s->txn = NULL;
        return lmdb_err(mrc, "beginning a write");
    }
    s->writing = true;
    if (reset) {
        mrc = mdb_drop(s->txn, s->pages, 0);
        if (mrc == 0) mrc = mdb_drop(s->txn, s->derive, 0);
        if (mrc != 0) return lmdb_err(mrc, "emptying for a full rewrite");
    }
    return 0;
}

int ckpt_put_page(ckpt_store *s, const ckpt_page *p, uint8_t **bytes_out) {
    ASSERT(s->writing && p->id != 0);
    uint8_t k[8];
    key_of(p->id, k);
    MDB_val key = {.mv_size = 8, .mv_data = k};
    MDB_val val = {.mv_size = CKPT_PAGE_HEAD_BYTES + p->size_bytes, .mv_data = NULL};
    int mrc = mdb_put(s->txn, s->pages, &key, &val, MDB_RESERVE);
    if (mrc != 0) return lmdb_err(mrc, "writing a page");
    uint8_t *v = val.mv_data;
    put_le64(v, p->size_bytes);
    put_le64(v + 8, p->epoch);
    put_le32(v + 16, p->flags);
    put_le32(v + 20, p->location);
    *bytes_out = v + CKPT_PAGE_HEAD_BYTES;
    return 0;
}

int ckpt_put_derive(ckpt_store *s, const ckpt_derive *d, uint8_t **parents_out) {
    ASSERT(s->writing && d->child != 0);
    uint8_t k[8];
    key_of(d->child, k);
    MDB_val key = {.mv_size = 8, .mv_data = k};
    uint64_t len = CKPT_DERIVE_HEAD_BYTES + 8ull * d->parent_count + d->params_len;
    MDB_val val = {.mv_size = len, .mv_data = NULL};
    int mrc = mdb_put(s->txn, s->derive, &key, &val, MDB_RESERVE);
    if (mrc != 0) return lmdb_err(mrc, "writing a derivation");
    uint8_t *v = val.mv_data;
    put_le32(v, d->op);
    put_le32(v + 4, d->op_version);
    put_le32(v + 8, d->parent_count);
    put_le32(v + 12, d->params_len);
    put_h128(v + 16, d->signature);
    *parents_out = v + CKPT_DERIVE_HEAD_BYTES;
    if (d->params_len > 0) memcpy(v + CKPT_DERIVE_HEAD_BYTES + 8ull * d->parent_count, d->params, d->params_len);
    return 0;
}

static int del_key(ckpt_store *s, MDB_dbi dbi, uint64_t id) {
    ASSERT(s->writing);
    uint8_t k[8];
    key_of(id, k);
    MDB_val key = {.mv_size = 8, .mv_data = k};
    int mrc = mdb_del(s->txn, dbi, &key, NULL);
    return mrc == 0 || mrc == MDB_NOTFOUND ? 0 : lmdb_err(mrc, "removing a page");
}

int ckpt_del_page(ckpt_store *s, uint64_t id) { return del_key(s, s->pages, id); }
int ckpt_del_derive(ckpt_store *s, uint64_t id) { return del_key(s, s->derive, id); }

static void meta_encode(const ckpt_meta *m, uint8_t out[CKPT_META_BYTES]) {
    memset(out, 0, CKPT_META_BYTES);
    put_le32(out, m->format);
    put_le64(out + 8, m->salt);
    put_le64(out + 16, m->number);
    put_le64(out + 24, m->commit_seq);
    put_le64(out + 32, m->next_seq);
    put_le64(out + 40, m->commits);
    put_le64(out + 48, m->segment);
    put_le64(out + 56, m->offset);
    put_h128(out + 64, m->chain);
    put_h128(out + 80, m->root);
    put_le64(out + 96, m->page_id_next);
    put_le64(out + 104, m->pages);
    put_le64(out + 112, m->derived);
    put_le32(out + 120, m->generation);
    put_le32(out + 124, crc32c(0, out, 124));
}

static int meta_decode(const uint8_t *in, uint64_t len, ckpt_meta *m) {
    if (len != CKPT_META_BYTES || get_le32(in + 124) != crc32c(0, in, 124)) {
        return err_set(MMSB_ECORRUPT, "checkpoint: the meta record is damaged (%llu bytes)", (unsigned long long)len);
    }
    *m = (ckpt_meta){.format = get_le32(in), .salt = get_le64(in + 8), .number = get_le64(in + 16),
                     .commit_seq = get_le64(in + 24), .next_seq = get_le64(in + 32),
                     .commits = get_le64(in + 40), .segment = get_le64(in + 48), .offset = get_le64(in + 56),
                     .chain = get_h128(in + 64), .root = get_h128(in + 80), .page_id_next = get_le64(in + 96),
                     .pages = get_le64(in + 104), .derived = get_le64(in + 112),
                     .generation = get_le32(in + 120)};
    if (m->format != CKPT_FORMAT) {
        return err_set(MMSB_EVERSION, "checkpoint: format %u, this library reads %u", m->format, CKPT_FORMAT);
    }
    if (m->number == 0 || m->commit_seq == 0 || m->next_seq <= m->commit_seq || m->segment == 0 ||
        m->page_id_next == 0 || m->pages >= m->page_id_next || m->derived > m->pages || m->generation == 0) {
        return err_set(MMSB_ECORRUPT, "checkpoint: the meta record is inconsistent (commit %llu, next %llu, segment %llu)",
                       (unsigned long long)m->commit_seq, (unsigned long long)m->next_seq, (unsigned long long)m->segment);
    }
    return 0;
}

int ckpt_write_commit(ckpt_store *s, const ckpt_meta *m) {
    ASSERT(s->writing);
    uint8_t buf[CKPT_META_BYTES];
    meta_encode(m, buf);
    MDB_val key = {.mv_size = 5, .mv_data = "state"};
    MDB_val val = {.mv_size = sizeof buf, .mv_data = buf};
    int mrc = mdb_put(s->txn, s->meta, &key, &val, 0);
    if (mrc != 0) return lmdb_err(mrc, "writing the meta record");
    mrc = mdb_txn_commit(s->txn); /* frees the transaction, also on failure */
    s->txn = NULL;
    s->writing = false;
    return mrc == 0 ? 0 : lmdb_err(mrc, "committing");
}

void ckpt_write_abort(ckpt_store *s) {
    if (s->txn != NULL) mdb_txn_abort(s->txn);
    s->txn = NULL;
    s->writing = false;
}

int ckpt_grow(ckpt_store *s, uint64_t map_max) {
    ASSERT(s->txn == NULL);
    if (s->map_bytes >= map_max) {
        return err_set(MMSB_ENOSPC, "checkpoint: the LMDB map is full at %llu bytes (checkpoint_map_bytes_max)",
                       (unsigned long long)s->map_bytes);
    }
    uint64_t grown = s->map_bytes * 2 < map_max ? s->map_bytes * 2 : map_max;
    int mrc = mdb_env_set_mapsize(s->env, grown);
    if (mrc != 0) return lmdb_err(mrc, "growing the map");
    s->map_bytes = grown;
    return 0;
}

/* ---- reading ------------------------------------------------------------------------ */

int ckpt_read_begin(ckpt_store *s, ckpt_meta *meta, bool *found) {
    ASSERT(s->txn == NULL);
    *found = false;
    int mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->txn);
    if (mrc == MDB_MAP_RESIZED) { /* another process grew the map: adopt it */
        mrc = mdb_env_set_mapsize(s->env, 0);
        if (mrc == 0) mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->txn);
    }
    if (mrc != 0) {
        s->txn = NULL;
        return lmdb_err(mrc, "beginning a read");
    }
    MDB_val key = {.mv_size = 5, .mv_data = "state"}, val;
    mrc = mdb_get(s->txn, s->meta, &key, &val);
    if (mrc == MDB_NOTFOUND) return 0;
    if (mrc != 0) return lmdb_err(mrc, "reading the meta record");
    int rc = meta_decode(val.mv_data, val.mv_size, meta);
    if (rc == 0) *found = true;
    return rc;
}

void ckpt_read_end(ckpt_store *s) {
    if (s->txn != NULL) mdb_txn_abort(s->txn);
    s->txn = NULL;
}

static int bad_value(const char *db, const MDB_val *k, const char *why) {
    return err_set(MMSB_ECORRUPT, "checkpoint: %s record %llu: %s", db,
                   k->mv_size == 8 ? (unsigned long long)id_of(k->mv_data) : 0ull, why);
}

static int page_decode(const MDB_val *k, const MDB_val *v, ckpt_page *p) {
    if (k->mv_size != 8 || v->mv_size < CKPT_PAGE_HEAD_BYTES) return bad_value("pages", k, "short key or value");
    const uint8_t *b = v->mv_data;
    *p = (ckpt_page){.id = id_of(k->mv_data), .size_bytes = get_le64(b), .epoch = get_le64(b + 8),
                     .flags = get_le32(b + 16), .location = get_le32(b + 20), .bytes = b + CKPT_PAGE_HEAD_BYTES};
    if (p->id == 0 || p->size_bytes == 0 || p->size_bytes != v->mv_size - CKPT_PAGE_HEAD_BYTES) {
        return bad_value("pages", k, "id or size does not match the value");
    }
    return 0;
}

static int derive_decode(const MDB_val *k, const MDB_val *v, ckpt_derive *d) {
    if (k->mv_size != 8 || v->mv_size < CKPT_DERIVE_HEAD_BYTES) return bad_value("derive", k, "short key or value");
    const uint8_t *b = v->mv_data;
    *d = (ckpt_derive){.child = id_of(k->mv_data), .op = get_le32(b), .op_version = get_le32(b + 4),
                       .parent_count = get_le32(b + 8), .params_len = get_le32(b + 12),
                       .signature = get_h128(b + 16), .parents = b + CKPT_DERIVE_HEAD_BYTES};
    d->params = d->parents + 8ull * d->parent_count;
    uint64_t want = CKPT_DERIVE_HEAD_BYTES + 8ull * d->parent_count + d->params_len;
    if (d->child == 0 || d->op == 0 || d->parent_count == 0 || d->parent_count > DERIVE_PARENTS_MAX ||
        d->params_len > DERIVE_PARAMS_MAX || v->mv_size != want) {
        return bad_value("derive", k, "counts do not match the value");
    }
    return 0;
}

/* Walks one database in key order; decode validates each value. */
static int walk(ckpt_store *s, MDB_dbi dbi, int (*visit)(void *, const MDB_val *, const MDB_val *), void *ctx) {
    ASSERT(s->txn != NULL);
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(s->txn, dbi, &cur);
    if (mrc != 0) return lmdb_err(mrc, "opening a cursor");
    MDB_val k, v;
    int rc = 0;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        rc = visit(ctx, &k, &v);
    }
    mdb_cursor_close(cur);
    if (rc == 0 && mrc != MDB_NOTFOUND) rc = lmdb_err(mrc, "reading");
    return rc;
}

typedef struct page_visit {
    ckpt_page_fn fn;
    ckpt_derive_fn dfn;
    void *ctx;
} page_visit;

static int visit_page(void *c, const MDB_val *k, const MDB_val *v) {
    page_visit *pv = c;
    ckpt_page p;
    int rc = page_decode(k, v, &p);
    return rc != 0 ? rc : pv->fn(pv->ctx, &p);
}

static int visit_derive(void *c, const MDB_val *k, const MDB_val *v) {
    page_visit *pv = c;
    ckpt_derive d;
    int rc = derive_decode(k, v, &d);
    return rc != 0 ? rc : pv->dfn(pv->ctx, &d);
}

int ckpt_read_pages(ckpt_store *s, ckpt_page_fn fn, void *ctx) {
    page_visit pv = {.fn = fn, .ctx = ctx};
    return walk(s, s->pages, visit_page, &pv);
}

int ckpt_read_derives(ckpt_store *s, ckpt_derive_fn fn, void *ctx) {
    page_visit pv = {.dfn = fn, .ctx = ctx};
    return walk(s, s->derive, visit_derive, &pv);
}
