#!/usr/bin/env bash
# compare-pg.sh - jobq's PostgreSQL backend beside two hand-written PostgreSQL
# peers (River-style, pgmq-style) on the same local server, in ONE run.
#
# Rows (suffix -p8: 8 producers instead of 1; always 2 consumers):
#   pg-jobq-full      jobq over PostgreSQL, {"durability":"full"}, jobq_put
#   pg-jobq-normal    the same, {"durability":"normal"}
#   pg-jobq-batch100  durability full, jobq_put_batch with 100 jobs
#   pg-river          River-style: INSERT / CTE FOR UPDATE SKIP LOCKED + UPDATE RETURNING / DELETE
#   pg-pgmq           pgmq-style: send INSERT / read UPDATE vt ... SKIP LOCKED / delete
# Phases per row: enqueue, cycle, paced (p99). Around the cycle phase the
# script reads pg_stat_database (xact_commit), pg_current_wal_lsn() and
# pg_stat_user_tables for the row's schema.
#
# Output:
#   pg-latest.raw.tsv    run row phase rate p50_ms p99_ms capped done secs  (run-peers.sh's columns)
#   pg-latest.stats.tsv  run row jobs commits wal_bytes n_dead_tup n_tup_upd n_tup_hot_upd
#                        commits_per_job wal_bytes_per_job dead_per_job   (cycle phase only)
#   stdout               table + targets, each marked met / MISSED
#
# Env: JOBQ_BENCH_PG_URL (default postgresql://postgres@127.0.0.1:5432/test),
#      N (jobs per phase, default 5000), ENQ_CAP_S (6), CYC_CAP_S (10),
#      PACED_RATE (100), PACED_S (3), ROWS (subset of the base row names),
#      PRODUCER_SETS (default "1 8")
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
cd "$HERE"
URL="${JOBQ_BENCH_PG_URL:-postgresql://postgres@127.0.0.1:5432/test}"
export JOBQ_BENCH_PG_URL="$URL"
N="${N:-5000}"
ENQ_CAP_S="${ENQ_CAP_S:-6}"
CYC_CAP_S="${CYC_CAP_S:-10}"
PACED_RATE="${PACED_RATE:-100}"
PACED_S="${PACED_S:-3}"
CONSUMERS=2
ROWS="${ROWS:-pg-jobq-full pg-jobq-normal pg-jobq-batch100 pg-river pg-pgmq}"
PRODUCER_SETS="${PRODUCER_SETS:-1 8}"
OUT_RAW="${OUT_RAW:-$HERE/pg-latest.raw.tsv}"
OUT_STATS="${OUT_STATS:-$HERE/pg-latest.stats.tsv}"
RUN=1
log() { echo "[compare-pg] $*" >&2; }

mkdir -p "$HERE/build"
make -B -C "$HERE" >"$HERE/build/make-pg.log" 2>&1 || { cat "$HERE/build/make-pg.log"; exit 1; }
Q="$HERE/build/qbench"
"$Q" list | grep -qx river || { log "qbench built without libpq (install libpq-dev)"; exit 1; }
HAVE_JOBQ=0
"$Q" list | grep -qx jobq && HAVE_JOBQ=1
psql "$URL" -Atqc 'select 1' >/dev/null </dev/null || { log "cannot reach $URL"; exit 1; }

case "$URL" in *\?*) SEP='&' ;; *) SEP='?' ;; esac

row_cfg() { # base row -> "backend|schema|opts"
    case "$1" in
    pg-jobq-full) echo "jobq|qb_jobq_full|durability=full,url=${URL}${SEP}schema=qb_jobq_full" ;;
    pg-jobq-normal) echo "jobq|qb_jobq_normal|durability=normal,url=${URL}${SEP}schema=qb_jobq_normal" ;;
    pg-jobq-batch100) echo "jobq|qb_jobq_batch|durability=full,batch=100,url=${URL}${SEP}schema=qb_jobq_batch" ;;
    pg-river) echo "river|qb_river|" ;;
    pg-pgmq) echo "pgmq|qb_pgmq|" ;;
    *) echo "" ;;
    esac
}

sql() { psql "$URL" -Atq -F $'\t' -c "$1" </dev/null; }
db_snap() { sql "select xact_commit, pg_current_wal_lsn() from pg_stat_database where datname=current_database()"; }
tbl_snap() { # schema -> dead upd hot
    sql "select coalesce(sum(n_dead_tup),0), coalesce(sum(n_tup_upd),0), coalesce(sum(n_tup_hot_upd),0) from pg_stat_user_tables where schemaname='$1'"
}
# CPU jiffies of every postgres process, with its reaped children (the
# postmaster's cutime/cstime hold the backends that ended), and the CPU
# microseconds of this shell's reaped children (qbench): the two CPU
# columns of the stats. `times` must run in this shell, not a $(...).
pg_cpu() { cat /proc/[0-9]*/stat 2>/dev/null | awk '$2 ~ /^\(postgres/ { t += $14 + $15 + $16 + $17 } END { print t + 0 }'; }
child_cpu() { times >"$1"; }
cpu_us() { awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.0f", (u[1] * 60 + u[2] + s[1] * 60 + s[2]) * 1e6 }' "$1"; }
kv() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }
na_row() { printf '%s\t%s\t%s\tNA\tNA\tNA\tNA\tNA\tNA\n' "$RUN" "$1" "$2" >>"$OUT_RAW"; }

printf 'run\trow\tphase\trate\tp50_ms\tp99_ms\tcapped\tdone\tsecs\n' >"$OUT_RAW"
printf 'run\trow\tjobs\tcommits\twal_bytes\tn_dead_tup\tn_tup_upd\tn_tup_hot_upd\tcommits_per_job\twal_bytes_per_job\tdead_per_job\tserver_cpu_us_per_job\tclient_cpu_us_per_job\n' >"$OUT_STATS"
LOAD0="$(cut -d' ' -f1-3 /proc/loadavg)"
T0=$(date +%s)
declare -A FAILED

for P in $PRODUCER_SETS; do
    for base in $ROWS; do
        row="$base"
        [ "$P" = 1 ] || row="$base-p$P"
        IFS='|' read -r be schema opts <<<"$(row_cfg "$base")"
        if [ -z "$be" ]; then log "unknown row $base"; continue; fi
        if [ "$be" = jobq ] && [ "$HAVE_JOBQ" = 0 ]; then
            log "$row: FAILED: qbench built without the jobq backend (no libjobq.so)"
            FAILED[$row]="qbench built without the jobq backend"
            for ph in enqueue cycle paced; do na_row "$row" $ph; done
            continue
        fi
        for ph in enqueue cycle paced; do
            if [ -n "${FAILED[$row]:-}" ]; then na_row "$row" $ph; continue; fi
            # jobq rows start from an empty schema (the peers drop theirs in setup)
            [ "$be" = jobq ] && sql "set client_min_messages=warning; drop schema if exists $schema cascade" >/dev/null
            dir="$(mktemp -d /tmp/jobq-pg.XXXXXX)"
            case $ph in
            enqueue) args=(-n "$N" -s 100 -p "$P" -t "$ENQ_CAP_S"); cap=$ENQ_CAP_S ;;
            cycle) args=(-n "$N" -s 100 -c $CONSUMERS -p "$P" -t "$CYC_CAP_S"); cap=$CYC_CAP_S ;;
            paced) args=(-s 100 -c $CONSUMERS -p 1 -r "$PACED_RATE" -d "$PACED_S" -t $((PACED_S + 10))); cap=$((PACED_S + 10)) ;;
            esac
            if [ "$ph" = cycle ]; then IFS=$'\t' read -r c0 l0 <<<"$(db_snap)"; s0=$(pg_cpu); child_cpu "$dir/times"; q0=$(cpu_us "$dir/times"); fi
            out="$(timeout $((cap + 20)) "$Q" "$be" $ph "${args[@]}" -D "$dir" ${opts:+-o "$opts"} 2>"$dir/err" </dev/null)"
            rc=$?
            res="$(grep '^backend=' <<<"$out" | tail -1)"
            if [ $rc -ne 0 ] || [ -z "$res" ] || [ "$(kv errors "$res")" != 0 ]; then
                err="$(grep -v '^$' "$dir/err" | head -2 | tr '\n' ' ')"
                log "$row $ph: FAILED (rc=$rc): ${err:-$res}"
                FAILED[$row]="$ph: ${err:-rc=$rc $res}"
                na_row "$row" $ph
                rm -rf "$dir"
                continue
            fi
            rate=$(kv rate "$res"); p50=$(kv p50_ms "$res"); p99=$(kv p99_ms "$res")
            capped=$(kv capped "$res"); done_=$(kv done "$res"); secs=$(kv secs "$res")
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$RUN" "$row" $ph "$rate" "$p50" "$p99" "$capped" "$done_" "$secs" >>"$OUT_RAW"
            log "$row $ph: $res"
            if [ "$ph" = cycle ]; then
                s1=$(pg_cpu); child_cpu "$dir/times"; q1=$(cpu_us "$dir/times")
                # The qbench sessions have ended; PG 15 flushes a backend's
                # pending stats at exit (otherwise at most once a second).
                # Wait past that, then read in a new session.
                sleep 1.2
                IFS=$'\t' read -r c1 l1 <<<"$(db_snap)"
                wal=$(sql "select pg_wal_lsn_diff('$l1','$l0')::bigint")
                IFS=$'\t' read -r dead upd hot <<<"$(tbl_snap "$schema")"
                awk -v r="$RUN" -v row="$row" -v j="$done_" -v c="$((c1 - c0))" -v w="$wal" -v d="$dead" -v u="$upd" -v h="$hot" \
                    -v sc="$((s1 - s0))" -v hz="$(getconf CLK_TCK)" -v qc="$((q1 - q0))" \
                    'BEGIN { if (j < 1) j = 1; printf "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.3f\t%.1f\t%.3f\t%.0f\t%.0f\n", r, row, j, c, w, d, u, h, c / j, w / j, d / j, sc * 1e6 / hz / j, qc / j }' >>"$OUT_STATS"
            fi
            rm -rf "$dir"
        done
    done
done
LOAD1="$(cut -d' ' -f1-3 /proc/loadavg)"
T1=$(date +%s)

awk -F'\t' -v load0="$LOAD0" -v load1="$LOAD1" -v secs=$((T1 - T0)) -v n="$N" -v url="$URL" -f - "$OUT_RAW" "$OUT_STATS" <<'AWK'
FNR == 1 { next }
FILENAME ~ /raw\.tsv$/ { R[$2, $3] = $4; P99[$2, $3] = $6; P50[$2, $3] = $5; CAP[$2, $3] = $7; if (!($2 in seen)) { seen[$2] = 1; order[++no] = $2 }; next }
{ C[$2] = $9; W[$2] = $10; D[$2] = $11; U[$2] = ($3 > 0 ? $7 / $3 : 0); SC[$2] = $12; QC[$2] = $13 }
function v(x) { return (x == "" || x == "NA") ? "FAILED" : x }
function ratio(a, b, want, name,   r) {
    if (a == "" || a == "NA" || b == "" || b == "NA" || b + 0 == 0) { printf "  %-44s n/a (row failed)       MISSED\n", name; return }
    r = a / b; printf "  %-44s %8.2fx (want >= %dx)  %s\n", name, r, want, (r >= want ? "met" : "MISSED")
}
END {
    printf "PostgreSQL comparison on %s: N=%d jobs per phase, 2 consumers, one run, %d s; load %s -> %s\n", url, n, secs, load0, load1
    printf "%-20s %10s %10s %9s %9s %10s %9s %8s %8s %9s %9s\n", "row", "enq/s", "cycle/s", "pace p50", "pace p99", "commits/j", "WAL B/j", "dead/j", "upd/j", "srv us/j", "cli us/j"
    for (i = 1; i <= no; i++) { r = order[i]
        printf "%-20s %10s %10s %9s %9s %10s %9s %8s %8s %9s %9s\n", r, v(R[r, "enqueue"]) (CAP[r, "enqueue"] == 1 ? "*" : ""),
            v(R[r, "cycle"]) (CAP[r, "cycle"] == 1 ? "*" : ""), v(P50[r, "paced"]), v(P99[r, "paced"]),
            (r in C ? C[r] : "NA"), (r in W ? W[r] : "NA"), (r in D ? D[r] : "NA"), (r in U ? sprintf("%.2f", U[r]) : "NA"), (r in SC ? SC[r] : "NA"), (r in QC ? QC[r] : "NA") }
    print "(* = reached the time cap; the rate counts only the jobs done within it. per-job stats: cycle phase deltas / jobs acked;"
    print " srv us/j: CPU of every postgres process, cli us/j: CPU of the qbench process, both per cycled job)"
    print "targets:"
    for (k = 0; k < 2; k++) { s = (k ? "-p8" : "")
        ratio(R["pg-jobq-full" s, "cycle"], R["pg-river" s, "cycle"], 2, "pg-jobq-full" s " cycle / pg-river" s)
        ratio(R["pg-jobq-full" s, "cycle"], R["pg-pgmq" s, "cycle"], 2, "pg-jobq-full" s " cycle / pg-pgmq" s)
    }
    for (k = 0; k < 2; k++) { s = (k ? "-p8" : ""); r = "pg-jobq-batch100" s; x = R[r, "enqueue"]
        if (x == "" || x == "NA") printf "  %-44s FAILED                  MISSED\n", r " enqueue >= 100000/s"
        else printf "  %-44s %8.0f/s               %s\n", r " enqueue >= 100000/s", x, (x >= 100000 ? "met" : "MISSED") }
    for (i = 1; i <= no; i++) { r = order[i]; if (r !~ /jobq/ || r ~ /batch/) continue; x = P99[r, "paced"]
        if (x == "" || x == "NA") printf "  %-44s FAILED                  MISSED\n", r " paced p99 <= 5 ms"
        else printf "  %-44s %8.2f ms              %s\n", r " paced p99 <= 5 ms", x, (x <= 5 ? "met" : "MISSED") }
    for (k = 0; k < 2; k++) { s = (k ? "-p8" : ""); a = "pg-jobq-full" s; b = "pg-river" s
        if (!(a in W) || !(b in W)) printf "  %-44s n/a (row failed)       MISSED\n", "WAL B/job " a " <= " b
        else printf "  %-44s %.1f vs %.1f  %s\n", "WAL B/job " a " <= " b, W[a], W[b], (W[a] <= W[b] ? "met" : "MISSED") }
}
AWK
for r in "${!FAILED[@]}"; do echo "FAILED $r: ${FAILED[$r]}"; done | sort
