//! Fuzzes jobq's C ABI the way a careless C program would use it.
//!
//! The input is a little program: up to `MAX_OPS` operations, each an opcode
//! byte and its arguments (decoded with `arbitrary::Unstructured`). The ops
//! call the exported `jobq_*` functions, declared below exactly as in
//! include/jobq.h, with NULLs, bad lengths, invalid UTF-8, closed, freed and
//! forged handles, too-small option structs, huge sizes and delays, and check
//! after every call:
//!   - the status is a known jobq_status, never JOBQ_E_INTERNAL (a caught panic);
//!   - an error leaves a non-empty jobq_last_error(), a success leaves it "";
//!   - out-parameters (pre-filled with a sentinel) are written on success and
//!     untouched on error; handles from a failed call are never written;
//!   - the status is the one the arguments call for (a model of the contract:
//!     closed/freed/forged handles give JOBQ_E_HANDLE, NULL ones
//!     JOBQ_E_INVALID_ARG, a finished delivery JOBQ_E_STATE, ...);
//!   - ids increase; a delivered job is one that was put, with its queue and
//!     payload, and never one that was acked or cancelled;
//!   - jobq_stats_json is valid JSON of the documented shape, with counts that
//!     fit what was put; jobq_status_str never returns NULL;
//!   - a worker's handler sees a valid job of its queue; stop(-1) returns OK.
//!
//! The program never passes a non-NULL pointer to fewer bytes than it claims
//! (that is the caller's undefined behaviour), but forged handle values are
//! fair game: the library must reject them without dereferencing them.
//! Reserves use timeout 0 so that nothing blocks. Each input starts on a fresh
//! queue file (in /dev/shm when it exists) and ends by stopping, freeing and
//! closing everything it made, so nothing leaks between inputs.
//!
//! Set JOBQ_FUZZ_TRACE=1 to print each call and its status (for reproducers).

#![no_main]

// Links the rlib that defines the jobq_* symbols (its `ffi` module is
// private to Rust: the functions are reached only as C symbols).
extern crate jobq as _;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::mem::size_of;
use std::path::PathBuf;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::arbitrary::{Result as AResult, Unstructured};
use libfuzzer_sys::fuzz_target;

#[allow(non_camel_case_types, dead_code)]
mod c {
    use std::ffi::{c_char, c_int, c_void};

    /// A C enum is an int: received as c_int, so any value the library
    /// returns is defined behaviour here and can be checked.
    pub type jobq_status = c_int;

    #[repr(C)]
    pub struct jobq {
        _opaque: [u8; 0],
    }
    #[repr(C)]
    pub struct jobq_job {
        _opaque: [u8; 0],
    }
    #[repr(C)]
    pub struct jobq_worker {
        _opaque: [u8; 0],
    }
    #[repr(C)]
    pub struct jobq_watch {
        _opaque: [u8; 0],
    }

    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct jobq_put_opts {
        pub struct_size: u32,
        pub priority: i32,
        pub delay_ms: u64,
        pub max_attempts: u32,
        pub lease_ms: u64,
        pub unique_key: *const c_char,
    }

    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct jobq_payload {
        pub data: *const c_void,
        pub len: usize,
    }

    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct jobq_worker_opts {
        pub struct_size: u32,
        pub concurrency: u32,
    }

    pub type jobq_outcome = c_int;
    pub type jobq_handler = Option<unsafe extern "C" fn(job: *const jobq_job, user_data: *mut c_void) -> jobq_outcome>;

    extern "C" {
        pub fn jobq_status_str(code: c_int) -> *const c_char;
        pub fn jobq_last_error() -> *const c_char;
        pub fn jobq_version() -> *const c_char;
        pub fn jobq_version_number() -> u32;
        pub fn jobq_job_id(job: *const jobq_job) -> u64;
        pub fn jobq_job_queue(job: *const jobq_job) -> *const c_char;
        pub fn jobq_job_payload(job: *const jobq_job, len: *mut usize) -> *const u8;
        pub fn jobq_job_attempt(job: *const jobq_job) -> u32;
        pub fn jobq_ack(job: *mut jobq_job) -> jobq_status;
        pub fn jobq_fail(job: *mut jobq_job, reason: *const c_char) -> jobq_status;
        pub fn jobq_release(job: *mut jobq_job, delay_ms: u64) -> jobq_status;
        pub fn jobq_touch(job: *mut jobq_job, lease_ms: u64) -> jobq_status;
        pub fn jobq_bury(job: *mut jobq_job, reason: *const c_char) -> jobq_status;
        pub fn jobq_job_free(job: *mut jobq_job);
        pub fn jobq_put_opts_init_sized(opts: *mut jobq_put_opts, size: usize);
        pub fn jobq_put_opts_init(opts: *mut jobq_put_opts);
        pub fn jobq_open(path: *const c_char, config_json: *const c_char, out: *mut *mut jobq) -> jobq_status;
        pub fn jobq_close(q: *mut jobq) -> jobq_status;
        pub fn jobq_put(
            q: *mut jobq,
            queue: *const c_char,
            payload: *const c_void,
            len: usize,
            opts: *const jobq_put_opts,
            out_id: *mut u64,
        ) -> jobq_status;
        pub fn jobq_put_batch(
            q: *mut jobq,
            queue: *const c_char,
            items: *const jobq_payload,
            n: usize,
            opts: *const jobq_put_opts,
            out_ids: *mut u64,
        ) -> jobq_status;
        pub fn jobq_reserve(
            q: *mut jobq,
            queue: *const c_char,
            timeout_ms: i64,
            out: *mut *mut jobq_job,
        ) -> jobq_status;
        pub fn jobq_kick(q: *mut jobq, queue: *const c_char, max: u64, out_kicked: *mut u64) -> jobq_status;
        pub fn jobq_cancel(q: *mut jobq, id: u64) -> jobq_status;
        pub fn jobq_stats_json(q: *mut jobq, out_json: *mut *mut c_char) -> jobq_status;
        pub fn jobq_string_free(s: *mut c_char);
        pub fn jobq_worker_opts_init_sized(opts: *mut jobq_worker_opts, size: usize);
        pub fn jobq_worker_opts_init(opts: *mut jobq_worker_opts);
        pub fn jobq_worker_start(
            q: *mut jobq,
            queue: *const c_char,
            opts: *const jobq_worker_opts,
            handler: jobq_handler,
            user_data: *mut c_void,
            out: *mut *mut jobq_worker,
        ) -> jobq_status;
        pub fn jobq_worker_stop(w: *mut jobq_worker, timeout_ms: i64) -> jobq_status;
        pub fn jobq_ack_result(job: *mut jobq_job, data: *const c_void, len: usize) -> jobq_status;
        pub fn jobq_ack_reserve(
            job: *mut jobq_job,
            queue: *const c_char,
            timeout_ms: i64,
            out_next: *mut *mut jobq_job,
        ) -> jobq_status;
        pub fn jobq_ack_many(jobs: *const *mut jobq_job, n: usize, out_statuses: *mut jobq_status) -> jobq_status;
        pub fn jobq_reserve_many(
            q: *mut jobq,
            queue: *const c_char,
            max: usize,
            timeout_ms: i64,
            out_jobs: *mut *mut jobq_job,
            out_n: *mut usize,
        ) -> jobq_status;
        pub fn jobq_pause(q: *mut jobq, queue: *const c_char) -> jobq_status;
        pub fn jobq_resume(q: *mut jobq, queue: *const c_char) -> jobq_status;
        pub fn jobq_schedule(
            q: *mut jobq,
            queue: *const c_char,
            name: *const c_char,
            spec: *const c_char,
            payload: *const c_void,
            len: usize,
            opts: *const jobq_put_opts,
        ) -> jobq_status;
        pub fn jobq_unschedule(q: *mut jobq, name: *const c_char) -> jobq_status;
        pub fn jobq_queue_config(q: *mut jobq, queue: *const c_char, json: *const c_char) -> jobq_status;
        pub fn jobq_job_info(q: *mut jobq, id: u64, json_out: *mut *mut c_char) -> jobq_status;
        pub fn jobq_watch_open(q: *mut jobq, queue: *const c_char, out: *mut *mut jobq_watch) -> jobq_status;
        pub fn jobq_watch_fd(w: *const jobq_watch) -> c_int;
        pub fn jobq_watch_consume(w: *mut jobq_watch, out_next_due_ms: *mut i64) -> jobq_status;
        pub fn jobq_watch_close(w: *mut jobq_watch) -> jobq_status;
        pub fn jobq_reserve_any(
            q: *mut jobq,
            queues: *const *const c_char,
            n: usize,
            timeout_ms: i64,
            out: *mut *mut jobq_job,
        ) -> jobq_status;
        pub fn jobq_release_priority(job: *mut jobq_job, delay_ms: u64, priority: i32) -> jobq_status;
        pub fn jobq_bury_priority(job: *mut jobq_job, reason: *const c_char, priority: i32) -> jobq_status;
        pub fn jobq_kick_job(q: *mut jobq, id: u64) -> jobq_status;
        pub fn jobq_peek(q: *mut jobq, queue: *const c_char, state: *const c_char, out_id: *mut u64) -> jobq_status;
    }
}

use c::*;

const OK: c_int = 0;
const TIMEOUT: c_int = 1;
const DUPLICATE: c_int = 2;
const E_INVALID_ARG: c_int = -1;
const E_HANDLE: c_int = -2;
const E_NOT_FOUND: c_int = -3;
const E_STATE: c_int = -4;
const E_BUSY: c_int = -5;
const E_IO: c_int = -6;
const E_CORRUPT: c_int = -7;
#[allow(dead_code)]
const E_VERSION: c_int = -8;
const E_TOO_BIG: c_int = -9;
const E_SHUTDOWN: c_int = -10;
const E_INTERNAL: c_int = -99;

const STATUS_NAMES: [(c_int, &str); 14] = [
    (OK, "JOBQ_OK"),
    (TIMEOUT, "JOBQ_TIMEOUT"),
    (DUPLICATE, "JOBQ_DUPLICATE"),
    (E_INVALID_ARG, "JOBQ_E_INVALID_ARG"),
    (E_HANDLE, "JOBQ_E_HANDLE"),
    (E_NOT_FOUND, "JOBQ_E_NOT_FOUND"),
    (E_STATE, "JOBQ_E_STATE"),
    (E_BUSY, "JOBQ_E_BUSY"),
    (E_IO, "JOBQ_E_IO"),
    (E_CORRUPT, "JOBQ_E_CORRUPT"),
    (E_VERSION, "JOBQ_E_VERSION"),
    (E_TOO_BIG, "JOBQ_E_TOO_BIG"),
    (E_SHUTDOWN, "JOBQ_E_SHUTDOWN"),
    (E_INTERNAL, "JOBQ_E_INTERNAL"),
];

/// Operations per input.
const MAX_OPS: usize = 64;
/// Queue handles open at once, and workers running at once (threads are slow).
const MAX_OPEN: usize = 3;
const MAX_WORKERS: usize = 2;
/// Watches open at once (each runs a thread).
const MAX_WATCHES: usize = 2;
/// Limits of the newer calls (include/jobq.h, src/limits.rs, src/schedule.rs).
const RESULT_MAX: usize = 65536;
const RESERVE_MANY_MAX: usize = 1000;
const RESERVE_ANY_MAX: usize = 64;
const SCHEDULE_NAME_MAX: usize = 1024;
const SCHEDULE_SPEC_MAX: usize = 256;
const MAX_LIMIT: u64 = 1_000_000_000_000;
/// Limits of the contract (src/queue.rs, src/worker.rs).
const MAX_DELAY_MS: u64 = 100_000_000_000;
const MAX_QUEUE_NAME: usize = 1024;
const MAX_UNIQUE_KEY: usize = 4096;
const MAX_CONCURRENCY: u32 = 1024;
const DEFAULT_MAX_PAYLOAD: u64 = 16 * 1024 * 1024;
const PUT_OPTS_SIZE: usize = size_of::<jobq_put_opts>();
const WORKER_OPTS_SIZE: usize = size_of::<jobq_worker_opts>();
/// Extra bytes after an options struct, for "newer caller" struct sizes.
const OPTS_TAIL: usize = 64;

/// Written into out-parameters before a call: an untouched one still holds it.
const SENTINEL: u64 = 0x5EE5_5EE5_5EE5_5EE5;
fn sentinel_ptr<T>() -> *mut T {
    ptr::without_provenance_mut(SENTINEL as usize)
}

// ---------------------------------------------------------------- helpers

fn trace() -> bool {
    static T: OnceLock<bool> = OnceLock::new();
    *T.get_or_init(|| std::env::var_os("JOBQ_FUZZ_TRACE").is_some())
}

fn since_start() -> f64 {
    static T0: OnceLock<std::time::Instant> = OnceLock::new();
    T0.get_or_init(std::time::Instant::now).elapsed().as_secs_f64() * 1000.0
}

macro_rules! log {
    ($($t:tt)*) => { if trace() { eprintln!("[{:9.3} ms] {}", since_start(), format!($($t)*)); } };
}

fn status_name(st: c_int) -> String {
    STATUS_NAMES.iter().find(|(c, _)| *c == st).map(|(_, n)| n.to_string()).unwrap_or_else(|| format!("status {st}"))
}

fn names(list: &[c_int]) -> Vec<String> {
    list.iter().map(|&s| status_name(s)).collect()
}

/// Copies jobq_last_error() (valid only until the next jobq call).
fn last_error() -> String {
    // SAFETY: no arguments; returns a NUL-terminated string or (a bug) NULL.
    let p = unsafe { jobq_last_error() };
    assert!(!p.is_null(), "jobq_last_error() returned NULL");
    // SAFETY: non-NULL, NUL-terminated per the contract, valid until the next call.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The checks every status-returning call gets.
fn check(call: &str, st: c_int, allowed: &[c_int]) {
    let msg = last_error();
    log!("  {call} -> {} {msg:?}", status_name(st));
    assert!(STATUS_NAMES.iter().any(|(c, _)| *c == st), "{call}: returned {st}, not a jobq_status value ({msg})");
    assert!(st != E_INTERNAL, "{call}: JOBQ_E_INTERNAL (a bug or a caught panic): {msg}");
    if st < 0 {
        assert!(!msg.is_empty(), "{call}: {} but jobq_last_error() is empty", status_name(st));
    } else {
        assert!(msg.is_empty(), "{call}: {} but jobq_last_error() is {msg:?}", status_name(st));
    }
    assert!(
        allowed.contains(&st),
        "{call}: returned {} ({msg:?}), the contract allows only {:?}",
        status_name(st),
        names(allowed)
    );
}

/// Allowed statuses: the errors some argument calls for, else `success`.
fn expect(errors: &[c_int], success: &[c_int]) -> Vec<c_int> {
    if errors.is_empty() {
        success.to_vec()
    } else {
        errors.to_vec()
    }
}

/// A C string argument: NULL, or bytes with a NUL appended.
#[derive(Clone, Debug)]
struct CArg(Option<Vec<u8>>);

impl CArg {
    fn null() -> Self {
        CArg(None)
    }
    fn new(bytes: &[u8]) -> Self {
        // The C string ends at the first NUL, as C would see it.
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        let mut v = bytes[..end].to_vec();
        v.push(0);
        CArg(Some(v))
    }
    fn ptr(&self) -> *const c_char {
        self.0.as_ref().map_or(ptr::null(), |v| v.as_ptr().cast())
    }
    /// The bytes before the NUL; None for NULL.
    fn bytes(&self) -> Option<&[u8]> {
        self.0.as_ref().map(|v| &v[..v.len() - 1])
    }
    fn utf8(&self) -> Option<&str> {
        self.bytes().and_then(|b| std::str::from_utf8(b).ok())
    }
    fn is_queue_name(&self) -> bool {
        self.utf8().is_some_and(|s| !s.is_empty() && s.len() <= MAX_QUEUE_NAME)
    }
}

fn fuzz_bytes(u: &mut Unstructured, max: usize) -> AResult<Vec<u8>> {
    let n = u.int_in_range(0..=max)?;
    Ok(u.bytes(n.min(u.len()))?.to_vec())
}

fn gen_name(u: &mut Unstructured) -> AResult<CArg> {
    Ok(match u.int_in_range(0u8..=19)? {
        0..=6 => CArg::new(b"a"),
        7..=10 => CArg::new(b"b"),
        11 => CArg::new("\u{e9}t\u{e9}".as_bytes()),
        12 => CArg::null(),
        13 => CArg::new(b""),
        14 => CArg::new(b"\xff\xfe"),
        15 => CArg::new(b"a\xc3"),
        16 => CArg::new(&[b'x'; MAX_QUEUE_NAME]),
        17 => CArg::new(&[b'x'; MAX_QUEUE_NAME + 1]),
        _ => CArg::new(&fuzz_bytes(u, 12)?),
    })
}

fn gen_reason(u: &mut Unstructured) -> AResult<CArg> {
    Ok(match u.int_in_range(0u8..=5)? {
        0 | 1 => CArg::null(),
        2 => CArg::new(b"reason"),
        3 => CArg::new(b"bad \xc0\x80 utf-8"),
        _ => CArg::new(&fuzz_bytes(u, 16)?),
    })
}

/// A millisecond value: mostly small, sometimes at or past the contract's limit.
fn gen_ms(u: &mut Unstructured, small: u64) -> AResult<u64> {
    Ok(match u.int_in_range(0u8..=9)? {
        0..=4 => 0,
        5..=7 => u.int_in_range(1..=small)?,
        8 => MAX_DELAY_MS + u.int_in_range(0..=1)?,
        _ => u64::MAX - u.int_in_range(0..=1)?,
    })
}

// ------------------------------------------------------- argument models

/// How a handle argument is expected to be treated.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// A handle this program holds and has not closed/freed/stopped (index).
    Live(usize),
    /// Closed, freed, stopped, forged or of another type: JOBQ_E_HANDLE.
    Dead,
    /// NULL: JOBQ_E_INVALID_ARG.
    Null,
}

impl Kind {
    fn error(self) -> Option<c_int> {
        match self {
            Kind::Live(_) => None,
            Kind::Dead => Some(E_HANDLE),
            Kind::Null => Some(E_INVALID_ARG),
        }
    }
}

/// Handle values no registry ever hands out. Tokens are tag << 60 | generation
/// << 32 | (slot + 1) with tags 1..=3 (src/ffi/handle.rs); a value with such a
/// tag (1..=3; watches 5) gets slot field 0, which is never valid, so libFuzzer's comparison
/// tracing cannot steer it onto a live handle.
fn forged(u: &mut Unstructured) -> AResult<usize> {
    Ok(match u.int_in_range(0u8..=7)? {
        0 => 0x1234,
        1 => 1,
        2 => usize::MAX,
        3 => 0x7fff_ffff_f000,
        4 => 1 << 60,
        5 => (2 << 60) | 0xFFFF_FFFF, // a job tag with a slot far past any allocated
        6 => (3 << 60) | 0xFFFF_FFFF, // a worker tag, likewise
        _ => {
            let raw: u64 = u.arbitrary::<u64>()?.max(0x10); // 0 would be NULL
            if (1..=5).contains(&(raw >> 60)) {
                (raw & !0xFFFF_FFFF) as usize
            } else {
                raw as usize
            }
        }
    })
}

/// The same registry slot with another generation: stale, never live.
fn other_generation(h: usize, u: &mut Unstructured) -> AResult<usize> {
    let bit = u.int_in_range(32u32..=59)?;
    Ok(h ^ (1usize << bit))
}

/// A put's options: NULL, or a struct (with tail room for larger sizes).
#[repr(C)]
struct PutOptsBuf {
    o: jobq_put_opts,
    tail: [u8; OPTS_TAIL],
}

struct PutOpts {
    buf: Option<Box<PutOptsBuf>>,
    _key: CArg,
    has_key: bool,
    /// Rejected at the C boundary: struct_size too small, key not UTF-8.
    ffi_invalid: bool,
    /// Rejected by the core's range checks (delay, lease, key length).
    range_invalid: bool,
}

impl PutOpts {
    fn ptr(&self) -> *const jobq_put_opts {
        self.buf.as_ref().map_or(ptr::null(), |b| &b.o as *const jobq_put_opts)
    }
    /// The priority the jobs it puts get (NULL options: 0).
    fn priority(&self) -> i32 {
        self.buf.as_ref().map_or(0, |b| b.o.priority)
    }
}

fn gen_put_opts(u: &mut Unstructured) -> AResult<PutOpts> {
    if u.ratio(1, 3)? {
        return Ok(PutOpts { buf: None, _key: CArg::null(), has_key: false, ffi_invalid: false, range_invalid: false });
    }
    let mut buf = Box::new(PutOptsBuf {
        o: jobq_put_opts {
            struct_size: 0,
            priority: 0,
            delay_ms: 0,
            max_attempts: 0,
            lease_ms: 0,
            unique_key: ptr::null(),
        },
        tail: [0; OPTS_TAIL],
    });
    // SAFETY: `buf.o` is a whole jobq_put_opts; the sized form is what the
    // header's jobq_put_opts_init macro expands to.
    unsafe { jobq_put_opts_init_sized(&mut buf.o, PUT_OPTS_SIZE) };
    assert_eq!(buf.o.struct_size as usize, PUT_OPTS_SIZE, "jobq_put_opts_init_sized: struct_size");
    let size = match u.int_in_range(0u8..=9)? {
        0 => u.int_in_range(0..=PUT_OPTS_SIZE - 1)?,
        1 => {
            let s = u.int_in_range(PUT_OPTS_SIZE + 1..=PUT_OPTS_SIZE + OPTS_TAIL)?;
            u.fill_buffer(&mut buf.tail)?;
            s
        }
        _ => PUT_OPTS_SIZE,
    };
    buf.o.struct_size = size as u32;
    if u.ratio(1, 2)? {
        buf.o.priority = u.arbitrary()?;
    }
    buf.o.delay_ms = gen_ms(u, 20)?;
    buf.o.max_attempts = match u.int_in_range(0u8..=5)? {
        0..=2 => 0,
        3 | 4 => u.int_in_range(1..=3)?,
        _ => u32::MAX,
    };
    buf.o.lease_ms = gen_ms(u, 50)?;
    let key = match u.int_in_range(0u8..=11)? {
        0..=5 => CArg::null(),
        6 => CArg::new(b"k1"),
        7 => CArg::new(b"k2"),
        8 => CArg::new(b""),
        9 => CArg::new(b"\xed\xa0\x80"), // a UTF-16 surrogate: not UTF-8
        10 => CArg::new(&[b'k'; MAX_UNIQUE_KEY + 1]),
        _ => CArg::new(&fuzz_bytes(u, 8)?),
    };
    buf.o.unique_key = key.ptr();
    let ffi_invalid = size < PUT_OPTS_SIZE || (key.bytes().is_some() && key.utf8().is_none());
    let range_invalid = buf.o.delay_ms > MAX_DELAY_MS
        || buf.o.lease_ms > MAX_DELAY_MS
        || key.bytes().is_some_and(|k| k.len() > MAX_UNIQUE_KEY);
    Ok(PutOpts { buf: Some(buf), has_key: key.bytes().is_some(), _key: key, ffi_invalid, range_invalid })
}

/// A payload argument: pointer and length, and the bytes a reserve must give back.
struct Payload {
    _buf: Vec<u8>,
    ptr: *const c_void,
    len: usize,
    /// NULL with a non-zero length.
    invalid: bool,
}

impl Payload {
    fn bytes(&self) -> &[u8] {
        if self.invalid || self.len == 0 {
            &[]
        } else {
            &self._buf[..self.len]
        }
    }
}

fn gen_payload(u: &mut Unstructured) -> AResult<Payload> {
    let (buf, ptr, len, invalid): (Vec<u8>, *const c_void, usize, bool) = match u.int_in_range(0u8..=11)? {
        0..=5 => {
            let b = fuzz_bytes(u, 32)?;
            let len = b.len();
            let p = b.as_ptr().cast();
            (b, p, len, false)
        }
        6 => {
            let n = u.int_in_range(100..=4096)?;
            let b = vec![u.arbitrary::<u8>()?; n];
            let p = b.as_ptr().cast();
            (b, p, n, false)
        }
        7 => (Vec::new(), ptr::null(), 0, false),
        8 => (Vec::new(), ptr::null(), u.int_in_range(1..=16)?, true),
        9 => (Vec::new(), ptr::null(), usize::MAX - u.int_in_range(0..=1)?, true),
        10 => (Vec::new(), ptr::null(), isize::MAX as usize + 1, true),
        _ => {
            // A real buffer, but only part of it (or none) claimed.
            let b = fuzz_bytes(u, 16)?;
            let len = u.int_in_range(0..=b.len())?;
            let p = b.as_ptr().cast();
            (b, p, len, false)
        }
    };
    Ok(Payload { _buf: buf, ptr, len, invalid })
}

// ------------------------------------------------------------- worker handler

/// What a handler is given as user_data. Lives until its worker's stop(-1).
struct HandlerCtx {
    queue: Vec<u8>,
    outcomes: Vec<c_int>,
    next: AtomicUsize,
    calls: AtomicUsize,
    errors: Mutex<Vec<String>>,
}

impl HandlerCtx {
    fn fail(&self, what: String) {
        self.errors.lock().unwrap_or_else(|e| e.into_inner()).push(what);
    }
}

unsafe extern "C" fn handler(job: *const jobq_job, user_data: *mut c_void) -> c_int {
    // SAFETY: user_data is the HandlerCtx this program passed; it outlives the worker.
    let ctx = unsafe { &*(user_data as *const HandlerCtx) };
    ctx.calls.fetch_add(1, SeqCst);
    // SAFETY: the job handle is valid for the duration of the call.
    let (id, attempt, queue) = unsafe { (jobq_job_id(job), jobq_job_attempt(job), jobq_job_queue(job)) };
    if id == 0 {
        ctx.fail("handler: jobq_job_id = 0 for the job it was given".into());
    }
    if attempt == 0 {
        ctx.fail(format!("handler: job {id}: attempt 0"));
    }
    if queue.is_null() {
        ctx.fail(format!("handler: job {id}: jobq_job_queue is NULL"));
    } else {
        // SAFETY: non-NULL, NUL-terminated, valid while the handle is.
        let q = unsafe { CStr::from_ptr(queue) }.to_bytes();
        if q != ctx.queue.as_slice() {
            ctx.fail(format!("handler: job {id} of queue {q:?} given to a worker of {:?}", ctx.queue));
        }
    }
    let mut len = SENTINEL as usize;
    // SAFETY: as above; `len` is a writable size_t.
    let p = unsafe { jobq_job_payload(job, &mut len) };
    if p.is_null() || len == SENTINEL as usize {
        ctx.fail(format!("handler: job {id}: payload NULL or its length not written"));
    } else {
        // SAFETY: the library says `len` bytes at `p`, valid until the handle goes; read them all.
        let bytes = unsafe { std::slice::from_raw_parts(p, len) };
        std::hint::black_box(bytes.iter().fold(0u8, |a, b| a ^ b));
    }
    let i = ctx.next.fetch_add(1, SeqCst);
    ctx.outcomes[i % ctx.outcomes.len()]
}

// ------------------------------------------------------------------ the model

struct QSlot {
    h: *mut jobq,
    open: bool,
    /// max_payload_bytes of its config; None if unknown (see open).
    max_payload: Option<u64>,
    /// Its config allows a short busy_timeout_ms: with several handles on
    /// one file, a call may then meet another's write lock (JOBQ_E_BUSY).
    busy_ok: bool,
    /// keep_done_ms of its config (0: acked jobs are deleted).
    keep_done: u64,
}

struct VSlot {
    h: *mut jobq_watch,
    q: usize,
    open: bool,
}

/// The model of the store's queue limits: (max_reserved, rate (jobs, per_ms)).
type Limits = (Option<u64>, Option<(u64, u64)>);

struct JSlot {
    h: *mut jobq_job,
    q: usize,
    id: u64,
    queue: Vec<u8>,
    payload: Vec<u8>,
    freed: bool,
    /// This delivery was finished through this handle, or found stale.
    finished: bool,
}

struct WSlot {
    h: *mut jobq_worker,
    q: usize,
    running: bool,
    ctx: Option<Box<HandlerCtx>>,
}

struct SSlot {
    p: *mut c_char,
    freed: bool,
}

/// One input's world: one fresh queue file and the handles made on it.
struct World {
    path: CArg,
    queues: Vec<QSlot>,
    jobs: Vec<JSlot>,
    workers: Vec<WSlot>,
    strings: Vec<SSlot>,
    /// Largest id a put returned.
    max_id: u64,
    /// Jobs put with a known id: (queue, payload).
    stored: HashMap<u64, (Vec<u8>, Vec<u8>)>,
    /// Jobs put without learning the id (out_id NULL): (queue, payload).
    anonymous: Vec<(Vec<u8>, Vec<u8>)>,
    /// Ids this thread acked or cancelled: never delivered again.
    gone: HashSet<u64>,
    /// Queues with a stored job: only these can appear in stats.
    put_queues: BTreeSet<Vec<u8>>,
    /// A worker ran on this file: jobs may have been acked behind our back.
    workers_ran: bool,
    watches: Vec<VSlot>,
    /// Acked (or acked with a result) through a handle with keep_done_ms > 0:
    /// job_info may still show them ("done") until their keep time passes.
    /// The result bytes, if acked with one.
    kept: HashMap<u64, Option<Vec<u8>>>,
    /// The store's schedules: name -> (queue, payload length).
    schedules: BTreeMap<Vec<u8>, (Vec<u8>, usize)>,
    /// Every payload a schedule of a queue was given: its jobs are put in the
    /// background, so a delivery of one of these is not a stranger.
    sched_payloads: HashMap<Vec<u8>, Vec<Vec<u8>>>,
    /// Paused queues; limits set per queue.
    paused: BTreeSet<Vec<u8>>,
    limits: BTreeMap<Vec<u8>, Limits>,
    /// A schedule/pause/config call met JOBQ_E_BUSY: whether it stored is
    /// unknown, so stats are not compared with the model's schedules,
    /// pauses and limits any more.
    admin_uncertain: bool,
    /// Jobs of a jobq_ack_many that answered JOBQ_E_STATE without statuses:
    /// each was acked or was not.
    maybe_gone: HashSet<u64>,
    /// The priority of each job whose id and priority are known: set by a
    /// put, changed only by jobq_release_priority / jobq_bury_priority
    /// returning JOBQ_OK (a kick, a plain release/bury, a fail, a worker's
    /// outcome and a DUPLICATE put keep it). jobq_job_info must show it.
    priority: HashMap<u64, i32>,
}

struct Env {
    dir: PathBuf,
    counter: AtomicUsize,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let base =
            if std::path::Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        // Directories of earlier runs that crashed (their atexit never ran).
        for entry in std::fs::read_dir(&base).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let pid = name.to_str().and_then(|n| n.strip_prefix("jobq-fuzz-")).and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let dir = base.join(format!("jobq-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("a-directory")).expect("fuzz temp dir");
        std::fs::write(dir.join("garbage.db"), b"this is not a SQLite database\n".repeat(200)).expect("garbage file");
        extern "C" fn cleanup() {
            if let Some(e) = ENV_FOR_EXIT.get() {
                let _ = std::fs::remove_dir_all(e);
            }
        }
        static ENV_FOR_EXIT: OnceLock<PathBuf> = OnceLock::new();
        let _ = ENV_FOR_EXIT.set(dir.clone());
        extern "C" {
            fn atexit(f: extern "C" fn()) -> c_int;
        }
        // SAFETY: registers a plain function with no arguments.
        unsafe { atexit(cleanup) };
        Env { dir, counter: AtomicUsize::new(0) }
    })
}

fn path_arg(p: &std::path::Path) -> CArg {
    CArg::new(p.to_str().expect("temp paths are UTF-8").as_bytes())
}

impl World {
    fn new() -> World {
        let e = env();
        let n = e.counter.fetch_add(1, SeqCst);
        let path = e.dir.join(format!("q{n}.db"));
        World {
            path: path_arg(&path),
            queues: Vec::new(),
            jobs: Vec::new(),
            workers: Vec::new(),
            strings: Vec::new(),
            max_id: 0,
            stored: HashMap::new(),
            anonymous: Vec::new(),
            gone: HashSet::new(),
            put_queues: BTreeSet::new(),
            workers_ran: false,
            watches: Vec::new(),
            kept: HashMap::new(),
            schedules: BTreeMap::new(),
            sched_payloads: HashMap::new(),
            paused: BTreeSet::new(),
            limits: BTreeMap::new(),
            admin_uncertain: false,
            maybe_gone: HashSet::new(),
            priority: HashMap::new(),
        }
    }

    fn open_count(&self) -> usize {
        self.queues.iter().filter(|q| q.open).count()
    }

    fn open_watches(&self, q: usize) -> usize {
        self.watches.iter().filter(|w| w.open && w.q == q).count()
    }

    fn running_workers(&self, q: usize) -> usize {
        self.workers.iter().filter(|w| w.running && w.q == q).count()
    }

    // ---- handle pickers: (value to pass, how it must be treated)

    fn pick_queue(&self, u: &mut Unstructured) -> AResult<(*mut jobq, Kind)> {
        let choice = u.int_in_range(0u8..=15)?;
        let any_job = |u: &mut Unstructured| -> AResult<Option<usize>> {
            Ok(if self.jobs.is_empty() { None } else { Some(self.jobs[u.choose_index(self.jobs.len())?].h as usize) })
        };
        let open: Vec<usize> = (0..self.queues.len()).filter(|&i| self.queues[i].open).collect();
        let v: (usize, Kind) = match choice {
            0..=6 if !open.is_empty() => {
                let i = open[u.choose_index(open.len())?];
                (self.queues[i].h as usize, Kind::Live(i))
            }
            0..=9 if !self.queues.is_empty() => {
                let i = u.choose_index(self.queues.len())?;
                let q = &self.queues[i];
                (q.h as usize, if q.open { Kind::Live(i) } else { Kind::Dead })
            }
            11 => (forged(u)?, Kind::Dead),
            12 => match any_job(u)? {
                Some(h) => (h, Kind::Dead),
                None => (forged(u)?, Kind::Dead),
            },
            13 if !self.workers.is_empty() => {
                (self.workers[u.choose_index(self.workers.len())?].h as usize, Kind::Dead)
            }
            14 if !open.is_empty() => {
                // Only an open handle's slot: a closed one's may hold a newer handle.
                let i = open[u.choose_index(open.len())?];
                (other_generation(self.queues[i].h as usize, u)?, Kind::Dead)
            }
            15 => ((1 << 60) | 0xFFFF_FFFF, Kind::Dead),
            10 if !self.watches.is_empty() => {
                (self.watches[u.choose_index(self.watches.len())?].h as usize, Kind::Dead)
            }
            _ => (0, Kind::Null),
        };
        Ok((ptr::without_provenance_mut(v.0), v.1))
    }

    fn pick_job(&self, u: &mut Unstructured) -> AResult<(*mut jobq_job, Kind)> {
        let choice = u.int_in_range(0u8..=15)?;
        let v: (usize, Kind) = match choice {
            0..=5 if self.jobs.iter().any(|j| !j.freed && !j.finished) => {
                let live: Vec<usize> =
                    (0..self.jobs.len()).filter(|&i| !self.jobs[i].freed && !self.jobs[i].finished).collect();
                let i = live[u.choose_index(live.len())?];
                (self.jobs[i].h as usize, Kind::Live(i))
            }
            0..=10 if !self.jobs.is_empty() => {
                // Mostly the newest handles: they are the interesting ones.
                let n = self.jobs.len();
                let i = if u.ratio(2, 3)? { n - 1 - u.int_in_range(0..=(n - 1).min(2))? } else { u.choose_index(n)? };
                let j = &self.jobs[i];
                (j.h as usize, if j.freed { Kind::Dead } else { Kind::Live(i) })
            }
            11 => (forged(u)?, Kind::Dead),
            12 if !self.queues.is_empty() => (self.queues[u.choose_index(self.queues.len())?].h as usize, Kind::Dead),
            13 if !self.workers.is_empty() => {
                (self.workers[u.choose_index(self.workers.len())?].h as usize, Kind::Dead)
            }
            14 => {
                // Another generation of a live handle's slot (a freed one's
                // slot may hold a worker's job now, so only live ones).
                let live: Vec<usize> = (0..self.jobs.len()).filter(|&i| !self.jobs[i].freed).collect();
                if live.is_empty() {
                    (forged(u)?, Kind::Dead)
                } else {
                    let i = live[u.choose_index(live.len())?];
                    (other_generation(self.jobs[i].h as usize, u)?, Kind::Dead)
                }
            }
            _ => (0, Kind::Null),
        };
        Ok((ptr::without_provenance_mut(v.0), v.1))
    }

    fn pick_worker(&self, u: &mut Unstructured) -> AResult<(*mut jobq_worker, Kind)> {
        let choice = u.int_in_range(0u8..=11)?;
        let v: (usize, Kind) = match choice {
            0..=7 if !self.workers.is_empty() => {
                let i = u.choose_index(self.workers.len())?;
                let w = &self.workers[i];
                (w.h as usize, if w.running { Kind::Live(i) } else { Kind::Dead })
            }
            8 => (forged(u)?, Kind::Dead),
            9 if !self.queues.is_empty() => (self.queues[u.choose_index(self.queues.len())?].h as usize, Kind::Dead),
            10 if !self.jobs.is_empty() => (self.jobs[u.choose_index(self.jobs.len())?].h as usize, Kind::Dead),
            _ => (0, Kind::Null),
        };
        Ok((ptr::without_provenance_mut(v.0), v.1))
    }

    // ---- operations

    fn step(&mut self, u: &mut Unstructured) -> AResult<()> {
        // Opcodes 0..=19 keep their meaning of the older seeds (a byte < 20
        // decodes the same in 0..=34); the newer calls are 20..=34 (20..=29
        // as before; 30..=34 the several-queues calls).
        match u.int_in_range(0u8..=34)? {
            0 | 1 => self.op_open(u),
            2 => self.op_close(u),
            3..=5 => self.op_put(u),
            6 => self.op_put_batch(u),
            7 | 8 => self.op_reserve(u),
            9 | 10 => self.op_finish(u),
            11 => self.op_job_free(u),
            12 => self.op_job_accessors(u),
            13 => self.op_kick(u),
            14 => self.op_cancel(u),
            15 => self.op_stats(u),
            16 => self.op_string_free(u),
            17 => self.op_worker(u),
            18 => self.op_misc(u),
            20 => self.op_queue_config(u),
            21 => self.op_schedule(u),
            22 => self.op_unschedule(u),
            23 => self.op_ack_result(u),
            24 => self.op_job_info(u),
            25 => self.op_pause_resume(u),
            26 => self.op_reserve_many(u),
            27 => self.op_ack_many(u),
            28 => self.op_ack_reserve(u),
            29 => self.op_watch(u),
            30 => self.op_reserve_any(u),
            31 => self.op_release_priority(u),
            32 => self.op_bury_priority(u),
            33 => self.op_kick_job(u),
            34 => self.op_peek(u),
            _ => {
                // Let short leases expire now and then.
                let ms = u.int_in_range(0..=3)?;
                log!("sleep {ms} ms");
                std::thread::sleep(std::time::Duration::from_millis(ms));
                Ok(())
            }
        }
    }

    fn op_open(&mut self, u: &mut Unstructured) -> AResult<()> {
        let e = env();
        // Path: this input's file mostly; else ones that must fail.
        let (path, path_error): (CArg, Option<&[c_int]>) = match u.int_in_range(0u8..=15)? {
            0..=9 => (self.path.clone(), None),
            10 => (CArg::null(), Some(&[E_INVALID_ARG])),
            11 => (path_arg(&e.dir.join("missing-dir/q.db")), Some(&[E_IO])),
            12 => (path_arg(&e.dir.join("a-directory")), Some(&[E_IO, E_CORRUPT])),
            13 => (path_arg(&e.dir.join("garbage.db")), Some(&[E_CORRUPT, E_IO])),
            14 => (CArg::new(b""), Some(&[E_INVALID_ARG])),
            _ => {
                let mut p = e.dir.join("x").to_str().unwrap_or_default().as_bytes().to_vec();
                p.extend_from_slice(b"\xff.db");
                (CArg::new(&p), Some(&[E_INVALID_ARG]))
            }
        };
        // Config: fast settings mostly; else garbage, bad values, NULL.
        let (config, config_ok): (CArg, Option<bool>) = match u.int_in_range(0u8..=11)? {
            0..=6 => {
                let lease = [1u64, 5, 50, 200, 2000, 30000][u.choose_index(6)?];
                let mut m = serde_json::Map::new();
                m.insert("durability".into(), if u.ratio(3, 4)? { "normal" } else { "full" }.into());
                m.insert("lease_ms".into(), lease.into());
                m.insert("max_attempts".into(), u.int_in_range(1u32..=4)?.into());
                m.insert("backoff_base_ms".into(), u.int_in_range(0u64..=5)?.into());
                m.insert("backoff_max_ms".into(), u.int_in_range(0u64..=10)?.into());
                m.insert("backoff_jitter".into(), [0.0, 0.5, 1.0][u.choose_index(3)?].into());
                if u.ratio(1, 2)? {
                    m.insert("max_payload_bytes".into(), u.int_in_range(0u64..=300)?.into());
                }
                if u.ratio(1, 4)? {
                    // Keep acked jobs (docs/results.md): 1 ms expires within
                    // the input, an hour does not.
                    m.insert("keep_done_ms".into(), [1u64, 3_600_000][u.choose_index(2)?].into());
                }
                (CArg::new(serde_json::Value::Object(m).to_string().as_bytes()), Some(true))
            }
            7 => (CArg::null(), Some(true)),
            8 => {
                let bad = [
                    r#"{"lease_ms":0}"#,
                    r#"{"max_attempts":0}"#,
                    r#"{"backoff_jitter":2}"#,
                    r#"{"lease_ms":-1}"#,
                    r#"{"nope":1}"#,
                    r#"{"durability":"sometimes"}"#,
                    r#"{"busy_timeout_ms":4294967296}"#,
                    r#"{"max_payload_bytes":1000000001}"#,
                    r#"{"file_mode":4096}"#,
                    r#"{"lease_ms":1e400}"#,
                ];
                (CArg::new(bad[u.choose_index(bad.len())?].as_bytes()), Some(false))
            }
            9 if u.ratio(1, 2)? => (CArg::new(b"{\"durability\":\"normal\",\"\xff\":1}"), Some(false)),
            9 => {
                // Not a JSON object: refused (serde alone would read a struct
                // from an array, positionally; fuzz/regressions/README.md).
                let arrays = [r#"[]"#, r#"["normal",5]"#, r#"["normal"]"#];
                (CArg::new(arrays[u.choose_index(arrays.len())?].as_bytes()), Some(false))
            }
            // A repeated key: JSON leaves it to the parser (an error, or the
            // last one wins); either is fine.
            10 if u.ratio(1, 2)? => (CArg::new(br#"{"lease_ms":5,"lease_ms":6}"#), None),
            _ => (CArg::new(&fuzz_bytes(u, 48)?), None),
        };
        let out_null = u.ratio(1, 12)?;
        let mut errors: Vec<c_int> = Vec::new();
        if out_null {
            errors.push(E_INVALID_ARG);
        }
        if let Some(p) = path_error {
            errors.extend_from_slice(p);
        }
        if config_ok == Some(false) {
            errors.push(E_INVALID_ARG);
        }
        let mut allowed = expect(&errors, &[OK]);
        if config_ok.is_none() {
            // Raw bytes: maybe valid, maybe with a busy_timeout_ms of 0.
            allowed.extend_from_slice(&[E_INVALID_ARG, OK, E_BUSY]);
        }
        let would_open = allowed.contains(&OK);
        if would_open && self.open_count() >= MAX_OPEN {
            return Ok(());
        }
        let mut out: *mut jobq = sentinel_ptr();
        let out_p: *mut *mut jobq = if out_null { ptr::null_mut() } else { &mut out };
        log!(
            "open path={:?} config={:?} out_null={out_null}",
            path.bytes().map(String::from_utf8_lossy),
            config.bytes().map(String::from_utf8_lossy)
        );
        // SAFETY: NULL or NUL-terminated strings; `out_p` NULL or a writable jobq*.
        let st = unsafe { jobq_open(path.ptr(), config.ptr(), out_p) };
        check("jobq_open", st, &allowed);
        if st != OK {
            assert!(out == sentinel_ptr(), "jobq_open failed but wrote *out");
            return Ok(());
        }
        assert!(!out_null && out != sentinel_ptr() && !out.is_null(), "jobq_open: OK without a handle");
        assert!(!self.queues.iter().any(|q| q.open && q.h == out), "jobq_open: a live handle value handed out twice");
        let parsed = config.utf8().and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok());
        let (max_payload, busy_ok, keep_done) = match &parsed {
            None => (Some(DEFAULT_MAX_PAYLOAD), false, 0),
            Some(serde_json::Value::Object(m)) => (
                Some(m.get("max_payload_bytes").and_then(|v| v.as_u64()).unwrap_or(DEFAULT_MAX_PAYLOAD)),
                m.get("busy_timeout_ms").and_then(|v| v.as_u64()).is_some_and(|ms| ms < 1000),
                m.get("keep_done_ms").and_then(|v| v.as_u64()).unwrap_or(0),
            ),
            // Not an object: jobq_open refuses it, so this is not reached.
            Some(_) => (None, true, 0),
        };
        self.queues.push(QSlot { h: out, open: true, max_payload, busy_ok, keep_done });
        Ok(())
    }

    fn op_close(&mut self, u: &mut Unstructured) -> AResult<()> {
        let (h, kind) = self.pick_queue(u)?;
        let allowed = match kind {
            Kind::Live(i) if self.running_workers(i) > 0 || self.open_watches(i) > 0 => vec![E_BUSY],
            Kind::Live(_) => vec![OK],
            k => vec![k.error().unwrap_or(OK)],
        };
        log!("close {h:?} ({kind:?})");
        // SAFETY: any handle value is allowed: the library checks it.
        let st = unsafe { jobq_close(h) };
        check("jobq_close", st, &allowed);
        if let (OK, Kind::Live(i)) = (st, kind) {
            self.queues[i].open = false;
        }
        Ok(())
    }

    /// A queue name: often one that holds jobs, so that reserves find them.
    fn gen_name(&self, u: &mut Unstructured) -> AResult<CArg> {
        if !self.put_queues.is_empty() && u.ratio(1, 2)? {
            let i = u.choose_index(self.put_queues.len())?;
            return Ok(CArg::new(self.put_queues.iter().nth(i).expect("index in range")));
        }
        gen_name(u)
    }

    /// Statuses a call on this queue handle may also give, whatever its arguments.
    fn tolerated(&self, kind: Kind) -> Vec<c_int> {
        match kind {
            Kind::Live(i) if self.queues[i].busy_ok => vec![E_BUSY],
            _ => Vec::new(),
        }
    }

    /// Whether a payload of `len` bytes is too big for the handle (None: unknown).
    fn too_big(&self, kind: Kind, len: usize) -> Option<bool> {
        match kind {
            Kind::Live(i) => self.queues[i].max_payload.map(|m| len as u64 > m),
            _ => Some(false),
        }
    }

    fn queue_errors(&self, kind: Kind, name: &CArg) -> Vec<c_int> {
        let mut errors: Vec<c_int> = kind.error().into_iter().collect();
        if !name.is_queue_name() {
            errors.push(E_INVALID_ARG);
        }
        errors
    }

    fn record_stored(&mut self, call: &str, id: u64, name: &[u8], payload: &[u8]) {
        assert!(id > self.max_id, "{call}: id {id} does not increase (largest before: {})", self.max_id);
        self.max_id = id;
        self.stored.insert(id, (name.to_vec(), payload.to_vec()));
        self.put_queues.insert(name.to_vec());
    }

    fn check_duplicate(&self, call: &str, id: u64, name: &[u8]) {
        assert!(!self.gone.contains(&id), "{call}: DUPLICATE of job {id}, which was acked or cancelled");
        if let Some((q, _)) = self.stored.get(&id) {
            assert_eq!(q.as_slice(), name, "{call}: DUPLICATE of job {id} of another queue");
        } else {
            assert!(!self.anonymous.is_empty(), "{call}: DUPLICATE of job {id}, which was never put");
        }
    }

    fn op_put(&mut self, u: &mut Unstructured) -> AResult<()> {
        let (h, kind) = self.pick_queue(u)?;
        let name = self.gen_name(u)?;
        let payload = gen_payload(u)?;
        let opts = gen_put_opts(u)?;
        let out_null = u.ratio(1, 6)?;
        let mut errors = self.queue_errors(kind, &name);
        if payload.invalid || opts.ffi_invalid || opts.range_invalid {
            errors.push(E_INVALID_ARG);
        }
        let mut tolerated = self.tolerated(kind);
        match self.too_big(kind, payload.len) {
            Some(true) if !payload.invalid => errors.push(E_TOO_BIG),
            None => tolerated.push(E_TOO_BIG),
            _ => {}
        }
        let mut allowed = expect(&errors, if opts.has_key { &[OK, DUPLICATE] } else { &[OK] });
        allowed.extend(tolerated);
        let mut out = SENTINEL;
        let out_p: *mut u64 = if out_null { ptr::null_mut() } else { &mut out };
        log!(
            "put {h:?} ({kind:?}) queue={:?} len={} null_payload={} opts={} key={}",
            name.bytes().map(String::from_utf8_lossy),
            payload.len,
            payload.ptr.is_null(),
            !opts.ptr().is_null(),
            opts.has_key
        );
        // SAFETY: every pointer is NULL or valid for what it claims (payload: `len` bytes).
        let st = unsafe { jobq_put(h, name.ptr(), payload.ptr, payload.len, opts.ptr(), out_p) };
        check("jobq_put", st, &allowed);
        let qname = name.bytes().unwrap_or_default().to_vec();
        match st {
            OK | DUPLICATE if out_null => {
                if st == OK {
                    self.anonymous.push((qname.clone(), payload.bytes().to_vec()));
                }
                self.put_queues.insert(qname);
            }
            OK => {
                assert!(out != SENTINEL, "jobq_put: OK without writing *out_id");
                self.record_stored("jobq_put", out, &qname, payload.bytes());
                self.priority.insert(out, opts.priority());
            }
            DUPLICATE => {
                assert!(out != SENTINEL, "jobq_put: DUPLICATE without writing *out_id");
                self.check_duplicate("jobq_put", out, &qname);
            }
            _ => assert!(out == SENTINEL, "jobq_put: {} but *out_id was written", status_name(st)),
        }
        Ok(())
    }

    fn op_put_batch(&mut self, u: &mut Unstructured) -> AResult<()> {
        let (h, kind) = self.pick_queue(u)?;
        let name = self.gen_name(u)?;
        let count = u.int_in_range(0..=4usize)?;
        let payloads: Vec<Payload> = (0..count).map(|_| gen_payload(u)).collect::<AResult<_>>()?;
        let items: Vec<jobq_payload> = payloads.iter().map(|p| jobq_payload { data: p.ptr, len: p.len }).collect();
        // items NULL with n > 0 (any n), or the real array with n = its length.
        let (items_p, n, items_null) = match u.int_in_range(0u8..=7)? {
            0 => (ptr::null(), u.int_in_range(1..=3)?, true),
            1 => (ptr::null(), usize::MAX - u.int_in_range(0..=1)?, true),
            2 => (ptr::null(), 0, false),
            _ => (if items.is_empty() { ptr::null() } else { items.as_ptr() }, items.len(), false),
        };
        let opts = gen_put_opts(u)?;
        let out_null = u.ratio(1, 5)?;
        let mut errors = self.queue_errors(kind, &name);
        let real = !items_null && n > 0;
        if items_null || opts.ffi_invalid || (real && payloads.iter().any(|p| p.invalid)) {
            errors.push(E_INVALID_ARG);
        }
        if n > 0 && (opts.range_invalid || (opts.has_key && n > 1)) {
            errors.push(E_INVALID_ARG);
        }
        let mut tolerated = self.tolerated(kind);
        if real {
            let big: Vec<Option<bool>> =
                payloads.iter().filter(|p| !p.invalid).map(|p| self.too_big(kind, p.len)).collect();
            if big.contains(&Some(true)) {
                errors.push(E_TOO_BIG);
            } else if big.contains(&None) {
                tolerated.push(E_TOO_BIG);
            }
        }
        let mut allowed = expect(&errors, if opts.has_key && n == 1 { &[OK, DUPLICATE] } else { &[OK] });
        allowed.extend(tolerated);
        if n == 0 && opts.range_invalid && errors.is_empty() {
            // An empty batch stores nothing: whether its option values are
            // range-checked anyway is not specified.
            allowed.push(E_INVALID_ARG);
        }
        let mut out = [SENTINEL; 6];
        let out_p: *mut u64 = if out_null { ptr::null_mut() } else { out.as_mut_ptr() };
        log!(
            "put_batch {h:?} ({kind:?}) queue={:?} n={n} items_null={items_null} lens={:?} key={}",
            name.bytes().map(String::from_utf8_lossy),
            payloads.iter().map(|p| (p.len, p.ptr.is_null())).collect::<Vec<_>>(),
            opts.has_key
        );
        // SAFETY: `items_p` is NULL or `n` readable items, each NULL or valid
        // for its length; `out_p` is NULL or has 6 >= n slots when items are real.
        let st = unsafe { jobq_put_batch(h, name.ptr(), items_p, n, opts.ptr(), out_p) };
        check("jobq_put_batch", st, &allowed);
        let qname = name.bytes().unwrap_or_default().to_vec();
        let written = if real { n } else { 0 };
        if st < 0 {
            assert!(out.iter().all(|&x| x == SENTINEL), "jobq_put_batch: {} but out_ids were written", status_name(st));
            return Ok(());
        }
        assert!(out[written..].iter().all(|&x| x == SENTINEL), "jobq_put_batch: wrote past n = {n} out_ids");
        if written > 0 {
            self.put_queues.insert(qname.clone());
        }
        if out_null {
            if st == OK {
                self.anonymous.extend(payloads.iter().take(written).map(|p| (qname.clone(), p.bytes().to_vec())));
            }
            return Ok(());
        }
        assert!(
            out[..written].iter().all(|&x| x != SENTINEL),
            "jobq_put_batch: {} without writing all out_ids",
            status_name(st)
        );
        if st == DUPLICATE {
            self.check_duplicate("jobq_put_batch", out[0], &qname);
        } else {
            for (i, p) in payloads.iter().take(written).enumerate() {
                self.record_stored("jobq_put_batch", out[i], &qname, p.bytes());
                self.priority.insert(out[i], opts.priority());
            }
        }
        Ok(())
    }

    fn op_reserve(&mut self, u: &mut Unstructured) -> AResult<()> {
        let (h, kind) = self.pick_queue(u)?;
        let name = self.gen_name(u)?;
        let out_null = u.ratio(1, 10)?;
        let mut errors = self.queue_errors(kind, &name);
        if out_null {
            errors.push(E_INVALID_ARG);
        }
        let mut allowed = expect(&errors, &[OK, TIMEOUT]);
        allowed.extend(self.tolerated(kind));
        let mut out: *mut jobq_job = sentinel_ptr();
        let out_p: *mut *mut jobq_job = if out_null { ptr::null_mut() } else { &mut out };
        log!("reserve {h:?} ({kind:?}) queue={:?} out_null={out_null}", name.bytes().map(String::from_utf8_lossy));
        // SAFETY: timeout 0 never blocks; `out_p` is NULL or a writable jobq_job*.
        let st = unsafe { jobq_reserve(h, name.ptr(), 0, out_p) };
        check("jobq_reserve", st, &allowed);
        if st != OK {
            assert!(out == sentinel_ptr(), "jobq_reserve: {} but *out was written", status_name(st));
            return Ok(());
        }
        let Kind::Live(qi) = kind else { unreachable!() };
        self.record_delivery("jobq_reserve", out, qi, name.bytes().unwrap_or_default());
        Ok(())
    }

    /// A job handle a reserve (of any kind) returned from queue `qname` of
    /// handle `qi`: it is a job that was put there, and now ours.
    fn record_delivery(&mut self, call: &str, out: *mut jobq_job, qi: usize, qname: &[u8]) {
        assert!(out != sentinel_ptr() && !out.is_null(), "{call}: OK without a job");
        assert!(
            !self.jobs.iter().any(|j| !j.freed && j.h == out),
            "{call}: handed out the value of a live job handle again"
        );
        let qname = qname.to_vec();
        // SAFETY: a handle just returned by the library.
        let (id, attempt) = unsafe { (jobq_job_id(out), jobq_job_attempt(out)) };
        log!("  job {id} attempt {attempt}");
        assert!(id != 0, "{call}: job id 0");
        assert!(attempt >= 1, "{call}: job {id} attempt {attempt}");
        assert!(!self.gone.contains(&id), "{call}: delivered job {id}, which was acked or cancelled");
        self.maybe_gone.remove(&id);
        let (q, payload) = match self.stored.get(&id) {
            Some(e) => e.clone(),
            None => {
                // Put with out_id NULL: one such put of this queue with this
                // payload; or put by a schedule of this queue.
                let actual = self.payload_of(out).unwrap_or_default();
                let pos = self.anonymous.iter().position(|(q, p)| *q == qname && *p == actual);
                let e = match pos {
                    Some(pos) => self.anonymous.remove(pos),
                    None => {
                        let scheduled = self.sched_payloads.get(&qname).is_some_and(|ps| ps.contains(&actual));
                        assert!(
                            scheduled,
                            "{call}: delivered job {id} ({} bytes) of {qname:?}, which was never put",
                            actual.len()
                        );
                        (qname.clone(), actual)
                    }
                };
                self.stored.insert(id, e.clone());
                e
            }
        };
        assert_eq!(q, qname, "{call}: job {id} of queue {q:?} delivered from queue {qname:?}");
        self.jobs.push(JSlot { h: out, q: qi, id, queue: q, payload, freed: false, finished: false });
        let i = self.jobs.len() - 1;
        self.check_accessors(i);
    }

    /// Job `id` (of job slot `i`) was acked: never delivered again; kept as
    /// "done" if its handle keeps acked jobs.
    fn acked(&mut self, i: usize, id: u64, result: Option<Vec<u8>>) {
        self.gone.insert(id);
        if self.queues[self.jobs[i].q].keep_done > 0 {
            self.kept.insert(id, result);
        }
    }

    /// What finishing job slot `i`'s delivery may give, arguments aside.
    fn delivery_state(&self, kind: Kind) -> Vec<c_int> {
        match kind {
            Kind::Live(i) => {
                let j = &self.jobs[i];
                let mut s = Vec::new();
                if j.finished {
                    s.push(E_STATE);
                }
                if !self.queues[j.q].open {
                    s.push(E_SHUTDOWN);
                }
                if s.is_empty() {
                    if self.gone.contains(&j.id) {
                        vec![E_STATE]
                    } else {
                        vec![OK, E_STATE]
                    }
                } else {
                    s
                }
            }
            k => vec![k.error().unwrap_or(OK)],
        }
    }

    fn payload_of(&self, h: *const jobq_job) -> Option<Vec<u8>> {
        let mut len = 0usize;
        // SAFETY: a handle value; `len` is writable.
        let p = unsafe { jobq_job_payload(h, &mut len) };
        // SAFETY: non-NULL payload of `len` bytes, valid until the handle is freed.
        (!p.is_null()).then(|| unsafe { std::slice::from_raw_parts(p, len) }.to_vec())
    }

    /// A live handle's accessors give what was put.
    fn check_accessors(&self, i: usize) {
        let j = &self.jobs[i];
        // SAFETY: a handle this program holds (not freed).
        let (id, attempt, q) = unsafe { (jobq_job_id(j.h), jobq_job_attempt(j.h), jobq_job_queue(j.h)) };
        assert_eq!(id, j.id, "jobq_job_id changed");
        assert!(attempt >= 1, "jobq_job_attempt: {attempt}");
        assert!(!q.is_null(), "jobq_job_queue: NULL for a live handle");
        // SAFETY: non-NULL, NUL-terminated, valid until the handle is freed.
        assert_eq!(unsafe { CStr::from_ptr(q) }.to_bytes(), j.queue.as_slice(), "jobq_job_queue of job {id}");
        let mut len = SENTINEL as usize;
        // SAFETY: as above.
        let p = unsafe { jobq_job_payload(j.h, &mut len) };
        assert!(!p.is_null(), "jobq_job_payload: NULL for a live handle (job {id})");
        assert_eq!(len, j.payload.len(), "jobq_job_payload: length of job {id}");
        // SAFETY: `len` bytes at `p`, per the library.
        let bytes = unsafe { std::slice::from_raw_parts(p, len) };
        assert_eq!(bytes, j.payload.as_slice(), "jobq_job_payload: bytes of job {id}");
        // The length pointer is nullable.
        // SAFETY: as above.
        assert_eq!(unsafe { jobq_job_payload(j.h, ptr::null_mut()) }, p, "jobq_job_payload with len NULL");
    }

    /// Accessors of a handle that is not live give 0 / NULL and write nothing.
    fn check_dead_accessors(&self, h: *mut jobq_job) {
        let mut len = SENTINEL as usize;
        // SAFETY: any handle value is allowed: the library checks it.
        unsafe {
            assert_eq!(jobq_job_id(h), 0, "jobq_job_id of a dead handle");
            assert_eq!(jobq_job_attempt(h), 0, "jobq_job_attempt of a dead handle");
            assert!(jobq_job_queue(h).is_null(), "jobq_job_queue of a dead handle");
            assert!(jobq_job_payload(h, &mut len).is_null(), "jobq_job_payload of a dead handle");
        }
        assert_eq!(len, SENTINEL as usize, "jobq_job_payload wrote *len for a dead handle");
    }

    fn op_job_accessors(&mut self, u: &mut Unstructured) -> AResult<()> {
        let (h, kind) = self.pick_job(u)?;
        log!("accessors {h:?} ({kind:?})");
        match kind {
            Kind::Live(i) => self.check_accessors(i),
            _ => self.check_dead_accessors(h),
        }
        Ok(())
    }

    fn op_finish(&mut self, u: &mut Unstructured) -> AResult<()> {
        let (h, kind) = self.pick_job(u)?;
        let which = u.int_in_range(0u8..=4)?;
        let reason = gen_reason(u)?;
        let ms = gen_ms(u, 30)?;
        let (call, args_invalid, ends) = match which {
            0 => ("jobq_ack", false, true),
            1 => ("jobq_fail", reason.bytes().is_some() && reason.utf8().is_none(), true),
            2 => ("jobq_release", ms > MAX_DELAY_MS, true),
            3 => ("jobq_touch", ms > MAX_DELAY_MS, false),
            _ => ("jobq_bury", reason.bytes().is_some() && reason.utf8().is_none(), true),
        };
        let state: Vec<c_int> = match kind {
            Kind::Live(i) => {
                let j = &self.jobs[i];
                let mut s = Vec::new();
                if j.finished {
                    s.push(E_STATE);
                }
                if !self.queues[j.q].open {
                    s.push(E_SHUTDOWN);
                }
                if s.is_empty() {
                    if self.gone.contains(&j.id) {
                        vec![E_STATE]
                    } else {
                        vec![OK, E_STATE]
                    }
                } else {
                    s
                }
            }
            k => vec![k.error().unwrap_or(OK)],
        };
        let mut allowed = if args_invalid {
            let mut a = vec![E_INVALID_ARG];
            // Which of two problems is reported first is not specified.
            a.extend(state.iter().filter(|&&s| s != OK));
            a
        } else {
            state
        };
        if let Kind::Live(i) = kind {
            allowed.extend(self.tolerated(Kind::Live(self.jobs[i].q)));
        }
        log!("{call} {h:?} ({kind:?}) reason={:?} ms={ms}", reason.bytes().map(String::from_utf8_lossy));
        // SAFETY: any handle value is allowed; `reason` is NULL or NUL-terminated.
        let st = unsafe {
            match which {
                0 => jobq_ack(h),
                1 => jobq_fail(h, reason.ptr()),
                2 => jobq_release(h, ms),
                3 => jobq_touch(h, ms),
                _ => jobq_bury(h, reason.ptr()),
            }
        };
        check(call, st, &allowed);
        if let Kind::Live(i) = kind {
            let j = &mut self.jobs[i];
            if st == E_STATE || (st == OK && ends) {
                j.finished = true;
            }
            if st == OK && which == 0 {
                let id = j.id;
                self.acked(i, id, None);
            }
            self.check_accessors(i);
        }
        Ok(())
    }

    fn op_job_free(&mut self, u: &mut Unstructured) -> AResult<()> {
        let (h, kind) = self.pick_job(u)?;
        log!("job_free {h:?} ({kind:?})");
        // SAFETY: any handle value is allowed (freeing twice is documented as harmless).
        unsafe { jobq_job_free(h) };
        if let Kind::Live(i) = kind {
            self.jobs[i].freed = true;
            self.check_dead_accessors(h);
        }
        // Freeing a forged, stale or cross-type value freed nothing.
        for i in 0..self.jobs.len() {
            if !self.jobs[i].freed {
                self.check_accessors(i);
            }
        }
        Ok(())
    }

    fn op_kick(&mut self, u: &mut Unstructured) -> AResult<()> {
        let (h, kind) = self.pick_queue(u)?;
        let name = self.gen_name(u)?;
        let max = match u.int_in_range(0u8..=3)? {
            0 => 0,
            1 => u64::MAX,
            _ => u.int_in_range(1..=5)?,
        };
        let out_null = u.ratio(1, 4)?;
        let errors = self.queue_errors(kind, &name);
        let mut allowed = expect(&errors, &[OK]);
        allowed.extend(self.tolerated(kind));
        let mut out = SENTINEL;
        let out_p: *mut u64 = if out_null { ptr::null_mut() } else { &mut out };
        log!("kick {h:?} ({kind:?}) queue={:?} max={max}", name.bytes().map(String::from_utf8_lossy));
        // SAFETY: `out_p` is NULL or a writable uint64_t.
        let st = unsafe { jobq_kick(h, name.ptr(), max, out_p) };
        check("jobq_kick", st, &allowed);
        if st == OK && !out_null {
            assert!(out != SENTINEL, "jobq_kick: OK without writing *out_kicked");
            assert!(out <= max, "jobq_kick: kicked {out} > max {max}");
            let known = self.stored.len() + self.anonymous.len();
            assert!(
                out as usize <= known || !self.sched_payloads.is_empty(),
                "jobq_kick: kicked {out} jobs of {known} ever put"
            );
        } else if st != OK {
            assert!(out == SENTINEL, "jobq_kick: {} but *out_kicked was written", status_name(st));
        }
        Ok(())
    }

    fn op_cancel(&mut self, u: &mut Unstructured) -> AResult<()> {
        let (h, kind) = self.pick_queue(u)?;
        let ids: Vec<u64> = self.stored.keys().copied().collect();
        let id = match u.int_in_range(0u8..=7)? {
            0 => 0,
            1 => u64::MAX,
            2 => self.max_id + 1,
            3 => u.arbitrary()?,
            _ if !ids.is_empty() => {
                let mut sorted = ids;
                sorted.sort_unstable();
                sorted[u.choose_index(sorted.len())?]
            }
            _ => self.max_id,
        };
        let allowed = match kind {
            Kind::Live(_) => {
                let maybe_anonymous = (!self.anonymous.is_empty() || !self.sched_payloads.is_empty())
                    && id != 0
                    && !self.stored.contains_key(&id);
                if self.kept.contains_key(&id) {
                    // Done and kept (cancel deletes it), or past its keep time.
                    vec![OK, E_NOT_FOUND]
                } else if self.maybe_gone.contains(&id) {
                    vec![OK, E_STATE, E_NOT_FOUND]
                } else if self.gone.contains(&id) || (!self.stored.contains_key(&id) && !maybe_anonymous) {
                    vec![E_NOT_FOUND]
                } else if self.workers_ran || maybe_anonymous {
                    vec![OK, E_STATE, E_NOT_FOUND]
                } else {
                    vec![OK, E_STATE]
                }
            }
            k => vec![k.error().unwrap_or(OK)],
        };
        let allowed = [allowed, self.tolerated(kind)].concat();
        log!("cancel {h:?} ({kind:?}) id={id}");
        // SAFETY: any handle value is allowed.
        let st = unsafe { jobq_cancel(h, id) };
        check("jobq_cancel", st, &allowed);
        if st == OK {
            self.gone.insert(id);
            self.kept.remove(&id);
            self.maybe_gone.remove(&id);
        }
        Ok(())
    }

    fn op_stats(&mut self, u: &mut Unstructured) -> AResult<()> {
        let (h, kind) = self.pick_queue(u)?;
        let out_null = u.ratio(1, 8)?;
        let mut errors: Vec<c_int> = kind.error().into_iter().collect();
        if out_null {
            errors.push(E_INVALID_ARG);
        }
        let mut allowed = expect(&errors, &[OK]);
        allowed.extend(self.tolerated(kind));
        let mut out: *mut c_char = sentinel_ptr();
        let out_p: *mut *mut c_char = if out_null { ptr::null_mut() } else { &mut out };
        log!("stats_json {h:?} ({kind:?}) out_null={out_null}");
        // SAFETY: `out_p` is NULL or a writable char*.
        let st = unsafe { jobq_stats_json(h, out_p) };
        check("jobq_stats_json", st, &allowed);
        if st != OK {
            assert!(out == sentinel_ptr(), "jobq_stats_json: {} but *out_json was written", status_name(st));
            return Ok(());
        }
        assert!(out != sentinel_ptr() && !out.is_null(), "jobq_stats_json: OK without a string");
        assert!(
            !self.strings.iter().any(|s| !s.freed && s.p == out),
            "jobq_stats_json: a live string handed out again"
        );
        // SAFETY: a NUL-terminated string the library just returned.
        let text = unsafe { CStr::from_ptr(out) }.to_str().expect("stats JSON is not UTF-8").to_owned();
        self.strings.push(SSlot { p: out, freed: false });
        self.check_stats(&text);
        Ok(())
    }

    fn check_stats(&self, text: &str) {
        let v: serde_json::Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("jobq_stats_json: not JSON ({e}): {text}"));
        let top = v.as_object().unwrap_or_else(|| panic!("jobq_stats_json: not an object: {text}"));
        for key in top.keys() {
            assert!(["queues", "schedules"].contains(&key.as_str()), "jobq_stats_json: unknown key {key:?}: {text}");
        }
        let queues = v.get("queues").and_then(|q| q.as_object());
        let queues = queues.unwrap_or_else(|| panic!("jobq_stats_json: no \"queues\" object: {text}"));
        let mut per_queue: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
        for (q, _) in self.stored.values().chain(self.anonymous.iter()) {
            *per_queue.entry(q.clone()).or_default() += 1;
        }
        const FIELDS: [&str; 8] = ["ready", "scheduled", "reserved", "dead", "done", "paused", "limits", "rate_used"];
        let count = |counts: &serde_json::Value, name: &str, field: &str| -> u64 {
            let n = counts.get(field).and_then(|n| n.as_u64());
            n.unwrap_or_else(|| panic!("jobq_stats_json: {name}.{field} missing or not a count: {text}"))
        };
        for (name, counts) in queues {
            assert!(
                self.put_queues.contains(name.as_bytes()),
                "jobq_stats_json: queue {name:?} was never put to, paused, limited or scheduled: {text}"
            );
            let obj = counts.as_object().unwrap_or_else(|| panic!("jobq_stats_json: {name} is not an object: {text}"));
            for key in obj.keys() {
                assert!(FIELDS.contains(&key.as_str()), "jobq_stats_json: {name} has unknown key {key:?}: {text}");
            }
            let mut total = 0u64;
            for field in ["ready", "scheduled", "reserved", "dead", "done"] {
                total += count(counts, name, field);
            }
            let put = per_queue.get(name.as_bytes()).copied().unwrap_or(0) as u64;
            // A schedule puts jobs in the background: its queue has no bound.
            if !self.sched_payloads.contains_key(name.as_bytes()) {
                assert!(
                    total <= put,
                    "jobq_stats_json: queue {name:?} counts {total} jobs, only {put} were put: {text}"
                );
            }
            let paused = counts.get("paused").and_then(|p| p.as_bool());
            let paused =
                paused.unwrap_or_else(|| panic!("jobq_stats_json: {name}.paused missing or not a bool: {text}"));
            let limits = match counts.get("limits") {
                None => (None, None),
                Some(l) => {
                    let l = l.as_object().unwrap_or_else(|| panic!("jobq_stats_json: {name}.limits: {text}"));
                    assert!(!l.is_empty(), "jobq_stats_json: {name}.limits is empty (no limit is absent): {text}");
                    for key in l.keys() {
                        assert!(
                            ["max_reserved", "rate"].contains(&key.as_str()),
                            "jobq_stats_json: {name}.limits.{key}: {text}"
                        );
                    }
                    let mr = l.get("max_reserved").map(|_| count(&counts["limits"], name, "max_reserved"));
                    let rate = l.get("rate").map(|r| {
                        let ro = r.as_object().unwrap_or_else(|| panic!("jobq_stats_json: {name}.limits.rate: {text}"));
                        assert_eq!(ro.len(), 2, "jobq_stats_json: {name}.limits.rate keys: {text}");
                        (count(r, name, "jobs"), count(r, name, "per_ms"))
                    });
                    (mr, rate)
                }
            };
            if let Some(used) = counts.get("rate_used") {
                assert!(used.as_u64().is_some(), "jobq_stats_json: {name}.rate_used is not a count: {text}");
            }
            assert_eq!(
                limits.1.is_some(),
                counts.get("rate_used").is_some(),
                "jobq_stats_json: {name}: \"rate_used\" goes with a rate limit: {text}"
            );
            if !self.admin_uncertain {
                assert_eq!(paused, self.paused.contains(name.as_bytes()), "jobq_stats_json: {name}.paused: {text}");
                let want = self.limits.get(name.as_bytes()).copied().unwrap_or((None, None));
                assert_eq!(limits, want, "jobq_stats_json: {name}.limits vs what jobq_queue_config set: {text}");
            }
        }
        if !self.admin_uncertain {
            for q in &self.paused {
                let name = String::from_utf8_lossy(q);
                assert!(queues.contains_key(name.as_ref()), "jobq_stats_json: paused queue {name:?} missing: {text}");
            }
            for (q, l) in &self.limits {
                let name = String::from_utf8_lossy(q);
                if *l != (None, None) {
                    assert!(queues.contains_key(name.as_ref()), "jobq_stats_json: limited {name:?} missing: {text}");
                }
            }
        }
        let schedules = match top.get("schedules") {
            None => Vec::new(),
            Some(s) => {
                s.as_array().unwrap_or_else(|| panic!("jobq_stats_json: schedules not an array: {text}")).clone()
            }
        };
        let mut names = Vec::new();
        for s in &schedules {
            let o = s.as_object().unwrap_or_else(|| panic!("jobq_stats_json: a schedule is not an object: {text}"));
            assert_eq!(o.len(), 9, "jobq_stats_json: schedule keys: {text}");
            let str_of = |k: &str| -> String {
                let v = o.get(k).and_then(|v| v.as_str());
                v.unwrap_or_else(|| panic!("jobq_stats_json: schedule {k} missing or not a string: {text}")).to_owned()
            };
            let (name, queue, _spec) = (str_of("name"), str_of("queue"), str_of("spec"));
            let next = &o["next_ms"];
            assert!(next.is_null() || next.as_i64().is_some(), "jobq_stats_json: schedule next_ms: {text}");
            assert!(o.get("priority").and_then(|p| p.as_i64()).is_some(), "jobq_stats_json: schedule priority: {text}");
            for k in ["delay_ms", "max_attempts", "lease_ms", "payload_len"] {
                count(s, &name, k);
            }
            if !self.admin_uncertain {
                let want = self.schedules.get(name.as_bytes());
                let want = want.unwrap_or_else(|| panic!("jobq_stats_json: schedule {name:?} was never made: {text}"));
                assert_eq!(queue.as_bytes(), want.0.as_slice(), "jobq_stats_json: schedule {name:?} queue: {text}");
                assert_eq!(count(s, &name, "payload_len"), want.1 as u64, "jobq_stats_json: {name:?} payload_len");
            }
            names.push(name.into_bytes());
        }
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "jobq_stats_json: schedules not in name order: {text}");
        if !self.admin_uncertain {
            let want: Vec<Vec<u8>> = self.schedules.keys().cloned().collect();
            assert_eq!(names, want, "jobq_stats_json: schedules vs the model: {text}");
        }
    }

    fn op_string_free(&mut self, u: &mut Unstructured) -> AResult<()> {
        let mut local = *b"not from jobq\0";
        let live: Vec<usize> = (0..self.strings.len()).filter(|&i| !self.strings[i].freed).collect();
        let freed: Vec<usize> = (0..self.strings.len()).filter(|&i| self.strings[i].freed).collect();
        let (p, frees): (*mut c_char, Option<usize>) = match u.int_in_range(0u8..=7)? {
            0 | 1 if !live.is_empty() => {
                let i = live[u.choose_index(live.len())?];
                (self.strings[i].p, Some(i))
            }
            2 if !freed.is_empty() => {
                // A double free: harmless, unless the allocator gave the same
                // address to a live string (then it frees that one, as it would in C).
                let i = freed[u.choose_index(freed.len())?];
                let p = self.strings[i].p;
                if live.iter().any(|&l| self.strings[l].p == p) {
                    return Ok(());
                }
                (p, None)
            }
            3 if !live.is_empty() => {
                let i = live[u.choose_index(live.len())?];
                (self.strings[i].p.wrapping_add(1), None)
            }
            4 => (local.as_mut_ptr().cast(), None),
            5 if self.jobs.iter().any(|j| !j.freed) => {
                // A string the library owns but did not allocate for the
                // caller: a job's queue name (it must survive this).
                let j = self.jobs.iter().find(|j| !j.freed).expect("a live job");
                // SAFETY: a live job handle.
                (unsafe { jobq_job_queue(j.h) }.cast_mut(), None)
            }
            6 => {
                // SAFETY: static strings of the library.
                (
                    unsafe {
                        if u.ratio(1, 2)? {
                            jobq_version()
                        } else {
                            jobq_status_str(-4)
                        }
                    }
                    .cast_mut(),
                    None,
                )
            }
            _ => (ptr::null_mut(), None),
        };
        log!("string_free {p:?} (frees: {frees:?})");
        // SAFETY: the library accepts any pointer here (it frees only its own live strings).
        unsafe { jobq_string_free(p) };
        if let Some(i) = frees {
            self.strings[i].freed = true;
        }
        assert_eq!(&local, b"not from jobq\0", "jobq_string_free wrote to a foreign buffer");
        for s in self.strings.iter().filter(|s| !s.freed) {
            // SAFETY: a live string from the library; ASan reports it if it was freed.
            let text = unsafe { CStr::from_ptr(s.p) };
            assert!(text.to_str().is_ok(), "a live stats string changed");
        }
        for i in 0..self.jobs.len() {
            if !self.jobs[i].freed {
                self.check_accessors(i);
            }
        }
        Ok(())
    }

    fn op_worker(&mut self, u: &mut Unstructured) -> AResult<()> {
        if u.ratio(1, 2)? {
            self.op_worker_stop(u)
        } else {
            self.op_worker_start(u)
        }
    }

    fn op_worker_start(&mut self, u: &mut Unstructured) -> AResult<()> {
        let (h, kind) = self.pick_queue(u)?;
        let name = self.gen_name(u)?;
        #[repr(C)]
        struct WorkerOptsBuf {
            o: jobq_worker_opts,
            tail: [u8; OPTS_TAIL],
        }
        let mut buf = WorkerOptsBuf { o: jobq_worker_opts { struct_size: 0, concurrency: 0 }, tail: [0; OPTS_TAIL] };
        // SAFETY: a whole jobq_worker_opts.
        unsafe { jobq_worker_opts_init_sized(&mut buf.o, WORKER_OPTS_SIZE) };
        assert_eq!((buf.o.struct_size, buf.o.concurrency), (WORKER_OPTS_SIZE as u32, 1), "jobq_worker_opts_init_sized");
        let mut opts_invalid = false;
        let opts_p: *const jobq_worker_opts = match u.int_in_range(0u8..=9)? {
            0 | 1 => ptr::null(),
            2 => {
                buf.o.struct_size = u.int_in_range(0..=WORKER_OPTS_SIZE as u32 - 1)?;
                opts_invalid = true;
                &buf.o
            }
            3 => {
                buf.o.struct_size =
                    u.int_in_range(WORKER_OPTS_SIZE as u32 + 1..=(WORKER_OPTS_SIZE + OPTS_TAIL) as u32)?;
                u.fill_buffer(&mut buf.tail)?;
                buf.o.concurrency = u.int_in_range(1..=3)?;
                &buf.o
            }
            4 => {
                buf.o.concurrency = [0, MAX_CONCURRENCY + 1, u32::MAX][u.choose_index(3)?];
                opts_invalid = true;
                &buf.o
            }
            _ => {
                buf.o.concurrency = u.int_in_range(1..=3)?;
                &buf.o
            }
        };
        let handler_null = u.ratio(1, 10)?;
        let out_null = u.ratio(1, 10)?;
        let n_outcomes = u.int_in_range(1..=4)?;
        let outcomes = (0..n_outcomes)
            .map(|_| Ok([0, 0, 1, 2, 7, -1, c_int::MIN][u.choose_index(7)?]))
            .collect::<AResult<Vec<c_int>>>()?;
        let mut errors = self.queue_errors(kind, &name);
        if opts_invalid || handler_null || out_null {
            errors.push(E_INVALID_ARG);
        }
        let allowed = expect(&errors, &[OK]);
        if allowed.contains(&OK) && self.workers.iter().filter(|w| w.running).count() >= MAX_WORKERS {
            return Ok(());
        }
        let ctx = Box::new(HandlerCtx {
            queue: name.bytes().unwrap_or_default().to_vec(),
            outcomes,
            next: AtomicUsize::new(0),
            calls: AtomicUsize::new(0),
            errors: Mutex::new(Vec::new()),
        });
        let mut out: *mut jobq_worker = sentinel_ptr();
        let out_p: *mut *mut jobq_worker = if out_null { ptr::null_mut() } else { &mut out };
        let handler_fn: jobq_handler = if handler_null { None } else { Some(handler) };
        log!("worker_start {h:?} ({kind:?}) queue={:?} opts_null={} invalid={opts_invalid} handler_null={handler_null} out_null={out_null}", name.bytes().map(String::from_utf8_lossy), opts_p.is_null());
        let ctx_p = (&*ctx as *const HandlerCtx).cast_mut().cast::<c_void>();
        // SAFETY: `opts_p` is NULL or a struct of at least its struct_size
        // bytes; the handler and ctx stay valid until stop(-1).
        let st = unsafe { jobq_worker_start(h, name.ptr(), opts_p, handler_fn, ctx_p, out_p) };
        check("jobq_worker_start", st, &allowed);
        if st != OK {
            assert!(out == sentinel_ptr(), "jobq_worker_start: {} but *out was written", status_name(st));
            return Ok(());
        }
        assert!(out != sentinel_ptr() && !out.is_null(), "jobq_worker_start: OK without a handle");
        let Kind::Live(qi) = kind else { unreachable!() };
        self.workers_ran = true;
        self.workers.push(WSlot { h: out, q: qi, running: true, ctx: Some(ctx) });
        Ok(())
    }

    fn stop_worker(&mut self, i: usize) {
        let h = self.workers[i].h;
        log!("worker_stop {h:?} (Live({i})) -1");
        // SAFETY: a worker handle this program holds; -1 waits for its handlers.
        let st = unsafe { jobq_worker_stop(h, -1) };
        check("jobq_worker_stop", st, &[OK]);
        let w = &mut self.workers[i];
        w.running = false;
        let ctx = w.ctx.take().expect("a running worker has its context");
        let errors = ctx.errors.lock().unwrap_or_else(|e| e.into_inner());
        assert!(errors.is_empty(), "worker handler saw: {errors:?}");
        log!("  handler ran {} times", ctx.calls.load(SeqCst));
    }

    fn op_worker_stop(&mut self, u: &mut Unstructured) -> AResult<()> {
        let (h, kind) = self.pick_worker(u)?;
        if let Kind::Live(i) = kind {
            self.stop_worker(i);
            return Ok(());
        }
        let timeout: i64 = [-1, 0, 10, i64::MIN, i64::MAX][u.choose_index(5)?];
        log!("worker_stop {h:?} ({kind:?}) {timeout}");
        // SAFETY: any handle value is allowed; a dead one returns at once.
        let st = unsafe { jobq_worker_stop(h, timeout) };
        check("jobq_worker_stop", st, &[kind.error().unwrap_or(OK)]);
        Ok(())
    }

    /// status_str, version, the options-init functions, per-thread last error.
    fn op_misc(&mut self, u: &mut Unstructured) -> AResult<()> {
        match u.int_in_range(0u8..=4)? {
            4 => {
                // jobq_last_error is per thread: another thread's calls do not change ours.
                // SAFETY: NULL is a documented error.
                let st = unsafe { jobq_cancel(ptr::null_mut(), 1) };
                check("jobq_cancel(NULL)", st, &[E_INVALID_ARG]);
                let mine = last_error();
                let forged_q = forged(u)?;
                let other = std::thread::spawn(move || {
                    // SAFETY: forged handles are rejected without a dereference.
                    let st = unsafe { jobq_cancel(ptr::without_provenance_mut(forged_q), 1) };
                    check("jobq_cancel(forged) on another thread", st, &[E_HANDLE]);
                    last_error()
                })
                .join()
                .expect("the other thread's checks");
                assert_ne!(mine, other, "two different errors, one message");
                assert_eq!(last_error(), mine, "another thread's failing call changed this thread's jobq_last_error");
            }
            0 => {
                let code: c_int = if u.ratio(1, 2)? { STATUS_NAMES[u.choose_index(14)?].0 } else { u.arbitrary()? };
                // SAFETY: any int is allowed.
                let p = unsafe { jobq_status_str(code) };
                assert!(!p.is_null(), "jobq_status_str({code}) is NULL");
                // SAFETY: static NUL-terminated text.
                let s = unsafe { CStr::from_ptr(p) }.to_str().expect("jobq_status_str is not UTF-8");
                if let Some((_, n)) = STATUS_NAMES.iter().find(|(c, _)| *c == code) {
                    assert_eq!(s, *n, "jobq_status_str({code})");
                } else {
                    assert!(!s.is_empty(), "jobq_status_str({code}) is empty");
                }
            }
            1 => {
                // SAFETY: no arguments.
                let (v, n) = unsafe { (jobq_version(), jobq_version_number()) };
                assert!(!v.is_null(), "jobq_version is NULL");
                // SAFETY: static text.
                let v = unsafe { CStr::from_ptr(v) }.to_str().expect("jobq_version is not UTF-8");
                let parts: Vec<u32> = v.split('.').map(|p| p.parse().expect("jobq_version is not x.y.z")).collect();
                assert_eq!(parts.len(), 3, "jobq_version {v}");
                assert_eq!(n, parts[0] * 10000 + parts[1] * 100 + parts[2], "jobq_version_number vs {v}");
            }
            2 => {
                // jobq_put_opts_init_sized with a caller size within the buffer, or NULL.
                let mut buf = [0xABu8; PUT_OPTS_SIZE + OPTS_TAIL];
                let size = u.int_in_range(0..=buf.len())?;
                if u.ratio(1, 5)? {
                    // SAFETY: NULL is a documented no-op, whatever the size.
                    unsafe { jobq_put_opts_init_sized(ptr::null_mut(), u.arbitrary()?) };
                    return Ok(());
                }
                // SAFETY: `buf` has at least `size` writable bytes.
                unsafe { jobq_put_opts_init_sized(buf.as_mut_ptr().cast(), size) };
                check_init("jobq_put_opts_init_sized", &buf, size, &[], 20..24);
            }
            _ => {
                let mut buf = [0xABu8; WORKER_OPTS_SIZE + OPTS_TAIL];
                let size = u.int_in_range(0..=buf.len())?;
                // SAFETY: `buf` has at least `size` writable bytes.
                unsafe { jobq_worker_opts_init_sized(buf.as_mut_ptr().cast(), size) };
                check_init("jobq_worker_opts_init_sized", &buf, size, &1u32.to_ne_bytes(), 0..0);
            }
        }
        Ok(())
    }

    /// Stops, frees and closes everything; all of it must succeed.
    fn cleanup(&mut self) {
        log!("cleanup");
        for i in 0..self.workers.len() {
            if self.workers[i].running {
                self.stop_worker(i);
            }
        }
        for w in self.watches.iter_mut().filter(|w| w.open) {
            // SAFETY: a watch handle this program holds.
            let st = unsafe { jobq_watch_close(w.h) };
            check("jobq_watch_close (cleanup)", st, &[OK]);
            w.open = false;
        }
        for j in self.jobs.iter_mut().filter(|j| !j.freed) {
            // SAFETY: a job handle this program holds.
            unsafe { jobq_job_free(j.h) };
            j.freed = true;
        }
        for s in self.strings.iter_mut().filter(|s| !s.freed) {
            // SAFETY: a string the library returned, not yet freed.
            unsafe { jobq_string_free(s.p) };
            s.freed = true;
        }
        for q in self.queues.iter_mut().filter(|q| q.open) {
            // SAFETY: a queue handle this program holds.
            let st = unsafe { jobq_close(q.h) };
            check("jobq_close (cleanup)", st, &[OK]);
            q.open = false;
        }
        if let Some(p) = self.path.utf8() {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{p}{suffix}"));
            }
        }
    }
}

// ------------------------------------------------- the newer calls' operations

/// Standard base64 (with padding), to compare with job_info's result_b64.
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A schedule name: mostly a few fixed ones, so that replace and delete meet.
fn gen_sched_name(u: &mut Unstructured) -> AResult<CArg> {
    Ok(match u.int_in_range(0u8..=11)? {
        0..=3 => CArg::new(b"s1"),
        4 | 5 => CArg::new(b"s2"),
        6 => CArg::new(b"s3"),
        7 => CArg::null(),
        8 => CArg::new(b""),
        9 => CArg::new(&vec![b'n'; SCHEDULE_NAME_MAX + u.int_in_range(0..=1)?]),
        10 => CArg::new(b"\xc3("),
        _ => CArg::new(&fuzz_bytes(u, 10)?),
    })
}

fn is_sched_name(n: &CArg) -> bool {
    n.utf8().is_some_and(|s| !s.is_empty() && s.len() <= SCHEDULE_NAME_MAX)
}

/// A schedule spec and whether it is valid (None: unknown). Valid specs have
/// far slots (a yearly date, `@every` >= 1 h) or, now and then, `@every
/// 100ms`/`500ms`, which may fire once in a long input: the model accepts
/// schedule-put jobs anyway, this only keeps most runs deterministic.
fn gen_spec(u: &mut Unstructured) -> AResult<(CArg, Option<bool>)> {
    const VALID: [&str; 12] = [
        "0 0 1 1 *",
        "@yearly",
        "@every 1h",
        "@every 2d",
        "@every 1h30m",
        "30 4 29 2 *",
        "5,35 3-4 1 JAN,JUL *",
        "0 0 1 1 SUN",
        "  0 0 1 1 *  ",
        "@every 100000000000ms",
        "@every 100ms",
        "@every 500ms",
    ];
    const INVALID: [&str; 22] = [
        "",
        "   ",
        "@every",
        "@every 99ms",
        "@every 0ms",
        "@every 1x",
        "@every 100",
        "@every 100000000001ms",
        "@every 99999999999999999999d",
        "@every -5s",
        "@hourly x",
        "@never",
        "0 0 1 1",
        "0 0 1 1 * *",
        "60 0 1 1 *",
        "0 24 1 1 *",
        "0 0 32 1 *",
        "0 0 1 13 *",
        "0 0 1 1 8",
        "5-1 0 1 1 *",
        "*/0 0 1 1 *",
        "0 0 30 2 *",
    ];
    Ok(match u.int_in_range(0u8..=11)? {
        0..=3 => {
            // The last two @every specs fire within 100 ms: rarer.
            let n = if u.ratio(1, 8)? { VALID.len() } else { VALID.len() - 2 };
            (CArg::new(VALID[u.choose_index(n)?].as_bytes()), Some(true))
        }
        4..=6 => (CArg::new(INVALID[u.choose_index(INVALID.len())?].as_bytes()), Some(false)),
        7 => {
            // Five fields from lists of good and bad values (minutes and hours
            // fixed, so the slot is at most once a day).
            let fields: [(&[&str], usize); 5] = [
                (&["0", "59", "7,8", "10-20/5", "60", "-1", "a", "5-1", "*/0", ""], 4),
                (&["0", "23", "1-3/2", "24", "x", "3-"], 3),
                (&["1", "31", "*", "1,15", "32", "0", "L"], 4),
                (&["1", "12", "JAN", "DEC", "*", "JAN-MAR", "13", "FOO", "0"], 6),
                (&["*", "0", "7", "SUN", "MON-FRI", "8", "SUNDAY"], 5),
            ];
            let mut parts = Vec::new();
            let mut valid = true;
            for (vals, n_good) in fields {
                let i = u.choose_index(vals.len())?;
                valid &= i < n_good;
                parts.push(vals[i]);
            }
            // Day 31 of a month without one is checked by "matches no time"
            // only when month and day are both restricted: all months here have 31.
            (CArg::new(parts.join(" ").as_bytes()), Some(valid))
        }
        8 => (CArg::null(), Some(false)),
        9 => (CArg::new(&b"0 ".repeat(SCHEDULE_SPEC_MAX / 2 + 1)), Some(false)),
        10 => (CArg::new(b"@every 1\xffh"), Some(false)),
        _ => (CArg::new(&fuzz_bytes(u, 24)?), None),
    })
}

/// A jobq_queue_config argument and the change it makes (None: invalid;
/// Some(None): unknown, raw bytes).
fn gen_qconfig(u: &mut Unstructured) -> AResult<(CArg, Option<bool>)> {
    Ok(match u.int_in_range(0u8..=9)? {
        0..=3 => {
            let mut m = serde_json::Map::new();
            if u.ratio(2, 3)? {
                let v: serde_json::Value = match u.int_in_range(0u8..=4)? {
                    0 => serde_json::Value::Null,
                    1 => MAX_LIMIT.into(),
                    _ => u.int_in_range(1u64..=3)?.into(),
                };
                m.insert("max_reserved".into(), v);
            }
            if u.ratio(1, 2)? {
                let v = if u.ratio(1, 4)? {
                    serde_json::Value::Null
                } else {
                    let jobs = [1u64, 2, 5, MAX_LIMIT][u.choose_index(4)?];
                    let per_ms = [1u64, 10, 1000, 3_600_000, MAX_DELAY_MS][u.choose_index(5)?];
                    serde_json::json!({"jobs": jobs, "per_ms": per_ms})
                };
                m.insert("rate".into(), v);
            }
            (CArg::new(serde_json::Value::Object(m).to_string().as_bytes()), Some(true))
        }
        4..=6 => {
            const BAD: [&str; 24] = [
                r#"{"max_reserved":0}"#,
                r#"{"max_reserved":-1}"#,
                r#"{"max_reserved":1.5}"#,
                r#"{"max_reserved":"3"}"#,
                r#"{"max_reserved":1000000000001}"#,
                r#"{"max_reserved":1e400}"#,
                r#"{"max_reserved":true}"#,
                r#"{"rate":{"jobs":1}}"#,
                r#"{"rate":{"per_ms":1}}"#,
                r#"{"rate":{"jobs":1,"per_ms":0}}"#,
                r#"{"rate":{"jobs":0,"per_ms":1}}"#,
                r#"{"rate":{"jobs":1,"per_ms":100000000001}}"#,
                r#"{"rate":{"jobs":1,"per_ms":1,"x":1}}"#,
                r#"{"rate":{"jobs":null,"per_ms":1}}"#,
                r#"{"rate":5}"#,
                r#"{"rate":[1,1]}"#,
                r#"{"nope":1}"#,
                r#"{"max_reserved":1,"nope":null}"#,
                r#"[]"#,
                r#"null"#,
                r#""#,
                r#"{"max_reserved":1"#,
                r#"{"max_reserved":18446744073709551616}"#,
                r#"{"rate":{"jobs":1,"per_ms":1}}x"#,
            ];
            (CArg::new(BAD[u.choose_index(BAD.len())?].as_bytes()), Some(false))
        }
        7 => (CArg::null(), Some(false)),
        8 => (CArg::new(b"{\"max_reserved\":1,\"\xff\":1}"), Some(false)),
        _ => (CArg::new(&fuzz_bytes(u, 40)?), None),
    })
}

/// Applies a jobq_queue_config JSON that the library accepted to the model.
fn apply_qconfig(old: Limits, json: &str) -> Limits {
    let v: serde_json::Value = serde_json::from_str(json).expect("accepted queue config is JSON");
    let m = v.as_object().expect("accepted queue config is an object");
    let mut new = old;
    if let Some(mr) = m.get("max_reserved") {
        new.0 = mr.as_u64();
    }
    if let Some(r) = m.get("rate") {
        new.1 = if r.is_null() {
            None
        } else {
            Some((r["jobs"].as_u64().expect("rate.jobs"), r["per_ms"].as_u64().expect("rate.per_ms")))
        };
    }
    new
}

/// A result buffer for jobq_ack_result: pointer, length and bytes (None: invalid).
struct ResultArg {
    _buf: Vec<u8>,
    ptr: *const c_void,
    len: usize,
    invalid: bool,
}

fn gen_result(u: &mut Unstructured) -> AResult<ResultArg> {
    let (buf, ptr, len, invalid): (Vec<u8>, *const c_void, usize, bool) = match u.int_in_range(0u8..=9)? {
        0..=2 => {
            let b = fuzz_bytes(u, 24)?;
            let (p, n) = (b.as_ptr().cast(), b.len());
            (b, p, n, false)
        }
        3 => {
            let b = b"{\"ok\":true}".to_vec();
            let (p, n) = (b.as_ptr().cast(), b.len());
            (b, p, n, false)
        }
        4 => (Vec::new(), ptr::null(), 0, false),
        5 => (Vec::new(), ptr::null(), [1, 16, usize::MAX][u.choose_index(3)?], true),
        6 | 7 => {
            // At the limit, or one past it.
            let n = RESULT_MAX + u.int_in_range(0..=1)?;
            let b = vec![u.arbitrary::<u8>()?; n];
            let p = b.as_ptr().cast();
            (b, p, n, false)
        }
        8 => {
            let b = "r\u{e9}sultat \u{1f600}".as_bytes().to_vec();
            let (p, n) = (b.as_ptr().cast(), b.len());
            (b, p, n, false)
        }
        _ => {
            let b = fuzz_bytes(u, 16)?;
            let n = u.int_in_range(0..=b.len())?;
            let p = b.as_ptr().cast();
            (b, p, n, false)
        }
    };
    Ok(ResultArg { _buf: buf, ptr, len, invalid })
}

impl World {
    fn gen_id(&self, u: &mut Unstructured) -> AResult<u64> {
        let ids: Vec<u64> = self.stored.keys().copied().collect();
        Ok(match u.int_in_range(0u8..=7)? {
            0 => 0,
            1 => u64::MAX,
            2 => self.max_id + 1,
            3 => u.arbitrary()?,
            _ if !ids.is_empty() => {
                let mut sorted = ids;
                sorted.sort_unstable();
                sorted[u.choose_index(sorted.len())?]
            }
            _ => self.max_id,
        })
    }

    fn pick_watch(&self, u: &mut Unstructured) -> AResult<(*mut jobq_watch, Kind)> {
        let v: (usize, Kind) = match u.int_in_range(0u8..=11)? {
            0..=6 if !self.watches.is_empty() => {
                let i = u.choose_index(self.watches.len())?;
                let w = &self.watches[i];
                (w.h as usize, if w.open { Kind::Live(i) } else { Kind::Dead })
            }
            7 => (forged(u)?, Kind::Dead),
            8 if !self.queues.is_empty() => (self.queues[u.choose_index(self.queues.len())?].h as usize, Kind::Dead),
            9 if !self.jobs.is_empty() => (self.jobs[u.choose_index(self.jobs.len())?].h as usize, Kind::Dead),
            10 => ((5 << 60) | 0xFFFF_FFFF, Kind::Dead),
            _ => (0, Kind::Null),
        };
        Ok((ptr::without_provenance_mut(v.0), v.1))
    }

    fn op_queue_config(&mut self, u: &mut Unstructured) -> AResult<()> {
        let (h, kind) = self.pick_queue(u)?;
        let name = self.gen_name(u)?;
        let (json, valid) = gen_qconfig(u)?;
        let mut errors = self.queue_errors(kind, &name);
        if valid == Some(false) {
            errors.push(E_INVALID_ARG);
        }
        let mut allowed = expect(&errors, &[OK]);
        if valid.is_none() && errors.is_empty() {
            allowed.push(E_INVALID_ARG);
        }
        allowed.extend(self.tolerated(kind));
        log!(
            "queue_config {h:?} ({kind:?}) queue={:?} json={:?}",
            name.bytes().map(String::from_utf8_lossy),
            json.bytes().map(String::from_utf8_lossy)
        );
        // SAFETY: NULL or NUL-terminated strings.
        let st = unsafe { jobq_queue_config(h, name.ptr(), json.ptr()) };
        check("jobq_queue_config", st, &allowed);
        let qname = name.bytes().unwrap_or_default().to_vec();
        match st {
            OK => {
                let text = json.utf8().expect("accepted JSON is UTF-8");
                let old = self.limits.get(&qname).copied().unwrap_or((None, None));
                self.limits.insert(qname.clone(), apply_qconfig(old, text));
                self.put_queues.insert(qname);
            }
            E_BUSY => {
                self.admin_uncertain = true;
                self.put_queues.insert(qname);
            }
            _ => {}
        }
        Ok(())
    }

    fn op_pause_resume(&mut self, u: &mut Unstructured) -> AResult<()> {
        let (h, kind) = self.pick_queue(u)?;
        let name = self.gen_name(u)?;
        let pause = u.ratio(1, 2)?;
        let mut allowed = expect(&self.queue_errors(kind, &name), &[OK]);
        allowed.extend(self.tolerated(kind));
        let call = if pause { "jobq_pause" } else { "jobq_resume" };
        log!("{call} {h:?} ({kind:?}) queue={:?}", name.bytes().map(String::from_utf8_lossy));
        // SAFETY: NULL or a NUL-terminated string.
        let st = unsafe {
            if pause {
                jobq_pause(h, name.ptr())
            } else {
                jobq_resume(h, name.ptr())
            }
        };
        check(call, st, &allowed);
        let qname = name.bytes().unwrap_or_default().to_vec();
        match st {
            OK if pause => {
                self.paused.insert(qname.clone());
                self.put_queues.insert(qname);
            }
            OK => {
                self.paused.remove(&qname);
            }
            E_BUSY => {
                self.admin_uncertain = true;
                self.put_queues.insert(qname);
            }
            _ => {}
        }
        Ok(())
    }

    fn op_schedule(&mut self, u: &mut Unstructured) -> AResult<()> {
        let (h, kind) = self.pick_queue(u)?;
        let queue = self.gen_name(u)?;
        let name = gen_sched_name(u)?;
        let (spec, spec_ok) = gen_spec(u)?;
        let payload = gen_payload(u)?;
        let opts = gen_put_opts(u)?;
        let mut errors = self.queue_errors(kind, &queue);
        if !is_sched_name(&name)
            || spec_ok == Some(false)
            || payload.invalid
            || opts.ffi_invalid
            || opts.range_invalid
            || opts.has_key
        {
            errors.push(E_INVALID_ARG);
        }
        let mut tolerated = self.tolerated(kind);
        match self.too_big(kind, payload.len) {
            Some(true) if !payload.invalid => errors.push(E_TOO_BIG),
            None => tolerated.push(E_TOO_BIG),
            _ => {}
        }
        let mut allowed = expect(&errors, &[OK]);
        if spec_ok.is_none() && !allowed.contains(&E_INVALID_ARG) {
            allowed.push(E_INVALID_ARG);
        }
        allowed.extend(tolerated);
        log!(
            "schedule {h:?} ({kind:?}) queue={:?} name={:?} spec={:?} len={} opts={} key={}",
            queue.bytes().map(String::from_utf8_lossy),
            name.bytes().map(|b| if b.len() > 16 {
                format!("<{} bytes>", b.len())
            } else {
                String::from_utf8_lossy(b).into()
            }),
            spec.bytes().map(String::from_utf8_lossy),
            payload.len,
            !opts.ptr().is_null(),
            opts.has_key
        );
        // SAFETY: NULL or NUL-terminated strings; the payload is NULL or `len` bytes.
        let st = unsafe { jobq_schedule(h, queue.ptr(), name.ptr(), spec.ptr(), payload.ptr, payload.len, opts.ptr()) };
        check("jobq_schedule", st, &allowed);
        if st == OK || st == E_BUSY {
            let qname = queue.bytes().unwrap_or_default().to_vec();
            if st == OK {
                self.schedules.insert(name.bytes().unwrap_or_default().to_vec(), (qname.clone(), payload.len));
            } else {
                self.admin_uncertain = true;
            }
            self.sched_payloads.entry(qname.clone()).or_default().push(payload.bytes().to_vec());
            self.put_queues.insert(qname);
        }
        Ok(())
    }

    fn op_unschedule(&mut self, u: &mut Unstructured) -> AResult<()> {
        let (h, kind) = self.pick_queue(u)?;
        let name = gen_sched_name(u)?;
        let mut errors: Vec<c_int> = kind.error().into_iter().collect();
        if !is_sched_name(&name) {
            errors.push(E_INVALID_ARG);
        }
        let mut allowed = expect(&errors, &[OK]);
        allowed.extend(self.tolerated(kind));
        log!("unschedule {h:?} ({kind:?}) name={:?}", name.bytes().map(|b| b.len()));
        // SAFETY: NULL or a NUL-terminated string.
        let st = unsafe { jobq_unschedule(h, name.ptr()) };
        check("jobq_unschedule", st, &allowed);
        match st {
            OK => {
                self.schedules.remove(name.bytes().unwrap_or_default());
            }
            E_BUSY => self.admin_uncertain = true,
            _ => {}
        }
        Ok(())
    }

    fn op_ack_result(&mut self, u: &mut Unstructured) -> AResult<()> {
        let (h, kind) = self.pick_job(u)?;
        let r = gen_result(u)?;
        let state = self.delivery_state(kind);
        let mut allowed = match kind {
            Kind::Live(_) if r.invalid => vec![E_INVALID_ARG],
            Kind::Live(_) if r.len > RESULT_MAX => {
                // Which of two problems is reported first is not specified.
                let mut a = vec![E_TOO_BIG];
                a.extend(state.iter().filter(|&&s| s != OK));
                a
            }
            _ => state,
        };
        if let Kind::Live(i) = kind {
            allowed.extend(self.tolerated(Kind::Live(self.jobs[i].q)));
        }
        log!("ack_result {h:?} ({kind:?}) len={} null={}", r.len, r.ptr.is_null());
        // SAFETY: any handle value; `r.ptr` is NULL or `r.len` readable bytes.
        let st = unsafe { jobq_ack_result(h, r.ptr, r.len) };
        check("jobq_ack_result", st, &allowed);
        if let Kind::Live(i) = kind {
            if st == OK || st == E_STATE {
                self.jobs[i].finished = true;
            }
            if st == OK {
                let bytes = if r.len == 0 { Vec::new() } else { r._buf[..r.len].to_vec() };
                let id = self.jobs[i].id;
                self.acked(i, id, Some(bytes));
            }
            self.check_accessors(i);
        }
        Ok(())
    }

    fn op_job_info(&mut self, u: &mut Unstructured) -> AResult<()> {
        let (h, kind) = self.pick_queue(u)?;
        let id = self.gen_id(u)?;
        let out_null = u.ratio(1, 8)?;
        let mut errors: Vec<c_int> = kind.error().into_iter().collect();
        if out_null {
            errors.push(E_INVALID_ARG);
        }
        let success = self.info_outcomes(id);
        let mut allowed = expect(&errors, success);
        allowed.extend(self.tolerated(kind));
        let mut out: *mut c_char = sentinel_ptr();
        let out_p: *mut *mut c_char = if out_null { ptr::null_mut() } else { &mut out };
        log!("job_info {h:?} ({kind:?}) id={id} out_null={out_null}");
        // SAFETY: `out_p` is NULL or a writable char*.
        let st = unsafe { jobq_job_info(h, id, out_p) };
        check("jobq_job_info", st, &allowed);
        if st != OK {
            assert!(out == sentinel_ptr(), "jobq_job_info: {} but *json_out was written", status_name(st));
            return Ok(());
        }
        assert!(out != sentinel_ptr() && !out.is_null(), "jobq_job_info: OK without a string");
        assert!(!self.strings.iter().any(|s| !s.freed && s.p == out), "jobq_job_info: a live string handed out again");
        // SAFETY: a NUL-terminated string the library just returned.
        let text = unsafe { CStr::from_ptr(out) }.to_str().expect("job_info JSON is not UTF-8").to_owned();
        self.strings.push(SSlot { p: out, freed: false });
        self.check_job_info(id, &text);
        Ok(())
    }

    /// What jobq_job_info(id) may give on a live handle with a non-NULL out.
    fn info_outcomes(&self, id: u64) -> &'static [c_int] {
        let maybe_other = (!self.anonymous.is_empty() || !self.sched_payloads.is_empty()) && id != 0;
        if self.kept.contains_key(&id) || self.maybe_gone.contains(&id) {
            &[OK, E_NOT_FOUND]
        } else if self.gone.contains(&id) {
            &[E_NOT_FOUND]
        } else if self.stored.contains_key(&id) {
            if self.workers_ran {
                &[OK, E_NOT_FOUND]
            } else {
                &[OK]
            }
        } else if maybe_other {
            &[OK, E_NOT_FOUND]
        } else {
            &[E_NOT_FOUND]
        }
    }

    fn check_job_info(&self, id: u64, text: &str) {
        let v: serde_json::Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("jobq_job_info: not JSON ({e}): {text}"));
        let o = v.as_object().unwrap_or_else(|| panic!("jobq_job_info: not an object: {text}"));
        const KEYS: [&str; 18] = [
            "id",
            "queue",
            "state",
            "priority",
            "attempts",
            "max_attempts",
            "last_error",
            "result",
            "result_b64",
            "result_len",
            "unique_key",
            "payload_len",
            "created_at",
            "updated_at",
            "run_at",
            "lease_until",
            "finished_at",
            "expires_at",
        ];
        for k in KEYS {
            assert!(o.contains_key(k), "jobq_job_info: {k} missing: {text}");
        }
        assert_eq!(o.len(), KEYS.len(), "jobq_job_info: unknown keys: {text}");
        assert_eq!(o["id"].as_u64(), Some(id), "jobq_job_info: id: {text}");
        let state = o["state"].as_str().unwrap_or_default();
        assert!(
            ["ready", "scheduled", "reserved", "dead", "done"].contains(&state),
            "jobq_job_info: state {state:?}: {text}"
        );
        let queue = o["queue"].as_str().unwrap_or_else(|| panic!("jobq_job_info: queue: {text}"));
        if let Some((q, payload)) = self.stored.get(&id) {
            assert_eq!(queue.as_bytes(), q.as_slice(), "jobq_job_info: queue of job {id}: {text}");
            assert_eq!(o["payload_len"].as_u64(), Some(payload.len() as u64), "jobq_job_info: payload_len: {text}");
        }
        for k in ["created_at", "updated_at", "run_at", "priority", "attempts", "max_attempts", "payload_len"] {
            assert!(o[k].as_i64().is_some(), "jobq_job_info: {k} is not an integer: {text}");
        }
        if let Some(&p) = self.priority.get(&id) {
            assert_eq!(
                o["priority"].as_i64(),
                Some(p as i64),
                "jobq_job_info: priority of job {id} (put with it, or set by jobq_release_priority/jobq_bury_priority): {text}"
            );
        }
        let done = state == "done";
        if done {
            assert!(
                self.kept.contains_key(&id) || self.workers_ran || self.maybe_gone.contains(&id),
                "jobq_job_info: job {id} is done, but was not acked through a keep_done_ms handle: {text}"
            );
            assert!(o["finished_at"].as_i64().is_some(), "jobq_job_info: done without finished_at: {text}");
            assert_eq!(o["expires_at"], o["run_at"], "jobq_job_info: done: run_at is expires_at: {text}");
        } else {
            assert!(!self.gone.contains(&id), "jobq_job_info: job {id} acked or cancelled, but {state}: {text}");
            assert!(o["result_b64"].is_null(), "jobq_job_info: a result before done: {text}");
        }
        let b64 = &o["result_b64"];
        assert_eq!(b64.is_null(), o["result_len"].is_null(), "jobq_job_info: result_b64 vs result_len: {text}");
        if b64.is_null() {
            assert!(o["result"].is_null(), "jobq_job_info: result without result_b64: {text}");
        }
        if let (true, Some(Some(result))) = (done, self.kept.get(&id)) {
            if !result.is_empty() || !b64.is_null() {
                assert_eq!(b64.as_str(), Some(base64(result).as_str()), "jobq_job_info: result_b64 of job {id}");
                assert_eq!(o["result_len"].as_u64(), Some(result.len() as u64), "jobq_job_info: result_len");
                let want = std::str::from_utf8(result).ok();
                assert_eq!(o["result"].as_str(), want, "jobq_job_info: result as text of job {id}");
            }
        }
        if let (true, Some(None)) = (done, self.kept.get(&id)) {
            assert!(b64.is_null(), "jobq_job_info: job {id} acked without a result has one: {text}");
        }
    }

    fn op_reserve_many(&mut self, u: &mut Unstructured) -> AResult<()> {
        let (h, kind) = self.pick_queue(u)?;
        let name = self.gen_name(u)?;
        let max: usize = match u.int_in_range(0u8..=9)? {
            0 => 0,
            1 => RESERVE_MANY_MAX,
            2 => RESERVE_MANY_MAX + 1,
            3 => usize::MAX,
            _ => u.int_in_range(1..=4)?,
        };
        let jobs_null = u.ratio(1, 10)?;
        let n_null = u.ratio(1, 10)?;
        let mut errors = self.queue_errors(kind, &name);
        if jobs_null || n_null || max == 0 || max > RESERVE_MANY_MAX {
            errors.push(E_INVALID_ARG);
        }
        let mut allowed = expect(&errors, &[OK, TIMEOUT]);
        allowed.extend(self.tolerated(kind));
        // `max` slots; for a max past the limit (refused before anything is
        // written, as the contract says) the largest array a caller could mean.
        let mut out: Vec<*mut jobq_job> = vec![sentinel_ptr(); max.clamp(1, RESERVE_MANY_MAX)];
        let mut n = SENTINEL as usize;
        let out_p = if jobs_null { ptr::null_mut() } else { out.as_mut_ptr() };
        let n_p: *mut usize = if n_null { ptr::null_mut() } else { &mut n };
        log!(
            "reserve_many {h:?} ({kind:?}) queue={:?} max={max} jobs_null={jobs_null} n_null={n_null}",
            name.bytes().map(String::from_utf8_lossy)
        );
        // SAFETY: timeout 0 never blocks; `out_p` NULL or `max` slots (see above); `n_p` NULL or writable.
        let st = unsafe { jobq_reserve_many(h, name.ptr(), max, 0, out_p, n_p) };
        check("jobq_reserve_many", st, &allowed);
        match st {
            OK => {
                assert!((1..=max).contains(&n), "jobq_reserve_many: OK with *out_n = {n} for max {max}");
                assert!(out[n..].iter().all(|&p| p == sentinel_ptr()), "jobq_reserve_many: wrote past *out_n");
                let Kind::Live(qi) = kind else { unreachable!() };
                let qname = name.bytes().unwrap_or_default().to_vec();
                let got: HashSet<usize> = out[..n].iter().map(|&p| p as usize).collect();
                assert_eq!(got.len(), n, "jobq_reserve_many: one handle twice");
                for &p in &out[..n] {
                    self.record_delivery("jobq_reserve_many", p, qi, &qname);
                }
            }
            TIMEOUT => {
                assert_eq!(n, 0, "jobq_reserve_many: TIMEOUT with *out_n = {n}");
                assert!(out.iter().all(|&p| p == sentinel_ptr()), "jobq_reserve_many: TIMEOUT but wrote jobs");
            }
            _ => {
                assert_eq!(n, SENTINEL as usize, "jobq_reserve_many: {} but *out_n written", status_name(st));
                assert!(out.iter().all(|&p| p == sentinel_ptr()), "jobq_reserve_many: error but wrote jobs");
            }
        }
        Ok(())
    }

    fn op_ack_many(&mut self, u: &mut Unstructured) -> AResult<()> {
        let k = u.int_in_range(0usize..=4)?;
        let picks: Vec<(*mut jobq_job, Kind)> = (0..k).map(|_| self.pick_job(u)).collect::<AResult<_>>()?;
        let handles: Vec<*mut jobq_job> = picks.iter().map(|p| p.0).collect();
        let (jobs_p, n): (*const *mut jobq_job, usize) = match u.int_in_range(0u8..=9)? {
            0 => (ptr::null(), u.int_in_range(1..=3)?),
            1 => (ptr::null(), usize::MAX),
            2 => (ptr::null(), 0),
            _ => (if handles.is_empty() { ptr::null() } else { handles.as_ptr() }, handles.len()),
        };
        let statuses_null = u.ratio(1, 3)?;
        const UNSET: c_int = 0x5EE5_5EE5;
        let mut statuses = vec![UNSET; k.max(1)];
        let statuses_p = if statuses_null { ptr::null_mut() } else { statuses.as_mut_ptr() };
        let real = !jobs_p.is_null() && n > 0;
        // Expected: the first bad handle's error; else another handle's jobs:
        // INVALID_ARG; else per job: STATE (finished, gone, twice) or OK/STATE.
        let mut whole: Option<Vec<c_int>> = None;
        let mut each: Vec<Vec<c_int>> = Vec::new();
        if n == 0 {
            whole = Some(vec![OK]);
        } else if jobs_p.is_null() {
            whole = Some(vec![E_INVALID_ARG]);
        } else if let Some(e) = picks.iter().find_map(|p| p.1.error()) {
            whole = Some(vec![e]);
        } else {
            let qs: BTreeSet<usize> = picks
                .iter()
                .map(|p| match p.1 {
                    Kind::Live(i) => self.jobs[i].q,
                    _ => unreachable!(),
                })
                .collect();
            let q0 = *qs.iter().next().expect("n > 0");
            if qs.len() > 1 {
                whole = Some(vec![E_INVALID_ARG]);
            } else if !self.queues[q0].open {
                whole = Some(vec![E_SHUTDOWN, E_STATE]);
            } else {
                let mut seen = HashSet::new();
                for p in &picks {
                    let Kind::Live(i) = p.1 else { unreachable!() };
                    let first = seen.insert(i);
                    each.push(if !first { vec![E_STATE] } else { self.delivery_state(p.1) });
                }
            }
        }
        let mut allowed = match &whole {
            Some(w) => w.clone(),
            None if each.iter().any(|e| e == &vec![E_STATE]) => vec![E_STATE],
            None => vec![OK, E_STATE],
        };
        if let Some(Kind::Live(i)) = picks.first().map(|p| p.1) {
            if real {
                allowed.extend(self.tolerated(Kind::Live(self.jobs[i].q)));
            }
        }
        log!(
            "ack_many n={n} jobs_null={} kinds={:?} statuses_null={statuses_null}",
            jobs_p.is_null(),
            picks.iter().map(|p| p.1).collect::<Vec<_>>()
        );
        // SAFETY: `jobs_p` is NULL or `n` readable handles; `statuses_p` NULL or k >= n slots when real.
        let st = unsafe { jobq_ack_many(jobs_p, n, if real { statuses_p } else { ptr::null_mut() }) };
        check("jobq_ack_many", st, &allowed);
        let per_job = whole.is_none() && (st == OK || st == E_STATE);
        if statuses_null || !per_job {
            assert!(
                statuses.iter().all(|&s| s == UNSET),
                "jobq_ack_many: {} but out_statuses written",
                status_name(st)
            );
        } else {
            for (x, e) in each.iter().enumerate() {
                assert!(
                    e.contains(&statuses[x]),
                    "jobq_ack_many: jobs[{x}] status {} not in {:?}",
                    statuses[x],
                    names(e)
                );
            }
            let all_ok = statuses[..n].iter().all(|&s| s == OK);
            assert_eq!(all_ok, st == OK, "jobq_ack_many: {} with statuses {:?}", status_name(st), &statuses[..n]);
        }
        if per_job {
            for (x, p) in picks.iter().enumerate() {
                let Kind::Live(i) = p.1 else { unreachable!() };
                self.jobs[i].finished = true;
                let acked = if statuses_null { st == OK } else { statuses[x] == OK };
                if acked {
                    let id = self.jobs[i].id;
                    self.acked(i, id, None);
                } else if st == E_STATE && statuses_null && each[x].contains(&OK) {
                    // Whether this one was acked is unknown.
                    self.maybe_gone.insert(self.jobs[i].id);
                }
            }
        }
        for i in 0..self.jobs.len() {
            if !self.jobs[i].freed {
                self.check_accessors(i);
            }
        }
        Ok(())
    }

    fn op_ack_reserve(&mut self, u: &mut Unstructured) -> AResult<()> {
        let (h, kind) = self.pick_job(u)?;
        let name = self.gen_name(u)?;
        let out_null = u.ratio(1, 10)?;
        let mut allowed = match kind {
            Kind::Live(i) if out_null || !name.is_queue_name() => {
                // A closed handle's check may come before the name's.
                if self.queues[self.jobs[i].q].open {
                    vec![E_INVALID_ARG]
                } else {
                    vec![E_INVALID_ARG, E_SHUTDOWN]
                }
            }
            Kind::Live(_) => {
                let s = self.delivery_state(kind);
                if s.contains(&OK) {
                    vec![OK, TIMEOUT, E_STATE]
                } else {
                    s
                }
            }
            k => vec![k.error().unwrap_or(OK)],
        };
        if let Kind::Live(i) = kind {
            allowed.extend(self.tolerated(Kind::Live(self.jobs[i].q)));
        }
        let mut out: *mut jobq_job = sentinel_ptr();
        let out_p: *mut *mut jobq_job = if out_null { ptr::null_mut() } else { &mut out };
        log!("ack_reserve {h:?} ({kind:?}) queue={:?} out_null={out_null}", name.bytes().map(String::from_utf8_lossy));
        // SAFETY: any handle value; timeout 0 never blocks; `out_p` NULL or writable.
        let st = unsafe { jobq_ack_reserve(h, name.ptr(), 0, out_p) };
        check("jobq_ack_reserve", st, &allowed);
        let Kind::Live(i) = kind else {
            assert!(out == sentinel_ptr(), "jobq_ack_reserve: error but *out_next written");
            return Ok(());
        };
        match st {
            OK | TIMEOUT => {
                self.jobs[i].finished = true;
                let id = self.jobs[i].id;
                self.acked(i, id, None);
                if st == OK {
                    let qi = self.jobs[i].q;
                    self.record_delivery("jobq_ack_reserve", out, qi, name.bytes().unwrap_or_default());
                } else {
                    assert!(out.is_null(), "jobq_ack_reserve: TIMEOUT but *out_next is not NULL");
                }
            }
            _ => {
                if st == E_STATE {
                    self.jobs[i].finished = true;
                }
                assert!(out == sentinel_ptr(), "jobq_ack_reserve: {} but *out_next written", status_name(st));
            }
        }
        self.check_accessors(i);
        Ok(())
    }

    fn op_watch(&mut self, u: &mut Unstructured) -> AResult<()> {
        match u.int_in_range(0u8..=3)? {
            0 => {
                let (h, kind) = self.pick_queue(u)?;
                let name = self.gen_name(u)?;
                let out_null = u.ratio(1, 10)?;
                let mut errors = self.queue_errors(kind, &name);
                if out_null {
                    errors.push(E_INVALID_ARG);
                }
                let mut allowed = expect(&errors, &[OK]);
                allowed.extend(self.tolerated(kind));
                if allowed.contains(&OK) && self.watches.iter().filter(|w| w.open).count() >= MAX_WATCHES {
                    return Ok(());
                }
                let mut out: *mut jobq_watch = sentinel_ptr();
                let out_p: *mut *mut jobq_watch = if out_null { ptr::null_mut() } else { &mut out };
                log!(
                    "watch_open {h:?} ({kind:?}) queue={:?} out_null={out_null}",
                    name.bytes().map(String::from_utf8_lossy)
                );
                // SAFETY: NULL or a NUL-terminated string; `out_p` NULL or writable.
                let st = unsafe { jobq_watch_open(h, name.ptr(), out_p) };
                check("jobq_watch_open", st, &allowed);
                if st != OK {
                    assert!(out == sentinel_ptr(), "jobq_watch_open: {} but *out written", status_name(st));
                    return Ok(());
                }
                assert!(out != sentinel_ptr() && !out.is_null(), "jobq_watch_open: OK without a handle");
                let Kind::Live(qi) = kind else { unreachable!() };
                // SAFETY: a handle just returned.
                assert!(unsafe { jobq_watch_fd(out) } >= 0, "jobq_watch_fd of a new watch");
                self.watches.push(VSlot { h: out, q: qi, open: true });
            }
            1 => {
                let (h, kind) = self.pick_watch(u)?;
                // SAFETY: any handle value is allowed.
                let fd = unsafe { jobq_watch_fd(h) };
                log!("watch_fd {h:?} ({kind:?}) -> {fd}");
                match kind {
                    Kind::Live(_) => assert!(fd >= 0, "jobq_watch_fd: {fd} for a live watch"),
                    _ => assert_eq!(fd, -1, "jobq_watch_fd: {fd} for a dead/NULL handle"),
                }
            }
            2 => {
                let (h, kind) = self.pick_watch(u)?;
                let out_null = u.ratio(1, 4)?;
                let mut allowed = vec![kind.error().unwrap_or(OK)];
                if let Kind::Live(i) = kind {
                    allowed.extend(self.tolerated(Kind::Live(self.watches[i].q)));
                }
                let mut due: i64 = SENTINEL as i64;
                let due_p: *mut i64 = if out_null { ptr::null_mut() } else { &mut due };
                log!("watch_consume {h:?} ({kind:?}) out_null={out_null}");
                // SAFETY: any handle value; `due_p` NULL or writable.
                let st = unsafe { jobq_watch_consume(h, due_p) };
                check("jobq_watch_consume", st, &allowed);
                if st == OK && !out_null {
                    assert!(due >= -1 && due != SENTINEL as i64, "jobq_watch_consume: next_due_ms {due}");
                } else {
                    assert_eq!(due, SENTINEL as i64, "jobq_watch_consume: {} but wrote *out", status_name(st));
                }
            }
            _ => {
                let (h, kind) = self.pick_watch(u)?;
                // NULL is a documented no-op here.
                let allowed = if kind == Kind::Null { vec![OK] } else { vec![kind.error().unwrap_or(OK)] };
                log!("watch_close {h:?} ({kind:?})");
                // SAFETY: any handle value is allowed.
                let st = unsafe { jobq_watch_close(h) };
                check("jobq_watch_close", st, &allowed);
                if let (OK, Kind::Live(i)) = (st, kind) {
                    self.watches[i].open = false;
                    // SAFETY: a closed handle: -1, no dereference.
                    assert_eq!(unsafe { jobq_watch_fd(h) }, -1, "jobq_watch_fd of a closed watch");
                }
            }
        }
        Ok(())
    }
}

// ------------------------------------------- the several-queues calls' operations

/// A priority for jobq_release_priority / jobq_bury_priority.
fn gen_priority(u: &mut Unstructured) -> AResult<i32> {
    Ok(match u.int_in_range(0u8..=6)? {
        0 => 0,
        1 => -5,
        2 => 7,
        3 => i32::MIN,
        4 => i32::MAX,
        _ => u.arbitrary()?,
    })
}

/// A jobq_peek state string and the state it names (None: invalid).
fn gen_peek_state(u: &mut Unstructured) -> AResult<(CArg, Option<&'static str>)> {
    const GOOD: [&str; 3] = ["ready", "scheduled", "dead"];
    const BAD: [&[u8]; 10] =
        [b"reserved", b"done", b"", b"READY", b"ready ", b" dead", b"ready\xff", b"\xc3(", b"schedule", b"deadx"];
    Ok(match u.int_in_range(0u8..=9)? {
        0..=5 => {
            let s = GOOD[u.choose_index(GOOD.len())?];
            (CArg::new(s.as_bytes()), Some(s))
        }
        6 | 7 => (CArg::new(BAD[u.choose_index(BAD.len())?]), None),
        8 => (CArg::null(), None),
        _ => {
            let b = fuzz_bytes(u, 10)?;
            let c = CArg::new(&b);
            let state = GOOD.iter().copied().find(|g| c.bytes() == Some(g.as_bytes()));
            (c, state)
        }
    })
}

impl World {
    /// Whether any job of queue `q` may exist (put, or put by a schedule).
    fn queue_may_have_jobs(&self, q: &[u8]) -> bool {
        self.stored.values().any(|(sq, _)| sq.as_slice() == q)
            || self.anonymous.iter().any(|(aq, _)| aq.as_slice() == q)
            || self.sched_payloads.contains_key(q)
    }

    fn workers_running(&self) -> bool {
        self.workers.iter().any(|w| w.running)
    }

    /// Reads job `id` with jobq_job_info through an open handle of the store
    /// (any: they share the file) and checks it against the model: the
    /// status, and the job's JSON on OK (None: no handle is open).
    fn probe(&mut self, id: u64) -> Option<(c_int, Option<serde_json::Value>)> {
        let qi = (0..self.queues.len()).find(|&i| self.queues[i].open)?;
        let h = self.queues[qi].h;
        let mut allowed = self.info_outcomes(id).to_vec();
        allowed.extend(self.tolerated(Kind::Live(qi)));
        let mut out: *mut c_char = sentinel_ptr();
        log!("job_info (probe) {h:?} (Live({qi})) id={id}");
        // SAFETY: a handle this program holds; `out` is a writable char*.
        let st = unsafe { jobq_job_info(h, id, &mut out) };
        check("jobq_job_info (probe)", st, &allowed);
        if st != OK {
            assert!(out == sentinel_ptr(), "jobq_job_info: {} but *json_out was written", status_name(st));
            return Some((st, None));
        }
        assert!(out != sentinel_ptr() && !out.is_null(), "jobq_job_info: OK without a string");
        // SAFETY: a NUL-terminated string the library just returned.
        let text = unsafe { CStr::from_ptr(out) }.to_str().expect("job_info JSON is not UTF-8").to_owned();
        // SAFETY: a string the library returned, freed once.
        unsafe { jobq_string_free(out) };
        self.check_job_info(id, &text);
        Some((OK, Some(serde_json::from_str(&text).expect("checked above"))))
    }

    fn op_reserve_any(&mut self, u: &mut Unstructured) -> AResult<()> {
        let (h, kind) = self.pick_queue(u)?;
        let k = u.int_in_range(0usize..=5)?;
        let mut names: Vec<CArg> = (0..k).map(|_| self.gen_name(u)).collect::<AResult<_>>()?;
        // The array and its length: mostly the names as made; else NULL (with
        // any n), n = 0, or the most names allowed (and one more).
        let shape = u.int_in_range(0u8..=11)?;
        let (array_null, n) = match shape {
            0 => (true, u.int_in_range(1..=3)?),
            1 => (true, usize::MAX - u.int_in_range(0..=1)?),
            2 => (true, 0),
            3 => (false, 0),
            4 | 5 => {
                // RESERVE_ANY_MAX (or one more) names: the fixed ones, many
                // times over, and distinct made-up ones.
                let n = RESERVE_ANY_MAX + u.int_in_range(0..=1)?;
                let fill = u.int_in_range(0u8..=2)?;
                while names.len() < n {
                    let i = names.len();
                    names.push(match fill {
                        0 => CArg::new(if i % 2 == 0 { b"a" } else { b"b" }),
                        1 => CArg::new(format!("q{i}").as_bytes()),
                        _ => CArg::new(&[b'x'; MAX_QUEUE_NAME][..MAX_QUEUE_NAME - i % 2]),
                    });
                }
                (false, n)
            }
            _ => (false, names.len()),
        };
        let ptrs: Vec<*const c_char> = names.iter().map(|n| n.ptr()).collect();
        let array: *const *const c_char = if array_null { ptr::null() } else { ptrs.as_ptr() };
        let out_null = u.ratio(1, 10)?;
        let mut errors: Vec<c_int> = kind.error().into_iter().collect();
        if n == 0 || n > RESERVE_ANY_MAX || array_null || out_null {
            errors.push(E_INVALID_ARG);
        }
        if !array_null && names[..n].iter().any(|n| !n.is_queue_name()) {
            errors.push(E_INVALID_ARG);
        }
        let mut allowed = expect(&errors, &[OK, TIMEOUT]);
        allowed.extend(self.tolerated(kind));
        let mut out: *mut jobq_job = sentinel_ptr();
        let out_p: *mut *mut jobq_job = if out_null { ptr::null_mut() } else { &mut out };
        log!(
            "reserve_any {h:?} ({kind:?}) n={n} array_null={array_null} queues={:?} out_null={out_null}",
            names
                .iter()
                .take(if array_null { 0 } else { n.min(8) })
                .map(|n| n.bytes().map(|b| if b.len() > 16 {
                    format!("<{} bytes>", b.len())
                } else {
                    String::from_utf8_lossy(b).into()
                }))
                .collect::<Vec<_>>()
        );
        // SAFETY: timeout 0 never blocks; `array` is NULL or has n readable
        // entries (NULL or NUL-terminated); `out_p` is NULL or writable.
        let st = unsafe { jobq_reserve_any(h, array, n, 0, out_p) };
        check("jobq_reserve_any", st, &allowed);
        if st != OK {
            assert!(out == sentinel_ptr(), "jobq_reserve_any: {} but *out was written", status_name(st));
            return Ok(());
        }
        assert!(out != sentinel_ptr() && !out.is_null(), "jobq_reserve_any: OK without a job");
        let Kind::Live(qi) = kind else { unreachable!() };
        // SAFETY: a handle just returned by the library.
        let q = unsafe { jobq_job_queue(out) };
        assert!(!q.is_null(), "jobq_reserve_any: jobq_job_queue of the job is NULL");
        // SAFETY: non-NULL, NUL-terminated, valid until the handle is freed.
        let qname = unsafe { CStr::from_ptr(q) }.to_bytes().to_vec();
        assert!(
            names[..n].iter().any(|n| n.bytes() == Some(qname.as_slice())),
            "jobq_reserve_any: delivered a job of queue {qname:?}, not one of the {n} named"
        );
        if !self.admin_uncertain {
            assert!(!self.paused.contains(&qname), "jobq_reserve_any: delivered a job of paused queue {qname:?}");
        }
        self.record_delivery("jobq_reserve_any", out, qi, &qname);
        Ok(())
    }

    /// What a finishing call on `kind` with these arguments may give.
    fn finish_allowed(&self, kind: Kind, args_invalid: bool) -> Vec<c_int> {
        let state = self.delivery_state(kind);
        let mut allowed = if args_invalid {
            let mut a = vec![E_INVALID_ARG];
            // Which of two problems is reported first is not specified.
            a.extend(state.iter().filter(|&&s| s != OK));
            a
        } else {
            state
        };
        if let Kind::Live(i) = kind {
            allowed.extend(self.tolerated(Kind::Live(self.jobs[i].q)));
        }
        allowed
    }

    /// After jobq_release_priority / jobq_bury_priority on job slot `i`: the
    /// model's priority moves only on OK; jobq_job_info shows it (and, on OK,
    /// a state in `states` while no worker runs).
    fn after_priority_finish(&mut self, kind: Kind, st: c_int, priority: i32, states: &[&str]) {
        let Kind::Live(i) = kind else { return };
        if st == E_STATE || st == OK {
            self.jobs[i].finished = true;
        }
        let id = self.jobs[i].id;
        if st == OK {
            self.priority.insert(id, priority);
        }
        self.check_accessors(i);
        let workers = self.workers_running();
        if let Some((_, Some(info))) = self.probe(id) {
            let state = info["state"].as_str().unwrap_or_default().to_owned();
            if st == OK && !workers {
                assert!(states.contains(&state.as_str()), "job {id}: state {state:?} after the call, not {states:?}");
            }
        }
    }

    fn op_release_priority(&mut self, u: &mut Unstructured) -> AResult<()> {
        let (h, kind) = self.pick_job(u)?;
        let ms = gen_ms(u, 30)?;
        let priority = gen_priority(u)?;
        let allowed = self.finish_allowed(kind, ms > MAX_DELAY_MS);
        log!("release_priority {h:?} ({kind:?}) ms={ms} priority={priority}");
        // SAFETY: any handle value is allowed.
        let st = unsafe { jobq_release_priority(h, ms, priority) };
        check("jobq_release_priority", st, &allowed);
        // Released with no delay: ready; with one: scheduled, or ready once it passed.
        let states: &[&str] = if ms == 0 { &["ready"] } else { &["scheduled", "ready"] };
        self.after_priority_finish(kind, st, priority, states);
        Ok(())
    }

    fn op_bury_priority(&mut self, u: &mut Unstructured) -> AResult<()> {
        let (h, kind) = self.pick_job(u)?;
        let reason = gen_reason(u)?;
        let priority = gen_priority(u)?;
        let invalid = reason.bytes().is_some() && reason.utf8().is_none();
        let allowed = self.finish_allowed(kind, invalid);
        log!(
            "bury_priority {h:?} ({kind:?}) reason={:?} priority={priority}",
            reason.bytes().map(String::from_utf8_lossy)
        );
        // SAFETY: any handle value is allowed; `reason` is NULL or NUL-terminated.
        let st = unsafe { jobq_bury_priority(h, reason.ptr(), priority) };
        check("jobq_bury_priority", st, &allowed);
        self.after_priority_finish(kind, st, priority, &["dead"]);
        Ok(())
    }

    fn op_kick_job(&mut self, u: &mut Unstructured) -> AResult<()> {
        let (h, kind) = self.pick_queue(u)?;
        let id = self.gen_id(u)?;
        let allowed = match kind {
            Kind::Live(_) => {
                let maybe_anonymous = (!self.anonymous.is_empty() || !self.sched_payloads.is_empty())
                    && id != 0
                    && !self.stored.contains_key(&id);
                if self.kept.contains_key(&id) {
                    // Done (not kickable), or past its keep time.
                    vec![E_STATE, E_NOT_FOUND]
                } else if self.maybe_gone.contains(&id) {
                    vec![OK, E_STATE, E_NOT_FOUND]
                } else if self.gone.contains(&id) || (!self.stored.contains_key(&id) && !maybe_anonymous) {
                    vec![E_NOT_FOUND]
                } else if self.workers_ran || maybe_anonymous {
                    vec![OK, E_STATE, E_NOT_FOUND]
                } else {
                    vec![OK, E_STATE]
                }
            }
            k => vec![k.error().unwrap_or(OK)],
        };
        let allowed = [allowed, self.tolerated(kind)].concat();
        log!("kick_job {h:?} ({kind:?}) id={id}");
        // SAFETY: any handle value is allowed.
        let st = unsafe { jobq_kick_job(h, id) };
        check("jobq_kick_job", st, &allowed);
        if st == OK {
            // It exists, and was not acked.
            self.maybe_gone.remove(&id);
            let workers = self.workers_running();
            match self.probe(id) {
                Some((_, Some(info))) => {
                    let state = info["state"].as_str().unwrap_or_default();
                    // A worker may have taken it since.
                    if !workers {
                        assert_eq!(state, "ready", "jobq_kick_job: job {id} is {state} after the kick");
                    }
                }
                Some((E_NOT_FOUND, None)) => {
                    assert!(self.workers_ran, "jobq_kick_job: job {id} kicked, then jobq_job_info does not find it")
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn op_peek(&mut self, u: &mut Unstructured) -> AResult<()> {
        let (h, kind) = self.pick_queue(u)?;
        let name = self.gen_name(u)?;
        let (state, which) = gen_peek_state(u)?;
        let out_null = u.ratio(1, 10)?;
        let mut errors = self.queue_errors(kind, &name);
        if which.is_none() || out_null {
            errors.push(E_INVALID_ARG);
        }
        let qname = name.bytes().unwrap_or_default().to_vec();
        // A queue that never held a job has none in any state.
        let success: &[c_int] = if self.queue_may_have_jobs(&qname) { &[OK, E_NOT_FOUND] } else { &[E_NOT_FOUND] };
        let mut allowed = expect(&errors, success);
        allowed.extend(self.tolerated(kind));
        let mut out = SENTINEL;
        let out_p: *mut u64 = if out_null { ptr::null_mut() } else { &mut out };
        log!(
            "peek {h:?} ({kind:?}) queue={:?} state={:?} out_null={out_null}",
            name.bytes().map(String::from_utf8_lossy),
            state.bytes().map(String::from_utf8_lossy)
        );
        // SAFETY: NULL or NUL-terminated strings; `out_p` NULL or a writable uint64_t.
        let st = unsafe { jobq_peek(h, name.ptr(), state.ptr(), out_p) };
        check("jobq_peek", st, &allowed);
        if st != OK {
            assert_eq!(out, SENTINEL, "jobq_peek: {} but *out_id was written", status_name(st));
            return Ok(());
        }
        let which = which.expect("OK only for a valid state");
        let id = out;
        assert!(id != SENTINEL && id != 0, "jobq_peek: OK with id {id}");
        assert!(!self.gone.contains(&id), "jobq_peek: job {id} is {which}, but it was acked or cancelled");
        match self.stored.get(&id) {
            Some((q, _)) => assert_eq!(q, &qname, "jobq_peek: job {id} of queue {q:?} found in queue {qname:?}"),
            None => assert!(
                !self.anonymous.is_empty() || !self.sched_payloads.is_empty(),
                "jobq_peek: job {id} was never put"
            ),
        }
        let workers = self.workers_running();
        if let Some((_, Some(info))) = self.probe(id) {
            let got = info["state"].as_str().unwrap_or_default();
            assert_eq!(
                info["queue"].as_str().map(str::as_bytes),
                Some(qname.as_slice()),
                "jobq_peek: queue of job {id}"
            );
            // Between the two calls a delay may pass, and a worker may take a
            // ready job; a dead job stays dead.
            let want: &[&str] = match which {
                "ready" => &["ready"],
                "scheduled" => &["scheduled", "ready"],
                _ => &["dead"],
            };
            if !workers || which == "dead" {
                assert!(want.contains(&got), "jobq_peek: job {id} found {which}, jobq_job_info says {got}");
            }
        }
        Ok(())
    }
}

/// An init_sized call on `size` bytes: nothing written below 4 bytes; else the
/// leading u32 is `size`, then the defaults after struct_size (`defaults_after`,
/// zeros beyond) up to `size`, and nothing past `size`. `skip`: padding bytes.
fn check_init(call: &str, buf: &[u8], size: usize, defaults_after: &[u8], skip: std::ops::Range<usize>) {
    if size < 4 {
        assert!(buf.iter().all(|&b| b == 0xAB), "{call}(size {size}) wrote to the struct");
        return;
    }
    assert_eq!(u32::from_ne_bytes(buf[..4].try_into().unwrap()) as usize, size, "{call}: struct_size");
    for (i, &b) in buf.iter().enumerate().skip(4) {
        if skip.contains(&i) && i < size {
            continue;
        }
        let want = if i >= size { 0xAB } else { defaults_after.get(i - 4).copied().unwrap_or(0) };
        assert_eq!(b, want, "{call}(size {size}): byte {i}");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let mut world = World::new();
    for _ in 0..MAX_OPS {
        if u.is_empty() || world.step(&mut u).is_err() {
            break;
        }
    }
    world.cleanup();
});
