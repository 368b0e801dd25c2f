/*
 * forkstdio.c - fork while other threads use stdio, and forks from signal handlers that land
 * inside fork, malloc and free (the hangs glibc's tst-malloc-fork-deadlock and tst-mallocfork2
 * found). Every wait is bounded: the process arms alarm() as a watchdog, each child too, so a
 * deadlock ends as a signal death, which run.sh reports as a failure.
 *
 *   forkstdio [FORKS [SIGNAL_FORKS]]     (defaults 300 and 300; SIGNAL_FORKS 0 skips part 2)
 *
 * Part 1: reader threads getline() through a file (each line buffer freed and grown again, so
 * getline reallocs while it holds its FILE's lock), a thread calls fflush(NULL) (it holds the
 * stdio list lock and takes each FILE's lock), another printf()s to a stream of its own, and
 * the main thread forks FORKS times; each child allocates, writes with stdio and exits.
 * Part 3: four threads fork at the same time (glibc's tst-malloc-fork-deadlock forks from
 * several threads).
 * Part 2 (run first, while the process has never had a second thread): a sender process
 * sends SIGUSR1 to the main process without pause while it forks, mallocs and frees in a
 * loop; the handler forks too, and its child allocates and exits. So a handler's fork runs
 * inside the main loop's fork (prepare handler, kernel call, parent or child handler), malloc
 * or free. The sender is a process, not a thread, as in glibc's tst-mallocfork2: once a
 * process has had a second thread, glibc 2.36's fork holds its own atfork lock from the end
 * of the prepare handlers until the parent/child handlers, so a handler's fork landing in that
 * window waits for its own thread whatever the malloc (seen in gdb: __run_prefork_handlers
 * waiting on atfork_lock, with _Fork below the signal frame).
 */
#include "common.h"
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

static atomic_int stop;
static char path[64];

static void *reader(void *arg)
{
    (void)arg;
    long lines = 0;
    while (!atomic_load(&stop)) {
        FILE *f = fopen(path, "r");
        if (!f)
            return (void *)-1L;
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, f) > 0) {
            lines++;
            free(line); /* the next getline allocates (and reallocs) again */
            line = NULL;
            cap = 0;
            if (atomic_load(&stop))
                break;
        }
        free(line);
        fclose(f);
    }
    return (void *)lines;
}

static void *flusher(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop))
        fflush(NULL);
    return NULL;
}

static void *printer(void *arg)
{
    (void)arg;
    FILE *f = fopen("/dev/null", "w");
    if (!f)
        return (void *)-1L;
    for (long i = 0; !atomic_load(&stop); i++) {
        fprintf(f, "line %ld %s\n", i, "some text to format");
        if (i % 64 == 0)
            fflush(f);
    }
    fclose(f);
    return NULL;
}

/* A child: allocate, use stdio, exit with 0 when all went well. */
static void child_work(int with_stdio)
{
    alarm(20);
    for (int i = 0; i < 100; i++) {
        char *p = malloc((size_t)(i * 131) % 3000 + 1);
        if (!p)
            _exit(3);
        p[0] = (char)i;
        free(p);
    }
    if (with_stdio) {
        FILE *f = fopen("/dev/null", "w");
        if (!f || fprintf(f, "child %d\n", (int)getpid()) < 0 || fclose(f) != 0)
            _exit(4);
        fflush(NULL);
    }
    _exit(0);
}

static int wait_child(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            return 0;
    }
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void part1(int forks)
{
    snprintf(path, sizeof path, "/tmp/oxm-forkstdio-%d", (int)getpid());
    FILE *f = fopen(path, "w");
    if (!check(f != NULL, "stdio: test file", "fopen: %s", strerror(errno)))
        return;
    for (int i = 0; i < 2000; i++)
        fprintf(f, "%0*d\n", 10 + (i * 37) % 300, i);
    fclose(f);

    pthread_t th[5];
    void *(*fns[5])(void *) = {reader, reader, reader, flusher, printer};
    for (int i = 0; i < 5; i++)
        pthread_create(&th[i], NULL, fns[i], NULL);
    int done = 0, good = 0;
    for (; done < forks; done++) {
        pid_t pid = fork();
        if (pid == 0)
            child_work(1);
        if (pid < 0)
            break;
        good += wait_child(pid);
    }
    atomic_store(&stop, 1);
    long lines = 0;
    for (int i = 0; i < 5; i++) {
        void *r;
        pthread_join(th[i], &r);
        if (i < 3)
            lines += (long)r;
    }
    unlink(path);
    check(done == forks && good == forks, "stdio: fork while threads getline, fflush(NULL), printf",
          "%d forks, %d children exited cleanly, of %d", done, good, forks);
    check(lines > 0, "stdio: readers made progress", "%ld lines read", lines);
}

static volatile sig_atomic_t handler_forks, handler_bad;

static void on_usr1(int sig)
{
    (void)sig;
    int saved = errno;
    pid_t pid = fork();
    if (pid == 0)
        child_work(0);
    if (pid > 0) {
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            handler_bad++;
        handler_forks++;
    }
    errno = saved;
}

/* The sender: SIGUSR1 to the target process every 20 µs until killed or the target is gone. */
static void sender(pid_t target)
{
    struct timespec ts = {0, 20000};
    alarm(170);
    while (kill(target, SIGUSR1) == 0)
        nanosleep(&ts, NULL);
    _exit(0);
}

static void part2(int want)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    pid_t me = getpid();
    pid_t snd = fork();
    if (snd == 0) {
        signal(SIGUSR1, SIG_IGN);
        sender(me);
    }
    int forks = 0, good = 0;
    time_t end = time(NULL) + 60;
    void *keep[16] = {0};
    for (int i = 0; (handler_forks < want || forks < want / 10) && time(NULL) < end; i++) {
        /* malloc and free of several sizes (slow paths included), then a fork */
        for (int j = 0; j < 16; j++) {
            free(keep[j]);
            keep[j] = malloc((size_t)((i * 16 + j) * 977) % 70000 + 1);
        }
        pid_t pid = fork();
        if (pid == 0)
            child_work(0);
        if (pid > 0) {
            good += wait_child(pid);
            forks++;
        }
    }
    signal(SIGUSR1, SIG_IGN);
    if (snd > 0) {
        kill(snd, SIGKILL);
        while (waitpid(snd, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    for (int j = 0; j < 16; j++)
        free(keep[j]);
    check(handler_forks >= want, "signal: forks from a handler, hundreds",
          "%d handler forks (wanted %d) in 60 s", (int)handler_forks, want);
    check(handler_bad == 0, "signal: every handler's child exited cleanly", "%d did not",
          (int)handler_bad);
    check(forks > 0 && good == forks, "signal: every main-loop child exited cleanly",
          "%d of %d", good, forks);
}

/* Part 3: several threads fork at the same time (glibc runs atfork prepare handlers without
 * a lock of its own, so two can be inside them together), while another allocates. */
static void *concurrent_forker(void *arg)
{
    int n = *(int *)arg, good = 0;
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0)
            child_work(0);
        if (pid > 0)
            good += wait_child(pid);
    }
    return (void *)(long)good;
}

static void *allocator_loop(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        void *p = malloc(100);
        free(p);
    }
    return NULL;
}

static void part3(int n)
{
    atomic_store(&stop, 0);
    pthread_t f[4], a;
    pthread_create(&a, NULL, allocator_loop, NULL);
    for (int i = 0; i < 4; i++)
        pthread_create(&f[i], NULL, concurrent_forker, &n);
    long good = 0;
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(f[i], &r);
        good += (long)r;
    }
    atomic_store(&stop, 1);
    pthread_join(a, NULL);
    check(good == 4L * n, "concurrent: four threads forking at once", "%ld of %d children clean",
          good, 4 * n);
}

int main(int argc, char **argv)
{
    int forks = argc > 1 ? atoi(argv[1]) : 300;
    int sforks = argc > 2 ? atoi(argv[2]) : 300;
    alarm(170); /* watchdog: a hang dies of SIGALRM */
    if (sforks > 0)
        part2(sforks); /* first: before any thread exists */
    part1(forks);
    part3(forks / 3 + 1);
    return finish("forkstdio");
}
