/*
 * io.h - how log bytes reach the disk: io_uring when the kernel allows it,
 * pwrite + fdatasync otherwise. Both write every byte (short writes are
 * resubmitted) and report errors as MMSB codes with a detail.
 */
#ifndef MMSB_TLOG_IO_H
#define MMSB_TLOG_IO_H

#include "../engine/base/base.h"

/* mmsb_options.io_backend / the backend in use */
enum { IO_AUTO = 0, IO_URING = 1, IO_SYNC = 2 };

/* Failures a test can inject (all off when zero). */
typedef struct io_faults {
    uint64_t writes_ok;      /* fail write calls after this many succeed */
    int write_errno;         /* ... with this errno (EIO, ENOSPC, ...) */
    uint64_t syncs_ok;       /* fail syncs after this many succeed */
    int sync_errno;
    uint32_t short_write_max; /* cut every write to at most this many bytes */
    uint32_t uring_stalls;    /* the next this many io_uring rounds stall: their requests wait
                                 behind a read of an empty pipe, as if the kernel never ran them */
    uint32_t uring_stall_ms;  /* how long a round waits before it calls itself stalled (0: 5 s) */
} io_faults;

/* A simulator's view of the store's I/O (tests/test_sim.c); all off in
 * every ordinary open. The hook is called before each log write (its bytes
 * not yet written), before each sync, after each completed sync, and at
 * named points of a checkpoint; a nonzero return from a call made before an
 * operation is an errno that operation fails with instead. At the point
 * "recovery-scan-thread" a nonzero return stands for a thread that could not
 * be made: recovery's checking pass then runs before the applying pass; at
 * "recovery-aborted-ranges" (either pass growing its copy of the rolled-back
 * ranges) for memory that could not be had: the open fails with
 * MMSB_ENOMEM; at "log-spare-slice" (before each slice of zeros the next
 * segment gets while the log syncs: SYNC and GROUP) for a slice that
 * failed: that segment is dropped, and the roll-over makes it itself. Calls
 * are serialised by the writer's I/O lock, made by the writing thread, or
 * made under recovery's own lock (recovery-aborted-ranges, from either
 * pass); log-spare-slice comes from the flusher thread unless inline_flush,
 * under the spare's lock only, so a hook may see it beside the others. */
typedef enum { IO_EV_WRITE, IO_EV_SYNC, IO_EV_SYNCED, IO_EV_POINT } io_event_kind;

typedef struct io_event {
    io_event_kind kind;
    int fd;                /* WRITE, SYNC, SYNCED */
    const uint8_t *buf;    /* WRITE: the bytes */
    uint64_t len, off;     /* WRITE */
    const char *point;     /* POINT: its name */
} io_event;

typedef int (*io_hook_fn)(void *ctx, const io_event *ev);

typedef struct io_hooks {
    io_hook_fn fn;         /* or NULL */
    void *ctx;
    bool inline_flush;     /* no flusher thread: the writing thread flushes
                              when it must, and prepares the next segment
                              itself, so that I/O happens in one order */
} io_hooks;

/* Calls the hook, if any; its errno, or 0. */
int io_hook(const io_hooks *h, const io_event *ev);

typedef struct log_io {
    uint32_t kind;     /* IO_URING or IO_SYNC */
    char reason[128];  /* why this backend, for people */
    void *uring;       /* struct io_uring, when kind == IO_URING */
    io_faults faults;
    io_hooks hooks;
    uint64_t writes, syncs, bytes; /* counters */
} log_io;

/* Picks the backend: `requested` (IO_AUTO honours MMSB_IO=uring|sync) and
 * probes io_uring, falling back to IO_SYNC with the reason when it is not
 * available. MMSB_ENOTSUP only when io_uring was demanded and is missing. */
MUST_CHECK int io_open(log_io *io, uint32_t requested, const io_hooks *hooks);
void io_close(log_io *io);
/* Writes all len bytes at file offset off, then fdatasync when sync.
 * An io_uring round that completes nothing for a while (seen once: the
 * kernel took the requests and never ran them) has its requests cancelled;
 * when they were, the round is done again with pwrite + fdatasync, and the
 * backend stays IO_SYNC from then on (the reason says why). A round whose
 * requests are running but do not finish fails after 10 minutes. */
MUST_CHECK int io_write(log_io *io, int fd, const uint8_t *buf, uint64_t len, uint64_t off, bool sync);
MUST_CHECK int io_datasync(log_io *io, int fd);

#endif /* MMSB_TLOG_IO_H */
