/*
 * derive.c - making pages derived, the edges between them, and the replay
 * of those records.
 *
 * A derived page's parents are its edges: mmsb_derive sets them all,
 * mmsb_edge_add / mmsb_edge_remove change one, mmsb_underive removes them.
 * Each call is one commit: the graph changes (a cycle is refused before
 * anything changes), the record is logged, and the page (with everything
 * downstream of it) is computed in the same commit. If that computation
 * fails (a user operation), the commit is rolled back and the old definition
 * comes back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tlog/format.h"
#include "changeset.h"
#include "commit.h"
#include "derive.h"
#include "digest.h"
#include "page.h"
#include "record.h"
#include "role.h"

/* A page's definition, saved so that a failed change can restore it. */
typedef struct definition {
    uint32_t op, params_len, parent_count;
    uint8_t *params;
    uint64_t *parents; /* page ids */
    h128 signature;
} definition;

static void definition_free(definition *d) {
    ASSERT(d != NULL);
    ASSERT((d->params == NULL) == (d->params_len == 0) || d->params == NULL);
    free(d->params);
    free(d->parents);
    memset(d, 0, sizeof *d);
}

static int definition_save(const mmsb_engine *e, uint32_t n, definition *d) {
    ASSERT(d != NULL && n < e->g.count);
    memset(d, 0, sizeof *d);
    if (n == 0) return 0;
    const gnode *v = graph_at(&e->g, n);
    d->op = v->op;
    d->params_len = v->params_len;
    d->parent_count = v->parent_count;
    d->signature = v->signature;
    d->params = v->params_len > 0 ? malloc(v->params_len) : NULL;
    d->parents = v->parent_count > 0 ? malloc(v->parent_count * sizeof *d->parents) : NULL;
    if ((v->params_len > 0 && d->params == NULL) || (v->parent_count > 0 && d->parents == NULL)) {
        definition_free(d);
        return err_set(MMSB_ENOMEM, "derive: saving the old definition");
    }
    if (v->params_len > 0) memcpy(d->params, v->params, v->params_len);
    for (uint32_t k = 0; k < v->parent_count; k++) d->parents[k] = graph_at(&e->g, v->parents[k])->page_id;
    ASSERT(d->parent_count == v->parent_count && d->op == v->op);
    return 0;
}

/* Sets a node's operation and params, keeping the graph's counts. */
static int set_op(graph *g, uint32_t n, uint32_t op, const uint8_t *params, uint32_t params_len) {
    ASSERT(n != 0 && n < g->count);
    ASSERT(params_len <= DERIVE_PARAMS_MAX && (params != NULL || params_len == 0));
    gnode *v = graph_at(g, n);
    uint8_t *copy = NULL;
    if (params_len > 0) {
        copy = malloc(params_len);
        if (copy == NULL) return err_set(MMSB_ENOMEM, "derive: params of %u bytes", params_len);
        memcpy(copy, params, params_len);
    }
    bool was_user = v->op >= MMSB_OP_USER_FIRST, is_user = op >= MMSB_OP_USER_FIRST;
    g->user_op_pages += (uint64_t)is_user - (uint64_t)was_user;
    g->derived += (uint64_t)(op != 0) - (uint64_t)(v->op != 0);
    free(v->params);
    v->op = op;
    v->params = copy;
    v->params_len = params_len;
    ASSERT(g->derived <= g->count && g->user_op_pages <= g->derived);
    return 0;
}

/* A parent may be listed more than once (XOR of a page with itself): its
 * node comes here once per listing, and after the first its slot may be
 * free already (page id 0). */
static void release_if_unused(graph *g, uint32_t n) {
    ASSERT(g != NULL);
    ASSERT(n != 0 && n < g->count);
    const gnode *v = graph_at(g, n);
    if (v->page_id == 0) return;
    if (v->op == 0 && v->parent_count == 0 && v->child_count == 0) graph_node_release(g, n);
}

/* Replaces a node's parents (page ids, all live). On failure the node has
 * no parents at all; the caller restores a saved definition. */
static int set_parents(mmsb_engine *e, uint32_t n, const uint64_t *parents, uint32_t count) {
    ASSERT(n != 0 && count <= DERIVE_PARENTS_MAX);
    ASSERT(parents != NULL || count == 0);
    graph *g = &e->g;
    uint32_t *old = malloc((graph_at(g, n)->parent_count + 1) * sizeof *old);
    if (old == NULL) return err_set(MMSB_ENOMEM, "derive: parent list");
    uint32_t old_count = graph_at(g, n)->parent_count;
    if (old_count > 0) memcpy(old, graph_at(g, n)->parents, old_count * sizeof *old);
    graph_clear_parents(g, n);
    int rc = 0;
    for (uint32_t k = 0; rc == 0 && k < count; k++) {
        uint32_t p;
        rc = graph_node_get(g, parents[k], &p);
        if (rc == 0) rc = graph_edge_add(g, p, n);
        if (rc != 0 && graph_node(g, parents[k]) != 0) release_if_unused(g, graph_node(g, parents[k]));
    }
    if (rc != 0) graph_clear_parents(g, n);
    for (uint32_t k = 0; k < old_count; k++) release_if_unused(g, old[k]);
    free(old);
    ASSERT(rc != 0 ? graph_at(g, n)->parent_count == 0 : graph_at(g, n)->parent_count == count);
    return rc;
}

/* Puts a saved definition back (its edges existed before: no cycle). */
static void definition_restore(mmsb_engine *e, uint64_t child, const definition *d) {
    ASSERT(child != 0 && d != NULL);
    uint32_t n;
    int rc = graph_node_get(&e->g, child, &n);
    ASSERT(rc == 0); /* the node existed when the definition was saved */
    rc = set_parents(e, n, d->parents, d->parent_count);
    if (rc == 0) rc = set_op(&e->g, n, d->op, d->params, d->params_len);
    ASSERT(rc == 0);
    graph_at(&e->g, n)->signature = d->signature;
    ckpt_mark(e, child);
    release_if_unused(&e->g, n);
}

/* Defines child (live) as op(params) of parents (live); a cycle or a lack of
 * memory leaves the old definition in place. */
static int define(mmsb_engine *e, uint64_t child, uint32_t op, const uint8_t *params,
                  uint32_t params_len, const uint64_t *parents, uint32_t count, const definition *old) {
    ASSERT(child != 0 && op != 0 && count >= 1);
    ASSERT(old != NULL);
    uint32_t n;
    int rc = graph_node_get(&e->g, child, &n);
    if (rc == 0) rc = set_parents(e, n, parents, count);
    if (rc == 0) rc = set_op(&e->g, n, op, params, params_len);
    if (rc != 0) {
        definition_restore(e, child, old);
        return rc;
    }
    graph_at(&e->g, n)->signature = (h128){0, 0};
    ASSERT(graph_at(&e->g, n)->op == op && graph_at(&e->g, n)->parent_count == count);
    ckpt_mark(e, child);
    return 0;
}

/* ---- checks ---------------------------------------------------------------------- */

static int parents_check(mmsb_engine *e, uint64_t child, const uint64_t *parents, uint32_t count,
                         uint64_t *sizes, const char *fn) {
    ASSERT(sizes != NULL && fn != NULL);
    ASSERT(parents != NULL || count == 0);
    for (uint32_t k = 0; k < count; k++) {
        page_entry *pe;
        int rc = page_lookup(e, parents[k], fn, &pe);
        if (rc != 0) return rc;
        if (parents[k] == child)
            return err_set(MMSB_ECYCLE, "%s: page %llu cannot depend on itself", fn, (unsigned long long)child);
        sizes[k] = pe->size_bytes;
    }
    return 0;
}

/* The operation, its params and the sizes, for `count` parents. */
static int op_fits(mmsb_engine *e, uint64_t child, uint32_t op, const uint8_t *params,
                   uint64_t params_len, const uint64_t *parents, uint32_t count, const char *fn) {
    ASSERT(!e->cc.active);
    ASSERT(fn != NULL && (parents != NULL || count == 0));
    if (count == 0 || count > MMSB_DERIVE_PARENTS_MAX) {
        return err_set(MMSB_EINVAL, "%s: %u parents, expected 1..%u", fn, count, MMSB_DERIVE_PARENTS_MAX);
    }
    if (params_len > MMSB_DERIVE_PARAMS_MAX)
        return err_set(MMSB_EINVAL, "%s: %llu param bytes, at most %u", fn, (unsigned long long)params_len,
                       MMSB_DERIVE_PARAMS_MAX);
    if (!op_is_builtin(op) && op_find(&e->ops, op) == NULL) {
        return err_set(op >= MMSB_OP_USER_FIRST ? MMSB_ENOTFOUND : MMSB_EINVAL,
                       "%s: operation %u is neither built in nor registered", fn, op);
    }
    page_entry *pe;
    int rc = page_lookup(e, child, fn, &pe);
    uint64_t *sizes = rc == 0 ? malloc(count * sizeof *sizes) : NULL;
    if (rc == 0 && sizes == NULL) rc = err_set(MMSB_ENOMEM, "%s: parent sizes", fn);
    if (rc == 0) rc = parents_check(e, child, parents, count, sizes, fn);
    if (rc == 0 && op_is_builtin(op)) {
        rc = op_check(op, params, params_len, sizes, count, pe->size_bytes);
        if (rc != 0) {
            char detail[400];
            snprintf(detail, sizeof detail, "%s", mmsb_last_error());
            rc = err_set(rc, "%s: %s", fn, detail);
        }
    }
    free(sizes);
    return rc;
}

static int derived_node(mmsb_engine *e, uint64_t child, const char *fn, uint32_t *n_out) {
    ASSERT(fn != NULL && n_out != NULL);
    page_entry *pe;
    int rc = page_lookup(e, child, fn, &pe);
    if (rc != 0) return rc;
    uint32_t n = graph_node(&e->g, child);
    if (n == 0 || graph_at(&e->g, n)->op == 0) {
        return err_set(MMSB_EINVAL, "%s: page %llu is not derived", fn, (unsigned long long)child);
    }
    *n_out = n;
    ASSERT(graph_at(&e->g, *n_out)->page_id == child);
    return 0;
}

/* ---- logging and committing a graph change -------------------------------------------- */

typedef enum { G_DERIVE, G_EDGE_ADD, G_EDGE_REMOVE, G_UNDERIVE } graph_change;

/* Logs the change just made to child's definition, computes child (unless
 * it stopped being derived) and commits; on any failure the commit is rolled
 * back and the saved definition restored. */
static int commit_graph_change(mmsb_engine *e, graph_change what, uint64_t child, uint64_t parent,
                               definition *old, mmsb_commit_result *out) {
    ASSERT(child != 0 && old != NULL);
    ASSERT((what == G_EDGE_ADD || what == G_EDGE_REMOVE) == (parent != 0));
    commit_begin(e);
    uint32_t n = graph_node(&e->g, child);
    int rc = 0;
    switch (what) {
    case G_DERIVE: rc = record_derive(e, child, n); break;
    case G_EDGE_ADD: rc = record_edge(e, REC_EDGE_ADD, parent, child); break;
    case G_EDGE_REMOVE: rc = record_edge(e, REC_EDGE_REMOVE, parent, child); break;
    case G_UNDERIVE: rc = record_underive(e, child); break;
    }
    if (rc == 0 && what != G_UNDERIVE) rc = change_include(e, n);
    uint64_t seq;
    if (rc == 0) rc = commit_finish(e, 0, &seq);
    else commit_abandon(e, rc);
    if (rc != 0) definition_restore(e, child, old);
    if (rc == 0) commit_result_out(e, out);
    definition_free(old);
    return rc;
}

/* ---- the API ------------------------------------------------------------------------- */

/* A new version changes the signatures of the operation's pages: they are
 * recomputed in one commit now, so no page keeps the old version's output. */
static int recompute_op_pages(mmsb_engine *e, uint32_t op, mmsb_commit_result *out) {
    ASSERT(!e->read_only);
    ASSERT(op >= MMSB_OP_USER_FIRST && !e->cc.active);
    graph *g = &e->g;
    commit_begin(e);
    int rc = 0;
    for (uint32_t v = 1; rc == 0 && v < g->count; v++) {
        if (g->nodes[v].op == op && g->nodes[v].free_next == 0) rc = change_include(e, v);
    }
    uint64_t seq;
    if (rc == 0) rc = commit_finish(e, 0, &seq);
    else commit_abandon(e, rc);
    if (rc == 0) commit_result_out(e, out);
    return rc;
}

static int register_checked(mmsb_engine *e, uint32_t op, uint32_t version, mmsb_op_fn fn, void *user) {
    ASSERT(!e->cc.active && !e->read_only);
    const user_op *found = op_find(&e->ops, op);
    user_op old = found != NULL ? *found : (user_op){0};
    int rc = op_register(&e->ops, op, version, fn, user);
    if (rc != 0 || (found != NULL && old.version == version)) return rc;
    rc = recompute_op_pages(e, op, NULL);
    if (rc == 0) return 0;
    if (found != NULL) {
        int restored = op_register(&e->ops, op, old.version, old.fn, old.user);
        ASSERT(restored == 0); /* the slot it had is still there */
    } else {
        op_unregister(&e->ops, op);
    }
    return rc;
}

MMSB_API int mmsb_op_register(mmsb_engine *engine, uint32_t op, uint32_t version, mmsb_op_fn fn,
                              void *user) {
    int rc = engine_enter_writer(engine, "mmsb_op_register");
    if (rc != 0) return rc;
    rc = register_checked(engine, op, version, fn, user);
    return engine_leave_writer(engine, rc);
}

static int derive_checked(mmsb_engine *e, uint64_t child, const mmsb_derive_spec *s, mmsb_commit_result *out) {
    ASSERT(!e->cc.active && !e->read_only);
    if (s == NULL || s->struct_size < sizeof *s)
        return err_set(MMSB_EINVAL, "mmsb_derive: spec is NULL or its struct_size is below %zu", sizeof *s);
    if (s->flags != 0) return err_set(MMSB_EINVAL, "mmsb_derive: flags 0x%x (none are defined)", s->flags);
    if (s->parents == NULL && s->parent_count > 0) return err_set(MMSB_EINVAL, "mmsb_derive: parents is NULL");
    if (s->params == NULL && s->params_len > 0)
        return err_set(MMSB_EINVAL, "mmsb_derive: params is NULL with params_len %llu",
                       (unsigned long long)s->params_len);
    int rc = commit_result_check(out, "mmsb_derive");
    if (rc == 0) rc = op_fits(e, child, s->op, s->params, s->params_len, s->parents, s->parent_count, "mmsb_derive");
    definition old;
    if (rc == 0) rc = definition_save(e, graph_node(&e->g, child), &old);
    if (rc != 0) return rc;
    rc = define(e, child, s->op, s->params, (uint32_t)s->params_len, s->parents, s->parent_count, &old);
    if (rc != 0) {
        definition_free(&old);
        return rc;
    }
    return commit_graph_change(e, G_DERIVE, child, 0, &old, out);
}

MMSB_API int mmsb_derive(mmsb_engine *engine, uint64_t child, const mmsb_derive_spec *spec,
                         mmsb_commit_result *result) {
    int rc = engine_enter_writer(engine, "mmsb_derive");
    if (rc != 0) return rc;
    rc = derive_checked(engine, child, spec, result);
    return engine_leave_writer(engine, rc);
}

/* The parent list of node n with one parent added or one removed. */
static uint64_t *parents_with(const mmsb_engine *e, uint32_t n, uint64_t parent, bool add, uint32_t *count) {
    ASSERT(n != 0 && count != NULL);
    const gnode *v = graph_at(&e->g, n);
    uint64_t *ids = malloc((v->parent_count + 1) * sizeof *ids);
    if (ids == NULL) return NULL;
    uint32_t c = 0;
    bool removed = false;
    for (uint32_t k = v->parent_count; k > 0; k--) { /* the last occurrence goes */
        uint64_t id = graph_at(&e->g, v->parents[k - 1])->page_id;
        if (!add && !removed && id == parent) {
            removed = true;
            continue;
        }
        ids[c++] = id;
    }
    for (uint32_t i = 0; i < c / 2; i++) { /* back to the original order */
        uint64_t t = ids[i];
        ids[i] = ids[c - 1 - i];
        ids[c - 1 - i] = t;
    }
    if (add) ids[c++] = parent;
    ASSERT(c <= v->parent_count + 1);
    *count = removed || add ? c : UINT32_MAX;
    return ids;
}

static int edge_change(mmsb_engine *e, uint64_t parent, uint64_t child, bool add, mmsb_commit_result *out) {
    ASSERT(!e->cc.active && !e->read_only);
    const char *fn = add ? "mmsb_edge_add" : "mmsb_edge_remove";
    uint32_t n, count = 0;
    int rc = commit_result_check(out, fn);
    if (rc == 0) rc = derived_node(e, child, fn, &n);
    if (rc != 0) return rc;
    uint64_t *ids = parents_with(e, n, parent, add, &count);
    if (ids == NULL) return err_set(MMSB_ENOMEM, "%s: parent list", fn);
    const gnode *v = graph_at(&e->g, n);
    if (count == UINT32_MAX) {
        rc = err_set(MMSB_ENOTFOUND, "%s: page %llu is not a parent of page %llu", fn, (unsigned long long)parent,
                     (unsigned long long)child);
    } else if (count == 0) {
        rc = err_set(MMSB_EINVAL, "%s: page %llu is the last parent of %llu; use mmsb_underive", fn,
                     (unsigned long long)parent, (unsigned long long)child);
    } else {
        rc = op_fits(e, child, v->op, v->params, v->params_len, ids, count, fn);
    }
    definition old;
    if (rc == 0) rc = definition_save(e, n, &old);
    if (rc == 0) {
        rc = define(e, child, v->op, old.params, old.params_len, ids, count, &old);
        if (rc == 0) rc = commit_graph_change(e, add ? G_EDGE_ADD : G_EDGE_REMOVE, child, parent, &old, out);
        else definition_free(&old);
    }
    free(ids);
    return rc;
}

MMSB_API int mmsb_edge_add(mmsb_engine *engine, uint64_t parent, uint64_t child, mmsb_commit_result *result) {
    int rc = engine_enter_writer(engine, "mmsb_edge_add");
    if (rc != 0) return rc;
    rc = edge_change(engine, parent, child, true, result);
    return engine_leave_writer(engine, rc);
}

MMSB_API int mmsb_edge_remove(mmsb_engine *engine, uint64_t parent, uint64_t child, mmsb_commit_result *result) {
    int rc = engine_enter_writer(engine, "mmsb_edge_remove");
    if (rc != 0) return rc;
    rc = edge_change(engine, parent, child, false, result);
    return engine_leave_writer(engine, rc);
}

static void underive_node(graph *g, uint32_t n) {
    ASSERT(n != 0 && n < g->count);
    graph_clear_parents(g, n);
    ASSERT(graph_at(g, n)->parent_count == 0);
    int rc = set_op(g, n, 0, NULL, 0);
    ASSERT(rc == 0); /* no params: no allocation */
    graph_at(g, n)->signature = (h128){0, 0};
    release_if_unused(g, n);
}

MMSB_API int mmsb_underive(mmsb_engine *engine, uint64_t child, mmsb_commit_result *result) {
    int rc = engine_enter_writer(engine, "mmsb_underive");
    if (rc != 0) return rc;
    uint32_t n;
    definition old;
    rc = commit_result_check(result, "mmsb_underive");
    if (rc == 0) rc = derived_node(engine, child, "mmsb_underive", &n);
    if (rc == 0) rc = definition_save(engine, n, &old);
    if (rc == 0) {
        underive_node(&engine->g, n);
        ckpt_mark(engine, child);
        rc = commit_graph_change(engine, G_UNDERIVE, child, 0, &old, result);
    }
    return engine_leave_writer(engine, rc);
}

MMSB_API int mmsb_derive_info(mmsb_engine *engine, uint64_t page_id, mmsb_deriveinfo *info,
                              uint64_t *parents_out, uint32_t parents_cap) {
    int rc = engine_enter(engine, "mmsb_derive_info");
    if (rc != 0) return rc;
    page_entry *pe;
    if (info == NULL || info->struct_size < sizeof *info || (parents_out == NULL && parents_cap > 0)) {
        rc = err_set(MMSB_EINVAL, "mmsb_derive_info: info is NULL or small, or parents_out is NULL with parents_cap %u",
                     parents_cap);
    } else {
        rc = page_lookup(engine, page_id, "mmsb_derive_info", &pe);
    }
    if (rc == 0) {
        mmsb_deriveinfo out = {.struct_size = sizeof out};
        uint32_t n = graph_node(&engine->g, page_id);
        if (n != 0) {
            const gnode *v = graph_at(&engine->g, n);
            out.op = v->op;
            out.op_version = op_version(&engine->ops, v->op);
            out.parent_count = v->parent_count;
            out.child_count = v->child_count;
            out.params_len = v->params_len;
            digest_to_bytes(v->signature, out.signature.bytes);
            for (uint32_t k = 0; k < v->parent_count && k < parents_cap; k++) {
                parents_out[k] = graph_at(&engine->g, v->parents[k])->page_id;
            }
        }
        *info = out;
    }
    engine_leave(engine);
    return rc;
}

/* ---- freeing pages --------------------------------------------------------------------- */

int derive_page_freeing(mmsb_engine *e, uint64_t id, bool check_only) {
    ASSERT(id != 0 && id <= e->opts.pages_max);
    uint32_t n = graph_node(&e->g, id);
    if (n == 0) return 0;
    const gnode *v = graph_at(&e->g, n);
    if (v->child_count > 0) {
        return err_set(MMSB_EDEPENDENTS,
                       "page %llu is a parent of %u derived page(s), page %llu among them; remove those edges first",
                       (unsigned long long)id, v->child_count,
                       (unsigned long long)graph_at(&e->g, v->children[0])->page_id);
    }
    if (!check_only) underive_node(&e->g, n);
    return 0;
}

/* ---- replay ------------------------------------------------------------------------------ */

static int replay_corrupt(const log_rec *r, const char *why) {
    ASSERT(r->type != 0);
    ASSERT(r != NULL && why != NULL);
    char detail[400];
    snprintf(detail, sizeof detail, "%s", mmsb_last_error());
    return err_set(MMSB_ECORRUPT, "%s seq %llu: %s (%s)", rec_type_name(r->type), (unsigned long long)r->seq, why,
                   detail);
}

/* A derivation read from disk (log or checkpoint): checked like the API
 * checks one, then defined. parents_le: count little-endian u64 ids. */
static int define_from_disk(mmsb_engine *e, uint64_t child, uint32_t op, const uint8_t *params,
                            uint32_t params_len, const uint8_t *parents_le, uint32_t count) {
    ASSERT(child != 0 && count >= 1 && count <= DERIVE_PARENTS_MAX);
    ASSERT(parents_le != NULL && params_len <= DERIVE_PARAMS_MAX);
    if (!op_is_builtin(op) && op < MMSB_OP_USER_FIRST) return err_set(MMSB_ECORRUPT, "operation %u is not defined", op);
    uint64_t *ids = malloc(count * sizeof *ids);
    uint64_t *sizes = malloc(count * sizeof *sizes);
    page_entry *pe;
    definition old = {0};
    int rc = ids == NULL || sizes == NULL ? err_set(MMSB_ENOMEM, "derivation of %u parents", count)
                                          : page_lookup(e, child, "recovery", &pe);
    for (uint32_t k = 0; rc == 0 && k < count; k++) ids[k] = get_le64(parents_le + 8ull * k);
    if (rc == 0) rc = parents_check(e, child, ids, count, sizes, "recovery");
    if (rc == 0 && op_is_builtin(op)) rc = op_check(op, params, params_len, sizes, count, pe->size_bytes);
    if (rc == 0) rc = definition_save(e, graph_node(&e->g, child), &old);
    if (rc == 0) rc = define(e, child, op, params, params_len, ids, count, &old);
    definition_free(&old);
    free(ids);
    free(sizes);
    return rc;
}

static int replay_derive(mmsb_engine *e, const log_rec *r) {
    ASSERT(r->length >= DERIVE_FIXED_BYTES);
    ASSERT(r->type == REC_DERIVE && !e->cc.active);
    rec_derive d;
    int rc = rec_decode_derive(r, &d);
    if (rc == 0) rc = define_from_disk(e, d.child, d.op, d.params, d.params_len, d.parents, d.parent_count);
    return rc == 0 ? 0 : replay_corrupt(r, "cannot be applied");
}

int derive_load(mmsb_engine *e, const ckpt_derive *d, const char *fn) {
    ASSERT(d->child != 0);
    ASSERT(d != NULL && !e->cc.active);
    int rc = define_from_disk(e, d->child, d->op, d->params, d->params_len, d->parents, d->parent_count);
    if (rc != 0) {
        char detail[300];
        snprintf(detail, sizeof detail, "%s", mmsb_last_error());
        return err_set(rc == MMSB_ENOMEM ? rc : MMSB_ECORRUPT, "%s: derivation of page %llu: %s",
                       fn, (unsigned long long)d->child, detail);
    }
    graph_at(&e->g, graph_node(&e->g, d->child))->signature = d->signature;
    return 0;
}

static int replay_edge(mmsb_engine *e, const log_rec *r) {
    ASSERT(!e->cc.active);
    ASSERT(r->type == REC_EDGE_ADD || r->type == REC_EDGE_REMOVE);
    uint64_t parent, child;
    int rc = rec_decode_edge(r, &parent, &child);
    uint32_t n = 0, count;
    if (rc == 0) rc = derived_node(e, child, "recovery", &n);
    page_entry *pe;
    if (rc == 0) rc = page_lookup(e, parent, "recovery", &pe);
    uint64_t *ids = rc == 0 ? parents_with(e, n, parent, r->type == REC_EDGE_ADD, &count) : NULL;
    if (rc == 0 && ids == NULL) return err_set(MMSB_ENOMEM, "recovery: edge");
    definition old = {0};
    if (rc == 0 && (count == 0 || count == UINT32_MAX)) rc = err_set(MMSB_ECORRUPT, "no such edge, or the last one");
    if (rc == 0) rc = definition_save(e, n, &old);
    const gnode *v = rc == 0 ? graph_at(&e->g, n) : NULL;
    if (rc == 0) rc = define(e, child, v->op, old.params, old.params_len, ids, count, &old);
    definition_free(&old);
    free(ids);
    return rc == 0 ? 0 : replay_corrupt(r, "cannot be applied");
}

int derive_replay(mmsb_engine *e, const log_rec *r) {
    ASSERT(r != NULL && !e->cc.active);
    uint64_t child;
    uint32_t n;
    switch (r->type) {
    case REC_DERIVE: return replay_derive(e, r);
    case REC_EDGE_ADD:
    case REC_EDGE_REMOVE: return replay_edge(e, r);
    case REC_UNDERIVE:
        if (rec_decode_underive(r, &child) != 0 || derived_node(e, child, "recovery", &n) != 0) {
            return replay_corrupt(r, "not a derived page");
        }
        underive_node(&e->g, n);
        ckpt_mark(e, child);
        return 0;
    default: ASSERT(!"not a graph record");
    }
}
