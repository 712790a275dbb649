#!/usr/bin/env bash
# jobq-beanstalkd against beanstalkd, in one run, with qbench's beanstalk
# backend (src/backend_beanstalk.c: put / reserve-with-timeout / delete on the
# default tube, pri 1024, ttr 60; one TCP connection per thread):
#
#   jbs-full    jobq-beanstalkd on a SQLite file, {"durability":"full"}   (put answered after fsync)
#   jbs-normal  jobq-beanstalkd on a SQLite file, {"durability":"normal"} (survives a process crash)
#   bs-f0       beanstalkd -b DIR -f0 (binlog, fsync in every put/delete before the reply)
#   bs-none     beanstalkd without a binlog (memory only)
#
# Phases: enqueue (1 producer puts N jobs) and cycle (1 producer + 2 consumers
# reserve+delete until all N are done), each from a fresh server and data
# directory. Rounds are interleaved; the table shows medians.
#
#   ./compare-beanstalkd.sh              # builds qbench and target/release/jobq-beanstalkd first
#   RUNS=1 N=20000 ./compare-beanstalkd.sh
#
# Knobs: N (50000) PAYLOAD (100) RUNS (3) ENQ_CAP_S (6) CYC_CAP_S (10) ROWS ("jbs-full jbs-normal bs-f0 bs-none")
# Output: the table on stdout and in compare-beanstalkd-latest.txt, every run in
# compare-beanstalkd-latest.raw.tsv. Needs beanstalkd (scripts/install-deps.sh).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
BUILD="$HERE/build"
N="${N:-50000}"
PAYLOAD="${PAYLOAD:-100}"
RUNS="${RUNS:-3}"
ENQ_CAP_S="${ENQ_CAP_S:-6}"
CYC_CAP_S="${CYC_CAP_S:-10}"
ROWS="${ROWS:-jbs-full jbs-normal bs-f0 bs-none}"
OUT_TXT="${OUT_TXT:-$HERE/compare-beanstalkd-latest.txt}"
OUT_RAW="${OUT_RAW:-$HERE/compare-beanstalkd-latest.raw.tsv}"

T0=$(date +%s)
log() { printf '[%4ds] %s\n' "$(($(date +%s) - T0))" "$*" >&2; }

command -v beanstalkd >/dev/null || {
    echo "beanstalkd is missing: run scripts/install-deps.sh" >&2
    exit 1
}
log "building target/release/jobq-beanstalkd and qbench"
(cd "$ROOT" && cargo build --release --quiet --bin jobq-beanstalkd)
JBS="$ROOT/target/release/jobq-beanstalkd"
make -s -C "$HERE" JOBQ=0 build/qbench build/freeport >/tmp/jobq-bscmp-build.log 2>&1 || {
    cat /tmp/jobq-bscmp-build.log >&2
    exit 1
}
QB="$BUILD/qbench"

WORK="$(mktemp -d /tmp/jobq-bscmp.XXXXXX)"
SPID=""
cleanup() {
    if [ -n "$SPID" ] && kill -0 "$SPID" 2>/dev/null; then
        kill -TERM "$SPID" 2>/dev/null || true
        wait "$SPID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() { # port pid
    local i
    for i in $(seq 1 400); do
        kill -0 "$2" 2>/dev/null || return 1
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.025
    done
    return 1
}

start() { # row dir -> SPID, PORT
    local row="$1" dir="$2" try
    for try in 1 2 3; do
        PORT="$("$BUILD/freeport")"
        case "$row" in
        jbs-full) "$JBS" --listen "127.0.0.1:$PORT" --config '{"durability":"full"}' "$dir/bs.db" >"$dir.log" 2>&1 & ;;
        jbs-normal) "$JBS" --listen "127.0.0.1:$PORT" --config '{"durability":"normal"}' "$dir/bs.db" >"$dir.log" 2>&1 & ;;
        bs-f0) beanstalkd -l 127.0.0.1 -p "$PORT" -b "$dir" -f 0 >"$dir.log" 2>&1 & ;;
        bs-none) beanstalkd -l 127.0.0.1 -p "$PORT" >"$dir.log" 2>&1 & ;;
        *)
            echo "unknown row $row" >&2
            exit 2
            ;;
        esac
        SPID=$!
        if wait_port "$PORT" "$SPID"; then return 0; fi
        stop
    done
    return 1
}
stop() {
    [ -n "$SPID" ] || return 0
    kill -TERM "$SPID" 2>/dev/null || true
    local i
    for i in $(seq 1 100); do
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.05
    done
    kill -0 "$SPID" 2>/dev/null && kill -KILL "$SPID" 2>/dev/null
    wait "$SPID" 2>/dev/null || true
    SPID=""
}

printf 'run\trow\tphase\trate\tcapped\tdone\terrors\n' >"$OUT_RAW"
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
for run in $(seq 1 "$RUNS"); do
    for row in $ROWS; do
        for phase in enqueue cycle; do
            dir="$WORK/$row-$run-$phase"
            mkdir -p "$dir"
            cap=$ENQ_CAP_S
            [ "$phase" = cycle ] && cap=$CYC_CAP_S
            if ! start "$row" "$dir"; then
                log "$row $phase: the server did not start: $(tail -c 300 "$dir.log")"
                printf '%s\t%s\t%s\tNA\tNA\tNA\tNA\n' "$run" "$row" "$phase" >>"$OUT_RAW"
                continue
            fi
            res="$(timeout -k 2 $((cap + 20)) "$QB" beanstalkd "$phase" -n "$N" -s "$PAYLOAD" -c 2 -p 1 -t "$cap" \
                -D "$dir" -o "port=$PORT" 2>"$dir.err" || true)"
            stop
            get() { printf '%s\n' "$res" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
            rate="$(get rate)" capped="$(get capped)" ndone="$(get done)" errs="$(get errors)"
            if [ -z "$rate" ] || [ "${errs:-1}" != 0 ]; then
                log "$row $phase: FAILED: $res $(head -c 300 "$dir.err")"
                rate=NA
            else
                log "$row $phase (run $run): $res"
            fi
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$row" "$phase" "$rate" "${capped:-NA}" "${ndone:-NA}" \
                "${errs:-NA}" >>"$OUT_RAW"
            rm -rf "$dir" "$dir.log" "$dir.err"
        done
    done
done

{
    echo "jobq-beanstalkd vs beanstalkd - $(date -u '+%Y-%m-%d %H:%M UTC') - $(nproc) cores - $(beanstalkd -v 2>/dev/null)"
    echo "qbench beanstalk backend: N=$N, payload $PAYLOAD B; enqueue: 1 producer; cycle: 1 producer + 2 consumers" \
        "(put / reserve-with-timeout / delete, one connection each); caps ${ENQ_CAP_S}s / ${CYC_CAP_S}s"
    echo "median of $RUNS run(s); load average at start: $LOAD_START; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    awk -F'\t' -v rows="$ROWS" '
    function med(key,   n, i, j, t, a) {
        n = split(vals[key], a, " ")
        if (n == 0) return "NA"
        for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j+1] = a[j]; a[j+1] = t }
        return (n % 2) ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
    }
    NR > 1 && $4 != "NA" { vals[$2 SUBSEP $3] = vals[$2 SUBSEP $3] " " $4; if ($5 == "1") capped[$2 SUBSEP $3] = 1 }
    END {
        desc["jbs-full"] = "jobq-beanstalkd, SQLite file, durability full"
        desc["jbs-normal"] = "jobq-beanstalkd, SQLite file, durability normal"
        desc["bs-f0"] = "beanstalkd 1.12 -b DIR -f0 (fsync every write)"
        desc["bs-none"] = "beanstalkd 1.12, no binlog (memory only)"
        fmt = "%-50s %12s %13s\n"
        printf fmt, "server", "enq jobs/s", "cycle jobs/s"
        n = split(rows, r, " ")
        for (i = 1; i <= n; i++) {
            e = med(r[i] SUBSEP "enqueue"); c = med(r[i] SUBSEP "cycle")
            e = (e == "NA") ? "n/a" : sprintf("%.0f", e); c = (c == "NA") ? "n/a" : sprintf("%.0f", c)
            if (capped[r[i] SUBSEP "enqueue"]) e = e "*"
            if (capped[r[i] SUBSEP "cycle"]) c = c "*"
            printf fmt, desc[r[i]], e, c
        }
    }' "$OUT_RAW"
    echo
    echo "* = reached the phase cap before N jobs: the rate counts the jobs done within the cap."
} | tee "$OUT_TXT"
log "done; raw runs in $OUT_RAW"
