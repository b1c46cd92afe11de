/*
 * main.c - the benchmark runner: selects benchmarks by name or glob, runs
 * them, and prints for each figure the median, p99, min and max of its
 * samples, the ratio to its peer measured in the same run, and its goal;
 * optionally as JSON and as gnuplot plots. See bench/README.md.
 */
#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

enum { BENCH_DEFS_MAX = 256, PLOTS_MAX = 8 };

typedef struct result {
    const bench_def *def;
    int rc;
    bench_out out;
    double median, p99, min, max;
    double peer_ratio;   /* median / the peer's median; 0: none */
    int goal_met;        /* -1: no goal or not measured, 0 missed, 1 met */
} result;

typedef struct runner {
    const char *filter;
    const char *json_path;
    const char *plot_dir;
    const char *md_path;
    bool list;
    bench_env env;
    result *results;
    uint32_t count;
} runner;

static const char USAGE[] =
    "usage: mmsb-bench [--filter GLOB] [--quick] [--json FILE] [--markdown FILE] [--plot DIR] [--dir DIR] [--list]\n"
    "\n"
    "Runs the MMSB microbenchmarks and their peers (memcpy, raw pwrite loops,\n"
    "LMDB) on the same data, and prints median, p99, min and max of each\n"
    "figure, its ratio to the peer, and its goal.\n"
    "  --filter GLOB  only benchmarks whose name matches (e.g. 'log/*')\n"
    "  --quick        a short pass (fewer repetitions and operations)\n"
    "  --json FILE    also write the results as JSON\n"
    "  --markdown FILE  and as a Markdown table\n"
    "  --plot DIR     write the scaling plots as PNG (needs gnuplot)\n"
    "  --dir DIR      scratch directory for stores (default bench-store)\n"
    "  --list         list the benchmarks and exit\n";

/* ---- helpers the benchmarks share ----------------------------------------------------- */

int bench_sample(bench_out *out, double value) {
    if (out->count == BENCH_SAMPLES_MAX) return bench_fail(out, "too many samples");
    /* The capacity is 64, then the next power of two: grow when full. */
    bool full = out->count == 0 || (out->count >= 64 && (out->count & (out->count - 1)) == 0);
    if (full) {
        uint32_t cap = out->count == 0 ? 64 : out->count * 2;
        double *s = realloc(out->samples, cap * sizeof *s);
        if (s == NULL) return bench_fail(out, "out of memory for samples");
        out->samples = s;
    }
    out->samples[out->count++] = value;
    return 0;
}

uint64_t bench_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int bench_fail(bench_out *out, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->note, sizeof out->note, fmt, ap);
    va_end(ap);
    return -1;
}

void bench_rmtree(const char *path) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "bench: could not remove %s\n", path);
}

void bench_store_path(const bench_env *env, const char *name, char *out, uint64_t cap) {
    snprintf(out, cap, "%s/%s", env->dir, name);
    bench_rmtree(out);
}

void bench_options(mmsb_options *o, uint32_t durability) {
    MMSB_OPTIONS_INIT(o);
    o->gpu = MMSB_GPU_OFF;
    o->durability = durability;
    o->flags = MMSB_OPEN_CREATE;
}

int bench_open_store(const bench_env *env, const char *name, uint32_t durability, mmsb_engine **e, bench_out *out) {
    char dir[4096];
    bench_store_path(env, name, dir, sizeof dir);
    mmsb_options o;
    bench_options(&o, durability);
    o.arena_bytes_max = 16ull << 30;
    o.checkpoint_log_bytes = 0; /* no checkpoint inside a figure */
    int rc = mmsb_open(dir, &o, e);
    return rc == 0 ? 0 : bench_fail(out, "open: %s", mmsb_last_error());
}

const uint8_t *bench_pattern64(uint64_t i) {
    static uint8_t p[2][64]; /* the runner is single-threaded */
    if (p[0][0] == 0) {
        memset(p[0], 0xA5, sizeof p[0]);
        memset(p[1], 0x5A, sizeof p[1]);
    }
    return p[i & 1];
}

void bench_check_root(mmsb_engine *e, bench_out *out) {
    mmsb_digest d;
    char hex[33] = "?";
    if (mmsb_state_root(e, &d) == 0) mmsb_digest_hex(&d, hex, sizeof hex);
    snprintf(out->check, sizeof out->check, "root %s", hex);
}

/* ---- summarising ------------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Long series lose their first 1% as warm-up (caches, page faults of the
 * first touches); short ones (repetitions) warm up inside the benchmark. */
static void summarise(result *r) {
    if (r->out.count == 0) return;
    uint32_t skip = r->out.count >= 100 ? r->out.count / 100 : 0;
    double *s = r->out.samples + skip;
    uint32_t n = r->out.count - skip;
    qsort(s, n, sizeof(double), cmp_double);
    r->min = s[0];
    r->max = s[n - 1];
    r->median = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    uint32_t k = (uint32_t)ceil(0.99 * n); /* nearest rank */
    r->p99 = s[(k == 0 ? 1 : k) - 1];
}

static void judge(result *r) {
    r->goal_met = -1;
    if (r->rc != 0 || r->out.count == 0) return;
    double v = r->def->goal_kind >= GOAL_RATIO_AT_MOST ? r->peer_ratio : r->median;
    if (r->def->goal_kind >= GOAL_RATIO_AT_MOST && v == 0) return; /* the peer did not run */
    if (r->def->goal_kind == GOAL_AT_MOST || r->def->goal_kind == GOAL_RATIO_AT_MOST) r->goal_met = v <= r->def->goal;
    if (r->def->goal_kind == GOAL_AT_LEAST || r->def->goal_kind == GOAL_RATIO_AT_LEAST) r->goal_met = v >= r->def->goal;
}

static const result *find_result(const runner *rn, const char *name) {
    for (uint32_t i = 0; i < rn->count; i++) {
        if (strcmp(rn->results[i].def->name, name) == 0) return &rn->results[i];
    }
    return NULL;
}

static void ratios(runner *rn) {
    for (uint32_t i = 0; i < rn->count; i++) {
        result *r = &rn->results[i];
        if (r->def->peer == NULL || r->out.count == 0) continue;
        const result *p = find_result(rn, r->def->peer);
        if (p != NULL && p->out.count > 0 && p->median > 0) r->peer_ratio = r->median / p->median;
    }
    for (uint32_t i = 0; i < rn->count; i++) judge(&rn->results[i]);
}

/* ---- output ------------------------------------------------------------------------------- */

static void fmt_value(double v, char *out, size_t cap) {
    if (v == 0) snprintf(out, cap, "0");
    else if (fabs(v) >= 1e6) snprintf(out, cap, "%.3g", v);
    else if (fabs(v) >= 100) snprintf(out, cap, "%.0f", v);
    else if (fabs(v) >= 10) snprintf(out, cap, "%.1f", v);
    else snprintf(out, cap, "%.3g", v);
}

static bool goal_at_most(const bench_def *d) {
    return d->goal_kind == GOAL_AT_MOST || d->goal_kind == GOAL_RATIO_AT_MOST;
}

static void goal_text(const result *r, char *out, size_t cap) {
    char g[24];
    fmt_value(r->def->goal, g, sizeof g);
    snprintf(out, cap, "%s %s%s %s", goal_at_most(r->def) ? "<=" : ">=", g,
             r->def->goal_kind >= GOAL_RATIO_AT_MOST ? "x" : "",
             r->goal_met == 1 ? "met" : r->goal_met == 0 ? "MISSED" : "");
}

static int name_width = 44;

static void print_row(const result *r) {
    char med[24], p99[24], mn[24], mx[24], ratio[32] = "", goal[48] = "";
    fmt_value(r->median, med, sizeof med);
    fmt_value(r->p99, p99, sizeof p99);
    fmt_value(r->min, mn, sizeof mn);
    fmt_value(r->max, mx, sizeof mx);
    if (r->peer_ratio > 0) snprintf(ratio, sizeof ratio, "%.2fx", r->peer_ratio);
    if (r->def->goal_kind != GOAL_NONE) goal_text(r, goal, sizeof goal);
    if (r->rc != 0 || r->out.skipped) {
        printf("%-*s %s: %s\n", name_width, r->def->name, r->out.skipped ? "skipped" : "FAILED", r->out.note);
        return;
    }
    printf("%-*s %9s %9s %9s %9s %-5s %8s  %-16s %s\n", name_width, r->def->name, med, p99, mn, mx, r->def->unit, ratio,
           goal, r->out.note);
}

static void print_table(const runner *rn) {
    for (uint32_t i = 0; i < rn->count; i++) {
        int len = (int)strlen(rn->results[i].def->name);
        if (len > name_width) name_width = len;
    }
    printf("%-*s %9s %9s %9s %9s %-5s %8s  %-16s %s\n", name_width, "benchmark", "median", "p99", "min", "max", "unit",
           "vs peer", "goal", "note");
    for (uint32_t i = 0; i < rn->count; i++) print_row(&rn->results[i]);
    bool refs = false;
    for (uint32_t i = 0; i < rn->count; i++) {
        const result *r = &rn->results[i];
        if (r->def->reference == NULL) continue;
        if (!refs) printf("\nthe system MMSB replaces (fixed reference figures, BRIEF section 3):\n");
        refs = true;
        char med[24];
        fmt_value(r->median, med, sizeof med);
        printf("  %-*s MMSB %s %s; replaced system: %s\n", name_width, r->def->name, med, r->def->unit,
               r->def->reference);
    }
}

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        if ((unsigned char)*s >= 0x20) fputc(*s, f);
    }
    fputc('"', f);
}

static void json_result(FILE *f, const result *r) {
    fprintf(f, "{\"name\":");
    json_string(f, r->def->name);
    fprintf(f, ",\"unit\":");
    json_string(f, r->def->unit);
    fprintf(f, ",\"ok\":%s,\"skipped\":%s,\"samples\":%u", r->rc == 0 ? "true" : "false",
            r->out.skipped ? "true" : "false", r->out.count);
    if (r->out.count > 0) {
        fprintf(f, ",\"median\":%.6g,\"p99\":%.6g,\"min\":%.6g,\"max\":%.6g", r->median, r->p99, r->min, r->max);
    }
    if (r->def->peer != NULL) {
        fprintf(f, ",\"peer\":");
        json_string(f, r->def->peer);
        fprintf(f, ",\"peer_ratio\":%.4g", r->peer_ratio);
    }
    if (r->def->goal_kind != GOAL_NONE) {
        fprintf(f, ",\"goal\":\"%s %.6g%s\",\"goal_met\":%s", goal_at_most(r->def) ? "<=" : ">=", r->def->goal,
                r->def->goal_kind >= GOAL_RATIO_AT_MOST ? "x peer" : "",
                r->goal_met == 1 ? "true" : r->goal_met == 0 ? "false" : "null");
    }
    fprintf(f, ",\"check\":");
    json_string(f, r->out.check);
    fprintf(f, ",\"note\":");
    json_string(f, r->out.note);
    fprintf(f, "}");
}

static int write_json(const runner *rn) {
    FILE *f = fopen(rn->json_path, "w");
    if (f == NULL) {
        fprintf(stderr, "mmsb-bench: cannot write %s: %s\n", rn->json_path, strerror(errno));
        return -1;
    }
    struct utsname u;
    uname(&u);
    char date[32];
    time_t t = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d", gmtime(&t)); /* metadata only */
    fprintf(f, "{\"date\":\"%s\",\"machine\":\"%s %s, %ld CPUs\",\"quick\":%s,\"results\":[", date, u.machine,
            u.release, sysconf(_SC_NPROCESSORS_ONLN), rn->env.quick ? "true" : "false");
    for (uint32_t i = 0; i < rn->count; i++) {
        if (i > 0) fputc(',', f);
        json_result(f, &rn->results[i]);
    }
    fprintf(f, "]}\n");
    return fclose(f) == 0 ? 0 : -1;
}

/* A Markdown table of every figure, for bench/README.md. */
static int write_markdown(const runner *rn) {
    FILE *f = fopen(rn->md_path, "w");
    if (f == NULL) return -1;
    fprintf(f, "| benchmark | median | p99 | min | max | unit | vs peer | goal | replaced system | note |\n");
    fprintf(f, "| --- | ---: | ---: | ---: | ---: | --- | ---: | --- | --- | --- |\n");
    for (uint32_t i = 0; i < rn->count; i++) {
        const result *r = &rn->results[i];
        char med[24], p99[24], mn[24], mx[24], ratio[32] = "", goal[64] = "";
        fmt_value(r->median, med, sizeof med);
        fmt_value(r->p99, p99, sizeof p99);
        fmt_value(r->min, mn, sizeof mn);
        fmt_value(r->max, mx, sizeof mx);
        if (r->peer_ratio > 0) snprintf(ratio, sizeof ratio, "%.2fx `%s`", r->peer_ratio, r->def->peer);
        if (r->def->goal_kind != GOAL_NONE) goal_text(r, goal, sizeof goal);
        if (r->rc != 0 || r->out.skipped) {
            fprintf(f, "| `%s` | %s | | | | %s | | | | %s |\n", r->def->name, r->out.skipped ? "skipped" : "FAILED",
                    r->def->unit, r->out.note);
            continue;
        }
        fprintf(f, "| `%s` | %s | %s | %s | %s | %s | %s | %s%s%s%s | %s | %s |\n", r->def->name, med, p99, mn, mx,
                r->def->unit, ratio, goal, r->def->goal_from != NULL ? " (" : "",
                r->def->goal_from != NULL ? r->def->goal_from : "", r->def->goal_from != NULL ? ")" : "",
                r->def->reference != NULL ? r->def->reference : "", r->out.note);
    }
    return fclose(f);
}

/* ---- plots -------------------------------------------------------------------------------- */

/* Each plot: one data file with "series x median" lines, one gnuplot
 * script drawing a line per series. */
static int write_plot(const runner *rn, const char *plot) {
    char dat[4200], gp[4200], png[4200];
    snprintf(dat, sizeof dat, "%s/%s.dat", rn->plot_dir, plot);
    snprintf(gp, sizeof gp, "%s/%s.gp", rn->plot_dir, plot);
    snprintf(png, sizeof png, "%s/%s.png", rn->plot_dir, plot);
    const char *series[16];
    uint32_t ns = 0;
    const char *unit = "", *xlabel = "size (bytes)";
    for (uint32_t i = 0; i < rn->count; i++) {
        const result *r = &rn->results[i];
        if (r->def->plot == NULL || strcmp(r->def->plot, plot) != 0 || r->out.count == 0) continue;
        unit = r->def->unit;
        bool seen = false;
        for (uint32_t k = 0; k < ns; k++) seen |= strcmp(series[k], r->def->series) == 0;
        if (!seen && ns < 16) series[ns++] = r->def->series;
    }
    if (ns == 0) return 0; /* not measured in this run: an earlier plot stays */
    FILE *f = fopen(dat, "w"), *g = fopen(gp, "w");
    if (f == NULL || g == NULL) {
        if (f != NULL) fclose(f);
        if (g != NULL) fclose(g);
        return -1;
    }
    const char *xformat = "%.0b %BB"; /* sizes: 4 KB ... with binary prefixes */
    if (strcmp(plot, "durability") == 0) xlabel = "commits per fdatasync", xformat = "%g";
    if (strcmp(plot, "dag") == 0) xlabel = "derived pages in the DAG", xformat = "%g";
    bool log_y = strcmp(plot, "gpu_kernels") == 0; /* GB/s on the host, TB/s on the device */
    for (uint32_t k = 0; k < ns; k++) {
        fprintf(f, "# %s\n", series[k]);
        for (uint32_t i = 0; i < rn->count; i++) {
            const result *r = &rn->results[i];
            if (r->def->plot == NULL || strcmp(r->def->plot, plot) != 0 || r->out.count == 0) continue;
            if (strcmp(r->def->series, series[k]) == 0) fprintf(f, "%.0f %.6g\n", r->def->x, r->median);
        }
        fprintf(f, "\n\n");
    }
    fprintf(g, "set terminal pngcairo size 900,560 noenhanced\nset output '%s'\nset logscale x 2\n"
               "set format x '%s'\nset xlabel '%s'\nset ylabel '%s'\nset key left top\nset grid\n"
               "set title 'MMSB: %s'\n%splot ",
            png, xformat, xlabel, unit, plot, log_y ? "set logscale y 10\n" : "");
    for (uint32_t k = 0; k < ns; k++) {
        fprintf(g, "%s'%s' index %u using 1:2 with linespoints title '%s'", k ? ", " : "", dat, k, series[k]);
    }
    fprintf(g, "\n");
    fclose(f);
    fclose(g);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "gnuplot '%s'", gp);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_plots(const runner *rn) {
    static const char *const plots[] = {"kernels", "durability", "dag", "gpu", "gpu_kernels"};
    if (mkdir(rn->plot_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "mmsb-bench: cannot create %s: %s\n", rn->plot_dir, strerror(errno));
        return;
    }
    if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
        fprintf(stderr, "mmsb-bench: gnuplot not found (apt-get install gnuplot-nox): plot data and scripts only\n");
    }
    for (uint32_t i = 0; i < sizeof plots / sizeof plots[0]; i++) {
        if (write_plot(rn, plots[i]) != 0) fprintf(stderr, "mmsb-bench: plot %s failed\n", plots[i]);
    }
}

/* ---- running ------------------------------------------------------------------------------- */

static uint32_t collect(const bench_def **defs) {
    const bench_def *(*groups[])(uint32_t *) = {bench_group_core, bench_group_log, bench_group_prop,
                                               bench_group_store, bench_group_gpu, bench_group_gpu_kernels,
                                               bench_group_repl};
    uint32_t n = 0;
    for (uint32_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
        uint32_t count;
        const bench_def *table = groups[g](&count);
        for (uint32_t i = 0; i < count && n < BENCH_DEFS_MAX; i++) defs[n++] = &table[i];
    }
    return n;
}

static bool matches(const runner *rn, const bench_def *d) {
    return rn->filter == NULL || fnmatch(rn->filter, d->name, 0) == 0;
}

/* Selected by the filter, or the peer of one that is: a ratio always has
 * both sides measured in the same run. */
static bool wanted(const runner *rn, const bench_def *const *defs, uint32_t n, const bench_def *d) {
    if (matches(rn, d)) return true;
    for (uint32_t i = 0; i < n; i++) {
        if (defs[i]->peer != NULL && strcmp(defs[i]->peer, d->name) == 0 && matches(rn, defs[i])) return true;
    }
    return false;
}

static void run_all(runner *rn, const bench_def **defs, uint32_t n) {
    uint32_t todo = 0;
    for (uint32_t i = 0; i < n; i++) todo += wanted(rn, defs, n, defs[i]);
    rn->results = calloc(todo > 0 ? todo : 1, sizeof *rn->results);
    bool tty = isatty(STDERR_FILENO);
    for (uint32_t i = 0; i < n && rn->results != NULL; i++) {
        if (!wanted(rn, defs, n, defs[i])) continue;
        result *r = &rn->results[rn->count++];
        r->def = defs[i];
        if (tty) fprintf(stderr, "\r\033[K[%u/%u] %s", rn->count, todo, defs[i]->name);
        /* The rows before left dirty pages: written back now, so that their
         * writeback does not run on the other core during this row. */
        sync();
        r->rc = defs[i]->fn(&rn->env, defs[i]->arg, &r->out);
        if (r->rc == 0 && !r->out.skipped && r->out.count == 0) r->rc = bench_fail(&r->out, "no samples");
        if (r->rc == 0) summarise(r);
    }
    if (tty) fprintf(stderr, "\r\033[K");
    ratios(rn);
}

static int parse(runner *rn, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **target = strcmp(a, "--filter") == 0 ? &rn->filter
                              : strcmp(a, "--json") == 0 ? &rn->json_path
                              : strcmp(a, "--plot") == 0 ? &rn->plot_dir
                              : strcmp(a, "--dir") == 0  ? &rn->env.dir
                              : strcmp(a, "--markdown") == 0 ? &rn->md_path
                                                         : NULL;
        if (target != NULL && i + 1 < argc) {
            *target = argv[++i];
        } else if (strcmp(a, "--quick") == 0) {
            rn->env.quick = true;
        } else if (strcmp(a, "--list") == 0) {
            rn->list = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(USAGE, stdout);
            exit(0);
        } else {
            fprintf(stderr, "mmsb-bench: bad argument '%s'\n\n%s", a, USAGE);
            return 2;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    runner rn = {.env = {.dir = "bench-store", .reps = 15}};
    if (parse(&rn, argc, argv) != 0) return 2;
    if (rn.env.quick) rn.env.reps = 5;
    static const bench_def *defs[BENCH_DEFS_MAX];
    uint32_t n = collect(defs);
    if (rn.list) {
        for (uint32_t i = 0; i < n; i++) {
            if (wanted(&rn, defs, n, defs[i])) printf("%s\n", defs[i]->name);
        }
        return 0;
    }
    if (mkdir(rn.env.dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "mmsb-bench: cannot create %s: %s\n", rn.env.dir, strerror(errno));
        return 2;
    }
    printf("MMSB %s benchmarks%s, scratch directory %s\n", MMSB_VERSION_STRING, rn.env.quick ? " (--quick)" : "",
           rn.env.dir);
    run_all(&rn, defs, n);
    print_table(&rn);
    int status = 0;
    for (uint32_t i = 0; i < rn.count; i++) status |= rn.results[i].rc != 0;
    if (rn.json_path != NULL && write_json(&rn) != 0) status = 1;
    if (rn.plot_dir != NULL) write_plots(&rn);
    if (rn.md_path != NULL && write_markdown(&rn) != 0) status = 1;
    for (uint32_t i = 0; i < rn.count; i++) free(rn.results[i].out.samples);
    free(rn.results);
    return status;
}
