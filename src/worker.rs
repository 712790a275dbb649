//! `Worker`: a pool of handler threads working one queue, fed by one
//! feeder thread that does the pool's database work, so that handler
//! threads do not wait on the database while jobs are ready:
//!
//! - The feeder stores the outcomes of finished handlers and, in the same
//!   transaction, leases jobs for idle handlers plus, while handlers are
//!   quick (under PREFETCH_BELOW on average), up to `concurrency` jobs
//!   ahead. A handler that finishes hands its outcome to the feeder and
//!   takes the next job from memory at once.
//! - When the queue is empty the feeder waits for new jobs (the queue's
//!   wakeups), and handlers that finish meanwhile store their outcomes
//!   themselves (nothing else is waiting for them).
//! - The feeder renews the leases of running handlers (every third of the
//!   lease), so a long job is not delivered twice.
//!
//! Stopping is graceful: no new jobs are taken, running handlers finish and
//! their outcomes are stored, and jobs leased ahead are released (their
//! attempt is not counted).

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::job::Job;
use crate::queue::{check_queue_name, PoolRound, Queue};
use crate::store::Finish;

/// What a handler decided about its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledge: the job is removed.
    Done,
    /// Fail: retried after backoff, or dead when attempts are used up.
    Retry,
    /// Dead now.
    Bury,
}

/// The function a worker runs for each job. Called on the pool's threads,
/// up to `concurrency` at once.
pub type Handler = Arc<dyn Fn(&Arc<Job>) -> Outcome + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerOptions {
    /// Handler threads; at least 1.
    pub concurrency: u32,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions { concurrency: 1 }
    }
}

/// Most handler threads one worker may have.
pub const MAX_CONCURRENCY: u32 = 1024;

/// Jobs are leased ahead only while handlers take less than this on average:
/// a job leased ahead waits for a handler, holding a lease that another
/// process's idle worker cannot take.
const PREFETCH_BELOW: Duration = Duration::from_millis(5);

struct Running {
    job: Arc<Job>,
    next_touch: Instant,
}

/// A job leased ahead, waiting for a handler.
struct Ahead {
    job: Job,
    leased: Instant,
}

/// A handler's outcome on its way to the feeder's next transaction.
type PendingOutcome = (Arc<Job>, Finish);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Feeder {
    /// Stores outcomes and leases jobs; handlers hand it their outcomes.
    Active,
    /// Waits for jobs to appear; handlers store their own outcomes.
    WaitingForJobs,
    /// Gone (the pool stopped): handlers store their own outcomes.
    Exited,
}

struct State {
    /// Threads (handlers and the feeder) that have not exited yet.
    threads: usize,
    /// Handlers running now.
    handlers: usize,
    /// Handler threads waiting for a job.
    idle: usize,
    ready: VecDeque<Ahead>,
    outcomes: Vec<PendingOutcome>,
    /// Per handler thread: its running job, for lease renewal.
    running: Vec<Option<Running>>,
    /// Cleared when `stop` gives up waiting: leases are no longer renewed.
    renewing: bool,
    feeder: Feeder,
    /// When the feeder wakes up by itself next (to renew leases).
    feeder_wakes_at: Option<Instant>,
    /// Moving average of handler run times (None until one ran).
    avg_handler: Option<Duration>,
}

struct Shared {
    queue: Queue,
    name: String,
    handler: Handler,
    concurrency: usize,
    /// Set by `stop`: take no new jobs.
    stop: AtomicBool,
    st: Mutex<State>,
    /// Handlers wait here for jobs; `stop` waits here for `handlers == 0`.
    handlers_cv: Condvar,
    /// The feeder waits here for outcomes, idle handlers and renewal times.
    feeder_cv: Condvar,
}

/// A running pool. `stop` it; dropping it stops it and waits for handlers.
pub struct Worker {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    stopped: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Worker {
    pub fn start(queue: &Queue, name: &str, opts: WorkerOptions, handler: Handler) -> Result<Worker> {
        queue.inner.check_open()?;
        check_queue_name(name)?;
        if opts.concurrency == 0 || opts.concurrency > MAX_CONCURRENCY {
            return Err(Error::invalid(format!("concurrency must be in 1..={MAX_CONCURRENCY}")));
        }
        let n = opts.concurrency as usize;
        let shared = Arc::new(Shared {
            queue: queue.clone(),
            name: name.to_owned(),
            handler,
            concurrency: n,
            stop: AtomicBool::new(false),
            st: Mutex::new(State {
                // The handler threads and the feeder.
                threads: n + 1,
                handlers: 0,
                idle: 0,
                ready: VecDeque::new(),
                outcomes: Vec::new(),
                running: (0..n).map(|_| None).collect(),
                renewing: true,
                feeder: Feeder::Active,
                feeder_wakes_at: None,
                avg_handler: None,
            }),
            handlers_cv: Condvar::new(),
            feeder_cv: Condvar::new(),
        });
        queue.inner.active_workers.fetch_add(1, SeqCst);
        let mut worker = Worker { shared: shared.clone(), threads: Vec::with_capacity(n + 1), stopped: false };
        let spawn = |name: String, f: Box<dyn FnOnce() + Send>| std::thread::Builder::new().name(name).spawn(f);
        let feeder = {
            let s = shared.clone();
            spawn("jobq-feed".into(), Box::new(move || feed(&s)))
        };
        match feeder {
            Ok(t) => worker.threads.push(t),
            Err(e) => {
                lock(&shared.st).threads = 0;
                queue.inner.active_workers.fetch_sub(1, SeqCst);
                worker.shutdown(Some(Duration::ZERO));
                return Err(Error::Internal(format!("cannot start a worker thread: {e}")));
            }
        }
        for slot in 0..n {
            let s = shared.clone();
            match spawn(format!("jobq-work-{slot}"), Box::new(move || work(&s, slot))) {
                Ok(t) => worker.threads.push(t),
                Err(e) => {
                    // The threads never started count as exited.
                    exited(&shared, n - slot);
                    worker.shutdown(None);
                    return Err(Error::Internal(format!("cannot start a worker thread: {e}")));
                }
            }
        }
        Ok(worker)
    }

    /// Stops taking jobs and waits up to `timeout` (`None` = forever) for
    /// running handlers. `Ok(true)`: every handler returned and its outcome
    /// is stored. `Ok(false)`: handlers still run; their leases are no longer
    /// renewed, so their jobs are delivered again when the leases expire.
    pub fn stop(mut self, timeout: Option<Duration>) -> Result<bool> {
        Ok(self.shutdown(timeout))
    }

    fn shutdown(&mut self, timeout: Option<Duration>) -> bool {
        if self.stopped {
            return true;
        }
        self.stopped = true;
        let s = &self.shared;
        s.stop.store(true, SeqCst);
        s.queue.inner.notifier.bump();
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut st = lock(&s.st);
        s.handlers_cv.notify_all();
        s.feeder_cv.notify_all();
        while st.handlers > 0 {
            match deadline {
                None => st = s.handlers_cv.wait(st).unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break;
                    }
                    st = s.handlers_cv.wait_timeout(st, d - now).unwrap_or_else(PoisonError::into_inner).0;
                }
            }
        }
        let all_done = st.handlers == 0;
        // Stop renewing: finished handlers need no lease; unfinished ones
        // give their jobs back when the leases run out.
        st.renewing = false;
        drop(st);
        s.feeder_cv.notify_all();
        let threads = std::mem::take(&mut self.threads);
        if all_done {
            // No handler runs and none can start: the handler threads are
            // exiting, and the feeder stores the last outcomes and releases
            // the jobs it leased ahead before it exits.
            for t in threads {
                let _ = t.join();
            }
        } else if let Some(feeder) = threads.into_iter().next() {
            let _ = feeder.join();
        }
        all_done
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.shutdown(None);
    }
}

fn renew_period(job: &Job) -> Duration {
    Duration::from_millis((job.lease_ms() / 3).max(1))
}

/// A handler thread: takes jobs the feeder leased, runs the handler, hands
/// the outcome back.
fn work(s: &Shared, slot: usize) {
    loop {
        let job = {
            let mut st = lock(&s.st);
            loop {
                if s.stop.load(SeqCst) {
                    drop(st);
                    exited(s, 1);
                    return;
                }
                if let Some(a) = st.ready.pop_front() {
                    // Counted as running in the same critical section that
                    // checked `stop`: a stop either sees this handler or
                    // kept it from taking the job.
                    let job = Arc::new(a.job);
                    start_running(s, &mut st, slot, &job, a.leased);
                    // The feeder tops up what is leased ahead.
                    s.feeder_cv.notify_one();
                    break job;
                }
                st.idle += 1;
                // The feeder leases jobs for idle handlers.
                s.feeder_cv.notify_one();
                st = s.handlers_cv.wait(st).unwrap_or_else(PoisonError::into_inner);
                st.idle -= 1;
            }
        };
        run_one(s, slot, job);
    }
}

/// Counts a handler as running `job` (under the state lock) and tells the
/// feeder when its lease needs renewing.
fn start_running(s: &Shared, st: &mut State, slot: usize, job: &Arc<Job>, leased: Instant) {
    st.handlers += 1;
    // A job leased ahead may have waited: renew from when it was leased.
    let next_touch = leased + renew_period(job);
    st.running[slot] = Some(Running { job: job.clone(), next_touch });
    if st.feeder_wakes_at.is_none_or(|t| next_touch < t) {
        s.feeder_cv.notify_one();
    }
}

/// Runs the handler on `job` (already counted by `start_running`) and sees
/// that its outcome is stored.
fn run_one(s: &Shared, slot: usize, job: Arc<Job>) {
    let started = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| (s.handler)(&job))).unwrap_or(Outcome::Retry);
    let took = started.elapsed();
    let finish = match outcome {
        Outcome::Done => job.ack_op(None),
        Outcome::Retry => job.fail_op(Some("the handler asked for a retry")),
        Outcome::Bury => Finish::Bury { reason: Some("the handler buried the job".into()), priority: None },
    };
    let mut st = lock(&s.st);
    st.running[slot] = None;
    // One handler that was descheduled for a while should not switch
    // leasing ahead off: a sample counts at most 4x the threshold.
    let took = took.min(PREFETCH_BELOW * 4);
    st.avg_handler = Some(match st.avg_handler {
        None => took,
        Some(avg) => (avg * 7 + took) / 8,
    });
    if st.feeder == Feeder::Active {
        st.outcomes.push((job, finish));
        s.feeder_cv.notify_one();
    } else {
        // Nobody else would store it soon: do it here. A failure (the lease
        // was lost, the queue closed) leaves the job to be delivered again:
        // at-least-once.
        drop(st);
        let _ = job.finish(finish);
        st = lock(&s.st);
    }
    st.handlers -= 1;
    if st.handlers == 0 {
        s.handlers_cv.notify_all();
    }
}

/// Counts `n` handler threads as gone; the last one ends the worker's claim
/// on the queue (`jobq_close` refuses while a worker has threads).
fn exited(s: &Shared, n: usize) {
    let mut st = lock(&s.st);
    st.threads -= n;
    if st.threads == 0 {
        s.queue.inner.active_workers.fetch_sub(1, SeqCst);
    }
    s.handlers_cv.notify_all();
    s.feeder_cv.notify_all();
}

/// The feeder thread: stores outcomes, leases jobs for idle handlers (and
/// ahead), renews leases, and at the end releases what it leased ahead.
fn feed(s: &Shared) {
    let mut error_pause = Duration::from_millis(5);
    let mut st = lock(&s.st);
    loop {
        let stopping = s.stop.load(SeqCst);
        let now = Instant::now();
        let (due, next_touch) = renewals_due(&mut st, now);
        let outcomes = std::mem::take(&mut st.outcomes);
        let want = if stopping {
            0
        } else {
            let ahead = if st.avg_handler.is_some_and(|a| a < PREFETCH_BELOW) { s.concurrency } else { 0 };
            (st.idle + ahead).saturating_sub(st.ready.len())
        };
        if outcomes.is_empty() && due.is_empty() && want == 0 {
            if stopping && (st.handlers == 0 || !st.renewing) {
                feeder_exit(s, st);
                return;
            }
            st.feeder_wakes_at = next_touch;
            st = match next_touch {
                Some(t) => {
                    s.feeder_cv
                        .wait_timeout(st, t.saturating_duration_since(now))
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => s.feeder_cv.wait(st).unwrap_or_else(PoisonError::into_inner),
            };
            st.feeder_wakes_at = None;
            continue;
        }
        drop(st);
        for job in due {
            let _ = job.touch(0);
        }
        if outcomes.is_empty() && want == 0 {
            st = lock(&s.st);
            continue;
        }
        let seen = s.queue.generation();
        match s.queue.pool_round(&s.name, &outcomes, want) {
            Ok(round) => {
                error_pause = Duration::from_millis(5);
                st = take_round(s, round, want, seen);
            }
            Err(_) if s.stop.load(SeqCst) => {
                // Stopping, and the outcomes cannot be stored: their jobs
                // are delivered again when their leases end (at-least-once).
                st = lock(&s.st);
            }
            Err(_) => {
                // A transient failure (a lock held too long, a full disk, a
                // lost server): keep the outcomes for the next try, pause
                // without spinning.
                st = lock(&s.st);
                let mut kept = outcomes;
                kept.append(&mut st.outcomes);
                st.outcomes = kept;
                if !s.stop.load(SeqCst) {
                    st = s.feeder_cv.wait_timeout(st, error_pause).unwrap_or_else(PoisonError::into_inner).0;
                }
                error_pause = (error_pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// The running jobs whose lease is due for renewal at `now` (their next
/// renewal time moved on), and the earliest next renewal of all.
fn renewals_due(st: &mut State, now: Instant) -> (Vec<Arc<Job>>, Option<Instant>) {
    let mut due = Vec::new();
    let mut next_touch: Option<Instant> = None;
    if st.renewing {
        for r in st.running.iter_mut().flatten() {
            if r.next_touch <= now {
                r.next_touch = now + renew_period(&r.job);
                due.push(r.job.clone());
            }
            next_touch = Some(next_touch.map_or(r.next_touch, |t| t.min(r.next_touch)));
        }
    }
    (due, next_touch)
}

/// The last outcomes are stored: give back what was leased ahead, and go.
fn feeder_exit(s: &Shared, mut st: MutexGuard<'_, State>) {
    st.feeder = Feeder::Exited;
    let ahead: Vec<Ahead> = st.ready.drain(..).collect();
    drop(st);
    for a in ahead {
        let _ = a.job.release(0);
    }
    exited(s, 1);
}

/// Hands the jobs of a pool round to the handlers; when the queue had fewer
/// ready than wanted, waits for more (notifier generation `seen` before the
/// round). Returns with the state locked.
fn take_round<'a>(s: &'a Shared, round: PoolRound, want: usize, seen: u64) -> MutexGuard<'a, State> {
    let got = round.jobs.len();
    let mut st = lock(&s.st);
    let leased = Instant::now();
    st.ready.extend(round.jobs.into_iter().map(|job| Ahead { job, leased }));
    if got > 0 {
        s.handlers_cv.notify_all();
    }
    if got < want && !s.stop.load(SeqCst) && st.outcomes.is_empty() {
        // The queue has no more ready jobs: wait for some. Handlers that
        // finish meanwhile store their own outcomes. Wake up in time to
        // renew running jobs, and jobs leased ahead (one that starts
        // meanwhile is due from when it was leased).
        st.feeder = Feeder::WaitingForJobs;
        let running = st.running.iter().flatten().map(|r| r.next_touch);
        let ahead = st.ready.iter().map(|a| a.leased + renew_period(&a.job));
        let until = running.chain(ahead).min();
        drop(st);
        s.queue.wait_for_jobs(seen, round.next_due, round.recheck_ms, until, Some(&s.stop));
        st = lock(&s.st);
        st.feeder = Feeder::Active;
    }
    st
}
