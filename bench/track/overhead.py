#!/usr/bin/env python3
"""overhead.py - the tracker's cost: each mode's time and peak RSS as ratios to the untracked
run of the same program in the same round, with heaptrack beside them; rounds interleave the
configurations and the figures are medians.

    python3 bench/track/overhead.py [--runs 5] [--quick] [--out bench/results/results-track.json]

Programs: `pairs` (10 M malloc/free pairs of 100 B from a shared library) and the suite's
churn, trees, server and realloc workloads (bench/build, made by `bench/run.py --smoke`).
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIB = os.path.join(ROOT, "target", "release", "liboxmalloc.so")
BUILD = os.path.join(ROOT, "bench", "build")


def build():
    os.makedirs(BUILD, exist_ok=True)
    src = os.path.join(ROOT, "bench", "track")
    subprocess.check_call(["gcc", "-O2", "-g", "-shared", "-fPIC", "-o",
                           os.path.join(BUILD, "libpairs.so"), os.path.join(src, "libpairs.c")])
    subprocess.check_call(["gcc", "-O2", "-g", "-o", os.path.join(BUILD, "pairs"),
                           os.path.join(src, "pairs.c"), "-L" + BUILD, "-lpairs",
                           "-Wl,-rpath," + BUILD])
    if not os.path.exists(os.path.join(BUILD, "churn")):
        subprocess.check_call([sys.executable, os.path.join(ROOT, "bench", "run.py"), "--smoke",
                               "--only", "churn"], stdout=subprocess.DEVNULL)


def run(cmd, env):
    t = time.monotonic()
    r = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    dt = time.monotonic() - t
    if r.returncode != 0:
        raise SystemExit(f"overhead.py: {' '.join(cmd)} failed: {r.stderr[-500:]}")
    return dt, int(r.stderr.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="smaller inputs, 1 run (a CI slice)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "results-track.json"))
    a = ap.parse_args()
    build()
    scale = 10 if a.quick else 1
    progs = {
        "pairs": [os.path.join(BUILD, "pairs"), str(10_000_000 // scale)],
        "churn": [os.path.join(BUILD, "churn"), str(2_000_000 // scale)],
        "trees": [os.path.join(BUILD, "trees"), str(max(40 // scale, 2))],
        "server": [os.path.join(BUILD, "server"), str(1_000_000 // scale)],
        "realloc": [os.path.join(BUILD, "realloc"), str(4_000_000 // scale)],
    }
    progs = {k: v for k, v in progs.items() if os.path.exists(v[0])}
    runs = 1 if a.quick else a.runs
    tmp = tempfile.mkdtemp(prefix="oxm-overhead-")
    configs = ["untracked", "summary", "sample", "full"]
    if shutil.which("heaptrack") and not a.quick:
        configs.append("heaptrack")
    res = {p: {c: [] for c in configs} for p in progs}
    for r in range(runs):
        for p, cmd in progs.items():
            for c in configs:
                env = dict(os.environ, LD_PRELOAD=LIB)
                env.pop("OXMALLOC_TRACK", None)
                argv = cmd
                if c in ("summary", "sample", "full"):
                    env["OXMALLOC_TRACK"] = c
                    env["OXMALLOC_OUT"] = os.path.join(tmp, f"{p}-{c}-{r}")
                elif c == "heaptrack":
                    env.pop("LD_PRELOAD")
                    argv = ["heaptrack", "-o", os.path.join(tmp, f"ht-{p}-{r}")] + cmd
                res[p][c].append(run(argv, env))
        print(f"round {r + 1}/{runs} done", file=sys.stderr)
    out = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "runs": runs,
           "quick": a.quick, "programs": {}}
    print(f"{'program':8} " + " ".join(f"{c:>17}" for c in configs[1:]) + "   (time x, RSS x vs untracked)")
    for p in progs:
        base_t = statistics.median(t for t, _ in res[p]["untracked"])
        base_m = statistics.median(m for _, m in res[p]["untracked"])
        row = {"untracked_s": base_t, "untracked_rss_kb": base_m}
        cells = []
        for c in configs[1:]:
            t = statistics.median(x for x, _ in res[p][c])
            m = statistics.median(y for _, y in res[p][c])
            row[c] = {"time_ratio": round(t / base_t, 3), "rss_ratio": round(m / base_m, 3),
                      "time_s": round(t, 4), "rss_kb": m}
            cells.append(f"{t / base_t:7.2f}x {m / base_m:6.2f}x")
        out["programs"][p] = row
        print(f"{p:8} " + " ".join(f"{c:>17}" for c in cells))
    if not a.quick:
        os.makedirs(os.path.dirname(a.out), exist_ok=True)
        json.dump(out, open(a.out, "w"), indent=1)
        print(f"wrote {a.out}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
