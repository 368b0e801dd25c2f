/* Workload 7 - large blocks, 64 KiB .. 32 MiB, pages touched.
 * usage: large [ITERS=400] [THREADS=1] [ALIVE=20]
 * Phase 1 (ITERS*4 steps): 64 slots of 64 KiB .. 1 MiB blocks replaced at
 *   random (sizes around glibc's dynamic mmap threshold).
 * Phase 2 (ITERS steps): ALIVE slots of 5 .. 25 MiB blocks (~20 alive at
 *   once, several hundred MiB live), replaced at random; every 8th
 *   request instead goes up to 32 MiB.
 * Every new block has every page written (so RSS reflects what the
 * allocator really keeps), and is checked at a few pages before free.
 * Peak RSS is the interesting number here, as much as time.
 * THREADS>1 runs independent copies in parallel (memory multiplies!).
 */
#include "bench.h"

#define PAGE 4096

static long iters, alive;

struct blk { unsigned char *p; size_t n; uint64_t tag; };

static void fill(struct blk *b) {
    for (size_t off = 0; off < b->n; off += PAGE) b->p[off] = (unsigned char)(b->tag + off / PAGE);
    b->p[b->n - 1] = (unsigned char)b->tag;
}
static uint64_t drop(struct blk *b) {
    if (!b->p) return 0;
    uint64_t s = 0;
    size_t pages = (b->n + PAGE - 1) / PAGE;
    for (size_t k = 0; k < pages; k += 1 + pages / 16) {
        if (b->p[k * PAGE] != (unsigned char)(b->tag + k)) { fprintf(stderr, "corruption in large block\n"); exit(3); }
        s += b->p[k * PAGE];
    }
    if (b->p[b->n - 1] != (unsigned char)b->tag) { fprintf(stderr, "corruption at end of large block\n"); exit(3); }
    free(b->p);
    b->p = NULL;
    return s + b->n;
}

static void *run(void *arg) {
    uint64_t id = (uintptr_t)arg, sum = 0;
    rng_t r = rng_seed(7000 + id);
    struct blk mid[64] = { 0 };
    for (long i = 0; i < iters * 4; i++) {
        struct blk *b = &mid[rng_next(&r) % 64];
        sum += drop(b);
        b->n = rng_range(&r, 64 * 1024, 1024 * 1024);
        b->tag = rng_next(&r);
        b->p = xmalloc(b->n);
        fill(b);
    }
    /* keep half of the mid-size blocks alive through phase 2 */
    for (int k = 0; k < 64; k += 2) sum += drop(&mid[k]);
    struct blk *big = calloc(alive, sizeof *big);
    for (long i = 0; i < iters; i++) {
        struct blk *b = &big[rng_next(&r) % alive];
        sum += drop(b);
        b->n = (i & 7) == 7 ? rng_range(&r, 25u << 20, 32u << 20) : rng_range(&r, 5u << 20, 25u << 20);
        b->tag = rng_next(&r);
        b->p = xmalloc(b->n);
        fill(b);
    }
    for (long k = 0; k < alive; k++) sum += drop(&big[k]);
    for (int k = 0; k < 64; k++) sum += drop(&mid[k]);
    free(big);
    return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv) {
    iters = arg_long(argc, argv, 1, 400);
    long threads = arg_long(argc, argv, 2, 1);
    alive = arg_long(argc, argv, 3, 20);
    if (iters < 0 || threads < 0 || alive < 0) usage_exit("usage: large [ITERS] [THREADS] [ALIVE]\n");
    print_checksum(run_threads(run, threads));
    return 0;
}
