/*
 * io.h - how log bytes reach the disk: io_uring when the kernel allows it,
 * pwrite + fdatasync otherwise. Both write every byte (short writes are
 * resubmitted) and report errors as MMSB codes with a detail.
 */
#ifndef MMSB_TLOG_IO_H
#define MMSB_TLOG_IO_H

#include "../engine/base.h"

/* mmsb_options.io_backend / the backend in use */
enum { IO_AUTO = 0, IO_URING = 1, IO_SYNC = 2 };

/* Failures a test can inject (all off when zero). */
typedef struct io_faults {
    uint64_t writes_ok;      /* fail write calls after this many succeed */
    int write_errno;         /* ... with this errno (EIO, ENOSPC, ...) */
    uint64_t syncs_ok;       /* fail syncs after this many succeed */
    int sync_errno;
    uint32_t short_write_max; /* cut every write to at most this many bytes */
} io_faults;

typedef struct log_io {
    uint32_t kind;     /* IO_URING or IO_SYNC */
    char reason[128];  /* why this backend, for people */
    void *uring;       /* struct io_uring, when kind == IO_URING */
    io_faults faults;
    uint64_t writes, syncs, bytes; /* counters */
} log_io;

/* Picks the backend: `requested` (IO_AUTO honours MMSB_IO=uring|sync) and
 * probes io_uring, falling back to IO_SYNC with the reason when it is not
 * available. MMSB_ENOTSUP only when io_uring was demanded and is missing. */
int io_open(log_io *io, uint32_t requested);
void io_close(log_io *io);
/* Writes all len bytes at file offset off, then fdatasync when sync. */
int io_write(log_io *io, int fd, const uint8_t *buf, uint64_t len, uint64_t off, bool sync);
int io_datasync(log_io *io, int fd);

#endif /* MMSB_TLOG_IO_H */
