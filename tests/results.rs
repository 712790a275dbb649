//! Results and retention on a queue file (docs/results.md): done jobs are
//! pruned in the background, so a file cycled for a long time with
//! `keep_done_ms` set stays bounded; a file of schema version 2 is upgraded
//! in place. (The C-level behaviour, on both backends, is
//! c_tests/test_results.c; the PostgreSQL pruning and bounded growth are in
//! src/store/postgres/tests.rs.)

use std::path::Path;
use std::time::{Duration, Instant};

use jobq::{Config, Durability, JobFilter, JobState, PutOptions, Queue};

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn wal(path: &Path) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push("-wal");
    p.into()
}

/// Rows in the file's jobs table (done or not, pruned rows gone), read
/// past the library.
fn rows(path: &Path, state: Option<i64>) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    match state {
        Some(s) => conn.query_row("SELECT count(*) FROM jobs WHERE state = ?1", [s], |r| r.get(0)).unwrap(),
        None => conn.query_row("SELECT count(*) FROM jobs", [], |r| r.get(0)).unwrap(),
    }
}

fn keep_config(keep_done_ms: u64) -> Config {
    Config { keep_done_ms, durability: Durability::Normal, ..Config::default() }
}

/// Cycles `n` jobs (put, reserve, ack_result) through a file with
/// keep_done_ms 50 and checks that the file, its WAL and its rows stay
/// bounded: each done job lives 50 ms plus at most a pruning round. Prints
/// the sizes at intervals. Without pruning, `n` done rows of ~150 bytes
/// would stay in the file.
fn cycles_stay_bounded(n: u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cycled.db");
    let q = Queue::open(&path, keep_config(50)).unwrap();
    let result = [b'r'; 64];
    let started = Instant::now();
    let every = n / 10;
    let mut samples = Vec::new();
    for i in 1..=n {
        q.put("cycle", b"a payload of some thirty bytes", &PutOptions::default()).unwrap();
        let job = q.reserve("cycle", Some(Duration::ZERO)).unwrap().expect("the job just put");
        job.ack_result(&result).unwrap();
        if i % every == 0 {
            let (db, wal, rows) = (size(&path), size(&wal(&path)), rows(&path, None));
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{i:>7} cycles, {secs:6.1} s ({:.0}/s): file {db:>9} B, WAL {wal:>9} B, rows {rows}",
                i as f64 / secs
            );
            samples.push((db, wal, rows));
        }
    }
    let (first_db, first_wal, _) = samples[1];
    let (last_db, last_wal, _) = *samples.last().unwrap();
    let max_rows = samples.iter().map(|s| s.2).max().unwrap();
    // The rows alive at a moment: what was acked in the last keep time plus
    // a pruning round or two (200 ms each under load), generously.
    assert!(max_rows < (n as i64 / 4).max(5_000), "rows {max_rows} of {n} cycled");
    // Once the first pruning rounds ran, the file reuses freed pages and the
    // WAL restarts at each complete checkpoint: neither keeps growing.
    let slack = 512 * 1024;
    assert!(last_db <= first_db * 2 + slack, "file grew {first_db} -> {last_db}");
    // The WAL's size is its high-water mark (it restarts from its start
    // after a complete checkpoint, without shrinking): what one checkpoint
    // interval (200 ms) of cycles writes, ~7 KiB a cycle, and more whenever
    // a checkpoint lags on a CPU-starved machine (CI saw 4.2 MB at 40k
    // cycles, 11.3 MB at 60k, then flat to 200k). What must not happen is
    // growth with the cycles: with no complete checkpoint every cycle adds
    // its ~7 KiB for good (35 MB for 5k cycles, 1.4 GB for 200k). So: below
    // 3 KiB a cycle, and no higher at the end than twice the highest mark
    // of the first half. Only judged on a long run (the release run of
    // 200k cycles): a run of a few seconds can lie wholly inside one lagging
    // checkpoint on a loaded machine.
    if n >= 50_000 {
        let first_half_max = samples[..samples.len() / 2].iter().map(|s| s.1).max().unwrap_or(first_wal);
        assert!(last_wal <= n * 3 * 1024, "WAL {last_wal} B after {n} cycles");
        assert!(last_wal <= first_half_max * 2 + 4 * slack, "WAL grew {first_half_max} -> {last_wal}");
    }
    // And once the cycling stops, the pruning catches up with the rest.
    let deadline = Instant::now() + Duration::from_secs(10);
    while rows(&path, Some(4)) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(rows(&path, Some(4)), 0, "expired done rows left after 10 s idle");
    q.close().unwrap();
}

/// The bounded-growth check, sized for `cargo test` (debug builds cycle a
/// few thousand jobs a second here). The 200k-cycle run is
/// `many_cycles_stay_bounded`, which .ci/run runs in release.
#[test]
fn cycled_file_stays_bounded() {
    cycles_stay_bounded(5_000);
}

/// 200,000 cycles (about 60 s in release on a loaded 2-core machine): run by .ci/run
/// with `cargo test --release --test results -- --ignored`.
#[test]
#[ignore = "200k cycles: run in release (.ci/run does)"]
fn many_cycles_stay_bounded() {
    cycles_stay_bounded(200_000);
}

#[test]
fn done_jobs_are_pruned_in_the_background_and_hidden_at_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pruned.db");
    let q = Queue::open(&path, keep_config(300)).unwrap();
    let ids: Vec<u64> = (0..50).map(|_| q.put("p", b"x", &PutOptions::default()).unwrap().id()).collect();
    // Kept 300 ms from each ack: all still there while less than that
    // passed since the first (unless the machine stalls; then unchecked).
    let first_ack = Instant::now();
    while let Some(job) = q.reserve("p", Some(Duration::ZERO)).unwrap() {
        job.ack_result(b"ok").unwrap();
    }
    let done = JobFilter { state: Some(JobState::Done), ..JobFilter::default() };
    if first_ack.elapsed() < Duration::from_millis(200) {
        assert_eq!(q.stats().unwrap().queues["p"].done, 50);
        assert_eq!(q.list_jobs(&done).unwrap().len(), 50);
        assert_eq!(q.job(ids[0]).unwrap().result.as_deref(), Some(&b"ok"[..]));
    }
    std::thread::sleep(Duration::from_millis(320));
    // Past the expiry: gone for every reader, pruned or not.
    assert_eq!(q.stats().unwrap().queues["p"].done, 0);
    assert!(q.list_jobs(&done).unwrap().is_empty());
    assert!(q.list_jobs(&JobFilter::default()).unwrap().is_empty());
    assert_eq!(q.job(ids[0]), Err(jobq::Error::NotFound(ids[0])));
    // And the rows go, with no call on the handle (the idle checkpoint
    // thread prunes about once a second).
    let deadline = Instant::now() + Duration::from_secs(5);
    while rows(&path, None) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(rows(&path, None), 0);
    q.close().unwrap();
}

/// A file of schema version 2 (before results), as jobq wrote it.
const SCHEMA_V2: &str = "
PRAGMA page_size = 1024;
PRAGMA journal_mode = WAL;
CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    queue        TEXT    NOT NULL,
    state        INTEGER NOT NULL,
    priority     INTEGER NOT NULL,
    run_at       INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    lease_ms     INTEGER NOT NULL,
    lease_until  INTEGER,
    lease_token  INTEGER NOT NULL DEFAULT 0,
    lease_owner  TEXT,
    unique_key   TEXT,
    payload      BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    last_error   TEXT
);
CREATE TABLE queues (
    name       TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    paused     INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX jobs_ready     ON jobs (queue, priority, id) WHERE state = 0;
CREATE INDEX jobs_leased    ON jobs (queue, run_at)       WHERE state = 1;
CREATE INDEX jobs_dead      ON jobs (queue, id)           WHERE state = 2;
CREATE INDEX jobs_scheduled ON jobs (queue, run_at)       WHERE state = 3;
CREATE UNIQUE INDEX jobs_unique ON jobs (queue, unique_key)
    WHERE unique_key IS NOT NULL AND state IN (0, 1, 3);
PRAGMA application_id = 1785684593;
PRAGMA user_version = 2;
INSERT INTO queues (name, created_at, paused) VALUES ('old', 1700000000000, 0);
INSERT INTO jobs (queue, state, priority, run_at, max_attempts, lease_ms, payload, created_at, updated_at)
    VALUES ('old', 0, 0, 1700000000000, 25, 30000, X'6f6c64206a6f62', 1700000000000, 1700000000000);
INSERT INTO jobs (queue, state, priority, run_at, max_attempts, lease_ms, payload, created_at, updated_at, last_error)
    VALUES ('old', 2, 0, 1700000000000, 1, 30000, X'64656164', 1700000000000, 1700000000000, 'gone');
";

#[test]
fn a_file_of_schema_2_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.db");
    rusqlite::Connection::open(&path).unwrap().execute_batch(SCHEMA_V2).unwrap();
    let q = Queue::open(&path, keep_config(600_000)).unwrap();
    let stats = q.stats().unwrap();
    assert_eq!((stats.queues["old"].ready, stats.queues["old"].dead, stats.queues["old"].done), (1, 1, 0));
    let job = q.reserve("old", Some(Duration::ZERO)).unwrap().expect("the version 2 job");
    assert_eq!(job.payload(), b"old job");
    job.ack_result(b"upgraded").unwrap();
    let info = q.job(job.id()).unwrap();
    assert_eq!((info.state, info.result.as_deref()), (JobState::Done, Some(&b"upgraded"[..])));
    q.close().unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v, 3, "upgraded: a jobq that knows only version 2 now refuses the file");
    let index: i64 =
        conn.query_row("SELECT count(*) FROM sqlite_schema WHERE name = 'jobs_done'", [], |r| r.get(0)).unwrap();
    assert_eq!(index, 1);
    drop(conn);
    // Opened again (no second upgrade): the done job and the dead one are there.
    let q = Queue::open(&path, Config::default()).unwrap();
    assert_eq!(q.stats().unwrap().queues["old"].done, 1);
    assert_eq!(q.stats().unwrap().queues["old"].dead, 1);
    q.close().unwrap();
}

#[test]
fn keep_done_ms_zero_deletes_at_ack_and_results_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zero.db");
    let q = Queue::open(&path, Config::default()).unwrap();
    let id = q.put("z", b"x", &PutOptions::default()).unwrap().id();
    let job = q.reserve("z", Some(Duration::ZERO)).unwrap().unwrap();
    let too_big = vec![0u8; 64 * 1024 + 1];
    assert!(matches!(job.ack_result(&too_big), Err(jobq::Error::TooBig { .. })));
    assert_eq!(q.job(id).unwrap().state, JobState::Reserved, "nothing stored, still reserved");
    job.ack_result(&too_big[..64 * 1024]).unwrap();
    assert_eq!(q.job(id), Err(jobq::Error::NotFound(id)));
    assert_eq!(rows(&path, None), 0);
    q.close().unwrap();
}
