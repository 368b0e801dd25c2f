/* Workload 3 - producer/consumer: blocks allocated by one thread, freed by
 * another.
 * usage: prodcons [ITERS=2000000] [THREADS=2] [BATCH=64]
 * THREADS/2 producer/consumer pairs (at least one pair).  Each producer
 * allocates ITERS/pairs messages (24..512 bytes, stamped) and passes them
 * through a bounded single-producer/single-consumer ring; its consumer
 * verifies and frees them, so every free is a remote (cross-thread) free.
 * The ring holds up to 4096 messages; the producer publishes in batches of
 * BATCH so the queue does not degenerate into a ping-pong.
 */
#include "bench.h"
#include <sched.h>

#define RING 4096
struct msg { uint64_t tag; uint32_t n; uint32_t seq; };

struct pair {
    _Alignas(64) _Atomic size_t head;   /* written by producer */
    _Alignas(64) _Atomic size_t tail;   /* written by consumer */
    _Alignas(64) struct msg *slot[RING];
    long count;
    long batch;
    uint64_t id;
    uint64_t sum;
};

static void *producer(void *arg) {
    struct pair *q = arg;
    rng_t r = rng_seed(3000 + q->id);
    size_t head = 0;
    for (long i = 0; i < q->count;) {
        size_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);
        long room = RING - (long)(head - tail);
        if (room < q->batch && room < q->count - i) { sched_yield(); continue; }
        long k = room < q->count - i ? room : q->count - i;
        if (k > q->batch) k = q->batch;
        for (long j = 0; j < k; j++, i++) {
            uint32_t n = (uint32_t)rng_range(&r, 24, 512);
            struct msg *m = xmalloc(n);
            m->n = n; m->seq = (uint32_t)i; m->tag = rng_next(&r);
            memcpy((char *)m + n - 8, &m->tag, 8);
            q->slot[(head + j) % RING] = m;
        }
        head += k;
        atomic_store_explicit(&q->head, head, memory_order_release);
    }
    return NULL;
}

static void *consumer(void *arg) {
    struct pair *q = arg;
    size_t tail = 0;
    uint64_t sum = 0;
    for (long i = 0; i < q->count;) {
        size_t head = atomic_load_explicit(&q->head, memory_order_acquire);
        if (head == tail) { sched_yield(); continue; }
        for (; tail != head; tail++, i++) {
            struct msg *m = q->slot[tail % RING];
            uint64_t t2; memcpy(&t2, (char *)m + m->n - 8, 8);
            if (t2 != m->tag || m->seq != (uint32_t)i) { fprintf(stderr, "corruption in message %ld\n", i); exit(3); }
            sum += m->tag ^ m->n;
            free(m);
        }
        atomic_store_explicit(&q->tail, tail, memory_order_release);
    }
    q->sum = sum;
    return NULL;
}

int main(int argc, char **argv) {
    long iters = arg_long(argc, argv, 1, 2000000);
    long threads = arg_long(argc, argv, 2, 2);
    long batch = arg_long(argc, argv, 3, 64);
    if (iters < 0 || threads < 0 || batch < 0) usage_exit("usage: prodcons [ITERS] [THREADS] [BATCH]\n");
    if (batch > RING) batch = RING;
    long pairs = threads / 2 ? threads / 2 : 1;
    struct pair *q = aligned_alloc(64, pairs * sizeof *q);
    if (!q) return 4;
    pthread_t *t = xmalloc(2 * pairs * sizeof *t);
    for (long p = 0; p < pairs; p++) {
        memset(&q[p], 0, sizeof q[p]);
        q[p].count = iters / pairs; q[p].batch = batch; q[p].id = (uint64_t)p;
        pthread_create(&t[2 * p], NULL, consumer, &q[p]);
        pthread_create(&t[2 * p + 1], NULL, producer, &q[p]);
    }
    uint64_t total = 0;
    for (long p = 0; p < pairs; p++) {
        pthread_join(t[2 * p + 1], NULL); pthread_join(t[2 * p], NULL);
        total += q[p].sum;
    }
    free(t); free(q);
    print_checksum(total);
    return 0;
}
