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
#define MMSB_VERSION_MINOR 4
#define MMSB_VERSION_PATCH 0
#define MMSB_VERSION_STRING "0.4.0"
/* The ABI version: bumped on any incompatible change of this header. The
 * shared library's soname carries it (libmmsb.so.1). */
#define MMSB_ABI_VERSION 1

/* Returns the library's version string; stores the parts where not NULL. */
/* Role: any thread. Errors: none. */
MMSB_API const char *mmsb_version(int *major, int *minor, int *patch);
/* Returns the library's MMSB_ABI_VERSION (compare with the header's). */
/* Role: any thread. Errors: none. */
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
#define MMSB_EBUSY (-32008)     /* store locked elsewhere, engine in use, a reader gave up */
#define MMSB_ENOTSUP (-32009)   /* not supported here (CPU, kernel, build) */
#define MMSB_ENOMEM (-32010)    /* process memory exhausted */
#define MMSB_ECYCLE (-32011)    /* an edge would close a cycle */
#define MMSB_EOP (-32012)       /* a derivation operation failed */
#define MMSB_EREADONLY (-32013) /* a writing call on a read-only engine */
#define MMSB_EDEPENDENTS (-32014) /* derived pages still read the page */
#define MMSB_ECALLBACK (-32015) /* a writing call from an event callback */
#define MMSB_EREPLICA (-32016)  /* replication: the stream did not store it (unreachable, no quorum) */
#define MMSB_EFENCED (-32017)   /* replication: another writer took the stream over */
#define MMSB_ERRCODE_LAST (-32017) /* the lowest code: every code lies in LAST .. FIRST */

/* Roles. Each function below says which thread may call it and which codes
 * it returns beyond 0 (the detail of each is in mmsb_last_error()):
 * - writer: a writing call takes the engine's writer role for its length;
 *   one thread at a time. Another thread inside a call gets MMSB_EBUSY
 *   (retry later); a call from an event callback gets MMSB_ECALLBACK (not
 *   retryable there: call after the callback returns); a read-only engine
 *   gives MMSB_EREADONLY. "Writer role, not writing" takes the role but
 *   changes nothing, so it also works on read-only engines.
 * - any thread: takes no role and runs beside the writer.
 * - reader: an attach or log-reader handle, used by one thread at a time.
 * MMSB_EBUSY from a reading call means the page kept changing for the whole
 * bounded retry (about 20 s); MMSB_EBUSY from mmsb_open means another
 * engine holds the store. Failures change nothing, except where a call
 * says otherwise (an I/O error during a commit fails the log: every later
 * writing call returns that error until the store is reopened). */

/* A static, never-NULL description of any code. */
/* Role: any thread. Errors: none. */
MMSB_API const char *mmsb_strerror(int code);
/* The detail message of the calling thread's last failed call: which
 * argument, what value, which limit. Valid until this thread's next failing
 * call; never NULL. Successful calls leave it unchanged. */
/* Role: any thread. Errors: none. */
MMSB_API const char *mmsb_last_error(void);

/* ---- options and engine --------------------------------------------------- */

typedef struct mmsb_engine mmsb_engine;

/* A 128-bit digest in XXH3-128 canonical (big-endian) byte order. The exact
 * definitions are in engine/DIGESTS.md. */
typedef struct mmsb_digest {
    uint8_t bytes[16];
} mmsb_digest;

/* mmsb_options.flags */
#define MMSB_OPEN_CREATE 0x1u  /* create the store (and its directory) if
                                  there is none; without it, a directory
                                  that holds no store is MMSB_ENOTFOUND and
                                  stays as it was. A creation that fails (a
                                  full disk) leaves no store behind */
#define MMSB_OPEN_KEEP_LOG 0x4u /* keep every log segment (no removal after a
                                   checkpoint): replay from genesis stays possible */
#define MMSB_OPEN_READONLY 0x8u /* read the store without changing it, also
                                   while another process writes it: no lock,
                                   no log writer; the state is the latest
                                   checkpoint plus the committed log after it,
                                   as of the open; writing calls fail with
                                   MMSB_EREADONLY (README, "Readers") */
#define MMSB_OPEN_SALVAGE 0x2u /* open a corrupt log: keep the valid prefix up
                                  to the last good commit, drop the rest (the
                                  engine info says what was dropped). The cut
                                  is made on disk before mmsb_open returns:
                                  the damaged bytes become zeros and later
                                  segments go, so later opens need no flag
                                  (`mmsb salvage` works on a copy instead) */

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
 * SYNC: a commit returns once its bytes are on stable storage.
 * REPLICATED: as GROUP on the local disk, and the writer publishes every
 *   commit to the replication stream (mmsb_options.replication_*);
 *   mmsb_wait_replicated(seq) returns once the stream has stored it on a
 *   quorum of its servers and it is durable here (README, "Replication"). */
#define MMSB_DURABILITY_NONE 1u
#define MMSB_DURABILITY_GROUP 2u
#define MMSB_DURABILITY_SYNC 3u
#define MMSB_DURABILITY_REPLICATED 4u

/* mmsb_options.io_backend: AUTO uses io_uring when the kernel allows it and
 * falls back to pwrite + fdatasync; the environment variable MMSB_IO
 * (uring|sync) overrides AUTO. */
#define MMSB_IO_AUTO 0u
#define MMSB_IO_URING 1u
#define MMSB_IO_SYNC 2u

/* mmsb_options.gpu. Pages at or above the threshold (gpu_threshold_bytes)
 * are device pages where a device location exists: their bytes live in
 * device memory, with a mirror in host memory kept current at every commit
 * (README, "The device path"). The environment variable MMSB_GPU
 * (auto|off|emulate) overrides AUTO. */
#define MMSB_GPU_AUTO 0u    /* probe for a CUDA device at open */
#define MMSB_GPU_OFF 1u     /* never touch the CUDA runtime; every page on the host */
#define MMSB_GPU_EMULATE 2u /* an emulated device in host memory: device pages take
                               the device path (staging, batching, device digests,
                               failures) on machines without a GPU; for tests */
/* A device's kind only (mmsb_device_view.device), never an option: a CUDA
 * device, which AUTO found. */
#define MMSB_GPU_CUDA 3u

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
    uint64_t segment_bytes;    /* largest log segment; default 64 MiB
                                  (4 MiB .. 1 GiB, a multiple of 4 KiB): the
                                  log starts at 4 MiB and doubles to it;
                                  segments already made keep their size */
    uint64_t log_buffer_bytes; /* in-memory log buffer; default 16 MiB, or
                                  segment_bytes when that is smaller
                                  (1 MiB .. segment_bytes, multiple of 4 KiB) */
    uint64_t group_window_us;  /* GROUP/NONE: bytes reach the file within
                                  this time; default 1000 (1 .. 10^6) */
    uint64_t group_window_bytes; /* ... or once this many wait; default 1 MiB */
    uint32_t root_every_commits; /* record the state root in every Nth
                                  commit; default 64 (1 = every commit) */
    uint32_t propagation;      /* MMSB_PROPAGATE_*; default INCREMENTAL */
    uint64_t commit_bytes_max; /* bytes a commit may change and still be
                                  rolled back when a user operation fails;
                                  default 1 GiB */
    uint64_t txn_bytes_max;    /* bytes a transaction may stage; default 1 GiB */
    /* checkpoints (LMDB, in DIR/checkpoint) */
    uint64_t checkpoint_log_bytes; /* checkpoint once this many log bytes were
                                      written since the last one; default
                                      256 MiB; 0: only mmsb_checkpoint and close */
    uint64_t checkpoint_map_bytes; /* LMDB map size to start with; default 1 GiB */
    uint64_t checkpoint_map_bytes_max; /* the map doubles up to this when full;
                                          default 1 TiB */
    uint32_t checkpoint_readers;   /* LMDB reader slots (processes and threads
                                      reading at once); default 126 */
    uint32_t reserved2;            /* must be 0 */
    /* replication (added in 0.2; a 0.1 caller's smaller struct means none):
       the writer publishes its log to a NATS JetStream stream */
    const char *replication_servers; /* "nats://HOST:PORT[,...]"; NULL: none.
                                        Copied at open */
    const char *replication_stream;  /* the stream's name (1 .. 64 of A-Z a-z
                                        0-9 _ -; subject mmsb.NAME) */
    uint64_t replication_timeout_ms; /* a publish's wait for the stream's
                                        answer; default 5000 (1 .. 600000) */
    uint32_t replication_create;     /* 0: the stream must exist; 1 .. 5:
                                        create it with that many copies */
    uint32_t reserved3;              /* must be 0 */
    /* the device path (added in 0.4) */
    uint64_t gpu_threshold_bytes; /* pages this big or bigger are device pages;
                                     0: a CUDA device's is calibrated at open
                                     (and cached in the store's directory),
                                     the emulated device's is 4096 */
} mmsb_options;

/* mmsb_options.propagation */
#define MMSB_PROPAGATE_INCREMENTAL 0u /* skip unchanged signatures, backdate,
                                         propagate deltas of linear operations */
#define MMSB_PROPAGATE_FULL 1u        /* recompute every derived page at every
                                         commit, from its parents (a reference) */

/* Fills *options with the defaults and records the caller's struct size and
 * ABI version, which mmsb_open checks. Use the macro. */
/* Role: any thread. Errors: MMSB_EINVAL, MMSB_EVERSION. */
MMSB_API int mmsb_options_init(mmsb_options *options, uint32_t struct_size,
                               uint32_t abi_version);
#define MMSB_OPTIONS_INIT(options)                                             \
    mmsb_options_init((options), (uint32_t)sizeof(*(options)), MMSB_ABI_VERSION)

/* Opens (and with MMSB_OPEN_CREATE creates) the store in directory dir. Only
 * one engine at a time may hold a store: a second open gets MMSB_EBUSY.
 * With MMSB_OPEN_READONLY any number of processes may open it besides the
 * writer (CREATE and SALVAGE are then refused); they must be other processes
 * than the writer's, as LMDB allows one environment per file per process. */
/* Role: any thread. Errors: MMSB_EINVAL, MMSB_EVERSION, MMSB_ENOTFOUND, MMSB_EBUSY (the store is
 * open in another engine, or a follower runs on it), MMSB_EREADONLY (opening a replica for writing:
 * README, "Replication"), MMSB_ECORRUPT, MMSB_EIO, MMSB_ENOSPC, MMSB_ENOMEM, MMSB_ENOTSUP. */
MMSB_API int mmsb_open(const char *dir, const mmsb_options *options,
                       mmsb_engine **engine_out);
/* Closes the engine and releases everything it holds. NULL is a no-op. If
 * anything was committed since open, the log is synced and a last commit
 * records the state root, which the next open checks. An error here (for
 * example MMSB_EIO) means that commits not yet durable may be lost; the
 * engine is released either way. A log that failed earlier (an I/O error
 * or a full disk, which every writing call since reported) makes close
 * report that error again: what was not durable then may be lost. After
 * this, views and the handle are invalid. */
/* Role: writer (no other call may run or follow). Errors: MMSB_EINVAL, MMSB_EBUSY, MMSB_ECALLBACK;
 * an earlier log failure (MMSB_EIO, MMSB_ENOSPC) is reported here too, and the handle is freed in
 * every case but MMSB_EINVAL, MMSB_EBUSY and MMSB_ECALLBACK. */
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
    /* propagation, in total since open */
    uint64_t commits;              /* commits made since open */
    uint64_t recomputes;           /* derived pages computed and changed */
    uint64_t skips;                /* derived pages skipped: signature unchanged */
    uint64_t backdates;            /* computed, same bytes: no epoch bump */
    uint64_t delta_propagations;   /* of the recomputes: from parents' deltas */
    uint64_t aborts;               /* commits rolled back (a user op failed) */
    uint64_t derived_pages;        /* pages that are derived now */
    uint64_t edges;                /* parent -> child edges now */
    /* checkpoints */
    uint64_t checkpoint_number;    /* of the latest one; 0: none */
    uint64_t checkpoint_seq;       /* the log record it covers up to */
    uint64_t checkpoints_written;  /* since open */
    uint64_t checkpoint_stall_ns_last; /* writer time of the last one */
    uint64_t checkpoint_stall_ns_max;
    uint64_t checkpoint_map_bytes; /* LMDB map now */
    uint64_t log_segment_first;    /* lowest segment kept */
    uint64_t log_segments_removed; /* since open */
    uint32_t recovered_from_checkpoint; /* 1: open loaded one, then the suffix */
    uint32_t reserved1;
    char checkpoint_detail[160];   /* why open did not use the checkpoint, if so */
    /* replication (added in 0.2: a 0.1 caller's smaller struct gets none) */
    uint64_t replicated_seq;       /* the stream holds the log up to this commit */
    uint64_t replication_lag_records; /* committed records it does not hold yet */
    uint64_t replication_messages; /* published since open */
    uint64_t replication_bytes;    /* log bytes published since open */
    char replication[200];         /* "off", or the stream and its state in words */
    uint64_t replication_lag_bytes; /* log bytes it does not hold yet (segments between counted whole; 0.3) */
    /* the device path (0.4) */
    char gpu_device[64];           /* where device pages live; "" when nowhere */
    uint64_t gpu_threshold_bytes;  /* pages this big or bigger go to the device; 0: none
                                      do by size (MMSB_PAGE_DEVICE still places one) */
    uint32_t gpu_threshold_source; /* MMSB_GPU_THRESHOLD_* */
    uint32_t gpu_lost;             /* 1: a device error moved every device page to the
                                      host, and no page goes to the device again
                                      (gpu says why) */
    uint64_t gpu_pages;            /* pages on the device now */
    uint64_t gpu_page_bytes;       /* their bytes */
    uint64_t gpu_calls;            /* calls into the device runtime since open */
    uint64_t gpu_fallbacks;        /* pages placed on the host since open because the
                                      device had no memory for them */
} mmsb_engineinfo;

/* mmsb_engineinfo.gpu_threshold_source: how the threshold was chosen */
#define MMSB_GPU_THRESHOLD_NONE 0u    /* no device location: every page on the host */
#define MMSB_GPU_THRESHOLD_OPTION 1u  /* gpu_threshold_bytes */
#define MMSB_GPU_THRESHOLD_DEFAULT 2u /* the device's default */
#define MMSB_GPU_THRESHOLD_CALIBRATED 3u /* measured at open against the host (or as
                                           measured at an earlier open of the store
                                           on the same device and driver) */

/* mmsb_engineinfo.recovery_flags */
#define MMSB_RECOVERED_TORN 0x1u     /* a torn tail was cut */
#define MMSB_RECOVERED_SALVAGED 0x2u /* corruption was cut (MMSB_OPEN_SALVAGE) */

/* Role: writer role, not writing: works on read-only engines. Errors: MMSB_EINVAL, MMSB_EBUSY,
 * MMSB_ECALLBACK. */
MMSB_API int mmsb_engine_info(mmsb_engine *engine, mmsb_engineinfo *info);

/* ---- pages ---------------------------------------------------------------- */

/* Page locations (mmsb_pageinfo.location). */
#define MMSB_LOC_HOST 1u
#define MMSB_LOC_DEVICE 2u

/* mmsb_page_create flags: where the page lives, whatever its size. They are
 * logged with the page and kept by checkpoints, so a reopened store places
 * it the same way (on the host when the engine has no device location). */
#define MMSB_PAGE_HOST 0x1u   /* always on the host */
#define MMSB_PAGE_DEVICE 0x2u /* on the device, below the threshold too;
                                 MMSB_ENOTSUP when the engine has no device
                                 location. A device without memory for it
                                 places it on the host (gpu_fallbacks) */

/* Creates a page of size_bytes zero bytes at epoch 0. flags: 0 (placed by
 * size) or one MMSB_PAGE_* placement. Ids are assigned in order from 1 and
 * never reused within a store. Data is 64-byte aligned, and 4 KiB aligned
 * for pages of 4 KiB or more. */
/* Role: writer. Errors: MMSB_EINVAL, MMSB_ENOSPC, MMSB_ENOMEM, MMSB_EIO, MMSB_EBUSY,
 * MMSB_ECALLBACK, MMSB_EREADONLY. */
MMSB_API int mmsb_page_create(mmsb_engine *engine, uint64_t size_bytes,
                              uint32_t flags, uint64_t *page_id_out);
/* Creates `count` pages of size_bytes zero bytes each in one commit (one
 * COMMIT record and one state-root refresh for all of them): ids
 * *first_id_out .. *first_id_out + count - 1. All of them or none: a
 * failure (memory, page ids, the log) leaves no page. count is 1 to
 * MMSB_PAGES_PER_CREATE_MAX. */
/* Role: writer. Errors: as mmsb_page_create. */
#define MMSB_PAGES_PER_CREATE_MAX (1u << 20)
MMSB_API int mmsb_page_create_many(mmsb_engine *engine, uint64_t size_bytes, uint32_t flags,
                                   uint64_t count, uint64_t *first_id_out);
/* Frees a page; its id is never handed out again. */
/* Role: writer. Errors: MMSB_EINVAL, MMSB_ENOTFOUND, MMSB_EDEPENDENTS, MMSB_EIO, MMSB_ENOSPC,
 * MMSB_EBUSY, MMSB_ECALLBACK, MMSB_EREADONLY. */
MMSB_API int mmsb_page_free(mmsb_engine *engine, uint64_t page_id);

typedef struct mmsb_pageinfo {
    uint32_t struct_size; /* set by the caller: sizeof(mmsb_pageinfo) */
    uint32_t location;    /* MMSB_LOC_* */
    uint64_t page_id;
    uint64_t size_bytes;
    uint64_t epoch;       /* rises by one per commit that changed its bytes */
    uint32_t flags;       /* as given to mmsb_page_create */
    uint32_t reserved0;
} mmsb_pageinfo;

/* Reading calls: safe on any thread, concurrently with the writer. */
/* Role: any thread, beside the writer. Errors: MMSB_EINVAL, MMSB_ENOTFOUND, MMSB_EBUSY (the page
 * kept changing: about 20 s of retries). */
MMSB_API int mmsb_page_info(mmsb_engine *engine, uint64_t page_id,
                            mmsb_pageinfo *info);
/* Copies len bytes at offset into buf. The bytes are consistent: all of them
 * are from the epoch stored in *epoch_out (which may be NULL). */
/* Role: any thread, beside the writer. Errors: MMSB_EINVAL, MMSB_ENOTFOUND, MMSB_EBUSY (the page
 * kept changing: about 20 s of retries). */
MMSB_API int mmsb_page_read(mmsb_engine *engine, uint64_t page_id,
                            uint64_t offset, void *buf, uint64_t len,
                            uint64_t *epoch_out);
/* Zero-copy view of a page's bytes. The pointer stays valid until the page is
 * freed or the engine is closed; the bytes behind it change in place when the
 * page is written, so a view is not a snapshot (use mmsb_page_read for one
 * while another thread writes). *epoch_out is the epoch at the time of the
 * call. Never write through the view. A device page's view is its host
 * mirror, current once each commit returns. */
/* Role: any thread, beside the writer. Errors: MMSB_EINVAL, MMSB_ENOTFOUND, MMSB_EBUSY. */
MMSB_API int mmsb_page_view(mmsb_engine *engine, uint64_t page_id,
                            const void **data_out, uint64_t *size_out,
                            uint64_t *epoch_out);

/* A device page's copy in device memory, for consumers on the device that
 * read it without a copy (README, "The device path"). */
typedef struct mmsb_device_view {
    uint32_t struct_size; /* set by the caller: sizeof(mmsb_device_view) */
    uint32_t device;      /* the device's kind: MMSB_GPU_CUDA, or MMSB_GPU_EMULATE
                             (data is host memory standing in for the device's) */
    const void *data;     /* the copy's first byte, on the device */
    uint64_t size_bytes;
    uint64_t epoch;       /* the page's epoch, which the copy holds when the call returns */
    uint64_t stream;      /* the engine's stream, which later commits' changes of the
                             copy are ordered on (0 on the emulated device) */
} mmsb_device_view;

/* Waits until the copy of device page page_id holds everything committed,
 * then describes it. The pointer stays valid until the page is freed or
 * the engine is closed; the bytes behind it change in place at the end of
 * each later commit that changes the page (on a GPU: asynchronously, on
 * `stream`), so a view is not a snapshot: call again, or order the reads
 * after `stream`, to read a later epoch. Never write through the view. A
 * device error moves the page to the host (MMSB_EIO, and the engine info's
 * gpu_lost); from then on the copy behind a view taken earlier is no longer
 * kept current. */
/* Role: writer role, not writing. Errors: MMSB_EINVAL, MMSB_ENOTFOUND, MMSB_ENOTSUP (a host page),
 * MMSB_EIO, MMSB_EBUSY, MMSB_ECALLBACK. */
MMSB_API int mmsb_page_device_view(mmsb_engine *engine, uint64_t page_id, mmsb_device_view *view);

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
/* Role: writer. Errors: MMSB_EINVAL, MMSB_ENOTFOUND, MMSB_EOP, MMSB_EIO, MMSB_ENOSPC, MMSB_ENOMEM,
 * MMSB_EBUSY, MMSB_ECALLBACK, MMSB_EREADONLY. */
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
/* Role: writer. Errors: MMSB_EINVAL, MMSB_ENOTFOUND, MMSB_ECONFLICT, MMSB_EOP, MMSB_EIO,
 * MMSB_ENOSPC, MMSB_ENOMEM, MMSB_EBUSY, MMSB_ECALLBACK, MMSB_EREADONLY. */
MMSB_API int mmsb_apply(mmsb_engine *engine, const mmsb_delta *delta,
                        mmsb_change *change_out);

/* ---- commits: batches and transactions -------------------------------------- */

/* What one commit did. A commit that changed nothing has commit_seq 0. */
typedef struct mmsb_commit_result {
    uint32_t struct_size;      /* set by the caller: sizeof(mmsb_commit_result) */
    uint32_t reserved0;
    uint64_t commit_seq;
    uint64_t pages_changed;    /* changes that changed bytes (base, not derived) */
    uint64_t bytes_changed;
    uint64_t recomputes;       /* derived pages computed and changed */
    uint64_t skips;            /* derived pages whose signature was unchanged */
    uint64_t backdates;        /* computed to the same bytes: no epoch bump */
    uint64_t delta_propagations; /* recomputes done from parents' deltas */
} mmsb_commit_result;

/* Applies `count` deltas as one commit: one log append, one propagation
 * pass. Deltas to the same page apply in array order, and the page's epoch
 * rises by one for the commit, however many of them change it. Every delta
 * is checked first (an expected epoch against the page's epoch before the
 * commit, for every delta of that page); any
 * error fails the whole batch with nothing applied, and the detail names the
 * delta's index. durability 0 = the engine's. */
/* Role: writer. Errors: MMSB_EINVAL, MMSB_ENOTFOUND, MMSB_ECONFLICT (the detail names the delta),
 * MMSB_EOP, MMSB_EIO, MMSB_ENOSPC, MMSB_ENOMEM, MMSB_EBUSY, MMSB_ECALLBACK, MMSB_EREADONLY. */
MMSB_API int mmsb_apply_batch(mmsb_engine *engine, const mmsb_delta *deltas, uint64_t count,
                              uint32_t durability, mmsb_commit_result *result);

/* A transaction stages deltas and writes over any number of pages and
 * commits them atomically. Staging copies the caller's bytes and touches no
 * page: reads (also through the transaction's own thread) see committed
 * state until the commit. Transactions are independent of each other and of
 * the writer role until they commit; an expected epoch is checked against
 * the page's epoch at commit time (optimistic concurrency). Commit and abort
 * both end the transaction (the handle is freed), except a commit that
 * returns MMSB_EBUSY (another thread holds the writer role): the transaction
 * stays open and the commit can be retried. */
typedef struct mmsb_txn mmsb_txn;
/* Role: any thread; the transaction is then used by one thread at a time. Errors: MMSB_EINVAL,
 * MMSB_EREADONLY, MMSB_ENOMEM. */
MMSB_API int mmsb_txn_begin(mmsb_engine *engine, mmsb_txn **txn_out);
/* Role: the transaction's thread (takes no engine role). Errors: MMSB_EINVAL, MMSB_ENOSPC
 * (txn_bytes_max), MMSB_ENOMEM. */
MMSB_API int mmsb_txn_write(mmsb_txn *txn, uint64_t page_id, uint64_t offset,
                            const void *bytes, uint64_t len);
/* Role: the transaction's thread (takes no engine role). Errors: MMSB_EINVAL, MMSB_ENOSPC
 * (txn_bytes_max), MMSB_ENOMEM. */
MMSB_API int mmsb_txn_apply(mmsb_txn *txn, const mmsb_delta *delta);
/* Role: writer. Errors: MMSB_EINVAL, MMSB_ENOTFOUND, MMSB_ECONFLICT, MMSB_EOP, MMSB_EIO,
 * MMSB_ENOSPC, MMSB_ENOMEM, MMSB_EREADONLY; MMSB_EBUSY and MMSB_ECALLBACK leave the transaction
 * open for a retry, every other result ends it. */
MMSB_API int mmsb_txn_commit(mmsb_txn *txn, uint32_t durability, mmsb_commit_result *result);
/* Role: the transaction's thread. Errors: none (NULL is a no-op). */
MMSB_API int mmsb_txn_abort(mmsb_txn *txn);

/* ---- derived pages ---------------------------------------------------------- */

/* Built-in operations. Sizes are checked when a page is derived. */
#define MMSB_OP_COPY 1u     /* one parent; params: u64 source offset, u64 length,
                               little-endian (empty params: the whole parent);
                               the child's size is that length */
#define MMSB_OP_CONCAT 2u   /* the parents one after the other */
#define MMSB_OP_XOR 3u      /* bytewise xor of the parents (all one size) */
#define MMSB_OP_SUM_U32 4u  /* wrapping sum of little-endian u32 lanes */
#define MMSB_OP_SUM_U64 5u  /* wrapping sum of little-endian u64 lanes */
#define MMSB_OP_MAX_U8 6u   /* element-wise maximum of bytes */
#define MMSB_OP_MAX_U32 7u  /* ... of little-endian u32 lanes */
#define MMSB_OP_MAX_U64 8u  /* ... of little-endian u64 lanes */
#define MMSB_OP_USER_FIRST 0x10000u /* user operations: registered per engine */

#define MMSB_DERIVE_PARENTS_MAX 65536u
#define MMSB_DERIVE_PARAMS_MAX 4096u

/* What a user operation sees: its parents, in the order they were given,
 * at their current (committed or just recomputed) bytes. */
typedef struct mmsb_op_input {
    uint64_t child_id;
    uint32_t parent_count;
    uint32_t op_version;
    const uint64_t *parent_ids;
    const uint64_t *parent_epochs;
    const uint8_t *const *parent_bytes;
    const uint64_t *parent_sizes;
    const uint8_t *params;
    uint64_t params_len;
} mmsb_op_input;

/* Writes the child's whole new content (out_len bytes) into out and returns
 * 0, or fails the commit with a nonzero return (then nothing is applied and
 * the commit returns MMSB_EOP). It must be a pure function of its input: the
 * engine skips it when its inputs did not change. It runs on the writer's
 * thread and must not call writing functions of the engine. */
typedef int (*mmsb_op_fn)(void *user, const mmsb_op_input *in, uint8_t *out, uint64_t out_len);

/* Registers (or replaces) user operation `op` for this engine. The version
 * takes part in derived pages' signatures: registering a version other than
 * the one in force recomputes the operation's pages in one commit before it
 * returns; if the function fails there (MMSB_EOP) that commit is rolled back
 * and the previous registration stays. Re-registering the same version only
 * swaps the function and user pointer. After a reopen no operation is
 * registered: replay needs none, but a commit that must compute a page of an
 * unregistered operation fails with MMSB_ENOTFOUND and is rolled back. */
/* Role: writer. Errors: MMSB_EINVAL, MMSB_ENOSPC, MMSB_EOP, MMSB_EIO, MMSB_EBUSY, MMSB_ECALLBACK,
 * MMSB_EREADONLY. */
MMSB_API int mmsb_op_register(mmsb_engine *engine, uint32_t op, uint32_t version, mmsb_op_fn fn,
                              void *user);

typedef struct mmsb_derive_spec {
    uint32_t struct_size;      /* set by the caller: sizeof(mmsb_derive_spec) */
    uint32_t op;               /* MMSB_OP_* or a registered user operation */
    const uint64_t *parents;   /* parent page ids, in order */
    uint32_t parent_count;     /* 1 .. MMSB_DERIVE_PARENTS_MAX */
    uint32_t flags;            /* must be 0 */
    const void *params;
    uint64_t params_len;       /* 0 .. MMSB_DERIVE_PARAMS_MAX */
} mmsb_derive_spec;

/* Makes `child` a derived page (or redefines one) and computes it, in one
 * commit. An edge that would close a cycle fails with MMSB_ECYCLE. */
/* Role: writer. Errors: MMSB_EINVAL, MMSB_ENOTFOUND, MMSB_ECYCLE, MMSB_EOP, MMSB_EIO, MMSB_ENOSPC,
 * MMSB_ENOMEM, MMSB_EBUSY, MMSB_ECALLBACK, MMSB_EREADONLY. */
MMSB_API int mmsb_derive(mmsb_engine *engine, uint64_t child, const mmsb_derive_spec *spec,
                         mmsb_commit_result *result);
/* Makes a derived page a plain page again; its bytes stay as they are. */
/* Role: writer. Errors: MMSB_EINVAL, MMSB_ENOTFOUND, MMSB_EIO, MMSB_ENOSPC, MMSB_EBUSY,
 * MMSB_ECALLBACK, MMSB_EREADONLY. */
MMSB_API int mmsb_underive(mmsb_engine *engine, uint64_t child, mmsb_commit_result *result);
/* Adds `parent` as the last parent of derived page `child` / removes it. */
/* Role: writer. Errors: MMSB_EINVAL, MMSB_ENOTFOUND, MMSB_ECYCLE, MMSB_EOP, MMSB_EIO, MMSB_ENOSPC,
 * MMSB_ENOMEM, MMSB_EBUSY, MMSB_ECALLBACK, MMSB_EREADONLY. */
MMSB_API int mmsb_edge_add(mmsb_engine *engine, uint64_t parent, uint64_t child,
                           mmsb_commit_result *result);
/* Role: writer. Errors: MMSB_EINVAL, MMSB_ENOTFOUND, MMSB_EOP, MMSB_EIO, MMSB_ENOSPC, MMSB_EBUSY,
 * MMSB_ECALLBACK, MMSB_EREADONLY. */
MMSB_API int mmsb_edge_remove(mmsb_engine *engine, uint64_t parent, uint64_t child,
                              mmsb_commit_result *result);

typedef struct mmsb_deriveinfo {
    uint32_t struct_size;      /* set by the caller: sizeof(mmsb_deriveinfo) */
    uint32_t op;               /* 0: the page is not derived */
    uint32_t op_version;       /* as registered now */
    uint32_t parent_count;
    uint32_t child_count;      /* derived pages that read this page */
    uint32_t params_len;
    mmsb_digest signature;     /* of its last computation; zeros: never */
} mmsb_deriveinfo;

/* A page's place in the graph (a writing call: it reads the graph the
 * writer changes). Up to parents_cap parent ids go to parents_out. */
/* Role: writer role, not writing. Errors: MMSB_EINVAL, MMSB_ENOTFOUND, MMSB_EBUSY, MMSB_ECALLBACK. */
MMSB_API int mmsb_derive_info(mmsb_engine *engine, uint64_t page_id, mmsb_deriveinfo *info,
                              uint64_t *parents_out, uint32_t parents_cap);

/* ---- events ------------------------------------------------------------------- */

#define MMSB_EVENT_PAGE_CHANGED 0x1u /* a change (write, delta) changed a page */
#define MMSB_EVENT_DERIVED 0x2u      /* a derived page was recomputed to new bytes */
#define MMSB_EVENT_COMMIT 0x4u       /* a commit completed */

/* mmsb_event.flags of a COMMIT event: the commit made more page events than
 * MMSB_EVENTS_PER_COMMIT_MAX (or memory for them ran out), and the ones past
 * that were not delivered; the commit itself is whole. */
#define MMSB_EVENT_TRUNCATED 0x1u
#define MMSB_EVENTS_PER_COMMIT_MAX (1u << 22)

typedef struct mmsb_event {
    uint32_t type;          /* one MMSB_EVENT_* */
    uint32_t flags;         /* COMMIT: MMSB_EVENT_TRUNCATED or 0 */
    uint64_t commit_seq;
    uint64_t page_id;       /* 0 for COMMIT */
    uint64_t epoch;         /* the page's epoch after the change */
    uint64_t bytes_changed;
} mmsb_event;

/* Called after each commit, on the committing thread, once per event, in
 * the order the changes were made, then the COMMIT event. It may read pages
 * (mmsb_page_read, _info, _view); writing calls made from it fail with
 * MMSB_EBUSY. */
typedef void (*mmsb_event_fn)(void *user, const mmsb_event *event);

#define MMSB_SUBSCRIBERS_MAX 64u
/* Role: writer role, not writing. Errors: MMSB_EINVAL, MMSB_ENOSPC, MMSB_EBUSY, MMSB_ECALLBACK. */
MMSB_API int mmsb_subscribe(mmsb_engine *engine, uint32_t event_mask, mmsb_event_fn fn,
                            void *user, uint64_t *subscription_out);
/* Role: writer role, not writing. Errors: MMSB_ENOTFOUND, MMSB_EINVAL, MMSB_EBUSY, MMSB_ECALLBACK. */
MMSB_API int mmsb_unsubscribe(mmsb_engine *engine, uint64_t subscription);

/* ---- durability ----------------------------------------------------------- */

/* Every commit made so far is on stable storage when this returns 0. Any
 * thread may call it. */
/* Role: any thread, beside the writer. Errors: MMSB_EINVAL, MMSB_EIO, MMSB_ENOSPC (the log
 * failed). */
MMSB_API int mmsb_sync(mmsb_engine *engine);
/* Blocks until commit `commit_seq` (an mmsb_change.commit_seq) is on stable
 * storage, syncing now if it is not yet. Any thread may call it. */
/* Role: any thread, beside the writer. Errors: MMSB_EINVAL, MMSB_EIO, MMSB_ENOSPC (the log
 * failed). */
MMSB_API int mmsb_wait_durable(mmsb_engine *engine, uint64_t commit_seq);
/* Blocks until commit `commit_seq` is durable here and stored by the
 * replication stream on a quorum of its servers: the acknowledgement of
 * MMSB_DURABILITY_REPLICATED (any durability's commits are published when
 * replication is configured). Waits at most replication_timeout_ms for the
 * stream; a later call waits again, as the writer keeps publishing. */
/* Role: any thread, beside the writer. Errors: MMSB_EINVAL (no replication configured, or a commit
 * not made yet), MMSB_EREPLICA (the stream did not store it in time: unreachable, no quorum; the
 * detail has NATS's words), MMSB_EFENCED (another writer took the stream over: every writing call
 * fails with it until reopened), MMSB_EIO, MMSB_ENOSPC (the log failed). */
MMSB_API int mmsb_wait_replicated(mmsb_engine *engine, uint64_t commit_seq);
/* Sets the durability of the following commits (a writing call). */
/* Role: writer. Errors: MMSB_EINVAL, MMSB_EBUSY, MMSB_ECALLBACK, MMSB_EREADONLY. */
MMSB_API int mmsb_set_durability(mmsb_engine *engine, uint32_t durability);

/* ---- checkpoints ------------------------------------------------------------ */

/* Writes a checkpoint of the committed state into DIR/checkpoint (LMDB): the
 * log is synced first, then the pages changed since the previous checkpoint
 * are written in one LMDB transaction, a CHECKPOINT marker is logged, and
 * (unless MMSB_OPEN_KEEP_LOG) the log segments wholly before it are removed.
 * A writing call; nothing to do when nothing changed since the last one.
 * Also run by the checkpoint_log_bytes policy and by mmsb_close. */
/* Role: writer. Errors: MMSB_EIO, MMSB_ENOSPC, MMSB_ECORRUPT, MMSB_EBUSY, MMSB_ECALLBACK,
 * MMSB_EREADONLY. */
MMSB_API int mmsb_checkpoint(mmsb_engine *engine);

/* ---- export and import ------------------------------------------------------- */

/* What an export wrote or an import read. */
typedef struct mmsb_transfer_info {
    uint32_t struct_size;    /* set by the caller: sizeof(mmsb_transfer_info) */
    uint32_t reserved;
    uint64_t pages;          /* live pages */
    uint64_t derived;        /* derived pages among them */
    uint64_t page_bytes;     /* their sizes, summed */
    uint64_t stream_bytes;   /* the stream's length */
    uint64_t commit_seq;     /* the source's last record the state holds (0: no commit) */
    uint64_t page_id_next;   /* the id the next page created gets */
    mmsb_digest state_root;
} mmsb_transfer_info;

/* Writes the engine's committed state as an export stream (tlog/EXPORT.md:
 * portable, little-endian, every frame checksummed) to the file descriptor
 * fd, from its position on; a pipe will do. The stream holds every live
 * page (id, size, epoch, bytes; all-zero MiB runs left out), every
 * derivation (operation, parents, params, signature), the next page id and
 * the state root: what mmsb_import needs to make a store whose state root is
 * the same. Takes the writer role for its length (other calls get
 * MMSB_EBUSY). On a writer the stream holds every commit so far, durable or
 * not (mmsb_sync first to export only what a crash would keep); on a
 * read-only engine, the state its open read. Not for a replica's engine
 * (export the primary, or open the replica's directory read-only).
 * info: NULL, or filled (struct_size set). A failed write (a full disk, a
 * closed pipe) gives MMSB_EIO, and what was written is not a stream an
 * import takes (it has no END frame). */
/* Role: writer role, not writing. Errors: MMSB_EINVAL, MMSB_EIO, MMSB_ENOMEM, MMSB_EBUSY, MMSB_ECALLBACK. */
MMSB_API int mmsb_export(mmsb_engine *engine, int fd, mmsb_transfer_info *info);
/* Makes a new store in dir (it must not exist, or be an empty directory)
 * from the export stream read from fd to its end, with the options' limits
 * and settings (MMSB_OPEN_READONLY, MMSB_OPEN_SALVAGE and REPLICATED
 * durability are refused: a replication stream starts at a store's first
 * record). Every byte is checked as it is read (CRCs, order, ranges, the
 * derivations as mmsb_derive checks them), and the loaded state's root must
 * equal the stream's. The store is built beside dir (in "dir.importing",
 * which must not exist) and renamed to dir only when whole and synced, so
 * a failure or a crash leaves no store at dir; after a crash, remove the
 * ".importing" directory. The new store's state is held by its first
 * checkpoint, and its log continues the source's record numbers and chain
 * from commit_seq on (a log whose beginning was removed: replay and audit
 * start at the checkpoint). The state root is checked once more by a
 * read-only open of dir before this returns (should that check ever fail,
 * the store stays at dir for inspection, and the call says so). */
/* Role: any thread. Errors: MMSB_EINVAL, MMSB_ECORRUPT (the stream), MMSB_EVERSION, MMSB_ENOSPC (the
 * options' limits), MMSB_ENOMEM, MMSB_EIO, MMSB_ENOTSUP. */
MMSB_API int mmsb_import(const char *dir, const mmsb_options *options, int fd, mmsb_transfer_info *info);

/* ---- live read-only attach from another process ------------------------------- */

/* A read-only view, from another process, of the pages of an engine that is
 * running on dir (its writer publishes dir/ATTACH while open). No lock is
 * taken and the writer is never waited for: each read is consistent (all
 * its bytes from the one epoch it reports) or is retried. A page freed
 * meanwhile gives MMSB_ENOTFOUND; once the writer closes, every call gives
 * MMSB_ENOTFOUND (attach again to a new engine). Not for engines opened
 * with MMSB_OPEN_READONLY (they publish nothing). One handle per thread. */
typedef struct mmsb_attach mmsb_attach;
/* MMSB_ENOTFOUND when no engine is running on dir (no ATTACH file, or its
 * process is gone). */
/* Role: any thread; the handle is then used by one thread. Errors: MMSB_EINVAL, MMSB_ENOTFOUND,
 * MMSB_EVERSION, MMSB_ECORRUPT, MMSB_EIO, MMSB_ENOMEM. */
MMSB_API int mmsb_attach_open(const char *dir, mmsb_attach **attach_out);
/* Role: reader: the attach handle's thread. Errors: MMSB_EINVAL, MMSB_ENOTFOUND, MMSB_ECORRUPT,
 * MMSB_EBUSY (the page kept changing). */
MMSB_API int mmsb_attach_page_info(mmsb_attach *attach, uint64_t page_id, mmsb_pageinfo *info);
/* Role: reader: the attach handle's thread. Errors: MMSB_EINVAL, MMSB_ENOTFOUND, MMSB_ECORRUPT,
 * MMSB_EBUSY (the page kept changing). */
MMSB_API int mmsb_attach_read(mmsb_attach *attach, uint64_t page_id, uint64_t offset, void *buf,
                              uint64_t len, uint64_t *epoch_out);
/* Role: reader: the attach handle's thread. Errors: none (NULL is a no-op). */
MMSB_API int mmsb_attach_close(mmsb_attach *attach);

/* ---- digests -------------------------------------------------------------- */

/* The page digest: a hash tree over the page's 4 KiB chunks. */
/* Role: writer role, not writing. Errors: MMSB_EINVAL, MMSB_ENOTFOUND, MMSB_EBUSY, MMSB_ECALLBACK. */
MMSB_API int mmsb_page_digest(mmsb_engine *engine, uint64_t page_id,
                              mmsb_digest *digest_out);
/* The state root: a Merkle root over (id, size, epoch, page digest) of every
 * page in id order, with the page count and the next id. Maintained
 * incrementally: only what changed since the last call is rehashed. */
/* Role: writer role, not writing. Errors: MMSB_EINVAL, MMSB_EBUSY, MMSB_ECALLBACK. */
MMSB_API int mmsb_state_root(mmsb_engine *engine, mmsb_digest *root_out);
/* Writes 32 lowercase hex digits and a NUL into hex_out (33 bytes). */
/* Role: any thread. Errors: MMSB_EINVAL. */
MMSB_API int mmsb_digest_hex(const mmsb_digest *digest, char *hex_out,
                             size_t hex_out_size);

/* ---- reading a log ----------------------------------------------------------- */

/* Record types (tlog/FORMAT.md). */
#define MMSB_REC_PAGE_CREATE 1u
#define MMSB_REC_PAGE_FREE 2u
#define MMSB_REC_DELTA 3u
#define MMSB_REC_COMMIT 4u
#define MMSB_REC_SEAL 5u
#define MMSB_REC_DERIVE 6u
#define MMSB_REC_UNDERIVE 7u
#define MMSB_REC_EDGE_ADD 8u
#define MMSB_REC_EDGE_REMOVE 9u
#define MMSB_REC_DERIVED 10u
#define MMSB_REC_ABORT 11u
#define MMSB_REC_CHECKPOINT 12u
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
    uint64_t epoch;         /* DELTA: the page's epoch after its commit */
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
 * corruption makes mmsb_log_next fail with MMSB_ECORRUPT naming the place.
 * A log whose first segments a checkpoint removed starts at a later record,
 * possibly inside a commit that began in a removed segment: those first
 * records are handed out (committed) and their commit's chain value is taken
 * as given. Segment files that an interrupted retention left below the
 * checkpoint's segment are skipped; only then is the checkpoint's meta
 * record read (LMDB, read-only: LMDB allows one environment per file per
 * process). Every record's payload is valid until the next mmsb_log_next. */
/* Role: any thread; the reader is then used by one thread. Errors: MMSB_EINVAL, MMSB_ENOTFOUND,
 * MMSB_ECORRUPT, MMSB_EVERSION, MMSB_EIO, MMSB_ENOMEM. */
MMSB_API int mmsb_log_open(const char *dir, uint32_t flags, mmsb_log_reader **reader_out);
/* The next record; record->type is MMSB_REC_END after the last. */
/* Role: the log reader's thread. Errors: MMSB_EINVAL, MMSB_ECORRUPT, MMSB_EIO. */
MMSB_API int mmsb_log_next(mmsb_log_reader *reader, mmsb_log_record *record);
/* Role: the log reader's thread. Errors: none (NULL is a no-op). */
MMSB_API int mmsb_log_close(mmsb_log_reader *reader);

/* ---- replicas (README, "Replication") ------------------------------------------- */

/* A follower: builds and keeps the replica store in a directory from a
 * replication stream. Its log is the primary's, byte for byte; every group
 * of records is checked (CRCs, salt, sequence numbers, chain) before it
 * counts, then applied to the replica's pages by the replay path, which
 * checks every state root the log recorded. The pages are read through
 * mmsb_replica_engine in the follower's process and through
 * mmsb_attach_read from others; other processes may also open the replica
 * with MMSB_OPEN_READONLY. A writer's open is refused (MMSB_EREADONLY)
 * until mmsb_promote. */
typedef struct mmsb_replica mmsb_replica;

typedef struct mmsb_replica_info {
    uint32_t struct_size;      /* set by the caller: sizeof(mmsb_replica_info) */
    uint32_t reserved0;
    uint64_t commit_seq;       /* the replica holds the log up to this commit */
    uint64_t commits;
    uint64_t stream_seq;       /* the last stream message it checked */
    uint64_t stream_last_seq;  /* the stream's last message (asked now) */
    uint64_t lag_records;      /* records the stream holds beyond the replica */
    uint64_t lag_ns;           /* age of the last message taken while behind; 0: caught up */
    uint64_t messages, groups, bytes_written; /* since open */
    uint64_t tail_cut_bytes;   /* an unsynced tail cut at open (the follower had stopped) */
    uint64_t lag_bytes;        /* log bytes the stream holds beyond the replica (segments between counted whole;
                                  added in 0.3: a 0.2 caller's smaller struct gets none) */
} mmsb_replica_info;

/* Opens (creating it when needed) the replica in dir that follows `stream`
 * on `servers` ("nats://HOST:PORT[,...]"). A directory holding a store that
 * is not a replica of that stream is refused. */
/* Role: any thread; the replica is then used by one thread at a time. Errors: MMSB_EINVAL,
 * MMSB_EBUSY (a writer or another follower holds the store), MMSB_ECORRUPT (its log is damaged
 * before what it had synced), MMSB_ENOTFOUND (no such stream), MMSB_EREPLICA, MMSB_EIO,
 * MMSB_ENOMEM. */
MMSB_API int mmsb_replica_open(const char *dir, const char *servers, const char *stream,
                               mmsb_replica **replica_out);
/* The same, with the limits the replica's pages are kept under taken from
 * options (kernel, arena_bytes_max, arena_grow_bytes, arena_prefault_bytes,
 * page_bytes_max, pages_max; the rest is ignored): a primary opened with
 * larger limits than the defaults needs its replicas opened with them too.
 * NULL: the defaults (mmsb_replica_open). */
/* Role: any thread. Errors: those of mmsb_replica_open, and MMSB_EINVAL for bad options. */
MMSB_API int mmsb_replica_open_with(const char *dir, const char *servers, const char *stream,
                                    const mmsb_options *options, mmsb_replica **replica_out);
/* Takes the stream's messages as they come, until none came for timeout_ms;
 * *taken_out (may be NULL) counts them. A message that fails its checks is
 * refused (MMSB_ECORRUPT, naming its stream sequence): nothing after it is
 * taken, and every later poll refuses it again. A group whose records the
 * pages cannot take (a state root that differs: MMSB_ECORRUPT; the
 * replica's limits: MMSB_ENOSPC) stops the replica the same way. */
/* Role: the replica's thread. Errors: MMSB_EINVAL, MMSB_ECORRUPT, MMSB_ENOSPC, MMSB_EREPLICA,
 * MMSB_EIO, MMSB_ENOMEM. */
MMSB_API int mmsb_replica_poll(mmsb_replica *replica, uint32_t timeout_ms, uint64_t *taken_out);
/* The replica's pages as a read-only engine: every reading call works on
 * it (mmsb_read, mmsb_page_info, mmsb_state_root, views, ...); writing
 * calls fail MMSB_EREADONLY. Its state is the log up to the replica's last
 * checked commit (mmsb_engine_info's commit_seq) and moves only inside
 * mmsb_replica_poll: calls that take the engine's role (mmsb_state_root,
 * mmsb_page_digest, mmsb_engine_info) fail MMSB_EBUSY while a poll applies
 * a group, and a poll waits for such a call to end (up to 10 s, then the
 * replica stops with MMSB_EBUSY); seqlocked reads (mmsb_page_read, views)
 * never wait. The handle belongs to the replica: mmsb_replica_close closes
 * it (mmsb_close refuses it). */
/* Role: any thread. Errors: MMSB_EINVAL. */
MMSB_API int mmsb_replica_engine(mmsb_replica *replica, mmsb_engine **engine_out);
/* Role: the replica's thread. Errors: MMSB_EINVAL, MMSB_EREPLICA (the stream could not be asked:
 * the rest of *info is still filled). */
MMSB_API int mmsb_replica_info_get(mmsb_replica *replica, mmsb_replica_info *info);
/* Role: the replica's thread. Errors: MMSB_EIO (its last hint could not be written). NULL is a
 * no-op. */
MMSB_API int mmsb_replica_close(mmsb_replica *replica);

#define MMSB_PROMOTE_FORCE 0x1u /* promote a replica that lags the stream */

/* Turns the replica in dir (no follower running) into a store a writer
 * opens: removes its marker, then opens and closes it as a writer (a new
 * generation, a clean close). With servers (NULL: no check) it first checks
 * that the replica holds the stream's last whole group, unless
 * MMSB_PROMOTE_FORCE. */
/* Role: any thread. Errors: MMSB_EINVAL (not a replica), MMSB_EBUSY (a follower runs on it, or
 * it lags the stream), MMSB_ECORRUPT, MMSB_EREPLICA, MMSB_EIO, MMSB_ENOMEM. */
MMSB_API int mmsb_promote(const char *dir, const char *servers, uint32_t flags);

#ifdef __cplusplus
}
#endif

#endif /* MMSB_H */
