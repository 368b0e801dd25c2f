#!/usr/bin/env bash
# The whole test suite on a fresh machine: builds everything, checks formatting and clippy
# (warnings are errors), then runs the Rust unit and integration tests, a fuzz slice, the C
# conformance/regions/stress/fork/thread-churn/OOM/abuse/chaos programs under LD_PRELOAD, the
# tracker's tests (tests/track/run.sh), real
# programs and CPython's own regression tests compared with glibc, and the benchmark runners'
# smoke checks (the LD_PRELOAD suite, and the Rust front end's criterion benchmarks run once
# each).
# Prints one summary line "tests: N passed, M failed" and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TERM_COLOR=never

need() { command -v "$1" >/dev/null 2>&1; }
missing=()
for tool in gcc python3 perl git; do need "$tool" || missing+=("$tool"); done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    (apt-get update -qq && apt-get install -y -qq gcc python3 perl git) >/dev/null
fi

# The tracker's tests need a C++ compiler (operator new in the test library) and Go's pprof
# (the real reader of the pprof files).
need g++ || (apt-get update -qq && apt-get install -y -qq g++) >/dev/null
need go || (apt-get update -qq && apt-get install -y -qq golang-go) >/dev/null

passed=0; failed=0; failures=()
suite() {
    local name=$1; shift
    echo "=== $name: $*"
    local start=$SECONDS
    if "$@"; then
        passed=$((passed + 1)); echo "=== $name: ok ($((SECONDS - start)) s)"
    else
        failed=$((failed + 1)); failures+=("$name"); echo "=== $name: FAILED ($((SECONDS - start)) s)"
    fi
}

suite build cargo build --release --workspace
lint() {
    if ! cargo clippy --version >/dev/null 2>&1 || ! cargo fmt --version >/dev/null 2>&1; then
        rustup component add clippy rustfmt >/dev/null 2>&1 || return 1
    fi
    cargo fmt --all -- --check &&
        cargo fmt --manifest-path bench/rust/Cargo.toml -- --check &&
        cargo clippy --release --workspace --all-targets -- -D warnings
}
suite lint lint
export OXMALLOC_LIB=$ROOT/target/release/liboxmalloc.so
suite rust-tests cargo test --release --workspace
suite fuzz-slice bash -c 'target/release/oxmalloc-fuzz --seconds 20 --seed 1 --threads 4 &&
    OXMALLOC_HARDEN=1 target/release/oxmalloc-fuzz --seconds 10 --seed 2 --threads 4'
suite c-programs bash tests/c/run.sh
suite tracking bash tests/track/run.sh
suite real-programs bash tests/real/run.sh
suite cpython-suite bash tests/real/cpython-suite.sh
if [ -f bench/run.py ]; then
    suite track-overhead-smoke python3 bench/track/overhead.py --quick
    suite bench-smoke bash -c 'python3 bench/run.py --smoke &&
        THREADS="1 2" RUNS=1 ITERS=20000 TABLE=1024 bash bench/scaling.sh "$(mktemp)"'
    suite rust-bench-smoke python3 bench/run.py --smoke --rust
fi

echo
((failed)) && echo "failed suites: ${failures[*]}"
echo "tests: $passed passed, $failed failed"
((failed == 0))
