/*
 * lifecycle.c - malloc in the awkward places: before main (constructors), in threads made by
 * C code, in pthread key destructors at thread exit, after exhausting the address space
 * (RLIMIT_AS: NULL + ENOMEM, then recovery), and oxmalloc's tracking hook (skipped, with a
 * note, when the allocator is not oxmalloc).
 */
#include "common.h"
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <sys/resource.h>

static void *ctor_block;
static size_t ctor_usable;

__attribute__((constructor(101))) static void early(void)
{
    /* Runs before main, possibly before any other code called malloc. */
    ctor_block = malloc(72704);
    if (ctor_block) {
        memset(ctor_block, 0x5a, 72704);
        ctor_usable = malloc_usable_size(ctor_block);
    }
}

static pthread_key_t key;
static atomic_int destructor_ok;

static void key_destructor(void *v)
{
    /* Thread exit: free what the thread allocated, and allocate again (glibc allows it). */
    char *p = v;
    int good = p[0] == 'k' && p[999] == 'k';
    free(p);
    void *q = malloc(123);
    if (q) {
        memset(q, 1, 123);
        free(q);
    }
    if (good && q)
        atomic_fetch_add(&destructor_ok, 1);
}

static void *thread_body(void *arg)
{
    (void)arg;
    char *p = malloc(1000);
    memset(p, 'k', 1000);
    pthread_setspecific(key, p);
    void *blocks[64];
    for (int i = 0; i < 64; i++)
        blocks[i] = malloc((size_t)i * 40 + 1);
    for (int i = 0; i < 64; i++)
        free(blocks[i]);
    return malloc(4096); /* freed by main: a block outliving its thread */
}

static volatile int hook_allocs, hook_frees;
static void *volatile hook_watch;
static void on_alloc(void *p, size_t n) { if (n == 777777 || p == hook_watch) hook_allocs++; }
static void on_free(void *p) { if (p == hook_watch) hook_frees++; }

static int rlimit_as_check(void)
{
    struct rlimit old, lim;
    getrlimit(RLIMIT_AS, &old);
    /* Enough for what is mapped now plus a little. */
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (!f || fscanf(f, "%lu", &pages) != 1)
        return check(0, "rlimit: read statm", "cannot read /proc/self/statm");
    fclose(f);
    lim = old;
    lim.rlim_cur = pages * 4096ul + (64ul << 20);
    if (setrlimit(RLIMIT_AS, &lim) != 0)
        return check(0, "rlimit: setrlimit", "errno %d", errno);

    errno = 0;
    void *big = malloc(512ul << 20);
    int e1 = errno;
    check(big == NULL && e1 == ENOMEM, "rlimit: 512 MiB malloc fails with ENOMEM", "p=%p errno=%d", big, e1);

    /* Exhaust the space with small and medium blocks: each NULL must come with ENOMEM. */
    void **held = malloc(sizeof(void *) * 400000);
    size_t n = 0;
    int bad_errno = 0;
    for (; n < 400000; n++) {
        errno = 0;
        held[n] = malloc(n % 2 ? 200 : 8000);
        if (!held[n]) {
            bad_errno = errno != ENOMEM;
            break;
        }
    }
    check(n < 400000 && !bad_errno, "rlimit: small mallocs run out with ENOMEM", "n=%zu bad_errno=%d", n, bad_errno);
    errno = 0;
    void *c = calloc(1000, 1000);
    int e2 = errno;
    check(c == NULL && e2 == ENOMEM, "rlimit: calloc fails with ENOMEM", "p=%p errno=%d", c, e2);
    void *keep = n > 0 ? held[0] : NULL;
    errno = 0;
    void *r = keep ? realloc(keep, 256ul << 20) : NULL;
    check(keep && r == NULL && errno == ENOMEM, "rlimit: failed realloc keeps the block", "r=%p", r);
    errno = 0;
    void *al = memalign(4096, 128ul << 20);
    check(al == NULL && errno == ENOMEM, "rlimit: memalign fails with ENOMEM", "p=%p", al);
    for (size_t i = 0; i < n; i++)
        free(held[i]);
    free(held);
    malloc_trim(0);
    /* Memory is usable again. */
    void *again = malloc(8 << 20);
    int ok = again != NULL;
    if (again) {
        memset(again, 3, 8 << 20);
        free(again);
    }
    void *s = malloc(100);
    check(ok && s, "rlimit: allocation works again after frees", "big=%d small=%p", ok, s);
    free(s);
    setrlimit(RLIMIT_AS, &old);
    return 1;
}

int main(void)
{
    check(ctor_block != NULL && ctor_usable >= 72704 && ((char *)ctor_block)[72703] == 0x5a,
          "constructor: malloc before main", "p=%p usable=%zu", ctor_block, ctor_usable);
    free(ctor_block);

    pthread_key_create(&key, key_destructor);
    enum { T = 32 };
    pthread_t th[T];
    void *left[T];
    for (int i = 0; i < T; i++)
        pthread_create(&th[i], NULL, thread_body, NULL);
    for (int i = 0; i < T; i++)
        pthread_join(th[i], &left[i]);
    check(atomic_load(&destructor_ok) == T, "thread exit: key destructors free and malloc",
          "%d of %d", atomic_load(&destructor_ok), T);
    int all = 1;
    for (int i = 0; i < T; i++) {
        all &= left[i] != NULL;
        memset(left[i], 7, 4096);
        free(left[i]);
    }
    check(all, "thread exit: blocks outlive their thread and are freed by main", "missing block");

    int (*set_hooks)(void (*)(void *, size_t), void (*)(void *)) =
        (int (*)(void (*)(void *, size_t), void (*)(void *)))dlsym(RTLD_DEFAULT, "oxmalloc_set_hooks");
    if (set_hooks) {
        set_hooks(on_alloc, on_free);
        /* launder(): GCC may otherwise drop a malloc/free pair it can see through. */
        void *p = launder(malloc(777777));
        hook_watch = p;
        free(launder(p));
        void *q = launder(malloc(48));
        hook_watch = q;
        free(launder(q));
        set_hooks(NULL, NULL);
        void *r = launder(malloc(777777));
        free(launder(r));
        check(hook_allocs == 1 && hook_frees == 2, "tracking hook sees allocations and frees, then stops",
              "allocs=%d frees=%d", hook_allocs, hook_frees);
    } else {
        printf("# oxmalloc_set_hooks not present (not running under oxmalloc): hook check skipped\n");
    }

    /* A late dlopen of the library (not preloaded: the glibc run) needs room for its
     * static TLS in glibc's surplus (~1.6 KiB): the thread cache must stay small. Loaded
     * RTLD_LOCAL, its malloc does not interpose; its own exports are called directly. */
    const char *lib = getenv("OXMALLOC_LIB");
    if (!set_hooks && lib && *lib) {
        void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
        const char *why = h ? "" : dlerror();
        void *(*ox_malloc)(size_t) = h ? (void *(*)(size_t))dlsym(h, "malloc") : NULL;
        void (*ox_free)(void *) = h ? (void (*)(void *))dlsym(h, "free") : NULL;
        void *p = ox_malloc ? ox_malloc(100) : NULL;
        if (p) {
            memset(p, 1, 100);
            ox_free(p);
        }
        check(h && p, "late dlopen of liboxmalloc.so works (small static TLS)", "%s",
              why ? why : "");
    } else {
        printf("ok - late dlopen of liboxmalloc.so # SKIP %s\n",
               set_hooks ? "the library is preloaded" : "OXMALLOC_LIB not set");
    }

    rlimit_as_check();
    return finish("lifecycle");
}
