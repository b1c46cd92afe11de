/*
 * inspect.c - `mmsb dump`, `mmsb stats`, `mmsb history` and `mmsb page`:
 * reading a store's log and state, record by record or page by page,
 * without changing anything.
 */
#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../tlog/repl/mirror.h"
#include "../tlog/repl/pin.h"
#include "repl.h"
#include "tool.h"

/* Fields go either to a JSON object or to a line of "key=value" pairs. */
typedef struct sink {
    json_out *j;  /* or NULL: text to stdout */
    bool bytes;   /* dump --bytes: the changed bytes too */
} sink;

static void kv_hex(sink *s, const char *key, const uint8_t *bytes, uint64_t len) {
    if (s->j != NULL) {
        json_hex(s->j, key, bytes, len);
        return;
    }
    printf(" %s=", key);
    cli_hex_write(stdout, bytes, len);
}

static void kv_u64(sink *s, const char *key, uint64_t v) {
    if (s->j != NULL) json_u64(s->j, key, v);
    else printf(" %s=%llu", key, (unsigned long long)v);
}

static void kv_str(sink *s, const char *key, const char *v) {
    if (s->j != NULL) json_str(s->j, key, v);
    else printf(" %s=%s", key, v);
}

static void kv_h128(sink *s, const char *key, const uint8_t *canonical) {
    char hex[33];
    cli_hex128(canonical, hex);
    kv_str(s, key, hex);
}

static const char *form_name(uint32_t form) {
    return form == DELTA_FULL ? "full" : form == DELTA_SPARSE ? "sparse" : "none";
}

static void emit_delta(sink *s, const rec_delta *d) {
    kv_u64(s, "page", d->page_id);
    kv_u64(s, "epoch", d->epoch);
    if (d->form == DELTA_NONE) {
        kv_str(s, "body", "none (output unchanged)");
        return;
    }
    kv_u64(s, "page_offset", d->offset); /* "offset" is the record's place in its segment */
    kv_u64(s, "len", d->len);
    kv_str(s, "form", form_name(d->form));
    kv_u64(s, "bytes_changed", d->bytes_len);
    if (!s->bytes) return;
    if (d->form == DELTA_SPARSE) kv_hex(s, "mask", d->mask, (d->len + 7) / 8);
    kv_hex(s, "bytes", d->bytes, d->bytes_len);
}

static void emit_commit(sink *s, const log_rec *r) {
    rec_commit c;
    if (rec_decode_commit(r, &c) != 0) return;
    kv_u64(s, "first_seq", c.first_seq);
    kv_u64(s, "records", c.record_count);
    kv_u64(s, "durable_hint", c.durable_hint);
    if (c.flags & COMMIT_CLOSE) kv_str(s, "close", "yes");
    uint8_t b[16];
    put_h128(b, c.chain);
    kv_h128(s, "chain", b);
    if (c.flags & COMMIT_HAS_ROOT) {
        put_h128(b, c.root);
        kv_h128(s, "root", b);
    }
}

static void emit_derive(sink *s, const log_rec *r) {
    rec_derive d;
    if (rec_decode_derive(r, &d) != 0) return;
    kv_u64(s, "page", d.child);
    kv_u64(s, "op", d.op);
    kv_u64(s, "op_version", d.op_version);
    kv_u64(s, "parent_count", d.parent_count);
    if (d.parent_count > 0) kv_u64(s, "parent_first", get_le64(d.parents));
    kv_u64(s, "params_len", d.params_len);
}

/* The decoded fields of any record (already validated by the cursor). */
static void emit_fields(sink *s, const log_rec *r, const kern_ops *k) {
    uint64_t a = 0, b = 0;
    uint32_t flags = 0;
    switch (r->type) {
    case REC_PAGE_CREATE:
        if (rec_decode_create(r, &a, &b, &flags) == 0) {
            kv_u64(s, "page", a);
            kv_u64(s, "size", b);
            if (flags != 0) kv_u64(s, "flags", flags);
        }
        break;
    case REC_PAGE_FREE:
    case REC_UNDERIVE: kv_u64(s, "page", get_le64(r->payload)); break;
    case REC_DELTA: {
        rec_delta d;
        if (rec_decode_delta(r, k, &d) == 0) emit_delta(s, &d);
        break;
    }
    case REC_DERIVED: {
        rec_derived d;
        if (rec_decode_derived(r, k, &d) != 0) break;
        emit_delta(s, &d.d);
        uint8_t sig[16];
        put_h128(sig, d.signature);
        kv_h128(s, "signature", sig);
        break;
    }
    case REC_COMMIT: emit_commit(s, r); break;
    case REC_DERIVE: emit_derive(s, r); break;
    case REC_EDGE_ADD:
    case REC_EDGE_REMOVE:
        kv_u64(s, "parent", get_le64(r->payload));
        kv_u64(s, "page", get_le64(r->payload + 8));
        break;
    case REC_SEAL:
        if (rec_decode_seal(r, &a, &b) == 0) {
            kv_u64(s, "next_segment", a);
            kv_u64(s, "end_offset", b);
        }
        break;
    case REC_ABORT: kv_u64(s, "voids_from_seq", get_le64(r->payload)); break;
    case REC_CHECKPOINT: {
        rec_checkpoint c;
        if (rec_decode_checkpoint(r, &c) != 0) break;
        kv_u64(s, "number", c.number);
        kv_u64(s, "covers_seq", c.commit_seq);
        uint8_t root[16];
        put_h128(root, c.root);
        kv_h128(s, "root", root);
        break;
    }
    default: kv_u64(s, "payload_len", r->length); break;
    }
}

/* Whether a record concerns page id (as the changed page, or as a parent). */
static bool record_touches(const log_rec *r, uint64_t id) {
    if (tool_record_page(r) == id) return true;
    if (r->type == REC_EDGE_ADD || r->type == REC_EDGE_REMOVE) return get_le64(r->payload) == id;
    if (r->type != REC_DERIVE) return false;
    rec_derive d;
    if (rec_decode_derive(r, &d) != 0) return false;
    for (uint32_t i = 0; i < d.parent_count; i++) {
        if (get_le64(d.parents + 8ull * i) == id) return true;
    }
    return false;
}

static int type_parse(const char *text, uint32_t *type) {
    uint64_t v;
    if (cli_parse_u64(text, &v) == 0 && v <= UINT16_MAX) {
        *type = (uint32_t)v;
        return 0;
    }
    for (uint32_t t = 1; t <= REC_TYPE_KNOWN_MAX; t++) {
        if (strcasecmp(text, rec_type_name((uint16_t)t)) == 0) {
            *type = t;
            return 0;
        }
    }
    fprintf(stderr, "mmsb: unknown record type '%s' (a number, or a name such as delta, commit, derived)\n", text);
    return EXIT_USAGE;
}

/* Reports how a reading pass over the log ended; corruption is a finding. */
static int log_verdict(const char *cmd, int rc) {
    if (rc == 0) return EXIT_CLEAN;
    fprintf(stderr, "mmsb %s: %s: %s\n", cmd, mmsb_strerror(rc), cli_error_detail());
    return rc == MMSB_ECORRUPT || rc == MMSB_EVERSION ? EXIT_PROBLEM : EXIT_USAGE;
}

/* ---- dump ------------------------------------------------------------------------------------- */

const char usage_dump[] =
    "usage: mmsb dump DIR [--from SEQ] [--to SEQ] [--page ID] [--type T] [--bytes] [--json | --jsonl]\n"
    "\n"
    "Prints the log's records, decoded, one per line (or as a JSON array):\n"
    "sequence number, segment and offset, type, writer generation, fields.\n"
    "Every record is validated as it is read; corruption stops the dump.\n"
    "  --from/--to SEQ   only records with sequence numbers in that range\n"
    "  --page ID         only records about that page (as page or parent)\n"
    "  --type T          only records of type T (name or number)\n"
    "  --bytes           the bytes each DELTA and DERIVED record writes, in hex\n"
    "                    (a sparse change: its mask, one bit per byte, then the bytes)\n"
    "  --jsonl           one JSON object per record and line, for logs of any size\n"
    "                    (corruption: exit status 1 and the reason on stderr)\n"
    "Exit status: 0 clean, 1 the log is corrupt, 2 usage or I/O error.\n";

typedef struct dump_filter {
    uint64_t from, to, page;
    const char *type_text;
    bool type_seen, page_seen, bytes, jsonl;
    uint32_t type;
} dump_filter;

static bool dump_wants(const dump_filter *f, const log_rec *r) {
    if (r->seq < f->from || r->seq > f->to) return false;
    if (f->type_seen && r->type != f->type) return false;
    return !f->page_seen || record_touches(r, f->page);
}

static void dump_one(sink *s, bool jsonl, const log_rec *r, uint64_t segment, const kern_ops *k) {
    if (jsonl) json_begin(s->j, stdout);
    else if (s->j != NULL) json_obj(s->j, NULL);
    if (s->j != NULL) {
        json_u64(s->j, "seq", r->seq);
        json_u64(s->j, "segment", segment);
        json_u64(s->j, "offset", r->offset);
        json_str(s->j, "type", rec_type_name(r->type));
        json_u64(s->j, "generation", r->generation);
        json_u64(s->j, "payload_len", r->length);
    } else {
        printf("%10llu  %llu:%-9llu %-12s gen=%u", (unsigned long long)r->seq, (unsigned long long)segment,
               (unsigned long long)r->offset, rec_type_name(r->type), r->generation);
    }
    emit_fields(s, r, k);
    if (jsonl) json_end(s->j);
    else if (s->j != NULL) json_close_obj(s->j);
    else printf("\n");
}

int cmd_dump(int argc, char **argv) {
    dump_filter f = {.to = UINT64_MAX};
    const cli_opt opts[] = {
        {"--from", OPT_U64, &f.from, NULL},
        {"--to", OPT_U64, &f.to, NULL},
        {"--page", OPT_U64, &f.page, &f.page_seen},
        {"--type", OPT_TEXT, &f.type_text, &f.type_seen},
        {"--bytes", OPT_FLAG, &f.bytes, NULL},
        {"--jsonl", OPT_FLAG, &f.jsonl, NULL},
    };
    cli_args a;
    int rc = cli_parse("dump", usage_dump, argc, argv, opts, ARRAY_LEN(opts), 1, &a);
    if (rc != 0) return rc == CLI_HELP ? EXIT_CLEAN : rc;
    if (f.type_seen && type_parse(f.type_text, &f.type) != 0) return EXIT_USAGE;
    mmsb_engine *e;
    if (tool_engine("dump", a.pos[0], &e) != 0) return EXIT_USAGE;
    log_cursor *c = NULL;
    rc = tool_cursor(e, CURSOR_VERIFY, &c);
    json_out j;
    sink s = {.j = a.json || f.jsonl ? &j : NULL, .bytes = f.bytes};
    if (a.json) {
        json_begin(&j, stdout);
        json_str(&j, "command", "dump");
        json_arr(&j, "records");
    }
    bool done = false;
    log_rec r;
    uint64_t shown = 0;
    while (rc == 0 && !done) {
        rc = cursor_next(c, &r, &done);
        if (rc != 0 || done || r.seq > f.to) break;
        if (!dump_wants(&f, &r)) continue;
        dump_one(&s, f.jsonl, &r, cursor_segment(c), audit_kern(e));
        shown++;
    }
    if (a.json) {
        json_close_arr(&j);
        json_u64(&j, "shown", shown);
        json_bool(&j, "clean", rc == 0);
        if (rc != 0) json_str(&j, "problem", cli_error_detail());
        json_end(&j);
    }
    if (c != NULL) cursor_close(c);
    engine_close_bare(e);
    return log_verdict("dump", rc);
}

/* ---- stats ------------------------------------------------------------------------------------ */

const char usage_stats[] =
    "usage: mmsb stats DIR [--server URL[,URL..]] [--json]\n"
    "\n"
    "Counts the log's records and bytes by type, commits, aborts, checkpoint\n"
    "markers and segments, says how the log ends (the chain's status), and\n"
    "describes the state a read-only open sees: pages, derived pages, edges,\n"
    "checkpoint, state root. With --server it also asks each stream the store\n"
    "has to do with how far apart they are: a replica's stream (records, bytes\n"
    "and seconds the replica lags) and each stream it ships to (what the stream\n"
    "lacks of the log).\n"
    "Exit status: 0 clean, 1 the log or checkpoint is corrupt, 2 usage or I/O error.\n";

enum { TYPE_SLOTS = REC_TYPE_KNOWN_MAX + 2 }; /* last slot: other types */

typedef struct type_count {
    uint64_t records[TYPE_SLOTS], bytes[TYPE_SLOTS];
} type_count;

static void count_type(void *ctx, const log_rec *r) {
    type_count *tc = ctx;
    uint32_t slot = r->type <= REC_TYPE_KNOWN_MAX ? r->type : TYPE_SLOTS - 1;
    tc->records[slot]++;
    tc->bytes[slot] += rec_slot_bytes(r->length);
}

static void stats_state_json(json_out *j, int rc, const mmsb_engineinfo *info, const char *root) {
    json_obj(j, "state");
    json_bool(j, "readable", rc == 0);
    if (rc != 0) {
        json_str(j, "problem", cli_error_detail());
    } else {
        json_u64(j, "seq", info->commit_seq);
        json_u64(j, "pages", info->pages_live);
        json_u64(j, "page_id_next", info->page_id_next);
        json_u64(j, "arena_bytes", info->arena_bytes_used);
        json_u64(j, "derived_pages", info->derived_pages);
        json_u64(j, "edges", info->edges);
        json_u64(j, "checkpoint_number", info->checkpoint_number);
        json_u64(j, "checkpoint_seq", info->checkpoint_seq);
        json_bool(j, "from_checkpoint", info->recovered_from_checkpoint != 0);
        json_str(j, "root", root);
    }
    json_close_obj(j);
}

static void stats_print(const char *dir, const log_files *lf, const type_count *tc, const log_end *end, int scan_rc,
                        int state_rc, const mmsb_engineinfo *info, const char *root) {
    printf("mmsb stats %s\n", dir);
    printf("segments: %llu files (%llu..%llu), %llu bytes\n", (unsigned long long)lf->count,
           (unsigned long long)lf->first, (unsigned long long)lf->last, (unsigned long long)lf->bytes);
    printf("%-14s %12s %14s\n", "record type", "records", "bytes");
    for (uint32_t t = 1; t < TYPE_SLOTS; t++) {
        if (tc->records[t] == 0) continue;
        printf("%-14s %12llu %14llu\n", t < TYPE_SLOTS - 1 ? rec_type_name((uint16_t)t) : "other",
               (unsigned long long)tc->records[t], (unsigned long long)tc->bytes[t]);
    }
    printf("records %llu..%llu, %llu commits; chain: %s\n", (unsigned long long)(end->empty ? 0 : end->first_seq),
           (unsigned long long)end->last_seq, (unsigned long long)end->commits,
           scan_rc != 0 ? "BROKEN" : end->torn ? "intact, torn tail" : "intact");
    if (end->detail[0] != '\0') printf("log end: %s\n", end->detail);
    if (end->covered_to_seq != 0) {
        printf("log head: records %llu..%llu finish a commit that began in a removed segment (covered by the "
               "checkpoint)\n", (unsigned long long)end->first_seq, (unsigned long long)end->covered_to_seq);
    }
    if (state_rc != 0) {
        printf("state: NOT READABLE: %s\n", cli_error_detail());
        return;
    }
    printf("state at record %llu: %llu pages (%llu arena bytes), %llu derived, %llu edges, root %s\n",
           (unsigned long long)info->commit_seq, (unsigned long long)info->pages_live,
           (unsigned long long)info->arena_bytes_used, (unsigned long long)info->derived_pages,
           (unsigned long long)info->edges, root);
    printf("checkpoint: %s", info->checkpoint_number == 0 ? "none" : "");
    if (info->checkpoint_number != 0) {
        printf("number %llu, state after record %llu", (unsigned long long)info->checkpoint_number,
               (unsigned long long)info->checkpoint_seq);
    }
    printf("\n");
}

static void standings_print(const stream_standing *st, uint32_t count, json_out *j) {
    if (j != NULL) json_arr(j, "streams");
    for (uint32_t i = 0; i < count; i++) {
        const stream_standing *s = &st[i];
        if (j != NULL) {
            json_obj(j, NULL);
            json_str(j, "stream", s->stream);
            json_str(j, "role", s->replica ? "follows" : "ships to");
            if (s->rc != 0) json_str(j, "problem", s->problem);
            json_u64(j, "stream_last_seq", s->stream_last_seq);
            json_u64(j, "stream_commit_seq", s->stream_commit_seq);
            json_u64(j, "behind_records", s->behind_records);
            json_u64(j, "behind_bytes", s->behind_bytes);
            if (s->replica) json_f64(j, "behind_seconds", (double)s->behind_ns / 1e9);
            json_close_obj(j);
        } else if (s->rc != 0) {
            printf("stream %s: cannot be asked: %s\n", s->stream, s->problem);
        } else if (s->replica) {
            printf("stream %s: holds the log up to record %llu; the replica lags %llu records, %llu bytes, %.3f s\n",
                   s->stream, (unsigned long long)s->stream_commit_seq, (unsigned long long)s->behind_records,
                   (unsigned long long)s->behind_bytes, (double)s->behind_ns / 1e9);
        } else {
            printf("stream %s: holds the log up to record %llu; it lacks %llu records, %llu bytes of it\n", s->stream,
                   (unsigned long long)s->stream_commit_seq, (unsigned long long)s->behind_records,
                   (unsigned long long)s->behind_bytes);
        }
    }
    if (j != NULL) json_close_arr(j);
}

int cmd_stats(int argc, char **argv) {
    cli_args a;
    const char *server = NULL;
    const cli_opt opts[] = {{"--server", OPT_TEXT, &server, NULL}};
    int rc = cli_parse("stats", usage_stats, argc, argv, opts, ARRAY_LEN(opts), 1, &a);
    if (rc != 0) return rc == CLI_HELP ? EXIT_CLEAN : rc;
    log_files lf;
    mmsb_engine *e;
    if (log_files_list("stats", a.pos[0], &lf) != 0 || tool_engine("stats", a.pos[0], &e) != 0) return EXIT_USAGE;
    type_count tc = {0};
    log_end end = {0};
    int scan_rc = tool_scan_log(e, &lf, count_type, &tc, &end, NULL, NULL);
    engine_close_bare(e);
    char scan_detail[320];
    snprintf(scan_detail, sizeof scan_detail, "%s", cli_error_detail());
    mmsb_engineinfo info = {.struct_size = sizeof info};
    char root[33] = "";
    int state_rc = scan_rc != 0 ? scan_rc : tool_state(a.pos[0], &info, root);
    replica_marker mk;
    bool replica = false;
    int dir_fd = open(a.pos[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd >= 0 && replica_marker_read(dir_fd, &mk, &replica) != 0) replica = false;
    ship_pin pins[SHIP_PINS_MAX];
    uint32_t pin_count = 0;
    if (dir_fd >= 0 && ship_pins_read(dir_fd, pins, SHIP_PINS_MAX, &pin_count) != 0) pin_count = 0;
    if (dir_fd >= 0) close(dir_fd);
    stream_standing standings[STANDINGS_MAX];
    uint32_t standing_count = 0;
    if (server != NULL) repl_standings(a.pos[0], server, &end, lf.segment_bytes_max, standings, &standing_count);
    if (a.json) {
        json_out j;
        json_begin(&j, stdout);
        json_str(&j, "command", "stats");
        json_str(&j, "dir", a.pos[0]);
        json_u64(&j, "segments", lf.count);
        json_u64(&j, "bytes", lf.bytes);
        json_obj(&j, "types");
        for (uint32_t t = 1; t < TYPE_SLOTS; t++) {
            if (tc.records[t] == 0) continue;
            json_obj(&j, t < TYPE_SLOTS - 1 ? rec_type_name((uint16_t)t) : "OTHER");
            json_u64(&j, "records", tc.records[t]);
            json_u64(&j, "bytes", tc.bytes[t]);
            json_close_obj(&j);
        }
        json_close_obj(&j);
        json_u64(&j, "records", end.records);
        json_u64(&j, "commits", end.commits);
        json_u64(&j, "first_seq", end.empty ? 0 : end.first_seq);
        json_u64(&j, "last_seq", end.last_seq);
        json_u64(&j, "covered_to_seq", end.covered_to_seq);
        json_str(&j, "chain", scan_rc != 0 ? "broken" : end.torn ? "torn tail" : "intact");
        if (scan_rc != 0) json_str(&j, "problem", scan_detail);
        stats_state_json(&j, state_rc, &info, root);
        if (replica) {
            json_obj(&j, "replica");
            json_str(&j, "stream", mk.stream);
            json_u64(&j, "stream_seq", mk.stream_seq);
            json_close_obj(&j);
        }
        json_arr(&j, "shipping_pins");
        for (uint32_t i = 0; i < pin_count; i++) {
            json_obj(&j, NULL);
            json_str(&j, "stream", pins[i].stream);
            json_u64(&j, "keeps_from_segment", pins[i].segment);
            json_close_obj(&j);
        }
        json_close_arr(&j);
        if (server != NULL) standings_print(standings, standing_count, &j);
        json_end(&j);
    } else {
        if (scan_rc != 0) printf("PROBLEM: %s\n", scan_detail);
        stats_print(a.pos[0], &lf, &tc, &end, scan_rc, state_rc, &info, root);
        if (replica) {
            printf("replica: follows the stream %s; checked and synced up to stream message %llu (mmsb follow "
                   "prints the lag against the stream)\n", mk.stream, (unsigned long long)mk.stream_seq);
        }
        for (uint32_t i = 0; i < pin_count; i++) {
            printf("shipping pin: the stream %s needs the log from segment %llu on: retention keeps it "
                   "(mmsb ship %s --stream %s --unpin gives the stream up)\n", pins[i].stream,
                   (unsigned long long)pins[i].segment, a.pos[0], pins[i].stream);
        }
        standings_print(standings, standing_count, NULL);
    }
    int worst = scan_rc != 0 ? scan_rc : state_rc;
    for (uint32_t i = 0; i < standing_count && worst == 0; i++) worst = standings[i].rc; /* a stream not asked */
    return worst == 0 ? EXIT_CLEAN : worst == MMSB_ECORRUPT || worst == MMSB_EVERSION ? EXIT_PROBLEM : EXIT_USAGE;
}

/* ---- history ----------------------------------------------------------------------------------- */

const char usage_history[] =
    "usage: mmsb history DIR --page ID [--json]\n"
    "\n"
    "Every record about one page, in log order: its creation, each change with\n"
    "sequence number, epoch after it, byte range and bytes changed, its\n"
    "derivation and edges, its removal. Records of commits that were rolled\n"
    "back, or that never committed (a torn tail), are marked.\n"
    "Exit status: 0 clean, 1 the log is corrupt, 2 usage or I/O error.\n";

static int history_print(mmsb_engine *e, uint64_t page, const uint64_t *aborted, uint64_t count,
                         const log_end *end, json_out *j, uint64_t *shown) {
    log_cursor *c;
    int rc = tool_cursor(e, 0, &c);
    if (rc != 0) return rc;
    sink s = {.j = j};
    bool done = false;
    log_rec r;
    while (rc == 0) {
        rc = cursor_next(c, &r, &done);
        if (rc != 0 || done || r.seq > end->last_seq) break;
        if (!record_touches(&r, page)) continue;
        const char *state = seq_aborted(aborted, count, r.seq) ? "rolled back"
                            : r.seq > end->last_commit_seq    ? "not committed"
                                                              : "committed";
        if (j != NULL) {
            json_obj(j, NULL);
            json_u64(j, "seq", r.seq);
            json_str(j, "type", rec_type_name(r.type));
            json_str(j, "state", state);
        } else {
            printf("%10llu  %-12s", (unsigned long long)r.seq, rec_type_name(r.type));
        }
        emit_fields(&s, &r, audit_kern(e));
        if (j != NULL) json_close_obj(j);
        else
            printf("%s\n", strcmp(state, "committed") == 0 ? ""
                           : state[0] == 'r'               ? "  (rolled back)"
                                                           : "  (not committed)");
        (*shown)++;
    }
    cursor_close(c);
    return rc;
}

int cmd_history(int argc, char **argv) {
    uint64_t page = 0;
    bool page_seen = false;
    const cli_opt opts[] = {{"--page", OPT_U64, &page, &page_seen}};
    cli_args a;
    int rc = cli_parse("history", usage_history, argc, argv, opts, ARRAY_LEN(opts), 1, &a);
    if (rc != 0) return rc == CLI_HELP ? EXIT_CLEAN : rc;
    if (!page_seen || page == 0) {
        fprintf(stderr, "mmsb history: needs --page ID (ids start at 1)\n\n%s", usage_history);
        return EXIT_USAGE;
    }
    mmsb_engine *e;
    if (tool_engine("history", a.pos[0], &e) != 0) return EXIT_USAGE;
    uint64_t *aborted = NULL, count = 0, shown = 0;
    log_end end = {0};
    rc = tool_scan_log(e, NULL, NULL, NULL, &end, &aborted, &count); /* the rolled-back ranges */
    json_out j;
    if (a.json) {
        json_begin(&j, stdout);
        json_str(&j, "command", "history");
        json_u64(&j, "page", page);
        json_u64(&j, "log_first_seq", end.empty ? 0 : end.first_seq);
        json_arr(&j, "changes");
    } else if (rc == 0 && !end.empty && end.first_seq != 1) {
        printf("note: the log starts at record %llu; earlier changes are only in the checkpoint\n",
               (unsigned long long)end.first_seq);
    }
    if (rc == 0) rc = history_print(e, page, aborted, count, &end, a.json ? &j : NULL, &shown);
    if (a.json) {
        json_close_arr(&j);
        json_u64(&j, "shown", shown);
        json_bool(&j, "clean", rc == 0);
        json_end(&j);
    } else if (rc == 0 && shown == 0) {
        printf("no record about page %llu\n", (unsigned long long)page);
    }
    free(aborted);
    engine_close_bare(e);
    return log_verdict("history", rc);
}

/* ---- page ---------------------------------------------------------------------------------------- */

const char usage_page[] =
    "usage: mmsb page DIR --page ID [--at SEQ] [--raw] [--json]\n"
    "\n"
    "Rebuilds the state (from the checkpoint when it is not past SEQ, else\n"
    "from genesis) up to the last commit at or before record SEQ (default:\n"
    "the end) and prints the page: size, epoch, digest and a hex dump, or\n"
    "with --raw its bytes alone, to standard output.\n"
    "Exit status: 0 done, 1 the store is corrupt, 2 usage or I/O error\n"
    "(including a page that does not exist at that point).\n";

enum { HEX_ROW_BYTES = 16 };

/* Rows like hexdump -C; a run of rows equal to the one before is a '*'. */
static void hex_dump(const uint8_t *p, uint64_t n) {
    bool starred = false;
    for (uint64_t off = 0; off < n; off += HEX_ROW_BYTES) {
        uint64_t len = n - off < HEX_ROW_BYTES ? n - off : HEX_ROW_BYTES;
        if (off > 0 && len == HEX_ROW_BYTES && memcmp(p + off, p + off - HEX_ROW_BYTES, HEX_ROW_BYTES) == 0) {
            if (!starred) printf("*\n");
            starred = true;
            continue;
        }
        starred = false;
        printf("%08llx ", (unsigned long long)off);
        for (uint64_t i = 0; i < HEX_ROW_BYTES; i++) {
            if (i == 8) printf(" ");
            if (i < len) printf(" %02x", p[off + i]);
            else printf("   ");
        }
        printf("  |");
        for (uint64_t i = 0; i < len; i++) putchar(isprint(p[off + i]) ? p[off + i] : '.');
        printf("|\n");
    }
    printf("%08llx\n", (unsigned long long)n);
}

static int page_replay(mmsb_engine *e, uint64_t at, replay_result *res) {
    ckpt_meta m;
    bool have = false;
    int rc = tool_checkpoint_meta(e, &m, &have);
    if (rc != 0) return rc;
    replay_plan plan = {.from_checkpoint = have && m.commit_seq <= at, .to_seq = at};
    return engine_replay(e, &plan, res);
}

static void page_out(const audit_page *pg, uint64_t id, uint64_t seq, bool json) {
    char digest[33];
    tool_h128_hex(pg->digest, digest);
    if (json) {
        json_out j;
        json_begin(&j, stdout);
        json_str(&j, "command", "page");
        json_u64(&j, "page", id);
        json_u64(&j, "at_seq", seq);
        json_u64(&j, "size", pg->size_bytes);
        json_u64(&j, "epoch", pg->epoch);
        json_str(&j, "digest", digest);
        json_hex(&j, "bytes", pg->bytes, pg->size_bytes);
        json_end(&j);
        return;
    }
    printf("page %llu at record %llu: %llu bytes, epoch %llu, digest %s\n", (unsigned long long)id,
           (unsigned long long)seq, (unsigned long long)pg->size_bytes, (unsigned long long)pg->epoch, digest);
    hex_dump(pg->bytes, pg->size_bytes);
}

static int write_raw(const uint8_t *p, uint64_t n) {
    for (uint64_t done = 0; done < n;) {
        ssize_t w = write(STDOUT_FILENO, p + done, n - done);
        if (w <= 0) {
            fprintf(stderr, "mmsb page: writing the bytes failed\n");
            return EXIT_USAGE;
        }
        done += (uint64_t)w;
    }
    return EXIT_CLEAN;
}

int cmd_page(int argc, char **argv) {
    uint64_t page = 0, at = UINT64_MAX;
    bool page_seen = false, raw = false;
    const cli_opt opts[] = {
        {"--page", OPT_U64, &page, &page_seen},
        {"--at", OPT_U64, &at, NULL},
        {"--raw", OPT_FLAG, &raw, NULL},
    };
    cli_args a;
    int rc = cli_parse("page", usage_page, argc, argv, opts, ARRAY_LEN(opts), 1, &a);
    if (rc != 0) return rc == CLI_HELP ? EXIT_CLEAN : rc;
    if (!page_seen || page == 0) {
        fprintf(stderr, "mmsb page: needs --page ID (ids start at 1)\n\n%s", usage_page);
        return EXIT_USAGE;
    }
    mmsb_engine *e;
    if (tool_engine("page", a.pos[0], &e) != 0) return EXIT_USAGE;
    replay_result res;
    rc = page_replay(e, at, &res);
    int status = log_verdict("page", rc);
    if (status == EXIT_CLEAN) {
        audit_page pg;
        if (audit_page_get(e, page, &pg) != 0) {
            fprintf(stderr, "mmsb page: page %llu does not exist at record %llu\n", (unsigned long long)page,
                    (unsigned long long)res.commit_seq);
            status = EXIT_USAGE;
        } else if (raw) {
            status = write_raw(pg.bytes, pg.size_bytes);
        } else {
            page_out(&pg, page, res.commit_seq, a.json);
        }
    }
    engine_close_bare(e);
    return status;
}
