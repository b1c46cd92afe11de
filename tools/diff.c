/*
 * diff.c - `mmsb diff A B`: where two stores stop agreeing.
 *
 * The committed records of both logs are compared in order, leaving out
 * what is bookkeeping rather than state and legitimately differs between
 * two stores given the same changes: segment SEALs, CHECKPOINT markers,
 * empty commits (a clean close's), and in a COMMIT its chain value (seeded
 * by the store's salt) and durability hint. Then both stores' current
 * states (checkpoint + log, as a read-only open sees them) are compared.
 */
#include <stdlib.h>
#include <string.h>

#include "tool.h"

const char usage_diff[] =
    "usage: mmsb diff DIR_A DIR_B [--json]\n"
    "\n"
    "Compares two stores: the first committed record where their logs differ\n"
    "(type, page, payload byte, or recorded state root), or where one log\n"
    "ends while the other goes on; then their state roots. When either log\n"
    "no longer starts at record 1, only the states are compared.\n"
    "Exit status: 0 identical, 1 they differ (or one is corrupt), 2 usage or I/O error.\n";

typedef struct stream {
    const char *dir;
    mmsb_engine *e;       /* a bare engine: its directory and kernels */
    log_cursor *c;
    uint64_t last_commit_seq;
    uint64_t first_seq;
    bool done;
    log_rec r;
} stream;

/* The verdict of the whole log first: records after its last commit are
 * not state, and a corrupt log is reported before any comparison. */
static int stream_open(stream *s) {
    log_end end;
    int rc = tool_scan_log(s->e, NULL, NULL, NULL, &end, NULL, NULL);
    if (rc != 0) return rc;
    s->last_commit_seq = end.last_commit_seq;
    s->first_seq = end.empty ? 1 : end.first_seq;
    return tool_cursor(s->e, CURSOR_VERIFY, &s->c);
}

static bool bookkeeping(const log_rec *r) {
    if (r->type == REC_SEAL || r->type == REC_CHECKPOINT) return true;
    return r->type == REC_COMMIT && get_le32(r->payload + 20) == 0; /* no records: a close */
}

static int stream_next(stream *s) {
    for (;;) {
        int rc = cursor_next(s->c, &s->r, &s->done);
        if (rc != 0) return rc;
        if (!s->done && s->r.seq > s->last_commit_seq) s->done = true;
        if (s->done || !bookkeeping(&s->r)) return 0;
    }
}

/* How two records differ, in words; false when they agree. */
static bool records_differ(const log_rec *a, const log_rec *b, char *what, size_t cap) {
    if (a->type != b->type) {
        snprintf(what, cap, "record types differ: %s in A, %s in B", rec_type_name(a->type), rec_type_name(b->type));
        return true;
    }
    if (a->type == REC_COMMIT) {
        uint32_t na = get_le32(a->payload + 20), nb = get_le32(b->payload + 20);
        bool ra = get_le32(a->payload + 16) & COMMIT_HAS_ROOT, rb = get_le32(b->payload + 16) & COMMIT_HAS_ROOT;
        if (na != nb) {
            snprintf(what, cap, "commits of %u records in A, %u in B", na, nb);
            return true;
        }
        if (ra && rb &&
            memcmp(a->payload + COMMIT_FIXED_BYTES, b->payload + COMMIT_FIXED_BYTES, COMMIT_ROOT_BYTES) != 0) {
            snprintf(what, cap, "the recorded state roots differ");
            return true;
        }
        return false;
    }
    if (a->type == REC_ABORT) return false; /* its sequence number is positional */
    uint64_t n = a->length < b->length ? a->length : b->length;
    uint64_t off = 0;
    while (off < n && a->payload[off] == b->payload[off]) off++;
    if (off == n && a->length == b->length) return false;
    if (off == n) {
        snprintf(what, cap, "%s payloads of %u and %u bytes", rec_type_name(a->type), a->length, b->length);
    } else {
        snprintf(what, cap, "%s payloads differ from byte %llu: 0x%02x in A, 0x%02x in B", rec_type_name(a->type),
                 (unsigned long long)off, a->payload[off], b->payload[off]);
    }
    return true;
}

typedef struct diff_result {
    bool logs_compared, differ, state_differ;
    uint64_t compared;          /* state records compared equal */
    uint64_t a_seq, b_seq;      /* the first differing records (0: that log ended) */
    uint64_t page;
    uint64_t a_agreed, b_agreed; /* the last records that agreed */
    char what[256];
    char a_root[33], b_root[33];
    uint64_t a_state_seq, b_state_seq;
} diff_result;

static int compare_logs(stream *a, stream *b, diff_result *d) {
    int rc = 0;
    for (;;) {
        rc = stream_next(a);
        if (rc == 0) rc = stream_next(b);
        if (rc != 0 || (a->done && b->done)) return rc;
        if (a->done || b->done) {
            d->differ = true;
            d->a_seq = a->done ? 0 : a->r.seq;
            d->b_seq = b->done ? 0 : b->r.seq;
            d->page = tool_record_page(a->done ? &b->r : &a->r);
            snprintf(d->what, sizeof d->what, "%s's log ends here; %s has more commits", a->done ? "A" : "B",
                     a->done ? "B" : "A");
            return 0;
        }
        if (records_differ(&a->r, &b->r, d->what, sizeof d->what)) {
            d->differ = true;
            d->a_seq = a->r.seq;
            d->b_seq = b->r.seq;
            d->page = tool_record_page(&a->r);
            return 0;
        }
        d->compared++;
        d->a_agreed = a->r.seq;
        d->b_agreed = b->r.seq;
    }
}

static void diff_print(const char *da, const char *db, const diff_result *d) {
    printf("mmsb diff %s %s\n", da, db);
    if (!d->logs_compared) {
        printf("logs: not compared (a log no longer starts at record 1)\n");
    } else if (d->differ) {
        printf("logs: %llu state records agree (to record %llu in A, %llu in B); first divergence: ",
               (unsigned long long)d->compared, (unsigned long long)d->a_agreed, (unsigned long long)d->b_agreed);
        printf("record %llu in A, %llu in B", (unsigned long long)d->a_seq, (unsigned long long)d->b_seq);
        if (d->page != 0) printf(", page %llu", (unsigned long long)d->page);
        printf(": %s\n", d->what);
    } else {
        printf("logs: identical (%llu state records)\n", (unsigned long long)d->compared);
    }
    printf("state: A %s (record %llu), B %s (record %llu): %s\n", d->a_root, (unsigned long long)d->a_state_seq,
           d->b_root, (unsigned long long)d->b_state_seq, d->state_differ ? "DIFFERENT" : "equal");
}

static void diff_json(const char *da, const char *db, const diff_result *d) {
    json_out j;
    json_begin(&j, stdout);
    json_str(&j, "command", "diff");
    json_str(&j, "a", da);
    json_str(&j, "b", db);
    json_bool(&j, "identical", !d->differ && !d->state_differ);
    json_bool(&j, "logs_compared", d->logs_compared);
    json_u64(&j, "records_agreed", d->compared);
    if (d->differ) {
        json_obj(&j, "divergence");
        json_u64(&j, "a_seq", d->a_seq);
        json_u64(&j, "b_seq", d->b_seq);
        json_u64(&j, "page", d->page);
        json_u64(&j, "a_agreed_to", d->a_agreed);
        json_u64(&j, "b_agreed_to", d->b_agreed);
        json_str(&j, "what", d->what);
        json_close_obj(&j);
    }
    json_obj(&j, "state");
    json_str(&j, "a_root", d->a_root);
    json_u64(&j, "a_seq", d->a_state_seq);
    json_str(&j, "b_root", d->b_root);
    json_u64(&j, "b_seq", d->b_state_seq);
    json_bool(&j, "equal", !d->state_differ);
    json_close_obj(&j);
    json_end(&j);
}

/* A problem with one store: corruption is a finding (1), the rest is 2. */
static int store_failed(const char *dir, int rc) {
    cli_report_open("diff", dir, rc);
    return rc == MMSB_ECORRUPT || rc == MMSB_EVERSION ? EXIT_PROBLEM : EXIT_USAGE;
}

static int diff_logs(stream s[2], diff_result *d) {
    for (int i = 0; i < 2; i++) {
        int rc = stream_open(&s[i]);
        if (rc != 0) return store_failed(s[i].dir, rc);
    }
    d->logs_compared = s[0].first_seq == 1 && s[1].first_seq == 1;
    int rc = d->logs_compared ? compare_logs(&s[0], &s[1], d) : 0;
    return rc != 0 ? store_failed("a log", rc) : 0;
}

int cmd_diff(int argc, char **argv) {
    cli_args a;
    int rc = cli_parse("diff", usage_diff, argc, argv, NULL, 0, 2, &a);
    if (rc != 0) return rc == CLI_HELP ? EXIT_CLEAN : rc;
    stream s[2] = {{.dir = a.pos[0]}, {.dir = a.pos[1]}};
    diff_result d = {0};
    rc = tool_engine("diff", s[0].dir, &s[0].e);
    if (rc == 0) rc = tool_engine("diff", s[1].dir, &s[1].e);
    if (rc == 0) rc = diff_logs(s, &d);
    for (int i = 0; i < 2; i++) {
        if (s[i].c != NULL) cursor_close(s[i].c);
        if (s[i].e != NULL) engine_close_bare(s[i].e);
    }
    if (rc != 0) return rc;
    mmsb_engineinfo info;
    int ra = tool_state(a.pos[0], &info, d.a_root);
    if (ra != 0) return store_failed(a.pos[0], ra);
    d.a_state_seq = info.commit_seq;
    int rb = tool_state(a.pos[1], &info, d.b_root);
    if (rb != 0) return store_failed(a.pos[1], rb);
    d.b_state_seq = info.commit_seq;
    d.state_differ = strcmp(d.a_root, d.b_root) != 0;
    if (a.json) diff_json(a.pos[0], a.pos[1], &d);
    else diff_print(a.pos[0], a.pos[1], &d);
    return d.differ || d.state_differ ? EXIT_PROBLEM : EXIT_CLEAN;
}
