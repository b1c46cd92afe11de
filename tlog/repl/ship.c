/*
 * ship.c - publishing the committed log to a stream (see ship.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "pin.h"
#include "ship.h"

enum {
    GROUP_BYTES_MAX = 64 << 20, /* a group ends at the first commit past this many bytes */
    CHUNKS_MAX = 160,           /* messages of one group: 64 MiB in 1 MiB pieces, split at segments */
};

typedef struct chunk {
    log_point at;
    uint64_t len, first_seq, last_seq;
} chunk;

/* The messages of the group being read, and how it stood at its last commit. */
typedef struct group_plan {
    chunk list[CHUNKS_MAX];
    uint32_t count;
    chunk cur;
    bool have_cur;
    uint64_t bytes;
    bool have_boundary; /* a commit since the group's start */
    uint32_t b_count;
    chunk b_cur;
    cursor_start b_at;  /* where the group ends, as the next cursor's start */
} group_plan;

struct shipper {
    nats_link *link;
    int dir_fd;
    const kern_ops *kern;
    uint64_t covered_segment;
    bool sync_first;
    uint64_t salt;
    bool have_at;
    cursor_start at;    /* the end of the last group shipped */
    uint64_t stream_last;
    uint64_t groups, messages, duplicates, bytes;
    uint8_t *buf;
    bool resync;          /* a publish failed: the stream may hold more than stream_last says */
    uint64_t pinned;      /* the segment this store's pin names (pin.h) */
    group_plan plan;
};

/* ---- cutting a group into messages ------------------------------------------------ */

static void plan_push(group_plan *p, chunk c) {
    ASSERT(p->count < CHUNKS_MAX);
    ASSERT(c.len >= 1 && c.len <= FRAME_BODY_MAX);
    p->list[p->count++] = c;
}

/* Adds the record [start, end) of `segment`: it extends the current message
 * or starts one (with the segment's header before a segment's first record). */
static void plan_record(group_plan *p, uint64_t segment, uint64_t start, uint64_t end, uint64_t seq) {
    ASSERT(end > start && start >= SEG_HEADER_BYTES);
    bool extends = p->have_cur && p->cur.at.segment == segment && p->cur.at.offset + p->cur.len == start;
    if (!extends) {
        if (p->have_cur) plan_push(p, p->cur);
        uint64_t from = start == SEG_HEADER_BYTES ? 0 : start;
        p->cur = (chunk){.at = {segment, from}, .len = 0, .first_seq = seq};
        p->have_cur = true;
    }
    if (p->cur.first_seq == 0) p->cur.first_seq = seq;
    p->bytes += end - start;
    p->cur.len = end - p->cur.at.offset;
    while (p->cur.len > FRAME_BODY_MAX) { /* a record past the limit ends in a later piece */
        chunk piece = p->cur;
        piece.len = FRAME_BODY_MAX;
        plan_push(p, piece);
        p->cur = (chunk){.at = {segment, piece.at.offset + FRAME_BODY_MAX}, .len = p->cur.len - FRAME_BODY_MAX};
    }
    p->cur.last_seq = seq;
}

static void plan_boundary(group_plan *p, const log_cursor *c, uint64_t segment, uint64_t end_off, uint64_t seq) {
    const log_end *e = cursor_end(c);
    ASSERT(e->last_commit_seq == seq && p->have_cur);
    p->have_boundary = true;
    p->b_count = p->count;
    p->b_cur = p->cur;
    p->b_at = (cursor_start){.segment = segment, .offset = end_off, .next_seq = seq + 1, .commit_seq = seq,
                             .commits = e->commits, .chain = e->chain, .salt = e->salt,
                             .generation = e->generation_max};
}

/* Reads records from the last group's end (or the log's start) up to a
 * commit past GROUP_BYTES_MAX, or the last commit there is. */
static int read_group(shipper *s, log_cursor *c, uint64_t max_seq) {
    group_plan *p = &s->plan;
    memset(p, 0, sizeof *p);
    log_rec r;
    bool done = false;
    for (uint64_t n = 0; n < GROUP_BYTES_MAX && !done; n++) {
        int rc = cursor_next(c, &r, &done);
        if (rc != 0) return rc;
        if (done || r.seq > max_seq) break;
        uint64_t seg = cursor_segment(c);
        if (s->salt == 0) s->salt = cursor_end(c)->salt;
        plan_record(p, seg, r.offset, r.offset + rec_slot_bytes(r.length), r.seq);
        if (cursor_end(c)->last_commit_seq == r.seq) {
            plan_boundary(p, c, seg, r.offset + rec_slot_bytes(r.length), r.seq);
            if (p->bytes >= GROUP_BYTES_MAX || p->count >= CHUNKS_MAX - 8) break;
        }
    }
    if (done && cursor_end(c)->status != 0) return err_set(cursor_end(c)->status, "%s", cursor_end(c)->detail);
    return 0;
}

/* ---- publishing ---------------------------------------------------------------------- */

static int read_bytes(shipper *s, const chunk *ch) {
    char name[32];
    segment_name(ch->at.segment, name);
    int fd = openat(s->dir_fd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return err_set(MMSB_EIO, "cannot open %s: %s", name, strerror(errno));
    uint64_t done = 0;
    while (done < ch->len) {
        ssize_t n = pread(fd, s->buf + done, ch->len - done, (off_t)(ch->at.offset + done));
        if (n <= 0) break;
        done += (uint64_t)n;
    }
    close(fd);
    return done == ch->len ? 0 : err_set(MMSB_EIO, "cannot read %s at %llu", name, (unsigned long long)ch->at.offset);
}

/* What is shipped is on the primary's disk first: a replica never holds a
 * commit the primary could lose in a crash. */
static int sync_segments(shipper *s, const group_plan *p, uint32_t count) {
    uint64_t last = 0;
    for (uint32_t i = 0; i < count; i++) {
        if (p->list[i].at.segment == last) continue;
        last = p->list[i].at.segment;
        char name[32];
        segment_name(last, name);
        int fd = openat(s->dir_fd, name, O_RDONLY | O_CLOEXEC);
        bool ok = fd >= 0 && fdatasync(fd) == 0;
        if (fd >= 0) close(fd);
        if (!ok) return err_set(MMSB_EIO, "cannot sync %s: %s", name, strerror(errno));
    }
    return 0;
}

/* After a publish that failed, the stream may hold more than the shipper
 * knows (the server stored it, its answer was lost): the stream's last
 * message, when it is one of this group's ranges, tells how many of them to
 * skip. A message that is not this store's is left to the fence. */
static int resync(shipper *s, const group_plan *p, uint32_t *skip) {
    *skip = 0;
    link_stream ls;
    int rc = link_stream_info(s->link, &ls);
    if (rc != 0 || ls.last_seq == s->stream_last || ls.last_seq == 0) return rc;
    link_msg m;
    rc = link_get(s->link, ls.last_seq, &m);
    if (rc != 0) return rc;
    frame_meta f;
    bool ours = frame_parse(m.values, m.len, &f) == 0 && f.salt == s->salt;
    for (uint32_t i = 0; ours && i < p->count; i++) {
        const chunk *ch = &p->list[i];
        if (log_point_cmp(ch->at, f.at) == 0 && ch->len == m.len) {
            *skip = i + 1;
            s->stream_last = ls.last_seq;
        }
    }
    link_msg_free(&m);
    return 0;
}

/* Retention keeps what the stream does not hold whole yet: the segment
 * the next group starts in, and every later one. */
static int pin_move(shipper *s) {
    uint64_t segment = s->have_at ? s->at.segment : 1;
    if (segment == s->pinned) return 0;
    int rc = ship_pin_write(s->dir_fd, link_stream_name(s->link), segment);
    if (rc == 0) s->pinned = segment;
    return rc;
}

static int shipper_start(shipper *s, bool create, int64_t replicas);

/* A publish refused for its expected last sequence: the stream does not
 * end where the shipper thought. Another writer published (this one is
 * fenced); or a message this shipper sent was stored without its answer
 * (the client sends what it buffered while the server was away once it
 * reconnects); or the server lost its last messages (a one-node stream
 * whose server stopped before writing them out). find_resume tells them
 * apart: the stream's last group, found at its place in this log with its
 * chain value, is this log's, and shipping resumes after it; the round
 * fails as one the stream did not store (MMSB_EREPLICA), and the next one
 * ships what follows. Anything else is another history: MMSB_EFENCED. */
static int after_refusal(shipper *s) {
    uint64_t had = s->stream_last;
    s->have_at = false;
    s->resync = false;
    int rc = shipper_start(s, false, 1);
    if (rc != 0) return rc;
    return err_set(MMSB_EREPLICA, "the stream %s ends at message %llu, not %llu: shipping resumes after record %llu",
                   link_stream_name(s->link), (unsigned long long)s->stream_last, (unsigned long long)had,
                   (unsigned long long)(s->have_at ? s->at.commit_seq : 0));
}

static int publish_group(shipper *s) {
    group_plan *p = &s->plan;
    ASSERT(p->have_boundary);
    p->count = p->b_count;
    plan_push(p, p->b_cur);
    uint32_t skip = 0;
    int rc = s->sync_first ? sync_segments(s, p, p->count) : 0;
    if (rc == 0 && s->resync) rc = resync(s, p, &skip);
    for (uint32_t i = skip; i < p->count && rc == 0; i++) {
        const chunk *ch = &p->list[i];
        frame_meta m = {.salt = s->salt, .at = ch->at, .first_seq = ch->first_seq, .last_seq = ch->last_seq};
        m.flags = (i == 0 ? FRAME_FIRST : 0) | (i + 1 == p->count ? FRAME_LAST : 0);
        if (m.flags & FRAME_LAST) m.chain = p->b_at.chain, m.last_seq = p->b_at.commit_seq;
        rc = read_bytes(s, ch);
        uint64_t seq = 0;
        bool dup = false;
        if (rc == 0) rc = link_publish(s->link, &m, s->buf, ch->len, s->stream_last, &seq, &dup);
        if (rc == MMSB_EFENCED) rc = after_refusal(s);
        if (rc != 0) break;
        s->stream_last = max_u64(s->stream_last, seq);
        s->messages++;
        s->duplicates += dup;
        s->bytes += ch->len;
    }
    s->resync = rc == MMSB_EREPLICA;
    if (rc != 0) return rc;
    s->at = p->b_at;
    s->have_at = true;
    s->groups++;
    return pin_move(s);
}

static int start_fresh(shipper *s, uint64_t max_seq);

int shipper_round(shipper *s, uint64_t max_seq, bool *shipped) {
    ASSERT(s != NULL && shipped != NULL);
    *shipped = false;
    if (!s->have_at) { /* nothing was committed when the shipper opened */
        int rc = start_fresh(s, max_seq);
        *shipped = rc == 0 && s->have_at;
        return rc;
    }
    if (max_seq <= s->at.commit_seq) return 0;
    log_cursor *c = NULL;
    int rc = cursor_open_at(s->dir_fd, CURSOR_VERIFY | CURSOR_LIVE, s->kern, &s->at, &c);
    if (rc != 0) {
        cursor_close(c);
        return err_set(rc, "reading the log from record %llu: %s", (unsigned long long)s->at.next_seq,
                       mmsb_last_error());
    }
    rc = read_group(s, c, max_seq);
    cursor_close(c);
    if (rc == 0 && s->plan.have_boundary) {
        rc = publish_group(s);
        *shipped = rc == 0;
    }
    return rc;
}

/* ---- where to start --------------------------------------------------------------- */

/* The first group of a stream that holds nothing of this store: the log
 * must begin at record 1, so that a replica can rebuild everything. */
static int start_fresh(shipper *s, uint64_t max_seq) {
    log_cursor *c = NULL;
    int rc = cursor_open(s->dir_fd, CURSOR_VERIFY | CURSOR_LIVE, s->kern, s->covered_segment, &c);
    if (rc == 0) rc = read_group(s, c, max_seq);
    uint64_t first = c != NULL ? cursor_end(c)->first_seq : 0;
    cursor_close(c);
    if (rc != 0) return rc;
    if (!s->plan.have_boundary) return 0; /* nothing committed yet */
    if (first != 1) {
        return err_set(MMSB_EINVAL, "the log begins at record %llu (a checkpoint removed the segments before it); "
                       "a stream must start at record 1", (unsigned long long)first);
    }
    return publish_group(s);
}

/* Finds the commit the stream's last group ended with in this log. */
static int find_resume(shipper *s, const frame_meta *last, uint64_t last_len) {
    log_cursor *c = NULL;
    int rc = cursor_open(s->dir_fd, CURSOR_VERIFY, s->kern, s->covered_segment, &c);
    log_rec r;
    bool done = false;
    log_point want = {last->at.segment, last->at.offset + last_len};
    while (rc == 0 && !done) {
        rc = cursor_next(c, &r, &done);
        if (rc != 0 || done || r.seq != last->last_seq) continue;
        const log_end *end = cursor_end(c);
        log_point here = {cursor_segment(c), r.offset + rec_slot_bytes(r.length)};
        if (end->last_commit_seq != r.seq || log_point_cmp(here, want) != 0 || end->chain.lo != last->chain.lo ||
            end->chain.hi != last->chain.hi) {
            rc = err_set(MMSB_EFENCED, "the stream holds another history at record %llu (a different writer "
                         "took over the stream): this store is fenced", (unsigned long long)r.seq);
            break;
        }
        s->at = (cursor_start){.segment = here.segment, .offset = here.offset, .next_seq = r.seq + 1,
                               .commit_seq = r.seq, .commits = end->commits, .chain = end->chain,
                               .salt = end->salt, .generation = end->generation_max};
        s->have_at = true;
        break;
    }
    const log_end *end = c != NULL ? cursor_end(c) : NULL;
    if (rc == 0 && !s->have_at && end != NULL) {
        rc = end->first_seq > last->last_seq + 1 && !end->empty
                 ? err_set(MMSB_EINVAL, "the log no longer holds record %llu, where the stream ends (a checkpoint "
                           "removed it): the stream cannot continue", (unsigned long long)(last->last_seq + 1))
                 : err_set(MMSB_EFENCED, "the stream is ahead of this store: it holds records up to %llu, the log "
                           "ends at %llu (another writer published): this store is fenced",
                           (unsigned long long)last->last_seq, (unsigned long long)end->last_commit_seq);
    }
    cursor_close(c);
    return rc;
}

static int shipper_start(shipper *s, bool create, int64_t replicas) {
    link_stream ls;
    int rc = link_stream_info(s->link, &ls);
    if (rc == 0 && !ls.exists && !create) {
        rc = err_set(MMSB_ENOTFOUND, "there is no stream %s (create it first, or ask to)", link_stream_name(s->link));
    }
    if (rc == 0 && !ls.exists) rc = link_stream_create(s->link, replicas);
    if (rc == 0 && !ls.exists) rc = link_stream_info(s->link, &ls);
    if (rc != 0) return rc;
    s->stream_last = ls.last_seq;
    frame_meta last;
    uint64_t last_len = 0, last_seq = 0;
    bool found = false;
    rc = ship_last_group(s->link, &ls, &last, &last_len, &last_seq, &found);
    if (rc != 0 || !found) return rc; /* the first round starts from the log's beginning */
    log_cursor *c = NULL;
    bool done = false;
    log_rec r;
    rc = cursor_open(s->dir_fd, CURSOR_VERIFY, s->kern, s->covered_segment, &c);
    if (rc == 0) rc = cursor_next(c, &r, &done);
    s->salt = c != NULL ? cursor_end(c)->salt : 0;
    cursor_close(c);
    if (rc == 0 && s->salt != last.salt) {
        rc = err_set(MMSB_EINVAL, "the stream %s holds another store's log (salt %016llx; this store's is %016llx)",
                     link_stream_name(s->link), (unsigned long long)last.salt, (unsigned long long)s->salt);
    }
    return rc == 0 ? find_resume(s, &last, last_len) : rc;
}

int shipper_open(int dir_fd, const kern_ops *kern, uint64_t covered_segment, nats_link *link, bool create,
                 int64_t replicas, shipper **out) {
    ASSERT(dir_fd >= 0 && kern != NULL && link != NULL && out != NULL);
    ASSERT(replicas >= 1);
    *out = NULL;
    shipper *s = calloc(1, sizeof *s);
    uint8_t *buf = malloc(FRAME_BODY_MAX);
    if (s == NULL || buf == NULL) {
        free(s);
        free(buf);
        return err_set(MMSB_ENOMEM, "shipper");
    }
    *s = (shipper){.link = link, .dir_fd = dir_fd, .kern = kern, .covered_segment = covered_segment,
                   .sync_first = true, .buf = buf};
    int rc = shipper_start(s, create, replicas);
    if (rc == 0) rc = pin_move(s);
    if (rc != 0) {
        shipper_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

void shipper_set_sync(shipper *s, bool sync_first) { s->sync_first = sync_first; }

void shipper_get_stats(const shipper *s, ship_stats *out) {
    ASSERT(s != NULL && out != NULL);
    *out = (ship_stats){.groups = s->groups, .messages = s->messages, .duplicates = s->duplicates,
                        .bytes = s->bytes, .shipped_seq = s->have_at ? s->at.commit_seq : 0,
                        .stream_last = s->stream_last, .at_segment = s->have_at ? s->at.segment : 0,
                        .at_offset = s->have_at ? s->at.offset : 0};
}

void shipper_close(shipper *s) {
    if (s == NULL) return;
    free(s->buf);
    free(s);
}

int ship_last_group(nats_link *l, const link_stream *ls, frame_meta *meta, uint64_t *len, uint64_t *stream_seq,
                    bool *found) {
    ASSERT(l != NULL && ls != NULL && meta != NULL && len != NULL && stream_seq != NULL && found != NULL);
    *found = false;
    uint64_t seq = ls->last_seq;
    for (uint32_t step = 0; step < SHIP_WALK_BACK_MAX && seq >= 1 && seq >= ls->first_seq; step++, seq--) {
        link_msg m;
        int rc = link_get(l, seq, &m);
        if (rc == MMSB_ENOTFOUND) continue; /* removed from the stream by hand */
        if (rc != 0) return rc;
        rc = frame_parse(m.values, m.len, meta);
        *len = m.len;
        link_msg_free(&m);
        if (rc != 0) return err_set(rc, "stream message %llu: %s", (unsigned long long)seq, mmsb_last_error());
        if (meta->flags & FRAME_LAST) {
            *stream_seq = seq;
            *found = true;
            return 0;
        }
    }
    if (seq >= 1 && seq >= ls->first_seq) {
        return err_set(MMSB_ECORRUPT, "the stream's last %d messages end no group", SHIP_WALK_BACK_MAX);
    }
    return 0;
}
