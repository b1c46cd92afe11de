/*
 * writer.h - appending records, committing them, and getting them onto
 * stable storage.
 *
 * Records are built in place in a ring buffer (a memfd mapped twice, back to
 * back, so every record and every flush range is contiguous): appending is a
 * few stores and a CRC, with no system call. Bytes reach the segment file
 * in batches: on a SYNC commit by the committing thread (one write and one
 * fdatasync for everything committed so far), and otherwise by a flusher
 * thread within a bounded window of time and bytes (GROUP: write and
 * fdatasync; NONE: write only). Any I/O error is sticky: the writer refuses
 * every later append until the store is reopened.
 */
#ifndef MMSB_TLOG_WRITER_H
#define MMSB_TLOG_WRITER_H

#include "format.h"
#include "io.h"

typedef struct log_config {
    uint64_t segment_bytes;
    uint64_t buffer_bytes;       /* ring size, <= segment_bytes */
    uint64_t group_window_us;    /* GROUP/NONE: flush within this time ... */
    uint64_t group_window_bytes; /* ... or once this many bytes wait */
    uint32_t durability;         /* MMSB_DURABILITY_* */
    uint32_t io_backend;         /* IO_* */
    io_hooks hooks;              /* a simulator's (io.h); zero otherwise */
    const struct kern_ops *kern; /* for the chain hash; NULL: the portable XXH3 */
} log_config;

/* Where to continue, from recovery (or a new store). */
typedef struct log_resume {
    bool new_store;             /* its first segment starts at next_seq (1, or
                                   after an imported state: chain, commits) */
    uint64_t salt;
    uint32_t generation;        /* the generation to write with */
    uint64_t next_seq;
    h128 chain;                 /* chain value of the last commit */
    uint64_t commits;           /* commits so far */
    uint64_t segment_no;
    uint64_t offset;            /* in that segment */
    uint64_t segment_first_seq;
    uint64_t segment_files_last;/* highest segment file number present */
    bool cut_tail;              /* salvage: zero what follows offset in its
                                   segment, so that the cut outlives this writer */
} log_resume;

typedef struct log_stats {
    char backend[16];
    char reason[128];
    uint64_t writes, syncs, bytes_written;
    uint64_t segment_no;        /* the segment being written */
    uint64_t committed_seq, durable_seq;
    uint64_t commits;
} log_stats;

typedef struct log_writer log_writer;

/* Opens the writer: picks the I/O backend, creates the first segment of a
 * new store or continues an existing one (removing segment files past the
 * resume point, which hold nothing committed), and starts the flusher. */
/* The size of segment number no: a store's log starts small and grows, so
 * that its disk footprint follows its data. Segment 1 is 4 MiB and each
 * next one doubles, up to cfg->segment_bytes (segment 5 on, by default). */
uint64_t segment_size(const log_config *cfg, uint64_t no);

MUST_CHECK int log_writer_open(int dir_fd, const log_config *cfg, const log_resume *resume,
                    log_writer **out);
/* Flushes and syncs what is committed, stops the flusher, releases all. */
int log_writer_close(log_writer *w);

/* Reserves a record of payload_len bytes and returns where to write its
 * payload; log_append_done completes it. Fails only on an I/O error (then
 * the writer is failed) or a payload above REC_PAYLOAD_MAX. */
MUST_CHECK int log_append(log_writer *w, uint16_t type, uint32_t payload_len, uint8_t **payload_out);
void log_append_done(log_writer *w);

/* Appends the COMMIT of every record since the previous one, with the state
 * root when `root` is not NULL, and makes it as durable as `durability`
 * asks. *seq_out is the COMMIT's sequence number. */
MUST_CHECK int log_commit(log_writer *w, const h128 *root, uint32_t durability, uint64_t *seq_out);
/* Whether records were appended since the last commit (or abort). */
bool log_pending(const log_writer *w);
/* Makes the writer fail (sticky) with code and a reason. */
void log_fail(log_writer *w, int code, const char *why);
/* Voids every record appended since the last commit (a commit that failed
 * halfway) with an ABORT record; nothing when there are none. */
MUST_CHECK int log_abort(log_writer *w);
/* The last commit of a clean close: everything before it synced first, then
 * it, with the state root and the CLOSE flag, synced too. */
MUST_CHECK int log_commit_close(log_writer *w, const h128 *root);
/* Where the log stands between commits: what a checkpoint records. It seals
 * what was appended (the chain value), so it may wait for a flush's write. */
typedef struct log_pos {
    uint64_t segment, offset; /* where the next record goes */
    uint64_t next_seq;
    h128 chain;               /* of the last commit */
    uint64_t commits;
    uint64_t stream_pos;      /* bytes appended since the writer opened */
    uint64_t salt;
    uint32_t generation;
} log_pos;
void log_position(log_writer *w, log_pos *out);
/* Bytes appended since the writer opened (log_pos.stream_pos), between
 * commits: what the checkpoint policy looks at after every call. */
uint64_t log_stream_pos(const log_writer *w);
/* Appends a CHECKPOINT marker between commits (outside the chain). */
MUST_CHECK int log_append_checkpoint(log_writer *w, const rec_checkpoint *ck);
/* Commits in the whole log, and since this writer was opened. */
uint64_t log_commits(const log_writer *w);
uint64_t log_commits_since_open(const log_writer *w);

/* Everything committed so far is on stable storage when this returns 0. */
MUST_CHECK int log_sync(log_writer *w);
/* Blocks until commit `seq` is durable (syncing now if it must). */
MUST_CHECK int log_wait_durable(log_writer *w, uint64_t seq);
uint64_t log_durable_seq(const log_writer *w);
uint64_t log_committed_seq(const log_writer *w);

void log_set_durability(log_writer *w, uint32_t durability);
void log_get_stats(log_writer *w, log_stats *out);
/* The sticky error, 0 while the writer is healthy. */
int log_failed(const log_writer *w);
/* For tests: the injected I/O faults. */
io_faults *log_faults(log_writer *w);

#endif /* MMSB_TLOG_WRITER_H */
