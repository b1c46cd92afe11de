/*
 * graph.c - the dependency DAG and its incremental topological order (see
 * graph.h).
 */
#include <stdlib.h>
#include <string.h>

#include "graph.h"

enum { LIST_CAP_MIN = 4 };

int graph_open(graph *g, uint64_t pages_max) {
    ASSERT(pages_max * sizeof(uint32_t) / sizeof(uint32_t) == pages_max);
    ASSERT(g != NULL && pages_max >= 1 && pages_max <= (1ull << 32));
    memset(g, 0, sizeof *g);
    g->count = 1; /* node 0 means "none" */
    g->next_order = 1;
    return vmap_open(&g->node_of, NULL, pages_max * sizeof(uint32_t), 64 * 1024);
}

void graph_close(graph *g) {
    ASSERT(g->nodes != NULL || g->cap == 0);
    ASSERT(g != NULL && g->count <= g->cap + 1);
    for (uint32_t n = 1; n < g->count; n++) {
        free(g->nodes[n].params);
        free(g->nodes[n].parents);
        free(g->nodes[n].children);
    }
    free(g->nodes);
    free(g->stack);
    free(g->found_f);
    free(g->found_b);
    free(g->pool);
    vmap_close(&g->node_of);
    memset(g, 0, sizeof *g);
}

int graph_reserve(graph *g, uint64_t id) {
    ASSERT(g->node_of.base != NULL);
    ASSERT(id >= 1 && id * sizeof(uint32_t) <= g->node_of.bytes_max);
    return vmap_ensure(&g->node_of, id * sizeof(uint32_t));
}

uint32_t graph_node(const graph *g, uint64_t page_id) {
    ASSERT(page_id >= 1);
    return ((const uint32_t *)g->node_of.base)[page_id - 1];
}

static void set_node_of(graph *g, uint64_t page_id, uint32_t n) {
    ASSERT(page_id >= 1 && page_id * sizeof(uint32_t) <= g->node_of.bytes_ready); /* graph_reserve */
    ASSERT(n < g->count);
    ((uint32_t *)g->node_of.base)[page_id - 1] = n;
}

/* Node storage and the traversal scratch grow together (graph calls only,
 * never a change of bytes). */
static int grow(graph *g) {
    ASSERT(g->count >= g->cap && g->cap < UINT32_MAX / 2);
    uint32_t cap = g->cap == 0 ? 64 : 2 * g->cap;
    gnode *nodes = realloc(g->nodes, cap * sizeof *nodes);
    if (nodes != NULL) g->nodes = nodes;
    uint32_t *s = realloc(g->stack, cap * sizeof *s);
    if (s != NULL) g->stack = s;
    uint32_t *f = realloc(g->found_f, cap * sizeof *f);
    if (f != NULL) g->found_f = f;
    uint32_t *b = realloc(g->found_b, cap * sizeof *b);
    if (b != NULL) g->found_b = b;
    uint64_t *pool = realloc(g->pool, cap * sizeof *pool);
    if (pool != NULL) g->pool = pool;
    if (nodes == NULL || s == NULL || f == NULL || b == NULL || pool == NULL) {
        return err_set(MMSB_ENOMEM, "dependency graph: cannot grow to %u nodes", cap);
    }
    g->cap = cap;
    ASSERT(g->count < g->cap);
    return 0;
}

int graph_node_get(graph *g, uint64_t page_id, uint32_t *n_out) {
    ASSERT(n_out != NULL && page_id >= 1);
    uint32_t n = graph_node(g, page_id);
    if (n == 0) {
        if (g->free_head != 0) {
            n = g->free_head - 1;
            g->free_head = g->nodes[n].free_next;
        } else {
            if (g->count >= g->cap) {
                int rc = grow(g);
                if (rc != 0) return rc;
            }
            n = g->count++;
        }
        g->nodes[n] = (gnode){.page_id = page_id, .order = g->next_order++};
        set_node_of(g, page_id, n);
    }
    *n_out = n;
    ASSERT(n != 0 && n < g->count && g->nodes[n].page_id == page_id);
    return 0;
}

void graph_node_release(graph *g, uint32_t n) {
    gnode *v = graph_at(g, n);
    ASSERT(v->parent_count == 0 && v->child_count == 0 && v->op == 0);
    set_node_of(g, v->page_id, 0);
    free(v->params);
    free(v->parents);
    free(v->children);
    *v = (gnode){.free_next = g->free_head};
    ASSERT(n != 0 && n < g->count);
    g->free_head = n + 1;
}

static int list_push(uint32_t **list, uint32_t *count, uint32_t *cap, uint32_t value) {
    ASSERT(*count <= *cap && value != 0);
    ASSERT(*cap < UINT32_MAX / 2);
    if (*count == *cap) {
        uint32_t grown = *cap < LIST_CAP_MIN ? LIST_CAP_MIN : 2 * *cap;
        uint32_t *l = realloc(*list, grown * sizeof *l);
        if (l == NULL) return err_set(MMSB_ENOMEM, "dependency graph: edge list of %u", grown);
        *list = l;
        *cap = grown;
    }
    (*list)[(*count)++] = value;
    return 0;
}

/* Removes the last occurrence of value; false when absent. */
static bool list_remove(uint32_t *list, uint32_t *count, uint32_t value) {
    ASSERT(list != NULL || *count == 0);
    ASSERT(value != 0);
    for (uint32_t i = *count; i > 0; i--) {
        if (list[i - 1] != value) continue;
        memmove(&list[i - 1], &list[i], (*count - i) * sizeof *list);
        (*count)--;
        return true;
    }
    return false;
}

/* ---- Pearce-Kelly ------------------------------------------------------------ */

static uint32_t next_visit(graph *g) {
    ASSERT(g->nodes != NULL || g->count == 1);
    ASSERT(g->count >= 1);
    if (++g->visit_gen == 0) { /* wrapped: clear every mark once */
        for (uint32_t n = 1; n < g->count; n++) g->nodes[n].visit = 0;
        g->visit_gen = 1;
    }
    return g->visit_gen;
}

static int cmp_order(const void *a, const void *b, void *ctx) {
    ASSERT(ctx != NULL);
    const graph *g = ctx;
    ASSERT(g != NULL && a != NULL && b != NULL);
    uint64_t x = g->nodes[*(const uint32_t *)a].order, y = g->nodes[*(const uint32_t *)b].order;
    return (x > y) - (x < y);
}

/* Nodes reachable from y through children with an order below ub, into
 * found; false when x is among them (the new edge would close a cycle). */
static bool discover_forward(graph *g, uint32_t x, uint32_t y, uint64_t ub, uint32_t gen,
                             uint32_t *found, uint32_t *count) {
    ASSERT(x != y && x < g->count && y < g->count);
    ASSERT(gen == g->visit_gen && found != NULL);
    uint32_t sp = 0, n = 0;
    g->stack[sp++] = y;
    g->nodes[y].visit = gen;
    while (sp > 0) {
        gnode *v = &g->nodes[g->stack[--sp]];
        found[n++] = (uint32_t)(v - g->nodes);
        for (uint32_t i = 0; i < v->child_count; i++) {
            uint32_t c = v->children[i];
            if (c == x) return false;
            if (g->nodes[c].visit != gen && g->nodes[c].order < ub) {
                g->nodes[c].visit = gen;
                g->stack[sp++] = c;
            }
        }
    }
    *count = n;
    ASSERT(n <= g->count);
    return true;
}

/* Nodes that reach x through parents with an order above lb. */
static uint32_t discover_backward(graph *g, uint32_t x, uint64_t lb, uint32_t gen, uint32_t *found) {
    ASSERT(x < g->count && gen == g->visit_gen);
    ASSERT(found != NULL);
    uint32_t sp = 0, n = 0;
    g->stack[sp++] = x;
    g->nodes[x].visit = gen;
    while (sp > 0) {
        gnode *v = &g->nodes[g->stack[--sp]];
        found[n++] = (uint32_t)(v - g->nodes);
        for (uint32_t i = 0; i < v->parent_count; i++) {
            uint32_t p = v->parents[i];
            if (g->nodes[p].visit != gen && g->nodes[p].order > lb) {
                g->nodes[p].visit = gen;
                g->stack[sp++] = p;
            }
        }
    }
    return n;
}

/* Keeps the order topological for a new edge x -> y: only nodes ordered
 * between y and x move; the ones that reach x go before the ones y reaches,
 * and together they reuse the same order values. */
static int pk_insert(graph *g, uint32_t x, uint32_t y) {
    ASSERT(x != 0 && y != 0 && x < g->count && y < g->count);
    if (x == y)
        return err_set(MMSB_ECYCLE, "page %llu cannot depend on itself", (unsigned long long)g->nodes[x].page_id);
    uint64_t lb = g->nodes[y].order, ub = g->nodes[x].order;
    if (ub < lb) return 0;
    uint32_t gen = next_visit(g), nf = 0;
    if (!discover_forward(g, x, y, ub, gen, g->found_f, &nf)) {
        return err_set(MMSB_ECYCLE, "edge %llu -> %llu would close a cycle: %llu already depends on %llu",
                       (unsigned long long)g->nodes[x].page_id, (unsigned long long)g->nodes[y].page_id,
                       (unsigned long long)g->nodes[x].page_id, (unsigned long long)g->nodes[y].page_id);
    }
    uint32_t nb = discover_backward(g, x, lb, gen, g->found_b);
    ASSERT(nb >= 1 && nf >= 1 && nb + nf <= g->count);
    qsort_r(g->found_b, nb, sizeof(uint32_t), cmp_order, g);
    qsort_r(g->found_f, nf, sizeof(uint32_t), cmp_order, g);
    /* The pooled order values, ascending: merge the two sorted lists. */
    uint64_t *pool = g->pool;
    uint32_t i = 0, j = 0, k = 0;
    while (i < nb || j < nf) {
        bool take_b = j == nf || (i < nb && g->nodes[g->found_b[i]].order < g->nodes[g->found_f[j]].order);
        pool[k++] = take_b ? g->nodes[g->found_b[i++]].order : g->nodes[g->found_f[j++]].order;
    }
    for (i = 0; i < nb; i++) g->nodes[g->found_b[i]].order = pool[i];
    for (j = 0; j < nf; j++) g->nodes[g->found_f[j]].order = pool[nb + j];
    ASSERT(g->nodes[x].order < g->nodes[y].order);
    return 0;
}

int graph_edge_add(graph *g, uint32_t parent, uint32_t child) {
    ASSERT(parent != 0 && child != 0 && parent < g->count && child < g->count);
    int rc = pk_insert(g, parent, child);
    if (rc != 0) return rc;
    gnode *c = graph_at(g, child);
    rc = list_push(&c->parents, &c->parent_count, &c->parent_cap, parent);
    if (rc != 0) return rc;
    gnode *p = graph_at(g, parent);
    rc = list_push(&p->children, &p->child_count, &p->child_cap, child);
    if (rc != 0) {
        c->parent_count--;
        return rc;
    }
    g->edges++;
    ASSERT(g->nodes[parent].order < g->nodes[child].order);
    return 0;
}

bool graph_edge_remove(graph *g, uint32_t parent, uint32_t child) {
    ASSERT(parent != 0 && child != 0 && parent < g->count && child < g->count);
    ASSERT(g->edges > 0);
    gnode *c = graph_at(g, child), *p = graph_at(g, parent);
    if (!list_remove(c->parents, &c->parent_count, parent)) return false;
    bool had = list_remove(p->children, &p->child_count, child);
    ASSERT(had);
    g->edges--;
    return true;
}

void graph_clear_parents(graph *g, uint32_t child) {
    ASSERT(child != 0 && child < g->count);
    gnode *c = graph_at(g, child);
    while (c->parent_count > 0) graph_edge_remove(g, c->parents[c->parent_count - 1], child);
    ASSERT(c->parent_count == 0);
}
