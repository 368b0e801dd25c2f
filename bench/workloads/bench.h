/* Shared helpers for the oxmalloc benchmark workloads.
 *
 * Every workload is invoked as   prog [ITERS] [THREADS] [SIZE]
 * (all optional, defaults per workload), prints exactly one line
 *     checksum <16 hex digits>
 * on stdout (deterministic for given parameters, independent of the
 * allocator and of thread scheduling), and diagnostics on stderr.
 * A detected corruption (a block whose contents changed) exits with 3.
 */
#ifndef OXBENCH_H
#define OXBENCH_H

#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>

/* ---- random numbers (splitmix64: small, fast, good enough) ---- */
typedef struct { uint64_t s; } rng_t;

static inline uint64_t rng_next(rng_t *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline rng_t rng_seed(uint64_t seed) { rng_t r = { seed * 0x2545F4914F6CDD1Dull + 1 }; rng_next(&r); return r; }
/* uniform in [lo, hi] */
static inline uint64_t rng_range(rng_t *r, uint64_t lo, uint64_t hi) { return lo + rng_next(r) % (hi - lo + 1); }

/* Small-object size distribution 8..1024 skewed to small sizes, as in
 * typical C/C++ programs: ~50% <= 64, ~80% <= 256. */
static inline size_t small_size(rng_t *r) {
    uint64_t x = rng_next(r), p = x & 1023;
    x >>= 10;
    if (p < 512) return 8 + x % 57;          /* 8..64     */
    if (p < 820) return 65 + x % 192;        /* 65..256   */
    return 257 + x % 768;                    /* 257..1024 */
}

/* ---- argument parsing ---- */
static inline long arg_long(int argc, char **argv, int i, long dflt) {
    if (argc > i) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return -1;
        char *end; long v = strtol(argv[i], &end, 0);
        if (*end || v <= 0) { fprintf(stderr, "bad argument '%s'\n", argv[i]); exit(2); }
        return v;
    }
    return dflt;
}

/* ---- checked allocation ---- */
static inline void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p) { fprintf(stderr, "malloc(%zu) failed\n", n); exit(4); }
    return p;
}
static inline void *xrealloc(void *o, size_t n) {
    void *p = realloc(o, n);
    if (!p) { fprintf(stderr, "realloc(%zu) failed\n", n); exit(4); }
    return p;
}

/* ---- block stamping: tag written at both ends, verified before free ---- */
static inline void stamp(void *p, size_t n, uint64_t tag) {
    unsigned char *c = p;
    if (n >= 16) { memcpy(c, &tag, 8); memcpy(c + n - 8, &tag, 8); }
    else if (n >= 8) memcpy(c, &tag, 8);
    else memset(c, (int)(tag & 0xff), n);
}
static inline uint64_t check(const void *p, size_t n, uint64_t tag) {
    const unsigned char *c = p;
    uint64_t a = 0, b = 0;
    if (n >= 16) { memcpy(&a, c, 8); memcpy(&b, c + n - 8, 8); }
    else if (n >= 8) { memcpy(&a, c, 8); b = a; }
    else { for (size_t i = 0; i < n; i++) if (c[i] != (tag & 0xff)) goto bad; return tag; }
    if (a == tag && b == tag) return tag;
bad:
    fprintf(stderr, "corruption: block %p size %zu tag %016llx\n", (void *)p, n, (unsigned long long)tag);
    exit(3);
}

static inline uint64_t mix(uint64_t h, uint64_t v) {
    h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    return h;
}

static inline double now_sec(void) {
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static inline void print_checksum(uint64_t c) { printf("checksum %016llx\n", (unsigned long long)c); fflush(stdout); }

static inline void usage_exit(const char *text) { fputs(text, stderr); exit(2); }

/* Runs fn(i) on `threads` threads (i = 0..threads-1) and sums what they return. */
static inline uint64_t run_threads(void *(*fn)(void *), long threads) {
    uint64_t total = 0;
    pthread_t *t = xmalloc((size_t)threads * sizeof *t);
    for (long i = 0; i < threads; i++) pthread_create(&t[i], NULL, fn, (void *)(uintptr_t)i);
    for (long i = 0; i < threads; i++) { void *rv; pthread_join(t[i], &rv); total += (uintptr_t)rv; }
    free(t);
    return total;
}

#endif
