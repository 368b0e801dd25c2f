/* Workload 9 - thread churn: many short-lived threads that allocate.
 * usage: threadchurn [ITERS=2000] [THREADS=4] [ALLOCS=2000]
 * Creates ITERS threads in total, at most THREADS alive at once.  Each
 * thread allocates ALLOCS small blocks (8..1024 bytes), frees most of them
 * itself, and hands the rest (1 in 8) to a global list that the main
 * thread frees later (blocks outliving their thread, freed remotely).
 * Each thread also keeps a thread-local buffer for its lifetime.  This
 * exercises per-thread cache setup/teardown and arena reuse.
 */
#include "bench.h"

static long allocs;

struct node { struct node *next; uint32_t n; uint64_t tag; };
static _Atomic(struct node *) handed;

static __thread char *tls_buf;

static void *worker(void *arg) {
    uint64_t id = (uintptr_t)arg, sum = 0;
    rng_t r = rng_seed(9000 + id);
    tls_buf = xmalloc(4096);
    memset(tls_buf, (int)id, 4096);
    void **local = xmalloc(64 * sizeof *local);
    for (int i = 0; i < 64; i++) local[i] = NULL;
    for (long i = 0; i < allocs; i++) {
        uint32_t n = (uint32_t)small_size(&r);
        if (n < sizeof(struct node)) n = sizeof(struct node);
        uint64_t tag = rng_next(&r);
        if ((tag & 7) == 0) {
            struct node *x = xmalloc(n);
            x->n = n; x->tag = tag;
            x->next = atomic_load_explicit(&handed, memory_order_relaxed);
            while (!atomic_compare_exchange_weak_explicit(&handed, &x->next, x, memory_order_release, memory_order_relaxed)) {}
            continue;
        }
        int s = (int)(tag >> 58);
        if (local[s]) { sum += ((unsigned char *)local[s])[0]; free(local[s]); }
        local[s] = xmalloc(n);
        memset(local[s], (int)(tag & 0xff), n < 64 ? n : 64);
    }
    for (int i = 0; i < 64; i++) if (local[i]) { sum += ((unsigned char *)local[i])[0]; free(local[i]); }
    free(local);
    sum += (unsigned char)tls_buf[4095];
    free(tls_buf);
    return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv) {
    long iters = arg_long(argc, argv, 1, 2000);
    long threads = arg_long(argc, argv, 2, 4);
    allocs = arg_long(argc, argv, 3, 2000);
    if (iters < 0 || threads < 0 || allocs < 0) usage_exit("usage: threadchurn [ITERS] [THREADS] [ALLOCS]\n");
    pthread_t *t = xmalloc(threads * sizeof *t);
    uint64_t sum = 0;
    long started = 0;
    while (started < iters) {
        long wave = iters - started < threads ? iters - started : threads;
        for (long i = 0; i < wave; i++) pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(started + i));
        for (long i = 0; i < wave; i++) { void *rv; pthread_join(t[i], &rv); sum += (uintptr_t)rv; }
        started += wave;
        if ((started / threads) % 16 == 0) {   /* drain handed-off blocks now and then */
            struct node *x = atomic_exchange(&handed, NULL);
            while (x) { struct node *nx = x->next; sum += x->tag ^ x->n; free(x); x = nx; }
        }
    }
    struct node *x = atomic_exchange(&handed, NULL);
    while (x) { struct node *nx = x->next; sum += x->tag ^ x->n; free(x); x = nx; }
    free(t);
    print_checksum(sum);
    return 0;
}
