/*
 * sigfork.c - fork from a signal handler that interrupted malloc or free (glibc supports it,
 * its test tst-mallocfork2 checks it). A timer signal forks while the main thread allocates
 * and frees in a loop (slow paths included: sizes up to 256 KiB); each child allocates, frees
 * and exits. A child that hangs (a lock held across fork) is killed by alarm and counted.
 */
#include "common.h"
#include <signal.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

static volatile sig_atomic_t forks, child_failures;

static void handler(int sig)
{
    (void)sig;
    int saved = errno;
    pid_t pid = fork();
    if (pid == 0) {
        alarm(10); /* a deadlocked child dies of SIGALRM */
        for (int i = 0; i < 200; i++) {
            void *p = malloc((size_t)(i * 97) % 5000 + 1);
            if (!p)
                _exit(3);
            memset(p, i, (size_t)(i * 97) % 5000 + 1);
            free(p);
        }
        void *big = malloc(1 << 20);
        free(big);
        _exit(0);
    }
    if (pid > 0) {
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            child_failures++;
        forks++;
    }
    errno = saved;
}

int main(int argc, char **argv)
{
    int want = argc > 1 ? atoi(argv[1]) : 200;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigaction(SIGALRM, &sa, NULL);
    /* Warm the allocator so the heap exists before the first signal. */
    free(launder(malloc(100)));
    struct itimerval it = {{0, 500}, {0, 500}};
    setitimer(ITIMER_REAL, &it, NULL);
    void *slots[64] = {0};
    unsigned s = 12345;
    time_t start = time(NULL);
    while (forks < want && time(NULL) - start < 60) {
        s = s * 1103515245 + 12345;
        unsigned k = (s >> 8) % 64;
        free(slots[k]);
        size_t n = (s >> 16) % 8 == 0 ? (s >> 4) % (256 * 1024) : (s >> 16) % 2000;
        slots[k] = launder(malloc(n + 1));
        if (slots[k])
            ((char *)slots[k])[n] = 1;
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    for (int k = 0; k < 64; k++)
        free(slots[k]);
    check(forks >= want, "forks from a signal handler happened", "%d of %d in 60 s", (int)forks, want);
    check(child_failures == 0, "every child allocated and exited", "%d children failed or hung", (int)child_failures);
    return finish("sigfork");
}
