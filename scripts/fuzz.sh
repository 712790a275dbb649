#!/usr/bin/env bash
# Fuzzes jobq's C ABI with libFuzzer: fuzz/fuzz_targets/c_api.rs drives random
# sequences of jobq_* calls (NULLs, bad lengths, invalid UTF-8, closed, freed
# and forged handles, huge sizes) under AddressSanitizer and checks the
# contract's invariants after every call.
#
#   scripts/fuzz.sh [SECONDS]       build, then fuzz for SECONDS (default 60);
#                                   exits non-zero on a crash, naming the reproducer
#   scripts/fuzz.sh --repro FILE    build, then run one input with a call trace
#   scripts/fuzz.sh --merge         minimize the local corpus into the committed
#                                   seed set (fuzz/corpus/c_api/seed-*); commit it
#
# The run starts from fuzz/corpus/c_api (committed seeds plus whatever earlier
# local runs added; new entries stay out of git, see fuzz/.gitignore) and also
# replays fuzz/regressions/c_api. Crash inputs go to fuzz/artifacts/c_api/.
#
# What works on this machine (stable Rust only, no nightly via rustup):
#   - `cargo install cargo-fuzz --locked` (0.13.2) builds from crates.io;
#   - `cargo fuzz build` / `cargo fuzz run` work on the stable toolchain when
#     RUSTC_BOOTSTRAP=1 is set: it lets stable rustc accept the nightly flags
#     cargo-fuzz passes (-Zsanitizer=address, -Cpasses=sancov-module and the
#     -sanitizer-coverage-* LLVM options), so no hand-made RUSTFLAGS are needed;
#   - libfuzzer-sys compiles libFuzzer's C++ with the system c++ (g++).
# The fuzz crate has its own [workspace] and target dir (fuzz/target), so it
# does not take the main crate's cargo lock. A first build takes ~3-4 minutes
# on 2 cores (everything is rebuilt with ASan + coverage), later ones seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
export RUSTC_BOOTSTRAP=1

TARGET=c_api
CORPUS=fuzz/corpus/$TARGET
REGRESSIONS=fuzz/regressions/$TARGET
ARTIFACTS=fuzz/artifacts/$TARGET
# Per-input limits: a normal input takes milliseconds; a hang or a runaway
# allocation is a finding, reported like a crash.
LIBFUZZER_FLAGS=(-max_len=1024 -timeout=20 -rss_limit_mb=3072 -print_final_stats=1)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked --version "^0.13"
fi

build() {
    local t0=$SECONDS
    cargo fuzz build "$TARGET"
    echo "fuzz build: $((SECONDS - t0))s"
}

bin() {
    echo "fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release/$TARGET"
}

case "${1:-}" in
--repro)
    [ -n "${2:-}" ] || { echo "usage: $0 --repro FILE" >&2; exit 2; }
    build
    JOBQ_FUZZ_TRACE=1 "$(bin)" "$2"
    ;;
--merge)
    build
    # The hand-written seeds (seed-hand-*) stay. The rest of the seed set is
    # rebuilt from the whole local corpus: a set cover of its coverage edges
    # (no hit counts or value profile, which would keep hundreds of files),
    # then the largest SEEDS_MAX of those (larger programs cover more; what is
    # lost is found again in seconds).
    keep=$(mktemp -d) && fresh=$(mktemp -d) && all=$(mktemp -d)
    trap 'rm -rf "$keep" "$fresh" "$all"' EXIT
    cp "$CORPUS"/seed-hand-* "$keep"/
    cp "$CORPUS"/* "$all"/ 2>/dev/null || true
    rm -f "$all"/seed-hand-*
    "$(bin)" -merge=1 -set_cover_merge=1 -use_counters=0 -use_value_profile=0 "${LIBFUZZER_FLAGS[@]}" "$fresh" "$all"
    find "$CORPUS" -maxdepth 1 -type f -name 'seed-*' ! -name 'seed-hand-*' -delete
    { ls -S "$fresh" || true; } | head -n "${SEEDS_MAX:-40}" | while read -r name; do cp "$fresh/$name" "$CORPUS/seed-$name"; done
    echo "seed set: $(ls "$CORPUS"/seed-* | wc -l) files, $(cat "$CORPUS"/seed-* | wc -c) bytes"
    echo "review, then: git add $CORPUS/seed-* (and git rm the seeds that went)"
    ;;
*)
    secs=${1:-60}
    [[ "$secs" =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS] | --repro FILE | --merge" >&2; exit 2; }
    build
    mkdir -p "$CORPUS" "$ARTIFACTS"
    marker=$(mktemp)
    trap 'rm -f "$marker"' EXIT
    status=0
    # -max_total_time bounds the fuzzing; the outer timeout is a backstop.
    timeout --signal=INT --kill-after=30 $((secs + 300)) \
        cargo fuzz run "$TARGET" "$CORPUS" "$REGRESSIONS" -- \
        -max_total_time="$secs" "${LIBFUZZER_FLAGS[@]}" || status=$?
    found=$(find "$ARTIFACTS" -type f -newer "$marker" 2>/dev/null | sort)
    if [ "$status" -ne 0 ] || [ -n "$found" ]; then
        echo "FUZZ FAILURE (exit $status). Reproducer(s):"
        for f in $found; do echo "  $f    (scripts/fuzz.sh --repro $f)"; done
        exit 1
    fi
    echo "fuzz: no crash in ${secs}s ($(ls "$CORPUS" | wc -l) corpus entries)"
    ;;
esac
