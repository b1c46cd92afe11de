/*
 * out.c - what the audit subcommands share: argument parsing, a JSON writer,
 * the progress bar, and the list of a store's log segment files.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../engine/base/base.h"
#include "cli.h"

/* ---- arguments ------------------------------------------------------------------------- */

static int usage_error(const char *cmd, const char *usage, const char *what, const char *arg) {
    fprintf(stderr, "mmsb %s: %s%s%s\n\n%s", cmd, what, arg != NULL ? ": " : "", arg != NULL ? arg : "", usage);
    return EXIT_USAGE;
}

static int take_value(const char *cmd, const char *usage, const cli_opt *o, const char *value) {
    if (value == NULL) return usage_error(cmd, usage, "option needs a value", o->name);
    if (o->kind == OPT_U64 && cli_parse_u64(value, o->out) != 0) {
        return usage_error(cmd, usage, "not a decimal number", value);
    }
    if (o->kind == OPT_TEXT) *(const char **)o->out = value;
    return 0;
}

int cli_parse(const char *cmd, const char *usage, int argc, char **argv, const cli_opt *opts,
              uint32_t opt_count, uint32_t pos_want, cli_args *out) {
    ASSERT(pos_want <= CLI_POSITIONAL_MAX && argc >= 0);
    memset(out, 0, sizeof *out);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return CLI_HELP;
        }
        if (strcmp(a, "--json") == 0) {
            out->json = true;
            continue;
        }
        if (a[0] != '-' || a[1] == '\0') {
            if (out->pos_count == pos_want) return usage_error(cmd, usage, "unexpected argument", a);
            out->pos[out->pos_count++] = a;
            continue;
        }
        const cli_opt *o = NULL;
        for (uint32_t k = 0; k < opt_count && o == NULL; k++) {
            if (strcmp(a, opts[k].name) == 0) o = &opts[k];
        }
        if (o == NULL) return usage_error(cmd, usage, "unknown option", a);
        if (o->seen != NULL) *o->seen = true;
        if (o->kind == OPT_FLAG) {
            *(bool *)o->out = true;
            continue;
        }
        int rc = take_value(cmd, usage, o, i + 1 < argc ? argv[i + 1] : NULL);
        if (rc != 0) return rc;
        i++;
    }
    if (out->pos_count != pos_want) {
        return usage_error(cmd, usage, pos_want == 1 ? "needs the store directory" : "needs two store directories",
                           NULL);
    }
    return 0;
}

/* ---- JSON ---------------------------------------------------------------------------------- */

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            fputc('\\', f);
            fputc(*p, f);
        } else if (*p < 0x20) {
            fprintf(f, "\\u%04x", *p);
        } else {
            fputc(*p, f);
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
    fprintf(j->f, "%.6g", v);
}

void json_bool(json_out *j, const char *key, bool v) {
    json_key(j, key);
    fputs(v ? "true" : "false", j->f);
}

void json_str(json_out *j, const char *key, const char *v) {
    json_key(j, key);
    json_string(j->f, v);
}

void json_hex(json_out *j, const char *key, const uint8_t *bytes, uint64_t len) {
    json_key(j, key);
    fputc('"', j->f);
    for (uint64_t i = 0; i < len; i++) fprintf(j->f, "%02x", bytes[i]);
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
        if (no > out->last) out->last = no;
        out->count++;
        out->bytes += (uint64_t)st.st_size;
    }
    closedir(d);
    return 0;
}

uint64_t log_files_done(const log_files *lf, uint64_t segment, uint64_t offset) {
    if (lf->count == 0 || segment < lf->first) return 0;
    return (segment - lf->first) * lf->segment_bytes + offset;
}
