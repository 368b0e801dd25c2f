#!/usr/bin/env bash
# Multi-thread scaling of the server workload (bench/workloads/server.c): a fixed amount of work
# (ITERS requests over a TABLE-entry shared table) split over 1, 2, 4 ... threads, under glibc
# and each allocator found, interleaved, RUNS times. Needs only bash and the built binaries, so
# it also runs as one prepared command on a lent many-core machine (see bench/README.md).
#
#   bench/scaling.sh OUT.tsv
#
# Environment: THREADS (default "1 2", or up to nproc), RUNS (3), ITERS (2000000), TABLE (65536),
# SERVER (bench/build/server), OXMALLOC_LIB (target/release/liboxmalloc.so), PEER_DIR (where
# libjemalloc.so.2, libmimalloc.so.2 and libtcmalloc_minimal.so.4 are; default the system's
# library directory). A library that does not load is reported and left out.
# Output: '#' lines describing the machine, then "allocator<TAB>threads<TAB>run<TAB>seconds".
# `python3 bench/run.py --docs-only` turns bench/results/scaling-*.tsv into tables.
set -u
cd "$(dirname "$0")/.." || exit 2
out=${1:?usage: bench/scaling.sh OUT.tsv}
n=$(nproc)
threads=${THREADS:-}
if [ -z "$threads" ]; then
    threads="1"; t=2
    while [ "$t" -le "$n" ]; do threads="$threads $t"; t=$((t * 2)); done
fi
runs=${RUNS:-3}; iters=${ITERS:-2000000}; table=${TABLE:-65536}
server=${SERVER:-bench/build/server}
ox=${OXMALLOC_LIB:-target/release/liboxmalloc.so}
case $ox in /*) ;; *) ox=$PWD/$ox ;; esac
peers=${PEER_DIR:-/usr/lib/x86_64-linux-gnu}
case $peers in /*) ;; *) peers=$PWD/$peers ;; esac
[ -x "$server" ] || { echo "scaling.sh: $server not built (python3 bench/run.py --smoke builds it)" >&2; exit 2; }

names=(glibc); libs=("")
for pair in jemalloc:libjemalloc.so.2 mimalloc:libmimalloc.so.2 tcmalloc:libtcmalloc_minimal.so.4 oxmalloc:; do
    name=${pair%%:*}; file=${pair#*:}
    lib=$ox; [ -n "$file" ] && lib=$peers/$file
    if err=$(LD_LIBRARY_PATH=$peers LD_PRELOAD=$lib /bin/true 2>&1) && [ -z "$err" ] && [ -f "$lib" ]; then
        names+=("$name"); libs+=("$lib")
    else
        echo "scaling.sh: $name left out: ${err:-$lib missing}" >&2
    fi
done

{
    echo "# date $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "# machine $n CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(uname -r), $(ldd --version 2>&1 | head -1)"
    echo "# workload server ITERS=$iters TABLE=$table threads: $threads; runs $runs; allocators: ${names[*]}"
    echo "# command THREADS=\"$threads\" RUNS=$runs ITERS=$iters TABLE=$table bench/scaling.sh"
} >"$out"
status=0
for r in $(seq "$runs"); do
    for t in $threads; do
        for i in "${!names[@]}"; do
            start=$EPOCHREALTIME
            if [ -n "${libs[$i]}" ]; then
                LD_LIBRARY_PATH=$peers LD_PRELOAD=${libs[$i]} "$server" "$iters" "$t" "$table" >/dev/null
            else
                "$server" "$iters" "$t" "$table" >/dev/null
            fi
            rc=$?
            end=$EPOCHREALTIME
            if [ $rc -ne 0 ]; then
                echo "scaling.sh: ${names[$i]} with $t threads exited $rc" >&2; status=1; continue
            fi
            s=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.4f", b - a }')
            printf '%s\t%s\t%s\t%s\n' "${names[$i]}" "$t" "$r" "$s" >>"$out"
            echo "run $r threads $t ${names[$i]} $s s"
        done
    done
done
exit $status
