/*
 * digest.c - page digests and the state root, maintained lazily and
 * incrementally. The definitions are in DIGESTS.md; this file must match it
 * byte for byte.
 *
 * A change only marks: the touched 4 KiB chunks of its page, and the page's
 * id on the dirty list. Asking for a digest or the root rehashes exactly the
 * marked chunks and then the tree paths above the marked pages, so the cost
 * follows what changed, not how much state there is.
 */
#include <string.h>

#include "base/bytes.h"
#include "base/seeds.h"
#include "digest.h"

static const h128 EMPTY = {0, 0};

static bool is_empty(h128 h) { return (h.lo | h.hi) == 0; }

void digest_to_bytes(h128 h, uint8_t out[16]) { put_h128(out, h); }

/* An empty right child passes the left one up unchanged, so padding a tree
 * to any power of two never changes its root. */
static h128 combine(const kern_ops *k, h128 left, h128 right) {
    ASSERT(k != NULL && k->hash != NULL);
    if (is_empty(right)) return left;
    uint8_t buf[32];
    digest_to_bytes(left, buf);
    digest_to_bytes(right, buf + 16);
    return k->hash(buf, sizeof buf, SEED_NODE);
}

/* ---- chunk trees of multi-chunk pages --------------------------------------- */

typedef struct chunk_tree {
    h128 *nodes;      /* heap order: root at 1, leaves at [leaves, 2 * leaves) */
    uint64_t *dirty;  /* bit per chunk */
    uint64_t chunks;
    uint64_t leaves;  /* chunks rounded up to a power of two */
} chunk_tree;

static uint64_t chunks_of(uint64_t size_bytes) {
    ASSERT(size_bytes <= UINT64_MAX - CHUNK_BYTES);
    return (size_bytes + CHUNK_BYTES - 1) / CHUNK_BYTES;
}

uint64_t digest_aux_bytes(uint64_t size_bytes) {
    ASSERT(size_bytes > 0);
    uint64_t chunks = chunks_of(size_bytes);
    if (chunks <= 1) return 0;
    uint64_t leaves = 1ull << log2_ceil_u64(chunks);
    ASSERT(leaves >= chunks && leaves < 2 * chunks);
    return 2 * leaves * sizeof(h128) + (chunks + 63) / 64 * sizeof(uint64_t);
}

static chunk_tree tree_of(const mmsb_engine *e, const page_entry *pe) {
    chunk_tree t;
    t.chunks = chunks_of(pe->size_bytes);
    ASSERT(t.chunks > 1);
    t.leaves = 1ull << log2_ceil_u64(t.chunks);
    t.nodes = (h128 *)region_ptr(&e->aux, pe->u.tree.aux_off);
    t.dirty = (uint64_t *)(t.nodes + 2 * t.leaves);
    ASSERT(t.leaves >= t.chunks && t.leaves < 2 * t.chunks);
    return t;
}

static void set_bit_range(uint64_t *words, uint64_t first, uint64_t last) {
    ASSERT(first <= last);
    uint64_t w0 = first / 64, w1 = last / 64;
    ASSERT(w1 - w0 <= (1ull << 40)); /* bounded by the page's chunk count */
    uint64_t head = ~0ull << (first % 64);
    uint64_t tail = low_bits_u64((uint32_t)(last % 64) + 1);
    if (w0 == w1) {
        words[w0] |= head & tail;
        return;
    }
    words[w0] |= head;
    for (uint64_t w = w0 + 1; w < w1; w++) words[w] = ~0ull;
    words[w1] |= tail;
}

static h128 hash_chunk(const kern_ops *k, const uint8_t *bytes, uint64_t size_bytes,
                       uint64_t chunk) {
    uint64_t start = chunk * CHUNK_BYTES;
    ASSERT(k != NULL && bytes != NULL);
    ASSERT(start < size_bytes);
    return k->hash(bytes + start, min_u64(CHUNK_BYTES, size_bytes - start), SEED_CHUNK);
}

/* The dirty chunks' digests from the page's location, DEVICE_HASH_BATCH
 * chunks at a time (a device page's come from its device copy). */
static uint64_t hash_dirty_by_location(mmsb_engine *e, const page_entry *pe, const chunk_tree *t) {
    const location_ops *loc = location_of(e, pe);
    uint64_t *chunks = e->dv.hash_chunks, words = (t->chunks + 63) / 64, changed = 0;
    uint32_t n = 0;
    for (uint64_t w = 0; w <= words; w++) {
        uint64_t bits = w < words ? t->dirty[w] : 0;
        for (; bits != 0; bits &= bits - 1) chunks[n++] = w * 64 + (uint64_t)__builtin_ctzll(bits);
        /* a word adds at most 64: flush before the next could overflow the batch */
        if (n > DEVICE_HASH_BATCH - 64 || (w == words && n > 0)) {
            loc->hash_chunks(e, pe, chunks, n, e->dv.hash_out);
            for (uint32_t i = 0; i < n; i++) t->nodes[t->leaves + chunks[i]] = e->dv.hash_out[i];
            changed += n;
            n = 0;
        }
    }
    ASSERT(n == 0);
    return changed;
}

/* Rehashes the dirty chunks, then the tree above them: path by path when few
 * changed, the whole tree when that is cheaper. */
static void refresh_chunk_tree(mmsb_engine *e, const page_entry *pe) {
    ASSERT(pe->flags & PE_LIVE);
    chunk_tree t = tree_of(e, pe);
    const uint8_t *bytes = page_bytes(e, pe);
    uint64_t words = (t.chunks + 63) / 64;
    uint64_t changed = 0;
    if (pe->flags & PE_LEAVES_FRESH) { /* digest_root's batch hashed them: count them */
        ASSERT(pe->flags & PE_DEVICE);
        for (uint64_t w = 0; w < words; w++) changed += (uint64_t)__builtin_popcountll(t.dirty[w]);
    } else if (pe->flags & PE_DEVICE) {
        changed = hash_dirty_by_location(e, pe, &t);
    } else {
        for (uint64_t w = 0; w < words; w++) {
            for (uint64_t bits = t.dirty[w]; bits != 0; bits &= bits - 1) {
                uint64_t chunk = w * 64 + (uint64_t)__builtin_ctzll(bits);
                t.nodes[t.leaves + chunk] = hash_chunk(e->kern, bytes, pe->size_bytes, chunk);
                changed++;
            }
        }
    }
    ASSERT(changed > 0);
    uint32_t depth = log2_ceil_u64(t.leaves);
    if (changed * depth >= t.leaves) {
        for (uint64_t j = t.leaves - 1; j >= 1; j--) {
            t.nodes[j] = combine(e->kern, t.nodes[2 * j], t.nodes[2 * j + 1]);
        }
    } else {
        for (uint64_t w = 0; w < words; w++) {
            for (uint64_t bits = t.dirty[w]; bits != 0; bits &= bits - 1) {
                uint64_t j = (t.leaves + w * 64 + (uint64_t)__builtin_ctzll(bits)) / 2;
                for (; j >= 1; j /= 2) {
                    t.nodes[j] = combine(e->kern, t.nodes[2 * j], t.nodes[2 * j + 1]);
                }
            }
        }
    }
    memset(t.dirty, 0, words * sizeof(uint64_t));
    ASSERT(!is_empty(t.nodes[1]));
}

static void refresh_page_digest(mmsb_engine *e, page_entry *pe) {
    ASSERT(!e->read_only || !e->cc.active);
    ASSERT((pe->flags & (PE_LIVE | PE_DIGEST_DIRTY)) == (PE_LIVE | PE_DIGEST_DIRTY));
    h128 single = EMPTY;
    bool multi = chunks_of(pe->size_bytes) > 1;
    if (multi) {
        refresh_chunk_tree(e, pe);
    } else if (pe->flags & PE_DEVICE) {
        const uint64_t chunk0 = 0;
        location_of(e, pe)->hash_chunks(e, pe, &chunk0, 1, &single);
    } else {
        single = hash_chunk(e->kern, page_bytes(e, pe), pe->size_bytes, 0);
    }
    entry_write_begin(pe);
    if (!multi) pe->u.digest = single;
    pe->flags &= ~(uint32_t)(PE_DIGEST_DIRTY | PE_LEAVES_FRESH);
    entry_write_end(pe);
}

void digest_page(mmsb_engine *e, page_entry *pe, h128 *digest_out) {
    ASSERT(digest_out != NULL);
    ASSERT(pe->flags & PE_LIVE);
    if (pe->flags & PE_DIGEST_DIRTY) refresh_page_digest(e, pe);
    *digest_out = chunks_of(pe->size_bytes) > 1 ? tree_of(e, pe).nodes[1] : pe->u.digest;
    ASSERT(!is_empty(*digest_out));
}

/* ---- marking ------------------------------------------------------------------ */

/* The chunk tree of a zero page: every full chunk hashes to zero_chunk, a
 * shorter last chunk is hashed, and the nodes above are built bottom-up. */
static void build_zero_tree(const mmsb_engine *e, const page_entry *pe) {
    ASSERT(pe->size_bytes > CHUNK_BYTES);
    ASSERT(pe->epoch == 0 && !is_empty(e->dig.zero_chunk));
    chunk_tree t = tree_of(e, pe);
    memset(t.nodes, 0, digest_aux_bytes(pe->size_bytes));
    for (uint64_t i = 0; i < t.chunks; i++) t.nodes[t.leaves + i] = e->dig.zero_chunk;
    if (pe->size_bytes % CHUNK_BYTES != 0) {
        t.nodes[t.leaves + t.chunks - 1] =
            hash_chunk(e->kern, page_bytes(e, pe), pe->size_bytes, t.chunks - 1);
    }
    for (uint64_t j = t.leaves - 1; j >= 1; j--) {
        t.nodes[j] = combine(e->kern, t.nodes[2 * j], t.nodes[2 * j + 1]);
    }
}

void digest_page_created(mmsb_engine *e, uint64_t id, page_entry *pe) {
    ASSERT(id >= 1 && pe == entry_of(e, id));
    ASSERT(pe->epoch == 0 && (pe->flags & PE_LIVE));
    if (chunks_of(pe->size_bytes) > 1) {
        build_zero_tree(e, pe);
    } else if (pe->size_bytes == CHUNK_BYTES) {
        pe->u.digest = e->dig.zero_chunk;
    } else {
        pe->u.digest = hash_chunk(e->kern, page_bytes(e, pe), pe->size_bytes, 0);
    }
    digest_mark(e, id, pe, 0, 0);
    ASSERT(!e->dig.root_valid);
}

static void dirty_add(dirty_set *d, uint64_t pos) {
    ASSERT(pos / 64 * sizeof(uint64_t) < d->bits.bytes_ready); /* digest_reserve */
    ASSERT(pos / 4096 * sizeof(uint64_t) < d->words.bytes_ready);
    uint64_t *bits = (uint64_t *)d->bits.base, *words = (uint64_t *)d->words.base;
    uint64_t *groups = (uint64_t *)d->groups.base;
    bits[pos / 64] |= 1ull << (pos % 64);
    words[pos / 4096] |= 1ull << (pos / 64 % 64);
    groups[pos / 262144] |= 1ull << (pos / 4096 % 64);
    if (pos / 262144 >= d->group_end) d->group_end = pos / 262144 + 1;
    ASSERT(d->group_end * sizeof(uint64_t) <= d->groups.bytes_ready);
}

/* Takes up to `max` stale positions, in ascending order, out of the set;
 * the scan stops at the last group a position was ever added to (a store
 * with few pages scans one word, not the whole id space). */
static uint64_t dirty_take(dirty_set *d, uint64_t *out, uint64_t max) {
    ASSERT(out != NULL && max > 0);
    uint64_t group_count = d->group_end;
    ASSERT(group_count * sizeof(uint64_t) <= d->groups.bytes_ready);
    uint64_t *bits = (uint64_t *)d->bits.base, *words = (uint64_t *)d->words.base;
    uint64_t *groups = (uint64_t *)d->groups.base;
    uint64_t n = 0;
    for (uint64_t g = 0; g < group_count && n < max; g++) {
        while (groups[g] != 0 && n < max) {
            uint64_t w = g * 64 + (uint64_t)__builtin_ctzll(groups[g]);
            while (words[w] != 0 && n < max) {
                uint64_t b = w * 64 + (uint64_t)__builtin_ctzll(words[w]);
                while (bits[b] != 0 && n < max) {
                    out[n++] = b * 64 + (uint64_t)__builtin_ctzll(bits[b]);
                    bits[b] &= bits[b] - 1;
                }
                if (bits[b] == 0) words[w] &= words[w] - 1;
            }
            if (words[w] == 0) groups[g] &= groups[g] - 1;
        }
    }
    return n;
    ASSERT(n <= max);
}

void digest_mark(mmsb_engine *e, uint64_t id, page_entry *pe, uint64_t offset,
                 uint64_t len) {
    ASSERT(id >= 1 && id <= e->opts.pages_max && pe == entry_of(e, id));
    ASSERT((atomic_load_explicit(&pe->seq, memory_order_relaxed) & 1u) == 1);
    if ((pe->flags & PE_LIVE) && len > 0) {
        ASSERT(offset < pe->size_bytes && len <= pe->size_bytes - offset);
        if (chunks_of(pe->size_bytes) > 1) {
            set_bit_range(tree_of(e, pe).dirty, offset / CHUNK_BYTES,
                          (offset + len - 1) / CHUNK_BYTES);
        }
        pe->flags |= PE_DIGEST_DIRTY;
    }
    dirty_add(&e->dig.dirty, id - 1);
    ckpt_mark(e, id);
    e->dig.root_valid = false;
    ASSERT(!(pe->flags & PE_LIVE) || len == 0 || (pe->flags & PE_DIGEST_DIRTY));
}

/* ---- the state tree ------------------------------------------------------------ */

/* Nodes of level 2 and up are stored; a level-1 node is recomputed from its
 * two leaves when needed, which halves the tree's memory (8 bytes per id). */
static h128 *node_slot(const digest_state *d, uint32_t level, uint64_t pos) {
    ASSERT(level >= 2 && level <= d->height);
    ASSERT(pos < (1ull << (d->height - level)));
    return (h128 *)d->nodes.base + ((1ull << (d->height - level)) + pos);
}

static h128 leaf_of(mmsb_engine *e, uint64_t id) {
    ASSERT(id <= (1ull << e->dig.height)); /* the tree's leaves: at least 4, and at least pages_max */
    ASSERT(id >= 1);
    if (id >= atomic_load_explicit(&e->page_id_next, memory_order_relaxed)) return EMPTY;
    page_entry *pe = entry_of(e, id);
    if ((pe->flags & PE_LIVE) == 0) return EMPTY;
    h128 digest;
    digest_page(e, pe, &digest);
    uint8_t buf[40];
    put_le64(buf, id);
    put_le64(buf + 8, pe->size_bytes);
    put_le64(buf + 16, pe->epoch);
    digest_to_bytes(digest, buf + 24);
    return e->kern->hash(buf, sizeof buf, SEED_LEAF);
}

static h128 node_value(mmsb_engine *e, uint32_t level, uint64_t pos) {
    ASSERT(level >= 2 || pos < (1ull << (e->dig.height - level)));
    ASSERT(level <= e->dig.height);
    if (level == 0) return leaf_of(e, pos + 1);
    if (level == 1) return combine(e->kern, leaf_of(e, 2 * pos + 1), leaf_of(e, 2 * pos + 2));
    return *node_slot(&e->dig, level, pos);
}

/* Recomputes the stored nodes above a batch of stale leaf positions (sorted),
 * one level at a time up to d->top; the list is rewritten in place with the
 * deduplicated parents. Batches may share ancestors: a later batch
 * recomputes them from children that are already up to date. */
static void update_tree(mmsb_engine *e, uint64_t *pos, uint64_t count) {
    ASSERT(count >= 1 && count <= DIRTY_BATCH);
    ASSERT(e->dig.top >= 2 && e->dig.top <= e->dig.height);
    digest_state *d = &e->dig;
    for (uint64_t k = 0; k < count; k++) pos[k] /= 2; /* level-1 positions */
    for (uint32_t level = 1; level < d->top; level++) {
        uint64_t out = 0;
        for (uint64_t k = 0; k < count; k++) {
            uint64_t parent = pos[k] / 2;
            if (out > 0 && pos[out - 1] == parent) continue;
            h128 left = node_value(e, level, 2 * parent);
            h128 right = node_value(e, level, 2 * parent + 1);
            *node_slot(d, level + 1, parent) = combine(e->kern, left, right);
            pos[out++] = parent;
        }
        count = out;
    }
    ASSERT(count <= 1);
}

/* Every id in use lies under node (top, 0); above it, every right sibling is
 * EMPTY, so by the collapse rule the root of the full-height tree is that
 * node: updates climb only this far. When more ids come into use the top
 * rises, and the path from leaf 0 is marked so the new upper nodes of the
 * left spine are computed too. */
static void raise_top(mmsb_engine *e) {
    ASSERT(e->dig.top >= 2);
    digest_state *d = &e->dig;
    uint64_t ids = atomic_load_explicit(&e->page_id_next, memory_order_relaxed) - 1;
    uint32_t top = ids <= 4 ? 2 : (uint32_t)max_u64(2, log2_ceil_u64(ids));
    ASSERT(top <= d->height);
    if (top > d->top) {
        dirty_add(&d->dirty, 0);
        d->top = top;
    }
}

/* The dirty chunks of the device pages among a batch of leaf positions,
 * hashed by the device DEVICE_HASH_BATCH at a time across pages: a root
 * waits for the device once per batch, not once per device page. Each such
 * page is marked PE_LEAVES_FRESH; update_tree then reaches its leaf, whose
 * refresh computes only the tree above the chunks. */
static void hash_device_leaves(mmsb_engine *e, const uint64_t *pos, uint64_t count) {
    ASSERT(e->dv.dev != NULL && count <= DIRTY_BATCH);
    const uint32_t want = PE_LIVE | PE_DIGEST_DIRTY | PE_DEVICE;
    uint64_t id_end = atomic_load_explicit(&e->page_id_next, memory_order_relaxed);
    uint32_t n = 0;
    for (uint64_t k = 0; k < count; k++) {
        uint64_t id = pos[k] + 1;
        if (id >= id_end) continue;
        page_entry *pe = entry_of(e, id);
        if ((pe->flags & (want | PE_LEAVES_FRESH)) != want || chunks_of(pe->size_bytes) <= 1) continue;
        chunk_tree t = tree_of(e, pe);
        for (uint64_t w = 0; w < (t.chunks + 63) / 64; w++) {
            for (uint64_t bits = t.dirty[w]; bits != 0; bits &= bits - 1) {
                uint64_t chunk = w * 64 + (uint64_t)__builtin_ctzll(bits);
                e->dv.hash_refs[n] = (gpu_chunk_ref){.page_offset = pe->data_off, .page_bytes = pe->size_bytes,
                                                     .chunk = chunk};
                e->dv.hash_dst[n++] = &t.nodes[t.leaves + chunk];
                if (n < DEVICE_HASH_BATCH) continue;
                location_hash_refs(e, e->dv.hash_refs, n, e->dv.hash_out);
                for (uint32_t i = 0; i < n; i++) *e->dv.hash_dst[i] = e->dv.hash_out[i];
                n = 0;
            }
        }
        entry_write_begin(pe);
        pe->flags |= PE_LEAVES_FRESH;
        entry_write_end(pe);
    }
    if (n == 0) return;
    location_hash_refs(e, e->dv.hash_refs, n, e->dv.hash_out);
    for (uint32_t i = 0; i < n; i++) *e->dv.hash_dst[i] = e->dv.hash_out[i];
}

void digest_root(mmsb_engine *e, h128 *root_out) {
    digest_state *d = &e->dig;
    ASSERT(root_out != NULL && d->height >= 2);
    if (!d->root_valid) {
        raise_top(e);
        for (;;) {
            uint64_t n = dirty_take(&d->dirty, d->batch, DIRTY_BATCH);
            if (n == 0) break;
            if (e->dv.dev != NULL) hash_device_leaves(e, d->batch, n);
            update_tree(e, d->batch, n);
        }
        uint8_t buf[32];
        digest_to_bytes(*node_slot(d, d->top, 0), buf);
        put_le64(buf + 16, e->pages_live);
        put_le64(buf + 24, atomic_load_explicit(&e->page_id_next, memory_order_relaxed));
        d->root = e->kern->hash(buf, sizeof buf, SEED_ROOT);
        d->root_valid = true;
    }
    *root_out = d->root;
    ASSERT(d->root_valid && !is_empty(*root_out));
}

/* ---- lifetime ------------------------------------------------------------------ */

int digest_open(mmsb_engine *e) {
    ASSERT(e->kern != NULL && e->opts.pages_max >= 1);
    static const uint8_t zeros[CHUNK_BYTES];
    digest_state *d = &e->dig;
    d->zero_chunk = e->kern->hash(zeros, sizeof zeros, SEED_CHUNK);
    d->height = max_u64(2, log2_ceil_u64(e->opts.pages_max));
    d->top = 2;
    uint64_t positions = 1ull << d->height;
    int rc = vmap_open(&d->dirty.bits, NULL, max_u64(8, positions / 8), 64 * 1024);
    if (rc == 0) rc = vmap_open(&d->dirty.words, NULL, max_u64(8, positions / 512), VM_PAGE_BYTES);
    if (rc == 0) rc = vmap_open(&d->dirty.groups, NULL, max_u64(8, positions / 32768), VM_PAGE_BYTES);
    /* The group level is small (1 KiB per 2^23 ids): back it whole now. */
    if (rc == 0) rc = vmap_ensure(&d->dirty.groups, d->dirty.groups.bytes_max);
    d->dirty.group_end = 0;
    /* Nodes are faulted in on first use: only digest_root touches them, never
     * a change, and untouched (zero) nodes read as EMPTY. */
    if (rc == 0) rc = vmap_open(&d->nodes, NULL, (positions / 2) * sizeof(h128), VM_PAGE_BYTES);
    if (rc != 0) digest_close(e);
    d->root_valid = false;
    ASSERT(rc != 0 || (d->height >= 2 && (1ull << d->height) >= e->opts.pages_max));
    return rc;
}

int digest_reserve(mmsb_engine *e, uint64_t id) {
    ASSERT(e->dig.dirty.bits.base != NULL);
    ASSERT(id >= 1 && id <= e->opts.pages_max);
    digest_state *d = &e->dig;
    int rc = vmap_ensure(&d->dirty.bits, align_up_u64(id, 64) / 8);
    if (rc == 0) rc = vmap_ensure(&d->dirty.words, align_up_u64(id, 4096) / 512);
    return rc;
}

void digest_close(mmsb_engine *e) {
    ASSERT(e != NULL);
    vmap_close(&e->dig.dirty.bits);
    vmap_close(&e->dig.dirty.words);
    vmap_close(&e->dig.dirty.groups);
    vmap_close(&e->dig.nodes);
}
