/*
 * transfer.c - `mmsb export` and `mmsb import`: a store's committed state
 * as a portable stream, and a new store made from one (mmsb_export,
 * mmsb_import; tlog/EXPORT.md), in the manner of mdb_dump and mdb_load.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tool.h"

const char usage_export[] =
    "usage: mmsb export DIR [--output FILE] [--json]\n"
    "\n"
    "Writes the committed state of the store in DIR (as a read-only open sees it:\n"
    "the checkpoint plus the committed log) as an export stream: every live page\n"
    "with its id, size, epoch and bytes, every derivation, the next page id and the\n"
    "state root, in a portable, checksummed format (tlog/EXPORT.md). `mmsb import`\n"
    "loads it into a new store on this machine or another, with the same state root.\n"
    "  --output FILE    write the stream to FILE (made anew; it must not exist),\n"
    "                   not to standard output (refused when that is a terminal)\n"
    "The summary (pages, bytes, state root) goes to standard output with --output,\n"
    "else to standard error.\n"
    "Exit status: 0 written, 1 the store is corrupt, 2 usage or I/O error.\n";

const char usage_import[] =
    "usage: mmsb import DIR [--input FILE] [--pages-max N] [--json]\n"
    "\n"
    "Makes a new store in DIR (it must not exist, or be an empty directory) from an\n"
    "export stream read from FILE or standard input. Every frame is checked as it is\n"
    "read, and the loaded state must have the stream's state root; the store is\n"
    "built in DIR.importing and renamed to DIR only when whole, so a failure leaves\n"
    "nothing at DIR. The new store's log continues the source's record numbers and\n"
    "chain; its first checkpoint holds the state, as in a store whose early log was\n"
    "removed by retention, so verify, replay and audit start there.\n"
    "  --input FILE     read the stream from FILE, not from standard input\n"
    "  --pages-max N    the page id limit while importing (default: the library's)\n"
    "Exit status: 0 imported, 1 the stream is damaged (nothing made), 2 usage or\n"
    "I/O error.\n";

static void summary(const char *cmd, const char *dir, const mmsb_transfer_info *t, bool json, FILE *out) {
    char root[33];
    mmsb_digest_hex(&t->state_root, root, sizeof root);
    if (!json) {
        fprintf(out, "%s %s: %llu pages (%llu derived, %llu bytes), next page id %llu, state after record %llu, "
                "%llu stream bytes\nstate root %s\n", cmd, dir, (unsigned long long)t->pages,
                (unsigned long long)t->derived, (unsigned long long)t->page_bytes,
                (unsigned long long)t->page_id_next, (unsigned long long)t->commit_seq,
                (unsigned long long)t->stream_bytes, root);
        return;
    }
    json_out j;
    json_begin(&j, out);
    json_str(&j, "command", cmd);
    json_str(&j, "dir", dir);
    json_u64(&j, "pages", t->pages);
    json_u64(&j, "derived", t->derived);
    json_u64(&j, "page_bytes", t->page_bytes);
    json_u64(&j, "page_id_next", t->page_id_next);
    json_u64(&j, "commit_seq", t->commit_seq);
    json_u64(&j, "stream_bytes", t->stream_bytes);
    json_str(&j, "state_root", root);
    json_end(&j);
}

static int export_to(mmsb_engine *e, const char *dir, const char *output, bool json) {
    int fd = STDOUT_FILENO;
    if (output != NULL) {
        fd = open(output, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0) {
            fprintf(stderr, "mmsb export: %s: %s\n", output, strerror(errno));
            return EXIT_USAGE;
        }
    } else if (isatty(STDOUT_FILENO)) {
        fprintf(stderr, "mmsb export: the stream is binary: redirect standard output, or give --output FILE\n");
        return EXIT_USAGE;
    }
    mmsb_transfer_info t = {.struct_size = sizeof t};
    int rc = mmsb_export(e, fd, &t);
    if (rc == 0 && output != NULL && fsync(fd) != 0) {
        fprintf(stderr, "mmsb export: %s: fsync: %s\n", output, strerror(errno));
        rc = MMSB_EIO;
    } else if (rc != 0) {
        fprintf(stderr, "mmsb export: %s: %s: %s\n", dir, mmsb_strerror(rc), cli_error_detail());
    }
    if (output != NULL) close(fd);
    if (rc != 0 && output != NULL) unlink(output); /* no stream that an import would refuse anyway */
    if (rc == 0) summary("export", dir, &t, json, output != NULL ? stdout : stderr);
    return rc == 0 ? EXIT_CLEAN : EXIT_USAGE;
}

int cmd_export(int argc, char **argv) {
    const char *output = NULL;
    const cli_opt opts[] = {{"--output", OPT_TEXT, &output, NULL}};
    cli_args a;
    int rc = cli_parse("export", usage_export, argc, argv, opts, ARRAY_LEN(opts), 1, &a);
    if (rc != 0) return rc == CLI_HELP ? EXIT_CLEAN : rc;
    mmsb_engine *e;
    rc = tool_open_readonly("export", a.pos[0], &e);
    if (rc != 0) return rc;
    int status = export_to(e, a.pos[0], output, a.json);
    mmsb_close(e);
    return status;
}

int cmd_import(int argc, char **argv) {
    const char *input = NULL;
    uint64_t pages_max = 0;
    bool pages_max_seen = false;
    const cli_opt opts[] = {{"--input", OPT_TEXT, &input, NULL}, {"--pages-max", OPT_U64, &pages_max, &pages_max_seen}};
    cli_args a;
    int rc = cli_parse("import", usage_import, argc, argv, opts, ARRAY_LEN(opts), 1, &a);
    if (rc != 0) return rc == CLI_HELP ? EXIT_CLEAN : rc;
    int fd = input != NULL ? open(input, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
    if (fd < 0) {
        fprintf(stderr, "mmsb import: %s: %s\n", input, strerror(errno));
        return EXIT_USAGE;
    }
    mmsb_options o;
    tool_options(&o);
    o.flags = MMSB_OPEN_CREATE;
    if (pages_max_seen) o.pages_max = pages_max;
    mmsb_transfer_info t = {.struct_size = sizeof t};
    rc = mmsb_import(a.pos[0], &o, fd, &t);
    if (input != NULL) close(fd);
    if (rc != 0) {
        fprintf(stderr, "mmsb import: %s: %s: %s\n", a.pos[0], mmsb_strerror(rc), cli_error_detail());
        return rc == MMSB_ECORRUPT || rc == MMSB_EVERSION ? EXIT_PROBLEM : EXIT_USAGE;
    }
    summary("import", a.pos[0], &t, a.json, stdout);
    return EXIT_CLEAN;
}
