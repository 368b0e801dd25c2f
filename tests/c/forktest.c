/*
 * forktest.c - fork() while other threads are inside the allocator.
 *
 * Four threads malloc/free in a tight loop (and publish some blocks in a
 * shared slot array) while the main thread forks NFORKS times.  Each child
 * frees the published blocks (made by threads that do not exist in the
 * child), then mallocs/callocs/reallocs/frees a few hundred blocks of
 * various sizes, small to 1 MiB; every 4th child also does that from a new
 * thread.  A child that deadlocks (e.g. an allocator lock left held across
 * fork) is killed after CHILD_TIMEOUT seconds and counted as a failure;
 * after MAX_HUNG hung children the test stops forking.
 *
 * Usage: forktest [nforks]  (default 300)
 * Ends with "forktest: N passed, M failed" (one check per child).
 */
#include "common.h"

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

enum { NBUSY = 4, NPUB = 64, BUSY_LOCAL = 32, CHILD_TIMEOUT = 10,
       MAX_HUNG = 3 /* stop forking after this many hung children */ };

/* Published blocks carry their own size and tag in a 16-byte header. */
struct pub_hdr {
    uint64_t size; /* total block size, >= 16 */
    uint64_t tag;
};

static _Atomic(unsigned char *) published[NPUB];

/*
 * Patterns cover the first and last 2 KiB of a block only: the point here
 * is to spend time inside the allocator, not in memset-like loops.
 */
static void mark(unsigned char *p, size_t n, uint64_t seed)
{
    size_t head = n < 4096 ? n : 2048;
    pat_fill(p, head, seed);
    if (head < n)
        pat_fill(p + n - 2048, 2048, ~seed);
}

static int marked(const unsigned char *p, size_t n, uint64_t seed)
{
    size_t head = n < 4096 ? n : 2048;
    return pat_check(p, head, seed) == (size_t)-1 &&
           (head == n || pat_check(p + n - 2048, 2048, ~seed) == (size_t)-1);
}
static atomic_int stop_busy;
static atomic_long busy_corrupt, busy_ops;

static unsigned char *pub_make(uint64_t *rng)
{
    uint64_t r = rng_next(rng);
    size_t n = 16 + (r % 8 == 0 ? r % (200 * KiB) : r % 1000);
    unsigned char *p = malloc(n);
    if (!p)
        return NULL;
    struct pub_hdr h = {n, rng_next(rng)};
    memcpy(p, &h, sizeof h);
    mark(p + 16, n - 16, h.tag);
    return p;
}

/* Verify and free a published block; returns 0 if it was intact. */
static int pub_drop(unsigned char *p)
{
    struct pub_hdr h;
    memcpy(&h, p, sizeof h);
    int bad = h.size < 16 || h.size > 256 * KiB ||
              !marked(p + 16, h.size - 16, h.tag);
    free(p);
    return bad;
}

/* Parent's busy threads: allocate, verify, free, publish; until told. */
static void *busy_main(void *arg)
{
    uint64_t rng = (uint64_t)(uintptr_t)arg * 1000003u + 1;
    unsigned char *blk[BUSY_LOCAL] = {0};
    size_t sz[BUSY_LOCAL] = {0};
    long ops = 0;
    while (!atomic_load_explicit(&stop_busy, memory_order_relaxed)) {
        uint64_t r = rng_next(&rng);
        int j = (int)(r % BUSY_LOCAL);
        if (blk[j]) {
            if (!marked(blk[j], sz[j], (uint64_t)j + sz[j]))
                atomic_fetch_add(&busy_corrupt, 1);
            free(blk[j]);
            blk[j] = NULL;
        } else {
            unsigned kind = (unsigned)(r >> 8) % 100;
            sz[j] = kind < 90 ? (r >> 16) % 1024
                  : kind < 98 ? (r >> 16) % (64 * KiB)
                  : 128 * KiB + (r >> 16) % (1 * MiB);
            blk[j] = launder(malloc(sz[j]));
            if (blk[j])
                mark(blk[j], sz[j], (uint64_t)j + sz[j]);
        }
        if (r % 16 == 0) { /* publish a block, drop whatever was there */
            unsigned char *old = atomic_exchange(&published[(r >> 40) % NPUB],
                                                 pub_make(&rng));
            if (old && pub_drop(old))
                atomic_fetch_add(&busy_corrupt, 1);
        }
        ops++;
    }
    for (int j = 0; j < BUSY_LOCAL; j++)
        free(blk[j]);
    atomic_fetch_add(&busy_ops, ops);
    return NULL;
}

/* ---- child side --------------------------------------------------------- */

/* A few hundred blocks of mixed sizes, including 1 MiB; returns #errors. */
static void *child_churn(void *arg)
{
    uint64_t rng = (uint64_t)(uintptr_t)arg;
    enum { N = 300 };
    unsigned char *p[N];
    size_t sz[N];
    long bad = 0;
    for (int i = 0; i < N; i++) {
        uint64_t r = rng_next(&rng);
        sz[i] = i % 25 == 0 ? 1 * MiB
              : i % 7 == 0 ? (size_t)(r % (100 * KiB))
              : (size_t)(r % 600);
        p[i] = launder(i % 3 == 0 ? calloc(1, sz[i]) : malloc(sz[i]));
        if (!p[i]) {
            bad++;
            continue;
        }
        mark(p[i], sz[i], (uint64_t)i);
    }
    for (int i = 0; i < N; i += 2) { /* free half, realloc some others */
        if (p[i] && !marked(p[i], sz[i], (uint64_t)i))
            bad++;
        free(p[i]);
        p[i] = NULL;
        if (i + 1 < N && p[i + 1] && i % 6 == 0) {
            size_t nn = sz[i + 1] * 2 + 10;
            unsigned char *q = launder(realloc(p[i + 1], nn));
            if (!q || pat_check(q, sz[i + 1] < 2048 ? sz[i + 1] : 2048,
                                (uint64_t)i + 1) != (size_t)-1)
                bad++;
            if (q) {
                p[i + 1] = q;
                mark(q, nn, (uint64_t)i + 1);
                sz[i + 1] = nn;
            }
        }
    }
    for (int i = 1; i < N; i += 2) {
        if (p[i] && !marked(p[i], sz[i], (uint64_t)i))
            bad++;
        free(p[i]);
    }
    return (void *)bad;
}

static void child_fail(int n, const char *what)
{
    char msg[160];
    int len = snprintf(msg, sizeof msg, "# child %d: %s\n", n, what);
    if (write(2, msg, (size_t)len) < 0)
        _exit(3);
}

static void child_main(int n)
{
    int status = 0;
    /* Free the blocks other (now absent) threads published. */
    for (int i = 0; i < NPUB; i++) {
        unsigned char *p = atomic_exchange(&published[i], NULL);
        if (p && pub_drop(p)) {
            child_fail(n, "published block corrupted");
            status = 1;
        }
    }
    if (child_churn((void *)(uintptr_t)(n + 1)) != NULL) {
        child_fail(n, "churn in main thread failed");
        status = 1;
    }
    if (n % 4 == 0) {
        pthread_t t;
        void *res = (void *)1;
        if (pthread_create(&t, NULL, child_churn, (void *)(uintptr_t)n) != 0 ||
            pthread_join(t, &res) != 0 || res != NULL) {
            child_fail(n, "churn in a new thread failed");
            status = 1;
        }
    }
    _exit(status);
}

/* ---- parent side --------------------------------------------------------- */

/* Wait for pid for up to CHILD_TIMEOUT s; kill it if it hangs. */
static int hung_children;

static int wait_child(pid_t pid, char *detail, size_t cap)
{
    struct timespec nap = {0, 200000}; /* 0.2 ms, doubling up to 20 ms */
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
                return 1;
            if (WIFEXITED(st))
                snprintf(detail, cap, "exit status %d", WEXITSTATUS(st));
            else
                snprintf(detail, cap, "killed by signal %d", WTERMSIG(st));
            return 0;
        }
        if (r < 0 && errno != EINTR) {
            snprintf(detail, cap, "waitpid: %s", strerror(errno));
            return 0;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec >= CHILD_TIMEOUT) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            hung_children++;
            snprintf(detail, cap, "hung for %d s (deadlock?), killed",
                     CHILD_TIMEOUT);
            return 0;
        }
        nanosleep(&nap, NULL);
        if (nap.tv_nsec < 20000000)
            nap.tv_nsec *= 2;
    }
}

int main(int argc, char **argv)
{
    int nforks = argc > 1 ? atoi(argv[1]) : 300;
    pthread_t busy[NBUSY];
    int started = 0;
    for (int i = 0; i < NBUSY; i++)
        if (pthread_create(&busy[i], NULL, busy_main, (void *)(uintptr_t)(i + 1)) == 0)
            started++;
    check(started == NBUSY, "forktest: busy threads started", "%d of %d",
          started, NBUSY);

    int ok_children = 0, failed_children = 0;
    for (int n = 0; n < nforks; n++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0)
            child_main(n);
        char detail[128] = "";
        int ok;
        if (pid < 0) {
            snprintf(detail, sizeof detail, "fork: %s", strerror(errno));
            ok = 0;
        } else {
            ok = wait_child(pid, detail, sizeof detail);
        }
        if (ok) {
            ok_children++;
            atomic_fetch_add(&t_passed, 1); /* one quiet check per child */
        } else {
            char name[64];
            failed_children++;
            snprintf(name, sizeof name, "forktest: child %d", n);
            check(0, name, "%s", detail);
        }
        if (hung_children >= MAX_HUNG) {
            check(0, "forktest: remaining forks", "gave up after %d hung "
                  "children, %d forks not run", hung_children, nforks - n - 1);
            break;
        }
    }
    printf("# %d children ok, %d failed\n", ok_children, failed_children);

    atomic_store(&stop_busy, 1);
    for (int i = 0; i < started; i++)
        pthread_join(busy[i], NULL);
    int pub_bad = 0;
    for (int i = 0; i < NPUB; i++) {
        unsigned char *p = atomic_exchange(&published[i], NULL);
        if (p)
            pub_bad += pub_drop(p);
    }
    printf("# busy threads did %ld operations\n", atomic_load(&busy_ops));
    check(atomic_load(&busy_corrupt) == 0 && pub_bad == 0,
          "forktest: parent's blocks intact across forks",
          "%ld corrupted, %d published corrupted", atomic_load(&busy_corrupt),
          pub_bad);
    void *p = launder(malloc(1 * MiB));
    check(p != NULL, "forktest: parent allocator usable afterwards", "p=%p", p);
    free(p);
    return finish("forktest");
}
