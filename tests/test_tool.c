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

/* Whether text is UTF-8 as RFC 3629 has it, decoded code point by code point. */
static bool utf8_valid(const unsigned char *t) {
    while (*t != 0) {
        uint32_t lead = *t++, extra = lead < 0x80 ? 0 : lead >= 0xf0 ? 3 : lead >= 0xe0 ? 2 : 1;
        if (lead >= 0x80 && lead < 0xc0) return false;
        uint32_t cp = extra == 0 ? lead : lead & (0x3fu >> extra);
        for (uint32_t i = 0; i < extra; i++, t++) {
            if ((*t & 0xc0) != 0x80) return false;
            cp = cp << 6 | (*t & 0x3fu);
        }
        static const uint32_t least[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < least[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    }
    return true;
}

static void assert_json(const char *text) {
    if (!utf8_valid((const unsigned char *)text)) fail_msg("not UTF-8:\n%.3000s", text);
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
    const char *cmds[] = {"verify", "replay", "dump", "stats", "pages", "history", "page", "diff", "checkpoint",
                          "salvage", "demo"};
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

/* Every option a command's --help names is in the top-level list too. */
static void test_help_lists_every_option(void **state) {
    (void)state;
    const char *cmds[] = {"demo", "verify", "replay", "dump", "stats", "pages", "history", "page", "diff",
                          "checkpoint", "salvage", "ship", "follow", "promote", "export", "import"};
    tu_run top = TOOL(0, "--help");
    tu_run help = TOOL(0, "help");
    assert_string_equal(top.out, help.out);
    tu_run_free(&help);
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        tu_run r = TOOL(0, cmds[i], "--help");
        tu_run h = TOOL(0, "help", cmds[i]);
        assert_string_equal(r.out, h.out);
        tu_run_free(&h);
        char synopsis[256];
        snprintf(synopsis, sizeof synopsis, "  %s ", cmds[i]);
        assert_non_null(strstr(top.out, synopsis));
        for (const char *p = r.out; (p = strstr(p, "--")) != NULL; p += 2) { /* each "--name" in the help */
            size_t n = 2 + strspn(p + 2, "abcdefghijklmnopqrstuvwxyz-");
            if (n <= 3) continue;
            char opt[64];
            snprintf(opt, sizeof opt, "%.*s", (int)n, p);
            if (strstr(top.out, opt) == NULL) fail_msg("mmsb --help lacks %s of %s", opt, cmds[i]);
        }
        tu_run_free(&r);
    }
    tu_run_free(&top);
    tu_run r = TOOL(2, "help", "nonsense");
    assert_non_null(strstr(r.err, "unknown command"));
    tu_run_free(&r);
}

static size_t count_lines(const char *text) {
    size_t lines = 0;
    for (const char *p = text; *p != '\0'; p++) lines += *p == '\n';
    return lines;
}

/* GNU forms: --opt=value, abbreviations, options after operands, "--". */
static void test_option_forms(void **state) {
    (void)state;
    world w;
    char *dir = make_store(&w, 4, -1, NULL);
    tu_run r = TOOL(0, "dump", dir, "--from=5", "--to=9");
    assert_int_equal(count_lines(r.out), 5);
    tu_run_free(&r);
    r = TOOL(0, "dump", "--fr", "5", "--to=9", dir); /* a unique prefix; the operand last */
    assert_int_equal(count_lines(r.out), 5);
    tu_run_free(&r);
    r = TOOL(0, "dump", "--from=5", "--to=9", "--", dir);
    assert_int_equal(count_lines(r.out), 5);
    tu_run_free(&r);
    r = TOOL(2, "dump", dir, "--to");
    assert_non_null(strstr(r.err, "needs a value"));
    tu_run_free(&r);
    r = TOOL(2, "dump", dir, "--to=x");
    assert_non_null(strstr(r.err, "not a decimal number"));
    tu_run_free(&r);
    r = TOOL(2, "dump", dir, "--json=1");
    tu_run_free(&r);
    r = TOOL(2, "dump", dir, "-q");
    assert_non_null(strstr(r.err, "unknown option: -q"));
    tu_run_free(&r);
    r = TOOL(2, "dump", dir, dir);
    assert_non_null(strstr(r.err, "unexpected argument"));
    tu_run_free(&r);
    r = TOOL(0, "dump", dir, "-h");
    assert_non_null(strstr(r.out, "usage: mmsb dump"));
    tu_run_free(&r);
    tu_dir_remove(dir);
}

/* Open failures name the problem as a user of the tool sees it. */
static void test_open_errors_in_user_terms(void **state) {
    (void)state;
    char *empty = tu_dir_new();
    tu_run r = TOOL(2, "checkpoint", empty);
    assert_non_null(strstr(r.err, "no MMSB store here"));
    assert_null(strstr(r.err, "MMSB_OPEN"));
    assert_null(strstr(r.err, "mmsb_open"));
    tu_run_free(&r);
    char missing[4200], file[4200];
    snprintf(missing, sizeof missing, "%s/missing", empty);
    r = TOOL(2, "checkpoint", missing);
    assert_non_null(strstr(r.err, "No such file or directory"));
    assert_null(strstr(r.err, "MMSB_OPEN"));
    tu_run_free(&r);
    snprintf(file, sizeof file, "%s/file", empty);
    tu_file_write(file, 0, "x", 1);
    const char *readers[][4] = {{"pages", file}, {"stats", file}, {"replay", file}, {"page", file, "--page", "1"}};
    for (size_t i = 0; i < sizeof readers / sizeof readers[0]; i++) {
        const char *args[] = {readers[i][0], readers[i][1], readers[i][2], readers[i][3], NULL};
        r = tu_tool_run(args);
        assert_int_equal(r.status, 2);
        if (strstr(r.err, "not a directory") == NULL && strstr(r.err, "Not a directory") == NULL) {
            fail_msg("mmsb %s FILE: %s", readers[i][0], r.err);
        }
        assert_null(strstr(r.err, "mmsb_open"));
        tu_run_free(&r);
    }
    r = TOOL(2, "pages", empty);
    assert_non_null(strstr(r.err, "no MMSB store here"));
    tu_run_free(&r);
    tu_dir_remove(empty);
}

/* A store in a directory whose name is not UTF-8 and holds a control
 * character: every JSON document stays valid. */
static void test_json_for_any_path(void **state) {
    (void)state;
    char *parent = tu_dir_new();
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/store-\xff\xfe-\x01-\xc3\xa9-\xed\xa0\x80", parent);
    mmsb_options o;
    options_for(&o, true);
    o.flags |= MMSB_OPEN_CREATE;
    mmsb_engine *e = tu_open(dir, &o);
    uint64_t id = new_page(e, 64);
    TU_OK(mmsb_write(e, id, 0, "x", 1, NULL));
    TU_OK(mmsb_close(e));
    const char *cmds[] = {"verify", "replay", "stats", "dump", "pages", "checkpoint"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        tu_run r = TOOL(0, cmds[i], dir, "--json");
        assert_json(r.out);
        if (strcmp(cmds[i], "dump") != 0) {
            assert_non_null(strstr(r.out, "store-\\ufffd\\ufffd-\\u0001-\xc3\xa9-\\ufffd\\ufffd\\ufffd"));
        }
        tu_run_free(&r);
    }
    tu_dir_remove(parent);
}

/* dump --jsonl: one document per record; --bytes: what a change wrote. */
static void test_dump_jsonl_and_bytes(void **state) {
    (void)state;
    char *dir = tu_dir_new();
    mmsb_options o;
    options_for(&o, true);
    mmsb_engine *e = tu_open(dir, &o);
    uint64_t id = new_page(e, 256);
    TU_OK(mmsb_write(e, id, 10, "hello", 5, NULL));
    uint8_t sparse[64] = {0};
    sparse[0] = 0xab;
    sparse[63] = 0xcd; /* two bytes apart: a sparse change */
    TU_OK(mmsb_write(e, id, 100, sparse, sizeof sparse, NULL));
    TU_OK(mmsb_close(e));
    tu_run all = TOOL(0, "dump", dir, "--json");
    uint64_t records = json_u64(all.out, NULL, "shown");
    tu_run_free(&all);
    tu_run r = TOOL(0, "dump", dir, "--jsonl", "--bytes");
    assert_int_equal(count_lines(r.out), records);
    for (char *line = r.out, *next; *line != '\0'; line = next + 1) {
        next = strchr(line, '\n');
        assert_non_null(next);
        *next = '\0';
        assert_json(line);
    }
    tu_run_free(&r);
    r = TOOL(0, "dump", dir, "--type", "delta", "--bytes", "--jsonl");
    assert_int_equal(count_lines(r.out), 2);
    char v[256];
    assert_int_equal(json_u64(r.out, NULL, "page_offset"), 10);
    assert_string_equal(json_get(r.out, NULL, "bytes", v, sizeof v), "68656c6c6f");
    const char *second = strchr(r.out, '\n') + 1;
    assert_string_equal(json_get(second, NULL, "form", v, sizeof v), "sparse");
    assert_string_equal(json_get(second, NULL, "bytes", v, sizeof v), "abcd");
    tu_run_free(&r);
    r = TOOL(0, "dump", dir, "--type", "delta", "--bytes");
    assert_non_null(strstr(r.out, "bytes=68656c6c6f"));
    tu_run_free(&r);
    r = TOOL(2, "dump", dir, "--json", "--jsonl");
    tu_run_free(&r);
    tu_dir_remove(dir);
}

/* `mmsb pages` against what the library says of each page. */
static void test_pages_command(void **state) {
    (void)state;
    world w;
    char *dir = make_store(&w, 13, -1, NULL);
    mmsb_options o;
    options_for(&o, true);
    o.flags = MMSB_OPEN_READONLY;
    mmsb_engine *ro;
    TU_OK(mmsb_open(dir, &o, &ro));
    tu_run r = TOOL(0, "pages", dir, "--json");
    assert_json(r.out);
    assert_int_equal(json_u64(r.out, NULL, "listed"), 8);
    char key[64], v[128], hex[33];
    for (int i = 0; i < 4; i++) { /* the base pages come first, in id order */
        mmsb_pageinfo pi = {.struct_size = sizeof pi};
        TU_OK(mmsb_page_info(ro, w.base[i], &pi));
        snprintf(key, sizeof key, "{\"id\":%llu,", (unsigned long long)w.base[i]);
        const char *at = strstr(r.out, key);
        assert_non_null(at);
        assert_int_equal(json_u64(at, NULL, "epoch"), pi.epoch);
        mmsb_digest d;
        TU_OK(mmsb_page_digest(ro, w.base[i], &d));
        mmsb_digest_hex(&d, hex, sizeof hex);
        assert_string_equal(json_get(at, NULL, "digest", v, sizeof v), hex);
    }
    snprintf(key, sizeof key, "{\"id\":%llu,", (unsigned long long)w.xr);
    char parents[64];
    snprintf(parents, sizeof parents, "\"parents\":[%llu,%llu]", (unsigned long long)w.base[1],
             (unsigned long long)w.base[2]);
    assert_non_null(strstr(strstr(r.out, key), parents));
    tu_run_free(&r);
    TU_OK(mmsb_close(ro));
    r = TOOL(0, "pages", dir, "--jsonl");
    assert_int_equal(count_lines(r.out), 8);
    tu_run_free(&r);
    char from[24], to[24];
    snprintf(from, sizeof from, "%llu", (unsigned long long)w.base[1]);
    snprintf(to, sizeof to, "%llu", (unsigned long long)w.base[2]);
    r = TOOL(0, "pages", dir, "--from", from, "--to", to);
    assert_int_equal(count_lines(r.out), 1 + 2); /* the heading and two pages */
    tu_run_free(&r);
    r = TOOL(0, "pages", dir);
    assert_non_null(strstr(r.out, " from "));
    tu_run_free(&r);
    tu_dir_remove(dir);
}

static void assert_same_files(const char *a, const char *b) {
    uint64_t size = tu_file_size(a);
    assert_int_equal(tu_file_size(b), size);
    uint8_t *x = malloc(size), *y = malloc(size);
    tu_file_read(a, 0, x, size);
    tu_file_read(b, 0, y, size);
    assert_memory_equal(x, y, size);
    free(x);
    free(y);
}

/* salvage: a damaged store copied and cut; the original unchanged; clean,
 * pruned and busy stores; a COPY that exists. */
static void test_salvage_command(void **state) {
    (void)state;
    world w;
    char root[33], v[128], copy[4200], seg[4200], seg_copy[4300], kept[4300];
    char *dir = make_store(&w, 17, -1, root);
    snprintf(copy, sizeof copy, "%s-clean-copy", dir);
    tu_run r = TOOL(0, "salvage", dir, copy, "--json");
    assert_json(r.out);
    assert_string_equal(json_get(r.out, NULL, "root", v, sizeof v), root);
    assert_string_equal(json_get(r.out, NULL, "lost", v, sizeof v), "false");
    tu_run_free(&r);
    r = TOOL(2, "salvage", dir, copy); /* never over an existing directory */
    assert_non_null(strstr(r.err, "never overwrites"));
    tu_run_free(&r);
    tu_dir_remove(strdup(copy));

    tu_checkpoint_remove(dir);
    mmsb_log_record d = find_record(dir, MMSB_REC_DELTA, 100);
    tu_segment_path(dir, d.segment, seg, sizeof seg);
    tu_file_flip_bit(seg, d.offset + 32 + 40, 3);
    snprintf(kept, sizeof kept, "%s.before", seg);
    tu_file_copy(seg, kept);
    snprintf(copy, sizeof copy, "%s-copy", dir);
    r = TOOL(1, "salvage", dir, copy, "--json");
    assert_json(r.out);
    assert_string_equal(json_get(r.out, NULL, "lost", v, sizeof v), "true");
    assert_string_equal(json_get(r.out, NULL, "salvaged", v, sizeof v), "true");
    uint64_t good = json_u64(r.out, NULL, "last_good_commit_seq");
    assert_true(good < d.seq && good > 0);
    assert_true(json_u64(r.out, NULL, "dropped_bytes") > 0);
    tu_run_free(&r);
    assert_same_files(seg, kept); /* the original is only read */
    r = TOOL(1, "verify", dir);
    tu_run_free(&r);
    r = TOOL(0, "verify", copy, "--json"); /* the copy is a sound store ... */
    assert_string_equal(json_get(r.out, NULL, "clean", v, sizeof v), "true");
    tu_run_free(&r);
    mmsb_options o;
    options_for(&o, true);
    mmsb_engine *e = tu_open(copy, &o); /* ... that a writer opens and extends */
    TU_OK(mmsb_op_register(e, MMSB_OP_USER_FIRST, 1, user_double, NULL));
    TU_OK(mmsb_write(e, w.base[0], 0, "after", 5, NULL));
    TU_OK(mmsb_close(e));
    r = TOOL(0, "verify", copy);
    tu_run_free(&r);
    snprintf(seg_copy, sizeof seg_copy, "%s/log-0000000001.seg", copy);
    assert_true(tu_file_size(seg_copy) > 0);
    tu_dir_remove(strdup(copy));

    r = TOOL(2, "salvage", dir, "--json"); /* COPY is needed */
    tu_run_free(&r);
    tu_dir_remove(dir);
}

/* A pruned store (its first segments removed after a checkpoint) salvages
 * whole; a store with a live writer is refused. */
static void test_salvage_pruned_and_busy(void **state) {
    (void)state;
    world w;
    char root[33], v[128], copy[4200];
    char *dir = make_store(&w, 19, -1, root);
    tu_run r = TOOL(0, "checkpoint", dir); /* removes the log before it */
    tu_run_free(&r);
    snprintf(copy, sizeof copy, "%s-copy", dir);
    r = TOOL(0, "salvage", dir, copy, "--json");
    assert_string_equal(json_get(r.out, NULL, "root", v, sizeof v), root);
    tu_run_free(&r);
    r = TOOL(0, "verify", copy);
    tu_run_free(&r);
    tu_dir_remove(strdup(copy));
    mmsb_options o;
    options_for(&o, true);
    mmsb_engine *e = tu_open(dir, &o);
    r = TOOL(2, "salvage", dir, copy);
    assert_non_null(strstr(r.err, "in use"));
    tu_run_free(&r);
    TU_OK(mmsb_close(e));
    tu_dir_remove(dir);
}

/* export and import: a stream from standard output or a file makes a store
 * that every reading command takes and that reads page for page like its
 * source; damaged streams, taken paths and damaged stores are refused. */
static void test_export_import_commands(void **state) {
    (void)state;
    world w;
    char root[33], v[128], stream[4200], copy[4200], again[4300];
    char *dir = make_store(&w, 23, -1, root);
    snprintf(stream, sizeof stream, "%s.stream", dir);
    snprintf(copy, sizeof copy, "%s-imported", dir);
    tu_run r = TOOL(0, "export", dir); /* to standard output */
    FILE *f = fopen(stream, "wb");
    assert_true(fwrite(r.out, 1, r.out_len, f) == r.out_len);
    fclose(f);
    assert_non_null(strstr(r.err, root)); /* the summary goes to standard error */
    tu_run_free(&r);
    r = TOOL(0, "import", copy, "--input", stream, "--json");
    assert_json(r.out);
    assert_string_equal(json_get(r.out, NULL, "state_root", v, sizeof v), root);
    tu_run_free(&r);
    r = TOOL(2, "import", copy, "--input", stream); /* never over a store */
    assert_non_null(strstr(r.err, "not an empty directory"));
    tu_run_free(&r);
    tu_run a = TOOL(0, "pages", dir), b = TOOL(0, "pages", copy);
    assert_string_equal(a.out, b.out);
    tu_run_free(&a);
    tu_run_free(&b);
    const char *reading[] = {"verify", "replay", "stats", "dump", "pages", "checkpoint"};
    for (size_t i = 0; i < sizeof reading / sizeof reading[0]; i++) {
        r = TOOL(0, reading[i], copy, "--json");
        assert_json(r.out);
        tu_run_free(&r);
    }
    r = TOOL(0, "replay", copy, "--verify", "--json");
    assert_string_equal(json_get(r.out, NULL, "root", v, sizeof v), root);
    tu_run_free(&r);
    snprintf(again, sizeof again, "%s.again", dir);
    r = TOOL(0, "export", copy, "--output", again, "--json"); /* an imported store exports too */
    assert_string_equal(json_get(r.out, NULL, "state_root", v, sizeof v), root);
    tu_run_free(&r);
    r = TOOL(2, "export", copy, "--output", again); /* never over a file */
    tu_run_free(&r);
    unlink(again);
    tu_dir_remove(strdup(copy));

    uint64_t size = tu_file_size(stream);
    tu_file_flip_bit(stream, size / 2, 4);
    r = TOOL(1, "import", copy, "--input", stream);
    assert_non_null(strstr(r.err, "export stream"));
    tu_run_free(&r);
    snprintf(again, sizeof again, "%s.importing", copy);
    assert_true(access(copy, F_OK) != 0 && access(again, F_OK) != 0);
    r = TOOL(2, "import", copy, "--input", "/nonexistent/stream");
    tu_run_free(&r);
    unlink(stream);

    tu_checkpoint_remove(dir); /* a damaged log: the export is refused */
    mmsb_log_record d = find_record(dir, MMSB_REC_DELTA, 50);
    char seg[4200];
    tu_segment_path(dir, d.segment, seg, sizeof seg);
    tu_file_flip_bit(seg, d.offset + 40, 2);
    r = TOOL(1, "export", dir, "--output", stream);
    tu_run_free(&r);
    assert_true(access(stream, F_OK) != 0);
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

static int user_refuses(void *user, const mmsb_op_input *in, uint8_t *out, uint64_t len) {
    (void)user, (void)in, (void)out, (void)len;
    return 1;
}

/* A checkpoint right after a rolled-back commit covers its ABORT record (a
 * point between commits, with the last commit's state). verify once said
 * the checkpoint covered no commit of the log (the crash simulator found
 * it, seed 70124); it and replay must find the store clean. */
static void test_checkpoint_after_an_abort(void **state) {
    (void)state;
    char *dir = tu_dir_new();
    mmsb_options o;
    options_for(&o, true);
    mmsb_engine *e = tu_open(dir, &o);
    uint64_t a = new_page(e, 64), c = new_page(e, 64);
    TU_OK(mmsb_write(e, a, 0, "before", 6, NULL));
    TU_OK(mmsb_op_register(e, MMSB_OP_USER_FIRST, 1, user_refuses, NULL));
    mmsb_derive_spec s = {.struct_size = sizeof s, .op = MMSB_OP_USER_FIRST, .parents = &a, .parent_count = 1};
    TU_ERR(mmsb_derive(e, c, &s, NULL), MMSB_EOP); /* rolled back: an ABORT */
    TU_OK(mmsb_checkpoint(e));                       /* the last one: close adds none */
    char root[33], v[128];
    tu_root_hex(e, root);
    TU_OK(mmsb_close(e));
    tu_run r = TOOL(0, "verify", dir, "--json");
    assert_string_equal(json_get(r.out, "checkpoint_replay", "root", v, sizeof v), root);
    assert_string_equal(json_get(r.out, "genesis_replay", "root", v, sizeof v), root);
    assert_string_equal(json_get(r.out, "checkpoint", "present", v, sizeof v), "true");
    tu_run_free(&r);
    r = TOOL(0, "replay", dir, "--from", "checkpoint");
    tu_run_free(&r);
    r = TOOL(0, "replay", dir, "--from", "genesis", "--verify");
    tu_run_free(&r);
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
        cmocka_unit_test(test_help_lists_every_option),
        cmocka_unit_test(test_option_forms),
        cmocka_unit_test(test_open_errors_in_user_terms),
        cmocka_unit_test(test_json_for_any_path),
        cmocka_unit_test(test_dump_jsonl_and_bytes),
        cmocka_unit_test(test_pages_command),
        cmocka_unit_test(test_salvage_command),
        cmocka_unit_test(test_salvage_pruned_and_busy),
        cmocka_unit_test(test_export_import_commands),
        cmocka_unit_test(test_torn_tail),
        cmocka_unit_test(test_corrupt_middle),
        cmocka_unit_test(test_recomputed_crc_caught_by_chain),
        cmocka_unit_test(test_wrong_derived_delta),
        cmocka_unit_test(test_diverging_stores),
        cmocka_unit_test(test_checkpoint_command),
        cmocka_unit_test(test_checkpoint_after_an_abort),
        cmocka_unit_test(test_foreign_checkpoint),
        cmocka_unit_test(test_beside_live_writer),
    };
    return cmocka_run_group_tests(tests, find_tool, NULL);
}
