/*
 * graph.h - the dependency DAG: which pages are derived, from which parents,
 * by which operation; a topological order kept up to date incrementally
 * (Pearce-Kelly: an edge insert reorders only the region between its two
 * ends, and a cycle is found before anything changes).
 *
 * Only pages that take part in the graph have a node; node_of maps a page id
 * to its node. Nodes are reused LIFO, so the same operations give the same
 * node numbers. Every traversal is iterative, with explicit stacks.
 */
#ifndef MMSB_GRAPH_H
#define MMSB_GRAPH_H

#include "base/kern.h"
#include "base/vm.h"

/* The first 64 bytes hold what a propagation pass reads for every node it
 * passes (one cache line); the rest is read for nodes it computes. */
typedef struct gnode {
    uint64_t page_id;
    uint64_t mark;         /* == the commit's generation: in its affected set */
    uint32_t *parents;     /* node indexes, in the derive order */
    uint32_t *children;    /* node indexes, in the order edges were added */
    uint32_t parent_count, child_count;
    uint32_t indeg;        /* parents in the affected set not yet done */
    uint32_t op;           /* 0: not derived */
    uint64_t changed_mark; /* == the commit's generation: changed in it */
    uint64_t epoch_at_start;
    /* second line */
    uint64_t change_lo, change_hi; /* hull of the bytes changed in the commit */
    h128 signature;        /* of the last computation; zero: never computed */
    uint64_t order;        /* topological: parent.order < child.order */
    uint32_t parent_cap, child_cap;
    uint8_t *params;
    uint32_t params_len;
    uint32_t free_next;    /* free list link (index + 1) while unused */
    uint32_t visit;        /* traversal generation (cycle checks) */
} gnode;

_Static_assert(__builtin_offsetof(gnode, epoch_at_start) + 8 == 64, "the hot fields fill one cache line");

typedef struct graph {
    gnode *nodes;          /* index 0 is never used */
    uint32_t count, cap;   /* nodes[1 .. count) allocated */
    uint32_t free_head;
    vmap node_of;          /* uint32_t per page id: node index, 0 = none */
    uint64_t next_order;
    uint32_t visit_gen;
    uint64_t derived, edges, user_op_pages;
    uint32_t *stack, *found_f, *found_b; /* traversal scratch, cap entries */
    uint64_t *pool;        /* reorder scratch, and propagation's ready heap; cap entries */
} graph;

MUST_CHECK int graph_open(graph *g, uint64_t pages_max);
void graph_close(graph *g);
/* Backs node_of for ids up to `id` (called before a create). */
MUST_CHECK int graph_reserve(graph *g, uint64_t id);

uint32_t graph_node(const graph *g, uint64_t page_id);
static inline gnode *graph_at(const graph *g, uint32_t n) {
    ASSERT(n > 0 && n < g->count);
    return &g->nodes[n];
}
/* The node of a page, created when missing. */
MUST_CHECK int graph_node_get(graph *g, uint64_t page_id, uint32_t *n_out);
/* Drops a node that has no parents, no children and no operation. */
void graph_node_release(graph *g, uint32_t n);

/* Adds parent -> child (both nodes exist): MMSB_ECYCLE and no change when it
 * would close a cycle. Duplicate edges are allowed (concat(a, a)). */
MUST_CHECK int graph_edge_add(graph *g, uint32_t parent, uint32_t child);
/* Removes one parent -> child edge (the last occurrence in the child's
 * parent list); false when there is none. */
bool graph_edge_remove(graph *g, uint32_t parent, uint32_t child);
/* Removes every parent edge of child. */
void graph_clear_parents(graph *g, uint32_t child);

#endif /* MMSB_GRAPH_H */
