//! `jobq_watch`: readiness of one queue as a file descriptor, for event
//! loops (Rust: `Watch`). Owned by the caller from jobq_watch_open until
//! jobq_watch_close.

use std::ffi::{c_char, c_int};
use std::sync::{Arc, Mutex, PoisonError};

use super::handle::Registry;
use super::jobq_status::{self, *};
use super::queue::{jobq, QUEUES};
use super::{boundary, boundary_or, c_str};
use crate::error::Error;
use crate::watch::Watch;

/// A watch on one queue.
pub struct jobq_watch {
    _opaque: [u8; 0],
}

/// The fd is kept outside the lock so jobq_watch_fd never waits.
struct WatchEntry {
    fd: c_int,
    watch: Mutex<Option<Watch>>,
}

static WATCHES: Registry<WatchEntry> = Registry::new(5, "jobq_watch");

pub(crate) fn fork_lock_registry() {
    WATCHES.fork_lock();
}

/// Opens a watch on `queue` of `q`: a file descriptor (jobq_watch_fd) that
/// becomes readable when `queue` may have a ready job — a put, release,
/// kick, resume or retry from this process or another one (or another host,
/// for PostgreSQL). It starts readable, so a loop first takes the jobs
/// already there. Readiness stays until jobq_watch_consume. Wakeups may be
/// spurious (any write to the store may cause one; with PostgreSQL and
/// `wakeups: "poll"` the fd turns readable every 20 ms by itself). The loop
/// is: wait for the fd or the timer, jobq_watch_consume, then
/// jobq_reserve(..., 0, ...) until JOBQ_TIMEOUT. Each watch runs one
/// thread. Close every watch before jobq_close (JOBQ_E_BUSY otherwise); a
/// watch inherited across fork() gives JOBQ_E_HANDLE in the child.
/// JOBQ_E_INVALID_ARG for a NULL or invalid queue name or a NULL `out`.
#[no_mangle]
pub extern "C" fn jobq_watch_open(q: *mut jobq, queue: *const c_char, out: *mut *mut jobq_watch) -> jobq_status {
    boundary(|| {
        let handle = QUEUES.get(q)?;
        let name = c_str(queue, "queue")?;
        if out.is_null() {
            return Err(Error::InvalidArg("out is NULL".into()));
        }
        let watch = handle.watch(name)?;
        let fd = watch.fd();
        let h = WATCHES.insert(Arc::new(WatchEntry { fd, watch: Mutex::new(Some(watch)) }));
        // SAFETY: `out` is non-NULL and, per the contract, points to a writable jobq_watch*.
        unsafe { out.write(h) };
        Ok(JOBQ_OK)
    })
}

/// The watch's file descriptor: non-blocking, close-on-exec, owned by the
/// watch (do not read or close it yourself; jobq_watch_close closes it).
/// Wait for it to be readable (POLLIN / EPOLLIN / EV_READ). -1 for a bad
/// handle.
#[no_mangle]
pub extern "C" fn jobq_watch_fd(w: *const jobq_watch) -> c_int {
    boundary_or(-1, || WATCHES.get(w).map(|e| e.fd).unwrap_or(-1))
}

/// Clears the readiness of the fd (a later write makes it readable again,
/// none is missed) and writes to `*out_next_due_ms` (nullable) the
/// milliseconds until the queue's next scheduled job (delay, backoff) or
/// lease expiry becomes due, 0 if one is due now, -1 if there is none: arm
/// a timer for it, as such a job makes no write.
#[no_mangle]
pub extern "C" fn jobq_watch_consume(w: *mut jobq_watch, out_next_due_ms: *mut i64) -> jobq_status {
    boundary(|| {
        let entry = WATCHES.get(w)?;
        let guard = entry.watch.lock().unwrap_or_else(PoisonError::into_inner);
        let watch = guard.as_ref().ok_or_else(|| Error::Handle("this jobq_watch is being closed".into()))?;
        let due = watch.consume()?;
        if !out_next_due_ms.is_null() {
            let ms = due.map_or(-1, |d| d.as_millis().min(i64::MAX as u128) as i64);
            // SAFETY: non-NULL, and the contract says it points to a writable int64_t.
            unsafe { out_next_due_ms.write(ms) };
        }
        Ok(JOBQ_OK)
    })
}

/// Stops the watch and closes its fd (take it out of your event loop
/// first). NULL is a no-op; JOBQ_E_HANDLE for a handle already closed.
#[no_mangle]
pub extern "C" fn jobq_watch_close(w: *mut jobq_watch) -> jobq_status {
    boundary(|| {
        // Inside the boundary, so that a NULL no-op clears jobq_last_error
        // like every other successful call.
        if w.is_null() {
            return Ok(JOBQ_OK);
        }
        let entry = WATCHES.remove(w)?;
        let watch = entry.watch.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(watch) = watch {
            watch.close();
        }
        Ok(JOBQ_OK)
    })
}
