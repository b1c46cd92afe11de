/*
 * lmdb_store.c - the checkpoint store in LMDB (see lmdb_store.h).
 *
 * Four named databases: "meta" (one value, key "state"), "pages", "tails"
 * and "derive", keyed by the page id as 8 big-endian bytes so that LMDB's
 * byte order is id order. Sizes and limits are set explicitly at open: the map
 * (grown by doubling when a write runs out of it), the reader slots, and
 * four databases. Stale reader slots of dead processes are cleared at open
 * and before every write.
 */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "lmdb_store.h"
#include "../../engine/base/crc32c.h"

enum {
    LMDB_PAGE_HEADER_BYTES = 16, /* of an overflow page (LMDB 0.9, 64-bit) */
    PATH_BYTES_MAX = 4096,
    CHECK_ATTEMPTS_MAX = 16, /* a writer that commits during every check */
    /* LMDB keeps every one-page buffer a write transaction freed for the
     * next ones until the environment closes (multi-page ones it frees):
     * after a transaction with more one-page tails than this (8 MiB), the
     * environment is closed and opened again. */
    SINGLE_PAGE_TAILS_KEPT_MAX = 2048,
    ERROR_TEXT_BYTES = 512, /* the detail message's size */
};
/* A write transaction that put this much gives the C heap back after it. */
#define TRIM_AFTER_BYTES (64ull << 20)

struct ckpt_store {
    MDB_env *env;
    char env_path[PATH_BYTES_MAX];  /* the environment's directory */
    char data_path[PATH_BYTES_MAX];
    char lost[ERROR_TEXT_BYTES];    /* why env is NULL: it could not be opened again */
    bool checked;           /* the file's structure was checked ... */
    uint64_t checked_txnid; /* ... as of this transaction */
    MDB_dbi meta, pages, tails, derive;
    bool has_tails;     /* a read-only open of a format 1 file may find none */
    bool tails_in_txn;  /* ... then a writer's since: opened for the read transaction */
    uint32_t psize;     /* LMDB's page size in this file */
    uint32_t read_format; /* of the meta record the open read transaction found */
    MDB_txn *txn;       /* the open write or read transaction, or NULL */
    bool writing;
    bool read_only;
    uint64_t map_bytes;
    uint64_t txn_put_bytes; /* values put by the open write transaction */
    uint32_t txn_single_page_tails; /* one-page tails it put */
    uint32_t readers;
};

static int lmdb_err(int mrc, const char *what) {
    ASSERT(what[0] != '\0');
    ASSERT(mrc != 0 && what != NULL);
    if (mrc == MDB_MAP_FULL || mrc == MDB_TXN_FULL) return CKPT_FULL;
    int code = mrc > 0 ? err_from_errno(mrc) /* an errno value: ENOSPC, EDQUOT, ... */
             : (mrc == MDB_CORRUPTED || mrc == MDB_INVALID || mrc == MDB_PAGE_NOTFOUND) ? MMSB_ECORRUPT
             : mrc == MDB_VERSION_MISMATCH ? MMSB_EVERSION : MMSB_EIO;
    return err_set(code, "checkpoint: %s: %s", what, mdb_strerror(mrc));
}

/* LMDB reports a short write, which is what a full file system gives, as
 * EIO: say what happened when the file system has no room left. */
enum { FULL_DISK_BYTES_MAX = 1 << 20 };
static int commit_err(ckpt_store *s, int mrc) {
    ASSERT(s->txn == NULL);
    ASSERT(s != NULL && s->env != NULL && mrc != 0);
    const char *path = NULL;
    struct statvfs fs;
    if (mrc == EIO && mdb_env_get_path(s->env, &path) == 0 && statvfs(path, &fs) == 0 &&
        (uint64_t)fs.f_bavail * fs.f_frsize < FULL_DISK_BYTES_MAX) {
        return err_set(MMSB_ENOSPC, "checkpoint: committing: the file system of %s is full (%llu bytes free; "
                       "LMDB reported a short write as an I/O error)", path,
                       (unsigned long long)fs.f_bavail * fs.f_frsize);
    }
    return lmdb_err(mrc, "committing");
}

static int lost_err(const ckpt_store *s) {
    ASSERT(s->env == NULL && s->lost[0] != '\0');
    return err_set(MMSB_EIO, "checkpoint: the environment could not be opened again after a large checkpoint "
                   "(which was written): %s", s->lost);
}

static void key_of(uint64_t id, uint8_t out[8]) {
    ASSERT(id != 0);
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)(id >> (56 - 8 * i));
    ASSERT(out[0] == (uint8_t)(id >> 56) && out[7] == (uint8_t)id);
}

static uint64_t id_of(const uint8_t in[8]) {
    ASSERT(in != NULL);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | in[i];
    ASSERT((uint8_t)v == in[7]);
    return v;
}

/* Before a transaction reads a tree, the snapshot it sees must have passed
 * ckpt_check_file: LMDB trusts its pages. A read transaction's pages stay
 * put while it holds its reader slot, so its own snapshot is checked, found
 * by its meta page; when a writer in another process has since rewritten
 * that page, *retry says to begin again. A write transaction builds on the
 * newest (this process holds the store's lock: no other writer), and a
 * writer's own later commits are not checked again. */
static int check_snapshot(ckpt_store *s, MDB_txn *txn, bool writing, bool *retry) {
    ASSERT(s != NULL && txn != NULL && retry != NULL);
    ASSERT(!writing || !s->read_only);
    uint64_t want = mdb_txn_id(txn) - (writing ? 1 : 0); /* a write txn's id is the next one */
    *retry = false;
    if (s->checked && s->checked_txnid == want) return 0;
    uint64_t checked;
    int rc = ckpt_check_file(s->data_path, !s->read_only, writing ? CKPT_TXN_NEWEST : want, &checked);
    if (rc == CKPT_STALE || (rc == 0 && checked != want)) {
        *retry = true;
        return 0;
    }
    if (rc != 0) return rc;
    s->checked = true;
    s->checked_txnid = checked;
    ASSERT(s->checked && s->checked_txnid == want);
    return 0;
}

/* Begins a transaction whose snapshot was checked. */
static int begin_checked(ckpt_store *s, unsigned flags, MDB_txn **out, const char *what) {
    ASSERT(s->env != NULL && out != NULL && what != NULL);
    ASSERT((flags & ~(unsigned)MDB_RDONLY) == 0);
    for (uint32_t attempt = 0; attempt < CHECK_ATTEMPTS_MAX; attempt++) {
        int mrc = mdb_txn_begin(s->env, NULL, flags, out);
        if (mrc == MDB_MAP_RESIZED) { /* another process grew the map: adopt it */
            mrc = mdb_env_set_mapsize(s->env, 0);
            if (mrc == 0) mrc = mdb_txn_begin(s->env, NULL, flags, out);
        }
        if (mrc != 0) {
            *out = NULL;
            return lmdb_err(mrc, what);
        }
        bool retry;
        int rc = check_snapshot(s, *out, (flags & MDB_RDONLY) == 0, &retry);
        if (rc == 0 && !retry) return 0;
        mdb_txn_abort(*out);
        *out = NULL;
        if (rc != 0) return rc;
    }
    return err_set(MMSB_EBUSY, "checkpoint: a writer committed during each of %d checks of the file",
                   CHECK_ATTEMPTS_MAX);
}

static int open_dbis(ckpt_store *s) {
    ASSERT(s->env != NULL && s->txn == NULL);
    MDB_txn *t;
    int rc = begin_checked(s, s->read_only ? MDB_RDONLY : 0, &t, "opening the databases");
    if (rc != 0) return rc;
    int mrc;
    unsigned flags = s->read_only ? 0 : MDB_CREATE;
    mrc = mdb_dbi_open(t, "meta", flags, &s->meta);
    if (mrc == 0) mrc = mdb_dbi_open(t, "pages", flags, &s->pages);
    if (mrc == 0) mrc = mdb_dbi_open(t, "derive", flags, &s->derive);
    if (mrc == MDB_NOTFOUND) {
        mdb_txn_abort(t);
        return err_set(MMSB_ENOTFOUND, "checkpoint: no checkpoint databases");
    }
    if (mrc == 0) {
        /* A file a format 1 writer made has no tails until a writer opens it. */
        int tails_rc = mdb_dbi_open(t, "tails", flags, &s->tails);
        s->has_tails = tails_rc == 0;
        if (tails_rc != MDB_NOTFOUND || !s->read_only) mrc = tails_rc;
    }
    ASSERT(mrc != 0 || (s->meta != s->pages && s->pages != s->derive));
    if (mrc == 0) mrc = mdb_txn_commit(t);
    else mdb_txn_abort(t);
    return mrc == 0 ? 0 : lmdb_err(mrc, "opening the databases");
}

/* LMDB sizes its lock file with ftruncate and writes its reader table
 * through a shared mapping of it: on a full file system the first store to
 * a page with no block behind it kills the process with SIGBUS instead of
 * returning an error. So a writer allocates the file's blocks first, as
 * large as LMDB will make it (a 192-byte header holding the first reader
 * slot, then 64 bytes per further slot, on 64-bit builds) or as it already
 * is, and a full disk is an error here. */
enum { LMDB_LOCK_HEADER_BYTES = 192, LMDB_LOCK_SLOT_BYTES = 64 };
static int lock_file_allocate(const char *path, uint32_t readers) {
    ASSERT(readers >= 1);
    char lock[PATH_BYTES_MAX];
    if (snprintf(lock, sizeof lock, "%s/lock.mdb", path) >= (int)sizeof lock) {
        return err_set(MMSB_EINVAL, "checkpoint: directory path too long");
    }
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return err_set(err_from_errno(errno), "checkpoint: %s: %s", lock, strerror(errno));
    struct stat st;
    uint64_t want = LMDB_LOCK_HEADER_BYTES + (uint64_t)(readers - 1) * LMDB_LOCK_SLOT_BYTES;
    int prc = fstat(fd, &st) != 0 ? errno : 0;
    if (prc == 0) prc = posix_fallocate(fd, 0, (off_t)max_u64(want, (uint64_t)st.st_size));
    close(fd);
    if (prc != 0) return err_set(err_from_errno(prc), "checkpoint: cannot allocate %s: %s", lock, strerror(prc));
    return 0;
}

static int open_env(ckpt_store *s, const char *path, uint32_t readers) {
    ASSERT(s->env == NULL && path != NULL);
    ASSERT(readers >= 1 && s->map_bytes > 0);
    if (snprintf(s->data_path, sizeof s->data_path, "%s/data.mdb", path) >= (int)sizeof s->data_path) {
        return err_set(MMSB_EINVAL, "checkpoint: directory path too long");
    }
    if (s->env_path != path) snprintf(s->env_path, sizeof s->env_path, "%s", path); /* fits: data_path did */
    s->readers = readers;
    if (!s->read_only) {
        int rc = lock_file_allocate(path, readers);
        if (rc != 0) return rc;
    }
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
    MDB_stat st;
    mrc = mdb_env_stat(s->env, &st);
    if (mrc != 0) return lmdb_err(mrc, path);
    s->psize = st.ms_psize;
    ASSERT(s->psize >= 512 && (s->psize & (s->psize - 1)) == 0);
    int dead = 0;
    mdb_reader_check(s->env, &dead);
    return open_dbis(s);
}

/* LMDB writes its two meta pages when it creates an environment: a data
 * file too short for them is a creation that never finished (one made by an
 * earlier version at store creation that hit a full disk), which never held
 * a checkpoint. */
enum { LMDB_META_PAGES_BYTES_MIN = 2 * 4096 };
static bool env_is_stub(const struct stat *data) { return data->st_size < LMDB_META_PAGES_BYTES_MIN; }

static int store_path(const char *dir, const char *name, const char *file, char out[PATH_BYTES_MAX]) {
    ASSERT(dir[0] != '\0');
    ASSERT(dir != NULL && name != NULL && file != NULL && out != NULL);
    int n = snprintf(out, PATH_BYTES_MAX, "%s/%s%s%s", dir, name, file[0] != '\0' ? "/" : "", file);
    return n >= PATH_BYTES_MAX ? err_set(MMSB_EINVAL, "checkpoint: directory path too long") : 0;
}

int ckpt_open(const char *dir, bool read_only, uint64_t map_bytes, uint32_t readers, ckpt_store **out) {
    ASSERT(dir != NULL && out != NULL && map_bytes > 0 && readers > 0);
    *out = NULL;
    char path[PATH_BYTES_MAX], data[PATH_BYTES_MAX];
    int rc = store_path(dir, CKPT_DIR, "", path);
    if (rc == 0) rc = store_path(dir, CKPT_DIR, "data.mdb", data);
    if (rc != 0) return rc;
    struct stat st;
    if (stat(data, &st) != 0) {
        int saved = errno;
        if (saved == ENOENT) return err_set(MMSB_ENOTFOUND, "checkpoint: %s holds none", path);
        return err_set(err_from_errno(saved), "checkpoint: %s: %s", data, strerror(saved));
    }
    if (env_is_stub(&st)) return err_set(MMSB_ENOTFOUND, "checkpoint: %s holds an unfinished environment", path);
    rc = ckpt_check_meta(data); /* LMDB sizes its map from the meta page at open */
    if (rc != 0) return rc;
    ckpt_store *s = calloc(1, sizeof *s);
    if (s == NULL) return err_set(MMSB_ENOMEM, "checkpoint: out of memory");
    s->read_only = read_only;
    s->map_bytes = map_bytes;
    rc = open_env(s, path, readers);
    if (rc != 0) {
        ckpt_close(s);
        return rc == CKPT_FULL ? err_set(MMSB_ENOSPC, "checkpoint: map full at open") : rc;
    }
    ASSERT(s->env != NULL && s->txn == NULL && s->map_bytes >= map_bytes);
    *out = s;
    return 0;
}

/* Removes an environment directory's files and the directory; ENOENT is
 * not an error. */
static int remove_env_dir(const char *dir, const char *name) {
    ASSERT(strlen(dir) > 0);
    ASSERT(dir != NULL && name != NULL && name[0] != '\0');
    static const char *const files[] = {"data.mdb", "lock.mdb"};
    char path[PATH_BYTES_MAX];
    for (uint32_t i = 0; i < ARRAY_LEN(files); i++) {
        int rc = store_path(dir, name, files[i], path);
        if (rc != 0) return rc;
        if (unlink(path) != 0 && errno != ENOENT) {
            return err_set(err_from_errno(errno), "checkpoint: cannot remove %s: %s", path, strerror(errno));
        }
    }
    int rc = store_path(dir, name, "", path);
    if (rc == 0 && rmdir(path) != 0 && errno != ENOENT) {
        rc = err_set(err_from_errno(errno), "checkpoint: cannot remove %s: %s", path, strerror(errno));
    }
    return rc;
}

static int sync_path(const char *path) {
    ASSERT(strlen(path) < PATH_BYTES_MAX);
    ASSERT(path != NULL && path[0] != '\0');
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd >= 0 && fsync(fd) == 0
                 ? 0
                 : err_set(err_from_errno(errno), "checkpoint: fsync of %s: %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    return rc;
}

/* The environment and its databases, built in CKPT_NEW_DIR and synced. */
static int build_env(const char *dir, uint64_t map_bytes, uint32_t readers) {
    ASSERT(dir != NULL && map_bytes > 0 && readers >= 1);
    char path[PATH_BYTES_MAX];
    int rc = store_path(dir, CKPT_NEW_DIR, "", path);
    if (rc != 0) return rc;
    if (mkdir(path, 0755) != 0) {
        return err_set(err_from_errno(errno), "checkpoint: cannot create %s: %s", path, strerror(errno));
    }
    ckpt_store s = {.map_bytes = map_bytes};
    ASSERT(!s.read_only && s.txn == NULL);
    rc = open_env(&s, path, readers);
    int mrc = rc == 0 ? mdb_env_sync(s.env, 1) : 0;
    if (mrc != 0) rc = lmdb_err(mrc, "syncing the new environment");
    if (s.env != NULL) mdb_env_close(s.env);
    if (rc == 0) rc = sync_path(path);
    return rc == CKPT_FULL ? err_set(MMSB_ENOSPC, "checkpoint: map full at creation") : rc;
}

int ckpt_create(const char *dir, uint64_t map_bytes, uint32_t readers) {
    ASSERT(dir != NULL && map_bytes > 0 && readers > 0);
    char from[PATH_BYTES_MAX], to[PATH_BYTES_MAX];
    int rc = store_path(dir, CKPT_NEW_DIR, "", from);
    if (rc == 0) rc = store_path(dir, CKPT_DIR, "", to);
    if (rc == 0) rc = remove_env_dir(dir, CKPT_NEW_DIR); /* what a crashed creation left */
    char data[PATH_BYTES_MAX];
    struct stat st;
    if (rc == 0) rc = store_path(dir, CKPT_DIR, "data.mdb", data);
    if (rc == 0 && stat(data, &st) == 0 && env_is_stub(&st)) rc = remove_env_dir(dir, CKPT_DIR);
    if (rc == 0) rc = build_env(dir, map_bytes, readers);
    if (rc == 0 && rename(from, to) != 0) {
        rc = err_set(err_from_errno(errno), "checkpoint: cannot rename %s to %s: %s", from, to, strerror(errno));
    }
    if (rc == 0) return sync_path(dir);
    ASSERT(rc != 0);
    char why[300];
    snprintf(why, sizeof why, "%s", mmsb_last_error());
    remove_env_dir(dir, CKPT_NEW_DIR);
    return err_set(rc, "%s", why);
}

void ckpt_close(ckpt_store *s) {
    ASSERT(s == NULL || s->env != NULL || s->txn == NULL);
    ASSERT(s == NULL || !s->writing || s->txn != NULL);
    if (s == NULL) return;
    if (s->txn != NULL) mdb_txn_abort(s->txn);
    if (s->env != NULL) mdb_env_close(s->env);
    free(s);
}

uint64_t ckpt_map_bytes(const ckpt_store *s) { return s->map_bytes; }

/* ---- writing ------------------------------------------------------------------------ */

int ckpt_write_begin(ckpt_store *s, bool reset) {
    ASSERT(s->txn == NULL && !s->read_only);
    if (s->env == NULL) return lost_err(s);
    int dead = 0;
    mdb_reader_check(s->env, &dead);
    int mrc = mdb_txn_begin(s->env, NULL, 0, &s->txn);
    if (mrc != 0) {
        s->txn = NULL;
        return lmdb_err(mrc, "beginning a write");
    }
    s->writing = true;
    s->txn_put_bytes = 0;
    s->txn_single_page_tails = 0;
    ASSERT(s->txn != NULL);
    if (reset) {
        mrc = mdb_drop(s->txn, s->pages, 0);
        if (mrc == 0) mrc = mdb_drop(s->txn, s->tails, 0);
        if (mrc == 0) mrc = mdb_drop(s->txn, s->derive, 0);
        if (mrc != 0) return lmdb_err(mrc, "emptying for a full rewrite");
    }
    return 0;
}

/* Reserves `len` bytes as the value of key `id` in dbi; the caller fills them. */
static int put_reserved(ckpt_store *s, MDB_dbi dbi, uint64_t id, uint64_t len, const char *what, uint8_t **v_out) {
    ASSERT(s->writing && id != 0 && len > 0);
    ASSERT(dbi == s->pages || dbi == s->tails || dbi == s->derive);
    uint8_t k[8];
    key_of(id, k);
    MDB_val key = {.mv_size = 8, .mv_data = k};
    MDB_val val = {.mv_size = len, .mv_data = NULL};
    int mrc = mdb_put(s->txn, dbi, &key, &val, MDB_RESERVE);
    if (mrc != 0) return lmdb_err(mrc, what);
    s->txn_put_bytes += len;
    ASSERT(val.mv_size == len && val.mv_data != NULL);
    *v_out = val.mv_data;
    return 0;
}

/* LMDB gives a value that does not fit in a leaf its own run of pages, with
 * a page header before it: a 4 KiB page's value with its 24-byte head would
 * take two pages, half of them one header's length. So the value is cut
 * where the rest fills whole pages exactly; the bytes before the cut (with
 * the head) are a small value that shares a leaf with others. Only when
 * that part stays small: otherwise it would take a page of its own and save
 * nothing. */
uint64_t ckpt_tail_at(uint64_t size_bytes, uint32_t psize) {
    ASSERT(psize >= 512 && (psize & (psize - 1)) == 0);
    if (size_bytes + LMDB_PAGE_HEADER_BYTES < psize) return size_bytes;
    uint64_t cut = (size_bytes + LMDB_PAGE_HEADER_BYTES) % psize;
    uint64_t at = CKPT_PAGE_HEAD_BYTES + cut <= psize / 8 ? cut : size_bytes;
    ASSERT(at == size_bytes || (size_bytes - at + LMDB_PAGE_HEADER_BYTES) % psize == 0);
    return at;
}

int ckpt_put_page(ckpt_store *s, const ckpt_page *p, ckpt_page_dst *dst) {
    ASSERT(p->size_bytes > 0 && dst != NULL);
    ASSERT(s->writing && p->id != 0 && s->has_tails);
    uint64_t at = ckpt_tail_at(p->size_bytes, s->psize);
    if (at < p->size_bytes && p->size_bytes - at + LMDB_PAGE_HEADER_BYTES == s->psize) s->txn_single_page_tails++;
    uint8_t *v;
    int rc = put_reserved(s, s->pages, p->id, CKPT_PAGE_HEAD_BYTES + at, "writing a page", &v);
    if (rc != 0) return rc;
    put_le64(v, p->size_bytes);
    put_le64(v + 8, p->epoch);
    put_le32(v + 16, p->flags);
    put_le32(v + 20, p->location);
    *dst = (ckpt_page_dst){.head = v + CKPT_PAGE_HEAD_BYTES, .head_bytes = at};
    if (at < p->size_bytes) rc = put_reserved(s, s->tails, p->id, p->size_bytes - at, "writing a page", &dst->tail);
    ASSERT(rc != 0 || (dst->tail != NULL) == (at < p->size_bytes));
    return rc;
}

int ckpt_put_derive(ckpt_store *s, const ckpt_derive *d, uint8_t **parents_out) {
    ASSERT(d->op != 0 && d->parent_count >= 1 && d->parent_count <= DERIVE_PARENTS_MAX);
    ASSERT(d->params_len <= DERIVE_PARAMS_MAX && parents_out != NULL);
    ASSERT(s->writing && d->child != 0);
    uint64_t len = CKPT_DERIVE_HEAD_BYTES + 8ull * d->parent_count + d->params_len;
    uint8_t *v;
    int rc = put_reserved(s, s->derive, d->child, len, "writing a derivation", &v);
    if (rc != 0) return rc;
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
    ASSERT(id != 0 && (dbi == s->pages || dbi == s->tails || dbi == s->derive));
    ASSERT(s->writing);
    uint8_t k[8];
    key_of(id, k);
    MDB_val key = {.mv_size = 8, .mv_data = k};
    int mrc = mdb_del(s->txn, dbi, &key, NULL);
    return mrc == 0 || mrc == MDB_NOTFOUND ? 0 : lmdb_err(mrc, "removing a page");
}

int ckpt_del_page(ckpt_store *s, uint64_t id) {
    ASSERT(s->has_tails);
    int rc = del_key(s, s->pages, id);
    return rc != 0 ? rc : del_key(s, s->tails, id);
}
int ckpt_del_derive(ckpt_store *s, uint64_t id) { return del_key(s, s->derive, id); }

static void meta_encode(const ckpt_meta *m, uint8_t out[CKPT_META_BYTES]) {
    ASSERT(m->format == CKPT_FORMAT && m->number >= 1 && m->commit_seq >= 1);
    ASSERT(m->next_seq > m->commit_seq && m->segment >= 1 && m->generation >= 1);
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
    _Static_assert(CKPT_META_BYTES == 128, "the meta record's CRC covers its first 124 bytes");
}

static int meta_decode(const uint8_t *in, uint64_t len, ckpt_meta *m) {
    ASSERT(len == 0 || in != NULL);
    ASSERT(in != NULL && m != NULL);
    if (len != CKPT_META_BYTES || get_le32(in + 124) != crc32c(0, in, 124)) {
        return err_set(MMSB_ECORRUPT, "checkpoint: the meta record is damaged (%llu bytes)", (unsigned long long)len);
    }
    *m = (ckpt_meta){.format = get_le32(in), .salt = get_le64(in + 8), .number = get_le64(in + 16),
                     .commit_seq = get_le64(in + 24), .next_seq = get_le64(in + 32),
                     .commits = get_le64(in + 40), .segment = get_le64(in + 48), .offset = get_le64(in + 56),
                     .chain = get_h128(in + 64), .root = get_h128(in + 80), .page_id_next = get_le64(in + 96),
                     .pages = get_le64(in + 104), .derived = get_le64(in + 112),
                     .generation = get_le32(in + 120)};
    if (m->format < CKPT_FORMAT_MIN || m->format > CKPT_FORMAT) {
        return err_set(MMSB_EVERSION, "checkpoint: format %u, this library reads %u to %u", m->format,
                       CKPT_FORMAT_MIN, CKPT_FORMAT);
    }
    if (m->number == 0 || m->commit_seq == 0 || m->next_seq <= m->commit_seq || m->segment == 0 ||
        m->page_id_next == 0 || m->pages >= m->page_id_next || m->derived > m->pages || m->generation == 0) {
        return err_set(
            MMSB_ECORRUPT, "checkpoint: the meta record is inconsistent (commit %llu, next %llu, segment %llu)",
            (unsigned long long)m->commit_seq, (unsigned long long)m->next_seq, (unsigned long long)m->segment);
    }
    return 0;
}

/* Closes the environment and opens it again, which frees the one-page
 * buffers LMDB keeps. The snapshot it finds is the one this handle just
 * committed, which is trusted as this handle's own transactions are while
 * the environment stays open: it is not checked again (only a snapshot
 * that another handle wrote would be). On failure env stays NULL and
 * `lost` says why: the next transaction is refused with it. */
static void reopen_env(ckpt_store *s) {
    ASSERT(s->env != NULL && s->txn == NULL && !s->read_only);
    MDB_envinfo info;
    int mrc = mdb_env_info(s->env, &info);
    mdb_env_close(s->env);
    s->env = NULL;
    s->checked = mrc == 0;
    s->checked_txnid = mrc == 0 ? info.me_last_txnid : 0;
    int rc = open_env(s, s->env_path, s->readers);
    if (rc == 0) return;
    snprintf(s->lost, sizeof s->lost, "%s", rc == CKPT_FULL ? "map full" : mmsb_last_error());
    if (s->env != NULL) mdb_env_close(s->env);
    s->env = NULL;
    ASSERT(s->env == NULL && s->lost[0] != '\0');
}

/* LMDB builds a write transaction's dirty pages in malloc'd memory (a 4 KiB
 * page's tail takes one page) and frees them at its end: the one-page ones
 * into a list of its own that lasts as long as the environment (reopened
 * here when it holds many), the others into the C heap, where they stay
 * (a checkpoint of 200,000 changed 4 KiB pages once left 1 GiB resident in
 * the process). After a large transaction the heap's free memory goes back
 * to the system. */
static void release_after(ckpt_store *s) {
    ASSERT(s != NULL && s->txn == NULL);
    bool reopen = s->txn_single_page_tails > SINGLE_PAGE_TAILS_KEPT_MAX;
    if (reopen) {
        char detail[ERROR_TEXT_BYTES]; /* the caller's, of the commit or of what made it abort */
        snprintf(detail, sizeof detail, "%s", mmsb_last_error());
        reopen_env(s);
        (void)err_set(MMSB_EIO, "%s", detail);
    }
    if (reopen || s->txn_put_bytes >= TRIM_AFTER_BYTES) malloc_trim(0);
    s->txn_put_bytes = 0;
    s->txn_single_page_tails = 0;
}

int ckpt_write_commit(ckpt_store *s, const ckpt_meta *m) {
    ASSERT(s->txn != NULL && !s->read_only);
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
    int rc = mrc == 0 ? 0 : commit_err(s, mrc);
    release_after(s); /* the commit's result stands: a failure here refuses the next transaction */
    ASSERT(s->txn == NULL);
    return rc;
}

void ckpt_write_abort(ckpt_store *s) {
    ASSERT(!s->read_only);
    ASSERT(s->writing || s->txn == NULL);
    if (s->txn != NULL) mdb_txn_abort(s->txn);
    s->txn = NULL;
    s->writing = false;
    release_after(s);
}

int ckpt_grow(ckpt_store *s, uint64_t map_max) {
    ASSERT(!s->read_only && map_max > 0);
    ASSERT(s->txn == NULL);
    ASSERT(s->env != NULL); /* a transaction ran out of map: it was open */
    if (s->map_bytes >= map_max) {
        return err_set(MMSB_ENOSPC, "checkpoint: the LMDB map is full at %llu bytes (checkpoint_map_bytes_max)",
                       (unsigned long long)s->map_bytes);
    }
    uint64_t grown = s->map_bytes * 2 < map_max ? s->map_bytes * 2 : map_max;
    int mrc = mdb_env_set_mapsize(s->env, grown);
    if (mrc != 0) return lmdb_err(mrc, "growing the map");
    s->map_bytes = grown;
    ASSERT(s->map_bytes <= map_max);
    return 0;
}

/* ---- reading ------------------------------------------------------------------------ */

int ckpt_read_begin(ckpt_store *s, ckpt_meta *meta, bool *found) {
    ASSERT(meta != NULL && found != NULL && !s->writing);
    ASSERT(s->txn == NULL);
    *found = false;
    if (s->env == NULL) return lost_err(s);
    int rc = begin_checked(s, MDB_RDONLY, &s->txn, "beginning a read");
    if (rc != 0) return rc;
    MDB_val key = {.mv_size = 5, .mv_data = "state"}, val;
    int mrc = mdb_get(s->txn, s->meta, &key, &val);
    if (mrc == MDB_NOTFOUND) return 0;
    if (mrc != 0) return lmdb_err(mrc, "reading the meta record");
    rc = meta_decode(val.mv_data, val.mv_size, meta);
    if (rc != 0) return rc;
    *found = true;
    s->read_format = meta->format;
    if (!s->has_tails && meta->format >= 2) {
        mrc = mdb_dbi_open(s->txn, "tails", 0, &s->tails);
        if (mrc == MDB_NOTFOUND) return err_set(MMSB_ECORRUPT, "checkpoint: format 2 without its tails database");
        if (mrc != 0) return lmdb_err(mrc, "opening the tails");
        s->tails_in_txn = true;
    }
    return 0;
}

void ckpt_read_end(ckpt_store *s) {
    ASSERT(s != NULL);
    ASSERT(!s->writing);
    if (s->txn != NULL) mdb_txn_abort(s->txn); /* closes a handle opened in it */
    s->txn = NULL;
    s->tails_in_txn = false;
    s->read_format = 0;
}

static int bad_value(const char *db, const MDB_val *k, const char *why) {
    ASSERT(strlen(why) > 0);
    ASSERT(db != NULL && k != NULL && why != NULL);
    return err_set(MMSB_ECORRUPT, "checkpoint: %s record %llu: %s", db,
                   k->mv_size == 8 ? (unsigned long long)id_of(k->mv_data) : 0ull, why);
}

/* A page's record, and its tail when the record holds fewer bytes than the
 * page: the next one of the tails cursor, which walks in step with the
 * pages (both in id order), so a missing tail is found at its page. */
static int page_decode(const MDB_val *k, const MDB_val *v, MDB_cursor *tails, ckpt_page *p) {
    ASSERT(k->mv_data != NULL || k->mv_size == 0);
    ASSERT(k != NULL && v != NULL && p != NULL);
    if (k->mv_size != 8 || v->mv_size < CKPT_PAGE_HEAD_BYTES) return bad_value("pages", k, "short key or value");
    const uint8_t *b = v->mv_data;
    *p = (ckpt_page){.id = id_of(k->mv_data), .size_bytes = get_le64(b), .epoch = get_le64(b + 8),
                     .flags = get_le32(b + 16), .location = get_le32(b + 20), .bytes = b + CKPT_PAGE_HEAD_BYTES};
    uint64_t held = v->mv_size - CKPT_PAGE_HEAD_BYTES;
    if (p->id == 0 || p->size_bytes == 0 || held > p->size_bytes || (held < p->size_bytes && tails == NULL)) {
        return bad_value("pages", k, "id or size does not match the value");
    }
    if (held == p->size_bytes) return 0;
    MDB_val tk, tv;
    int mrc = mdb_cursor_get(tails, &tk, &tv, MDB_NEXT);
    if (mrc != 0 && mrc != MDB_NOTFOUND) return lmdb_err(mrc, "reading the tails");
    if (mrc == 0 && (tk.mv_size != 8 || id_of(tk.mv_data) < p->id)) {
        return bad_value("tails", &tk, "no page holds its head"); /* one passed over: its page's record is whole */
    }
    if (mrc == MDB_NOTFOUND || id_of(tk.mv_data) != p->id) return bad_value("pages", k, "its tail is missing");
    if (tv.mv_size != p->size_bytes - held) return bad_value("tails", &tk, "its length does not match its page");
    p->tail = tv.mv_data;
    p->tail_at = held;
    return 0;
}

static int derive_decode(const MDB_val *k, const MDB_val *v, ckpt_derive *d) {
    ASSERT(k->mv_data != NULL || k->mv_size == 0);
    ASSERT(k != NULL && v != NULL && d != NULL);
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
    ASSERT(visit != NULL && !s->writing);
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
    MDB_cursor *tails;
    ckpt_page_fn fn;
    ckpt_derive_fn dfn;
    void *ctx;
} page_visit;

static int visit_page(void *c, const MDB_val *k, const MDB_val *v) {
    ASSERT(k != NULL && v != NULL);
    page_visit *pv = c;
    ASSERT(pv->fn != NULL);
    ckpt_page p;
    int rc = page_decode(k, v, pv->tails, &p);
    return rc != 0 ? rc : pv->fn(pv->ctx, &p);
}

static int visit_derive(void *c, const MDB_val *k, const MDB_val *v) {
    page_visit *pv = c;
    ASSERT(pv->dfn != NULL && k != NULL && v != NULL);
    ckpt_derive d;
    int rc = derive_decode(k, v, &d);
    return rc != 0 ? rc : pv->dfn(pv->ctx, &d);
}

int ckpt_read_pages(ckpt_store *s, ckpt_page_fn fn, void *ctx) {
    ASSERT(!s->writing);
    ASSERT(s->txn != NULL && fn != NULL);
    page_visit pv = {.fn = fn, .ctx = ctx};
    if (s->read_format >= 2 && (s->has_tails || s->tails_in_txn)) {
        int mrc = mdb_cursor_open(s->txn, s->tails, &pv.tails);
        if (mrc != 0) return lmdb_err(mrc, "opening a cursor");
    }
    int rc = walk(s, s->pages, visit_page, &pv);
    if (rc == 0 && pv.tails != NULL) { /* every tail was some page's */
        MDB_val tk, tv;
        int mrc = mdb_cursor_get(pv.tails, &tk, &tv, MDB_NEXT);
        if (mrc == 0) rc = bad_value("tails", &tk, "no page holds its head");
        else if (mrc != MDB_NOTFOUND) rc = lmdb_err(mrc, "reading the tails");
    }
    if (pv.tails != NULL) mdb_cursor_close(pv.tails);
    return rc;
}

int ckpt_read_derives(ckpt_store *s, ckpt_derive_fn fn, void *ctx) {
    ASSERT(!s->writing);
    ASSERT(s->txn != NULL && fn != NULL);
    page_visit pv = {.dfn = fn, .ctx = ctx};
    return walk(s, s->derive, visit_derive, &pv);
}
