/*
 * sample.c: a small but non-trivial C program for tests/real/run.sh.
 *
 * gcc compiles it with -O2 once under glibc's malloc and once under
 * liboxmalloc: the object files and executables must be byte-identical, and
 * the program's output must be the same. The program is then run under the
 * same allocator, and is a modest malloc workload of its own (many small
 * tree nodes, strings and realloc-grown arrays).
 *
 * Contents: an AVL tree, an open-addressing hash table, a tiny bytecode
 * interpreter for arithmetic expressions (tokeniser + recursive-descent
 * parser + stack VM), merge sort, a dynamic string builder, a CRC-32 and a
 * FNV-1a hash for checksums, and a fixed-point Mandelbrot. Everything is
 * deterministic.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

/* ---------------------------------------------------------------- hashing */

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc32_update(uint32_t crc, const void *data, size_t len)
{
    const unsigned char *p = data;
    crc = ~crc;
    while (len--)
        crc = crc_table[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

static uint64_t fnv1a(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ull;
    while (len--) {
        h ^= *p++;
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t rng_state = 88172645463325252ull;

static uint64_t xorshift(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* --------------------------------------------------------- string builder */

struct sb {
    char *buf;
    size_t len, cap;
};

static void sb_putn(struct sb *s, const char *str, size_t n)
{
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 16;
        while (cap < s->len + n + 1)
            cap *= 2;
        s->buf = xrealloc(s->buf, cap);
        s->cap = cap;
    }
    memcpy(s->buf + s->len, str, n);
    s->len += n;
    s->buf[s->len] = '\0';
}

static void sb_printf(struct sb *s, const char *fmt, long a, long b)
{
    char tmp[128];
    int n = snprintf(tmp, sizeof tmp, fmt, a, b);
    sb_putn(s, tmp, (size_t)n);
}

/* --------------------------------------------------------------- AVL tree */

struct avl {
    struct avl *left, *right;
    long key;
    long value;
    int height;
};

static int height(const struct avl *n) { return n ? n->height : 0; }
static int max_int(int a, int b) { return a > b ? a : b; }

static void fix_height(struct avl *n)
{
    n->height = 1 + max_int(height(n->left), height(n->right));
}

static struct avl *rotate_right(struct avl *y)
{
    struct avl *x = y->left;
    y->left = x->right;
    x->right = y;
    fix_height(y);
    fix_height(x);
    return x;
}

static struct avl *rotate_left(struct avl *x)
{
    struct avl *y = x->right;
    x->right = y->left;
    y->left = x;
    fix_height(x);
    fix_height(y);
    return y;
}

static struct avl *balance(struct avl *n)
{
    fix_height(n);
    int bf = height(n->left) - height(n->right);
    if (bf > 1) {
        if (height(n->left->left) < height(n->left->right))
            n->left = rotate_left(n->left);
        return rotate_right(n);
    }
    if (bf < -1) {
        if (height(n->right->right) < height(n->right->left))
            n->right = rotate_right(n->right);
        return rotate_left(n);
    }
    return n;
}

static struct avl *avl_insert(struct avl *n, long key, long value)
{
    if (!n) {
        n = xmalloc(sizeof *n);
        n->left = n->right = NULL;
        n->key = key;
        n->value = value;
        n->height = 1;
        return n;
    }
    if (key < n->key)
        n->left = avl_insert(n->left, key, value);
    else if (key > n->key)
        n->right = avl_insert(n->right, key, value);
    else
        n->value += value;
    return balance(n);
}

static struct avl *avl_remove_min(struct avl *n, struct avl **min)
{
    if (!n->left) {
        *min = n;
        return n->right;
    }
    n->left = avl_remove_min(n->left, min);
    return balance(n);
}

static struct avl *avl_delete(struct avl *n, long key)
{
    if (!n)
        return NULL;
    if (key < n->key) {
        n->left = avl_delete(n->left, key);
    } else if (key > n->key) {
        n->right = avl_delete(n->right, key);
    } else {
        struct avl *l = n->left, *r = n->right, *min;
        free(n);
        if (!r)
            return l;
        r = avl_remove_min(r, &min);
        min->left = l;
        min->right = r;
        return balance(min);
    }
    return balance(n);
}

static void avl_walk(const struct avl *n, uint64_t *acc, long *count)
{
    while (n) {
        avl_walk(n->left, acc, count);
        *acc = *acc * 1000003u + (uint64_t)n->key * 31u + (uint64_t)n->value;
        ++*count;
        n = n->right;
    }
}

static void avl_free(struct avl *n)
{
    while (n) {
        struct avl *r = n->right;
        avl_free(n->left);
        free(n);
        n = r;
    }
}

/* ----------------------------------------------------------- hash table */

struct entry {
    char *key;
    long value;
};

struct table {
    struct entry *slots;
    size_t cap, used;
};

static void table_put(struct table *t, const char *key, long value);

static void table_grow(struct table *t)
{
    struct entry *old = t->slots;
    size_t oldcap = t->cap;
    t->cap = oldcap ? oldcap * 2 : 64;
    t->slots = calloc(t->cap, sizeof *t->slots);
    if (!t->slots)
        exit(1);
    t->used = 0;
    for (size_t i = 0; i < oldcap; i++) {
        if (old[i].key) {
            table_put(t, old[i].key, old[i].value);
            free(old[i].key);
        }
    }
    free(old);
}

static void table_put(struct table *t, const char *key, long value)
{
    if ((t->used + 1) * 4 > t->cap * 3)
        table_grow(t);
    size_t len = strlen(key);
    size_t i = fnv1a(key, len) & (t->cap - 1);
    while (t->slots[i].key) {
        if (strcmp(t->slots[i].key, key) == 0) {
            t->slots[i].value += value;
            return;
        }
        i = (i + 1) & (t->cap - 1);
    }
    t->slots[i].key = xmalloc(len + 1);
    memcpy(t->slots[i].key, key, len + 1);
    t->slots[i].value = value;
    t->used++;
}

static int cmp_entry(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    if (x->value != y->value)
        return x->value < y->value ? 1 : -1;
    return strcmp(x->key, y->key);
}

/* -------------------------------------------------------- expression VM */

enum op { OP_PUSH, OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MOD, OP_NEG };

struct code {
    int *ops;
    long *args;
    size_t len, cap;
};

static void emit(struct code *c, int op, long arg)
{
    if (c->len == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 8;
        c->ops = xrealloc(c->ops, c->cap * sizeof *c->ops);
        c->args = xrealloc(c->args, c->cap * sizeof *c->args);
    }
    c->ops[c->len] = op;
    c->args[c->len] = arg;
    c->len++;
}

static const char *src;

static void skip_ws(void)
{
    while (*src == ' ')
        src++;
}

static void parse_expr(struct code *c);

static void parse_atom(struct code *c)
{
    skip_ws();
    if (*src == '(') {
        src++;
        parse_expr(c);
        skip_ws();
        if (*src == ')')
            src++;
    } else if (*src == '-') {
        src++;
        parse_atom(c);
        emit(c, OP_NEG, 0);
    } else {
        long v = 0;
        while (*src >= '0' && *src <= '9')
            v = v * 10 + (*src++ - '0');
        emit(c, OP_PUSH, v);
    }
}

static void parse_term(struct code *c)
{
    parse_atom(c);
    for (;;) {
        skip_ws();
        char ch = *src;
        if (ch != '*' && ch != '/' && ch != '%')
            return;
        src++;
        parse_atom(c);
        emit(c, ch == '*' ? OP_MUL : ch == '/' ? OP_DIV : OP_MOD, 0);
    }
}

static void parse_expr(struct code *c)
{
    parse_term(c);
    for (;;) {
        skip_ws();
        char ch = *src;
        if (ch != '+' && ch != '-')
            return;
        src++;
        parse_term(c);
        emit(c, ch == '+' ? OP_ADD : OP_SUB, 0);
    }
}

/* Evaluated in wrapping unsigned arithmetic: no undefined overflow. */
static uint64_t run_code(const struct code *c)
{
    uint64_t *stack = xmalloc((c->len + 1) * sizeof *stack);
    size_t sp = 0;
    for (size_t i = 0; i < c->len; i++) {
        uint64_t b;
        switch (c->ops[i]) {
        case OP_PUSH: stack[sp++] = (uint64_t)c->args[i]; break;
        case OP_NEG: stack[sp - 1] = 0 - stack[sp - 1]; break;
        case OP_ADD: b = stack[--sp]; stack[sp - 1] += b; break;
        case OP_SUB: b = stack[--sp]; stack[sp - 1] -= b; break;
        case OP_MUL: b = stack[--sp]; stack[sp - 1] *= b; break;
        case OP_DIV: b = stack[--sp]; stack[sp - 1] = b ? stack[sp - 1] / b : 0; break;
        case OP_MOD: b = stack[--sp]; stack[sp - 1] = b ? stack[sp - 1] % b : 0; break;
        }
    }
    uint64_t r = sp ? stack[sp - 1] : 0;
    free(stack);
    return r;
}

static void gen_expr(struct sb *s, int depth)
{
    static const char ops[] = "+-*/%";
    if (depth == 0 || xorshift() % 4 == 0) {
        sb_printf(s, "%ld", (long)(xorshift() % 1000), 0);
        return;
    }
    sb_putn(s, "(", 1);
    gen_expr(s, depth - 1);
    char op[3] = {' ', ops[xorshift() % 5], ' '};
    sb_putn(s, op, 3);
    gen_expr(s, depth - 1);
    sb_putn(s, ")", 1);
}

/* ------------------------------------------------------------ merge sort */

static void merge_sort(long *a, long *tmp, size_t n)
{
    if (n < 2)
        return;
    size_t h = n / 2;
    merge_sort(a, tmp, h);
    merge_sort(a + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = a[j] < a[i] ? a[j++] : a[i++];
    while (i < h)
        tmp[k++] = a[i++];
    while (j < n)
        tmp[k++] = a[j++];
    memcpy(a, tmp, n * sizeof *a);
}

/* ---------------------------------------------------------- mandelbrot */

static uint32_t mandelbrot(int w, int h, struct sb *art)
{
    uint32_t crc = 0;
    for (int y = 0; y < h; y++) {
        char line[256];
        for (int x = 0; x < w; x++) {
            /* 16.16 fixed point */
            int64_t cr = -(2 << 16) + (int64_t)x * (3 << 16) / w;
            int64_t ci = -(1 << 16) + (int64_t)y * (2 << 16) / h;
            int64_t zr = 0, zi = 0;
            int it = 0;
            while (it < 200 && zr * zr + zi * zi < ((int64_t)4 << 32)) {
                int64_t t = ((zr * zr - zi * zi) >> 16) + cr;
                zi = ((2 * zr * zi) >> 16) + ci;
                zr = t;
                it++;
            }
            line[x] = " .:-=+*#%@"[it % 10];
        }
        line[w] = '\n';
        crc = crc32_update(crc, line, (size_t)w + 1);
        if (y % 4 == 0)
            sb_putn(art, line, (size_t)w + 1);
    }
    return crc;
}

/* ----------------------------------------------------------------- main */

int main(void)
{
    crc_init();

    /* AVL tree: insert, delete half, walk. */
    struct avl *root = NULL;
    for (long i = 0; i < 200000; i++)
        root = avl_insert(root, (long)(xorshift() % 100000), i);
    for (long k = 0; k < 100000; k += 2)
        root = avl_delete(root, k);
    uint64_t acc = 0;
    long count = 0;
    avl_walk(root, &acc, &count);
    printf("avl: nodes=%ld height=%d digest=%016llx\n", count, height(root),
           (unsigned long long)acc);
    avl_free(root);

    /* Hash table word counts. */
    struct table t = {0};
    char word[32];
    for (int i = 0; i < 300000; i++) {
        int len = 1 + (int)(xorshift() % 3);
        for (int j = 0; j < len; j++)
            word[j] = (char)('a' + xorshift() % 12);
        word[len] = '\0';
        table_put(&t, word, 1);
    }
    struct entry *list = xmalloc(t.used * sizeof *list);
    size_t n = 0;
    for (size_t i = 0; i < t.cap; i++)
        if (t.slots[i].key)
            list[n++] = t.slots[i];
    qsort(list, n, sizeof *list, cmp_entry);
    printf("table: distinct=%zu top=%s:%ld,%s:%ld,%s:%ld last=%s:%ld\n", n,
           list[0].key, list[0].value, list[1].key, list[1].value, list[2].key,
           list[2].value, list[n - 1].key, list[n - 1].value);
    for (size_t i = 0; i < n; i++)
        free(list[i].key);
    free(list);
    free(t.slots);

    /* Expressions: generate, parse, compile, run. */
    uint64_t total = 0;
    uint32_t ecrc = 0;
    for (int i = 0; i < 3000; i++) {
        struct sb s = {0};
        gen_expr(&s, 8);
        struct code c = {0};
        src = s.buf;
        parse_expr(&c);
        uint64_t v = run_code(&c);
        total += v % 1000003u;
        ecrc = crc32_update(ecrc, s.buf, s.len);
        free(c.ops);
        free(c.args);
        free(s.buf);
    }
    printf("expr: total=%llu crc=%08x\n", (unsigned long long)total, ecrc);

    /* Sorting. */
    size_t m = 500000;
    long *a = xmalloc(m * sizeof *a), *tmp = xmalloc(m * sizeof *tmp);
    for (size_t i = 0; i < m; i++)
        a[i] = (long)(xorshift() % 1000000007u) - 500000000;
    merge_sort(a, tmp, m);
    int sorted = 1;
    for (size_t i = 1; i < m; i++)
        sorted &= a[i - 1] <= a[i];
    printf("sort: sorted=%d min=%ld median=%ld max=%ld crc=%08x\n", sorted, a[0],
           a[m / 2], a[m - 1], crc32_update(0, a, m * sizeof *a));
    free(a);
    free(tmp);

    /* Mandelbrot. */
    struct sb art = {0};
    uint32_t mcrc = mandelbrot(78, 40, &art);
    printf("mandelbrot: crc=%08x\n%s", mcrc, art.buf);
    free(art.buf);
    return 0;
}
