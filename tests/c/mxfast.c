/*
 * mxfast.c - the fast bins' limit (M_MXFAST, glibc.malloc.mxfast), checked with mallinfo2's
 * count of fast-bin blocks (smblks), as glibc's tst-mxfast does.
 *
 *   mxfast                 mallopt's answers only (any environment)
 *   mxfast FAST            with the thread cache off (glibc.malloc.tcache_count=0), so a freed
 *                          small block reaches the arena: FAST 1 means the default fast bins
 *                          (requests up to 120 bytes, chunk sizes up to 128), FAST 0 means
 *                          glibc.malloc.mxfast=0 was given (no fast bins at all).
 *
 * Run by run.sh with both environments, under glibc and under oxmalloc.
 */
#include "common.h"
#include <malloc.h>

static size_t smblks(void)
{
    return mallinfo2().smblks;
}

/* Frees a block of `n` bytes that has a live neighbour above it (so it cannot merge with the
 * top) and returns by how much the count of fast-bin blocks changed. */
static long freed_to_fast(size_t n)
{
    size_t before = smblks();
    char *p = launder(malloc(n));
    char *guard = launder(malloc(512));
    memset(p, 1, n);
    free(p);
    long d = (long)smblks() - (long)before;
    free(guard);
    return d;
}

int main(int argc, char **argv)
{
    check(mallopt(M_MXFAST, 161) == 0, "mallopt(M_MXFAST, 161) is refused", "accepted");
    check(mallopt(M_MXFAST, -1) == 0, "mallopt(M_MXFAST, -1) is refused", "accepted");

    if (argc > 1) {
        int fast = atoi(argv[1]);
        /* glibc's tst-mxfast: a 3-byte block */
        long d = freed_to_fast(3);
        check(d == (fast ? 1 : 0), "a freed 3-byte block is in a fast bin only when they are on",
              "smblks changed by %ld (fast bins %s)", d, fast ? "on" : "off");
        if (fast) {
            d = freed_to_fast(120);
            check(d == 1, "120 bytes (chunk 128) go to a fast bin by default", "smblks +%ld", d);
            d = freed_to_fast(130);
            check(d == 0, "130 bytes (chunk 144) do not by default", "smblks +%ld", d);
        }
        /* raise the limit to its maximum: chunk sizes up to 160 */
        check(mallopt(M_MXFAST, 160) == 1, "mallopt(M_MXFAST, 160) is accepted", "refused");
        d = freed_to_fast(150);
        check(d == 1, "after M_MXFAST 160, 150 bytes (chunk 160) go to a fast bin",
              "smblks +%ld", d);
        d = freed_to_fast(160);
        check(d == 0, "after M_MXFAST 160, 160 bytes (chunk 176) do not", "smblks +%ld", d);
        /* turning them off empties them (mallopt consolidates first) */
        check(mallopt(M_MXFAST, 0) == 1, "mallopt(M_MXFAST, 0) is accepted", "refused");
        check(smblks() == 0, "M_MXFAST 0 empties the fast bins", "smblks %zu", smblks());
        d = freed_to_fast(24);
        check(d == 0, "after M_MXFAST 0, a freed 24-byte block is not in a fast bin",
              "smblks +%ld", d);
        /* and everything still works with them off */
        void *v[64];
        for (int i = 0; i < 64; i++)
            v[i] = malloc((size_t)(i * 7 % 200 + 1));
        for (int i = 0; i < 64; i += 2)
            free(v[i]);
        for (int i = 1; i < 64; i += 2)
            free(v[i]);
        check(smblks() == 0, "fast bins stay empty with M_MXFAST 0", "smblks %zu", smblks());
        check(mallopt(M_MXFAST, 128) == 1, "mallopt(M_MXFAST, 128) restores them", "refused");
        d = freed_to_fast(24);
        check(d == 1, "after M_MXFAST 128 a freed 24-byte block is in a fast bin again",
              "smblks +%ld", d);
    }
    return finish("mxfast");
}
