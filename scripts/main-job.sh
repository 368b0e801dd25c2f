#!/usr/bin/env bash
# The main job on a fresh machine: builds liboxmalloc and the oxmalloc command, then runs a
# real program (a Java 17 workload with threads, direct buffers and java.util.zip, and a
# Python workload) under oxmalloc with its malloc_stats report at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p oxmalloc-cabi -p oxmalloc-cli
OX=target/release/oxmalloc
mkdir -p tests/build
if command -v javac >/dev/null && [ -f tests/real/java/Workload.java ]; then
    javac -d tests/build tests/real/java/Workload.java
    echo "### java under oxmalloc"
    "$OX" run --stats -- java -Xmx256m -cp tests/build Workload
fi
echo "### python3 under oxmalloc"
"$OX" run --stats -- python3 tests/real/workload.py
# The same Java workload with the tracker on: the NMT-shaped summary is printed at exit, then
# the full report is read back from the snapshot.
if command -v javac >/dev/null && [ -f tests/build/Workload.class ]; then
    out=tests/build/track-java
    rm -rf "$out"
    echo "### java under oxmalloc with tracking (summary)"
    "$OX" run --track summary --out "$out" -- java -Xmx256m -cp tests/build Workload
    echo "### oxmalloc report $out --top 5"
    "$OX" report "$out" --top 5
fi
