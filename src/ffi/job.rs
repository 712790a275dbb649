//! `jobq_job`: one delivered job (Rust: `Job`). Owned by the caller from
//! jobq_reserve until jobq_job_free. May move between threads, but must not
//! be used by two threads at once.

use std::ffi::{c_char, CString};
use std::sync::Arc;

use super::handle::Registry;
use super::jobq_status::{self, *};
use super::{boundary, boundary_or, c_str_opt};
use crate::error::Error;
use crate::job::Job;

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

/// Done: the job is removed. JOBQ_E_STATE if this delivery is no longer
/// current (finished already, or its lease expired and it was delivered again).
#[no_mangle]
pub extern "C" fn jobq_ack(job: *mut jobq_job) -> jobq_status {
    finish(job, |j| j.ack())
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
