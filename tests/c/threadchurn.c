/*
 * threadchurn.c - many short-lived threads.
 *
 * NTHREADS threads are run in waves of WAVE concurrent threads.  Each one
 * mallocs/frees a few dozen blocks and leaves KEEP blocks behind that the
 * main thread verifies and frees after joining it.  Per-thread allocator
 * state (tcache, arena attachment) must be recycled when threads exit: RSS
 * after all threads must not be much above RSS after the first 2000.
 *
 * Usage: threadchurn [nthreads]  (default 20000)
 * Ends with "threadchurn: N passed, M failed".
 */
#include "common.h"

#include <pthread.h>

enum { WAVE = 16, KEEP = 4, WORK = 40, RSS_MARK = 2000 };

struct job {
    int id;
    int bad;                /* corruption seen inside the thread */
    unsigned char *keep[KEEP];
    size_t keep_sz[KEEP];
};

static size_t pick_size(uint64_t *rng)
{
    uint64_t r = rng_next(rng);
    switch (r % 20) {
    case 0:
        return 4 * KiB + (r >> 8) % (60 * KiB);
    case 1:
        return (r >> 8) % 64 == 0 ? 160 * KiB : 2000;
    default:
        return (r >> 8) % 512;
    }
}

static void *job_main(void *arg)
{
    struct job *j = arg;
    uint64_t rng = (uint64_t)j->id * 2654435761u + 17;
    unsigned char *p[WORK];
    size_t sz[WORK];
    for (int i = 0; i < WORK; i++) {
        sz[i] = pick_size(&rng);
        p[i] = launder(i % 5 ? malloc(sz[i]) : calloc(1, sz[i]));
        if (!p[i]) {
            j->bad++;
            continue;
        }
        pat_fill(p[i], sz[i], (uint64_t)j->id + (uint64_t)i);
    }
    for (int i = 0; i < WORK; i++) {
        if (p[i] && pat_check(p[i], sz[i], (uint64_t)j->id + (uint64_t)i) !=
                        (size_t)-1)
            j->bad++;
        free(p[i]);
    }
    /* Blocks that outlive the thread; the main thread frees them. */
    for (int k = 0; k < KEEP; k++) {
        j->keep_sz[k] = pick_size(&rng);
        j->keep[k] = launder(malloc(j->keep_sz[k]));
        if (j->keep[k])
            pat_fill(j->keep[k], j->keep_sz[k], (uint64_t)j->id * 7 + (uint64_t)k);
        else
            j->bad++;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int nthreads = argc > 1 ? atoi(argv[1]) : 20000;
    static struct job jobs[WAVE];
    pthread_t tid[WAVE];
    int create_fail = 0, bad_inside = 0, bad_kept = 0, done = 0;
    size_t rss_start = rss_bytes(), rss_mark = 0;

    while (done < nthreads) {
        int n = nthreads - done < WAVE ? nthreads - done : WAVE;
        int started[WAVE];
        for (int i = 0; i < n; i++) {
            memset(&jobs[i], 0, sizeof jobs[i]);
            jobs[i].id = done + i;
            started[i] = pthread_create(&tid[i], NULL, job_main, &jobs[i]) == 0;
            create_fail += !started[i];
        }
        for (int i = 0; i < n; i++) {
            if (!started[i])
                continue;
            pthread_join(tid[i], NULL);
            bad_inside += jobs[i].bad;
            for (int k = 0; k < KEEP; k++) {
                unsigned char *q = jobs[i].keep[k];
                if (q && pat_check(q, jobs[i].keep_sz[k],
                                   (uint64_t)jobs[i].id * 7 + (uint64_t)k) !=
                             (size_t)-1)
                    bad_kept++;
                free(q);
            }
        }
        done += n;
        if (!rss_mark && done >= RSS_MARK)
            rss_mark = rss_bytes();
    }
    size_t rss_end = rss_bytes();
    if (!rss_mark)
        rss_mark = rss_end;
    printf("# %d threads; RSS start %zu KiB, after %d threads %zu KiB, "
           "at end %zu KiB\n",
           done, rss_start / KiB, RSS_MARK, rss_mark / KiB, rss_end / KiB);

    check(create_fail == 0, "threadchurn: all threads created",
          "%d pthread_create failures", create_fail);
    check(bad_inside == 0, "threadchurn: blocks intact inside threads",
          "%d bad blocks / failed allocations", bad_inside);
    check(bad_kept == 0, "threadchurn: blocks outliving their thread intact",
          "%d corrupted", bad_kept);
    check(rss_end < rss_mark + 16 * MiB,
          "threadchurn: RSS growth after the first 2000 threads < 16 MiB",
          "RSS %zu KiB -> %zu KiB", rss_mark / KiB, rss_end / KiB);
    void *p = launder(malloc(100));
    check(p != NULL, "threadchurn: allocator usable afterwards", "p=%p", p);
    free(p);
    return finish("threadchurn");
}
