//! The admin and inspection API of `Queue`: list and show jobs, purge dead
//! jobs, compact the store. It serves the `jobq` operator command, and is
//! safe to use on a store that other threads and processes are working.
//! The backend decides how (SQLite reads through a connection of its own,
//! so inspecting a busy file does not slow its writers).

use crate::error::{Error, Result};
use crate::queue::{check_queue_name, Queue};
use crate::store::{JobFilter, JobInfo};

impl Queue {
    /// Jobs matching `filter`, in id order, with their state at this moment.
    pub fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobInfo>> {
        self.inner.check_open()?;
        if let Some(queue) = &filter.queue {
            check_queue_name(queue)?;
        }
        self.inner.store.list(filter)
    }

    /// Everything about job `id`; `Error::NotFound` if there is no such job
    /// (never stored, or acked, cancelled or purged; or done, and past its
    /// keep time).
    pub fn job(&self, id: u64) -> Result<JobInfo> {
        self.inner.check_open()?;
        self.inner.store.job(id)?.ok_or(Error::NotFound(id))
    }

    /// `job(id)` as the JSON object of `jobq_job_info` (docs/results.md).
    pub fn job_json(&self, id: u64) -> Result<String> {
        let job = self.job(id)?;
        serde_json::to_string(&crate::info::job_json(&job)).map_err(|e| Error::Internal(e.to_string()))
    }

    /// Deletes the dead jobs of `queue`; returns how many.
    pub fn purge_dead(&self, queue: &str) -> Result<u64> {
        self.inner.check_open()?;
        check_queue_name(queue)?;
        self.inner.store.purge_dead(queue)
    }

    /// The largest job id given out so far (0 for a new store). Ids are never
    /// reused, so its growth over time counts the puts of all queues.
    pub fn last_job_id(&self) -> Result<u64> {
        self.inner.check_open()?;
        self.inner.store.last_job_id()
    }

    /// Shrinks the store: gives the space of deleted jobs back (a file is
    /// rebuilt without free pages, and its log emptied; this waits up to
    /// `busy_timeout_ms` for other writers, `Busy` if they keep the lock, and
    /// briefly needs about the file's size again in free disk space).
    pub fn compact(&self) -> Result<()> {
        self.inner.check_open()?;
        self.inner.store.compact()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::{Config, JobState, ManualClock, PutOptions};

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
                result: None,
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
