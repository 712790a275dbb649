//! PostgreSQL: the server killed under load. See docs/durability-testing.md.
//!
//! On a throwaway cluster of its own (never the shared server): producers
//! (put, put_batch) and consumers (reserve, ack) run in this process while
//! every process of the cluster is stopped at one moment and killed
//! (SIGSTOP, then SIGKILL: postmaster and backends alike, as a power loss
//! would, though the OS and its page cache survive). The server is started
//! again (crash recovery) and the store checked like a SQLite crash image
//! (tests/powerloss/check.rs): every put and batch that returned OK is
//! there unless its ack had begun, no id or payload twice, batches all or
//! nothing, stats = listing.
//!
//! Durability "full" must lose nothing; with "normal" (synchronous_commit
//! off) commits still in the server's WAL buffers (shared memory, not yet
//! written to the OS) may be lost: the test reports how many.
//! `JOBQ_POWERLOSS_PG_ROUNDS=N` kills the server N times per durability (default 2).

#[path = "powerloss/check.rs"]
mod check;
#[path = "support/pg.rs"]
mod pg;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use check::{check_queue, Confirmed, Tally, QUEUE};
use jobq::{Config, Durability, PutOptions, Queue};
use pg::{with_schema, TempCluster};

fn rounds() -> u64 {
    std::env::var("JOBQ_POWERLOSS_PG_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2)
}

/// Confirmation lines (check.rs's format) and the calls that failed.
#[derive(Default)]
struct Log {
    lines: Vec<String>,
    errors: u64,
}

fn record(log: &Mutex<Log>, line: String) {
    log.lock().unwrap_or_else(PoisonError::into_inner).lines.push(line);
}

fn failed(log: &Mutex<Log>) {
    log.lock().unwrap_or_else(PoisonError::into_inner).errors += 1;
}

/// One round: load on schema `schema`, the cluster killed after `kill_after`,
/// restarted, checked. Returns the confirmed puts and failed calls.
fn round(
    cluster: &TempCluster,
    schema: &str,
    durability: Durability,
    kill_after: Duration,
    t: &mut Tally,
) -> (usize, u64) {
    let url = with_schema(&cluster.url("", "test"), schema);
    let config = Config { durability, ..Config::default() };
    let q = Queue::open(&url, config.clone()).unwrap();
    let log = Arc::new(Mutex::new(Log::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for p in 0..3u64 {
        let (q, log, stop) = (q.clone(), log.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let opts = PutOptions::default();
            for i in 0u64.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                if i % 3 == 2 {
                    let n = 2 + (i * 7 + p) % 7;
                    let prefix = format!("b{p}:{i}");
                    let payloads: Vec<Vec<u8>> = (0..n).map(|j| format!("{prefix}:{j}:{n}").into_bytes()).collect();
                    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
                    match q.put_batch(QUEUE, &refs, &opts) {
                        Ok(ids) => {
                            let ids: Vec<String> = ids.iter().map(|p| p.id().to_string()).collect();
                            record(&log, format!("B {} {prefix}", ids.join(",")));
                        }
                        Err(_) => failed(&log),
                    }
                } else {
                    let payload = format!("p{p}:{i}");
                    match q.put(QUEUE, payload.as_bytes(), &opts) {
                        Ok(put) => record(&log, format!("P {} {payload}", put.id())),
                        Err(_) => failed(&log),
                    }
                }
            }
        }));
    }
    for _ in 0..2 {
        let (q, log, stop) = (q.clone(), log.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match q.reserve(QUEUE, Some(Duration::from_millis(20))) {
                    Ok(Some(job)) => {
                        record(&log, format!("T {} {}", job.id(), String::from_utf8_lossy(job.payload())));
                        if job.ack().is_err() {
                            failed(&log);
                        }
                    }
                    Ok(None) => {}
                    Err(_) => {
                        failed(&log);
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
        }));
    }
    std::thread::sleep(kill_after);
    let killed = cluster.kill_all();
    // Calls in flight fail now (or already did): let the threads see that.
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::SeqCst);
    for th in threads {
        th.join().unwrap();
    }
    drop(q);
    let started = Instant::now();
    cluster.pg_ctl("start");
    let restart = started.elapsed();
    let log = std::mem::take(&mut *log.lock().unwrap_or_else(PoisonError::into_inner));
    let mut confirmed = Confirmed::default();
    log.lines.iter().for_each(|l| confirmed.line(l));
    let q = Queue::open(&url, config).unwrap();
    let before = (t.lost, t.checked);
    check_queue(&q, &confirmed, t, &format!("{schema} (killed {killed} processes after {kill_after:?})"));
    t.images += 1;
    q.close().unwrap();
    eprintln!(
        "powerloss-pg {durability:?} {schema}: killed {killed} server processes after {kill_after:?}, restarted in {:.1}s; {} confirmed puts, {} lost, {} calls failed after the kill",
        restart.as_secs_f64(),
        t.checked - before.1,
        t.lost - before.0,
        log.errors
    );
    (confirmed.puts.len(), log.errors)
}

fn scenario(durability: Durability) -> Tally {
    let cluster = TempCluster::start_trust();
    let mut t = Tally::default();
    for r in 0..rounds() {
        let kill_after = Duration::from_millis(300 + 150 * r);
        let (puts, _) = round(&cluster, &format!("jobq_pl_{r}"), durability, kill_after, &mut t);
        assert!(puts > 0, "round {r}: no put returned OK before the kill");
    }
    eprintln!("powerloss-pg {durability:?}: {}", t.summary());
    for n in &t.notes {
        eprintln!("  {n}");
    }
    t
}

/// Durability "full": a killed server loses nothing that was confirmed.
#[test]
fn killed_postmaster_full_loses_nothing_confirmed() {
    let t = scenario(Durability::Full);
    t.assert_consistent("pg full");
    assert_eq!(t.lost, 0, "pg full: confirmed puts lost: {:?}", t.notes);
}

/// Durability "normal" (synchronous_commit off): consistent; losses are
/// reported, not asserted (they depend on where the WAL writer was).
#[test]
fn killed_postmaster_normal_stays_consistent() {
    let t = scenario(Durability::Normal);
    t.assert_consistent("pg normal");
}
