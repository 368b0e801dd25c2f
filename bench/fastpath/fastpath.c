/* Fast-path probe for instruction counting under callgrind.
 *
 * usage: fastpath OP N
 *   OP = loop        the bare loop (its cost is subtracted from the others)
 *        malloc32    N x { p = malloc(32);  touch; free(p); }
 *        malloc256   N x { p = malloc(256); touch; free(p); }
 *        calloc64    N x { p = calloc(1, 64); touch; free(p); }
 *        realloc     N x { p = realloc(p, n += 8); touch }, restarting from
 *                    malloc(24) each time n passes 2048 (so 1 malloc/free
 *                    per 253 reallocs), i.e. a buffer that grows in place
 *                    when the allocator can.
 * bench/run.py --fastpath runs each OP twice with different N under
 * valgrind --tool=callgrind and reports (Ir(N2) - Ir(N1)) / (N2 - N1)
 * minus the same figure for OP=loop: the instructions one operation costs,
 * with start-up and initialisation cancelled out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keep the compiler from eliding the allocation (GCC removes unused
 * malloc/free pairs) and from hoisting anything out of the loop. */
#define OPAQUE(p) __asm__ volatile("" : "+r"(p) : : "memory")

int main(int argc, char **argv) {
    if (argc != 3) { fputs("usage: fastpath loop|malloc32|malloc256|calloc64|realloc N\n", stderr); return 2; }
    const char *op = argv[1];
    long n = strtol(argv[2], NULL, 10);
    unsigned long sum = 0;
    if (!strcmp(op, "loop")) {
        for (long i = 0; i < n; i++) { char *p = (char *)&sum; OPAQUE(p); p[0] = 1; sum += (unsigned char)p[0]; }
    } else if (!strcmp(op, "malloc32") || !strcmp(op, "malloc256")) {
        size_t sz = op[6] == '3' ? 32 : 256;
        for (long i = 0; i < n; i++) {
            char *p = malloc(sz);
            OPAQUE(p);
            p[0] = 1; sum += (unsigned char)p[0];
            free(p);
        }
    } else if (!strcmp(op, "calloc64")) {
        for (long i = 0; i < n; i++) {
            char *p = calloc(1, 64);
            OPAQUE(p);
            sum += (unsigned char)p[63];
            p[0] = 1;
            free(p);
        }
    } else if (!strcmp(op, "realloc")) {
        size_t cur = 24;
        char *p = malloc(cur);
        for (long i = 0; i < n; i++) {
            cur += 8;
            if (cur > 2048) { free(p); cur = 24; p = malloc(cur); }
            else p = realloc(p, cur);
            if (!p) return 4;
            OPAQUE(p);
            p[cur - 1] = 1; sum += (unsigned char)p[cur - 1];
        }
        free(p);
    } else {
        fprintf(stderr, "unknown op %s\n", op);
        return 2;
    }
    printf("checksum %016lx\n", sum);
    return 0;
}
