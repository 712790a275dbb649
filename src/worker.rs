//! `Worker`: a pool of handler threads working one queue. Each thread
//! reserves a job, runs the handler, and stores its outcome; a renewal
//! thread keeps the leases of running handlers alive so a long job is not
//! delivered twice. Stopping is graceful: no new jobs are taken, running
//! handlers finish and their outcomes are stored.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::job::Job;
use crate::queue::{check_queue_name, Queue};
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

struct Running {
    job: Arc<Job>,
    next_touch: Instant,
}

struct PoolState {
    /// Handler threads that have not exited yet.
    threads: usize,
    /// Handlers running now.
    handlers: usize,
}

struct Shared {
    queue: Queue,
    name: String,
    handler: Handler,
    /// Set by `stop`: take no new jobs.
    stop: AtomicBool,
    /// Jobs whose handlers run now, one slot per handler thread; `None` in
    /// `running` (the whole vector) once renewal has stopped.
    running: Mutex<Option<Vec<Option<Running>>>>,
    renew_cv: Condvar,
    /// Threads and running handlers; `stop` waits on `pool_cv` for
    /// `handlers == 0`, and a thread starts a handler only while not stopped.
    pool: Mutex<PoolState>,
    pool_cv: Condvar,
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
            stop: AtomicBool::new(false),
            running: Mutex::new(Some((0..n).map(|_| None).collect())),
            renew_cv: Condvar::new(),
            pool: Mutex::new(PoolState { threads: n, handlers: 0 }),
            pool_cv: Condvar::new(),
        });
        queue.inner.active_workers.fetch_add(1, SeqCst);
        let mut worker = Worker { shared: shared.clone(), threads: Vec::with_capacity(n + 1), stopped: false };
        let spawn = |name: String, f: Box<dyn FnOnce() + Send>| std::thread::Builder::new().name(name).spawn(f);
        let renewer = {
            let s = shared.clone();
            spawn("jobq-renew".into(), Box::new(move || renew(&s)))
        };
        match renewer {
            Ok(t) => worker.threads.push(t),
            Err(e) => {
                lock(&shared.pool).threads = 0;
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
        let mut pool = lock(&s.pool);
        while pool.handlers > 0 {
            match deadline {
                None => pool = s.pool_cv.wait(pool).unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break;
                    }
                    pool = s.pool_cv.wait_timeout(pool, d - now).unwrap_or_else(PoisonError::into_inner).0;
                }
            }
        }
        let all_done = pool.handlers == 0;
        drop(pool);
        // Stop renewing: finished handlers need no lease; unfinished ones
        // give their jobs back when the leases run out.
        *lock(&s.running) = None;
        s.renew_cv.notify_all();
        let threads = std::mem::take(&mut self.threads);
        if all_done {
            // No handler runs and none can start: the threads are at most
            // finishing a reserve, which the stop flag ends promptly.
            for t in threads {
                let _ = t.join();
            }
        } else if let Some(renewer) = threads.into_iter().next() {
            let _ = renewer.join();
        }
        all_done
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.shutdown(None);
    }
}

fn work(s: &Shared, slot: usize) {
    let mut error_pause = Duration::from_millis(5);
    // The job reserved together with the previous job's outcome, if any.
    let mut next: Option<Job> = None;
    while !s.stop.load(SeqCst) {
        let job = match next.take() {
            Some(job) => job,
            None => match s.queue.reserve_until(&s.name, None, Some(&s.stop)) {
                Ok(Some(job)) => job,
                Ok(None) => continue,
                Err(Error::Shutdown(_)) => break,
                Err(_) => {
                    // A transient failure (a lock held too long, a full disk):
                    // pause without spinning, then try again.
                    let pool = lock(&s.pool);
                    if !s.stop.load(SeqCst) {
                        drop(s.pool_cv.wait_timeout(pool, error_pause).unwrap_or_else(PoisonError::into_inner));
                    }
                    error_pause = (error_pause * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
        };
        error_pause = Duration::from_millis(5);
        {
            let mut pool = lock(&s.pool);
            if s.stop.load(SeqCst) {
                // Stopped while this reserve ran: give the job back at once.
                drop(pool);
                let _ = job.release(0);
                break;
            }
            pool.handlers += 1;
        }
        next = run_one(s, slot, Arc::new(job));
        lock(&s.pool).handlers -= 1;
        s.pool_cv.notify_all();
    }
    if let Some(job) = next {
        let _ = job.release(0);
    }
    exited(s, 1);
}

/// Counts `n` handler threads as gone; the last one ends the worker's claim
/// on the queue (`jobq_close` refuses while a worker has threads).
fn exited(s: &Shared, n: usize) {
    let mut pool = lock(&s.pool);
    pool.threads -= n;
    if pool.threads == 0 {
        s.queue.inner.active_workers.fetch_sub(1, SeqCst);
    }
    s.pool_cv.notify_all();
}

fn renew_period(job: &Job) -> Duration {
    Duration::from_millis((job.lease_ms() / 3).max(1))
}

/// Runs the handler and stores its outcome; unless the pool is stopping,
/// reserves the next job in the same transaction and returns it.
fn run_one(s: &Shared, slot: usize, job: Arc<Job>) -> Option<Job> {
    if let Some(running) = lock(&s.running).as_mut() {
        running[slot] = Some(Running { job: job.clone(), next_touch: Instant::now() + renew_period(&job) });
    }
    s.renew_cv.notify_all();
    let outcome = catch_unwind(AssertUnwindSafe(|| (s.handler)(&job))).unwrap_or(Outcome::Retry);
    if let Some(running) = lock(&s.running).as_mut() {
        running[slot] = None;
    }
    let (finish, wakes) = match outcome {
        Outcome::Done => (Finish::Ack, false),
        Outcome::Retry => (job.fail_op(Some("the handler asked for a retry")), true),
        Outcome::Bury => (Finish::Bury { reason: Some("the handler buried the job".into()) }, false),
    };
    // A failure to store the outcome (the lease was lost, the queue closed)
    // leaves the job to be delivered again: at-least-once.
    if s.stop.load(SeqCst) {
        let _ = job.finish(finish, wakes);
        return None;
    }
    match s.queue.finish_and_reserve(&job, finish.clone(), wakes, &s.name) {
        Ok((_, next)) => next,
        Err(_) => {
            let _ = job.finish(finish, wakes);
            None
        }
    }
}

fn renew(s: &Shared) {
    let mut guard = lock(&s.running);
    loop {
        let Some(running) = guard.as_mut() else { return };
        let now = Instant::now();
        let mut due = Vec::new();
        let mut next = now + Duration::from_secs(1);
        for r in running.iter_mut().flatten() {
            if r.next_touch <= now {
                r.next_touch = now + renew_period(&r.job);
                due.push(r.job.clone());
            }
            next = next.min(r.next_touch);
        }
        if !due.is_empty() {
            drop(guard);
            for job in due {
                let _ = job.touch(0);
            }
            guard = lock(&s.running);
            continue;
        }
        guard = s.renew_cv.wait_timeout(guard, next - now).unwrap_or_else(PoisonError::into_inner).0;
    }
}
