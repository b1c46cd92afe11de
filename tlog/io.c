/*
 * io.c - the two log I/O backends (see io.h).
 *
 * io_uring: a write and an fdatasync are submitted linked, in one system
 * call. A short write breaks the link (the kernel cancels the fsync), so the
 * rest of the bytes are resubmitted, again linked to an fsync, until all are
 * written. pwrite: the same contract with plain system calls.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h"

enum {
    URING_ENTRIES = 8,
    WRITE_ATTEMPTS_MAX = 4096, /* no progress after this many tries: give up */
    URING_STALL_MS = 5000,     /* no completion for this long: cancel the round's requests */
    URING_WAITS_MAX = 120,     /* and give up after this many such waits (10 minutes) */
    /* user_data of a round's requests */
    URING_TAG_WRITE = 1,
    URING_TAG_SYNC = 2,
    URING_TAG_CANCEL = 3,
    URING_TAG_STALL = 4,
};

static int fail(int errnum, const char *what, uint64_t len, uint64_t off) {
    ASSERT(what[0] != '\0');
    ASSERT(errnum > 0 && what != NULL);
    return err_set(err_from_errno(errnum), "log %s of %llu bytes at offset %llu: %s", what,
                   (unsigned long long)len, (unsigned long long)off, strerror(errnum));
}

int io_hook(const io_hooks *h, const io_event *ev) {
    ASSERT(ev != NULL && ev->kind >= IO_EV_WRITE && ev->kind <= IO_EV_POINT);
    return h != NULL && h->fn != NULL ? h->fn(h->ctx, ev) : 0;
}

static int hook_write(log_io *io, int fd, const uint8_t *buf, uint64_t len, uint64_t off) {
    ASSERT(io != NULL);
    ASSERT(fd >= 0 && buf != NULL && len > 0);
    io_event ev = {.kind = IO_EV_WRITE, .fd = fd, .buf = buf, .len = len, .off = off};
    return io_hook(&io->hooks, &ev);
}

static int hook_sync(log_io *io, int fd, io_event_kind kind) {
    ASSERT(io != NULL);
    ASSERT(fd >= 0 && (kind == IO_EV_SYNC || kind == IO_EV_SYNCED));
    io_event ev = {.kind = kind, .fd = fd};
    return io_hook(&io->hooks, &ev);
}

/* Injected faults: returns an errno to fail with, or 0. */
static int fault_write(log_io *io) {
    ASSERT(io->faults.write_errno >= 0);
    ASSERT(io != NULL);
    if (io->faults.write_errno == 0) return 0;
    if (io->faults.writes_ok > 0) {
        io->faults.writes_ok--;
        return 0;
    }
    return io->faults.write_errno;
}

static int fault_sync(log_io *io) {
    ASSERT(io->faults.sync_errno >= 0);
    ASSERT(io != NULL);
    if (io->faults.sync_errno == 0) return 0;
    if (io->faults.syncs_ok > 0) {
        io->faults.syncs_ok--;
        return 0;
    }
    return io->faults.sync_errno;
}

static uint64_t clamp_write(const log_io *io, uint64_t len) {
    ASSERT(io != NULL);
    ASSERT(len > 0);
    uint32_t cut = io->faults.short_write_max;
    return cut != 0 && len > cut ? cut : len;
}

/* ---- pwrite + fdatasync ------------------------------------------------------- */

static int sync_write(log_io *io, int fd, const uint8_t *buf, uint64_t len, uint64_t off) {
    ASSERT(io->kind == IO_SYNC && fd >= 0);
    ASSERT(buf != NULL && len > 0);
    uint64_t done = 0;
    for (uint32_t attempt = 0; done < len; attempt++) {
        if (attempt == WRITE_ATTEMPTS_MAX) return fail(EIO, "write (no progress)", len, off);
        int injected = fault_write(io);
        if (injected == 0) injected = hook_write(io, fd, buf + done, clamp_write(io, len - done), off + done);
        if (injected != 0) return fail(injected, "write", len, off);
        ssize_t n = pwrite(fd, buf + done, clamp_write(io, len - done), (off_t)(off + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail(errno, "write", len, off);
        done += (uint64_t)n;
        io->writes++;
    }
    io->bytes += len;
    ASSERT(done == len);
    return 0;
}

static int sync_datasync(log_io *io, int fd) {
    ASSERT(io != NULL);
    ASSERT(io->kind == IO_SYNC && fd >= 0);
    int injected = fault_sync(io);
    if (injected == 0) injected = hook_sync(io, fd, IO_EV_SYNC);
    if (injected != 0) return fail(injected, "fdatasync", 0, 0);
    while (fdatasync(fd) != 0) {
        if (errno != EINTR) return fail(errno, "fdatasync", 0, 0);
    }
    io->syncs++;
    hook_sync(io, fd, IO_EV_SYNCED);
    return 0;
}

/* ---- io_uring ------------------------------------------------------------------- */

/* What came back of one round. */
typedef struct uring_reaped {
    int64_t written;
    int errnum;
    bool synced;
    bool cancelled; /* the stall cancel took a request back: nothing of it ran */
} uring_reaped;

/* A test's stall: a read of an empty pipe, linked ahead of the round's
 * requests, holds them back until they are cancelled. */
static int stall_ahead(struct io_uring *ring, int pipe_fds[2], uint8_t *byte) {
    ASSERT(ring != NULL && byte != NULL);
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) return fail(errno, "stall pipe", 0, 0);
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    ASSERT(sqe != NULL);
    io_uring_prep_read(sqe, pipe_fds[0], byte, 1, 0);
    sqe->user_data = URING_TAG_STALL;
    sqe->flags |= IOSQE_IO_LINK;
    return 0;
}

/* Asks the kernel to take back every request of the ring. */
static void cancel_all(struct io_uring *ring) {
    ASSERT(ring != NULL);
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    ASSERT(sqe != NULL); /* the round's requests were submitted: their slots are free */
    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
    sqe->user_data = URING_TAG_CANCEL;
    io_uring_submit(ring);
}

static void note_cqe(const struct io_uring_cqe *cqe, bool cancel_sent, uring_reaped *out) {
    ASSERT(cqe != NULL && out != NULL);
    if (cqe->user_data == URING_TAG_WRITE) {
        if (cqe->res >= 0) out->written = cqe->res;
        else if (cqe->res == -ECANCELED && cancel_sent) out->cancelled = true;
        else out->errnum = -cqe->res;
    } else if (cqe->user_data == URING_TAG_SYNC) {
        if (cqe->res == 0) out->synced = true;
        else if (cqe->res == -ECANCELED && cancel_sent) out->cancelled = true;
        else if (cqe->res != -ECANCELED) out->errnum = -cqe->res; /* else a short write broke the link */
    }
    /* The cancel's own result and the stall read's say nothing more. */
}

/* Reaps `want` completions, waiting at most the stall time for each; a
 * stall cancels everything in flight once and goes on reaping, so that no
 * request of this round is left running when it returns. */
static int uring_reap(log_io *io, unsigned want, uint64_t len, uint64_t off, uring_reaped *out) {
    struct io_uring *ring = io->uring;
    ASSERT(ring != NULL && want >= 1 && want <= 3);
    uint32_t stall_ms = io->faults.uring_stall_ms != 0 ? io->faults.uring_stall_ms : URING_STALL_MS;
    bool cancel_sent = false;
    uint32_t waits = 0;
    for (unsigned seen = 0; seen < want;) {
        struct __kernel_timespec ts = {.tv_sec = stall_ms / 1000, .tv_nsec = (long long)(stall_ms % 1000) * 1000000};
        struct io_uring_cqe *cqe;
        int rc = io_uring_wait_cqe_timeout(ring, &cqe, &ts);
        if (rc == -ETIME || rc == -EINTR) {
            if (rc == -ETIME && ++waits >= URING_WAITS_MAX) return fail(ETIMEDOUT, "io_uring completion", len, off);
            if (rc == -ETIME && !cancel_sent) {
                cancel_all(ring);
                cancel_sent = true;
                want++;
            }
            continue;
        }
        if (rc < 0) return fail(-rc, "io_uring wait", len, off);
        note_cqe(cqe, cancel_sent, out);
        io_uring_cqe_seen(ring, cqe);
        seen++;
    }
    ASSERT(out->written >= 0 && (uint64_t)out->written <= len);
    return 0;
}

/* One round: a write of the remaining bytes, linked to an fdatasync when
 * sync. Returns the bytes written (may be short) or a negative MMSB code;
 * *stalled when the round was cancelled (see io.h). */
static int64_t uring_round(log_io *io, int fd, const uint8_t *buf, uint64_t len, uint64_t off,
                           bool sync, bool *synced, bool *stalled) {
    struct io_uring *ring = io->uring;
    ASSERT(ring != NULL && fd >= 0 && synced != NULL && stalled != NULL);
    ASSERT(len > 0 || sync);
    int injected = len > 0 ? fault_write(io) : 0;
    if (injected == 0 && len > 0) injected = hook_write(io, fd, buf, clamp_write(io, len), off);
    if (injected != 0) return fail(injected, "write", len, off);
    int injected_sync = sync ? fault_sync(io) : 0;
    if (injected_sync == 0 && sync) injected_sync = hook_sync(io, fd, IO_EV_SYNC);
    unsigned want = 0;
    int stall_fds[2] = {-1, -1};
    uint8_t stall_byte;
    if (io->faults.uring_stalls > 0) {
        io->faults.uring_stalls--;
        int rc = stall_ahead(ring, stall_fds, &stall_byte);
        if (rc != 0) return rc;
        want++;
    }
    if (len > 0) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
        ASSERT(sqe != NULL);
        io_uring_prep_write(sqe, fd, buf, (unsigned)clamp_write(io, len), off);
        sqe->user_data = URING_TAG_WRITE;
        if (sync) sqe->flags |= IOSQE_IO_LINK;
        want++;
    }
    if (sync) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
        ASSERT(sqe != NULL);
        io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
        sqe->user_data = URING_TAG_SYNC;
        want++;
    }
    int rc = io_uring_submit(ring);
    uring_reaped got = {0};
    if (rc >= 0) rc = uring_reap(io, want, len, off, &got);
    else rc = fail(-rc, "io_uring submit", len, off);
    if (stall_fds[0] >= 0) close(stall_fds[0]);
    if (stall_fds[1] >= 0) close(stall_fds[1]);
    if (rc != 0) return rc;
    *synced = got.synced;
    *stalled = got.cancelled;
    if (got.errnum == 0 && injected_sync != 0 && *synced) {
        *synced = false;
        got.errnum = injected_sync;
    }
    if (got.errnum != 0) return fail(got.errnum, got.written < (int64_t)len ? "write" : "fdatasync", len, off);
    if (got.written > 0) io->writes++;
    if (*synced) io->syncs++;
    if (*synced) hook_sync(io, fd, IO_EV_SYNCED);
    return got.written;
}

/* The kernel took a round's requests and ran none: from now on the plain
 * system calls, which cannot stall that way. */
static void fall_back_after_stall(log_io *io) {
    ASSERT(io->kind == IO_URING);
    io->kind = IO_SYNC;
    snprintf(io->reason, sizeof io->reason,
             "pwrite+fdatasync: io_uring stalled (a write or sync did not complete; it was cancelled)");
}

static int uring_write(log_io *io, int fd, const uint8_t *buf, uint64_t len, uint64_t off, bool sync) {
    ASSERT(io->kind == IO_URING && fd >= 0);
    ASSERT(buf != NULL || len == 0);
    uint64_t done = 0;
    bool synced = false;
    for (uint32_t attempt = 0; done < len || (sync && !synced); attempt++) {
        if (attempt == WRITE_ATTEMPTS_MAX) return fail(EIO, "write (no progress)", len, off);
        bool stalled = false;
        int64_t n = uring_round(io, fd, buf + done, len - done, off + done, sync, &synced, &stalled);
        if (n < 0) return (int)n;
        done += (uint64_t)n;
        if (stalled) {
            fall_back_after_stall(io);
            io->bytes += done; /* sync_write counts the rest */
            int rc = done < len ? sync_write(io, fd, buf + done, len - done, off + done) : 0;
            if (rc == 0 && sync && !synced) rc = sync_datasync(io, fd);
            return rc;
        }
        /* A short write cancelled the linked fsync: go round again. */
    }
    io->bytes += len;
    return 0;
}

/* ---- choosing ------------------------------------------------------------------- */

static int uring_probe(log_io *io) {
    ASSERT(io->uring == NULL);
    struct io_uring *ring = calloc(1, sizeof *ring);
    if (ring == NULL) return -ENOMEM;
    int rc = io_uring_queue_init(URING_ENTRIES, ring, 0);
    if (rc < 0) {
        free(ring);
        return rc;
    }
    struct io_uring_probe *probe = io_uring_get_probe_ring(ring);
    bool ok = probe != NULL && io_uring_opcode_supported(probe, IORING_OP_WRITE) &&
              io_uring_opcode_supported(probe, IORING_OP_FSYNC);
    if (probe != NULL) io_uring_free_probe(probe);
    if (!ok) {
        io_uring_queue_exit(ring);
        free(ring);
        return -EOPNOTSUPP;
    }
    io->uring = ring;
    ASSERT(io->uring != NULL);
    return 0;
}

int io_open(log_io *io, uint32_t requested, const io_hooks *hooks) {
    ASSERT(requested == IO_AUTO || requested == IO_URING || requested == IO_SYNC);
    ASSERT(io != NULL && requested <= IO_SYNC);
    memset(io, 0, sizeof *io);
    if (hooks != NULL) io->hooks = *hooks;
    const char *env = getenv("MMSB_IO");
    const char *source = "options";
    if (requested == IO_AUTO && env != NULL && env[0] != '\0') {
        if (strcmp(env, "uring") == 0) requested = IO_URING;
        else if (strcmp(env, "sync") == 0) requested = IO_SYNC;
        else return err_set(MMSB_EINVAL, "MMSB_IO=%s: expected uring or sync", env);
        source = "MMSB_IO";
    }
    if (requested == IO_SYNC) {
        io->kind = IO_SYNC;
        snprintf(io->reason, sizeof io->reason, "pwrite+fdatasync: chosen by %s", source);
        return 0;
    }
    int rc = uring_probe(io);
    if (rc == 0) {
        io->kind = IO_URING;
        snprintf(io->reason, sizeof io->reason, "io_uring: probed at open, write and fsync supported");
        return 0;
    }
    if (requested == IO_URING) {
        return err_set(MMSB_ENOTSUP, "io_uring demanded by %s but unavailable: %s", source, strerror(-rc));
    }
    io->kind = IO_SYNC;
    snprintf(io->reason, sizeof io->reason,
             "pwrite+fdatasync: io_uring unavailable (%s; kernel.io_uring_disabled or seccomp?)",
             strerror(-rc));
    return 0;
}

void io_close(log_io *io) {
    ASSERT(io->kind == IO_SYNC || io->kind == IO_URING || io->kind == 0);
    ASSERT(io != NULL);
    if (io->uring != NULL) {
        io_uring_queue_exit(io->uring);
        free(io->uring);
        io->uring = NULL;
    }
}

int io_write(log_io *io, int fd, const uint8_t *buf, uint64_t len, uint64_t off, bool sync) {
    ASSERT(fd >= 0 && (buf != NULL || len == 0));
    ASSERT(len > 0 || sync);
    if (io->kind == IO_URING) return uring_write(io, fd, buf, len, off, sync);
    int rc = len > 0 ? sync_write(io, fd, buf, len, off) : 0;
    if (rc == 0 && sync) rc = sync_datasync(io, fd);
    return rc;
}

int io_datasync(log_io *io, int fd) {
    ASSERT(io != NULL);
    ASSERT(fd >= 0 && (io->kind == IO_URING || io->kind == IO_SYNC));
    if (io->kind == IO_URING) return uring_write(io, fd, NULL, 0, 0, true);
    return sync_datasync(io, fd);
}
