/*
 * test_tool.c - the mmsb audit tool, run as a program on generated stores:
 * clean; a torn tail; a corrupted record in the middle; a payload changed
 * with its CRC recomputed (the chain catches it); a derived delta its
 * operation would not produce; two stores diverging at a known record; a
 * checkpoint plus suffix against genesis. Exit codes are checked, and the
 * JSON output is checked for well-formedness and for its values.
 */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../engine/base/crc32c.h"
#include "testutil.h"

enum { OUT_BYTES_MAX = 1 << 22, ARGS_MAX = 12 };


/* ---- JSON: a strict checker, and reading one field ---------------------------------- */

static const char *json_value(const char *p, int depth);

static const char *json_ws(const char *p) {
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
    return p;
}

static const char *json_string(const char *p) {
    if (*p++ != '"') return NULL;
    while (*p != '"') {
        if (*p == '\0' || (unsigned char)*p < 0x20) return NULL;
        if (*p == '\\') p++;
        p++;
    }
    return p + 1;
}

static const char *json_container(const char *p, int depth, char close, bool keyed) {
    p = json_ws(p + 1);
    if (*p == close) return p + 1;
    for (;;) {
        if (keyed) {
            p = json_string(json_ws(p));
            if (p == NULL || *(p = json_ws(p)) != ':') return NULL;
            p++;
        }
        p = json_value(p, depth + 1);
        if (p == NULL) return NULL;
        p = json_ws(p);
        if (*p == close) return p + 1;
        if (*p++ != ',') return NULL;
    }
}

static const char *json_value(const char *p, int depth) {
    if (depth > 32) return NULL;
    p = json_ws(p);
    if (*p == '{') return json_container(p, depth, '}', true);
    if (*p == '[') return json_container(p, depth, ']', false);
    if (*p == '"') return json_string(p);
    if (strncmp(p, "true", 4) == 0) return p + 4;
    if (strncmp(p, "false", 5) == 0) return p + 5;
    if (strncmp(p, "null", 4) == 0) return p + 4;
    const char *start = p;
    while (strchr("+-0123456789.eE", *p) != NULL && *p != '\0') p++;
    return p > start ? p : NULL;
}

static void assert_json(const char *text) {
    const char *end = json_value(text, 0);
    if (end == NULL || *json_ws(end) != '\0') fail_msg("not one valid JSON value:\n%.3000s", text);
}

/* The value of the first "key" after the first "after" (or from the
 * start): a string without its quotes, or a number or literal. */
static char *json_get(const char *text, const char *after, const char *key, char *out, size_t cap) {
    const char *p = text;
    char pat[128];
    if (after != NULL) {
        snprintf(pat, sizeof pat, "\"%s\":", after);
        p = strstr(p, pat);
        if (p == NULL) fail_msg("no \"%s\" in %.2000s", after, text);
    }
    snprintf(pat, sizeof pat, "\"%s\":", key);
    p = strstr(p, pat);
    if (p == NULL) fail_msg("no \"%s\" in %.2000s", key, text);
    p += strlen(pat);
    size_t n = 0;
    if (*p == '"') {
        for (p++; *p != '"' && n + 1 < cap; p++) out[n++] = *p;
    } else {
        for (; *p != ',' && *p != '}' && *p != ']' && n + 1 < cap; p++) out[n++] = *p;
    }
    out[n] = '\0';
    return out;
}

static uint64_t json_u64(const char *text, const char *after, const char *key) {
    char v[64];
    return strtoull(json_get(text, after, key, v, sizeof v), NULL, 10);
}

/* ---- generated stores ------------------------------------------------------------------ */

static uint64_t new_page(mmsb_engine *e, uint64_t size) {
    uint64_t id;
    TU_OK(mmsb_page_create(e, size, 0, &id));
    return id;
}

static int user_double(void *user, const mmsb_op_input *in, uint8_t *out, uint64_t len) {
    (void)user;
    for (uint64_t i = 0; i < len; i++) out[i] = (uint8_t)(in->parent_bytes[0][i] * 2);
    return 0;
}

/* The workload every generated store runs: base pages, derived pages of
 * built-in and user operations, writes that reach them, a freed page. */
typedef struct world {
    uint64_t base[4], copy, xr, sum, user;
    uint64_t mid_seq;          /* a commit in the middle ... */
    uint8_t mid_bytes[4096];   /* ... and base[1]'s bytes after it */
    uint64_t mid_epoch;
    uint64_t writes;
} world;

static void run_world(mmsb_engine *e, world *w, uint64_t seed, int differ_at) {
    for (int i = 0; i < 4; i++) w->base[i] = new_page(e, 4096);
    w->copy = new_page(e, 4096);
    w->xr = new_page(e, 4096);
    w->sum = new_page(e, 4096);
    w->user = new_page(e, 4096);
    uint64_t p0[1] = {w->base[0]}, p2[2] = {w->base[1], w->base[2]}, p3[2] = {w->base[2], w->base[3]};
    mmsb_derive_spec s = {.struct_size = sizeof s, .op = MMSB_OP_COPY, .parents = p0, .parent_count = 1};
    TU_OK(mmsb_derive(e, w->copy, &s, NULL));
    s = (mmsb_derive_spec){.struct_size = sizeof s, .op = MMSB_OP_XOR, .parents = p2, .parent_count = 2};
    TU_OK(mmsb_derive(e, w->xr, &s, NULL));
    s = (mmsb_derive_spec){.struct_size = sizeof s, .op = MMSB_OP_SUM_U32, .parents = p3, .parent_count = 2};
    TU_OK(mmsb_derive(e, w->sum, &s, NULL));
    TU_OK(mmsb_op_register(e, MMSB_OP_USER_FIRST, 1, user_double, NULL));
    s = (mmsb_derive_spec){.struct_size = sizeof s, .op = MMSB_OP_USER_FIRST, .parents = p0, .parent_count = 1};
    TU_OK(mmsb_derive(e, w->user, &s, NULL));
    rng r = {seed};
    uint8_t buf[64];
    for (int i = 0; i < 300; i++) {
        rng_fill(&r, buf, sizeof buf);
        if (i == differ_at) buf[0] ^= 0x55;
        uint64_t page = w->base[rng_below(&r, 4)];
        mmsb_change ch;
        TU_OK(mmsb_write(e, page, rng_below(&r, 4096 - sizeof buf), buf, sizeof buf, &ch));
        w->writes++;
        if (i == 100) TU_OK(mmsb_checkpoint(e));
        if (i == 150) {
            w->mid_seq = ch.commit_seq;
            TU_OK(mmsb_page_read(e, w->base[1], 0, w->mid_bytes, sizeof w->mid_bytes, &w->mid_epoch));
        }
    }
    uint64_t spare = new_page(e, 100);
    TU_OK(mmsb_page_free(e, spare));
}

static void options_for(mmsb_options *o, bool keep_log) {
    tu_options_small(o);
    o->root_every_commits = 16;
    if (keep_log) o->flags |= MMSB_OPEN_KEEP_LOG;
}

/* A closed store with the world in it and a checkpoint in the middle. */
static char *make_store(world *w, uint64_t seed, int differ_at, char root[33]) {
    char *dir = tu_dir_new();
    mmsb_options o;
    options_for(&o, true);
    mmsb_engine *e = tu_open(dir, &o);
    memset(w, 0, sizeof *w);
    run_world(e, w, seed, differ_at);
    if (root != NULL) tu_root_hex(e, root);
    TU_OK(mmsb_close(e));
    return dir;
}

/* Where the first record of a type after seq `from` is. */
static mmsb_log_record find_record(const char *dir, uint32_t type, uint64_t from) {
    mmsb_log_reader *rd;
    TU_OK(mmsb_log_open(dir, 0, &rd));
    mmsb_log_record rec = {.struct_size = sizeof rec};
    for (;;) {
        TU_OK(mmsb_log_next(rd, &rec));
        if (rec.type == MMSB_REC_END) fail_msg("no record of type %u after %llu", type, (unsigned long long)from);
        if (rec.type == type && rec.seq > from) break;
    }
    TU_OK(mmsb_log_close(rd));
    return rec;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_clean_store(void **state) {
    (void)state;
    world w;
    char root[33], v[128];
    char *dir = make_store(&w, 11, -1, root);

    tu_run r = TOOL(0, "verify", dir, "--json");
    assert_json(r.out);
    assert_string_equal(json_get(r.out, NULL, "clean", v, sizeof v), "true");
    assert_string_equal(json_get(r.out, "genesis_replay", "root", v, sizeof v), root);
    assert_string_equal(json_get(r.out, "checkpoint_replay", "root", v, sizeof v), root);
    assert_string_equal(json_get(r.out, "log", "torn", v, sizeof v), "false");
    uint64_t commits = json_u64(r.out, "log", "commits");
    tu_run_free(&r);
    r = TOOL(0, "verify", dir);
    assert_non_null(strstr(r.out, "verify: clean"));
    tu_run_free(&r);

    r = TOOL(0, "replay", dir, "--verify", "--json");
    assert_json(r.out);
    assert_string_equal(json_get(r.out, NULL, "root", v, sizeof v), root);
    assert_string_equal(json_get(r.out, NULL, "from", v, sizeof v), "genesis");
    assert_true(json_u64(r.out, NULL, "derived_checked") >= w.writes / 2);
    assert_true(json_u64(r.out, NULL, "derived_user_unchecked") > 0);
    assert_true(json_u64(r.out, NULL, "roots_checked") >= commits / 16);
    tu_run_free(&r);
    r = TOOL(0, "replay", dir, "--from", "checkpoint", "--json");
    assert_string_equal(json_get(r.out, NULL, "root", v, sizeof v), root);
    tu_run_free(&r);

    r = TOOL(0, "stats", dir, "--json");
    assert_json(r.out);
    assert_int_equal(json_u64(r.out, NULL, "commits"), commits);
    assert_int_equal(json_u64(r.out, "state", "pages"), 8);
    assert_int_equal(json_u64(r.out, "state", "derived_pages"), 4);
    assert_string_equal(json_get(r.out, NULL, "chain", v, sizeof v), "intact");
    assert_string_equal(json_get(r.out, "state", "root", v, sizeof v), root);
    tu_run_free(&r);

    r = TOOL(0, "dump", dir, "--type", "commit", "--json");
    assert_json(r.out);
    assert_true(json_u64(r.out, NULL, "shown") >= commits);
    tu_run_free(&r);
    r = TOOL(0, "dump", dir, "--from", "5", "--to", "9");
    assert_int_equal(strchr(r.out, '\n') != NULL, 1);
    size_t lines = 0;
    for (const char *p = r.out; *p != '\0'; p++) lines += *p == '\n';
    assert_int_equal(lines, 5);
    tu_run_free(&r);

    char page[24];
    snprintf(page, sizeof page, "%llu", (unsigned long long)w.base[1]);
    r = TOOL(0, "history", dir, "--page", page, "--json");
    assert_json(r.out);
    assert_true(json_u64(r.out, NULL, "shown") > 10);
    tu_run_free(&r);

    /* The page now (raw) and at a record in the middle (JSON). */
    mmsb_options o;
    options_for(&o, true);
    o.flags = MMSB_OPEN_READONLY;
    mmsb_engine *ro;
    TU_OK(mmsb_open(dir, &o, &ro));
    uint8_t now[4096];
    TU_OK(mmsb_page_read(ro, w.base[1], 0, now, sizeof now, NULL));
    TU_OK(mmsb_close(ro));
    r = TOOL(0, "page", dir, "--page", page, "--raw");
    assert_int_equal(r.out_len, sizeof now);
    assert_memory_equal(r.out, now, sizeof now);
    tu_run_free(&r);
    char at[24];
    snprintf(at, sizeof at, "%llu", (unsigned long long)w.mid_seq);
    r = TOOL(0, "page", dir, "--page", page, "--at", at, "--json");
    assert_json(r.out);
    assert_int_equal(json_u64(r.out, NULL, "epoch"), w.mid_epoch);
    char *hex = malloc(2 * sizeof w.mid_bytes + 1);
    json_get(r.out, NULL, "bytes", hex, 2 * sizeof w.mid_bytes + 1);
    for (size_t i = 0; i < sizeof w.mid_bytes; i++) {
        unsigned byte;
        sscanf(hex + 2 * i, "%2x", &byte);
        if (byte != w.mid_bytes[i]) fail_msg("page --at: byte %zu is %02x, expected %02x", i, byte, w.mid_bytes[i]);
    }
    free(hex);
    tu_run_free(&r);
    r = TOOL(0, "page", dir, "--page", page);
    assert_non_null(strstr(r.out, "00000000 "));
    tu_run_free(&r);
    tu_dir_remove(dir);
}

static void test_usage_errors(void **state) {
    (void)state;
    world w;
    char *dir = make_store(&w, 3, -1, NULL);
    const char *cmds[] = {"verify", "replay", "dump", "stats", "history", "page", "diff", "checkpoint"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        tu_run r = TOOL(0, cmds[i], "--help");
        assert_non_null(strstr(r.out, "usage: mmsb"));
        tu_run_free(&r);
        r = TOOL(2, cmds[i]); /* no directory */
        assert_non_null(strstr(r.err, "usage: mmsb"));
        tu_run_free(&r);
        r = TOOL(2, cmds[i], dir, "--no-such-option");
        assert_non_null(strstr(r.err, "unknown option"));
        tu_run_free(&r);
    }
    tu_run r = TOOL(2, "verify", "/nonexistent/store");
    tu_run_free(&r);
    r = TOOL(2, "replay", dir, "--from", "yesterday");
    tu_run_free(&r);
    r = TOOL(2, "replay", dir, "--to", "ten");
    tu_run_free(&r);
    r = TOOL(2, "page", dir, "--page", "999");
    assert_non_null(strstr(r.err, "does not exist"));
    tu_run_free(&r);
    r = TOOL(2, "history", dir);
    tu_run_free(&r);
    r = TOOL(2, "dump", dir, "--type", "nonsense");
    tu_run_free(&r);
    r = TOOL(2, "nonsense");
    tu_run_free(&r);
    r = TOOL(0, "--help");
    assert_non_null(strstr(r.out, "verify DIR"));
    tu_run_free(&r);
    tu_dir_remove(dir);
}

/* A store whose writer died with a half-written record after its last commit. */
static void test_torn_tail(void **state) {
    (void)state;
    char *dir = tu_dir_new();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        mmsb_options o;
        options_for(&o, true);
        mmsb_engine *e = tu_open(dir, &o);
        world w;
        memset(&w, 0, sizeof w);
        run_world(e, &w, 5, -1);
        TU_OK(mmsb_sync(e));
        _exit(0); /* no close: no clean-close commit */
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    mmsb_log_record last = find_record(dir, MMSB_REC_PAGE_FREE, 0);
    mmsb_log_record commit = find_record(dir, MMSB_REC_COMMIT, last.seq);
    uint64_t end = commit.offset + ((32 + commit.payload_len + 7) & ~7ull);
    char seg[4200];
    tu_segment_path(dir, commit.segment, seg, sizeof seg);
    uint8_t junk[48];
    memset(junk, 0xA5, sizeof junk);
    tu_file_write(seg, end, junk, sizeof junk);

    tu_run r = TOOL(0, "verify", dir, "--json");
    assert_json(r.out);
    assert_string_equal(json_get(r.out, NULL, "clean", (char[8]){0}, 8), "true");
    assert_string_equal(json_get(r.out, "log", "torn", (char[8]){0}, 8), "true");
    tu_run_free(&r);
    r = TOOL(0, "replay", dir, "--verify");
    tu_run_free(&r);
    tu_dir_remove(dir);
}

/* One byte flipped in a DELTA in the middle: a CRC fails with valid
 * commits after it. */
static void test_corrupt_middle(void **state) {
    (void)state;
    world w;
    char *dir = make_store(&w, 7, -1, NULL);
    tu_checkpoint_remove(dir);
    mmsb_log_record d = find_record(dir, MMSB_REC_DELTA, 100);
    char seg[4200];
    tu_segment_path(dir, d.segment, seg, sizeof seg);
    uint8_t b;
    tu_file_read(seg, d.offset + 32 + 40, &b, 1);
    b ^= 0xFF;
    tu_file_write(seg, d.offset + 32 + 40, &b, 1);

    tu_run r = TOOL(1, "verify", dir, "--json");
    assert_json(r.out);
    assert_string_equal(json_get(r.out, NULL, "clean", (char[8]){0}, 8), "false");
    assert_non_null(strstr(r.out, "corrupt"));
    tu_run_free(&r);
    r = TOOL(1, "replay", dir);
    tu_run_free(&r);
    r = TOOL(1, "stats", dir, "--json");
    assert_json(r.out);
    assert_non_null(strstr(r.out, "\"chain\":\"broken\""));
    tu_run_free(&r);
    r = TOOL(1, "dump", dir);
    assert_non_null(strstr(r.out, "PAGE_CREATE")); /* what came before is shown */
    tu_run_free(&r);
    r = TOOL(1, "history", dir, "--page", "1");
    assert_non_null(strstr(r.err, "corrupt"));
    tu_run_free(&r);
    char *clean = make_store(&w, 7, -1, NULL);
    r = TOOL(1, "diff", clean, dir); /* a corrupt side is a finding, named */
    assert_non_null(strstr(r.err, dir));
    tu_run_free(&r);
    tu_dir_remove(clean);
    tu_dir_remove(dir);
}

/* A payload changed and its CRC recomputed: only the chain can tell. */
static void test_recomputed_crc_caught_by_chain(void **state) {
    (void)state;
    world w;
    char *dir = make_store(&w, 8, -1, NULL);
    tu_checkpoint_remove(dir);
    mmsb_log_record d = find_record(dir, MMSB_REC_DELTA, 100);
    char seg[4200];
    tu_segment_path(dir, d.segment, seg, sizeof seg);
    uint64_t len = 32 + d.payload_len;
    uint8_t *rec = malloc(len);
    tu_file_read(seg, d.offset, rec, len);
    rec[len - 1] ^= 0x01; /* the last byte of the new bytes */
    uint32_t crc = crc32c(0, rec + 4, len - 4);
    for (int i = 0; i < 4; i++) rec[i] = (uint8_t)(crc >> (8 * i));
    tu_file_write(seg, d.offset, rec, len);
    free(rec);

    tu_run r = TOOL(1, "verify", dir, "--json");
    assert_json(r.out);
    assert_non_null(strstr(r.out, "chain"));
    tu_run_free(&r);
    tu_dir_remove(dir);
}

/* A DERIVED record whose bytes the operation would not produce: the
 * writer's parent page is changed behind the engine's back (never logged),
 * then a full recompute logs a copy of it. */
static void test_wrong_derived_delta(void **state) {
    (void)state;
    char *dir = tu_dir_new();
    mmsb_options o;
    options_for(&o, true);
    o.propagation = MMSB_PROPAGATE_FULL;
    o.root_every_commits = 1000;
    mmsb_engine *e = tu_open(dir, &o);
    uint64_t parent = new_page(e, 4096), child = new_page(e, 4096);
    uint64_t ps[1] = {parent};
    mmsb_derive_spec s = {.struct_size = sizeof s, .op = MMSB_OP_COPY, .parents = ps, .parent_count = 1};
    TU_OK(mmsb_derive(e, child, &s, NULL));
    uint8_t v = 1;
    TU_OK(mmsb_write(e, parent, 0, &v, 1, NULL));
    const void *view;
    uint64_t size;
    TU_OK(mmsb_page_view(e, parent, &view, &size, NULL));
    ((uint8_t *)view)[100] = 0x77; /* not through the engine: never logged */
    v = 2;
    mmsb_change ch;
    TU_OK(mmsb_write(e, parent, 0, &v, 1, &ch));
    TU_OK(mmsb_close(e));

    tu_run r = TOOL(1, "replay", dir, "--verify", "--json");
    assert_json(r.out);
    assert_int_equal(json_u64(r.out, "divergence", "page"), child);
    assert_int_equal(json_u64(r.out, "divergence", "offset"), 100);
    assert_int_equal(json_u64(r.out, "divergence", "expected"), 0);
    assert_int_equal(json_u64(r.out, "divergence", "actual"), 0x77);
    uint64_t seq = json_u64(r.out, "divergence", "seq");
    assert_true(seq < ch.commit_seq && seq > ch.commit_seq - 4); /* the DERIVED record of that commit */
    tu_run_free(&r);
    r = TOOL(1, "replay", dir, "--verify");
    assert_non_null(strstr(r.out, "DIVERGENCE at record"));
    assert_non_null(strstr(r.out, "offset 100: expected 0x00, actual 0x77"));
    tu_run_free(&r);
    r = TOOL(1, "verify", dir); /* the recorded root of the close disagrees */
    tu_run_free(&r);
    tu_dir_remove(dir);
}

static void test_diverging_stores(void **state) {
    (void)state;
    world wa, wb;
    char ra[33], rb[33], v[128];
    char *a = make_store(&wa, 21, -1, ra);
    char *b = make_store(&wb, 21, 200, rb);
    char *c = make_store(&wb, 21, -1, NULL);
    assert_string_not_equal(ra, rb);

    tu_run r = TOOL(0, "diff", a, c, "--json"); /* same changes, other salts */
    assert_json(r.out);
    assert_string_equal(json_get(r.out, NULL, "identical", v, sizeof v), "true");
    tu_run_free(&r);

    /* Write 200 is the 200th write after the setup: find its DELTA in A. */
    r = TOOL(1, "diff", a, b, "--json");
    assert_json(r.out);
    assert_string_equal(json_get(r.out, NULL, "identical", v, sizeof v), "false");
    uint64_t a_seq = json_u64(r.out, "divergence", "a_seq");
    assert_int_equal(json_u64(r.out, "divergence", "b_seq"), a_seq);
    tu_run_free(&r);
    mmsb_log_reader *rd;
    TU_OK(mmsb_log_open(a, 0, &rd));
    mmsb_log_record rec = {.struct_size = sizeof rec};
    uint64_t writes = 0, want = 0;
    while (want == 0) {
        TU_OK(mmsb_log_next(rd, &rec));
        assert_int_not_equal(rec.type, MMSB_REC_END);
        bool base = rec.type == MMSB_REC_DELTA && rec.page_id >= wa.base[0] && rec.page_id <= wa.base[3];
        if (base && writes++ == 200) want = rec.seq;
    }
    TU_OK(mmsb_log_close(rd));
    assert_int_equal(a_seq, want);

    r = TOOL(0, "replay", b, "--json");
    assert_string_equal(json_get(r.out, NULL, "root", v, sizeof v), rb);
    tu_run_free(&r);
    tu_dir_remove(a);
    tu_dir_remove(b);
    tu_dir_remove(c);
}

/* `mmsb checkpoint` of a closed store, then checkpoint + suffix against
 * genesis; a store in use is refused. */
static void test_checkpoint_command(void **state) {
    (void)state;
    world w;
    char root[33], v[128];
    char *dir = make_store(&w, 31, -1, root);
    tu_checkpoint_remove(dir);
    tu_run r = TOOL(0, "checkpoint", dir, "--keep-log", "--json");
    assert_json(r.out);
    assert_true(json_u64(r.out, NULL, "number") >= 1);
    tu_run_free(&r);
    r = TOOL(0, "verify", dir, "--json");
    assert_string_equal(json_get(r.out, "checkpoint", "present", v, sizeof v), "true");
    assert_string_equal(json_get(r.out, "checkpoint_replay", "root", v, sizeof v), root);
    assert_string_equal(json_get(r.out, "genesis_replay", "root", v, sizeof v), root);
    tu_run_free(&r);
    mmsb_options o;
    options_for(&o, true);
    mmsb_engine *e = tu_open(dir, &o);
    r = TOOL(2, "checkpoint", dir);
    assert_non_null(strstr(r.err, "open in another engine"));
    tu_run_free(&r);
    /* The reading commands run beside the writer. */
    r = TOOL(0, "verify", dir);
    tu_run_free(&r);
    r = TOOL(0, "stats", dir);
    tu_run_free(&r);
    TU_OK(mmsb_close(e));
    tu_dir_remove(dir);
}

/* Another store's checkpoint in place of this one's: verify names it. */
static void test_foreign_checkpoint(void **state) {
    (void)state;
    world wa, wb;
    char *a = make_store(&wa, 41, -1, NULL);
    char *b = make_store(&wb, 42, -1, NULL);
    char from[4200], to[4200];
    snprintf(from, sizeof from, "%s/checkpoint", a);
    snprintf(to, sizeof to, "%s/checkpoint", b);
    tu_copy_dir(from, to);
    tu_run r = TOOL(1, "verify", b, "--json");
    assert_json(r.out);
    assert_non_null(strstr(r.out, "another store"));
    tu_run_free(&r);
    r = TOOL(1, "replay", b, "--from", "checkpoint");
    tu_run_free(&r);
    tu_dir_remove(a);
    tu_dir_remove(b);
}

/* The reading commands beside a writer process that keeps writing and
 * checkpointing: each sees a consistent prefix and finds nothing wrong. */
static void busy_writer(const char *dir, void *ctx, int ready) {
    (void)ctx;
    mmsb_options o;
    options_for(&o, true);
    o.checkpoint_log_bytes = 1u << 20;
    mmsb_engine *e = tu_open(dir, &o);
    world w;
    memset(&w, 0, sizeof w);
    run_world(e, &w, 51, -1);
    tu_child_ready(ready);
    rng r = {52};
    uint8_t buf[2048];
    for (uint64_t n = 1;; n++) {
        if (n % 8 == 0) usleep(1000); /* the whole log is kept: bound its growth */
        rng_fill(&r, buf, sizeof buf);
        if (mmsb_write(e, w.base[rng_below(&r, 4)], rng_below(&r, 2048), buf, sizeof buf, NULL) != 0) _exit(4);
    }
}

static void test_beside_live_writer(void **state) {
    (void)state;
    char *dir = tu_dir_new();
    int pid = tu_child_start(busy_writer, dir, NULL);
    for (int round = 0; round < 3; round++) {
        tu_run r = TOOL(0, "verify", dir, "--json");
        assert_json(r.out);
        tu_run_free(&r);
        r = TOOL(0, "replay", dir, "--verify", "--json");
        assert_json(r.out);
        tu_run_free(&r);
        r = TOOL(0, "stats", dir, "--json");
        assert_json(r.out);
        tu_run_free(&r);
    }
    tu_child_kill(pid); /* it was writing all along */
    tu_run r = TOOL(0, "verify", dir); /* and what it left verifies */
    tu_run_free(&r);
    tu_dir_remove(dir);
}

static int find_tool(void **state) {
    (void)state;
    return tu_tool_find() ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_store),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_torn_tail),
        cmocka_unit_test(test_corrupt_middle),
        cmocka_unit_test(test_recomputed_crc_caught_by_chain),
        cmocka_unit_test(test_wrong_derived_delta),
        cmocka_unit_test(test_diverging_stores),
        cmocka_unit_test(test_checkpoint_command),
        cmocka_unit_test(test_foreign_checkpoint),
        cmocka_unit_test(test_beside_live_writer),
    };
    return cmocka_run_group_tests(tests, find_tool, NULL);
}
