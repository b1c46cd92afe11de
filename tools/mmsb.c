/*
 * mmsb.c - the mmsb command-line tool: dispatches to its subcommands.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "repl.h"

typedef struct command {
    const char *name;
    int (*fn)(int, char **);
    const char *usage; /* its whole --help text; the first lines are its synopsis */
    const char *summary;
} command;

static const command COMMANDS[] = {
    {"demo", cmd_demo, usage_demo, "run the demo workload twice and show both runs reach one state root"},
    {"verify", cmd_verify, usage_verify, "check CRCs, chain, sequence, checkpoint against the log"},
    {"replay", cmd_replay, usage_replay, "rebuild the state; --verify re-runs derivations"},
    {"dump", cmd_dump, usage_dump, "print the log's records"},
    {"stats", cmd_stats, usage_stats, "records and bytes by type, pages, chain status"},
    {"pages", cmd_pages, usage_pages, "every live page: size, epoch, location, digest, parents"},
    {"history", cmd_history, usage_history, "every change of one page"},
    {"page", cmd_page, usage_page, "a page's bytes at a point of the log"},
    {"diff", cmd_diff, usage_diff, "where two stores diverge"},
    {"checkpoint", cmd_checkpoint, usage_checkpoint, "write a checkpoint of a closed store"},
    {"salvage", cmd_salvage, usage_salvage, "copy a damaged store, cut at its last good commit"},
    {"export", cmd_export, usage_export, "write the committed state as a portable stream"},
    {"import", cmd_import, usage_import, "make a new store from an export stream"},
    {"ship", cmd_ship, usage_ship, "publish the committed log to a JetStream stream"},
    {"follow", cmd_follow, usage_follow, "build and keep a replica store from the stream"},
    {"promote", cmd_promote, usage_promote, "make a replica a store a writer opens"},
};

enum { COMMAND_COUNT = sizeof COMMANDS / sizeof COMMANDS[0], SYNOPSIS_LINES_MAX = 4 };

static const command *command_find(const char *name) {
    for (size_t i = 0; i < COMMAND_COUNT; i++) {
        if (strcmp(name, COMMANDS[i].name) == 0) return &COMMANDS[i];
    }
    return NULL;
}

/* A command's synopsis: the lines of its usage before the first blank one,
 * without "usage: mmsb" (so the list and --help cannot disagree). */
static void print_synopsis(FILE *out, const char *usage) {
    const char *line = usage;
    for (int n = 0; n < SYNOPSIS_LINES_MAX && *line != '\n' && *line != '\0'; n++) {
        const char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        const char *text = memchr(line, 'm', len); /* "usage: mmsb X" or "       mmsb X" */
        size_t skip = text != NULL && len - (size_t)(text - line) > 5 ? (size_t)(text - line) + 5 : 0;
        fprintf(out, "  %.*s\n", (int)(len - skip), line + skip);
        if (end == NULL) break;
        line = end + 1;
    }
}

static void usage(FILE *out) {
    fprintf(out, "usage: mmsb <command> [options]\n"
                 "       mmsb help <command>\n\n"
                 "commands:\n");
    for (size_t i = 0; i < COMMAND_COUNT; i++) {
        print_synopsis(out, COMMANDS[i].usage);
        fprintf(out, "      %s\n", COMMANDS[i].summary);
    }
    fprintf(out, "  version\n"
                 "      print the library and ABI versions\n"
                 "\n"
                 "Every command takes --help (-h), and all but demo take --json for\n"
                 "machine-readable output. Options take their value as '--to 9' or\n"
                 "'--to=9', and '--' ends the options. The reading commands change\n"
                 "nothing and run beside a writer.\n"
                 "Exit status: 0 clean, 1 a problem was found, 2 usage or I/O error.\n");
}

int cli_parse_u64(const char *text, uint64_t *out) {
    if (text == NULL || text[0] < '0' || text[0] > '9') return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0') return -1;
    *out = v;
    return 0;
}

uint64_t cli_rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t cli_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmd_version(void) {
    int major, minor, patch;
    const char *text = mmsb_version(&major, &minor, &patch);
    printf("mmsb %s (library %d.%d.%d, ABI %d)\n", MMSB_VERSION_STRING, major, minor, patch,
           mmsb_abi_version());
    return EXIT_CLEAN + (strcmp(text, MMSB_VERSION_STRING) != 0);
}

static int cmd_help(int argc, char **argv) {
    if (argc < 1) {
        usage(stdout);
        return EXIT_CLEAN;
    }
    const command *c = command_find(argv[0]);
    if (c == NULL) {
        fprintf(stderr, "mmsb help: unknown command '%s'\n\n", argv[0]);
        usage(stderr);
        return EXIT_USAGE;
    }
    fputs(c->usage, stdout);
    return EXIT_CLEAN;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        return cmd_help(argc - 2, argv + 2);
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) return cmd_version();
    const command *c = command_find(cmd);
    if (c != NULL) return c->fn(argc - 1, argv + 1); /* argv[0]: the command's name, as getopt wants */
    fprintf(stderr, "mmsb: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}
