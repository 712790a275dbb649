//! `jobq_job`: one delivered job (Rust: `Job`). Owned by the caller from
//! jobq_reserve (or jobq_reserve_many, jobq_ack_reserve) until jobq_job_free. May move between threads, but must not
//! be used by two threads at once.

use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

use super::handle::Registry;
use super::jobq_status::{self, *};
use super::queue::bytes;
use super::{boundary, boundary_or, c_str, c_str_opt, timeout_of};
use crate::error::Error;
use crate::job::Job;
use crate::queue::Queue;

/// One delivered job.
pub struct jobq_job {
    _opaque: [u8; 0],
}

pub(crate) struct JobEntry {
    pub(crate) job: Arc<Job>,
    /// The queue name as C sees it; lives as long as the handle.
    queue: CString,
}

static JOBS: Registry<JobEntry> = Registry::new(2, "jobq_job");

pub(crate) fn fork_lock_registry() {
    JOBS.fork_lock();
}

/// Registers a delivered job and returns the handle C sees.
pub(crate) fn register_job(job: Arc<Job>) -> *mut jobq_job {
    let queue = CString::new(job.queue()).unwrap_or_default();
    JOBS.insert(Arc::new(JobEntry { job, queue }))
}

/// Drops the registration of a handle made by `register_job` (workers use
/// this after the handler returned; the handler may have freed it already).
pub(crate) fn unregister_job(h: *mut jobq_job) {
    let _ = JOBS.remove(h);
}

/// The job's id; 0 for an invalid handle.
#[no_mangle]
pub extern "C" fn jobq_job_id(job: *const jobq_job) -> u64 {
    boundary_or(0, || JOBS.get(job).map(|e| e.job.id()).unwrap_or(0))
}

/// The job's queue name, valid until jobq_job_free; NULL for an invalid handle.
#[no_mangle]
pub extern "C" fn jobq_job_queue(job: *const jobq_job) -> *const c_char {
    boundary_or(std::ptr::null(), || JOBS.get(job).map(|e| e.queue.as_ptr()).unwrap_or(std::ptr::null()))
}

static EMPTY: [u8; 1] = [0];

/// The payload, valid until jobq_job_free; *len (nullable) receives its
/// length. A 0-byte payload gives a valid, non-NULL pointer and *len = 0.
/// NULL for an invalid handle (and *len is not written).
#[no_mangle]
pub extern "C" fn jobq_job_payload(job: *const jobq_job, len: *mut usize) -> *const u8 {
    boundary_or(std::ptr::null(), || {
        let Ok(entry) = JOBS.get(job) else { return std::ptr::null() };
        let payload = entry.job.payload();
        if !len.is_null() {
            // SAFETY: non-NULL, and the contract says it points to a writable size_t.
            unsafe { len.write(payload.len()) };
        }
        // The registry keeps `entry` (and so the payload) alive until jobq_job_free.
        if payload.is_empty() {
            EMPTY.as_ptr()
        } else {
            payload.as_ptr()
        }
    })
}

/// 1 on the first delivery; counts deliveries that failed or expired, not
/// releases. 0 for an invalid handle.
#[no_mangle]
pub extern "C" fn jobq_job_attempt(job: *const jobq_job) -> u32 {
    boundary_or(0, || JOBS.get(job).map(|e| e.job.attempt()).unwrap_or(0))
}

fn finish(job: *mut jobq_job, f: impl FnOnce(&Job) -> Result<(), Error>) -> jobq_status {
    boundary(std::panic::AssertUnwindSafe(|| {
        let entry = JOBS.get(job)?;
        f(&entry.job)?;
        Ok(JOBQ_OK)
    }))
}

/// Done: the job is removed (with the handle's `keep_done_ms` > 0: kept in
/// state "done" for that long, see jobq_ack_result). JOBQ_E_STATE if this
/// delivery is no longer current (finished already, or its lease expired
/// and it was delivered again).
#[no_mangle]
pub extern "C" fn jobq_ack(job: *mut jobq_job) -> jobq_status {
    finish(job, |j| j.ack())
}

/// The largest result jobq_ack_result stores, in bytes (64 KiB).
pub const JOBQ_RESULT_MAX: usize = 65536;
const _: () = assert!(JOBQ_RESULT_MAX == crate::limits::MAX_RESULT_BYTES);

/// Done, like jobq_ack (same rules: JOBQ_E_STATE if this delivery is no
/// longer current, and then nothing is stored; the ack is committed when
/// this returns JOBQ_OK), with a result of `len` bytes at `data` (NULL
/// allowed when len is 0; copied) kept with the job. With the handle's
/// `keep_done_ms` > 0 the job stays in state "done" for that long, and
/// jobq_job_info shows its result, attempts, last error and times; with
/// keep_done_ms 0 (the default) the job is deleted as by jobq_ack and the
/// result discarded. len > JOBQ_RESULT_MAX: JOBQ_E_TOO_BIG, nothing
/// stored, and the job stays reserved (ack it again, or let it fail).
/// NULL `job`, or NULL `data` with len > 0: JOBQ_E_INVALID_ARG, nothing stored.
#[no_mangle]
pub extern "C" fn jobq_ack_result(job: *mut jobq_job, data: *const c_void, len: usize) -> jobq_status {
    finish(job, |j| j.ack_result(bytes(data, len, "data")?))
}

/// Failed: retried after backoff, or dead if its attempts are used up.
/// `reason` (nullable) is kept as the job's last error.
#[no_mangle]
pub extern "C" fn jobq_fail(job: *mut jobq_job, reason: *const c_char) -> jobq_status {
    finish(job, |j| j.fail(c_str_opt(reason, "reason")?))
}

/// Gives the job back unfinished, ready again after `delay_ms`; not counted as a failure.
#[no_mangle]
pub extern "C" fn jobq_release(job: *mut jobq_job, delay_ms: u64) -> jobq_status {
    finish(job, |j| j.release(delay_ms))
}

/// Like jobq_release(job, delay_ms), and the job's priority becomes
/// `priority` (smaller runs first), stored with the release in one
/// statement. JOBQ_E_STATE, changing nothing (priority included), if this
/// delivery is no longer current; delay_ms over the largest delay
/// jobq_put accepts: JOBQ_E_INVALID_ARG, nothing changed.
#[no_mangle]
pub extern "C" fn jobq_release_priority(job: *mut jobq_job, delay_ms: u64, priority: i32) -> jobq_status {
    finish(job, |j| j.release_with_priority(delay_ms, priority))
}

/// Extends the lease to now + `lease_ms` (0 = the job's lease_ms).
#[no_mangle]
pub extern "C" fn jobq_touch(job: *mut jobq_job, lease_ms: u64) -> jobq_status {
    finish(job, |j| j.touch(lease_ms))
}

/// Dead now; `reason` (nullable) is kept as its last error. jobq_kick revives it.
#[no_mangle]
pub extern "C" fn jobq_bury(job: *mut jobq_job, reason: *const c_char) -> jobq_status {
    finish(job, |j| j.bury(c_str_opt(reason, "reason")?))
}

/// Like jobq_bury(job, reason), and the job's priority becomes `priority`,
/// stored with the bury in one statement (a kick later brings it back with
/// that priority). JOBQ_E_STATE, changing nothing, if this delivery is no
/// longer current.
#[no_mangle]
pub extern "C" fn jobq_bury_priority(job: *mut jobq_job, reason: *const c_char, priority: i32) -> jobq_status {
    finish(job, |j| j.bury_with_priority(c_str_opt(reason, "reason")?, priority))
}

/// Acks `job`'s delivery and leases the next ready job of `queue` (any queue
/// of the handle `job` came from), in ONE transaction on SQLite (on
/// PostgreSQL the ack commits first, then the reserve runs: two round
/// trips). The ack is committed when this returns JOBQ_OK or JOBQ_TIMEOUT,
/// whatever the reserve found.
/// JOBQ_OK: *out_next is the next job (free it with jobq_job_free).
/// While nothing is ready this waits like jobq_reserve (`timeout_ms`: 0 =
/// don't wait, < 0 = forever, > 0 = up to that long); JOBQ_TIMEOUT (as
/// jobq_reserve): nothing came in time, *out_next = NULL, the ack stored.
/// JOBQ_E_STATE: this delivery is no longer current (finished already, or
/// its lease expired and it was delivered again), as jobq_ack gives:
/// nothing acked, nothing reserved, *out_next not written. Any other error
/// (bad arguments are checked before the ack: NULL `queue` or `out_next`,
/// empty queue name -> JOBQ_E_INVALID_ARG): nothing reserved and *out_next
/// not written; the delivery is not marked finished, so jobq_ack may be
/// called on it again (JOBQ_E_STATE then if the ack had been stored).
/// `job` stays the caller's in every case, as after jobq_ack: free it with
/// jobq_job_free (its accessors keep working until then).
#[no_mangle]
pub extern "C" fn jobq_ack_reserve(
    job: *mut jobq_job,
    queue: *const c_char,
    timeout_ms: i64,
    out_next: *mut *mut jobq_job,
) -> jobq_status {
    boundary(std::panic::AssertUnwindSafe(|| {
        let entry = JOBS.get(job)?;
        let name = c_str(queue, "queue")?;
        if out_next.is_null() {
            return Err(Error::InvalidArg("out_next is NULL".into()));
        }
        let next = Queue::of_job(&entry.job).ack_and_reserve(&entry.job, name, timeout_of(timeout_ms))?;
        let (h, status) = match next {
            Some(next) => (register_job(Arc::new(next)), JOBQ_OK),
            None => (std::ptr::null_mut(), JOBQ_TIMEOUT),
        };
        // SAFETY: `out_next` is non-NULL and, per the contract, points to a writable jobq_job*.
        unsafe { out_next.write(h) };
        Ok(status)
    }))
}

/// Acks the `n` deliveries `jobs[0 .. n]` in one transaction on SQLite (on
/// PostgreSQL the acks are queued together and normally share one). All the
/// jobs must come from the same jobq handle, else JOBQ_E_INVALID_ARG and
/// nothing is acked; a NULL, freed or invalid handle among them gives that
/// handle's error (JOBQ_E_INVALID_ARG, JOBQ_E_HANDLE) and nothing is acked.
/// Each delivery's lease token is checked on its own, as jobq_ack does.
/// JOBQ_OK: all were acked. JOBQ_E_STATE: at least one was no longer current
/// (finished already, or its lease expired and it was delivered again), that
/// one changed nothing, and every other job WAS acked; jobq_last_error()
/// names the first such job. `out_statuses` (nullable; else n slots)
/// receives each job's own status (JOBQ_OK or JOBQ_E_STATE) when this
/// returns JOBQ_OK or JOBQ_E_STATE, and is not written otherwise. Any
/// other error (JOBQ_E_BUSY, JOBQ_E_IO, JOBQ_E_SHUTDOWN, ...): the call
/// failed as a whole and no delivery is marked finished; the store may
/// have kept some of the acks, so an ack again reports those as
/// JOBQ_E_STATE, and any not kept are delivered again after their lease
/// (at-least-once). n == 0: JOBQ_OK, nothing done (`jobs` may be NULL). The
/// same handle twice: the second is JOBQ_E_STATE. The handles stay the
/// caller's: free each with jobq_job_free.
#[no_mangle]
pub extern "C" fn jobq_ack_many(jobs: *const *mut jobq_job, n: usize, out_statuses: *mut jobq_status) -> jobq_status {
    boundary(std::panic::AssertUnwindSafe(|| {
        if n == 0 {
            return Ok(JOBQ_OK);
        }
        if jobs.is_null() {
            return Err(Error::InvalidArg(format!("jobs is NULL but n is {n}")));
        }
        if n > isize::MAX as usize / std::mem::size_of::<*mut jobq_job>() {
            return Err(Error::InvalidArg(format!("n = {n} is impossibly large")));
        }
        // SAFETY: non-NULL, the size fits isize, and the contract says `jobs`
        // points to `n` readable jobq_job* values that stay valid for the call.
        let handles = unsafe { std::slice::from_raw_parts(jobs, n) };
        let entries = handles
            .iter()
            .enumerate()
            .map(|(i, h)| JOBS.get(*h).map_err(|e| e.prefixed(&format!("jobs[{i}]"))))
            .collect::<Result<Vec<_>, _>>()?;
        let delivered: Vec<&Job> = entries.iter().map(|e| &*e.job).collect();
        let answers = Queue::of_job(delivered[0]).ack_many(&delivered)?;
        if !out_statuses.is_null() {
            for (i, answer) in answers.iter().enumerate() {
                let status = answer.as_ref().map_or_else(super::status_of, |()| JOBQ_OK);
                // SAFETY: the contract says a non-NULL `out_statuses` has `n`
                // writable slots; there is one answer per job, so i < n.
                unsafe { out_statuses.add(i).write(status) };
            }
        }
        let failed = answers.iter().filter(|a| a.is_err()).count();
        match answers.into_iter().enumerate().find_map(|(i, a)| a.err().map(|e| (i, e))) {
            None => Ok(JOBQ_OK),
            Some((i, e)) => {
                Err(e.prefixed(&format!("{failed} of {n} deliveries not acked (the others were); first jobs[{i}]")))
            }
        }
    }))
}

/// Frees the handle. Always call it, whatever happened to the job; an
/// unfinished job is delivered again when its lease expires. NULL or an
/// already freed handle is ignored.
#[no_mangle]
pub extern "C" fn jobq_job_free(job: *mut jobq_job) {
    boundary_or((), || {
        if !job.is_null() {
            let _ = JOBS.remove(job);
        }
    })
}
