/*
 * common.h - tiny shared helpers for the oxmalloc C test programs.
 *
 * Every program prints one TAP-like line per check ("ok - name" or
 * "not ok - name: detail") and ends with "<prog>: N passed, M failed".
 * Only libc and pthread are used.  All helpers are static so each program
 * is a single translation unit.
 */
#ifndef OXMALLOC_TEST_COMMON_H
#define OXMALLOC_TEST_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Check bookkeeping.                                                  */

static atomic_int t_passed, t_failed;

/* Record one check; `fmt` describes the failure and is only used then. */
__attribute__((format(printf, 3, 4), unused))
static int check(int cond, const char *name, const char *fmt, ...)
{
    if (cond) {
        atomic_fetch_add(&t_passed, 1);
        printf("ok - %s\n", name);
    } else {
        char detail[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);
        atomic_fetch_add(&t_failed, 1);
        printf("not ok - %s: %s\n", name, detail);
    }
    fflush(stdout);
    return cond;
}

/* Print the summary line and return the process exit status. */
__attribute__((unused))
static int finish(const char *prog)
{
    int p = atomic_load(&t_passed), f = atomic_load(&t_failed);
    printf("%s: %d passed, %d failed\n", prog, p, f);
    fflush(stdout);
    return f ? 1 : 0;
}

/* ------------------------------------------------------------------ */
/* Compiler barriers.                                                  */

/*
 * Hide a pointer's origin from the optimiser: GCC knows malloc/calloc/free
 * semantics (it may drop malloc+free pairs, assume calloc memory reads as
 * zero, or assume free() does not touch errno), which would make some checks
 * vacuous.  Passing results through launder() forces real calls and loads.
 */
__attribute__((unused))
static inline void *launder(void *p)
{
    __asm__ volatile("" : "+r"(p) : : "memory");
    return p;
}

/* ------------------------------------------------------------------ */
/* Deterministic byte patterns.                                        */

static inline unsigned char pat_byte(uint64_t seed, size_t i)
{
    uint64_t x = seed + (uint64_t)i * 0x9E3779B97F4A7C15ull;
    x ^= x >> 29;
    return (unsigned char)(x ^ (x >> 8) ^ (i >> 12));
}

__attribute__((unused))
static void pat_fill(void *p, size_t n, uint64_t seed)
{
    unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        c[i] = pat_byte(seed, i);
}

/* Returns the index of the first mismatching byte, or (size_t)-1. */
__attribute__((unused))
static size_t pat_check(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != pat_byte(seed, i))
            return i;
    return (size_t)-1;
}

/* splitmix64: small fast PRNG, one state word per thread. */
__attribute__((unused))
static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ------------------------------------------------------------------ */
/* /proc helpers (read with plain read(2): no malloc involved).        */

/* Read a whole /proc file into buf (NUL-terminated); returns length or -1. */
__attribute__((unused))
static ssize_t read_proc(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
        if (len == cap - 1)
            break;
    }
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

/* Resident set size in bytes (from /proc/self/statm), 0 on error. */
__attribute__((unused))
static size_t rss_bytes(void)
{
    char buf[256];
    unsigned long size, resident;
    if (read_proc("/proc/self/statm", buf, sizeof buf) <= 0)
        return 0;
    if (sscanf(buf, "%lu %lu", &size, &resident) != 2)
        return 0;
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

#define MiB (1024ul * 1024ul)
#define KiB 1024ul

#endif /* OXMALLOC_TEST_COMMON_H */
