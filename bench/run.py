#!/usr/bin/env python3
"""oxmalloc benchmark driver (python3, standard library only).

Runs every workload under every allocator -- glibc (no preload), jemalloc,
mimalloc, tcmalloc and oxmalloc (target/release/liboxmalloc.so) -- with the
allocator injected by LD_PRELOAD, interleaved (A B C D E A B C D E ...),
measures wall time and peak RSS (os.wait4's ru_maxrss) of each run, and
writes bench/results/results-<mode>.json, docs/benchmarks.md and
docs/benchmarks-<mode>.svg.

    bench/run.py --quick            3 runs, small parameters (a few minutes)
    bench/run.py --full             5 runs, bigger parameters
    bench/run.py --smoke            each workload once, tiny, glibc vs oxmalloc:
                                    exit 0 and equal checksums (CI)
    bench/run.py --fastpath         callgrind instruction counts per operation
    bench/run.py --quick --fastpath both; fast-path figures also go in the JSON
    bench/run.py --rust             criterion benchmarks of the Rust front end (bench/rust)
    bench/run.py --docs-only        regenerate docs from the JSON files

See bench/README.md for the workloads and the options.
"""
import argparse
import datetime
import glob
import hashlib
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
BUILD = os.path.join(BENCH, "build")
RESULTS = os.path.join(BENCH, "results")
TMP = os.path.join(RESULTS, "tmp")
DOCS = os.path.join(ROOT, "docs")
REAL = os.path.join(BENCH, "real")

sys.path.insert(0, REAL)
import redisload  # noqa: E402  (bench/real/redisload.py)

ALLOC_ORDER = ["glibc", "jemalloc", "mimalloc", "tcmalloc", "oxmalloc", "oxmalloc-harden"]
# Measured only on request (--harden): oxmalloc with OXMALLOC_HARDEN=1.
OPTIONAL = {"oxmalloc-harden"}
PEERS = ["jemalloc", "mimalloc", "tcmalloc"]
LIBDIRS = ["/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib"]
PEER_SONAMES = {
    "jemalloc": ["libjemalloc.so.2", "libjemalloc.so"],
    "mimalloc": ["libmimalloc.so.2", "libmimalloc.so.2.0", "libmimalloc.so"],
    "tcmalloc": ["libtcmalloc_minimal.so.4", "libtcmalloc_minimal.so", "libtcmalloc.so.4"],
}
COLORS = {"glibc": "#777777", "jemalloc": "#1f77b4", "mimalloc": "#2ca02c",
          "tcmalloc": "#ff7f0e", "oxmalloc": "#d62728", "oxmalloc-harden": "#8c564b"}
NOISE_NOTE = ("On this class of machine (2 shared cores, other jobs compiling), a difference "
              "under 1.3x on a single workload is not significant; look at the geometric means "
              "and at differences well beyond the min-max spread.")

RUNS = {"smoke": 1, "quick": 3, "full": 5}
TIMEOUT = {"smoke": 60, "quick": 180, "full": 900}


# --------------------------------------------------------------------------
# workloads
# --------------------------------------------------------------------------

class Workload:
    """kind 'c': a bench/workloads program, params = [ITERS, THREADS, SIZE].
    kind 'python' / 'java' / 'compile' / 'redis': real programs."""

    def __init__(self, name, kind, desc, params, **opts):
        self.name, self.kind, self.desc, self.params = name, kind, desc, params
        self.opts = opts

    def needs(self):
        """Tools this workload needs; returns a reason string if one is missing."""
        if self.kind == "java" and not (shutil.which("java") and shutil.which("javac")):
            return "java/javac not installed"
        if self.kind == "redis" and not (shutil.which("redis-server") and shutil.which("redis-benchmark")):
            return "redis-server/redis-benchmark not installed (bench/install-peers.sh)"
        if self.kind == "compile" and not shutil.which("gcc"):
            return "gcc not installed"
        return None


WORKLOADS = [
    Workload("churn", "c", "single thread, 8-1024 B blocks with random lifetimes, ~50k live",
             {"smoke": [200000, 1, 5000], "quick": [6000000, 1, 50000], "full": [30000000, 1, 50000]}),
    Workload("trees", "c", "build/walk/free binary trees and linked lists of small nodes",
             {"smoke": [1, 1, 12], "quick": [30, 1, 15], "full": [60, 1, 17]}),
    Workload("prodcons", "c", "producer thread allocates, consumer thread frees (SPSC ring)",
             {"smoke": [300000, 2, 64], "quick": [2000000, 2, 64], "full": [15000000, 2, 64]}),
    Workload("server", "c", "4 threads atomically swap blocks in a shared table (remote frees), "
             "90% 24-512 B, tail to 512 KiB",
             {"smoke": [300000, 4, 4096], "quick": [1500000, 4, 65536], "full": [8000000, 4, 65536]}),
    Workload("falseshare", "c", "2 threads hammer their own 8 B block (active + passive false sharing)",
             {"smoke": [1000000, 2, 10], "quick": [120000000, 2, 50], "full": [1000000000, 2, 200]}),
    Workload("realloc", "c", "vectors (1.5x) and strings (exact) grown by appending via realloc",
             {"smoke": [200000, 1, 64], "quick": [5000000, 1, 256], "full": [25000000, 1, 256]}),
    Workload("large", "c", "64 KiB-1 MiB churn, then ~20 live 5-25 MiB (some to 32 MiB) blocks, pages touched",
             {"smoke": [16, 1, 4], "quick": [100, 1, 20], "full": [500, 1, 20]}),
    Workload("frag", "c", "mixed 16 B-4 KiB blocks, free 90% at random, then 4-64 KiB requests",
             {"smoke": [1, 1, 30000], "quick": [3, 1, 200000], "full": [6, 1, 300000]}),
    Workload("threadchurn", "c", "many short-lived threads (4 at a time) that allocate, some blocks outlive them",
             {"smoke": [500, 4, 500], "quick": [3000, 4, 2000], "full": [15000, 4, 2000]}),
    Workload("python", "python", "CPython script (dicts, objects, json, sorting), pymalloc on",
             {"smoke": [1], "quick": [4], "full": [20]}, pymalloc=True),
    Workload("python-malloc", "python", "same script with PYTHONMALLOC=malloc (every object via malloc)",
             {"smoke": [1], "quick": [4], "full": [20]}, pymalloc=False),
    Workload("redis", "redis", "redis-server (allocator under test) + redis-benchmark -n N on 127.0.0.1; "
             "time = benchmark wall time, RSS = server peak",
             {"smoke": [5000, 1000], "quick": [30000, 2000], "full": [300000, 10000]}, glibc_preload_libc=True),
    Workload("java", "java", "Java 17: direct ByteBuffers + java.util.zip Deflater/Inflater/GZIP",
             {"smoke": [40], "quick": [300], "full": [2500]}),
    Workload("compile", "compile", "gcc -O2 -c of a generated multi-file C project + the bench C sources",
             {"smoke": [1, 20], "quick": [2, 100], "full": [4, 200]}),
]

FASTPATH_OPS = [
    ("malloc32", "malloc(32) + free"),
    ("malloc256", "malloc(256) + free"),
    ("calloc64", "calloc(1, 64) + free"),
    ("realloc", "realloc growing by 8 B (in place when possible)"),
]


# --------------------------------------------------------------------------
# environment: allocators, machine, build
# --------------------------------------------------------------------------

def sh(cmd, **kw):
    try:
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, **kw).stdout.strip()
    except OSError:
        return ""


def find_lib(names):
    for d in LIBDIRS:
        for n in names:
            p = os.path.join(d, n)
            if os.path.exists(p):
                return p
    ldc = sh(["ldconfig", "-p"])
    for n in names:
        m = re.search(r"^\s*%s\b.*=>\s*(\S+)" % re.escape(n), ldc, re.M)
        if m:
            return m.group(1)
    return None


def pkg_version(path):
    out = sh(["dpkg", "-S", path]) or sh(["dpkg", "-S", os.path.realpath(path)])
    if not out:
        return ""
    pkg = out.splitlines()[0].split(": ")[0]          # e.g. "libjemalloc2:amd64"
    ver = sh(["dpkg-query", "-W", "-f", "${Version}", pkg])
    return "%s %s" % (pkg, ver) if ver else pkg


def discover_allocators(args, wanted):
    allocs = {}
    for name in ALLOC_ORDER:
        if name not in wanted:
            continue
        if name == "glibc":
            allocs[name] = {"path": None, "present": True,
                            "version": os.confstr("CS_GNU_LIBC_VERSION") if hasattr(os, "confstr") else ""}
        elif name in ("oxmalloc", "oxmalloc-harden"):
            path = args.lib or os.environ.get("OXMALLOC_LIB") or os.path.join(ROOT, "target", "release", "liboxmalloc.so")
            path = os.path.abspath(path)
            if os.path.isfile(path):
                rev = sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
                dirty = sh(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no", "--", "crates"])
                mtime = datetime.datetime.fromtimestamp(os.path.getmtime(path), datetime.timezone.utc)
                allocs[name] = {"path": path, "present": True,
                                "version": "git %s%s, built %s" % (rev or "?", "+dirty crates" if dirty else "",
                                                                    mtime.strftime("%Y-%m-%d %H:%M UTC"))}
                if name == "oxmalloc-harden":
                    allocs[name]["env"] = {"OXMALLOC_HARDEN": "1"}
                    allocs[name]["version"] += ", OXMALLOC_HARDEN=1"
            else:
                allocs[name] = {"path": path, "present": False,
                                "note": "not built (cargo build --release -p oxmalloc-cabi); skipped"}
        else:
            path = find_lib(PEER_SONAMES[name])
            if path:
                allocs[name] = {"path": path, "present": True, "version": pkg_version(path)}
            else:
                allocs[name] = {"path": None, "present": False,
                                "note": "not installed (bench/install-peers.sh); skipped"}
    return allocs


def machine_info():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = "%.1f GiB" % (kb / 1048576)
    except (OSError, ValueError, IndexError):
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "nproc": usable,
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "memory": mem,
        "libc": os.confstr("CS_GNU_LIBC_VERSION") if hasattr(os, "confstr") else "",
        "gcc": sh(["gcc", "-dumpfullversion"]),
        "python": platform.python_version(),
        "java": java_version(),
        "redis": sh(["redis-server", "--version"]) if shutil.which("redis-server") else "",
        "loadavg_start": os.getloadavg()[0],
    }


def java_version():
    if not shutil.which("java"):
        return ""
    r = subprocess.run(["java", "-version"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return (r.stderr.splitlines() or [""])[0]


def build(need_java=True, need_fastpath=False):
    """Compile the C workloads (gcc -O2 -pthread) and the Java program if stale."""
    os.makedirs(BUILD, exist_ok=True)
    wdir = os.path.join(BENCH, "workloads")
    hdrs = [os.path.join(wdir, fn) for fn in sorted(os.listdir(wdir)) if fn.endswith(".h")]
    jobs = []
    for fn in sorted(os.listdir(wdir)):
        if fn.endswith(".c"):
            jobs.append((os.path.join(wdir, fn), os.path.join(BUILD, fn[:-2]),
                         ["gcc", "-O2", "-g", "-pthread", "-Wall", "-Wextra", "-Wno-unused-parameter"], hdrs))
    jobs.append((os.path.join(BENCH, "tools", "measure.c"), MEASURE, ["gcc", "-O2", "-Wall"], []))
    # A diagnostic (bench/analysis.md), built here so that it keeps compiling; no mode runs it.
    jobs.append((os.path.join(BENCH, "tools", "listphases.c"), os.path.join(BUILD, "listphases"),
                 ["gcc", "-O2", "-pthread", "-Wall", "-Wextra", "-Wno-unused-parameter"], hdrs))
    if need_fastpath:
        src = os.path.join(BENCH, "fastpath", "fastpath.c")
        jobs.append((src, os.path.join(BUILD, "fp_fastpath"), ["gcc", "-O2", "-g", "-Wall"], []))
    for src, out, cc, deps in jobs:
        if os.path.exists(out) and all(os.path.getmtime(out) >= os.path.getmtime(d) for d in [src] + deps):
            continue
        print("build: %s" % os.path.relpath(out, ROOT), flush=True)
        r = subprocess.run(cc + ["-o", out, src])
        if r.returncode:
            sys.exit("build of %s failed" % src)
    if need_java and shutil.which("javac"):
        src = os.path.join(REAL, "java", "ZipDirect.java")
        out = os.path.join(BUILD, "java", "ZipDirect.class")
        if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(src):
            print("build: %s" % os.path.relpath(out, ROOT), flush=True)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            if subprocess.run(["javac", "-d", os.path.dirname(out), src]).returncode:
                sys.exit("javac failed")


# --------------------------------------------------------------------------
# running one process
# --------------------------------------------------------------------------

def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


MEASURE = os.path.join(BUILD, "measure")


def read_measure(path):
    """Parse bench/tools/measure's result line."""
    try:
        with open(path) as f:
            kv = dict(x.split("=", 1) for x in f.read().split())
        return {"rc": int(kv["rc"]), "wall": float(kv["wall"]), "maxrss_kib": int(kv["maxrss_kib"]),
                "user": float(kv["utime"]), "sys": float(kv["stime"]), "timed_out": kv["timed_out"] == "1"}
    except (OSError, KeyError, ValueError):
        return None


def spawn_measured(argv, env, cwd, timeout, tag, out, err, pidfile="-"):
    """Start argv under bench/tools/measure (see there why); returns the Popen
    of the measure process and the path of its result file."""
    res = os.path.join(TMP, tag + ".rusage")
    try:
        os.unlink(res)
    except OSError:
        pass
    proc = subprocess.Popen([MEASURE, res, pidfile, str(int(timeout))] + argv, stdout=out, stderr=err,
                            stdin=subprocess.DEVNULL, env=env, cwd=cwd)
    return proc, res


def reap(proc, grace):
    """os.wait4 the measure process (a backstop timer kills it if it hangs)."""
    if proc.returncode is not None:          # already reaped by Popen.poll()
        return proc.returncode, None
    timer = threading.Timer(grace, _kill, [proc.pid])
    timer.start()
    try:
        _, status, ru = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, ru


def run_process(argv, env, cwd, timeout, tag):
    """Run argv; returns rc, wall time, peak RSS in KiB (wait4's ru_maxrss of
    the workload process: for a process tree, the largest of the process and
    its reaped children), CPU times and its stdout/stderr text (kept under
    bench/results/tmp/)."""
    os.makedirs(TMP, exist_ok=True)
    out_p, err_p = os.path.join(TMP, tag + ".out"), os.path.join(TMP, tag + ".err")
    with open(out_p, "wb") as out, open(err_p, "wb") as err:
        proc, res = spawn_measured(argv, env, cwd, timeout, tag, out, err)
        reap(proc, timeout + 30)
    m = read_measure(res) or {"rc": -999, "wall": 0.0, "maxrss_kib": 0, "user": 0.0, "sys": 0.0,
                              "timed_out": False}
    with open(out_p, "rb") as f:
        m["stdout"] = f.read().decode(errors="replace")
    with open(err_p, "rb") as f:
        m["stderr"] = f.read().decode(errors="replace")
    return m


def describe_rc(rc):
    if rc < 0:
        try:
            return "killed by %s" % signal.Signals(-rc).name
        except ValueError:
            return "killed by signal %d" % -rc
    return "exit status %d" % rc


def parse_checksum(text):
    m = re.search(r"^checksum ([0-9a-f]{16})$", text, re.M)
    return m.group(1) if m else None


def alloc_env(alloc_name, alloc, wl, extra=None):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.pop("MALLOC_CONF", None)
    env.pop("MIMALLOC_OPTIONS", None)
    env.pop("OXMALLOC_HARDEN", None)
    env.update(alloc.get("env", {}))
    if alloc["path"]:
        env["LD_PRELOAD"] = alloc["path"]
    elif wl.opts.get("glibc_preload_libc"):
        # The program links another allocator itself (Debian's redis-server
        # is linked against libjemalloc): put libc first so its malloc wins.
        libc = find_lib(["libc.so.6"])
        if libc:
            env["LD_PRELOAD"] = libc
    if extra:
        env.update(extra)
    return env


def run_workload(wl, mode, alloc_name, alloc, timeout, tag):
    """One run of one workload under one allocator.  Returns a result dict:
    rc, wall, maxrss_kib, checksum, error (None when fine), extra."""
    p = wl.params[mode]
    error = None
    extra = {}
    if wl.kind == "c":
        argv = [os.path.join(BUILD, wl.name)] + [str(x) for x in p]
        r = run_process(argv, alloc_env(alloc_name, alloc, wl), BUILD, timeout, tag)
        r["checksum"] = parse_checksum(r["stdout"])
    elif wl.kind == "python":
        argv = [sys.executable, os.path.join(REAL, "pywork.py"), str(p[0])]
        env = {"PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
        if not wl.opts.get("pymalloc"):
            env["PYTHONMALLOC"] = "malloc"
        r = run_process(argv, alloc_env(alloc_name, alloc, wl, env), REAL, timeout, tag)
        r["checksum"] = parse_checksum(r["stdout"])
    elif wl.kind == "java":
        argv = ["java", "-Xmx256m", "-Xss1m", "-XX:MaxDirectMemorySize=64m", "-XX:+UseSerialGC",
                "-cp", os.path.join(BUILD, "java"), "ZipDirect", str(p[0])]
        r = run_process(argv, alloc_env(alloc_name, alloc, wl), BUILD, timeout, tag)
        r["checksum"] = parse_checksum(r["stdout"])
    elif wl.kind == "compile":
        src = os.path.join(BUILD, "csrc-%d-%d" % (p[0], p[1]))
        if not os.path.exists(os.path.join(src, "unit0.c")):
            subprocess.run([sys.executable, os.path.join(REAL, "gen_csource.py"), src, str(p[0]), str(p[1])], check=True)
        files = [os.path.join(src, "unit%d.c" % i) for i in range(p[0])]
        if mode != "smoke":
            wdir = os.path.join(BENCH, "workloads")
            files += [os.path.join(wdir, f) for f in sorted(os.listdir(wdir)) if f.endswith(".c")]
        cwd = os.path.join(TMP, "compile-" + alloc_name)
        shutil.rmtree(cwd, ignore_errors=True)
        os.makedirs(cwd)
        argv = ["gcc", "-O2", "-pthread", "-c"] + files
        r = run_process(argv, alloc_env(alloc_name, alloc, wl), cwd, timeout, tag)
        if r["rc"] == 0:
            h = hashlib.sha256()
            for f in sorted(os.listdir(cwd)):
                with open(os.path.join(cwd, f), "rb") as fh:
                    h.update(f.encode() + b"\0" + fh.read())
            r["checksum"] = h.hexdigest()[:16]
        else:
            r["checksum"] = None
    elif wl.kind == "redis":
        r = run_redis(wl, p, alloc_name, alloc, timeout, tag)
        extra = r.pop("extra", {})
    else:
        raise ValueError(wl.kind)
    if r.get("error"):
        error = r["error"]
    elif r.get("timed_out"):
        error = "timed out after %ds" % timeout
    elif r["rc"] != 0:
        error = "%s: %s" % (describe_rc(r["rc"]), (r["stderr"].strip().splitlines() or [""])[-1][:200])
    elif "cannot be preloaded" in r["stderr"]:
        error = "LD_PRELOAD failed: " + r["stderr"].strip().splitlines()[0][:200]
    elif not r.get("checksum"):
        error = "no checksum line in the output"
    return {"rc": r["rc"], "wall": round(r["wall"], 4), "maxrss_kib": r["maxrss_kib"],
            "user": round(r.get("user", 0.0), 3), "sys": round(r.get("sys", 0.0), 3),
            "checksum": r.get("checksum"), "error": error, "extra": extra}


def run_redis(wl, p, alloc_name, alloc, timeout, tag):
    """redis-server under the allocator (started through measure, which
    reports its rusage), a deterministic command script (checksum), then
    redis-benchmark (not preloaded; its wall time is the metric); the server
    is stopped with SIGTERM sent to its own PID."""
    requests, script_n = p
    work = os.path.join(TMP, "redis-" + alloc_name)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    env = alloc_env(alloc_name, alloc, wl)
    res = {"rc": -1, "wall": 0.0, "maxrss_kib": 0, "stdout": "", "stderr": "", "checksum": None, "extra": {}}
    pidfile = os.path.join(work, "server.pid")
    log = os.path.join(TMP, tag + ".log")
    argv, port = redisload.server_argv(shutil.which("redis-server"), work)
    with open(log, "wb") as lf:
        proc, resfile = spawn_measured(argv, env, work, timeout, tag, lf, subprocess.STDOUT, pidfile)
    server_pid = None
    try:
        if not redisload.wait_ready(port, proc):
            res["error"] = "redis-server did not start (see %s)" % os.path.relpath(log, ROOT)
        else:
            with open(pidfile) as f:
                server_pid = int(f.read())
            crc = redisload.script_checksum(port, script_n)
            wall, rps, ok = redisload.run_benchmark(shutil.which("redis-benchmark"), port, requests, timeout)
            res["wall"] = wall
            res["checksum"] = "%016x" % crc
            res["extra"] = {"rps": rps}
            if not ok:
                res["error"] = "redis-benchmark failed"
    except Exception as e:  # e.g. connection reset: the server crashed
        res["error"] = "redis: %s: %s" % (type(e).__name__, e)
    finally:
        if server_pid is None and os.path.exists(pidfile):
            with open(pidfile) as f:
                server_pid = int(f.read() or 0) or None
        if server_pid:
            try:
                os.kill(server_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        else:
            _kill(proc.pid)
        reap(proc, 30)
        shutil.rmtree(work, ignore_errors=True)
    m = read_measure(resfile)
    if m:
        res["rc"], res["maxrss_kib"], res["user"], res["sys"] = m["rc"], m["maxrss_kib"], m["user"], m["sys"]
    if res["rc"] != 0:
        if not res.get("error"):
            res["error"] = "redis-server " + describe_rc(res["rc"])
        elif "did not start" in res["error"]:
            res["error"] += ": " + describe_rc(res["rc"])
    return res


# --------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------

def summarize(values):
    v = sorted(values)
    s = {"median": statistics.median(v), "min": v[0], "max": v[-1], "n": len(v)}
    if len(v) >= 2:
        q = statistics.quantiles(v, n=4, method="inclusive")
        s["q1"], s["q3"] = q[0], q[2]
    else:
        s["q1"] = s["q3"] = v[0]
    return s


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def analyse(data):
    """Fill in medians/spreads, ratios and geomeans in a results dict."""
    allocs = [a for a in ALLOC_ORDER if data["allocators"].get(a, {}).get("present")]
    per_alloc = {a: {"time_vs_glibc": [], "rss_vs_glibc": [], "time_vs_best_peer": [], "rss_vs_best_peer": []}
                 for a in allocs}
    for wname, w in data["workloads"].items():
        res = w["results"]
        checks = {}
        for a, r in res.items():
            good = [x for x in r["runs"] if not x["error"]]
            r["ok"] = bool(good) and len(good) == len(r["runs"])
            r["errors"] = sorted({x["error"] for x in r["runs"] if x["error"]})
            if good:
                r["time"] = summarize([x["wall"] for x in good])
                r["rss_kib"] = summarize([x["maxrss_kib"] for x in good])
                for x in good:
                    checks.setdefault(x["checksum"], set()).add(a)
        # every run of every allocator must print the same checksum
        w["checksum_ok"] = len(checks) <= 1
        if len(checks) > 1:
            majority = max(checks, key=lambda c: (len(checks[c]), "glibc" in checks[c]))
            for c, who in checks.items():
                if c != majority:
                    for a in who:
                        res[a]["ok"] = False
                        res[a]["errors"].append("checksum %s differs from %s" % (c, majority))
        valid = {a: r for a, r in res.items() if r.get("ok")}
        best = {}
        for metric in ("time", "rss_kib"):
            peers = [(valid[a][metric]["median"], a) for a in PEERS if a in valid]
            best[metric] = min(peers)[1] if peers else None
        w["best_peer"] = {"time": best["time"], "rss": best["rss_kib"]}
        w["ratios"] = {}
        g = valid.get("glibc")
        for a, r in valid.items():
            rt = {}
            if g:
                rt["time_vs_glibc"] = r["time"]["median"] / g["time"]["median"]
                rt["rss_vs_glibc"] = r["rss_kib"]["median"] / g["rss_kib"]["median"]
                rt["time_min_vs_glibc"] = r["time"]["min"] / g["time"]["median"]
                rt["time_max_vs_glibc"] = r["time"]["max"] / g["time"]["median"]
                rt["rss_min_vs_glibc"] = r["rss_kib"]["min"] / g["rss_kib"]["median"]
                rt["rss_max_vs_glibc"] = r["rss_kib"]["max"] / g["rss_kib"]["median"]
            if best["time"]:
                rt["time_vs_best_peer"] = r["time"]["median"] / valid[best["time"]]["time"]["median"]
            if best["rss_kib"]:
                rt["rss_vs_best_peer"] = r["rss_kib"]["median"] / valid[best["rss_kib"]]["rss_kib"]["median"]
            w["ratios"][a] = {k: round(v, 4) for k, v in rt.items()}
            for k in per_alloc.get(a, {}):
                if k in rt:
                    per_alloc[a][k].append(rt[k])
    data["geomean"] = {}
    for a, d in per_alloc.items():
        gm = {k: (round(geomean(v), 4) if geomean(v) else None) for k, v in d.items()}
        gm["n"] = len(d["time_vs_glibc"])
        data["geomean"][a] = gm
    return data


# --------------------------------------------------------------------------
# modes
# --------------------------------------------------------------------------

def select_workloads(args):
    if not args.only:
        return list(WORKLOADS)
    names = set(args.only.split(","))
    unknown = names - {w.name for w in WORKLOADS}
    if unknown:
        sys.exit("unknown workload(s): %s (have: %s)" % (", ".join(sorted(unknown)),
                                                        ", ".join(w.name for w in WORKLOADS)))
    return [w for w in WORKLOADS if w.name in names]


def command_line():
    argv = list(sys.argv)
    if os.path.basename(argv[0]) == "run.py":
        argv[0] = "bench/run.py"
    return "python3 " + " ".join(shlex.quote(a) for a in argv)


def do_smoke(args):
    wanted = ["glibc", "oxmalloc"]
    allocs = discover_allocators(args, wanted)
    if not allocs["oxmalloc"]["present"]:
        print("bench-smoke: %s not found; build it with: cargo build --release -p oxmalloc-cabi"
              % allocs["oxmalloc"]["path"])
        print("bench-smoke: 0 passed, 1 failed")
        return 1
    build(need_java=True)
    passed = failed = skipped = 0
    timeout = args.timeout or TIMEOUT["smoke"]
    t_start = time.perf_counter()
    for wl in select_workloads(args):
        why = wl.needs()
        if why:
            print("skip %-14s %s" % (wl.name, why), flush=True)
            skipped += 1
            continue
        rs = {a: run_workload(wl, "smoke", a, allocs[a], timeout, "smoke-%s-%s" % (wl.name, a)) for a in wanted}
        problems = ["%s: %s" % (a, r["error"]) for a, r in rs.items() if r["error"]]
        if not problems and rs["glibc"]["checksum"] != rs["oxmalloc"]["checksum"]:
            problems.append("checksums differ: glibc %s, oxmalloc %s" % (rs["glibc"]["checksum"], rs["oxmalloc"]["checksum"]))
        status = "FAIL" if problems else "ok"
        print("%-4s %-14s glibc %6.2fs %7d KiB   oxmalloc %6.2fs %7d KiB   checksum %s" % (
            status, wl.name, rs["glibc"]["wall"], rs["glibc"]["maxrss_kib"],
            rs["oxmalloc"]["wall"], rs["oxmalloc"]["maxrss_kib"], rs["oxmalloc"]["checksum"]), flush=True)
        for pr in problems:
            print("     " + pr)
        if problems:
            failed += 1
        else:
            passed += 1
    if skipped:
        print("bench-smoke: %d skipped (tools not installed)" % skipped)
    print("bench-smoke: %.1f s" % (time.perf_counter() - t_start))
    print("bench-smoke: %d passed, %d failed" % (passed, failed))
    return 1 if failed or not passed else 0


def do_bench(args, mode):
    wanted = args.alloc.split(",") if args.alloc else [a for a in ALLOC_ORDER if a not in OPTIONAL]
    if args.harden and "oxmalloc-harden" not in wanted:
        wanted = wanted + ["oxmalloc-harden"]
    for a in wanted:
        if a not in ALLOC_ORDER:
            sys.exit("unknown allocator %s" % a)
    if "glibc" not in wanted:
        wanted = ["glibc"] + wanted
    allocs = discover_allocators(args, wanted)
    present = [a for a in ALLOC_ORDER if a in allocs and allocs[a]["present"]]
    for a in ALLOC_ORDER:
        if a in allocs and not allocs[a]["present"]:
            print("note: %s %s" % (a, allocs[a]["note"]), flush=True)
    build(need_java=True)
    runs = args.runs or RUNS[mode]
    timeout = args.timeout or TIMEOUT[mode]
    workloads = []
    skipped = {}
    for wl in select_workloads(args):
        why = wl.needs()
        if why:
            print("note: skipping %s: %s" % (wl.name, why), flush=True)
            skipped[wl.name] = why
        else:
            workloads.append(wl)
    data = {
        "mode": mode,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command_line(),
        "runs": runs,
        "machine": machine_info(),
        "allocators": allocs,
        "skipped_workloads": skipped,
        "workloads": {wl.name: {"kind": wl.kind, "desc": wl.desc, "params": wl.params[mode],
                                "results": {a: {"runs": []} for a in present}} for wl in workloads},
    }
    # Untimed warm-up of the real programs (page cache for java, gcc, python).
    for wl in workloads:
        if wl.kind in ("java", "compile", "python"):
            run_workload(wl, "smoke", "glibc", allocs["glibc"], timeout, "warmup-" + wl.name)
    t_start = time.perf_counter()
    for rep in range(runs):
        for wl in workloads:
            for a in present:
                r = run_workload(wl, mode, a, allocs[a], timeout, "%s-%s-%s" % (mode, wl.name, a))
                data["workloads"][wl.name]["results"][a]["runs"].append(r)
                print("[%d/%d] %-14s %-9s %8.3f s %9d KiB%s" % (
                    rep + 1, runs, wl.name, a, r["wall"], r["maxrss_kib"],
                    "   ERROR " + r["error"] if r["error"] else ""), flush=True)
    data["elapsed_s"] = round(time.perf_counter() - t_start, 1)
    data["machine"]["loadavg_end"] = os.getloadavg()[0]
    analyse(data)
    return data


def callgrind_ir(argv, env, tag):
    out = os.path.join(TMP, tag + ".callgrind")
    r = run_process(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out] + argv,
                    env, BUILD, 600, tag)
    try:
        os.unlink(out)
    except OSError:
        pass
    m = re.search(r"Collected\s*:\s*(\d+)", r["stderr"])
    if r["rc"] != 0 or not m:
        return None, "rc %d: %s" % (r["rc"], (r["stderr"].strip().splitlines() or [""])[-1][:200])
    return int(m.group(1)), None


def do_fastpath(args):
    if not shutil.which("valgrind"):
        print("note: valgrind not installed; no fast-path figures")
        return None
    wanted = args.alloc.split(",") if args.alloc else [a for a in ALLOC_ORDER if a not in OPTIONAL]
    if args.harden and "oxmalloc-harden" not in wanted:
        wanted = wanted + ["oxmalloc-harden"]
    if "glibc" not in wanted:
        wanted = ["glibc"] + wanted
    allocs = discover_allocators(args, wanted)
    build(need_java=False, need_fastpath=True)
    n1, n2 = args.fp_n1, args.fp_n2
    prog = os.path.join(BUILD, "fp_fastpath")
    dummy = Workload("fastpath", "c", "", {})
    res = {"n1": n1, "n2": n2, "tool": sh(["valgrind", "--version"]), "ops": dict(FASTPATH_OPS),
           "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "command": command_line(), "allocators": {}, "per_op": {}, "errors": {}}
    # cost of the bare loop, subtracted from every op
    base = []
    env0 = alloc_env("glibc", allocs["glibc"], dummy)
    for n in (n1, n2):
        ir, err = callgrind_ir([prog, "loop", str(n)], env0, "fp-loop-%d" % n)
        base.append(ir)
    loop = (base[1] - base[0]) / (n2 - n1) if None not in base else 0.0
    res["loop_ir_per_iter"] = round(loop, 2)
    for a in ALLOC_ORDER:
        if a not in allocs:
            continue
        if not allocs[a]["present"]:
            print("note: fastpath: %s %s" % (a, allocs[a]["note"]))
            continue
        res["allocators"][a] = allocs[a]
        env = alloc_env(a, allocs[a], dummy)
        res["per_op"][a] = {}
        for op, _ in FASTPATH_OPS:
            irs = []
            err = None
            for n in (n1, n2):
                ir, err = callgrind_ir([prog, op, str(n)], env, "fp-%s-%s-%d" % (a, op, n))
                if ir is None:
                    break
                irs.append(ir)
            if err:
                res["errors"].setdefault(a, {})[op] = err
                print("fastpath %-9s %-10s ERROR %s" % (a, op, err), flush=True)
                continue
            per = (irs[1] - irs[0]) / (n2 - n1) - loop
            res["per_op"][a][op] = round(per, 1)
            print("fastpath %-9s %-10s %8.1f Ir/op" % (a, op, per), flush=True)
    return res


# --------------------------------------------------------------------------
# documents
# --------------------------------------------------------------------------

def fmt_t(x):
    return "%.3f" % x if x < 10 else "%.2f" % x


def fmt_mib(kib):
    return "%.1f" % (kib / 1024.0)


def fmt_r(x):
    return "—" if x is None else ("%.2f" % x)


def md_mode_section(data):
    mode = data["mode"]
    allocs = [a for a in ALLOC_ORDER if data["allocators"].get(a, {}).get("present")]
    m = data["machine"]
    L = []
    L.append("## %s mode" % mode.capitalize())
    L.append("")
    L.append("- Date: %s; %d runs per workload and allocator, interleaved; total %.0f s." % (
        data["date"], data["runs"], data.get("elapsed_s", 0)))
    L.append("- Command: `%s`" % data["command"])
    L.append("- Machine: %s CPUs usable (nproc), %s, %s RAM, Linux %s; %s, gcc %s, Python %s; "
             "load average %.2f at start, %.2f at end." % (
                 m["nproc"], m["cpu_model"] or "unknown CPU", m["memory"], m["kernel"], m["libc"], m["gcc"],
                 m["python"], m.get("loadavg_start", 0), m.get("loadavg_end", 0)))
    L.append("- Allocators:")
    for a in ALLOC_ORDER:
        info = data["allocators"].get(a)
        if not info:
            continue
        if info.get("present"):
            how = "`%s`" % info["path"] if info["path"] else "no LD_PRELOAD"
            if a == "glibc" and "redis" in data["workloads"]:
                how += (" (for redis: `LD_PRELOAD=libc.so.6`, since Debian's redis-server is linked against "
                        "libjemalloc)")
            L.append("  - **%s**: %s%s" % (a, how,
                                           " (%s)" % info["version"] if info.get("version") else ""))
        else:
            L.append("  - **%s**: %s" % (a, info.get("note", "absent")))
    for w, why in data.get("skipped_workloads", {}).items():
        L.append("- Skipped workload %s: %s." % (w, why))
    L.append("")
    if os.path.exists(os.path.join(DOCS, "benchmarks-%s.svg" % mode)):
        L.append("![time and RSS ratio vs glibc, %s mode](benchmarks-%s.svg)" % (mode, mode))
        L.append("")

    def table(title, metric, fmt, unit):
        L.append("### %s" % title)
        L.append("")
        L.append("Median (min–max) over %d runs, %s; ×glibc = median / glibc's median." % (data["runs"], unit))
        L.append("")
        L.append("| workload | " + " | ".join(allocs) + " |")
        L.append("|---|" + "---|" * len(allocs))
        for wname, w in data["workloads"].items():
            cells = []
            for a in allocs:
                r = w["results"].get(a, {})
                if not r.get("ok"):
                    cells.append("FAIL" if r.get("runs") else "—")
                    continue
                s = r[metric]
                cell = "%s (%s–%s)" % (fmt(s["median"]), fmt(s["min"]), fmt(s["max"]))
                if a != "glibc":
                    key = "time_vs_glibc" if metric == "time" else "rss_vs_glibc"
                    rt = w["ratios"].get(a, {}).get(key)
                    if rt is not None:
                        cell += " **%.2f×**" % rt
                cells.append(cell)
            L.append("| %s | %s |" % (wname, " | ".join(cells)))
        L.append("")

    table("Wall time (seconds)", "time", fmt_t, "seconds")
    table("Peak RSS (MiB)", "rss_kib", fmt_mib, "MiB of ru_maxrss (for redis: the server's)")

    L.append("### Ratios to the best peer")
    L.append("")
    L.append("Median / the best median among jemalloc, mimalloc and tcmalloc on that workload "
             "(the best peer itself shows 1.00). Time / RSS.")
    L.append("")
    L.append("| workload | best peer (time / RSS) | " + " | ".join(allocs) + " |")
    L.append("|---|---|" + "---|" * len(allocs))
    for wname, w in data["workloads"].items():
        cells = []
        for a in allocs:
            rt = w["ratios"].get(a)
            cells.append("%s / %s" % (fmt_r(rt.get("time_vs_best_peer")), fmt_r(rt.get("rss_vs_best_peer")))
                         if rt else "—")
        bp = w.get("best_peer", {})
        L.append("| %s | %s / %s | %s |" % (wname, bp.get("time") or "—", bp.get("rss") or "—", " | ".join(cells)))
    L.append("")

    L.append("### Geometric means over the workloads")
    L.append("")
    L.append("| allocator | time ×glibc | RSS ×glibc | time ×best peer | RSS ×best peer | workloads |")
    L.append("|---|---|---|---|---|---|")
    for a in allocs:
        g = data["geomean"].get(a, {})
        L.append("| %s | %s | %s | %s | %s | %d |" % (a, fmt_r(g.get("time_vs_glibc")), fmt_r(g.get("rss_vs_glibc")),
                                                    fmt_r(g.get("time_vs_best_peer")), fmt_r(g.get("rss_vs_best_peer")),
                                                    g.get("n", 0)))
    L.append("")

    failures = []
    for wname, w in data["workloads"].items():
        for a, r in w["results"].items():
            for e in r.get("errors", []):
                failures.append("- %s under %s: %s" % (wname, a, e))
    if failures:
        L.append("### Failures")
        L.append("")
        L.extend(failures)
        L.append("")

    if "redis" in data["workloads"]:
        w = data["workloads"]["redis"]
        tests = ["SET/d256", "GET/d256", "LPUSH/d256", "HSET/d256", "SET/d16384"]
        L.append("### redis-benchmark throughput (median requests/s)")
        L.append("")
        L.append("| test | " + " | ".join(allocs) + " |")
        L.append("|---|" + "---|" * len(allocs))
        for t in tests:
            cells = []
            for a in allocs:
                vals = [x["extra"].get("rps", {}).get(t) for x in w["results"].get(a, {}).get("runs", [])
                        if not x["error"]]
                vals = [v for v in vals if v]
                cells.append("%.0f" % statistics.median(vals) if vals else "—")
            L.append("| %s | %s |" % (t, " | ".join(cells)))
        L.append("")
    return L


def md_fastpath_section(fp):
    L = ["## Fast path: instructions per operation (callgrind)", ""]
    L.append("- Date: %s; %s; command: `%s`" % (fp["date"], fp["tool"], fp["command"]))
    L.append("- Each probe (`bench/fastpath/fastpath.c`) runs twice under `valgrind --tool=callgrind`, "
             "with N1=%d and N2=%d iterations; figure = (Ir(N2) − Ir(N1)) / (N2 − N1) minus the bare loop "
             "(%.1f Ir/iteration). Start-up and one-time initialisation cancel out; the counts are "
             "repeatable to a fraction of an instruction, unlike timings." % (fp["n1"], fp["n2"],
                                                                             fp["loop_ir_per_iter"]))
    L.append("")
    allocs = [a for a in ALLOC_ORDER if a in fp["per_op"]]
    L.append("| operation | " + " | ".join(allocs) + " |")
    L.append("|---|" + "---|" * len(allocs))
    for op, desc in FASTPATH_OPS:
        cells = []
        for a in allocs:
            v = fp["per_op"][a].get(op)
            cells.append("%.1f" % v if v is not None else "ERROR")
        L.append("| %s | %s |" % (desc, " | ".join(cells)))
    L.append("")
    for a, errs in fp.get("errors", {}).items():
        for op, e in errs.items():
            L.append("- %s %s: %s" % (a, op, e))
    return L


RUST_BENCH = os.path.join(BENCH, "rust")
RUST_ALLOCS = (("system", "System (glibc)"), ("mimalloc", "mimalloc crate"),
               ("jemalloc", "tikv-jemallocator"), ("oxmalloc", "oxmalloc (OxMalloc)"))
RUST_GROUPS = (("malloc_free_32", "alloc + dealloc of 32 B", "ns"),
               ("malloc_free_256", "alloc + dealloc of 256 B", "ns"),
               ("batch_1000_mixed", "1 000 mixed 16–1024 B blocks allocated, then freed", "µs"),
               ("realloc_grow_16_to_4096", "a block grown by 16 B from 16 B to 4 KiB with realloc", "µs"),
               ("tree_depth_10", "a 2 047-node tree of 32 B nodes built and freed", "µs"))


def lock_versions(lock_path, names):
    """Versions of the named packages in a Cargo.lock."""
    out = {}
    try:
        text = open(lock_path).read()
    except OSError:
        return out
    for block in text.split("[[package]]"):
        m = re.search(r'name = "([^"]+)"\s+version = "([^"]+)"', block)
        if m and m.group(1) in names:
            out[m.group(1)] = m.group(2)
    return out


def do_rust(args, test_only=False):
    """Runs the criterion benchmarks in bench/rust and collects criterion's median estimates
    (with their 95 % confidence interval) per workload and allocator. With test_only, runs
    each benchmark once (criterion's --test), as a check that they build and run."""
    if not shutil.which("cargo"):
        print("note: rust: cargo not found; skipped")
        return None
    manifest = os.path.join(RUST_BENCH, "Cargo.toml")
    crit = os.path.join(RUST_BENCH, "target", "criterion")
    if not test_only and os.path.isdir(crit):
        shutil.rmtree(crit)
    argv = ["cargo", "bench", "--manifest-path", manifest, "--bench", "alloc", "--", "--noplot"]
    if test_only:
        argv.append("--test")
    t0 = time.time()
    # Criterion writes its estimates under CRITERION_HOME (else under the target directory,
    # which CARGO_TARGET_DIR may move): pin it.
    env = dict(os.environ, CRITERION_HOME=crit)
    r = subprocess.run(argv, cwd=ROOT, env=env)
    if r.returncode != 0:
        print("FAILED: rust benchmarks: %s exited with %d" % (" ".join(argv), r.returncode))
        return {"error": "cargo bench exited with %d" % r.returncode}
    if test_only:
        print("rust benchmarks: ran once each (criterion --test), %.0f s" % (time.time() - t0))
        return {}
    results, missing = {}, []
    for g, _, _ in RUST_GROUPS:
        results[g] = {}
        for a, _ in RUST_ALLOCS:
            est = os.path.join(crit, g, a, "new", "estimates.json")
            try:
                with open(est) as f:
                    med = json.load(f)["median"]
            except (OSError, ValueError, KeyError):
                missing.append("%s/%s" % (g, a))
                continue
            ci = med["confidence_interval"]
            results[g][a] = {"median_ns": med["point_estimate"], "lo_ns": ci["lower_bound"],
                             "hi_ns": ci["upper_bound"]}
    lock = os.path.join(RUST_BENCH, "Cargo.lock")
    out = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "command": command_line(), "machine": machine_info(),
           "rustc": sh(["rustc", "--version"]).strip(),
           "crates": lock_versions(lock, ("criterion", "mimalloc", "libmimalloc-sys",
                                          "tikv-jemallocator", "tikv-jemalloc-sys")),
           "seconds": round(time.time() - t0, 1), "results": results}
    if missing:
        out["error"] = "no estimates for " + ", ".join(missing)
        print("FAILED: rust benchmarks: %s" % out["error"])
    return out


def md_scaling_section(path):
    """Tables for one bench/scaling.sh output: median seconds per allocator and thread count,
    the speed-up over the same allocator's one-thread time, and oxmalloc against the best."""
    meta, runs = [], {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("#"):
                meta.append(line[1:].strip())
            elif line:
                a, t, _, sec = line.split("\t")
                runs.setdefault(a, {}).setdefault(int(t), []).append(float(sec))
    if not runs:
        return []
    allocs = [a for a in ALLOC_ORDER if a in runs]
    threads = sorted({t for a in runs for t in runs[a]})
    med = {a: {t: statistics.median(v) for t, v in runs[a].items()} for a in allocs}
    info = dict(m.split(" ", 1) for m in meta if " " in m)
    L = ["## Multi-thread scaling: server, %s" % info.get("machine", "?").split(",")[0], ""]
    L.append("- Date: %s; machine: %s." % (info.get("date", "?"), info.get("machine", "?")))
    L.append("- `%s` (results: `bench/results/%s`); %s. The work is fixed (ITERS requests), "
             "so the ideal speed-up is the thread count, bounded by the CPUs." %
             (info.get("command", "bench/scaling.sh"), os.path.basename(path), info.get("workload", "")))
    L.append("")
    L.append("Median wall time in seconds (min–max); ×1t = speed-up over the same allocator with one thread.")
    L.append("")
    L.append("| threads | " + " | ".join(allocs) + " | oxmalloc / best peer |")
    L.append("|---|" + "---|" * (len(allocs) + 1))
    for t in threads:
        cells = []
        for a in allocs:
            v = runs[a].get(t)
            if not v:
                cells.append("—")
                continue
            one = med[a].get(threads[0])
            sp = " ×%.1f" % (one / med[a][t]) if one and t != threads[0] else ""
            cells.append("%.3f (%.3f–%.3f)%s" % (med[a][t], min(v), max(v), sp))
        peers = [med[a][t] for a in allocs if a in PEERS and t in med[a]]
        rel = ("%.2f×" % (med["oxmalloc"][t] / min(peers))) if peers and t in med.get("oxmalloc", {}) else "—"
        L.append("| %d | %s | %s |" % (t, " | ".join(cells), rel))
    L.append("")
    return L


def md_rust_section(rs):
    L = ["## Rust front end (criterion)", ""]
    L.append("- Date: %s; %s; command: `%s`; %s s." % (rs["date"], rs.get("rustc", ""), rs["command"],
                                                     rs.get("seconds", "?")))
    crates = ", ".join("%s %s" % kv for kv in sorted(rs.get("crates", {}).items()))
    L.append("- `bench/rust/benches/alloc.rs`: each allocator is called through `GlobalAlloc` in one "
             "process (none of them is the global allocator), one after the other; criterion takes 40 "
             "samples after a 0.5 s warm-up. Figure: criterion's median, with its 95 %% confidence "
             "interval; ×system = median / System's median. Crates: %s." % crates)
    L.append("")
    allocs = [(a, label) for a, label in RUST_ALLOCS]
    L.append("| workload | unit | " + " | ".join(label for _, label in allocs) + " |")
    L.append("|---|---|" + "---|" * len(allocs))
    for g, desc, unit in RUST_GROUPS:
        row = rs["results"].get(g, {})
        base = row.get("system", {}).get("median_ns")
        div = 1.0 if unit == "ns" else 1000.0
        cells = []
        for a, _ in allocs:
            v = row.get(a)
            if not v:
                cells.append("—")
                continue
            cell = "%.3g (%.3g–%.3g)" % (v["median_ns"] / div, v["lo_ns"] / div, v["hi_ns"] / div)
            if base and a != "system":
                cell += " **%.2f×**" % (v["median_ns"] / base)
            cells.append(cell)
        L.append("| %s | %s | %s |" % (desc, unit, " | ".join(cells)))
    L.append("")
    if rs.get("error"):
        L.append("- Error: %s" % rs["error"])
        L.append("")
    return L


PEERS = ("jemalloc", "mimalloc", "tcmalloc")


def md_targets_section(data, fp):
    """Where oxmalloc stands against issue 3's targets, computed from one mode's results."""
    L = ["### Targets (computed from this run)", ""]
    g = data.get("geomean", {})
    ox = g.get("oxmalloc")
    peers = [p for p in PEERS if p in g]
    if not ox or not peers:
        return L + ["_oxmalloc or the peers missing from this run: targets not assessed._", ""]

    def med(wl, a, metric):
        r = data["workloads"][wl]["results"].get(a)
        if not r or not r.get("ok") or not r.get(metric):
            return None
        return r[metric]["median"]

    def row(name, value, limit, ok):
        L.append("| %s | %s | %s | %s |" % (name, value, limit, "met" if ok else "**not met**"))

    L.append("| target | oxmalloc | limit | status |")
    L.append("|---|---|---|---|")
    t = ox["time_vs_glibc"]
    row("geomean wall time vs glibc", "%.3f×" % t, "≤ 0.75×", t <= 0.75)
    best = min(peers, key=lambda p: g[p]["time_vs_glibc"])
    rel = t / g[best]["time_vs_glibc"]
    row("geomean wall time vs the fastest peer's geomean (%s)" % best, "%.3f×" % rel, "≤ 1.00×", rel <= 1.0)
    worst_t, worst_r = [], []
    for wl in data["workloads"]:
        o = med(wl, "oxmalloc", "time")
        pt = [med(wl, p, "time") for p in peers]
        pt = [x for x in pt if x]
        if o and pt and o > 1.3 * min(pt):
            worst_t.append("%s %.2f×" % (wl, o / min(pt)))
        o = med(wl, "oxmalloc", "rss_kib")
        pr = [med(wl, p, "rss_kib") for p in peers]
        pr = [x for x in pr if x]
        if o and pr and o > 1.5 * min(pr):
            worst_r.append("%s %.2f×" % (wl, o / min(pr)))
    row("no workload slower than 1.3 × the fastest peer on it",
        ", ".join(worst_t) if worst_t else "none over", "≤ 1.3×", not worst_t)
    r = ox["rss_vs_glibc"]
    row("geomean peak RSS vs glibc", "%.3f×" % r, "≤ 1.00×", r <= 1.0)
    row("no workload's peak RSS above 1.5 × the smallest peer's",
        ", ".join(worst_r) if worst_r else "none over", "≤ 1.5×", not worst_r)
    if fp and "oxmalloc" in fp.get("per_op", {}) and "glibc" in fp.get("per_op", {}):
        a = fp["per_op"]["oxmalloc"].get("malloc32")
        b = fp["per_op"]["glibc"].get("malloc32")
        if a is not None and b is not None:
            row("instructions for malloc+free of 32 B vs glibc", "%.1f vs %.1f" % (a, b), "≤ glibc", a <= b)
    L.append("")
    return L


def load_json(name):
    p = os.path.join(RESULTS, name)
    if os.path.exists(p):
        with open(p) as f:
            return json.load(f)
    return None


def render_docs():
    os.makedirs(DOCS, exist_ok=True)
    L = ["# Benchmarks", "",
         "<!-- Generated by bench/run.py from bench/results/*.json; do not edit by hand. -->", "",
         "oxmalloc against glibc's malloc and the usual replacement allocators, each injected with "
         "`LD_PRELOAD` into the same binaries. How to run and what each workload does: "
         "[bench/README.md](../bench/README.md).", "",
         "**Noise rules.** " + NOISE_NOTE + " Wall time is the whole process (start-up included); "
         "peak RSS is `ru_maxrss` from `os.wait4` (for gcc, the largest of the driver and its "
         "children). Every run's checksum must match across allocators, otherwise the run counts "
         "as failed.", ""]
    have = False
    for mode in ("full", "quick"):
        data = load_json("results-%s.json" % mode)
        if data:
            have = True
            write_svg(data)
            L += md_mode_section(data)
            L += md_targets_section(data, load_json("results-fastpath.json"))
    fp = load_json("results-fastpath.json")
    if fp:
        have = True
        L += md_fastpath_section(fp)
    rs = load_json("results-rust.json")
    if rs and rs.get("results"):
        have = True
        L += md_rust_section(rs)
    # One section per machine, the largest first (file names carry the CPU count).
    def cpus(path):
        m = re.search(r"(\d+)", os.path.basename(path))
        return int(m.group(1)) if m else 0
    for path in sorted(glob.glob(os.path.join(RESULTS, "scaling-*.tsv")), key=cpus, reverse=True):
        have = True
        L += md_scaling_section(path)
    analysis = os.path.join(BENCH, "analysis.md")
    if have and os.path.exists(analysis):
        with open(analysis) as f:
            L += f.read().rstrip("\n").split("\n") + [""]
    L.append("## Workloads")
    L.append("")
    L.append("| workload | what it does |")
    L.append("|---|---|")
    for wl in WORKLOADS:
        L.append("| %s | %s |" % (wl.name, wl.desc))
    L.append("")
    if not have:
        L.insert(4, "_No results yet: run `python3 bench/run.py --quick`._\n")
    with open(os.path.join(DOCS, "benchmarks.md"), "w") as f:
        f.write("\n".join(L))
    print("wrote docs/benchmarks.md")


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_svg(data):
    """Grouped bars (log2 scale around 1.0) of time and RSS ratio vs glibc."""
    mode = data["mode"]
    allocs = [a for a in ALLOC_ORDER if a != "glibc" and data["allocators"].get(a, {}).get("present")]
    wls = list(data["workloads"])
    if not allocs or not wls:
        return
    bar_w, gap = 11, 14
    group_w = bar_w * len(allocs) + gap
    left, right, top = 60, 20, 50
    panel_h, label_h = 220, 90
    width = left + right + group_w * len(wls)
    width = max(width, 560)
    height = top + 2 * (panel_h + label_h) + 10
    vals = []
    for w in data["workloads"].values():
        for a in allocs:
            rt = w["ratios"].get(a, {})
            for k in ("time_vs_glibc", "rss_vs_glibc"):
                if rt.get(k):
                    vals.append(abs(math.log2(rt[k])))
    span = max(1, min(5, math.ceil(max(vals) if vals else 1)))   # 2^-span .. 2^span
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
           'font-family="sans-serif" font-size="11">' % (width, height, width, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="18" font-size="14" font-weight="bold">oxmalloc benchmarks (%s mode, %s): '
           'ratio to glibc, log scale, lower is better</text>' % (left, mode, esc(data["date"]))]
    # legend
    x = left
    for a in allocs:
        out.append('<rect x="%d" y="28" width="10" height="10" fill="%s"/>' % (x, COLORS[a]))
        out.append('<text x="%d" y="37">%s</text>' % (x + 14, a))
        x += 90
    out.append('<text x="%d" y="37" fill="#555">whiskers: min–max run; ✕: failed/absent</text>' % x)
    for pi, (key, title) in enumerate((("time", "wall time ×glibc"), ("rss", "peak RSS ×glibc"))):
        y0 = top + pi * (panel_h + label_h)

        def ypos(r):
            lr = max(-span, min(span, math.log2(r)))
            return y0 + panel_h / 2 - lr / span * (panel_h / 2)
        out.append('<text x="8" y="%d" font-weight="bold" transform="rotate(-90 8 %d)" '
                   'text-anchor="middle">%s</text>' % (y0 + panel_h / 2, y0 + panel_h / 2, title))
        for e in range(-span, span + 1):
            y = ypos(2.0 ** e)
            out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="%s"/>' % (
                left, width - right, y, y, "#000" if e == 0 else "#ddd", "1.2" if e == 0 else "1"))
            lab = ("%g" % (2.0 ** e)) if e >= 0 else "1/%d" % (2 ** -e)
            out.append('<text x="%d" y="%.1f" text-anchor="end">%s×</text>' % (left - 4, y + 4, lab))
        for gi, wname in enumerate(wls):
            w = data["workloads"][wname]
            gx = left + gi * group_w + gap / 2
            for ai, a in enumerate(allocs):
                bx = gx + ai * bar_w
                rt = w["ratios"].get(a, {})
                r = rt.get("%s_vs_glibc" % key)
                if not r:
                    out.append('<text x="%.1f" y="%.1f" text-anchor="middle" fill="%s">✕</text>' % (
                        bx + bar_w / 2, ypos(1.0) - 3, COLORS[a]))
                    continue
                y1, yr = ypos(1.0), ypos(r)
                out.append('<rect x="%.1f" y="%.1f" width="%d" height="%.1f" fill="%s">'
                           '<title>%s %s: %.2f×</title></rect>' % (
                               bx, min(y1, yr), bar_w - 2, max(abs(yr - y1), 1), COLORS[a], wname, a, r))
                lo, hi = rt.get("%s_min_vs_glibc" % key), rt.get("%s_max_vs_glibc" % key)
                if lo and hi:
                    cx = bx + (bar_w - 2) / 2
                    out.append('<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#222" stroke-width="1"/>' % (
                        cx, cx, ypos(lo), ypos(hi)))
            lx = left + gi * group_w + group_w / 2
            ly = y0 + panel_h + 8
            out.append('<text x="%.1f" y="%.1f" text-anchor="end" transform="rotate(-40 %.1f %.1f)">%s</text>' % (
                lx, ly, lx, ly, esc(wname)))
    out.append("</svg>")
    path = os.path.join(DOCS, "benchmarks-%s.svg" % mode)
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description="oxmalloc benchmark suite (see bench/README.md)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="3 runs, small parameters (default)")
    g.add_argument("--full", action="store_true", help="5 runs, bigger parameters")
    g.add_argument("--smoke", action="store_true", help="CI check: glibc vs oxmalloc, tiny, once")
    g.add_argument("--docs-only", action="store_true", help="regenerate docs from bench/results/*.json")
    ap.add_argument("--fastpath", action="store_true", help="callgrind instruction counts per operation")
    ap.add_argument("--rust", action="store_true",
                    help="criterion benchmarks of the Rust front end (with --smoke: run each once)")
    ap.add_argument("--harden", action="store_true", help="also measure oxmalloc with OXMALLOC_HARDEN=1")
    ap.add_argument("--runs", type=int, help="override the number of runs")
    ap.add_argument("--only", help="comma-separated workload names")
    ap.add_argument("--alloc", help="comma-separated allocators (glibc always included)")
    ap.add_argument("--lib", help="liboxmalloc.so to test (default $OXMALLOC_LIB or target/release/liboxmalloc.so)")
    ap.add_argument("--timeout", type=int, help="seconds per run")
    ap.add_argument("--no-docs", action="store_true", help="write the JSON only")
    ap.add_argument("--fp-n1", type=int, default=20000, help=argparse.SUPPRESS)
    ap.add_argument("--fp-n2", type=int, default=220000, help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.makedirs(TMP, exist_ok=True)

    if args.docs_only:
        render_docs()
        return 0
    if args.smoke and args.rust:
        r = do_rust(args, test_only=True)
        return 1 if r is None or r.get("error") else 0
    if args.smoke:
        return do_smoke(args)

    mode = "full" if args.full else ("quick" if (args.quick or not (args.fastpath or args.rust)) else None)
    status = 0
    data = None
    if args.rust:
        rs = do_rust(args)
        if rs is None or rs.get("error"):
            status = 1
        if rs and rs.get("results"):
            with open(os.path.join(RESULTS, "results-rust.json"), "w") as f:
                json.dump(rs, f, indent=1, sort_keys=False)
            print("wrote bench/results/results-rust.json")
    if mode:
        data = do_bench(args, mode)
    fp = do_fastpath(args) if args.fastpath else None
    if fp:
        with open(os.path.join(RESULTS, "results-fastpath.json"), "w") as f:
            json.dump(fp, f, indent=1, sort_keys=False)
        print("wrote bench/results/results-fastpath.json")
        if fp.get("errors"):
            status = 1
    if data:
        if fp:
            data["fastpath"] = fp
        path = os.path.join(RESULTS, "results-%s.json" % mode)
        with open(path, "w") as f:
            json.dump(data, f, indent=1, sort_keys=False)
        print("wrote %s" % os.path.relpath(path, ROOT))
        for wname, w in data["workloads"].items():
            for a, r in w["results"].items():
                for e in r.get("errors", []):
                    print("FAILED: %s under %s: %s" % (wname, a, e))
                    status = 1
        print("geometric means (time ×glibc, RSS ×glibc):")
        for a, gm in data["geomean"].items():
            print("  %-9s %s  %s  over %d workloads" % (a, fmt_r(gm["time_vs_glibc"]), fmt_r(gm["rss_vs_glibc"]), gm["n"]))
    if not args.no_docs:
        render_docs()
    return status


if __name__ == "__main__":
    sys.exit(main())
