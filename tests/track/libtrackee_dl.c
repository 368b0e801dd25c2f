/* libtrackee_dl.c - loaded and closed again and again by trackee's "dlopen" scenario: each
 * call leaks n blocks of `size` bytes, whose stacks run through this library after it is
 * gone. */
#include <stdlib.h>
#include <string.h>

__attribute__((noinline, visibility("default"))) void trk_dl_leak(int n, size_t size)
{
    for (int i = 0; i < n; i++) {
        char *volatile p = malloc(size);
        memset(p, 2, size);
    }
}
