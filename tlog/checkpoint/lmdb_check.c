/*
 * lmdb_check.c - a bounded check of the structure of the checkpoint's LMDB
 * file, before LMDB reads a tree from it.
 *
 * LMDB 0.9 keeps no checksums and trusts its pages: a file whose pages
 * disagree (old pages restored over new ones, as a drive that loses or
 * reorders flushes leaves them; a flipped bit) can make it loop for ever or
 * abort the whole process on an internal assertion. So before a
 * transaction reads a tree, the tree that transaction will see is walked
 * here, once, with every bound checked: the meta page LMDB picks (the higher
 * transaction id), then each B-tree reachable from it (the free-page tree,
 * the main tree, the named databases in it) with an explicit stack, each
 * page reached at most once, every node inside its page, keys sorted, every
 * leaf at the tree's recorded depth, and the page and entry counts the tree
 * records; overflow ranges inside the file and disjoint from everything
 * else; free pages not also in use. A tree that passes cannot make LMDB
 * loop or leave its pages. What the values say is checked after (CRCs,
 * state root), as for the log.
 *
 * The layout facts (LMDB 0.9 on a 64-bit little-endian machine, data
 * version 1) are those of LMDB's mdb.c: a page is a 16-byte header (page
 * number u64, pad u16, flags u16, lower u16 and upper u16, or the overflow
 * page count u32) and an array of u16 node offsets; a node is lo u16, hi
 * u16, flags u16, key size u16, key, data. The meta page holds magic,
 * version, address, map size, two database records (free, main), the last
 * page number and the transaction id.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lmdb_store.h"

_Static_assert(sizeof(size_t) == 8 && sizeof(void *) == 8, "the layout below is LMDB's on 64-bit machines");

enum {
    LM_MAGIC = 0xBEEFC0DE,
    LM_DATA_VERSION = 1,
    LM_PAGE_HEADER = 16,
    LM_NODE_HEADER = 8,
    LM_DB_BYTES = 48,
    LM_META_MAPSIZE = 16 + 16,
    LM_META_DBS = 16 + 24,   /* offset of the database records in a meta page */
    LM_META_LAST_PG = 16 + 120,
    LM_META_TXNID = 16 + 128,
    LM_PAGE_BYTES_MIN = 512,
    LM_PAGE_BYTES_MAX = 65536,
    LM_KEY_BYTES_MAX = 511,
    LM_DEPTH_MAX = 32,       /* LMDB's cursor stack */
    LM_SUBDBS_MAX = 8,
    /* page flags */
    LM_P_BRANCH = 0x01,
    LM_P_LEAF = 0x02,
    LM_P_OVERFLOW = 0x04,
    LM_P_META = 0x08,
    LM_P_DIRTY = 0x10,
    /* node flags */
    LM_F_BIGDATA = 0x01,
    LM_F_SUBDATA = 0x02,
};
#define LM_PGNO_NONE UINT64_MAX

/* One B-tree's record, as LMDB keeps it in a meta page or a main-tree leaf. */
typedef struct lm_db {
    uint32_t pad;
    uint16_t flags, depth;
    uint64_t branch_pages, leaf_pages, overflow_pages, entries, root;
} lm_db;

typedef enum { TREE_FREE, TREE_MAIN, TREE_NAMED } tree_kind;

typedef struct lm_walk {
    const uint8_t *map;
    uint64_t file_pages;   /* pages present in the file */
    uint64_t last_pg;      /* the meta's last used page */
    uint32_t psize;
    bool overflow_headers; /* also check each overflow page's header */
    uint64_t *seen;        /* a bit per file page: reached once already */
    lm_db subdbs[LM_SUBDBS_MAX];
    uint32_t subdb_count;
    uint64_t *free_pages;  /* page numbers the free-page tree lists */
    uint64_t free_count, free_cap;
    /* what a tree walk counted */
    uint64_t branch, leaf, overflow, entries;
} lm_walk;

/* One page to visit; the stack holds at most a page's worth of children per
 * level, and the depth is bounded by LM_DEPTH_MAX. */
typedef struct lm_frame {
    uint64_t pgno;
    uint32_t depth;
} lm_frame;

static int bad(const char *what, uint64_t pgno) {
    ASSERT(what[0] != '\0');
    ASSERT(what != NULL);
    return err_set(MMSB_ECORRUPT, "checkpoint: the LMDB file is damaged: %s (page %llu)", what,
                   (unsigned long long)pgno);
}

static uint16_t u16_at(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t u32_at(const uint8_t *p) { return (uint32_t)u16_at(p) | (uint32_t)u16_at(p + 2) << 16; }
static uint64_t u64_at(const uint8_t *p) { return (uint64_t)u32_at(p) | (uint64_t)u32_at(p + 4) << 32; }

static lm_db db_decode(const uint8_t *p) {
    ASSERT(p != NULL);
    return (lm_db){.pad = u32_at(p), .flags = u16_at(p + 4), .depth = u16_at(p + 6),
                   .branch_pages = u64_at(p + 8), .leaf_pages = u64_at(p + 16),
                   .overflow_pages = u64_at(p + 24), .entries = u64_at(p + 32), .root = u64_at(p + 40)};
}

static const uint8_t *page_at(const lm_walk *w, uint64_t pgno) { return w->map + pgno * w->psize; }

/* Marks pages [pgno, pgno + count) reached: each page belongs to one place. */
static int reach(lm_walk *w, uint64_t pgno, uint64_t count) {
    ASSERT(w->seen != NULL && w->psize >= LM_PAGE_BYTES_MIN);
    if (pgno < 2 || count == 0 || pgno > w->last_pg || count > w->last_pg - pgno + 1 ||
        pgno + count > w->file_pages) {
        return bad("a page number outside the file", pgno);
    }
    for (uint64_t p = pgno; p < pgno + count; p++) {
        uint64_t bit = 1ull << (p % 64);
        if (w->seen[p / 64] & bit) return bad("a page reached twice (a cycle, or two owners)", p);
        w->seen[p / 64] |= bit;
    }
    return 0;
}

static int keys_compare(const uint8_t *a, uint16_t alen, const uint8_t *b, uint16_t blen, tree_kind kind) {
    ASSERT(a != NULL && b != NULL);
    ASSERT(alen <= LM_KEY_BYTES_MAX && blen <= LM_KEY_BYTES_MAX);
    if (kind == TREE_FREE) { /* integer keys (transaction ids), native order */
        if (alen != 8 || blen != 8) return 0; /* rejected by the caller */
        uint64_t x = u64_at(a), y = u64_at(b);
        return (x > y) - (x < y);
    }
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c != 0 ? c : (alen > blen) - (alen < blen);
}

static int free_list_add(lm_walk *w, uint64_t pgno) {
    ASSERT(w->free_count <= w->free_cap);
    ASSERT(pgno >= 2 && pgno <= w->last_pg); /* free_value checked it */
    if (w->free_count == w->free_cap) {
        uint64_t cap = w->free_cap == 0 ? 256 : 2 * w->free_cap;
        uint64_t *grown = realloc(w->free_pages, cap * sizeof *grown);
        if (grown == NULL) return err_set(MMSB_ENOMEM, "checkpoint: checking the free-page list");
        w->free_pages = grown;
        w->free_cap = cap;
    }
    w->free_pages[w->free_count++] = pgno;
    return 0;
}

/* A free-page tree value: a count, then that many page numbers. */
static int free_value(lm_walk *w, const uint8_t *v, uint64_t len, uint64_t pgno) {
    ASSERT(w->free_count <= w->free_cap);
    ASSERT(v != NULL && w->last_pg >= 1);
    if (len < 8 || len % 8 != 0 || u64_at(v) != len / 8 - 1) return bad("a free-page list of the wrong size", pgno);
    for (uint64_t i = 1; i < len / 8; i++) {
        uint64_t p = u64_at(v + 8 * i);
        if (p < 2 || p > w->last_pg) return bad("a free page outside the file", pgno);
        int rc = free_list_add(w, p);
        if (rc != 0) return rc;
    }
    return 0;
}

/* The data of a leaf node that lives on overflow pages. */
static int overflow_node(lm_walk *w, const uint8_t *data, uint32_t size, tree_kind kind) {
    ASSERT(data != NULL && w->psize >= LM_PAGE_BYTES_MIN);
    uint64_t first = u64_at(data);
    uint64_t pages = (LM_PAGE_HEADER - 1 + (uint64_t)size) / w->psize + 1;
    int rc = reach(w, first, pages);
    if (rc != 0) return rc;
    w->overflow += pages;
    const uint8_t *head = page_at(w, first);
    ASSERT(first + pages <= w->file_pages); /* reach checked it */
    bool check = w->overflow_headers || kind == TREE_FREE;
    if (check && (u64_at(head) != first || (u16_at(head + 10) & ~LM_P_DIRTY) != LM_P_OVERFLOW ||
                  u32_at(head + 12) != pages)) {
        return bad("an overflow page whose header does not match its node", first);
    }
    return kind == TREE_FREE ? free_value(w, head + LM_PAGE_HEADER, size, first) : 0;
}

/* One leaf node's data: inline, on overflow pages, or a named database. */
static int leaf_data(lm_walk *w, const uint8_t *node, uint32_t room, tree_kind kind, uint64_t pgno) {
    ASSERT(kind == TREE_FREE || kind == TREE_MAIN || kind == TREE_NAMED);
    ASSERT(node != NULL && room >= LM_NODE_HEADER && room <= w->psize);
    uint16_t flags = u16_at(node + 4), ksize = u16_at(node + 6);
    uint32_t size = (uint32_t)u16_at(node) | (uint32_t)u16_at(node + 2) << 16;
    const uint8_t *data = node + LM_NODE_HEADER + ksize;
    uint32_t inline_bytes = flags == LM_F_BIGDATA ? 8 : size;
    if (LM_NODE_HEADER + (uint32_t)ksize + inline_bytes > room) return bad("a leaf node past its page", pgno);
    if (flags == LM_F_BIGDATA) return overflow_node(w, data, size, kind);
    if (flags == LM_F_SUBDATA) {
        if (kind != TREE_MAIN || size != LM_DB_BYTES || w->subdb_count == LM_SUBDBS_MAX) {
            return bad("an unexpected named database", pgno);
        }
        w->subdbs[w->subdb_count++] = db_decode(data);
        return 0;
    }
    if (flags != 0) return bad("a leaf node with unknown flags", pgno);
    return kind == TREE_FREE ? free_value(w, data, size, pgno) : 0;
}

/* Checks one page of a tree and pushes its children. */
static int visit(lm_walk *w, const lm_db *db, tree_kind kind, lm_frame f, lm_frame *stack, uint32_t *top,
                 uint32_t stack_cap) {
    ASSERT(*top < stack_cap || stack_cap == 0);
    ASSERT(f.depth >= 1 && f.depth <= db->depth);
    int rc = reach(w, f.pgno, 1);
    if (rc != 0) return rc;
    const uint8_t *p = page_at(w, f.pgno);
    uint16_t flags = u16_at(p + 10) & ~LM_P_DIRTY, lower = u16_at(p + 12), upper = u16_at(p + 14);
    bool leaf = flags == LM_P_LEAF;
    if (u64_at(p) != f.pgno) return bad("a page that names another page number", f.pgno);
    if (!leaf && flags != LM_P_BRANCH) return bad("a tree page that is neither branch nor leaf", f.pgno);
    if (leaf != (f.depth == db->depth)) return bad("a page at the wrong depth of its tree", f.pgno);
    if (lower < LM_PAGE_HEADER + 2 || lower % 2 != 0 || lower > upper || upper > w->psize) {
        return bad("a page whose free-space bounds are impossible", f.pgno);
    }
    uint32_t n = (lower - LM_PAGE_HEADER) / 2u;
    ASSERT(LM_PAGE_HEADER + 2 * n <= w->psize);
    if (leaf) w->leaf++, w->entries += n;
    else w->branch++;
    const uint8_t *prev_key = NULL;
    uint16_t prev_len = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint16_t off = u16_at(p + LM_PAGE_HEADER + 2 * i);
        if (off < upper || off % 2 != 0 || (uint32_t)off + LM_NODE_HEADER > w->psize)
            return bad("a node outside its page", f.pgno);
        const uint8_t *node = p + off;
        uint16_t ksize = u16_at(node + 6);
        uint32_t room = w->psize - off;
        if (ksize > LM_KEY_BYTES_MAX || LM_NODE_HEADER + (uint32_t)ksize > room)
            return bad("a key past its page", f.pgno);
        bool keyed = leaf || i > 0; /* a branch's first key is implicit */
        if (keyed && kind == TREE_FREE && ksize != 8)
            return bad("a free-page tree key that is not a transaction id", f.pgno);
        if (keyed && prev_key != NULL && keys_compare(prev_key, prev_len, node + LM_NODE_HEADER, ksize, kind) >= 0) {
            return bad("keys out of order", f.pgno);
        }
        if (keyed) prev_key = node + LM_NODE_HEADER, prev_len = ksize;
        if (leaf) {
            rc = leaf_data(w, node, room, kind, f.pgno);
            if (rc != 0) return rc;
            continue;
        }
        uint64_t child = u16_at(node) | (uint64_t)u16_at(node + 2) << 16 | (uint64_t)u16_at(node + 4) << 32;
        if (*top == stack_cap) return bad("a tree wider than its pages allow", f.pgno);
        stack[(*top)++] = (lm_frame){.pgno = child, .depth = f.depth + 1};
    }
    return 0;
}

static int walk_tree(lm_walk *w, const lm_db *db, tree_kind kind) {
    ASSERT(w->psize >= LM_PAGE_BYTES_MIN && w->psize <= LM_PAGE_BYTES_MAX);
    if (db->root == LM_PGNO_NONE) {
        bool empty = db->depth == 0 && db->entries == 0 && db->branch_pages == 0 && db->leaf_pages == 0 &&
                     db->overflow_pages == 0;
        return empty ? 0 : bad("an empty tree with pages", 0);
    }
    if (db->depth == 0 || db->depth > LM_DEPTH_MAX) return bad("a tree of impossible depth", db->root);
    uint32_t stack_cap = db->depth * (w->psize / 2);
    lm_frame *stack = malloc(stack_cap * sizeof *stack);
    if (stack == NULL) return err_set(MMSB_ENOMEM, "checkpoint: checking the LMDB file");
    w->branch = w->leaf = w->overflow = w->entries = 0;
    uint32_t top = 0;
    stack[top++] = (lm_frame){.pgno = db->root, .depth = 1};
    ASSERT(stack_cap >= 1);
    int rc = 0;
    while (rc == 0 && top > 0) {
        lm_frame f = stack[--top];
        if (f.depth > db->depth) rc = bad("a branch below the tree's depth", f.pgno);
        else rc = visit(w, db, kind, f, stack, &top, stack_cap);
    }
    free(stack);
    ASSERT(rc != 0 || top == 0);
    if (rc == 0 && (w->branch != db->branch_pages || w->leaf != db->leaf_pages ||
                    w->overflow != db->overflow_pages || w->entries != db->entries)) {
        rc = bad("a tree whose pages or entries differ from its record", db->root);
    }
    return rc;
}

/* Picks the meta page of transaction `want` (CKPT_TXN_NEWEST: the one LMDB
 * picks at open, the higher id of the two), and reads the page size, last
 * page and trees from it. CKPT_STALE when neither meta page is `want`'s (a
 * writer committed twice since). */
static int read_meta(const uint8_t *img, uint64_t bytes, uint64_t want, uint32_t *psize, uint64_t *last_pg,
                     uint64_t *txnid, uint32_t *slot, lm_db dbs[2]) {
    ASSERT((img != NULL || bytes == 0) && psize != NULL && last_pg != NULL && txnid != NULL && slot != NULL);
    uint64_t off = 0;
    bool found = false;
    for (uint32_t i = 0; i < 2; i++) {
        if (bytes < LM_META_TXNID + 8 || off > bytes - (LM_META_TXNID + 8))
            return bad("a short meta page", (uint64_t)i);
        const uint8_t *m = img + off;
        if (!(u16_at(m + 10) & LM_P_META) || u32_at(m + 16) != LM_MAGIC)
            return bad("a meta page without LMDB's magic", (uint64_t)i);
        if (u32_at(m + 20) != LM_DATA_VERSION) {
            return err_set(MMSB_EVERSION, "checkpoint: LMDB data version %u, expected %d", u32_at(m + 20),
                           LM_DATA_VERSION);
        }
        lm_db free_db = db_decode(m + LM_META_DBS);
        if (i == 0) off = *psize = free_db.pad; /* the page size is kept in the free tree's pad */
        if (*psize < LM_PAGE_BYTES_MIN || *psize > LM_PAGE_BYTES_MAX || (*psize & (*psize - 1)) != 0) {
            return bad("a meta page with an impossible page size", (uint64_t)i);
        }
        uint64_t id = u64_at(m + LM_META_TXNID);
        bool pick = want == CKPT_TXN_NEWEST ? !found || id > *txnid : id == want;
        /* LMDB maps the file by the map size and last page it reads here,
         * before any tree: out of bounds, it fails (ENOMEM) or maps wrong. */
        uint64_t map_bytes = u64_at(m + LM_META_MAPSIZE), last = u64_at(m + LM_META_LAST_PG);
        if (pick && (map_bytes > CKPT_MAP_BYTES_LIMIT || last >= map_bytes / *psize)) {
            return bad("a meta page whose map size or last page is impossible", i);
        }
        if (pick) {
            found = true;
            *txnid = id;
            *slot = i;
            *last_pg = u64_at(m + LM_META_LAST_PG);
            dbs[0] = free_db;
            dbs[1] = db_decode(m + LM_META_DBS + LM_DB_BYTES);
        }
    }
    if (!found) return CKPT_STALE;
    ASSERT(*slot < 2 && *psize >= LM_PAGE_BYTES_MIN);
    if (bytes < 2ull * *psize || *last_pg < 1) return bad("meta pages that describe no file", 0);
    return 0;
}

static int walk_all(lm_walk *w, const lm_db dbs[2]) {
    ASSERT(dbs != NULL);
    ASSERT(w->seen != NULL && w->subdb_count == 0 && w->free_count == 0);
    int rc = walk_tree(w, &dbs[0], TREE_FREE);
    if (rc == 0) rc = walk_tree(w, &dbs[1], TREE_MAIN);
    for (uint32_t i = 0; rc == 0 && i < w->subdb_count; i++) rc = walk_tree(w, &w->subdbs[i], TREE_NAMED);
    for (uint64_t i = 0; rc == 0 && i < w->free_count; i++) {
        uint64_t p = w->free_pages[i];
        if (p < w->file_pages && (w->seen[p / 64] >> (p % 64)) & 1) rc = bad("a page both in use and free", p);
    }
    return rc;
}

int ckpt_check_image(const uint8_t *img, uint64_t bytes, bool overflow_headers, uint64_t want, uint64_t *txnid) {
    ASSERT((img != NULL || bytes == 0) && txnid != NULL);
    lm_walk w = {.overflow_headers = overflow_headers, .map = img};
    lm_db dbs[2];
    uint32_t slot = 0;
    uint8_t meta_before[LM_META_TXNID + 8];
    int rc = read_meta(img, bytes, want, &w.psize, &w.last_pg, txnid, &slot, dbs);
    if (rc != 0) return rc;
    /* A writer in another process may rewrite that meta page (its second
     * commit since) while the trees are walked: then the walk saw a mix. */
    uint64_t meta_off = (uint64_t)slot * w.psize;
    ASSERT(meta_off + sizeof meta_before <= bytes);
    memcpy(meta_before, img + meta_off, sizeof meta_before);
    w.file_pages = bytes / w.psize;
    w.seen = calloc((w.file_pages + 63) / 64, sizeof *w.seen);
    rc = w.seen != NULL ? walk_all(&w, dbs) : err_set(MMSB_ENOMEM, "checkpoint: checking the LMDB file");
    free(w.seen);
    free(w.free_pages);
    if (memcmp(meta_before, img + meta_off, sizeof meta_before) != 0) return CKPT_STALE;
    return rc;
}

int ckpt_check_meta(const char *data_path) {
    ASSERT(data_path[0] != '\0');
    ASSERT(data_path != NULL);
    int fd = open(data_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return err_set(err_from_errno(errno), "checkpoint: %s: %s", data_path, strerror(errno));
    uint8_t *buf = malloc(2 * LM_PAGE_BYTES_MAX);
    ssize_t got = buf != NULL ? pread(fd, buf, 2 * LM_PAGE_BYTES_MAX, 0) : -1;
    int saved = errno;
    close(fd);
    int rc = buf == NULL ? err_set(MMSB_ENOMEM, "checkpoint: checking the LMDB file")
             : got < 0  ? err_set(err_from_errno(saved), "checkpoint: %s: %s", data_path, strerror(saved))
                        : 0;
    uint32_t psize, slot;
    uint64_t last_pg, txnid;
    lm_db dbs[2];
    if (rc == 0) rc = read_meta(buf, (uint64_t)got, CKPT_TXN_NEWEST, &psize, &last_pg, &txnid, &slot, dbs);
    free(buf);
    return rc;
}

int ckpt_check_file(const char *data_path, bool overflow_headers, uint64_t want, uint64_t *txnid) {
    ASSERT(data_path[0] != '\0');
    ASSERT(data_path != NULL && txnid != NULL);
    int fd = open(data_path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int saved = errno;
        if (fd >= 0) close(fd);
        return err_set(err_from_errno(saved), "checkpoint: %s: %s", data_path, strerror(saved));
    }
    uint64_t bytes = (uint64_t)st.st_size;
    const uint8_t *map = bytes > 0 ? mmap(NULL, bytes, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
    int saved = errno;
    close(fd);
    if (bytes == 0) return bad("an empty file", 0);
    if (map == MAP_FAILED)
        return err_set(err_from_errno(saved), "checkpoint: cannot map %s: %s", data_path, strerror(saved));
    int rc = ckpt_check_image(map, bytes, overflow_headers, want, txnid);
    munmap((void *)map, bytes);
    return rc;
}
