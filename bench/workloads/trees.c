/* Workload 2 - build and free trees and lists of small nodes.
 * usage: trees [ITERS=40] [THREADS=1] [DEPTH=16]
 * Per iteration: one long-lived binary tree of depth DEPTH-2 stays alive
 * (built once), and the iteration builds many short-lived trees of
 * depths 4..DEPTH (binary-trees style), walks and frees them; then
 * builds a doubly linked list of ~2^DEPTH variable-size nodes (24..104
 * bytes), deletes every other node, appends again, walks and frees it.
 * THREADS>1 runs independent copies in parallel.
 */
#include "trees.h"

static long iters, depth;

static void *run(void *arg) {
    uint64_t id = (uintptr_t)arg, sum = 0;
    rng_t r = rng_seed(2000 + id);
    struct tnode *longlived = build(depth - 2, 1);
    for (long it = 0; it < iters; it++) {
        for (int d = 4; d <= depth; d += 2) {
            long count = 1L << (depth - d);     /* ~2^(depth+1) nodes per depth */
            for (long k = 0; k < count; k++) sum += walk_free(build(d, (uint64_t)k + it));
        }
        /* list phase */
        long n = 1L << depth;
        struct lnode head = { &head, &head, 0, 0 };
        for (long k = 0; k < n; k++) {
            struct lnode *x = new_lnode(&r, (uint32_t)k, (uint32_t)k);
            x->prev = head.prev; x->next = &head; head.prev->next = x; head.prev = x;
        }
        int odd = 0;
        for (struct lnode *x = head.next, *nx; x != &head; x = nx) {
            nx = x->next;
            if (odd ^= 1) { x->prev->next = x->next; x->next->prev = x->prev; sum += x->v; free(x); }
        }
        for (long k = 0; k < n / 2; k++) {
            struct lnode *x = new_lnode(&r, (uint32_t)(k * 3), (uint32_t)k);
            x->next = head.next; x->prev = &head; head.next->prev = x; head.next = x;
        }
        for (struct lnode *x = head.next, *nx; x != &head; x = nx) {
            nx = x->next;
            sum += x->v + (x->len ? (unsigned char)x->pad[x->len - 1] : 0);
            free(x);
        }
        sum += walk(longlived);
    }
    sum += walk_free(longlived);
    return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv) {
    iters = arg_long(argc, argv, 1, 40);
    long threads = arg_long(argc, argv, 2, 1);
    depth = arg_long(argc, argv, 3, 16);
    if (iters < 0 || threads < 0 || depth < 6 || depth > 24) usage_exit("usage: trees [ITERS] [THREADS] [DEPTH 6..24]\n");
    print_checksum(run_threads(run, threads));
    return 0;
}
