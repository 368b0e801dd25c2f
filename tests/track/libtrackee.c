/*
 * libtrackee.c - a test library whose named functions allocate known amounts, so the
 * tracker's reports can be checked against what really happened. Every function is
 * noinline and exported, so it shows up as a frame of its own.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define API __attribute__((noinline, visibility("default")))

static void *keep[1 << 16];
static int nkeep;

static void hold(void *p)
{
    if (nkeep < (int)(sizeof keep / sizeof keep[0]))
        keep[nkeep++] = p;
}

/* Live at exit: n blocks of `size` bytes. */
API void trk_live(int n, size_t size)
{
    for (int i = 0; i < n; i++) {
        char *p = malloc(size);
        memset(p, 1, size);
        hold(p);
    }
}

/* Churned: n malloc/free pairs of `size` bytes (nothing live). */
API void trk_churn(int n, size_t size)
{
    for (int i = 0; i < n; i++) {
        char *volatile p = malloc(size);
        p[0] = 1;
        free(p);
    }
}

/* Leaked through calloc: n blocks of count*size bytes. */
API void trk_calloc(int n, size_t count, size_t size)
{
    for (int i = 0; i < n; i++)
        hold(calloc(count, size));
}

/* memalign/posix_memalign/aligned_alloc: 3n blocks of `size` bytes, live. */
API void trk_memalign(int n, size_t align, size_t size)
{
    for (int i = 0; i < n; i++) {
        void *p = NULL;
        hold(memalign(align, size));
        if (posix_memalign(&p, align, size) == 0)
            hold(p);
        hold(aligned_alloc(align, size));
    }
}

/* strdup of an n-byte string (n+1 bytes each), `count` times, live. */
API void trk_strdup(int count, size_t n)
{
    char *s = alloca(n + 1);
    memset(s, 'x', n);
    s[n] = 0;
    for (int i = 0; i < count; i++)
        hold(strdup(s));
}

/* A block grown by realloc in `steps` steps of `step` bytes: one block of steps*step live. */
API void trk_realloc(int steps, size_t step)
{
    char *p = NULL;
    for (int i = 1; i <= steps; i++) {
        p = realloc(p, (size_t)i * step);
        p[(size_t)i * step - 1] = 1;
    }
    hold(p);
}

/* Big blocks (mmapped by the allocator): n of `size`, live. */
API void trk_big(int n, size_t size)
{
    for (int i = 0; i < n; i++) {
        char *p = malloc(size);
        p[0] = 1;
        hold(p);
    }
}

struct job { int n; size_t size; };

static void *thread_main(void *arg)
{
    struct job *j = arg;
    trk_live(j->n, j->size);
    return NULL;
}

/* `threads` threads, each leaving n blocks of `size` bytes live. */
API void trk_threads(int threads, int n, size_t size)
{
    pthread_t t[64];
    struct job j = {n, size};
    if (threads > 64)
        threads = 64;
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, thread_main, &j);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
}

/* The program's own mappings: 4 of `len` bytes, half of each touched; the first unmapped,
 * the second grown to twice its size by mremap: 3 live, 4 * len bytes reserved in all. */
API void trk_mmap(size_t len)
{
    char *m[4];
    for (int i = 0; i < 4; i++) {
        m[i] = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m[i] == MAP_FAILED)
            abort();
        memset(m[i], 1, len / 2);
    }
    munmap(m[0], len);
    m[1] = mremap(m[1], len, 2 * len, MREMAP_MAYMOVE);
    if (m[1] == MAP_FAILED)
        abort();
}

/* Frees everything held so far (the live figures drop to zero). */
API void trk_release(void)
{
    for (int i = 0; i < nkeep; i++)
        free(keep[i]);
    nkeep = 0;
}
