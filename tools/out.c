/*
 * out.c - what the audit subcommands share: argument parsing, a JSON writer,
 * the progress bar, and the list of a store's log segment files.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../engine/base/base.h"
#include "../tlog/format.h"
#include "cli.h"

/* ---- arguments ------------------------------------------------------------------------- */

static int usage_error(const char *cmd, const char *usage, const char *what, const char *arg) {
    fprintf(stderr, "mmsb %s: %s%s%s\n\n%s", cmd, what, arg != NULL ? ": " : "", arg != NULL ? arg : "", usage);
    return EXIT_USAGE;
}

static int take_value(const char *cmd, const char *usage, const cli_opt *o, const char *value) {
    ASSERT(value != NULL);
    if (o->kind == OPT_U64 && cli_parse_u64(value, o->out) != 0) {
        return usage_error(cmd, usage, "not a decimal number", value);
    }
    if (o->kind == OPT_TEXT) *(const char **)o->out = value;
    return 0;
}

/* getopt_long's table: the command's options, then --json and --help.
 * An option's val is its index + OPT_VAL_FIRST (above any short option). */
enum { OPT_VAL_FIRST = 256, OPT_VAL_JSON = OPT_VAL_FIRST + CLI_OPTS_MAX, OPT_VAL_HELP };

static void long_table(const cli_opt *opts, uint32_t opt_count, struct option *table) {
    ASSERT(opt_count <= CLI_OPTS_MAX);
    for (uint32_t k = 0; k < opt_count; k++) {
        ASSERT(strncmp(opts[k].name, "--", 2) == 0);
        table[k] = (struct option){.name = opts[k].name + 2,
                                   .has_arg = opts[k].kind == OPT_FLAG ? no_argument : required_argument,
                                   .val = OPT_VAL_FIRST + (int)k};
    }
    table[opt_count] = (struct option){.name = "json", .has_arg = no_argument, .val = OPT_VAL_JSON};
    table[opt_count + 1] = (struct option){.name = "help", .has_arg = no_argument, .val = OPT_VAL_HELP};
    table[opt_count + 2] = (struct option){0};
}

/* What getopt_long refused, in words, naming the argument it stopped at. */
static int refused(const char *cmd, const char *usage, int got, char **argv) {
    char short_opt[3] = {'-', (char)optopt, '\0'};
    bool is_short = optopt > 0 && optopt < OPT_VAL_FIRST;
    const char *arg = is_short ? short_opt : argv[optind - 1];
    if (got == ':') return usage_error(cmd, usage, "option needs a value", arg);
    const char *what = is_short ? "unknown option" : "unknown option (or ambiguous, or a flag given a value)";
    return usage_error(cmd, usage, what, arg);
}

int cli_parse(const char *cmd, const char *usage, int argc, char **argv, const cli_opt *opts,
              uint32_t opt_count, uint32_t pos_want, cli_args *out) {
    ASSERT(pos_want <= CLI_POSITIONAL_MAX && argc >= 1 && opt_count <= CLI_OPTS_MAX);
    memset(out, 0, sizeof *out);
    struct option table[CLI_OPTS_MAX + 3];
    long_table(opts, opt_count, table);
    bool jsonl = false; /* a command that streams JSON lines offers --jsonl */
    optind = 0; /* GNU: a full reset, so a second parse in one process starts clean */
    opterr = 0;
    for (int steps = 0; steps <= argc; steps++) { /* each step consumes at least one argument */
        int got = getopt_long(argc, argv, ":h", table, NULL);
        if (got == -1) break;
        if (got == 'h' || got == OPT_VAL_HELP) {
            fputs(usage, stdout);
            return CLI_HELP;
        }
        if (got == OPT_VAL_JSON) {
            out->json = true;
            continue;
        }
        if (got < OPT_VAL_FIRST || got >= OPT_VAL_FIRST + (int)opt_count) return refused(cmd, usage, got, argv);
        const cli_opt *o = &opts[got - OPT_VAL_FIRST];
        if (o->seen != NULL) *o->seen = true;
        if (o->kind == OPT_FLAG) {
            *(bool *)o->out = true;
            jsonl |= strcmp(o->name, "--jsonl") == 0;
            continue;
        }
        int rc = take_value(cmd, usage, o, optarg);
        if (rc != 0) return rc;
    }
    for (int i = optind; i < argc; i++) { /* getopt_long moved the operands here, "--" included */
        if (out->pos_count == pos_want) return usage_error(cmd, usage, "unexpected argument", argv[i]);
        out->pos[out->pos_count++] = argv[i];
    }
    if (out->pos_count != pos_want) {
        return usage_error(cmd, usage, pos_want == 1 ? "needs the store directory" : "needs two directories",
                           NULL);
    }
    if (out->json && jsonl) return usage_error(cmd, usage, "--json and --jsonl exclude each other", NULL);
    return 0;
}

/* ---- JSON ---------------------------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0 when p does not start one. */
static uint32_t utf8_sequence(const unsigned char *p) {
    uint32_t len = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : 2;
    if (p[0] < 0xc2 || p[0] > 0xf4) return 0; /* a continuation byte, or a lead that only starts overlongs */
    for (uint32_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0; /* also stops at the string's NUL */
    }
    if (p[0] == 0xe0 && p[1] < 0xa0) return 0; /* overlong */
    if (p[0] == 0xed && p[1] >= 0xa0) return 0; /* a surrogate */
    if (p[0] == 0xf0 && p[1] < 0x90) return 0; /* overlong */
    if (p[0] == 0xf4 && p[1] >= 0x90) return 0; /* above U+10FFFF */
    return len;
}

/* A JSON string for any bytes: what is not UTF-8 (a path may hold any byte
 * but '/' and NUL) becomes U+FFFD, so the document stays valid. */
static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0') {
        if (*p == '"' || *p == '\\') {
            fputc('\\', f);
            fputc(*p++, f);
        } else if (*p < 0x20 || *p == 0x7f) {
            fprintf(f, "\\u%04x", *p++);
        } else if (*p < 0x80) {
            fputc(*p++, f);
        } else {
            uint32_t len = utf8_sequence(p);
            if (len == 0) {
                fputs("\\ufffd", f);
                p++;
            } else {
                fwrite(p, 1, len, f);
                p += len;
            }
        }
    }
    fputc('"', f);
}

/* The separator and key before a value at the current depth. */
static void json_key(json_out *j, const char *key) {
    ASSERT(j->depth >= 1 && j->depth <= JSON_DEPTH_MAX);
    if (!j->first[j->depth - 1]) fputc(',', j->f);
    j->first[j->depth - 1] = false;
    if (key != NULL) {
        json_string(j->f, key);
        fputc(':', j->f);
    }
}

static void json_open(json_out *j, const char *key, char bracket) {
    json_key(j, key);
    ASSERT(j->depth < JSON_DEPTH_MAX);
    fputc(bracket, j->f);
    j->first[j->depth++] = true;
}

void json_begin(json_out *j, FILE *f) {
    *j = (json_out){.f = f, .depth = 1, .first = {true}};
    fputc('{', f);
}

void json_end(json_out *j) {
    ASSERT(j->depth == 1);
    fputs("}\n", j->f);
    j->depth = 0;
    fflush(j->f);
}

void json_obj(json_out *j, const char *key) { json_open(j, key, '{'); }
void json_arr(json_out *j, const char *key) { json_open(j, key, '['); }

void json_close_obj(json_out *j) {
    ASSERT(j->depth > 1);
    j->depth--;
    fputc('}', j->f);
}

void json_close_arr(json_out *j) {
    ASSERT(j->depth > 1);
    j->depth--;
    fputc(']', j->f);
}

void json_u64(json_out *j, const char *key, uint64_t v) {
    json_key(j, key);
    fprintf(j->f, "%llu", (unsigned long long)v);
}

void json_f64(json_out *j, const char *key, double v) {
    json_key(j, key);
    if (isfinite(v)) fprintf(j->f, "%.6g", v);
    else fputs("null", j->f); /* JSON has no NaN or infinity: a rate over zero seconds */
}

void json_bool(json_out *j, const char *key, bool v) {
    json_key(j, key);
    fputs(v ? "true" : "false", j->f);
}

void json_str(json_out *j, const char *key, const char *v) {
    json_key(j, key);
    json_string(j->f, v);
}

void cli_hex_write(FILE *f, const uint8_t *bytes, uint64_t len) {
    static const char digits[] = "0123456789abcdef";
    char buf[4096];
    for (uint64_t done = 0; done < len;) { /* a buffer at a time: a page may be gigabytes */
        uint64_t n = len - done < sizeof buf / 2 ? len - done : sizeof buf / 2;
        for (uint64_t i = 0; i < n; i++) {
            buf[2 * i] = digits[bytes[done + i] >> 4];
            buf[2 * i + 1] = digits[bytes[done + i] & 15];
        }
        fwrite(buf, 1, 2 * n, f);
        done += n;
    }
}

void json_hex(json_out *j, const char *key, const uint8_t *bytes, uint64_t len) {
    json_key(j, key);
    fputc('"', j->f);
    cli_hex_write(j->f, bytes, len);
    fputc('"', j->f);
}

void cli_hex128(const uint8_t bytes[16], char out[33]) {
    mmsb_digest d;
    memcpy(d.bytes, bytes, 16);
    mmsb_digest_hex(&d, out, 33);
}

/* ---- progress --------------------------------------------------------------------------- */

enum { PROGRESS_DELAY_NS = 1000000000, PROGRESS_EVERY_NS = 100000000, PROGRESS_BAR_CELLS = 30 };

void progress_start(progress *p, const char *what, uint64_t total) {
    const char *off = getenv("MMSB_NO_PROGRESS");
    *p = (progress){.on = isatty(STDERR_FILENO) && (off == NULL || off[0] == '\0' || off[0] == '0'),
                    .what = what, .total = total, .start_ns = cli_now_ns()};
}

void progress_update(progress *p, uint64_t done) {
    if (!p->on || p->total == 0) return;
    uint64_t now = cli_now_ns();
    if (now - p->start_ns < PROGRESS_DELAY_NS || now - p->drawn_ns < PROGRESS_EVERY_NS) return;
    p->drawn_ns = now;
    if (done > p->total) done = p->total;
    uint32_t cells = (uint32_t)(done * PROGRESS_BAR_CELLS / p->total);
    char bar[PROGRESS_BAR_CELLS + 1];
    for (uint32_t i = 0; i < PROGRESS_BAR_CELLS; i++) bar[i] = i < cells ? '#' : ' ';
    bar[PROGRESS_BAR_CELLS] = '\0';
    double secs = (double)(now - p->start_ns) / 1e9;
    fprintf(stderr, "\r%s [%s] %3u%% %.0f MB/s", p->what, bar, (uint32_t)(done * 100 / p->total),
            (double)done / 1e6 / secs);
}

void progress_end(progress *p) {
    if (p->on && p->drawn_ns != 0) fputs("\r\033[K", stderr);
    p->on = false;
}

/* ---- log files ---------------------------------------------------------------------------- */

static bool segment_number(const char *name, uint64_t *no) {
    /* "log-%010llu.seg" */
    if (strncmp(name, "log-", 4) != 0 || strlen(name) != 18 || strcmp(name + 14, ".seg") != 0) return false;
    uint64_t v = 0;
    for (int i = 4; i < 14; i++) {
        if (name[i] < '0' || name[i] > '9') return false;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    *no = v;
    return v != 0;
}

int log_files_list(const char *cmd, const char *dir, log_files *out) {
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "mmsb %s: cannot open %s: %s\n", cmd, dir, strerror(errno));
        return EXIT_USAGE;
    }
    int dfd = dirfd(d);
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        uint64_t no;
        struct stat st;
        if (!segment_number(ent->d_name, &no) || fstatat(dfd, ent->d_name, &st, 0) != 0) continue;
        if (out->count == 0 || no < out->first) {
            out->first = no;
            out->segment_bytes = (uint64_t)st.st_size;
        }
        if ((uint64_t)st.st_size > out->segment_bytes_max) out->segment_bytes_max = (uint64_t)st.st_size;
        if (no > out->last) out->last = no;
        out->count++;
        out->bytes += (uint64_t)st.st_size;
    }
    closedir(d);
    return 0;
}

uint64_t log_files_done(const log_files *lf, uint64_t segment, uint64_t offset) {
    if (lf->count == 0 || segment < lf->first) return 0;
    uint64_t done = offset;
    uint64_t no = lf->first;
    for (; no < segment && no <= SEG_DOUBLINGS_MAX + 1; no++) done += seg_size_grown(lf->segment_bytes_max, no);
    if (no < segment) done += (segment - no) * lf->segment_bytes_max; /* grown to full size by then */
    return done;
}

/* ---- errors in the user's terms ----------------------------------------------------- */

const char *cli_error_detail(void) {
    const char *d = mmsb_last_error();
    /* "mmsb_open: ..." names a C function the user of the tool never called */
    size_t name_len = strspn(d, "abcdefghijklmnopqrstuvwxyz_");
    if (strncmp(d, "mmsb_", 5) == 0 && strncmp(d + name_len, ": ", 2) == 0) return d + name_len + 2;
    return d;
}

void cli_report(const char *what, int rc) {
    fprintf(stderr, "mmsb: %s: %s: %s\n", what, mmsb_strerror(rc), cli_error_detail());
}

void cli_report_open(const char *cmd, const char *dir, int rc) {
    ASSERT(rc < 0);
    struct stat st;
    if (rc == MMSB_ENOTFOUND && stat(dir, &st) != 0) {
        fprintf(stderr, "mmsb %s: %s: %s\n", cmd, dir, strerror(errno));
    } else if (rc == MMSB_ENOTFOUND && !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "mmsb %s: %s: not a directory (a store is a directory)\n", cmd, dir);
    } else if (rc == MMSB_ENOTFOUND) {
        fprintf(stderr, "mmsb %s: %s: no MMSB store here (no log segment or checkpoint)\n", cmd, dir);
    } else if (rc == MMSB_EBUSY) {
        fprintf(stderr, "mmsb %s: %s: the store is in use by another process (a writer or a follower): %s\n", cmd,
                dir, cli_error_detail());
    } else {
        fprintf(stderr, "mmsb %s: %s: %s: %s\n", cmd, dir, mmsb_strerror(rc), cli_error_detail());
    }
}
