/* Workload 5 - false sharing.
 * usage: falseshare [ITERS=20000000] [THREADS=2] [ROUNDS=50]
 * Two phases, each with THREADS threads; the total time (and the per-phase
 * times on stderr) is what matters:
 *  active:  each thread repeatedly mallocs an 8-byte object, writes to it
 *           ITERS/ROUNDS times, frees it (ROUNDS times).  If the allocator
 *           hands out neighbouring objects on one cache line to different
 *           threads, every write bounces the line between cores.
 *  passive: the main thread mallocs THREADS 8-byte objects back to back and
 *           hands one to each thread; each thread frees it, mallocs 8 bytes
 *           (an allocator that reuses the freed slot in place keeps the
 *           threads on one line) and hammers it the same way.
 */
#include "bench.h"

static long iters, rounds;

struct job { volatile uint64_t *given; uint64_t id; uint64_t result; };

static uint64_t hammer(volatile uint64_t *p, long n, uint64_t id) {
    for (long i = 0; i < n; i++) *p = *p * 3 + id + 1;
    return *p;
}

static void *active(void *arg) {
    struct job *j = arg;
    uint64_t sum = 0;
    for (long r = 0; r < rounds; r++) {
        volatile uint64_t *p = xmalloc(8);
        *p = r;
        sum += hammer(p, iters / rounds, j->id);
        free((void *)p);
    }
    j->result = sum;
    return NULL;
}

static void *passive(void *arg) {
    struct job *j = arg;
    uint64_t sum = 0;
    free((void *)j->given);
    for (long r = 0; r < rounds; r++) {
        volatile uint64_t *p = xmalloc(8);
        *p = r;
        sum += hammer(p, iters / rounds, j->id);
        free((void *)p);
    }
    j->result = sum;
    return NULL;
}

static uint64_t phase(const char *name, void *(*fn)(void *), long threads, int give) {
    pthread_t *t = xmalloc(threads * sizeof *t);
    struct job *jobs = xmalloc(threads * sizeof *jobs);
    for (long i = 0; i < threads; i++) {
        jobs[i].id = (uint64_t)i;
        jobs[i].given = give ? xmalloc(8) : NULL;
    }
    double t0 = now_sec();
    for (long i = 0; i < threads; i++) pthread_create(&t[i], NULL, fn, &jobs[i]);
    uint64_t sum = 0;
    for (long i = 0; i < threads; i++) { pthread_join(t[i], NULL); sum += jobs[i].result; }
    fprintf(stderr, "falseshare %s: %.3f s\n", name, now_sec() - t0);
    free(t); free(jobs);
    return sum;
}

int main(int argc, char **argv) {
    iters = arg_long(argc, argv, 1, 20000000);
    long threads = arg_long(argc, argv, 2, 2);
    rounds = arg_long(argc, argv, 3, 50);
    if (iters < 0 || threads < 0 || rounds < 0) usage_exit("usage: falseshare [ITERS] [THREADS] [ROUNDS]\n");
    uint64_t sum = phase("active", active, threads, 0);
    sum = mix(sum, phase("passive", passive, threads, 1));
    print_checksum(sum);
    return 0;
}
