//! SQL of the admin and inspection operations: listing and showing jobs
//! with the state the contract gives them, purging dead jobs, and
//! compacting the file.
//!
//! A row's state as the caller sees it is computed from the stored state and
//! `run_at` at time `now`, exactly as `store::counts` computes the stats: a
//! scheduled job whose time has come is ready, a reserved job whose lease
//! expired is ready again (or dead, if that was its last allowed attempt).

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};

use crate::error::Result;
use crate::store::{JobFilter, JobInfo, JobState};

/// The effective state, as the stats count it (`?1` is now). Answers 0
/// ready, 1 scheduled, 2 reserved, 3 dead, 4 done (see `JobState::from_code`;
/// expired done rows are filtered out by `IS_GONE`).
const EFFECTIVE_STATE: &str = "CASE
    WHEN state = 4 THEN 4
    WHEN state = 0 OR (state = 3 AND run_at <= ?1)
        OR (state = 1 AND run_at <= ?1 AND attempts < max_attempts) THEN 0
    WHEN state = 3 THEN 1
    WHEN state = 1 AND run_at > ?1 THEN 2
    ELSE 3 END";

// One condition per effective state (`?1` is now), shared with the stats
// (sql::counts) so that a listing and the counts can never disagree.
use super::sql::{IS_DEAD, IS_DONE, IS_GONE, IS_READY, IS_RESERVED, IS_SCHEDULED};

fn condition(state: JobState) -> &'static str {
    match state {
        JobState::Ready => IS_READY,
        JobState::Scheduled => IS_SCHEDULED,
        JobState::Reserved => IS_RESERVED,
        JobState::Dead => IS_DEAD,
        JobState::Done => IS_DONE,
    }
}

fn select(payload_max: Option<u64>) -> String {
    // substr() on a BLOB counts bytes; reading a prefix keeps a listing of
    // large payloads cheap.
    let (payload, result) = match payload_max {
        Some(n) => (format!("substr(payload, 1, {n})"), format!("substr(result, 1, {n})")),
        None => ("payload".to_owned(), "result".to_owned()),
    };
    format!(
        "SELECT id, queue, {EFFECTIVE_STATE}, priority, attempts, max_attempts, run_at, lease_ms,
                lease_until, lease_owner, unique_key, {payload}, length(payload), created_at,
                updated_at, last_error, result IS NOT NULL, {result}
         FROM jobs"
    )
}

fn job_row(r: &Row<'_>) -> rusqlite::Result<JobInfo> {
    Ok(JobInfo {
        id: r.get::<_, i64>(0)? as u64,
        queue: r.get(1)?,
        state: JobState::from_code(r.get(2)?),
        priority: r.get(3)?,
        attempts: r.get::<_, i64>(4)? as u32,
        max_attempts: r.get::<_, i64>(5)? as u32,
        run_at: r.get(6)?,
        lease_ms: r.get::<_, i64>(7)? as u64,
        lease_until: r.get(8)?,
        lease_owner: r.get(9)?,
        unique_key: r.get(10)?,
        // A zero-length BLOB reads back as NULL from substr().
        payload: r.get::<_, Option<Vec<u8>>>(11)?.unwrap_or_default(),
        payload_len: r.get::<_, i64>(12)? as u64,
        created_at: r.get(13)?,
        updated_at: r.get(14)?,
        last_error: r.get(15)?,
        // As for the payload, substr() of a zero-length BLOB is NULL: an
        // empty result stays an empty result, not a missing one.
        result: if r.get::<_, bool>(16)? { Some(r.get::<_, Option<Vec<u8>>>(17)?.unwrap_or_default()) } else { None },
    })
}

/// Jobs matching `q` at time `now`, in id order.
pub(crate) fn list(conn: &Connection, q: &JobFilter, now: i64) -> Result<Vec<JobInfo>> {
    let mut sql = select(q.payload_max);
    let mut args: Vec<Value> = vec![Value::Integer(now), Value::Integer(q.after_id.min(i64::MAX as u64) as i64)];
    sql.push_str(&format!(" WHERE id > ?2 AND NOT {IS_GONE}"));
    if let Some(queue) = &q.queue {
        args.push(Value::Text(queue.clone()));
        sql.push_str(&format!(" AND queue = ?{}", args.len()));
    }
    if let Some(state) = q.state {
        sql.push_str(" AND ");
        sql.push_str(condition(state));
    }
    sql.push_str(" ORDER BY id");
    if let Some(limit) = q.limit {
        args.push(Value::Integer(limit.min(i64::MAX as u64) as i64));
        sql.push_str(&format!(" LIMIT ?{}", args.len()));
    }
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st.query_map(params_from_iter(args), job_row)?.collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// One job, whole, or `None`.
pub(crate) fn get(conn: &Connection, id: u64, now: i64) -> Result<Option<JobInfo>> {
    let sql = format!("{} WHERE id = ?2 AND NOT {IS_GONE}", select(None));
    let row = conn.prepare_cached(&sql)?.query_row(params![now, id.min(i64::MAX as u64) as i64], job_row).optional()?;
    Ok(row)
}

/// The first job of `queue` in `state` at time `now` (`Store::peek`), read
/// in one statement.
pub(crate) fn peek(conn: &Connection, queue: &str, state: JobState, now: i64) -> Result<Option<JobInfo>> {
    let sql = format!("{} WHERE id = ({})", select(None), super::sql::peek_sql(state)?);
    let row = conn.prepare_cached(&sql)?.query_row(params![now, queue], job_row).optional()?;
    Ok(row)
}

/// Deletes the jobs of `queue` that are dead at time `now` (including those
/// whose last allowed attempt's lease ran out). Returns how many.
pub(crate) fn purge_dead(conn: &Connection, queue: &str, now: i64) -> Result<u64> {
    let sql = format!("DELETE FROM jobs WHERE queue = ?2 AND {IS_DEAD}");
    Ok(conn.prepare_cached(&sql)?.execute(params![now, queue])? as u64)
}

/// The largest job id ever given out (0 for a new file). Ids are never
/// reused (AUTOINCREMENT), so its growth counts puts.
pub(crate) fn last_job_id(conn: &Connection) -> Result<u64> {
    let id: Option<i64> = conn
        .prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = 'jobs'")?
        .query_row([], |r| r.get(0))
        .optional()?;
    Ok(id.unwrap_or(0).max(0) as u64)
}

/// Moves the WAL into the file, rebuilds the file without free pages, and
/// empties the WAL again. Must run outside a transaction. Returns whether
/// the final checkpoint was complete (another process reading an old
/// snapshot can keep part of the WAL alive).
pub(crate) fn compact(conn: &Connection) -> Result<bool> {
    let checkpoint = || -> Result<bool> {
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        Ok(busy == 0)
    };
    checkpoint()?;
    conn.execute_batch("VACUUM")?;
    checkpoint()
}
