//! The admin and inspection API of `Queue`: list and show jobs, purge dead
//! jobs, compact the file. It serves the `jobq` operator command, and is
//! safe to use on a file that other threads and processes are working.
//!
//! Reads go through a connection of their own, opened per call: they never
//! take the write lock, so inspecting a busy file does not slow its writers,
//! and an admin call is rare enough that the open is not worth caching.
//! Writes (purge) go through the writer like every other write.

use crate::error::{Error, Result};
use crate::queue::{check_queue_name, Queue};
use crate::store;
use crate::store::admin::{self as sql, EffectiveState, JobRow, ListQuery};

/// A job's state as seen at one moment; the same classification as `Stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// May be delivered now: new, due after a delay or backoff, or its lease expired.
    Ready,
    /// Waiting for a delay or a retry backoff to pass.
    Scheduled,
    /// Delivered, with a live lease.
    Reserved,
    /// Out of attempts, or buried; stays until kicked or purged.
    Dead,
}

impl JobState {
    pub const ALL: [JobState; 4] = [JobState::Ready, JobState::Scheduled, JobState::Reserved, JobState::Dead];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Ready => "ready",
            JobState::Scheduled => "scheduled",
            JobState::Reserved => "reserved",
            JobState::Dead => "dead",
        }
    }

    fn to_store(self) -> EffectiveState {
        match self {
            JobState::Ready => EffectiveState::Ready,
            JobState::Scheduled => EffectiveState::Scheduled,
            JobState::Reserved => EffectiveState::Reserved,
            JobState::Dead => EffectiveState::Dead,
        }
    }

    fn from_store(state: EffectiveState) -> JobState {
        match state {
            EffectiveState::Ready => JobState::Ready,
            EffectiveState::Scheduled => JobState::Scheduled,
            EffectiveState::Reserved => JobState::Reserved,
            EffectiveState::Dead => JobState::Dead,
        }
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JobState {
    type Err = Error;
    fn from_str(s: &str) -> Result<JobState> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| Error::invalid(format!("unknown job state {s:?} (ready, scheduled, reserved or dead)")))
    }
}

/// Which jobs `Queue::list_jobs` returns. `Default`: every job, whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only this queue.
    pub queue: Option<String>,
    /// Only jobs in this state now.
    pub state: Option<JobState>,
    /// Only jobs with a larger id (to page through a long listing).
    pub after_id: u64,
    /// At most this many jobs; `None` = no limit.
    pub limit: Option<u64>,
    /// Read at most this many bytes of each payload (`JobInfo::payload_len`
    /// keeps the full length); `None` = whole payloads.
    pub payload_max: Option<u64>,
}

/// Everything stored about one job. Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobInfo {
    pub id: u64,
    pub queue: String,
    /// The state now, computed from the stored state and `run_at` as the stats do.
    pub state: JobState,
    pub priority: i32,
    /// Deliveries so far.
    pub attempts: u32,
    pub max_attempts: u32,
    /// Ready/scheduled: when it may run; reserved: when the lease ends;
    /// dead: when it died.
    pub run_at: i64,
    /// Lease length of each delivery.
    pub lease_ms: u64,
    /// End of the current lease, while one was granted (it may have expired).
    pub lease_until: Option<i64>,
    /// The process holding the lease (`host:pid:...`), while reserved.
    pub lease_owner: Option<String>,
    pub unique_key: Option<String>,
    /// The payload, or its first `JobFilter::payload_max` bytes.
    pub payload: Vec<u8>,
    /// The full payload length in bytes.
    pub payload_len: u64,
    pub created_at: i64,
    pub updated_at: i64,
    /// Why the last attempt failed or the job died.
    pub last_error: Option<String>,
}

impl From<JobRow> for JobInfo {
    fn from(r: JobRow) -> JobInfo {
        JobInfo {
            id: r.id,
            queue: r.queue,
            state: JobState::from_store(r.state),
            priority: r.priority,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            run_at: r.run_at,
            lease_ms: r.lease_ms,
            lease_until: r.lease_until,
            lease_owner: r.lease_owner,
            unique_key: r.unique_key,
            payload: r.payload,
            payload_len: r.payload_len,
            created_at: r.created_at,
            updated_at: r.updated_at,
            last_error: r.last_error,
        }
    }
}

impl Queue {
    /// A fresh read connection. Use it under `crate::fork::quiet()`, taken
    /// after this returns (guards must not nest).
    fn admin_conn(&self) -> Result<store::Conn> {
        self.inner.check_open()?;
        store::connect(&self.inner.path, &self.inner.config)
    }

    /// Jobs matching `filter`, in id order, with their state at this moment.
    pub fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobInfo>> {
        if let Some(queue) = &filter.queue {
            check_queue_name(queue)?;
        }
        let conn = self.admin_conn()?;
        let _quiet = crate::fork::quiet();
        let query = ListQuery {
            queue: filter.queue.as_deref(),
            state: filter.state.map(JobState::to_store),
            after_id: filter.after_id,
            limit: filter.limit,
            payload_max: filter.payload_max,
        };
        let rows = sql::list(&conn, &query, self.inner.clock.now_ms())?;
        Ok(rows.into_iter().map(JobInfo::from).collect())
    }

    /// Everything about job `id`; `Error::NotFound` if there is no such job
    /// (never stored, or acked, cancelled or purged).
    pub fn job(&self, id: u64) -> Result<JobInfo> {
        let conn = self.admin_conn()?;
        let _quiet = crate::fork::quiet();
        sql::get(&conn, id, self.inner.clock.now_ms())?.map(JobInfo::from).ok_or(Error::NotFound(id))
    }

    /// Deletes the dead jobs of `queue`; returns how many.
    pub fn purge_dead(&self, queue: &str) -> Result<u64> {
        self.inner.check_open()?;
        check_queue_name(queue)?;
        let queue = queue.to_owned();
        self.inner.writer.submit(true, false, move |conn, now| sql::purge_dead(conn, &queue, now))
    }

    /// The largest job id given out so far (0 for a new file). Ids are never
    /// reused, so its growth over time counts the puts of all queues.
    pub fn last_job_id(&self) -> Result<u64> {
        let conn = self.admin_conn()?;
        let _quiet = crate::fork::quiet();
        sql::last_job_id(&conn)
    }

    /// Shrinks the file: checkpoints the WAL into it, rebuilds it without
    /// free pages (VACUUM) and truncates the WAL. Waits up to the file's
    /// `busy_timeout_ms` for other writers; `Busy` if they keep the lock.
    /// VACUUM briefly needs about the file's size again in free disk space.
    pub fn compact(&self) -> Result<()> {
        let conn = self.admin_conn()?;
        let _quiet = crate::fork::quiet();
        // A reader of another process holding an old snapshot may keep part
        // of the WAL alive; the file is compacted either way, and the WAL is
        // reused from its start once that reader finishes.
        sql::compact(&conn)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::{Config, ManualClock, PutOptions};

    const T0: i64 = 1_700_000_000_000;

    fn open(dir: &tempfile::TempDir) -> (Queue, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(T0));
        let config = Config { lease_ms: 1_000, max_attempts: 2, ..Config::default() };
        let q = Queue::open_with_clock(dir.path().join("q.db"), config, clock.clone()).unwrap();
        (q, clock)
    }

    fn ids(jobs: &[JobInfo]) -> Vec<u64> {
        jobs.iter().map(|j| j.id).collect()
    }

    fn in_state(q: &Queue, state: JobState) -> Vec<u64> {
        ids(&q.list_jobs(&JobFilter { state: Some(state), ..JobFilter::default() }).unwrap())
    }

    #[test]
    fn job_shows_every_field() {
        let dir = tempfile::tempdir().unwrap();
        let (q, _) = open(&dir);
        let opts = PutOptions {
            priority: -3,
            delay_ms: 500,
            max_attempts: Some(7),
            lease_ms: Some(2_000),
            unique_key: Some("k1".into()),
        };
        let id = q.put("mail", b"hello", &opts).unwrap().id();
        let job = q.job(id).unwrap();
        assert_eq!(
            job,
            JobInfo {
                id,
                queue: "mail".into(),
                state: JobState::Scheduled,
                priority: -3,
                attempts: 0,
                max_attempts: 7,
                run_at: T0 + 500,
                lease_ms: 2_000,
                lease_until: None,
                lease_owner: None,
                unique_key: Some("k1".into()),
                payload: b"hello".to_vec(),
                payload_len: 5,
                created_at: T0,
                updated_at: T0,
                last_error: None,
            }
        );
        assert_eq!(q.job(id + 100), Err(Error::NotFound(id + 100)));
    }

    #[test]
    fn states_follow_the_clock_like_the_stats() {
        let dir = tempfile::tempdir().unwrap();
        let (q, clock) = open(&dir);
        let none = PutOptions::default();
        let ready = q.put("a", b"r", &none).unwrap().id();
        let later = q.put("a", b"s", &PutOptions { delay_ms: 5_000, ..none.clone() }).unwrap().id();
        let held = q.put("b", b"h", &none).unwrap().id();
        let job = q.reserve("b", Some(Duration::ZERO)).unwrap().unwrap();
        assert_eq!(job.id(), held);
        let reserved = q.job(held).unwrap();
        assert_eq!(reserved.state, JobState::Reserved);
        assert_eq!(reserved.attempts, 1);
        assert_eq!(reserved.lease_until, Some(T0 + 1_000));
        assert!(reserved.lease_owner.is_some());

        assert_eq!(in_state(&q, JobState::Ready), vec![ready]);
        assert_eq!(in_state(&q, JobState::Scheduled), vec![later]);
        assert_eq!(in_state(&q, JobState::Reserved), vec![held]);
        assert_eq!(in_state(&q, JobState::Dead), Vec::<u64>::new());

        // The lease runs out (attempt 1 of 2: ready again) and the delay passes,
        // with nothing in the file changed: only the reading moves.
        clock.advance(6_000);
        assert_eq!(in_state(&q, JobState::Ready), vec![ready, later, held]);
        assert_eq!(q.job(held).unwrap().state, JobState::Ready);
        drop(job);

        // Second and last attempt, expired: dead, as the stats say.
        let job = q.reserve("b", Some(Duration::ZERO)).unwrap().unwrap();
        assert_eq!((job.id(), job.attempt()), (held, 2));
        clock.advance(2_000);
        assert_eq!(in_state(&q, JobState::Dead), vec![held]);
        let stats = q.stats().unwrap();
        for (name, counts) in &stats.queues {
            let count = |state| {
                let f = JobFilter { queue: Some(name.clone()), state: Some(state), ..JobFilter::default() };
                q.list_jobs(&f).unwrap().len() as u64
            };
            assert_eq!(count(JobState::Ready), counts.ready, "{name}");
            assert_eq!(count(JobState::Scheduled), counts.scheduled, "{name}");
            assert_eq!(count(JobState::Reserved), counts.reserved, "{name}");
            assert_eq!(count(JobState::Dead), counts.dead, "{name}");
        }
        drop(job);
    }

    #[test]
    fn list_filters_pages_and_cuts_payloads() {
        let dir = tempfile::tempdir().unwrap();
        let (q, _) = open(&dir);
        let none = PutOptions::default();
        let a: Vec<u64> = (0..5).map(|i| q.put("a", format!("job-{i}").as_bytes(), &none).unwrap().id()).collect();
        let b = q.put("b", b"", &none).unwrap().id();
        assert_eq!(ids(&q.list_jobs(&JobFilter::default()).unwrap()), [a.clone(), vec![b]].concat());
        let only_a = JobFilter { queue: Some("a".into()), ..JobFilter::default() };
        assert_eq!(ids(&q.list_jobs(&only_a).unwrap()), a);
        let page = JobFilter { limit: Some(2), after_id: a[1], ..only_a.clone() };
        assert_eq!(ids(&q.list_jobs(&page).unwrap()), a[2..4]);
        let cut = q.list_jobs(&JobFilter { payload_max: Some(3), ..JobFilter::default() }).unwrap();
        assert_eq!((cut[0].payload.as_slice(), cut[0].payload_len), (&b"job"[..], 5));
        assert_eq!((cut[5].payload.as_slice(), cut[5].payload_len), (&b""[..], 0));
        let nobody = JobFilter { queue: Some("nobody".into()), ..JobFilter::default() };
        assert!(q.list_jobs(&nobody).unwrap().is_empty());
        let empty_name = JobFilter { queue: Some(String::new()), ..JobFilter::default() };
        assert!(matches!(q.list_jobs(&empty_name), Err(Error::InvalidArg(_))));
        assert_eq!(q.last_job_id().unwrap(), b);
    }

    #[test]
    fn purge_removes_only_dead_jobs_of_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let (q, clock) = open(&dir);
        let once = PutOptions { max_attempts: Some(1), ..PutOptions::default() };
        let expired = q.put("a", b"x", &once).unwrap().id();
        let waiting = q.put("a", b"x", &once).unwrap().id();
        let buried = q.put("b", b"x", &once).unwrap().id();
        // Its only lease runs out unfinished: dead by the clock alone.
        assert_eq!(q.reserve("a", Some(Duration::ZERO)).unwrap().unwrap().id(), expired);
        let job = q.reserve("b", Some(Duration::ZERO)).unwrap().unwrap();
        job.bury(Some("bad")).unwrap();
        clock.advance(1_500);
        assert_eq!(in_state(&q, JobState::Dead), vec![expired, buried]);
        assert_eq!(q.purge_dead("a").unwrap(), 1);
        assert_eq!(q.job(expired), Err(Error::NotFound(expired)));
        assert_eq!(q.job(waiting).unwrap().state, JobState::Ready);
        assert_eq!(q.job(buried).unwrap().state, JobState::Dead);
        assert_eq!(q.job(buried).unwrap().last_error.as_deref(), Some("bad"));
        assert_eq!(q.purge_dead("a").unwrap(), 0);
        assert_eq!(q.stats().unwrap().queues["a"].dead, 0);
        assert!(matches!(q.purge_dead(""), Err(Error::InvalidArg(_))));
    }

    #[test]
    fn compact_keeps_jobs_and_shrinks_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (q, _) = open(&dir);
        let big = vec![7u8; 64 * 1024];
        let ids: Vec<u64> = (0..40).map(|_| q.put("a", &big, &PutOptions::default()).unwrap().id()).collect();
        for id in &ids[1..] {
            q.cancel(*id).unwrap();
        }
        let size = |name: &str| std::fs::metadata(dir.path().join(name)).map(|m| m.len()).unwrap_or(0);
        let before = size("q.db") + size("q.db-wal");
        q.compact().unwrap();
        let after = size("q.db") + size("q.db-wal");
        assert!(after < before / 4, "{before} -> {after}");
        assert_eq!(size("q.db-wal"), 0);
        assert_eq!(q.job(ids[0]).unwrap().payload, big);
        q.put("a", b"after", &PutOptions::default()).unwrap();
        q.close().unwrap();
        assert!(matches!(q.compact(), Err(Error::Shutdown(_))));
    }
}
