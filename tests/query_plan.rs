//! The hot queries are index seeks, however many jobs the file holds:
//! a queue file made through the API is opened with rusqlite and the plans
//! of the statements of store/mod.rs are checked with EXPLAIN QUERY PLAN.
//! Checked on a fresh file (no statistics) and after ANALYZE on a file with
//! thousands of jobs in several queues and states (statistics can change
//! SQLite's choices).

use std::time::Duration;

use jobq::{Config, Durability, PutOptions, Queue};
use rusqlite::types::Value;
use rusqlite::Connection;

/// The reserve's inner query (store::reserve), with its pause check.
const NEXT_READY: &str = "SELECT id FROM jobs WHERE queue = ?1 AND state = 0
        AND NOT EXISTS (SELECT 1 FROM queues WHERE name = ?1 AND paused <> 0)
    ORDER BY priority, id LIMIT 1";
/// The whole reserve statement (store::reserve).
const RESERVE: &str = "UPDATE jobs SET state = 1, attempts = attempts + 1, lease_token = lease_token + 1,
        run_at = ?2 + lease_ms, lease_until = ?2 + lease_ms, lease_owner = ?3, updated_at = ?2
    WHERE id = (SELECT id FROM jobs WHERE queue = ?1 AND state = 0
                  AND NOT EXISTS (SELECT 1 FROM queues WHERE name = ?1 AND paused <> 0)
                ORDER BY priority, id LIMIT 1)
    RETURNING id, attempts, lease_token, lease_ms, payload";
/// Promotion of due scheduled jobs (store::promote_due).
const PROMOTE_SCHEDULED: &str = "UPDATE jobs SET state = 0 WHERE queue = ?1 AND state = 3 AND run_at <= ?2";
/// Promotion of expired leases (store::promote_due), shortened to its WHERE.
const PROMOTE_EXPIRED: &str = "UPDATE jobs SET
        state = CASE WHEN attempts >= max_attempts THEN 2 ELSE 0 END,
        run_at = ?2, lease_until = NULL, lease_owner = NULL, updated_at = ?2
    WHERE queue = ?1 AND state = 1 AND run_at <= ?2";
/// Whether anything is due, run before those two (store::promote_due).
const ANY_DUE: &str = "SELECT EXISTS (SELECT 1 FROM jobs WHERE queue = ?1 AND state = 3 AND run_at <= ?2),
        EXISTS (SELECT 1 FROM jobs WHERE queue = ?1 AND state = 1 AND run_at <= ?2)";
/// The same conditions as plain selects.
const DUE_SCHEDULED: &str = "SELECT id FROM jobs WHERE queue = ?1 AND state = 3 AND run_at <= ?2";
const DUE_EXPIRED: &str = "SELECT id FROM jobs WHERE queue = ?1 AND state = 1 AND run_at <= ?2";
/// A keyed put's duplicate check (store::live_unique).
const LIVE_UNIQUE: &str = "SELECT id FROM jobs WHERE queue = ?1 AND unique_key = ?2 AND unique_key IS NOT NULL
    AND state IN (0, 1, 3)";
/// When a waiting reserve must look again (store::next_due).
const NEXT_DUE: &str = "SELECT min(run_at) FROM (
        SELECT min(run_at) AS run_at FROM jobs WHERE queue = ?1 AND state = 3
        UNION ALL
        SELECT min(run_at) FROM jobs WHERE queue = ?1 AND state = 1)";

/// A limited queue's live leases (sqlite::sql::reserved_now, for max_reserved).
const RESERVED_NOW: &str = "SELECT count(*) FROM jobs WHERE queue = ?1 AND state = 1 AND run_at > ?2";
/// A queue's limits (sqlite::sql::limits), read by every reserve.
const LIMITS: &str = "SELECT max_reserved, rate_jobs, rate_per_ms, window_start, window_count
    FROM queue_limits WHERE queue = ?1";

/// Dead jobs of a queue, oldest first (store::kick).
const KICK_CANDIDATES: &str = "SELECT id FROM jobs WHERE queue = ?1 AND state = 2 AND id > ?2 ORDER BY id LIMIT ?3";

/// The ready head of a queue (sqlite::sql::ready_head, for reserve_any and
/// peek ready), with the queue in ?1 and the time in ?2 here.
const READY_HEAD: &str = "SELECT priority, id FROM (SELECT priority, id FROM (
        SELECT priority, id FROM jobs WHERE queue = ?1 AND state = 0 ORDER BY priority, id LIMIT 1)
    UNION ALL SELECT priority, id FROM jobs WHERE queue = ?1 AND state = 3 AND run_at <= ?2
    UNION ALL SELECT priority, id FROM jobs
        WHERE queue = ?1 AND state = 1 AND run_at <= ?2 AND attempts < max_attempts)
    ORDER BY priority, id LIMIT 1";
/// The scheduled job due soonest (sqlite::sql::peek_sql, Scheduled).
const PEEK_SCHEDULED: &str =
    "SELECT id FROM jobs WHERE queue = ?1 AND state = 3 AND run_at > ?2 ORDER BY run_at, id LIMIT 1";
/// The job kicked by kick_job (sqlite::sql::kick_job), shortened to its WHERE.
const KICK_JOB: &str = "UPDATE jobs SET state = 0, run_at = ?2 WHERE id = ?2
    AND (state = 2 OR (state = 1 AND run_at <= ?2 AND attempts >= max_attempts) OR (state = 3 AND run_at > ?2))";

/// The detail lines of EXPLAIN QUERY PLAN for `sql`, with ?1 bound to a
/// queue name and the other parameters to a time in ms (text columns give
/// the number text affinity, so an index on them stays usable).
fn plan(conn: &Connection, sql: &str) -> Vec<String> {
    let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let params: Vec<Value> = (1..=st.parameter_count())
        .map(|i| if i == 1 { Value::Text("big".into()) } else { Value::Integer(1_700_000_000_000) })
        .collect();
    st.query_map(rusqlite::params_from_iter(params), |r| r.get::<_, String>(3)).unwrap().map(Result::unwrap).collect()
}

/// Asserts that `sql` searches `jobs` through `index` and neither scans the
/// table nor sorts in a temporary b-tree.
fn assert_uses(conn: &Connection, what: &str, sql: &str, index: &str) {
    let lines = plan(conn, sql);
    println!("{what}:\n  {}", lines.join("\n  "));
    assert!(
        lines.iter().any(|l| l.starts_with("SEARCH jobs USING") && l.contains(&format!("INDEX {index} ("))),
        "{what} does not search index {index}: {lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains("TEMP B-TREE")), "{what} sorts in a temp b-tree: {lines:?}");
    assert!(!lines.iter().any(|l| l.starts_with("SCAN jobs")), "{what} scans the jobs table: {lines:?}");
}

fn check_hot_queries(conn: &Connection) {
    assert_uses(conn, "next ready job", NEXT_READY, "jobs_ready");
    assert_uses(conn, "reserve", RESERVE, "jobs_ready");
    assert_uses(conn, "promote scheduled", PROMOTE_SCHEDULED, "jobs_scheduled");
    assert_uses(conn, "promote expired", PROMOTE_EXPIRED, "jobs_leased");
    assert_uses(conn, "anything due (scheduled)", ANY_DUE, "jobs_scheduled");
    assert_uses(conn, "anything due (leased)", ANY_DUE, "jobs_leased");
    assert_uses(conn, "due scheduled", DUE_SCHEDULED, "jobs_scheduled");
    assert_uses(conn, "due expired", DUE_EXPIRED, "jobs_leased");
    assert_uses(conn, "unique key check", LIVE_UNIQUE, "jobs_unique");
    assert_uses(conn, "next due (scheduled)", NEXT_DUE, "jobs_scheduled");
    assert_uses(conn, "next due (leased)", NEXT_DUE, "jobs_leased");
    assert_uses(conn, "kick candidates", KICK_CANDIDATES, "jobs_dead");
    assert_uses(conn, "live leases of a limited queue", RESERVED_NOW, "jobs_leased");
    assert_uses(conn, "peek scheduled", PEEK_SCHEDULED, "jobs_scheduled");
    // The ready head: each of its three parts searches its state's index
    // (only the few candidates it finds are sorted), nothing scans.
    let head = plan(conn, READY_HEAD);
    println!("ready head:\n  {}", head.join("\n  "));
    for index in ["jobs_ready", "jobs_scheduled", "jobs_leased"] {
        assert!(head.iter().any(|l| l.contains(&format!("INDEX {index} ("))), "ready head: no {index}: {head:?}");
    }
    assert!(!head.iter().any(|l| l.starts_with("SCAN jobs")), "ready head scans jobs: {head:?}");
    // kick_job finds its row by id.
    let kick = plan(conn, KICK_JOB);
    assert!(kick.iter().any(|l| l.contains("INTEGER PRIMARY KEY (rowid=?)")), "{kick:?}");
    // The limits of a queue: one primary-key probe.
    let limits = plan(conn, LIMITS);
    assert!(limits.iter().any(|l| l.starts_with("SEARCH queue_limits USING PRIMARY KEY (queue=?)")), "{limits:?}");
    // The reserve's outer UPDATE finds its row by rowid.
    let reserve = plan(conn, RESERVE);
    assert!(reserve.iter().any(|l| l.contains("INTEGER PRIMARY KEY (rowid=?)")), "{reserve:?}");
    // Its pause check is one primary-key probe of queues, not a scan, and
    // not correlated with the job (evaluated once, not per candidate row).
    for sql in [NEXT_READY, RESERVE] {
        let lines = plan(conn, sql);
        assert!(lines.iter().any(|l| l.starts_with("SEARCH queues USING PRIMARY KEY (name=?)")), "{lines:?}");
        assert!(!lines.iter().any(|l| l.starts_with("SCAN queues")), "{lines:?}");
        assert!(!lines.iter().any(|l| l.starts_with("CORRELATED")), "{lines:?}");
    }
}

fn config() -> Config {
    Config { durability: Durability::Normal, ..Config::default() }
}

#[test]
fn hot_queries_use_their_indexes_on_a_fresh_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.db");
    let q = Queue::open(&path, config()).unwrap();
    q.put("q", b"x", &PutOptions::default()).unwrap();
    let conn = Connection::open(&path).unwrap();
    let has_stats: i64 =
        conn.query_row("SELECT count(*) FROM sqlite_schema WHERE name = 'sqlite_stat1'", [], |r| r.get(0)).unwrap();
    println!("sqlite_stat1 present: {}", has_stats > 0);
    check_hot_queries(&conn);
    drop(conn);
    q.close().unwrap();
}

#[test]
fn hot_queries_use_their_indexes_after_analyze_on_a_full_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan-full.db");
    let q = Queue::open(&path, config()).unwrap();
    let payloads: Vec<Vec<u8>> = (0..500).map(|i| format!("job {i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    let mut held = Vec::new();
    // Skewed on purpose: one big queue, mostly ready, with every state present.
    for (queue, batches) in [("big", 8), ("small", 1), ("other", 1)] {
        for b in 0..batches {
            let opts =
                PutOptions { priority: b % 3, delay_ms: if b == 1 { 3_600_000 } else { 0 }, ..PutOptions::default() };
            q.put_batch(queue, &refs, &opts).unwrap();
        }
        for i in 0..20 {
            let job = q.reserve(queue, Some(Duration::ZERO)).unwrap().unwrap();
            if i % 2 == 0 {
                job.bury(None).unwrap();
            } else {
                held.push(job); // stays reserved
            }
        }
    }
    for i in 0..50 {
        let key = PutOptions { unique_key: Some(format!("key {i}")), ..PutOptions::default() };
        q.put("big", b"keyed", &key).unwrap();
    }
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("ANALYZE").unwrap();
    let jobs: i64 = conn.query_row("SELECT count(*) FROM jobs", [], |r| r.get(0)).unwrap();
    println!("jobs in the file: {jobs}");
    check_hot_queries(&conn);
    drop(conn);
    q.close().unwrap();
}

/// Not asserted: plans of the administrative statements, printed for review.
#[test]
fn print_plans_of_administrative_statements() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan-admin.db");
    let q = Queue::open(&path, config()).unwrap();
    let conn = Connection::open(&path).unwrap();
    for (what, sql) in [
        ("kick candidates", "SELECT id FROM jobs WHERE queue = ?1 AND state = 2 AND id > ?2 ORDER BY id LIMIT 256"),
        ("cancel", "DELETE FROM jobs WHERE id = ?1 AND NOT (state = 1 AND run_at > ?2)"),
        (
            "lease owners",
            "SELECT DISTINCT lease_owner FROM jobs WHERE queue = ?1 AND state = 1 AND lease_owner IS NOT NULL
             AND lease_owner != ?2",
        ),
    ] {
        println!("{what}:\n  {}", plan(&conn, sql).join("\n  "));
    }
    drop(conn);
    q.close().unwrap();
}
