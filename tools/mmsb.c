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

static void usage(FILE *out) {
    fprintf(out,
            "usage: mmsb <command> [options]\n"
            "\n"
            "commands:\n"
            "  demo DIR [--seed N] [--ops N]   run the demo workload in DIR, twice, and\n"
            "                                  show that both runs reach the same state root\n"
            "  verify DIR                      check CRCs, chain, sequence, checkpoint vs log\n"
            "  replay DIR [--to SEQ] [--from genesis|checkpoint] [--verify]\n"
            "                                  rebuild the state; --verify re-runs derivations\n"
            "  dump DIR [--from SEQ] [--to SEQ] [--page ID] [--type T]\n"
            "                                  print the log's records\n"
            "  stats DIR                       records and bytes by type, pages, chain status\n"
            "  history DIR --page ID           every change of one page\n"
            "  page DIR --page ID [--at SEQ] [--raw]\n"
            "                                  a page's bytes at a point of the log\n"
            "  diff DIR_A DIR_B                where two stores diverge\n"
            "  checkpoint DIR [--keep-log]     write a checkpoint of a closed store\n"
            "  ship DIR --server URL --stream NAME [--create] [--replicas N] [--once]\n"
            "                                  publish the committed log to a JetStream stream\n"
            "  follow DIR --server URL --stream NAME [--once]\n"
            "                                  build and keep a replica store from the stream\n"
            "  promote DIR [--server URL] [--force]\n"
            "                                  make a replica a store a writer opens\n"
            "  version                         print the library and ABI versions\n"
            "\n"
            "Every command takes --help, and --json for machine-readable output. The\n"
            "reading commands change nothing and run beside a writer.\n"
            "\n"
            "Run 'mmsb <command> --help' for a command's options.\n"
            "Exit status: 0 clean, 1 a problem was found, 2 usage or I/O error.\n");
}

void cli_report(const char *what, int rc) {
    fprintf(stderr, "mmsb: %s: %s: %s\n", what, mmsb_strerror(rc), mmsb_last_error());
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

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return EXIT_CLEAN;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) return cmd_version();
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        {"demo", cmd_demo}, {"verify", cmd_verify}, {"replay", cmd_replay}, {"dump", cmd_dump},
        {"stats", cmd_stats}, {"history", cmd_history}, {"page", cmd_page}, {"diff", cmd_diff},
        {"checkpoint", cmd_checkpoint}, {"ship", cmd_ship}, {"follow", cmd_follow}, {"promote", cmd_promote},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        if (strcmp(cmd, cmds[i].name) == 0) return cmds[i].fn(argc - 2, argv + 2);
    }
    fprintf(stderr, "mmsb: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}
