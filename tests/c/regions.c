/*
 * regions.c - where blocks live, observed through /proc/self/maps.
 *
 * Small blocks come from the brk heap ("[heap]"); blocks at or above the
 * mmap threshold get a private anonymous mapping that is unmapped on free;
 * the threshold adapts (dynamic threshold) and can be moved both ways with
 * mallopt(M_MMAP_THRESHOLD); malloc_trim(0) gives freed heap pages back.
 * Holds for glibc as well as oxmalloc.  Ends with
 * "regions: N passed, M failed".
 */
#include "common.h"

#include <malloc.h>
#include <sys/mman.h>

static char maps_buf[4 << 20]; /* static: reading maps must not malloc */

struct mapping {
    uintptr_t lo, hi;
    char name[128];
};

/*
 * Find the mapping containing addr.  Returns 1 and fills *m, or 0 when addr
 * is not mapped.  Uses read(2) into a static buffer, so no allocation.
 */
static int find_mapping(uintptr_t addr, struct mapping *m)
{
    if (read_proc("/proc/self/maps", maps_buf, sizeof maps_buf) <= 0)
        return 0;
    for (char *line = maps_buf; *line;) {
        char *end = strchr(line, '\n');
        if (end)
            *end = '\0';
        char *s = line;
        uintptr_t lo = strtoul(s, &s, 16);
        uintptr_t hi = strtoul(s + 1, &s, 16);
        if (addr >= lo && addr < hi) {
            /* skip perms, offset, dev, inode: the path is the 6th field */
            for (int field = 0; field < 4; field++) {
                while (*s == ' ')
                    s++;
                while (*s && *s != ' ')
                    s++;
            }
            while (*s == ' ')
                s++;
            m->lo = lo;
            m->hi = hi;
            snprintf(m->name, sizeof m->name, "%s", s);
            return 1;
        }
        if (!end)
            break;
        line = end + 1;
    }
    return 0;
}

/* Does any mapping overlap [lo, hi)? */
static int range_mapped(uintptr_t lo, uintptr_t hi)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    struct mapping m;
    for (uintptr_t a = lo & ~(page - 1); a < hi; a += page)
        if (find_mapping(a, &m))
            return 1;
    return 0;
}

static int in_heap(const void *p, struct mapping *m)
{
    return find_mapping((uintptr_t)p, m) && strcmp(m->name, "[heap]") == 0;
}

/*
 * In an anonymous mapping other than [heap], covering [p, p+n)?  Anonymous
 * mappings have no name, or a "[anon:...]" one if the allocator names them.
 */
static int in_own_mapping(const void *p, size_t n, struct mapping *m)
{
    uintptr_t a = (uintptr_t)p;
    return find_mapping(a, m) &&
           (m->name[0] == '\0' || strncmp(m->name, "[anon", 5) == 0) &&
           m->lo <= a && a + n <= m->hi;
}

static void test_small_in_heap(void)
{
    static const size_t sizes[] = {100, 1, 1000, 64 * KiB};
    for (size_t k = 0; k < 4; k++) {
        char name[96];
        struct mapping m = {0};
        void *p = launder(malloc(sizes[k]));
        memset(p, 1, sizes[k]);
        int ok = in_heap(p, &m);
        snprintf(name, sizeof name, "%zu-byte block lies in [heap]", sizes[k]);
        check(ok, name, "p=%p in %lx-%lx '%s'", p, (unsigned long)m.lo,
              (unsigned long)m.hi, m.name);
        free(p);
    }
}

static void test_big_is_mmapped(void)
{
    struct mapping m = {0};
    size_t n = 1 * MiB;
    void *p = launder(malloc(n));
    memset(p, 2, n);
    check(p && in_own_mapping(p, n, &m),
          "1 MiB block lies in an anonymous mapping of its own (not [heap])",
          "p=%p in %lx-%lx '%s'", p, (unsigned long)m.lo, (unsigned long)m.hi,
          m.name);
    uintptr_t addr = (uintptr_t)p;
    free(p);
    check(!range_mapped(addr, addr + n), "freed 1 MiB block is unmapped",
          "[%#lx, +1MiB) still mapped", (unsigned long)addr);

    /*
     * Dynamic threshold (as in glibc): freeing that mmapped block raised the
     * mmap threshold to its size, so a slightly smaller big block now comes
     * from the heap instead of a fresh mapping.
     */
    void *q = launder(malloc(n - 64 * KiB));
    memset(q, 3, n - 64 * KiB);
    check(q && in_heap(q, &m),
          "dynamic threshold: after freeing a 1 MiB mmapped block, 960 KiB "
          "comes from [heap]",
          "q=%p in %lx-%lx '%s'", q, (unsigned long)m.lo, (unsigned long)m.hi,
          m.name);
    free(q);
}

static void test_threshold_moves(void)
{
    struct mapping m = {0};
    /*
     * Like glibc, a request is carved from the top chunk whenever that is
     * big enough, whatever the threshold; trim the top so the decision below
     * really goes to the mmap-or-brk path.
     */
    malloc_trim(0);
    int r = mallopt(M_MMAP_THRESHOLD, 64 * 1024);
    void *p = launder(malloc(100 * KiB));
    memset(p, 4, 100 * KiB);
    check(r == 1 && p && in_own_mapping(p, 100 * KiB, &m),
          "threshold 64 KiB: 100 KiB block is mmapped (not [heap])",
          "mallopt=%d p=%p in %lx-%lx '%s'", r, p, (unsigned long)m.lo,
          (unsigned long)m.hi, m.name);
    uintptr_t addr = (uintptr_t)p;
    free(p);
    check(!range_mapped(addr, addr + 100 * KiB),
          "threshold 64 KiB: freed 100 KiB block is unmapped", "p=%#lx",
          (unsigned long)addr);

    r = mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
    p = launder(malloc(1 * MiB));
    memset(p, 5, 1 * MiB);
    check(r == 1 && p && in_heap(p, &m),
          "threshold 4 MiB: 1 MiB block comes from [heap]",
          "mallopt=%d p=%p in %lx-%lx '%s'", r, p, (unsigned long)m.lo,
          (unsigned long)m.hi, m.name);
    free(p);
    p = launder(malloc(6 * MiB));
    memset(p, 6, 6 * MiB);
    check(p && in_own_mapping(p, 6 * MiB, &m),
          "threshold 4 MiB: 6 MiB block is still mmapped", "p=%p in '%s'", p,
          m.name);
    free(p);
}

static void test_trim_rss(void)
{
    enum { BLK = 1024, KEEP_EVERY = 64 };
    const size_t nblk = 200 * MiB / BLK;
    /* The pointer table comes straight from mmap so it is not in the heap. */
    unsigned char **tab = mmap(NULL, nblk * sizeof *tab, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (!check(tab != MAP_FAILED, "trim: pointer table", "mmap failed"))
        return;

    size_t rss0 = rss_bytes();
    int in_heap_ok = 1;
    struct mapping m;
    for (size_t i = 0; i < nblk; i++) {
        tab[i] = launder(malloc(BLK));
        memset(tab[i], (int)(i & 0xff), BLK); /* make every page resident */
    }
    in_heap_ok = in_heap(tab[nblk / 2], &m);
    size_t rss1 = rss_bytes();
    for (size_t i = 0; i < nblk; i++)
        if (i % KEEP_EVERY) {
            free(tab[i]);
            tab[i] = NULL;
        }
    size_t rss2 = rss_bytes();
    int tr = malloc_trim(0);
    size_t rss3 = rss_bytes();

    size_t grown = rss1 > rss0 ? rss1 - rss0 : 0;
    size_t freed = grown / KEEP_EVERY * (KEEP_EVERY - 1);
    size_t dropped = rss1 > rss3 ? rss1 - rss3 : 0;
    printf("# trim: rss before %zu MiB, full %zu MiB, after free %zu MiB, "
           "after malloc_trim %zu MiB\n",
           rss0 / MiB, rss1 / MiB, rss2 / MiB, rss3 / MiB);
    check(in_heap_ok && grown >= 150 * MiB,
          "trim: 200 MB of 1 KiB blocks come from [heap] and are resident",
          "in_heap=%d grown=%zu MiB", in_heap_ok, grown / MiB);
    check(tr == 1, "trim: malloc_trim(0) returns 1 after freeing ~200 MB",
          "returned %d", tr);
    check(dropped * 10 >= freed * 6,
          "trim: RSS falls by >= 60% of the freed memory",
          "freed ~%zu MiB, RSS fell by %zu MiB", freed / MiB, dropped / MiB);

    int intact = 1;
    for (size_t i = 0; i < nblk; i += KEEP_EVERY) {
        for (size_t j = 0; j < BLK; j++)
            if (tab[i][j] != (unsigned char)(i & 0xff))
                intact = 0;
        free(tab[i]);
    }
    check(intact, "trim: surviving blocks keep their contents",
          "a live block changed");
    munmap(tab, nblk * sizeof *tab);
}

int main(void)
{
    test_small_in_heap();
    test_big_is_mmapped(); /* must run first: relies on default threshold */
    test_threshold_moves();
    test_trim_rss();
    return finish("regions");
}
