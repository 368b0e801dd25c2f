"""Generate a deterministic multi-file C project for the compile workload.

usage: python3 gen_csource.py OUTDIR [FILES=4] [FUNCS=120]

Writes OUTDIR/unitN.c (N = 0..FILES-1) and OUTDIR/common.h.  Each unit has
FUNCS functions mixing structs, switch statements, loops over arrays,
inline helpers and string tables, which keeps cc1's optimiser (and so its
allocator traffic: GC'd trees, RTL, bitmaps, hash tables) busy at -O2.
Output is a pure function of the arguments, so the object files compiled
from it are byte-identical under every allocator.
"""
import os
import sys


def lcg(seed):
    x = seed
    while True:
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        yield x >> 33


HEADER = """#ifndef COMMON_H
#define COMMON_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>
struct item { int32_t id; uint32_t flags; double weight; char name[24]; struct item *next; };
struct bag { size_t n; struct item *items[64]; uint64_t hist[16]; };
static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static inline uint32_t hash_str(const char *s) { uint32_t h = 2166136261u; while (*s) h = (h ^ (unsigned char)*s++) * 16777619u; return h; }
%s
#endif
"""


def gen_func(r, u, i):
    kind = next(r) % 4
    name = "u%d_f%d" % (u, i)
    body = []
    if kind == 0:
        cases = 8 + next(r) % 24
        body.append("uint64_t %s(uint64_t x, int op) {" % name)
        body.append("    uint64_t acc = x;")
        body.append("    switch (op) {")
        for c in range(cases):
            a, b = next(r) % 61 + 1, next(r) % 1000
            body.append("    case %d: acc = rotl(acc ^ %du, %d) + %du; break;" % (c, b, a % 63 + 1, a * b))
        body.append("    default: acc = ~acc;")
        body.append("    }")
        body.append("    return acc;")
        body.append("}")
    elif kind == 1:
        n = 4 + next(r) % 12
        body.append("double %s(struct bag *b, double scale) {" % name)
        body.append("    double s = 0;")
        body.append("    for (size_t i = 0; i < b->n && i < 64; i++) {")
        body.append("        struct item *it = b->items[i];")
        body.append("        for (int k = 0; k < %d && it; k++, it = it->next) {" % n)
        body.append("            s += it->weight * scale + (it->flags & %du);" % (next(r) % 255))
        body.append("            b->hist[(it->id + k) & 15]++;")
        body.append("        }")
        body.append("    }")
        body.append("    return s;")
        body.append("}")
    elif kind == 2:
        words = ["w%d_%d" % (next(r) % 9999, j) for j in range(6 + next(r) % 20)]
        body.append("static const char *const %s_tab[] = { %s };" % (name, ", ".join('"%s"' % w for w in words)))
        body.append("int %s(const char *key) {" % name)
        body.append("    uint32_t h = hash_str(key);")
        body.append("    for (size_t i = 0; i < sizeof %s_tab / sizeof *%s_tab; i++)" % (name, name))
        body.append("        if (hash_str(%s_tab[i]) == h && !strcmp(%s_tab[i], key)) return (int)i;" % (name, name))
        body.append("    return -1;")
        body.append("}")
    else:
        m = 3 + next(r) % 6
        body.append("void %s(int32_t *restrict out, const int32_t *restrict in, size_t n) {" % name)
        body.append("    for (size_t i = %d; i + %d < n; i++) {" % (m, m))
        terms = " + ".join("in[i %s %d] * %d" % ("+" if k % 2 else "-", k, next(r) % 17 - 8) for k in range(m))
        body.append("        int32_t v = %s;" % terms)
        body.append("        out[i] = v > %d ? v - %d : (v < -%d ? -v : v);" % (next(r) % 500, next(r) % 50, next(r) % 500))
        body.append("    }")
        body.append("}")
    return kind, name, "\n".join(body)


def main():
    out = sys.argv[1]
    files = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    funcs = int(sys.argv[3]) if len(sys.argv) > 3 else 120
    os.makedirs(out, exist_ok=True)
    r = lcg(777)
    protos = []
    units = []
    for u in range(files):
        parts = ['#include "common.h"']
        made = []
        for i in range(funcs):
            kind, name, text = gen_func(r, u, i)
            parts.append(text)
            made.append((kind, name))
        sig = {0: "uint64_t %s(uint64_t, int);", 1: "double %s(struct bag *, double);",
               2: "int %s(const char *);", 3: "void %s(int32_t *restrict, const int32_t *restrict, size_t);"}
        protos += [sig[k] % n for k, n in made]
        # a driver that calls everything so nothing is dead
        parts.append("uint64_t u%d_drive(struct bag *b, int32_t *o, const int32_t *in, size_t n) {" % u)
        parts.append("    uint64_t acc = 0;")
        for k, n in made:
            if k == 0:
                parts.append("    acc += %s(acc, (int)(acc & 31));" % n)
            elif k == 1:
                parts.append("    acc += (uint64_t)%s(b, 0.5);" % n)
            elif k == 2:
                parts.append('    acc += (uint64_t)%s("w17_3");' % n)
            else:
                parts.append("    %s(o, in, n); acc += (uint64_t)o[n / 2];" % n)
        parts.append("    return acc;")
        parts.append("}")
        units.append("\n\n".join(parts) + "\n")
    hdr = HEADER % "\n".join(protos)
    def write(path, text):
        try:
            with open(path) as f:
                if f.read() == text:
                    return
        except OSError:
            pass
        with open(path, "w") as f:
            f.write(text)
    write(os.path.join(out, "common.h"), hdr)
    for u, text in enumerate(units):
        write(os.path.join(out, "unit%d.c" % u), text)


if __name__ == "__main__":
    main()
