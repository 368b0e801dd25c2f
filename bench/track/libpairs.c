/* libpairs.c - the allocating half of pairs.c, in a shared library of its own. */
#include <stdlib.h>
__attribute__((visibility("default"))) void pairs_run(long n, size_t size)
{
    for (long i = 0; i < n; i++) {
        char *volatile p = malloc(size);
        p[0] = (char)i;
        free(p);
    }
}
