//! `Job`: one delivery of a job. Finishing it (ack, fail, release, bury)
//! presents the delivery's lease token, so a delivery whose lease expired
//! and which went to someone else can never finish the new delivery.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;

use crate::backoff::retry_delay_ms;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::limits::{MAX_DELAY_MS, MAX_RESULT_BYTES};
use crate::store::{Delivery, Finish};

/// One delivered job. May move between threads; finish it from one at a time.
pub struct Job {
    inner: Arc<Context>,
    queue: Arc<str>,
    id: u64,
    attempt: u32,
    token: i64,
    lease_ms: u64,
    payload: Vec<u8>,
    finished: AtomicBool,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.id)
            .field("queue", &self.queue)
            .field("attempt", &self.attempt)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

impl Job {
    pub(crate) fn new(inner: Arc<Context>, queue: Arc<str>, d: Delivery) -> Job {
        Job {
            inner,
            queue,
            id: d.id,
            attempt: d.attempt,
            token: d.token,
            lease_ms: d.lease_ms,
            payload: d.payload,
            finished: AtomicBool::new(false),
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }
    pub fn queue(&self) -> &str {
        &self.queue
    }
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
    /// 1 on the first delivery; a release does not count.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
    /// The lease of this job, in ms (the renewal period of workers derives from it).
    pub fn lease_ms(&self) -> u64 {
        self.lease_ms
    }
    /// The handle state this delivery came through (`Queue::of_job`).
    pub(crate) fn context(&self) -> &Arc<Context> {
        &self.inner
    }
    /// Whether this delivery was finished (or found stale) through this handle.
    pub fn is_finished(&self) -> bool {
        self.finished.load(SeqCst)
    }

    /// Done: the job is removed (or, with the handle's `keep_done_ms` > 0,
    /// kept in state done for that long).
    pub fn ack(&self) -> Result<()> {
        self.apply(self.ack_op(None), true)
    }

    /// Done, like `ack`, with a result of at most `MAX_RESULT_BYTES` bytes
    /// that `Queue::job` shows while the job is kept (`keep_done_ms`; with 0
    /// the job is deleted at once and the result discarded). A result over
    /// the limit is `TooBig` and changes nothing: the delivery stays yours.
    pub fn ack_result(&self, result: &[u8]) -> Result<()> {
        if result.len() > MAX_RESULT_BYTES {
            return Err(Error::TooBig {
                what: "result",
                limit: "JOBQ_RESULT_MAX",
                len: result.len(),
                max: MAX_RESULT_BYTES,
            });
        }
        self.apply(self.ack_op(Some(result)), true)
    }

    /// The store operation of an ack through this handle: kept as done
    /// (with `result`) when the handle's `keep_done_ms` > 0, else removed.
    pub(crate) fn ack_op(&self, result: Option<&[u8]>) -> Finish {
        match self.inner.config.keep_done_ms {
            0 => Finish::Ack,
            keep_ms => Finish::AckKeep { result: result.map(<[u8]>::to_vec), keep_ms },
        }
    }

    /// Retry after the backoff delay, or dead if this was the last allowed attempt.
    pub fn fail(&self, reason: Option<&str>) -> Result<()> {
        self.apply(self.fail_op(reason), true)
    }

    /// The store operation of `fail` (its delay follows this delivery's attempt).
    pub(crate) fn fail_op(&self, reason: Option<&str>) -> Finish {
        let c = &self.inner.config;
        let delay_ms = retry_delay_ms(self.attempt, c.backoff_base_ms, c.backoff_max_ms, c.backoff_jitter);
        Finish::Fail { reason: reason.map(str::to_owned), delay_ms }
    }

    /// Give it back unfinished, ready again after `delay_ms`; not counted as a failure.
    pub fn release(&self, delay_ms: u64) -> Result<()> {
        self.release_as(delay_ms, None)
    }

    /// Like `release(delay_ms)`, and the job's priority becomes `priority`
    /// (stored with the release, in one statement: a job that is not
    /// released keeps its priority).
    pub fn release_with_priority(&self, delay_ms: u64, priority: i32) -> Result<()> {
        self.release_as(delay_ms, Some(priority))
    }

    fn release_as(&self, delay_ms: u64, priority: Option<i32>) -> Result<()> {
        if delay_ms > MAX_DELAY_MS {
            return Err(Error::invalid(format!("delay_ms must be at most {MAX_DELAY_MS}")));
        }
        self.apply(Finish::Release { delay_ms, priority }, true)
    }

    /// Extends the lease to now + `lease_ms` (0 = the job's lease_ms).
    pub fn touch(&self, lease_ms: u64) -> Result<()> {
        if lease_ms > MAX_DELAY_MS {
            return Err(Error::invalid(format!("lease_ms must be at most {MAX_DELAY_MS}")));
        }
        self.apply(Finish::Touch { lease_ms }, false)
    }

    /// Dead now, with `reason` as its last error.
    pub fn bury(&self, reason: Option<&str>) -> Result<()> {
        self.apply(Finish::Bury { reason: reason.map(str::to_owned), priority: None }, true)
    }

    /// Like `bury(reason)`, and the job's priority becomes `priority`
    /// (stored with the bury, in one statement): a kick brings it back
    /// with that priority.
    pub fn bury_with_priority(&self, reason: Option<&str>, priority: i32) -> Result<()> {
        self.apply(Finish::Bury { reason: reason.map(str::to_owned), priority: Some(priority) }, true)
    }

    /// Stores an outcome chosen by a worker (all of them end the delivery).
    pub(crate) fn finish(&self, finish: Finish) -> Result<()> {
        self.apply(finish, true)
    }

    /// `ends`: whether the operation ends this delivery (all but touch).
    fn apply(&self, finish: Finish, ends: bool) -> Result<()> {
        let (id, token) = self.begin_finish()?;
        let current = self.inner.store.finish(id, token, finish)?;
        self.end_finish(current, ends)
    }

    /// Checks that this delivery may still be finished; its (id, token).
    pub(crate) fn begin_finish(&self) -> Result<(u64, i64)> {
        if self.finished.load(SeqCst) {
            return Err(Error::State(format!("job {}: this delivery was already finished", self.id)));
        }
        self.inner.check_open()?;
        Ok((self.id, self.token))
    }

    /// Records what the store said: `current` false means the delivery was
    /// stale (then it is finished for good); `ends`: all but touch end it.
    pub(crate) fn end_finish(&self, current: bool, ends: bool) -> Result<()> {
        if !current {
            self.finished.store(true, SeqCst);
            return Err(Error::State(format!(
                "job {}: this delivery is no longer current (finished, delivered again, or dead)",
                self.id
            )));
        }
        if ends {
            self.finished.store(true, SeqCst);
        }
        Ok(())
    }
}
