/*
 * engine.c - versions, options, open and close, engine info, the writer
 * role, and the digest entry points.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tlog/format.h"
#include "../tlog/repl/mirror.h"
#include "audit.h"
#include "checkpoint.h"
#include "commit.h"
#include "digest.h"
#include "engine.h"
#include "live.h"
#include "page.h"
#include "propagate.h"
#include "replay.h"
#include "replicate.h"
#include "role.h"

enum {
    KiB = 1024,
    MiB = 1024 * KiB,
    PAGE_TABLE_STEP_BYTES = 1 * MiB,
    LOG_BUFFER_BYTES_DEFAULT = 16 * MiB,
};
#define GiB (1024ull * MiB)
#define PAGES_MAX_LIMIT (1ull << 32)
#define ARENA_BYTES_MIN (1ull * MiB)

/* The public structs' sizes are part of ABI 1 (on LP64 machines): a
 * change to one is a new ABI, never an accident, except growth at the end of
 * a struct that carries its size (0.2 added replication to the options and
 * the engine info, 0.4 the device path; 0.1's sizes are still taken:
 * OPTIONS_SIZE_V1 below). */
#if UINTPTR_MAX == UINT64_MAX
_Static_assert(sizeof(mmsb_options) == 200, "ABI 1: mmsb_options (0.1: 160, 0.2: 192)");
_Static_assert(offsetof(mmsb_options, replication_servers) == 160, "ABI 1: 0.1's mmsb_options");
_Static_assert(offsetof(mmsb_engineinfo, replicated_seq) == 960, "ABI 1: 0.1's mmsb_engineinfo");
_Static_assert(sizeof(mmsb_replica_info) == 96, "ABI 1: mmsb_replica_info");
_Static_assert(sizeof(mmsb_delta) == 64, "ABI 1: mmsb_delta");
_Static_assert(sizeof(mmsb_pageinfo) == 40, "ABI 1: mmsb_pageinfo");
_Static_assert(sizeof(mmsb_device_view) == 40, "ABI 1: mmsb_device_view (0.4)");
_Static_assert(sizeof(mmsb_change) == 24, "ABI 1: mmsb_change");
_Static_assert(sizeof(mmsb_commit_result) == 64, "ABI 1: mmsb_commit_result");
_Static_assert(sizeof(mmsb_event) == 40, "ABI 1: mmsb_event");
_Static_assert(sizeof(mmsb_engineinfo) == 1312, "ABI 1: mmsb_engineinfo (0.1: 960, 0.3: 1200)");
_Static_assert(sizeof(mmsb_derive_spec) == 40 && sizeof(mmsb_deriveinfo) == 40, "ABI 1: derivations");
_Static_assert(sizeof(mmsb_log_record) == 160 && sizeof(mmsb_op_input) == 64, "ABI 1: log records, op input");
_Static_assert(sizeof(mmsb_digest) == 16, "ABI 1: mmsb_digest");
#endif

/* ---- versions ---------------------------------------------------------------- */

MMSB_API const char *mmsb_version(int *major, int *minor, int *patch) {
    if (major != NULL) *major = MMSB_VERSION_MAJOR;
    if (minor != NULL) *minor = MMSB_VERSION_MINOR;
    if (patch != NULL) *patch = MMSB_VERSION_PATCH;
    return MMSB_VERSION_STRING;
}

MMSB_API int mmsb_abi_version(void) { return MMSB_ABI_VERSION; }

/* ---- options ---------------------------------------------------------------- */

/* The structs of version 0.1's header end here: callers built with it pass
 * these sizes, and get the defaults (or nothing) for what came later. */
#define OPTIONS_SIZE_V1 offsetof(mmsb_options, replication_servers)
#define INFO_SIZE_V1 offsetof(mmsb_engineinfo, replicated_seq)

static void options_defaults(mmsb_options *o) {
    ASSERT(o != NULL);
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->abi_version = MMSB_ABI_VERSION;
    o->flags = MMSB_OPEN_CREATE;
    o->kernel = MMSB_KERNEL_AUTO;
    o->arena_bytes_max = 8 * GiB;
    o->arena_grow_bytes = 64 * MiB;
    o->page_bytes_max = 1 * GiB;
    o->pages_max = 1ull << 28;
    o->gpu = MMSB_GPU_AUTO;
    o->durability = MMSB_DURABILITY_SYNC;
    o->io_backend = MMSB_IO_AUTO;
    o->segment_bytes = 64 * MiB;
    o->log_buffer_bytes = LOG_BUFFER_BYTES_DEFAULT;
    o->group_window_us = 1000;
    o->group_window_bytes = 1 * MiB;
    o->root_every_commits = 64;
    o->propagation = MMSB_PROPAGATE_INCREMENTAL;
    o->commit_bytes_max = 1 * GiB;
    o->txn_bytes_max = 1 * GiB;
    o->checkpoint_log_bytes = 256 * MiB;
    o->checkpoint_map_bytes = 1 * GiB;
    o->checkpoint_map_bytes_max = 1024 * GiB;
    o->checkpoint_readers = 126;
    o->replication_timeout_ms = 5000;
    ASSERT(o->log_buffer_bytes <= o->segment_bytes && o->group_window_bytes <= o->log_buffer_bytes);
    ASSERT(o->checkpoint_map_bytes <= o->checkpoint_map_bytes_max);
}

/* The log options: sizes that fit the format's limits and each other. */
static int options_check_log(const mmsb_options *o) {
    ASSERT(o != NULL && o->struct_size == sizeof *o);
    if (o->durability < MMSB_DURABILITY_NONE || o->durability > MMSB_DURABILITY_REPLICATED) {
        return err_set(MMSB_EINVAL, "mmsb_open: durability %u is not an MMSB_DURABILITY_* value", o->durability);
    }
    if (o->io_backend > MMSB_IO_SYNC)
        return err_set(MMSB_EINVAL, "mmsb_open: io_backend %u is not an MMSB_IO_* value", o->io_backend);
    if (o->segment_bytes < SEG_BYTES_MIN || o->segment_bytes > SEG_BYTES_MAX ||
        o->segment_bytes % VM_PAGE_BYTES != 0) {
        return err_set(MMSB_EINVAL, "mmsb_open: segment_bytes %llu outside 4 MiB..1 GiB or not a multiple of 4 KiB",
                       (unsigned long long)o->segment_bytes);
    }
    if (o->log_buffer_bytes < 1 * MiB || o->log_buffer_bytes > o->segment_bytes ||
        o->log_buffer_bytes % VM_PAGE_BYTES != 0) {
        return err_set(MMSB_EINVAL,
                       "mmsb_open: log_buffer_bytes %llu outside 1 MiB..segment_bytes or not a multiple of 4 KiB",
                       (unsigned long long)o->log_buffer_bytes);
    }
    if (o->group_window_us == 0 || o->group_window_us > 1000000) {
        return err_set(MMSB_EINVAL, "mmsb_open: group_window_us %llu outside 1..1000000",
                       (unsigned long long)o->group_window_us);
    }
    if (o->group_window_bytes == 0 || o->group_window_bytes > o->log_buffer_bytes) {
        return err_set(MMSB_EINVAL, "mmsb_open: group_window_bytes %llu outside 1..log_buffer_bytes",
                       (unsigned long long)o->group_window_bytes);
    }
    if (o->root_every_commits == 0) return err_set(MMSB_EINVAL, "mmsb_open: root_every_commits must be at least 1");
    if (o->propagation > MMSB_PROPAGATE_FULL)
        return err_set(MMSB_EINVAL, "mmsb_open: propagation %u is not an MMSB_PROPAGATE_* value", o->propagation);
    if (o->commit_bytes_max < 1 * MiB || o->commit_bytes_max > (1ull << 46)) {
        return err_set(MMSB_EINVAL, "mmsb_open: commit_bytes_max %llu outside 1 MiB..64 TiB",
                       (unsigned long long)o->commit_bytes_max);
    }
    if (o->txn_bytes_max < 4096 || o->txn_bytes_max > (1ull << 46)) {
        return err_set(MMSB_EINVAL, "mmsb_open: txn_bytes_max %llu outside 4096..64 TiB",
                       (unsigned long long)o->txn_bytes_max);
    }
    if (o->checkpoint_map_bytes < 1 * MiB || o->checkpoint_map_bytes > o->checkpoint_map_bytes_max ||
        o->checkpoint_map_bytes_max > (1ull << 46)) {
        return err_set(
            MMSB_EINVAL,
            "mmsb_open: checkpoint_map_bytes %llu must be 1 MiB..checkpoint_map_bytes_max %llu (at most 64 TiB)",
            (unsigned long long)o->checkpoint_map_bytes, (unsigned long long)o->checkpoint_map_bytes_max);
    }
    if (o->checkpoint_readers == 0 || o->checkpoint_readers > 65536) {
        return err_set(MMSB_EINVAL, "mmsb_open: checkpoint_readers %u outside 1..65536", o->checkpoint_readers);
    }
    if (o->reserved2 != 0) return err_set(MMSB_EINVAL, "mmsb_open: reserved2 is %u, must be 0", o->reserved2);
    int rc = replicate_options_check(o);
    if (rc != 0) return rc;
    ASSERT(o->segment_bytes >= SEG_BYTES_MIN && o->log_buffer_bytes <= o->segment_bytes);
    return 0;
}

MMSB_API int mmsb_options_init(mmsb_options *options, uint32_t struct_size,
                               uint32_t abi_version) {
    if (options == NULL) return err_set(MMSB_EINVAL, "mmsb_options_init: options is NULL");
    if (struct_size < OPTIONS_SIZE_V1) {
        return err_set(MMSB_EINVAL, "mmsb_options_init: struct_size %u is below the smallest this library takes "
                       "(%zu)", struct_size, OPTIONS_SIZE_V1);
    }
    if (struct_size < sizeof(mmsb_options)) { /* an older header's: its fields only */
        mmsb_options full;
        options_defaults(&full);
        full.struct_size = struct_size;
        full.abi_version = abi_version;
        memcpy(options, &full, struct_size);
        return 0;
    }
    /* A newer header's larger struct: its extra fields start out zero. */
    memset((uint8_t *)options + sizeof(mmsb_options), 0, struct_size - sizeof(mmsb_options));
    options_defaults(options);
    options->struct_size = struct_size;
    options->abi_version = abi_version;
    ASSERT(options->struct_size >= sizeof(mmsb_options));
    return 0;
}

/* The log ring's default follows a smaller segment, so that setting
 * segment_bytes alone is enough: a ring larger than a segment is refused,
 * and the default (16 MiB) is larger than the smallest segments. A ring
 * size the caller chose is kept and checked as given. */
static void options_fit_ring(mmsb_options *o) {
    ASSERT(o != NULL);
    if (o->log_buffer_bytes == LOG_BUFFER_BYTES_DEFAULT && o->segment_bytes < o->log_buffer_bytes &&
        o->segment_bytes >= SEG_BYTES_MIN && o->segment_bytes % VM_PAGE_BYTES == 0) {
        o->log_buffer_bytes = o->segment_bytes;
    }
    ASSERT(o->log_buffer_bytes != 0);
}

/* The options' values: each in range, and fitting each other. */
static int options_check(mmsb_options *o) {
    ASSERT(o->abi_version == MMSB_ABI_VERSION);
    const uint32_t known_flags = MMSB_OPEN_CREATE | MMSB_OPEN_SALVAGE | MMSB_OPEN_KEEP_LOG | MMSB_OPEN_READONLY;
    if (o->flags & ~known_flags) return err_set(MMSB_EINVAL, "mmsb_open: unknown flags 0x%x", o->flags & ~known_flags);
    if ((o->flags & MMSB_OPEN_READONLY) && (o->flags & (MMSB_OPEN_CREATE | MMSB_OPEN_SALVAGE))) {
        return err_set(MMSB_EINVAL, "mmsb_open: MMSB_OPEN_READONLY cannot be combined with MMSB_OPEN_CREATE or "
                       "MMSB_OPEN_SALVAGE (a read-only open never creates a store or cuts its log)");
    }
    if (o->kernel > MMSB_KERNEL_AVX512)
        return err_set(MMSB_EINVAL, "mmsb_open: kernel %u is not an MMSB_KERNEL_* value", o->kernel);
    if (o->gpu > MMSB_GPU_EMULATE) return err_set(MMSB_EINVAL, "mmsb_open: gpu %u is not an MMSB_GPU_* value", o->gpu);
    if (o->gpu_threshold_bytes > o->page_bytes_max) {
        return err_set(MMSB_EINVAL, "mmsb_open: gpu_threshold_bytes %llu is above page_bytes_max %llu (0: the default)",
                       (unsigned long long)o->gpu_threshold_bytes, (unsigned long long)o->page_bytes_max);
    }
    if (o->reserved0 != 0) return err_set(MMSB_EINVAL, "mmsb_open: reserved0 is %u, must be 0", o->reserved0);
    if (o->arena_bytes_max < ARENA_BYTES_MIN || o->arena_bytes_max > REGION_BYTES_MAX) {
        return err_set(MMSB_EINVAL, "mmsb_open: arena_bytes_max %llu outside %llu..%llu",
                       (unsigned long long)o->arena_bytes_max, (unsigned long long)ARENA_BYTES_MIN,
                       (unsigned long long)REGION_BYTES_MAX);
    }
    if (o->arena_grow_bytes < 64 * KiB || o->arena_grow_bytes > o->arena_bytes_max) {
        return err_set(MMSB_EINVAL, "mmsb_open: arena_grow_bytes %llu outside 65536..arena_bytes_max",
                       (unsigned long long)o->arena_grow_bytes);
    }
    if (o->arena_prefault_bytes > o->arena_bytes_max) {
        return err_set(MMSB_EINVAL, "mmsb_open: arena_prefault_bytes %llu exceeds arena_bytes_max %llu",
                       (unsigned long long)o->arena_prefault_bytes, (unsigned long long)o->arena_bytes_max);
    }
    if (o->page_bytes_max == 0 || o->page_bytes_max > o->arena_bytes_max) {
        return err_set(MMSB_EINVAL, "mmsb_open: page_bytes_max %llu outside 1..arena_bytes_max",
                       (unsigned long long)o->page_bytes_max);
    }
    if (o->pages_max == 0 || o->pages_max > PAGES_MAX_LIMIT) {
        return err_set(MMSB_EINVAL, "mmsb_open: pages_max %llu outside 1..%llu",
                       (unsigned long long)o->pages_max, (unsigned long long)PAGES_MAX_LIMIT);
    }
    o->struct_size = sizeof *o;
    ASSERT(o->page_bytes_max <= o->arena_bytes_max && o->pages_max <= PAGES_MAX_LIMIT);
    options_fit_ring(o);
    return options_check_log(o);
}

/* Copies the caller's options into the library's layout and checks them. */
static int options_take(const mmsb_options *in, mmsb_options *o) {
    if (in == NULL) return err_set(MMSB_EINVAL, "mmsb_open: options is NULL; fill them with MMSB_OPTIONS_INIT");
    if (in->abi_version != MMSB_ABI_VERSION) {
        return err_set(MMSB_EVERSION, "mmsb_open: options come from ABI %u, this library is ABI %d",
                       in->abi_version, MMSB_ABI_VERSION);
    }
    if (in->struct_size < OPTIONS_SIZE_V1) {
        return err_set(MMSB_EINVAL, "mmsb_open: options struct_size %u is below %zu; fill them with MMSB_OPTIONS_INIT",
                       in->struct_size, OPTIONS_SIZE_V1);
    }
    if (in->struct_size < sizeof(mmsb_options)) { /* an older header's: the newer fields keep their defaults */
        options_defaults(o);
        memcpy(o, in, in->struct_size);
        o->struct_size = sizeof *o;
        return options_check(o);
    }
    const uint8_t *extra = (const uint8_t *)in + sizeof(mmsb_options);
    for (uint32_t i = 0; i < in->struct_size - sizeof(mmsb_options); i++) {
        if (extra[i] != 0) {
            return err_set(MMSB_ENOTSUP,
                           "mmsb_open: options set a field at byte %zu that this library (%s) does not know",
                           sizeof(mmsb_options) + i, MMSB_VERSION_STRING);
        }
    }
    memcpy(o, in, sizeof *o);
    return options_check(o);
}

/* ---- store directory --------------------------------------------------------- */

/* Whether the directory holds a store: a log segment or a checkpoint. A
 * LOCK file alone is not one (a creation that failed may leave it). */
static int store_present(const mmsb_engine *e, bool *present) {
    ASSERT(e->magic == ENGINE_MAGIC);
    ASSERT(e->dir_fd >= 0 && present != NULL);
    struct stat st;
    *present = fstatat(e->dir_fd, "checkpoint/data.mdb", &st, 0) == 0;
    if (*present) return 0;
    uint64_t *nos;
    uint32_t count;
    int rc = segment_list(e->dir_fd, &nos, &count);
    free(nos);
    *present = rc == 0 && count > 0;
    return rc;
}

/* Only MMSB_OPEN_CREATE makes a store where there is none: a read-only or
 * plain open of a directory without one changes nothing. */
static int dir_check_store(mmsb_engine *e, const char *dir) {
    ASSERT(e->magic == ENGINE_MAGIC);
    ASSERT(e->dir_fd >= 0 && dir != NULL);
    bool present;
    int rc = store_present(e, &present);
    if (rc != 0 || present || (e->opts.flags & MMSB_OPEN_CREATE)) return rc;
    return err_set(MMSB_ENOTFOUND, "mmsb_open: %s holds no MMSB store (no log segment or checkpoint)%s", dir,
                   e->read_only ? "" : "; set MMSB_OPEN_CREATE to create one");
}

static int dir_open_locked(mmsb_engine *e, const char *dir) {
    ASSERT(dir[0] != '\0');
    ASSERT(e->dir_fd < 0 && e->lock_fd < 0 && dir != NULL);
    if ((e->opts.flags & MMSB_OPEN_CREATE) && mkdir(dir, 0755) != 0 && errno != EEXIST) {
        int saved = errno;
        return err_set(err_from_errno(saved), "mmsb_open: cannot create directory %s: %s", dir, strerror(saved));
    }
    e->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (e->dir_fd < 0) {
        int saved = errno;
        int code = saved == ENOTDIR ? MMSB_EINVAL : err_from_errno(saved);
        return err_set(code, "mmsb_open: cannot open directory %s: %s%s", dir, strerror(saved),
                       saved == ENOENT ? " (set MMSB_OPEN_CREATE to create it)" : "");
    }
    int rc = e->follower ? 0 : dir_check_store(e, dir); /* a new replica holds no log yet */
    if (rc != 0 || e->read_only) return rc;
    e->lock_fd = openat(e->dir_fd, "LOCK", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (e->lock_fd < 0) {
        int saved = errno;
        return err_set(err_from_errno(saved), "mmsb_open: cannot open %s/LOCK: %s", dir, strerror(saved));
    }
    if (flock(e->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int saved = errno;
        if (saved == EWOULDBLOCK) {
            return err_set(MMSB_EBUSY, "mmsb_open: store %s is open in another engine", dir);
        }
        return err_set(MMSB_EIO, "mmsb_open: cannot lock %s/LOCK: %s", dir, strerror(saved));
    }
    /* A replica's log is the primary's, byte for byte: a writer here would
     * fork it. Promotion removes the marker first. */
    replica_marker mk;
    bool replica = false;
    rc = replica_marker_read(e->dir_fd, &mk, &replica);
    if (rc == 0 && replica) {
        return err_set(MMSB_EREADONLY, "mmsb_open: %s is a replica of the stream %s: open it read-only, or run "
                       "'mmsb promote %s' to make it writable", dir, mk.stream, dir);
    }
    return rc;
}

/* ---- open and close ------------------------------------------------------------ */

static void engine_release(mmsb_engine *e) {
    ASSERT(e != NULL && e->magic == ENGINE_MAGIC);
    ASSERT(!e->cc.active);
    live_retire(e);
    vmap_close(&e->live);
    replicate_close(e);
    log_writer_close(e->log);
    propagate_close(e);
    checkpoint_close(e);
    commit_close(e);
    graph_close(&e->g);
    digest_close(e);
    location_close(e);
    region_close(&e->aux);
    region_close(&e->data);
    vmap_close(&e->pages);
    if (e->lock_fd >= 0) close(e->lock_fd);
    if (e->dir_fd >= 0) close(e->dir_fd);
    free(e->dir);
    free(e->repl_servers);
    free(e->repl_stream);
    e->magic = 0;
    free(e);
}

static int engine_build(mmsb_engine *e, const char *dir) {
    ASSERT(e->opts.struct_size == sizeof e->opts);
    ASSERT(e->magic == ENGINE_MAGIC && e->kern == NULL && dir != NULL);
    e->loc[LOCATION_HOST] = &location_host;
    int rc = kern_select(e->opts.kernel, &e->kern);
    if (rc == 0) rc = dir_open_locked(e, dir);
    /* The memfds' names carry the instance's token: attached readers check it. */
    char name[96];
    live_token_make(e);
    snprintf(name, sizeof name, "mmsb-pages-%s", e->live_token);
    if (rc == 0) rc = vmap_open(&e->pages, name, e->opts.pages_max * sizeof(page_entry), PAGE_TABLE_STEP_BYTES);
    snprintf(name, sizeof name, "mmsb-arena-%s", e->live_token);
    if (rc == 0) rc = region_open(&e->data, name, e->opts.arena_bytes_max, e->opts.arena_grow_bytes);
    if (rc == 0) rc = vmap_ensure(&e->data.mem, e->opts.arena_prefault_bytes);
    if (rc == 0) {
        /* Chunk trees take under 1/32 of the bytes they describe. */
        uint64_t aux_max = align_up_u64(e->opts.arena_bytes_max / 32 + 1 * MiB, REGION_UNIT_BYTES);
        rc = region_open(&e->aux, NULL, aux_max, 1 * MiB);
    }
    if (rc == 0) rc = digest_open(e);
    if (rc == 0) rc = graph_open(&e->g, e->opts.pages_max);
    if (rc == 0) rc = commit_open(e);
    if (rc == 0) rc = propagate_open(e);
    if (rc == 0) {
        e->dir = strdup(dir);
        if (e->dir == NULL) rc = err_set(MMSB_ENOMEM, "mmsb_open: out of memory");
    }
    if (rc == 0) rc = location_open(e);
    return rc;
}

static log_config log_config_of(const mmsb_engine *e) {
    ASSERT(e->magic == ENGINE_MAGIC);
    return (log_config){
        .segment_bytes = e->opts.segment_bytes,
        .buffer_bytes = e->opts.log_buffer_bytes,
        .group_window_us = e->opts.group_window_us,
        .group_window_bytes = e->opts.group_window_bytes,
        .durability = e->opts.durability == MMSB_DURABILITY_REPLICATED ? MMSB_DURABILITY_GROUP : e->opts.durability,
        .io_backend = e->opts.io_backend,
        .hooks = e->hooks,
        .kern = e->kern,
    };
}

/* Replays the log into the engine and opens the writer where it ended. */
static int engine_open_log(mmsb_engine *e) {
    ASSERT(!e->read_only && e->log == NULL);
    log_resume resume;
    int rc = checkpoint_open(e);
    if (rc == 0) rc = engine_recover(e, &resume);
    if (rc != 0) return rc;
    log_config cfg = log_config_of(e);
    if (resume.new_store && !(e->opts.flags & MMSB_OPEN_CREATE)) {
        return err_set(MMSB_ENOTFOUND, "mmsb_open: %s holds no MMSB store (its log has no valid segment yet); "
                       "set MMSB_OPEN_CREATE to create one", e->dir);
    }
    rc = log_writer_open(e->dir_fd, &cfg, &resume, &e->log);
    ASSERT(rc != 0 || e->log != NULL);
    if (rc == 0) rc = replicate_open(e);
    /* What an earlier writer's crash left of a retention goes now (but not
     * what the replication stream does not hold yet). */
    if (rc == 0) checkpoint_retain(e);
    return rc;
}

/* hooks (may be NULL) are the engine's from the start: the device's check
 * at open passes a named point. */
static int engine_new(const char *dir, const mmsb_options *options, bool follower, const io_hooks *hooks,
                      mmsb_engine **out) {
    ASSERT(out != NULL);
    ASSERT(!follower || (options->flags & MMSB_OPEN_READONLY));
    if (dir == NULL || dir[0] == '\0') return err_set(MMSB_EINVAL, "mmsb_open: dir is NULL or empty");
    mmsb_options opts;
    int rc = options_take(options, &opts);
    if (rc != 0) return rc;
    _Static_assert(sizeof(mmsb_engine) % ENGINE_LINE_BYTES == 0, "aligned_alloc takes whole alignments");
    _Static_assert(offsetof(mmsb_engine, busy) / ENGINE_LINE_BYTES > offsetof(mmsb_engine, magic) / ENGINE_LINE_BYTES &&
                   offsetof(mmsb_engine, opts) / ENGINE_LINE_BYTES > offsetof(mmsb_engine, busy) / ENGINE_LINE_BYTES,
                   "busy, written by every writing call, shares no cache line with what readers read");
    _Static_assert(offsetof(mmsb_engine, dig) / ENGINE_LINE_BYTES >
                   (offsetof(mmsb_engine, page_id_next) + sizeof(uint64_t) - 1) / ENGINE_LINE_BYTES,
                   "the writer's per-call state starts past the line of page_id_next");
    mmsb_engine *e = aligned_alloc(ENGINE_LINE_BYTES, sizeof *e); /* its cache lines (state.h) */
    if (e == NULL) return err_set(MMSB_ENOMEM, "mmsb_open: cannot allocate the engine");
    memset(e, 0, sizeof *e);
    e->magic = ENGINE_MAGIC;
    e->opts = opts;
    if (opts.replication_servers != NULL) { /* the caller's strings need not outlive mmsb_open */
        e->repl_servers = strdup(opts.replication_servers);
        e->repl_stream = strdup(opts.replication_stream);
        e->opts.replication_servers = e->repl_servers;
        e->opts.replication_stream = e->repl_stream;
        if (e->repl_servers == NULL || e->repl_stream == NULL) {
            free(e->repl_servers);
            free(e->repl_stream);
            free(e);
            return err_set(MMSB_ENOMEM, "mmsb_open: out of memory");
        }
    }
    e->read_only = (opts.flags & MMSB_OPEN_READONLY) != 0;
    e->follower = follower;
    e->dir_fd = e->lock_fd = -1;
    if (hooks != NULL) e->hooks = *hooks;
    atomic_init(&e->busy, 0);
    atomic_init(&e->page_id_next, 1);
    rc = engine_build(e, dir);
    if (rc != 0) {
        engine_release(e);
        return rc;
    }
    *out = e;
    ASSERT(e->kern != NULL && e->dir != NULL && e->dir_fd >= 0);
    return 0;
}

int engine_open_bare(const char *dir, const mmsb_options *options, mmsb_engine **out) {
    ASSERT(dir != NULL);
    ASSERT(out != NULL && options != NULL);
    *out = NULL;
    mmsb_options o = *options;
    o.flags = MMSB_OPEN_READONLY;
    mmsb_engine *e = NULL;
    int rc = engine_new(dir, &o, false, NULL, &e);
    if (rc == 0) rc = checkpoint_open(e);
    if (rc != 0 && e != NULL) engine_release(e);
    if (rc == 0) *out = e;
    return rc;
}

void engine_close_bare(mmsb_engine *e) {
    ASSERT(e->magic == ENGINE_MAGIC && e->read_only);
    ASSERT(e != NULL && e->log == NULL);
    engine_release(e);
}

int engine_point(const mmsb_engine *e, const char *point) {
    ASSERT(e->magic == ENGINE_MAGIC);
    ASSERT(e != NULL && point != NULL && point[0] != '\0');
    io_event ev = {.kind = IO_EV_POINT, .point = point};
    return io_hook(&e->hooks, &ev);
}

MMSB_API int mmsb_open(const char *dir, const mmsb_options *options, mmsb_engine **engine_out) {
    return engine_open(dir, options, NULL, engine_out);
}

int engine_open(const char *dir, const mmsb_options *options, const io_hooks *hooks, mmsb_engine **engine_out) {
    if (engine_out == NULL) return err_set(MMSB_EINVAL, "mmsb_open: engine_out is NULL");
    *engine_out = NULL;
    mmsb_engine *e = NULL;
    int rc = engine_new(dir, options, false, hooks, &e);
    if (rc != 0) return rc;
    if (e->read_only) {
        rc = checkpoint_open(e);
        if (rc == 0) rc = engine_recover_readonly(e);
    } else {
        rc = engine_open_log(e);
        if (rc == 0) rc = live_publish(e); /* readers may attach from now on */
    }
    if (rc != 0) {
        engine_release(e);
        return rc;
    }
    *engine_out = e;
    ASSERT(e->read_only ? e->log == NULL : e->log != NULL);
    return 0;
}

int engine_options(const mmsb_options *in, mmsb_options *out) { return options_take(in, out); }

int engine_open_seeded(const char *dir, const mmsb_options *options, engine_seed_fn seed, void *ctx,
                       mmsb_engine **out) {
    ASSERT(dir != NULL && seed != NULL && out != NULL);
    *out = NULL;
    mmsb_options o;
    int rc = options_take(options, &o);
    if (rc != 0) return rc;
    o.flags |= MMSB_OPEN_CREATE;
    mmsb_engine *e = NULL;
    rc = engine_new(dir, &o, false, NULL, &e);
    if (rc != 0) return rc;
    bool present = false;
    rc = store_present(e, &present);
    if (rc == 0 && present) rc = err_set(MMSB_EINVAL, "%s holds a store already", dir);
    if (rc == 0) rc = checkpoint_open(e);
    log_resume resume = {.new_store = true, .segment_no = 1, .next_seq = 1};
    if (rc == 0) rc = seed(ctx, e, &resume);
    ASSERT(rc != 0 || (resume.new_store && resume.next_seq >= 1 && resume.commits < resume.next_seq));
    log_config cfg = log_config_of(e);
    if (rc == 0) rc = log_writer_open(e->dir_fd, &cfg, &resume, &e->log);
    if (rc != 0) {
        engine_release(e);
        return rc;
    }
    ASSERT(e->log != NULL && !e->read_only);
    *out = e;
    return 0;
}

int engine_open_follower(const char *dir, const mmsb_options *options, mmsb_engine **out) {
    ASSERT(dir != NULL && out != NULL);
    *out = NULL;
    mmsb_options o;
    options_defaults(&o);
    if (options != NULL) { /* only the limits of the state apply; the follower writes the log */
        mmsb_options in;
        int rc = options_take(options, &in);
        if (rc != 0) return rc;
        o.kernel = in.kernel;
        o.arena_bytes_max = in.arena_bytes_max;
        o.arena_grow_bytes = in.arena_grow_bytes;
        o.arena_prefault_bytes = in.arena_prefault_bytes;
        o.page_bytes_max = in.page_bytes_max;
        o.pages_max = in.pages_max;
    }
    o.flags = MMSB_OPEN_READONLY;
    o.gpu = MMSB_GPU_OFF;
    mmsb_engine *e = NULL;
    int rc = engine_new(dir, &o, true, NULL, &e);
    if (rc != 0) return rc;
    rc = checkpoint_open(e);
    if (rc == 0) rc = engine_recover_readonly(e);
    if (rc == 0) rc = live_publish(e);
    if (rc != 0) {
        engine_release(e);
        return rc;
    }
    ASSERT(e->read_only && e->follower && e->log == NULL);
    *out = e;
    return 0;
}

void engine_close_follower(mmsb_engine *e) {
    if (e == NULL) return;
    ASSERT(e->magic == ENGINE_MAGIC && e->follower && !e->cc.active);
    engine_release(e); /* marks the attach header closed first */
}

/* The log is flushed and synced first; if that fails the engine is still
 * released, and the error says that the last commits may not be durable. */
MMSB_API int mmsb_close(mmsb_engine *engine) {
    if (engine == NULL) return 0;
    int rc = engine_enter(engine, "mmsb_close");
    if (rc != 0) return rc;
    if (engine->follower) {
        engine_leave(engine);
        return err_set(MMSB_EINVAL, "mmsb_close: this engine belongs to a replica; mmsb_replica_close closes it");
    }
    live_retire(engine);
    if (engine->log != NULL && log_failed(engine->log) == 0 &&
        (log_commits_since_open(engine->log) > 0 || engine->seeded)) {
        /* A last commit, written after everything before it is synced: it
         * records the final state root, and its durable hint covers the whole
         * log, so recovery tells any later damage from a torn tail. */
        /* The checkpoint only speeds up the next open: the log holds
         * everything, so its failure (a full disk, say) does not fail the
         * close; the next open replays more of the log. */
        h128 root;
        if (checkpoint_write(engine) != 0) {
            snprintf(engine->ck.note, sizeof engine->ck.note, "checkpoint at close failed: %.130s", mmsb_last_error());
        }
        digest_root(engine, &root);
        rc = log_commit_close(engine->log, &root);
    }
    replicate_close(engine); /* ships what it can of the last commits, then stops */
    int failed = engine->log != NULL ? log_failed(engine->log) : 0;
    uint64_t durable = engine->log != NULL ? log_durable_seq(engine->log) : 0;
    int close_rc = log_writer_close(engine->log);
    if (rc == 0) rc = close_rc;
    if (rc == 0 && failed != 0) {
        /* The error came earlier, but what it means is true now too. */
        rc = err_set(failed, "mmsb_close: the log failed earlier; commits after the last durable one (record %llu) "
                     "may be lost", (unsigned long long)durable);
    }
    engine->log = NULL;
    ASSERT(engine->log == NULL && !engine->cc.active);
    engine_release(engine);
    return rc;
}

/* ---- info and digests -------------------------------------------------------------- */

static void device_info(const mmsb_engine *e, mmsb_engineinfo *out) {
    const device_state *dv = &e->dv;
    if (dv->dev != NULL) snprintf(out->gpu_device, sizeof out->gpu_device, "%s", gpu_dev_name(dv->dev));
    bool failed = dv->lost || dv->failed != 0; /* a read-only engine meets it, and never settles */
    bool placing = dv->dev != NULL && !failed;
    out->gpu_threshold_bytes = placing && dv->threshold_bytes != UINT64_MAX ? dv->threshold_bytes : 0;
    out->gpu_threshold_source = placing ? dv->threshold_source : MMSB_GPU_THRESHOLD_NONE;
    out->gpu_lost = failed;
    out->gpu_pages = dv->pages;
    out->gpu_page_bytes = dv->page_bytes;
    out->gpu_calls = dv->dev != NULL ? gpu_dev_calls(dv->dev) : 0;
    out->gpu_fallbacks = dv->fallbacks;
}

MMSB_API int mmsb_engine_info(mmsb_engine *engine, mmsb_engineinfo *info) {
    int rc = engine_enter(engine, "mmsb_engine_info");
    if (rc != 0) return rc;
    if (info == NULL || info->struct_size < INFO_SIZE_V1) {
        engine_leave(engine);
        return err_set(MMSB_EINVAL, "mmsb_engine_info: info is NULL or its struct_size is below %zu",
                       INFO_SIZE_V1);
    }
    mmsb_engineinfo out = {.struct_size = sizeof out};
    snprintf(out.kernel, sizeof out.kernel, "%s", engine->kern->name);
    snprintf(out.gpu, sizeof out.gpu, "%s", engine->gpu.text);
    out.pages_live = engine->pages_live;
    out.page_id_next = atomic_load_explicit(&engine->page_id_next, memory_order_relaxed);
    out.pages_max = engine->opts.pages_max;
    out.page_bytes_max = engine->opts.page_bytes_max;
    out.arena_bytes_max = engine->opts.arena_bytes_max;
    out.arena_bytes_used = engine->data.bytes_used;
    out.arena_bytes_faulted = engine->data.mem.bytes_ready;
    log_stats ls = {.committed_seq = engine->read_commit_seq, .durable_seq = engine->read_commit_seq,
                    .backend = "none", .reason = "a read-only engine writes no log"};
    if (engine->log != NULL) log_get_stats(engine->log, &ls);
    out.commit_seq = ls.committed_seq;
    snprintf(out.io_backend, sizeof out.io_backend, "%s", ls.backend);
    snprintf(out.io_reason, sizeof out.io_reason, "%s", ls.reason);
    out.durability = engine->opts.durability;
    out.durable_seq = ls.durable_seq;
    out.log_segment = ls.segment_no;
    out.log_bytes_written = ls.bytes_written;
    out.log_writes = ls.writes;
    out.log_syncs = ls.syncs;
    out.recovery_flags = engine->recovered.flags;
    out.recovered_commits = engine->recovered.commits;
    out.recovered_records = engine->recovered.records;
    out.recovery_dropped_records = engine->recovered.dropped_records;
    out.recovery_dropped_bytes = engine->recovered.dropped_bytes;
    snprintf(out.recovery_detail, sizeof out.recovery_detail, "%s", engine->recovered.detail);
    out.commits = engine->sum.commits;
    out.recomputes = engine->sum.recomputes;
    out.skips = engine->sum.skips;
    out.backdates = engine->sum.backdates;
    out.delta_propagations = engine->sum.delta_propagations;
    out.aborts = engine->sum.aborts;
    out.derived_pages = engine->g.derived;
    out.edges = engine->g.edges;
    out.checkpoint_number = engine->ck.have ? engine->ck.last.number : 0;
    out.checkpoint_seq = engine->ck.have ? engine->ck.last.commit_seq : 0;
    out.checkpoints_written = engine->ck.written;
    out.checkpoint_stall_ns_last = engine->ck.stall_ns_last;
    out.checkpoint_stall_ns_max = engine->ck.stall_ns_max;
    out.checkpoint_map_bytes = engine->ck.store != NULL ? ckpt_map_bytes(engine->ck.store) : 0;
    out.log_segment_first = engine->ck.segment_first;
    out.log_segments_removed = engine->ck.segments_removed;
    out.recovered_from_checkpoint = engine->ck.loaded;
    snprintf(out.checkpoint_detail, sizeof out.checkpoint_detail, "%s", engine->ck.note);
    replicate_info(engine, &out);
    device_info(engine, &out);
    uint32_t size = info->struct_size;
    memcpy(info, &out, min_u64(size, sizeof out)); /* an older header's struct gets its fields */
    info->struct_size = size;
    engine_leave(engine);
    return 0;
}

/* ---- durability ----------------------------------------------------------------- */

MMSB_API int mmsb_sync(mmsb_engine *engine) {
    ASSERT(engine == NULL || engine->magic != ENGINE_MAGIC || engine->read_only || engine->log != NULL);
    int rc = engine_check(engine, "mmsb_sync");
    if (rc == 0 && engine->read_only) return 0; /* it made no commits */
    return rc != 0 ? rc : log_sync(engine->log);
}

MMSB_API int mmsb_wait_durable(mmsb_engine *engine, uint64_t commit_seq) {
    int rc = engine_check(engine, "mmsb_wait_durable");
    if (rc == 0 && engine->read_only) {
        if (commit_seq <= engine->read_commit_seq) return 0; /* read from the files */
        return err_set(MMSB_EINVAL, "mmsb_wait_durable: commit %llu is past the read-only engine's last one (%llu)",
                       (unsigned long long)commit_seq, (unsigned long long)engine->read_commit_seq);
    }
    return rc != 0 ? rc : log_wait_durable(engine->log, commit_seq);
}

MMSB_API int mmsb_wait_replicated(mmsb_engine *engine, uint64_t commit_seq) {
    int rc = engine_check(engine, "mmsb_wait_replicated");
    if (rc != 0) return rc;
    if (engine->read_only || engine->repl == NULL) {
        return err_set(MMSB_EINVAL, "mmsb_wait_replicated: this engine has no replication (mmsb_options."
                       "replication_servers and replication_stream)");
    }
    uint64_t committed = log_committed_seq(engine->log);
    if (commit_seq == 0 || commit_seq > committed) {
        return err_set(MMSB_EINVAL, "mmsb_wait_replicated: commit %llu was not made (the last is %llu)",
                       (unsigned long long)commit_seq, (unsigned long long)committed);
    }
    return replicate_wait(engine, commit_seq);
}

MMSB_API int mmsb_set_durability(mmsb_engine *engine, uint32_t durability) {
    int rc = engine_enter_writer(engine, "mmsb_set_durability");
    if (rc != 0) return rc;
    if (durability < MMSB_DURABILITY_NONE || durability > MMSB_DURABILITY_REPLICATED) {
        rc = err_set(MMSB_EINVAL, "mmsb_set_durability: %u is not an MMSB_DURABILITY_* value", durability);
    } else if (durability == MMSB_DURABILITY_REPLICATED && engine->repl == NULL) {
        rc = err_set(MMSB_EINVAL, "mmsb_set_durability: REPLICATED needs replication (mmsb_options.replication_*)");
    } else {
        ASSERT(!engine->read_only && engine->log != NULL);
        engine->opts.durability = durability;
        /* The local disk as in GROUP; the replication thread does the rest. */
        log_set_durability(engine->log,
                           durability == MMSB_DURABILITY_REPLICATED ? MMSB_DURABILITY_GROUP : durability);
    }
    engine_leave(engine);
    return rc;
}

MMSB_API int mmsb_page_digest(mmsb_engine *engine, uint64_t page_id, mmsb_digest *digest_out) {
    int rc = engine_enter(engine, "mmsb_page_digest");
    if (rc != 0) return rc;
    page_entry *pe;
    if (digest_out == NULL) {
        rc = err_set(MMSB_EINVAL, "mmsb_page_digest: digest_out is NULL");
    } else {
        rc = page_lookup(engine, page_id, "mmsb_page_digest", &pe);
    }
    if (rc == 0) {
        h128 h;
        digest_page(engine, pe, &h);
    ASSERT(pe->flags & PE_LIVE);
        digest_to_bytes(h, digest_out->bytes);
    }
    engine_leave(engine);
    return rc;
}

static int device_view_of(mmsb_engine *e, uint64_t page_id, mmsb_device_view *view) {
    const char *fn = "mmsb_page_device_view";
    if (view == NULL || view->struct_size < sizeof *view) {
        return err_set(MMSB_EINVAL, "%s: view is NULL or its struct_size is below %zu", fn, sizeof *view);
    }
    page_entry *pe;
    int rc = page_lookup(e, page_id, fn, &pe);
    if (rc != 0) return rc;
    if (!(pe->flags & PE_DEVICE)) {
        return err_set(MMSB_ENOTSUP, "%s: page %llu lives on the host (gpu: %s); mmsb_page_view reads it", fn,
                       (unsigned long long)page_id, e->gpu.text);
    }
    mmsb_device_view out = {.struct_size = sizeof out, .size_bytes = pe->size_bytes, .epoch = pe->epoch};
    rc = location_device_view(e, pe, &out.data, &out.stream);
    if (rc != 0) return rc;
    out.device = gpu_dev_kind(e->dv.dev);
    uint32_t size = view->struct_size;
    memcpy(view, &out, sizeof out);
    view->struct_size = size;
    ASSERT(out.data != NULL);
    return 0;
}

MMSB_API int mmsb_page_device_view(mmsb_engine *engine, uint64_t page_id, mmsb_device_view *view) {
    int rc = engine_enter(engine, "mmsb_page_device_view");
    if (rc != 0) return rc;
    rc = device_view_of(engine, page_id, view);
    engine_leave(engine);
    return rc;
}

MMSB_API int mmsb_state_root(mmsb_engine *engine, mmsb_digest *root_out) {
    int rc = engine_enter(engine, "mmsb_state_root");
    if (rc != 0) return rc;
    if (root_out == NULL) {
        rc = err_set(MMSB_EINVAL, "mmsb_state_root: root_out is NULL");
    } else {
        h128 h;
        digest_root(engine, &h);
        digest_to_bytes(h, root_out->bytes);
    }
    engine_leave(engine);
    return rc;
}

MMSB_API int mmsb_digest_hex(const mmsb_digest *digest, char *hex_out, size_t hex_out_size) {
    if (digest == NULL || hex_out == NULL) return err_set(MMSB_EINVAL, "mmsb_digest_hex: digest or hex_out is NULL");
    if (hex_out_size < 33) return err_set(MMSB_EINVAL, "mmsb_digest_hex: hex_out_size %zu, needs 33", hex_out_size);
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        hex_out[2 * i] = digits[digest->bytes[i] >> 4];
        hex_out[2 * i + 1] = digits[digest->bytes[i] & 15];
    }
    hex_out[32] = '\0';
    ASSERT(hex_out[0] != '\0' && hex_out[31] != '\0');
    return 0;
}
