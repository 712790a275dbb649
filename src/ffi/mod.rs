//! The C ABI: the only `extern "C"` code and the only `unsafe` in jobq.
//! No logic lives here: each function checks and converts its C arguments,
//! calls the core, converts the result back, and never lets a panic cross
//! into C. cbindgen generates `include/jobq.h` from this module.
//!
//! API conventions (the header repeats them):
//! - every fallible function returns `jobq_status`: 0 success, > 0 a
//!   non-error outcome, < 0 an error; `jobq_last_error()` explains the last
//!   failure of the calling thread;
//! - out-parameters are written only on success;
//! - every pointer is checked; strings are NUL-terminated UTF-8;
//! - handles are opaque tokens: a closed, freed or forged handle gives
//!   `JOBQ_E_HANDLE`, never undefined behaviour;
//! - everything the library allocates for the caller has its `jobq_*_free`.

#![allow(non_camel_case_types)]

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe, UnwindSafe};

use crate::error::Error;

mod handle;
pub mod job;
pub mod queue;
pub(crate) mod vfs;
pub mod watch;
pub mod worker;

/// Result of every fallible call. 0 = success, > 0 = a non-error outcome,
/// < 0 = an error. Codes are never renumbered.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum jobq_status {
    JOBQ_OK = 0,
    /// jobq_reserve, jobq_reserve_many, jobq_reserve_any, jobq_ack_reserve: nothing became available in time.
    JOBQ_TIMEOUT = 1,
    /// jobq_put: a live job with this unique_key exists; *out_id = its id.
    JOBQ_DUPLICATE = 2,
    /// NULL where not allowed, bad UTF-8, empty queue name, bad config JSON or key.
    JOBQ_E_INVALID_ARG = -1,
    /// A closed, freed or never-valid handle (or one inherited across fork()).
    JOBQ_E_HANDLE = -2,
    /// No job with this id (jobq_peek: no job of the queue in that state).
    JOBQ_E_NOT_FOUND = -3,
    /// The job is not in a state that allows this (e.g. its lease expired and it was re-delivered).
    JOBQ_E_STATE = -4,
    /// The database stayed locked past busy_timeout_ms; or close while workers run.
    JOBQ_E_BUSY = -5,
    /// Cannot create/open the file (missing directory, permission), I/O error, disk full.
    JOBQ_E_IO = -6,
    /// The file is not a jobq database, or is damaged.
    JOBQ_E_CORRUPT = -7,
    /// The file was written by a newer, incompatible jobq.
    JOBQ_E_VERSION = -8,
    /// Payload larger than max_payload_bytes.
    JOBQ_E_TOO_BIG = -9,
    /// The queue or worker is being closed.
    JOBQ_E_SHUTDOWN = -10,
    /// A bug, including a caught Rust panic; the handle stays usable.
    JOBQ_E_INTERNAL = -99,
}

use jobq_status::*;

pub(crate) fn status_of(e: &Error) -> jobq_status {
    match e {
        Error::InvalidArg(_) => JOBQ_E_INVALID_ARG,
        Error::Handle(_) => JOBQ_E_HANDLE,
        Error::NotFound(_) => JOBQ_E_NOT_FOUND,
        Error::State(_) => JOBQ_E_STATE,
        Error::Busy(_) => JOBQ_E_BUSY,
        Error::Io(_) => JOBQ_E_IO,
        Error::Corrupt(_) => JOBQ_E_CORRUPT,
        Error::Version { .. } => JOBQ_E_VERSION,
        Error::TooBig { .. } => JOBQ_E_TOO_BIG,
        Error::Shutdown(_) => JOBQ_E_SHUTDOWN,
        Error::Internal(_) => JOBQ_E_INTERNAL,
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = text);
}

fn clear_last_error() {
    LAST_ERROR.with(|e| {
        let mut e = e.borrow_mut();
        if !e.as_bytes().is_empty() {
            *e = CString::default();
        }
    });
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("internal error: a panic was caught at the C boundary: {text}")
}

/// The panic boundary of every status-returning function: clears the last
/// error, runs `body`, and turns an error or a panic into its code + message.
pub(crate) fn boundary<F>(body: F) -> jobq_status
where
    F: FnOnce() -> Result<jobq_status, Error> + UnwindSafe,
{
    clear_last_error();
    match catch_unwind(body) {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            set_last_error(&e.to_string());
            status_of(&e)
        }
        Err(payload) => {
            set_last_error(&panic_message(payload.as_ref()));
            JOBQ_E_INTERNAL
        }
    }
}

/// The panic boundary of accessors and void functions: `fallback` on panic.
pub(crate) fn boundary_or<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// A NUL-terminated UTF-8 C string argument as `&str`.
///
/// The pointer must be NULL or point to a NUL-terminated string that stays
/// valid for the call; that is the C caller's side of the contract.
pub(crate) fn c_str<'a>(p: *const c_char, what: &str) -> Result<&'a str, Error> {
    if p.is_null() {
        return Err(Error::InvalidArg(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL, and the C contract says it is a NUL-terminated string valid for this call.
    let bytes = unsafe { CStr::from_ptr(p) };
    bytes.to_str().map_err(|_| Error::InvalidArg(format!("{what} is not valid UTF-8")))
}

/// Like `c_str`, but NULL is `None`.
pub(crate) fn c_str_opt<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>, Error> {
    if p.is_null() {
        Ok(None)
    } else {
        c_str(p, what).map(Some)
    }
}

/// A C `timeout_ms` as the core takes it: < 0 = wait forever (`None`),
/// 0 = don't wait, > 0 = up to that long.
pub(crate) fn timeout_of(timeout_ms: i64) -> Option<std::time::Duration> {
    u64::try_from(timeout_ms).ok().map(std::time::Duration::from_millis)
}

/// Before fork(): no jobq thread inside SQLite, and every registry lock
/// held by this thread, so the child inherits no lock held by a thread it
/// does not have (its jobq_open would wait forever for it).
extern "C" fn fork_prepare() {
    boundary_or((), || {
        crate::fork::prepare();
        queue::fork_lock_registries();
        job::fork_lock_registry();
        worker::fork_lock_registry();
        watch::fork_lock_registry();
    })
}

extern "C" fn fork_release() {
    boundary_or((), || {
        handle::fork_unlock();
        crate::fork::release();
    })
}

/// Installs the fork handlers once per process (see fork.rs): a fork()
/// waits until no jobq thread is inside SQLite, so a child starts clean.
pub(crate) fn install_fork_handlers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: the three handlers are plain extern "C" functions with no
        // arguments that never unwind (boundary_or catches panics); they
        // stay valid for the life of the process, or until the library is
        // unloaded: glibc removes handlers of an unloaded object itself.
        let rc = unsafe { libc::pthread_atfork(Some(fork_prepare), Some(fork_release), Some(fork_release)) };
        if rc != 0 {
            set_last_error("pthread_atfork failed: fork() while jobq threads run is not protected");
        }
    });
}

/// Static name of a status code, e.g. "JOBQ_E_STATE"; never NULL, also for
/// codes this version does not know.
#[no_mangle]
pub extern "C" fn jobq_status_str(code: c_int) -> *const c_char {
    let name: &'static CStr = match code {
        0 => c"JOBQ_OK",
        1 => c"JOBQ_TIMEOUT",
        2 => c"JOBQ_DUPLICATE",
        -1 => c"JOBQ_E_INVALID_ARG",
        -2 => c"JOBQ_E_HANDLE",
        -3 => c"JOBQ_E_NOT_FOUND",
        -4 => c"JOBQ_E_STATE",
        -5 => c"JOBQ_E_BUSY",
        -6 => c"JOBQ_E_IO",
        -7 => c"JOBQ_E_CORRUPT",
        -8 => c"JOBQ_E_VERSION",
        -9 => c"JOBQ_E_TOO_BIG",
        -10 => c"JOBQ_E_SHUTDOWN",
        -99 => c"JOBQ_E_INTERNAL",
        _ => c"JOBQ_UNKNOWN_STATUS",
    };
    name.as_ptr()
}

/// Message of this thread's last failing call; "" if the last fallible call
/// succeeded. Never NULL. Valid until this thread's next jobq call.
#[no_mangle]
pub extern "C" fn jobq_last_error() -> *const c_char {
    boundary_or(c"".as_ptr(), || LAST_ERROR.with(|e| e.borrow().as_ptr()))
}

const VERSION: &CStr = match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
    Ok(v) => v,
    Err(_) => panic!("the package version contains a NUL"),
};

const fn parse_version_part(s: &str) -> u32 {
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut n = 0u32;
    while i < bytes.len() {
        n = n * 10 + (bytes[i] - b'0') as u32;
        i += 1;
    }
    n
}

/// MAJOR * 10000 + MINOR * 100 + PATCH, as JOBQ_VERSION_NUMBER in the header.
const VERSION_NUMBER: u32 = parse_version_part(env!("CARGO_PKG_VERSION_MAJOR")) * 10000
    + parse_version_part(env!("CARGO_PKG_VERSION_MINOR")) * 100
    + parse_version_part(env!("CARGO_PKG_VERSION_PATCH"));

/// The library's version, e.g. "0.1.0"; static. Compare with JOBQ_VERSION_STRING
/// of the header you compiled against.
#[no_mangle]
pub extern "C" fn jobq_version() -> *const c_char {
    VERSION.as_ptr()
}

/// The library's version as MAJOR * 10000 + MINOR * 100 + PATCH (JOBQ_VERSION_NUMBER).
#[no_mangle]
pub extern "C" fn jobq_version_number() -> u32 {
    VERSION_NUMBER
}
