/* measure: run a command as a fresh child of this small process and report
 * its wall time and wait4() rusage.
 *
 * usage: measure RESULT_FILE PID_FILE|- TIMEOUT_S PROG [ARGS...]
 *
 * Why not just os.wait4 from Python: Linux keeps a process's RSS high-water
 * mark across fork+exec (exec folds the old mm's peak into the
 * signal->maxrss it carries), so a workload forked straight from the
 * Python driver would report at least the driver's own RSS (~20+ MiB).
 * Forked from this tiny program, ru_maxrss is the workload's own peak (or
 * that of its largest reaped child, e.g. cc1 under gcc).
 *
 * Writes one line to RESULT_FILE:
 *   rc=<exit status or -signal> wall=<s> maxrss_kib=<n> utime=<s> stime=<s> timed_out=<0|1>
 * and, unless PID_FILE is "-", the child's PID to PID_FILE as soon as it
 * runs (bench/run.py stops redis-server by that PID).  SIGTERM/SIGINT sent
 * to measure are forwarded to the child; after TIMEOUT_S the child is
 * SIGKILLed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t child_pid, timed_out;

static void on_alarm(int sig) { (void)sig; timed_out = 1; if (child_pid > 0) kill(child_pid, SIGKILL); }
static void on_term(int sig) { if (child_pid > 0) kill(child_pid, sig); }

int main(int argc, char **argv) {
    if (argc < 5) { fputs("usage: measure RESULT_FILE PID_FILE|- TIMEOUT_S PROG [ARGS...]\n", stderr); return 2; }
    const char *result = argv[1], *pidfile = argv[2];
    unsigned timeout = (unsigned)strtoul(argv[3], NULL, 10);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 2; }
    if (pid == 0) {
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        execvp(argv[4], argv + 4);
        fprintf(stderr, "measure: cannot run %s: %s\n", argv[4], strerror(errno));
        _exit(127);
    }
    child_pid = pid;
    if (strcmp(pidfile, "-")) {
        FILE *f = fopen(pidfile, "w");
        if (f) { fprintf(f, "%d\n", (int)pid); fclose(f); }
    }
    if (timeout) alarm(timeout);
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) { perror("wait4"); return 2; }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    alarm(0);
    int rc = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? -WTERMSIG(status) : -1;
    FILE *f = fopen(result, "w");
    if (!f) { perror(result); return 2; }
    fprintf(f, "rc=%d wall=%.6f maxrss_kib=%ld utime=%.6f stime=%.6f timed_out=%d\n", rc,
            (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9, ru.ru_maxrss,
            ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6, ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6,
            (int)timed_out);
    fclose(f);
    return 0;
}
