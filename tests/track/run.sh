#!/usr/bin/env bash
# The tracker's tests: a test library with known amounts under each mode (figures checked from
# the json report and, decoded by `go tool pprof`, from the pprof one), the C test programs
# and real programs under tracking (same output as untracked, a report with the expected top
# library), and what must not break it (an unwritable --out, a file-size limit, bad snapshots).
#
#   tests/track/run.sh [--quick]       (--quick: skips the real programs)
#
# Prints "ok - ..." / "not ok - ..." lines and "track-tests: N passed, M failed".
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 2
quick=0
[ "${1:-}" = --quick ] && quick=1

lib=$root/target/release/liboxmalloc.so
cli=$root/target/release/oxmalloc
build=$root/tests/build
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
bad() { failed=$((failed + 1)); echo "not ok - $*"; }
expect() { # expect NAME COMMAND...: passes when the command succeeds
    local name=$1
    shift
    if "$@" >"$work/last.out" 2>&1; then ok "$name"; else
        bad "$name"
        tail -n 8 "$work/last.out" | sed 's/^/    | /'
    fi
}

mkdir -p "$build"
gcc -O2 -g -shared -fPIC -o "$build/libtrackee.so" tests/track/libtrackee.c -lpthread || exit 2
g++ -O2 -g -shared -fPIC -o "$build/libtrackee_cc.so" tests/track/libtrackee_cc.cc || exit 2
gcc -O2 -g -shared -fPIC -o "$build/libtrackee_dl.so" tests/track/libtrackee_dl.c || exit 2
gcc -O2 -g -pthread -o "$build/trackee" tests/track/trackee.c -L"$build" -ltrackee -ltrackee_cc \
    -ldl -Wl,-rpath,"$build" || exit 2

have_go=0
command -v go >/dev/null 2>&1 && have_go=1

# ---- the test library under each mode
for mode in full summary sample; do
    for scenario in all sample dlopen; do
        [ $scenario = sample ] && [ $mode = summary ] && continue
        [ $scenario = dlopen ] && [ $mode != full ] && continue
        out=$work/$mode-$scenario
        if ! timeout 120 env OXMALLOC_TRACK=$mode OXMALLOC_OUT=$out LD_PRELOAD=$lib \
            "$build/trackee" $scenario "$build/libtrackee_dl.so" >"$work/stdout" 2>"$work/stderr" ||
            ! grep -q "trackee done" "$work/stdout"; then
            bad "$mode/$scenario: trackee ran"
            sed 's/^/    | /' "$work/stderr" | tail -n 5
            continue
        fi
        ok "$mode/$scenario: trackee ran"
        if ! "$cli" report "$out" --format json -o "$out.json" 2>"$work/err"; then
            bad "$mode/$scenario: report --format json"
            sed 's/^/    | /' "$work/err"
            continue
        fi
        extra=()
        if [ $have_go = 1 ] && [ $mode = full ] && [ $scenario = all ]; then
            if "$cli" report "$out" --format pprof -o "$out.pb.gz" 2>"$work/err" &&
                go tool pprof -top -sample_index=inuse_space "$out.pb.gz" >"$out.top" 2>&1; then
                extra=("$out.top")
            else
                bad "$mode/$scenario: pprof written and read by go tool pprof"
                sed 's/^/    | /' "$work/err" "$out.top" 2>/dev/null | tail -n 5
            fi
        fi
        if python3 tests/track/check.py $mode $scenario "$out.json" "${extra[@]}" >"$work/check" 2>&1; then
            passed=$((passed + $(grep -c '^ok' "$work/check")))
            grep '^ok' "$work/check"
        else
            passed=$((passed + $(grep -c '^ok' "$work/check")))
            failed=$((failed + $(grep -c '^not ok' "$work/check")))
            grep -E '^(not ok|ok)|Traceback|Error' "$work/check"
        fi
        for fmt in text folded; do
            expect "$mode/$scenario: report --format $fmt" "$cli" report "$out" --format $fmt
        done
    done
done
[ $have_go = 1 ] || bad "go tool pprof not installed (scripts/test.sh installs golang-go)"

# ---- the text report names the libraries and the NMT-shaped totals
OXMALLOC_TRACK=full OXMALLOC_OUT=$work/text LD_PRELOAD=$lib "$build/trackee" all >/dev/null 2>&1
"$cli" report "$work/text" >"$work/text.txt" 2>&1
expect "text report: NMT-shaped total line" grep -qE '^Total: reserved=[0-9]+KB, committed=[0-9]+KB' "$work/text.txt"
expect "text report: libtrackee.so section" grep -q 'libtrackee.so' "$work/text.txt"
expect "text report: trk_big among the call sites" grep -q 'trk_big' "$work/text.txt"

# ---- oxmalloc run --track
if "$cli" run --track full --out "$work/runout" -- "$build/trackee" all >"$work/run.out" 2>"$work/run.err"; then
    ok "oxmalloc run --track full: command succeeded"
    expect "oxmalloc run --track: prints the Total line" grep -q '^Total: reserved=' "$work/run.err"
    expect "oxmalloc run --track: says where the files are" grep -q "oxmalloc report" "$work/run.err"
else
    bad "oxmalloc run --track full"
    tail -n 5 "$work/run.err" | sed 's/^/    | /'
fi
if "$cli" run --track bogus -- true >/dev/null 2>"$work/bogus.err"; then
    bad "oxmalloc run --track bogus is refused"
else
    ok "oxmalloc run --track bogus is refused"
fi

# ---- periodic snapshots
OXMALLOC_TRACK=sample OXMALLOC_TRACK_EVERY=1 OXMALLOC_OUT=$work/every LD_PRELOAD=$lib \
    python3 -c 'import time; x=[bytes(1000) for i in range(20000)]; time.sleep(2.5)' >/dev/null 2>&1
n=$(ls "$work/every" 2>/dev/null | grep -c '\.oxm$')
if [ "$n" -ge 3 ]; then ok "OXMALLOC_TRACK_EVERY=1: periodic snapshots ($n)"; else bad "periodic snapshots: $n files"; fi

# ---- what must not break the tracked program
OXMALLOC_TRACK=full OXMALLOC_OUT=/proc/no/such/dir LD_PRELOAD=$lib "$build/trackee" all >"$work/o" 2>"$work/e"
rc=$?
if [ $rc = 0 ] && grep -q "trackee done" "$work/o" && [ "$(grep -c 'cannot write the tracking snapshot' "$work/e")" = 1 ]; then
    ok "unwritable OXMALLOC_OUT: program succeeds, one line says why"
else
    bad "unwritable OXMALLOC_OUT: rc $rc; $(head -c 300 "$work/e")"
fi
mkdir -p "$work/fsize"
(ulimit -f 1; OXMALLOC_TRACK=full OXMALLOC_OUT=$work/fsize LD_PRELOAD=$lib "$build/trackee" all >"$work/o" 2>"$work/e")
rc=$?
left=$(ls -A "$work/fsize" | wc -l)
if [ $rc = 0 ] && grep -q "trackee done" "$work/o" && [ "$left" = 0 ]; then
    ok "file-size limit: program succeeds, nothing half-written"
else
    bad "file-size limit: rc $rc, $left files left; $(head -c 300 "$work/e")"
fi
OXMALLOC_TRACK=fulll LD_PRELOAD=$lib /bin/true 2>"$work/e"
rc=$?
if [ $rc = 0 ] && grep -q "OXMALLOC_TRACK=fulll" "$work/e"; then ok "bad OXMALLOC_TRACK: one line, program runs"; else bad "bad OXMALLOC_TRACK: rc $rc"; fi

# ---- bad snapshots: one line, non-zero exit
snap=$(ls "$work/full-all"/*.oxm | head -n 1)
head -c 2000 "$snap" >"$work/truncated.oxm"
printf 'hello\n' >"$work/notasnap.oxm"
sed '1s/.*/oxmalloc-snapshot 99/' "$snap" >"$work/future.oxm"
sed '20s/.*/site x y/' "$snap" >"$work/garbled.oxm"
for f in truncated notasnap future garbled; do
    if "$cli" report "$work/$f.oxm" >/dev/null 2>"$work/e"; then
        bad "report of a $f snapshot fails"
    elif [ "$(wc -l <"$work/e")" = 1 ]; then
        ok "report of a $f snapshot: one line, non-zero exit ($(cat "$work/e"))"
    else
        bad "report of a $f snapshot: $(wc -l <"$work/e") lines of error"
    fi
done
if "$cli" report "$work/no-such-dir" >/dev/null 2>"$work/e"; then bad "report of a missing path fails"; else ok "report of a missing path: $(cat "$work/e")"; fi

# ---- the C test programs under tracking (fork, threads, signals, exit). threadchurn is left
# out: its RSS bound (20,000 threads) does not allow for the tracker's 3 KiB per thread slot.
# full+harden: the hardened mode's canaries under the tracker (the hook runs inside malloc,
# before the canary is armed).
for variant in full sample full+harden; do
    mode=${variant%+harden}
    harden=0
    [ "$variant" != "$mode" ] && harden=1
    for prog in forktest forkstdio lifecycle sigfork stress; do
        [ $harden = 1 ] && [ "$prog" != forkstdio ] && [ "$prog" != stress ] && continue
        [ -x "$build/$prog" ] || gcc -O2 -pthread -Itests/c -o "$build/$prog" "tests/c/$prog.c" -ldl 2>/dev/null
        if timeout 300 env OXMALLOC_TRACK=$mode OXMALLOC_HARDEN=$harden OXMALLOC_OUT=$work/c-$variant-$prog LD_PRELOAD=$lib \
            "$build/$prog" >"$work/o" 2>&1 && grep -qE "^$prog: [0-9]+ passed, 0 failed" "$work/o"; then
            ok "$variant: tests/c/$prog passes under tracking"
        else
            bad "$variant: tests/c/$prog under tracking"
            grep -E '^not ok' "$work/o" | head -n 5 | sed 's/^/    | /'
            tail -n 3 "$work/o" | sed 's/^/    | /'
        fi
    done
done

# ---- real programs: same output as untracked, and the expected top library
real() { # real NAME TOPLIB-REGEX COMMAND... (top by bytes allocated in all)
    local name=$1 top=$2
    shift 2
    "$@" >"$work/plain.out" 2>/dev/null
    local prc=$?
    for mode in summary sample full; do
        rm -rf "$work/r"
        OXMALLOC_TRACK=$mode OXMALLOC_OUT=$work/r LD_PRELOAD=$lib "$@" >"$work/tracked.out" 2>/dev/null
        local trc=$?
        if [ $prc = $trc ] && cmp -s "$work/plain.out" "$work/tracked.out"; then
            ok "$name ($mode): same output and status as untracked"
        else
            bad "$name ($mode): status $prc vs $trc, or output differs"
        fi
        [ $mode = summary ] || [ $mode = full ] || continue
        local snapdir=$work/r
        if "$cli" report "$snapdir" --format json -o "$work/r.json" 2>"$work/e" &&
            python3 - "$work/r.json" "$top" <<'PY'
import json, re, sys
rep = json.load(open(sys.argv[1]))
libs = sorted(rep.get("libraries", []), key=lambda l: -l.get("total_bytes", 0))
names = [(l.get("name") or "").split("/")[-1] for l in libs]
sys.exit(0 if names and re.match(sys.argv[2], names[0]) else (print("top libraries:", names[:4]) or 1))
PY
        then ok "$name ($mode): top library $top"; else bad "$name ($mode): top library is not $top"; fi
    done
}
if [ $quick = 0 ]; then
    real python3 'python3|libpython3' python3 -c 'x = [str(i) * 20 for i in range(200000)]; print(len(x))'
    real git git git -C "$root" log --oneline -n 200
    printf 'int main(void){return 0;}\n' >"$work/t.c"
    real gcc '(x86_64-linux-gnu-)?(gcc|cc1|as)' gcc -c -o "$work/t.o" "$work/t.c"
    if command -v java >/dev/null; then
        real java libjvm java -Xshare:off -XX:+UseSerialGC -Xmx64m -version
    fi
fi

echo "track-tests: $passed passed, $failed failed"
[ $failed = 0 ]
