#!/usr/bin/env bash
# ABI guard: compares this build's libjobq.so with the 0.1.0 release's, with
# libabigail's abidiff, and fails on an incompatible change of the C ABI
# (a removed or changed jobq_* function, a changed public type). Additions
# are fine. See docs/abi.md for the policy this enforces.
#
#   scripts/abi-check.sh [NEW_SO]
#
# NEW_SO defaults to target/release/libjobq.so (built first with
# `cargo build --release --lib` when missing). The 0.1.0 library is built
# once from git (tag v0.1.0, else the commit recorded below: a clone may come
# without tags) in a private target dir and cached under target/abi/, so a
# second run only runs abidiff.
#
# Both libraries need DWARF type information for the type checks: the
# release profile's debug = 1 ("limited") has none, so this script builds
# with CARGO_PROFILE_RELEASE_DEBUG=2 when it builds; a NEW_SO without types
# is still compared by its symbols, and the script says so.
#
# JOBQ_ABI_BASE_PROFILE=dev builds the 0.1.0 library with cargo's dev
# profile instead of release (full DWARF, no optimisation: about a third of
# the build time; the C ABI does not depend on the optimisation level).
# .ci/run uses it, comparing with the test build's target/debug/deps/libjobq.so.
#
# Needs abidiff (Debian: abigail-tools; scripts/install-deps.sh installs it).
# Exit status: 0 compatible (additions allowed), 1 incompatible or an error.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# 0.1.0: the last commit before the storage-seam / PostgreSQL work began
# (2e1688b "Storage seam: ..." is its first commit; this is its parent).
BASE_TAG=v0.1.0
BASE_COMMIT=9d4245ebca3e07aab1d270a378a7d28e55f38fe9

command -v abidiff >/dev/null || { echo "abi-check: abidiff not found: run scripts/install-deps.sh (Debian: abigail-tools)" >&2; exit 1; }

base_rev=$BASE_COMMIT
if git rev-parse -q --verify "refs/tags/$BASE_TAG^{commit}" >/dev/null; then
    base_rev=$(git rev-parse "refs/tags/$BASE_TAG^{commit}")
    [ "$base_rev" = "$BASE_COMMIT" ] || echo "abi-check: note: tag $BASE_TAG is $base_rev, not the recorded $BASE_COMMIT; using the tag"
elif ! git cat-file -e "$BASE_COMMIT^{commit}" 2>/dev/null; then
    echo "abi-check: neither tag $BASE_TAG nor commit $BASE_COMMIT is in this clone (a shallow clone?): git fetch --tags, or unshallow" >&2
    exit 1
fi

profile=${JOBQ_ABI_BASE_PROFILE:-release}
case $profile in
    release) profile_flag=--release; profile_dir=release ;;
    dev) profile_flag=; profile_dir=debug ;;
    *) echo "abi-check: JOBQ_ABI_BASE_PROFILE must be release or dev, not $profile" >&2; exit 1 ;;
esac
cache=target/abi/base-$base_rev-$profile_dir
if [ ! -f "$cache/libjobq.so" ] || [ ! -f "$cache/include/jobq.h" ]; then
    echo "abi-check: building the $BASE_TAG library ($base_rev, $profile profile) once; cached in $cache"
    work=$(mktemp -d "${TMPDIR:-/tmp}/jobq-abi-base.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    mkdir -p "$work/src"
    git archive "$base_rev" | tar -x -C "$work/src"
    started=$(date +%s)
    (cd "$work/src" && CARGO_TARGET_DIR="$work/target" CARGO_PROFILE_RELEASE_DEBUG=2 \
        cargo build $profile_flag --lib --locked --quiet)
    echo "abi-check: built $BASE_TAG in $(($(date +%s) - started)) s"
    rm -rf "$cache" && mkdir -p "$cache/include"
    cp "$work/target/$profile_dir/libjobq.so" "$cache/libjobq.so"
    cp "$work/src/include/jobq.h" "$cache/include/jobq.h"
fi

new=${1:-target/release/libjobq.so}
if [ ! -f "$new" ]; then
    [ $# -eq 0 ] || { echo "abi-check: $new does not exist" >&2; exit 1; }
    echo "abi-check: $new missing: cargo build --release --lib (with type debug info)"
    CARGO_PROFILE_RELEASE_DEBUG=2 cargo build --release --lib --quiet
fi
# (grep reads all of it: with pipefail, grep -q would make readelf die of SIGPIPE.)
if ! readelf --debug-dump=info "$new" 2>/dev/null | grep 'DW_AT_name.*: jobq_put_opts$' >/dev/null; then
    echo "abi-check: warning: $new has no DWARF for jobq's types (release debug = 1?): only symbols are compared;"
    echo "           build with CARGO_PROFILE_RELEASE_DEBUG=2 cargo build --release --lib for the type checks"
fi

# Only the C API counts: the library exports nothing but jobq_* (make
# install-check checks that), and the suppressions drop anything else
# abidiff might still see. abidiff's exit status is a bit set: 1 error,
# 2 usage error, 4 ABI change, 8 incompatible change (a removed function).
# abidiff sets only 4 for a changed parameter or struct, so with additions
# left out of the report (--no-added-syms) ANY remaining change fails.
#
# The one change the policy allows beyond additions, options structs
# (jobq_put_opts, jobq_worker_opts) growing at their end through the sized
# init, abidiff cannot tell apart from other changes of those structs (its
# has_data_member_inserted_at suppression also hides reorderings), so
# abidiff leaves those two structs out and a C probe checks them: every
# field of the old header's struct must have the same offset and size in
# the new one, and the struct may only grow.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/jobq-abi-check.XXXXXX")
trap 'rm -rf "$tmp" "${work:-}"' EXIT
cat >"$tmp/supp" <<'EOF'
[suppress_function]
  symbol_name_not_regexp = ^jobq_
[suppress_type]
  name_regexp = ^jobq_(put|worker)_opts$
EOF
set +e
abidiff --suppressions "$tmp/supp" --no-added-syms "$cache/libjobq.so" "$new" >"$tmp/report"
rc=$?
set -e
cat "$tmp/report"
if [ $((rc & 3)) -ne 0 ]; then
    echo "abi-check: abidiff failed to run (status $rc)" >&2
    exit 1
fi
fail=0
if [ $((rc & 12)) -ne 0 ]; then
    echo "abi-check: INCOMPATIBLE change of the C ABI against $BASE_TAG (abidiff status $rc: a jobq_* function removed or changed): see docs/abi.md" >&2
    fail=1
fi

# The options structs: the old fields at the same offsets with the same sizes.
probe="$tmp/probe.c"
{
    echo '#include <stdio.h>'
    echo '#include <stddef.h>'
    echo '#include "jobq.h"'
    echo 'int main(void) {'
    for st in jobq_put_opts jobq_worker_opts; do
        echo "  printf(\"size $st %zu\\n\", sizeof(struct $st));"
        # The old header's field names: the last word of each member line.
        sed -n "/^typedef struct $st {/,/^} $st;/p" "$cache/include/jobq.h" | sed -e 's,/\*.*\*/,,' -e 's,^ *\*.*,,' \
            | grep -E '^\s+[A-Za-z_][A-Za-z0-9_ *]*;\s*$' | sed -E 's/.*[ *]([A-Za-z_][A-Za-z0-9_]*);\s*$/\1/' \
            | while read -r f; do
                echo "  printf(\"field $st.$f %zu %zu\\n\", offsetof(struct $st, $f), sizeof(((struct $st *)0)->$f));"
            done
    done
    echo '  return 0;'
    echo '}'
} >"$probe"
cc -std=c99 -I "$cache/include" "$probe" -o "$tmp/probe-old"
if ! cc -std=c99 -I "$root/include" "$probe" -o "$tmp/probe-new" 2>"$tmp/probe-new.err"; then
    cat "$tmp/probe-new.err" >&2
    echo "abi-check: INCOMPATIBLE: a field of an options struct of $BASE_TAG is gone from include/jobq.h" >&2
    exit 1
fi
"$tmp/probe-old" >"$tmp/old.txt"
"$tmp/probe-new" >"$tmp/new.txt"
grep -q '^field jobq_put_opts.unique_key ' "$tmp/old.txt" || { echo "abi-check: the probe found no fields in the $BASE_TAG header" >&2; exit 1; }
if ! diff <(grep ^field "$tmp/old.txt") <(grep ^field "$tmp/new.txt"); then
    echo "abi-check: INCOMPATIBLE: a field of an options struct moved or changed size (only growth at the end is allowed)" >&2
    fail=1
fi
while read -r _ st old && read -r _ st2 newsize <&3; do
    if [ "$newsize" -lt "$old" ]; then
        echo "abi-check: INCOMPATIBLE: $st shrank from $old to $newsize bytes" >&2
        fail=1
    fi
    echo "abi-check: $st: $old -> $newsize bytes"
done < <(grep ^size "$tmp/old.txt") 3< <(grep ^size "$tmp/new.txt")
[ "$fail" = 0 ] || exit 1
echo "abi-check: compatible with $BASE_TAG (additions only)"
