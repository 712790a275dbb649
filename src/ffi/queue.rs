//! `jobq`: an open queue store, a file or a PostgreSQL schema (Rust:
//! `Queue`). Thread-safe: share one handle between all threads of a
//! process. Owned by the caller from `jobq_open` until `jobq_close`.

use std::collections::HashSet;
use std::ffi::{c_char, c_void, CString};
use std::mem::size_of;
use std::ptr;
use std::sync::{Arc, Mutex, PoisonError};

use super::handle::Registry;
use super::job::{jobq_job, register_job};
use super::jobq_status::{self, *};

use super::{boundary, boundary_or, c_str, c_str_opt, timeout_of};
use crate::config::Config;
use crate::error::Error;
use crate::queue::{PutOptions, Queue};
use crate::store::{JobState, Put};

/// An open queue file. Safe to share between threads.
pub struct jobq {
    _opaque: [u8; 0],
}

pub(crate) static QUEUES: Registry<Queue> = Registry::new(1, "jobq");

/// See `fork_prepare` in mod.rs: the queue registry and the string set.
pub(crate) fn fork_lock_registries() {
    QUEUES.fork_lock();
    let strings = STRINGS.lock().unwrap_or_else(PoisonError::into_inner);
    super::handle::hold_for_fork(Box::new(strings));
}

/// Options of one put. Initialise with `jobq_put_opts_init(&opts)` (a macro
/// that passes the struct's size from your compile time), then set fields.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct jobq_put_opts {
    /// Set by jobq_put_opts_init; lets the struct grow without breaking the ABI.
    pub struct_size: u32,
    /// Smaller runs first; ties run in put order (FIFO); default 0.
    pub priority: i32,
    /// Not delivered before now + delay_ms; default 0.
    pub delay_ms: u64,
    /// 0 = the queue file's max_attempts.
    pub max_attempts: u32,
    /// 0 = the queue file's lease_ms.
    pub lease_ms: u64,
    /// NULL = none; see JOBQ_DUPLICATE. Copied by jobq_put.
    pub unique_key: *const c_char,
}

/// The size of the first shipped jobq_put_opts: the smallest accepted.
const PUT_OPTS_V1_SIZE: usize = size_of::<jobq_put_opts>();

const PUT_OPTS_DEFAULT: jobq_put_opts = jobq_put_opts {
    struct_size: PUT_OPTS_V1_SIZE as u32,
    priority: 0,
    delay_ms: 0,
    max_attempts: 0,
    lease_ms: 0,
    unique_key: ptr::null(),
};

/// One item of jobq_put_batch: `len` bytes at `data` (NULL allowed when len is 0).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct jobq_payload {
    pub data: *const c_void,
    pub len: usize,
}

/// Writes the defaults into `*opts`, which the caller says is `size` bytes
/// (use the jobq_put_opts_init macro, which passes `sizeof *(opts)`). Bytes
/// past the fields this library knows are zeroed. NULL or size < 4: no-op.
#[no_mangle]
pub extern "C" fn jobq_put_opts_init_sized(opts: *mut jobq_put_opts, size: usize) {
    boundary_or((), || init_sized(opts, size, &PUT_OPTS_DEFAULT))
}

/// Sets the defaults of the first shipped layout. For callers that cannot use
/// the macro (dlsym); C code gets the jobq_put_opts_init macro instead.
#[no_mangle]
pub extern "C" fn jobq_put_opts_init(opts: *mut jobq_put_opts) {
    jobq_put_opts_init_sized(opts, PUT_OPTS_V1_SIZE)
}

/// Shared by the options structs: zero the caller's `size` bytes, copy in the
/// known defaults that fit, and record `size` in the leading `struct_size`.
pub(crate) fn init_sized<T: Copy>(opts: *mut T, size: usize, defaults: &T) {
    if opts.is_null() || size < size_of::<u32>() || size > u32::MAX as usize {
        return;
    }
    let known = size.min(size_of::<T>());
    // SAFETY: the caller says `opts` points to `size` writable bytes (the init
    // macro passes sizeof of its own struct); we write `size` bytes, then
    // `known <= size` bytes, then the leading u32 (size >= 4), all within that.
    unsafe {
        ptr::write_bytes(opts.cast::<u8>(), 0, size);
        ptr::copy_nonoverlapping((defaults as *const T).cast::<u8>(), opts.cast::<u8>(), known);
        ptr::write_unaligned(opts.cast::<u32>(), size as u32);
    }
}

/// Reads the part of a caller's options struct that lies within its
/// `struct_size`; the rest keeps `defaults`. Too small a struct_size is an error.
pub(crate) fn read_sized<T: Copy>(opts: *const T, defaults: &T, min_size: usize, what: &str) -> Result<T, Error> {
    let mut out = *defaults;
    if opts.is_null() {
        return Ok(out);
    }
    // SAFETY: non-NULL; every options struct starts with a u32 struct_size.
    let size = unsafe { ptr::read_unaligned(opts.cast::<u32>()) } as usize;
    if size < min_size {
        return Err(Error::InvalidArg(format!(
            "{what}.struct_size is {size}, less than {min_size}: initialise it with {what}_init()"
        )));
    }
    // SAFETY: the caller's struct is `size` bytes (set by the init macro); we
    // read at most that many, and at most the size of our own layout.
    unsafe { ptr::copy_nonoverlapping(opts.cast::<u8>(), (&mut out as *mut T).cast::<u8>(), size.min(size_of::<T>())) };
    Ok(out)
}

fn put_options(opts: *const jobq_put_opts) -> Result<PutOptions, Error> {
    let o = read_sized(opts, &PUT_OPTS_DEFAULT, PUT_OPTS_V1_SIZE, "jobq_put_opts")?;
    Ok(PutOptions {
        priority: o.priority,
        delay_ms: o.delay_ms,
        max_attempts: (o.max_attempts != 0).then_some(o.max_attempts),
        lease_ms: (o.lease_ms != 0).then_some(o.lease_ms),
        unique_key: c_str_opt(o.unique_key, "unique_key")?.map(str::to_owned),
    })
}

/// `len` bytes at `data` as a slice; NULL is allowed only with length 0.
pub(crate) fn bytes<'a>(data: *const c_void, len: usize, what: &str) -> Result<&'a [u8], Error> {
    if len == 0 {
        return Ok(&[]);
    }
    if data.is_null() {
        return Err(Error::InvalidArg(format!("{what} is NULL but its length is {len}")));
    }
    if len > isize::MAX as usize {
        return Err(Error::InvalidArg(format!("{what} length {len} is impossibly large")));
    }
    // SAFETY: non-NULL, len <= isize::MAX, and the C contract says `data`
    // points to `len` readable bytes that stay valid for this call.
    Ok(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
}

/// Opens (creating with mode 0600 if missing) the queue file at `path`, or,
/// when `path` starts with `postgresql://` or `postgres://`, the queue store
/// in that PostgreSQL database (`postgresql://[user[:password]@]host[:port]/db
/// [?schema=NAME&...]`: the store is the jobq tables of schema NAME, default
/// `jobq`, created on first open; other parameters go to the connection as
/// libpq reads them). Every function means the same on both. Server
/// unreachable, authentication failed, connection lost: JOBQ_E_IO; a schema
/// holding tables that are not jobq's: JOBQ_E_CORRUPT; a newer store:
/// JOBQ_E_VERSION. `config_json`: NULL for defaults, or a JSON object (see
/// the README for keys); an unknown key, or a key of the other backend
/// (`file_mode` is for files; `pool_size`, `wakeups` for PostgreSQL), is
/// JOBQ_E_INVALID_ARG naming it. *out is written on success only. The
/// handle belongs to this process: after fork(), the child must open its own.
#[no_mangle]
pub extern "C" fn jobq_open(path: *const c_char, config_json: *const c_char, out: *mut *mut jobq) -> jobq_status {
    boundary(|| {
        if out.is_null() {
            return Err(Error::InvalidArg("out is NULL".into()));
        }
        let path = c_str(path, "path")?;
        let config = Config::from_json(c_str_opt(config_json, "config_json")?)?;
        super::install_fork_handlers();
        let queue = Queue::open(path, config)?;
        let handle = QUEUES.insert(Arc::new(queue));
        // SAFETY: `out` is non-NULL and, per the contract, points to a writable jobq*.
        unsafe { out.write(handle) };
        Ok(JOBQ_OK)
    })
}

/// Closes the queue: waiting reserves return JOBQ_E_SHUTDOWN and every thread
/// the library started for it is joined. JOBQ_E_BUSY (and nothing closed)
/// while workers run. A second close gives JOBQ_E_HANDLE.
#[no_mangle]
pub extern "C" fn jobq_close(q: *mut jobq) -> jobq_status {
    boundary(|| {
        let queue = QUEUES.get(q)?;
        queue.close()?;
        let _ = QUEUES.remove(q);
        Ok(JOBQ_OK)
    })
}

fn write_id(out_id: *mut u64, id: u64) {
    if !out_id.is_null() {
        // SAFETY: non-NULL, and the contract says it points to a writable uint64_t.
        unsafe { out_id.write(id) };
    }
}

/// Stores a job in `queue` (created on first use). Returns once the job is
/// stored with the file's durability. JOBQ_DUPLICATE: a live job with the
/// same unique_key exists, and *out_id is its id. `opts` NULL = defaults;
/// `payload` may be NULL when `len` is 0; `out_id` is nullable.
#[no_mangle]
pub extern "C" fn jobq_put(
    q: *mut jobq,
    queue: *const c_char,
    payload: *const c_void,
    len: usize,
    opts: *const jobq_put_opts,
    out_id: *mut u64,
) -> jobq_status {
    boundary(|| {
        let handle = QUEUES.get(q)?;
        let name = c_str(queue, "queue")?;
        let payload = bytes(payload, len, "payload")?;
        let opts = put_options(opts)?;
        let put = handle.put(name, payload, &opts)?;
        write_id(out_id, put.id());
        Ok(match put {
            Put::Stored(_) => JOBQ_OK,
            Put::Duplicate(_) => JOBQ_DUPLICATE,
        })
    })
}

/// Stores `n` jobs in one transaction, or none. `out_ids`, if not NULL, has
/// `n` slots and receives the ids in order. A unique_key is accepted only
/// with n == 1 (it names one job).
#[no_mangle]
pub extern "C" fn jobq_put_batch(
    q: *mut jobq,
    queue: *const c_char,
    items: *const jobq_payload,
    n: usize,
    opts: *const jobq_put_opts,
    out_ids: *mut u64,
) -> jobq_status {
    boundary(|| {
        let handle = QUEUES.get(q)?;
        let name = c_str(queue, "queue")?;
        if n > 0 && items.is_null() {
            return Err(Error::InvalidArg(format!("items is NULL but n is {n}")));
        }
        if n > isize::MAX as usize / size_of::<jobq_payload>() {
            return Err(Error::InvalidArg(format!("n = {n} is impossibly large")));
        }
        let items: &[jobq_payload] = if n == 0 {
            &[]
        } else {
            // SAFETY: non-NULL, the size fits isize, and the contract says
            // `items` points to `n` readable jobq_payload values.
            unsafe { std::slice::from_raw_parts(items, n) }
        };
        let payloads = items
            .iter()
            .enumerate()
            .map(|(i, it)| bytes(it.data, it.len, &format!("items[{i}].data")))
            .collect::<Result<Vec<_>, _>>()?;
        let opts = put_options(opts)?;
        let puts = handle.put_batch(name, &payloads, &opts)?;
        if !out_ids.is_null() {
            for (i, put) in puts.iter().enumerate() {
                // SAFETY: the contract says a non-NULL `out_ids` has `n` writable slots; i < n.
                unsafe { out_ids.add(i).write(put.id()) };
            }
        }
        Ok(if puts.iter().any(|p| matches!(p, Put::Duplicate(_))) { JOBQ_DUPLICATE } else { JOBQ_OK })
    })
}

/// Delivers the ready job of `queue` with the smallest (priority, id),
/// leased for its lease_ms. `timeout_ms`: 0 = don't wait, < 0 = wait
/// forever, > 0 = up to that long; JOBQ_TIMEOUT when nothing came. Free the
/// job with jobq_job_free whatever happens to it.
#[no_mangle]
pub extern "C" fn jobq_reserve(
    q: *mut jobq,
    queue: *const c_char,
    timeout_ms: i64,
    out: *mut *mut jobq_job,
) -> jobq_status {
    boundary(|| {
        let handle = QUEUES.get(q)?;
        let name = c_str(queue, "queue")?;
        if out.is_null() {
            return Err(Error::InvalidArg("out is NULL".into()));
        }
        match handle.reserve(name, timeout_of(timeout_ms))? {
            None => Ok(JOBQ_TIMEOUT),
            Some(job) => {
                let h = register_job(Arc::new(job));
                // SAFETY: `out` is non-NULL and, per the contract, points to a writable jobq_job*.
                unsafe { out.write(h) };
                Ok(JOBQ_OK)
            }
        }
    })
}

/// The largest `max` jobq_reserve_many accepts: one transaction leases
/// them all, holding the store's write lock meanwhile.
pub const JOBQ_RESERVE_MANY_MAX: usize = 1000;
const _: () = assert!(JOBQ_RESERVE_MANY_MAX == crate::limits::MAX_RESERVE_MANY);

/// Leases up to `max` (1 to JOBQ_RESERVE_MANY_MAX) ready jobs of `queue` in
/// one transaction, smallest (priority, id) first, each leased for its
/// lease_ms; `out_jobs` has `max` slots. JOBQ_OK: *out_n (>= 1) jobs are in
/// out_jobs[0 .. *out_n], in that order; slots past *out_n are not written.
/// While none is ready this waits like jobq_reserve (`timeout_ms`: 0 =
/// don't wait, < 0 = forever, > 0 = up to that long) and returns as soon as
/// at least one is: it does not wait to fill all `max` slots. JOBQ_TIMEOUT
/// (as jobq_reserve): nothing came in time, *out_n = 0. On an error nothing
/// is written and nothing leased. max == 0, max > JOBQ_RESERVE_MANY_MAX, or
/// a NULL pointer: JOBQ_E_INVALID_ARG. Free each job with jobq_job_free;
/// finish them one by one or with jobq_ack_many.
#[no_mangle]
pub extern "C" fn jobq_reserve_many(
    q: *mut jobq,
    queue: *const c_char,
    max: usize,
    timeout_ms: i64,
    out_jobs: *mut *mut jobq_job,
    out_n: *mut usize,
) -> jobq_status {
    boundary(|| {
        let handle = QUEUES.get(q)?;
        let name = c_str(queue, "queue")?;
        if out_jobs.is_null() {
            return Err(Error::InvalidArg("out_jobs is NULL".into()));
        }
        if out_n.is_null() {
            return Err(Error::InvalidArg("out_n is NULL".into()));
        }
        if max == 0 || max > JOBQ_RESERVE_MANY_MAX {
            return Err(Error::InvalidArg(format!(
                "max is {max}: jobq_reserve_many leases 1 to JOBQ_RESERVE_MANY_MAX ({JOBQ_RESERVE_MANY_MAX}) jobs"
            )));
        }
        let jobs = handle.reserve_many(name, max, timeout_of(timeout_ms))?;
        if jobs.len() > max {
            return Err(Error::Internal(format!("reserve_many leased {} jobs for max {max}", jobs.len())));
        }
        let n = jobs.len();
        for (i, job) in jobs.into_iter().enumerate() {
            let h = register_job(Arc::new(job));
            // SAFETY: the contract says `out_jobs` (non-NULL) has `max` writable
            // jobq_job* slots, and i < n <= max.
            unsafe { out_jobs.add(i).write(h) };
        }
        // SAFETY: non-NULL, and the contract says it points to a writable size_t.
        unsafe { out_n.write(n) };
        Ok(if n == 0 { JOBQ_TIMEOUT } else { JOBQ_OK })
    })
}

/// The most queue names jobq_reserve_any takes in one call.
pub const JOBQ_RESERVE_ANY_MAX: usize = 64;
const _: () = assert!(JOBQ_RESERVE_ANY_MAX == crate::limits::MAX_RESERVE_ANY);

/// Delivers the ready job with the smallest (priority, id) among the `n`
/// queues named by `queues[0 .. n]` (ids are global to the store, so equal
/// priorities go in put order whatever the queue), leased for its
/// lease_ms, as jobq_reserve would deliver it from that queue: a paused
/// queue (jobq_pause), or one whose limits (jobq_queue_config) hold it back,
/// is passed over. A name given twice counts once. `timeout_ms`: 0 = don't
/// wait, < 0 = wait forever, > 0 = up to that long; while nothing is ready
/// it waits, and wakes on a put, release, kick or resume in any of the
/// queues (from any process) and when a delay or lease in one of them ends.
/// JOBQ_OK: *out is the job (its queue: jobq_job_queue; free it with
/// jobq_job_free). JOBQ_TIMEOUT: nothing came in time, *out not written.
/// JOBQ_E_INVALID_ARG, leasing nothing: `n` is 0 or more than
/// JOBQ_RESERVE_ANY_MAX, `queues` is NULL, a name is NULL, not UTF-8, empty
/// or too long (jobq_last_error names it, e.g. "queues[2]"), or `out` is NULL.
#[no_mangle]
pub extern "C" fn jobq_reserve_any(
    q: *mut jobq,
    queues: *const *const c_char,
    n: usize,
    timeout_ms: i64,
    out: *mut *mut jobq_job,
) -> jobq_status {
    boundary(|| {
        let handle = QUEUES.get(q)?;
        if n == 0 || n > JOBQ_RESERVE_ANY_MAX {
            return Err(Error::InvalidArg(format!(
                "n is {n}: jobq_reserve_any takes 1 to JOBQ_RESERVE_ANY_MAX ({JOBQ_RESERVE_ANY_MAX}) queue names"
            )));
        }
        if queues.is_null() {
            return Err(Error::InvalidArg(format!("queues is NULL but n is {n}")));
        }
        // SAFETY: non-NULL, 1 <= n <= JOBQ_RESERVE_ANY_MAX (so the size fits
        // isize), and the contract says `queues` points to `n` readable
        // const char* values that stay valid for the call.
        let pointers = unsafe { std::slice::from_raw_parts(queues, n) };
        let names = pointers
            .iter()
            .enumerate()
            .map(|(i, p)| c_str(*p, &format!("queues[{i}]")))
            .collect::<Result<Vec<&str>, _>>()?;
        if out.is_null() {
            return Err(Error::InvalidArg("out is NULL".into()));
        }
        match handle.reserve_any(&names, timeout_of(timeout_ms))? {
            None => Ok(JOBQ_TIMEOUT),
            Some(job) => {
                let h = register_job(Arc::new(job));
                // SAFETY: `out` is non-NULL and, per the contract, points to a writable jobq_job*.
                unsafe { out.write(h) };
                Ok(JOBQ_OK)
            }
        }
    })
}

/// Kicks job `id`, of any queue: a dead job (buried, failed on its last
/// attempt, or its last lease expired) becomes ready now with its attempts
/// reset (as jobq_kick does), and a scheduled one (waiting for its delay or
/// a retry backoff) becomes ready now with its attempts kept. Waiting
/// reserves wake. JOBQ_E_NOT_FOUND: no such job (never stored, acked,
/// cancelled or purged, or done past its keep time). JOBQ_E_STATE, changing
/// nothing: the job is ready, reserved (with a live lease) or done, or it is
/// dead and a live job of its queue now holds its unique_key.
#[no_mangle]
pub extern "C" fn jobq_kick_job(q: *mut jobq, id: u64) -> jobq_status {
    boundary(|| {
        QUEUES.get(q)?.kick_job(id)?;
        Ok(JOBQ_OK)
    })
}

/// Finds the next job of `queue` in `state`, without leasing or changing
/// it, and writes its id to *out_id (non-NULL; see jobq_job_info for the
/// rest of it). `state`:
///   "ready": the job jobq_reserve would deliver now, the smallest
///            (priority, id) among the ready ones (passed delays and expired
///            leases included); shown even while the queue is paused or
///            held back by its limits;
///   "scheduled": the one whose delay or retry backoff ends first
///            (smallest (run_at, id));
///   "dead": the one that died first (smallest (time of death, id)).
/// JOBQ_E_NOT_FOUND when the queue has no job in that state (*out_id not
/// written). JOBQ_E_INVALID_ARG: NULL or invalid queue name, NULL `state`
/// or any other state string ("reserved" and "done" included), NULL `out_id`.
#[no_mangle]
pub extern "C" fn jobq_peek(q: *mut jobq, queue: *const c_char, state: *const c_char, out_id: *mut u64) -> jobq_status {
    boundary(|| {
        let handle = QUEUES.get(q)?;
        let name = c_str(queue, "queue")?;
        let state = match c_str(state, "state")? {
            "ready" => JobState::Ready,
            "scheduled" => JobState::Scheduled,
            "dead" => JobState::Dead,
            other => {
                return Err(Error::InvalidArg(format!(
                    "state is {other:?}: jobq_peek takes \"ready\", \"scheduled\" or \"dead\""
                )))
            }
        };
        if out_id.is_null() {
            return Err(Error::InvalidArg("out_id is NULL".into()));
        }
        match handle.peek(name, state)? {
            Some(job) => {
                write_id(out_id, job.id);
                Ok(JOBQ_OK)
            }
            None => {
                super::set_last_error(&format!("no {state} job in queue {name:?}"));
                Ok(JOBQ_E_NOT_FOUND)
            }
        }
    })
}

/// Dead -> ready for up to `max` jobs of `queue`, oldest first, attempts
/// reset. A dead job whose unique_key is now held by a live job stays dead.
/// `out_kicked` (nullable) receives how many were kicked.
#[no_mangle]
pub extern "C" fn jobq_kick(q: *mut jobq, queue: *const c_char, max: u64, out_kicked: *mut u64) -> jobq_status {
    boundary(|| {
        let handle = QUEUES.get(q)?;
        let name = c_str(queue, "queue")?;
        let kicked = handle.kick(name, max)?;
        write_id(out_kicked, kicked);
        Ok(JOBQ_OK)
    })
}

/// Pauses `queue` for every client of the store (every process; every host
/// of a PostgreSQL store): it still accepts puts, but delivers nothing until
/// jobq_resume. jobq_reserve on it waits as on an empty queue (JOBQ_TIMEOUT
/// when its timeout passes) and worker pools idle; jobs already delivered
/// (also those a pool leased ahead of its handlers) run on, and ack, fail,
/// release, touch and bury work as usual. The pause
/// is stored: it holds across restarts, and stats show `"paused":true`.
/// Pausing a queue never used records it; pausing twice is a no-op.
/// JOBQ_E_INVALID_ARG for a NULL or invalid queue name.
#[no_mangle]
pub extern "C" fn jobq_pause(q: *mut jobq, queue: *const c_char) -> jobq_status {
    boundary(|| {
        let handle = QUEUES.get(q)?;
        let name = c_str(queue, "queue")?;
        handle.pause(name)?;
        Ok(JOBQ_OK)
    })
}

/// Resumes a paused `queue`: its jobs are delivered again, and reserves
/// waiting for it wake (in this process and in others). Resuming a queue
/// that is not paused, or never used, is a no-op (and records nothing).
/// JOBQ_E_INVALID_ARG for a NULL or invalid queue name.
#[no_mangle]
pub extern "C" fn jobq_resume(q: *mut jobq, queue: *const c_char) -> jobq_status {
    boundary(|| {
        let handle = QUEUES.get(q)?;
        let name = c_str(queue, "queue")?;
        handle.resume(name)?;
        Ok(JOBQ_OK)
    })
}

/// The longest schedule name jobq_schedule accepts, in bytes.
pub const JOBQ_SCHEDULE_NAME_MAX: usize = 1024;
const _: () = assert!(JOBQ_SCHEDULE_NAME_MAX == crate::limits::MAX_SCHEDULE_NAME);
/// The shortest `@every` interval jobq_schedule accepts, in ms.
pub const JOBQ_SCHEDULE_EVERY_MIN_MS: u64 = 100;
const _: () = assert!(JOBQ_SCHEDULE_EVERY_MIN_MS == crate::schedule::MIN_EVERY_MS);

/// Makes (or replaces) schedule `name`: a job with `payload` (`len` bytes;
/// NULL allowed when len is 0) is put into `queue` at every slot of `spec`:
/// - a 5-field cron spec, "minute hour day-of-month month day-of-week", read
///   in UTC, each field a list of `*`, `N`, `A-B`, each maybe with a step
///   (`A-B/S`; a star with `/S` for every S-th value); months
///   1-12 or JAN-DEC, days of week 0-7 (0 and 7 Sunday) or SUN-SAT; when
///   both day fields are restricted, a day matching either fires (cron's
///   rule); or `@yearly`, `@monthly`, `@weekly`, `@daily`, `@hourly`;
/// - or `@every <duration>`: `500ms`, `30s`, `5m`, `1h30m`, `2d`, at least
///   JOBQ_SCHEDULE_EVERY_MIN_MS; slots every duration from now.
///
/// Names are global to the store (not per queue), 1 to
/// JOBQ_SCHEDULE_NAME_MAX bytes: an existing name is replaced (queue, spec,
/// payload, options), its next slot computed afresh from now. `opts` (NULL
/// = defaults) gives each job's priority, max_attempts and lease_ms as for
/// jobq_put; delay_ms delays each job from its slot; a unique_key is
/// JOBQ_E_INVALID_ARG. The schedule is stored: every open handle of the
/// store (any process, any host) puts its due jobs, each slot exactly once;
/// a slot missed while no handle was open is put once when one opens, and
/// after a downtime of many slots, ONE job is put for them all. A bad spec
/// is JOBQ_E_INVALID_ARG with a message naming the field, and stores nothing.
/// Stats list schedules (see jobq_stats_json).
#[no_mangle]
pub extern "C" fn jobq_schedule(
    q: *mut jobq,
    queue: *const c_char,
    name: *const c_char,
    spec: *const c_char,
    payload: *const c_void,
    len: usize,
    opts: *const jobq_put_opts,
) -> jobq_status {
    boundary(|| {
        let handle = QUEUES.get(q)?;
        let queue = c_str(queue, "queue")?;
        let name = c_str(name, "name")?;
        let spec = c_str(spec, "spec")?;
        let payload = bytes(payload, len, "payload")?;
        let opts = put_options(opts)?;
        handle.schedule(name, queue, spec, payload, &opts)?;
        Ok(JOBQ_OK)
    })
}

/// Deletes schedule `name`: no further jobs are put for it (jobs it put
/// stay). Deleting a name that has no schedule is a no-op (JOBQ_OK).
/// JOBQ_E_INVALID_ARG for a NULL, empty or too long name.
#[no_mangle]
pub extern "C" fn jobq_unschedule(q: *mut jobq, name: *const c_char) -> jobq_status {
    boundary(|| {
        let handle = QUEUES.get(q)?;
        let name = c_str(name, "name")?;
        handle.unschedule(name)?;
        Ok(JOBQ_OK)
    })
}

/// Sets or removes delivery limits of `queue`, for every client of the
/// store (every process; every host of a PostgreSQL store). `json` is an
/// object with any of these keys:
///   "max_reserved": N    at most N jobs of the queue reserved (with a live
///                        lease; expired leases do not count) at once;
///   "rate": {"jobs": N, "per_ms": M}
///                        at most N deliveries per window of M ms (a fixed
///                        window: it opens at the first delivery after the
///                        previous one ended);
/// N and M integers >= 1; `null` for a key removes that limit; keys not
/// given keep their value ("{}" changes nothing). Every way of leasing
/// (jobq_reserve, jobq_reserve_many, jobq_ack_reserve, worker pools)
/// respects them: a reserve held back waits as on an empty queue (its
/// timeout applies) and wakes when a slot frees (an ack, fail, release or
/// bury of the queue, or a lease expiring) or the rate window ends. Stored:
/// it holds across restarts; stats show `"limits"` and `"rate_used"`.
/// Setting a limit on a queue never used records it.
/// JOBQ_E_INVALID_ARG, storing nothing, for a NULL or invalid queue name,
/// NULL or invalid JSON, an unknown key, a value that is not an integer
/// >= 1 or null, or a bad "rate" object; jobq_last_error says which.
#[no_mangle]
pub extern "C" fn jobq_queue_config(q: *mut jobq, queue: *const c_char, json: *const c_char) -> jobq_status {
    boundary(|| {
        let handle = QUEUES.get(q)?;
        let name = c_str(queue, "queue")?;
        let json = c_str(json, "json")?;
        handle.configure(name, json)?;
        Ok(JOBQ_OK)
    })
}

/// Removes a job that is not currently delivered (ready, scheduled, dead, or
/// reserved with an expired lease). JOBQ_E_STATE if it is reserved with a
/// live lease, JOBQ_E_NOT_FOUND if there is no such job.
#[no_mangle]
pub extern "C" fn jobq_cancel(q: *mut jobq, id: u64) -> jobq_status {
    boundary(|| {
        QUEUES.get(q)?.cancel(id)?;
        Ok(JOBQ_OK)
    })
}

/// Strings the library handed out and not yet freed: jobq_string_free
/// accepts only these, so a double free or a foreign pointer is harmless.
static STRINGS: Mutex<Option<HashSet<usize>>> = Mutex::new(None);

pub(crate) fn give_string(text: String) -> Result<*mut c_char, Error> {
    let raw = CString::new(text).map_err(|_| Error::Internal("string with NUL".into()))?.into_raw();
    STRINGS.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert_with(HashSet::new).insert(raw.addr());
    Ok(raw)
}

/// Counts per queue as JSON: `{"queues":{"<name>":{"ready":n,"scheduled":n,
/// "reserved":n,"dead":n,"done":n,"paused":false}}}` (`"paused":true` while
/// the queue is paused, see jobq_pause; "done": jobs acked and kept, see
/// jobq_ack_result). While the store has schedules (jobq_schedule), also
/// `"schedules":[{"name":..,"queue":..,"spec":..,"next_ms":<Unix ms of the
/// next slot, or null>,"priority":n,"delay_ms":n,"max_attempts":n,
/// "lease_ms":n,"payload_len":n}]` in name order. A queue with limits
/// (jobq_queue_config) also has
/// `"limits":{"max_reserved":n,"rate":{"jobs":n,"per_ms":n}}` (only the
/// limits set) and, with a rate, `"rate_used":n`: the deliveries in the
/// rate window open now. Free *out_json with jobq_string_free.
#[no_mangle]
pub extern "C" fn jobq_stats_json(q: *mut jobq, out_json: *mut *mut c_char) -> jobq_status {
    boundary(|| {
        let handle = QUEUES.get(q)?;
        if out_json.is_null() {
            return Err(Error::InvalidArg("out_json is NULL".into()));
        }
        let stats = handle.stats()?;
        let text = serde_json::to_string(&stats).map_err(|e| Error::Internal(e.to_string()))?;
        let raw = give_string(text)?;
        // SAFETY: non-NULL, and the contract says it points to a writable char*.
        unsafe { out_json.write(raw) };
        Ok(JOBQ_OK)
    })
}

/// Everything about job `id` as one JSON object in *json_out (free it with
/// jobq_string_free), for live jobs and for done ones (acked through a
/// handle with `keep_done_ms` > 0, until that long after the ack). Every
/// field is always present, null when it does not apply:
/// `{"id":n,"queue":"..","state":"ready|scheduled|reserved|dead|done",
/// "priority":n,"attempts":n,"max_attempts":n,"last_error":".."|null,
/// "result":".."|null,"result_b64":".."|null,"result_len":n|null,
/// "unique_key":".."|null,"payload_len":n,"created_at":ms,"updated_at":ms,
/// "run_at":ms,"lease_until":ms|null,"finished_at":ms|null,"expires_at":ms|null}`.
/// Times are Unix ms. `result` is the result as a JSON string when its
/// bytes are UTF-8 (else null); `result_b64` is always its exact bytes in
/// base64; both null when the job has no result (not done, or acked
/// without one). `run_at`: ready/scheduled: when it may run; reserved: when
/// its lease ends; dead: when it died; done: when its record expires (as
/// `expires_at`; `finished_at` is when it was acked). The payload itself is
/// not included. JOBQ_E_NOT_FOUND (and *json_out not written) when there is
/// no such job: never stored, acked without keep_done_ms, cancelled,
/// purged, or done and past its keep time (whether or not the background
/// pruning deleted its row yet). NULL `json_out`: JOBQ_E_INVALID_ARG.
#[no_mangle]
pub extern "C" fn jobq_job_info(q: *mut jobq, id: u64, json_out: *mut *mut c_char) -> jobq_status {
    boundary(|| {
        let handle = QUEUES.get(q)?;
        if json_out.is_null() {
            return Err(Error::InvalidArg("json_out is NULL".into()));
        }
        let text = handle.job_json(id)?;
        let raw = give_string(text)?;
        // SAFETY: non-NULL, and the contract says it points to a writable char*.
        unsafe { json_out.write(raw) };
        Ok(JOBQ_OK)
    })
}

/// Frees a string the library returned. NULL, or a pointer already freed
/// or not from jobq, is ignored.
#[no_mangle]
pub extern "C" fn jobq_string_free(s: *mut c_char) {
    boundary_or((), || {
        if s.is_null() {
            return;
        }
        let known =
            STRINGS.lock().unwrap_or_else(PoisonError::into_inner).as_mut().is_some_and(|set| set.remove(&s.addr()));
        if known {
            // SAFETY: `s` came from CString::into_raw in give_string and was
            // still registered, so it was not freed before.
            drop(unsafe { CString::from_raw(s) });
        }
    })
}
