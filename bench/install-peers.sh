#!/usr/bin/env bash
# Idempotently install the peer allocators and the tools the benchmark suite
# needs (Debian/Ubuntu).  Runs `apt-get update` only when something is missing.
# Prints the shared-object paths it found, one "name=path" per line.
#
#   bench/install-peers.sh            install what is missing, print paths
#   bench/install-peers.sh --check    install nothing, print paths (exit 1 if any missing)
set -euo pipefail

CHECK_ONLY=0
[[ "${1:-}" == "--check" ]] && CHECK_ONLY=1

# mimalloc's Debian package name carries the ABI version; pick whichever the
# archive knows (Debian 12: libmimalloc2.0).
pick_mimalloc_pkg() {
    local p
    for p in libmimalloc2.0 libmimalloc2 libmimalloc3; do
        if dpkg -s "$p" >/dev/null 2>&1; then echo "$p"; return; fi
    done
    for p in libmimalloc2.0 libmimalloc2 libmimalloc3; do
        if apt-cache show "$p" >/dev/null 2>&1; then echo "$p"; return; fi
    done
    echo libmimalloc2.0
}

PKGS=(libjemalloc2 "$(pick_mimalloc_pkg)" libtcmalloc-minimal4 redis-server redis-tools valgrind)

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if (( ${#missing[@]} )) && (( ! CHECK_ONLY )); then
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
    echo "install-peers: installing: ${missing[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    # redis-server's package may start a system service; the suite starts its
    # own server on a random port, so stop the packaged one if it came up.
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then
        $SUDO systemctl stop redis-server || true
    fi
fi

# Locate the shared objects (multiarch dir first, then anything ldconfig knows).
find_so() {
    local pat="$1" f
    for f in /usr/lib/x86_64-linux-gnu/$pat /usr/lib64/$pat /usr/lib/$pat /usr/local/lib/$pat; do
        [[ -e "$f" ]] && { echo "$f"; return 0; }
    done
    f=$(ldconfig -p 2>/dev/null | awk -v p="${pat%%\**}" '$1 ~ "^"p {print $NF; exit}')
    [[ -n "$f" ]] && { echo "$f"; return 0; }
    return 1
}

rc=0
report() {
    local name="$1"; shift
    local path=""
    for pat in "$@"; do path=$(find_so "$pat") && break; done
    if [[ -n "$path" ]]; then echo "$name=$path"; else echo "$name=MISSING"; rc=1; fi
}
report jemalloc 'libjemalloc.so.2' 'libjemalloc.so*'
report mimalloc 'libmimalloc.so.2' 'libmimalloc.so*'
report tcmalloc 'libtcmalloc_minimal.so.4' 'libtcmalloc_minimal.so*'
for t in redis-server redis-benchmark valgrind; do
    if p=$(command -v "$t"); then echo "$t=$p"; else echo "$t=MISSING"; rc=1; fi
done
exit $rc
