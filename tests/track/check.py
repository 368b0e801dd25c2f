#!/usr/bin/env python3
"""check.py - compares the tracker's reports with what tests/track/trackee really allocated.

    check.py MODE SCENARIO REPORT.json [PPROF_TOP.txt]

REPORT.json is `oxmalloc report DIR --format json`. Prints one line per check ("ok - ..." or
"not ok - ...") and a summary line "check: N passed, M failed"; exits 1 on any failure.
"""
import json
import sys

mode, scenario, path = sys.argv[1], sys.argv[2], sys.argv[3]
rep = json.load(open(path))
passed = failed = 0


def check(cond, name, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok - {mode}/{scenario}: {name}")
    else:
        failed += 1
        print(f"not ok - {mode}/{scenario}: {name}: {detail}")


def first_trackee_function(site):
    # the innermost frame that is one of the test library's named functions (inlined
    # std::vector code and the like in between are skipped)
    for f in site.get("frames", []):
        fn = (f.get("function") or "").split("(")[0]
        if fn.startswith("trk_"):
            return fn
    return None


def by_function(sites):
    out = {}
    for s in sites:
        fn = first_trackee_function(s)
        if fn is None:
            continue
        d = out.setdefault(fn, {"live_bytes": 0, "live_blocks": 0, "total_bytes": 0,
                                "total_blocks": 0, "threads": set()})
        for k in ("live_bytes", "live_blocks", "total_bytes", "total_blocks"):
            d[k] += s.get(k, 0)
        d["threads"].add(s.get("thread"))
    return out


def library(name):
    for lib in rep.get("libraries", []):
        if (lib.get("name") or "").split("/")[-1] == name:
            return lib
    return None


# Exact expectations for scenario "all" (see trackee.c): live bytes, live blocks, total bytes,
# total blocks per function.
ALL = {
    "trk_live": (100000 + 48000, 2000, 148000, 2000),
    "trk_churn": (0, 0, 20000 * 64, 20000),
    "trk_calloc": (30000, 100, 30000, 100),
    "trk_memalign": (30000, 150, 30000, 150),
    "trk_strdup": (15000, 300, 15000, 300),
    "trk_realloc": (3700, 1, 37 * 5050, 100),
    "trk_big": (3 << 20, 3, 3 << 20, 3),
    # new char[24] and operator new(24), 200 each, plus the vector's own storage:
    # new std::vector (24 bytes) and reserve(400) (3200 bytes)
    "trk_new": (9600 + 24 + 3200, 402, 9600 + 24 + 3200, 402),
}
LIBS = {
    "libtrackee.so": sum(v[0] for k, v in ALL.items() if k != "trk_new"),
    "libtrackee_cc.so": ALL["trk_new"][0],
}

if scenario == "all" and mode == "full":
    funcs = by_function(rep.get("sites", []))
    for fn, (lb, lk, tb, tk) in ALL.items():
        got = funcs.get(fn)
        if got is None:
            check(False, f"{fn} has sites", f"functions seen: {sorted(funcs)}")
            continue
        g = (got["live_bytes"], got["live_blocks"], got["total_bytes"], got["total_blocks"])
        check(g == (lb, lk, tb, tk), f"{fn} live/total exact", f"got {g}, want {(lb, lk, tb, tk)}")
    t = funcs.get("trk_live", {"threads": set()})["threads"]
    check(len(t) == 5, "trk_live seen from 5 threads (main + 4)", f"threads {sorted(map(str, t))}")

if scenario == "all" and mode in ("full", "summary"):
    for name, want in LIBS.items():
        lib = library(name)
        got = lib and lib.get("live_bytes")
        # libtrackee.so also owns what pthread_create allocates for its 4 threads (their TLS
        # vectors: glibc's calloc, called from trk_threads): a few hundred bytes each
        slack = 4 * 1024 if name == "libtrackee.so" else 0
        check(got is not None and want <= got <= want + slack,
              f"library {name} live bytes exact", f"got {got}, want {want} (+{slack})")
    libs = sorted(rep.get("libraries", []), key=lambda l: -l.get("live_bytes", 0))
    top = (libs[0].get("name") or "").split("/")[-1] if libs else None
    check(top == "libtrackee.so", "top library is libtrackee.so", f"top {top}")

if scenario == "all":
    lib = library("libtrackee.so")
    got = lib and lib.get("mmap_reserved")
    check(got == 4 << 20, "libtrackee.so: the program's own mmaps (4 MiB reserved after munmap and mremap)",
          f"got {got}")
    got = lib and lib.get("mmap_committed")
    # 3 x 512 KiB touched (the remapped one keeps its touched half); RSS in KiB pages
    check(got is not None and (3 << 19) <= got <= (3 << 19) + (64 << 10),
          "libtrackee.so: committed bytes of its mappings from smaps", f"got {got}")
    tot = rep.get("totals", {})
    want_live = sum(v[0] for v in ALL.values())
    # the program's own libc may hold a few small blocks besides ours
    got = tot.get("malloc_live_bytes", -1)
    if mode != "sample":  # (sample mode: an estimate, checked in the sample scenario)
        check(want_live <= got <= want_live + 4096, "totals live bytes", f"got {got}, want {want_live}..+4096")
    th = rep.get("threads", [])
    check(len(th) >= 5, "five threads reported", f"{len(th)}")

if scenario == "sample":
    if mode == "sample":
        lib = library("libtrackee.so")
        want = (65536 * 4096) + (256 * 65536) + 4 * (4 << 20)
        got = lib and lib.get("total_bytes")
        # 288 MiB at one sample per 512 KiB: ~576 samples, relative standard error ~4.2 %;
        # 20 % is more than 4.5 standard errors.
        check(got is not None and abs(got - want) <= 0.2 * want,
              "sampled library total within 20 %", f"got {got}, want {want}")
        funcs = by_function(rep.get("sites", []))
        big = funcs.get("trk_big", {}).get("live_bytes", 0)
        check(abs(big - (16 << 20)) <= (16 << 20) * 0.01,
              "blocks above the interval are caught (4 x 4 MiB live)", f"got {big}")
    tot = rep.get("totals", {})
    want = (256 * 65536) + 4 * (4 << 20)
    got = tot.get("malloc_live_bytes", -1)
    if mode == "sample":
        # sample mode keeps no exact live figures: the estimate from ~30 samples of the 64 KiB
        # blocks (relative error ~17 % on that half) and the 4 big blocks (nearly always
        # caught): 30 % of the whole is more than 3.5 standard errors
        check(tot.get("live_estimated") is True and abs(got - want) <= 0.3 * want,
              "sample mode: live total estimated within 30 %", f"got {got}, want {want}")
        check(tot.get("peak_bytes") is None, "sample mode: no peak claimed", f"{tot.get('peak_bytes')}")
        classes = rep.get("size_classes", [])
        check(classes and all(c.get("live_bytes") is None for c in classes),
              "sample mode: size classes carry no live figures", f"{classes[:2]}")
        want_total = (65536 * 4096) + want
        got = tot.get("total_bytes", -1)
        check(want_total <= got <= want_total + 65536, "sample mode: exact total allocated",
              f"got {got}, want {want_total}..+64 KiB")
    else:
        check(tot.get("live_estimated") is False and want <= got <= want + 4096,
              "exact live totals outside sample mode", f"got {got}, want {want}")

if scenario == "dlopen":
    funcs = by_function(rep.get("sites", []))
    got = funcs.get("trk_dl_leak")
    g = got and (got["live_bytes"], got["live_blocks"])
    check(g == (50 * 10 * 77, 500),
          "blocks leaked through a dlclosed library: exact, and its frames still symbolised",
          f"got {g}; functions {sorted(funcs)}")

if len(sys.argv) > 4:
    # `go tool pprof -top -sample_index=inuse_space` text: the total line must match the json.
    txt = open(sys.argv[4]).read()
    import re
    m = re.search(r"of ([0-9.]+)([kMG]?B) total", txt)
    units = {"B": 1, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}
    total = m and float(m.group(1)) * units[m.group(2)]
    want = sum(s.get("live_bytes", 0) for s in rep.get("sites", []))
    check(total is not None and abs(total - want) <= max(0.01 * want, 1024),
          "go tool pprof reads the profile; its in-use total matches the json",
          f"pprof {total}, json {want}")

print(f"check: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
