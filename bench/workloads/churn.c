/* Workload 1 - small-object churn.
 * usage: churn [ITERS=2000000] [THREADS=1] [LIVE=50000]
 * Each thread (independent copies; THREADS=1 is the single-thread case)
 * keeps a table of LIVE slots.  Each iteration picks a random slot, frees
 * the block there (after verifying its stamp) and allocates a new one of a
 * random size in 8..1024, so lifetimes are random (geometric) and the live
 * set is tens of thousands of blocks.  Every 64th step also does a short
 * burst of immediately freed temporaries (the very common malloc/free pair).
 */
#include "bench.h"

static long iters, live;

struct slot { void *p; uint32_t n; uint64_t tag; };

static void *run(void *arg) {
    uint64_t id = (uintptr_t)arg, sum = 0;
    rng_t r = rng_seed(1000 + id);
    struct slot *s = calloc(live, sizeof *s);
    if (!s) exit(4);
    for (long i = 0; i < iters; i++) {
        struct slot *e = &s[rng_next(&r) % live];
        if (e->p) { sum += check(e->p, e->n, e->tag); free(e->p); }
        e->n = small_size(&r);
        e->tag = rng_next(&r);
        e->p = xmalloc(e->n);
        stamp(e->p, e->n, e->tag);
        if ((i & 63) == 0) {
            void *t[8];
            for (int k = 0; k < 8; k++) { size_t n = small_size(&r); t[k] = xmalloc(n); stamp(t[k], n, (uint64_t)k); }
            for (int k = 7; k >= 0; k--) { sum += ((unsigned char *)t[k])[0]; free(t[k]); }
        }
    }
    for (long j = 0; j < live; j++)
        if (s[j].p) { sum += check(s[j].p, s[j].n, s[j].tag); free(s[j].p); }
    free(s);
    return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv) {
    iters = arg_long(argc, argv, 1, 2000000);
    long threads = arg_long(argc, argv, 2, 1);
    live = arg_long(argc, argv, 3, 50000);
    if (iters < 0 || threads < 0 || live < 0) usage_exit("usage: churn [ITERS] [THREADS] [LIVE]\n");
    uint64_t total = 0;
    if (threads == 1) total = (uintptr_t)run((void *)0);
    else {
        pthread_t *t = xmalloc(threads * sizeof *t);
        for (long i = 0; i < threads; i++) pthread_create(&t[i], NULL, run, (void *)(uintptr_t)i);
        for (long i = 0; i < threads; i++) { void *rv; pthread_join(t[i], &rv); total += (uintptr_t)rv; }
        free(t);
    }
    print_checksum(total);
    return 0;
}
