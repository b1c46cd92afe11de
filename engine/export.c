/*
 * export.c - mmsb_export and mmsb_import: a store's committed state as a
 * portable stream (tlog/EXPORT.md), and a new store made from one.
 *
 * An imported store is a store whose log's beginning was removed: its state
 * is in its first checkpoint, and its log starts right after the record the
 * state holds, with the source's chain value. So recovery, replay, audit and
 * every reading command treat it as they treat a long-lived store after
 * retention, with no new kind of log record.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tlog/export.h"
#include "checkpoint.h"
#include "derive.h"
#include "digest.h"
#include "engine.h"
#include "page.h"
#include "role.h"

enum {
    MAP_SLACK_BYTES = 64 << 20, /* the checkpoint's LMDB map beyond its pages: branch pages, meta */
    MAP_ALIGN_BYTES = 1 << 20,
    EINTR_RETRIES_MAX = 1000,
    STAGE_ENTRIES_MAX = 1 << 16, /* a store being imported holds a few files */
};

#define STAGE_SUFFIX ".importing"

static int info_check(const mmsb_transfer_info *info, const char *fn) {
    if (info != NULL && info->struct_size < sizeof *info) {
        return err_set(MMSB_EINVAL, "%s: info->struct_size %u is below %zu", fn, info->struct_size, sizeof *info);
    }
    return 0;
}

static void info_fill(mmsb_transfer_info *info, const xp_header *h, uint64_t stream_bytes) {
    if (info == NULL) return;
    ASSERT(info->struct_size >= sizeof *info);
    *info = (mmsb_transfer_info){.struct_size = sizeof *info, .pages = h->pages, .derived = h->derived,
                                 .page_bytes = h->page_bytes, .stream_bytes = stream_bytes,
                                 .commit_seq = h->commit_seq, .page_id_next = h->page_id_next};
    digest_to_bytes(h->root, info->state_root.bytes);
}

/* ---- export ------------------------------------------------------------------------- */

typedef struct export_out {
    int fd;
    uint8_t *frame;          /* one frame: head and the largest body */
    uint64_t *parents;       /* one derivation's parent ids */
    uint64_t stream_bytes, frames;
} export_out;

static uint8_t *body_of(export_out *o) { return o->frame + XP_FRAME_HEAD_BYTES; }

static int write_all(export_out *o, const uint8_t *p, uint64_t len) {
    ASSERT(o->fd >= 0 && p != NULL);
    uint64_t done = 0;
    for (uint32_t interrupted = 0; done < len;) {
        ssize_t n = write(o->fd, p + done, len - done);
        if (n < 0 && errno == EINTR && ++interrupted < EINTR_RETRIES_MAX) continue;
        if (n <= 0) {
            return err_set(MMSB_EIO, "mmsb_export: writing the stream at byte %llu: %s",
                           (unsigned long long)(o->stream_bytes + done), n < 0 ? strerror(errno) : "nothing written");
        }
        done += (uint64_t)n;
    }
    o->stream_bytes += len;
    return 0;
}

static int put_frame(export_out *o, uint32_t type, uint32_t body_len) {
    xp_frame_seal(o->frame, type, body_len);
    o->frames++;
    return write_all(o, o->frame, XP_FRAME_HEAD_BYTES + (uint64_t)body_len);
}

static bool bytes_zero(const uint8_t *p, uint64_t len) {
    ASSERT(p != NULL);
    uint64_t acc = 0, i = 0;
    for (; i + 8 <= len; i += 8) acc |= get_le64(p + i); /* no early exit: pages are mostly written */
    for (; i < len; i++) acc |= p[i];
    return acc == 0;
}

/* PAGE, then a BYTES frame per MiB that holds a byte other than zero. */
static int export_page(mmsb_engine *e, export_out *o, uint64_t id, const page_entry *pe) {
    ASSERT(pe->flags & PE_LIVE);
    ckpt_page p = {.id = id, .size_bytes = pe->size_bytes, .epoch = pe->epoch, .flags = page_flags_of(pe->flags)};
    int rc = put_frame(o, XP_PAGE, xp_encode_page(body_of(o), &p));
    for (uint64_t off = 0; rc == 0 && off < pe->size_bytes; off += XP_CHUNK_BYTES) {
        uint64_t n = min_u64(XP_CHUNK_BYTES, pe->size_bytes - off);
        uint8_t *dst = body_of(o) + xp_encode_bytes_head(body_of(o), id, off);
        location_of(e, pe)->load(e, pe, off, dst, n);
        if (!bytes_zero(dst, n)) rc = put_frame(o, XP_BYTES, XP_BYTES_HEAD_BYTES + (uint32_t)n);
    }
    return rc;
}

static int export_derive(mmsb_engine *e, export_out *o, uint64_t id) {
    ckpt_derive d;
    checkpoint_derive_of(e, id, &d);
    ASSERT(d.parent_count <= XP_PARENTS_MAX && d.params_len <= XP_PARAMS_MAX);
    for (uint32_t k = 0; k < d.parent_count; k++) o->parents[k] = checkpoint_derive_parent(e, id, k);
    return put_frame(o, XP_DERIVE, xp_encode_derive(body_of(o), &d, o->parents));
}

static bool is_derived(mmsb_engine *e, uint64_t id) {
    uint32_t n = graph_node(&e->g, id);
    return n != 0 && graph_at(&e->g, n)->op != 0;
}

/* The header: where the state stands in the log, and its totals. */
static void export_header(mmsb_engine *e, xp_header *h) {
    uint64_t next = atomic_load_explicit(&e->page_id_next, memory_order_relaxed);
    *h = (xp_header){.page_id_next = next, .pages = e->pages_live, .derived = e->g.derived};
    if (e->log != NULL) {
        log_pos pos;
        log_position(e->log, &pos);
        *h = (xp_header){.salt = pos.salt, .commit_seq = pos.commits == 0 ? 0 : pos.next_seq - 1,
                         .commits = pos.commits, .chain = pos.chain, .page_id_next = next,
                         .pages = e->pages_live, .derived = e->g.derived};
    } else {
        h->commit_seq = e->read_commits == 0 ? 0 : e->read_commit_seq;
        h->commits = e->read_commits;
        h->chain = e->read_chain;
    }
    for (uint64_t id = 1; id < next; id++) {
        const page_entry *pe = entry_of(e, id);
        if (pe->flags & PE_LIVE) h->page_bytes += pe->size_bytes;
    }
    digest_root(e, &h->root);
}

static int export_all(mmsb_engine *e, export_out *o, const xp_header *h) {
    uint8_t head[XP_HEADER_BYTES];
    xp_header_encode(h, head);
    int rc = write_all(o, head, sizeof head);
    for (uint64_t id = 1; rc == 0 && id < h->page_id_next; id++) {
        const page_entry *pe = entry_of(e, id);
        if (pe->flags & PE_LIVE) rc = export_page(e, o, id, pe);
    }
    for (uint64_t id = 1; rc == 0 && id < h->page_id_next; id++) {
        if ((entry_of(e, id)->flags & PE_LIVE) && is_derived(e, id)) rc = export_derive(e, o, id);
    }
    xp_end end = {.frames = o->frames, .pages = h->pages, .derived = h->derived, .page_bytes = h->page_bytes,
                  .root = h->root};
    if (rc == 0) rc = put_frame(o, XP_END, xp_encode_end(body_of(o), &end));
    return rc;
}

MMSB_API int mmsb_export(mmsb_engine *engine, int fd, mmsb_transfer_info *info) {
    int rc = engine_enter(engine, "mmsb_export");
    if (rc != 0) return rc;
    if (fd < 0) rc = err_set(MMSB_EINVAL, "mmsb_export: fd %d is not a file descriptor", fd);
    if (rc == 0) rc = info_check(info, "mmsb_export");
    if (rc == 0 && engine->follower) {
        rc = err_set(MMSB_EINVAL, "mmsb_export: this engine belongs to a replica; export the primary, or open the "
                     "replica's directory read-only and export that");
    }
    export_out o = {.fd = fd};
    if (rc == 0) {
        o.frame = malloc(XP_FRAME_HEAD_BYTES + XP_BODY_MAX);
        o.parents = malloc(sizeof(uint64_t) * XP_PARENTS_MAX);
        if (o.frame == NULL || o.parents == NULL) rc = err_set(MMSB_ENOMEM, "mmsb_export: no memory for a frame");
    }
    xp_header h;
    if (rc == 0) {
        export_header(engine, &h);
        rc = export_all(engine, &o, &h);
    }
    if (rc == 0) info_fill(info, &h, o.stream_bytes);
    free(o.frame);
    free(o.parents);
    engine_leave(engine);
    return rc;
}

/* ---- import ------------------------------------------------------------------------- */

typedef struct import_ctx {
    int fd;
    xp_reader rd;
} import_ctx;

static int64_t read_fd(void *ctx, uint8_t *buf, uint64_t len) {
    const import_ctx *x = ctx;
    ASSERT(x->fd >= 0 && buf != NULL);
    for (uint32_t interrupted = 0; interrupted < EINTR_RETRIES_MAX; interrupted++) {
        ssize_t n = read(x->fd, buf, len);
        if (n >= 0) return n;
        if (errno != EINTR) return err_set(MMSB_EIO, "mmsb_import: reading the stream: %s", strerror(errno));
    }
    return err_set(MMSB_EIO, "mmsb_import: reading the stream: interrupted %d times", EINTR_RETRIES_MAX);
}

static int import_item(mmsb_engine *e, const xp_item *it, const xp_header *h) {
    switch (it->type) {
    case XP_PAGE: {
        ckpt_page p = it->page;
        p.location = MMSB_LOC_HOST;
        if (p.size_bytes > e->opts.page_bytes_max) {
            return err_set(MMSB_ENOSPC, "mmsb_import: page %llu has %llu bytes, above page_bytes_max %llu",
                           (unsigned long long)p.id, (unsigned long long)p.size_bytes,
                           (unsigned long long)e->opts.page_bytes_max);
        }
        return checkpoint_load_page(e, &p, h->page_id_next, "mmsb_import");
    }
    case XP_BYTES: {
        page_entry *pe = entry_of(e, it->page.id);
        ASSERT((pe->flags & PE_LIVE) && pe->size_bytes == it->page.size_bytes); /* the reader's order checks */
        page_change_args load = {.kind = PAGE_LOAD, .offset = it->offset, .len = it->len, .src = it->page.bytes,
                                 .epoch = pe->epoch};
        page_change(e, it->page.id, pe, &load);
        return 0;
    }
    case XP_DERIVE: return derive_load(e, &it->derive, "mmsb_import");
    default: ASSERT(it->type == XP_END); return 0;
    }
}

/* Loads the stream into the new store's empty engine and checks its root;
 * the log then starts after the record the state holds. */
static int import_seed(void *ctx, mmsb_engine *e, log_resume *resume) {
    import_ctx *x = ctx;
    const xp_header *h = &x->rd.hdr;
    if (h->page_id_next - 1 > e->opts.pages_max) {
        return err_set(MMSB_ENOSPC, "mmsb_import: the stream holds page ids up to %llu, above pages_max %llu",
                       (unsigned long long)(h->page_id_next - 1), (unsigned long long)e->opts.pages_max);
    }
    /* The checkpoint takes about the page bytes (up to twice that for 4 KiB
     * pages, two LMDB pages each): a map that large from the start spares
     * the import a rewrite of everything at each doubling. */
    uint64_t map_max = e->opts.checkpoint_map_bytes_max;
    uint64_t map_want = h->page_bytes >= map_max / 4 ? map_max : 2 * h->page_bytes + MAP_SLACK_BYTES;
    map_want = min_u64(align_up_u64(map_want, MAP_ALIGN_BYTES), map_max);
    e->opts.checkpoint_map_bytes = max_u64(e->opts.checkpoint_map_bytes, map_want);
    xp_item it = {0};
    int rc = 0;
    /* Each frame but END is a page, a derivation, or at least one page byte
     * (the sum saturates: the header's counts are the stream's word). */
    uint64_t frames_max = h->pages + h->derived + 1; /* both below pages_max (2^32 at most), checked above */
    frames_max = h->page_bytes > UINT64_MAX - frames_max ? UINT64_MAX : frames_max + h->page_bytes;
    for (uint64_t frames = 0; rc == 0 && it.type != XP_END; frames++) {
        ASSERT(frames <= frames_max);
        rc = xp_reader_next(&x->rd, &it);
        if (rc == 0) rc = import_item(e, &it, h);
    }
    h128 root = {0};
    if (rc == 0) rc = checkpoint_load_finish(e, h->page_id_next, &root);
    if (rc == 0 && (root.lo != h->root.lo || root.hi != h->root.hi || e->pages_live != h->pages ||
                    e->g.derived != h->derived)) {
        return err_set(MMSB_ECORRUPT, "mmsb_import: the loaded state's root %016llx%016llx differs from the stream's "
                       "%016llx%016llx", (unsigned long long)root.hi, (unsigned long long)root.lo,
                       (unsigned long long)h->root.hi, (unsigned long long)h->root.lo);
    }
    resume->next_seq = h->commit_seq + 1;
    resume->chain = h->chain;
    resume->commits = h->commits;
    return rc;
}

/* The staging directory's files (and those of its checkpoint directories),
 * then itself: it holds only what the import made there. */
static void stage_remove(const char *stage) {
    int dfd = open(stage, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (d == NULL) {
        if (dfd >= 0) close(dfd);
        rmdir(stage);
        return;
    }
    struct dirent *ent;
    for (uint32_t n = 0; n < STAGE_ENTRIES_MAX && (ent = readdir(d)) != NULL; n++) {
        if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0) continue;
        if (unlinkat(dfd, ent->d_name, 0) == 0 || errno != EISDIR) continue;
        int sub = openat(dfd, ent->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *sd = sub >= 0 ? fdopendir(sub) : NULL;
        struct dirent *se;
        for (uint32_t k = 0; sd != NULL && k < STAGE_ENTRIES_MAX && (se = readdir(sd)) != NULL; k++) {
            if (strcmp(se->d_name, ".") != 0 && strcmp(se->d_name, "..") != 0) unlinkat(sub, se->d_name, 0);
        }
        if (sd != NULL) closedir(sd);
        else if (sub >= 0) close(sub);
        unlinkat(dfd, ent->d_name, AT_REMOVEDIR);
    }
    closedir(d);
    rmdir(stage);
}

/* dir without trailing slashes into target, and its ".importing" sibling
 * into stage (made here); dir must not exist, or be an empty directory, and
 * the sibling must not exist. */
static int import_paths(const char *dir, char *target, char *stage, size_t size) {
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') len--;
    if (len + sizeof STAGE_SUFFIX > size) return err_set(MMSB_EINVAL, "mmsb_import: dir is too long");
    memcpy(target, dir, len);
    target[len] = '\0';
    memcpy(stage, dir, len);
    memcpy(stage + len, STAGE_SUFFIX, sizeof STAGE_SUFFIX);
    dir = target;
    struct stat st;
    if (stat(dir, &st) == 0) {
        DIR *d = S_ISDIR(st.st_mode) ? opendir(dir) : NULL;
        uint32_t entries = 0;
        for (struct dirent *ent; d != NULL && entries < 3 && (ent = readdir(d)) != NULL;) entries++;
        if (d != NULL) closedir(d);
        if (entries != 2) { /* "." and ".." only */
            return err_set(MMSB_EINVAL, "mmsb_import: %s exists and is not an empty directory; an import makes a "
                           "new store", dir);
        }
    } else if (errno != ENOENT) {
        return err_set(MMSB_EIO, "mmsb_import: %s: %s", dir, strerror(errno));
    }
    if (mkdir(stage, 0755) != 0) {
        int saved = errno;
        return err_set(saved == EEXIST ? MMSB_EINVAL : MMSB_EIO, "mmsb_import: cannot create %s: %s%s", stage,
                       strerror(saved), saved == EEXIST ? " (an import in progress, or one a crash interrupted: "
                       "remove it)" : "");
    }
    return 0;
}

/* The staging directory becomes dir, synced in its parent. */
static int stage_publish(const char *stage, const char *dir) {
    if (rename(stage, dir) != 0) {
        return err_set(MMSB_EIO, "mmsb_import: cannot rename %s to %s: %s", stage, dir, strerror(errno));
    }
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash == parent) slash[1] = '\0';
    else if (slash != NULL) *slash = '\0';
    else snprintf(parent, sizeof parent, ".");
    int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd >= 0 && fsync(fd) == 0 ? 0 : err_set(MMSB_EIO, "mmsb_import: syncing %s: %s", parent, strerror(errno));
    if (fd >= 0) close(fd);
    return rc;
}

/* A read-only open of the new store must see the stream's state root. */
static int import_verify(const char *dir, const mmsb_options *o, const xp_header *h) {
    mmsb_options ro = *o;
    ro.flags = MMSB_OPEN_READONLY;
    mmsb_engine *e = NULL;
    int rc = mmsb_open(dir, &ro, &e);
    mmsb_digest got;
    if (rc == 0) rc = mmsb_state_root(e, &got);
    uint8_t want[16];
    digest_to_bytes(h->root, want);
    if (rc == 0 && memcmp(got.bytes, want, sizeof want) != 0) {
        rc = err_set(MMSB_ECORRUPT, "mmsb_import: %s, opened again, has another state root than the stream", dir);
    }
    if (e != NULL) mmsb_close(e);
    return rc;
}

static int import_options(const mmsb_options *options, mmsb_options *o) {
    int rc = engine_options(options, o);
    if (rc != 0) return rc;
    if (o->flags & (MMSB_OPEN_READONLY | MMSB_OPEN_SALVAGE)) {
        return err_set(MMSB_EINVAL, "mmsb_import: MMSB_OPEN_READONLY and MMSB_OPEN_SALVAGE make no new store");
    }
    if (o->durability == MMSB_DURABILITY_REPLICATED || o->replication_servers != NULL) {
        return err_set(MMSB_ENOTSUP, "mmsb_import: a replication stream starts at a store's first record; import "
                       "without replication");
    }
    return 0;
}

/* Builds the store in stage; on success it is closed, whole and synced. */
static int import_build(const char *stage, const mmsb_options *o, import_ctx *x) {
    mmsb_engine *e = NULL;
    int rc = engine_open_seeded(stage, o, import_seed, x, &e);
    if (rc != 0) return rc;
    e->ck.rewrite = true;
    rc = checkpoint_write(e); /* the state's only home: nothing when the source had no commit */
    if (rc == 0 && x->rd.hdr.commit_seq > 0 && !e->ck.have) {
        rc = err_set(MMSB_EIO, "mmsb_import: the checkpoint was not written");
    }
    /* The log then ends as a writer's clean close leaves it: a last commit
     * with the state root, after the checkpoint's marker. */
    e->seeded = rc == 0 && x->rd.hdr.commit_seq > 0;
    int close_rc = mmsb_close(e);
    return rc != 0 ? rc : close_rc;
}

MMSB_API int mmsb_import(const char *dir, const mmsb_options *options, int fd, mmsb_transfer_info *info) {
    if (dir == NULL || dir[0] == '\0') return err_set(MMSB_EINVAL, "mmsb_import: dir is NULL or empty");
    if (fd < 0) return err_set(MMSB_EINVAL, "mmsb_import: fd %d is not a file descriptor", fd);
    int rc = info_check(info, "mmsb_import");
    mmsb_options o;
    if (rc == 0) rc = import_options(options, &o);
    char target[4096], stage[4096];
    if (rc == 0) rc = import_paths(dir, target, stage, sizeof stage);
    if (rc != 0) return rc;
    dir = target;
    import_ctx x = {.fd = fd};
    rc = xp_reader_open(&x.rd, read_fd, &x);
    if (rc == 0) rc = import_build(stage, &o, &x);
    if (rc == 0) rc = stage_publish(stage, dir);
    if (rc != 0) {
        char detail[400];
        snprintf(detail, sizeof detail, "%s", mmsb_last_error());
        stage_remove(stage);
        err_set(rc, "%s", detail);
    }
    if (rc == 0) rc = import_verify(dir, &o, &x.rd.hdr);
    if (rc == 0) info_fill(info, &x.rd.hdr, x.rd.stream_bytes);
    xp_reader_close(&x.rd);
    return rc;
}
