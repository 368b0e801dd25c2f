/*
 * trackee.c - drives libtrackee with the amounts given on the command line, so a check can
 * compare the tracker's report with them. The program itself allocates nothing else on
 * purpose (its stdout is unbuffered-free: it prints with write(2)).
 *
 *   trackee SCENARIO      scenario "all" runs every function with the amounts below.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void trk_live(int n, size_t size);
void trk_churn(int n, size_t size);
void trk_calloc(int n, size_t count, size_t size);
void trk_memalign(int n, size_t align, size_t size);
void trk_strdup(int count, size_t n);
void trk_realloc(int steps, size_t step);
void trk_big(int n, size_t size);
void trk_threads(int threads, int n, size_t size);
void trk_new(int n, size_t size);
void trk_release(void);
void trk_mmap(size_t len);
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

static volatile int stop_churn;

static void *churner(void *arg)
{
    (void)arg;
    while (!stop_churn)
        trk_churn(1000, 200);
    return NULL;
}



int main(int argc, char **argv)
{
    const char *s = argc > 1 ? argv[1] : "all";
    if (!strcmp(s, "all")) {
        trk_live(1000, 100);        /* live 100000 B, 1000 blocks */
        trk_churn(20000, 64);       /* total 1280000 B, 20000 blocks, live 0 */
        trk_calloc(100, 10, 30);    /* live 30000 B, 100 blocks */
        trk_memalign(50, 256, 200); /* live 30000 B, 150 blocks */
        trk_strdup(300, 49);        /* live 15000 B, 300 blocks */
        trk_realloc(100, 37);       /* live 3700 B, 1 block; 100 reallocs */
        trk_big(3, 1 << 20);        /* live 3 MiB, 3 blocks (mmapped) */
        trk_threads(4, 250, 48);    /* live 48000 B, 1000 blocks, 4 threads */
        trk_new(200, 24);           /* live 9600 B, 400 blocks */
        trk_mmap(1 << 20);          /* 3 live mappings, 4 MiB reserved, 2 MiB touched */
    } else if (!strcmp(s, "sample")) {
        trk_churn(65536, 4096);     /* total 256 MiB */
        trk_live(256, 65536);       /* live 16 MiB */
        trk_big(4, 4 << 20);        /* live 16 MiB: each block far above the interval */
    } else if (!strcmp(s, "dlopen")) {
        /* dlopen/dlclose in this thread while three others allocate: 50 rounds, each
         * leaking 10 blocks of 77 bytes from the library it then closes */
        pthread_t t[3];
        for (int i = 0; i < 3; i++)
            pthread_create(&t[i], NULL, churner, NULL);
        const char *path = argc > 2 ? argv[2] : "libtrackee_dl.so";
        for (int i = 0; i < 50; i++) {
            void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
            if (!h) {
                write(2, "trackee: dlopen failed\n", 23);
                return 3;
            }
            void (*leak)(int, size_t) = (void (*)(int, size_t))dlsym(h, "trk_dl_leak");
            leak(10, 77);
            dlclose(h);
        }
        stop_churn = 1;
        for (int i = 0; i < 3; i++)
            pthread_join(t[i], NULL);
    } else {
        write(2, "trackee: unknown scenario\n", 26);
        return 2;
    }
    write(1, "trackee done\n", 13);
    return 0;
}
