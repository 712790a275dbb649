//! The storage seam. The core (`Queue`, `Job`, `Worker`) talks to storage
//! only through [`Store`], a trait named for the operations of the contract
//! (API.md), and the plain data types below. Each backend lives in a folder
//! of its own and owns everything about how it stores: its schema, its
//! statements, how it batches concurrent calls (group commit), how it
//! recovers from a failed statement (SQLite keeps a transaction usable,
//! PostgreSQL aborts it, so that cannot be shared), how it notices other
//! processes' commits, and how it finds jobs held by dead clients.
//!
//! - `sqlite/`: one file on one machine.
//! - `postgres/`: one database for many machines.
//!
//! [`open`] picks the backend from the path. Modelled on libgit2's refdb:
//! a documented backend interface, a thin dispatcher, one folder per backend.
//!
//! Times are wall-clock milliseconds from the handle's `Clock`, read by the
//! backend when the operation really runs (after any lock wait), so leases
//! and delays count from then.

pub(crate) mod postgres;
pub(crate) mod sqlite;

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::notify::Notifier;
use crate::qconfig::{self, LimitsPatch, QueueLimits};

/// A job's state as seen at one moment. One classification for the stats,
/// the listing and every backend: a scheduled job whose time has come is
/// ready; a reserved job whose lease expired is ready again, or dead if that
/// was its last allowed attempt; a done job whose keep time passed is gone
/// (whether or not the background pruning deleted its row yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// May be delivered now: new, due after a delay or backoff, or its lease expired.
    Ready,
    /// Waiting for a delay or a retry backoff to pass.
    Scheduled,
    /// Delivered, with a live lease.
    Reserved,
    /// Out of attempts, or buried; stays until kicked or purged.
    Dead,
    /// Acked through a handle with `keep_done_ms` > 0: kept, with its
    /// result, until that long after the ack; never delivered again.
    Done,
}

impl JobState {
    pub const ALL: [JobState; 5] =
        [JobState::Ready, JobState::Scheduled, JobState::Reserved, JobState::Dead, JobState::Done];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Ready => "ready",
            JobState::Scheduled => "scheduled",
            JobState::Reserved => "reserved",
            JobState::Dead => "dead",
            JobState::Done => "done",
        }
    }

    /// The state from the code both backends' listing SQL computes:
    /// 0 ready, 1 scheduled, 2 reserved, 4 done, anything else dead.
    pub(crate) fn from_code(code: i64) -> JobState {
        match code {
            0 => JobState::Ready,
            1 => JobState::Scheduled,
            2 => JobState::Reserved,
            4 => JobState::Done,
            _ => JobState::Dead,
        }
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JobState {
    type Err = Error;
    fn from_str(s: &str) -> Result<JobState> {
        JobState::ALL.into_iter().find(|state| state.as_str() == s).ok_or_else(|| {
            Error::invalid(format!("unknown job state {s:?} (ready, scheduled, reserved, dead or done)"))
        })
    }
}

/// Which jobs `Queue::list_jobs` returns. `Default`: every job, whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only this queue.
    pub queue: Option<String>,
    /// Only jobs in this state now.
    pub state: Option<JobState>,
    /// Only jobs with a larger id (to page through a long listing).
    pub after_id: u64,
    /// At most this many jobs; `None` = no limit.
    pub limit: Option<u64>,
    /// Read at most this many bytes of each payload (`JobInfo::payload_len`
    /// keeps the full length); `None` = whole payloads.
    pub payload_max: Option<u64>,
}

/// Everything stored about one job. Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobInfo {
    pub id: u64,
    pub queue: String,
    /// The state now, computed from the stored state and `run_at` as the stats do.
    pub state: JobState,
    pub priority: i32,
    /// Deliveries so far.
    pub attempts: u32,
    pub max_attempts: u32,
    /// Ready/scheduled: when it may run; reserved: when the lease ends;
    /// dead: when it died; done: when its record expires (it was acked at
    /// `updated_at`).
    pub run_at: i64,
    /// Lease length of each delivery.
    pub lease_ms: u64,
    /// End of the current lease, while one was granted (it may have expired).
    pub lease_until: Option<i64>,
    /// Who holds the lease, while reserved (a process, named by the backend).
    pub lease_owner: Option<String>,
    pub unique_key: Option<String>,
    /// The payload, or its first `JobFilter::payload_max` bytes.
    pub payload: Vec<u8>,
    /// The full payload length in bytes.
    pub payload_len: u64,
    pub created_at: i64,
    pub updated_at: i64,
    /// Why the last attempt failed or the job died.
    pub last_error: Option<String>,
    /// Done: the result stored by `Job::ack_result`, if any (in a listing,
    /// cut to `JobFilter::payload_max` bytes like the payload).
    pub result: Option<Vec<u8>>,
}

/// Counts of one queue, and whether it is paused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueCounts {
    pub ready: u64,
    pub scheduled: u64,
    pub reserved: u64,
    pub dead: u64,
    /// Acked and kept (`keep_done_ms`), until their keep time passes.
    pub done: u64,
    /// Paused (`Queue::pause`): it takes puts but delivers nothing until resumed.
    pub paused: bool,
    /// Its delivery limits (`Queue::configure`), if it has any (stats JSON:
    /// `"limits"`, absent when none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<QueueLimits>,
    /// With a rate limit: deliveries in the rate window open now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_used: Option<u64>,
}

impl QueueCounts {
    /// Sets `limits` and `rate_used` from a limited queue's stored state at `now`.
    pub(crate) fn set_limits(&mut self, stored: &qconfig::Stored, now: i64) {
        self.limits = Some(stored.limits);
        self.rate_used = stored.limits.rate.map(|_| stored.rate_used(now));
    }
}

/// What a put did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Stored(u64),
    /// A live job with the same unique key exists: its id.
    Duplicate(u64),
}

impl Put {
    pub fn id(self) -> u64 {
        match self {
            Put::Stored(id) | Put::Duplicate(id) => id,
        }
    }
}

/// A job to store (for a batch: the fields all its jobs share). Checked by
/// the core: a valid queue name, ranges within limits, defaults applied.
#[derive(Debug, Clone)]
pub(crate) struct NewJob {
    pub queue: Arc<str>,
    pub priority: i32,
    /// Not delivered before the operation's time + delay_ms.
    pub delay_ms: u64,
    pub max_attempts: u32,
    pub lease_ms: u64,
    /// Batches of more than one job have none.
    pub unique_key: Option<String>,
}

/// A schedule to store (`Queue::schedule`), checked by the core: a valid
/// name and spec, the job fields with the store's defaults applied (no
/// unique key), and its first slot.
#[derive(Debug, Clone)]
pub(crate) struct NewSchedule {
    pub name: String,
    pub spec: String,
    /// The fields of every job it puts (`delay_ms` counts from the fire).
    pub job: NewJob,
    pub payload: Vec<u8>,
    /// When its first job is due (Unix ms).
    pub next_slot: i64,
}

/// A stored schedule, as the stats list it. Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScheduleInfo {
    /// Schedule names are global to the store (not per queue).
    pub name: String,
    pub queue: String,
    pub spec: String,
    /// When its next job is put; `None` if its spec matches no time any more.
    pub next_ms: Option<i64>,
    pub priority: i32,
    pub delay_ms: u64,
    pub max_attempts: u32,
    pub lease_ms: u64,
    pub payload_len: u64,
}

/// A due schedule as read by a fire (`fire_due` of each backend).
#[derive(Debug)]
pub(crate) struct DueSchedule {
    pub name: String,
    pub spec: String,
    pub slot: i64,
}

impl DueSchedule {
    /// The slot it moves to when fired at `now` (`Spec::next_slot`); `None`
    /// if the stored spec no longer parses or matches nothing.
    pub fn next_slot(&self, now: i64) -> Option<i64> {
        crate::schedule::Spec::parse(&self.spec).ok()?.next_slot(self.slot, now)
    }
}

/// One delivery: the job and the fencing token its finish must present.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub id: u64,
    /// 1 on the first delivery.
    pub attempt: u32,
    /// Changes with every delivery of the job.
    pub token: i64,
    pub lease_ms: u64,
    pub payload: Vec<u8>,
}

/// What a reserve found.
#[derive(Debug, Default)]
pub(crate) struct Attempt {
    /// The first job leased and (when more were wanted) the others: a
    /// plain reserve allocates no Vec.
    pub first: Option<Delivery>,
    pub more: Vec<Delivery>,
    /// When fewer jobs than wanted were ready: when something of the queue
    /// next becomes due by time alone (a delay or a lease ends), if anything.
    pub next_due: Option<i64>,
    /// When fewer than wanted were ready: look again after this many ms even
    /// if no wakeup comes (a backend that must poll for dead clients or for
    /// other processes' commits says so here).
    pub recheck_ms: Option<u64>,
}

impl Attempt {
    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.more.len()
    }
}

/// How a delivery ends (or is extended). Delays count from the operation's time.
#[derive(Debug, Clone)]
pub(crate) enum Finish {
    /// Done: the job is removed.
    Ack,
    /// Done, and kept: state done with `result` until `keep_ms` (> 0) from
    /// now, then deleted by the backend's background pruning. Same
    /// currency rules as `Ack` (a dead job's holder may still do it); a
    /// done job is never revived, and its unique key is free at once.
    AckKeep { result: Option<Vec<u8>>, keep_ms: u64 },
    /// Retry after `delay_ms`, or dead if attempts are used up.
    Fail { reason: Option<String>, delay_ms: u64 },
    /// Ready again after `delay_ms`; the attempt is not counted. With
    /// `priority`, the job's priority becomes it (in the same statement).
    Release { delay_ms: u64, priority: Option<i32> },
    /// The lease ends `lease_ms` (0: the job's lease_ms) from now.
    Touch { lease_ms: u64 },
    /// Dead now. With `priority`, the job's priority becomes it (in the
    /// same statement).
    Bury { reason: Option<String>, priority: Option<i32> },
}

impl Finish {
    /// Whether storing this can make a job ready (or change when): waiting
    /// reserves are woken after it commits.
    pub fn wakes(&self) -> bool {
        matches!(self, Finish::Fail { .. } | Finish::Release { .. })
    }
}

/// The next ready job of one queue of a `Store::ready_heads` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReadyHead {
    /// Which queue: its index in the list asked about.
    pub index: usize,
    pub priority: i32,
    pub id: u64,
}

/// A finish of one delivery (`id`, `token`), for `Store::finish_and_reserve`.
pub(crate) type Outcome = (u64, i64, Finish);

/// Whether `Store::finish_and_reserve` leases jobs after a stale outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReserveIf {
    /// Whatever the outcomes found (worker pools: a stale outcome is only
    /// a job that runs again elsewhere).
    Always,
    /// Only if every outcome's delivery was current (`jobq_ack_reserve`: a
    /// stale ack is an error, and an error leases nothing).
    AllCurrent,
}

/// What a backend is given at open.
pub(crate) struct Env {
    pub clock: Arc<dyn Clock>,
    /// Bump it when a commit (of this process, or seen from another one)
    /// may have made jobs ready; reserves wait on it.
    pub notifier: Arc<Notifier>,
}

/// The operations the core needs from storage. Every backend must provide
/// each with exactly the meaning below (the C tests run against all of
/// them). Methods may be called from many threads at once. Errors are the
/// core's `Error`, with the codes of API.md: a lost or unreachable server
/// or an unwritable file is `Io`, a lock wait past `busy_timeout_ms` is
/// `Busy`, a damaged or foreign store `Corrupt`.
pub(crate) trait Store: Send + Sync {
    /// Must provide: stores one job, durable under the configured
    /// durability when this returns. With a unique key held by a live
    /// (ready, scheduled or reserved) job of the same queue, stores nothing
    /// and returns `Duplicate(that id)`; a job whose last lease expired does
    /// not hold its key. The queue is recorded so that stats list it.
    fn put(&self, job: NewJob, payload: Vec<u8>) -> Result<Put>;

    /// Must provide: stores one job per payload (with `job`'s other fields,
    /// no unique key), all or none, durable when this returns; ids in order.
    fn put_batch(&self, job: NewJob, payloads: Vec<Vec<u8>>) -> Result<Vec<u64>>;

    /// Must provide: leases up to `want` (>= 1) ready jobs of `queue`,
    /// smallest (priority, id) first, each delivery counting an attempt and
    /// getting a new token; first makes due what time made due (delays that
    /// passed; expired leases, which go dead on their last attempt), and
    /// reclaims jobs whose holder is known to be gone. Leases nothing while
    /// the queue is paused (`set_paused`), checked in the same transaction
    /// (or statement) that leases, so that a pause that committed first
    /// holds for every client of the store. When fewer than `want` were
    /// ready (or the queue is paused), says when to look again (`next_due`,
    /// `recheck_ms`), as for an empty queue.
    fn reserve(&self, queue: &Arc<str>, want: usize) -> Result<Attempt>;

    /// Must provide: applies `finish` to delivery (`id`, `token`). `Ok(false)`
    /// when that delivery is no longer current (the job is gone or was
    /// delivered again): then nothing changes. A delivery whose lease expired
    /// but that nobody received since may still finish. A dead job can still
    /// be acked or buried by its holder but not revived by fail, release or
    /// touch. Wakes waiting reserves after it commits when `finish.wakes()`.
    fn finish(&self, id: u64, token: i64, finish: Finish) -> Result<bool>;

    /// Must provide, for worker pools, `jobq_ack_reserve` and `jobq_ack_many`:
    /// `finish` for each outcome (answers in order), then `reserve(queue,
    /// want)` (nothing when `want` is 0, nor when `when` is `AllCurrent` and
    /// an outcome was stale), in as few transactions and round trips as the
    /// backend can. The outcomes are stored whatever the reserve finds. A
    /// delivery finished twice in one call: the second answer is `false`.
    fn finish_and_reserve(
        &self,
        queue: &Arc<str>,
        outcomes: Vec<Outcome>,
        want: usize,
        when: ReserveIf,
    ) -> Result<(Vec<bool>, Attempt)>;

    /// Must provide: dead -> ready for up to `max` dead jobs of `queue`, oldest
    /// first, attempts reset; a dead job whose unique key a live job now
    /// holds stays dead. Returns how many; wakes waiting reserves.
    fn kick(&self, queue: &str, max: u64) -> Result<u64>;

    /// Must provide: removes job `id` unless it is reserved with a live
    /// lease (`State`); `NotFound` if there is no such job.
    fn cancel(&self, id: u64) -> Result<()>;

    /// Must provide: makes job `id` ready now, in one statement, if it is
    /// dead (buried, or its lease expired on its last allowed attempt:
    /// attempts reset to 0, as `kick` does) or scheduled (a delay or retry
    /// backoff still to run: attempts kept). `NotFound` if there is no such
    /// job (a done job past its keep time included); `State` if it is ready,
    /// reserved with a live lease or done, or dead with its unique key now
    /// held by a live job (it stays dead). The job's queue is not
    /// checked (ids are global to the store). Wakes waiting reserves, here
    /// and in the store's other clients.
    fn kick_job(&self, id: u64) -> Result<()>;

    /// Must provide: the first job of `queue` in `state` at this moment, as
    /// `job` would show it, without changing anything. `Ready`: the job with
    /// the smallest (priority, id) among those `counts` calls ready (passed
    /// delays and expired leases included), whether or not the queue is
    /// paused or held back by its limits; `Scheduled`: the smallest
    /// (run_at, id); `Dead`: the smallest (run_at, id), run_at being when it
    /// died (for an expired last lease: when that lease ended). Never called
    /// with `Reserved` or `Done` (the core refuses them); a backend answers
    /// `InvalidArg` if it is.
    fn peek(&self, queue: &str, state: JobState) -> Result<Option<JobInfo>>;

    /// Must provide, for `Queue::reserve_any`: for each of `queues` that has
    /// a ready job (as `peek(queue, Ready)` finds it: pause and limits are
    /// not looked at), `(index in queues, priority, id)` of that job, sorted
    /// by (priority, id). Reads only; as few round trips as the backend can
    /// (the list has at most `MAX_RESERVE_ANY` names).
    fn ready_heads(&self, queues: &[Arc<str>]) -> Result<Vec<ReadyHead>>;

    /// Must provide: pauses (`true`) or resumes `queue`, stored durably
    /// when this returns and seen by every client of the store (every
    /// process, every host). A paused queue still takes puts, finishes and
    /// kicks; `reserve` and `finish_and_reserve` lease nothing of it. Pausing
    /// a queue never used records it (stats list it, paused); resuming one
    /// never used records nothing. A resume wakes waiting reserves, in this
    /// process and in the store's other clients.
    fn set_paused(&self, queue: &str, paused: bool) -> Result<()>;

    /// Must provide: applies `patch` to the limits of `queue` (`Queue::configure`),
    /// stored durably when this returns and seen by every client of the store.
    /// `reserve` and `finish_and_reserve` enforce them in the transaction (or
    /// statement) that leases: at most `max_reserved` jobs of the queue
    /// reserved with a live lease, at most `rate.jobs` deliveries per fixed
    /// window (see qconfig.rs), whoever leases. When a limit holds a reserve
    /// back, its `next_due` says when the rate window ends (if that is what
    /// holds it), and a finish that frees a slot of a limited queue wakes
    /// waiting reserves (here and in the store's other clients); `next_due`
    /// (watches) also says when a full rate window ends. Setting a limit on a
    /// queue never used records it; removing the last limit of a queue keeps
    /// nothing of its limits (the queue claims as an unlimited one). Wakes
    /// waiting reserves (a raised limit may let them lease).
    fn set_limits(&self, queue: &str, patch: &LimitsPatch) -> Result<()>;

    /// Must provide: the counts of every queue ever used (also empty
    /// ones, and paused ones), in name order, at this moment, each with
    /// whether it is paused and its limits (`QueueCounts::set_limits`).
    fn counts(&self) -> Result<Vec<(String, QueueCounts)>>;

    /// Must provide: the jobs matching `filter`, in id order, states as
    /// `counts` classifies them.
    fn list(&self, filter: &JobFilter) -> Result<Vec<JobInfo>>;

    /// Must provide: everything about job `id`, or `None`. A done job
    /// whose keep time passed is `None` (and counted and listed nowhere),
    /// whether or not its row was pruned yet: the backend deletes such rows
    /// in the background, in small batches, so the store stays bounded.
    fn job(&self, id: u64) -> Result<Option<JobInfo>>;

    /// Must provide: deletes the jobs of `queue` that are dead now; how many.
    fn purge_dead(&self, queue: &str) -> Result<u64>;

    /// Must provide: the largest job id given out so far (0 for a new store).
    fn last_job_id(&self) -> Result<u64>;

    /// Must provide, for watches: when (ms, the store's clock) the next
    /// scheduled job or lease expiry of `queue` is due, or the end of a rate
    /// window that allows no more deliveries (`Stored::blocked_until`),
    /// whichever comes first; `None` if none.
    fn next_due(&self, queue: &str) -> Result<Option<i64>>;

    /// Must provide, for watches: `None` when the notifier given at open
    /// hears every client's writes; otherwise how often (ms) a watch must
    /// turn readable by itself so that the loop looks.
    fn watch_poll_ms(&self) -> Option<u64>;

    /// Must provide: stores schedule `s`, durably, for every client of the
    /// store; replaces the schedule of the same name (names are global to
    /// the store), whatever its queue. Records the queue (stats list it).
    /// Wakes this handle's schedule firing so that it sees the new slot.
    fn put_schedule(&self, s: NewSchedule) -> Result<()>;

    /// Must provide: deletes schedule `name`; `false` if there was none.
    fn remove_schedule(&self, name: &str) -> Result<bool>;

    /// Must provide: every schedule, in name order.
    fn schedules(&self) -> Result<Vec<ScheduleInfo>>;

    /// Must provide: for every schedule whose next slot has come (<= the
    /// operation's time), puts ONE job and moves the slot on
    /// (`DueSchedule::next_slot`), both in one transaction that advances the
    /// slot by compare-and-set on its stored value, so that each slot is put
    /// exactly once however many clients fire at once. Wakes waiting
    /// reserves (here and in other clients). Returns how many jobs it put.
    /// Every backend also runs this by itself, from a background thread or
    /// task of each open handle, whenever the earliest slot comes (and
    /// re-reads that slot at least every second, to see other clients'
    /// schedules), until close.
    fn fire_schedules(&self) -> Result<u64>;

    /// Must provide: gives back the space of deleted jobs, as far as the
    /// backend can (SQLite: VACUUM; PostgreSQL: VACUUM of its tables).
    fn compact(&self) -> Result<()>;

    /// Must provide: finishes what is in flight, stops the backend's
    /// threads and connections. Calls after it fail with `Shutdown`.
    /// Called once.
    fn close(&self);
}

/// Whether `path` names a PostgreSQL store rather than a file.
pub(crate) fn is_postgres_url(path: &str) -> bool {
    path.starts_with("postgresql://") || path.starts_with("postgres://")
}

/// `path` fit to print: a URL's password is replaced by `***`.
pub fn redacted(path: &str) -> String {
    if !is_postgres_url(path) {
        return path.to_owned();
    }
    let Some(scheme_end) = path.find("://").map(|i| i + 3) else { return path.to_owned() };
    let rest = &path[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!("{}{}:***{}", &path[..scheme_end], &rest[..colon], &rest[at..]),
            None => path.to_owned(),
        },
        None => path.to_owned(),
    }
}

/// Opens the store that `path` names: a PostgreSQL URL, or a file path (a
/// path that is not UTF-8 is a file path too).
pub(crate) fn open(path: &std::path::Path, config: &Config, env: Env) -> Result<Box<dyn Store>> {
    match path.to_str() {
        Some(url) if is_postgres_url(url) => Ok(Box::new(postgres::PgStore::open(url, config, env)?)),
        _ => Ok(Box::new(sqlite::SqliteStore::open(path, config, env)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn passwords_are_not_printed() {
        assert_eq!(redacted("postgresql://u:secret@h:5/db?schema=x"), "postgresql://u:***@h:5/db?schema=x");
        assert_eq!(redacted("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redacted("postgresql://h/db?password=x@y"), "postgresql://h/db?password=x@y");
        assert_eq!(redacted("/tmp/q:x@y.db"), "/tmp/q:x@y.db");
    }
}
