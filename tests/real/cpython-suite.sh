#!/usr/bin/env bash
# CPython's own regression tests (`python3 -m test`) for the core types and
# threading, run once under glibc's malloc and once under liboxmalloc
# (LD_PRELOAD), and compared test by test.
#
# Usage (from anywhere; paths are relative to the repository root):
#   tests/real/cpython-suite.sh [--long] [--pythonmalloc=MODE] [TEST...]
#
#   --long     run the long list: the default list plus about fifty more test
#              files (asyncio, signal, os, select, logging, email, xml,
#              tarfile, zipfile, unittest, doctest, ...): about 2 minutes a
#              side on 2 cores instead of 1 (same as OXMALLOC_CPYTHON_LONG=1)
#   --pythonmalloc=MODE
#              run both sides with PYTHONMALLOC=MODE. "malloc" sends every
#              Python object to the allocator under test; by default the
#              interpreter uses pymalloc for objects up to 512 bytes, and only
#              bigger blocks and C libraries' allocations reach malloc
#   TEST       run these regrtest names instead of a list (e.g. test_dict)
#
# Environment:
#   OXMALLOC_LIB                the library (default: target/release/liboxmalloc.so)
#   OXMALLOC_CPYTHON_PYTHON     the interpreter (default: python3 on PATH,
#                               resolved to sys.executable, so that a pyenv
#                               shim is not what gets preloaded)
#   OXMALLOC_CPYTHON_JOBS       regrtest worker processes, -jN (default: nproc)
#   OXMALLOC_CPYTHON_TIMEOUT    seconds allowed for each test file (default: 300)
#   OXMALLOC_CPYTHON_LONG=1     same as --long
#
# The interpreter needs its test suite (the `test` package with its test_*
# files). Debian ships it separately, in libpython3.X-testsuite: when it is
# missing for a Debian interpreter the script installs it with apt-get if it
# runs as root, and otherwise says so and exits with status 2.
#
# Before the runs, a Python one-liner checks under the oxmalloc environment
# that the library is mapped (/proc/self/maps) and that malloc resolves into it.
#
# Each side runs `python -m test -jN -W --timeout T TESTS` (every test file in
# a worker process, so a crash is confined to its file; -W keeps the verbose
# output of failed files). The per-file results ("[ 3/70] test_dict passed")
# are compared:
#   ok                  same outcome on both sides, or better under oxmalloc
#   ok ... # fails under glibc too
#                       failed (or crashed) under glibc as well, and under
#                       oxmalloc no test case fails that passed under glibc
#                       (compared by their "FAIL:"/"ERROR:" lines)
#   not ok              passed (or was skipped) under glibc but failed,
#                       crashed, timed out or never reported under oxmalloc,
#                       or fails under both but with more failing cases under
#                       oxmalloc; followed by "# " lines with an excerpt.
# "failed (env changed)" counts as passed on either side, and is noted.
#
# Output: one line per test file, then "cpython-suite: N passed, M failed"
# (N + M = test files compared). Exit status 0 when M is 0, 1 when not (a
# library that is not preloaded counts as one failure), 2 on a usage error,
# a missing library or a missing test suite. Logs are kept under
# tests/build/cpython/{glibc,oxmalloc}/: regrtest.log (the whole output),
# rc, seconds, and tests/NAME.log (the output of each test file that did
# not pass on that side).

set -u
set -o pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root" || exit 2

build=$root/tests/build/cpython

# Default list: core types, containers, numbers, strings, serialization, GC
# and weak references, threading, fork, and the C libraries that allocate
# with malloc (zlib, OpenSSL, sqlite, libffi). About 1 minute a side with
# -j2 on 2 cores. "a|b" takes the first name this Python's test suite has
# (test_unicode became test_str in 3.12).
default_tests=(
    test_list test_tuple test_dict test_dictviews test_ordered_dict
    test_set test_weakset test_userlist test_userdict test_collections
    test_deque test_bytes "test_str|test_unicode" test_string test_format
    test_fstring test_long test_int test_float test_complex test_decimal
    test_fractions test_math test_bool test_range test_slice test_enumerate
    test_array test_memoryview test_buffer test_struct test_sort test_heapq
    test_bisect test_itertools test_functools test_operator test_copy
    test_descr test_class test_generators test_genexps test_exceptions
    test_builtin test_re test_json test_pickle test_marshal test_codecs
    test_unicodedata test_hash test_gc test_weakref test_mmap
    test_threading test_thread test_threading_local test_threadsignals
    test_queue test_fork1 test_capi test_sys test_tracemalloc test_io
    test_zlib test_hashlib test_sqlite3 test_ctypes test_subprocess
)
# --long adds these (test_concurrent_futures and test_multiprocessing_fork
# are left out where a Python lacks them). Not test_socket: it hangs in
# sandboxes without a network.
long_tests=(
    test_random test_statistics test_bz2 test_lzma test_fileio test_binascii
    test_base64 test_contextlib test_csv test_strtod test_asyncio
    test_threadedtempfile test_xml_etree test_xml_etree_c test_bigmem
    test_textwrap test_pprint test_tokenize test_ast test_compile
    test_datetime test_email test_select test_os test_signal test_time
    test_logging test_typing test_enum test_inspect test_traceback
    test_dataclasses test_frozen test_picklebuffer test_pickletools
    test_shelve test_dbm test_tempfile test_shutil test_tarfile test_zipfile
    test_unittest test_doctest test_faulthandler test_resource test_sched
    test_selectors test_timeout test_concurrent_futures
    test_multiprocessing_fork
)

long=${OXMALLOC_CPYTHON_LONG:-0}
[[ $long == 1 ]] || long=0
pythonmalloc=
explicit=()
for arg in "$@"; do
    case $arg in
    --long) long=1 ;;
    --pythonmalloc=*) pythonmalloc=${arg#--pythonmalloc=} ;;
    -h | --help)
        sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    -*)
        echo "cpython-suite.sh: unknown option $arg" >&2
        exit 2
        ;;
    test_*) explicit+=("$arg") ;;
    *)
        echo "cpython-suite.sh: $arg is not a regrtest name (test_...)" >&2
        exit 2
        ;;
    esac
done

lib=${OXMALLOC_LIB:-target/release/liboxmalloc.so}
py=${OXMALLOC_CPYTHON_PYTHON:-python3}
jobs=${OXMALLOC_CPYTHON_JOBS:-$(nproc 2>/dev/null || echo 2)}
timeout_s=${OXMALLOC_CPYTHON_TIMEOUT:-300}
for v in jobs timeout_s; do
    if [[ ! ${!v} =~ ^[1-9][0-9]*$ ]]; then
        echo "cpython-suite.sh: $v must be a positive integer, not '${!v}'" >&2
        exit 2
    fi
done

# Nothing inherited may change what either side runs with.
unset LD_PRELOAD GLIBC_TUNABLES
for v in $(compgen -e); do
    case $v in MALLOC_* | OXMALLOC_* | PYTHON*) unset "$v" ;; esac
done
export LC_ALL=C.UTF-8 TZ=UTC
[[ -n $pythonmalloc ]] && export PYTHONMALLOC=$pythonmalloc

for tool in timeout realpath; do
    if ! command -v "$tool" >/dev/null; then
        echo "cpython-suite.sh: $tool is required" >&2
        exit 2
    fi
done

# --- The interpreter and its test suite ------------------------------------

if ! command -v "$py" >/dev/null; then
    echo "cpython-suite.sh: $py not found (set OXMALLOC_CPYTHON_PYTHON)" >&2
    exit 2
fi
# The interpreter itself, not a wrapper script (pyenv shims...).
exe=$("$py" -c 'import sys; print(sys.executable)' 2>/dev/null)
[[ -x $exe ]] && py=$exe || py=$(command -v "$py")
pyver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || {
    echo "cpython-suite.sh: $py does not run" >&2
    exit 2
}

has_suite() {
    "$py" -I -c 'import importlib.util as u, test.libregrtest
raise SystemExit(u.find_spec("test.test_list") is None)' 2>/dev/null
}

if ! has_suite; then
    pkg=
    if command -v dpkg >/dev/null && dpkg -S "$(realpath "$py")" >/dev/null 2>&1; then
        pkg=libpython$pyver-testsuite
    fi
    if [[ -z $pkg ]]; then
        echo "cpython-suite.sh: $py (Python $pyver) has no test suite (test.test_list), and it is not a Debian package's interpreter; use one that has it (OXMALLOC_CPYTHON_PYTHON)" >&2
        exit 2
    fi
    if (($(id -u) != 0)); then
        echo "cpython-suite.sh: $py has no test suite: install it with 'apt-get install $pkg' as root (or run this script as root)" >&2
        exit 2
    fi
    echo "# installing $pkg (the test suite of $py)"
    mkdir -p "$build"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg"; } >"$build/apt.log" 2>&1 ||
        ! has_suite; then
        echo "cpython-suite.sh: installing $pkg failed, or did not provide the test suite (see ${build#"$root"/}/apt.log)" >&2
        exit 2
    fi
fi

# --- The test list -----------------------------------------------------------

if ((${#explicit[@]})); then
    wanted=("${explicit[@]}")
elif ((long)); then
    wanted=("${default_tests[@]}" "${long_tests[@]}")
else
    wanted=("${default_tests[@]}")
fi
# Resolve "a|b" alternatives and drop what this Python does not have (and
# duplicates), in one interpreter start.
mapfile -t resolved < <("$py" -I - "${wanted[@]}" <<'EOF'
import importlib.util, sys
seen = set()
for group in sys.argv[1:]:
    for name in group.split("|"):
        if importlib.util.find_spec("test." + name) is not None:
            if name not in seen:
                seen.add(name)
                print(name)
            break
    else:
        print("!" + group)
EOF
)
tests=()
for t in "${resolved[@]}"; do
    if [[ $t == '!'* ]]; then
        if ((${#explicit[@]})); then
            echo "cpython-suite.sh: Python $pyver has no test ${t#!}" >&2
            exit 2
        fi
        echo "# not in Python $pyver's test suite, left out: ${t#!}"
    else
        tests+=("$t")
    fi
done
if ((!${#tests[@]})); then
    echo "cpython-suite.sh: no test to run" >&2
    exit 2
fi

# --- The library -------------------------------------------------------------

if [[ ! -f $lib ]]; then
    echo "cpython-suite.sh: library $lib not found (build it with 'cargo build --release'," \
        "or set OXMALLOC_LIB)" >&2
    exit 2
fi
lib=$(realpath "$lib")
case $lib in *[:\ ]*)
    echo "cpython-suite.sh: library path $lib contains ':' or a space, which LD_PRELOAD cannot express" >&2
    exit 2
    ;;
esac

echo "# python: $py (Python $("$py" -c 'import sys; print(sys.version.split()[0])'))"
echo "# library: $lib"
echo "# PYTHONMALLOC: ${pythonmalloc:-(interpreter default)}; -j$jobs; timeout per test file: ${timeout_s}s"
echo "# tests (${#tests[@]}): ${tests[*]}"

rm -rf "$build/glibc" "$build/oxmalloc" "$build/preload"
mkdir -p "$build/glibc" "$build/oxmalloc" "$build/preload"

# with_preload LIB PROGRAM [ARGS...]: run PROGRAM with LD_PRELOAD=LIB (none
# if LIB is empty), and only PROGRAM (not the `timeout` in front of it).
with_preload=(bash -c '[[ -n $0 ]] && export LD_PRELOAD=$0; exec "$@"')

# Under exactly the environment of the oxmalloc run: is the library mapped,
# and does malloc (as the dynamic linker resolves it for everyone) live in it?
# Without this, a library that ld.so refuses ("cannot be preloaded ...:
# ignored") would leave Python on glibc and every test passing.
timeout 60 "${with_preload[@]}" "$lib" "$py" -c '
import sys
lib = sys.argv[1]
maps = [l.split() for l in open("/proc/self/maps")]
ranges = [tuple(int(x, 16) for x in f[0].split("-")) for f in maps if len(f) >= 6 and f[5] == lib]
if not ranges:
    sys.exit("library not mapped in /proc/self/maps")
try:
    import ctypes
except ImportError:
    print("mapped (no ctypes: where malloc resolves not checked)")
    sys.exit(0)
addr = ctypes.cast(ctypes.CDLL(None).malloc, ctypes.c_void_p).value
if not any(lo <= addr < hi for lo, hi in ranges):
    sys.exit("library mapped, but malloc resolves to %#x, outside it" % addr)
print("mapped, malloc at %#x inside it" % addr)
' "$lib" >"$build/preload/out" 2>"$build/preload/err"
rc=$?
if ((rc != 0)) || [[ -s $build/preload/err ]]; then
    echo "not ok - preload: LD_PRELOAD=$lib $py is not running on the library (exit status $rc)"
    sed 's/^/#   /' "$build/preload/err" | head -n 10
    echo "cpython-suite: 0 passed, 1 failed"
    exit 1
fi
echo "# preload check: $(cat "$build/preload/out")"

# --- The runs ----------------------------------------------------------------

# run_side SIDE TOTAL_TIMEOUT: python -m test in tests/build/cpython/SIDE.
run_side() {
    local side=$1 total=$2 dir=$build/$1 pre=
    [[ $side == oxmalloc ]] && pre=$lib
    mkdir -p "$dir/work"
    local start=$SECONDS
    (cd "$dir/work" && timeout -k 30 "$total" "${with_preload[@]}" "$pre" \
        "$py" -m test -j"$jobs" -W --timeout "$timeout_s" "${tests[@]}") \
        >"$dir/regrtest.log" 2>&1 </dev/null
    local rc=$?
    echo "$rc" >"$dir/rc"
    echo $((SECONDS - start)) >"$dir/seconds"
    echo "# $side run: $((SECONDS - start))s, regrtest exit status $rc$( ((rc == 124 || rc == 137)) && echo " (killed after ${total}s)"), log in ${dir#"$root"/}/regrtest.log"
}

# Generous, but a hung main process must not hold the run forever.
run_side glibc $((timeout_s * ${#tests[@]} / jobs + 600))
glibc_s=$(cat "$build/glibc/seconds")
run_side oxmalloc $((4 * glibc_s + timeout_s + 120))

# --- The comparison ----------------------------------------------------------

"$py" -I - "$build" "${tests[@]}" <<'EOF'
import os
import re
import sys

build, wanted = sys.argv[1], sys.argv[2:]

# "0:00:03 load avg: 2.93 [ 6/70] test_unicode passed"; "[18/70/1] test_x
# failed (1 failure) -- running (1): ..." (the load average is optional).
RESULT = re.compile(r"^(?:\S+ )?(?:load avg: \S+ )?\[\s*\d+/\d+(?:/\d+)?\] (test_\S+) (.*)$")
END = re.compile(r"^== Tests result|^\d+ tests? (?:OK|failed)|^Total duration")
CASE = re.compile(r"^(FAIL|ERROR|UNEXPECTED SUCCESS): \S")


def wanted_root(name):
    for w in wanted:
        if name == w or name.startswith(w + "."):
            return w
    return None


DURATION = re.compile(r" \((?:[\d.]+ (?:hour|min|sec|ms) ?)+\)$")


def classify(text):
    text = re.sub(r" -- running.*$", "", text)
    # regrtest appends the duration of slow tests: "passed (32.9 sec)", and
    # "timed out (30.0 sec) (30.0 sec)". Keep one for timeouts only.
    if not text.startswith("timed out") or DURATION.search(DURATION.sub("", text)):
        text = DURATION.sub("", text)
    if text.startswith("passed"):
        return "passed", text
    if text.startswith("failed (env changed)"):
        return "env changed", text
    if text.startswith(("skipped", "ran no tests", "run no tests")):
        return "skipped", text
    if text.startswith(("crashed", "worker non-zero exit code", "worker bug")):
        return "crashed", text
    if text.startswith("timed out"):
        return "timed out", text
    return "failed", text  # failed (...), interrupted, anything unknown


def parse(side):
    """{name: (state, text, [FAIL/ERROR lines], [output lines])}, order, log"""
    path = os.path.join(build, side, "regrtest.log")
    try:
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    results, order, cur = {}, [], None
    for line in lines:
        m = RESULT.match(line)
        if m and wanted_root(m.group(1)):
            state, text = classify(m.group(2))
            cur = m.group(1)
            results[cur] = (state, text, [], [])
            order.append(cur)
            continue
        if END.match(line):
            cur = None
        if cur is not None:
            results[cur][3].append(line)
            if CASE.match(line):
                results[cur][2].append(line.rstrip())
    for name, (state, _, _, out) in results.items():
        if state != "passed" and out:
            os.makedirs(os.path.join(build, side, "tests"), exist_ok=True)
            with open(os.path.join(build, side, "tests", name + ".log"), "w") as f:
                f.write("\n".join(out) + "\n")
    return results, order, lines


glibc, g_order, _ = parse("glibc")
ox, o_order, ox_lines = parse("oxmalloc")

names = []
for w in wanted:
    for n in g_order + o_order:
        if wanted_root(n) == w and n not in names:
            names.append(n)
    if w not in names and not any(wanted_root(n) == w for n in names):
        names.append(w)  # reported by neither side

GOOD = {"passed", "env changed"}
MISSING = ("no result", "", [], [])


def excerpt(out, focus=None, limit=40):
    """The unittest error report (from the first FOCUS line's) if there is
    one, else a fatal error or traceback, else the end of the output."""
    start = next((i for i, l in enumerate(out) if l.startswith("=====")), None)
    if focus is not None and focus in out:
        i = out.index(focus)
        start = i - 1 if i > 0 and out[i - 1].startswith("=====") else i
    if start is None:
        for i, l in enumerate(out):
            if l.startswith(("Fatal Python error", "Traceback", "Warning -- ")):
                start = i
                break
    chunk = out[start:start + limit] if start is not None else out[-limit:]
    more = len(out) - (start or 0) - len(chunk) if start is not None else 0
    return chunk, more


def show(state, text):
    return text if text else state


passed = failed = 0
for name in names:
    g = glibc.get(name, MISSING)
    o = ox.get(name, MISSING)
    gs, os_ = g[0], o[0]
    both = "glibc: %s; oxmalloc: %s" % (show(gs, g[1]), show(os_, o[1]))
    bad, note, new_cases = False, "", []
    if gs in GOOD or gs == "skipped" or gs == "no result":
        if gs == "no result":
            note = "no result under glibc"
            bad = os_ not in GOOD and os_ != "skipped"
        elif gs == "skipped":
            bad = os_ not in GOOD and os_ != "skipped"
        else:
            bad = os_ not in GOOD
        if not bad and "env changed" in (gs, os_):
            note = "env changed"
    else:  # failed, crashed or timed out under glibc
        if os_ in GOOD or os_ == "skipped":
            note = "fails under glibc only"
        elif os_ == gs or (gs in ("crashed", "timed out") and os_ == "failed"):
            new_cases = [c for c in o[2] if c not in g[2]]
            if new_cases:
                bad = True
            else:
                note = "fails under glibc too"
        else:  # e.g. failed under glibc, crashed or hung under oxmalloc
            bad = True
    if bad:
        failed += 1
        print("not ok - %s (%s)" % (name, both))
        if new_cases:
            print("# failing only under oxmalloc:")
            for c in new_cases:
                print("#   " + c)
        saved = os.path.relpath(os.path.join(build, "oxmalloc", "tests", name + ".log"))
        if os_ == "no result":
            print("# no result line for it in the oxmalloc log%s; the log ends with:"
                  % (" (nor in the glibc log)" if gs == "no result" else ""))
            chunk, more = ox_lines[-20:], 0
        elif not o[3]:
            print("# (no output from its worker)")
            chunk, more = [], 0
        else:
            print("# its output (%s):" % saved)
            chunk, more = excerpt(o[3], new_cases[0] if new_cases else None)
        for l in chunk:
            print("#   " + l)
        if more > 0:
            print("#   ... (%d more lines)" % more)
    else:
        passed += 1
        print("ok - %s (%s)%s" % (name, both, " # " + note if note else ""))
        if note == "fails under glibc too" and g[2]:
            for c in g[2]:
                print("#   " + c)

print("cpython-suite: %d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
EOF
