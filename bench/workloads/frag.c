/* Workload 8 - fragmentation.
 * usage: frag [ITERS=4] [THREADS=1] [BLOCKS=200000]
 * Per round: allocate BLOCKS mixed-size blocks (16 .. 4096 bytes, skewed
 * small; touched), free ~90% of them chosen at random, then allocate
 * larger blocks (4 .. 64 KiB) totalling about as much as was freed, which
 * an allocator can only satisfy from the freed space if it coalesces.
 * Survivors from each round stay alive into the next round, so the heap is
 * riddled with holes.  Peak RSS is the interesting number.
 * THREADS>1 runs independent copies in parallel.
 */
#include "bench.h"

static long iters, nblocks;

struct blk { void *p; uint32_t n; uint64_t tag; };

static void *run(void *arg) {
    uint64_t id = (uintptr_t)arg, sum = 0;
    rng_t r = rng_seed(8000 + id);
    struct blk *b = calloc(nblocks, sizeof *b);
    struct blk *keep = NULL; size_t nkeep = 0, capkeep = 0;
    struct blk *bigs = NULL; size_t nbig = 0, capbig = 0;
    for (long it = 0; it < iters; it++) {
        size_t freed = 0;
        for (long i = 0; i < nblocks; i++) {
            uint32_t n = (rng_next(&r) & 3) ? (uint32_t)small_size(&r) + 8 : (uint32_t)rng_range(&r, 1025, 4096);
            b[i].n = n; b[i].tag = rng_next(&r);
            b[i].p = xmalloc(n);
            memset(b[i].p, (int)(b[i].tag & 0xff), n);
            stamp(b[i].p, n, b[i].tag);
        }
        for (long i = 0; i < nblocks; i++) {
            if (rng_next(&r) % 10) { sum += check(b[i].p, b[i].n, b[i].tag); freed += b[i].n; free(b[i].p); }
            else {
                if (nkeep == capkeep) { capkeep = capkeep ? capkeep * 2 : 1024; keep = xrealloc(keep, capkeep * sizeof *keep); }
                keep[nkeep++] = b[i];
            }
        }
        /* free the previous round's large blocks, then ask for new ones */
        for (size_t i = 0; i < nbig; i++) { sum += check(bigs[i].p, bigs[i].n, bigs[i].tag); free(bigs[i].p); }
        nbig = 0;
        for (size_t got = 0; got < freed;) {
            uint32_t n = (uint32_t)rng_range(&r, 4096, 65536);
            if (nbig == capbig) { capbig = capbig ? capbig * 2 : 1024; bigs = xrealloc(bigs, capbig * sizeof *bigs); }
            struct blk *x = &bigs[nbig++];
            x->n = n; x->tag = rng_next(&r); x->p = xmalloc(n);
            memset(x->p, 1, n);
            stamp(x->p, n, x->tag);
            got += n;
        }
    }
    for (size_t i = 0; i < nbig; i++) { sum += check(bigs[i].p, bigs[i].n, bigs[i].tag); free(bigs[i].p); }
    for (size_t i = 0; i < nkeep; i++) { sum += check(keep[i].p, keep[i].n, keep[i].tag); free(keep[i].p); }
    free(keep); free(bigs); free(b);
    return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv) {
    iters = arg_long(argc, argv, 1, 4);
    long threads = arg_long(argc, argv, 2, 1);
    nblocks = arg_long(argc, argv, 3, 200000);
    if (iters < 0 || threads < 0 || nblocks < 0) usage_exit("usage: frag [ITERS] [THREADS] [BLOCKS]\n");
    print_checksum(run_threads(run, threads));
    return 0;
}
