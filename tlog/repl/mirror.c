/*
 * mirror.c - a replica's log (see mirror.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../cursor.h"
#include "mirror.h"

#define MARKER_NAME "REPLICA"
#define MARKER_TMP "REPLICA.tmp"
enum {
    MARKER_BYTES_MAX = 512,
    /* Checked groups are synced in batches of this many bytes (and before
     * the marker names them, and at close): the stream holds them durably,
     * so a follower's crash costs only taking them again. */
    SYNC_BYTES = 32u << 20,
};

struct log_mirror {
    int dir_fd;
    int lock_fd;
    int seg_fd;             /* the segment `written` is in; -1: none open */
    uint64_t seg_fd_no;
    uint64_t seg_bytes;     /* its size */
    const kern_ops *kern;
    char stream[REPLICA_STREAM_MAX + 1];
    mirror_state st;
    cursor_start start;     /* the last checked commit, for the cursor */
    uint32_t generation;
    uint64_t unsynced_bytes; /* checked in seg_fd but not synced yet (earlier segments are) */
    mirror_group group;     /* the last group finished */
    uint64_t *aborted;      /* its aborted pairs (owned) */
};

static int io_err(const char *what, const char *name) {
    int saved = errno;
    return err_set(err_from_errno(saved), "replica: %s %s: %s", what, name, strerror(saved));
}

static int sync_dir(int dir_fd) {
    ASSERT(dir_fd >= 0);
    return fsync(dir_fd) == 0 ? 0 : io_err("cannot sync", "the directory");
}

bool replica_stream_name_ok(const char *name) {
    if (name == NULL) return false;
    size_t n = strlen(name);
    if (n == 0 || n > REPLICA_STREAM_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

/* ---- the marker file ------------------------------------------------------------ */

static int marker_parse(const char *text, replica_marker *out) {
    ASSERT(text != NULL && out != NULL);
    memset(out, 0, sizeof *out);
    unsigned long long salt, sseq, seg, off;
    char stream[REPLICA_STREAM_MAX + 2];
    int n = sscanf(text, "mmsb-replica 1\nstream %65s\nsalt %16llx\nstream_seq %llu\nsegment %llu\noffset %llu\n",
                   stream, &salt, &sseq, &seg, &off);
    if (n != 5 || !replica_stream_name_ok(stream)) {
        return err_set(MMSB_ECORRUPT, "replica: the %s marker file cannot be parsed", MARKER_NAME);
    }
    memcpy(out->stream, stream, strlen(stream) + 1);
    out->salt = salt;
    out->stream_seq = sseq;
    out->synced = (log_point){seg, off};
    ASSERT(strlen(out->stream) <= REPLICA_STREAM_MAX);
    return 0;
}

int replica_marker_read(int dir_fd, replica_marker *out, bool *found) {
    ASSERT(dir_fd >= 0 && out != NULL && found != NULL);
    *found = false;
    int fd = openat(dir_fd, MARKER_NAME, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? 0 : io_err("cannot open", MARKER_NAME);
    char text[MARKER_BYTES_MAX + 1];
    ssize_t n = pread(fd, text, MARKER_BYTES_MAX, 0);
    int saved = errno;
    close(fd);
    if (n < 0) {
        errno = saved;
        return io_err("cannot read", MARKER_NAME);
    }
    text[n] = '\0';
    *found = true;
    return marker_parse(text, out);
}

static int marker_write(int dir_fd, const replica_marker *mk) {
    ASSERT(dir_fd >= 0 && replica_stream_name_ok(mk->stream));
    char text[MARKER_BYTES_MAX];
    int len = snprintf(text, sizeof text, "mmsb-replica 1\nstream %s\nsalt %016llx\nstream_seq %llu\nsegment %llu\n"
                       "offset %llu\n", mk->stream, (unsigned long long)mk->salt, (unsigned long long)mk->stream_seq,
                       (unsigned long long)mk->synced.segment, (unsigned long long)mk->synced.offset);
    ASSERT(len > 0 && len < (int)sizeof text);
    int fd = openat(dir_fd, MARKER_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return io_err("cannot create", MARKER_TMP);
    bool ok = write(fd, text, (size_t)len) == len && fdatasync(fd) == 0;
    int saved = errno;
    close(fd);
    errno = saved;
    if (!ok) return io_err("cannot write", MARKER_TMP);
    if (renameat(dir_fd, MARKER_TMP, dir_fd, MARKER_NAME) != 0) return io_err("cannot rename", MARKER_TMP);
    return sync_dir(dir_fd);
}

int replica_marker_remove(int dir_fd) {
    ASSERT(dir_fd >= 0);
    if (unlinkat(dir_fd, MARKER_NAME, 0) != 0 && errno != ENOENT) return io_err("cannot remove", MARKER_NAME);
    return sync_dir(dir_fd);
}

/* ---- segment files ---------------------------------------------------------------- */

static void close_segment(log_mirror *m) {
    ASSERT(m != NULL);
    if (m->seg_fd >= 0) close(m->seg_fd);
    m->seg_fd = -1;
    m->seg_fd_no = 0;
    ASSERT(m->seg_fd == -1);
}

/* Makes `no` the open segment (an existing file). */
static int use_segment(log_mirror *m, uint64_t no) {
    ASSERT(no >= 1);
    if (m->seg_fd >= 0 && m->seg_fd_no == no) return 0;
    close_segment(m);
    char name[32];
    segment_name(no, name);
    int fd = openat(m->dir_fd, name, O_RDWR | O_CLOEXEC);
    if (fd < 0) return io_err("cannot open", name);
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return io_err("cannot stat", name);
    }
    m->seg_fd = fd;
    m->seg_fd_no = no;
    m->seg_bytes = (uint64_t)sb.st_size;
    ASSERT(m->seg_fd >= 0);
    return 0;
}

/* Removes every segment file numbered above `keep` (0: all of them). */
static int remove_segments_above(log_mirror *m, uint64_t keep) {
    uint64_t *nos = NULL;
    uint32_t count = 0;
    int rc = segment_list(m->dir_fd, &nos, &count);
    if (rc != 0) return rc;
    if (m->seg_fd_no > keep) close_segment(m);
    for (uint32_t i = 0; i < count && rc == 0; i++) {
        char name[32];
        segment_name(nos[i], name);
        if (nos[i] > keep && unlinkat(m->dir_fd, name, 0) != 0) rc = io_err("cannot remove", name);
    }
    free(nos);
    return rc == 0 ? sync_dir(m->dir_fd) : rc;
}

/* Zeros [from, to) of a segment without changing its size: readers may
 * have it mapped (a shrinking file would fault them), so a hole is punched,
 * or zeros are written where the file system cannot punch one. */
static int zero_range(int fd, uint64_t from, uint64_t to) {
    ASSERT(fd >= 0 && from <= to);
    if (from == to) return 0;
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)from, (off_t)(to - from)) == 0) return 0;
    if (errno != EOPNOTSUPP) return io_err("cannot zero the tail of", "a segment");
    static const uint8_t zeros[64 * 1024];
    for (uint64_t at = from; at < to;) { /* at most SEG_BYTES_MAX / 64 KiB writes */
        ssize_t n = pwrite(fd, zeros, (size_t)min_u64(sizeof zeros, to - at), (off_t)at);
        if (n <= 0) return io_err("cannot zero the tail of", "a segment");
        at += (uint64_t)n;
    }
    return 0;
}

/* Zeros everything after `valid`: the bytes of its segment past the offset,
 * and every later segment file. */
static int cut_after(log_mirror *m, log_point valid, bool empty) {
    int rc = remove_segments_above(m, empty ? 0 : valid.segment);
    if (rc != 0 || empty) return rc;
    rc = use_segment(m, valid.segment);
    if (rc != 0) return rc;
    rc = zero_range(m->seg_fd, valid.offset, m->seg_bytes);
    if (rc == 0 && fdatasync(m->seg_fd) != 0) rc = io_err("cannot sync", "a segment");
    return rc;
}

/* ---- opening ---------------------------------------------------------------------- */

static void take_end(log_mirror *m, const log_end *end) {
    ASSERT(end->last_commit_seq >= 1);
    mirror_state *s = &m->st;
    s->empty = false;
    s->salt = end->salt;
    s->valid = (log_point){end->resume_segment, end->resume_offset};
    s->written = s->valid;
    s->last_commit_seq = end->last_commit_seq;
    s->commits = end->commits;
    s->chain = end->chain;
    m->generation = end->generation_max;
    m->start = (cursor_start){.segment = s->valid.segment, .offset = s->valid.offset,
                              .next_seq = end->last_commit_seq + 1, .commit_seq = end->last_commit_seq,
                              .commits = end->commits, .chain = end->chain, .salt = end->salt,
                              .generation = end->generation_max};
}

/* Reads the whole log once; *end_out says where it ends. */
static int read_log(log_mirror *m, uint32_t flags, log_end *end_out) {
    log_cursor *c = NULL;
    int rc = cursor_open(m->dir_fd, CURSOR_VERIFY | flags, m->kern, 0, &c);
    log_rec r;
    bool done = false;
    for (uint64_t n = 0; rc == 0 && !done; n++) rc = cursor_next(c, &r, &done);
    if (c != NULL) *end_out = *cursor_end(c);
    cursor_close(c);
    return rc;
}

/* The replica's own log at open: checked whole. A follower that crashed
 * may leave an unsynced group torn; damage past the place the marker says
 * was synced is that, and is cut. Damage before it is real. */
static int recover_mirror(log_mirror *m, const replica_marker *mk) {
    log_end end;
    memset(&end, 0, sizeof end);
    int rc = read_log(m, 0, &end);
    if (rc == MMSB_ECORRUPT) {
        char why[256];
        snprintf(why, sizeof why, "%s", mmsb_last_error());
        rc = read_log(m, CURSOR_SALVAGE, &end);
        log_point cut = {end.resume_segment, end.resume_offset};
        if (rc == 0 && log_point_cmp(cut, mk->synced) < 0) {
            return err_set(MMSB_ECORRUPT, "replica: its log is damaged before the place it had synced: %.200s", why);
        }
    }
    if (rc != 0) return rc;
    if (end.empty || end.last_commit_seq == 0) {
        m->st.empty = true;
        m->st.valid = m->st.written = (log_point){1, 0}; /* the first message starts the first segment */
        return cut_after(m, m->st.valid, true);
    }
    if (end.first_seq != 1 || end.covered_to_seq != 0) {
        return err_set(MMSB_ECORRUPT, "replica: its log does not start at record 1 (it starts at %llu)",
                       (unsigned long long)end.first_seq);
    }
    take_end(m, &end);
    m->st.tail_cut_bytes += end.dropped_bytes;
    return cut_after(m, m->st.valid, false);
}

static int open_dir_locked(log_mirror *m, const char *dir) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return io_err("cannot create", dir);
    m->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (m->dir_fd < 0) return io_err("cannot open", dir);
    m->lock_fd = openat(m->dir_fd, "LOCK", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (m->lock_fd < 0) return io_err("cannot open the LOCK of", dir);
    if (flock(m->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) {
            return err_set(MMSB_EBUSY, "replica: %s is in use (a writer or another follower holds its lock)", dir);
        }
        return io_err("cannot lock", dir);
    }
    return 0;
}

/* The marker says the store follows `stream`; a store without one may be
 * made a replica only while it holds no log. */
static int claim(log_mirror *m, const char *dir, replica_marker *mk) {
    bool found = false;
    int rc = replica_marker_read(m->dir_fd, mk, &found);
    if (rc != 0) return rc;
    if (found && strcmp(mk->stream, m->stream) != 0) {
        return err_set(MMSB_EINVAL, "replica: %s follows the stream %s, not %s", dir, mk->stream, m->stream);
    }
    if (found) return 0;
    uint64_t *nos = NULL;
    uint32_t count = 0;
    rc = segment_list(m->dir_fd, &nos, &count);
    free(nos);
    if (rc != 0) return rc;
    if (count > 0) {
        return err_set(MMSB_EINVAL, "replica: %s holds a store that is not a replica; follow into an empty directory",
                       dir);
    }
    memset(mk, 0, sizeof *mk);
    memcpy(mk->stream, m->stream, strlen(m->stream) + 1);
    return marker_write(m->dir_fd, mk);
}

int mirror_open(const char *dir, const char *stream, const kern_ops *kern, log_mirror **out) {
    ASSERT(dir != NULL && kern != NULL && out != NULL);
    *out = NULL;
    if (!replica_stream_name_ok(stream)) {
        return err_set(MMSB_EINVAL, "replica: a stream name is 1 .. %d of A-Z a-z 0-9 _ -", REPLICA_STREAM_MAX);
    }
    log_mirror *m = calloc(1, sizeof *m);
    if (m == NULL) return err_set(MMSB_ENOMEM, "replica: opening %s", dir);
    m->dir_fd = m->lock_fd = m->seg_fd = -1;
    m->kern = kern;
    memcpy(m->stream, stream, strlen(stream) + 1);
    replica_marker mk;
    int rc = open_dir_locked(m, dir);
    if (rc == 0) rc = claim(m, dir, &mk);
    if (rc == 0) rc = recover_mirror(m, &mk);
    if (rc == 0 && !m->st.empty && mk.salt != 0 && mk.salt != m->st.salt) {
        rc = err_set(MMSB_ECORRUPT, "replica: the marker's salt differs from the log's");
    }
    if (rc != 0) {
        close_segment(m);
        if (m->lock_fd >= 0) close(m->lock_fd);
        if (m->dir_fd >= 0) close(m->dir_fd);
        free(m);
        return rc;
    }
    m->st.stream_seq = mk.stream_seq;
    ASSERT(log_point_cmp(m->st.written, m->st.valid) == 0);
    *out = m;
    return 0;
}

/* ---- taking messages ----------------------------------------------------------- */

/* Drops what was written after the last checked commit. */
static int discard(log_mirror *m) {
    int rc = cut_after(m, m->st.valid, m->st.empty); /* syncs the segment the log ends in */
    if (rc == 0) m->unsynced_bytes = 0;
    m->st.written = m->st.valid;
    ASSERT(!m->st.empty || (m->st.valid.segment == 1 && m->st.valid.offset == 0));
    return rc;
}

/* A message at offset 0 starts a segment: its header, checked and synced
 * under a temporary name, makes the file appear whole. */
static int begin_segment(log_mirror *m, const frame_meta *f, const uint8_t *body, uint64_t len) {
    ASSERT(f->at.offset == 0);
    if (len < SEG_HEADER_BYTES) return err_set(MMSB_ECORRUPT, "replication message: a segment's header is cut");
    seg_header h;
    int rc = seg_header_decode(body, &h);
    if (rc != 0) return rc;
    if (h.salt != f->salt || h.segment_no != f->at.segment || h.segment_bytes < SEG_BYTES_MIN ||
        h.segment_bytes > SEG_BYTES_MAX) {
        return err_set(MMSB_ECORRUPT, "replication message: segment %llu's header does not fit the message",
                       (unsigned long long)f->at.segment);
    }
    close_segment(m);
    char name[32], tmp[40];
    segment_name(h.segment_no, name);
    snprintf(tmp, sizeof tmp, "%s.new", name);
    unlinkat(m->dir_fd, tmp, 0);
    int fd = openat(m->dir_fd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return io_err("cannot create", tmp);
    bool ok = ftruncate(fd, (off_t)h.segment_bytes) == 0 && pwrite(fd, body, SEG_HEADER_BYTES, 0) == SEG_HEADER_BYTES &&
              fdatasync(fd) == 0;
    int saved = errno;
    close(fd);
    errno = saved;
    if (!ok) return io_err("cannot write", tmp);
    if (renameat(m->dir_fd, tmp, m->dir_fd, name) != 0) return io_err("cannot rename", tmp);
    return sync_dir(m->dir_fd);
}

/* Only the open segment holds unsynced bytes: a segment is synced when
 * the log moves past it. */
static int sync_open_segment(log_mirror *m) {
    if (m->seg_fd >= 0 && fdatasync(m->seg_fd) != 0) return io_err("cannot sync", "a segment");
    m->unsynced_bytes = 0;
    return 0;
}

static int write_body(log_mirror *m, const frame_meta *f, const uint8_t *body, uint64_t len) {
    if (m->seg_fd >= 0 && m->seg_fd_no != f->at.segment) {
        int rc = sync_open_segment(m);
        if (rc != 0) return rc;
    }
    uint64_t skip = 0;
    if (f->at.offset == 0) {
        int rc = begin_segment(m, f, body, len);
        if (rc != 0) return rc;
        skip = SEG_HEADER_BYTES;
    }
    int rc = use_segment(m, f->at.segment);
    if (rc != 0) return rc;
    if (f->at.offset + len > m->seg_bytes) {
        return err_set(MMSB_ECORRUPT, "replication message: bytes past the end of segment %llu",
                       (unsigned long long)f->at.segment);
    }
    for (uint64_t done = skip; done < len;) {
        ssize_t n = pwrite(m->seg_fd, body + done, (size_t)(len - done), (off_t)(f->at.offset + done));
        if (n <= 0) return io_err("cannot write", "a segment");
        done += (uint64_t)n;
    }
    m->st.bytes_written += len;
    m->unsynced_bytes += len;
    /* Writeback starts now, while the next message comes: the batch's sync
     * then waits for little. */
    (void)sync_file_range(m->seg_fd, (off_t)f->at.offset, (off_t)len, SYNC_FILE_RANGE_WRITE);
    return 0;
}

/* Reads what was written since the last checked commit with every check on. */
static int check_group(log_mirror *m, const frame_meta *f, log_end *end) {
    log_cursor *c = NULL;
    const uint32_t flags = CURSOR_VERIFY | CURSOR_LIVE; /* what lies past the group is zeros: no need to read it */
    int rc = m->st.empty ? cursor_open(m->dir_fd, flags, m->kern, 0, &c)
                         : cursor_open_at(m->dir_fd, flags, m->kern, &m->start, &c);
    log_rec r;
    bool done = false;
    uint64_t limit = m->st.bytes_written + 2; /* at most one record per 8 bytes written, and the end */
    for (uint64_t n = 0; rc == 0 && !done && n < limit; n++) rc = cursor_next(c, &r, &done);
    if (c != NULL) {
        *end = *cursor_end(c);
        free(m->aborted);
        cursor_take_aborted(c, &m->aborted, &m->group.aborted_count);
        m->group.aborted = m->aborted;
    }
    cursor_close(c);
    if (rc != 0) return rc;
    if (!done) return err_set(MMSB_ECORRUPT, "replication message: the group does not end");
    log_point at = {end->resume_segment, end->resume_offset};
    if (end->status != 0 || end->last_commit_seq != f->last_seq || log_point_cmp(at, m->st.written) != 0) {
        return err_set(MMSB_ECORRUPT, "replication message: the group is not whole up to record %llu (the log "
                       "checks up to record %llu: %.160s)", (unsigned long long)f->last_seq,
                       (unsigned long long)end->last_commit_seq, end->detail);
    }
    if (end->chain.lo != f->chain.lo || end->chain.hi != f->chain.hi) {
        return err_set(MMSB_ECORRUPT, "replication message: the chain value at record %llu differs from the header's",
                       (unsigned long long)f->last_seq);
    }
    if (m->st.empty && end->first_seq != 1) {
        return err_set(MMSB_ECORRUPT, "replication message: the stream does not start at record 1");
    }
    return 0;
}

static int finish_group(log_mirror *m, const frame_meta *f, uint64_t stream_seq) {
    log_end end;
    memset(&end, 0, sizeof end);
    int rc = check_group(m, f, &end);
    if (rc != 0) return rc;
    if (m->unsynced_bytes >= SYNC_BYTES) rc = sync_open_segment(m);
    if (rc != 0) return rc;
    m->group.from_genesis = m->st.empty;
    m->group.from = m->start;
    m->group.to_seq = end.last_commit_seq;
    take_end(m, &end);
    m->st.stream_seq = stream_seq;
    m->st.groups_checked++;
    ASSERT(log_point_cmp(m->st.valid, m->st.written) == 0);
    return 0;
}

/* Where a message must start: where the bytes written end, the start of
 * the next segment, or (a group sent again from its start after a shipper
 * restarted) the last checked commit. */
static bool continues(const log_mirror *m, const frame_meta *f) {
    const mirror_state *s = &m->st;
    if (log_point_cmp(f->at, s->written) == 0) return true;
    if (f->at.offset == 0 && f->at.segment == s->written.segment + 1) return true;
    return (f->flags & FRAME_FIRST) && log_point_cmp(f->at, s->valid) == 0;
}

int mirror_accept(log_mirror *m, const frame_meta *f, const uint8_t *body, uint64_t len, uint64_t stream_seq,
                  bool *taken) {
    ASSERT(m != NULL && f != NULL && body != NULL && taken != NULL);
    ASSERT(len >= 1 && len <= FRAME_BODY_MAX);
    *taken = false;
    mirror_state *s = &m->st;
    if (!s->empty && f->salt != s->salt) {
        return err_set(MMSB_ECORRUPT, "replication message %llu belongs to another store (salt %016llx, the "
                       "replica's %016llx)", (unsigned long long)stream_seq, (unsigned long long)f->salt,
                       (unsigned long long)s->salt);
    }
    log_point end = {f->at.segment, f->at.offset + len};
    bool at_valid = log_point_cmp(s->written, s->valid) == 0;
    if (!s->empty && at_valid && log_point_cmp(end, s->valid) <= 0) return 0; /* held already */
    frame_meta g = *f;
    if (!s->empty && at_valid && f->at.segment == s->valid.segment && f->at.offset < s->valid.offset) {
        /* held in part: a group whose first commits the replica synced */
        uint64_t held = s->valid.offset - f->at.offset;
        body += held, len -= held;
        g.at = s->valid;
        g.flags |= FRAME_FIRST;
    }
    if (!continues(m, &g)) {
        return err_set(MMSB_ECORRUPT, "replication message %llu is at segment %llu offset %llu; the replica "
                       "continues at segment %llu offset %llu (a gap)", (unsigned long long)stream_seq,
                       (unsigned long long)g.at.segment, (unsigned long long)g.at.offset,
                       (unsigned long long)s->written.segment, (unsigned long long)s->written.offset);
    }
    int rc = 0;
    if (log_point_cmp(g.at, s->written) != 0 && log_point_cmp(g.at, s->valid) == 0) rc = discard(m);
    if (rc == 0) rc = write_body(m, &g, body, len);
    if (rc == 0) s->written = (log_point){g.at.segment, g.at.offset + len};
    if (rc == 0 && (g.flags & FRAME_LAST)) rc = finish_group(m, &g, stream_seq);
    if (rc != 0) {
        char why[300];
        snprintf(why, sizeof why, "%s", mmsb_last_error());
        int cut_rc = discard(m);
        err_set(rc, "%s%s", why, cut_rc != 0 ? " (and removing its bytes failed)" : "");
        return rc;
    }
    *taken = true;
    return 0;
}

int mirror_note(log_mirror *m) {
    ASSERT(m != NULL);
    int rc = m->unsynced_bytes > 0 ? sync_open_segment(m) : 0; /* the hint names synced bytes only */
    if (rc != 0) return rc;
    replica_marker mk = {.salt = m->st.salt, .stream_seq = m->st.stream_seq, .synced = m->st.valid};
    memcpy(mk.stream, m->stream, strlen(m->stream) + 1);
    return marker_write(m->dir_fd, &mk);
}

void mirror_last_group(const log_mirror *m, mirror_group *out) {
    ASSERT(m != NULL && out != NULL);
    ASSERT(m->st.groups_checked > 0 && m->group.to_seq == m->st.last_commit_seq);
    *out = m->group;
}

void mirror_get_state(const log_mirror *m, mirror_state *out) {
    ASSERT(m != NULL && out != NULL);
    *out = m->st;
    out->segment_bytes = m->seg_bytes != 0 ? m->seg_bytes : SEG_BYTES_MAX;
}

int mirror_close(log_mirror *m) {
    if (m == NULL) return 0;
    int rc = discard(m);
    if (rc == 0) rc = mirror_note(m);
    close_segment(m);
    close(m->lock_fd);
    close(m->dir_fd);
    free(m->aborted);
    free(m);
    return rc;
}
