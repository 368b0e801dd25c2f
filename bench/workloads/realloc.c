/* Workload 6 - realloc growth: vectors and strings grown by appending.
 * usage: realloc [ITERS=4000000] [THREADS=1] [VECTORS=256]
 * Keeps VECTORS growable buffers.  Each step appends to a random one:
 *  - even-numbered buffers are "vectors": 8-byte elements, capacity grown
 *    by 1.5x via realloc when full;
 *  - odd-numbered buffers are "strings": a 1..24 byte piece appended with
 *    realloc(len + piece + 1) on every append (the naive pattern that
 *    relies on realloc growing in place).
 * When a buffer passes its random size limit (log-uniform, 64 B .. 1 MiB
 * for vectors, 64 B .. 64 KiB for strings)
 * its contents are verified and it is freed and restarted.  Other small
 * allocations happen in between so in-place growth is not free.
 * THREADS>1 runs independent copies in parallel.
 */
#include "bench.h"

struct buf { unsigned char *p; size_t len, cap, limit; uint64_t h; };

static long iters, nvec;

static size_t pick_limit(rng_t *r, int string) {
    int lg = (int)rng_range(r, 6, string ? 15 : 19);  /* 64 B .. 64 KiB / 1 MiB */
    return ((size_t)1 << lg) + rng_next(r) % ((size_t)1 << lg);
}

static uint64_t finish(struct buf *b) {
    uint64_t h = 0, len = b->len;
    for (size_t i = 0; i < b->len; i += 61) h = h * 31 + b->p[i];
    /* recompute: content byte i is (i * 7 + seed) & 0xff */
    for (size_t i = 0; i < b->len; i += 61)
        if (b->p[i] != (unsigned char)(i * 7 + b->h)) { fprintf(stderr, "corruption in buffer\n"); exit(3); }
    free(b->p);
    b->p = NULL; b->len = b->cap = 0;
    return h + len;
}

static void *run(void *arg) {
    uint64_t id = (uintptr_t)arg, sum = 0;
    rng_t r = rng_seed(6000 + id);
    struct buf *v = calloc(nvec, sizeof *v);
    void *noise[64] = { 0 };
    for (long i = 0; i < nvec; i++) { v[i].limit = pick_limit(&r, (int)(i & 1)); v[i].h = rng_next(&r) & 0xff; }
    for (long it = 0; it < iters; it++) {
        long k = (long)(rng_next(&r) % nvec);
        struct buf *b = &v[k];
        size_t add = (k & 1) ? rng_range(&r, 1, 24) : 8;
        if (k & 1) {                                   /* string: exact realloc */
            b->p = xrealloc(b->p, b->len + add + 1);
            b->cap = b->len + add + 1;
        } else if (b->len + add > b->cap) {            /* vector: 1.5x growth */
            b->cap = b->cap ? b->cap + b->cap / 2 + 8 : 32;
            b->p = xrealloc(b->p, b->cap);
        }
        for (size_t j = 0; j < add; j++) b->p[b->len + j] = (unsigned char)((b->len + j) * 7 + b->h);
        b->len += add;
        if (k & 1) b->p[b->len] = 0;
        if (b->len >= b->limit) {
            sum += finish(b);
            b->limit = pick_limit(&r, (int)(k & 1));
            b->h = rng_next(&r) & 0xff;
        }
        if ((it & 7) == 0) {                           /* interleaved small allocations */
            int s = (int)(rng_next(&r) & 63);
            free(noise[s]);
            noise[s] = xmalloc(small_size(&r));
        }
    }
    for (long i = 0; i < nvec; i++) if (v[i].p) sum += finish(&v[i]);
    for (int s = 0; s < 64; s++) free(noise[s]);
    free(v);
    return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv) {
    iters = arg_long(argc, argv, 1, 4000000);
    long threads = arg_long(argc, argv, 2, 1);
    nvec = arg_long(argc, argv, 3, 256);
    if (iters < 0 || threads < 0 || nvec < 0) usage_exit("usage: realloc [ITERS] [THREADS] [VECTORS]\n");
    print_checksum(run_threads(run, threads));
    return 0;
}
