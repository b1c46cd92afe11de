/*
 * cursor.c - reading the whole log and judging how it ends (see cursor.h and
 * the decision table in FORMAT.md).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cursor.h"

typedef struct log_cursor log_cursor;
static int corrupt(log_cursor *c, const char *why);

typedef enum { HDR_VALID, HDR_ZERO, HDR_INVALID, HDR_OTHER_VERSION } hdr_kind;

struct log_cursor {
    int dir_fd;
    uint32_t flags;
    const kern_ops *kern;
    uint64_t *seg_nos;     /* sorted segment numbers found */
    uint32_t seg_count;
    uint32_t seg_last;     /* index of the last segment with a valid header */
    uint32_t seg_idx;      /* index of the mapped segment */
    const uint8_t *map;    /* the mapped segment, or NULL */
    uint64_t map_size;
    seg_header hdr;
    seg_scan scan;
    bool started;          /* a segment with a valid header was seen */
    uint64_t next_seq;
    uint32_t gen;
    chain_hasher chain;
    uint64_t commit_first_seq; /* first record of the commit being read */
    /* the last valid commit */
    uint32_t commit_seg_idx;
    uint64_t commit_end_off;
    uint64_t commit_seg_first_seq;
    bool after_close;      /* the last valid record is a clean close's commit */
    bool in_head;          /* before the first commit boundary of a pruned log */
    bool sealed;           /* the last record returned was a SEAL: move on at the next call */
    uint64_t seal_boundary_seq; /* a SEAL that came right at a commit boundary; 0: the last record was not one */
    uint64_t *aborted;     /* pairs: first seq, ABORT seq */
    uint64_t aborted_count, aborted_cap;
    bool done;
    bool has_start;
    cursor_start start;
    log_end end;
};

void segment_name(uint64_t segment_no, char out[32]) {
    ASSERT(segment_no >= 1 && out != NULL);
    snprintf(out, 32, "log-%010llu.seg", (unsigned long long)segment_no);
}

static bool parse_segment_name(const char *name, uint64_t *no) {
    ASSERT(name != NULL && no != NULL);
    unsigned long long v;
    char tail[8];
    if (strlen(name) != 18 || sscanf(name, "log-%10llu%4s", &v, tail) != 2) return false;
    if (strcmp(tail, ".seg") != 0 || v == 0) return false;
    *no = v;
    ASSERT(*no >= 1 && *no <= 9999999999ull);
    return true;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

DIR *store_dir_listing(int dir_fd) {
    ASSERT(dir_fd >= 0);
    /* A descriptor of its own: a dup would share the directory's read
     * position with every other listing of the store (recovery's two
     * passes, the shipper, retention), each moving it under the others. */
    int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL && fd >= 0) {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    return d;
}

int segment_list(int dir_fd, uint64_t **numbers, uint32_t *count) {
    ASSERT(dir_fd >= 0 && numbers != NULL && count != NULL);
    *numbers = NULL;
    *count = 0;
    DIR *d = store_dir_listing(dir_fd);
    if (d == NULL) {
        int saved = errno;
        return err_set(err_from_errno(saved), "cannot list the store directory: %s", strerror(saved));
    }
    uint32_t cap = 64, n = 0;
    uint64_t *nos = malloc(cap * sizeof *nos);
    int rc = nos == NULL ? err_set(MMSB_ENOMEM, "listing segments") : 0;
    for (struct dirent *ent; rc == 0 && (ent = readdir(d)) != NULL;) {
        uint64_t no;
        if (!parse_segment_name(ent->d_name, &no)) continue;
        if (n == SEGMENT_FILES_MAX) {
            rc = err_set(MMSB_ENOSPC, "more than %d segment files", SEGMENT_FILES_MAX);
        } else if (n == cap) {
            uint64_t *grown = realloc(nos, 2 * cap * sizeof *grown);
            if (grown == NULL) rc = err_set(MMSB_ENOMEM, "listing segments");
            else nos = grown, cap *= 2;
        }
        if (rc == 0) nos[n++] = no;
    }
    closedir(d);
    if (rc != 0) {
        free(nos);
        return rc;
    }
    /* readdir order is arbitrary: sort by number */
    qsort(nos, n, sizeof *nos, cmp_u64);
    ASSERT(n <= cap && n <= SEGMENT_FILES_MAX);
    *numbers = nos;
    *count = n;
    return 0;
}

bool segment_gap(const uint64_t *numbers, uint32_t count) {
    ASSERT(count <= SEGMENT_FILES_MAX);
    ASSERT(numbers != NULL || count == 0);
    for (uint32_t i = 1; i < count; i++) {
        if (numbers[i] != numbers[i - 1] + 1) return true;
    }
    return false;
}

static void drop_first(log_cursor *c, uint32_t n) {
    ASSERT(n <= c->seg_count);
    memmove(c->seg_nos, c->seg_nos + n, (c->seg_count - n) * sizeof *c->seg_nos);
    c->seg_count -= n;
    ASSERT(c->seg_idx == 0 && c->map == NULL); /* only before reading starts */
}

/* Segment files below the checkpoint's segment that do not run up to it
 * without a gap: a crash interrupted the retention that removes them
 * (oldest first), so the checkpoint covers them and nothing reads them. */
static void drop_leftovers(log_cursor *c, uint64_t covered_segment) {
    ASSERT(covered_segment >= 1 && !c->has_start);
    uint32_t at = 0;
    while (at < c->seg_count && c->seg_nos[at] < covered_segment) at++;
    if (at == c->seg_count || c->seg_nos[at] != covered_segment) return; /* nothing to judge by */
    uint32_t run = at;
    while (run > 0 && c->seg_nos[run - 1] + 1 == c->seg_nos[run]) run--;
    c->end.leftover_segments = run;
    drop_first(c, run);
    ASSERT(c->seg_count >= 1 && c->seg_nos[0] <= covered_segment);
}

/* The segment files to read, in number order, without a gap. */
static int list_segments(log_cursor *c, uint64_t covered_segment) {
    ASSERT(c->seg_nos == NULL && c->seg_count == 0);
    ASSERT(!(c->has_start && covered_segment != 0));
    int rc = segment_list(c->dir_fd, &c->seg_nos, &c->seg_count);
    if (rc != 0) return rc;
    if (c->has_start) {
        uint32_t keep = 0;
        while (keep < c->seg_count && c->seg_nos[keep] < c->start.segment) keep++;
        if (keep == c->seg_count || c->seg_nos[keep] != c->start.segment) {
            return err_set(MMSB_ECORRUPT, "segment %llu, where the checkpoint's log position is, is missing",
                           (unsigned long long)c->start.segment);
        }
        drop_first(c, keep);
    } else if (covered_segment != 0) {
        drop_leftovers(c, covered_segment);
    }
    for (uint32_t i = 1; i < c->seg_count; i++) {
        if (c->seg_nos[i] != c->seg_nos[i - 1] + 1) {
            return err_set(MMSB_ECORRUPT, "segment %llu is missing (found %llu, then %llu)",
                           (unsigned long long)(c->seg_nos[i - 1] + 1),
                           (unsigned long long)c->seg_nos[i - 1], (unsigned long long)c->seg_nos[i]);
        }
    }
    return 0;
}

static int open_segment_fd(const log_cursor *c, uint32_t idx, int *fd_out, uint64_t *size_out) {
    ASSERT(idx < c->seg_count);
    ASSERT(fd_out != NULL && size_out != NULL);
    char name[32];
    segment_name(c->seg_nos[idx], name);
    int fd = openat(c->dir_fd, name, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int saved = errno;
        if (fd >= 0) close(fd);
        return err_set(MMSB_EIO, "cannot open %s: %s", name, strerror(saved));
    }
    *fd_out = fd;
    *size_out = (uint64_t)st.st_size;
    return 0;
}

static hdr_kind read_header(const log_cursor *c, uint32_t idx, seg_header *h, int *rc) {
    ASSERT(c->dir_fd >= 0);
    ASSERT(idx < c->seg_count && h != NULL && rc != NULL);
    int fd;
    uint64_t size;
    *rc = open_segment_fd(c, idx, &fd, &size);
    if (*rc != 0) return HDR_INVALID;
    uint8_t buf[SEG_HEADER_BYTES] = {0};
    ssize_t got = pread(fd, buf, sizeof buf, 0);
    close(fd);
    if (got <= 0 || seg_header_is_zero(buf)) return HDR_ZERO;
    if (got < (ssize_t)sizeof buf) return HDR_INVALID;
    int decoded = seg_header_decode(buf, h);
    return decoded == 0 ? HDR_VALID : decoded == MMSB_EVERSION ? HDR_OTHER_VERSION : HDR_INVALID;
}

/* Bytes from the end of the header to the last non-zero byte of segment
 * idx: 0 when it provably holds no record (a spare, or a segment whose
 * header write never finished). */
static int segment_data_bytes(const log_cursor *c, uint32_t idx, uint64_t *bytes) {
    ASSERT(idx < c->seg_count && bytes != NULL);
    int fd;
    uint64_t size;
    int rc = open_segment_fd(c, idx, &fd, &size);
    if (rc != 0) return rc;
    *bytes = 0;
    if (size <= SEG_HEADER_BYTES) {
        close(fd);
        return 0;
    }
    uint8_t *map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return err_set(MMSB_EIO, "cannot map segment %llu", (unsigned long long)c->seg_nos[idx]);
    seg_scan probe;
    seg_scan_init(&probe, map, size, 0, 0, 1, c->kern);
    *bytes = seg_scan_nonzero_end(&probe, SEG_HEADER_BYTES) - SEG_HEADER_BYTES;
    munmap(map, size);
    ASSERT(*bytes <= size - SEG_HEADER_BYTES);
    return 0;
}

/* Finds the last segment with a valid header: every segment after it must be
 * a spare (zero or unfinished header), which enter_segment checks once the
 * log reaches it. A log with no valid header at all is a new store only
 * when no segment holds data. */
static int classify_headers(log_cursor *c) {
    ASSERT(c->seg_last == 0 && !c->started);
    seg_header h;
    bool any = false;
    for (uint32_t i = 0; i < c->seg_count; i++) {
        int rc;
        hdr_kind kind = read_header(c, i, &h, &rc);
        if (rc != 0) return rc;
        if (kind == HDR_OTHER_VERSION) { /* a whole header of another format: say which */
            char name[32];
            segment_name(c->seg_nos[i], name);
            char why[200];
            snprintf(why, sizeof why, "%s", mmsb_last_error());
            return err_set(MMSB_EVERSION, "%s: %s", name, why);
        }
        if (kind == HDR_VALID) {
            if (any && c->seg_last != i - 1) {
                char name[32];
                segment_name(c->seg_nos[c->seg_last + 1], name);
                return err_set(MMSB_ECORRUPT, "%s has an invalid header but later segments are valid", name);
            }
            c->seg_last = i;
            any = true;
        }
    }
    c->end.empty = !any;
    c->end.segment_files = c->seg_count;
    ASSERT(!any || c->seg_last < c->seg_count);
    if (c->seg_count > 0) c->end.segment_first = c->seg_nos[0];
    if (any) c->end.segment_last = c->seg_nos[c->seg_last];
    int rc;
    if (any && read_header(c, 0, &h, &rc) != HDR_VALID) {
        return rc != 0 ? rc : err_set(MMSB_ECORRUPT, "the first segment has an invalid header");
    }
    for (uint32_t i = 0; !any && i < c->seg_count; i++) {
        uint64_t data;
        rc = segment_data_bytes(c, i, &data);
        if (rc != 0) return rc;
        if (data != 0) {
            char name[32];
            segment_name(c->seg_nos[i], name);
            return err_set(MMSB_ECORRUPT, "%s has no valid segment header, but holds %llu bytes of records "
                           "(the header is damaged)", name, (unsigned long long)data);
        }
    }
    return 0;
}

static int cursor_new(int dir_fd, uint32_t flags, const kern_ops *kern, const cursor_start *start,
                      uint64_t covered_segment, log_cursor **out) {
    ASSERT(dir_fd >= 0 && kern != NULL && out != NULL);
    ASSERT((flags & ~(uint32_t)(CURSOR_VERIFY | CURSOR_SALVAGE | CURSOR_LIVE)) == 0);
    log_cursor *c = calloc(1, sizeof *c);
    if (c == NULL) return err_set(MMSB_ENOMEM, "cannot allocate a log cursor");
    c->dir_fd = dir_fd;
    c->flags = flags;
    c->kern = kern;
    chain_use_kernels(&c->chain, kern);
    if (start != NULL) {
        c->has_start = true;
        c->start = *start;
    }
    int rc = list_segments(c, covered_segment);
    if (rc == 0) rc = classify_headers(c);
    if (rc != 0) {
        cursor_close(c);
        return rc;
    }
    if (c->has_start && c->end.empty) {
        cursor_close(c);
        return err_set(MMSB_ECORRUPT, "segment %llu, where the checkpoint's log position is, has no valid header",
                       (unsigned long long)start->segment);
    }
    if (c->end.empty) c->done = true;
    ASSERT(c->done || c->seg_count >= 1);
    *out = c;
    return 0;
}

int cursor_open(int dir_fd, uint32_t flags, const kern_ops *kern, uint64_t covered_segment,
                log_cursor **out) {
    return cursor_new(dir_fd, flags, kern, NULL, covered_segment, out);
}

int cursor_open_at(int dir_fd, uint32_t flags, const kern_ops *kern, const cursor_start *start,
                   log_cursor **out) {
    return cursor_new(dir_fd, flags, kern, start, 0, out);
}

static void unmap_segment(log_cursor *c) {
    ASSERT(c != NULL);
    if (c->map != NULL) munmap((void *)c->map, c->map_size);
    c->map = NULL;
    ASSERT(c->map == NULL);
}

void cursor_close(log_cursor *c) {
    if (c == NULL) return;
    ASSERT(c->seg_count == 0 || c->seg_nos != NULL);
    ASSERT(c->aborted_count <= c->aborted_cap);
    unmap_segment(c);
    free(c->seg_nos);
    free(c->aborted);
    free(c);
}

void cursor_take_aborted(log_cursor *c, uint64_t **pairs, uint64_t *count) {
    ASSERT(c != NULL && pairs != NULL && count != NULL);
    ASSERT(c->aborted_count <= c->aborted_cap);
    *pairs = c->aborted;
    *count = c->aborted_count;
    c->aborted = NULL;
    c->aborted_count = c->aborted_cap = 0;
}

void cursor_aborted_view(const log_cursor *c, const uint64_t **pairs, uint64_t *count) {
    ASSERT(c != NULL && pairs != NULL && count != NULL);
    ASSERT(c->aborted_count <= c->aborted_cap);
    *pairs = c->aborted;
    *count = c->aborted_count;
}

bool seq_aborted(const uint64_t *pairs, uint64_t count, uint64_t seq) {
    ASSERT(pairs != NULL || count == 0);
    uint64_t lo = 0, hi = count;
    while (lo < hi) { /* the first range ending at or after seq */
        uint64_t mid = lo + (hi - lo) / 2;
        if (pairs[2 * mid + 1] < seq) lo = mid + 1;
        else hi = mid;
    }
    return lo < count && pairs[2 * lo] <= seq;
    ASSERT(lo <= count);
}

/* An ABORT voids the records since the last commit: they leave the chain,
 * and their range is remembered so that replay skips them. */
static int remember_aborted(log_cursor *c, uint64_t first, uint64_t abort_seq) {
    ASSERT(first <= abort_seq);
    ASSERT(c->aborted_count == 0 || c->aborted[2 * c->aborted_count - 1] < first); /* in log order */
    if (c->aborted_count == c->aborted_cap) {
        uint64_t cap = c->aborted_cap == 0 ? 16 : 2 * c->aborted_cap;
        uint64_t *grown = realloc(c->aborted, 2 * cap * sizeof *grown);
        if (grown == NULL) return err_set(MMSB_ENOMEM, "log cursor: aborted ranges");
        c->aborted = grown;
        c->aborted_cap = cap;
    }
    c->aborted[2 * c->aborted_count] = first;
    c->aborted[2 * c->aborted_count + 1] = abort_seq;
    c->aborted_count++;
    ASSERT(c->aborted_count <= c->aborted_cap);
    return 0;
}

static int abort_records(log_cursor *c, const log_rec *r) {
    ASSERT(r->type == REC_ABORT && !c->done);
    uint64_t first;
    int rc = rec_decode_abort(r, &first);
    ASSERT(rc == 0);
    if (first != c->commit_first_seq) return corrupt(c, "ABORT does not start where the last commit ended");
    rc = remember_aborted(c, first, r->seq);
    if (rc != 0) return rc;
    chain_begin(&c->chain, c->end.chain);
    c->commit_first_seq = r->seq + 1;
    ASSERT(seq_aborted(c->aborted, c->aborted_count, r->seq));
    return 0;
}

/* A checkpoint marker stands between commits, outside the chain: the
 * position after it is a place a writer may continue from. */
static int checkpoint_marker(log_cursor *c, const log_rec *r) {
    ASSERT(r->type == REC_CHECKPOINT && !c->done);
    /* A marker that did not fit its segment comes after the SEAL that ended
     * it: that SEAL, right at a boundary, opened no commit. */
    bool after_boundary_seal = c->seal_boundary_seq != 0 && c->seal_boundary_seq == c->commit_first_seq &&
                               r->seq == c->commit_first_seq + 1;
    if (c->commit_first_seq != r->seq && !after_boundary_seal) return corrupt(c, "CHECKPOINT inside a commit");
    c->end.last_commit_seq = r->seq;
    c->commit_seg_idx = c->seg_idx;
    c->commit_end_off = c->scan.off;
    c->commit_seg_first_seq = c->hdr.first_seq;
    ASSERT(c->commit_end_off <= c->map_size);
    c->commit_first_seq = r->seq + 1;
    chain_begin(&c->chain, c->end.chain); /* as the writer does: see log_append_checkpoint */
    return 0;
}

const log_end *cursor_end(const log_cursor *c) { return &c->end; }

uint64_t cursor_segment(const log_cursor *c) { return c->seg_nos[c->seg_idx]; }

/* ---- the end of the log ------------------------------------------------------------ */

static void finish(log_cursor *c) {
    ASSERT(!c->done && c->seg_count >= 1);
    ASSERT(c->end.last_commit_seq <= c->end.last_seq);
    log_end *e = &c->end;
    e->dropped_records = e->last_seq - e->last_commit_seq;
    if (e->last_commit_seq == 0) {
        /* No commit at all: continue at the start of the first segment. */
        c->commit_seg_idx = 0;
        c->commit_end_off = SEG_HEADER_BYTES;
    }
    e->resume_segment = c->seg_nos[c->commit_seg_idx];
    e->resume_offset = c->commit_end_off;
    e->resume_first_seq = c->commit_seg_first_seq;
    c->done = true;
    ASSERT(c->commit_seg_idx < c->seg_count && e->resume_offset >= SEG_HEADER_BYTES);
    unmap_segment(c);
}

static int corrupt(log_cursor *c, const char *why) {
    ASSERT(!c->done);
    ASSERT(why != NULL && c->seg_idx < c->seg_count);
    char name[32];
    segment_name(c->seg_nos[c->seg_idx], name);
    log_end *e = &c->end;
    snprintf(e->detail, sizeof e->detail, "%s offset %llu, record seq %llu: %.180s", name,
             (unsigned long long)c->scan.off, (unsigned long long)c->next_seq, why);
    if (c->flags & CURSOR_SALVAGE) {
        e->salvaged = true;
        e->dropped_bytes = seg_scan_nonzero_end(&c->scan, c->scan.off) - c->commit_end_off;
        finish(c);
        return 0;
    }
    e->status = MMSB_ECORRUPT;
    finish(c);
    return err_set(MMSB_ECORRUPT, "log corrupt: %s", e->detail);
}

/* Something that is not a valid record in the last segment: a torn tail if
 * nothing after it was ever synced, else corruption. */
static int invalid_in_last(log_cursor *c, const char *why) {
    ASSERT(why != NULL && !c->done);
    ASSERT(c->seg_idx == c->seg_last && c->map != NULL);
    uint64_t found;
    if (seg_scan_synced_commit_after(&c->scan, c->scan.off + REC_ALIGN, c->end.last_seq, &found)) {
        char msg[320];
        snprintf(msg, sizeof msg, "%s, and a synced commit follows at offset %llu", why,
                 (unsigned long long)found);
        return corrupt(c, msg);
    }
    log_end *e = &c->end;
    uint64_t data_end = seg_scan_nonzero_end(&c->scan, c->scan.off);
    bool commit_here = c->commit_seg_idx == c->seg_idx && e->last_commit_seq != 0;
    uint64_t cut_from = commit_here ? c->commit_end_off : SEG_HEADER_BYTES;
    e->torn = data_end > c->scan.off;
    e->dropped_bytes = data_end > cut_from ? data_end - cut_from : 0;
    if (e->torn || e->dropped_bytes > 0) {
        snprintf(e->detail, sizeof e->detail, "%s at offset %llu: %llu bytes after the last commit cut",
                 e->torn ? "torn tail" : "unfinished commit", (unsigned long long)c->scan.off,
                 (unsigned long long)e->dropped_bytes);
    } else {
        snprintf(e->detail, sizeof e->detail, "end at segment %llu offset %llu (not closed cleanly)",
                 (unsigned long long)c->seg_nos[c->seg_idx], (unsigned long long)c->scan.off);
    }
    finish(c);
    return 0;
}

/* ---- moving through segments ------------------------------------------------------ */

/* The first segment of a cursor with a start position: the state of the
 * log as of the commit there, taken from the start (checked against the
 * segment's header as far as it can be). */
static int begin_at_start(log_cursor *c, uint64_t size_used) {
    ASSERT(c->has_start && !c->started && c->seg_idx == 0);
    const cursor_start *s = &c->start;
    if (c->hdr.salt != s->salt) return corrupt(c, "the checkpoint belongs to another store (salt differs)");
    if (s->offset < SEG_HEADER_BYTES || s->offset > size_used || s->offset % REC_ALIGN != 0 ||
        c->hdr.first_seq > s->next_seq || s->commit_seq == 0 || s->commit_seq >= s->next_seq) {
        return corrupt(c, "the checkpoint's log position is not in this segment");
    }
    c->end.salt = s->salt;
    c->end.first_seq = s->next_seq;
    c->next_seq = s->next_seq;
    c->end.chain = s->chain;
    c->end.last_seq = s->next_seq - 1;
    c->end.last_commit_seq = s->commit_seq;
    c->end.commits = s->commits;
    c->commit_seg_idx = 0;
    c->commit_end_off = s->offset;
    c->commit_seg_first_seq = c->hdr.first_seq;
    c->commit_first_seq = s->next_seq;
    if (s->generation < c->hdr.generation) return corrupt(c, "the checkpoint's generation is older than its segment");
    c->gen = s->generation;
    c->end.generation_max = s->generation;
    c->started = true;
    ASSERT(c->next_seq >= 1 && c->end.last_commit_seq < c->next_seq);
    return 0;
}

/* The log went past a SEAL into a segment whose header was not valid when
 * the cursor opened. The writer syncs a SEAL, then writes and syncs the
 * next header, and only then records: so that segment may be one whose
 * header write never finished (a crash in between), but only if it holds
 * nothing; with records in it, its header was damaged after the fact, and
 * those records are not to be dropped silently. A reader that races the
 * writer may find records that came after the header it saw as zero: so it
 * looks for records first and at the header after them; a header valid by
 * then means the writer moved on, and the log simply ends here for it. */
static int past_last_header(log_cursor *c) {
    ASSERT(c->seg_idx > c->seg_last && c->seg_idx < c->seg_count);
    ASSERT(c->map == NULL);
    uint64_t data;
    int rc = segment_data_bytes(c, c->seg_idx, &data);
    if (rc != 0 || data == 0) {
        if (rc == 0) finish(c);
        return rc;
    }
    seg_header h;
    if (read_header(c, c->seg_idx, &h, &rc) == HDR_VALID || rc != 0) {
        if (rc == 0) finish(c);
        return rc;
    }
    char name[32];
    segment_name(c->seg_nos[c->seg_idx], name);
    log_end *e = &c->end;
    snprintf(e->detail, sizeof e->detail, "%s: a sealed segment is followed by this one, whose header is "
             "damaged although it holds %llu bytes of records", name, (unsigned long long)data);
    if (c->flags & CURSOR_SALVAGE) {
        e->salvaged = true;
        e->dropped_bytes = data;
        finish(c);
        return 0;
    }
    e->status = MMSB_ECORRUPT;
    finish(c);
    return err_set(MMSB_ECORRUPT, "log corrupt: %s", e->detail);
}

static int enter_segment(log_cursor *c) {
    ASSERT(c->map == NULL && !c->done);
    if (c->seg_idx > c->seg_last) {
        if (c->seg_idx < c->seg_count) return past_last_header(c);
        finish(c);
        return 0;
    }
    int fd;
    uint64_t size;
    int rc = open_segment_fd(c, c->seg_idx, &fd, &size);
    if (rc != 0) return rc;
    uint8_t *map = size >= SEG_HEADER_BYTES ? mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
    close(fd);
    if (map == MAP_FAILED)
        return err_set(MMSB_EIO, "cannot map segment %llu", (unsigned long long)c->seg_nos[c->seg_idx]);
    c->map = map;
    c->map_size = size;
    ASSERT(c->map_size >= SEG_HEADER_BYTES);
    rc = seg_header_decode(map, &c->hdr);
    if (rc != 0) return rc == MMSB_EVERSION ? rc : corrupt(c, "invalid segment header");
    uint64_t size_used = min_u64(size, c->hdr.segment_bytes);
    if (!c->started && c->has_start) {
        rc = begin_at_start(c, size_used);
        if (rc != 0) return rc;
    } else if (!c->started) {
        c->end.salt = c->hdr.salt;
        c->end.first_seq = c->hdr.first_seq;
        c->next_seq = c->hdr.first_seq;
        c->end.chain = c->hdr.chain_in;
        c->commit_seg_first_seq = c->hdr.first_seq;
        c->commit_first_seq = c->hdr.first_seq;
        c->started = true;
        /* Segments before this one were removed: it may begin inside a commit. */
        c->in_head = c->hdr.first_seq > 1;
    } else if (c->hdr.salt != c->end.salt) {
        return corrupt(c, "segment belongs to another store (salt differs)");
    } else if (c->hdr.first_seq != c->next_seq || c->hdr.chain_in.lo != c->end.chain.lo ||
               c->hdr.chain_in.hi != c->end.chain.hi) {
        return corrupt(c, "segment does not continue the previous one (first seq or chain)");
    }
    if (c->hdr.segment_no != c->seg_nos[c->seg_idx]) return corrupt(c, "segment number differs from its file name");
    bool first_of_start = c->has_start && c->end.records == 0; /* c->gen is the checkpoint's */
    if (c->hdr.generation < c->gen && !first_of_start) return corrupt(c, "segment generation went down");
    c->gen = (uint32_t)max_u64(c->gen, c->hdr.generation);
    c->end.generation_max = max_u64(c->end.generation_max, c->gen);
    seg_scan_init(&c->scan, map, size_used, c->end.salt, c->gen, c->next_seq, c->kern);
    c->scan.check_crc = (c->flags & CURSOR_VERIFY) != 0;
    if (c->end.records == 0 && c->has_start) c->scan.off = c->start.offset;
    if (c->end.records == 0) chain_begin(&c->chain, c->end.chain);
    ASSERT(c->started && c->scan.off >= SEG_HEADER_BYTES && c->scan.off <= size_used);
    return 0;
}

/* The first record that ends a commit in a log whose oldest segments were
 * removed. Its commit may have begun in a removed segment (first sequence
 * number before the log's first record): then the records up to it finish
 * a commit the checkpoint covers; its chain value is taken as given (the
 * records it hashes are gone) and checked from there on. Otherwise the log
 * began at a commit boundary and everything is checked as usual. */
static bool head_boundary(log_cursor *c, const log_rec *r, int *rc_out) {
    ASSERT(c->in_head && !c->has_start);
    ASSERT(r->type == REC_COMMIT || r->type == REC_ABORT || r->type == REC_CHECKPOINT);
    c->in_head = false;
    *rc_out = 0;
    uint64_t first;
    if (r->type == REC_COMMIT) {
        rec_commit cm;
        int rc = rec_decode_commit(r, &cm);
        ASSERT(rc == 0);
        if (cm.first_seq >= c->commit_first_seq) return false;
        c->end.chain = cm.chain;
        c->end.last_commit_seq = r->seq;
        c->commit_seg_idx = c->seg_idx;
        c->commit_end_off = c->scan.off;
        c->commit_seg_first_seq = c->hdr.first_seq;
    } else if (r->type == REC_ABORT && rec_decode_abort(r, &first) == 0 && first < c->commit_first_seq) {
        /* The commit that began before the log was rolled back: nothing of it
         * counts, and the chain goes on from the segment's chain value. */
        *rc_out = remember_aborted(c, first, r->seq);
    } else {
        return false;
    }
    c->end.covered_to_seq = r->seq;
    ASSERT(!c->in_head);
    chain_begin(&c->chain, c->end.chain);
    c->commit_first_seq = r->seq + 1;
    return true;
}

/* Chains the record; at a COMMIT, checks the chain value and moves the
 * "last valid commit" mark. */
static int account(log_cursor *c, const log_rec *r) {
    ASSERT(r->seq >= c->commit_first_seq || c->in_head);
    bool verify = (c->flags & CURSOR_VERIFY) != 0;
    c->after_close = false;
    bool ends_commit = r->type == REC_COMMIT || r->type == REC_ABORT || r->type == REC_CHECKPOINT;
    uint64_t seal_boundary_seq = c->seal_boundary_seq;
    c->seal_boundary_seq = r->type == REC_SEAL && r->seq == c->commit_first_seq ? r->seq : 0;
    if (r->type == REC_CHECKPOINT) c->seal_boundary_seq = seal_boundary_seq; /* checkpoint_marker reads it */
    int rc = 0;
    if (c->in_head && ends_commit && head_boundary(c, r, &rc)) return rc;
    if (r->type == REC_ABORT) return abort_records(c, r);
    if (r->type == REC_CHECKPOINT) return checkpoint_marker(c, r);
    if (r->type != REC_COMMIT) {
        if (verify) chain_add(&c->chain, r->type, r->flags, r->length, r->seq, r->payload, r->length);
        return 0;
    }
    rec_commit cm;
    rc = rec_decode_commit(r, &cm);
    ASSERT(rc == 0); /* the scan checked the payload */
    if (cm.first_seq != c->commit_first_seq) {
        return corrupt(c, "commit does not start where the previous one ended");
    }
    if (verify) {
        uint8_t part[32];
        uint64_t n = chain_commit_part(r->payload, r->length, part);
        chain_add(&c->chain, r->type, r->flags, r->length, r->seq, part, n);
        h128 want = chain_end(&c->chain);
        if (want.lo != cm.chain.lo || want.hi != cm.chain.hi) return corrupt(c, "chain value mismatch");
        chain_begin(&c->chain, cm.chain);
    }
    c->end.chain = cm.chain;
    c->end.commits++;
    c->end.last_commit_seq = r->seq;
    c->commit_seg_idx = c->seg_idx;
    c->commit_end_off = c->scan.off;
    c->commit_seg_first_seq = c->hdr.first_seq;
    c->commit_first_seq = r->seq + 1;
    c->after_close = (cm.flags & COMMIT_CLOSE) != 0;
    ASSERT(c->end.last_commit_seq == r->seq && c->commit_first_seq == r->seq + 1);
    return 0;
}

static int after_seal(log_cursor *c, const log_rec *r) {
    ASSERT(c->map != NULL && c->seg_idx < c->seg_count);
    ASSERT(r->type == REC_SEAL && !c->sealed);
    uint64_t next_no, end_off;
    rec_decode_seal(r, &next_no, &end_off);
    if (next_no != c->hdr.segment_no + 1 || end_off != c->scan.off) {
        return corrupt(c, "SEAL names the wrong next segment or end");
    }
    c->sealed = true; /* the SEAL's payload stays mapped until the next call */
    return 0;
}

int cursor_next(log_cursor *c, log_rec *rec, bool *done) {
    ASSERT(c != NULL && rec != NULL && done != NULL);
    if (c->sealed) {
        c->sealed = false;
        unmap_segment(c);
        c->seg_idx++;
    ASSERT(c->map == NULL && c->seg_idx <= c->seg_count);
    }
    for (;;) {
        *done = c->done;
        if (c->done) return c->end.status;
        if (c->map == NULL) {
            int rc = enter_segment(c);
            if (rc != 0 || c->done) {
                *done = c->done;
                return rc;
            }
        }
        scan_result sr = seg_scan_next(&c->scan, rec);
        bool last = c->seg_idx == c->seg_last;
        if (sr == SCAN_RECORD) {
            c->next_seq = c->scan.next_seq;
            c->gen = c->scan.gen_min;
            c->end.generation_max = max_u64(c->end.generation_max, c->gen);
            c->end.records++;
            c->end.last_seq = rec->seq;
    ASSERT(rec->seq + 1 == c->next_seq);
            int rc = account(c, rec);
            if (rc == 0 && !c->done && rec->type == REC_SEAL) rc = after_seal(c, rec);
            if (rc != 0 || c->done) {
                *done = c->done;
                return rc;
            }
            return 0;
        }
        if (sr == SCAN_ZEROS && last && c->after_close) {
            /* The writer closed cleanly here and nothing came after it: no
             * need to look further for synced data. */
            snprintf(c->end.detail, sizeof c->end.detail, "clean close at segment %llu offset %llu",
                     (unsigned long long)c->seg_nos[c->seg_idx], (unsigned long long)c->scan.off);
            finish(c);
            *done = true;
            return 0;
        }
        if (last && (c->flags & CURSOR_LIVE)) {
            snprintf(c->end.detail, sizeof c->end.detail, "what is written so far ends at segment %llu offset %llu",
                     (unsigned long long)c->seg_nos[c->seg_idx], (unsigned long long)c->scan.off);
            finish(c);
            *done = true;
            return 0;
        }
        const char *why = sr == SCAN_ZEROS ? "zeros before a SEAL" : mmsb_last_error();
        char reason[200];
        snprintf(reason, sizeof reason, "%s", why);
        int rc = last ? invalid_in_last(c, reason) : corrupt(c, reason);
        *done = c->done;
        if (rc != 0) return rc;
    }
}
