/*
 * writer.c - the log writer (see writer.h).
 *
 * Positions are byte offsets in the stream of records this writer appended
 * since it was opened; the ring holds stream byte p at ring[p % ring_bytes].
 * head: the next byte to append (writer thread). appended_pos: the end of
 * the last complete record (published). flushed_pos: bytes written to the
 * segment file (under io_mutex). committed_pos / committed_seq: the end and
 * sequence number of the last COMMIT. Publishing order: positions first,
 * then the sequence number; readers load the sequence number first, so they
 * never pair it with bytes that do not hold it. Flushes write everything
 * appended, committed or not (recovery drops records no commit covers), so
 * the flusher writes a large change while the writer is still building it.
 * The writer never gets more than a ring ahead of flushed_pos.
 *
 * Sealing: the writer thread leaves each record's CRC and each COMMIT's
 * chain value unset; whoever flushes fills them in, in stream order, just
 * before the bytes go to the file (sealed_pos, under seal_mutex). The bytes
 * are the same as if the writer had sealed them; in NONE and GROUP the
 * flusher thread does it, so a small commit spends nothing on checksums.
 * A large record (SEAL_ON_APPEND_BYTES) is sealed by the writer as it is
 * appended, with any before it: its bytes are in the writer's cache, and
 * the flusher, which also writes, would otherwise bound large writes.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "chain.h"
#include "../engine/base/crc32c.h"
#include "cursor.h"
#include "writer.h"

enum {
    ZERO_FILL_CHUNK = 1 << 20,
    WRITEBACK_STEP_BYTES = 4 << 20, /* start the disk on flushed bytes this many at a time */
    SPARE_SLICE_BYTES = 1 << 20,    /* zeros a spare gets per turn of the flusher's loop ... */
    SPARE_PACE_BYTES = 256 << 10,   /* ... each this many on the disk before the next are written */
    SEAL_ON_APPEND_BYTES = 4096,    /* payloads this large are sealed as they are appended */
};
_Static_assert(SPARE_PACE_BYTES <= ZERO_FILL_CHUNK, "a paced write comes from the zeros buffer");
_Static_assert(SPARE_SLICE_BYTES % SPARE_PACE_BYTES == 0, "a slice is whole paced writes");

struct log_writer {
    int dir_fd;
    log_config cfg;
    log_io io;
    uint64_t salt;
    uint32_t generation;
    /* the ring: a memfd mapped twice, back to back */
    int ring_fd;
    uint8_t *ring;
    uint64_t ring_bytes;
    /* writer-thread state */
    uint64_t head;
    bool in_record;
    uint16_t rec_type;
    uint32_t rec_len;
    uint64_t next_seq;
    uint64_t commit_first_seq;
    uint64_t commits;
    uint64_t commits_at_open;
    uint64_t flushed_seen; /* flushed_pos as the writer last read it (at most it) */
    /* the segment being written (changed under io_mutex) */
    int seg_fd;
    _Atomic uint64_t seg_no;
    uint64_t seg_stream0;   /* stream position of ... */
    uint64_t seg_file_off0; /* ... this file offset */
    /* Its capacity, as its header says: a segment made under another
     * segment_bytes option keeps its own size (readers stop there). */
    uint64_t seg_bytes;
    uint64_t writeback_off; /* where writeback was last started in the segment (under io_mutex) */
    /* sealing (under seal_mutex; taken after io_mutex when both are): records
     * before sealed_pos have their CRC, and chain_value is that of the last
     * COMMIT sealed */
    pthread_mutex_t seal_mutex;
    uint64_t sealed_pos;
    chain_hasher chain;
    h128 chain_value;
    /* published */
    _Atomic uint64_t appended_pos, committed_pos, committed_seq, durable_seq, flushed_pos;
    _Atomic uint32_t durability;
    _Atomic int failed;
    char failed_detail[256];
    pthread_mutex_t io_mutex;
    /* flusher thread */
    pthread_t flusher;
    bool flusher_started;
    pthread_mutex_t wake_mutex;
    pthread_cond_t wake_cond;
    bool stop;
    atomic_bool armed, urgent, sync_wanted, want_spare;
    /* the next segment, prepared ahead */
    pthread_mutex_t spare_mutex;
    int spare_fd;
    uint64_t spare_no;
    bool spare_named;         /* renamed to its segment name: ready */
    uint64_t spare_zeroed;    /* bytes of it zeroed so far ... */
    uint64_t spare_zero_goal; /* ... of these (0 in NONE) */
    /* The lowest number a spare may have: a segment taken by a roll-over
     * is in use before seg_no says so, and a spare made under its number
     * would be renamed over it (and take every record after the roll). */
    uint64_t spare_no_min;
    uint8_t *zeros;
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ASSERT(ts.tv_sec >= 0 && ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000L);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- failure ------------------------------------------------------------------- */

/* Makes an I/O error sticky: every later call reports it. */
static int fail_sticky(log_writer *w, int rc) {
    ASSERT(w != NULL);
    ASSERT(rc < 0);
    int expected = 0;
    if (atomic_load(&w->failed) == 0) {
        snprintf(w->failed_detail, sizeof w->failed_detail, "%s", mmsb_last_error());
        atomic_compare_exchange_strong(&w->failed, &expected, rc);
    }
    return rc;
}

static int refuse_if_failed(const log_writer *w) {
    ASSERT(w != NULL);
    int rc = atomic_load(&w->failed);
    if (rc == 0) return 0;
    ASSERT(rc < 0);
    return err_set(rc, "the log failed earlier (%s); reopen the store", w->failed_detail);
}

int log_failed(const log_writer *w) { return atomic_load(&w->failed); }
io_faults *log_faults(log_writer *w) { return &w->io.faults; }

/* ---- segment files ------------------------------------------------------------- */

static int sync_dir(log_writer *w) {
    ASSERT(w != NULL);
    ASSERT(w->dir_fd >= 0);
    if (fsync(w->dir_fd) != 0) {
        return err_set(err_from_errno(errno), "fsync of the store directory: %s", strerror(errno));
    }
    return 0;
}

/* A segment being made is named "<final name>.new" (which no reader
 * lists) until it is whole. */
static void segment_temp_name(uint64_t no, char out[40]) {
    ASSERT(no >= 1);
    char name[32];
    segment_name(no, name);
    snprintf(out, 40, "%s.new", name);
    ASSERT(strlen(out) < 40);
}

static int write_header(log_writer *w, int fd, uint64_t no, uint64_t first_seq);

uint64_t segment_size(const log_config *cfg, uint64_t no) {
    ASSERT(no >= 1 && cfg->segment_bytes >= SEG_BYTES_MIN && cfg->segment_bytes % REC_ALIGN == 0);
    uint64_t size = seg_size_grown(cfg->segment_bytes, no);
    ASSERT(size >= SEG_BYTES_MIN && size % REC_ALIGN == 0);
    return size;
}

/* A segment is made in steps, so that the flusher can spread the zeros
 * of a spare over its loop: draft_open creates it at full size under its
 * temporary name, draft_zero writes zeros into a range of it, draft_name
 * gives it its name (with its header first when asked: a store's first
 * segment). A crash leaves the segment whole or absent. */
static int draft_open(log_writer *w, uint64_t no, int *fd_out) {
    ASSERT(no >= 1 && fd_out != NULL);
    uint64_t size = segment_size(&w->cfg, no);
    char name[32], temp[40];
    segment_name(no, name);
    segment_temp_name(no, temp);
    int fd = openat(w->dir_fd, temp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return err_set(err_from_errno(errno), "cannot create %s: %s", temp, strerror(errno));
    if (fallocate(fd, 0, 0, (off_t)size) != 0) {
        int saved = errno;
        if (saved != EOPNOTSUPP || ftruncate(fd, (off_t)size) != 0) {
            close(fd);
            unlinkat(w->dir_fd, temp, 0);
            return err_set(err_from_errno(saved), "cannot allocate %llu bytes for %s: %s",
                           (unsigned long long)size, name, strerror(saved));
        }
    }
    *fd_out = fd;
    return 0;
}

/* Zeros over [from, to) of segment `no`, so that later writes there are
 * plain overwrites. Paced: each SPARE_PACE_BYTES reach the disk before the
 * next are written, so that no more are ever waiting in the page cache. A
 * sync by the writer meanwhile (SYNC's, at every commit) otherwise waits
 * behind all of them: a 64 MiB spare's zeros written in one go held
 * commits for 30-45 ms (measured on ext4, whose journal commits write out
 * the data of the extents they convert first: the likely reason). */
static int draft_zero(log_writer *w, int fd, uint64_t no, uint64_t from, uint64_t to) {
    ASSERT(fd >= 0 && from <= to && to <= segment_size(&w->cfg, no));
    ASSERT(w->zeros != NULL);
    for (uint64_t off = from; off < to; off += SPARE_PACE_BYTES) {
        uint64_t n = min_u64(SPARE_PACE_BYTES, to - off);
        ssize_t put = pwrite(fd, w->zeros, n, (off_t)off);
        if (put != (ssize_t)n) {
            char name[32];
            segment_name(no, name);
            return err_set(put < 0 ? err_from_errno(errno) : MMSB_ENOSPC, "cannot zero-fill %s: %s", name,
                           put < 0 ? strerror(errno) : "short write");
        }
        if (sync_file_range(fd, (off_t)off, (off_t)n,
                            SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) != 0) {
            return err_set(err_from_errno(errno), "sync_file_range of a new segment: %s", strerror(errno));
        }
    }
    return 0;
}

/* Removes what draft_open made (and draft_name, if it named it). */
static void draft_discard(log_writer *w, int fd, uint64_t no) {
    ASSERT(fd >= 0 && no >= 1);
    char name[32], temp[40];
    segment_name(no, name);
    segment_temp_name(no, temp);
    close(fd);
    unlinkat(w->dir_fd, temp, 0);
    unlinkat(w->dir_fd, name, 0);
}

/* The zeros are synced before the name when there are any (the name is
 * durable once the directory is synced, and the file is whole then). */
static int draft_name(log_writer *w, int fd, uint64_t no, bool sync_data, bool with_header) {
    ASSERT(fd >= 0 && no >= 1);
    char name[32], temp[40];
    segment_name(no, name);
    segment_temp_name(no, temp);
    int rc = 0;
    if (sync_data && fdatasync(fd) != 0)
        rc = err_set(err_from_errno(errno), "fdatasync of %s: %s", name, strerror(errno));
    if (rc == 0 && with_header) rc = write_header(w, fd, no, w->next_seq);
    if (rc == 0 && renameat(w->dir_fd, temp, w->dir_fd, name) != 0) {
        rc = err_set(err_from_errno(errno), "cannot rename %s to %s: %s", temp, name, strerror(errno));
    }
    if (rc == 0) rc = sync_dir(w);
    return rc;
}

/* Makes segment `no` in one go, allocated but not zeroed (only the
 * flusher's spares get zeros), with its header when with_header. */
static int create_segment(log_writer *w, uint64_t no, bool with_header, int *fd_out) {
    ASSERT(no >= 1 && fd_out != NULL);
    int fd;
    int rc = draft_open(w, no, &fd);
    if (rc != 0) return rc;
    rc = draft_name(w, fd, no, false, with_header);
    if (rc != 0) {
        draft_discard(w, fd, no);
        return rc;
    }
    ASSERT(fd >= 0);
    *fd_out = fd;
    return 0;
}

/* Forgets the spare: a named one stays on disk (a prepared spare, which
 * readers pass over and a later roll-over replaces), a draft goes. */
static void spare_drop(log_writer *w) {
    ASSERT(w->spare_fd >= 0);
    if (w->spare_named) {
        close(w->spare_fd);
    } else {
        char temp[40];
        segment_temp_name(w->spare_no, temp);
        close(w->spare_fd);
        unlinkat(w->dir_fd, temp, 0);
    }
    w->spare_fd = -1;
    w->spare_named = false;
}

/* The flusher prepares segment seg_no + 1 while seg_no fills, a slice per
 * call (the flusher's loop goes on flushing commits between slices); true
 * while the spare has more to do. Its blocks are written ahead (zeros)
 * only when commits sync: an fdatasync into allocated-but-unwritten blocks
 * also commits the filesystem's extent changes, which a mode that syncs at
 * every commit or window pays each time, while writing the zeros doubles
 * the bytes the log costs the disk. NONE syncs only at roll-over,
 * checkpoints and close, so it takes the plain allocation. A mode changed
 * later applies from the next spare. */
static bool prepare_spare(log_writer *w) {
    ASSERT(w->zeros != NULL); /* draft_zero writes from it */
    pthread_mutex_lock(&w->spare_mutex);
    uint64_t want = max_u64(atomic_load(&w->seg_no) + 1, w->spare_no_min);
    if (w->spare_fd >= 0 && w->spare_no != want) spare_drop(w);
    if (w->spare_fd < 0) {
        int fd;
        /* On failure the rollover creates the segment itself and reports. */
        if (draft_open(w, want, &fd) == 0) {
            w->spare_fd = fd;
            w->spare_no = want;
            w->spare_zeroed = 0;
            w->spare_zero_goal = atomic_load(&w->durability) != MMSB_DURABILITY_NONE ? segment_size(&w->cfg, want) : 0;
        }
    }
    if (w->spare_fd >= 0 && !w->spare_named) {
        uint64_t to = min_u64(w->spare_zeroed + SPARE_SLICE_BYTES, w->spare_zero_goal);
        int rc = 0;
        if (to > w->spare_zeroed) {
            io_event ev = {.kind = IO_EV_POINT, .point = "log-spare-slice"};
            int refused = io_hook(&w->io.hooks, &ev);
            rc = refused != 0 ? err_set(err_from_errno(refused), "zeroing segment %llu: %s",
                                        (unsigned long long)want, strerror(refused))
                              : draft_zero(w, w->spare_fd, want, w->spare_zeroed, to);
        }
        if (rc == 0) w->spare_zeroed = to;
        if (rc == 0 && to == w->spare_zero_goal) rc = draft_name(w, w->spare_fd, want, to > 0, false);
        if (rc == 0) w->spare_named = to == w->spare_zero_goal;
        if (rc != 0) spare_drop(w);
    }
    bool more = w->spare_fd >= 0 && !w->spare_named;
    ASSERT(w->spare_fd < 0 || w->spare_no == want);
    pthread_mutex_unlock(&w->spare_mutex);
    return more;
}

/* A spare still being zeroed is named as it is: the blocks not yet written
 * read as zeros all the same, and it is only slower to sync into. */
static int take_segment(log_writer *w, uint64_t no, int *fd_out) {
    ASSERT(no == atomic_load(&w->seg_no) + 1);
    pthread_mutex_lock(&w->spare_mutex);
    int rc = -1;
    if (w->spare_fd >= 0 && w->spare_no == no) {
        rc = w->spare_named ? 0 : draft_name(w, w->spare_fd, no, false, false);
        if (rc == 0) {
            *fd_out = w->spare_fd;
            w->spare_fd = -1;
            w->spare_named = false;
        }
    }
    if (w->spare_fd >= 0) spare_drop(w); /* made for another number, or could not be named */
    if (rc != 0) rc = create_segment(w, no, false, fd_out);
    w->spare_no_min = no + 1;
    ASSERT(w->spare_fd < 0);
    ASSERT(rc != 0 || *fd_out >= 0);
    pthread_mutex_unlock(&w->spare_mutex);
    return rc;
}

static int write_header(log_writer *w, int fd, uint64_t no, uint64_t first_seq) {
    ASSERT(fd >= 0 && no >= 1 && first_seq >= 1);
    ASSERT(w->salt != 0 && w->generation >= 1);
    pthread_mutex_lock(&w->seal_mutex); /* the chain value of the last commit (all sealed: a SEAL came last) */
    seg_header h = {.salt = w->salt, .segment_no = no, .first_seq = first_seq,
                    .segment_bytes = segment_size(&w->cfg, no), .generation = w->generation,
                    .chain_in = w->chain_value};
    pthread_mutex_unlock(&w->seal_mutex);
    uint8_t buf[SEG_HEADER_BYTES];
    seg_header_encode(&h, buf);
    return io_write(&w->io, fd, buf, sizeof buf, 0, true);
}

/* ---- sealing (under seal_mutex) and flushing (under io_mutex) ----------------------- */

/* Fills in the chain value of a COMMIT (the chain then starts again from
 * it), or adds the record to the chain, as FORMAT.md says; then the CRC. */
static void seal_record(log_writer *w, uint8_t *h) {
    uint32_t len = get_le32(h + 4);
    uint16_t type = get_le16(h + 8);
    uint64_t seq = get_le64(h + 16);
    ASSERT(type != 0 && len <= REC_PAYLOAD_MAX && seq >= 1);
    uint8_t *payload = h + REC_HEADER_BYTES;
    if (type == REC_COMMIT) {
        uint8_t part[32];
        uint64_t n = chain_commit_part(payload, len, part);
        chain_add(&w->chain, REC_COMMIT, 0, len, seq, part, n);
        w->chain_value = chain_end(&w->chain);
        rec_encode_commit_chain(payload, w->chain_value);
        chain_begin(&w->chain, w->chain_value);
    } else if (type == REC_ABORT || type == REC_CHECKPOINT) {
        /* outside the chain; the next commit chains from the last one */
        chain_begin(&w->chain, w->chain_value);
    } else {
        chain_add(&w->chain, type, 0, len, seq, payload, len);
    }
    put_le32(h, crc32c(0, h + 4, REC_HEADER_BYTES - 4 + (size_t)len));
}

/* Seals every record before stream position `end`, the end of a complete
 * record (a flush's end may lie behind what the writer sealed itself).
 * Bounded by the ring: nothing older than a ring is unsealed. */
static void seal_to(log_writer *w, uint64_t end) {
    ASSERT(w->sealed_pos >= atomic_load(&w->flushed_pos));
    if (end <= w->sealed_pos) return;
    ASSERT(end - w->sealed_pos <= w->ring_bytes);
    while (w->sealed_pos < end) {
        uint8_t *h = w->ring + w->sealed_pos % w->ring_bytes;
        uint64_t slot = rec_slot_bytes(get_le32(h + 4));
        ASSERT(slot >= REC_HEADER_BYTES && w->sealed_pos + slot <= end);
        seal_record(w, h);
        w->sealed_pos += slot;
    }
    ASSERT(w->sealed_pos == end);
}

/* Starts the disk on what was written but not synced, a few MiB at a time:
 * the sync that seals a segment (and the next durable commit) then waits
 * for the last step, not for the whole segment. Advisory: it promises
 * nothing, so its failure is not an error (the sync that counts reports). */
static void start_writeback(log_writer *w, uint64_t file_end) {
    ASSERT(file_end <= w->seg_bytes);
    if (w->writeback_off > file_end) w->writeback_off = 0; /* a new segment */
    if (file_end - w->writeback_off < WRITEBACK_STEP_BYTES) return;
    (void)sync_file_range(w->seg_fd, (off_t)w->writeback_off, (off_t)(file_end - w->writeback_off),
                          SYNC_FILE_RANGE_WRITE);
    w->writeback_off = file_end;
    ASSERT(w->writeback_off <= w->seg_bytes);
}

static int flush_locked(log_writer *w, uint64_t end, uint64_t seq, bool sync) {
    ASSERT(w->ring != NULL && w->ring_bytes > 0); /* the writer's head and seq are not ours to read here */
    int rc = refuse_if_failed(w);
    if (rc != 0) return rc;
    uint64_t start = atomic_load(&w->flushed_pos);
    pthread_mutex_lock(&w->seal_mutex);
    seal_to(w, end);
    pthread_mutex_unlock(&w->seal_mutex);
    if (end > start) {
        ASSERT(end - start <= w->ring_bytes);
        uint64_t file_off = w->seg_file_off0 + (start - w->seg_stream0);
        ASSERT(file_off + (end - start) <= w->seg_bytes);
        rc = io_write(&w->io, w->seg_fd, w->ring + start % w->ring_bytes, end - start, file_off, sync);
        if (rc != 0) return fail_sticky(w, rc);
        atomic_store(&w->flushed_pos, end);
        if (!sync) start_writeback(w, file_off + (end - start));
    } else if (sync && atomic_load(&w->durable_seq) < seq) {
        rc = io_datasync(&w->io, w->seg_fd);
        if (rc != 0) return fail_sticky(w, rc);
    }
    if (sync && seq > atomic_load(&w->durable_seq)) atomic_store(&w->durable_seq, seq);
    ASSERT(atomic_load(&w->flushed_pos) >= end);
    return 0;
}

/* Flushes everything appended so far (and syncs it when asked, making every
 * commit so far durable). */
static int flush_commits(log_writer *w, bool sync) {
    pthread_mutex_lock(&w->io_mutex);
    ASSERT(w->seg_fd >= 0); /* changed only under io_mutex (roll_over) */
    /* Any thread may flush: committed_pos first, then appended_pos, which
     * the writer stores before it (so it is never behind). */
    uint64_t committed = atomic_load_explicit(&w->committed_pos, memory_order_acquire);
    uint64_t seq = atomic_load_explicit(&w->committed_seq, memory_order_acquire);
    uint64_t end = atomic_load_explicit(&w->appended_pos, memory_order_acquire);
    ASSERT(end >= committed);
    int rc = flush_locked(w, end, seq, sync);
    pthread_mutex_unlock(&w->io_mutex);
    return rc;
}

/* ---- the flusher thread ----------------------------------------------------------- */

/* Sets a flag shared with the flusher; true when this call set it. The
 * plain load first keeps the common case (already set) free of a locked
 * instruction on a cache line the other thread writes. */
static bool raise_flag(atomic_bool *flag) {
    ASSERT(flag != NULL);
    if (atomic_load_explicit(flag, memory_order_relaxed)) return false;
    return !atomic_exchange(flag, true);
}

/* Without a flusher thread (io_hooks.inline_flush) the bytes wait in the
 * ring until the writer must flush them, and the next segment is prepared
 * here, by the caller. */
static void wake_flusher(log_writer *w) {
    ASSERT(w != NULL);
    ASSERT(w->flusher_started || w->cfg.hooks.inline_flush);
    if (!w->flusher_started) {
        /* Whole at once: I/O here happens in the writer's order. */
        uint64_t slices_max = SEG_BYTES_MAX / SPARE_SLICE_BYTES + 1;
        if (atomic_exchange(&w->want_spare, false)) {
            for (uint64_t i = 0; i < slices_max && prepare_spare(w); i++) continue;
        }
        return;
    }
    pthread_mutex_lock(&w->wake_mutex);
    pthread_cond_signal(&w->wake_cond);
    pthread_mutex_unlock(&w->wake_mutex);
}

/* Waits for the group window to pass (or for an urgent wake-up). */
static void wait_window(log_writer *w) {
    ASSERT(!w->cfg.hooks.inline_flush && w->cfg.group_window_us > 0);
    uint64_t deadline_ns = now_ns() + w->cfg.group_window_us * 1000;
    struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000ull),
                          .tv_nsec = (long)(deadline_ns % 1000000000ull)};
    while (!w->stop && !atomic_load(&w->urgent)) {
        if (pthread_cond_timedwait(&w->wake_cond, &w->wake_mutex, &ts) == ETIMEDOUT) break;
    }
}

static void *flusher_main(void *arg) {
    log_writer *w = arg;
    ASSERT(w != NULL && !w->cfg.hooks.inline_flush); /* flusher_started is set once this thread runs */
    pthread_mutex_lock(&w->wake_mutex);
    while (!w->stop) {
        bool armed = atomic_load(&w->armed), spare = atomic_load(&w->want_spare);
        if (!armed && !spare) {
            pthread_cond_wait(&w->wake_cond, &w->wake_mutex);
            continue;
        }
        /* While a spare is being zeroed its slices (a few ms each, on the
         * disk) stand in for the window: commits are flushed after each. */
        if (armed && !spare) wait_window(w);
        pthread_mutex_unlock(&w->wake_mutex);
        if (armed) {
            atomic_store(&w->armed, false);
            atomic_store(&w->urgent, false);
            flush_commits(w, atomic_exchange(&w->sync_wanted, false));
        }
        /* A slice per turn, so that commits are flushed in between. */
        if (atomic_exchange(&w->want_spare, false) && prepare_spare(w)) atomic_store(&w->want_spare, true);
        pthread_mutex_lock(&w->wake_mutex);
    }
    pthread_mutex_unlock(&w->wake_mutex);
    return NULL;
}

/* ---- the ring --------------------------------------------------------------------- */

static int ring_open(log_writer *w) {
    ASSERT(w->ring == NULL && w->ring_fd < 0);
    ASSERT(w->ring_bytes > 0 && w->ring_bytes % 4096 == 0);
    w->ring_fd = memfd_create("mmsb-log-ring", MFD_CLOEXEC);
    if (w->ring_fd < 0 || ftruncate(w->ring_fd, (off_t)w->ring_bytes) != 0) {
        return err_set(MMSB_ENOMEM, "log ring: %s", strerror(errno));
    }
    uint8_t *base = mmap(NULL, 2 * w->ring_bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) return err_set(MMSB_ENOMEM, "log ring: %s", strerror(errno));
    for (int half = 0; half < 2; half++) {
        void *at = mmap(base + half * w->ring_bytes, w->ring_bytes, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_FIXED | MAP_POPULATE, w->ring_fd, 0);
        if (at == MAP_FAILED) {
            munmap(base, 2 * w->ring_bytes);
            return err_set(MMSB_ENOMEM, "log ring: %s", strerror(errno));
        }
    }
    w->ring = base;
    return 0;
}

/* Makes room for `size` bytes. Past half a ring of unwritten bytes the
 * flusher is woken to write them while the writer goes on; only a full ring
 * makes the writer flush (without sync) itself. */
static int ensure_ring_room(log_writer *w, uint64_t size) {
    ASSERT(size <= w->ring_bytes);
    ASSERT(w->flushed_seen <= w->head);
    /* flushed_pos only grows: the position seen last bounds the room from
     * below, and the flusher's cache line is read only when it matters. */
    if (w->head + size - w->flushed_seen <= w->ring_bytes / 2) return 0;
    w->flushed_seen = atomic_load_explicit(&w->flushed_pos, memory_order_acquire);
    uint64_t waiting = w->head + size - w->flushed_seen;
    if (waiting > w->ring_bytes / 2 && raise_flag(&w->armed)) wake_flusher(w);
    if (waiting > w->ring_bytes / 2 && raise_flag(&w->urgent)) wake_flusher(w);
    if (waiting <= w->ring_bytes) return 0;
    ASSERT(w->head >= atomic_load(&w->flushed_pos));
    pthread_mutex_lock(&w->io_mutex);
    int rc = flush_locked(w, w->head, atomic_load(&w->committed_seq), false);
    pthread_mutex_unlock(&w->io_mutex);
    return rc;
}

/* ---- appending -------------------------------------------------------------------- */

static uint64_t segment_used(const log_writer *w) {
    ASSERT(w->seg_file_off0 >= SEG_HEADER_BYTES);
    ASSERT(w->head >= w->seg_stream0);
    return w->seg_file_off0 + (w->head - w->seg_stream0);
}

static uint8_t *begin_record(log_writer *w, uint16_t type, uint32_t len) {
    ASSERT(!w->in_record && type != 0 && len <= REC_PAYLOAD_MAX);
    ASSERT(w->head % REC_ALIGN == 0);
    uint8_t *h = w->ring + w->head % w->ring_bytes;
    uint64_t slot = rec_slot_bytes(len);
    ASSERT(slot >= REC_HEADER_BYTES + 8 || len == 0);
    /* The padding's zeros: the slot's last 8 bytes, before the header and the
     * payload (which may overwrite all but the padding). */
    put_le64(h + slot - 8, 0);
    put_le32(h + 4, len);
    put_le16(h + 8, type);
    put_le16(h + 10, 0);
    put_le32(h + 12, w->generation);
    put_le64(h + 16, w->next_seq);
    put_le64(h + 24, w->salt);
    w->in_record = true;
    w->rec_type = type;
    w->rec_len = len;
    ASSERT(segment_used(w) + rec_slot_bytes(len) <= w->seg_bytes);
    return h + REC_HEADER_BYTES;
}

void log_append_done(log_writer *w) {
    ASSERT(w->in_record);
    uint8_t *h = w->ring + w->head % w->ring_bytes;
    uint64_t slot = rec_slot_bytes(w->rec_len);
    ASSERT(slot >= REC_HEADER_BYTES + w->rec_len && slot % REC_ALIGN == 0);
    ASSERT(slot - REC_HEADER_BYTES - w->rec_len < REC_ALIGN); /* begin_record zeroed it */
    put_le32(h, 0); /* the CRC: set when sealed (seal_record) */
    w->head += slot;
    w->next_seq++;
    w->in_record = false;
    ASSERT(w->head % REC_ALIGN == 0 && segment_used(w) <= w->seg_bytes);
    if (w->rec_len >= SEAL_ON_APPEND_BYTES) { /* before a flush can see it */
        pthread_mutex_lock(&w->seal_mutex);
        seal_to(w, w->head);
        pthread_mutex_unlock(&w->seal_mutex);
    }
    atomic_store_explicit(&w->appended_pos, w->head, memory_order_release);
}

/* Ends the segment with a SEAL, writes and syncs all of it, and switches to
 * the next segment (prepared by the flusher when it could). */
static int roll_over(log_writer *w) {
    ASSERT(!w->in_record && w->seg_fd >= 0);
    uint64_t no = atomic_load(&w->seg_no);
    uint8_t *p = begin_record(w, REC_SEAL, SEAL_REC_BYTES);
    rec_encode_seal(p, no + 1, segment_used(w) + rec_slot_bytes(SEAL_REC_BYTES));
    log_append_done(w);
    pthread_mutex_lock(&w->io_mutex);
    int rc = flush_locked(w, w->head, atomic_load(&w->committed_seq), true);
    int fd = -1;
    if (rc == 0) rc = take_segment(w, no + 1, &fd);
    if (rc == 0) rc = write_header(w, fd, no + 1, w->next_seq);
    if (rc == 0) {
        close(w->seg_fd);
        w->seg_fd = fd;
        atomic_store(&w->seg_no, no + 1);
        w->seg_stream0 = w->head;
        w->seg_file_off0 = SEG_HEADER_BYTES;
        w->seg_bytes = segment_size(&w->cfg, no + 1); /* write_header gave it that size */
        w->writeback_off = 0;
    } else {
        if (fd >= 0) close(fd);
        fail_sticky(w, rc);
    }
    ASSERT(rc != 0 || (atomic_load(&w->seg_no) == no + 1 && segment_used(w) == SEG_HEADER_BYTES));
    pthread_mutex_unlock(&w->io_mutex);
    return rc;
}

static int ensure_segment_room(log_writer *w, uint64_t size) {
    ASSERT(size <= rec_slot_bytes(REC_PAYLOAD_MAX));
    uint64_t seal = rec_slot_bytes(SEAL_REC_BYTES), used = segment_used(w);
    if (used + size + seal > w->seg_bytes) {
        int rc = roll_over(w);
        if (rc != 0) return rc;
        used = segment_used(w);
    }
    ASSERT(used + size + seal <= w->seg_bytes);
    if (used > w->seg_bytes / 2 && raise_flag(&w->want_spare)) wake_flusher(w);
    return 0;
}

int log_append(log_writer *w, uint16_t type, uint32_t payload_len, uint8_t **payload_out) {
    ASSERT(!w->in_record && type != 0);
    int rc = refuse_if_failed(w);
    if (rc != 0) return rc;
    if (payload_len > REC_PAYLOAD_MAX) {
        return err_set(MMSB_EINVAL, "log record of %u bytes exceeds %d", payload_len, REC_PAYLOAD_MAX);
    }
    uint64_t size = rec_slot_bytes(payload_len);
    rc = ensure_segment_room(w, size);
    if (rc == 0) rc = ensure_ring_room(w, size);
    if (rc != 0) return rc;
    *payload_out = begin_record(w, type, payload_len);
    ASSERT(w->in_record && w->rec_len == payload_len);
    return 0;
}

/* ---- commits ------------------------------------------------------------------------ */

static void arm_flusher(log_writer *w, bool sync) {
    ASSERT(!log_pending(w));
    ASSERT(!w->in_record);
    if (sync && !atomic_load_explicit(&w->sync_wanted, memory_order_relaxed)) {
        atomic_store(&w->sync_wanted, true);
    }
    if (raise_flag(&w->armed)) wake_flusher(w);
    if (w->head - w->flushed_seen < w->cfg.group_window_bytes) return; /* see ensure_ring_room */
    w->flushed_seen = atomic_load_explicit(&w->flushed_pos, memory_order_acquire);
    if (w->head - w->flushed_seen >= w->cfg.group_window_bytes && raise_flag(&w->urgent)) wake_flusher(w);
}

static int commit_record(log_writer *w, const h128 *root, uint32_t flags, uint32_t durability,
                         uint64_t *seq_out) {
    ASSERT(!w->in_record && seq_out != NULL);
    ASSERT(durability <= MMSB_DURABILITY_SYNC && (flags & ~(uint32_t)COMMIT_CLOSE) == 0);
    uint32_t len = COMMIT_FIXED_BYTES + (root != NULL ? COMMIT_ROOT_BYTES : 0);
    uint8_t *p;
    int rc = log_append(w, REC_COMMIT, len, &p);
    if (rc != 0) return rc;
    uint64_t seq = w->next_seq;
    rec_commit c = {.first_seq = w->commit_first_seq, .durable_hint = atomic_load(&w->durable_seq),
                    .flags = flags | (root != NULL ? COMMIT_HAS_ROOT : 0),
                    .record_count = (uint32_t)(seq - w->commit_first_seq)};
    rec_encode_commit(p, &c, root); /* its chain value: when sealed */
    ASSERT(c.record_count >= 1 || flags == COMMIT_CLOSE);
    log_append_done(w);
    w->commit_first_seq = w->next_seq;
    w->commits++;
    atomic_store_explicit(&w->committed_pos, w->head, memory_order_release);
    atomic_store_explicit(&w->committed_seq, seq, memory_order_release);
    *seq_out = seq;
    ASSERT(w->commit_first_seq == seq + 1 && !log_pending(w));
    if (durability == 0) durability = atomic_load(&w->durability);
    if (durability == MMSB_DURABILITY_SYNC) return flush_commits(w, true);
    arm_flusher(w, durability == MMSB_DURABILITY_GROUP);
    return 0;
}

int log_commit(log_writer *w, const h128 *root, uint32_t durability, uint64_t *seq_out) {
    ASSERT(seq_out != NULL && durability <= MMSB_DURABILITY_SYNC);
    ASSERT(log_pending(w)); /* a commit has records: the engine commits nothing otherwise */
    return commit_record(w, root, 0, durability, seq_out);
}

int log_commit_close(log_writer *w, const h128 *root) {
    ASSERT(!w->in_record);
    ASSERT(!log_pending(w) && root != NULL);
    int rc = log_sync(w);
    uint64_t seq;
    return rc != 0 ? rc : commit_record(w, root, COMMIT_CLOSE, MMSB_DURABILITY_SYNC, &seq);
}

bool log_pending(const log_writer *w) { return w->next_seq != w->commit_first_seq; }

void log_fail(log_writer *w, int code, const char *why) {
    ASSERT(code < 0 && why != NULL);
    pthread_mutex_lock(&w->io_mutex);
    err_set(code, "%s", why);
    fail_sticky(w, code);
    ASSERT(log_failed(w) != 0);
    pthread_mutex_unlock(&w->io_mutex);
}

int log_abort(log_writer *w) {
    ASSERT(!w->in_record);
    if (w->next_seq == w->commit_first_seq) return 0;
    uint8_t *p;
    int rc = log_append(w, REC_ABORT, ABORT_REC_BYTES, &p);
    if (rc != 0) return rc;
    rec_encode_abort(p, w->commit_first_seq);
    ASSERT(w->next_seq > w->commit_first_seq);
    log_append_done(w); /* sealing restarts the chain from the last commit */
    w->commit_first_seq = w->next_seq;
    return 0;
}

int log_append_checkpoint(log_writer *w, const rec_checkpoint *ck) {
    ASSERT(ck->commit_seq < w->next_seq && ck->number >= 1);
    ASSERT(w->next_seq == w->commit_first_seq);
    uint8_t *p;
    int rc = log_append(w, REC_CHECKPOINT, CHECKPOINT_REC_BYTES, &p);
    if (rc != 0) return rc;
    rec_encode_checkpoint(ck, p);
    uint64_t seq = w->next_seq;
    /* Sealing starts the chain again from the last commit's value, as after
     * an ABORT: a SEAL that came before the marker (it did not fit the
     * segment) is in no commit, so no commit's chain may include it. */
    log_append_done(w);
    w->commit_first_seq = w->next_seq;
    /* Outside any commit and the chain, but a point the log may end at, like
     * a commit: durable hints count it, so damage to it before a later synced
     * commit is corruption, not a torn tail. */
    atomic_store_explicit(&w->committed_pos, w->head, memory_order_release);
    atomic_store_explicit(&w->committed_seq, seq, memory_order_release);
    arm_flusher(w, false);
    ASSERT(!log_pending(w));
    return 0;
}

void log_position(log_writer *w, log_pos *out) {
    ASSERT(out != NULL);
    ASSERT(!w->in_record && w->next_seq == w->commit_first_seq);
    pthread_mutex_lock(&w->seal_mutex); /* the chain value: seal what the writer appended */
    seal_to(w, w->head);
    h128 chain = w->chain_value;
    pthread_mutex_unlock(&w->seal_mutex);
    *out = (log_pos){.segment = atomic_load(&w->seg_no), .offset = segment_used(w), .next_seq = w->next_seq,
                     .chain = chain, .commits = w->commits, .stream_pos = w->head, .salt = w->salt,
                     .generation = w->generation};
}

uint64_t log_stream_pos(const log_writer *w) {
    ASSERT(!w->in_record);
    return w->head;
}

uint64_t log_commits(const log_writer *w) { return w->commits; }
uint64_t log_commits_since_open(const log_writer *w) { return w->commits - w->commits_at_open; }

int log_sync(log_writer *w) {
    ASSERT(w != NULL && w->ring != NULL); /* any thread: nothing of the writer's own state */
    int rc = refuse_if_failed(w);
    return rc != 0 ? rc : flush_commits(w, true);
}

int log_wait_durable(log_writer *w, uint64_t seq) {
    ASSERT(w != NULL && w->ring != NULL); /* any thread: nothing of the writer's own state */
    int rc = refuse_if_failed(w);
    if (rc != 0) return rc;
    uint64_t committed = atomic_load(&w->committed_seq);
    if (seq > committed) {
        return err_set(MMSB_EINVAL, "mmsb_wait_durable: seq %llu is not committed (last commit %llu)",
                       (unsigned long long)seq, (unsigned long long)committed);
    }
    if (atomic_load(&w->durable_seq) >= seq) return 0;
    return flush_commits(w, true);
}

uint64_t log_durable_seq(const log_writer *w) { return atomic_load(&w->durable_seq); }
uint64_t log_committed_seq(const log_writer *w) { return atomic_load(&w->committed_seq); }

void log_set_durability(log_writer *w, uint32_t durability) {
    ASSERT(w != NULL);
    ASSERT(durability >= MMSB_DURABILITY_NONE && durability <= MMSB_DURABILITY_SYNC);
    atomic_store(&w->durability, durability);
}

void log_get_stats(log_writer *w, log_stats *out) {
    ASSERT(w != NULL && out != NULL);
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&w->io_mutex); /* a stalled io_uring changes the backend (io.h) */
    snprintf(out->backend, sizeof out->backend, "%s", w->io.kind == IO_URING ? "io_uring" : "sync");
    snprintf(out->reason, sizeof out->reason, "%s", w->io.reason);
    out->writes = w->io.writes;
    out->syncs = w->io.syncs;
    out->bytes_written = w->io.bytes;
    pthread_mutex_unlock(&w->io_mutex);
    out->segment_no = atomic_load(&w->seg_no);
    /* durable first: the flusher may advance it meanwhile, never past a
     * commit the writer had made by then. */
    out->durable_seq = atomic_load(&w->durable_seq);
    out->committed_seq = atomic_load(&w->committed_seq);
    out->commits = w->commits;
    ASSERT(out->durable_seq <= out->committed_seq);
}

/* ---- open and close ------------------------------------------------------------------ */

/* Segment files past the resume point hold nothing committed (recovery
 * said so): remove them, so that no stale segment follows the new data. */
static int remove_later_segments(log_writer *w, const log_resume *r) {
    bool removed = false;
    uint64_t last = max_u64(r->segment_files_last, r->segment_no);
    ASSERT(r->new_store || r->segment_no >= 1);
    ASSERT(last + 1 - r->segment_no <= (1ull << 40)); /* a bounded sweep over segment numbers */
    for (uint64_t no = r->segment_no + 1; no <= last + 1; no++) {
        char name[40];
        for (int temp = 0; temp < 2; temp++) { /* and a segment being made when a writer stopped */
            if (temp) segment_temp_name(no, name);
            else segment_name(no, name);
            if (unlinkat(w->dir_fd, name, 0) == 0) {
                removed = true;
            } else if (errno != ENOENT) {
                return err_set(err_from_errno(errno), "cannot remove %s: %s", name, strerror(errno));
            }
        }
    }
    return removed ? sync_dir(w) : 0;
}

/* The resume segment's size comes from its header, not from the options:
 * writing past it would put acknowledged records where no reader looks. */
static int resume_capacity(log_writer *w, const log_resume *r, const char *name) {
    uint8_t buf[SEG_HEADER_BYTES];
    seg_header h;
    ssize_t got = pread(w->seg_fd, buf, sizeof buf, 0);
    if (got != (ssize_t)sizeof buf) {
        return err_set(got < 0 ? err_from_errno(errno) : MMSB_ECORRUPT, "cannot read the header of %s: %s", name,
                       got < 0 ? strerror(errno) : "short file");
    }
    int rc = seg_header_decode(buf, &h);
    if (rc != 0) return rc;
    if (h.salt != r->salt || h.segment_no != r->segment_no || r->offset > h.segment_bytes) {
        return err_set(MMSB_ECORRUPT, "%s changed since recovery read it (salt, number or size)", name);
    }
    w->seg_bytes = h.segment_bytes;
    ASSERT(w->seg_bytes >= SEG_BYTES_MIN && r->offset <= w->seg_bytes);
    return 0;
}

/* A salvage cut holds only while nothing valid follows the resume point:
 * the damaged record and everything after it in the segment become zeros
 * (later segments are removed), synced before the first new record. A
 * crash part-way leaves damage that the next salvage cuts again. */
static int cut_tail(log_writer *w, uint64_t from) {
    ASSERT(from >= SEG_HEADER_BYTES && from <= w->seg_bytes);
    int rc = 0;
    if (fallocate(w->seg_fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)from,
                  (off_t)(w->seg_bytes - from)) != 0) {
        for (uint64_t off = from; rc == 0 && off < w->seg_bytes; off += ZERO_FILL_CHUNK) { /* no ZERO_RANGE here */
            uint64_t n = min_u64(ZERO_FILL_CHUNK, w->seg_bytes - off);
            if (pwrite(w->seg_fd, w->zeros, n, (off_t)off) != (ssize_t)n) {
                rc = err_set(err_from_errno(errno), "salvage: cannot zero the log after the cut: %s",
                             strerror(errno));
            }
        }
    }
    if (rc == 0 && fdatasync(w->seg_fd) != 0) {
        rc = err_set(err_from_errno(errno), "salvage: fdatasync after the cut: %s", strerror(errno));
    }
    return rc;
}

static int start_segment(log_writer *w, const log_resume *r) {
    ASSERT(w->seg_fd < 0 && w->dir_fd >= 0);
    if (r->new_store) {
        if (getrandom(&w->salt, sizeof w->salt, 0) != sizeof w->salt) {
            return err_set(MMSB_EIO, "getrandom for the store salt: %s", strerror(errno));
        }
        w->salt |= 1; /* never 0 */
        /* An imported store's log continues the history its state came from. */
        ASSERT(r->next_seq >= 1 && r->commits < r->next_seq);
        w->generation = 1;
        w->next_seq = r->next_seq;
        w->chain_value = r->chain;
        w->commits = r->commits;
        int rc = remove_later_segments(w, r);
        if (rc == 0) rc = create_segment(w, 1, true, &w->seg_fd);
        atomic_store(&w->seg_no, 1);
        w->seg_file_off0 = SEG_HEADER_BYTES;
        w->seg_bytes = segment_size(&w->cfg, 1);
        return rc;
    }
    ASSERT(r->salt != 0 && r->generation >= 1 && r->next_seq >= 1);
    ASSERT(r->offset >= SEG_HEADER_BYTES);
    w->salt = r->salt;
    w->generation = r->generation;
    w->next_seq = r->next_seq;
    w->chain_value = r->chain;
    w->commits = r->commits;
    int rc = remove_later_segments(w, r);
    if (rc != 0) return rc;
    char name[32];
    segment_name(r->segment_no, name);
    w->seg_fd = openat(w->dir_fd, name, O_RDWR | O_CLOEXEC);
    if (w->seg_fd < 0) return err_set(err_from_errno(errno), "cannot open %s: %s", name, strerror(errno));
    rc = resume_capacity(w, r, name);
    if (rc == 0 && r->cut_tail) rc = cut_tail(w, r->offset);
    if (rc != 0) return rc;
    atomic_store(&w->seg_no, r->segment_no);
    w->seg_file_off0 = r->offset;
    w->writeback_off = r->offset;
    ASSERT(w->seg_fd >= 0);
    return 0;
}

int log_writer_open(int dir_fd, const log_config *cfg, const log_resume *resume, log_writer **out) {
    ASSERT(cfg->buffer_bytes <= cfg->segment_bytes && cfg->buffer_bytes % 4096 == 0);
    log_writer *w = calloc(1, sizeof *w);
    if (w == NULL) return err_set(MMSB_ENOMEM, "cannot allocate the log writer");
    w->dir_fd = dir_fd;
    w->cfg = *cfg;
    ASSERT(cfg->segment_bytes >= SEG_BYTES_MIN && cfg->segment_bytes <= SEG_BYTES_MAX);
    w->ring_bytes = cfg->buffer_bytes;
    w->seg_fd = w->spare_fd = w->ring_fd = -1;
    atomic_init(&w->durability, cfg->durability);
    pthread_mutex_init(&w->io_mutex, NULL);
    pthread_mutex_init(&w->seal_mutex, NULL);
    pthread_mutex_init(&w->wake_mutex, NULL);
    pthread_mutex_init(&w->spare_mutex, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->wake_cond, &attr);
    pthread_condattr_destroy(&attr);
    w->zeros = calloc(1, ZERO_FILL_CHUNK);
    int rc = w->zeros == NULL ? err_set(MMSB_ENOMEM, "log writer buffers") : 0;
    if (rc == 0) rc = io_open(&w->io, cfg->io_backend, &cfg->hooks);
    if (rc == 0) rc = ring_open(w);
    if (rc == 0) rc = start_segment(w, resume);
    if (rc == 0) {
        chain_use_kernels(&w->chain, cfg->kern);
        chain_begin(&w->chain, w->chain_value);
        w->commit_first_seq = w->next_seq;
        w->commits_at_open = w->commits;
        atomic_store(&w->committed_seq, w->next_seq - 1);
        atomic_store(&w->durable_seq, w->next_seq - 1);
        if (!cfg->hooks.inline_flush) {
            rc = pthread_create(&w->flusher, NULL, flusher_main, w) == 0
                     ? 0 : err_set(MMSB_ENOMEM, "cannot start the log flusher thread");
            w->flusher_started = rc == 0;
        }
    }
    if (rc != 0) {
        log_writer_close(w);
        return rc;
    }
    ASSERT(w->seg_fd >= 0 && w->ring != NULL && w->next_seq >= 1);
    *out = w;
    return 0;
}

int log_writer_close(log_writer *w) {
    ASSERT(w == NULL || w->commits >= w->commits_at_open);
    if (w == NULL) return 0;
    ASSERT(!w->in_record);
    int rc = w->seg_fd >= 0 && log_failed(w) == 0 ? flush_commits(w, true) : 0;
    if (w->flusher_started) {
        pthread_mutex_lock(&w->wake_mutex);
        w->stop = true;
        pthread_cond_signal(&w->wake_cond);
        pthread_mutex_unlock(&w->wake_mutex);
        pthread_join(w->flusher, NULL);
    }
    if (w->seg_fd >= 0) close(w->seg_fd);
    if (w->spare_fd >= 0) spare_drop(w);
    if (w->ring != NULL) munmap(w->ring, 2 * w->ring_bytes);
    if (w->ring_fd >= 0) close(w->ring_fd);
    io_close(&w->io);
    pthread_cond_destroy(&w->wake_cond);
    pthread_mutex_destroy(&w->io_mutex);
    pthread_mutex_destroy(&w->seal_mutex);
    pthread_mutex_destroy(&w->wake_mutex);
    pthread_mutex_destroy(&w->spare_mutex);
    free(w->zeros);
    free(w);
    return rc;
}
