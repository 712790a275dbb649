//! The SQLite schema, its version checks, and one function per statement
//! the backend runs.
//!
//! Job states as stored. The stored state is a cache of the contract's
//! conditions: "ready" is `PENDING`, or `SCHEDULED` whose `run_at` has
//! passed, or `RESERVED` whose lease (`run_at`) has expired. A reserve first
//! promotes due rows so that the ready index holds exactly the ready jobs
//! and "next ready job by (priority, id)" is one index seek, however many
//! delayed jobs wait.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use crate::config::{Config, Durability};
use crate::error::{Error, Result};
use crate::qconfig::{LimitsPatch, QueueLimits, Rate, Stored};
use crate::store::{Delivery, DueSchedule, Finish, JobState, NewJob, NewSchedule, QueueCounts, ScheduleInfo};

// The SQL below spells these numbers out: 0 pending, 1 reserved, 2 dead,
// 3 scheduled, 4 done (acked and kept: schema version 3).
pub(crate) const PENDING: i64 = 0;
pub(crate) const SCHEDULED: i64 = 3;

/// `PRAGMA application_id` of a jobq file: "jobq" in ASCII.
const APPLICATION_ID: i64 = 0x6a6f_6271;
/// The page size of new files (existing files keep theirs).
const PAGE_SIZE: u32 = 1024;
/// Bumped on every schema change that older jobq builds must not ignore;
/// stored in `PRAGMA user_version`. 1: the first; 2: `queues.paused` (an
/// older build would deliver from a paused queue, so it refuses the file);
/// 3: `schedules` (periodic jobs; an older build would not fire them) and
/// `queue_limits` (an older build would deliver past a queue's limits), and
/// done jobs and results (`SCHEMA_V3_RESULTS`: an older build would list
/// done jobs as dead and never prune them, so the file would grow).
/// An open by this build upgrades an older file in place (`upgrade`).
pub(crate) const SCHEMA_VERSION: i64 = 3;

/// Schema version 3, periodic jobs (`jobq_schedule`): one row per schedule,
/// names global to the file. `next_slot` is when its next job is due (NULL:
/// its spec matches no time any more); a fire advances it by
/// compare-and-set and inserts the job in the same transaction. Run by
/// the fresh-create path and by `upgrade`.
const SCHEMA_V3_SCHEDULES: &str = "
CREATE TABLE IF NOT EXISTS schedules (
    name         TEXT    PRIMARY KEY,
    queue        TEXT    NOT NULL,
    spec         TEXT    NOT NULL,
    payload      BLOB    NOT NULL,
    priority     INTEGER NOT NULL,
    delay_ms     INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    lease_ms     INTEGER NOT NULL,
    next_slot    INTEGER,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS schedules_next ON schedules (next_slot) WHERE next_slot IS NOT NULL;
";

/// Schema v3, per-queue limits (`Queue::configure`): one row per queue that
/// has a limit (none for the others, whose claims then read no limits row
/// state), with its fixed rate window (see qconfig.rs). Both in a new
/// file's schema and in the upgrade of an older one.
const LIMITS_DDL: &str = "
CREATE TABLE IF NOT EXISTS queue_limits (
    queue        TEXT PRIMARY KEY,
    -- NULL: no cap on the jobs reserved with a live lease at once
    max_reserved INTEGER,
    -- NULL (both): no rate limit; else at most rate_jobs per rate_per_ms
    rate_jobs    INTEGER,
    rate_per_ms  INTEGER,
    -- the current (or last) rate window: when it opened, deliveries in it
    window_start INTEGER NOT NULL DEFAULT 0,
    window_count INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    queue        TEXT    NOT NULL,
    state        INTEGER NOT NULL,
    priority     INTEGER NOT NULL,
    -- PENDING/SCHEDULED: when it may run; RESERVED: when the lease ends.
    run_at       INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    lease_ms     INTEGER NOT NULL,
    lease_until  INTEGER,
    -- Counts deliveries; a finish must present the token of the current one.
    lease_token  INTEGER NOT NULL DEFAULT 0,
    lease_owner  TEXT,
    unique_key   TEXT,
    payload      BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    last_error   TEXT
);
CREATE TABLE IF NOT EXISTS queues (
    name       TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    -- 1: paused, no job of the queue is delivered (schema version 2)
    paused     INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
-- Partial indexes, one per state that a hot query looks for: a row is in
-- at most one of them, so each state change touches few index pages.
CREATE INDEX IF NOT EXISTS jobs_ready     ON jobs (queue, priority, id) WHERE state = 0;
CREATE INDEX IF NOT EXISTS jobs_leased    ON jobs (queue, run_at)       WHERE state = 1;
CREATE INDEX IF NOT EXISTS jobs_dead      ON jobs (queue, id)           WHERE state = 2;
CREATE INDEX IF NOT EXISTS jobs_scheduled ON jobs (queue, run_at)       WHERE state = 3;
CREATE UNIQUE INDEX IF NOT EXISTS jobs_unique ON jobs (queue, unique_key)
    WHERE unique_key IS NOT NULL AND state IN (0, 1, 3);
";

/// Schema version 3, results and retention (docs/results.md): run on a new
/// file after `SCHEMA`, and by `upgrade` on a file of version 1 or 2.
/// A done job (state 4: acked through a handle with keep_done_ms > 0) keeps
/// its row with `result` until `run_at`, its expiry; the pruning (`prune_done`)
/// finds expired ones through `jobs_done`. State 4 is in none of the other
/// partial indexes: never claimed, and its unique key is free
/// (`jobs_unique` covers states 0, 1, 3 only).
const SCHEMA_V3_RESULTS: &str = "
ALTER TABLE jobs ADD COLUMN result BLOB;
CREATE INDEX IF NOT EXISTS jobs_done ON jobs (run_at) WHERE state = 4;
";

/// A connection whose close, like every other use of SQLite, stays out of
/// the way of fork() (see fork.rs). Derefs to the rusqlite connection.
pub(crate) struct Conn(Option<Connection>);

impl std::ops::Deref for Conn {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match &self.0 {
            Some(c) => c,
            None => unreachable!("a Conn holds its connection until dropped"),
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let _quiet = crate::fork::quiet();
        drop(self.0.take());
    }
}

/// Opens a connection with the pragmas every jobq connection uses.
pub(crate) fn connect(path: &Path, config: &Config) -> Result<Conn> {
    let _quiet = crate::fork::quiet();
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    // The VFS that writes a transaction's WAL frames at once (wal_gather.rs);
    // the default one if it could not be registered.
    let conn = match crate::ffi::vfs::vfs_name() {
        Ok(vfs) => Connection::open_with_flags_and_vfs(path, flags, vfs),
        Err(_) => Connection::open_with_flags(path, flags),
    }
    .map_err(|e| open_error(path, e))?;
    conn.busy_timeout(Duration::from_millis(config.busy_timeout_ms))?;
    conn.set_prepared_statement_cache_capacity(64);
    let sync = match config.durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    // Checkpoints run on their own thread (checkpoint.rs), not inside a commit.
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {sync}; PRAGMA foreign_keys = OFF; PRAGMA wal_autocheckpoint = 0;"
    ))
    .map_err(|e| open_error(path, e))?;
    Ok(Conn(Some(conn)))
}

fn open_error(path: &Path, e: rusqlite::Error) -> Error {
    match Error::from(e) {
        Error::Io(m) => Error::Io(format!("{}: {m}", path.display())),
        Error::Corrupt(m) => Error::Corrupt(format!("{}: {m}", path.display())),
        Error::Internal(m) => Error::Io(format!("{}: {m}", path.display())),
        other => other,
    }
}

/// Checks that the file is a jobq database of a version we understand, and
/// creates the schema in a new, empty file. Runs once per open. A foreign
/// or newer file is refused before anything is written to it.
pub(crate) fn prepare_schema(conn: &Connection, path: &Path) -> Result<()> {
    let _quiet = crate::fork::quiet();
    let corrupt = |e: Error| match e {
        Error::Internal(m) => Error::Corrupt(format!("{}: {m}", path.display())),
        other => other,
    };
    if let Some(version) = check_identity(conn, path).map_err(corrupt)? {
        set_wal(conn, path)?;
        if version < SCHEMA_VERSION {
            upgrade(conn, path)?;
        }
        return Ok(());
    }
    // A new, empty file: switch to WAL (a header write), then create the
    // schema unless another process did so meanwhile. Small pages: jobs are
    // small rows, and every commit writes each page it touched to the WAL
    // in full, so 1 KiB pages cut the bytes written per job about fourfold
    // (measured: +65% cycle throughput at durability "normal").
    conn.execute_batch(&format!("PRAGMA page_size = {PAGE_SIZE}"))?;
    set_wal(conn, path)?;
    conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| corrupt(e.into()))?;
    let result = (|| {
        if check_identity(conn, path)?.is_none() {
            conn.execute_batch(SCHEMA)?;
            conn.execute_batch(SCHEMA_V3_SCHEDULES)?;
            conn.execute_batch(LIMITS_DDL)?;
            conn.execute_batch(SCHEMA_V3_RESULTS)?;
            conn.execute_batch(&format!(
                "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
            ))?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT").map_err(Error::from),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// `Ok(Some(version))`: a jobq file we can use (perhaps after `upgrade`);
/// `Ok(None)`: an empty file.
fn check_identity(conn: &Connection, path: &Path) -> Result<Option<i64>> {
    let app_id: i64 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
    if app_id == 0 && version == 0 && tables == 0 {
        return Ok(None);
    }
    if app_id != APPLICATION_ID {
        return Err(Error::Corrupt(format!(
            "{}: an SQLite database, but not a jobq queue file (application_id {app_id:#x})",
            path.display()
        )));
    }
    if version > SCHEMA_VERSION {
        return Err(Error::Version { found: version, supported: SCHEMA_VERSION });
    }
    if version < 1 {
        return Err(Error::Corrupt(format!("{}: jobq file without a schema version", path.display())));
    }
    Ok(Some(version))
}

/// Brings a file of an older schema version to `SCHEMA_VERSION`, in one
/// write transaction (concurrent opens of other processes wait for it and
/// then find the new version). Processes of an older jobq that have the
/// file open keep working (SQLite re-prepares their statements); new opens
/// by an older jobq are refused with `Version`.
fn upgrade(conn: &Connection, path: &Path) -> Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version < 2 {
            conn.execute_batch("ALTER TABLE queues ADD COLUMN paused INTEGER NOT NULL DEFAULT 0")?;
        }
        // Schema v3: done jobs and results, schedules, per-queue limits.
        if version < 3 {
            conn.execute_batch(SCHEMA_V3_RESULTS)?;
            conn.execute_batch(SCHEMA_V3_SCHEDULES)?;
            conn.execute_batch(LIMITS_DDL)?;
        }
        if version < SCHEMA_VERSION {
            conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT").map_err(Error::from),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(match e {
                Error::Internal(m) => Error::Corrupt(format!("{}: cannot upgrade the schema: {m}", path.display())),
                other => other,
            })
        }
    }
}

fn set_wal(conn: &Connection, path: &Path) -> Result<()> {
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Io(format!(
            "{}: cannot switch to WAL mode (got {mode}); is the file or its directory read-only?",
            path.display()
        )));
    }
    Ok(())
}

/// Records that `queue` exists (queues are created on first use and listed
/// by stats even when empty).
pub(crate) fn add_queue(conn: &Connection, queue: &str, now: i64) -> Result<()> {
    conn.prepare_cached("INSERT OR IGNORE INTO queues (name, created_at) VALUES (?1, ?2)")?
        .execute(params![queue, now])?;
    Ok(())
}

/// Pauses `queue` (recording it if new) or resumes it (a queue never
/// recorded stays so).
pub(crate) fn set_paused(conn: &Connection, queue: &str, paused: bool, now: i64) -> Result<()> {
    if paused {
        conn.prepare_cached(
            "INSERT INTO queues (name, created_at, paused) VALUES (?1, ?2, 1)
             ON CONFLICT (name) DO UPDATE SET paused = 1",
        )?
        .execute(params![queue, now])?;
    } else {
        conn.prepare_cached("UPDATE queues SET paused = 0 WHERE name = ?1")?.execute(params![queue])?;
    }
    Ok(())
}

const LIMITS_COLUMNS: &str = "max_reserved, rate_jobs, rate_per_ms, window_start, window_count";

fn stored_of(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Stored> {
    let n = |v: Option<i64>| v.map(|v| v.max(0) as u64);
    let rate = match (n(r.get(at + 1)?), n(r.get(at + 2)?)) {
        (Some(jobs), Some(per_ms)) => Some(Rate { jobs, per_ms }),
        _ => None,
    };
    Ok(Stored {
        limits: QueueLimits { max_reserved: n(r.get(at)?), rate },
        window_start: r.get(at + 3)?,
        window_count: r.get::<_, i64>(at + 4)?.max(0) as u64,
    })
}

/// The limits of `queue`, if it has any (one primary-key probe).
pub(crate) fn limits(conn: &Connection, queue: &str) -> Result<Option<Stored>> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| format!("SELECT {LIMITS_COLUMNS} FROM queue_limits WHERE queue = ?1"));
    Ok(conn.prepare_cached(sql)?.query_row(params![queue], |r| stored_of(r, 0)).optional()?)
}

/// Every limited queue's limits.
pub(crate) fn all_limits(conn: &Connection) -> Result<Vec<(String, Stored)>> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| format!("SELECT queue, {LIMITS_COLUMNS} FROM queue_limits"));
    let rows = conn
        .prepare_cached(sql)?
        .query_map([], |r| Ok((r.get::<_, String>(0)?, stored_of(r, 1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// Jobs of `queue` reserved with a live lease at `now` (after `promote_due`,
/// every reserved row of the queue: a range of the `jobs_leased` index).
pub(crate) fn reserved_now(conn: &Connection, queue: &str, now: i64) -> Result<u64> {
    let mut st = conn.prepare_cached("SELECT count(*) FROM jobs WHERE queue = ?1 AND state = 1 AND run_at > ?2")?;
    Ok(st.query_row(params![queue, now], |r| r.get::<_, i64>(0))?.max(0) as u64)
}

/// Stores the rate window of `queue` after a claim.
pub(crate) fn set_window(conn: &Connection, queue: &str, (start, count): (i64, u64)) -> Result<()> {
    conn.prepare_cached("UPDATE queue_limits SET window_start = ?2, window_count = ?3 WHERE queue = ?1")?
        .execute(params![queue, start, count.min(i64::MAX as u64) as i64])?;
    Ok(())
}

/// Applies `patch` to the limits of `queue`: a queue left without limits
/// has no row; setting a limit records the queue. A removed rate forgets
/// its window. Returns whether the queue has limits now (then it is recorded).
pub(crate) fn set_limits(conn: &Connection, queue: &str, patch: &LimitsPatch, now: i64) -> Result<bool> {
    let old = limits(conn, queue)?.unwrap_or_default();
    let new = patch.apply(old.limits);
    if new.is_empty() {
        conn.prepare_cached("DELETE FROM queue_limits WHERE queue = ?1")?.execute(params![queue])?;
        return Ok(false);
    }
    add_queue(conn, queue, now)?;
    let (start, count) = if new.rate.is_some() { (old.window_start, old.window_count) } else { (0, 0) };
    let i = |v: Option<u64>| v.map(|v| v.min(i64::MAX as u64) as i64);
    conn.prepare_cached(
        "INSERT OR REPLACE INTO queue_limits (queue, max_reserved, rate_jobs, rate_per_ms, window_start, window_count)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        queue,
        i(new.max_reserved),
        i(new.rate.map(|r| r.jobs)),
        i(new.rate.map(|r| r.per_ms)),
        start,
        count.min(i64::MAX as u64) as i64
    ])?;
    Ok(true)
}

/// The id of the live (not acked, cancelled or dead) job holding `key` in `queue`.
pub(crate) fn live_unique(conn: &Connection, queue: &str, key: &str) -> Result<Option<u64>> {
    let mut st = conn.prepare_cached(
        "SELECT id FROM jobs WHERE queue = ?1 AND unique_key = ?2 AND unique_key IS NOT NULL
         AND state IN (0, 1, 3)",
    )?;
    Ok(st.query_row(params![queue, key], |r| r.get::<_, i64>(0)).optional()?.map(|id| id as u64))
}

pub(crate) fn insert(conn: &Connection, job: &NewJob, payload: &[u8], now: i64) -> Result<u64> {
    let mut st = conn.prepare_cached(
        "INSERT INTO jobs (queue, state, priority, run_at, max_attempts, lease_ms, unique_key,
                           payload, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
    )?;
    let run_at = run_at(job, now);
    let state = if run_at > now { SCHEDULED } else { PENDING };
    st.execute(params![
        &*job.queue,
        state,
        job.priority,
        run_at,
        job.max_attempts,
        job.lease_ms as i64,
        job.unique_key.as_deref(),
        payload,
        now
    ])?;
    Ok(conn.last_insert_rowid() as u64)
}

/// When a job put at `now` may first run.
fn run_at(job: &NewJob, now: i64) -> i64 {
    now.saturating_add(job.delay_ms.min(i64::MAX as u64) as i64)
}

/// Rows per multi-row INSERT of `insert_many` (its statement is cached).
const INSERT_CHUNK: usize = 50;

/// Inserts one job per payload, all with `job`'s other fields (batches
/// have no unique key: the caller passes none); returns
/// the ids in order. Full chunks go through one cached multi-row INSERT
/// (a third of the cost per row of one INSERT each, measured with 100-byte
/// payloads), the rest one by one.
pub(crate) fn insert_many(conn: &Connection, job: &NewJob, payloads: &[Vec<u8>], now: i64) -> Result<Vec<u64>> {
    let run_at = run_at(job, now);
    let state = if run_at > now { SCHEDULED } else { PENDING };
    let queue: &str = &job.queue;
    let mut ids = Vec::with_capacity(payloads.len());
    let mut chunks = payloads.chunks_exact(INSERT_CHUNK);
    for chunk in chunks.by_ref() {
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let mut st = conn.prepare_cached(SQL.get_or_init(|| multi_insert_sql(INSERT_CHUNK)))?;
        let fixed: [&dyn rusqlite::ToSql; 7] =
            [&queue, &state, &job.priority, &run_at, &job.max_attempts, &(job.lease_ms as i64), &now];
        for (i, v) in fixed.iter().enumerate() {
            st.raw_bind_parameter(i + 1, v)?;
        }
        for (i, p) in chunk.iter().enumerate() {
            st.raw_bind_parameter(i + 8, p)?;
        }
        st.raw_execute()?;
        // One statement inserts its rows with consecutive ids (no other
        // writer can run in between), the last of them last_insert_rowid.
        let last = conn.last_insert_rowid() as u64;
        let first = last + 1 - chunk.len() as u64;
        ids.extend(first..=last);
    }
    for payload in chunks.remainder() {
        ids.push(insert(conn, job, payload, now)?);
    }
    Ok(ids)
}

/// `INSERT INTO jobs ... VALUES (...), (...), ...` for `rows` rows: ?1-?7 are
/// the shared fields, ?8.. the payloads.
fn multi_insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO jobs (queue, state, priority, run_at, max_attempts, lease_ms, payload, created_at, updated_at) VALUES ",
    );
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("(?1, ?2, ?3, ?4, ?5, ?6, ?{}, ?7, ?7)", i + 8));
    }
    sql
}

/// Makes due jobs of `queue` ready: delays that passed, and leases that
/// expired (such a delivery counted an attempt; if it was the last one, the
/// job goes dead). Returns how many rows changed.
///
/// Every reserve runs this, and mostly nothing is due: one read-only
/// statement first looks whether anything is (two seeks of the partial
/// indexes), and each UPDATE runs only if its state has a due row. An
/// UPDATE that changes nothing still costs a statement transaction (a
/// savepoint opened and released, cursors on the table and all its
/// indexes): with the two of them, 9% of a put/reserve/ack cycle's CPU
/// (perf, bench/README.md). The check runs in the caller's write
/// transaction, like the UPDATEs: no other writer, of this process or
/// another, can commit in between, so the outcome is the same.
pub(crate) fn promote_due(conn: &Connection, queue: &str, now: i64) -> Result<usize> {
    let mut due = conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM jobs WHERE queue = ?1 AND state = 3 AND run_at <= ?2),
                EXISTS (SELECT 1 FROM jobs WHERE queue = ?1 AND state = 1 AND run_at <= ?2)",
    )?;
    let (any_scheduled, any_expired) =
        due.query_row(params![queue, now], |r| Ok((r.get::<_, bool>(0)?, r.get::<_, bool>(1)?)))?;
    let mut changed = 0;
    if any_scheduled {
        changed += conn
            .prepare_cached("UPDATE jobs SET state = 0 WHERE queue = ?1 AND state = 3 AND run_at <= ?2")?
            .execute(params![queue, now])?;
    }
    if any_expired {
        changed += conn
            .prepare_cached(
                "UPDATE jobs SET
            state = CASE WHEN attempts >= max_attempts THEN 2 ELSE 0 END,
            last_error = CASE WHEN attempts >= max_attempts
                THEN 'lease expired on the last allowed attempt (' || attempts || ')'
                ELSE 'lease expired' END,
            run_at = ?2, lease_until = NULL, lease_owner = NULL, updated_at = ?2
         WHERE queue = ?1 AND state = 1 AND run_at <= ?2",
            )?
            .execute(params![queue, now])?;
    }
    Ok(changed)
}

/// Leases the ready job of `queue` with the smallest (priority, id); the
/// caller made due rows ready first (`promote_due`) and checked the limits.
/// Nothing while the queue is paused: the flag is read by the same
/// statement, in the same write transaction, so no process delivers after
/// a pause committed (one primary-key probe of `queues`, not correlated
/// with the job, so SQLite evaluates it once per statement).
pub(crate) fn claim_next(conn: &Connection, queue: &str, now: i64, owner: &str) -> Result<Option<Delivery>> {
    let mut st = conn.prepare_cached(
        "UPDATE jobs SET state = 1, attempts = attempts + 1, lease_token = lease_token + 1,
                run_at = ?2 + lease_ms, lease_until = ?2 + lease_ms, lease_owner = ?3, updated_at = ?2
         WHERE id = (SELECT id FROM jobs WHERE queue = ?1 AND state = 0
                       AND NOT EXISTS (SELECT 1 FROM queues WHERE name = ?1 AND paused <> 0)
                     ORDER BY priority, id LIMIT 1)
         RETURNING id, attempts, lease_token, lease_ms, payload",
    )?;
    let row = st
        .query_row(params![queue, now, owner], |r| {
            Ok(Delivery {
                id: r.get::<_, i64>(0)? as u64,
                attempt: r.get::<_, i64>(1)? as u32,
                token: r.get(2)?,
                lease_ms: r.get::<_, i64>(3)? as u64,
                payload: r.get(4)?,
            })
        })
        .optional()?;
    Ok(row)
}

/// Makes ready (or dead, on their last attempt) the jobs of `queue` whose
/// lease holder is a process of this machine that has exited, without
/// waiting for their leases to run out. Returns (jobs reclaimed, whether
/// live processes other than `me` hold leases in this queue).
pub(crate) fn reclaim_dead_owners(
    conn: &Connection,
    queue: &str,
    now: i64,
    me: &str,
    is_dead: impl Fn(&str) -> bool,
) -> Result<(usize, bool)> {
    let owners: Vec<String> = conn
        .prepare_cached(
            "SELECT DISTINCT lease_owner FROM jobs
             WHERE queue = ?1 AND state = 1 AND lease_owner IS NOT NULL AND lease_owner != ?2",
        )?
        .query_map(params![queue, me], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut reclaimed = 0;
    let mut others_alive = false;
    for owner in owners {
        if !is_dead(&owner) {
            others_alive = true;
            continue;
        }
        reclaimed += conn
            .prepare_cached(
                "UPDATE jobs SET
                    state = CASE WHEN attempts >= max_attempts THEN 2 ELSE 0 END,
                    last_error = 'the process holding the job (' || lease_owner || ') exited during attempt '
                        || attempts || CASE WHEN attempts >= max_attempts
                            THEN ', the last allowed attempt' ELSE '' END,
                    run_at = ?2, lease_until = NULL, lease_owner = NULL, updated_at = ?2
                 WHERE queue = ?1 AND state = 1 AND lease_owner = ?3",
            )?
            .execute(params![queue, now, owner])?;
    }
    Ok((reclaimed, others_alive))
}

/// When something next becomes due in `queue` (a delay ends or a lease expires).
pub(crate) fn next_due(conn: &Connection, queue: &str) -> Result<Option<i64>> {
    let mut st = conn.prepare_cached(
        "SELECT min(run_at) FROM (
            SELECT min(run_at) AS run_at FROM jobs WHERE queue = ?1 AND state = 3
            UNION ALL
            SELECT min(run_at) FROM jobs WHERE queue = ?1 AND state = 1)",
    )?;
    Ok(st.query_row(params![queue], |r| r.get::<_, Option<i64>>(0))?)
}

/// Applies `finish` to delivery (`id`, `token`). `Ok(false)`: that delivery is
/// no longer current: the job is gone or was delivered again (new token).
/// A delivery whose lease expired but which nobody received since may still
/// finish, whether or not the expiry was already applied to its row: the
/// token alone decides, so the answer does not depend on when promotion ran.
/// A job that is dead (buried, or its lease expired on its last attempt) can
/// still be acked or buried by its holder, but not brought back to life by
/// fail, release or touch: its unique key may belong to a new job by now.
/// (The `Job` handle refuses a second finish of its own delivery itself.)
pub(crate) fn finish(conn: &Connection, id: u64, token: i64, finish: &Finish, now: i64) -> Result<bool> {
    let id = id as i64;
    let changed = match finish {
        Finish::Ack => {
            // A done job (kept by an earlier ack of this delivery) is finished.
            conn.prepare_cached("DELETE FROM jobs WHERE id = ?1 AND lease_token = ?2 AND state != 4")?
                .execute(params![id, token])?
        }
        // Like the DELETE of Ack, but kept (a second ack of the delivery
        // finds it done: stale). run_at becomes the expiry.
        Finish::AckKeep { result, keep_ms } => conn
            .prepare_cached(
                "UPDATE jobs SET state = 4, run_at = ?3, result = ?4, lease_until = NULL, lease_owner = NULL,
                    updated_at = ?5
                 WHERE id = ?1 AND lease_token = ?2 AND state != 4",
            )?
            .execute(params![id, token, now.saturating_add(*keep_ms as i64), result.as_deref(), now])?,
        Finish::Fail { reason, delay_ms } => conn
            .prepare_cached(
                "UPDATE jobs SET state = CASE WHEN attempts >= max_attempts THEN 2 ELSE 3 END,
                    run_at = CASE WHEN attempts >= max_attempts THEN ?4 ELSE ?3 END,
                    last_error = ?5, lease_until = NULL, lease_owner = NULL, updated_at = ?4
                 WHERE id = ?1 AND lease_token = ?2
                   AND state != 2 AND NOT (state = 1 AND run_at <= ?4 AND attempts >= max_attempts)",
            )?
            .execute(params![id, token, now + *delay_ms as i64, now, reason.as_deref().unwrap_or("failed")])?,
        // A priority (?5, NULL: keep) changes in the same statement.
        Finish::Release { delay_ms, priority } => conn
            .prepare_cached(
                "UPDATE jobs SET state = CASE WHEN ?3 > 0 THEN 3 ELSE 0 END, run_at = ?4 + ?3,
                    attempts = max(attempts - 1, 0), lease_until = NULL, lease_owner = NULL,
                    updated_at = ?4, priority = coalesce(?5, priority)
                 WHERE id = ?1 AND lease_token = ?2
                   AND state != 2 AND NOT (state = 1 AND run_at <= ?4 AND attempts >= max_attempts)",
            )?
            .execute(params![id, token, *delay_ms as i64, now, priority])?,
        Finish::Touch { lease_ms } => conn
            .prepare_cached(
                "UPDATE jobs SET state = 1, run_at = ?4 + CASE WHEN ?3 > 0 THEN ?3 ELSE lease_ms END,
                    lease_until = ?4 + CASE WHEN ?3 > 0 THEN ?3 ELSE lease_ms END, updated_at = ?4
                 WHERE id = ?1 AND lease_token = ?2
                   AND state != 2 AND NOT (state = 1 AND run_at <= ?4 AND attempts >= max_attempts)",
            )?
            .execute(params![id, token, *lease_ms as i64, now])?,
        Finish::Bury { reason, priority } => conn
            .prepare_cached(
                "UPDATE jobs SET state = 2, run_at = ?3, last_error = ?4, lease_until = NULL,
                    lease_owner = NULL, updated_at = ?3, priority = coalesce(?5, priority)
                 WHERE id = ?1 AND lease_token = ?2",
            )?
            .execute(params![id, token, now, reason.as_deref().unwrap_or("buried"), priority])?,
    };
    Ok(changed == 1)
}

/// Dead -> ready, oldest first, attempts reset. A dead job whose unique key
/// is now held by a live job stays dead (reviving it would make two).
pub(crate) fn kick(conn: &Connection, queue: &str, max: u64, now: i64) -> Result<u64> {
    // A lease that expired on its last attempt made its job dead already.
    promote_due(conn, queue, now)?;
    let mut kicked = 0u64;
    let mut after = 0i64;
    let mut candidates =
        conn.prepare_cached("SELECT id FROM jobs WHERE queue = ?1 AND state = 2 AND id > ?2 ORDER BY id LIMIT ?3")?;
    let mut revive = conn.prepare_cached(
        "UPDATE jobs SET state = 0, attempts = 0, run_at = ?2, updated_at = ?2 WHERE id = ?1 AND state = 2",
    )?;
    while kicked < max {
        // One sorted read per page; pages are large so a big kick sorts rarely.
        let page = (max - kicked).min(10_000) as i64;
        let ids: Vec<i64> =
            candidates.query_map(params![queue, after, page], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        let full_page = ids.len() as i64 == page;
        for id in ids {
            after = id;
            match revive.execute(params![id, now]) {
                Ok(n) => kicked += n as u64,
                // Its unique key is held by a live job: it stays dead.
                Err(rusqlite::Error::SqliteFailure(f, _))
                    if f.code == rusqlite::ffi::ErrorCode::ConstraintViolation => {}
                Err(e) => return Err(e.into()),
            }
        }
        if !full_page {
            break;
        }
    }
    Ok(kicked)
}

/// Job `id` -> ready now if it is dead (attempts reset, as `kick` does) or
/// scheduled with its time still to come (attempts kept). Returns its queue
/// when it moved; `None` when it is in no such state (or is missing); the
/// caller finds out which. A dead job whose unique key a live job holds
/// fails the unique index: `State`.
pub(crate) fn kick_job(conn: &Connection, id: u64, now: i64) -> Result<Option<String>> {
    let id = id.min(i64::MAX as u64) as i64;
    let mut st = conn.prepare_cached(&format!(
        "UPDATE jobs SET state = 0, attempts = CASE WHEN {IS_DEAD_AT_2} THEN 0 ELSE attempts END,
            run_at = ?2, lease_until = NULL, lease_owner = NULL, updated_at = ?2
         WHERE id = ?1 AND ({IS_DEAD_AT_2} OR (state = 3 AND run_at > ?2))
         RETURNING queue"
    ))?;
    match st.query_row(params![id, now], |r| r.get::<_, String>(0)).optional() {
        Ok(queue) => Ok(queue),
        Err(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ffi::ErrorCode::ConstraintViolation => {
            Err(Error::State(format!(
                "job {id} is dead and its unique key is held by a live job of its queue; it stays dead"
            )))
        }
        Err(e) => Err(e.into()),
    }
}

/// `IS_DEAD` with now in `?2`.
const IS_DEAD_AT_2: &str = "(state = 2 OR (state = 1 AND run_at <= ?2 AND attempts >= max_attempts))";

/// The ready candidates of queue `?2` at time `?1`, as (priority, id):
/// the head of the ready index, plus due rows not yet promoted (passed
/// delays, expired leases that are not the last allowed attempt), which a
/// reserve promotes first. Few of the latter: every reserve promotes them.
const READY_CANDIDATES: &str = "SELECT priority, id FROM (
        SELECT priority, id FROM jobs WHERE queue = ?2 AND state = 0 ORDER BY priority, id LIMIT 1)
    UNION ALL SELECT priority, id FROM jobs WHERE queue = ?2 AND state = 3 AND run_at <= ?1
    UNION ALL SELECT priority, id FROM jobs
        WHERE queue = ?2 AND state = 1 AND run_at <= ?1 AND attempts < max_attempts";

/// The (priority, id) of the job of `queue` a reserve would deliver at
/// `now` (pause and limits aside), if any.
pub(crate) fn ready_head(conn: &Connection, queue: &str, now: i64) -> Result<Option<(i32, u64)>> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql =
        SQL.get_or_init(|| format!("SELECT priority, id FROM ({READY_CANDIDATES}) ORDER BY priority, id LIMIT 1"));
    let row = conn
        .prepare_cached(sql)?
        .query_row(params![now, queue], |r| Ok((r.get::<_, i32>(0)?, r.get::<_, i64>(1)? as u64)))
        .optional()?;
    Ok(row)
}

/// A query of the id of the first job of queue `?2` in `state` at time
/// `?1` (see `Store::peek`).
pub(crate) fn peek_sql(state: JobState) -> Result<&'static str> {
    static READY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    Ok(match state {
        JobState::Ready => {
            READY.get_or_init(|| format!("SELECT id FROM ({READY_CANDIDATES}) ORDER BY priority, id LIMIT 1"))
        }
        JobState::Scheduled => {
            "SELECT id FROM jobs WHERE queue = ?2 AND state = 3 AND run_at > ?1 ORDER BY run_at, id LIMIT 1"
        }
        // run_at of a dead row is when it died; of a reserved row, when
        // its lease ends (so when an expired last lease made it dead).
        JobState::Dead => {
            "SELECT id FROM jobs WHERE queue = ?2
                AND (state = 2 OR (state = 1 AND run_at <= ?1 AND attempts >= max_attempts))
              ORDER BY run_at, id LIMIT 1"
        }
        JobState::Reserved | JobState::Done => {
            return Err(Error::invalid(format!("peek: no peek of {state} jobs (ready, scheduled or dead)")))
        }
    })
}

/// Removes a job that is not currently delivered.
pub(crate) fn cancel(conn: &Connection, id: u64, now: i64) -> Result<()> {
    let id = id as i64;
    let removed = conn
        .prepare_cached("DELETE FROM jobs WHERE id = ?1 AND NOT (state = 1 AND run_at > ?2)")?
        .execute(params![id, now])?;
    if removed == 1 {
        return Ok(());
    }
    let exists = conn
        .prepare_cached("SELECT 1 FROM jobs WHERE id = ?1")?
        .query_row(params![id], |_| Ok(()))
        .optional()?
        .is_some();
    if exists {
        Err(Error::State(format!("job {id} is reserved with a live lease; it cannot be cancelled now")))
    } else {
        Err(Error::NotFound(id as u64))
    }
}

// The contract's states as conditions on a row at time `?1` (now): a
// scheduled job whose time has come is ready; a reserved job whose lease
// expired is ready again, or dead if that was its last allowed attempt.
// The one definition used by the stats and the admin listing.
pub(crate) const IS_READY: &str = "(state = 0 OR (state = 3 AND run_at <= ?1)
    OR (state = 1 AND run_at <= ?1 AND attempts < max_attempts))";
pub(crate) const IS_SCHEDULED: &str = "(state = 3 AND run_at > ?1)";
pub(crate) const IS_RESERVED: &str = "(state = 1 AND run_at > ?1)";
pub(crate) const IS_DEAD: &str = "(state = 2 OR (state = 1 AND run_at <= ?1 AND attempts >= max_attempts))";
/// Done and not expired (an expired done job is gone, pruned or not).
pub(crate) const IS_DONE: &str = "(state = 4 AND run_at > ?1)";
/// Rows that no longer exist for the caller: done jobs past their expiry.
pub(crate) const IS_GONE: &str = "(state = 4 AND run_at <= ?1)";

/// Per-queue counts at time `now`, every queue ever used, in name order.
pub(crate) fn counts(conn: &Connection, now: i64) -> Result<Vec<(String, QueueCounts)>> {
    let mut all: std::collections::BTreeMap<String, QueueCounts> = conn
        .prepare_cached("SELECT name, paused FROM queues")?
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, QueueCounts { paused: r.get::<_, i64>(1)? != 0, ..QueueCounts::default() }))
        })?
        .collect::<rusqlite::Result<_>>()?;
    static COUNTS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = COUNTS.get_or_init(|| {
        format!(
            "SELECT queue, sum({IS_READY}), sum({IS_SCHEDULED}), sum({IS_RESERVED}), sum({IS_DEAD}),
                    sum({IS_DONE})
             FROM jobs GROUP BY queue ORDER BY queue"
        )
    });
    let mut st = conn.prepare_cached(sql)?;
    let rows = st.query_map(params![now], |r| {
        Ok((
            r.get::<_, String>(0)?,
            QueueCounts {
                ready: r.get::<_, i64>(1)? as u64,
                scheduled: r.get::<_, i64>(2)? as u64,
                reserved: r.get::<_, i64>(3)? as u64,
                dead: r.get::<_, i64>(4)? as u64,
                done: r.get::<_, i64>(5)? as u64,
                ..QueueCounts::default()
            },
        ))
    })?;
    for row in rows {
        let (name, c) = row?;
        let entry = all.entry(name).or_default();
        *entry = QueueCounts { paused: entry.paused, ..c };
    }
    for (name, stored) in all_limits(conn)? {
        all.entry(name).or_default().set_limits(&stored, now);
    }
    Ok(all.into_iter().collect())
}

/// Rows `prune_done` deletes per statement: one short write transaction
/// (a few ms at most), shared with whatever requests ride in its batch.
pub(crate) const PRUNE_BATCH: i64 = 500;

/// Whether any done job expired by `now` (a read through the jobs_done
/// index: the pruning writes only when there is something to delete).
pub(crate) fn done_expired(conn: &Connection, now: i64) -> Result<bool> {
    let mut st = conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM jobs WHERE state = 4 AND run_at <= ?1)")?;
    Ok(st.query_row(params![now], |r| r.get::<_, bool>(0))?)
}

/// Deletes up to `max` done jobs whose keep time passed by `now`, oldest
/// expiry first; how many.
pub(crate) fn prune_done(conn: &Connection, now: i64, max: i64) -> Result<usize> {
    let mut st = conn.prepare_cached(
        "DELETE FROM jobs WHERE id IN
            (SELECT id FROM jobs WHERE state = 4 AND run_at <= ?1 ORDER BY run_at LIMIT ?2)",
    )?;
    Ok(st.execute(params![now, max])?)
}

/// `PRAGMA data_version`: changes whenever another connection commits.
pub(crate) fn data_version(conn: &Connection) -> Result<i64> {
    let _quiet = crate::fork::quiet();
    Ok(conn.prepare_cached("PRAGMA data_version")?.query_row([], |r| r.get(0))?)
}

/// Stores schedule `s` (replacing the one of its name) and records its queue.
pub(crate) fn put_schedule(conn: &Connection, s: &NewSchedule, now: i64) -> Result<()> {
    add_queue(conn, &s.job.queue, now)?;
    conn.prepare_cached(
        "INSERT INTO schedules (name, queue, spec, payload, priority, delay_ms, max_attempts, lease_ms,
                                next_slot, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)
         ON CONFLICT (name) DO UPDATE SET queue = excluded.queue, spec = excluded.spec,
            payload = excluded.payload, priority = excluded.priority, delay_ms = excluded.delay_ms,
            max_attempts = excluded.max_attempts, lease_ms = excluded.lease_ms,
            next_slot = excluded.next_slot, updated_at = excluded.updated_at",
    )?
    .execute(params![
        s.name,
        &*s.job.queue,
        s.spec,
        s.payload,
        s.job.priority,
        s.job.delay_ms.min(i64::MAX as u64) as i64,
        s.job.max_attempts,
        s.job.lease_ms as i64,
        s.next_slot,
        now
    ])?;
    Ok(())
}

/// Deletes schedule `name`; whether there was one.
pub(crate) fn remove_schedule(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn.prepare_cached("DELETE FROM schedules WHERE name = ?1")?.execute(params![name])? == 1)
}

/// Every schedule, in name order.
pub(crate) fn schedules(conn: &Connection) -> Result<Vec<ScheduleInfo>> {
    let mut st = conn.prepare_cached(
        "SELECT name, queue, spec, next_slot, priority, delay_ms, max_attempts, lease_ms, length(payload)
         FROM schedules ORDER BY name",
    )?;
    let rows = st.query_map([], |r| {
        Ok(ScheduleInfo {
            name: r.get(0)?,
            queue: r.get(1)?,
            spec: r.get(2)?,
            next_ms: r.get(3)?,
            priority: r.get(4)?,
            delay_ms: r.get::<_, i64>(5)?.max(0) as u64,
            max_attempts: r.get::<_, i64>(6)?.clamp(0, u32::MAX as i64) as u32,
            lease_ms: r.get::<_, i64>(7)?.max(0) as u64,
            payload_len: r.get::<_, i64>(8)?.max(0) as u64,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The earliest next slot of any schedule.
pub(crate) fn next_schedule(conn: &Connection) -> Result<Option<i64>> {
    Ok(conn.prepare_cached("SELECT min(next_slot) FROM schedules")?.query_row([], |r| r.get(0))?)
}

/// Inside a write transaction: for each schedule due at `now`, advances
/// its slot (compare-and-set on the slot read) and, if that changed the
/// row, inserts its job. Returns how many jobs were put.
pub(crate) fn fire_due(conn: &Connection, now: i64) -> Result<u64> {
    let due: Vec<DueSchedule> = conn
        .prepare_cached("SELECT name, spec, next_slot FROM schedules WHERE next_slot <= ?1 ORDER BY next_slot, name")?
        .query_map(params![now], |r| Ok(DueSchedule { name: r.get(0)?, spec: r.get(1)?, slot: r.get(2)? }))?
        .collect::<rusqlite::Result<_>>()?;
    let mut fired = 0;
    for d in due {
        let advanced = conn
            .prepare_cached("UPDATE schedules SET next_slot = ?1, updated_at = ?2 WHERE name = ?3 AND next_slot = ?4")?
            .execute(params![d.next_slot(now), now, d.name, d.slot])?;
        if advanced != 1 {
            continue;
        }
        let inserted = conn
            .prepare_cached(
                "INSERT INTO jobs (queue, state, priority, run_at, max_attempts, lease_ms, payload, created_at,
                                   updated_at)
                 SELECT queue, CASE WHEN delay_ms > 0 THEN 3 ELSE 0 END, priority, ?2 + delay_ms, max_attempts,
                        lease_ms, payload, ?2, ?2
                 FROM schedules WHERE name = ?1",
            )?
            .execute(params![d.name, now])?;
        conn.prepare_cached(
            "INSERT OR IGNORE INTO queues (name, created_at) SELECT queue, ?2 FROM schedules WHERE name = ?1",
        )?
        .execute(params![d.name, now])?;
        fired += inserted as u64;
    }
    Ok(fired)
}
