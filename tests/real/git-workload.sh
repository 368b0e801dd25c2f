#!/usr/bin/env bash
# git workload for tests/real/run.sh.
#
# Usage: git-workload.sh WORKDIR
#
# Builds a repository in WORKDIR/repo with fixed names and dates, so commit,
# tree and blob hashes are the same on every run, and prints them. git (and
# every process git starts) runs with LD_PRELOAD=$GIT_WORKLOAD_PRELOAD; the
# shell and the helper tools (sed, sort, md5sum...) use the normal malloc,
# so a difference points at git itself.
set -euo pipefail

work=${1:?usage: git-workload.sh WORKDIR}
mkdir -p "$work"
cd "$work"
rm -rf repo clone
mkdir repo
cd repo

# Isolation from the user's and the system's configuration.
export HOME=$work GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export LC_ALL=C TZ=UTC GIT_PAGER=cat PAGER=cat
export GIT_AUTHOR_NAME="Ox Malloc" GIT_AUTHOR_EMAIL="ox@example.org"
export GIT_COMMITTER_NAME="Ox Malloc" GIT_COMMITTER_EMAIL="ox@example.org"
unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE

preload=${GIT_WORKLOAD_PRELOAD:-}
g() { LD_PRELOAD=$preload git "$@"; }

tick=1700000000
commit() {
    tick=$((tick + 3600))
    GIT_AUTHOR_DATE="$tick +0000" GIT_COMMITTER_DATE="$tick +0000" \
        g commit -q "$@"
}

g init -q -b main .
g config user.name "Ox Malloc"
g config user.email "ox@example.org"
g config core.autocrlf false
g config gc.auto 0
g config pack.threads 1

# A tree of text files, plus a few larger ones.
mkdir -p src/core src/util docs data
for i in $(seq 1 120); do
    d=src/core
    ((i % 3 == 0)) && d=src/util
    ((i % 7 == 0)) && d=docs
    {
        echo "// file $i"
        for j in $(seq 1 $((20 + i % 40))); do
            echo "line $j of file $i: value $((i * j * 2654435761 % 1000003))"
        done
    } >"$d/file$i.txt"
done
seq 1 200000 | sed 's/$/ the quick brown fox/' >data/big.txt
awk 'BEGIN { for (i = 0; i < 65536; i++) printf "%c", 1 + (i * 7919) % 251 }' </dev/null >data/binary.bin
g add -A
commit -m "initial import"

# A series of commits touching many files.
path_of() { # the current path of fileN.txt, if it still exists
    local d
    for d in src/core src/util docs; do
        [[ -e $d/file$1.txt ]] && { echo "$d/file$1.txt"; return 0; }
    done
    return 1
}
for c in $(seq 1 12); do
    for i in $(seq $c 5 120); do
        f=$(path_of "$i") || continue
        sed -i "s/^line $((c % 20 + 1)) of /LINE $((c % 20 + 1)) (commit $c) of /" "$f"
        echo "appended in commit $c" >>"$f"
    done
    sed -i "$((c * 1000)),$((c * 1000 + 500))d" data/big.txt
    if ((c % 4 == 0)); then
        g mv "$(path_of $((c * 7)))" "docs/renamed$c.txt"
    fi
    if ((c % 5 == 0)); then
        g rm -q "$(path_of $((c + 1)))"
    fi
    g add -A
    commit -m "commit $c: edit files $c..120 step 5"
done

# A branch and a merge.
g checkout -q -b feature HEAD~3
for i in 1 2 3; do
    echo "feature work $i" >"src/feature$i.txt"
    g add -A
    commit -m "feature $i"
done
g checkout -q main
tick=$((tick + 3600))
GIT_AUTHOR_DATE="$tick +0000" GIT_COMMITTER_DATE="$tick +0000" \
    g merge -q --no-ff -m "merge feature" feature
GIT_COMMITTER_DATE="$tick +0000" g tag -a v1.0 -m "release 1.0"

echo "== log"
g log --format='%H %s' --topo-order
echo "== counts"
g rev-list --count HEAD
g rev-list --count --all
g rev-list --count main..feature
g rev-list --count feature..main
echo "== objects"
g cat-file -p HEAD
g cat-file -t v1.0
g rev-parse HEAD^{tree} HEAD~5^{tree} v1.0 HEAD:data/big.txt
g cat-file -s HEAD:data/big.txt
g cat-file -p HEAD:src | sed -n '1,5p'
g ls-tree -r HEAD | md5sum
echo "== diff"
g diff --stat HEAD~10 HEAD | tail -n 3
g diff HEAD~6 HEAD~2 | md5sum
g log -p --stat --format='%H%n%an <%ae> %ad%n%B' --date=raw | md5sum
g log --follow --format=%s -- docs/renamed8.txt | sed -n '1,3p'
echo "== blame / grep"
g blame --porcelain src/util/file9.txt | md5sum
g grep -c 'commit 7' | sort | md5sum
g grep -n 'value 12' -- '*.txt' | wc -l
echo "== gc, fsck, clone"
g gc -q
# With pack.threads=1 the pack (and so its name) is deterministic too.
(cd .git/objects/pack && echo *.pack)
g count-objects -v | grep -E '^(count|in-pack|packs)'
g fsck --full --strict 2>&1 | sort
g log --format='%h %s' | md5sum
cd ..
g clone -q --no-local repo clone
cd clone
g rev-parse HEAD
g ls-files | wc -l
g status --porcelain | wc -l
echo "git workload done"
