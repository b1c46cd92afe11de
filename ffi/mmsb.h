/*
 * mmsb.h - the public C API of MMSB, a deterministic shared-memory page engine.
 *
 * This is the only public header. Every function returns 0 on success or a
 * negative MMSB_E* code; mmsb_strerror() names a code and mmsb_last_error()
 * gives the calling thread's detail message for its most recent failure.
 * Handles are opaque. Structs that may grow carry their own size in their
 * first field, so a program built against an older header keeps working.
 *
 * Threading (see README.md, "Threading model"): one thread at a time may be
 * inside the writing calls of an engine (a second one gets MMSB_EBUSY); the
 * reading calls mmsb_page_info, mmsb_page_read and mmsb_page_view may run on
 * any number of threads concurrently with the writer.
 */
#ifndef MMSB_H
#define MMSB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(MMSB_BUILDING_LIBRARY)
#define MMSB_API __attribute__((visibility("default")))
#else
#define MMSB_API
#endif

/* ---- versions ----------------------------------------------------------- */

#define MMSB_VERSION_MAJOR 0
#define MMSB_VERSION_MINOR 1
#define MMSB_VERSION_PATCH 0
#define MMSB_VERSION_STRING "0.1.0"
/* The ABI version: bumped on any incompatible change of this header. The
 * shared library's soname carries it (libmmsb.so.1). */
#define MMSB_ABI_VERSION 1

/* Returns the library's version string; stores the parts where not NULL. */
MMSB_API const char *mmsb_version(int *major, int *minor, int *patch);
/* Returns the library's MMSB_ABI_VERSION (compare with the header's). */
MMSB_API int mmsb_abi_version(void);

/* ---- errors --------------------------------------------------------------- */

/* MMSB's own codes live in a reserved negative range, clear of negative errno
 * values and of LMDB's codes. mmsb_strerror also names errno values (either
 * sign), so it is a superset of strerror for system errors. */
#define MMSB_OK 0
#define MMSB_ERRCODE_FIRST (-32001)
#define MMSB_EINVAL (-32001)    /* invalid argument; the detail names it */
#define MMSB_ENOTFOUND (-32002) /* no such page, store or directory */
#define MMSB_ECONFLICT (-32003) /* expected epoch differs from the page's */
#define MMSB_ENOSPC (-32004)    /* a limit is reached: arena, page ids, disk */
#define MMSB_EIO (-32005)       /* an operating-system call failed */
#define MMSB_ECORRUPT (-32006)  /* bytes on disk fail validation */
#define MMSB_EVERSION (-32007)  /* ABI or on-disk format version mismatch */
#define MMSB_EBUSY (-32008)     /* store locked elsewhere, or engine in use */
#define MMSB_ENOTSUP (-32009)   /* not supported here (CPU, kernel, build) */
#define MMSB_ENOMEM (-32010)    /* process memory exhausted */
#define MMSB_ERRCODE_LAST (-32010)

/* A static, never-NULL description of any code. */
MMSB_API const char *mmsb_strerror(int code);
/* The detail message of the calling thread's last failed call: which
 * argument, what value, which limit. Valid until this thread's next failing
 * call; never NULL. Successful calls leave it unchanged. */
MMSB_API const char *mmsb_last_error(void);

/* ---- options and engine --------------------------------------------------- */

typedef struct mmsb_engine mmsb_engine;

/* mmsb_options.flags */
#define MMSB_OPEN_CREATE 0x1u  /* create the store directory if missing */
#define MMSB_OPEN_SALVAGE 0x2u /* open a corrupt log: keep the valid prefix up
                                  to the last good commit, drop the rest (the
                                  engine info says what was dropped) */

/* mmsb_options.kernel: which vectorised byte kernels to use. AUTO picks the
 * best the CPU offers; the environment variable MMSB_KERNEL
 * (portable|avx2|avx512) overrides AUTO, for example under valgrind. */
#define MMSB_KERNEL_AUTO 0u
#define MMSB_KERNEL_PORTABLE 1u
#define MMSB_KERNEL_AVX2 2u
#define MMSB_KERNEL_AVX512 3u

/* Durability of commits (mmsb_options.durability, mmsb_set_durability):
 * NONE: the OS decides when bytes reach the disk; mmsb_sync() is a barrier.
 * GROUP: a commit returns at once; it becomes durable within the group
 *   window (group_window_us / group_window_bytes), sharing one write and one
 *   fdatasync with other commits; mmsb_wait_durable(seq) waits for it.
 * SYNC: a commit returns once its bytes are on stable storage. */
#define MMSB_DURABILITY_NONE 1u
#define MMSB_DURABILITY_GROUP 2u
#define MMSB_DURABILITY_SYNC 3u

/* mmsb_options.io_backend: AUTO uses io_uring when the kernel allows it and
 * falls back to pwrite + fdatasync; the environment variable MMSB_IO
 * (uring|sync) overrides AUTO. */
#define MMSB_IO_AUTO 0u
#define MMSB_IO_URING 1u
#define MMSB_IO_SYNC 2u

/* mmsb_options.gpu */
#define MMSB_GPU_AUTO 0u /* probe for a CUDA device at open */
#define MMSB_GPU_OFF 1u  /* never touch the CUDA runtime */

typedef struct mmsb_options {
    uint32_t struct_size;      /* sizeof(mmsb_options) of the caller */
    uint32_t abi_version;      /* MMSB_ABI_VERSION of the caller's header */
    uint32_t flags;            /* MMSB_OPEN_*; default MMSB_OPEN_CREATE */
    uint32_t kernel;           /* MMSB_KERNEL_*; default AUTO */
    uint64_t arena_bytes_max;  /* page bytes in memory; default 8 GiB */
    uint64_t arena_grow_bytes; /* pre-faulted per step; default 64 MiB */
    uint64_t arena_prefault_bytes; /* pre-faulted at open; default 0. The
                                  kernel commits memory at 1 GB/s or less:
                                  set this to keep that off the first creates */
    uint64_t page_bytes_max;   /* largest page; default 1 GiB */
    uint64_t pages_max;        /* page ids a store can ever hand out
                                  (ids are never reused); default 2^28 */
    uint32_t gpu;              /* MMSB_GPU_*; default AUTO */
    uint32_t reserved0;        /* must be 0 */
    /* the transaction log */
    uint32_t durability;       /* MMSB_DURABILITY_*; default SYNC */
    uint32_t io_backend;       /* MMSB_IO_*; default AUTO */
    uint64_t segment_bytes;    /* log segment size; default 64 MiB
                                  (4 MiB .. 1 GiB, a multiple of 4 KiB) */
    uint64_t log_buffer_bytes; /* in-memory log buffer; default 16 MiB
                                  (1 MiB .. segment_bytes, multiple of 4 KiB) */
    uint64_t group_window_us;  /* GROUP/NONE: bytes reach the file within
                                  this time; default 1000 (1 .. 10^6) */
    uint64_t group_window_bytes; /* ... or once this many wait; default 1 MiB */
    uint32_t root_every_commits; /* record the state root in every Nth
                                  commit; default 64 (1 = every commit) */
    uint32_t reserved1;        /* must be 0 */
} mmsb_options;

/* Fills *options with the defaults and records the caller's struct size and
 * ABI version, which mmsb_open checks. Use the macro. */
MMSB_API int mmsb_options_init(mmsb_options *options, uint32_t struct_size,
                               uint32_t abi_version);
#define MMSB_OPTIONS_INIT(options)                                             \
    mmsb_options_init((options), (uint32_t)sizeof(*(options)), MMSB_ABI_VERSION)

/* Opens (and with MMSB_OPEN_CREATE creates) the store in directory dir. Only
 * one engine at a time may hold a store: a second open gets MMSB_EBUSY. */
MMSB_API int mmsb_open(const char *dir, const mmsb_options *options,
                       mmsb_engine **engine_out);
/* Closes the engine and releases everything it holds. NULL is a no-op. If
 * anything was committed since open, the log is synced and a last commit
 * records the state root, which the next open checks. An error here (for
 * example MMSB_EIO) means that commits not yet durable may be lost; the
 * engine is released either way. After this, views and the handle are
 * invalid. */
MMSB_API int mmsb_close(mmsb_engine *engine);

typedef struct mmsb_engineinfo {
    uint32_t struct_size;          /* set by the caller: sizeof(mmsb_engineinfo) */
    uint32_t reserved0;
    char kernel[16];               /* byte kernels in use: "avx512", ... */
    char gpu[96];                  /* what the GPU probe found, in words */
    uint64_t pages_live;           /* pages that exist now */
    uint64_t page_id_next;         /* the id the next create gets */
    uint64_t pages_max;            /* limit on ids (options) */
    uint64_t page_bytes_max;       /* limit on one page's size (options) */
    uint64_t arena_bytes_max;      /* limit on the page-data arena (options) */
    uint64_t arena_bytes_used;     /* arena bytes held by live pages */
    uint64_t arena_bytes_faulted;  /* arena bytes pre-faulted so far */
    uint64_t commit_seq;           /* sequence number of the last commit */
    /* the log */
    char io_backend[16];           /* "io_uring" or "sync" */
    char io_reason[128];           /* why that backend, in words */
    uint32_t durability;           /* MMSB_DURABILITY_* now in force */
    uint32_t recovery_flags;       /* MMSB_RECOVERED_* */
    uint64_t durable_seq;          /* commits up to here are on stable storage */
    uint64_t log_segment;          /* the segment being written */
    uint64_t log_bytes_written;
    uint64_t log_writes;
    uint64_t log_syncs;
    /* what the last open found */
    uint64_t recovered_commits;    /* commits replayed */
    uint64_t recovered_records;    /* records read */
    uint64_t recovery_dropped_records; /* valid records after the last commit */
    uint64_t recovery_dropped_bytes;   /* bytes cut off the end of the log */
    char recovery_detail[256];     /* how the log ended, in words */
} mmsb_engineinfo;

/* mmsb_engineinfo.recovery_flags */
#define MMSB_RECOVERED_TORN 0x1u     /* a torn tail was cut */
#define MMSB_RECOVERED_SALVAGED 0x2u /* corruption was cut (MMSB_OPEN_SALVAGE) */

MMSB_API int mmsb_engine_info(mmsb_engine *engine, mmsb_engineinfo *info);

/* ---- pages ---------------------------------------------------------------- */

/* Page locations (mmsb_pageinfo.location). */
#define MMSB_LOC_HOST 1u
#define MMSB_LOC_DEVICE 2u

/* Creates a page of size_bytes zero bytes at epoch 0. flags must be 0 (they
 * are reserved for later page kinds). Ids are assigned in order from 1 and
 * never reused within a store. Data is 64-byte aligned, and 4 KiB aligned
 * for pages of 4 KiB or more. */
MMSB_API int mmsb_page_create(mmsb_engine *engine, uint64_t size_bytes,
                              uint32_t flags, uint64_t *page_id_out);
/* Frees a page; its id is never handed out again. */
MMSB_API int mmsb_page_free(mmsb_engine *engine, uint64_t page_id);

typedef struct mmsb_pageinfo {
    uint32_t struct_size; /* set by the caller: sizeof(mmsb_pageinfo) */
    uint32_t location;    /* MMSB_LOC_* */
    uint64_t page_id;
    uint64_t size_bytes;
    uint64_t epoch;       /* rises by one on every change that changed bytes */
    uint32_t flags;       /* as given to mmsb_page_create */
    uint32_t reserved0;
} mmsb_pageinfo;

/* Reading calls: safe on any thread, concurrently with the writer. */
MMSB_API int mmsb_page_info(mmsb_engine *engine, uint64_t page_id,
                            mmsb_pageinfo *info);
/* Copies len bytes at offset into buf. The bytes are consistent: all of them
 * are from the epoch stored in *epoch_out (which may be NULL). */
MMSB_API int mmsb_page_read(mmsb_engine *engine, uint64_t page_id,
                            uint64_t offset, void *buf, uint64_t len,
                            uint64_t *epoch_out);
/* Zero-copy view of a page's bytes. The pointer stays valid until the page is
 * freed or the engine is closed; the bytes behind it change in place when the
 * page is written, so a view is not a snapshot (use mmsb_page_read for one
 * while another thread writes). *epoch_out is the epoch at the time of the
 * call. Never write through the view. */
MMSB_API int mmsb_page_view(mmsb_engine *engine, uint64_t page_id,
                            const void **data_out, uint64_t *size_out,
                            uint64_t *epoch_out);

/* ---- changes -------------------------------------------------------------- */

/* What a change did. bytes_changed == 0 means the call changed nothing: no
 * epoch bump, no commit. */
typedef struct mmsb_change {
    uint64_t epoch;         /* the page's epoch after the call */
    uint64_t bytes_changed; /* bytes whose value changed */
    uint64_t commit_seq;    /* sequence number of its commit; 0 if unchanged */
} mmsb_change;

/* Writes len bytes at offset. The engine diffs them against the page and
 * applies only the bytes that differ. bytes must not overlap the page. */
MMSB_API int mmsb_write(mmsb_engine *engine, uint64_t page_id, uint64_t offset,
                        const void *bytes, uint64_t len, mmsb_change *change_out);

/* mmsb_delta.flags */
#define MMSB_DELTA_SPARSE 0x1u       /* payload holds only the masked bytes */
#define MMSB_DELTA_EXPECT_EPOCH 0x2u /* fail with MMSB_ECONFLICT unless the
                                        page's epoch is expected_epoch */

/* An explicit change to one page: the bytes [offset, offset + len) whose bit
 * is set in mask (bit i of mask byte i / 8, least significant bit first, for
 * byte offset + i) take new values from the payload. Dense payload: len bytes,
 * unmasked ones ignored. Sparse payload: exactly popcount(mask) bytes, in
 * order. Mask bits past len in the last mask byte must be 0. */
typedef struct mmsb_delta {
    uint64_t page_id;
    uint64_t offset;
    uint64_t len;
    const uint8_t *mask;     /* (len + 7) / 8 bytes */
    const uint8_t *payload;
    uint64_t payload_len;    /* len (dense) or popcount(mask) (sparse) */
    uint64_t expected_epoch; /* checked with MMSB_DELTA_EXPECT_EPOCH */
    uint32_t flags;          /* MMSB_DELTA_* */
    uint32_t reserved0;      /* must be 0 */
} mmsb_delta;

/* Applies a delta; on any error nothing is applied. Mask and payload must not
 * overlap the page. */
MMSB_API int mmsb_apply(mmsb_engine *engine, const mmsb_delta *delta,
                        mmsb_change *change_out);

/* ---- durability ----------------------------------------------------------- */

/* Every commit made so far is on stable storage when this returns 0. Any
 * thread may call it. */
MMSB_API int mmsb_sync(mmsb_engine *engine);
/* Blocks until commit `commit_seq` (an mmsb_change.commit_seq) is on stable
 * storage, syncing now if it is not yet. Any thread may call it. */
MMSB_API int mmsb_wait_durable(mmsb_engine *engine, uint64_t commit_seq);
/* Sets the durability of the following commits (a writing call). */
MMSB_API int mmsb_set_durability(mmsb_engine *engine, uint32_t durability);

/* ---- digests -------------------------------------------------------------- */

/* A 128-bit digest in XXH3-128 canonical (big-endian) byte order. The exact
 * definitions are in engine/DIGESTS.md. */
typedef struct mmsb_digest {
    uint8_t bytes[16];
} mmsb_digest;

/* The page digest: a hash tree over the page's 4 KiB chunks. */
MMSB_API int mmsb_page_digest(mmsb_engine *engine, uint64_t page_id,
                              mmsb_digest *digest_out);
/* The state root: a Merkle root over (id, size, epoch, page digest) of every
 * page in id order, with the page count and the next id. Maintained
 * incrementally: only what changed since the last call is rehashed. */
MMSB_API int mmsb_state_root(mmsb_engine *engine, mmsb_digest *root_out);
/* Writes 32 lowercase hex digits and a NUL into hex_out (33 bytes). */
MMSB_API int mmsb_digest_hex(const mmsb_digest *digest, char *hex_out,
                             size_t hex_out_size);

/* ---- reading a log ----------------------------------------------------------- */

/* Record types (tlog/FORMAT.md). */
#define MMSB_REC_PAGE_CREATE 1u
#define MMSB_REC_PAGE_FREE 2u
#define MMSB_REC_DELTA 3u
#define MMSB_REC_COMMIT 4u
#define MMSB_REC_SEAL 5u
#define MMSB_REC_END 0u /* mmsb_log_next: no more records */

typedef struct mmsb_log_reader mmsb_log_reader;

/* One record, with its payload decoded for the known types. Pointers stay
 * valid until the next mmsb_log_next or mmsb_log_close. */
typedef struct mmsb_log_record {
    uint32_t struct_size;   /* set by the caller: sizeof(mmsb_log_record) */
    uint32_t type;          /* MMSB_REC_*, or MMSB_REC_END */
    uint64_t seq;
    uint64_t segment;       /* segment number */
    uint64_t offset;        /* of the record in its segment */
    uint32_t generation;
    uint32_t payload_len;
    const uint8_t *payload; /* the raw payload */
    uint64_t page_id;       /* CREATE, FREE, DELTA */
    uint64_t size_bytes;    /* CREATE */
    uint64_t epoch;         /* DELTA: the page's epoch after it */
    uint64_t offset_in_page;/* DELTA */
    uint64_t len;           /* DELTA: bytes the range covers */
    const uint8_t *mask;    /* DELTA: (len + 7) / 8 bytes; NULL: every byte */
    const uint8_t *bytes;   /* DELTA: new bytes (len, or popcount(mask)) */
    uint64_t bytes_len;
    uint64_t first_seq;     /* COMMIT: first record it commits */
    uint32_t has_root;      /* COMMIT */
    uint32_t committed;     /* 1 when a valid COMMIT covers this record */
    mmsb_digest chain;      /* COMMIT */
    mmsb_digest root;       /* COMMIT, when has_root */
} mmsb_log_record;

/* Opens the log of the store in dir for reading (read-only; it may run while
 * a writer appends). The log is validated record by record as it is read:
 * corruption makes mmsb_log_next fail with MMSB_ECORRUPT naming the place. */
MMSB_API int mmsb_log_open(const char *dir, uint32_t flags, mmsb_log_reader **reader_out);
/* The next record; record->type is MMSB_REC_END after the last. */
MMSB_API int mmsb_log_next(mmsb_log_reader *reader, mmsb_log_record *record);
MMSB_API int mmsb_log_close(mmsb_log_reader *reader);

#ifdef __cplusplus
}
#endif

#endif /* MMSB_H */
