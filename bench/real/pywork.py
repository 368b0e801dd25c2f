"""Real-program workload: an allocation-heavy CPython script.

usage: python3 pywork.py [ITERS]

Run by bench/run.py twice per allocator: normally (CPython's pymalloc
serves objects <= 512 bytes, malloc sees only larger ones and arenas) and
with PYTHONMALLOC=malloc (every object allocation goes to malloc).
Prints "checksum <16 hex>", deterministic for a given ITERS (it does not
depend on hash randomisation or on the allocator).
"""
import json
import sys
import zlib


class Record:
    __slots__ = ("key", "name", "tags", "score")

    def __init__(self, key, name, tags, score):
        self.key = key
        self.name = name
        self.tags = tags
        self.score = score


def lcg(seed):
    x = seed
    while True:
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        yield x >> 33


def one_round(r, n):
    crc = 0
    # dicts of strings and lists, growing and shrinking
    table = {}
    for i in range(n):
        k = "key-%d-%d" % (i, next(r) % 1000)
        table[k] = [next(r) % 97 for _ in range(next(r) % 12)]
    for k in list(table)[::3]:
        del table[k]
    # objects, sorting, string building
    recs = [Record(k, k.upper() * (1 + len(v) % 3), tuple(v), sum(v)) for k, v in table.items()]
    recs.sort(key=lambda x: (x.score, x.key))
    text = "|".join("%s:%d" % (x.name[:12], x.score) for x in recs[: n // 2])
    crc = zlib.crc32(text.encode(), crc)
    # json round trip (many short-lived str/int/list/dict objects)
    doc = [{"id": x.key, "t": list(x.tags), "s": x.score, "n": {"a": x.name[:5]}} for x in recs[: n // 4]]
    blob = json.dumps(doc, sort_keys=True)
    back = json.loads(blob)
    crc = zlib.crc32(json.dumps(back, sort_keys=True).encode(), crc)
    # bytes/bytearray growth and slicing
    ba = bytearray()
    for x in recs[: n // 8]:
        ba += x.key.encode() * 3
        if len(ba) > 1 << 16:
            crc = zlib.crc32(bytes(ba[::7]), crc)
            ba = bytearray(ba[-100:])
    crc = zlib.crc32(bytes(ba), crc)
    # set operations and comprehension temporaries
    s1 = {x.score * 7 % 1009 for x in recs}
    s2 = {x.score * 11 % 1009 for x in recs}
    crc = zlib.crc32(repr(sorted(s1 ^ s2)).encode(), crc)
    return crc


def main():
    iters = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    r = lcg(12345)
    total = 0
    for it in range(iters):
        total = (total * 1000003 + one_round(r, 20000)) & 0xFFFFFFFFFFFFFFFF
    print("checksum %016x" % total)


if __name__ == "__main__":
    main()
