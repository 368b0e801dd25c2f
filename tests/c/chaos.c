/*
 * chaos.c - long randomized multi-threaded stress test of the whole malloc API.
 *
 * THREADS worker threads run random operations until a deadline.  Each one
 * owns a table of LOCAL block handles; a shared table of NSHARED handles is
 * traded with atomic exchange, so many blocks are freed or realloc'd by a
 * thread other than their maker.  Workers live a random 0.2-4 s, then free
 * some of their blocks, push others into the shared table and exit; the main
 * thread (the supervisor) joins them and starts a successor that inherits the
 * rest of the dead thread's blocks.
 *
 * Operations: malloc, calloc (zeroed?), realloc(NULL,n), reallocarray(NULL,..),
 * posix_memalign, aligned_alloc, memalign, valloc, pvalloc (alignment; pvalloc
 * owns the size rounded up to a page), free (must preserve errno), realloc
 * grow/shrink/in-place/to zero (glibc: realloc(p, 0) frees, returns NULL),
 * reallocarray (also with an overflowing count: NULL + ENOMEM, old block
 * intact), impossible requests (ENOMEM / EINVAL, never a block),
 * malloc_usable_size (>= size; the slack is written too), and from random
 * threads now and then malloc_trim(0), mallinfo2 and mallopt.  Odd seeds
 * also set M_PERTURB (once, at the start).
 *
 * Sizes: 0..64 MiB, 80 % <= 256 B, 15 % <= 64 KiB, 4.9 % <= 1 MiB, 0.1 % up to
 * 64 MiB, under a global cap of LIVE_CAP live bytes.  A NULL is an error
 * except for a request above 1 MiB with errno == ENOMEM (counted).
 *
 * Contents: every block is patterned from its id (address-independent) and
 * offset; word 0 is the id itself.  Blocks up to 64 KiB are patterned in full;
 * bigger ones get the first and last 256 bytes, one word every 64 KiB and 16
 * words at id-derived positions.  The pattern is verified before every free
 * and realloc, after a realloc (the kept prefix), after any failed call, and
 * for every block at the end, when the live blocks are also checked not to
 * overlap (by address and usable size).  At the end everything is freed,
 * malloc_trim(0) is called and the RSS must be back under start + 32 MiB +
 * 1/8 of the growth to the peak (glibc ends a few MiB above the start).
 *
 * Usage: chaos [SECONDS [THREADS [SEED]]]   (default 10 s, 4 threads, seed
 * from the clock; CHAOS_SECONDS=N replaces the default duration).  The seed is
 * printed first: the same seed replays the same per-thread operation
 * sequences (the interleaving of course differs).  For a long run:
 *   CHAOS_SECONDS=3600 TEST_TIMEOUT=3700 tests/c/run.sh chaos
 * Ends with "chaos: N passed, M failed".
 */
#include "common.h"

#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stddef.h>
#include <time.h>

enum {
    MAX_THREADS = 64,
    LOCAL = 64,
    NSHARED = 1024,
    MAX_REPORTS = 20,
    NSAMPLES = 16,
    EDGE = 256,
    STALL_SECS = 60,
};

#define LIVE_CAP (512 * MiB)
#define FULL_MAX (64 * KiB)  /* blocks up to this size are patterned in full */
#define STRIDE (64 * KiB)    /* bigger ones: one word every STRIDE bytes */
#define ZERO_FULL_MAX MiB    /* calloc blocks up to this are checked in full */
#define BASE_ALIGN _Alignof(max_align_t)

/* ------------------------------------------------------------------ */
/* Operation kinds (counted per thread, summed at thread exit).        */

enum op {
    OP_MALLOC, OP_CALLOC, OP_REALLOC_NULL, OP_REALLOCARRAY_NULL,
    OP_POSIX_MEMALIGN, OP_ALIGNED_ALLOC, OP_MEMALIGN, OP_VALLOC, OP_PVALLOC,
    OP_FREE, OP_FREE_NULL, OP_REALLOC_GROW, OP_REALLOC_SHRINK,
    OP_REALLOC_SAME, OP_REALLOC_ZERO, OP_REALLOCARRAY, OP_IMPOSSIBLE,
    OP_USABLE, OP_EXCHANGE, OP_TRIM, OP_MALLINFO2, OP_MALLOPT, NOPS
};

static const char *const op_name[NOPS] = {
    "malloc", "calloc", "realloc(NULL)", "reallocarray(NULL)",
    "posix_memalign", "aligned_alloc", "memalign", "valloc", "pvalloc",
    "free", "free(NULL)", "realloc-grow", "realloc-shrink", "realloc-same",
    "realloc(p,0)", "reallocarray", "impossible", "usable_size", "exchange",
    "malloc_trim", "mallinfo2", "mallopt",
};

/* ------------------------------------------------------------------ */
/* Global state.                                                       */

/* A handle owns one block (or none); handles, not raw pointers, circulate. */
struct block {
    unsigned char *p; /* NULL: empty handle */
    size_t size;      /* bytes owned (and patterned) */
    uint64_t id;      /* pattern seed, unique */
    size_t align;     /* alignment the block was promised */
    int kind;         /* enum op that made it */
    int maker;        /* serial of the thread that made it */
};

static struct block pool[NSHARED + MAX_THREADS * LOCAL];
static _Atomic(struct block *) shared[NSHARED];

static uint64_t g_seed, g_salt;
static int g_threads;
static double g_seconds;
static struct timespec g_t0;
static double g_deadline; /* seconds since g_t0 */
static atomic_int g_stop;
static size_t g_page;

static atomic_size_t g_live, g_live_peak; /* bytes in live blocks */
static atomic_long g_cnt[NOPS];
static atomic_long n_corrupt, n_realloc_lost, n_misaligned, n_null,
    n_enomem_big, n_calloc_dirty, n_usable_short, n_zero_realloc,
    n_impossible_bad, n_free_errno, n_mallinfo_bad, n_mallopt_bad,
    n_cross_free, n_cross_realloc, n_exits, n_spawn_fail, n_slack_written;
static atomic_int n_reports;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - g_t0.tv_sec) +
           (double)(t.tv_nsec - g_t0.tv_nsec) / 1e9;
}

/* Hide a value from the optimiser (sizes that GCC would warn about). */
static inline size_t hide(size_t v)
{
    __asm__ volatile("" : "+r"(v));
    return v;
}

/* ------------------------------------------------------------------ */
/* Patterns: byte i of block `id` is byte i%8 of pat_word(id, i/8).     */

static inline uint64_t pat_word(uint64_t id, size_t k)
{
    if (k == 0)
        return id;
    uint64_t x = (id ^ g_salt) + (uint64_t)k * 0x9E3779B97F4A7C15ull;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    return x ^ (x >> 29);
}

static inline unsigned char pat_at(uint64_t id, size_t i)
{
    return (unsigned char)(pat_word(id, i / 8) >> (i % 8 * 8));
}

static void fill_range(unsigned char *p, uint64_t id, size_t a, size_t b)
{
    while (a < b && a % 8)
        p[a] = pat_at(id, a), a++;
    for (; a + 8 <= b; a += 8) {
        uint64_t w = pat_word(id, a / 8);
        memcpy(p + a, &w, 8);
    }
    for (; a < b; a++)
        p[a] = pat_at(id, a);
}

/* First bad offset in [a, b), or -1. */
static ssize_t check_range(const unsigned char *p, uint64_t id, size_t a,
                           size_t b)
{
    while (a < b && a % 8) {
        if (p[a] != pat_at(id, a))
            return (ssize_t)a;
        a++;
    }
    for (; a + 8 <= b; a += 8) {
        uint64_t w;
        memcpy(&w, p + a, 8);
        if (w != pat_word(id, a / 8))
            for (size_t i = a; i < a + 8; i++)
                if (p[i] != pat_at(id, i))
                    return (ssize_t)i;
    }
    for (; a < b; a++)
        if (p[a] != pat_at(id, a))
            return (ssize_t)a;
    return -1;
}

static ssize_t check_zero(const unsigned char *p, size_t a, size_t b)
{
    for (; a < b; a++)
        if (p[a])
            return (ssize_t)a;
    return -1;
}

enum { W_FILL, W_CHECK, W_ZERO };

/*
 * Apply `mode` to the patterned bytes of a block of size n that lie in
 * [from, limit): fill them, check the pattern, or check they are zero.
 * Returns the first bad offset, or -1.
 */
static ssize_t walk(unsigned char *p, size_t n, uint64_t id, size_t from,
                    size_t limit, int mode)
{
#define SPAN(a0, b0)                                                        \
    do {                                                                    \
        size_t a_ = (a0), b_ = (b0);                                        \
        if (a_ < from)                                                      \
            a_ = from;                                                      \
        if (b_ > limit)                                                     \
            b_ = limit;                                                     \
        if (a_ < b_) {                                                      \
            ssize_t r_ = -1;                                                \
            if (mode == W_FILL)                                             \
                fill_range(p, id, a_, b_);                                  \
            else if (mode == W_CHECK)                                       \
                r_ = check_range(p, id, a_, b_);                            \
            else                                                            \
                r_ = check_zero(p, a_, b_);                                 \
            if (r_ >= 0)                                                    \
                return r_;                                                  \
        }                                                                   \
    } while (0)

    if (limit > n)
        limit = n;
    if (n <= FULL_MAX || (mode == W_ZERO && n <= ZERO_FULL_MAX)) {
        SPAN(0, n);
        return -1;
    }
    SPAN(0, EDGE);
    for (size_t o = STRIDE; o + 8 <= n - EDGE; o += STRIDE)
        SPAN(o, o + 8);
    for (size_t j = 0; j < NSAMPLES; j++) {
        size_t o = (size_t)(pat_word(id ^ n, j + 1) % (n / 8)) * 8;
        SPAN(o, o + 8);
    }
    SPAN(n - EDGE, n);
    return -1;
#undef SPAN
}

/* ------------------------------------------------------------------ */
/* Failure reports.                                                    */

struct thr;
static void report(struct thr *t, const char *what, const struct block *b,
                   const void *at, ssize_t off, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* ------------------------------------------------------------------ */
/* Threads.                                                            */

struct slot {
    struct block *local[LOCAL]; /* inherited by the successor thread */
    pthread_t tid;
    int running;                /* supervisor's view */
    atomic_int done;            /* set by the worker as it returns */
    atomic_long progress;       /* ops done by the current thread */
    atomic_int cur_op;          /* what it is doing now (-1: idle) */
    int serial;
};

struct thr {
    struct slot *s;
    int serial;
    uint64_t rng;
    uint64_t next_id;
    double end;                 /* when this thread retires */
    long cnt[NOPS];
};

static struct slot slots[MAX_THREADS];

static void report(struct thr *t, const char *what, const struct block *b,
                   const void *at, ssize_t off, const char *fmt, ...)
{
    if (atomic_fetch_add(&n_reports, 1) >= MAX_REPORTS)
        return;
    char extra[256] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(extra, sizeof extra, fmt, ap);
    va_end(ap);
    if (b && off >= 0)
        printf("# FAIL %s: thread %d, block id %#llx made by thread %d via %s,"
               " at %p size %zu, offset %zd: byte %#x expected %#x%s%s\n",
               what, t ? t->serial : -1, (unsigned long long)b->id, b->maker,
               op_name[b->kind], at, b->size, off,
               ((const unsigned char *)at)[off], pat_at(b->id, (size_t)off),
               *extra ? "; " : "", extra);
    else if (b)
        printf("# FAIL %s: thread %d, block id %#llx made by thread %d via %s,"
               " at %p size %zu%s%s\n",
               what, t ? t->serial : -1, (unsigned long long)b->id, b->maker,
               op_name[b->kind], at, b->size, *extra ? "; " : "", extra);
    else
        printf("# FAIL %s: thread %d: %s\n", what, t ? t->serial : -1, extra);
    fflush(stdout); /* keep the evidence if the allocator then aborts */
}

/* ------------------------------------------------------------------ */
/* Sizes and the live-bytes budget.                                    */

/* Skewed towards the low end of [lo, hi]. */
static size_t skewed(uint64_t *rng, size_t lo, size_t hi)
{
    uint64_t r = rng_next(rng);
    size_t span = hi - lo;
    unsigned shift = (unsigned)(r % 8);
    return lo + (size_t)((r >> 8) % ((span >> shift) + 1));
}

static const size_t edge_sizes[] = {
    1024, 1032, 1033, 4080, 4096, 4097, 8192, 16384, 65535, 65536,
    131071, 131072, 131073, 262144, 1048576, 4194304, 33554431, 33554432,
    33554433, 67108864,
};

static size_t rand_size(uint64_t *rng)
{
    uint64_t r = rng_next(rng);
    unsigned pick = (unsigned)(r % 1000);
    r >>= 10;
    if (pick < 800) {
        if (pick < 8)
            return 0;
        return (size_t)(r % 257);
    }
    if (pick < 950) {
        if (pick < 815)
            return edge_sizes[r % 10];
        return skewed(rng, 257, 64 * KiB);
    }
    if (pick < 999) {
        if (pick < 955)
            return edge_sizes[7 + r % 8];
        return skewed(rng, 64 * KiB + 1, MiB);
    }
    if (r % 4 == 0)
        return edge_sizes[15 + (r >> 2) % 5];
    return skewed(rng, MiB + 1, 64 * MiB);
}

static void live_add(size_t n)
{
    size_t now = atomic_fetch_add(&g_live, n) + n;
    size_t peak = atomic_load(&g_live_peak);
    while (now > peak &&
           !atomic_compare_exchange_weak(&g_live_peak, &peak, now))
        ;
}

static void live_sub(size_t n) { atomic_fetch_sub(&g_live, n); }

/* Reserve n live bytes if the cap allows; small sizes always fit. */
static int reserve(size_t n)
{
    if (n > 4 * KiB && atomic_load(&g_live) + n > LIVE_CAP)
        return 0;
    live_add(n);
    return 1;
}

/* A random size that has been reserved. */
static size_t reserved_size(struct thr *t)
{
    size_t n = rand_size(&t->rng);
    if (!reserve(n)) {
        n = (size_t)(rng_next(&t->rng) % 257);
        live_add(n);
    }
    return n;
}

static size_t rand_align(uint64_t *rng)
{
    uint64_t r = rng_next(rng);
    if (r % 50 == 0)
        return (size_t)1 << (20 + (r >> 8) % 2); /* 1 or 2 MiB */
    return (size_t)8 << ((r >> 8) % 14);         /* 8 .. 64 KiB */
}

static size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

/* ------------------------------------------------------------------ */
/* Block operations.                                                   */

static void verify(struct thr *t, struct block *b, const char *when)
{
    ssize_t bad = walk(b->p, b->size, b->id, 0, b->size, W_CHECK);
    if (bad >= 0) {
        atomic_fetch_add(&n_corrupt, 1);
        report(t, when, b, b->p, bad, "%s", "");
    }
}

/* Checks on a block just obtained: alignment, usable size; then pattern it. */
static void adopt(struct thr *t, struct block *b, unsigned char *p,
                  size_t size, size_t align, int kind, int fresh,
                  size_t from_ok)
{
    if ((uintptr_t)p % align) {
        atomic_fetch_add(&n_misaligned, 1);
        report(t, "misaligned block", NULL, NULL, -1,
               "%s returned %p, promised alignment %zu (size %zu)",
               op_name[kind], (void *)p, align, size);
    }
    size_t usable = malloc_usable_size(p);
    if (usable < size) {
        atomic_fetch_add(&n_usable_short, 1);
        report(t, "malloc_usable_size too small", NULL, NULL, -1,
               "%s block %p size %zu: usable %zu", op_name[kind], (void *)p,
               size, usable);
    } else if (usable > size && (rng_next(&t->rng) & 3) == 0) {
        /* The slack is the caller's too: scribble on it (at most 4 KiB). */
        size_t end = usable - size > 4 * KiB ? size + 4 * KiB : usable;
        memset(p + size, 0xA5, end - size);
        p[usable - 1] = 0x5A;
        atomic_fetch_add(&n_slack_written, 1);
    }
    b->p = p;
    b->size = size;
    b->align = align;
    b->kind = kind;
    b->maker = t->serial;
    if (fresh)
        b->id = ((uint64_t)t->serial << 40) | t->next_id++;
    walk(p, size, b->id, from_ok, size, W_FILL);
}

/* A NULL from an allocation of `size` bytes; errno (or rc) says why. */
static void null_result(struct thr *t, int kind, size_t size, int err)
{
    if (size > MiB && err == ENOMEM) {
        atomic_fetch_add(&n_enomem_big, 1);
        return;
    }
    atomic_fetch_add(&n_null, 1);
    report(t, "unexpected NULL", NULL, NULL, -1, "%s(%zu) failed, errno %d",
           op_name[kind], size, err);
}

/* Fill the empty handle b with a new block made by a random allocator. */
static void make_block(struct thr *t, struct block *b)
{
    size_t n = reserved_size(t);
    uint64_t r = rng_next(&t->rng);
    unsigned k = (unsigned)(r % 1000);
    r >>= 10;
    size_t size = n, align = BASE_ALIGN, el = (size_t)1 << (r % 5);
    int kind = k < 550   ? OP_MALLOC
               : k < 700 ? OP_CALLOC
               : k < 740 ? OP_REALLOC_NULL
               : k < 780 ? OP_REALLOCARRAY_NULL
               : k < 840 ? OP_POSIX_MEMALIGN
               : k < 880 ? OP_ALIGNED_ALLOC
               : k < 920 ? OP_MEMALIGN
               : k < 960 ? OP_VALLOC
                         : OP_PVALLOC;
    int err, rc;
    void *q = NULL;
    unsigned char *p = NULL;
    atomic_store_explicit(&t->s->cur_op, kind, memory_order_relaxed);
    errno = 0;
    switch (kind) {
    case OP_MALLOC:
        p = launder(malloc(n));
        break;
    case OP_CALLOC:
        size = n / el * el;
        p = launder(calloc(n / el, el));
        break;
    case OP_REALLOC_NULL:
        p = launder(realloc(NULL, n));
        break;
    case OP_REALLOCARRAY_NULL:
        size = n / el * el;
        p = launder(reallocarray(NULL, n / el, el));
        break;
    case OP_POSIX_MEMALIGN:
        align = rand_align(&t->rng);
        rc = posix_memalign(&q, align, n);
        p = launder(rc == 0 ? q : NULL);
        if (rc)
            errno = rc;
        break;
    case OP_ALIGNED_ALLOC:
        align = rand_align(&t->rng);
        p = launder(aligned_alloc(align, n));
        break;
    case OP_MEMALIGN:
        align = rand_align(&t->rng);
        p = launder(memalign(align, n));
        break;
    case OP_VALLOC:
        align = g_page;
        p = launder(valloc(n));
        break;
    default:
        align = g_page;
        size = round_up(n, g_page); /* pvalloc gives whole pages */
        live_add(size - n);
        p = launder(pvalloc(n));
        break;
    }
    err = errno;
    t->cnt[kind]++;
    live_sub(n - (size < n ? size : n)); /* calloc/reallocarray rounding */
    if (!p) {
        live_sub(size);
        null_result(t, kind, size, err);
        return;
    }
    if (kind == OP_CALLOC) {
        ssize_t bad = walk(p, size, 0, 0, size, W_ZERO);
        if (bad >= 0) {
            atomic_fetch_add(&n_calloc_dirty, 1);
            report(t, "calloc block not zeroed", NULL, NULL, -1,
                   "calloc(%zu, %zu) = %p: byte %zd is %#x", n / el, el,
                   (void *)p, bad, p[bad]);
        }
    }
    adopt(t, b, p, size, align, kind, 1, 0);
}

/* Verify and free the block in b; b becomes empty. */
static void drop_block(struct thr *t, struct block *b)
{
    verify(t, b, "corrupt before free");
    if (b->maker != t->serial)
        atomic_fetch_add(&n_cross_free, 1);
    int e = 1000 + (int)(rng_next(&t->rng) % 1000);
    errno = e;
    free(launder(b->p));
    if (errno != e) {
        if (atomic_fetch_add(&n_free_errno, 1) < 3)
            report(t, "free changed errno", b, b->p, -1, "%d -> %d", e, errno);
    }
    t->cnt[OP_FREE]++;
    live_sub(b->size);
    b->p = NULL;
}

/* realloc or reallocarray the block in b to a random size. */
static void resize_block(struct thr *t, struct block *b)
{
    verify(t, b, "corrupt before realloc");
    uint64_t r = rng_next(&t->rng);
    int arr = r % 4 == 0;
    size_t el = arr ? (size_t)1 << ((r >> 2) % 5) : 1;
    size_t old = b->size, m;
    unsigned how = (unsigned)((r >> 8) % 100);
    size_t d = (size_t)(r >> 20) % 64;
    if (how < 3)
        m = 0;
    else if (how < 35) /* small step: the in-place paths */
        m = (r >> 16) % 2 ? old + d : old - (d < old ? d : 0);
    else
        m = rand_size(&t->rng);
    m = m / el * el;
    if (how >= 3 && m == 0)
        m = el; /* only the 3 % above test realloc(p, 0) */
    if (m > old && !reserve(m - old)) {
        m = old / 2 / el * el;
        if (m == 0)
            m = el;
        if (m > old)
            live_add(m - old);
    }
    if (m <= old)
        live_sub(old - m);

    if (b->maker != t->serial)
        atomic_fetch_add(&n_cross_realloc, 1);
    unsigned char *oldp = b->p;
    errno = 0;
    unsigned char *q = launder(arr ? reallocarray(launder(oldp), m / el, el)
                                   : realloc(launder(oldp), m));
    int err = errno;
    int kind = m == 0 ? OP_REALLOC_ZERO
               : arr   ? OP_REALLOCARRAY
               : m > old ? OP_REALLOC_GROW
               : m < old ? OP_REALLOC_SHRINK
                         : OP_REALLOC_SAME;
    t->cnt[kind]++;

    if (m == 0) {
        /* glibc: realloc(p, 0) frees p and returns NULL. */
        b->p = NULL;
        if (q) {
            atomic_fetch_add(&n_zero_realloc, 1);
            report(t, "realloc(p, 0) returned a block", NULL, NULL, -1,
                   "%s(%p, 0) = %p, expected NULL", arr ? "reallocarray"
                   : "realloc", (void *)oldp, (void *)q);
            free(q);
        }
        return;
    }
    if (!q) {
        if (m > old)
            live_sub(m - old);
        else
            live_add(old - m);
        null_result(t, kind, m, err);
        verify(t, b, "old block damaged by failed realloc");
        return;
    }
    size_t keep = m < old ? m : old;
    ssize_t bad = walk(q, old, b->id, 0, keep, W_CHECK);
    if (bad >= 0) {
        atomic_fetch_add(&n_realloc_lost, 1);
        report(t, "realloc lost contents", b, q, bad, "%p -> %p, %zu -> %zu",
               (void *)oldp, (void *)q, old, m);
    }
    /* Bytes below keep are already patterned when the old block was full. */
    adopt(t, b, q, m, BASE_ALIGN, b->kind, 0, old <= FULL_MAX ? keep : 0);
}

/* Requests that must fail cleanly (and leave the block b untouched). */
static void impossible(struct thr *t, struct block *b)
{
    uint64_t r = rng_next(&t->rng);
    size_t huge = hide((size_t)PTRDIFF_MAX + 1 + (size_t)(r >> 8) % 4096);
    size_t el = (size_t)2 << ((r >> 20) % 6);
    size_t over = hide(SIZE_MAX / el + 1 + (size_t)(r >> 24) % 1000);
    int want = ENOMEM, got;
    void *q = NULL, *res = NULL;
    const char *what;
    errno = 0;
    switch (r % 9) {
    case 0:
        what = "reallocarray overflow";
        res = reallocarray(launder(b->p), over, el);
        break;
    case 1:
        what = "realloc > PTRDIFF_MAX";
        res = realloc(launder(b->p), huge);
        break;
    case 2:
        what = "malloc > PTRDIFF_MAX";
        res = malloc(huge);
        break;
    case 3:
        what = "calloc overflow";
        res = calloc(over, el);
        break;
    case 4:
        what = "aligned_alloc > PTRDIFF_MAX";
        res = aligned_alloc(64, huge);
        break;
    case 5:
        what = "memalign > PTRDIFF_MAX";
        res = memalign(4096, huge);
        break;
    case 6:
        what = "pvalloc > PTRDIFF_MAX";
        res = pvalloc(huge);
        break;
    case 7:
        what = "posix_memalign > PTRDIFF_MAX";
        errno = posix_memalign(&q, 256, huge);
        res = q;
        break;
    default:
        what = "posix_memalign bad alignment";
        want = EINVAL;
        errno = posix_memalign(&q, hide((r >> 8) % 2 ? 24 : 4), 64);
        res = q;
        break;
    }
    got = errno;
    t->cnt[OP_IMPOSSIBLE]++;
    if (res || got != want) {
        if (atomic_fetch_add(&n_impossible_bad, 1) < 5)
            report(t, what, NULL, NULL, -1, "returned %p errno %d, expected "
                   "NULL errno %d", res, got, want);
        free(res == b->p ? NULL : res);
    }
    verify(t, b, "block damaged by a failed request");
}

static void usable_check(struct thr *t, struct block *b)
{
    t->cnt[OP_USABLE]++;
    size_t u = malloc_usable_size(launder(b->p));
    if (u < b->size) {
        atomic_fetch_add(&n_usable_short, 1);
        report(t, "malloc_usable_size too small", b, b->p, -1, "usable %zu",
               u);
    }
    verify(t, b, "corrupt at usable_size check");
}

static void do_mallinfo2(struct thr *t)
{
    t->cnt[OP_MALLINFO2]++;
    struct mallinfo2 mi = mallinfo2();
    const size_t absurd = (size_t)1 << 40;
    if (mi.arena > absurd || mi.uordblks > absurd || mi.fordblks > absurd ||
        mi.hblkhd > absurd || mi.uordblks > mi.arena ||
        mi.fordblks > mi.arena) {
        if (atomic_fetch_add(&n_mallinfo_bad, 1) < 3)
            report(t, "mallinfo2 absurd", NULL, NULL, -1,
                   "arena %zu uordblks %zu fordblks %zu hblks %zu hblkhd %zu",
                   mi.arena, mi.uordblks, mi.fordblks, mi.hblks, mi.hblkhd);
    }
}

/*
 * Valid settings only (glibc accepts all of them: M_MXFAST up to
 * 80 * sizeof(size_t) / 4 = 160), plus M_MXFAST 161, refused by every glibc.
 * Out-of-range thresholds are left out: glibc 2.36 ignores them but still
 * returns 1 for M_MMAP_THRESHOLD > 32 MiB, other versions return 0.
 * M_PERTURB is set once, before the threads start (see main): glibc's own
 * calloc returns junk if it changes between _int_malloc's perturb fill and
 * calloc's "fresh mmap, no need to clear" test.
 */
static void do_mallopt(struct thr *t)
{
    static const struct {
        int param, value, want;
    } opts[] = {
        {M_TRIM_THRESHOLD, 64 * 1024, 1},  {M_TRIM_THRESHOLD, 128 * 1024, 1},
        {M_TRIM_THRESHOLD, 1 << 20, 1},    {M_TRIM_THRESHOLD, 32 << 20, 1},
        {M_TOP_PAD, 0, 1},                 {M_TOP_PAD, 64 * 1024, 1},
        {M_TOP_PAD, 1 << 20, 1},           {M_MMAP_THRESHOLD, 64 * 1024, 1},
        {M_MMAP_THRESHOLD, 128 * 1024, 1}, {M_MMAP_THRESHOLD, 1 << 20, 1},
        {M_MMAP_THRESHOLD, 4 << 20, 1},    {M_MMAP_THRESHOLD, 32 << 20, 1},
        {M_MMAP_MAX, 16, 1},               {M_MMAP_MAX, 65536, 1},
        {M_MXFAST, 0, 1},                  {M_MXFAST, 64, 1},
        {M_MXFAST, 128, 1},                {M_MXFAST, 160, 1},
        {M_MXFAST, 161, 0},                {M_ARENA_TEST, 1, 1},
        {M_ARENA_TEST, 8, 1},              {M_ARENA_MAX, 1, 1},
        {M_ARENA_MAX, 2, 1},               {M_ARENA_MAX, 8, 1},
        /* glibc 2.36 says 1 to these too (and stores the threshold as given) */
        {M_MMAP_THRESHOLD, (32 << 20) + 1, 1}, {M_ARENA_TEST, 0, 1},
        {M_ARENA_MAX, 0, 1},               {12345, 1, 1},
    };
    unsigned i = (unsigned)(rng_next(&t->rng) % (sizeof opts / sizeof opts[0]));
    t->cnt[OP_MALLOPT]++;
    int rc = mallopt(opts[i].param, opts[i].value);
    if (rc != opts[i].want) {
        if (atomic_fetch_add(&n_mallopt_bad, 1) < 5)
            report(t, "mallopt result", NULL, NULL, -1,
                   "mallopt(%d, %d) = %d, glibc gives %d", opts[i].param,
                   opts[i].value, rc, opts[i].want);
    }
}

/* One random operation on local handle j. */
static void step(struct thr *t)
{
    uint64_t r = rng_next(&t->rng);
    struct block **lp = &t->s->local[r % LOCAL];
    struct block *b = *lp;
    unsigned what = (unsigned)((r >> 8) % 1000);
    unsigned rare = (unsigned)((r >> 20) % 16384);

    if (rare == 0) {
        atomic_store_explicit(&t->s->cur_op, OP_TRIM, memory_order_relaxed);
        t->cnt[OP_TRIM]++;
        malloc_trim(0);
        return;
    }
    if (rare == 1) {
        atomic_store_explicit(&t->s->cur_op, OP_MALLINFO2, memory_order_relaxed);
        do_mallinfo2(t);
        return;
    }
    if (rare == 2) {
        atomic_store_explicit(&t->s->cur_op, OP_MALLOPT, memory_order_relaxed);
        do_mallopt(t);
        return;
    }
    if (!b->p) {
        atomic_store_explicit(&t->s->cur_op, OP_MALLOC, memory_order_relaxed);
        if (what < 5) {
            t->cnt[OP_FREE_NULL]++;
            free(NULL);
            return;
        }
        make_block(t, b);
        return;
    }
    if (what < 250) {
        atomic_store_explicit(&t->s->cur_op, OP_FREE, memory_order_relaxed);
        drop_block(t, b);
    } else if (what < 420) {
        atomic_store_explicit(&t->s->cur_op, OP_REALLOC_GROW, memory_order_relaxed);
        resize_block(t, b);
    } else if (what < 425) {
        atomic_store_explicit(&t->s->cur_op, OP_IMPOSSIBLE, memory_order_relaxed);
        impossible(t, b);
    } else if (what < 475) {
        atomic_store_explicit(&t->s->cur_op, OP_USABLE, memory_order_relaxed);
        usable_check(t, b);
    } else {
        /* Trade our block for whatever sits in a random shared slot. */
        atomic_store_explicit(&t->s->cur_op, OP_EXCHANGE, memory_order_relaxed);
        t->cnt[OP_EXCHANGE]++;
        struct block *got = atomic_exchange(&shared[(r >> 34) % NSHARED], b);
        *lp = got;
        if (!got->p)
            return;
        if (what < 800)
            drop_block(t, got); /* usually someone else's block */
        else if (what < 900)
            resize_block(t, got);
    }
}

static void *worker_main(void *arg)
{
    struct thr *t = arg;
    struct slot *s = t->s;
    double end = t->end;
    for (long i = 0;; i++) {
        if (i % 64 == 0) {
            if (atomic_load_explicit(&g_stop, memory_order_relaxed))
                break;
            if (now_s() >= end)
                break;
        }
        step(t);
        atomic_store_explicit(&s->progress, i + 1, memory_order_relaxed);
        atomic_store_explicit(&s->cur_op, -1, memory_order_relaxed);
    }
    if (end < g_deadline && !atomic_load(&g_stop)) {
        /* Retire: free some blocks, leave some in the shared table for the
         * others, and the rest to the successor. */
        for (int j = 0; j < LOCAL; j++) {
            struct block *b = s->local[j];
            if (!b->p)
                continue;
            unsigned r = (unsigned)(rng_next(&t->rng) % 10);
            if (r < 4)
                drop_block(t, b);
            else if (r < 8)
                s->local[j] =
                    atomic_exchange(&shared[rng_next(&t->rng) % NSHARED], b);
        }
        atomic_fetch_add(&n_exits, 1);
    }
    for (int k = 0; k < NOPS; k++)
        atomic_fetch_add(&g_cnt[k], t->cnt[k]);
    free(t);
    atomic_store(&s->done, 1);
    return NULL;
}

static int spawn(struct slot *s, int serial, double now)
{
    struct thr *t = calloc(1, sizeof *t);
    if (!t)
        return 0;
    t->s = s;
    t->serial = serial;
    t->rng = g_seed ^ ((uint64_t)serial * 0xD1B54A32D192ED03ull);
    rng_next(&t->rng);
    /* Lifetime 0.2 .. 4 s; the thread retires early only before the end. */
    t->end = now + 0.2 + (double)(rng_next(&t->rng) % 3800) / 1000.0;
    if (t->end > g_deadline)
        t->end = g_deadline;
    s->serial = serial;
    atomic_store(&s->done, 0);
    atomic_store(&s->cur_op, -1);
    atomic_store(&s->progress, -1);
    if (pthread_create(&s->tid, NULL, worker_main, t) != 0) {
        free(t);
        s->running = 0;
        atomic_fetch_add(&n_spawn_fail, 1);
        return 0;
    }
    s->running = 1;
    return 1;
}

/* ------------------------------------------------------------------ */
/* End of run.                                                         */

static size_t vm_hwm(void)
{
    char buf[4096];
    if (read_proc("/proc/self/status", buf, sizeof buf) <= 0)
        return 0;
    const char *p = strstr(buf, "VmHWM:");
    unsigned long kb;
    if (!p || sscanf(p + 6, "%lu", &kb) != 1)
        return 0;
    return (size_t)kb * KiB;
}

struct span {
    uintptr_t lo, hi;
    uint64_t id;
};

static int cmp_span(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

int main(int argc, char **argv)
{
    const char *env = getenv("CHAOS_SECONDS");
    g_seconds = env && *env ? strtod(env, NULL) : 10.0;
    if (argc > 1)
        g_seconds = strtod(argv[1], NULL);
    g_threads = argc > 2 ? atoi(argv[2]) : 4;
    if (g_threads < 1)
        g_threads = 1;
    if (g_threads > MAX_THREADS)
        g_threads = MAX_THREADS;
    if (argc > 3) {
        g_seed = strtoull(argv[3], NULL, 0);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        g_seed = (uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec ^
                 (uint64_t)getpid() << 32;
        g_seed %= 1000000000000ull;
    }
    printf("# chaos: seed %llu, %.1f s, %d threads%s (replay: chaos %g %d "
           "%llu)\n", (unsigned long long)g_seed, g_seconds, g_threads,
           g_seed % 2 ? ", M_PERTURB 0x5A" : "", g_seconds, g_threads,
           (unsigned long long)g_seed);
    fflush(stdout);
    uint64_t sr = g_seed;
    g_salt = rng_next(&sr);
    g_page = (size_t)sysconf(_SC_PAGESIZE);
    /* Odd seeds run with MALLOC_PERTURB_-style filling (new blocks ~0x5A,
     * freed ones 0x5A): calloc must still return zeros. */
    int perturb = (int)(g_seed % 2);
    if (perturb)
        check(mallopt(M_PERTURB, 0x5A) == 1, "chaos: mallopt(M_PERTURB, 0x5A)",
              "refused");

    for (int i = 0; i < NSHARED; i++)
        atomic_init(&shared[i], &pool[i]);
    for (int t = 0; t < g_threads; t++)
        for (int j = 0; j < LOCAL; j++)
            slots[t].local[j] = &pool[NSHARED + t * LOCAL + j];

    size_t rss_start = rss_bytes(), rss_peak_seen = rss_start;
    clock_gettime(CLOCK_MONOTONIC, &g_t0);
    g_deadline = g_seconds;
    int serial = 0, stalled = 0;
    for (int t = 0; t < g_threads; t++)
        spawn(&slots[t], serial++, 0.0);

    /* Supervise: replace retired threads, watch RSS and for stalls. */
    long last_prog[MAX_THREADS] = {0};
    double last_move[MAX_THREADS] = {0};
    struct timespec nap = {0, 2000000};
    for (;;) {
        nanosleep(&nap, NULL);
        double now = now_s();
        size_t rss = rss_bytes();
        if (rss > rss_peak_seen)
            rss_peak_seen = rss;
        int any = 0;
        for (int t = 0; t < g_threads; t++) {
            struct slot *s = &slots[t];
            if (s->running && atomic_load(&s->done)) {
                pthread_join(s->tid, NULL);
                s->running = 0;
            }
            if (!s->running && now < g_deadline - 0.05)
                spawn(s, serial++, now);
            if (!s->running) {
                last_prog[t] = -1;
                continue;
            }
            any = 1;
            long pr = atomic_load(&s->progress);
            if (pr != last_prog[t]) {
                last_prog[t] = pr;
                last_move[t] = now;
            } else if (now - last_move[t] > STALL_SECS) {
                stalled = 1;
                printf("# FAIL thread %d (slot %d) made no progress for %d s,"
                       " stuck in %s after %ld ops\n", s->serial, t,
                       STALL_SECS, atomic_load(&s->cur_op) >= 0
                           ? op_name[atomic_load(&s->cur_op)] : "(between ops)",
                       pr);
            }
        }
        if (now >= g_deadline)
            atomic_store(&g_stop, 1);
        if (stalled) {
            check(0, "chaos: no thread stalled (deadlock?)", "see # FAIL above");
            finish("chaos");
            abort(); /* leave a core for gdb */
        }
        if (!any && now >= g_deadline)
            break;
    }
    double secs = now_s();

    long total = 0;
    printf("# operations:");
    for (int k = 0; k < NOPS; k++) {
        total += atomic_load(&g_cnt[k]);
        printf(" %s=%ld", op_name[k], atomic_load(&g_cnt[k]));
    }
    printf("\n# %ld operations in %.2f s (%.0f/s), %d threads started, %ld "
           "retired early; %ld cross-thread frees, %ld cross-thread "
           "reallocs; %ld ENOMEM for >1 MiB; slack written %ld times; peak "
           "live %zu MiB\n",
           total, secs, (double)total / secs, serial, atomic_load(&n_exits),
           atomic_load(&n_cross_free), atomic_load(&n_cross_realloc),
           atomic_load(&n_enomem_big), atomic_load(&n_slack_written),
           atomic_load(&g_live_peak) / MiB);

    /* All threads are gone: collect the live blocks. */
    size_t nall = sizeof pool / sizeof pool[0], nlive = 0, live_bytes = 0;
    struct span *sp = malloc(nall * sizeof *sp);
    for (size_t i = 0; i < nall; i++) {
        struct block *b = &pool[i];
        if (!b->p)
            continue;
        size_t u = malloc_usable_size(b->p);
        if (sp) {
            sp[nlive].lo = (uintptr_t)b->p;
            sp[nlive].hi = (uintptr_t)b->p + (u > b->size ? u : b->size);
            sp[nlive].id = b->id;
        }
        nlive++;
        live_bytes += b->size;
    }
    long overlaps = 0;
    if (sp) {
        qsort(sp, nlive, sizeof *sp, cmp_span);
        for (size_t i = 0; i + 1 < nlive; i++)
            if (sp[i].hi > sp[i + 1].lo) {
                if (overlaps++ < 5)
                    printf("# FAIL overlap: block %#llx [%#lx, %#lx) and "
                           "block %#llx at %#lx\n",
                           (unsigned long long)sp[i].id,
                           (unsigned long)sp[i].lo, (unsigned long)sp[i].hi,
                           (unsigned long long)sp[i + 1].id,
                           (unsigned long)sp[i + 1].lo);
            }
        free(sp);
    }
    struct mallinfo2 mi_full = mallinfo2();
    size_t live_counted = atomic_load(&g_live);

    /* Verify and free everything, then give memory back.  The trim settings
     * go back to glibc's defaults first: a random mallopt may have left
     * M_TRIM_THRESHOLD at 32 MiB, and glibc trims the top of a thread arena's
     * heap only in free() (malloc_trim does not), so each arena could keep
     * that much resident. */
    check(mallopt(M_TRIM_THRESHOLD, 128 * 1024) == 1 &&
              mallopt(M_TOP_PAD, 128 * 1024) == 1,
          "chaos: trim settings restored", "mallopt refused");
    long bad_before = atomic_load(&n_corrupt);
    struct thr fin = {.serial = -1, .rng = g_seed};
    for (size_t i = 0; i < nall; i++)
        if (pool[i].p)
            drop_block(&fin, &pool[i]);
    long drain_bad = atomic_load(&n_corrupt) - bad_before;
    malloc_trim(0);
    struct mallinfo2 mi_empty = mallinfo2();
    size_t rss_end = rss_bytes(), hwm = vm_hwm();
    size_t peak = hwm > rss_peak_seen ? hwm : rss_peak_seen;
    size_t rss_bound = rss_start + 32 * MiB + (peak - rss_start) / 8;
    printf("# %zu blocks (%zu MiB) live at the end; RSS start %zu MiB, peak "
           "%zu MiB, after free+trim %zu MiB (bound %zu MiB)\n",
           nlive, live_bytes / MiB, rss_start / MiB, peak / MiB,
           rss_end / MiB, rss_bound / MiB);
    printf("# mallinfo2 with blocks live: arena %zu uordblks %zu hblkhd %zu; "
           "after free+trim: arena %zu uordblks %zu fordblks %zu hblkhd %zu\n",
           mi_full.arena, mi_full.uordblks, mi_full.hblkhd, mi_empty.arena,
           mi_empty.uordblks, mi_empty.fordblks, mi_empty.hblkhd);

    check(atomic_load(&n_spawn_fail) == 0, "chaos: all threads started",
          "%ld pthread_create failures", atomic_load(&n_spawn_fail));
    check(total > 0 && g_cnt[OP_MALLOC] > 0 && g_cnt[OP_FREE] > 0,
          "chaos: operations performed", "%ld operations", total);
    if (g_seconds >= 5) {
        int missing = -1;
        for (int k = 0; k < NOPS; k++)
            if (atomic_load(&g_cnt[k]) == 0)
                missing = k;
        check(missing < 0, "chaos: every kind of operation exercised",
              "no %s", missing >= 0 ? op_name[missing] : "");
        check(atomic_load(&n_exits) > 0, "chaos: threads retired and replaced",
              "none did");
    }
    check(g_seconds < 1 || (atomic_load(&n_cross_free) > 0 &&
                            atomic_load(&n_cross_realloc) > 0),
          "chaos: blocks freed and realloc'd by other threads",
          "%ld cross frees, %ld cross reallocs", atomic_load(&n_cross_free),
          atomic_load(&n_cross_realloc));
    check(atomic_load(&n_corrupt) == 0, "chaos: contents intact",
          "%ld corrupted blocks (%ld found in the final drain)",
          atomic_load(&n_corrupt), drain_bad);
    check(atomic_load(&n_realloc_lost) == 0, "chaos: realloc kept contents",
          "%ld reallocs lost data", atomic_load(&n_realloc_lost));
    check(atomic_load(&n_calloc_dirty) == 0, "chaos: calloc memory zeroed",
          "%ld dirty calloc blocks", atomic_load(&n_calloc_dirty));
    check(atomic_load(&n_misaligned) == 0, "chaos: alignment ok",
          "%ld misaligned blocks", atomic_load(&n_misaligned));
    check(atomic_load(&n_null) == 0, "chaos: no unexpected NULL",
          "%ld unexpected NULLs (%ld accepted ENOMEM for > 1 MiB)",
          atomic_load(&n_null), atomic_load(&n_enomem_big));
    check(atomic_load(&n_usable_short) == 0,
          "chaos: malloc_usable_size >= requested", "%ld too small",
          atomic_load(&n_usable_short));
    check(atomic_load(&n_zero_realloc) == 0,
          "chaos: realloc(p, 0) frees and returns NULL", "%ld returned blocks",
          atomic_load(&n_zero_realloc));
    check(atomic_load(&n_impossible_bad) == 0,
          "chaos: impossible requests fail with ENOMEM/EINVAL",
          "%ld wrong results", atomic_load(&n_impossible_bad));
    check(atomic_load(&n_free_errno) == 0, "chaos: free preserves errno",
          "%ld frees changed errno", atomic_load(&n_free_errno));
    check(atomic_load(&n_mallinfo_bad) == 0, "chaos: mallinfo2 sane in flight",
          "%ld absurd results", atomic_load(&n_mallinfo_bad));
    check(atomic_load(&n_mallopt_bad) == 0,
          "chaos: mallopt results match glibc", "%ld mismatches",
          atomic_load(&n_mallopt_bad));
    check(overlaps == 0, "chaos: live blocks do not overlap",
          "%ld overlaps among %zu blocks", overlaps, nlive);
    check(live_counted == live_bytes, "chaos: live-byte bookkeeping consistent",
          "counter %zu, blocks %zu", live_counted, live_bytes);
    check(mi_full.uordblks + mi_full.hblkhd >= live_bytes,
          "chaos: mallinfo2 in-use bytes cover the live blocks",
          "uordblks %zu + hblkhd %zu < %zu live", mi_full.uordblks,
          mi_full.hblkhd, live_bytes);
    check(mi_empty.uordblks + mi_empty.hblkhd < 32 * MiB,
          "chaos: mallinfo2 in-use bytes back near zero after freeing all",
          "uordblks %zu + hblkhd %zu", mi_empty.uordblks, mi_empty.hblkhd);
    check(rss_end < rss_bound,
          "chaos: RSS after free + malloc_trim(0) < start + 32 MiB + peak/8",
          "RSS %zu KiB, start %zu KiB, peak %zu KiB", rss_end / KiB,
          rss_start / KiB, peak / KiB);
    void *p = launder(malloc(1000));
    check(p != NULL, "chaos: allocator usable afterwards", "p=%p", p);
    free(p);
    return finish("chaos");
}
