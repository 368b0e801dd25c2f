"""Allocation-heavy, deterministic Python workload for tests/real/run.sh.

Every line it prints must be identical whatever malloc the interpreter runs
on (and whatever PYTHONMALLOC / PYTHONHASHSEED say): it prints only
checksums of data whose content and order are fully determined by the code.
No timings, addresses, ids or set/dict-of-str iteration orders.
"""

import array
import collections
import gc
import hashlib
import io
import json
import random
import re
import struct
import sys
import threading
import zlib


def digest(*parts):
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, str):
            p = p.encode()
        elif not isinstance(p, (bytes, bytearray, memoryview)):
            p = repr(p).encode()
        h.update(p)
        h.update(b"\0")
    return h.hexdigest()[:16]


def out(name, *values):
    print(name + ": " + " ".join(str(v) for v in values), flush=True)


# ---------------------------------------------------------------------------
# Large dicts
# ---------------------------------------------------------------------------

def big_dicts():
    n = 400_000
    d = {}
    for i in range(n):
        d["key%07d" % i] = (i, str(i * 7), [i] * (i % 5))
    # Delete a third, overwrite a third with bigger values, re-add.
    for i in range(0, n, 3):
        del d["key%07d" % i]
    for i in range(1, n, 3):
        d["key%07d" % i] = {"v": i, "s": "x" * (i % 97)}
    for i in range(0, n, 6):
        d["new%07d" % i] = bytes([i % 256]) * (i % 300)
    total = 0
    slen = 0
    for k, v in d.items():  # insertion order: deterministic
        if isinstance(v, tuple):
            total += v[0] + len(v[2])
        elif isinstance(v, dict):
            total += v["v"]
            slen += len(v["s"])
        else:
            slen += len(v)
    keys_digest = digest("".join(sorted(d)[::997]))
    # int-keyed dict with churn (resizes up and down).
    e = {}
    for round_ in range(6):
        for i in range(round_ * 50_000, round_ * 50_000 + 120_000):
            e[i] = i * round_
        for i in range(round_ * 50_000, round_ * 50_000 + 90_000):
            e.pop(i, None)
    out("dicts", len(d), total, slen, keys_digest, len(e), sum(e.values()))
    del d, e


# ---------------------------------------------------------------------------
# Lists and sorting
# ---------------------------------------------------------------------------

def lists_and_sorting():
    rng = random.Random(12345)
    nums = [rng.random() for _ in range(300_000)]
    ints = [rng.randrange(-10**12, 10**12) for _ in range(300_000)]
    words = ["".join(rng.choice("abcdefghij") for _ in range(rng.randrange(1, 12)))
             for _ in range(150_000)]
    nums.sort()
    ints.sort(key=lambda x: (x % 1000, x))
    words_sorted = sorted(words, key=lambda w: (len(w), w))
    rows = [(w, i, [i] * (i % 4)) for i, w in enumerate(words)]
    rows.sort(key=lambda r: (r[0][::-1], -r[1]))
    nested = [[j for j in range(i % 50)] for i in range(40_000)]
    flat = [x for sub in nested for x in sub]
    out("lists",
        digest(struct.pack("<8d", *nums[:8]), struct.pack("<8d", *nums[-8:])),
        digest(ints[:100], ints[-100:]),
        digest("|".join(words_sorted[::50])),
        digest([r[1] for r in rows[::100]]),
        len(flat), sum(flat))
    # Lots of list growth and shrink (realloc of the item array).
    stack = []
    acc = 0
    for i in range(1_000_000):
        stack.append(i)
        if i % 3 == 2:
            acc += stack.pop() - stack.pop()
    arr = array.array("q", range(200_000))
    arr.extend(arr)
    arr.extend(reversed(arr))
    out("stack", len(stack), acc, len(arr), sum(arr[::1000]))


# ---------------------------------------------------------------------------
# Strings
# ---------------------------------------------------------------------------

def strings():
    parts = []
    for i in range(200_000):
        parts.append("item-%d-%s" % (i, "ab" * (i % 13)))
    s = ",".join(parts)
    pieces = s.split(",")
    upper = s.upper()
    replaced = s.replace("ab", "XYZ")
    buf = io.StringIO()
    for i in range(100_000):
        buf.write(str(i))
        buf.write(" " if i % 10 else "\n")
    text = buf.getvalue()
    lines = text.splitlines()
    acc = ""
    for i in range(20_000):  # quadratic-ish concatenation, CPython's in-place fast path
        acc += chr(65 + i % 26) * (i % 7)
    words = re.findall(r"item-(\d+)-((?:ab)*)", s)
    uni = "".join(chr(0x400 + i % 200) + chr(0x1F600 + i % 50) for i in range(50_000))
    enc = uni.encode("utf-8")
    out("strings", len(s), len(pieces), digest(upper[::101]), len(replaced),
        digest(replaced[-5000:]), len(lines), digest(lines[::997]), len(acc),
        digest(acc), len(words), sum(int(a) for a, _ in words[::7]),
        len(enc), digest(enc[::3]), enc.decode("utf-8") == uni)


# ---------------------------------------------------------------------------
# Bytes, zlib, big buffers (mmap-sized allocations), realloc growth
# ---------------------------------------------------------------------------

def buffers():
    rng = random.Random(777)
    chunks = [bytes(rng.getrandbits(8) for _ in range(256)) * rng.randrange(1, 64)
              for _ in range(200)]
    blob = b"".join(chunks)
    comp = zlib.compress(blob, 6)
    back = zlib.decompress(comp)
    co = zlib.compressobj(9)
    stream = b"".join(co.compress(c) for c in chunks) + co.flush()
    do = zlib.decompressobj()
    streamed = do.decompress(stream, 0) + do.flush()
    big = bytearray()
    for i in range(4000):  # grows to ~24 MB through realloc
        big += bytes([i % 256]) * (i * 3)
    huge = bytearray(64 * 1024 * 1024)
    huge[::4096] = b"\x01" * len(huge[::4096])
    mv = memoryview(huge)[1024:-1024]
    out("buffers", len(blob), zlib.crc32(blob), back == blob, streamed == blob,
        len(big), zlib.crc32(big), sum(huge), len(mv), zlib.adler32(bytes(mv[:1 << 20])))
    del huge, mv, big


# ---------------------------------------------------------------------------
# Objects, cycles, gc, json
# ---------------------------------------------------------------------------

class Node:
    __slots__ = ("value", "children", "parent")

    def __init__(self, value, parent=None):
        self.value = value
        self.children = []
        self.parent = parent


def objects():
    root = Node(0)
    nodes = [root]
    for i in range(1, 200_000):
        parent = nodes[(i * 7919) % len(nodes)]
        n = Node(i, parent)
        parent.children.append(n)
        nodes.append(n)
    depth_sum = 0
    stack = [(root, 0)]
    while stack:
        n, d = stack.pop()
        depth_sum += d
        stack.extend((c, d + 1) for c in n.children)
    del nodes, root, stack
    gc.collect()
    counter = collections.Counter()
    for i in range(300_000):
        counter[(i * i) % 1009] += 1
    dq = collections.deque(maxlen=1000)
    for i in range(200_000):
        dq.append({"i": i, "l": [i, i + 1]})
    doc = {"items": [{"id": i, "name": "n%d" % i, "tags": ["t%d" % (i % 7)] * (i % 4),
                      "score": i / 7.0} for i in range(60_000)]}
    js = json.dumps(doc, sort_keys=True)
    doc2 = json.loads(js)
    out("objects", depth_sum, gc.collect(), counter.most_common(3), dq[0]["i"],
        len(js), digest(js), doc2 == doc)


# ---------------------------------------------------------------------------
# Threads
# ---------------------------------------------------------------------------

def thread_work(idx, results):
    rng = random.Random(1000 + idx)
    table = {}
    for i in range(60_000):
        k = (idx, rng.randrange(1 << 30))
        table[k] = [rng.random() for _ in range(i % 8)]
    strings = ["%d:%d" % k for k in sorted(table)]
    joined = "\n".join(strings)
    pieces = sorted(set(joined.split("\n")))
    lst = []
    for i in range(200_000):
        lst.append(str(i * idx))
        if len(lst) > 5000:
            del lst[:2500]
    comp = zlib.compress(joined.encode(), 1)
    results[idx] = (len(table), digest(joined), len(pieces), len(lst), zlib.crc32(comp))


def threads():
    n = 4
    results = [None] * n
    ts = [threading.Thread(target=thread_work, args=(i, results)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for i, r in enumerate(results):
        out("thread%d" % i, *r)


def main():
    sys.setswitchinterval(0.0005)  # more thread interleaving
    big_dicts()
    lists_and_sorting()
    strings()
    buffers()
    objects()
    threads()
    print("python workload done", flush=True)


if __name__ == "__main__":
    main()
