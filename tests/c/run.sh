#!/usr/bin/env bash
# Build and run the C-level test programs, under glibc's malloc and under
# oxmalloc (LD_PRELOAD).  Run from anywhere; paths are relative to the repo.
#
#   tests/c/run.sh [--oxmalloc-only | --glibc-only] [program ...]
#
# Environment:
#   OXMALLOC_LIB   library to preload (default target/release/liboxmalloc.so)
#   OXMALLOC_ONLY=1 / GLIBC_ONLY=1   same as the flags
#   CC, CFLAGS     compiler and extra flags (default gcc)
#   TEST_TIMEOUT   seconds per program run (default 120)
#
# Prints each run's summary line and ends with "c-tests: N passed, M failed"
# (counting runs); exits non-zero if any build or run failed.  A missing
# library counts as a failed oxmalloc run (LD_PRELOAD of a missing file would
# silently test glibc instead).
set -u

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 2

src=tests/c
build=tests/build
cc=${CC:-gcc}
timeout_s=${TEST_TIMEOUT:-120}
run_glibc=1
run_ox=1
[ "${OXMALLOC_ONLY:-0}" = 1 ] && run_glibc=0
[ "${GLIBC_ONLY:-0}" = 1 ] && run_ox=0

progs=()
for arg in "$@"; do
    case $arg in
    --oxmalloc-only) run_glibc=0 ;;
    --glibc-only) run_ox=0 ;;
    -h | --help)
        sed -n '2,17p' "$0"
        exit 0
        ;;
    -*)
        echo "run.sh: unknown option $arg" >&2
        exit 2
        ;;
    *) progs+=("$arg") ;;
    esac
done
[ ${#progs[@]} -eq 0 ] && progs=(conformance regions stress forktest forkstdio threadchurn lifecycle tunables mxfast mcheck sigfork glibcedge abuse oom chaos)

lib=${OXMALLOC_LIB:-target/release/liboxmalloc.so}
case $lib in /*) ;; *) lib=$root/$lib ;; esac

# Programs also run with OXMALLOC_HARDEN=1.
harden_progs="conformance stress forktest forkstdio threadchurn lifecycle oom"

passed=0
failed=0
mkdir -p "$build"
logdir=$build/logs
mkdir -p "$logdir"

# run_one NAME LABEL [PRELOAD [ENV=VALUE... -- ARGS...]]: run one program, print its summary.
run_one() {
    local name=$1 label=$2 preload=${3:-}
    shift 3 2>/dev/null || shift $#
    local envs=() args=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    args=("$@")
    local tag=$label
    [ ${#envs[@]} -gt 0 ] && tag="$label.$(printf '%s' "${envs[*]}" | tr -c 'A-Za-z0-9_.' '_')"
    local log=$logdir/$name.$tag.log rc
    if [ -n "$preload" ]; then
        timeout "$timeout_s" env LD_PRELOAD="$preload" "${envs[@]}" "$build/$name" "${args[@]}" >"$log" 2>&1
    else
        timeout "$timeout_s" env "${envs[@]}" "$build/$name" "${args[@]}" >"$log" 2>&1
    fi
    rc=$?
    local summary
    summary=$(grep -E "^$name: [0-9]+ passed, [0-9]+ failed$" "$log" | tail -n 1)
    if [ $rc -eq 0 ] && [ -n "$summary" ]; then
        passed=$((passed + 1))
        printf '%-8s %-12s PASS  %s\n' "$tag" "$name" "$summary"
    else
        failed=$((failed + 1))
        local why="exit status $rc"
        [ $rc -eq 124 ] && why="timed out after ${timeout_s}s"
        [ $rc -gt 128 ] && [ $rc -ne 124 ] && why="killed by signal $((rc - 128))"
        printf '%-8s %-12s FAIL  %s (%s; log: %s)\n' "$tag" "$name" \
            "${summary:-no summary line}" "$why" "$log"
        # Show what went wrong: failed checks and the tail of the output.
        grep -E '^not ok' "$log" | head -n 20 | sed 's/^/    /'
        tail -n 5 "$log" | sed 's/^/    | /'
    fi
}

for name in "${progs[@]}"; do
    if [ ! -f "$src/$name.c" ]; then
        echo "run.sh: no such test program: $src/$name.c" >&2
        failed=$((failed + 1))
        continue
    fi
    # shellcheck disable=SC2086
    if ! $cc -O2 -pthread -Wall -Wextra ${CFLAGS:-} -I"$src" \
        -o "$build/$name" "$src/$name.c" -ldl; then
        echo "build    $name FAIL"
        failed=$((failed + 1))
        continue
    fi
    # tunables runs once per environment: "ENV... -- EXPECT_MMAP ARENAS" (see tunables.c).
    variants=("-- 1 0")
    [ "$name" = tunables ] && variants=(
        "-- 1 0"
        "MALLOC_MMAP_THRESHOLD_=4194304 -- 0 0"
        "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4194304 -- 0 0"
        "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4x94304 -- 1 0"
        "MALLOC_ARENA_MAX=1 -- 1 1"
        "GLIBC_TUNABLES=glibc.malloc.arena_max=2 -- 1 2"
    )
    [ "$name" != tunables ] && variants=("--")
    # mxfast: with the thread cache off, the default fast bins (1) and glibc.malloc.mxfast=0 (0).
    [ "$name" = mxfast ] && variants=(
        "--"
        "GLIBC_TUNABLES=glibc.malloc.tcache_count=0 -- 1"
        "GLIBC_TUNABLES=glibc.malloc.tcache_count=0:glibc.malloc.mxfast=0 -- 0"
    )
    # chaos: a bounded CI slice (SECONDS THREADS); CHAOS_SECONDS=N runs it longer.
    [ "$name" = chaos ] && variants=("-- ${CHAOS_SECONDS:-8} 4")
    # sigfork is oxmalloc-only: glibc 2.36 itself corrupts its heap in such children
    # ("malloc(): unsorted double linked list corrupted"), so there is no baseline to match.
    # forkstdio's part 2 (forks from signal handlers inside malloc): glibc 2.36's own handler
    # children die of its heap corruption, as in sigfork: glibc runs parts 1 and 3 only.
    glibc_variants=("${variants[@]}")
    [ "$name" = forkstdio ] && glibc_variants=("-- 300 0")
    # mcheck: glibc checks (and reports exact usable sizes) only with its debug library
    # preloaded; oxmalloc turns MALLOC_CHECK_=2/3 and glibc.malloc.check=3 into its hardened mode.
    if [ "$name" = mcheck ]; then
        dbg=$(ls /lib/x86_64-linux-gnu/libc_malloc_debug.so.0 /usr/lib/x86_64-linux-gnu/libc_malloc_debug.so.0 2>/dev/null | head -n 1)
        glibc_variants=("-- 0")
        [ -n "$dbg" ] && glibc_variants+=("LD_PRELOAD=$dbg MALLOC_CHECK_=3 -- 1"
            "LD_PRELOAD=$dbg GLIBC_TUNABLES=glibc.malloc.check=3 -- 1")
        variants=("-- 0" "MALLOC_CHECK_=1 -- 0" "MALLOC_CHECK_=3 -- 1" "MALLOC_CHECK_=2 -- 1"
            "GLIBC_TUNABLES=glibc.malloc.check=3 -- 1")
    fi
    for v in "${glibc_variants[@]}"; do
        # shellcheck disable=SC2086
        [ $run_glibc = 1 ] && [ "$name" != sigfork ] && run_one "$name" glibc "" $v
    done
    if [ $run_ox = 1 ]; then
        if [ -f "$lib" ]; then
            for v in "${variants[@]}"; do
                # shellcheck disable=SC2086
                run_one "$name" oxmalloc "$lib" $v
            done
            # The same programs must also pass in the hardened mode (oxmalloc only).
            case " $harden_progs " in
            *" $name "*) run_one "$name" oxmalloc "$lib" OXMALLOC_HARDEN=1 -- ;;
            esac
        else
            printf '%-8s %-12s FAIL  library %s not found\n' oxmalloc "$name" "$lib"
            failed=$((failed + 1))
        fi
    fi
done

echo "c-tests: $passed passed, $failed failed"
[ $failed -eq 0 ]
