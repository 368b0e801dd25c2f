/*
 * stress.c - multi-threaded malloc/calloc/realloc/free stress test.
 *
 * NTHREADS threads run random operations on blocks of random sizes (mostly
 * small, some up to 256 KiB).  Blocks travel between threads through a
 * shared array of slots updated with atomic exchange, so most blocks are
 * freed (or realloc'd) by a thread other than their maker.  Every block is
 * filled with a pattern derived from a per-block random tag and its size;
 * the tag lives outside the block (in a "handle"), so the pattern is
 * verified before every free/realloc and any overlap between live blocks
 * (e.g. the same memory handed out twice) is detected.
 *
 * Usage: stress [ops-per-thread]  (default 1000000; 8 threads)
 * Ends with "stress: N passed, M failed".
 */
#include "common.h"

#include <pthread.h>
#include <time.h>

enum { NTHREADS = 8, NSLOTS = 4096, LOCAL = 64, MAX_REPORTS = 10 };

/* A handle owns one block (or none); handles, not raw pointers, circulate. */
struct handle {
    unsigned char *p;
    size_t size;
    uint64_t tag;
    int maker; /* thread index that allocated the block */
};

static struct handle pool[NSLOTS + NTHREADS * LOCAL];
static _Atomic(struct handle *) slots[NSLOTS];

static atomic_long n_corrupt, n_nullret, n_calloc_dirty, n_realloc_lost,
    n_misaligned, n_cross_free, n_ops;
static atomic_int n_reports;
static long ops_per_thread = 1000000;

/* --- patterns: 64-bit words derived from (tag, size, index) ------------- */

static inline uint64_t pat_base(size_t n, uint64_t tag)
{
    return tag ^ ((uint64_t)n << 40);
}

/* Expected byte i of a block of size n (matches fill()). */
static unsigned char pat_at(size_t n, uint64_t tag, size_t i)
{
    uint64_t base = pat_base(n, tag);
    if (i < n / 8 * 8) {
        uint64_t word = base + (i / 8) * 0x9E3779B97F4A7C15ull;
        unsigned char b[8];
        memcpy(b, &word, 8);
        return b[i % 8];
    }
    return (unsigned char)(base >> (i % 8 * 8)) ^ (unsigned char)i;
}

static void fill(unsigned char *p, size_t n, uint64_t tag)
{
    uint64_t base = pat_base(n, tag);
    size_t nw = n / 8;
    uint64_t *w = (uint64_t *)(void *)p;
    for (size_t i = 0; i < nw; i++)
        w[i] = base + i * 0x9E3779B97F4A7C15ull;
    for (size_t i = nw * 8; i < n; i++)
        p[i] = pat_at(n, tag, i);
}

/* Check the first len <= n bytes of a block of size n; -1 if all good. */
static ssize_t verify(const unsigned char *p, size_t n, size_t len,
                      uint64_t tag)
{
    uint64_t base = pat_base(n, tag);
    size_t nw = len / 8;
    const uint64_t *w = (const uint64_t *)(const void *)p;
    for (size_t i = 0; i < nw; i++)
        if (w[i] != base + i * 0x9E3779B97F4A7C15ull)
            return (ssize_t)(i * 8);
    for (size_t i = nw * 8; i < len; i++)
        if (p[i] != pat_at(n, tag, i))
            return (ssize_t)i;
    return -1;
}

static void report(const char *what, const struct handle *h, ssize_t off)
{
    if (atomic_fetch_add(&n_reports, 1) < MAX_REPORTS)
        printf("# %s: block %p size %zu (made by thread %d), bad byte at %zd\n",
               what, (void *)h->p, h->size, h->maker, off);
    fflush(stdout); /* keep the evidence if the allocator then aborts */
}

/* --- per-thread work ----------------------------------------------------- */

struct worker {
    int id;
    uint64_t rng;
    struct handle *local[LOCAL];
};

static size_t random_size(uint64_t *rng)
{
    uint64_t r = rng_next(rng);
    unsigned pick = (unsigned)(r % 1000);
    r >>= 10;
    if (pick < 700)
        return 1 + r % 128;
    if (pick < 900)
        return 129 + r % 896;
    if (pick < 980)
        return 1024 + r % (15 * KiB);
    if (pick < 996)
        return 16 * KiB + r % (112 * KiB);
    return 128 * KiB + r % (128 * KiB + 1);
}

/* Allocate a fresh block into empty handle h. */
static void make_block(struct worker *w, struct handle *h)
{
    size_t n = random_size(&w->rng);
    uint64_t r = rng_next(&w->rng);
    unsigned kind = (unsigned)(r % 100);
    unsigned char *p;
    size_t align = 16;
    if (kind < 20) {
        p = launder(calloc(1, n));
        if (p) {
            for (size_t i = 0; i < n; i++)
                if (p[i]) {
                    atomic_fetch_add(&n_calloc_dirty, 1);
                    break;
                }
        }
    } else if (kind < 22) {
        void *q = NULL;
        align = (size_t)64 << (r >> 8) % 7; /* 64 .. 4096 */
        if (posix_memalign(&q, align, n) != 0)
            q = NULL;
        p = launder(q);
    } else {
        p = launder(malloc(n));
    }
    if (!p) {
        atomic_fetch_add(&n_nullret, 1);
        return;
    }
    if ((uintptr_t)p & (align - 1))
        atomic_fetch_add(&n_misaligned, 1);
    h->p = p;
    h->size = n;
    h->tag = rng_next(&w->rng);
    h->maker = w->id;
    fill(p, n, h->tag);
}

/* Verify and free the block in h (if any); h becomes empty. */
static void drop_block(struct handle *h, int self)
{
    if (!h->p)
        return;
    ssize_t bad = verify(h->p, h->size, h->size, h->tag);
    if (bad >= 0) {
        atomic_fetch_add(&n_corrupt, 1);
        report("corrupt before free", h, bad);
    }
    if (h->maker != self)
        atomic_fetch_add(&n_cross_free, 1);
    free(h->p);
    h->p = NULL;
}

static void realloc_block(struct worker *w, struct handle *h)
{
    ssize_t bad = verify(h->p, h->size, h->size, h->tag);
    if (bad >= 0) {
        atomic_fetch_add(&n_corrupt, 1);
        report("corrupt before realloc", h, bad);
    }
    size_t n = random_size(&w->rng);
    unsigned char *q = launder(realloc(h->p, n));
    if (!q) {
        atomic_fetch_add(&n_nullret, 1);
        return; /* old block still valid */
    }
    size_t keep = n < h->size ? n : h->size;
    bad = verify(q, h->size, keep, h->tag);
    if (bad >= 0) {
        atomic_fetch_add(&n_realloc_lost, 1);
        struct handle tmp = *h;
        tmp.p = q;
        report("realloc lost contents", &tmp, bad);
    }
    if ((uintptr_t)q & 15)
        atomic_fetch_add(&n_misaligned, 1);
    h->p = q;
    h->size = n;
    h->tag = rng_next(&w->rng);
    h->maker = w->id;
    fill(q, n, h->tag);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (long op = 0; op < ops_per_thread; op++) {
        uint64_t r = rng_next(&w->rng);
        int j = (int)(r % LOCAL);
        struct handle *h = w->local[j];
        unsigned what = (unsigned)((r >> 8) % 100);
        if (!h->p) {
            make_block(w, h);
        } else if (what < 30) {
            drop_block(h, w->id);
        } else if (what < 45) {
            realloc_block(w, h);
        } else {
            /* Trade our block for whatever sits in a random slot. */
            struct handle *got =
                atomic_exchange(&slots[(r >> 20) % NSLOTS], h);
            w->local[j] = got;
            if (what < 80)
                drop_block(got, w->id); /* usually someone else's block */
        }
    }
    atomic_fetch_add(&n_ops, ops_per_thread);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        ops_per_thread = atol(argv[1]);
    for (int i = 0; i < NSLOTS; i++)
        atomic_init(&slots[i], &pool[i]);

    static struct worker w[NTHREADS];
    pthread_t tid[NTHREADS];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int created = 0;
    for (int t = 0; t < NTHREADS; t++) {
        w[t].id = t;
        w[t].rng = 0x5eed0000u + (uint64_t)t * 7919;
        for (int j = 0; j < LOCAL; j++)
            w[t].local[j] = &pool[NSLOTS + t * LOCAL + j];
        if (pthread_create(&tid[t], NULL, worker_main, &w[t]) == 0)
            created++;
        else
            tid[t] = 0;
    }
    for (int t = 0; t < NTHREADS; t++)
        if (tid[t])
            pthread_join(tid[t], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) +
                  (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("# %ld operations in %.2f s by %d threads, %ld cross-thread frees\n",
           atomic_load(&n_ops), secs, NTHREADS, atomic_load(&n_cross_free));

    /* Every handle is in a slot or a worker's local set: drain them all. */
    long before = atomic_load(&n_corrupt);
    for (size_t i = 0; i < sizeof pool / sizeof pool[0]; i++)
        drop_block(&pool[i], -1);
    long drain_bad = atomic_load(&n_corrupt) - before;

    check(created == NTHREADS, "stress: all threads started", "%d of %d",
          created, NTHREADS);
    check(atomic_load(&n_ops) == (long)created * ops_per_thread,
          "stress: all operations completed", "%ld ops",
          atomic_load(&n_ops));
    check(atomic_load(&n_corrupt) == 0, "stress: no block corrupted",
          "%ld corrupted blocks (%ld found in final drain)",
          atomic_load(&n_corrupt), drain_bad);
    check(atomic_load(&n_realloc_lost) == 0, "stress: realloc kept contents",
          "%ld reallocs lost data", atomic_load(&n_realloc_lost));
    check(atomic_load(&n_calloc_dirty) == 0, "stress: calloc memory zeroed",
          "%ld dirty calloc blocks", atomic_load(&n_calloc_dirty));
    check(atomic_load(&n_nullret) == 0, "stress: no allocation failed",
          "%ld NULL returns", atomic_load(&n_nullret));
    check(atomic_load(&n_misaligned) == 0, "stress: all blocks aligned",
          "%ld misaligned blocks", atomic_load(&n_misaligned));
    check(ops_per_thread < 1000 || atomic_load(&n_cross_free) > 0,
          "stress: blocks were freed by other threads", "none were");
    void *p = launder(malloc(1000));
    check(p != NULL, "stress: allocator usable afterwards", "p=%p", p);
    free(p);
    return finish("stress");
}
