/*
 * oom.c - out of memory, every entry point: with RLIMIT_AS lowered until nothing more can be
 * mapped, malloc, calloc, realloc, reallocarray and the memalign family (posix_memalign,
 * aligned_alloc, memalign, valloc, pvalloc) return NULL with ENOMEM (posix_memalign: the
 * ENOMEM return value) for small and large sizes alike, in the main thread and in a second
 * thread (its own arena), never crash, leave the blocks they were given intact, and serve
 * again once memory is freed.
 */
#include "common.h"
#include <malloc.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>

enum { MAXHELD = 1 << 20 };
static void **held;
static size_t nheld;

/* Fill memory with blocks of `size` until malloc fails; returns how many failures lacked ENOMEM. */
static int exhaust(size_t size)
{
    int bad = 0;
    while (nheld < MAXHELD) {
        errno = 0;
        void *p = malloc(size);
        if (!p) {
            bad += errno != ENOMEM;
            break;
        }
        *(volatile char *)p = 1;
        held[nheld++] = p;
    }
    return bad;
}

/* Every entry point once at `size` while memory is exhausted. Returns a bitmask of failures. */
static unsigned try_all(size_t size, void *live)
{
    unsigned bad = 0;
    void *p;
    errno = 0; p = malloc(size);                 if (p || errno != ENOMEM) bad |= 1;   free(p);
    errno = 0; p = calloc(1, size);              if (p || errno != ENOMEM) bad |= 2;   free(p);
    errno = 0; p = realloc(live, size + (1 << 20));   if (p || errno != ENOMEM) bad |= 4;
    if (p) live = p;
    errno = 0; p = reallocarray(NULL, 1, size);  if (p || errno != ENOMEM) bad |= 8;   free(p);
    errno = 0; p = aligned_alloc(64, size);      if (p || errno != ENOMEM) bad |= 16;  free(p);
    errno = 0; p = memalign(4096, size);         if (p || errno != ENOMEM) bad |= 32;  free(p);
    errno = 0; p = valloc(size);                 if (p || errno != ENOMEM) bad |= 64;  free(p);
    errno = 0; p = pvalloc(size);                if (p || errno != ENOMEM) bad |= 128; free(p);
    p = NULL;
    int r = posix_memalign(&p, 256, size);       if (r != ENOMEM || p) bad |= 256;
    return bad;
}

static void release_all(void)
{
    for (size_t i = 0; i < nheld; i++)
        free(held[i]);
    nheld = 0;
    malloc_trim(0);
}

struct arg { unsigned small_bad, large_bad, exhaust_bad; int again_ok; };

static void *thread_body(void *v)
{
    struct arg *a = v;
    /* This thread's first allocation attaches it to an arena of its own (or fails cleanly). */
    a->exhaust_bad = exhaust(4000) + exhaust(100) + exhaust(16);
    void *live = malloc(1);  /* may be NULL: then realloc(NULL) is a malloc */
    a->small_bad = try_all(24, NULL) & ~4u;
    a->large_bad = try_all(64 << 20, live) & ~4u;
    free(live);
    return NULL;
}

int main(void)
{
    held = mmap(NULL, MAXHELD * sizeof(void *), PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (held == MAP_FAILED)
        return check(0, "setup", "mmap failed"), finish("oom");

    /* A block whose contents must survive everything below. */
    char *keep = malloc(5000);
    memset(keep, 0x5a, 5000);

    struct rlimit old, lim;
    getrlimit(RLIMIT_AS, &old);
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (!f || fscanf(f, "%lu", &pages) != 1)
        return check(0, "setup", "cannot read /proc/self/statm"), finish("oom");
    fclose(f);
    lim = old;
    lim.rlim_cur = pages * 4096ul + (48ul << 20);
    if (setrlimit(RLIMIT_AS, &lim) != 0)
        return check(0, "setup", "setrlimit: errno %d", errno), finish("oom");

    /* A second thread first (its own arena), run to the end before the main thread starts. */
    pthread_t th;
    struct arg a = {0};
    int started = pthread_create(&th, NULL, thread_body, &a) == 0;
    if (started)
        pthread_join(th, NULL);

    int bad = exhaust(8000) + exhaust(200) + exhaust(16);
    check(bad == 0 && nheld > 0, "main: exhausting memory ends in NULL + ENOMEM", "bad=%d held=%zu", bad, nheld);
    unsigned s = try_all(24, keep), l = try_all(64 << 20, keep);
    check(s == 0, "main: every entry point gives NULL + ENOMEM for 24 B", "failures mask 0x%x", s);
    check(l == 0, "main: every entry point gives NULL + ENOMEM for 64 MiB", "failures mask 0x%x", l);
    int intact = 1;
    for (int i = 0; i < 5000; i++)
        intact &= keep[i] == 0x5a;
    check(intact && malloc_usable_size(keep) >= 5000, "main: the block kept through failed reallocs is intact",
          "intact=%d", intact);

    if (started) {
        check(a.exhaust_bad == 0, "thread: exhausting memory ends in NULL + ENOMEM", "bad=%u", a.exhaust_bad);
        check(a.small_bad == 0, "thread: every entry point gives NULL + ENOMEM for 24 B", "mask 0x%x", a.small_bad);
        check(a.large_bad == 0, "thread: every entry point gives NULL + ENOMEM for 64 MiB", "mask 0x%x", a.large_bad);
    } else {
        check(0, "thread: created", "pthread_create failed under the limit");
    }

    release_all();
    /* Serving again, small and large, in the arenas that ran dry. */
    void *p1 = malloc(24), *p2 = malloc(8 << 20), *p3 = memalign(4096, 100000), *p4 = calloc(1000, 100);
    int ok = p1 && p2 && p3 && p4 && ((uintptr_t)p3 & 4095) == 0;
    if (p2)
        memset(p2, 1, 8 << 20);
    check(ok, "after frees: allocation works again", "%p %p %p %p", p1, p2, p3, p4);
    free(p1); free(p2); free(p3); free(p4);
    keep = realloc(keep, 100000);
    intact = keep != NULL;
    for (int i = 0; keep && i < 5000; i++)
        intact &= keep[i] == 0x5a;
    check(intact, "after frees: the kept block grows with its contents", "keep=%p", (void *)keep);
    free(keep);
    setrlimit(RLIMIT_AS, &old);
    return finish("oom");
}
