/* Workload 4 - server simulation: a shared table of blocks updated by many
 * threads with atomic exchange, so most blocks are freed by a thread other
 * than the one that allocated them.
 * usage: server [ITERS=1000000] [THREADS=4] [TABLE=65536]
 * Each of THREADS workers does ITERS/THREADS requests: allocate a response
 * buffer (sizes: 90% 24..512, 9% 512..16K, 1% 16K..512K, i.e. mostly small
 * with a tail of large ones), fill its header and a few cache lines, swap it
 * into a random table entry, and verify + free whatever was there before.
 * Each request also makes a short-lived scratch allocation (request parsing).
 * The checksum is the sum of the tags of all blocks ever created, which is
 * independent of the interleaving because every block is freed exactly once.
 */
#include "bench.h"

struct hdr { uint64_t tag; uint64_t n; };

static long per_thread, table_size;
static _Atomic(struct hdr *) *table;

static size_t req_size(rng_t *r) {
    uint64_t p = rng_next(r) % 100;
    if (p < 90) return rng_range(r, 24, 512);
    if (p < 99) return rng_range(r, 513, 16384);
    return rng_range(r, 16385, 512 * 1024);
}

static uint64_t retire(struct hdr *h) {
    if (!h) return 0;
    uint64_t t; memcpy(&t, (char *)h + h->n - 8, 8);
    if (h->n < 16 || t != h->tag) { fprintf(stderr, "corruption: block %p\n", (void *)h); exit(3); }
    t = h->tag;
    free(h);
    return t;
}

struct result { uint64_t created, retired; };
static struct result *results;

static void *worker(void *arg) {
    uint64_t id = (uintptr_t)arg, sum = 0, created = 0;
    rng_t r = rng_seed(4000 + id);
    for (long i = 0; i < per_thread; i++) {
        size_t n = req_size(&r);
        char *scratch = xmalloc(64 + (i & 255));
        memset(scratch, 'x', 64);
        struct hdr *h = xmalloc(n);
        h->n = n; h->tag = rng_next(&r);
        memset((char *)(h + 1), scratch[0], n < 256 ? n - 16 : 240);
        memcpy((char *)h + n - 8, &h->tag, 8);
        created += h->tag;
        free(scratch);
        struct hdr *old = atomic_exchange_explicit(&table[rng_next(&r) % table_size], h, memory_order_acq_rel);
        sum += retire(old);
    }
    /* the retired sum of one thread depends on the interleaving; the totals do not */
    results[id].created = created;
    results[id].retired = sum;
    return NULL;
}

int main(int argc, char **argv) {
    long iters = arg_long(argc, argv, 1, 1000000);
    long threads = arg_long(argc, argv, 2, 4);
    table_size = arg_long(argc, argv, 3, 65536);
    if (iters < 0 || threads < 0 || table_size < 0) usage_exit("usage: server [ITERS] [THREADS] [TABLE]\n");
    per_thread = iters / threads;
    table = calloc(table_size, sizeof *table);
    results = calloc(threads, sizeof *results);
    pthread_t *t = xmalloc(threads * sizeof *t);
    for (long i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i);
    uint64_t created = 0, retired = 0;
    for (long i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        created += results[i].created; retired += results[i].retired;
    }
    for (long i = 0; i < table_size; i++) retired += retire(atomic_load(&table[i]));
    if (retired != created) { fprintf(stderr, "lost or duplicated blocks\n"); return 3; }
    free(t); free(results); free((void *)table);
    print_checksum(created);
    return 0;
}
