/*
 * glibcedge.c - corner cases glibc's own malloc tests check, each in the spirit of the glibc
 * program that found oxmalloc out (run under glibc too: glibc 2.36 passes all of them).
 *
 * [tcfree3]   a live block whose second word holds a copy of a freed block's thread-cache
 *             key (tst-tcfree3) is freed normally, not reported as a double free; a real
 *             double free is still caught (in a child, which must die of SIGABRT).
 * [errno]     successful calls leave errno alone, even under lock contention (the lock's
 *             futex calls fail harmlessly with EAGAIN); a failed posix_memalign, malloc or
 *             memalign under RLIMIT_AS leaves errno ENOMEM (tst-malloc-thread-fail).
 * [align]     memalign(2^63, n) fails with ENOMEM and memalign(2^63 + 1, n) with EINVAL
 *             (tst-malloc-too-large: glibc rejects only alignments above 2^63 as invalid).
 * [cancel]    malloc_stats is not a cancellation point: with a cancel pending it prints, and
 *             the caller's cancel state is kept (tst-malloc-stats-cancellation).
 * [mxfast]    mallopt(M_MXFAST, 0) is accepted and allocation goes on working.
 */
#include "common.h"
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

/* Runs fn in a child; returns its wait status. */
static int in_child(void (*fn)(void))
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2); /* the abort message is expected */
        close(devnull);
        alarm(20);
        fn();
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return st;
}

static void *volatile sink;

static void copied_key(void)
{
    /* The freed block's first 16 bytes (next link and key) go into two live blocks: one a
     * cache can hold, one it cannot (127 KiB). */
    void *small = malloc(32), *big = malloc(127 * 1024);
    void *freed = malloc(32);
    if (!small || !big || !freed)
        _exit(3);
    sink = freed;
    free(freed);
    memcpy(small, sink, 16); /* reads the freed block, as tst-tcfree3 does */
    memcpy(big, sink, 16);
    /* launder: the copies must not be dropped as dead stores before free */
    free(launder(small));
    free(launder(big));
    /* And a block freed, its key copied into a fresh neighbour, both reused. */
    void *again = malloc(32);
    free(again);
    _exit(0);
}

static void real_double_free(void)
{
    void *p = malloc(32);
    sink = p;
    free(p);
    free(sink);
    _exit(0); /* not reached when caught */
}

static void *other_free(void *p)
{
    free(p);
    return NULL;
}

static void cross_thread_double_free(void)
{
    void *p = malloc(48);
    pthread_t t;
    pthread_create(&t, NULL, other_free, p);
    pthread_join(t, NULL);
    sink = p;
    free(sink);
    _exit(0);
}

static void test_tcfree3(void)
{
    int st = in_child(copied_key);
    check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "[tcfree3] a copied cache key is not a double free",
          "child status %#x (%s)", st, WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "exited");
    st = in_child(real_double_free);
    check(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "[tcfree3] a real double free still aborts",
          "child status %#x", st);
    st = in_child(cross_thread_double_free);
    /* glibc does not see this one (the block sits in another thread's cache): only asked of
     * oxmalloc, which promises it. */
    if (getenv("LD_PRELOAD"))
        check(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
              "[tcfree3] a double free across threads still aborts", "child status %#x", st);
}

/* ---- errno */

static atomic_int errno_bad;

static void *churn(void *arg)
{
    (void)arg;
    errno = 0;
    void *keep[64] = {0};
    for (int i = 0; i < 200000; i++) {
        int k = i & 63;
        free(keep[k]);
        keep[k] = malloc((size_t)(i * 2654435761u % 20000) + 1);
        if (!keep[k] || errno != 0) {
            atomic_fetch_add(&errno_bad, 1);
            errno = 0;
        }
    }
    for (int k = 0; k < 64; k++)
        free(keep[k]);
    return NULL;
}

static void test_errno(void)
{
    /* Threads outnumber arenas (MALLOC_ARENA_MAX=1 in effect here via mallopt), so the arena
     * lock is contended and waits go through the futex. */
    mallopt(M_ARENA_MAX, 1);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, churn, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    check(atomic_load(&errno_bad) == 0, "[errno] successful calls leave errno alone",
          "%d calls changed errno or failed", atomic_load(&errno_bad));

    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(20);
        struct rlimit rl = {512u << 20, 512u << 20};
        if (setrlimit(RLIMIT_AS, &rl) != 0)
            _exit(10);
        int bad = 0;
        void *p = (void *)1;
        errno = EAGAIN;
        int r = posix_memalign(&p, 64, (size_t)1 << 30);
        if (r != ENOMEM || p != (void *)1) /* glibc leaves errno as it was here */
            bad |= 1;
        errno = EAGAIN;
        if (malloc((size_t)1 << 30) != NULL || errno != ENOMEM)
            bad |= 2;
        errno = EAGAIN;
        if (memalign(4096, (size_t)1 << 30) != NULL || errno != ENOMEM)
            bad |= 4;
        errno = EAGAIN;
        if (calloc(1, (size_t)1 << 30) != NULL || errno != ENOMEM)
            bad |= 8;
        /* and what fits still works, errno untouched */
        errno = 0;
        void *q = malloc(1 << 20);
        if (!q || errno != 0)
            bad |= 16;
        free(q);
        _exit(bad);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "[errno] failures under RLIMIT_AS leave ENOMEM",
          "child status %#x (bits: 1 posix_memalign, 2 malloc, 4 memalign, 8 calloc, 16 small)",
          st);
}

/* Allocates 512-byte blocks aligned to 128 until memory runs out; returns errno at the failure
 * (a stray EAGAIN from the lock's futex calls showed up here). */
static void *exhaust(void *arg)
{
    (void)arg;
    void *head = NULL;
    long err = -1;
    for (;;) {
        void *p;
        if (posix_memalign(&p, 128, 512) != 0) {
            err = errno;
            break;
        }
        *(void **)p = head;
        head = p;
    }
    while (head) {
        void *n = *(void **)head;
        free(head);
        head = n;
    }
    return (void *)err;
}

/* tst-malloc-thread-fail's shape: threads exhaust the address space together. */
static void test_exhaust(void)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(60);
        mallopt(M_ARENA_MAX, 2);
        struct rlimit rl = {200u << 20, 200u << 20};
        if (setrlimit(RLIMIT_AS, &rl) != 0)
            _exit(10);
        pthread_attr_t small;
        pthread_attr_init(&small);
        pthread_attr_setstacksize(&small, 256 * 1024);
        pthread_t t[4];
        for (int i = 0; i < 4; i++)
            if (pthread_create(&t[i], &small, exhaust, NULL) != 0)
                _exit(11);
        int bad = exhaust(NULL) != (void *)ENOMEM;
        for (int i = 0; i < 4; i++) {
            void *r;
            pthread_join(t[i], &r);
            bad += r != (void *)ENOMEM;
        }
        _exit(bad);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    check(WIFEXITED(st) && WEXITSTATUS(st) == 0,
          "[errno] posix_memalign failing in 5 threads under RLIMIT_AS leaves ENOMEM",
          "child status %#x (exit code: threads that saw another errno)", st);
}

/* ---- alignment */

static void test_align(void)
{
    size_t top = (size_t)1 << 63;
    errno = 0;
    void *p = memalign(top, 1);
    check(p == NULL && errno == ENOMEM, "[align] memalign(2^63) fails with ENOMEM",
          "p=%p errno=%d", p, errno);
    errno = 0;
    p = memalign(top + 1, 1);
    check(p == NULL && errno == EINVAL, "[align] memalign(2^63+1) fails with EINVAL",
          "p=%p errno=%d", p, errno);
    errno = 0;
    p = memalign(top >> 1, 1);
    check(p == NULL && errno == ENOMEM, "[align] memalign(2^62) fails with ENOMEM",
          "p=%p errno=%d", p, errno);
    void *q = NULL;
    int r = posix_memalign(&q, top, 1);
    check(r == ENOMEM && q == NULL, "[align] posix_memalign(2^63) answers ENOMEM", "r=%d", r);
}

/* ---- cancellation */

static atomic_int printed;

static void *stats_thread(void *arg)
{
    (void)arg;
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    while (!atomic_load(&printed)) /* wait for the cancel to be pending */
        sched_yield();
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old);
    malloc_stats(); /* must print, and must not act on the pending cancel */
    atomic_store(&printed, 2);
    pthread_testcancel(); /* now it does */
    atomic_store(&printed, 3);
    return NULL;
}

static void test_cancel(void)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/oxm-glibcedge-%d", (int)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    int saved = dup(2);
    dup2(fd, 2);
    pthread_t t;
    pthread_create(&t, NULL, stats_thread, NULL);
    pthread_cancel(t);
    atomic_store(&printed, 1);
    void *res;
    pthread_join(t, &res);
    dup2(saved, 2);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    close(fd);
    unlink(path);
    check(atomic_load(&printed) == 2 && res == PTHREAD_CANCELED,
          "[cancel] malloc_stats returns with a cancel pending; the next point acts on it",
          "state %d, cancelled %d", atomic_load(&printed), res == PTHREAD_CANCELED);
    check(len > 0, "[cancel] malloc_stats printed with a cancel pending", "%ld bytes", (long)len);
}

/* ---- M_MXFAST */

static void test_mxfast(void)
{
    int r = mallopt(M_MXFAST, 0);
    void *p[100];
    int ok = 1;
    for (int i = 0; i < 100; i++)
        ok &= (p[i] = malloc((size_t)(i % 10) * 8 + 1)) != NULL;
    for (int i = 0; i < 100; i++)
        free(p[i]);
    check(r == 1 && ok, "[mxfast] mallopt(M_MXFAST, 0) accepted; allocation works", "r=%d", r);
}

int main(void)
{
    alarm(100);
    test_tcfree3();
    test_align();
    test_cancel();
    test_mxfast();
    test_exhaust();
    test_errno(); /* last: it limits arenas */
    return finish("glibcedge");
}
