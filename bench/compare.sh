#!/usr/bin/env bash
# compare.sh - jobq against its peers, measured in ONE run of run-peers.sh (so
# jobq and the peers share the same machine conditions), then one table with
# ratio columns and a "targets" section.
#
#   ./compare.sh                       # build jobq (release) + harness, run all rows, 1 producer
#   PRODUCERS=8 ./compare.sh           # group commit's case: 8 producer threads (-p 8)
#   JOBQ_ONLY=1 ./compare.sh           # jobq rows only (plus the disk probe); peers show n/a
#   ROWS="jobq-1 bs-f0 sq-full" ./compare.sh   # any subset of row ids (run-peers.sh's ROWS)
#   N=2000 RUNS=1 PACED_S=1 ./compare.sh       # a quick smoke run (numbers not quotable)
#
# Every run-peers.sh knob works the same (N PAYLOAD CONSUMERS PRODUCERS RUNS
# ENQ_CAP_S CYC_CAP_S PACED_RATE PACED_S DISK_S BUDGET_S HARD_BUDGET_S INSTALL
# ROWS JOBQ_ROWS). Own knobs:
#   BUILD_JOBQ=0   do not run `cargo build --release --lib` (use the library as built)
#   JOBQ_ONLY=1    run only the jobq rows (when ROWS is not given)
# The time budgets default higher than run-peers.sh's (4 more rows per round):
# BUDGET_S=600, HARD_BUDGET_S=660.
#
# Output: the table and targets on stdout and in compare-latest.txt; the raw
# per-run results in compare-latest.raw.tsv; run-peers.sh's own table in
# compare-latest.peers.txt.
set -u -o pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
BUILD_JOBQ="${BUILD_JOBQ:-1}"
JOBQ_ONLY="${JOBQ_ONLY:-0}"
export PRODUCERS="${PRODUCERS:-1}"
export CONSUMERS="${CONSUMERS:-2}"
export BUDGET_S="${BUDGET_S:-600}"
export HARD_BUDGET_S="${HARD_BUDGET_S:-660}"
export OUT_TXT="$HERE/compare-latest.peers.txt"
export OUT_RAW="$HERE/compare-latest.raw.tsv"
export OUT_ROWS="$HERE/compare-latest.rows"
OUT_CMP="$HERE/compare-latest.txt"
export JOBQ=1 # bench/Makefile: the jobq backend is required, fail if the library is missing

log() { printf '[compare] %s\n' "$*" >&2; }

# ---------------------------------------------------------------- build jobq
if [ "$BUILD_JOBQ" = 1 ]; then
    log "cargo build --release --lib (in $ROOT)"
    if ! (cd "$ROOT" && cargo build --release --lib); then
        log "cargo build --release --lib failed"
        exit 1
    fi
fi
# bench/Makefile reads JOBQ_INCDIR / JOBQ_LIBDIR too (to measure another build)
for f in "${JOBQ_INCDIR:-$ROOT/include}/jobq.h" "${JOBQ_LIBDIR:-$ROOT/target/release}/libjobq.so"; do
    if [ ! -f "$f" ]; then
        log "missing $f: \`cargo build --release --lib\` in $ROOT makes it (build.rs writes the header)"
        exit 1
    fi
done

# ---------------------------------------------------------------- rows
if [ -z "${ROWS:-}" ] && [ "$JOBQ_ONLY" = 1 ]; then
    # the ids run-peers.sh gives the jobq rows: jobq-k, or jobq-name for "@name:"
    ROWS="$(awk -v RS=';' '{ k++; if (match($0, /^@[A-Za-z0-9_]+:/)) print "jobq-" substr($0, 2, RLENGTH - 2); else print "jobq-" k }' \
        <<<"${JOBQ_ROWS:-x;x;x;x;@ackres:x;@many16:x}" | tr '\n' ' ')"
    export ROWS
fi

# ---------------------------------------------------------------- one run
rm -f "$OUT_RAW" "$OUT_ROWS" "$OUT_TXT"
log "run-peers.sh (PRODUCERS=$PRODUCERS${ROWS:+, ROWS=$ROWS}); progress below"
"$HERE/run-peers.sh" >/dev/null
rc=$?
if [ ! -s "$OUT_RAW" ] || [ ! -s "$OUT_ROWS" ]; then
    log "run-peers.sh produced no results (exit $rc)"
    exit 1
fi
[ "$rc" = 0 ] || log "run-peers.sh exited $rc; reporting what it measured"

# ---------------------------------------------------------------- report
{
    sed '/^$/q' "$OUT_TXT" 2>/dev/null # run-peers.sh's header: date, workload, load average
    awk -F'\t' -v producers="$PRODUCERS" -v consumers="$CONSUMERS" -v rowsfile="$OUT_ROWS" '
    function med(key,   n, i, j, t, a) {
        if (vals[key] == "") return "NA"
        n = split(vals[key], a, " ")
        for (i = 1; i <= n; i++) a[i] += 0
        for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j+1] = a[j]; a[j+1] = t }
        return (n % 2) ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
    }
    function spread(key,   n, i, a, mn, mx, m) {
        n = split(vals[key], a, " ")
        if (n < 2) return "-"
        mn = mx = a[1] + 0
        for (i = 2; i <= n; i++) { if (a[i]+0 < mn) mn = a[i]+0; if (a[i]+0 > mx) mx = a[i]+0 }
        m = med(key)
        return (m > 0) ? sprintf("%d%%", (mx - mn) / m * 100 + 0.5) : "-"
    }
    function fr(v) { return (v == "NA") ? "n/a" : sprintf("%.0f", v) }
    function fm(v) { return (v == "NA") ? "n/a" : sprintf("%.2f", v) }
    function ratio(a, b) { return (a == "NA" || b == "NA" || b + 0 <= 0) ? "NA" : a / b }
    function fx(v) { return (v == "NA") ? "n/a" : sprintf("%.2fx", v) }
    # rate of a row for a phase; disk rows have one rate (op/s) for every phase
    function rate(id, phase) { return (id ~ /^disk-/) ? med(id SUBSEP "ops" SUBSEP "rate") : med(id SUBSEP phase SUBSEP "rate") }
    function opt(opts, key,   m) {
        if (match("," opts ",", "," key "=[^,]*,")) return substr("," opts ",", RSTART + length(key) + 2, RLENGTH - length(key) - 3)
        return ""
    }
    # which jobq row a peer row is compared with: same guarantee on power loss
    function peer_class(id) { return (id ~ /^disk-/ || id == "bs-f0" || id == "rd-always" || id == "sq-full") ? "full" : "normal" }
    # one line of the targets section
    function target(what, value, op, need, unit, applies,   verdict, shown) {
        if (!applies) verdict = "n/a (not this workload)"
        else if (value == "NA") verdict = "n/a (row missing/failed)"
        else if (op == ">=") verdict = (value + 0 >= need) ? "MET" : "NOT MET"
        else verdict = (value + 0 <= need) ? "MET" : "NOT MET"
        if (value == "NA") shown = "n/a"
        else if (unit == "x") shown = sprintf("%.2fx", value)
        else if (unit == "ms") shown = sprintf("%.2f ms", value)
        else shown = sprintf("%.0f %s", value, unit)
        printf "  %-64s %-18s %16s   %s\n", what, op " " (unit == "x" ? sprintf("%.2fx", need) : need " " unit), shown, verdict
        if (applies && value != "NA") { ntarget++; if (verdict == "MET") nmet++ }
    }
    FNR == NR && FILENAME == rowsfile {
        nrows++; spec[nrows] = $0; next
    }
    FNR > 1 {
        if ($1 + 0 > maxrun) maxrun = $1 + 0
        if ($4 != "NA") nruns[$2 SUBSEP $3]++
        if ($4 != "NA") { vals[$2 SUBSEP $3 SUBSEP "rate"] = vals[$2 SUBSEP $3 SUBSEP "rate"] " " $4 }
        if ($5 != "NA") { vals[$2 SUBSEP $3 SUBSEP "p50"] = vals[$2 SUBSEP $3 SUBSEP "p50"] " " $5 }
        if ($6 != "NA") { vals[$2 SUBSEP $3 SUBSEP "p99"] = vals[$2 SUBSEP $3 SUBSEP "p99"] " " $6 }
        if ($7 == "1") capped[$2 SUBSEP $3] = 1
        if ($4 == "NA") failed[$2] = 1
    }
    END {
        # roles of the jobq rows, from their opts: the first row of each kind is the reference
        for (r = 1; r <= nrows; r++) {
            split(spec[r], f, "|")
            if (f[4] != "jobq") continue
            d = opt(f[6], "durability"); if (d == "") d = "full"
            b = opt(f[6], "batch") + 0; if (opt(f[6], "shared") == "0") d = d "-pthread"
            role = (b > 1) ? d "-batch" b : d
            if (!(role in ref)) { ref[role] = f[1]; reflabel[role] = f[3] }
        }
        fmt = "%-26s %-35s %11s %12s %9s %9s %9s %9s %9s %4s  %-8s %7s %7s\n"
        printf fmt, "system", "durability", "enq jobs/s", "cycle jobs/s", "cyc p50", "cyc p99", "pace p50", "pace p99", "spread", "runs", "vs jobq", "enq", "cycle"
        printf fmt, "", "", "", "", "ms", "ms", "ms", "ms", "enq/cyc", "", "row", "jobq/x", "jobq/x"
        for (r = 1; r <= nrows; r++) {
            split(spec[r], f, "|")
            id = f[1]
            vs = "-"; re = "-"; rc = "-"
            if (f[4] != "jobq") {
                cls = peer_class(id)
                if (cls in ref) {
                    vs = ref[cls]
                    re = fx(ratio(rate(ref[cls], "enqueue"), rate(id, "enqueue")))
                    rc = fx(ratio(rate(ref[cls], "cycle"), rate(id, "cycle")))
                }
            }
            if (id ~ /^disk-/) {
                printf fmt, f[2], f[3], fr(rate(id, "ops")) " op/s", "-", "-", "-", "-", "-", spread(id SUBSEP "ops" SUBSEP "rate"), nruns[id SUBSEP "ops"] + 0, vs, re, rc
                continue
            }
            e = fr(med(id SUBSEP "enqueue" SUBSEP "rate")); if (capped[id SUBSEP "enqueue"]) e = e "*"
            c = fr(med(id SUBSEP "cycle" SUBSEP "rate"));   if (capped[id SUBSEP "cycle"]) c = c "*"
            pp = fm(med(id SUBSEP "paced" SUBSEP "p99"));   if (capped[id SUBSEP "paced"]) pp = pp "!"
            sp = spread(id SUBSEP "enqueue" SUBSEP "rate") "/" spread(id SUBSEP "cycle" SUBSEP "rate")
            k = maxrun
            if (nruns[id SUBSEP "enqueue"] < k) k = nruns[id SUBSEP "enqueue"]
            if (nruns[id SUBSEP "cycle"] < k) k = nruns[id SUBSEP "cycle"]
            if (nruns[id SUBSEP "paced"] < k) k = nruns[id SUBSEP "paced"]
            printf fmt, f[2] (f[4] == "jobq" ? " [" id "]" : ""), f[3], e, c,
                fm(med(id SUBSEP "cycle" SUBSEP "p50")), fm(med(id SUBSEP "cycle" SUBSEP "p99")),
                fm(med(id SUBSEP "paced" SUBSEP "p50")), pp, sp, (k + 0) (failed[id] ? "!" : ""), vs, re, rc
        }
        print ""
        print "vs jobq/enq/cycle: the jobq row with the same power-loss guarantee (full: disk rows, bs-f0, rd-always,"
        print "        sq-full; normal: the rest) and its rate divided by this row'"'"'s rate (disk rows: by their op/s)."
        print "        > 1.00x = jobq is faster. Rates are medians over the rounds of this one run."
        print "put_batch rows: enq/cycle count jobs (N jobs in N/100 calls); their pace latency includes filling a batch"
        print "        of 100 at the paced rate, so it is not a per-job latency."
        print "enq = producers put N jobs into an empty queue; cycle = producers put N jobs while " consumers " consumers"
        print "        take+ack (rate to the last ack); pace = fixed-rate puts, latency from the scheduled put to ack-done."
        print "* = hit the phase cap (rate over the jobs done); ! = a paced run did not finish / some runs failed."
        print ""

        F = ref["full"]; Nr = ref["normal"]; B = ref["normal-batch100"]; BF = ref["full-batch100"]
        if (F == "") F = "none"; if (Nr == "") Nr = "none"; if (B == "") B = "none"; if (BF == "") BF = "none"
        p1 = (producers == 1 && consumers == 2); p8 = (producers == 8)
        printf "targets (this run: %d producer(s), %d consumers; jobq rows: full=%s normal=%s batch100 normal=%s full=%s)\n", producers, consumers, F, Nr, B, BF
        printf "  %-64s %-18s %16s   %s\n", "target", "needed", "jobq / ratio", "verdict"
        target("full, 1p+2c cycle jobs/s vs beanstalkd -b -f0 cycle", ratio(rate(F, "cycle"), rate("bs-f0", "cycle")), ">=", 2, "x", p1)
        target("full, 1p+2c cycle jobs/s vs sqlite hand-written FULL cycle", ratio(rate(F, "cycle"), rate("sq-full", "cycle")), ">=", 3, "x", p1)
        target("full, 1p+2c cycle jobs/s vs disk append+fdatasync op/s", ratio(rate(F, "cycle"), rate("disk-append", "ops")), ">=", 0.8, "x", p1)
        target("full, 8p enqueue jobs/s vs disk append+fdatasync op/s", ratio(rate(F, "enqueue"), rate("disk-append", "ops")), ">=", 4, "x", p8)
        target("full, 8p enqueue jobs/s vs beanstalkd -b -f0 enqueue", ratio(rate(F, "enqueue"), rate("bs-f0", "enqueue")), ">=", 5, "x", p8)
        target("full, 8p enqueue jobs/s vs redis AOF always enqueue", ratio(rate(F, "enqueue"), rate("rd-always", "enqueue")), ">=", 2, "x", p8)
        target("full, paced p99 (1p+2c, " "scheduled put -> ack)", med(F SUBSEP "paced" SUBSEP "p99"), "<=", 2, "ms", p1)
        target("normal, 1p+2c cycle jobs/s vs redis AOF everysec cycle", ratio(rate(Nr, "cycle"), rate("rd-sec", "cycle")), ">=", 1, "x", p1)
        target("normal, 1p+2c cycle jobs/s vs beanstalkd no binlog cycle", ratio(rate(Nr, "cycle"), rate("bs-none", "cycle")), ">=", 1, "x", p1)
        target("normal, jobq-ackres 1p+2c cycle vs redis AOF everysec cycle", ratio(rate("jobq-ackres", "cycle"), rate("rd-sec", "cycle")), ">=", 1.5, "x", p1)
        target("normal, jobq-ackres 1p+2c cycle vs beanstalkd no binlog cycle", ratio(rate("jobq-ackres", "cycle"), rate("bs-none", "cycle")), ">=", 1.5, "x", p1)
        target("normal, jobq-many16 1p+2c cycle vs redis AOF everysec cycle", ratio(rate("jobq-many16", "cycle"), rate("rd-sec", "cycle")), ">=", 3, "x", p1)
        target("normal, jobq-many16 1p+2c cycle vs beanstalkd no binlog cycle", ratio(rate("jobq-many16", "cycle"), rate("bs-none", "cycle")), ">=", 3, "x", p1)
        target("put_batch(100) normal, 1p enqueue jobs/s", rate(B, "enqueue"), ">=", 300000, "jobs/s", p1)
        target("put_batch(100) full, 1p enqueue jobs/s", rate(BF, "enqueue"), ">=", 300000, "jobs/s", p1)
        printf "  %d of %d evaluated targets met", nmet + 0, ntarget + 0
        if (!p8) printf "; the 8p targets need PRODUCERS=8 ./compare.sh"
        if (!p1) printf "; the 1p targets need PRODUCERS=1 (and CONSUMERS=2)"
        printf "\n"
    }' "$OUT_ROWS" "$OUT_RAW"
} | tee "$OUT_CMP"
log "table in $OUT_CMP; raw runs in $OUT_RAW"
