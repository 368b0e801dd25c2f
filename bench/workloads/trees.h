/* The nodes of workload 2 (trees.c) and the tree operations on them, shared
 * with the diagnostic bench/tools/listphases.c, which times that workload
 * step by step. */
#ifndef OXBENCH_TREES_H
#define OXBENCH_TREES_H
#include "bench.h"

struct tnode { struct tnode *l, *r; uint64_t v; };
struct lnode { struct lnode *prev, *next; uint32_t len; uint32_t v; char pad[]; };

static struct tnode *build(int d, uint64_t v) {
    struct tnode *n = xmalloc(sizeof *n);
    n->v = v;
    if (d > 0) { n->l = build(d - 1, 2 * v); n->r = build(d - 1, 2 * v + 1); }
    else n->l = n->r = NULL;
    return n;
}
static uint64_t walk_free(struct tnode *n) {
    if (!n) return 0;
    uint64_t s = n->v + walk_free(n->l) + walk_free(n->r);
    free(n);
    return s;
}
static inline uint64_t walk(const struct tnode *n) { return n ? n->v ^ (walk(n->l) + walk(n->r)) : 0; }

/* A list node of 24..104 bytes, its padding filled. */
static inline struct lnode *new_lnode(rng_t *r, uint32_t v, uint32_t fill) {
    uint32_t len = (uint32_t)rng_range(r, 0, 80);
    struct lnode *x = xmalloc(sizeof *x + len);
    x->len = len; x->v = v; memset(x->pad, (int)fill, len);
    return x;
}
#endif
