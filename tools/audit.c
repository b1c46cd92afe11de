/*
 * audit.c - `mmsb verify`, `mmsb replay`, `mmsb diff` and `mmsb checkpoint`:
 * the proofs that a store's state is exactly what its log says.
 *
 * They read the store's files through a bare engine (no lock, nothing
 * written), so they run beside a writer; what they see is the log up to its
 * last complete commit at the moment they read it.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"

enum { PROBLEMS_MAX = 8, PROBLEM_BYTES = 320 };

typedef struct problems {
    char text[PROBLEMS_MAX][PROBLEM_BYTES];
    uint32_t count;
    bool io;              /* a failure to read, not a finding */
} problems;

static void problem(problems *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(problems *p, const char *fmt, ...) {
    if (p->count == PROBLEMS_MAX) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->text[p->count++], PROBLEM_BYTES, fmt, ap);
    va_end(ap);
}

/* A library failure: corruption is a finding, anything else is I/O. */
static void problem_rc(problems *p, int rc, const char *what) {
    if (rc != MMSB_ECORRUPT && rc != MMSB_EVERSION) p->io = true;
    problem(p, "%s: %s: %s", what, mmsb_strerror(rc), cli_error_detail());
}

static int problems_exit(const problems *p) {
    return p->io ? EXIT_USAGE : p->count > 0 ? EXIT_PROBLEM : EXIT_CLEAN;
}

static void problems_json(json_out *j, const problems *p) {
    json_bool(j, "clean", p->count == 0);
    json_arr(j, "problems");
    for (uint32_t i = 0; i < p->count; i++) json_str(j, NULL, p->text[i]);
    json_close_arr(j);
}

static double seconds(uint64_t ns) { return (double)ns / 1e9; }

/* ---- the log as a whole --------------------------------------------------------------- */

typedef struct log_summary {
    log_end end;
    uint64_t markers;    /* CHECKPOINT records */
    uint64_t aborts;
} log_summary;

static void count_marker(void *ctx, const log_rec *r) {
    log_summary *s = ctx;
    s->markers += r->type == REC_CHECKPOINT;
    s->aborts += r->type == REC_ABORT;
}

/* Reads every segment with every check on; the verdict is in s->end. */
static int scan_all(mmsb_engine *e, const log_files *lf, log_summary *s) {
    memset(s, 0, sizeof *s);
    return tool_scan_log(e, lf, count_marker, s, &s->end, NULL, NULL);
}

static bool log_whole(const log_end *end) { return end->empty || end->first_seq == 1; }

static void log_json(json_out *j, const log_files *lf, const log_summary *s) {
    json_obj(j, "log");
    json_u64(j, "segments", lf->count);
    json_u64(j, "segment_first", lf->first);
    json_u64(j, "segment_last", lf->last);
    json_u64(j, "bytes", lf->bytes);
    json_u64(j, "first_seq", s->end.empty ? 0 : s->end.first_seq);
    json_u64(j, "last_seq", s->end.last_seq);
    json_u64(j, "last_commit_seq", s->end.last_commit_seq);
    json_u64(j, "records", s->end.records);
    json_u64(j, "commits", s->end.commits);
    json_u64(j, "covered_to_seq", s->end.covered_to_seq);
    json_u64(j, "leftover_segments", s->end.leftover_segments);
    json_u64(j, "checkpoint_markers", s->markers);
    json_u64(j, "aborts", s->aborts);
    json_bool(j, "torn", s->end.torn);
    json_u64(j, "torn_bytes", s->end.dropped_bytes);
    json_str(j, "end", s->end.detail[0] != '\0' ? s->end.detail : s->end.empty ? "empty" : "clean end");
    json_close_obj(j);
}

/* ---- verify ----------------------------------------------------------------------------- */

const char usage_verify[] =
    "usage: mmsb verify DIR [--json]\n"
    "\n"
    "Checks a store without changing it: every record's CRC, the hash chain,\n"
    "salts, sequence numbers and segment continuity; a replay from genesis\n"
    "(when the whole log is kept) comparing every recorded state root; the\n"
    "checkpoint's own validation, its state against the log's state at the same\n"
    "record, and checkpoint + log suffix against the genesis replay.\n"
    "A torn tail (an unfinished last commit) is reported but is not a problem.\n"
    "Exit status: 0 clean, 1 a problem was found, 2 usage or I/O error.\n";

typedef struct verify_run {
    log_files lf;
    log_summary log;
    bool scanned;
    ckpt_meta ck;
    bool have_ck;
    bool genesis_done, ck_done;
    replay_result genesis, from_ck;
    char genesis_root[33], ck_root[33], ck_meta_root[33];
    uint64_t genesis_ns, ck_ns;
    bool ck_replaced;
    problems p;
} verify_run;

/* A log that no longer starts at record 1 needs a checkpoint that holds
 * everything before it, including a first commit that began before it. */
static void verify_coverage(verify_run *v) {
    const log_end *end = &v->log.end;
    uint64_t needed = max_u64(end->first_seq - 1, end->covered_to_seq);
    if (!v->have_ck) {
        problem(&v->p, "the log starts at record %llu and there is no checkpoint: the records before it are lost",
                (unsigned long long)end->first_seq);
    } else if (v->ck.commit_seq < needed) {
        problem(&v->p, "the log starts at record %llu, but checkpoint %llu only holds the state after record %llu: "
                "records %llu..%llu are lost", (unsigned long long)end->first_seq, (unsigned long long)v->ck.number,
                (unsigned long long)v->ck.commit_seq, (unsigned long long)(v->ck.commit_seq + 1),
                (unsigned long long)needed);
    }
}

/* The genesis replay, with the root at the checkpoint's record kept. */
static void verify_genesis(const char *dir, verify_run *v) {
    mmsb_engine *e;
    if (tool_engine("verify", dir, &e) != 0) {
        v->p.io = true;
        return;
    }
    progress prog;
    progress_start(&prog, "replaying from genesis", v->lf.bytes);
    replay_watch w = {.root_at_seq = v->have_ck ? v->ck.commit_seq : 0, .prog = &prog, .files = &v->lf};
    replay_plan plan = {.to_seq = UINT64_MAX, .hook = replay_watch_hook, .ctx = &w};
    uint64_t t0 = cli_now_ns();
    int rc = engine_replay(e, &plan, &v->genesis);
    v->genesis_ns = cli_now_ns() - t0;
    progress_end(&prog);
    if (rc != 0) {
        problem_rc(&v->p, rc, "replay from genesis");
    } else {
        v->genesis_done = true;
        tool_root_hex(e, v->genesis_root);
        if (v->have_ck && !w.have_root_at) {
            problem(&v->p, "checkpoint %llu covers record %llu, which is not a commit of the log (its last is %llu)",
                    (unsigned long long)v->ck.number, (unsigned long long)v->ck.commit_seq,
                    (unsigned long long)v->genesis.commit_seq);
        } else if (v->have_ck && (w.root_at.lo != v->ck.root.lo || w.root_at.hi != v->ck.root.hi)) {
            char at[33];
            tool_h128_hex(w.root_at, at);
            problem(&v->p, "checkpoint %llu: state root %s, but the log's state at record %llu has %s",
                    (unsigned long long)v->ck.number, v->ck_meta_root, (unsigned long long)v->ck.commit_seq, at);
        }
    }
    replay_watch_free(&w);
    engine_close_bare(e);
}

static void verify_checkpoint(const char *dir, verify_run *v) {
    mmsb_engine *e;
    if (tool_engine("verify", dir, &e) != 0) {
        v->p.io = true;
        return;
    }
    /* To where the genesis replay ended: a writer may have gone on since. */
    replay_plan plan = {.from_checkpoint = true, .to_seq = v->genesis_done ? v->genesis.commit_seq : UINT64_MAX};
    uint64_t t0 = cli_now_ns();
    int rc = engine_replay(e, &plan, &v->from_ck);
    v->ck_ns = cli_now_ns() - t0;
    if (rc != 0 && v->from_ck.checkpoint.number != v->ck.number) {
        v->ck_replaced = true; /* a writer wrote a newer one meanwhile: nothing to compare */
    } else if (rc != 0) {
        problem_rc(&v->p, rc, "checkpoint + log suffix");
    } else {
        v->ck_done = true;
        tool_root_hex(e, v->ck_root);
        if (v->genesis_done && strcmp(v->ck_root, v->genesis_root) != 0) {
            problem(&v->p, "checkpoint + log suffix reach state root %s, the genesis replay %s", v->ck_root,
                    v->genesis_root);
        }
    }
    engine_close_bare(e);
}

static void verify_print(const char *dir, const verify_run *v, uint64_t ns) {
    printf("mmsb verify %s\n", dir);
    const log_end *end = &v->log.end;
    if (v->scanned) {
        printf("log: %llu segment files (%llu..%llu), %llu bytes; records %llu..%llu, %llu commits, %llu checkpoint "
               "markers; CRCs, chain, salts and sequence numbers checked: %s\n",
               (unsigned long long)v->lf.count, (unsigned long long)v->lf.first, (unsigned long long)v->lf.last,
               (unsigned long long)v->lf.bytes, (unsigned long long)(end->empty ? 0 : end->first_seq),
               (unsigned long long)end->last_seq, (unsigned long long)end->commits,
               (unsigned long long)v->log.markers,
               end->status != 0 ? "FAILED" : end->detail[0] != '\0' ? end->detail : "clean end");
        if (end->covered_to_seq != 0) {
            printf("log head: records %llu..%llu finish a commit that began in a removed segment "
                   "(covered by the checkpoint)\n",
                   (unsigned long long)end->first_seq, (unsigned long long)end->covered_to_seq);
        }
        if (end->leftover_segments != 0) {
            printf("log: %llu older segment files are left over from an interrupted retention (covered by the "
                   "checkpoint; the next writer removes them)\n", (unsigned long long)end->leftover_segments);
        }
    }
    if (v->have_ck) {
        printf("checkpoint %llu: state after record %llu, %llu pages, state root %s\n",
               (unsigned long long)v->ck.number, (unsigned long long)v->ck.commit_seq,
               (unsigned long long)v->ck.pages, v->ck_meta_root);
    } else {
        printf("checkpoint: none\n");
    }
    if (v->genesis_done) {
        printf("replay from genesis: %llu commits to record %llu in %.3f s, state root %s\n",
               (unsigned long long)v->genesis.commits, (unsigned long long)v->genesis.commit_seq,
               seconds(v->genesis_ns), v->genesis_root);
    }
    if (v->ck_done) {
        printf("checkpoint + log suffix: to record %llu in %.3f s, state root %s\n",
               (unsigned long long)v->from_ck.commit_seq, seconds(v->ck_ns), v->ck_root);
    }
    if (v->ck_replaced) printf("checkpoint: a writer replaced it during the check; not compared\n");
    for (uint32_t i = 0; i < v->p.count; i++) printf("PROBLEM: %s\n", v->p.text[i]);
    printf("verify: %s (%.3f s)\n", v->p.io ? "could not finish" : v->p.count == 0 ? "clean" : "PROBLEMS FOUND",
           seconds(ns));
}

static void verify_json(const char *dir, const verify_run *v, uint64_t ns) {
    json_out j;
    json_begin(&j, stdout);
    json_str(&j, "command", "verify");
    json_str(&j, "dir", dir);
    problems_json(&j, &v->p);
    if (v->scanned) log_json(&j, &v->lf, &v->log);
    json_obj(&j, "checkpoint");
    json_bool(&j, "present", v->have_ck);
    if (v->have_ck) {
        json_u64(&j, "number", v->ck.number);
        json_u64(&j, "seq", v->ck.commit_seq);
        json_u64(&j, "pages", v->ck.pages);
        json_str(&j, "root", v->ck_meta_root);
    }
    json_close_obj(&j);
    json_obj(&j, "genesis_replay");
    json_bool(&j, "done", v->genesis_done);
    if (v->genesis_done) {
        json_u64(&j, "commits", v->genesis.commits);
        json_u64(&j, "seq", v->genesis.commit_seq);
        json_str(&j, "root", v->genesis_root);
        json_f64(&j, "seconds", seconds(v->genesis_ns));
    }
    json_close_obj(&j);
    json_obj(&j, "checkpoint_replay");
    json_bool(&j, "done", v->ck_done);
    json_bool(&j, "replaced_meanwhile", v->ck_replaced);
    if (v->ck_done) {
        json_u64(&j, "seq", v->from_ck.commit_seq);
        json_str(&j, "root", v->ck_root);
        json_f64(&j, "seconds", seconds(v->ck_ns));
    }
    json_close_obj(&j);
    json_f64(&j, "seconds", seconds(ns));
    json_end(&j);
}

int cmd_verify(int argc, char **argv) {
    cli_args a;
    int rc = cli_parse("verify", usage_verify, argc, argv, NULL, 0, 1, &a);
    if (rc != 0) return rc == CLI_HELP ? EXIT_CLEAN : rc;
    const char *dir = a.pos[0];
    uint64_t t0 = cli_now_ns();
    verify_run *v = calloc(1, sizeof *v);
    mmsb_engine *e;
    if (v == NULL || log_files_list("verify", dir, &v->lf) != 0 || tool_engine("verify", dir, &e) != 0) {
        free(v);
        return EXIT_USAGE;
    }
    rc = scan_all(e, &v->lf, &v->log);
    v->scanned = true;
    if (rc != 0) problem_rc(&v->p, rc, "log");
    rc = tool_checkpoint_meta(e, &v->ck, &v->have_ck);
    engine_close_bare(e);
    if (rc != 0) problem_rc(&v->p, rc, "checkpoint");
    if (v->have_ck) tool_h128_hex(v->ck.root, v->ck_meta_root);
    if (v->p.count == 0 && log_whole(&v->log.end)) verify_genesis(dir, v);
    if (v->p.count == 0 && !log_whole(&v->log.end)) verify_coverage(v);
    if (v->have_ck && !v->p.io) verify_checkpoint(dir, v);
    log_files now;
    if (v->p.count > 0 && log_files_list("verify", dir, &now) == 0 && now.first != v->lf.first) {
        problem(&v->p, "a writer removed log segments during the check (%llu is now the first): run it again",
                (unsigned long long)now.first);
        v->p.io = true; /* not a finding: the store moved under the check */
    }
    uint64_t ns = cli_now_ns() - t0;
    if (a.json) verify_json(dir, v, ns);
    else verify_print(dir, v, ns);
    rc = problems_exit(&v->p);
    free(v);
    return rc;
}

/* ---- replay -------------------------------------------------------------------------------- */

const char usage_replay[] =
    "usage: mmsb replay DIR [--to SEQ] [--from genesis|checkpoint] [--verify] [--json]\n"
    "\n"
    "Rebuilds the state from the log, without changing the store, and prints\n"
    "its state root. Every state root the log recorded is compared on the way.\n"
    "  --to SEQ     stop after the last commit at or before record SEQ\n"
    "  --from F     genesis (the default when the whole log is kept) or\n"
    "               checkpoint (the default otherwise): where to start\n"
    "  --verify     also re-run every built-in derived operation the log\n"
    "               recomputed and compare its bytes and signature with the\n"
    "               logged ones; stop at the first divergence, naming the\n"
    "               record, page, first differing byte, expected and actual\n"
    "Exit status: 0 clean, 1 a divergence or corruption, 2 usage or I/O error.\n";

typedef struct replay_args {
    uint64_t to_seq;
    const char *from;
    bool verify, from_seen;
} replay_args;

static void replay_print(const char *dir, const replay_args *ra, bool from_ck, const replay_result *res,
                         const replay_watch *w, mmsb_engine *e, uint64_t ns, uint64_t log_bytes) {
    char root[33];
    tool_root_hex(e, root);
    double s = seconds(ns) > 0 ? seconds(ns) : 1e-9;
    printf("mmsb replay %s from %s%s: %llu records, %llu commits, to record %llu, in %.3f s "
           "(%.2f M records/s, %.0f MB/s of log)\n",
           dir, from_ck ? "checkpoint" : "genesis", ra->to_seq != UINT64_MAX ? " (--to)" : "",
           (unsigned long long)res->records, (unsigned long long)res->commits,
           (unsigned long long)res->commit_seq, seconds(ns), (double)res->records / s / 1e6,
           (double)log_bytes / s / 1e6);
    audit_state st;
    audit_state_get(e, &st);
    printf("state: %llu pages, %llu derived, state root %s\n", (unsigned long long)st.pages_live,
           (unsigned long long)st.derived, root);
    printf("checked: %llu recorded state roots", (unsigned long long)w->roots_checked);
    if (ra->verify) {
        printf("; %llu derived pages recomputed and compared; %llu of user operations not checkable",
               (unsigned long long)w->derived_checked, (unsigned long long)w->derived_user);
    }
    printf("\n");
}

static void divergence_print(const replay_watch *w, const replay_result *res, const char *detail) {
    if (w->div.found) {
        printf("DIVERGENCE at record %llu: page %llu", (unsigned long long)w->div.seq, (unsigned long long)w->div.page);
        if (w->div.expected < 256) {
            printf(", offset %llu: expected 0x%02x, actual 0x%02x", (unsigned long long)w->div.offset,
                   w->div.expected, w->div.actual);
        }
        printf(": %s\n", w->div.what);
    } else if (res->failed_seq == 0) {
        printf("CORRUPTION (nothing replayed): %s\n", detail);
    } else {
        printf("DIVERGENCE at record %llu: %s\n", (unsigned long long)res->failed_seq, detail);
    }
}

static void replay_json(const char *dir, bool from_ck, const replay_result *res, const replay_watch *w,
                        mmsb_engine *e, uint64_t ns, uint64_t log_bytes, int rc, const char *detail) {
    json_out j;
    json_begin(&j, stdout);
    json_str(&j, "command", "replay");
    json_str(&j, "dir", dir);
    json_str(&j, "from", from_ck ? "checkpoint" : "genesis");
    json_bool(&j, "clean", rc == 0);
    json_u64(&j, "records", res->records);
    json_u64(&j, "commits", res->commits);
    json_u64(&j, "seq", res->commit_seq);
    audit_state st;
    audit_state_get(e, &st);
    json_u64(&j, "pages", st.pages_live);
    char root[33];
    tool_root_hex(e, root);
    json_str(&j, rc == 0 ? "root" : "root_before_divergence", root);
    json_u64(&j, "roots_checked", w->roots_checked);
    json_u64(&j, "derived_checked", w->derived_checked);
    json_u64(&j, "derived_user_unchecked", w->derived_user);
    json_u64(&j, "log_bytes", log_bytes);
    json_f64(&j, "seconds", seconds(ns));
    if (rc != 0 && !w->div.found && res->failed_seq == 0) {
        json_obj(&j, "corruption"); /* found by the reading pass, before any record was applied */
        json_str(&j, "what", detail);
        json_close_obj(&j);
    } else if (rc != 0) {
        json_obj(&j, "divergence");
        json_u64(&j, "seq", w->div.found ? w->div.seq : res->failed_seq);
        if (w->div.found) {
            json_u64(&j, "page", w->div.page);
            if (w->div.expected < 256) {
                json_u64(&j, "offset", w->div.offset);
                json_u64(&j, "expected", w->div.expected);
                json_u64(&j, "actual", w->div.actual);
            }
        }
        json_str(&j, "what", w->div.found ? w->div.what : detail);
        json_close_obj(&j);
    }
    json_end(&j);
}

/* The log bytes a replay read: from its start to where the log ends. */
static uint64_t replayed_bytes(const log_files *lf, bool from_ck, const replay_result *res) {
    uint64_t end = log_files_done(lf, res->end.resume_segment, res->end.resume_offset);
    uint64_t start = from_ck ? log_files_done(lf, res->checkpoint.segment, res->checkpoint.offset) : 0;
    return end > start ? end - start : 0;
}

/* From the checkpoint when asked, or when the log no longer starts at 1. */
static bool replay_from_checkpoint(mmsb_engine *e, const replay_args *ra, int *bad) {
    *bad = 0;
    if (ra->from_seen) {
        if (strcmp(ra->from, "genesis") == 0) return false;
        if (strcmp(ra->from, "checkpoint") == 0) return true;
        fprintf(stderr, "mmsb replay: --from takes genesis or checkpoint, not '%s'\n", ra->from);
        *bad = EXIT_USAGE;
        return false;
    }
    log_cursor *c;
    if (tool_cursor(e, 0, &c) != 0) return false;
    log_rec r;
    bool done = false;
    bool whole = cursor_next(c, &r, &done) != 0 || done || r.seq == 1;
    cursor_close(c);
    return !whole;
}

int cmd_replay(int argc, char **argv) {
    replay_args ra = {.to_seq = UINT64_MAX};
    const cli_opt opts[] = {
        {"--to", OPT_U64, &ra.to_seq, NULL},
        {"--from", OPT_TEXT, &ra.from, &ra.from_seen},
        {"--verify", OPT_FLAG, &ra.verify, NULL},
    };
    cli_args a;
    int rc = cli_parse("replay", usage_replay, argc, argv, opts, ARRAY_LEN(opts), 1, &a);
    if (rc != 0) return rc == CLI_HELP ? EXIT_CLEAN : rc;
    const char *dir = a.pos[0];
    log_files lf;
    mmsb_engine *e;
    if (log_files_list("replay", dir, &lf) != 0 || tool_engine("replay", dir, &e) != 0) return EXIT_USAGE;
    int bad;
    bool from_ck = replay_from_checkpoint(e, &ra, &bad);
    if (bad != 0) {
        engine_close_bare(e);
        return bad;
    }
    progress prog;
    progress_start(&prog, "replaying", lf.bytes);
    replay_watch w = {.derived_checks = ra.verify, .prog = &prog, .files = &lf};
    replay_plan plan = {.from_checkpoint = from_ck, .to_seq = ra.to_seq, .hook = replay_watch_hook, .ctx = &w};
    replay_result res;
    uint64_t t0 = cli_now_ns();
    rc = engine_replay(e, &plan, &res);
    uint64_t ns = cli_now_ns() - t0;
    progress_end(&prog);
    char detail[320];
    snprintf(detail, sizeof detail, "%s", cli_error_detail());
    int status = rc == 0 ? EXIT_CLEAN : rc == MMSB_ECORRUPT ? EXIT_PROBLEM : EXIT_USAGE;
    if (status == EXIT_USAGE) {
        fprintf(stderr, "mmsb replay: %s: %s: %s\n", dir, mmsb_strerror(rc), detail);
    } else if (a.json) {
        replay_json(dir, from_ck, &res, &w, e, ns, replayed_bytes(&lf, from_ck, &res), rc, detail);
    } else {
        replay_print(dir, &ra, from_ck, &res, &w, e, ns, replayed_bytes(&lf, from_ck, &res));
        if (rc != 0) divergence_print(&w, &res, detail);
    }
    replay_watch_free(&w);
    engine_close_bare(e);
    return status;
}

/* ---- checkpoint ------------------------------------------------------------------------------ */

const char usage_checkpoint[] =
    "usage: mmsb checkpoint DIR [--keep-log] [--json]\n"
    "\n"
    "Opens a closed store (replaying its log), writes a checkpoint of its\n"
    "state, and closes it; the log segments before it are removed unless\n"
    "--keep-log is given. A store open in another process is refused (its\n"
    "writer checkpoints by itself).\n"
    "  --keep-log   keep every log segment (replay from genesis stays possible)\n"
    "Exit status: 0 done, 2 usage or I/O error (1: the store is corrupt).\n";

int cmd_checkpoint(int argc, char **argv) {
    bool keep = false;
    const cli_opt opts[] = {{"--keep-log", OPT_FLAG, &keep, NULL}};
    cli_args a;
    int rc = cli_parse("checkpoint", usage_checkpoint, argc, argv, opts, ARRAY_LEN(opts), 1, &a);
    if (rc != 0) return rc == CLI_HELP ? EXIT_CLEAN : rc;
    mmsb_options o;
    MMSB_OPTIONS_INIT(&o);
    o.flags = keep ? MMSB_OPEN_KEEP_LOG : 0;
    o.gpu = MMSB_GPU_OFF;
    mmsb_engine *e = NULL;
    uint64_t t0 = cli_now_ns();
    rc = mmsb_open(a.pos[0], &o, &e);
    if (rc != 0) {
        cli_report_open("checkpoint", a.pos[0], rc);
        return rc == MMSB_ECORRUPT ? EXIT_PROBLEM : EXIT_USAGE;
    }
    rc = mmsb_checkpoint(e);
    mmsb_engineinfo info = {.struct_size = sizeof info};
    if (rc == 0) rc = mmsb_engine_info(e, &info);
    if (rc != 0) {
        fprintf(stderr, "mmsb checkpoint: %s: %s: %s\n", a.pos[0], mmsb_strerror(rc), cli_error_detail());
        mmsb_close(e);
        return rc == MMSB_ECORRUPT ? EXIT_PROBLEM : EXIT_USAGE;
    }
    rc = mmsb_close(e);
    uint64_t ns = cli_now_ns() - t0;
    if (rc != 0) {
        fprintf(stderr, "mmsb checkpoint: %s: close: %s: %s\n", a.pos[0], mmsb_strerror(rc), cli_error_detail());
        return EXIT_USAGE;
    }
    if (a.json) {
        json_out j;
        json_begin(&j, stdout);
        json_str(&j, "command", "checkpoint");
        json_str(&j, "dir", a.pos[0]);
        json_u64(&j, "number", info.checkpoint_number);
        json_u64(&j, "seq", info.checkpoint_seq);
        json_u64(&j, "pages", info.pages_live);
        json_u64(&j, "segments_removed", info.log_segments_removed);
        json_f64(&j, "seconds", seconds(ns));
        json_end(&j);
    } else {
        printf("mmsb checkpoint %s: checkpoint %llu holds the state after record %llu (%llu pages); "
               "%llu log segments removed; %.3f s\n",
               a.pos[0], (unsigned long long)info.checkpoint_number, (unsigned long long)info.checkpoint_seq,
               (unsigned long long)info.pages_live, (unsigned long long)info.log_segments_removed, seconds(ns));
    }
    return EXIT_CLEAN;
}
