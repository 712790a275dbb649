#!/usr/bin/env bash
# ab.sh - A/B two builds of libjobq on the jobq rows, rounds interleaved
# (A, B, A, B, ...) so that drift of the machine hits both alike.
#
#   bench/ab.sh DIR_A DIR_B [ROUNDS] [WORKLOAD ...]
#
# DIR_A, DIR_B: directories that each hold a libjobq.so (or libjobq.so.0), for
# instance copies of target/release/libjobq.so built from two revisions:
#
#   git stash && cargo build --release --lib && mkdir -p /tmp/a && cp target/release/libjobq.so /tmp/a/
#   git stash pop && cargo build --release --lib && mkdir -p /tmp/b && cp target/release/libjobq.so /tmp/b/
#   bench/ab.sh /tmp/a /tmp/b 3
#
# WORKLOAD: qbench arguments after the backend name (default: the four rows
# that matter most; -s 100 -c 2 -t 10 and a fresh directory are added).
# Prints the rates of every round per build; one qbench process per run.
# The harness must be built (`make -C bench`); the C API of both builds must
# match the header it was built with.
set -u -o pipefail

if [ $# -lt 2 ]; then
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
A="$1"
B="$2"
ROUNDS="${3:-3}"
shift 2
[ $# -gt 0 ] && shift
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
QBENCH="$HERE/build/qbench"
if [ ! -x "$QBENCH" ]; then
    echo "ab.sh: $QBENCH missing: run make -C $HERE" >&2
    exit 1
fi
if [ $# -gt 0 ]; then
    WORKLOADS=("$@")
else
    WORKLOADS=(
        "enqueue -p 1 -n 30000 -o durability=normal"
        "cycle -p 1 -n 30000 -o durability=normal"
        "cycle -p 1 -n 20000 -o durability=full"
        "enqueue -p 8 -n 30000 -o durability=full"
    )
fi

# qbench needs libjobq.so.0 (its soname) in the directory it is pointed at.
libdir() {
    local src="$1" dir
    dir="$(mktemp -d /tmp/jobq-ab-lib.XXXXXX)"
    if [ -f "$src/libjobq.so.0" ]; then
        cp "$src/libjobq.so.0" "$dir/"
    elif [ -f "$src/libjobq.so" ]; then
        cp "$src/libjobq.so" "$dir/libjobq.so.0"
    else
        echo "ab.sh: no libjobq.so(.0) in $src" >&2
        exit 1
    fi
    echo "$dir"
}
LA="$(libdir "$A")"
LB="$(libdir "$B")"
DATA="$(mktemp -d /tmp/jobq-ab-data.XXXXXX)"
trap 'rm -rf "$LA" "$LB" "$DATA"' EXIT

run() { # libdir workload...
    local lib="$1"
    shift
    rm -rf "${DATA:?}"/*
    # shellcheck disable=SC2086 # the workload is a word list on purpose
    LD_LIBRARY_PATH="$lib" timeout 60 "$QBENCH" jobq $* -s 100 -c 2 -t 10 -D "$DATA" 2>/dev/null |
        grep -o 'rate=[0-9]*' | cut -d= -f2
}

for w in "${WORKLOADS[@]}"; do
    ra=""
    rb=""
    for _ in $(seq 1 "$ROUNDS"); do
        ra="$ra $(run "$LA" "$w" || echo X)"
        rb="$rb $(run "$LB" "$w" || echo X)"
    done
    printf '%-45s | A:%s | B:%s\n' "$w" "$ra" "$rb"
done
