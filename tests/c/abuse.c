/*
 * abuse.c - heap-abuse detection: double frees (thread cache, bins, fast bins, large and
 * mmapped blocks, across threads), frees and reallocs of pointers malloc never returned
 * (stack, interior, wild, global), overflows into chunk headers, writes after free into
 * free-list links, and the hardened mode (OXMALLOC_HARDEN=1: canaries, guard pages, random
 * reuse order).
 *
 * The contract under oxmalloc: on abuse it writes exactly one line to stderr, starting with
 * "oxmalloc: ", and raises SIGABRT.  Every scenario runs in a forked child whose stderr is a
 * pipe read by the parent; the child has a 10 s alarm.  Hardened scenarios exec a fresh copy
 * of this program ("abuse --scenario NAME", which runs one scenario directly) with
 * OXMALLOC_HARDEN=1 in its environment, since the library reads it when it initialises.
 *
 * Without oxmalloc preloaded (dlsym(RTLD_DEFAULT, "oxmalloc_set_hooks") == NULL) this is the
 * glibc baseline: every non-hardened scenario runs and prints one line
 *     glibc: [N] NAME: detected (SIGABRT: <first stderr line>) | missed (exit 0) | crashed (...)
 * and only the harness's self-checks (and harness errors) count.
 */
#include "common.h"
#include <dlfcn.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

/*
 * The allocator called through volatile function pointers: GCC can neither see that a pointer
 * is freed twice or used after free (no -Wuse-after-free / -Wfree-nonheap-object warnings)
 * nor drop or fold any of the calls.
 */
static void *(*volatile malloc_v)(size_t) = malloc;
static void (*volatile free_v)(void *) = free;
static void *(*volatile realloc_v)(void *, size_t) = realloc;

/* Exit status of a child that could not set its scenario up (a harness error). */
#define HARNESS_EXIT 125
#define CHILD_TIMEOUT 10

/* Writes one line to stderr (the captured pipe in a child) without allocating. */
__attribute__((format(printf, 1, 2)))
static void note(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof buf - 2)
        n = sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t w = write(2, buf, (size_t)n);
    (void)w;
}

/* ------------------------------------------------------------------ */
/* Scenarios.  Each returns the child's exit status if nothing stopped it: 0 for "the abuse
 * went unnoticed" (or, for the behaviour checks, "the property holds"); other values come
 * with a note on stderr. */

/* 1 */
static int sc_df_tcache(void)
{
    void *p = malloc_v(40);
    free_v(p);
    free_v(p);
    return 0;
}

/* 1b: the block sits in the bin's spare list: a full cache bin's list moves there whole (the
 * first 64 blocks of 32 bytes), so the second free must be recognised (and named) there. */
static int sc_df_tcache_spare(void)
{
    void *v[100];
    for (int i = 0; i < 100; i++)
        v[i] = malloc_v(24);
    for (int i = 0; i < 80; i++)
        free_v(v[i]);
    free_v(v[0]);
    return 0;
}

/* 2: too big for the thread cache, below the mmap threshold: the block goes to a bin. */
static int sc_df_bin(void)
{
    void *p = malloc_v(5000);
    void *guard = malloc_v(16);
    free_v(p);
    free_v(p);
    launder(guard);
    return 0;
}

/* 3: A, B, A once the cache for the size is full: A is not at the top of its fast bin. */
static int sc_df_fast_aba(void)
{
    void *v[100];
    for (int i = 0; i < 100; i++)
        v[i] = malloc_v(48);
    for (int i = 0; i < 90; i++)
        free_v(v[i]);
    void *a = v[90], *b = v[91];
    free_v(a);
    free_v(b);
    free_v(a);
    return 0;
}

/* 4 */
static int sc_df_large(void)
{
    void *p = malloc_v(100000);
    void *guard = malloc_v(16);
    free_v(p);
    free_v(p);
    launder(guard);
    return 0;
}

/* 5 */
static int sc_df_mmap(void)
{
    void *p = malloc_v(4 * MiB);
    free_v(p);
    free_v(p);
    return 0;
}

/* 6 / 6b: another thread frees the block, then the main thread frees it again. */
static pthread_barrier_t xt_bar;
static int xt_stay; /* the thread is still alive (waiting) when main frees again */

static void *xt_body(void *arg)
{
    free_v(arg);
    if (xt_stay) {
        pthread_barrier_wait(&xt_bar); /* freed */
        pthread_barrier_wait(&xt_bar); /* main is done */
    }
    return NULL;
}

static int xt_run(int stay)
{
    xt_stay = stay;
    void *p = malloc_v(40);
    memset(p, 'x', 40);
    pthread_t t;
    if (stay && pthread_barrier_init(&xt_bar, NULL, 2) != 0) {
        note("harness: pthread_barrier_init failed");
        return HARNESS_EXIT;
    }
    if (pthread_create(&t, NULL, xt_body, p) != 0) {
        note("harness: pthread_create failed");
        return HARNESS_EXIT;
    }
    if (stay)
        pthread_barrier_wait(&xt_bar);
    else
        pthread_join(t, NULL);
    free_v(p);
    if (stay) {
        pthread_barrier_wait(&xt_bar);
        pthread_join(t, NULL);
    }
    return 0;
}

static int sc_df_thread(void) { return xt_run(1); }
static int sc_df_thread_exited(void) { return xt_run(0); }

/* 7: a stack buffer holding a plausible glibc chunk header (size 64, PREV_INUSE): glibc's
 * checks pass such a fake chunk ("house of spirit"); oxmalloc must still refuse it. */
static int sc_free_stack(void)
{
    _Alignas(16) char buf[64];
    memset(buf, 0, sizeof buf);
    uint64_t fake = 0x41;
    memcpy(buf + 8, &fake, 8);
    free_v(launder(buf + 16));
    return 0;
}

/* 8 */
static int sc_free_interior(void)
{
    char *p = malloc_v(100);
    memset(p, 'A', 100);
    free_v(launder(p + 32));
    return 0;
}

/* Whether the page holding `a` is mapped (msync fails with ENOMEM on an unmapped range). */
static int page_mapped(uintptr_t a)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    return msync((void *)(a & ~(page - 1)), page, MS_ASYNC) == 0 || errno != ENOMEM;
}

/* 9a: 0x10000000000 (1 TiB), or the next TiB up if that happens to be mapped. */
static int sc_free_wild_far(void)
{
    uintptr_t a = 0x10000000000ull;
    while (page_mapped(a) && a < 0x100000000000ull)
        a += 0x10000000000ull;
    if (page_mapped(a)) {
        note("harness: no unmapped address found near 1 TiB");
        return HARNESS_EXIT;
    }
    free_v((void *)a);
    return 0;
}

/* 9b: an address in the mmap area (among the libraries and the allocator's own mappings)
 * that was just unmapped. */
static int sc_free_wild_unmapped(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        note("harness: mmap failed");
        return HARNESS_EXIT;
    }
    munmap(m, 2 * page);
    uintptr_t a = (uintptr_t)m + 0x1230 % (2 * page);
    if (page_mapped(a)) {
        note("harness: the unmapped page is mapped again");
        return HARNESS_EXIT;
    }
    free_v((void *)a);
    return 0;
}

/* 10 */
static _Alignas(16) char global_buf[256];

static int sc_free_global(void)
{
    free_v(launder(global_buf + 64));
    return 0;
}

/* 11 */
static int sc_realloc_freed(void)
{
    void *p = malloc_v(64);
    free_v(p);
    launder(realloc_v(p, 128));
    return 0;
}

/* 12 */
static int sc_realloc_stack(void)
{
    _Alignas(16) char buf[64];
    memset(buf, 0, sizeof buf);
    launder(realloc_v(launder(buf + 16), 128));
    return 0;
}

/*
 * Finds two held blocks, a of `na` bytes and b of `nb` bytes, with b's chunk directly after
 * a's: a's usable end is b's size field (a + usable(a) == b - 8, the glibc layout oxmalloc
 * keeps).  With `need_next`, the chunk after b must be a held block too, so that b, once
 * freed, stays in a bin instead of merging into the top.  Blocks of a size may come from
 * caches or be carved in batches, so pairs are searched among everything allocated so far
 * (nothing is freed: the blocks that do not fit just stay allocated).  Returns 0 if no such
 * layout turned up.
 */
static int adjacent_pair(size_t na, size_t nb, int need_next, char **pa, char **pb)
{
    enum { TRIES = 96 };
    static char *as[TRIES], *bs[TRIES];
    for (int i = 0; i < TRIES; i++) {
        as[i] = malloc_v(na);
        bs[i] = malloc_v(nb);
        if (!as[i] || !bs[i])
            return 0;
        for (int j = 0; j <= i; j++) {
            for (int k = 0; k <= i; k++) {
                char *a = as[j], *b = bs[k];
                if (a + malloc_usable_size(a) != b - 8)
                    continue;
                char *next = b + malloc_usable_size(b) + 8;
                int held = !need_next;
                for (int m = 0; m <= i && !held; m++)
                    held = as[m] == next || bs[m] == next;
                if (held) {
                    *pa = a;
                    *pb = b;
                    return 1;
                }
            }
        }
    }
    return 0;
}

/* 13: an 8-byte overflow from a into b's size field, found when b is freed. */
static int sc_overflow_free(void)
{
    char *a, *b;
    if (!adjacent_pair(24, 24, 0, &a, &b)) {
        note("harness: no adjacent pair of 24-byte blocks");
        return HARNESS_EXIT;
    }
    memset(a + malloc_usable_size(a), 0x41, 8);
    free_v(b);
    return 0;
}

/* 14: a 16-byte overflow from a into the header (and first link) of b, which is free in a
 * bin (5000 bytes: beyond the thread cache), found when the next malloc looks at it. */
static int sc_overflow_bin(void)
{
    char *a, *b;
    if (!adjacent_pair(200, 5000, 1, &a, &b)) {
        note("harness: no adjacent 200/5000-byte pair");
        return HARNESS_EXIT;
    }
    void *guard = malloc_v(16);
    free_v(b);
    memset(a + malloc_usable_size(a), 0x41, 16);
    launder(malloc_v(5000));
    launder(guard);
    return 0;
}

/* 15: write after free over a cached block's link. */
static int sc_uaf_link(void)
{
    char *p = malloc_v(48), *q = malloc_v(48);
    free_v(q);
    free_v(p);
    *(volatile uint64_t *)p = 0x4141414141414141ull;
    launder(malloc_v(48));
    launder(malloc_v(48));
    return 0;
}

/* 16: the link overwritten with the address of another live block of the same size. */
static int sc_uaf_link_plausible(void)
{
    char *p = malloc_v(48), *q = malloc_v(48), *r = malloc_v(48);
    free_v(q);
    free_v(p);
    *(char *volatile *)p = r;
    void *x = malloc_v(48);
    void *y = malloc_v(48);
    if (x == r || y == r) {
        note("malloc returned the planted address %p (a live block)", (void *)r);
        return 3;
    }
    return 0;
}

/* 17-21 and the extra hardened check run with OXMALLOC_HARDEN=1 (exec'd). */

/* 22: an interior pointer whose preceding word looks like the header of a small in-use
 * block (48 bytes, P set). The default mode's hot free path checks only the free and mmapped
 * bits there (glibc checks no more), so it takes the block into the thread cache; the
 * hardened mode checks the header's tag on every free and aborts. */
static int sc_h_forged_header(void)
{
    char *p = malloc_v(100);
    memset(p, 0, 100);
    size_t fake = 48 | 1;
    memcpy(p + 24, &fake, sizeof fake);
    free_v(launder(p + 32));
    return 0;
}

/* 17 */
static int sc_h_canary(void)
{
    char *p = malloc_v(20);
    ((volatile char *)p)[20] = 'x';
    free_v(p);
    return 0;
}

/* 18: writing forward past the end of a large block must fault by itself within 64 bytes.
 * The block ends at the guard page; the first bytes after the requested size are its canary
 * and size word (checked at free), so the fault comes at p[n + 32] for n = 1 MiB. */
static int sc_h_guard(void)
{
    char *p = malloc_v(1 << 20);
    for (int i = 0; i < 64; i++)
        ((volatile char *)p)[(1 << 20) + i] = 'x';
    free_v(p);
    return 0;
}

/* 19: 32 blocks of 64 bytes freed in order and allocated again; then free(p), malloc. */
static int reuse_order(int want_lifo)
{
    enum { N = 32 };
    void *v[N], *w[N];
    for (int i = 0; i < N; i++)
        v[i] = malloc_v(64);
    for (int i = 0; i < N; i++)
        free_v(v[i]);
    for (int i = 0; i < N; i++)
        w[i] = malloc_v(64);
    int reversed = 0;
    while (reversed < N && w[reversed] == v[N - 1 - reversed])
        reversed++;
    void *p = malloc_v(64);
    free_v(p);
    void *q = malloc_v(64);
    int same = q == p;
    for (int i = 0; i < N; i++)
        free_v(w[i]);
    free_v(q);
    if (want_lifo && (reversed != N || !same)) {
        note("not LIFO: %d of %d blocks came back in reverse free order; free(p)+malloc %s p",
             reversed, N, same ? "returned" : "did not return");
        return 1;
    }
    if (!want_lifo && (reversed == N || same)) {
        note("predictable reuse: %d of %d blocks came back in reverse free order; "
             "free(p)+malloc %s p", reversed, N, same ? "returned" : "did not return");
        return 1;
    }
    return 0;
}

static int sc_h_reuse_random(void) { return reuse_order(0); }
static int sc_reuse_lifo(void) { return reuse_order(1); }

/* 20 */
static int sc_h_usable(void)
{
    void *p = malloc_v(20);
    size_t u = malloc_usable_size(p);
    free_v(p);
    if (u != 20) {
        note("malloc_usable_size(malloc(20)) = %zu", u);
        return 1;
    }
    return 0;
}

/* 21 (and a harness self-check without HARDEN): mixed use with contents checks. */
static size_t pick_size(uint64_t r)
{
    unsigned k = (unsigned)(r % 10000);
    r /= 10000;
    if (k < 8500)
        return 1 + r % 512;
    if (k < 9880)
        return 513 + r % (16384 - 512);
    if (k < 9995)
        return 16385 + r % (65536 - 16384);
    return 131073 + r % (600000 - 131072); /* mmapped: guard pages in hardened mode */
}

static int workload(void)
{
    enum { SLOTS = 512, OPS = 100000 };
    static struct {
        unsigned char *p;
        size_t n;
        uint64_t seed;
    } s[SLOTS];
    uint64_t rng = 0x5eed;
    for (int op = 0; op < OPS; op++) {
        uint64_t r = rng_next(&rng);
        size_t i = r % SLOTS;
        unsigned kind = (unsigned)(r >> 12) % 8;
        size_t n = pick_size(rng_next(&rng));
        uint64_t seed = rng_next(&rng);
        if (!s[i].p) {
            unsigned char *p;
            if (kind == 4) {
                p = calloc(1, n);
                if (p)
                    for (size_t j = 0; j < n; j++)
                        if (p[j]) {
                            note("op %d: calloc(1, %zu) byte %zu is %u", op, n, j, p[j]);
                            return 1;
                        }
            } else if (kind == 5) {
                size_t al = (size_t)16 << (r >> 20) % 9;
                p = memalign(al, n);
                if (p && ((uintptr_t)p & (al - 1))) {
                    note("op %d: memalign(%zu, %zu) = %p", op, al, n, (void *)p);
                    return 1;
                }
            } else if (kind == 6) {
                p = realloc(NULL, n);
            } else {
                p = malloc(n);
            }
            if (!p) {
                note("op %d: allocation of %zu bytes (kind %u) failed", op, n, kind);
                return 1;
            }
            pat_fill(p, n, seed);
            s[i].p = p;
            s[i].n = n;
            s[i].seed = seed;
            continue;
        }
        size_t bad = pat_check(s[i].p, s[i].n, s[i].seed);
        if (bad != (size_t)-1) {
            note("op %d: block %p of %zu bytes changed at byte %zu", op, (void *)s[i].p, s[i].n, bad);
            return 1;
        }
        if (kind < 3) {
            unsigned char *q = realloc(s[i].p, n);
            if (!q) {
                note("op %d: realloc to %zu bytes failed", op, n);
                return 1;
            }
            size_t keep = n < s[i].n ? n : s[i].n;
            bad = pat_check(q, keep, s[i].seed);
            if (bad != (size_t)-1) {
                note("op %d: realloc %zu -> %zu lost byte %zu", op, s[i].n, n, bad);
                return 1;
            }
            pat_fill(q, n, seed);
            s[i].p = q;
            s[i].n = n;
            s[i].seed = seed;
        } else {
            free(s[i].p);
            s[i].p = NULL;
        }
    }
    for (size_t i = 0; i < SLOTS; i++) {
        if (s[i].p && pat_check(s[i].p, s[i].n, s[i].seed) != (size_t)-1) {
            note("final check: block of %zu bytes changed", s[i].n);
            return 1;
        }
        free(s[i].p);
        s[i].p = NULL;
    }
    return 0;
}

/* Extra: a double free of a block in the hardened mode's quarantine. */
static int sc_h_double_free(void)
{
    void *p = malloc_v(40);
    free_v(p);
    free_v(p);
    return 0;
}

/* Harness self-checks. */
static int st_clean(void) { return 0; }
static int st_abort(void)
{
    note("selftest: about to abort");
    abort();
}
static int st_segv(void)
{
    raise(SIGSEGV);
    return 0;
}
static int st_hang(void)
{
    while (pause() == -1) /* until the alarm kills the child */
        ;
    return 0;
}
/* Exec'd with OXMALLOC_HARDEN=1: the environment, and LD_PRELOAD with it, reached the copy. */
static int st_exec_env(void)
{
    const char *h = getenv("OXMALLOC_HARDEN");
    const char *pre = getenv("ABUSE_PARENT_OXMALLOC");
    int ox = dlsym(RTLD_DEFAULT, "oxmalloc_set_hooks") != NULL;
    if (!h || strcmp(h, "1") != 0 || !pre || (pre[0] == '1') != ox) {
        note("exec'd copy: OXMALLOC_HARDEN=%s, oxmalloc %s (parent: %s)", h ? h : "(unset)",
             ox ? "loaded" : "not loaded", pre ? pre : "?");
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* The scenario table. */

enum expect { EX_ABORT, EX_SEGV, EX_EXIT0 };
enum role {
    R_ABUSE,  /* run under both; a check under oxmalloc, a table line under glibc */
    R_HARDEN, /* exec'd with OXMALLOC_HARDEN=1; oxmalloc only */
    R_OXONLY, /* plain fork; oxmalloc only (oxmalloc's own behaviour) */
    R_SELF,   /* harness self-check, both */
};

struct scenario {
    const char *id, *name;
    int (*fn)(void);
    enum role role;
    enum expect ex;
    const char *want;     /* substring of the oxmalloc line */
    const char *want_alt; /* alternative substring, or NULL */
    int exit0_ok;         /* EX_ABORT, but a clean exit (the child's own check) also passes */
    unsigned timeout;     /* seconds; 0: CHILD_TIMEOUT */
};

static const struct scenario scenarios[] = {
    {"self1", "selftest-clean-exit", st_clean, R_SELF, EX_EXIT0, NULL, NULL, 0, 0},
    {"self2", "selftest-abort", st_abort, R_SELF, EX_ABORT, "selftest: about to abort", NULL, 0, 0},
    {"self3", "selftest-segv", st_segv, R_SELF, EX_SEGV, NULL, NULL, 0, 0},
    {"self4", "selftest-timeout", st_hang, R_SELF, EX_EXIT0, NULL, NULL, 0, 1},
    {"self5", "selftest-exec-env", st_exec_env, R_SELF, EX_EXIT0, NULL, NULL, 0, 0},
    {"self6", "selftest-workload", workload, R_SELF, EX_EXIT0, NULL, NULL, 0, 0},
    {"1", "double-free-tcache", sc_df_tcache, R_ABUSE, EX_ABORT, "double free", NULL, 0, 0},
    {"1b", "double-free-tcache-spare", sc_df_tcache_spare, R_ABUSE, EX_ABORT,
     "double free detected (block in the thread cache)", NULL, 0, 0},
    {"2", "double-free-bin", sc_df_bin, R_ABUSE, EX_ABORT, "double free", NULL, 0, 0},
    {"3", "double-free-fastbin-aba", sc_df_fast_aba, R_ABUSE, EX_ABORT, "double free", NULL, 0, 0},
    {"4", "double-free-large", sc_df_large, R_ABUSE, EX_ABORT, "double free", NULL, 0, 0},
    {"5", "double-free-mmapped", sc_df_mmap, R_ABUSE, EX_ABORT, "double free", NULL, 0, 0},
    {"6", "double-free-cross-thread", sc_df_thread, R_ABUSE, EX_ABORT, "double free", NULL, 0, 0},
    {"6b", "double-free-cross-thread-exited", sc_df_thread_exited, R_ABUSE, EX_ABORT,
     "double free", NULL, 0, 0},
    {"7", "free-stack", sc_free_stack, R_ABUSE, EX_ABORT, "invalid pointer", NULL, 0, 0},
    {"8", "free-interior", sc_free_interior, R_ABUSE, EX_ABORT, "invalid pointer", NULL, 0, 0},
    {"9a", "free-wild-far", sc_free_wild_far, R_ABUSE, EX_ABORT, "invalid pointer", NULL, 0, 0},
    {"9b", "free-wild-unmapped", sc_free_wild_unmapped, R_ABUSE, EX_ABORT, "invalid pointer",
     NULL, 0, 0},
    {"10", "free-global", sc_free_global, R_ABUSE, EX_ABORT, "invalid pointer", NULL, 0, 0},
    {"11", "realloc-freed", sc_realloc_freed, R_ABUSE, EX_ABORT, "realloc(): invalid pointer",
     NULL, 0, 0},
    {"12", "realloc-stack", sc_realloc_stack, R_ABUSE, EX_ABORT, "realloc(): invalid pointer",
     NULL, 0, 0},
    {"13", "overflow-header-at-free", sc_overflow_free, R_ABUSE, EX_ABORT, "corrupted", NULL, 0, 0},
    {"14", "overflow-header-in-bin", sc_overflow_bin, R_ABUSE, EX_ABORT, "corrupted", NULL, 0, 0},
    {"15", "uaf-link-garbage", sc_uaf_link, R_ABUSE, EX_ABORT, "corrupted", "oxmalloc: malloc(): ",
     0, 0},
    {"16", "uaf-link-live-block", sc_uaf_link_plausible, R_ABUSE, EX_ABORT, "corrupted", NULL, 1, 0},
    {"17", "harden-canary", sc_h_canary, R_HARDEN, EX_ABORT, "heap overflow", NULL, 0, 0},
    {"18", "harden-guard-page", sc_h_guard, R_HARDEN, EX_SEGV, NULL, NULL, 0, 0},
    {"19a", "harden-reuse-random", sc_h_reuse_random, R_HARDEN, EX_EXIT0, NULL, NULL, 0, 0},
    {"19b", "default-reuse-lifo", sc_reuse_lifo, R_OXONLY, EX_EXIT0, NULL, NULL, 0, 0},
    {"20", "harden-usable-size", sc_h_usable, R_HARDEN, EX_EXIT0, NULL, NULL, 0, 0},
    {"21", "harden-workload", workload, R_HARDEN, EX_EXIT0, NULL, NULL, 0, 0},
    {"22", "harden-forged-header", sc_h_forged_header, R_HARDEN, EX_ABORT, "invalid pointer",
     NULL, 0, 0},
    {"x1", "harden-double-free-quarantined", sc_h_double_free, R_HARDEN, EX_ABORT, "double free",
     NULL, 0, 0},
};
#define NSCEN (sizeof scenarios / sizeof scenarios[0])

/* ------------------------------------------------------------------ */
/* Running a scenario in a child. */

struct result {
    int status;       /* from waitpid */
    int harness;      /* the harness failed (message in err) */
    char err[160];
    char out[4096];   /* captured stderr, NUL-terminated */
    size_t len;
};

/* The child's setup: stderr onto the pipe, no core dumps, the alarm. */
static void child_setup(int fd, unsigned secs)
{
    if (fd != 2) {
        dup2(fd, 2);
        close(fd);
    }
    struct rlimit rl = {0, 0};
    setrlimit(RLIMIT_CORE, &rl);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    signal(SIGALRM, SIG_DFL);
    alarm(secs);
}

static int exec_self(const char *name)
{
    char *argv[] = {"abuse", "--scenario", (char *)name, NULL};
    execv("/proc/self/exe", argv);
    note("harness: execv(/proc/self/exe) failed: %s", strerror(errno));
    return HARNESS_EXIT;
}

static void run_child(const struct scenario *s, int use_exec, struct result *r)
{
    memset(r, 0, sizeof *r);
    unsigned secs = s->timeout ? s->timeout : CHILD_TIMEOUT;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        r->harness = 1;
        snprintf(r->err, sizeof r->err, "pipe: %s", strerror(errno));
        return;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        r->harness = 1;
        snprintf(r->err, sizeof r->err, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return;
    }
    if (pid == 0) {
        close(fds[0]);
        child_setup(fds[1], secs);
        if (use_exec) {
            setenv("OXMALLOC_HARDEN", "1", 1);
            _exit(exec_self(s->name));
        }
        _exit(s->fn());
    }
    close(fds[1]);
    /* Read until EOF; the child's alarm bounds it, and a SIGKILL backs the alarm up. */
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int killed = 0;
    for (;;) {
        struct pollfd pfd = {fds[0], POLLIN, 0};
        int pr = poll(&pfd, 1, 500);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr > 0) {
            char tmp[1024];
            ssize_t n = read(fds[0], tmp, sizeof tmp);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            size_t room = sizeof r->out - 1 - r->len;
            size_t take = (size_t)n < room ? (size_t)n : room;
            memcpy(r->out + r->len, tmp, take);
            r->len += take;
            continue;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (!killed && now.tv_sec - t0.tv_sec > (time_t)secs + 5) {
            kill(pid, SIGKILL);
            killed = 1;
        }
    }
    r->out[r->len] = '\0';
    close(fds[0]);
    while (waitpid(pid, &r->status, 0) < 0) {
        if (errno != EINTR) {
            r->harness = 1;
            snprintf(r->err, sizeof r->err, "waitpid: %s", strerror(errno));
            return;
        }
    }
    if (WIFEXITED(r->status) && WEXITSTATUS(r->status) == HARNESS_EXIT) {
        r->harness = 1;
        snprintf(r->err, sizeof r->err, "child setup failed");
    }
}

/* The first line of the captured stderr, printable, at most 200 characters. */
static void first_line(const struct result *r, char *buf, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < r->len && r->out[i] != '\n' && n + 1 < cap && n < 200; i++) {
        unsigned char c = (unsigned char)r->out[i];
        buf[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    buf[n] = '\0';
}

static int line_count(const struct result *r)
{
    int n = 0;
    for (size_t i = 0; i < r->len; i++)
        n += r->out[i] == '\n';
    if (r->len && r->out[r->len - 1] != '\n')
        n++; /* an unterminated last line */
    return n;
}

/* How the child ended, in words. */
static void describe(const struct result *r, char *buf, size_t cap)
{
    char line[256];
    first_line(r, line, sizeof line);
    int st = r->status;
    if (WIFEXITED(st)) {
        if (WEXITSTATUS(st) == 0 && r->len == 0)
            snprintf(buf, cap, "missed (exit 0)");
        else
            snprintf(buf, cap, "exit %d%s%s%s", WEXITSTATUS(st), r->len ? " (" : "", line,
                     r->len ? ")" : "");
    } else if (WIFSIGNALED(st)) {
        int sig = WTERMSIG(st);
        if (sig == SIGABRT)
            snprintf(buf, cap, "detected (SIGABRT: %s)", r->len ? line : "no message");
        else if (sig == SIGALRM)
            snprintf(buf, cap, "hung (killed by the %u s alarm)", CHILD_TIMEOUT);
        else if (sig == SIGKILL)
            snprintf(buf, cap, "hung (SIGKILL)");
        else
            snprintf(buf, cap, "crashed (%s%s%s%s)", sigabbrev_np(sig) ? "SIG" : "signal ",
                     sigabbrev_np(sig) ? sigabbrev_np(sig) : "", r->len ? ": " : "",
                     r->len ? line : "");
    } else {
        snprintf(buf, cap, "status 0x%x", st);
    }
}

/* The oxmalloc verdict for one scenario: a check line. */
static void judge(const struct scenario *s, const struct result *r)
{
    char name[400], what[300], line[256];
    snprintf(name, sizeof name, "[%s] %s", s->id, s->name);
    if (r->harness) {
        check(0, name, "harness error: %s (stderr: %.200s)", r->err, r->out);
        return;
    }
    describe(r, what, sizeof what);
    first_line(r, line, sizeof line);
    int st = r->status, ok;
    switch (s->ex) {
    case EX_ABORT: {
        int one = line_count(r) == 1 && r->out[r->len - 1] == '\n';
        int prefix = strncmp(r->out, "oxmalloc: ", 10) == 0;
        int has = s->want && (strstr(line, s->want) || (s->want_alt && strstr(line, s->want_alt)));
        ok = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && one && prefix && has;
        if (ok) {
            snprintf(name + strlen(name), sizeof name - strlen(name), ": %s", line);
        } else if (s->exit0_ok && WIFEXITED(st) && WEXITSTATUS(st) == 0 && r->len == 0) {
            ok = 1;
            snprintf(name + strlen(name), sizeof name - strlen(name),
                     ": not detected, but the planted address was not returned");
        }
        check(ok, name,
              "%s; want SIGABRT and one stderr line starting \"oxmalloc: \" and containing "
              "\"%s\"%s%s%s, got %d line(s)",
              what, s->want, s->want_alt ? " or \"" : "", s->want_alt ? s->want_alt : "",
              s->want_alt ? "\"" : "", line_count(r));
        break;
    }
    case EX_SEGV:
        ok = WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV && r->len == 0;
        check(ok, name, "%s; want SIGSEGV with nothing on stderr", what);
        break;
    case EX_EXIT0:
        ok = WIFEXITED(st) && WEXITSTATUS(st) == 0 && r->len == 0;
        check(ok, name, "%s", what);
        break;
    }
}

/* The harness's own checks (both allocators). */
static void self_check(const struct scenario *s, const struct result *r)
{
    char name[200], what[300];
    snprintf(name, sizeof name, "harness: %s", s->name);
    if (r->harness) {
        check(0, name, "harness error: %s (stderr: %.200s)", r->err, r->out);
        return;
    }
    describe(r, what, sizeof what);
    int st = r->status, ok;
    if (s->fn == st_hang)
        ok = WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM;
    else if (s->ex == EX_ABORT)
        ok = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && line_count(r) == 1 &&
             strstr(r->out, s->want) != NULL;
    else if (s->ex == EX_SEGV)
        ok = WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV && r->len == 0;
    else
        ok = WIFEXITED(st) && WEXITSTATUS(st) == 0 && r->len == 0;
    check(ok, name, "%s", what);
}

static int scenario_main(const char *name)
{
    for (size_t i = 0; i < NSCEN; i++) {
        if (strcmp(scenarios[i].name, name) == 0 || strcmp(scenarios[i].id, name) == 0) {
            /* Exec'd (or run by hand): no core dumps; the alarm survived the exec. */
            struct rlimit rl = {0, 0};
            setrlimit(RLIMIT_CORE, &rl);
            prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
            _exit(scenarios[i].fn());
        }
    }
    note("harness: no scenario named %s", name);
    return HARNESS_EXIT;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--scenario") == 0)
        return scenario_main(argv[2]);
    if (argc != 1) {
        fprintf(stderr, "usage: %s [--scenario NAME]\n", argv[0]);
        return 2;
    }

    int ox = dlsym(RTLD_DEFAULT, "oxmalloc_set_hooks") != NULL;
    const char *h = getenv("OXMALLOC_HARDEN");
    int hardened_here = h && *h && strcmp(h, "0") != 0;
    /* Old glibc wrote fatal messages to /dev/tty unless this is set. */
    setenv("LIBC_FATAL_STDERR_", "1", 1);
    setenv("ABUSE_PARENT_OXMALLOC", ox ? "1" : "0", 1);
    printf("# allocator: %s%s\n", ox ? "oxmalloc (preloaded)" : "glibc (baseline: scenarios are informational)",
           hardened_here ? ", OXMALLOC_HARDEN set for this process" : "");

    for (size_t i = 0; i < NSCEN; i++) {
        const struct scenario *s = &scenarios[i];
        struct result r;
        if (s->role == R_SELF) {
            run_child(s, s->fn == st_exec_env, &r);
            self_check(s, &r);
            continue;
        }
        if (!ox) {
            if (s->role != R_ABUSE) {
                printf("# [%s] %s: oxmalloc only, skipped\n", s->id, s->name);
                continue;
            }
            run_child(s, 0, &r);
            if (r.harness) {
                char name[200];
                snprintf(name, sizeof name, "glibc: [%s] %s ran", s->id, s->name);
                check(0, name, "harness error: %s (stderr: %.200s)", r.err, r.out);
                continue;
            }
            char what[300];
            describe(&r, what, sizeof what);
            printf("glibc: [%s] %s: %s\n", s->id, s->name, what);
            continue;
        }
        if (s->role == R_OXONLY && hardened_here) {
            printf("# [%s] %s: skipped (OXMALLOC_HARDEN is set for the whole run)\n", s->id, s->name);
            continue;
        }
        run_child(s, s->role == R_HARDEN, &r);
        judge(s, &r);
    }
    return finish("abuse");
}
