/* pairs.c - N malloc/free pairs of SIZE bytes made from a shared library (libpairs.so), the
 * tracker-overhead program of issue 14.   usage: pairs [N=10000000] [SIZE=100] */
#include <stdlib.h>
void pairs_run(long n, size_t size);
int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 10000000;
    size_t size = argc > 2 ? (size_t)atol(argv[2]) : 100;
    pairs_run(n, size);
    return 0;
}
