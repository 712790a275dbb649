//! `jobq_worker`: a pool of threads running a C handler (Rust: `Worker`).
//! Owned by the caller from jobq_worker_start until jobq_worker_stop.

use std::ffi::{c_char, c_int, c_void};
use std::mem::size_of;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::handle::Registry;
use super::job::{jobq_job, register_job, unregister_job};
use super::jobq_status::{self, *};
use super::queue::{init_sized, jobq, read_sized, QUEUES};
use super::{boundary, boundary_or, c_str};
use crate::error::Error;
use crate::worker::{Outcome, Worker, WorkerOptions};

/// What a handler returns. An int, not an enum, because it comes from C:
/// any other value is accepted and counts as JOBQ_RETRY.
pub type jobq_outcome = c_int;
/// Acknowledge: the job is removed.
pub const JOBQ_DONE: jobq_outcome = 0;
/// Fail: retried after backoff, or dead when its attempts are used up.
pub const JOBQ_RETRY: jobq_outcome = 1;
/// Dead now.
pub const JOBQ_BURY: jobq_outcome = 2;

/// Runs one job. Called on the pool's threads, up to `concurrency` at once,
/// never on the thread that called jobq_worker_start. The job handle is
/// valid only during the call: read it, but do not finish (ack/fail/...) or
/// free it — the returned outcome does that. Calling jobq_worker_stop or
/// jobq_close from inside a handler is not allowed (it would wait for itself).
pub type jobq_handler = Option<unsafe extern "C" fn(job: *const jobq_job, user_data: *mut c_void) -> jobq_outcome>;

/// Options of a worker pool. Initialise with `jobq_worker_opts_init(&opts)`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct jobq_worker_opts {
    /// Set by jobq_worker_opts_init.
    pub struct_size: u32,
    /// Handler threads; default 1.
    pub concurrency: u32,
}

const WORKER_OPTS_V1_SIZE: usize = size_of::<jobq_worker_opts>();
const WORKER_OPTS_DEFAULT: jobq_worker_opts =
    jobq_worker_opts { struct_size: WORKER_OPTS_V1_SIZE as u32, concurrency: 1 };

/// A pool of threads running a handler.
pub struct jobq_worker {
    _opaque: [u8; 0],
}

static WORKERS: Registry<Mutex<Option<Worker>>> = Registry::new(3, "jobq_worker");

pub(crate) fn fork_lock_registry() {
    WORKERS.fork_lock();
}

/// See jobq_put_opts_init_sized; use the jobq_worker_opts_init macro.
#[no_mangle]
pub extern "C" fn jobq_worker_opts_init_sized(opts: *mut jobq_worker_opts, size: usize) {
    boundary_or((), || init_sized(opts, size, &WORKER_OPTS_DEFAULT))
}

/// Sets the defaults of the first shipped layout (for dlsym users; C code
/// gets the jobq_worker_opts_init macro).
#[no_mangle]
pub extern "C" fn jobq_worker_opts_init(opts: *mut jobq_worker_opts) {
    jobq_worker_opts_init_sized(opts, WORKER_OPTS_V1_SIZE)
}

/// The C handler and its user_data, callable from the pool's threads.
struct CHandler {
    f: unsafe extern "C" fn(*const jobq_job, *mut c_void) -> jobq_outcome,
    user_data: *mut c_void,
}

// SAFETY: jobq_worker_start documents that the handler is called from the
// pool's threads with this user_data; the caller vouches that both may be
// used there (that is the point of passing them to a thread pool).
unsafe impl Send for CHandler {}
// SAFETY: as above; concurrent calls are documented (up to `concurrency`).
unsafe impl Sync for CHandler {}

impl CHandler {
    fn call(&self, job: &Arc<crate::job::Job>) -> Outcome {
        let h = register_job(job.clone());
        // SAFETY: `f` is the non-NULL C function given to jobq_worker_start;
        // `h` is a valid handle for the duration of the call.
        let code = unsafe { (self.f)(h, self.user_data) };
        unregister_job(h);
        match code {
            JOBQ_DONE => Outcome::Done,
            JOBQ_BURY => Outcome::Bury,
            JOBQ_RETRY => Outcome::Retry,
            // Any other value C made up counts as a retry (API.md).
            _ => Outcome::Retry,
        }
    }
}

/// Starts `concurrency` threads that run `handler(job, user_data)` on jobs
/// of `queue`; its outcome is stored: JOBQ_DONE acks, JOBQ_RETRY fails
/// (backoff), JOBQ_BURY buries, anything else retries. Leases are renewed
/// while a handler runs. `opts` NULL = defaults.
///
/// One more thread per pool does its database work: it stores finished
/// handlers' outcomes and leases the next jobs in one transaction, so a
/// handler thread takes its next job from memory. While handlers average
/// under 5 ms, it leases up to `concurrency` jobs ahead of them (they count
/// as reserved in the stats; jobq_worker_stop gives them back without
/// counting an attempt). An outcome is stored a moment (one transaction)
/// after its handler returns: if the process dies in between, the job is
/// delivered again (at-least-once).
#[no_mangle]
pub extern "C" fn jobq_worker_start(
    q: *mut jobq,
    queue: *const c_char,
    opts: *const jobq_worker_opts,
    handler: jobq_handler,
    user_data: *mut c_void,
    out: *mut *mut jobq_worker,
) -> jobq_status {
    boundary(|| {
        let handle = QUEUES.get(q)?;
        let name = c_str(queue, "queue")?;
        let Some(f) = handler else {
            return Err(Error::InvalidArg("handler is NULL".into()));
        };
        if out.is_null() {
            return Err(Error::InvalidArg("out is NULL".into()));
        }
        let o = read_sized(opts, &WORKER_OPTS_DEFAULT, WORKER_OPTS_V1_SIZE, "jobq_worker_opts")?;
        let c = CHandler { f, user_data };
        let worker = Worker::start(
            &handle,
            name,
            WorkerOptions { concurrency: o.concurrency },
            Arc::new(move |job| c.call(job)),
        )?;
        let h = WORKERS.insert(Arc::new(Mutex::new(Some(worker))));
        // SAFETY: `out` is non-NULL and, per the contract, points to a writable jobq_worker*.
        unsafe { out.write(h) };
        Ok(JOBQ_OK)
    })
}

/// Stops taking jobs, waits up to `timeout_ms` (< 0 = forever) for running
/// handlers, and frees the worker (the handle is invalid afterwards, in
/// every case). JOBQ_OK: every handler returned and its outcome is stored.
/// JOBQ_TIMEOUT: handlers were still running; their leases are no longer
/// renewed (their jobs are delivered again once the leases expire), their
/// threads end when they return, and until then jobq_close gives JOBQ_E_BUSY.
#[no_mangle]
pub extern "C" fn jobq_worker_stop(w: *mut jobq_worker, timeout_ms: i64) -> jobq_status {
    boundary(|| {
        let entry = WORKERS.remove(w)?;
        let worker = entry.lock().unwrap_or_else(PoisonError::into_inner).take();
        let Some(worker) = worker else { return Ok(JOBQ_OK) };
        let timeout = (timeout_ms >= 0).then(|| Duration::from_millis(timeout_ms as u64));
        Ok(if worker.stop(timeout)? { JOBQ_OK } else { JOBQ_TIMEOUT })
    })
}
