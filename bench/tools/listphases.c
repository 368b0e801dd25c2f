/* listphases: the trees workload taken apart, to see where an allocator's
 * time goes in it and how it lays the list nodes out.
 *
 * usage: listphases [ITERS=40] [DEPTH=15] [trees|lists]
 *
 * One worker thread (like bench/workloads/trees.c) repeats: the tree phase
 * (short-lived binary trees of 32-byte nodes; skipped in "lists" mode, which
 * leaves a steady churn of list nodes with no phase change), then the list
 * phase split into its steps: append 2^DEPTH nodes of 24..104 bytes, walk
 * the list without freeing (a pure pointer chase: layout only), delete every
 * other node and prepend half as many again, then walk and free everything.
 * Prints the milliseconds of each step summed over all iterations after the
 * first quarter, and, for the list built in the middle iteration, how often
 * two nodes of the same size that follow each other in the list lie on the
 * same 4 KiB page and within 128 bytes ascending: the streams a hardware
 * prefetcher can follow when the list is walked.
 *
 * bench/run.py builds it into bench/build/listphases with the workloads.
 * Run under each allocator with LD_PRELOAD, e.g.
 *   LD_PRELOAD=target/release/liboxmalloc.so bench/build/listphases 40 15 lists
 */
#include "../workloads/trees.h"

static long iters = 40, depth = 15;
static int with_trees = 1;
static double ms[5];
static uint64_t sink;
/* Locality of the middle iteration's list: per size class, the previous node seen. */
static uintptr_t last_of_class[8];
static long pairs, same_page, ascending_near;

static void note_locality(const struct lnode *x) {
    /* glibc-style chunk sizes of 24..104-byte requests: 32..112, six classes */
    unsigned c = (unsigned)((sizeof *x + x->len + 8 + 15) / 16) & 7;
    uintptr_t a = (uintptr_t)x, b = last_of_class[c];
    if (b) {
        pairs++;
        if (a / 4096 == b / 4096) same_page++;
        if (a > b && a - b <= 128) ascending_near++;
    }
    last_of_class[c] = a;
}

static void *run(void *arg) {
    (void)arg;
    rng_t r = rng_seed(2000);
    long n = 1L << depth;
    for (long it = 0; it < iters; it++) {
        double t0 = now_sec();
        if (with_trees)
            for (long d = 4; d <= depth; d += 2)
                for (long k = 0; k < (1L << (depth - d)); k++) sink += walk_free(build((int)d, (uint64_t)k));
        double t1 = now_sec();
        struct lnode head = { &head, &head, 0, 0, };
        for (long k = 0; k < n; k++) {
            struct lnode *x = new_lnode(&r, (uint32_t)k, (uint32_t)k);
            x->prev = head.prev; x->next = &head; head.prev->next = x; head.prev = x;
        }
        double t2 = now_sec();
        for (struct lnode *x = head.next; x != &head; x = x->next) sink += x->v;
        double t3 = now_sec();
        if (it == iters / 2)
            for (struct lnode *x = head.next; x != &head; x = x->next) note_locality(x);
        int odd = 0;
        for (struct lnode *x = head.next, *nx; x != &head; x = nx) {
            nx = x->next;
            if ((odd ^= 1)) { x->prev->next = x->next; x->next->prev = x->prev; sink += x->v; free(x); }
        }
        for (long k = 0; k < n / 2; k++) {
            struct lnode *x = new_lnode(&r, (uint32_t)(3 * k), (uint32_t)k);
            x->next = head.next; x->prev = &head; head.next->prev = x; head.next = x;
        }
        double t4 = now_sec();
        for (struct lnode *x = head.next, *nx; x != &head; x = nx) {
            nx = x->next;
            sink += x->v + (x->len ? (unsigned char)x->pad[x->len - 1] : 0);
            free(x);
        }
        double t5 = now_sec();
        if (it >= iters / 4) {
            ms[0] += 1e3 * (t1 - t0); ms[1] += 1e3 * (t2 - t1); ms[2] += 1e3 * (t3 - t2);
            ms[3] += 1e3 * (t4 - t3); ms[4] += 1e3 * (t5 - t4);
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    char *end;
    if (argc > 1) { iters = strtol(argv[1], &end, 10); if (*end || iters < 4) goto usage; }
    if (argc > 2) { depth = strtol(argv[2], &end, 10); if (*end || depth < 6 || depth > 22) goto usage; }
    if (argc > 3) {
        if (!strcmp(argv[3], "trees")) with_trees = 1;
        else if (!strcmp(argv[3], "lists")) with_trees = 0;
        else goto usage;
    }
    if (argc > 4) goto usage;
    pthread_t t;
    if (pthread_create(&t, NULL, run, NULL) || pthread_join(t, NULL)) {
        fprintf(stderr, "listphases: cannot run the worker thread\n");
        return 1;
    }
    printf("trees %.1f  append %.1f  walk %.1f  delete+prepend %.1f  walk+free %.1f ms"
           "  | same size, next in list: same page %.2f, <=128 B ahead %.2f  (%lu)\n",
           ms[0], ms[1], ms[2], ms[3], ms[4],
           pairs ? (double)same_page / (double)pairs : 0.0,
           pairs ? (double)ascending_near / (double)pairs : 0.0, (unsigned long)(sink & 0xff));
    return 0;
usage:
    fprintf(stderr, "usage: listphases [ITERS>=4] [DEPTH 6..22] [trees|lists]\n");
    return 2;
}
