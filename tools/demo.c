/*
 * demo.c - `mmsb demo DIR`: the main job. Runs a seeded workload through the
 * log, twice, in DIR/run-1 and DIR/run-2: page creates, writes, deltas and
 * frees, then a DAG of derived pages under transactions (demo_dag.c). The
 * second run recomputes every derived page at every commit (the reference
 * propagation mode), so equal roots show both determinism and that the
 * incremental engine's skips, backdates and delta propagation lose nothing.
 * Each store is closed and reopened to show that the log rebuilds the state
 * root it closed with.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

enum {
    DEMO_PAGES_MAX = 64,
    DEMO_CHANGE_BYTES_MAX = 64 * 1024,
    DEMO_TABLE_ROWS = 12,
};

typedef struct demo_stats {
    uint64_t creates, frees;
    uint64_t writes, writes_unchanged;
    uint64_t deltas_dense, deltas_sparse, deltas_unchanged;
    uint64_t bytes_changed;
    uint64_t elapsed_ns;
    dag_stats dag;
    char root[33];
    /* after close and reopen */
    uint64_t recover_ns, recovered_commits, recovered_records;
    char recovered_root[33];
    char recovery_detail[256];
} demo_stats;

typedef struct demo {
    mmsb_engine *e;
    uint64_t rng_state;
    uint64_t ids[DEMO_PAGES_MAX];
    uint64_t sizes[DEMO_PAGES_MAX];
    uint32_t count;
    uint8_t *bytes, *mask, *packed;
    demo_stats st;
} demo;

static uint64_t next_u64(demo *d) { return cli_rng_next(&d->rng_state); }

static uint64_t below(demo *d, uint64_t bound) { return bound == 0 ? 0 : next_u64(d) % bound; }

static int create_page(demo *d, uint64_t size) {
    if (d->count == DEMO_PAGES_MAX) return 0;
    int rc = mmsb_page_create(d->e, size, 0, &d->ids[d->count]);
    if (rc != 0) return rc;
    d->sizes[d->count++] = size;
    d->st.creates++;
    return 0;
}

static int free_page(demo *d) {
    uint32_t k = (uint32_t)below(d, d->count);
    int rc = mmsb_page_free(d->e, d->ids[k]);
    if (rc != 0) return rc;
    d->ids[k] = d->ids[--d->count];
    d->sizes[k] = d->sizes[d->count];
    d->st.frees++;
    return 0;
}

/* A change of 1 byte .. 64 KiB: random bytes, or the page's own bytes with a
 * few flipped (and sometimes none flipped, so nothing changes). */
static int change_page(demo *d, bool as_delta) {
    uint32_t k = (uint32_t)below(d, d->count);
    uint64_t size = d->sizes[k];
    uint64_t limit = below(d, 8) == 0 ? DEMO_CHANGE_BYTES_MAX : 256;
    uint64_t off = below(d, size);
    uint64_t len = 1 + below(d, size - off < limit ? size - off : limit);
    int rc = mmsb_page_read(d->e, d->ids[k], off, d->bytes, len, NULL);
    if (rc != 0) return rc;
    uint64_t flips = below(d, 4) == 0 ? 0 : 1 + below(d, len < 16 ? len : 16);
    for (uint64_t f = 0; f < flips; f++) d->bytes[below(d, len)] = (uint8_t)next_u64(d);
    mmsb_change ch;
    if (!as_delta) {
        rc = mmsb_write(d->e, d->ids[k], off, d->bytes, len, &ch);
        d->st.writes++;
        d->st.writes_unchanged += rc == 0 && ch.bytes_changed == 0;
    } else {
        bool sparse = below(d, 2) == 0;
        uint64_t n = 0;
        memset(d->mask, 0, (len + 7) / 8);
        for (uint64_t i = 0; i < len; i++) {
            if (below(d, 3) != 0) continue;
            d->mask[i / 8] |= (uint8_t)(1u << (i % 8));
            d->packed[n++] = d->bytes[i];
        }
        mmsb_delta delta = {.page_id = d->ids[k], .offset = off, .len = len, .mask = d->mask,
                            .payload = sparse ? d->packed : d->bytes,
                            .payload_len = sparse ? n : len,
                            .flags = sparse ? MMSB_DELTA_SPARSE : 0};
        rc = mmsb_apply(d->e, &delta, &ch);
        d->st.deltas_sparse += sparse;
        d->st.deltas_dense += !sparse;
        d->st.deltas_unchanged += rc == 0 && ch.bytes_changed == 0;
    }
    if (rc == 0) d->st.bytes_changed += ch.bytes_changed;
    return rc;
}

static int workload(demo *d, uint64_t ops) {
    static const uint64_t sizes[] = {64, 100, 4096, 4096, 4096, 4096, 4096, 4096, 4096, 4096,
                                     4096, 4096, 12288, 65536, 1 << 20, (4 << 20) + 7};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof sizes / sizeof sizes[0]; i++) rc = create_page(d, sizes[i]);
    for (uint64_t op = 0; rc == 0 && op < ops; op++) {
        uint64_t what = below(d, 100);
        if (what < 2 && d->count > 4) {
            rc = free_page(d);
        } else if (what < 4) {
            rc = create_page(d, sizes[below(d, sizeof sizes / sizeof sizes[0])]);
        } else {
            rc = change_page(d, what >= 60);
        }
    }
    return rc;
}

static void print_pages(demo *d) {
    printf("  %6s %10s %7s  %s\n", "page", "bytes", "epoch", "page digest");
    for (uint32_t k = 0; k < d->count && k < DEMO_TABLE_ROWS; k++) {
        mmsb_pageinfo info = {.struct_size = sizeof info};
        mmsb_digest digest;
        char hex[33] = "?";
        if (mmsb_page_info(d->e, d->ids[k], &info) != 0) continue;
        if (mmsb_page_digest(d->e, d->ids[k], &digest) == 0) mmsb_digest_hex(&digest, hex, sizeof hex);
        printf("  %6llu %10llu %7llu  %s\n", (unsigned long long)info.page_id,
               (unsigned long long)info.size_bytes, (unsigned long long)info.epoch, hex);
    }
    if (d->count > DEMO_TABLE_ROWS) printf("  ... and %u more pages\n", d->count - DEMO_TABLE_ROWS);
}

/* Each run starts from an empty store: the demo's own files go. */
/* Removes a checkpoint directory (LMDB's two files) of an earlier run. */
static int remove_checkpoint_dir(const char *dir, const char *name) {
    static const char *const files[] = {"data.mdb", "lock.mdb"};
    char path[4096];
    int rc = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s/%s", dir, name, files[i]);
        if (unlink(path) != 0 && errno != ENOENT) rc = -1;
    }
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (rmdir(path) != 0 && errno != ENOENT) rc = -1;
    return rc;
}

/* Clears what an earlier run left: its log, lock and checkpoints. */
static int reset_store(const char *dir) {
    DIR *d = opendir(dir);
    if (d == NULL) return errno == ENOENT ? 0 : -1;
    int rc = remove_checkpoint_dir(dir, "checkpoint") | remove_checkpoint_dir(dir, "checkpoint.rejected");
    for (struct dirent *ent; (ent = readdir(d)) != NULL;) {
        bool ours = strcmp(ent->d_name, "LOCK") == 0 ||
                    (strncmp(ent->d_name, "log-", 4) == 0 && strstr(ent->d_name, ".seg") != NULL);
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
        if (ours && unlink(path) != 0) rc = -1;
    }
    closedir(d);
    return rc;
}

static const char *durability_name(uint32_t d) {
    return d == MMSB_DURABILITY_SYNC ? "SYNC" : d == MMSB_DURABILITY_GROUP ? "GROUP" : "NONE";
}

/* Reopens the store and compares the recovered root with the one it had. */
static int reopen_and_check(const char *dir, const mmsb_options *o, demo_stats *st) {
    mmsb_engine *e = NULL;
    uint64_t t0 = cli_now_ns();
    int rc = mmsb_open(dir, o, &e);
    st->recover_ns = cli_now_ns() - t0;
    if (rc != 0) {
        cli_report_open("demo", dir, rc);
        return rc;
    }
    mmsb_engineinfo info = {.struct_size = sizeof info};
    mmsb_digest root;
    rc = mmsb_engine_info(e, &info);
    if (rc == 0) rc = mmsb_state_root(e, &root);
    if (rc == 0) mmsb_digest_hex(&root, st->recovered_root, sizeof st->recovered_root);
    st->recovered_commits = info.recovered_commits;
    st->recovered_records = info.recovered_records;
    snprintf(st->recovery_detail, sizeof st->recovery_detail, "%s", info.recovery_detail);
    int close_rc = mmsb_close(e);
    return rc != 0 ? rc : close_rc;
}

typedef struct demo_run {
    const char *dir;
    uint64_t seed, ops, txns;
    uint32_t propagation; /* MMSB_PROPAGATE_* */
    bool verbose;
    const char *reader_ready; /* wait for this file (an attached reader's signal), or NULL */
    uint64_t reader_wait_s;   /* for at most this long */
} demo_run;

enum { READER_POLL_MS = 10, READER_WAIT_S_DEFAULT = 60, READER_WAIT_S_MAX = 3600 };

/* A reader in another process attaches once the engine is open and then
 * creates `ready`; the workload starts only after that, so the reader
 * always reads while the demo writes. */
static int wait_for_reader(const char *ready, uint64_t wait_s) {
    for (uint64_t waited_ms = 0; waited_ms < wait_s * 1000; waited_ms += READER_POLL_MS) {
        if (access(ready, F_OK) == 0) return 0;
        struct timespec ts = {0, READER_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "mmsb demo: no reader attached within %llu s (it signals by creating %s)\n",
            (unsigned long long)wait_s, ready);
    return MMSB_EBUSY;
}

static int run_once(const demo_run *run, demo_stats *out) {
    const char *dir = run->dir;
    bool verbose = run->verbose;
    demo d = {.rng_state = run->seed};
    d.bytes = malloc(DEMO_CHANGE_BYTES_MAX);
    d.mask = malloc(DEMO_CHANGE_BYTES_MAX / 8);
    d.packed = malloc(DEMO_CHANGE_BYTES_MAX);
    mmsb_options o;
    int rc = MMSB_OPTIONS_INIT(&o);
    o.durability = MMSB_DURABILITY_GROUP;
    o.propagation = run->propagation;
    o.flags |= MMSB_OPEN_KEEP_LOG; /* `mmsb verify` and `replay` prove the store from genesis */
    if (rc == 0 && (d.bytes == NULL || d.mask == NULL || d.packed == NULL)) rc = MMSB_ENOMEM;
    if (rc == 0 && reset_store(dir) != 0) {
        fprintf(stderr, "mmsb demo: cannot clear %s\n", dir);
        rc = MMSB_EIO;
    }
    if (rc == 0 && run->reader_ready != NULL && unlink(run->reader_ready) != 0 && errno != ENOENT) rc = MMSB_EIO;
    if (rc == 0) rc = mmsb_open(dir, &o, &d.e);
    if (rc != 0) {
        cli_report_open("demo", dir, rc);
    } else if (run->reader_ready != NULL && (rc = wait_for_reader(run->reader_ready, run->reader_wait_s)) != 0) {
        mmsb_close(d.e); /* wait_for_reader said why */
    } else {
        mmsb_engineinfo info = {.struct_size = sizeof info};
        mmsb_engine_info(d.e, &info);
        if (verbose) {
            printf("engine: kernels %s; gpu %s\n", info.kernel, info.gpu);
            printf("log: %s durability, backend %s\n", durability_name(info.durability), info.io_reason);
        }
        uint64_t t0 = cli_now_ns();
        rc = workload(&d, run->ops);
        d.st.elapsed_ns = cli_now_ns() - t0;
        if (rc != 0) cli_report("workload", rc);
        if (rc == 0) rc = demo_dag(d.e, &d.rng_state, run->txns, &d.st.dag);
        mmsb_digest root;
        if (rc == 0) rc = mmsb_state_root(d.e, &root);
        if (rc == 0) mmsb_digest_hex(&root, d.st.root, sizeof d.st.root);
        if (rc == 0 && verbose) print_pages(&d);
        int close_rc = mmsb_close(d.e);
        if (rc == 0) rc = close_rc;
        if (rc == 0) rc = reopen_and_check(dir, &o, &d.st);
    }
    *out = d.st;
    free(d.bytes);
    free(d.mask);
    free(d.packed);
    return rc;
}

static void print_stats(const char *name, const demo_stats *s) {
    printf("%s: %llu pages created, %llu freed; %llu writes (%llu unchanged), "
           "%llu deltas (%llu dense, %llu sparse, %llu unchanged); %llu bytes changed in %.1f ms\n",
           name, (unsigned long long)s->creates, (unsigned long long)s->frees,
           (unsigned long long)s->writes, (unsigned long long)s->writes_unchanged,
           (unsigned long long)(s->deltas_dense + s->deltas_sparse),
           (unsigned long long)s->deltas_dense, (unsigned long long)s->deltas_sparse,
           (unsigned long long)s->deltas_unchanged, (unsigned long long)s->bytes_changed,
           (double)s->elapsed_ns / 1e6);
    const dag_stats *g = &s->dag;
    printf("%s: DAG of %llu derived pages, %llu edges; %llu transactions committed, "
           "%llu changed nothing, %llu batches; %llu conflicts, %llu refused by an operation, "
           "%llu aborted, each without a trace; in %.1f ms\n",
           name, (unsigned long long)g->derived_pages, (unsigned long long)g->edges,
           (unsigned long long)g->txns_committed, (unsigned long long)g->txns_unchanged,
           (unsigned long long)g->batches, (unsigned long long)g->txns_conflicted,
           (unsigned long long)g->txns_refused, (unsigned long long)g->txns_aborted,
           (double)g->elapsed_ns / 1e6);
    printf("%s: propagation: %llu recomputes (%llu from parents' deltas), %llu skips, %llu backdates; "
           "events: %llu page changes, %llu derived, %llu commits\n",
           name, (unsigned long long)g->recomputes, (unsigned long long)g->delta_propagations,
           (unsigned long long)g->skips, (unsigned long long)g->backdates,
           (unsigned long long)g->events_page_changed, (unsigned long long)g->events_derived,
           (unsigned long long)g->events_commit);
    printf("%s: state root %s before close\n", name, s->root);
    printf("%s: reopened in %.1f ms: %llu commits (%llu records) replayed from the log, %s\n", name,
           (double)s->recover_ns / 1e6, (unsigned long long)s->recovered_commits,
           (unsigned long long)s->recovered_records, s->recovery_detail);
    printf("%s: state root %s after reopen: %s\n", name, s->recovered_root,
           strcmp(s->root, s->recovered_root) == 0 ? "equal" : "DIFFERENT");
}

const char usage_demo[] =
    "usage: mmsb demo DIR [--seed N] [--ops N] [--txns N] [--wait-reader FILE] [--reader-timeout S]\n"
    "\n"
    "Runs a seeded workload twice (DIR/run-1, DIR/run-2) and compares the state roots.\n"
    "Run 2 recomputes every derived page at every commit (the reference mode).\n"
    "  --seed N             workload seed (default 1)\n"
    "  --ops N              page changes per run (default 5000)\n"
    "  --txns N             transactions against the DAG per run (default 2000)\n"
    "  --wait-reader FILE   once run 1's engine is open, wait until FILE exists,\n"
    "                       created by a reader that attached to it; fail if none does\n"
    "  --reader-timeout S   how long to wait for it (default 60 s, at most 3600)\n"
    "Exit status: 0 both runs agree, 1 they differ, 2 usage or I/O error.\n";

int cmd_demo(int argc, char **argv) {
    const char *reader_ready = NULL;
    uint64_t seed = 1, ops = 5000, txns = 2000, reader_wait_s = READER_WAIT_S_DEFAULT;
    const cli_opt opts[] = {
        {"--seed", OPT_U64, &seed, NULL},
        {"--ops", OPT_U64, &ops, NULL},
        {"--txns", OPT_U64, &txns, NULL},
        {"--wait-reader", OPT_TEXT, &reader_ready, NULL},
        {"--reader-timeout", OPT_U64, &reader_wait_s, NULL},
    };
    cli_args a;
    int rc = cli_parse("demo", usage_demo, argc, argv, opts, (uint32_t)(sizeof opts / sizeof opts[0]), 1, &a);
    if (rc != 0) return rc == CLI_HELP ? EXIT_CLEAN : rc;
    if (a.json) {
        fprintf(stderr, "mmsb demo: has no --json output (its report is for people; "
                        "'mmsb stats DIR/run-1 --json' reads the store it leaves)\n");
        return EXIT_USAGE;
    }
    const char *dir = a.pos[0];
    if (reader_wait_s > READER_WAIT_S_MAX) {
        fprintf(stderr, "mmsb demo: --reader-timeout is at most %d s\n\n%s", READER_WAIT_S_MAX, usage_demo);
        return EXIT_USAGE;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "mmsb demo: cannot create %s: %s\n", dir, strerror(errno));
        return EXIT_USAGE;
    }
    printf("MMSB %s demo: seed %llu, %llu changes and %llu transactions per run, store in %s\n",
           MMSB_VERSION_STRING, (unsigned long long)seed, (unsigned long long)ops,
           (unsigned long long)txns, dir);
    char path[2][4096];
    demo_stats st[2];
    for (int run = 0; run < 2; run++) {
        snprintf(path[run], sizeof path[run], "%s/run-%d", dir, run + 1);
        demo_run r = {.dir = path[run], .seed = seed, .ops = ops, .txns = txns, .verbose = run == 0,
                      .propagation = run == 0 ? MMSB_PROPAGATE_INCREMENTAL : MMSB_PROPAGATE_FULL,
                      .reader_ready = run == 0 ? reader_ready : NULL, .reader_wait_s = reader_wait_s};
        if (run == 1) printf("%s: propagation FULL: every derived page recomputed at every commit\n", path[run]);
        if (run_once(&r, &st[run]) != 0) return EXIT_USAGE;
        print_stats(path[run], &st[run]);
    }
    bool same = strcmp(st[0].root, st[1].root) == 0;
    bool recovered = strcmp(st[0].root, st[0].recovered_root) == 0 &&
                     strcmp(st[1].root, st[1].recovered_root) == 0;
    printf("recovery: %s\n", recovered ? "each store reopened to the state root it closed with"
                                        : "A REOPENED STORE HAS ANOTHER STATE ROOT");
    printf("determinism: %s\n", same ? "both runs reached the same state root"
                                     : "THE STATE ROOTS DIFFER");
    return same && recovered ? EXIT_CLEAN : EXIT_PROBLEM;
}
