/*
 * ship.c - `mmsb ship`: publishes a store's committed log to a JetStream
 * stream, beside the writer, as FORMAT.md's replication messages.
 *
 * The shipper reads the log with the cursor every reader uses, from the last
 * commit it shipped, and cuts what is committed into groups: the bytes from
 * one commit boundary to a later one, as they lie in the segment files, in
 * messages of at most 1 MiB that never span two segments. Before a group is
 * published its segments are synced, so nothing reaches a replica that the
 * primary could still lose. Every message expects the stream's last
 * sequence to be the one before it: the stream's order is the log's, and a
 * second shipper (or a promoted replica's) fences the first.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../tlog/repl/mirror.h"
#include "repl.h"
#include "tool.h"

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

typedef struct shipper {
    nats_link *link;
    int dir_fd;
    const kern_ops *kern;
    uint64_t salt;
    bool have_at;
    cursor_start at;    /* the end of the last group shipped */
    uint64_t stream_last;
    uint64_t groups, messages, duplicates, bytes, records_to;
    uint8_t *buf;
    group_plan plan;
} shipper;

static const char SHIP_USAGE[] =
    "usage: mmsb ship DIR --server URL[,URL..] --stream NAME [--create] [--replicas N] [--once] [--json]\n"
    "\n"
    "Publishes the store's committed log to the JetStream stream NAME (subject\n"
    "mmsb.NAME), one message per group of commits (at most 1 MiB each), and keeps\n"
    "going as the writer commits, until SIGINT or SIGTERM. A restarted shipper\n"
    "resumes where the stream ends. --create makes the stream (--replicas copies,\n"
    "default 1) when it does not exist. --once ships what is committed and exits.\n";

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
static int read_group(shipper *s, log_cursor *c) {
    group_plan *p = &s->plan;
    memset(p, 0, sizeof *p);
    log_rec r;
    bool done = false;
    for (uint64_t n = 0; n < GROUP_BYTES_MAX && !done; n++) {
        int rc = cursor_next(c, &r, &done);
        if (rc != 0) return rc;
        if (done) break;
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

static int publish_group(shipper *s) {
    group_plan *p = &s->plan;
    ASSERT(p->have_boundary);
    p->count = p->b_count;
    plan_push(p, p->b_cur);
    int rc = sync_segments(s, p, p->count);
    for (uint32_t i = 0; i < p->count && rc == 0; i++) {
        const chunk *ch = &p->list[i];
        frame_meta m = {.salt = s->salt, .at = ch->at, .first_seq = ch->first_seq, .last_seq = ch->last_seq};
        m.flags = (i == 0 ? FRAME_FIRST : 0) | (i + 1 == p->count ? FRAME_LAST : 0);
        if (m.flags & FRAME_LAST) m.chain = p->b_at.chain, m.last_seq = p->b_at.commit_seq;
        rc = read_bytes(s, ch);
        uint64_t seq = 0;
        bool dup = false;
        if (rc == 0) rc = link_publish(s->link, &m, s->buf, ch->len, s->stream_last, &seq, &dup);
        if (rc != 0) break;
        s->stream_last = max_u64(s->stream_last, seq);
        s->messages++;
        s->duplicates += dup;
        s->bytes += ch->len;
    }
    if (rc != 0) return rc;
    s->at = p->b_at;
    s->have_at = true;
    s->groups++;
    s->records_to = p->b_at.commit_seq;
    return 0;
}

/* One round: what was committed since the last group, if anything. */
static int ship_round(shipper *s, bool *shipped) {
    *shipped = false;
    log_cursor *c = NULL;
    int rc = cursor_open_at(s->dir_fd, CURSOR_VERIFY, s->kern, &s->at, &c);
    if (rc != 0) {
        cursor_close(c);
        return err_set(rc, "reading the log from record %llu: %s", (unsigned long long)s->at.next_seq,
                       mmsb_last_error());
    }
    rc = read_group(s, c);
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
static int start_fresh(shipper *s, mmsb_engine *e) {
    log_cursor *c = NULL;
    int rc = tool_cursor(e, CURSOR_VERIFY, &c);
    if (rc == 0) rc = read_group(s, c);
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
static int find_resume(shipper *s, mmsb_engine *e, const frame_meta *last, uint64_t last_len) {
    log_cursor *c = NULL;
    int rc = tool_cursor(e, CURSOR_VERIFY, &c);
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
            rc = err_set(MMSB_EBUSY, "the stream holds another history at record %llu (a different writer "
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
                 : err_set(MMSB_EBUSY, "the stream is ahead of this store: it holds records up to %llu, the log "
                           "ends at %llu (another writer published): this store is fenced",
                           (unsigned long long)last->last_seq, (unsigned long long)end->last_commit_seq);
    }
    cursor_close(c);
    return rc;
}

static int ship_start(shipper *s, const char *dir, bool create, uint64_t replicas) {
    link_stream ls;
    int rc = link_stream_info(s->link, &ls);
    if (rc == 0 && !ls.exists && !create) {
        rc = err_set(MMSB_ENOTFOUND, "there is no stream %s (--create makes it)", link_subject(s->link) + 5);
    }
    if (rc == 0 && !ls.exists) rc = link_stream_create(s->link, (int64_t)replicas);
    if (rc == 0 && !ls.exists) rc = link_stream_info(s->link, &ls);
    if (rc != 0) return rc;
    s->stream_last = ls.last_seq;
    frame_meta last;
    uint64_t last_len = 0, last_seq = 0;
    bool found = false;
    rc = repl_last_group(s->link, &ls, &last, &last_len, &last_seq, &found);
    mmsb_engine *e = NULL;
    if (rc == 0 && tool_engine("ship", dir, &e) != 0) rc = err_set(MMSB_EIO, "cannot open %s", dir);
    if (rc == 0 && found) {
        log_cursor *c = NULL;
        bool done = false;
        log_rec r;
        rc = tool_cursor(e, CURSOR_VERIFY, &c);
        if (rc == 0) rc = cursor_next(c, &r, &done);
        s->salt = c != NULL ? cursor_end(c)->salt : 0;
        cursor_close(c);
        if (rc == 0 && s->salt != last.salt) {
            rc = err_set(MMSB_EINVAL, "the stream holds another store's log (salt %016llx; this store's is %016llx)",
                         (unsigned long long)last.salt, (unsigned long long)s->salt);
        }
        if (rc == 0) rc = find_resume(s, e, &last, last_len);
    } else if (rc == 0) {
        rc = start_fresh(s, e);
    }
    if (e != NULL) engine_close_bare(e);
    return rc;
}

/* ---- the command ------------------------------------------------------------------ */

typedef struct ship_args {
    const char *server, *stream;
    bool create, once;
    uint64_t replicas;
} ship_args;

static void ship_report(const shipper *s, const char *dir, bool json) {
    if (json) {
        json_out j;
        json_begin(&j, stdout);
        json_str(&j, "command", "ship");
        json_str(&j, "dir", dir);
        json_u64(&j, "groups", s->groups);
        json_u64(&j, "messages", s->messages);
        json_u64(&j, "duplicates", s->duplicates);
        json_u64(&j, "bytes", s->bytes);
        json_u64(&j, "shipped_to_seq", s->have_at ? s->at.commit_seq : 0);
        json_u64(&j, "stream_last_seq", s->stream_last);
        json_end(&j);
        return;
    }
    printf("mmsb ship %s: %llu groups, %llu messages (%llu already in the stream), %llu bytes; the stream holds "
           "the log up to record %llu (stream sequence %llu)\n",
           dir, (unsigned long long)s->groups, (unsigned long long)s->messages, (unsigned long long)s->duplicates,
           (unsigned long long)s->bytes, (unsigned long long)(s->have_at ? s->at.commit_seq : 0),
           (unsigned long long)s->stream_last);
}

/* Starts from the log's beginning: the stream holds no group of it yet. */
static int ship_fresh(shipper *s, const char *dir) {
    mmsb_engine *e = NULL;
    if (tool_engine("ship", dir, &e) != 0) return err_set(MMSB_EIO, "cannot open %s", dir);
    int rc = start_fresh(s, e);
    engine_close_bare(e);
    return rc;
}

static int ship_run(shipper *s, const char *dir, const ship_args *sa) {
    int rc = 0;
    while (rc == 0 && !repl_stop_requested()) {
        bool shipped = false;
        if (s->have_at) {
            rc = ship_round(s, &shipped);
        } else {
            rc = ship_fresh(s, dir); /* nothing was committed when the shipper started */
            shipped = rc == 0 && s->have_at;
        }
        if (rc != 0 || (sa->once && !shipped)) break;
        if (!shipped) repl_sleep_ms(REPL_POLL_MS);
    }
    return rc;
}

int cmd_ship(int argc, char **argv) {
    ship_args sa = {.replicas = 1};
    bool server_seen = false, stream_seen = false;
    const cli_opt opts[] = {
        {"--server", OPT_TEXT, &sa.server, &server_seen}, {"--stream", OPT_TEXT, &sa.stream, &stream_seen},
        {"--create", OPT_FLAG, &sa.create, NULL},         {"--replicas", OPT_U64, &sa.replicas, NULL},
        {"--once", OPT_FLAG, &sa.once, NULL},
    };
    cli_args a;
    int rc = cli_parse("ship", SHIP_USAGE, argc, argv, opts, ARRAY_LEN(opts), 1, &a);
    if (rc != 0) return rc == CLI_HELP ? EXIT_CLEAN : rc;
    if (!server_seen || !stream_seen || !replica_stream_name_ok(sa.stream) || sa.replicas < 1 || sa.replicas > 5) {
        fprintf(stderr, "mmsb ship: --server and --stream are needed; a stream name is 1 .. %d of A-Z a-z 0-9 _ -; "
                "--replicas is 1 .. 5\n\n%s", REPLICA_STREAM_MAX, SHIP_USAGE);
        return EXIT_USAGE;
    }
    shipper s = {.dir_fd = -1};
    s.buf = malloc(FRAME_BODY_MAX);
    s.dir_fd = open(a.pos[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    rc = s.buf == NULL ? err_set(MMSB_ENOMEM, "buffer")
         : s.dir_fd < 0 ? err_set(MMSB_ENOTFOUND, "cannot open %s: %s", a.pos[0], strerror(errno))
                        : kern_select(MMSB_KERNEL_AUTO, &s.kern);
    if (rc == 0) rc = link_open(sa.server, sa.stream, REPL_TIMEOUT_MS, &s.link);
    repl_signals_install();
    if (rc == 0) rc = ship_start(&s, a.pos[0], sa.create, sa.replicas);
    if (rc == 0 && !(sa.once && !s.have_at)) rc = ship_run(&s, a.pos[0], &sa);
    if (rc != 0) cli_report("ship", rc);
    ship_report(&s, a.pos[0], a.json);
    link_close(s.link);
    if (s.dir_fd >= 0) close(s.dir_fd);
    free(s.buf);
    if (rc == 0) return EXIT_CLEAN;
    return rc == MMSB_EBUSY || rc == MMSB_ECORRUPT || rc == MMSB_EINVAL ? EXIT_PROBLEM : EXIT_USAGE;
}
