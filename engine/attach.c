/*
 * attach.c - live read-only attach: another process maps a running
 * writer's page table and page arena and reads pages while it writes.
 *
 * The writer's page table and arena are memfds whose names carry a token
 * unique to this engine instance (pid and open time); a third, one-page
 * memfd holds a header (state, next page id, sizes, token). After open the
 * writer publishes DIR/ATTACH, a short text file naming its pid and the
 * three descriptors; a reader opens them through /proc/PID/fd/N, checks
 * that each link names the same token (so a stale file of a dead writer,
 * or a reused pid, cannot attach to the wrong memory), and maps them
 * read-only. Reads take no lock: the per-entry seqlock makes each read
 * consistent (page.c), and the mappings never shrink, so a page freed or
 * moved under a reader is a retry or a clear error, never a fault. At close
 * the writer marks the header closed and removes the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "live.h"
#include "read.h"

enum { ATTACH_FILE_BYTES_MAX = 1024, ATTACH_VERSION = 1, LINK_BYTES = 256 };
#define ATTACH_MAGIC 0x4d4d534241545431ull /* "MMSBATT1" */

/* ---- the writer's side ------------------------------------------------------------------ */

void live_token_make(mmsb_engine *e) {
    ASSERT(e != NULL && e->live.base == NULL);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* identity only: never reaches state */
    snprintf(e->live_token, sizeof e->live_token, "%d-%llx-%lx", (int)getpid(), (unsigned long long)ts.tv_sec,
             (long)ts.tv_nsec);
    ASSERT(e->live_token[0] != '\0' && strlen(e->live_token) < sizeof e->live_token);
}

int live_publish(mmsb_engine *e) {
    ASSERT((!e->read_only || e->follower) && e->live.base == NULL);
    ASSERT(e->live_token[0] != '\0');
    char name[80];
    snprintf(name, sizeof name, "mmsb-live-%s", e->live_token);
    int rc = vmap_open(&e->live, name, LIVE_HEADER_BYTES, LIVE_HEADER_BYTES);
    if (rc == 0) rc = vmap_ensure(&e->live, LIVE_HEADER_BYTES);
    if (rc != 0) return rc;
    live_header *h = (live_header *)e->live.base;
    h->magic = LIVE_MAGIC;
    h->entry_bytes = sizeof(page_entry);
    h->pages_max = e->opts.pages_max;
    h->arena_bytes = e->data.mem.bytes_max;
    snprintf(h->token, sizeof h->token, "%s", e->live_token);
    atomic_store_explicit(&h->page_id_next, atomic_load(&e->page_id_next), memory_order_relaxed);
    atomic_store_explicit(&h->state, LIVE_OPEN, memory_order_release);
    char text[ATTACH_FILE_BYTES_MAX];
    int n = snprintf(text, sizeof text, "mmsb-attach %d\npid %d\ntoken %s\nlive_fd %d\npages_fd %d\narena_fd %d\n",
                     ATTACH_VERSION, (int)getpid(), e->live_token, e->live.fd, e->pages.fd, e->data.mem.fd);
    ASSERT(n > 0 && n < (int)sizeof text);
    int fd = openat(e->dir_fd, "ATTACH.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    bool ok = fd >= 0 && write(fd, text, (size_t)n) == n;
    if (fd >= 0) close(fd);
    if (ok) ok = renameat(e->dir_fd, "ATTACH.tmp", e->dir_fd, "ATTACH") == 0;
    if (!ok)
        return err_set(err_from_errno(errno), "mmsb_open: cannot publish %s/ATTACH for readers: %s", e->dir,
                       strerror(errno));
    return 0;
}

void live_retire(mmsb_engine *e) {
    /* read-only engines publish nothing, except a replica's */
    ASSERT(e != NULL && (e->live.base == NULL || !e->read_only || e->follower));
    if (e->live.base == NULL) return;
    atomic_store_explicit(&((live_header *)e->live.base)->state, LIVE_CLOSED, memory_order_release);
    unlinkat(e->dir_fd, "ATTACH", 0);
}

/* ---- the reader's side ------------------------------------------------------------------ */

struct mmsb_attach {
    uint64_t magic;
    const live_header *hdr;
    page_source src;
    uint64_t table_bytes, arena_bytes;
    char dir[256];
};

typedef struct attach_file {
    int version, pid, live_fd, pages_fd, arena_fd;
    char token[LIVE_TOKEN_BYTES];
} attach_file;

/* DIR/ATTACH, read as hostile text: every field present and in range. */
static int read_attach_file(const char *dir, attach_file *f) {
    ASSERT(dir != NULL && f != NULL);
    char path[4200], text[ATTACH_FILE_BYTES_MAX + 1];
    snprintf(path, sizeof path, "%s/ATTACH", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return err_set(MMSB_ENOTFOUND, "mmsb_attach_open: no engine is running on %s (no ATTACH file)", dir);
        return err_set(MMSB_EIO, "mmsb_attach_open: %s: %s", path, strerror(errno));
    }
    ssize_t n = read(fd, text, ATTACH_FILE_BYTES_MAX);
    ASSERT(n <= ATTACH_FILE_BYTES_MAX);
    close(fd);
    if (n <= 0) return err_set(MMSB_ECORRUPT, "mmsb_attach_open: %s is empty or unreadable", path);
    text[n] = '\0';
    char token[LIVE_TOKEN_BYTES + 1] = "";
    int got = sscanf(text, "mmsb-attach %d\npid %d\ntoken %48s\nlive_fd %d\npages_fd %d\narena_fd %d\n", &f->version,
                     &f->pid, token, &f->live_fd, &f->pages_fd, &f->arena_fd);
    if (got != 6 || f->pid <= 0 || f->live_fd < 0 || f->pages_fd < 0 || f->arena_fd < 0 ||
        strlen(token) >= sizeof f->token) {
        return err_set(MMSB_ECORRUPT, "mmsb_attach_open: %s is not an attach file", path);
    }
    if (f->version != ATTACH_VERSION) {
        return err_set(MMSB_EVERSION, "mmsb_attach_open: %s has version %d, this library reads %d", path, f->version,
                       ATTACH_VERSION);
    }
    snprintf(f->token, sizeof f->token, "%s", token);
    ASSERT(f->version == ATTACH_VERSION && f->pid > 0);
    return 0;
}

/* Maps the writer's descriptor fd read-only, after checking that it is the
 * memfd `kind` of the instance named by the token. */
static int map_writer_fd(const attach_file *f, int fd, const char *kind, const void **base, uint64_t *bytes) {
    ASSERT(f != NULL && kind != NULL && base != NULL && bytes != NULL);
    ASSERT(fd >= 0 && f->pid > 0);
    char proc[64], link[LINK_BYTES], want[LINK_BYTES];
    snprintf(proc, sizeof proc, "/proc/%d/fd/%d", f->pid, fd);
    ssize_t n = readlink(proc, link, sizeof link - 1);
    snprintf(want, sizeof want, "/memfd:mmsb-%s-%s (deleted)", kind, f->token);
    if (n < 0 || (size_t)n != strlen(want) || memcmp(link, want, (size_t)n) != 0) {
        return err_set(MMSB_ENOTFOUND, "mmsb_attach_open: the engine that published ATTACH (process %d) is gone "
                       "or is another one now (%s)", f->pid, n < 0 ? strerror(errno) : "its memory has another name");
    }
    int mfd = open(proc, O_RDONLY | O_CLOEXEC);
    if (mfd < 0) return err_set(MMSB_EIO, "mmsb_attach_open: cannot open %s: %s", proc, strerror(errno));
    struct stat st;
    int rc = fstat(mfd, &st) == 0 && st.st_size > 0 ? 0 : err_set(MMSB_EIO, "mmsb_attach_open: %s has no size", proc);
    void *p = MAP_FAILED;
    if (rc == 0) p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED | MAP_NORESERVE, mfd, 0);
    close(mfd);
    if (rc == 0 && p == MAP_FAILED)
        rc = err_set(MMSB_ENOMEM, "mmsb_attach_open: mmap of %s: %s", proc, strerror(errno));
    if (rc != 0) return rc;
    *base = p;
    *bytes = (uint64_t)st.st_size;
    ASSERT(*base != NULL && *bytes > 0);
    return 0;
}

static void attach_unmap(mmsb_attach *a) {
    ASSERT(a != NULL && a->magic == ATTACH_MAGIC);
    if (a->hdr != NULL) munmap((void *)a->hdr, LIVE_HEADER_BYTES);
    if (a->src.table != NULL) munmap(a->src.table, a->table_bytes);
    if (a->src.arena != NULL) munmap((void *)a->src.arena, a->arena_bytes);
}

/* The header, checked against the mappings: a reader never trusts sizes it
 * has not seen backed. */
static int check_header(const mmsb_attach *a, const attach_file *f, uint64_t hdr_bytes) {
    ASSERT(a->hdr != NULL && a->src.table != NULL && a->src.arena != NULL);
    ASSERT(hdr_bytes > 0 && a->table_bytes > 0 && a->arena_bytes > 0);
    const live_header *h = a->hdr;
    bool ok = hdr_bytes >= sizeof *h && h->magic == LIVE_MAGIC && h->entry_bytes == sizeof(page_entry) &&
              h->pages_max <= a->table_bytes / sizeof(page_entry) && h->arena_bytes <= a->arena_bytes &&
              strncmp(h->token, f->token, sizeof h->token) == 0;
    if (!ok) return err_set(MMSB_ECORRUPT, "mmsb_attach_open: the engine's shared header does not match its memory");
    if (atomic_load_explicit(&h->state, memory_order_acquire) != LIVE_OPEN) {
        return err_set(MMSB_ENOTFOUND, "mmsb_attach_open: the engine has closed");
    }
    return 0;
}

MMSB_API int mmsb_attach_open(const char *dir, mmsb_attach **attach_out) {
    if (attach_out == NULL) return err_set(MMSB_EINVAL, "mmsb_attach_open: attach_out is NULL");
    *attach_out = NULL;
    if (dir == NULL || dir[0] == '\0') return err_set(MMSB_EINVAL, "mmsb_attach_open: dir is NULL or empty");
    attach_file f;
    int rc = read_attach_file(dir, &f);
    if (rc != 0) return rc;
    mmsb_attach *a = calloc(1, sizeof *a);
    if (a == NULL) return err_set(MMSB_ENOMEM, "mmsb_attach_open: out of memory");
    a->magic = ATTACH_MAGIC;
    snprintf(a->dir, sizeof a->dir, "%s", dir);
    uint64_t hdr_bytes = 0;
    const void *table = NULL;
    rc = map_writer_fd(&f, f.live_fd, "live", (const void **)&a->hdr, &hdr_bytes);
    if (rc == 0) rc = map_writer_fd(&f, f.pages_fd, "pages", &table, &a->table_bytes);
    a->src.table = (page_entry *)table;
    if (rc == 0) rc = map_writer_fd(&f, f.arena_fd, "arena", (const void **)&a->src.arena, &a->arena_bytes);
    if (rc == 0) rc = check_header(a, &f, hdr_bytes);
    if (rc != 0) {
        attach_unmap(a);
        free(a);
        return rc;
    }
    a->src.arena_bytes = a->hdr->arena_bytes;
    ASSERT(a->src.arena_bytes <= a->arena_bytes); /* check_header */
    *attach_out = a;
    return 0;
}

static int attach_enter(mmsb_attach *a, const char *fn) {
    if (a == NULL || a->magic != ATTACH_MAGIC) return err_set(MMSB_EINVAL, "%s: not an open attach handle", fn);
    if (atomic_load_explicit(&a->hdr->state, memory_order_acquire) != LIVE_OPEN) {
        return err_set(MMSB_ENOTFOUND, "%s: the engine on %s has closed", fn, a->dir);
    }
    /* The header is another process's memory: what it says now is bounded
     * by what this process mapped, not by what it said at open. */
    uint64_t next = atomic_load_explicit(&a->hdr->page_id_next, memory_order_acquire);
    uint64_t pages_max = __atomic_load_n(&a->hdr->pages_max, __ATOMIC_RELAXED);
    uint64_t limit = min_u64(pages_max, a->table_bytes / sizeof(page_entry)) + 1;
    a->src.ids_end = next <= limit ? next : limit;
    ASSERT(a->src.ids_end <= a->table_bytes / sizeof(page_entry) + 1);
    ASSERT(fn != NULL);
    return 0;
}

MMSB_API int mmsb_attach_read(mmsb_attach *attach, uint64_t page_id, uint64_t offset, void *buf, uint64_t len,
                              uint64_t *epoch_out) {
    int rc = attach_enter(attach, "mmsb_attach_read");
    if (rc != 0) return rc;
    if (buf == NULL && len > 0)
        return err_set(MMSB_EINVAL, "mmsb_attach_read: buf is NULL with len %llu", (unsigned long long)len);
    entry_copy copy;
    rc = page_read_consistent(&attach->src, page_id, "mmsb_attach_read", &copy, offset, buf, len);
    if (rc == 0 && epoch_out != NULL) *epoch_out = copy.epoch;
    return rc;
}

MMSB_API int mmsb_attach_page_info(mmsb_attach *attach, uint64_t page_id, mmsb_pageinfo *info) {
    int rc = attach_enter(attach, "mmsb_attach_page_info");
    if (rc != 0) return rc;
    if (info == NULL || info->struct_size < sizeof(mmsb_pageinfo)) {
        return err_set(MMSB_EINVAL, "mmsb_attach_page_info: info is NULL or its struct_size is below %zu",
                       sizeof(mmsb_pageinfo));
    }
    entry_copy copy;
    rc = page_read_consistent(&attach->src, page_id, "mmsb_attach_page_info", &copy, 0, NULL, 0);
    if (rc != 0) return rc;
    *info = (mmsb_pageinfo){.struct_size = sizeof(mmsb_pageinfo),
                            .location = (copy.flags & PE_DEVICE) ? MMSB_LOC_DEVICE : MMSB_LOC_HOST,
                            .page_id = page_id, .size_bytes = copy.size_bytes, .epoch = copy.epoch,
                            .flags = page_flags_of(copy.flags)};
    return 0;
}

MMSB_API int mmsb_attach_close(mmsb_attach *attach) {
    if (attach == NULL) return 0;
    if (attach->magic != ATTACH_MAGIC) return err_set(MMSB_EINVAL, "mmsb_attach_close: not an open attach handle");
    attach_unmap(attach);
    attach->magic = 0;
    free(attach);
    return 0;
}
