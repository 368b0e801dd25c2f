/*
 * tunables.c - the environment's effect, checked from inside: `tunables EXPECT_MMAP ARENAS`
 * allocates a 1 MiB block and says whether it lies outside [heap] (EXPECT_MMAP 1) or inside
 * (0) — glibc and oxmalloc agree on both, since a threshold of 4 MiB keeps 1 MiB in the heap
 * for both and the default 128 KiB maps it for both, then runs 4 threads at once and counts the "Arena N:" sections malloc_stats prints
 * (ARENAS: the exact count expected, or 0 for "more than one"). Run by run.sh with
 * MALLOC_MMAP_THRESHOLD_, GLIBC_TUNABLES (valid and unparsable) and MALLOC_ARENA_MAX.
 */
#include "common.h"
#include <malloc.h>
#include <pthread.h>

static int in_heap(void *p)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int r = 0;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && strstr(line, "[heap]") &&
            (unsigned long)p >= lo && (unsigned long)p < hi)
            r = 1;
    }
    if (f)
        fclose(f);
    return r;
}

static pthread_barrier_t bar;
static void *worker(void *a)
{
    (void)a;
    void *p = launder(malloc(200));
    pthread_barrier_wait(&bar); /* all four threads alive and allocating at once */
    pthread_barrier_wait(&bar);
    free(launder(p));
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: tunables EXPECT_MMAP ARENAS\n");
        return 2;
    }
    int expect_mmap = atoi(argv[1]), arenas = atoi(argv[2]);
    void *small = launder(malloc(100)); /* make sure the heap exists */
    void *p = launder(malloc(1 << 20));
    int mapped = !in_heap(p);
    check(mapped == expect_mmap, "1 MiB block placement follows the threshold",
          "mapped=%d expected=%d (%s)", mapped, expect_mmap, getenv("GLIBC_TUNABLES") ? getenv("GLIBC_TUNABLES") : "");
    free(p);
    free(small);

    pthread_t th[4];
    pthread_barrier_init(&bar, NULL, 5);
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, worker, NULL);
    pthread_barrier_wait(&bar);
    /* Capture malloc_stats (stderr) while the threads hold their arenas. */
    fflush(stderr);
    int saved = dup(2);
    FILE *tmp = tmpfile();
    dup2(fileno(tmp), 2);
    malloc_stats();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    pthread_barrier_wait(&bar);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    rewind(tmp);
    char line[256];
    int n = 0;
    while (fgets(line, sizeof line, tmp))
        if (strncmp(line, "Arena ", 6) == 0)
            n++;
    fclose(tmp);
    if (arenas)
        check(n == arenas, "arena count follows the arena limit", "saw %d, expected %d", n, arenas);
    else
        check(n > 1, "threads get arenas of their own", "saw %d", n);
    return finish("tunables");
}
