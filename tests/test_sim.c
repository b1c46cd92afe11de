/*
 * test_sim.c - a seeded crash-and-fault simulator.
 *
 * One seed is one store and a run of lives. A life is a child process that
 * opens the store and drives a seeded workload through it: page creates and
 * frees, writes, dense and sparse deltas (some with stale expected epochs),
 * batches, transactions (some aborted), derived pages of built-in and user
 * operations (one of which refuses some inputs, so its commits roll back),
 * edges, underives, checkpoints by call and by policy, every durability mode,
 * with sizes scaled down from the defaults so that segments roll over, commits
 * straddle them and checkpoints remove them within a life. Each life ends in
 * one event:
 *
 *   kill    SIGKILL at a chosen I/O operation or checkpoint step;
 *   power   the same, then every byte written after its file's last completed
 *           sync is kept, lost, or zeroed, per 512-byte sector (from a trace
 *           of the writes the child recorded with their old bytes);
 *   ioerr   EIO or ENOSPC injected into a write, a sync or an LMDB commit;
 *   flip    bits flipped in a log segment (headers included), after a clean
 *   flipck  close, or in the checkpoint file.
 *
 * The engine runs with the writer's flushes inline (no flusher thread), so the
 * I/O happens in one order and a seed replays a failure exactly. After each
 * event, the store is checked against a reference: the same life re-executed
 * from the store as it was before the life, in a copy, without faults, with
 * the state root after every commit. Reopening must give the state after some
 * commit at or after the last one acknowledged as durable (by state root, and
 * page by page against the reference stopped there), or, only when bits were
 * flipped, fail with MMSB_ECORRUPT. Every reading command runs on the store
 * first (verify, replay --verify, dump, stats, history, page, diff against the
 * reference, the log reader API) and must agree with the open: a clean verify
 * means the open gives that state and every other command is clean; a failed
 * open means verify found a problem; a crash, a power loss or an I/O error
 * never makes verify find one; no command ends with a usage or I/O error.
 *
 * MMSB_SIM_SEEDS=N runs N seeds (default: a quick run), MMSB_SIM_SEED=S only
 * seed S (a failure prints its seed), MMSB_SIM_LIVES=L lives per seed.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../engine/engine.h"
#include "../tlog/cursor.h"
#include "testutil.h"

enum {
    KiB = 1024,
    MiB = 1024 * KiB,
    SEEDS_DEFAULT = 10,
    LIVES_DEFAULT = 6,
    STEPS_PER_LIFE = 220,
    PAGES_LIVE_MAX = 40,
    CHANGE_BYTES_MAX = 48 * KiB,
    EVENT_POINT_MAX = 160,       /* a kill or fault lands among the first events of a life */
    SECTOR = 512,
    USER_OP_GUARD = MMSB_OP_USER_FIRST + 1,
    GUARD_REFUSES = 0xEE,        /* the guard refuses a parent whose first byte is this */
    PATH_MAX_BYTES = 4096,
    FINGERPRINT_BYTES = 33 + 17,
};

typedef enum { EV_KILL, EV_POWER, EV_IOERR, EV_FLIP_LOG, EV_FLIP_CKPT, EV_KINDS } event_kind;
static const char *const EVENT_NAMES[EV_KINDS] = {"kill", "power", "ioerr", "flip", "flipck"};

/* What the child tells the parent (shared memory: it survives SIGKILL). */
typedef struct shared {
    uint64_t commits;      /* commits this life made (returned 0) */
    uint64_t acked;        /* of them, acknowledged as durable */
    uint64_t events;       /* I/O operations and points seen */
    uint64_t injected;     /* errno injected, 0 if none */
    uint64_t steps;
    int unexpected;        /* a step failed in a way the workload does not allow */
    char detail[256];
    int died_at;           /* the kind of I/O event the child was killed at (+1; 0: not killed) */
    char died_point[32];   /* and for a point, its name */
} shared;

typedef struct sim_totals {
    uint64_t events[EV_KINDS];
    uint64_t acked, commits, corrupt_found, clean_after_flip, torn, sectors_lost, no_store;
    uint64_t killed_before_write, killed_before_sync, killed_at_sync, killed_in_checkpoint;
} sim_totals;

/* In the child, a failed check ends the child (the parent reports it), not
 * the test: cmocka's failure would carry on with the parent's test there. */
static shared *child_shared;

static void workload_failed(const char *what, int rc) {
    if (child_shared != NULL) {
        snprintf(child_shared->detail, sizeof child_shared->detail, "%s: %s: %s", what, mmsb_strerror(rc),
                 mmsb_last_error());
        child_shared->unexpected = rc;
        _exit(51);
    }
    fail_msg("%s: %s: %s", what, mmsb_strerror(rc), mmsb_last_error());
}

#define SIM_OK(expr)                                        \
    do {                                                  \
        int sim_rc_ = (expr);                               \
        if (sim_rc_ != 0) workload_failed(#expr, sim_rc_);    \
    } while (0)

static mmsb_engineinfo info_of(mmsb_engine *e) {
    mmsb_engineinfo info = {.struct_size = sizeof info};
    SIM_OK(mmsb_engine_info(e, &info));
    return info;
}

/* ---- the store's options ------------------------------------------------------------ */

/* The defaults, with sizes scaled down so that a life rolls segments over and
 * checkpoints remove them (retention on, as by default). */
static void sim_options(mmsb_options *o) {
    TU_OK(MMSB_OPTIONS_INIT(o));
    o->gpu = tu_gpu();
    o->arena_bytes_max = 512ull * MiB;
    o->arena_grow_bytes = 1 * MiB;
    o->page_bytes_max = 4 * MiB;
    o->pages_max = 1u << 14;
    o->segment_bytes = 4 * MiB;
    o->log_buffer_bytes = 1 * MiB;
    o->group_window_bytes = 256 * KiB;
    o->checkpoint_log_bytes = 3 * MiB;
    o->root_every_commits = 8;
}

/* ---- the workload ------------------------------------------------------------------- */

/* Refuses a parent whose first byte is GUARD_REFUSES (the commit rolls back);
 * otherwise the xor of its parents. */
static int guard_op(void *user, const mmsb_op_input *in, uint8_t *out, uint64_t out_len) {
    (void)user;
    memset(out, 0, out_len);
    for (uint32_t p = 0; p < in->parent_count; p++) {
        if (in->parent_sizes[p] > 0 && in->parent_bytes[p][0] == GUARD_REFUSES) return 1;
        uint64_t n = in->parent_sizes[p] < out_len ? in->parent_sizes[p] : out_len;
        for (uint64_t i = 0; i < n; i++) out[i] ^= in->parent_bytes[p][i];
    }
    return 0;
}

typedef struct page_ref {
    uint64_t id, size;
    bool derived;
} page_ref;

typedef struct life {
    mmsb_engine *e;
    rng r;
    bool reference;        /* a reference run: no fsyncs, roots recorded */
    page_ref pages[PAGES_LIVE_MAX + 8];
    uint32_t count;
    uint8_t *buf, *mask, *buf2;
    uint64_t commit_seq;   /* the engine's last commit, to see whether a step made one */
    uint64_t commits;      /* commits of this life so far */
    uint64_t stop_at;      /* a reference run stops after this many */
    shared *sh;
    char (*roots)[FINGERPRINT_BYTES]; /* reference: the state after the k-th commit of the life */
    uint64_t roots_cap;
} life;

/* The pages as the engine has them now (a life starts from any state). */
static void life_scan(life *l) {
    mmsb_engineinfo info = info_of(l->e);
    l->count = 0;
    for (uint64_t id = 1; id < info.page_id_next && l->count < PAGES_LIVE_MAX; id++) {
        mmsb_pageinfo pi = {.struct_size = sizeof pi};
        if (mmsb_page_info(l->e, id, &pi) != 0) continue;
        mmsb_deriveinfo di = {.struct_size = sizeof di};
        SIM_OK(mmsb_derive_info(l->e, id, &di, NULL, 0));
        l->pages[l->count++] = (page_ref){.id = id, .size = pi.size_bytes, .derived = di.op != 0};
    }
    l->commit_seq = info.commit_seq;
}

/* A reference run draws the same numbers (its choices must stay the
 * child's) but never waits for the disk. */
static uint32_t durability_pick(life *l) {
    static const uint32_t choice[] = {MMSB_DURABILITY_SYNC, MMSB_DURABILITY_GROUP, MMSB_DURABILITY_NONE};
    uint64_t explicit_one = rng_below(&l->r, 10), which = rng_below(&l->r, 3);
    uint32_t d = explicit_one < 7 ? 0 : choice[which]; /* 0: the engine's mode for this life */
    return l->reference ? MMSB_DURABILITY_NONE : d;
}

/* A life's usual mode: SYNC, GROUP (made durable by mmsb_wait_durable or
 * mmsb_sync now and then) or NONE. */
static int durability_of_life(life *l) {
    static const uint32_t modes[] = {MMSB_DURABILITY_SYNC, MMSB_DURABILITY_SYNC, MMSB_DURABILITY_GROUP,
                                     MMSB_DURABILITY_GROUP, MMSB_DURABILITY_NONE};
    uint32_t mode = modes[rng_below(&l->r, ARRAY_LEN(modes))];
    return mmsb_set_durability(l->e, l->reference ? MMSB_DURABILITY_NONE : mode);
}

static page_ref *pick(life *l, bool plain) {
    for (int tries = 0; tries < 8 && l->count > 0; tries++) {
        page_ref *p = &l->pages[rng_below(&l->r, l->count)];
        if (!plain || !p->derived) return p;
    }
    return NULL;
}

/* New bytes for [0, len): random, the page's own (nothing changes), or the
 * page's own with a few bytes changed. */
static void fill(life *l, const page_ref *p, uint64_t off, uint64_t len) {
    uint64_t how = rng_below(&l->r, 8);
    if (how == 0 || mmsb_page_read(l->e, p->id, off, l->buf, len, NULL) != 0) {
        rng_fill(&l->r, l->buf, len);
    } else if (how > 1) {
        for (uint64_t k = 0; k < 1 + rng_below(&l->r, 12); k++)
            l->buf[rng_below(&l->r, len)] = (uint8_t)rng_next(&l->r);
    }
    if (rng_below(&l->r, 16) == 0) l->buf[0] = GUARD_REFUSES; /* a guard downstream will refuse it */
}

static void range(life *l, const page_ref *p, uint64_t *off, uint64_t *len) {
    uint64_t cap = rng_below(&l->r, 6) == 0 ? CHANGE_BYTES_MAX : 512;
    *off = rng_below(&l->r, p->size);
    uint64_t room = p->size - *off;
    *len = 1 + rng_below(&l->r, room < cap ? room : cap);
}

static mmsb_delta delta_for(life *l, const page_ref *p, uint8_t *payload, uint8_t *mask) {
    uint64_t off, len;
    range(l, p, &off, &len);
    fill(l, p, off, len);
    bool sparse = rng_below(&l->r, 2) == 0;
    memset(mask, 0, (len + 7) / 8);
    uint64_t n = 0;
    for (uint64_t i = 0; i < len; i++) {
        if (rng_below(&l->r, 3) == 0) continue;
        mask[i / 8] |= (uint8_t)(1u << (i % 8));
        payload[sparse ? n : i] = l->buf[i];
        n++;
    }
    mmsb_delta d = {.page_id = p->id, .offset = off, .len = len, .mask = mask, .payload = payload,
                    .payload_len = sparse ? n : len, .flags = sparse ? MMSB_DELTA_SPARSE : 0};
    if (rng_below(&l->r, 5) == 0) {
        mmsb_pageinfo pi = {.struct_size = sizeof pi};
        SIM_OK(mmsb_page_info(l->e, p->id, &pi));
        d.flags |= MMSB_DELTA_EXPECT_EPOCH;
        d.expected_epoch = pi.epoch + (rng_below(&l->r, 3) == 0); /* sometimes stale */
    }
    return d;
}

static int step_create(life *l) {
    static const uint64_t sizes[] = {64, 200, 4096, 4096, 9000, 65536, 200000};
    if (l->count >= PAGES_LIVE_MAX) return 0;
    uint64_t size = sizes[rng_below(&l->r, ARRAY_LEN(sizes))], id;
    int rc = mmsb_page_create(l->e, size, 0, &id);
    if (rc == 0) l->pages[l->count++] = (page_ref){.id = id, .size = size};
    return rc;
}

static int step_free(life *l) {
    if (l->count < 6) return 0;
    uint32_t k = (uint32_t)rng_below(&l->r, l->count);
    int rc = mmsb_page_free(l->e, l->pages[k].id);
    if (rc == 0) l->pages[k] = l->pages[--l->count];
    return rc == MMSB_EDEPENDENTS ? 0 : rc; /* derived pages read it */
}

static int step_write(life *l) {
    page_ref *p = pick(l, true);
    if (p == NULL) return 0;
    uint64_t off, len;
    range(l, p, &off, &len);
    fill(l, p, off, len);
    return mmsb_write(l->e, p->id, off, l->buf, len, NULL);
}

static int step_apply(life *l) {
    page_ref *p = pick(l, true);
    if (p == NULL) return 0;
    mmsb_delta d = delta_for(l, p, l->buf2, l->mask);
    return mmsb_apply(l->e, &d, NULL);
}

static int step_batch(life *l) {
    mmsb_delta ds[6];
    uint32_t n = 0, want = 2 + (uint32_t)rng_below(&l->r, 5);
    uint8_t *payload = l->buf2, *mask = l->mask;
    for (uint32_t i = 0; i < want; i++) {
        page_ref *p = pick(l, true);
        if (p == NULL) break;
        ds[n++] = delta_for(l, p, payload, mask);
        payload += ds[n - 1].len;
        mask += (ds[n - 1].len + 7) / 8;
    }
    return n == 0 ? 0 : mmsb_apply_batch(l->e, ds, n, durability_pick(l), NULL);
}

static int step_txn(life *l) {
    mmsb_txn *t;
    SIM_OK(mmsb_txn_begin(l->e, &t));
    uint32_t n = 1 + (uint32_t)rng_below(&l->r, 5);
    for (uint32_t i = 0; i < n; i++) {
        page_ref *p = pick(l, true);
        if (p == NULL) break;
        if (rng_below(&l->r, 2) == 0) {
            uint64_t off, len;
            range(l, p, &off, &len);
            fill(l, p, off, len);
            SIM_OK(mmsb_txn_write(t, p->id, off, l->buf, len));
        } else {
            mmsb_delta d = delta_for(l, p, l->buf2, l->mask);
            SIM_OK(mmsb_txn_apply(t, &d));
        }
    }
    if (rng_below(&l->r, 5) == 0) return mmsb_txn_abort(t);
    return mmsb_txn_commit(t, durability_pick(l), NULL);
}

static bool life_commit_check(life *l);

/* A new page derived from one to three plain pages of one size. */
static int step_derive(life *l) {
    page_ref *a = pick(l, false);
    if (a == NULL || l->count >= PAGES_LIVE_MAX) return 0;
    uint64_t parents[3] = {a->id};
    uint32_t n = 1;
    for (uint32_t k = 0; k < l->count && n < 3; k++) {
        page_ref *q = &l->pages[(k + rng_below(&l->r, l->count)) % l->count];
        if (q->size == a->size && q->id != parents[0] && (n < 2 || q->id != parents[1])) parents[n++] = q->id;
    }
    static const uint32_t ops[] = {MMSB_OP_XOR, MMSB_OP_MAX_U8, MMSB_OP_SUM_U32, USER_OP_GUARD, MMSB_OP_COPY};
    uint32_t op = ops[rng_below(&l->r, ARRAY_LEN(ops))];
    if (op == MMSB_OP_SUM_U32 && a->size % 4 != 0) op = MMSB_OP_XOR;
    if (op == MMSB_OP_COPY) n = 1;
    uint64_t id;
    int rc = mmsb_page_create(l->e, a->size, 0, &id);
    if (rc != 0) return rc;
    if (life_commit_check(l)) return 0; /* the create is a commit of its own: a reference may stop here */
    l->pages[l->count++] = (page_ref){.id = id, .size = a->size, .derived = true};
    mmsb_derive_spec spec = {.struct_size = sizeof spec, .op = op, .parents = parents, .parent_count = n};
    rc = mmsb_derive(l->e, id, &spec, NULL);
    if (rc != 0) l->pages[l->count - 1].derived = false;
    return rc;
}

static int step_graph(life *l) {
    page_ref *c = pick(l, false);
    if (c == NULL || !c->derived) return 0;
    uint64_t what = rng_below(&l->r, 3);
    if (what == 0) {
        int rc = mmsb_underive(l->e, c->id, NULL);
        if (rc == 0) c->derived = false;
        return rc;
    }
    page_ref *p = pick(l, false);
    if (p == NULL || p->size != c->size) return 0;
    int rc = what == 1 ? mmsb_edge_add(l->e, p->id, c->id, NULL) : mmsb_edge_remove(l->e, p->id, c->id, NULL);
    return rc == MMSB_ECYCLE || rc == MMSB_ENOTFOUND || rc == MMSB_EINVAL ? 0 : rc;
}

static int step_durability(life *l) {
    uint64_t what = rng_below(&l->r, 4);
    if (what == 0) return mmsb_checkpoint(l->e);
    if (what == 1) return l->reference ? 0 : mmsb_sync(l->e);
    if (what == 2) return l->reference ? 0 : mmsb_wait_durable(l->e, info_of(l->e).commit_seq);
    return durability_of_life(l);
}

/* One step: an error the workload allows is not a failure. */
static int life_step(life *l) {
    uint64_t what = rng_below(&l->r, 100);
    if (l->sh != NULL && getenv("MMSB_SIM_TRACE_STEPS") != NULL)
        fprintf(stderr, "what %llu\n", (unsigned long long)what);
    int rc = what < 6    ? step_create(l)
             : what < 8  ? step_free(l)
             : what < 36 ? step_write(l)
             : what < 52 ? step_apply(l)
             : what < 66 ? step_batch(l)
             : what < 80 ? step_txn(l)
             : what < 86 ? step_derive(l)
             : what < 92 ? step_graph(l)
                         : step_durability(l);
    return rc == MMSB_ECONFLICT || rc == MMSB_EOP ? 0 : rc;
}

/* The state root covers the pages (ids, sizes, epochs, bytes); a commit
 * that changes only the dependency graph (a derivation whose output is the
 * bytes the page has) leaves it as it was. The simulator tells states apart
 * by the root and a hash of every page's derivation: operation, parents,
 * signature. */
static void fingerprint(mmsb_engine *e, char out[FINGERPRINT_BYTES]) {
    mmsb_digest root;
    char hex[33];
    SIM_OK(mmsb_state_root(e, &root));
    SIM_OK(mmsb_digest_hex(&root, hex, sizeof hex));
    uint64_t h = 0xcbf29ce484222325ull, next = info_of(e).page_id_next;
    uint64_t parents[8];
    for (uint64_t id = 1; id < next; id++) {
        mmsb_deriveinfo di = {.struct_size = sizeof di};
        if (mmsb_derive_info(e, id, &di, parents, ARRAY_LEN(parents)) != 0 || di.op == 0) continue;
        uint64_t words[4] = {id, di.op, di.parent_count, di.params_len};
        const uint8_t *parts[3] = {(const uint8_t *)words, (const uint8_t *)parents, di.signature.bytes};
        size_t lens[3] = {sizeof words, 8 * (di.parent_count < 8 ? di.parent_count : 8), 16};
        for (int k = 0; k < 3; k++) {
            for (size_t i = 0; i < lens[k]; i++) h = (h ^ parts[k][i]) * 0x100000001b3ull;
        }
    }
    snprintf(out, FINGERPRINT_BYTES, "%s-%016llx", hex, (unsigned long long)h);
}

static void root_note(life *l, uint64_t k) {
    assert_true(k < l->roots_cap);
    fingerprint(l->e, l->roots[k]);
}

/* Counts a commit, if one was made since the last look: every commit of a
 * life is one state the store may come back in. True when a reference run
 * reached the commit it stops at. */
static bool life_commit_check(life *l) {
    mmsb_engineinfo info = info_of(l->e);
    if (info.commit_seq != l->commit_seq) {
        l->commits++;
        l->commit_seq = info.commit_seq;
        if (l->roots != NULL) root_note(l, l->commits);
    }
    if (l->sh != NULL) {
        l->sh->commits = l->commits;
        if (info.durable_seq >= info.commit_seq) l->sh->acked = l->commits;
    }
    return l->commits >= l->stop_at;
}

/* The workload of life `index` of a seed: STEPS_PER_LIFE steps, or fewer
 * when a step fails (the child stops at an I/O error), or up to commit
 * `stop_at` (a reference run that stops there). Returns the commits made. */
static uint64_t life_run(life *l, uint64_t seed, uint32_t index, uint64_t stop_at) {
    l->r.state = seed * 0x9E3779B97F4A7C15ull + index;
    SIM_OK(mmsb_op_register(l->e, USER_OP_GUARD, 1, guard_op, NULL));
    SIM_OK(durability_of_life(l));
    life_scan(l);
    l->commits = 0;
    l->stop_at = stop_at;
    if (l->roots != NULL) root_note(l, 0);
    for (uint32_t s = 0; s < STEPS_PER_LIFE && l->commits < stop_at; s++) {
        int rc = life_step(l);
        life_commit_check(l);
        if (l->sh != NULL && getenv("MMSB_SIM_TRACE_STEPS") != NULL) {
            fprintf(stderr, "step %u rc %d commits %llu seq %llu events %llu\n", s, rc,
                    (unsigned long long)l->commits, (unsigned long long)l->commit_seq,
                    (unsigned long long)l->sh->events);
        }
        if (l->sh != NULL) l->sh->steps = s + 1;
        if (rc != 0) {
            if (l->sh != NULL && rc != MMSB_EIO && rc != MMSB_ENOSPC) {
                l->sh->unexpected = rc;
                snprintf(l->sh->detail, sizeof l->sh->detail, "step %u: %s: %s", s, mmsb_strerror(rc),
                         mmsb_last_error());
            }
            if (l->sh == NULL) fail_msg("reference step %u: %s: %s", s, mmsb_strerror(rc), mmsb_last_error());
            break;
        }
    }
    return l->commits;
}

static void life_buffers(life *l) {
    l->buf = malloc(CHANGE_BYTES_MAX);
    l->buf2 = malloc(6 * CHANGE_BYTES_MAX);
    l->mask = malloc(6 * CHANGE_BYTES_MAX / 8 + 8);
    assert_true(l->buf != NULL && l->buf2 != NULL && l->mask != NULL);
}

static void life_free(life *l) {
    free(l->buf);
    free(l->buf2);
    free(l->mask);
    free(l->roots);
}

/* ---- the child: a life with a kill, a power loss or an I/O error -------------------------- */

typedef struct child_plan {
    event_kind kind;
    uint64_t at;           /* the event count at which it happens (0: never) */
    const char *step;      /* kill: at the first such checkpoint step from there
                              on (NULL: any event) */
    int errnum;            /* ioerr: EIO or ENOSPC */
    int trace_fd;          /* power: the write trace */
    shared *sh;
} child_plan;

/* Where a kill may wait for: a checkpoint before its LMDB commit, after it
 * (before the marker), after the marker (before retention), after a
 * covered segment went; NULL: any I/O event. */
static const char *const CHECKPOINT_STEPS[] = {NULL, NULL, NULL, NULL, "checkpoint-commit", "checkpoint-committed",
                                               "checkpoint-marked", "segment-removed"};

/* Trace records: 'W' path offset length old-bytes, 'S' path. */
static void trace_put(int fd, const void *p, size_t n) {
    if (write(fd, p, n) != (ssize_t)n) _exit(40);
}

static void trace_event(const child_plan *cp, const io_event *ev) {
    char link[64], path[PATH_MAX_BYTES];
    snprintf(link, sizeof link, "/proc/self/fd/%d", ev->fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) _exit(41);
    uint32_t len = (uint32_t)n;
    char kind = ev->kind == IO_EV_WRITE ? 'W' : 'S';
    trace_put(cp->trace_fd, &kind, 1);
    trace_put(cp->trace_fd, &len, sizeof len);
    trace_put(cp->trace_fd, path, len);
    if (kind == 'S') return;
    uint8_t *old = calloc(1, ev->len);
    if (old == NULL || pread(ev->fd, old, ev->len, (off_t)ev->off) < 0) _exit(42);
    trace_put(cp->trace_fd, &ev->off, 8);
    trace_put(cp->trace_fd, &ev->len, 8);
    trace_put(cp->trace_fd, old, ev->len);
    free(old);
}

static _Noreturn void die_at(child_plan *cp, const io_event *ev) {
    cp->sh->died_at = (int)ev->kind + 1;
    if (ev->kind == IO_EV_POINT) snprintf(cp->sh->died_point, sizeof cp->sh->died_point, "%s", ev->point);
    raise(SIGKILL);
    _exit(99); /* not reached */
}

static int child_hook(void *ctx, const io_event *ev) {
    child_plan *cp = ctx;
    uint64_t now = ++cp->sh->events;
    bool armed = cp->at != 0 && now >= cp->at;
    bool at_step = cp->step == NULL || (ev->kind == IO_EV_POINT && strcmp(ev->point, cp->step) == 0);
    if (armed && cp->kind == EV_KILL && at_step) die_at(cp, ev);
    /* Power fails as a sync is about to complete (before the trace records
     * it): what was written since the file's last sync may or may not be on
     * the disk, and the engine never learnt that it is. */
    if (armed && cp->kind == EV_POWER && ev->kind == IO_EV_SYNCED) die_at(cp, ev);
    bool traced = ev->kind == IO_EV_WRITE || ev->kind == IO_EV_SYNCED;
    if (cp->trace_fd >= 0 && traced) trace_event(cp, ev);
    if (!armed) return 0;
    bool can_fail = ev->kind == IO_EV_WRITE || ev->kind == IO_EV_SYNC ||
                    (ev->kind == IO_EV_POINT && strcmp(ev->point, "checkpoint-commit") == 0);
    if (cp->kind != EV_IOERR || cp->sh->injected != 0 || !can_fail) return 0; /* the next one that can */
    cp->sh->injected = (uint64_t)cp->errnum;
    if (getenv("MMSB_SIM_TRACE") != NULL) {
        fprintf(stderr, "injecting %s into %s %s\n", strerror(cp->errnum),
                ev->kind == IO_EV_WRITE ? "a write" : ev->kind == IO_EV_SYNC ? "a sync" : "point",
                ev->kind == IO_EV_POINT ? ev->point : "");
    }
    return cp->errnum;
}

static _Noreturn void child_main(const char *dir, uint64_t seed, uint32_t index, child_plan *cp) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
    child_shared = cp->sh;
    mmsb_options o;
    sim_options(&o);
    io_hooks hooks = {.fn = child_hook, .ctx = cp, .inline_flush = true};
    mmsb_engine *e = NULL;
    int rc = engine_open(dir, &o, &hooks, &e);
    if (rc != 0 && cp->sh->injected != 0 && (rc == MMSB_EIO || rc == MMSB_ENOSPC)) _exit(0); /* creating it failed */
    if (rc != 0) {
        snprintf(cp->sh->detail, sizeof cp->sh->detail, "open: %s: %s", mmsb_strerror(rc), mmsb_last_error());
        cp->sh->unexpected = rc;
        _exit(30);
    }
    life l = {.e = e, .sh = cp->sh};
    life_buffers(&l);
    life_run(&l, seed, index, UINT64_MAX);
    rc = mmsb_close(e); /* after an injected error it may fail: the log stopped */
    if (rc == 0) cp->sh->acked = cp->sh->commits; /* a clean close syncs everything */
    _exit(0);
}

/* ---- power loss ----------------------------------------------------------------------- */

typedef struct trace_write {
    char path[PATH_MAX_BYTES];
    uint64_t off, len;
    uint8_t *old;
} trace_write;

static bool trace_get(FILE *f, void *p, size_t n) { return n == 0 || fread(p, 1, n, f) == n; }

/* Every write after its file's last completed sync: each 512-byte sector of
 * it keeps its new bytes, goes back to its old ones, or reads as zeros. */
static void power_loss(const char *trace, rng *r, sim_totals *t) {
    FILE *f = fopen(trace, "rb");
    assert_non_null(f);
    trace_write *ws = NULL;
    uint64_t count = 0, cap = 0;
    for (;;) {
        char kind;
        uint32_t len;
        char path[PATH_MAX_BYTES];
        if (!trace_get(f, &kind, 1)) break;
        if (!trace_get(f, &len, 4) || len >= sizeof path || !trace_get(f, path, len)) break;
        path[len] = '\0';
        if (kind == 'S') { /* the file's writes so far are durable */
            uint64_t keep = 0;
            for (uint64_t i = 0; i < count; i++) {
                if (strcmp(ws[i].path, path) == 0) free(ws[i].old);
                else ws[keep++] = ws[i];
            }
            count = keep;
            continue;
        }
        trace_write w;
        snprintf(w.path, sizeof w.path, "%s", path);
        if (!trace_get(f, &w.off, 8) || !trace_get(f, &w.len, 8)) break;
        w.old = malloc(w.len + 1);
        if (!trace_get(f, w.old, w.len)) {
            free(w.old);
            break; /* the child died while tracing: this write never happened */
        }
        if (count == cap) {
            cap = cap == 0 ? 64 : 2 * cap;
            ws = realloc(ws, cap * sizeof *ws);
            assert_non_null(ws);
        }
        ws[count++] = w;
    }
    fclose(f);
    static const uint8_t zeros[SECTOR];
    for (uint64_t i = count; i-- > 0;) { /* newest first: undoing overlaps in order */
        trace_write *w = &ws[i];
        struct stat st;
        if (stat(w->path, &st) != 0) { /* removed since (retention): nothing to lose */
            free(w->old);
            continue;
        }
        for (uint64_t s = w->off - w->off % SECTOR; s < w->off + w->len; s += SECTOR) {
            uint64_t lo = s > w->off ? s : w->off, hi = s + SECTOR < w->off + w->len ? s + SECTOR : w->off + w->len;
            uint64_t fate = rng_below(r, 3);
            if (fate == 0) continue; /* it reached the disk */
            tu_file_write(w->path, lo, fate == 1 ? w->old + (lo - w->off) : zeros, hi - lo);
            t->sectors_lost++;
        }
        free(w->old);
    }
    free(ws);
}

/* ---- bit flips ------------------------------------------------------------------------- */

static bool path_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static uint64_t nonzero_end(const char *path) {
    uint64_t size = tu_file_size(path), end = 0;
    uint8_t *b = malloc(size);
    tu_file_read(path, 0, b, size);
    for (uint64_t i = 0; i < size; i++) {
        if (b[i] != 0) end = i + 1;
    }
    free(b);
    return end;
}

/* Flips 1..3 bits in a segment (its header a quarter of the time, its
 * records most of the time), or in the checkpoint's LMDB file. */
static void flip_store(const char *dir, event_kind kind, rng *r, char *where, size_t cap) {
    char path[PATH_MAX_BYTES];
    snprintf(path, sizeof path, "%s/checkpoint/data.mdb", dir);
    if (kind == EV_FLIP_LOG || !path_exists(path)) {
        uint64_t *nos;
        uint32_t count;
        int dfd = open(dir, O_RDONLY | O_DIRECTORY);
        TU_OK(segment_list(dfd, &nos, &count));
        close(dfd);
        assert_true(count > 0);
        tu_segment_path(dir, nos[rng_below(r, count)], path, sizeof path);
        free(nos);
    }
    uint64_t size = tu_file_size(path), end = nonzero_end(path);
    uint32_t flips = 1 + (uint32_t)rng_below(r, 3);
    for (uint32_t i = 0; i < flips; i++) {
        uint64_t where_in = rng_below(r, 8);
        uint64_t off = where_in < 2 ? rng_below(r, SEG_HEADER_BYTES)
                       : where_in < 7 && end > 0 ? rng_below(r, end)
                                                 : rng_below(r, size);
        tu_file_flip_bit(path, off, (uint32_t)rng_below(r, 8));
        if (i == 0) snprintf(where, cap, "%s offset %llu", strrchr(path, '/') + 1, (unsigned long long)off);
    }
}

/* ---- the reference -------------------------------------------------------------------- */

static mmsb_engine *reference_open(const char *dir) {
    mmsb_options o;
    sim_options(&o);
    o.durability = MMSB_DURABILITY_NONE;
    return tu_open(dir, &o);
}

/* The roots after every commit of the life, run from the store as it was. */
static uint64_t reference_roots(const char *snapshot, uint64_t seed, uint32_t index,
                                char (**roots)[FINGERPRINT_BYTES]) {
    char *dir = tu_dir_new();
    tu_copy_store(snapshot, dir);
    life l = {.e = reference_open(dir), .reference = true, .roots_cap = STEPS_PER_LIFE + 1};
    l.roots = calloc(l.roots_cap, sizeof *l.roots);
    life_buffers(&l);
    uint64_t commits = life_run(&l, seed, index, UINT64_MAX);
    TU_OK(mmsb_close(l.e));
    *roots = l.roots;
    l.roots = NULL;
    life_free(&l);
    tu_dir_remove(dir);
    return commits;
}

/* ---- the checks after an event --------------------------------------------------------- */

typedef struct verdict {
    int verify;            /* exit statuses */
    int others[6];
    char others_out[6][600];
    int reader;            /* the log reader API */
    int ro;                /* read-only open */
    char ro_root[FINGERPRINT_BYTES];
    uint64_t page;
    bool page_live;        /* the read-only open found a live page (`page`) */
} verdict;

static int tool_status(const char *const *args, char *out, size_t cap) {
    tu_run r = tu_tool_run(args);
    int status = r.status;
    if (out != NULL) snprintf(out, cap, "%s%s", r.out, r.err);
    tu_run_free(&r);
    return status;
}

/* The read-only state first: which page to look at, and its root. */
static void read_only_state(const char *dir, verdict *v) {
    mmsb_options o;
    sim_options(&o);
    o.flags = MMSB_OPEN_READONLY;
    mmsb_engine *e = NULL;
    v->page = 1;
    v->ro = mmsb_open(dir, &o, &e);
    if (v->ro != 0) return;
    fingerprint(e, v->ro_root);
    mmsb_engineinfo info = tu_info(e);
    for (uint64_t id = 1; id < info.page_id_next; id++) {
        mmsb_pageinfo pi = {.struct_size = sizeof pi};
        if (mmsb_page_info(e, id, &pi) == 0) {
            v->page = id;
            v->page_live = true;
            break;
        }
    }
    TU_OK(mmsb_close(e));
}

static void reading_commands(const char *dir, const char *ref, verdict *v, char *verify_out, size_t cap) {
    char id[32];
    snprintf(id, sizeof id, "%llu", (unsigned long long)v->page);
    v->verify = tool_status((const char *const[]){"verify", dir, "--json", NULL}, verify_out, cap);
    const char *const cmds[][6] = {
        {"replay", dir, "--verify", NULL}, {"dump", dir, NULL}, {"stats", dir, NULL},
        {"history", dir, "--page", id, NULL}, {"page", dir, "--page", id, NULL}, {"diff", dir, ref, NULL},
    };
    for (size_t i = 0; i < ARRAY_LEN(cmds); i++) {
        v->others[i] = tool_status(cmds[i], v->others_out[i], sizeof v->others_out[i]);
    }
    uint64_t records;
    v->reader = tu_log_read_all(dir, &records);
}

typedef struct event_ctx {
    uint64_t seed;
    uint32_t index;
    event_kind kind;
    const char *store;     /* the store the event left */
    const char *snapshot;  /* the store before the life */
    uint64_t acked, commits;
    char where[160];
    sim_totals *t;
    char (*roots)[FINGERPRINT_BYTES]; /* the reference's state after each commit of the life */
    uint64_t ref_commits;
} event_ctx;

#define SIM_FAIL(x, fmt, ...) \
    fail_msg("seed %llu life %u (%s%s%s): " fmt, (unsigned long long)(x)->seed, (x)->index, \
             EVENT_NAMES[(x)->kind], (x)->where[0] ? " at " : "", (x)->where, ##__VA_ARGS__)

/* The first k in [acked, commits + 1] whose reference root is `root`. */
static bool find_commit(const event_ctx *x, char (*roots)[FINGERPRINT_BYTES], uint64_t ref_commits, const char *root,
                        uint64_t *k) {
    uint64_t hi = x->commits + 1 < ref_commits ? x->commits + 1 : ref_commits;
    for (uint64_t i = x->acked; i <= hi; i++) {
        if (strcmp(roots[i], root) == 0) {
            *k = i;
            return true;
        }
    }
    return false;
}

/* Page by page: ids, sizes, epochs, bytes, derivations. */
#define SAME(x, what, id, u, v)                                                                                        \
    do {                                                                                                               \
        if ((u) != (v))                                                                                                \
            SIM_FAIL(x, "page %llu: %s %llu in the reference, %llu in the store", (unsigned long long)(id), what,      \
                     (unsigned long long)(u), (unsigned long long)(v));                                                \
    } while (0)

static void same_pages(const event_ctx *x, mmsb_engine *a, mmsb_engine *b) {
    mmsb_engineinfo ia = tu_info(a), ib = tu_info(b);
    SAME(x, "next id", 0, ia.page_id_next, ib.page_id_next);
    SAME(x, "live pages", 0, ia.pages_live, ib.pages_live);
    uint8_t *p = malloc(4 * MiB), *q = malloc(4 * MiB);
    for (uint64_t id = 1; id < ia.page_id_next; id++) {
        mmsb_pageinfo pa = {.struct_size = sizeof pa}, pb = {.struct_size = sizeof pb};
        int ra = mmsb_page_info(a, id, &pa), rb = mmsb_page_info(b, id, &pb);
        SAME(x, "existence", id, ra == 0, rb == 0);
        if (ra != 0) continue;
        SAME(x, "size", id, pa.size_bytes, pb.size_bytes);
        SAME(x, "epoch", id, pa.epoch, pb.epoch);
        TU_OK(mmsb_page_read(a, id, 0, p, pa.size_bytes, NULL));
        TU_OK(mmsb_page_read(b, id, 0, q, pb.size_bytes, NULL));
        SAME(x, "bytes equal", id, 1, memcmp(p, q, pa.size_bytes) == 0);
        mmsb_deriveinfo da = {.struct_size = sizeof da}, db = {.struct_size = sizeof db};
        TU_OK(mmsb_derive_info(a, id, &da, NULL, 0));
        TU_OK(mmsb_derive_info(b, id, &db, NULL, 0));
        SAME(x, "operation", id, da.op, db.op);
        SAME(x, "parents", id, da.parent_count, db.parent_count);
        SAME(x, "signature equal", id, 1, memcmp(da.signature.bytes, db.signature.bytes, 16) == 0);
    }
    free(p);
    free(q);
}

/* The reference stopped at commit k, compared page by page with the store's
 * read-only state; kept (closed) in ref_dir for `mmsb diff`. */
static void reference_at(const event_ctx *x, uint64_t k, const char *ref_dir) {
    tu_copy_store(x->snapshot, ref_dir);
    life l = {.e = reference_open(ref_dir), .reference = true};
    life_buffers(&l);
    uint64_t made = life_run(&l, x->seed, x->index, k);
    if (made != k)
        SIM_FAIL(x, "the reference made %llu commits, expected %llu", (unsigned long long)made, (unsigned long long)k);
    mmsb_options o;
    sim_options(&o);
    o.flags = MMSB_OPEN_READONLY;
    mmsb_engine *ro = tu_open(x->store, &o);
    same_pages(x, l.e, ro);
    TU_OK(mmsb_close(ro));
    TU_OK(mmsb_close(l.e));
    life_free(&l);
}

/* A crash while the life created the store (its first segment not yet in
 * place) leaves no store at all: nothing was acknowledged, the reading
 * commands say there is no store, and the next open creates it. */
static bool check_no_store(event_ctx *x, const verdict *v) {
    if (v->ro != MMSB_ENOTFOUND) return false;
    if (x->acked != 0 || x->index != 0)
        SIM_FAIL(x, "the store is gone after %llu acknowledged commits", (unsigned long long)x->acked);
    char out[600];
    int status = tool_status((const char *const[]){"verify", x->store, NULL}, out, sizeof out);
    if (status != 2 || strstr(out, "no MMSB store") == NULL)
        SIM_FAIL(x, "verify on no store: exit %d: %s", status, out);
    mmsb_options o;
    sim_options(&o);
    mmsb_engine *e = NULL;
    TU_OK(mmsb_open(x->store, &o, &e));
    char root[FINGERPRINT_BYTES];
    fingerprint(e, root);
    TU_OK(mmsb_close(e));
    if (strcmp(root, x->roots[0]) != 0) SIM_FAIL(x, "a store created again is not empty");
    x->t->no_store++;
    return true;
}

static void check_event(event_ctx *x) {
    verdict v = {0};
    read_only_state(x->store, &v);
    if (check_no_store(x, &v)) return;
    uint64_t k = 0;
    bool found = v.ro == 0 && find_commit(x, x->roots, x->ref_commits, v.ro_root, &k);
    bool damaged = x->kind == EV_FLIP_LOG || x->kind == EV_FLIP_CKPT;
    if (v.ro == 0 && !found) {
        uint64_t anywhere = UINT64_MAX;
        for (uint64_t i = 0; i <= x->ref_commits; i++) {
            if (strcmp(x->roots[i], v.ro_root) == 0) anywhere = i;
        }
        SIM_FAIL(x,
                 "the store holds state root %s, which is the state after no commit from %llu (acknowledged) "
                 "to %llu of the life (%s %llu)",
                 v.ro_root, (unsigned long long)x->acked, (unsigned long long)x->commits + 1,
                 anywhere == UINT64_MAX ? "nor any of the reference's" : "but commit",
                 (unsigned long long)(anywhere == UINT64_MAX ? x->ref_commits : anywhere));
    }
    if (v.ro != 0 && (!damaged || v.ro != MMSB_ECORRUPT)) {
        SIM_FAIL(x, "a read-only open failed: %s", mmsb_strerror(v.ro));
    }
    char *ref_dir = tu_dir_new();
    if (found) reference_at(x, k, ref_dir);
    static char verify_out[1 << 16];
    reading_commands(x->store, found ? ref_dir : x->store, &v, verify_out, sizeof verify_out);
    /* The writer's open, after the readers (they changed nothing). */
    mmsb_options o;
    sim_options(&o);
    mmsb_engine *e = NULL;
    int rc = mmsb_open(x->store, &o, &e);
    char root[FINGERPRINT_BYTES] = "";
    if (rc == 0) {
        fingerprint(e, root);
        x->t->torn += (tu_info(e).recovery_flags & MMSB_RECOVERED_TORN) != 0;
        TU_OK(mmsb_close(e));
    }
    /* The verdicts must agree. */
    if (v.verify > 1) SIM_FAIL(x, "verify exited %d: %s", v.verify, verify_out);
    for (size_t i = 0; i < ARRAY_LEN(v.others); i++) {
        /* `mmsb page` rightly exits 2 for a page the store does not hold: none
         * when the open failed or no commit made one (an early I/O error). */
        bool page_missing = i == 4 && (v.ro != 0 || !v.page_live) && v.others[i] == 2;
        if (v.others[i] > 1 && !page_missing)
            SIM_FAIL(x, "reading command %zu exited %d: %s", i, v.others[i], v.others_out[i]);
    }
    if (rc != 0 && rc != MMSB_ECORRUPT) SIM_FAIL(x, "the open failed: %s", mmsb_strerror(rc));
    if ((rc == 0) != (v.ro == 0)) SIM_FAIL(x, "the writer's open (%d) and a read-only open (%d) disagree", rc, v.ro);
    if (rc == 0 && strcmp(root, v.ro_root) != 0)
        SIM_FAIL(x, "the writer's open reached %s, a read-only one %s", root, v.ro_root);
    if (!damaged && v.verify != 0) SIM_FAIL(x, "verify found a problem where nothing was damaged: %s", verify_out);
    if (rc != 0 && v.verify != 1) SIM_FAIL(x, "the open failed (corrupt) but verify found nothing");
    if (v.verify == 0) {
        for (size_t i = 0; i < ARRAY_LEN(v.others); i++) {
            int want = i == 4 && !v.page_live ? 2 : 0; /* `mmsb page` of a page the store does not hold */
            if (v.others[i] != want)
                SIM_FAIL(x, "verify is clean but reading command %zu exited %d: %s", i, v.others[i], v.others_out[i]);
        }
        if (v.reader != 0) SIM_FAIL(x, "verify is clean but the log reader failed: %s", mmsb_strerror(v.reader));
        if (rc != 0) SIM_FAIL(x, "verify is clean but the open failed");
    }
    if (v.verify == 1 && strstr(verify_out, "log-") == NULL && strstr(verify_out, "checkpoint") == NULL) {
        SIM_FAIL(x, "verify found a problem without naming where: %s", verify_out);
    }
    x->t->corrupt_found += rc != 0 || v.verify != 0;
    x->t->clean_after_flip += damaged && v.verify == 0;
    tu_dir_remove(ref_dir);
}

/* ---- one seed ------------------------------------------------------------------------- */

static shared *shared_new(void) {
    shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(sh != MAP_FAILED);
    return sh;
}

/* Runs life `index` in a child; returns how it ended (an exit status, or
 * 128 + the signal). */
static int run_child(const char *store, uint64_t seed, uint32_t index, child_plan *cp) {
    memset(cp->sh, 0, sizeof *cp->sh);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) child_main(store, seed, index, cp);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void run_seed(uint64_t seed, uint32_t lives, sim_totals *t) {
    char *store = tu_dir_new(), *snap = tu_dir_new(), *work = tu_dir_new();
    char trace[PATH_MAX_BYTES];
    snprintf(trace, sizeof trace, "%s/trace", work);
    rng r = {.state = seed ^ 0x5157534d4d53494dull};
    shared *sh = shared_new();
    for (uint32_t index = 0; index < lives; index++) {
        event_kind kind = (event_kind)((seed + index) % EV_KINDS);
        tu_dir_remove(snap);
        snap = tu_dir_new();
        tu_copy_store(store, snap);
        child_plan cp = {.kind = kind, .sh = sh, .trace_fd = -1,
                         .errnum = rng_below(&r, 2) ? EIO : ENOSPC,
                         .at = kind <= EV_IOERR ? 1 + rng_below(&r, EVENT_POINT_MAX) : 0,
                         .step = kind == EV_KILL ? CHECKPOINT_STEPS[rng_below(&r, ARRAY_LEN(CHECKPOINT_STEPS))] : NULL};
        if (kind == EV_POWER) {
            cp.trace_fd = open(trace, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            assert_true(cp.trace_fd >= 0);
        }
        int end = run_child(store, seed, index, &cp);
        if (getenv("MMSB_SIM_TRACE") != NULL) {
            fprintf(stderr,
                    "seed %llu life %u %s: at %llu, events %llu, steps %llu, commits %llu, acked %llu, end %d%s%s\n",
                    (unsigned long long)seed, index, EVENT_NAMES[kind], (unsigned long long)cp.at,
                    (unsigned long long)sh->events, (unsigned long long)sh->steps, (unsigned long long)sh->commits,
                    (unsigned long long)sh->acked, end, sh->died_point[0] ? ", killed at " : "", sh->died_point);
        }
        if (cp.trace_fd >= 0) close(cp.trace_fd);
        if (sh->unexpected != 0) {
            fail_msg("seed %llu life %u (%s): the workload failed: %s", (unsigned long long)seed, index,
                     EVENT_NAMES[kind], sh->detail);
        }
        if (end != 0 && end != 128 + SIGKILL)
            fail_msg("seed %llu life %u: the child ended with %d", (unsigned long long)seed, index, end);
        event_ctx x = {.seed = seed, .index = index, .kind = kind, .store = store, .snapshot = snap,
                       .acked = sh->acked, .commits = sh->commits, .t = t};
        x.ref_commits = reference_roots(snap, seed, index, &x.roots);
        if (x.ref_commits < x.commits) {
            fail_msg("seed %llu life %u: the reference made %llu commits, the child %llu", (unsigned long long)seed,
                     index, (unsigned long long)x.ref_commits, (unsigned long long)x.commits);
        }
        if (kind == EV_POWER) power_loss(trace, &r, t);
        t->killed_before_write += sh->died_at == IO_EV_WRITE + 1;
        t->killed_before_sync += sh->died_at == IO_EV_SYNC + 1;
        t->killed_at_sync += sh->died_at == IO_EV_SYNCED + 1;
        t->killed_in_checkpoint += sh->died_at == IO_EV_POINT + 1;
        t->events[kind]++;
        t->acked += sh->acked;
        t->commits += sh->commits;
        if (kind == EV_FLIP_LOG || kind == EV_FLIP_CKPT) {
            /* The damage goes to a copy; the store itself lives on. */
            char *damaged = tu_dir_new();
            tu_copy_store(store, damaged);
            flip_store(damaged, kind, &r, x.where, sizeof x.where);
            x.store = damaged;
            check_event(&x);
            tu_dir_remove(damaged);
            x.store = store;
            x.where[0] = '\0';
            x.kind = EV_KILL; /* the undamaged store must be whole */
        }
        check_event(&x);
        free(x.roots);
    }
    munmap(sh, sizeof *sh);
    tu_dir_remove(store);
    tu_dir_remove(snap);
    tu_dir_remove(work);
}

static uint64_t env_u64(const char *name, uint64_t fallback) {
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? strtoull(v, NULL, 10) : fallback;
}

static void test_simulator(void **state) {
    (void)state;
    uint64_t first = env_u64("MMSB_SIM_SEED", 0), seeds = env_u64("MMSB_SIM_SEEDS", SEEDS_DEFAULT);
    uint32_t lives = (uint32_t)env_u64("MMSB_SIM_LIVES", LIVES_DEFAULT);
    if (first != 0) seeds = 1;
    else first = env_u64("MMSB_SIM_SEED_FIRST", 1);
    sim_totals t = {0};
    for (uint64_t s = first; s < first + seeds; s++) run_seed(s, lives, &t);
    print_message("simulator: seeds %llu..%llu, %u lives each: kill %llu, power loss %llu (%llu sectors lost), "
                  "I/O errors %llu, flipped segments %llu, flipped checkpoints %llu; %llu commits, %llu acknowledged "
                  "as durable, none lost; %llu torn tails cut; %llu creations cut short; damage found %llu times, "
                  "%llu flips harmless; killed before a write %llu, before a sync %llu, as a sync completed %llu, "
                  "at a checkpoint step %llu\n",
                  (unsigned long long)first, (unsigned long long)(first + seeds - 1), lives,
                  (unsigned long long)t.events[EV_KILL], (unsigned long long)t.events[EV_POWER],
                  (unsigned long long)t.sectors_lost, (unsigned long long)t.events[EV_IOERR],
                  (unsigned long long)t.events[EV_FLIP_LOG], (unsigned long long)t.events[EV_FLIP_CKPT],
                  (unsigned long long)t.commits, (unsigned long long)t.acked, (unsigned long long)t.torn,
                  (unsigned long long)t.no_store, (unsigned long long)t.corrupt_found,
                  (unsigned long long)t.clean_after_flip, (unsigned long long)t.killed_before_write,
                  (unsigned long long)t.killed_before_sync, (unsigned long long)t.killed_at_sync,
                  (unsigned long long)t.killed_in_checkpoint);
}

static int setup(void **state) {
    (void)state;
    return tu_tool_find() ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_simulator)};
    return cmocka_run_group_tests(tests, setup, NULL);
}
