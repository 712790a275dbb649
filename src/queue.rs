//! `Queue`: an open queue store (a file, or a PostgreSQL schema). Checks
//! what callers pass, waits for jobs, and hands everything stored to the
//! backend chosen at open (`store::open`). Cheap to clone; all clones
//! share one store handle.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::job::Job;
use crate::notify::Notifier;
use crate::qconfig::LimitsPatch;
use crate::schedule::Spec;
use crate::store::{
    self, Attempt, Finish, JobInfo, JobState, NewJob, NewSchedule, Put, QueueCounts, ReserveIf, ScheduleInfo,
};

pub use crate::limits::{
    MAX_DELAY_MS, MAX_QUEUE_NAME, MAX_RESERVE_ANY, MAX_RESERVE_MANY, MAX_SCHEDULE_NAME, MAX_UNIQUE_KEY,
};
pub use crate::schedule::MIN_EVERY_MS;

/// Options of one put. `Default` = priority 0, no delay, the file's
/// max_attempts and lease_ms, no unique key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// Smaller runs first; ties run in put order.
    pub priority: i32,
    /// Not delivered before now + delay_ms.
    pub delay_ms: u64,
    /// `None` = the file's `max_attempts`.
    pub max_attempts: Option<u32>,
    /// `None` = the file's `lease_ms`.
    pub lease_ms: Option<u64>,
    /// At most one live job per (queue, key).
    pub unique_key: Option<String>,
}

/// Counts per queue and whether each is paused, and the schedules, as
/// `jobq_stats_json` prints them (`schedules` is left out while empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    pub queues: BTreeMap<String, QueueCounts>,
    /// Every schedule of the store, in name order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub schedules: Vec<ScheduleInfo>,
}

/// An open queue store. Safe to share between threads (clone it or put it in an Arc).
#[derive(Clone)]
pub struct Queue {
    pub(crate) inner: Arc<Context>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = store::redacted(&self.inner.path.to_string_lossy());
        f.debug_struct("Queue").field("path", &path).finish()
    }
}

pub(crate) fn check_queue_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid("queue name is empty"));
    }
    if name.len() > MAX_QUEUE_NAME {
        return Err(Error::invalid(format!("queue name longer than {MAX_QUEUE_NAME} bytes")));
    }
    Ok(())
}

fn check_schedule_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid("schedule name is empty"));
    }
    if name.len() > MAX_SCHEDULE_NAME {
        return Err(Error::invalid(format!("schedule name longer than {MAX_SCHEDULE_NAME} bytes")));
    }
    Ok(())
}

impl Queue {
    /// Opens (creating if missing) the queue file at `path`.
    pub fn open(path: impl AsRef<Path>, config: Config) -> Result<Queue> {
        Self::open_with_clock(path, config, Arc::new(SystemClock))
    }

    /// Like `open`, with a substitute clock (tests move time without sleeping).
    pub fn open_with_clock(path: impl AsRef<Path>, config: Config, clock: Arc<dyn Clock>) -> Result<Queue> {
        config.validate()?;
        let path = path.as_ref().to_path_buf();
        if path.as_os_str().is_empty() {
            return Err(Error::invalid("path is empty"));
        }
        let notifier = Arc::new(Notifier::default());
        let env = store::Env { clock: clock.clone(), notifier: notifier.clone() };
        let store = store::open(&path, &config, env)?;
        Ok(Queue { inner: Arc::new(Context::new(path, config, clock, store, notifier)) })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Closes the file: waiting reserves return `Shutdown`, the writer
    /// finishes what it has, and every thread the queue started is joined.
    /// `Busy` while workers run. Closing twice is a no-op.
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }

    /// Stores one job; returns once it is durable under the store's durability.
    pub fn put(&self, queue: &str, payload: &[u8], opts: &PutOptions) -> Result<Put> {
        let inner = &self.inner;
        inner.check_open()?;
        check_queue_name(queue)?;
        check_payload(&inner.config, payload.len())?;
        let job = new_job(inner, queue, opts)?;
        inner.store.put(job, payload.to_vec())
    }

    /// Stores all payloads in one transaction, or none. A unique key names
    /// one job, so it is accepted only for a batch of one.
    pub fn put_batch(&self, queue: &str, payloads: &[&[u8]], opts: &PutOptions) -> Result<Vec<Put>> {
        let inner = &self.inner;
        inner.check_open()?;
        check_queue_name(queue)?;
        if opts.unique_key.is_some() && payloads.len() > 1 {
            return Err(Error::invalid("a unique_key names one job: put_batch takes it only for a batch of 1"));
        }
        if payloads.len() == 1 {
            return Ok(vec![self.put(queue, payloads[0], opts)?]);
        }
        if payloads.is_empty() {
            return Ok(Vec::new());
        }
        for p in payloads {
            check_payload(&inner.config, p.len())?;
        }
        let job = new_job(inner, queue, opts)?;
        let payloads: Vec<Vec<u8>> = payloads.iter().map(|p| p.to_vec()).collect();
        Ok(inner.store.put_batch(job, payloads)?.into_iter().map(Put::Stored).collect())
    }

    /// Delivers the ready job of `queue` with the smallest (priority, id).
    /// `timeout`: `Some(ZERO)` = don't wait, `None` = wait forever.
    pub fn reserve(&self, queue: &str, timeout: Option<Duration>) -> Result<Option<Job>> {
        self.reserve_until(queue, deadline_of(timeout), None)
    }

    /// Reserve that also gives up when `stop` is set (and the notifier bumped).
    pub(crate) fn reserve_until(
        &self,
        queue: &str,
        deadline: Option<Instant>,
        stop: Option<&AtomicBool>,
    ) -> Result<Option<Job>> {
        let (name, attempt) = self.lease(queue, 1, deadline, stop, None::<fn(&Arc<str>) -> Result<Attempt>>)?;
        Ok(attempt.first.map(|d| Job::new(self.inner.clone(), name, d)))
    }

    /// Leases up to `max` (1..=`MAX_RESERVE_MANY`) ready jobs of `queue` in
    /// one transaction, smallest (priority, id) first; waits like `reserve`
    /// while none is ready. Empty when nothing came in time.
    pub fn reserve_many(&self, queue: &str, max: usize, timeout: Option<Duration>) -> Result<Vec<Job>> {
        if max == 0 || max > MAX_RESERVE_MANY {
            return Err(Error::invalid(format!("reserve_many: max must be 1 to {MAX_RESERVE_MANY}, not {max}")));
        }
        let (name, attempt) =
            self.lease(queue, max, deadline_of(timeout), None, None::<fn(&Arc<str>) -> Result<Attempt>>)?;
        Ok(self.jobs_of(&name, attempt))
    }

    /// Leases the ready job with the smallest (priority, id) among
    /// `queues` (1 to `MAX_RESERVE_ANY` valid names; a name given twice
    /// counts once), waiting like `reserve` while none is ready (`None` =
    /// forever, `Some(ZERO)` = no wait); `None` when nothing came in time.
    /// Pause and per-queue limits hold as for `reserve`: a paused or
    /// limited queue's jobs are passed over for the next queue's. Ids are
    /// global to the store, so (priority, id) orders jobs across queues
    /// (ties of priority: the job put first).
    pub fn reserve_any(&self, queues: &[&str], timeout: Option<Duration>) -> Result<Option<Job>> {
        let inner = &self.inner;
        if queues.is_empty() || queues.len() > MAX_RESERVE_ANY {
            return Err(Error::invalid(format!(
                "reserve_any: give 1 to {MAX_RESERVE_ANY} queue names, not {}",
                queues.len()
            )));
        }
        let mut names: Vec<Arc<str>> = Vec::with_capacity(queues.len());
        for (i, queue) in queues.iter().enumerate() {
            check_queue_name(queue).map_err(|e| e.prefixed(&format!("queues[{i}]")))?;
            if !names.iter().any(|n| &**n == *queue) {
                names.push(inner.name(queue));
            }
        }
        let deadline = deadline_of(timeout);
        loop {
            inner.check_open()?;
            let seen = inner.notifier.generation();
            let (job, next_due, recheck_ms) = self.try_reserve_any(&names)?;
            if job.is_some() || deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(job);
            }
            self.wait_for_jobs(seen, next_due, recheck_ms, deadline, None);
        }
    }

    /// One try of `reserve_any`: reads the ready head of each queue, then
    /// reserves from them in head order, so the job leased is the smallest
    /// (priority, id) that pause and limits let through. When none of them
    /// leases anything, reserves once from every other queue too (that
    /// promotes due jobs, reclaims dead holders' jobs, and says when each
    /// queue next becomes due). Returns the job, or the earliest `next_due`
    /// and `recheck_ms` of all the queues.
    fn try_reserve_any(&self, names: &[Arc<str>]) -> Result<(Option<Job>, Option<i64>, Option<u64>)> {
        let store = &self.inner.store;
        let heads = store.ready_heads(names)?;
        let mut tried = vec![false; names.len()];
        let (mut next_due, mut recheck_ms) = (None, None);
        let order = heads.iter().map(|h| h.index).chain(0..names.len());
        for index in order {
            let Some(name) = names.get(index) else { continue };
            if std::mem::replace(&mut tried[index], true) {
                continue;
            }
            let attempt = store.reserve(name, 1)?;
            if let Some(delivery) = attempt.first {
                return Ok((Some(Job::new(self.inner.clone(), name.clone(), delivery)), None, None));
            }
            next_due = crate::qconfig::earliest(next_due, attempt.next_due);
            recheck_ms = match (recheck_ms, attempt.recheck_ms) {
                (Some(a), Some(b)) => Some(u64::min(a, b)),
                (a, b) => a.or(b),
            };
        }
        Ok((None, next_due, recheck_ms))
    }

    /// Acks `job` (a delivery of this handle) and leases the next ready job
    /// of `queue`, in one transaction where the backend allows (SQLite; on
    /// PostgreSQL the ack commits first). The ack is stored whatever the
    /// reserve finds; while nothing is ready this waits like `reserve`, and
    /// `None` means nothing came in time. A stale delivery (`State`, as
    /// `Job::ack` gives) leases nothing.
    pub fn ack_and_reserve(&self, job: &Job, queue: &str, timeout: Option<Duration>) -> Result<Option<Job>> {
        self.check_owns(job)?;
        let inner = &self.inner;
        let ack_first = |name: &Arc<str>| {
            let (id, token) = job.begin_finish()?;
            let ack = vec![(id, token, job.ack_op(None))];
            let (current, attempt) = inner.store.finish_and_reserve(name, ack, 1, ReserveIf::AllCurrent)?;
            let current = current.first().copied().ok_or_else(|| Error::Internal("no answer for the ack".into()))?;
            job.end_finish(current, true)?;
            Ok(attempt)
        };
        let (name, attempt) = self.lease(queue, 1, deadline_of(timeout), None, Some(ack_first))?;
        Ok(attempt.first.map(|d| Job::new(inner.clone(), name, d)))
    }

    /// Acks the deliveries `jobs` (all of this handle) in one transaction
    /// where the backend allows. One answer per job, in order: `Ok`, or
    /// `State` for a delivery that is no longer current (finished already,
    /// or delivered again); the others are acked either way. An `Err` of the
    /// whole call (jobs of another handle, a closed handle, a store error)
    /// acks nothing from the caller's point of view: the store may have
    /// kept some acks of a call that failed midway, which an ack again then
    /// reports as `State`.
    pub fn ack_many(&self, jobs: &[&Job]) -> Result<Vec<Result<()>>> {
        // The arguments first (one handle's jobs: a caller's bug whatever
        // the handle's state), then the handle's state.
        for (i, job) in jobs.iter().enumerate() {
            self.check_owns(job).map_err(|e| e.prefixed(&format!("jobs[{i}]")))?;
        }
        self.inner.check_open()?;
        let Some(first) = jobs.first() else { return Ok(Vec::new()) };
        let mut answers = Vec::with_capacity(jobs.len());
        let mut acks = Vec::with_capacity(jobs.len());
        let mut sent = Vec::with_capacity(jobs.len());
        // A delivery listed twice is acked once: every store answers the
        // second finish of a delivery in one transaction as stale.
        for (i, job) in jobs.iter().enumerate() {
            match job.begin_finish() {
                Ok((id, token)) => {
                    acks.push((id, token, job.ack_op(None)));
                    sent.push(i);
                    answers.push(Ok(()));
                }
                Err(e) => answers.push(Err(e)),
            }
        }
        if acks.is_empty() {
            return Ok(answers);
        }
        let name = self.inner.name(first.queue());
        let (current, _) = self.inner.store.finish_and_reserve(&name, acks, 0, ReserveIf::Always)?;
        if current.len() != sent.len() {
            return Err(Error::Internal(format!("{} answers for {} acks", current.len(), sent.len())));
        }
        for (i, current) in sent.into_iter().zip(current) {
            answers[i] = jobs[i].end_finish(current, true);
        }
        Ok(answers)
    }

    /// The handle that `job` was delivered through.
    pub(crate) fn of_job(job: &Job) -> Queue {
        Queue { inner: job.context().clone() }
    }

    fn check_owns(&self, job: &Job) -> Result<()> {
        if Arc::ptr_eq(job.context(), &self.inner) {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "job {} was delivered through another queue handle: use that handle, or one call per handle",
                job.id()
            )))
        }
    }

    fn jobs_of(&self, name: &Arc<str>, attempt: Attempt) -> Vec<Job> {
        let deliveries = attempt.first.into_iter().chain(attempt.more);
        deliveries.map(|d| Job::new(self.inner.clone(), name.clone(), d)).collect()
    }

    /// Leases up to `want` ready jobs of `queue`, waiting while none is
    /// ready until `deadline` (`None` = forever) or `stop`. `first`, if
    /// given, makes the first try instead of a plain reserve (it may store
    /// outcomes in the same transaction). Returns the queue's shared name
    /// and the last try (nothing leased when the wait ended).
    fn lease<F>(
        &self,
        queue: &str,
        want: usize,
        deadline: Option<Instant>,
        stop: Option<&AtomicBool>,
        mut first: Option<F>,
    ) -> Result<(Arc<str>, Attempt)>
    where
        F: FnOnce(&Arc<str>) -> Result<Attempt>,
    {
        let inner = &self.inner;
        check_queue_name(queue)?;
        loop {
            inner.check_open()?;
            let seen = inner.notifier.generation();
            let name = inner.name(queue);
            let attempt = match first.take() {
                Some(first) => first(&name)?,
                None => inner.store.reserve(&name, want)?,
            };
            if attempt.first.is_some()
                || deadline.is_some_and(|d| Instant::now() >= d)
                || stop.is_some_and(|s| s.load(SeqCst))
            {
                return Ok((name, attempt));
            }
            self.wait_for_jobs(seen, attempt.next_due, attempt.recheck_ms, deadline, stop);
        }
    }

    /// Waits after a reserve attempt that found nothing (notifier generation
    /// `seen` before it): until a commit may have made a job ready, the next
    /// delay or lease in the queue ends (`next_due`), `deadline`, or `stop`;
    /// or after the attempt's `recheck_ms` (the backend polls for something,
    /// such as clients that died holding jobs).
    pub(crate) fn wait_for_jobs(
        &self,
        seen: u64,
        next_due: Option<i64>,
        recheck_ms: Option<u64>,
        deadline: Option<Instant>,
        stop: Option<&AtomicBool>,
    ) {
        let inner = &self.inner;
        let now = Instant::now();
        let mut until = deadline.unwrap_or_else(far_future);
        if let Some(due) = next_due {
            let wait_ms = due.saturating_sub(inner.clock.now_ms()).max(0) as u64;
            until = until.min(now + Duration::from_millis(wait_ms));
        }
        if let Some(ms) = recheck_ms {
            until = until.min(now + Duration::from_millis(ms));
        }
        inner.notifier.wait(seen, until, stop);
    }

    /// The notifier's generation: read it before an attempt whose failure
    /// is followed by `wait_for_jobs`.
    pub(crate) fn generation(&self) -> u64 {
        self.inner.notifier.generation()
    }

    /// Dead -> ready for up to `max` jobs of `queue`, oldest first; attempts reset.
    pub fn kick(&self, queue: &str, max: u64) -> Result<u64> {
        self.inner.check_open()?;
        check_queue_name(queue)?;
        self.inner.store.kick(queue, max)
    }

    /// Kicks one job: a dead (buried, or out of attempts) or scheduled
    /// (waiting for a delay or a retry backoff) job becomes ready now; a dead
    /// one gets its attempts reset, as `kick` does. `NotFound`: no such job
    /// (or a done job past its keep time). `State`: the job is ready,
    /// reserved or done, or dead with its unique key now held by a live
    /// job (then it stays dead). Wakes waiting reserves. Any queue's job:
    /// ids are global to the store.
    pub fn kick_job(&self, id: u64) -> Result<()> {
        self.inner.check_open()?;
        self.inner.store.kick_job(id)
    }

    /// The next job of `queue` in `state`, without leasing it (`None` if
    /// there is none): `Ready` = the job `reserve` would deliver now, the
    /// smallest (priority, id) among the ready ones (passed delays and
    /// expired leases included; a pause or a limit that holds the queue back
    /// is not looked at); `Scheduled` = the one due soonest (smallest
    /// (run_at, id)); `Dead` = the one that died first (smallest (run_at,
    /// id)). `Reserved` and `Done` are `InvalidArg`.
    pub fn peek(&self, queue: &str, state: JobState) -> Result<Option<JobInfo>> {
        self.inner.check_open()?;
        check_queue_name(queue)?;
        if matches!(state, JobState::Reserved | JobState::Done) {
            return Err(Error::invalid(format!("peek: no peek of {state} jobs (ready, scheduled or dead)")));
        }
        self.inner.store.peek(queue, state)
    }

    /// Pauses `queue` for every client of the store (every process, and
    /// every host of a PostgreSQL store): it still takes puts, but no job of
    /// it is delivered until `resume`; reserves wait as on an empty queue and
    /// worker pools idle. Jobs already delivered run on and finish as usual.
    /// Stored: it holds across restarts. Pausing a queue never used records
    /// it (stats list it); pausing a paused queue is a no-op.
    pub fn pause(&self, queue: &str) -> Result<()> {
        self.inner.check_open()?;
        check_queue_name(queue)?;
        self.inner.store.set_paused(queue, true)
    }

    /// Resumes a paused `queue` and wakes the reserves waiting for it (in
    /// this process and in others). Resuming a queue that is not paused, or
    /// never used, is a no-op.
    pub fn resume(&self, queue: &str) -> Result<()> {
        self.inner.check_open()?;
        check_queue_name(queue)?;
        self.inner.store.set_paused(queue, false)
    }

    /// Sets or removes limits of `queue` from a JSON object (see
    /// `LimitsPatch::parse` and docs/limits.md): `{"max_reserved": N}` (at
    /// most N jobs of the queue reserved with a live lease at once) and
    /// `{"rate": {"jobs": N, "per_ms": M}}` (at most N deliveries per fixed
    /// window of M ms), `null` removing one; keys not given keep their
    /// value. Stored, and enforced by every client of the store in the
    /// transaction that leases; a reserve held back by a limit waits as on
    /// an empty queue. Invalid input is `InvalidArg` and stores nothing.
    pub fn configure(&self, queue: &str, json: &str) -> Result<()> {
        self.inner.check_open()?;
        check_queue_name(queue)?;
        let patch = LimitsPatch::parse(json)?;
        self.inner.store.set_limits(queue, &patch)
    }

    /// `configure` with the change already parsed.
    pub fn set_limits(&self, queue: &str, patch: &LimitsPatch) -> Result<()> {
        self.inner.check_open()?;
        check_queue_name(queue)?;
        self.inner.store.set_limits(queue, patch)
    }

    /// Watches `queue` from an event loop: see `Watch`. The handle's
    /// `close` is `Busy` until every watch of it is closed.
    pub fn watch(&self, queue: &str) -> Result<crate::watch::Watch> {
        self.inner.check_open()?;
        check_queue_name(queue)?;
        crate::watch::Watch::open(self.inner.clone(), self.inner.name(queue))
    }

    /// Removes a job that is not currently delivered.
    pub fn cancel(&self, id: u64) -> Result<()> {
        self.inner.check_open()?;
        self.inner.store.cancel(id)
    }

    /// Counts per queue: ready, scheduled (waiting for a delay or backoff),
    /// reserved (with a live lease) and dead; whether it is paused; its
    /// limits, if any, and the deliveries in its current rate window.
    pub fn stats(&self) -> Result<Stats> {
        self.inner.check_open()?;
        let queues = self.inner.store.counts()?;
        let schedules = self.inner.store.schedules()?;
        Ok(Stats { queues: queues.into_iter().collect(), schedules })
    }

    /// Schedules a job into `queue` at every slot of `spec` (see
    /// docs/schedules.md: 5-field cron in UTC, `@hourly` and the like, or
    /// `@every <duration>`), each with `payload` and `opts` (priority,
    /// max_attempts, lease_ms as for a put; `delay_ms` counts from each
    /// slot; a unique key is refused). Schedule names are global to the
    /// store: scheduling an existing name replaces that schedule, queue
    /// and all, and its next slot is computed afresh from now. Stored:
    /// every open handle of the store (any process, any host) puts the due
    /// jobs, each slot exactly once.
    pub fn schedule(&self, name: &str, queue: &str, spec: &str, payload: &[u8], opts: &PutOptions) -> Result<()> {
        let inner = &self.inner;
        inner.check_open()?;
        check_schedule_name(name)?;
        check_queue_name(queue)?;
        let parsed = Spec::parse(spec)?;
        check_payload(&inner.config, payload.len())?;
        if opts.unique_key.is_some() {
            return Err(Error::invalid("a schedule's jobs take no unique_key (each slot puts one job)"));
        }
        let job = new_job(inner, queue, opts)?;
        let now = inner.clock.now_ms();
        let next_slot = parsed
            .first_slot(now)
            .ok_or_else(|| Error::invalid(format!("schedule spec {spec:?} matches no time in the next 9 years")))?;
        inner.store.put_schedule(NewSchedule {
            name: name.to_owned(),
            spec: spec.trim().to_owned(),
            job,
            payload: payload.to_vec(),
            next_slot,
        })
    }

    /// Deletes schedule `name` (jobs it already put stay). `false` if there
    /// was none.
    pub fn unschedule(&self, name: &str) -> Result<bool> {
        self.inner.check_open()?;
        check_schedule_name(name)?;
        self.inner.store.remove_schedule(name)
    }

    /// Every schedule of the store, in name order.
    pub fn schedules(&self) -> Result<Vec<ScheduleInfo>> {
        self.inner.check_open()?;
        self.inner.store.schedules()
    }

    /// Puts the jobs of the schedules that are due now, as every handle's
    /// background firing does by itself (for tests with a `ManualClock`).
    /// How many jobs it put.
    pub fn fire_schedules(&self) -> Result<u64> {
        self.inner.check_open()?;
        self.inner.store.fire_schedules()
    }
}

/// What one transaction of a worker pool did (see `Queue::pool_round`).
pub(crate) struct PoolRound {
    /// The jobs leased in the same transaction.
    pub jobs: Vec<Job>,
    /// When something next becomes due, if fewer jobs than wanted were ready.
    pub next_due: Option<i64>,
    /// Look again after this long even without a wakeup (see `Attempt`).
    pub recheck_ms: Option<u64>,
}

impl Queue {
    /// For worker pools: stores the outcomes of finished handlers and leases
    /// up to `want` ready jobs of `queue`, all in one transaction.
    pub(crate) fn pool_round(&self, queue: &str, outcomes: &[(Arc<Job>, Finish)], want: usize) -> Result<PoolRound> {
        let inner = &self.inner;
        // The outcomes whose delivery may still be finished go into the
        // transaction (a refused one was finished through its handle already).
        let mut jobs = Vec::with_capacity(outcomes.len());
        let mut ops = Vec::with_capacity(outcomes.len());
        for (job, finish) in outcomes {
            if let Ok((id, token)) = job.begin_finish() {
                jobs.push(job);
                ops.push((id, token, finish.clone()));
            }
        }
        let name = inner.name(queue);
        let (current, attempt) = inner.store.finish_and_reserve(&name, ops, want, ReserveIf::Always)?;
        // Record each outcome on its Job; a stale delivery's outcome changed
        // nothing (at-least-once: the job runs again elsewhere).
        for (job, current) in jobs.into_iter().zip(current) {
            let _ = job.end_finish(current, true);
        }
        let jobs =
            attempt.first.into_iter().chain(attempt.more).map(|d| Job::new(inner.clone(), name.clone(), d)).collect();
        Ok(PoolRound { jobs, next_due: attempt.next_due, recheck_ms: attempt.recheck_ms })
    }
}

/// When a wait of `timeout` (`None` = forever) that starts now ends.
fn deadline_of(timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(|t| Instant::now().checked_add(t).unwrap_or_else(far_future))
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

fn check_payload(config: &Config, len: usize) -> Result<()> {
    if len as u64 > config.max_payload_bytes {
        return Err(Error::TooBig {
            what: "payload",
            limit: "max_payload_bytes",
            len,
            max: config.max_payload_bytes as usize,
        });
    }
    Ok(())
}

/// The stored fields of a put with `opts`: checked, the store's defaults applied.
fn new_job(inner: &Context, queue: &str, opts: &PutOptions) -> Result<NewJob> {
    if opts.delay_ms > MAX_DELAY_MS {
        return Err(Error::invalid(format!("delay_ms must be at most {MAX_DELAY_MS}")));
    }
    let lease_ms = match opts.lease_ms {
        None | Some(0) => inner.config.lease_ms,
        Some(ms) if ms > MAX_DELAY_MS => {
            return Err(Error::invalid(format!("lease_ms must be at most {MAX_DELAY_MS}")))
        }
        Some(ms) => ms,
    };
    let max_attempts = match opts.max_attempts {
        None | Some(0) => inner.config.max_attempts,
        Some(n) => n,
    };
    if let Some(key) = &opts.unique_key {
        if key.len() > MAX_UNIQUE_KEY {
            return Err(Error::invalid(format!("unique_key longer than {MAX_UNIQUE_KEY} bytes")));
        }
    }
    Ok(NewJob {
        queue: inner.name(queue),
        priority: opts.priority,
        delay_ms: opts.delay_ms,
        max_attempts,
        lease_ms,
        unique_key: opts.unique_key.clone(),
    })
}
