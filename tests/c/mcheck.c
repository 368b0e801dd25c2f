/*
 * mcheck.c - MALLOC_CHECK_ / glibc.malloc.check (glibc's tst-malloc-usable and
 * tst-malloc-check in spirit).
 *
 *   mcheck EXACT
 *
 * EXACT 1: checking is on (glibc: MALLOC_CHECK_=3 with libc_malloc_debug.so preloaded;
 * oxmalloc: MALLOC_CHECK_=3 or 2, or glibc.malloc.check=3, which turn on its hardened mode):
 * malloc_usable_size reports exactly the size asked for, and a one-byte overflow is caught
 * when the block is freed (the process aborts). EXACT 0: no checking: the usable size is the
 * chunk's (24 for 7 bytes on 64-bit, as glibc).
 */
#include "common.h"
#include <malloc.h>
#include <signal.h>
#include <sys/wait.h>

int main(int argc, char **argv)
{
    int exact = argc > 1 && atoi(argv[1]);
    char *p = launder(malloc(7));
    size_t u = malloc_usable_size(p);
    if (exact)
        check(u == 7, "usable size of malloc(7) is exactly 7", "%zu", u);
    else
        check(u == 24, "usable size of malloc(7) is the chunk's 24", "%zu", u);
    memset(p, 'x', u);
    p = launder(realloc(p, 100));
    u = malloc_usable_size(p);
    check(p && p[6] == 'x' && (exact ? u == 100 : u >= 100), "realloc to 100 keeps the data; usable size",
          "%zu", u);
    free(p);
    p = launder(calloc(3, 5));
    u = malloc_usable_size(p);
    check(p && (exact ? u == 15 : u >= 15) && p[0] == 0 && p[14] == 0, "calloc(3, 5): usable size, zeroed",
          "%zu", u);
    free(p);
    p = launder(memalign(64, 33));
    u = malloc_usable_size(p);
    check(p && ((uintptr_t)p & 63) == 0 && (exact ? u == 33 : u >= 33), "memalign(64, 33): aligned, usable size",
          "%zu", u);
    free(p);

    if (exact) {
        /* a one-byte overflow is caught at free: the child dies of SIGABRT */
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            int devnull = open("/dev/null", O_WRONLY);
            if (devnull >= 0)
                dup2(devnull, 2);
            char *q = launder(malloc(40));
            ((volatile char *)q)[40] = 'o'; /* volatile: a store before free is otherwise dead */
            free(q);
            _exit(0);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        check(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "a one-byte overflow aborts at free",
              "status 0x%x", st);
    }
    return finish("mcheck");
}
