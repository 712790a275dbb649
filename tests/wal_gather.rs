//! The SQLite store writes a transaction's WAL frames with one write
//! (src/store/sqlite/wal_gather.rs) instead of two per page, and what it writes is what
//! other connections (and other programs, with SQLite's default VFS) read.

use std::sync::Mutex;
use std::time::Duration;

use jobq::{Config, Durability, PutOptions, Queue};

/// The write count is per process: the tests of this file run one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Write syscalls of this process so far (`syscw` of /proc/self/io).
fn write_syscalls() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").expect("/proc/self/io (Linux)");
    io.lines()
        .find_map(|l| l.strip_prefix("syscw: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("syscw in /proc/self/io")
}

/// A put is one transaction of several 1 KiB pages (the job row, the ready
/// index, the AUTOINCREMENT counter): with two writes per page it costs
/// about 8 write calls; gathered, one (plus the checkpointer's, which copies
/// pages into the database file now and then).
#[test]
fn a_put_costs_about_one_write_call() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gather.db");
    let config = Config { durability: Durability::Normal, ..Config::default() };
    let q = Queue::open(&path, config).unwrap();
    let opts = PutOptions::default();
    for i in 0..50 {
        q.put("warm", format!("warm {i}").as_bytes(), &opts).unwrap();
    }
    const PUTS: u64 = 2000;
    let before = write_syscalls();
    for i in 0..PUTS {
        q.put("jobs", format!("job {i} {}", "x".repeat(80)).as_bytes(), &opts).unwrap();
    }
    let per_put = (write_syscalls() - before) as f64 / PUTS as f64;
    println!("{per_put:.2} write calls per put");
    assert!(per_put < 2.5, "{per_put:.2} write calls per put: the WAL frames are not gathered");
    q.close().unwrap();
}

/// Transactions larger than the gathering buffer (1 MiB) are written in
/// parts, and large ones that SQLite spills before COMMIT read back their
/// own frames: a batch of 3 MB, then single puts, all read back by a
/// second handle, and counted by a plain rusqlite connection (SQLite's
/// default VFS) on the same file.
#[test]
fn large_and_small_transactions_read_back_everywhere() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.db");
    let config = Config { durability: Durability::Full, ..Config::default() };
    let q = Queue::open(&path, config.clone()).unwrap();
    let opts = PutOptions::default();
    let big: Vec<Vec<u8>> = (0..300u32).map(|i| format!("{i:05}").into_bytes().repeat(2000)).collect();
    let refs: Vec<&[u8]> = big.iter().map(|p| p.as_slice()).collect();
    q.put_batch("big", &refs, &opts).unwrap();
    for i in 0..100u32 {
        q.put("big", format!("small {i}").as_bytes(), &opts).unwrap();
    }
    let raw = rusqlite::Connection::open(&path).unwrap();
    let n: i64 = raw.query_row("SELECT count(*) FROM jobs WHERE queue = 'big'", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 400);
    let other = Queue::open(&path, config).unwrap();
    for i in 0..300u32 {
        let job = other.reserve("big", Some(Duration::ZERO)).unwrap().expect("a job of the batch");
        assert_eq!(job.payload(), format!("{i:05}").into_bytes().repeat(2000).as_slice());
        job.ack().unwrap();
    }
    for i in 0..100u32 {
        let job = other.reserve("big", Some(Duration::ZERO)).unwrap().expect("a small job");
        assert_eq!(job.payload(), format!("small {i}").as_bytes());
        job.ack().unwrap();
    }
    assert!(other.reserve("big", Some(Duration::ZERO)).unwrap().is_none());
    other.close().unwrap();
    q.close().unwrap();
    drop(raw);
    // The file passes SQLite's own check after all of it.
    let raw = rusqlite::Connection::open(&path).unwrap();
    let check: String = raw.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
}
