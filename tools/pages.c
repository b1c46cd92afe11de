/*
 * pages.c - `mmsb pages`: the live pages of a store, one per line, as a
 * read-only open sees them (the checkpoint plus the committed log), through
 * the public API alone.
 */
#include <stdlib.h>
#include <string.h>

#include "tool.h"

const char usage_pages[] =
    "usage: mmsb pages DIR [--from ID] [--to ID] [--json | --jsonl]\n"
    "\n"
    "Lists the store's live pages in id order, as a read-only open sees them (the\n"
    "checkpoint plus the committed log): id, size in bytes, epoch, where the page\n"
    "lives (host or device), its digest, and for a derived page its operation and\n"
    "the pages it is derived from (the text lists the first 8; JSON lists all).\n"
    "  --from/--to ID   only pages with ids in that range\n"
    "  --jsonl          one JSON object per page and line, for stores of any size\n"
    "Exit status: 0 clean, 1 the store is corrupt, 2 usage or I/O error.\n";

enum { PARENTS_SHOWN_MAX = 8 };

typedef struct page_row {
    mmsb_pageinfo info;
    mmsb_deriveinfo derive;
    char digest[33];
    uint64_t *parents; /* derive.parent_count of them */
} page_row;

/* The row of page id: 1 when there is no such page, 0, or a library error. */
static int row_read(mmsb_engine *e, uint64_t id, page_row *row) {
    row->info = (mmsb_pageinfo){.struct_size = sizeof row->info};
    int rc = mmsb_page_info(e, id, &row->info);
    if (rc == MMSB_ENOTFOUND) return 1;
    mmsb_digest d;
    if (rc == 0) rc = mmsb_page_digest(e, id, &d);
    if (rc == 0) rc = mmsb_digest_hex(&d, row->digest, sizeof row->digest);
    row->derive = (mmsb_deriveinfo){.struct_size = sizeof row->derive};
    if (rc == 0) rc = mmsb_derive_info(e, id, &row->derive, row->parents, MMSB_DERIVE_PARENTS_MAX);
    return rc;
}

static const char *location_name(uint32_t location) {
    return location == MMSB_LOC_DEVICE ? "device" : location == MMSB_LOC_HOST ? "host" : "unknown";
}

static void row_json(json_out *j, const page_row *row) {
    json_u64(j, "id", row->info.page_id);
    json_u64(j, "size", row->info.size_bytes);
    json_u64(j, "epoch", row->info.epoch);
    json_str(j, "location", location_name(row->info.location));
    json_str(j, "digest", row->digest);
    if (row->derive.op == 0) return;
    json_u64(j, "op", row->derive.op);
    json_u64(j, "op_version", row->derive.op_version);
    json_arr(j, "parents");
    for (uint32_t i = 0; i < row->derive.parent_count; i++) json_u64(j, NULL, row->parents[i]);
    json_close_arr(j);
}

static void row_text(const page_row *row) {
    printf("%10llu %12llu %10llu %-6s %s", (unsigned long long)row->info.page_id,
           (unsigned long long)row->info.size_bytes, (unsigned long long)row->info.epoch,
           location_name(row->info.location), row->digest);
    if (row->derive.op != 0) {
        printf("  op %u v%u from", row->derive.op, row->derive.op_version);
        uint32_t shown = row->derive.parent_count < PARENTS_SHOWN_MAX ? row->derive.parent_count : PARENTS_SHOWN_MAX;
        for (uint32_t i = 0; i < shown; i++) printf("%s%llu", i == 0 ? " " : ",", (unsigned long long)row->parents[i]);
        if (shown < row->derive.parent_count) printf(",... (%u parents)", row->derive.parent_count);
    }
    printf("\n");
}

typedef struct pages_args {
    uint64_t from, to;
    bool jsonl;
} pages_args;

/* Every page from..to of e, in id order: to j's "pages" array, as JSON
 * lines (jsonl), or as text (j NULL). */
static int pages_list(mmsb_engine *e, const pages_args *pa, json_out *j, uint64_t *listed) {
    mmsb_engineinfo info = {.struct_size = sizeof info};
    int rc = mmsb_engine_info(e, &info);
    page_row row = {.parents = malloc(sizeof(uint64_t) * MMSB_DERIVE_PARENTS_MAX)};
    if (rc == 0 && row.parents == NULL) rc = MMSB_ENOMEM;
    uint64_t last = info.page_id_next - 1 < pa->to ? info.page_id_next - 1 : pa->to;
    for (uint64_t id = pa->from < 1 ? 1 : pa->from; rc == 0 && id <= last; id++) {
        int got = row_read(e, id, &row);
        if (got == 1) continue;
        rc = got;
        if (rc != 0) break;
        (*listed)++;
        if (pa->jsonl) {
            json_begin(j, stdout);
            row_json(j, &row);
            json_end(j);
        } else if (j != NULL) {
            json_obj(j, NULL);
            row_json(j, &row);
            json_close_obj(j);
        } else {
            row_text(&row);
        }
    }
    free(row.parents);
    return rc;
}

int cmd_pages(int argc, char **argv) {
    pages_args pa = {.to = UINT64_MAX};
    const cli_opt opts[] = {
        {"--from", OPT_U64, &pa.from, NULL},
        {"--to", OPT_U64, &pa.to, NULL},
        {"--jsonl", OPT_FLAG, &pa.jsonl, NULL},
    };
    cli_args a;
    int rc = cli_parse("pages", usage_pages, argc, argv, opts, ARRAY_LEN(opts), 1, &a);
    if (rc != 0) return rc == CLI_HELP ? EXIT_CLEAN : rc;
    mmsb_engine *e;
    rc = tool_open_readonly("pages", a.pos[0], &e);
    if (rc != 0) return rc;
    json_out j;
    if (a.json) {
        json_begin(&j, stdout);
        json_str(&j, "command", "pages");
        json_str(&j, "dir", a.pos[0]);
        json_arr(&j, "pages");
    } else if (!pa.jsonl) {
        printf("%10s %12s %10s %-6s %-32s  derived\n", "id", "size", "epoch", "where", "digest");
    }
    uint64_t listed = 0;
    rc = pages_list(e, &pa, a.json || pa.jsonl ? &j : NULL, &listed);
    if (a.json) {
        json_close_arr(&j);
        json_u64(&j, "listed", listed);
        json_bool(&j, "clean", rc == 0);
        if (rc != 0) json_str(&j, "problem", cli_error_detail());
        json_end(&j);
    }
    if (rc != 0) fprintf(stderr, "mmsb pages: %s: %s: %s\n", a.pos[0], mmsb_strerror(rc), cli_error_detail());
    mmsb_close(e);
    return rc == 0 ? EXIT_CLEAN : EXIT_USAGE;
}
