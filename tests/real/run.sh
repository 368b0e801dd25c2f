#!/usr/bin/env bash
# Real-program tests: run the same workload under glibc's malloc and under
# liboxmalloc (LD_PRELOAD), and require identical results (exit status,
# stdout and stderr, byte for byte).
#
# Usage (from anywhere; paths are relative to the repository root):
#   tests/real/run.sh [--glibc] [NAME...]
#
#   NAME     run only these programs: preload python3 java perl git gcc
#   --glibc  sanity check of the harness and of the workloads' determinism:
#            the "oxmalloc" side also runs on glibc (no LD_PRELOAD), so no
#            library is needed.
#
# Environment:
#   OXMALLOC_LIB            the library (default: target/release/liboxmalloc.so)
#   OXMALLOC_REAL_TIMEOUT   seconds allowed for each run (default: 300)
#
# Output: "ok - NAME", "ok - NAME # SKIP reason" (program not installed) or
# "not ok - NAME" followed by "# " lines with the details, and finally
# "real-programs: N passed, M failed". Exit status 0 when nothing failed, 1
# when something did, 2 on a usage error or a missing library. The outputs of
# every run are kept under tests/build/real/NAME/{glibc,oxmalloc}/.

set -u
set -o pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root" || exit 2

timeout_s=${OXMALLOC_REAL_TIMEOUT:-300}
build=$root/tests/build/real
real=$root/tests/real
all_names=(preload python3 java perl git gcc)

glibc_only=0
names=()
for arg in "$@"; do
    case $arg in
    --glibc) glibc_only=1 ;;
    -h | --help)
        sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    -*)
        echo "run.sh: unknown option $arg" >&2
        exit 2
        ;;
    *)
        if [[ " ${all_names[*]} " != *" $arg "* ]]; then
            echo "run.sh: unknown program $arg (known: ${all_names[*]})" >&2
            exit 2
        fi
        names+=("$arg")
        ;;
    esac
done
((${#names[@]})) || names=("${all_names[@]}")

# Nothing inherited may change what either side runs with.
unset LD_PRELOAD OXMALLOC_STATS_AT_EXIT MALLOC_CHECK_ MALLOC_PERTURB_ GLIBC_TUNABLES
unset PYTHONMALLOC PYTHONSTARTUP PYTHONPATH PERL5OPT PERL5LIB JAVA_TOOL_OPTIONS _JAVA_OPTIONS JDK_JAVA_OPTIONS
export LC_ALL=C TZ=UTC

if ((glibc_only)); then
    lib=
    echo "# glibc-vs-glibc sanity run: both sides use glibc's malloc"
else
    lib=${OXMALLOC_LIB:-target/release/liboxmalloc.so}
    if [[ ! -f $lib ]]; then
        echo "run.sh: library $lib not found (build it with 'cargo build --release -p oxmalloc-cabi'," \
            "set OXMALLOC_LIB, or pass --glibc for a glibc-vs-glibc sanity run)" >&2
        exit 2
    fi
    lib=$(realpath "$lib")
    case $lib in *[:\ ]*)
        echo "run.sh: library path $lib contains ':' or a space, which LD_PRELOAD cannot express" >&2
        exit 2
        ;;
    esac
    echo "# library: $lib"
fi
echo "# timeout per run: ${timeout_s}s"

for tool in timeout sha256sum diff; do
    if ! command -v "$tool" >/dev/null; then
        echo "run.sh: $tool is required" >&2
        exit 2
    fi
done

passed=0
failed=0

ok() {
    echo "ok - $1${2:+ # SKIP $2}"
    passed=$((passed + 1))
}

not_ok() {
    echo "not ok - $1"
    failed=$((failed + 1))
}

# Print a file's first lines as TAP diagnostics.
diag_file() { # FILE MAXLINES
    sed -n "1,${2}p" "$1" | sed 's/^/#   /'
    local n
    n=$(wc -l <"$1")
    ((n > $2)) && echo "#   ... ($((n - $2)) more lines)"
    return 0
}

describe_rc() { # RC
    local rc=$1
    if ((rc == 124)); then
        echo "timed out after ${timeout_s}s"
    elif ((rc > 128)); then
        echo "exit status $rc (killed by SIG$(kill -l $((rc - 128)) 2>/dev/null || echo $((rc - 128))))"
    else
        echo "exit status $rc"
    fi
}

missing() { # TOOL... -> prints the first one not installed
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null || {
            echo "$t not installed"
            return 0
        }
    done
    return 1
}

# run_side SIDE DIR FUNCTION [ARGS...]: run a workload function (below) for
# one side under `timeout`, with $PRELOAD set to what the workload's programs
# must get in LD_PRELOAD; stdout and stderr go to DIR/out and DIR/err, the
# exit status to DIR/rc.
run_side() {
    local side=$1 dir=$2 fn=$3
    shift 3
    local pre=
    [[ $side == oxmalloc ]] && pre=$lib
    rm -rf "$dir"
    mkdir -p "$dir/work"
    PRELOAD=$pre WORK=$dir/work timeout -k 10 "$timeout_s" \
        bash -c "$fn"' "$@"' "$fn" "$@" >"$dir/out" 2>"$dir/err" </dev/null
    local rc=$?
    echo "$rc" >"$dir/rc"
    return "$rc"
}

# compare NAME SLUG FUNCTION [ARGS...]: the test proper.
compare() {
    local name=$1 slug=$2 fn=$3
    shift 3
    local base=$build/$slug/glibc ox=$build/$slug/oxmalloc
    local brc orc
    run_side glibc "$base" "$fn" "$@"
    brc=$?
    run_side oxmalloc "$ox" "$fn" "$@"
    orc=$?
    if ((brc != 0)); then
        not_ok "$name"
        echo "# the glibc (baseline) run failed: $(describe_rc "$brc")"
        diag_file "$base/err" 20
        return
    fi
    local bad=0 stream label
    {
        if ((orc != brc)); then
            bad=1
            echo "# under oxmalloc: $(describe_rc "$orc") (glibc: exit status 0)"
        fi
        for stream in out err; do
            if ! cmp -s "$base/$stream" "$ox/$stream"; then
                bad=1
                label=stdout
                [[ $stream == err ]] && label=stderr
                echo "# $label differs (- glibc, + oxmalloc):"
                diff -u --label glibc --label oxmalloc "$base/$stream" "$ox/$stream" >"$ox/$stream.diff"
                diag_file "$ox/$stream.diff" 40
            fi
        done
        ((bad)) && echo "# outputs kept in ${base#"$root"/} and ${ox#"$root"/}"
    } >"$ox/diag"
    if ((bad)); then
        not_ok "$name"
        cat "$ox/diag"
    else
        ok "$name"
    fi
}

# ---------------------------------------------------------------------------
# Workloads. Each runs in a child bash (under timeout), with $PRELOAD and
# $WORK set, and applies LD_PRELOAD=$PRELOAD to the programs under test only.
# ---------------------------------------------------------------------------

wl_python() { # INTERPRETER [PYTHONMALLOC]
    [[ -n ${2:-} ]] && export PYTHONMALLOC=$2
    LD_PRELOAD=$PRELOAD PYTHONHASHSEED=0 "$1" "$REAL/workload.py"
}

wl_java() {
    LD_PRELOAD=$PRELOAD javac -J-Xmx256m -encoding UTF-8 -d "$WORK/classes" \
        "$REAL/java/Workload.java" || return
    # javac's output must not depend on the allocator either.
    (cd "$WORK/classes" && sha256sum -- *.class)
    LD_PRELOAD=$PRELOAD java -Xmx256m -cp "$WORK/classes" Workload
}

wl_perl() {
    LD_PRELOAD=$PRELOAD PERL_HASH_SEED=42 PERL_PERTURB_KEYS=0 \
        perl "$REAL/workload.pl"
}

wl_git() {
    GIT_WORKLOAD_PRELOAD=$PRELOAD bash "$REAL/git-workload.sh" "$WORK"
}

wl_gcc() {
    # Same relative source path on both sides: it is recorded in the object.
    (cd "$REAL/../.." &&
        LD_PRELOAD=$PRELOAD gcc -O2 -Wall -Wextra -c tests/real/sample.c -o "$WORK/sample.o") || return
    LD_PRELOAD=$PRELOAD gcc -O2 "$WORK/sample.o" -o "$WORK/sample" || return
    (cd "$WORK" && sha256sum sample.o sample)
    LD_PRELOAD=$PRELOAD "$WORK/sample"
}

export -f wl_python wl_java wl_perl wl_git wl_gcc
export REAL=$real

# ---------------------------------------------------------------------------

run_preload() {
    # Without this, a library that ld.so refuses ("cannot be preloaded ...:
    # ignored") would leave every program on glibc and every test passing.
    local dir=$build/preload
    rm -rf "$dir" && mkdir -p "$dir"
    timeout "$timeout_s" env LD_PRELOAD="$lib" cat /proc/self/maps >"$dir/maps" 2>"$dir/err"
    local rc=$?
    if ((rc == 0)) && [[ ! -s $dir/err ]] && grep -qF " $lib" "$dir/maps"; then
        ok "preload"
    else
        not_ok "preload"
        echo "# LD_PRELOAD=$lib cat /proc/self/maps: $(describe_rc "$rc")," \
            "library $(grep -qF " $lib" "$dir/maps" || echo "NOT ")mapped"
        if [[ -s $dir/err ]]; then
            echo "# stderr:"
            diag_file "$dir/err" 10
        fi
    fi
}

for name in "${names[@]}"; do
    case $name in
    preload)
        ((glibc_only)) || run_preload
        ;;
    python3)
        if why=$(missing python3); then
            ok "python3" "$why"
            ok "python3 PYTHONMALLOC=malloc" "$why"
            continue
        fi
        # The interpreter itself, not a wrapper script (pyenv shims...).
        py=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null)
        [[ -x $py ]] || py=$(command -v python3)
        compare "python3" python3 wl_python "$py"
        compare "python3 PYTHONMALLOC=malloc" python3-malloc wl_python "$py" malloc
        ;;
    java)
        if why=$(missing java javac); then ok "java" "$why"; continue; fi
        compare "java" java wl_java
        ;;
    perl)
        if why=$(missing perl); then ok "perl" "$why"; continue; fi
        compare "perl" perl wl_perl
        ;;
    git)
        if why=$(missing git); then ok "git" "$why"; continue; fi
        compare "git" git wl_git
        ;;
    gcc)
        if why=$(missing gcc); then ok "gcc" "$why"; continue; fi
        compare "gcc" gcc wl_gcc
        ;;
    esac
done

echo "real-programs: $passed passed, $failed failed"
((failed == 0))
