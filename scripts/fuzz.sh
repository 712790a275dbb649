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
# How it is built (stable Rust only, no nightly via rustup): the way
# `cargo fuzz build` builds (cargo-fuzz's own flags: SanitizerCoverage with
# inline 8-bit counters, PC table and compare tracing; --cfg fuzzing;
# AddressSanitizer; debug assertions), done here with plain cargo so that no
# cargo-fuzz has to be installed first. Unlike cargo-fuzz: opt-level 1 and
# the default codegen units instead of opt-level 3 in one unit. An input
# costs file and socket syscalls far more than code speed, so this runs
# about 25 inputs/s where cargo-fuzz's settings ran 35, and a fresh build
# takes 160 s instead of 295 s on 2 cores (CI builds it fresh each time):
#   - RUSTC_BOOTSTRAP=1 lets stable rustc accept the nightly flags
#     (-Zsanitizer=address and the sancov LLVM options);
#   - --target is given so that RUSTFLAGS do not reach build scripts;
#   - libfuzzer-sys compiles libFuzzer's C++ with the system c++ (g++).
# The fuzz crate has its own [workspace] and target dir (fuzz/target), so it
# does not take the main crate's cargo lock. Later builds take seconds.
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

TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
FUZZ_RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-simplifycfg-branch-fold-threshold=0 \
-Cllvm-args=-sanitizer-coverage-stack-depth --cfg fuzzing -Clink-dead-code -Zsanitizer=address \
-Cdebug-assertions"
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_odr_violation=0"

build() {
    local t0=$SECONDS
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 RUSTFLAGS="$FUZZ_RUSTFLAGS ${RUSTFLAGS:-}" cargo build --manifest-path fuzz/Cargo.toml \
        --target "$TRIPLE" --release --bin "$TARGET"
    echo "fuzz build: $((SECONDS - t0))s"
}

bin() {
    echo "fuzz/target/$TRIPLE/release/$TARGET"
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
        "$(bin)" -artifact_prefix="$ARTIFACTS/" "$CORPUS" "$REGRESSIONS" \
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
