//! The SQLite backend: one queue file on one machine, shared by the threads
//! and processes that open it.
//!
//! - `sql`: the schema, its version checks, one function per statement.
//! - `admin`: the statements of listing, purging and compacting.
//! - `commit`: group commit (all writes of a process share one write
//!   connection and one transaction per batch).
//! - `sync`: group fsync of the WAL for durability "full", outside the write lock.
//! - `checkpoint`: WAL checkpoints off the commit path.
//! - `process`: lease owners named by process, to reclaim a dead process's jobs.
//! - `error`: SQLite's errors as the core's.
//!
//! Threads per handle: the writer (leads a transaction when no caller
//! does), the watcher (notices other processes' commits through
//! `PRAGMA data_version` while someone waits), the checkpointer, and the
//! scheduler (puts the jobs of due schedules, `fire_schedules`).

mod admin;
mod checkpoint;
mod commit;
mod error;
mod process;
mod sql;
mod sync;
pub(crate) mod wal_gather;

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use self::checkpoint::Checkpointer;
use self::commit::{Writer, WriterContext};
use self::sql::Conn;
use crate::clock::Clock;
use crate::config::{Config, Durability, Wakeups};
use crate::error::{Error, Result};
use crate::notify::{Notifier, MAX_POLL, MIN_POLL};
use crate::qconfig::{earliest, LimitsPatch, Stored};
use crate::store::{
    Attempt, Delivery, Env, Finish, JobFilter, JobInfo, JobState, NewJob, NewSchedule, Outcome, Put, QueueCounts,
    ReadyHead, ReserveIf, ScheduleInfo, Store,
};

/// How often (ms) a reserve that finds nothing checks whether the holders of
/// other leases in the queue are still alive.
const OWNER_SCAN_MS: i64 = 200;
/// Most queue names a handle remembers as recorded in the file.
const MAX_KNOWN_QUEUES: usize = 4096;
/// The scheduler re-reads the earliest slot at least this often (ms), to
/// see schedules that other processes made or changed.
const SCHEDULE_RECHECK_MS: i64 = 1000;
/// After a failed fire (a lock held past busy_timeout_ms), try again after this long.
const SCHEDULE_RETRY_MS: i64 = 50;

/// When this handle last checked whether other processes holding leases
/// are alive (one scan serves all queues of the handle for OWNER_SCAN_MS).
struct OwnerScan {
    last: AtomicI64,
    others_alive: AtomicBool,
}

/// An open queue file.
pub(crate) struct SqliteStore {
    path: PathBuf,
    config: Config,
    clock: Arc<dyn Clock>,
    writer: Writer,
    /// The stats' connection (list and show open one per call).
    reader: Mutex<Conn>,
    /// Stops the watcher and the checkpointer.
    closed: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// This process, as stored in the leases it holds.
    owner: Arc<str>,
    owner_scan: Arc<OwnerScan>,
    /// Queues known to be recorded in the file (skips an insert per put).
    known: Mutex<HashSet<Arc<str>>>,
    /// The scheduler thread, woken when this handle changes a schedule.
    scheduler: Option<std::thread::Thread>,
    /// Whether a reserve of this handle met a queue with limits: from then
    /// on, every finish that frees a reserved slot wakes waiting reserves
    /// (a finish does not know its job's queue).
    limited: Arc<AtomicBool>,
}

impl SqliteStore {
    /// Opens (creating if missing) the queue file at `path`.
    pub(crate) fn open(path: &Path, config: &Config, env: Env) -> Result<SqliteStore> {
        if config.pool_size != Config::default().pool_size {
            return Err(Error::invalid("config: pool_size is for PostgreSQL stores; a queue file has one writer"));
        }
        if config.wakeups != Wakeups::Listen {
            return Err(Error::invalid("config: wakeups is for PostgreSQL stores"));
        }
        create_file(path, config.file_mode)?;
        let write_conn = sql::connect(path, config)?;
        sql::prepare_schema(&write_conn, path)?;
        let reader = sql::connect(path, config)?;
        let watch_conn = sql::connect(path, config)?;
        let checkpoint_conn = sql::connect(path, config)?;
        let schedule_conn = sql::connect(path, config)?;
        let checkpointer = Arc::new(Checkpointer::default());
        let ctx = WriterContext {
            busy_timeout: Duration::from_millis(config.busy_timeout_ms),
            clock: env.clock.clone(),
            notifier: env.notifier.clone(),
            checkpointer: checkpointer.clone(),
            syncer: (config.durability == Durability::Full).then(|| Arc::new(sync::Syncer::new(path))),
        };
        let closed = Arc::new(AtomicBool::new(false));
        let startup = Startup::new(4);
        let ready = startup.clone();
        let (writer, writer_thread) = Writer::start(write_conn, ctx, move || ready.done())?;
        let mut threads = vec![writer_thread];
        let spawned = spawn_threads(
            &mut threads,
            &writer,
            watch_conn,
            checkpoint_conn,
            schedule_conn,
            &env.clock,
            &env.notifier,
            &checkpointer,
            &closed,
            &startup,
            Pruner { writer: writer.handle(), clock: env.clock.clone() },
        );
        if let Err(e) = spawned {
            closed.store(true, SeqCst);
            writer.stop();
            for t in threads {
                t.thread().unpark();
                let _ = t.join();
            }
            return Err(Error::Internal(format!("cannot start a queue thread: {e}")));
        }
        startup.wait(Duration::from_secs(2));
        let scheduler =
            threads.iter().find(|t| t.thread().name() == Some("jobq-schedules")).map(|t| t.thread().clone());
        Ok(SqliteStore {
            path: path.to_path_buf(),
            config: config.clone(),
            clock: env.clock,
            writer,
            reader: Mutex::new(reader),
            closed,
            threads: Mutex::new(threads),
            owner: process::current_owner().into(),
            owner_scan: Arc::new(OwnerScan {
                last: AtomicI64::new(i64::MIN / 2),
                others_alive: AtomicBool::new(false),
            }),
            known: Mutex::new(HashSet::new()),
            scheduler,
            limited: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Whether `finish` must wake waiting reserves: it may make a job ready,
    /// or it frees a reserved slot and this handle has met limited queues.
    fn finish_wakes(&self, finish: &Finish) -> bool {
        finish.wakes() || (!matches!(finish, Finish::Touch { .. }) && self.limited.load(SeqCst))
    }

    fn is_known(&self, queue: &str) -> bool {
        self.known.lock().unwrap_or_else(PoisonError::into_inner).contains(queue)
    }

    fn mark_known(&self, queue: Arc<str>) {
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        // A program that makes up names endlessly re-records them instead of
        // growing this set without bound.
        if known.len() < MAX_KNOWN_QUEUES {
            known.insert(queue);
        }
    }

    /// A fresh read connection for an admin call. Use it under
    /// `crate::fork::quiet()`, taken after this returns (guards must not nest).
    fn admin_conn(&self) -> Result<Conn> {
        sql::connect(&self.path, &self.config)
    }
}

/// Creates the file ourselves so that it gets the configured mode (SQLite
/// would use 0644); its -wal and -shm files inherit the mode from it.
fn create_file(path: &Path, mode: u32) -> Result<()> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(mode)
        .open(path)
        .map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
    Ok(())
}

/// Deletes done jobs whose keep time passed (`keep_done_ms`, docs/results.md),
/// from the checkpoint thread: a read through the jobs_done index first, and
/// only if something expired, DELETEs of `PRUNE_BATCH` rows each through the
/// writer (so they share group commits and never hold the write lock long),
/// at most `MAX_ROUNDS` per call. Each handle of the file prunes every
/// handle's expired rows: the row's expiry was set by the acking handle.
struct Pruner {
    writer: Writer,
    clock: Arc<dyn Clock>,
}

impl Pruner {
    /// Up to 20 x 500 rows per checkpoint round (every 200 ms under load):
    /// far more than a single file's writer acks in that time.
    const MAX_ROUNDS: usize = 20;

    fn run(&self, conn: &Conn) {
        for _ in 0..Self::MAX_ROUNDS {
            let expired = {
                let _quiet = crate::fork::quiet();
                sql::done_expired(conn, self.clock.now_ms())
            };
            // An error (a busy or closed file) only delays the pruning.
            if !matches!(expired, Ok(true)) {
                return;
            }
            match self.writer.submit(false, false, |c, now| sql::prune_done(c, now, sql::PRUNE_BATCH)) {
                Ok(n) if n as i64 == sql::PRUNE_BATCH => {}
                _ => return,
            }
        }
    }
}

/// Starts the watcher, the checkpointer and the scheduler; each counts
/// itself in `startup`.
#[allow(clippy::too_many_arguments)]
fn spawn_threads(
    threads: &mut Vec<JoinHandle<()>>,
    writer: &Writer,
    watch_conn: Conn,
    checkpoint_conn: Conn,
    schedule_conn: Conn,
    clock: &Arc<dyn Clock>,
    notifier: &Arc<Notifier>,
    checkpointer: &Arc<Checkpointer>,
    closed: &Arc<AtomicBool>,
    startup: &Startup,
    pruner: Pruner,
) -> std::io::Result<()> {
    let (n, c, ready) = (notifier.clone(), closed.clone(), startup.clone());
    let t = std::thread::Builder::new()
        .name("jobq-watcher".into())
        .spawn(move || watch(watch_conn, &n, &c, move || ready.done()))?;
    notifier.set_watcher(t.thread().clone());
    threads.push(t);
    let (k, c, tail, ready) = (checkpointer.clone(), closed.clone(), writer.tail_checkpointer(), startup.clone());
    let t = std::thread::Builder::new().name("jobq-checkpoint".into()).spawn(move || {
        ready.done();
        k.run(checkpoint_conn, || tail.run(), |conn| pruner.run(conn), &c)
    })?;
    checkpointer.set_thread(t.thread().clone());
    threads.push(t);
    let (k, n, c, clock, ready) =
        (checkpointer.clone(), notifier.clone(), closed.clone(), clock.clone(), startup.clone());
    let t = std::thread::Builder::new().name("jobq-schedules".into()).spawn(move || {
        ready.done();
        run_schedules(&schedule_conn, &*clock, &n, &k, &c)
    })?;
    threads.push(t);
    Ok(())
}

/// The scheduler thread: sleeps until the earliest schedule slot (re-read
/// at least every SCHEDULE_RECHECK_MS, and whenever this handle changes a
/// schedule), then fires what is due on its own connection, in one write
/// transaction (BEGIN IMMEDIATE: every process's fires are serialized by
/// the file's write lock, and the slot's compare-and-set makes a slot that
/// another process fired first put nothing). With no schedules, its cost
/// is one indexed `min()` per second. Each round, allocations included,
/// runs inside one quiet section (fork.rs), as the writer thread's do.
fn run_schedules(
    conn: &Conn,
    clock: &dyn Clock,
    notifier: &Notifier,
    checkpointer: &Checkpointer,
    closed: &AtomicBool,
) {
    while !closed.load(SeqCst) {
        let wait_ms = {
            let _quiet = crate::fork::quiet();
            schedule_round(conn, clock, notifier, checkpointer)
        };
        if wait_ms > 0 && !closed.load(SeqCst) {
            std::thread::park_timeout(Duration::from_millis(wait_ms as u64));
        }
    }
}

/// One round of the scheduler: fires what is due; returns how long to sleep (ms).
fn schedule_round(conn: &Connection, clock: &dyn Clock, notifier: &Notifier, checkpointer: &Checkpointer) -> i64 {
    let now = clock.now_ms();
    let next = match sql::next_schedule(conn) {
        Ok(next) => next,
        Err(_) => return SCHEDULE_RECHECK_MS,
    };
    match next {
        Some(slot) if slot <= now => match fire_in_transaction(conn, clock) {
            Ok(fired) => {
                checkpointer.note_commit();
                if fired > 0 {
                    notifier.bump();
                }
                0
            }
            Err(_) => SCHEDULE_RETRY_MS,
        },
        Some(slot) => (slot - now).clamp(1, SCHEDULE_RECHECK_MS),
        None => SCHEDULE_RECHECK_MS,
    }
}

/// `sql::fire_due` in a write transaction of its own on `conn`.
fn fire_in_transaction(conn: &Connection, clock: &dyn Clock) -> Result<u64> {
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    // The time once the write lock is ours (BEGIN may have waited).
    let result = sql::fire_due(conn, clock.now_ms());
    match result {
        Ok(fired) => match conn.prepare_cached("COMMIT").and_then(|mut st| st.execute([])) {
            Ok(_) => Ok(fired),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(e.into())
            }
        },
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

impl Store for SqliteStore {
    fn put(&self, job: NewJob, payload: Vec<u8>) -> Result<Put> {
        let known = self.is_known(&job.queue);
        let queue = job.queue.clone();
        let put = self.writer.submit(true, true, move |conn, now| {
            if !known {
                sql::add_queue(conn, &job.queue, now)?;
            }
            if let Some(key) = job.unique_key.as_deref() {
                // A lease that expired on its last attempt freed its key.
                sql::promote_due(conn, &job.queue, now)?;
                if let Some(id) = sql::live_unique(conn, &job.queue, key)? {
                    return Ok(Put::Duplicate(id));
                }
            }
            Ok(Put::Stored(sql::insert(conn, &job, &payload, now)?))
        })?;
        if !known {
            self.mark_known(queue);
        }
        Ok(put)
    }

    fn put_batch(&self, job: NewJob, payloads: Vec<Vec<u8>>) -> Result<Vec<u64>> {
        let known = self.is_known(&job.queue);
        let queue = job.queue.clone();
        let ids = self.writer.submit(true, true, move |conn, now| {
            conn.prepare_cached("SAVEPOINT put_batch")?.execute([])?;
            let stored = (|| {
                if !known {
                    sql::add_queue(conn, &job.queue, now)?;
                }
                sql::insert_many(conn, &job, &payloads, now)
            })();
            match stored {
                Ok(ids) => {
                    conn.prepare_cached("RELEASE put_batch")?.execute([])?;
                    Ok(ids)
                }
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK TO put_batch; RELEASE put_batch");
                    Err(e)
                }
            }
        })?;
        if !known {
            self.mark_known(queue);
        }
        Ok(ids)
    }

    fn reserve(&self, queue: &Arc<str>, want: usize) -> Result<Attempt> {
        let (name, owner, scan, limited) =
            (queue.clone(), self.owner.clone(), self.owner_scan.clone(), self.limited.clone());
        self.writer
            .submit(false, false, move |conn, now| attempt_reserve(conn, now, &name, &owner, &scan, &limited, want))
    }

    fn finish(&self, id: u64, token: i64, finish: Finish) -> Result<bool> {
        // No finish needs an fsync before it returns: if a power loss undoes
        // one, the job is delivered again (at-least-once), never lost.
        let wakes = self.finish_wakes(&finish);
        self.writer.submit(false, wakes, move |conn, now| sql::finish(conn, id, token, &finish, now))
    }

    fn finish_and_reserve(
        &self,
        queue: &Arc<str>,
        outcomes: Vec<Outcome>,
        want: usize,
        when: ReserveIf,
    ) -> Result<(Vec<bool>, Attempt)> {
        let wakes = outcomes.iter().any(|(_, _, f)| self.finish_wakes(f));
        let (name, owner, scan, limited) =
            (queue.clone(), self.owner.clone(), self.owner_scan.clone(), self.limited.clone());
        self.writer.submit(false, wakes, move |conn, now| {
            let current = outcomes
                .iter()
                .map(|(id, token, finish)| sql::finish(conn, *id, *token, finish, now))
                .collect::<Result<Vec<bool>>>()?;
            let want = if when == ReserveIf::AllCurrent && current.contains(&false) { 0 } else { want };
            Ok((current, attempt_reserve(conn, now, &name, &owner, &scan, &limited, want)?))
        })
    }

    fn kick(&self, queue: &str, max: u64) -> Result<u64> {
        let queue = queue.to_owned();
        self.writer.submit(true, true, move |conn, now| sql::kick(conn, &queue, max, now))
    }

    fn cancel(&self, id: u64) -> Result<()> {
        self.writer.submit(true, false, move |conn, now| sql::cancel(conn, id, now))
    }

    fn kick_job(&self, id: u64) -> Result<()> {
        self.writer.submit(true, true, move |conn, now| {
            if sql::kick_job(conn, id, now)?.is_some() {
                return Ok(());
            }
            match admin::get(conn, id, now)? {
                None => Err(Error::NotFound(id)),
                Some(job) => {
                    Err(Error::State(format!("job {id} is {}: only a dead or scheduled job can be kicked", job.state)))
                }
            }
        })
    }

    fn peek(&self, queue: &str, state: JobState) -> Result<Option<JobInfo>> {
        let conn = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        let _quiet = crate::fork::quiet();
        admin::peek(&conn, queue, state, self.clock.now_ms())
    }

    fn ready_heads(&self, queues: &[Arc<str>]) -> Result<Vec<ReadyHead>> {
        let conn = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        let _quiet = crate::fork::quiet();
        let now = self.clock.now_ms();
        let mut heads = Vec::new();
        for (index, queue) in queues.iter().enumerate() {
            if let Some((priority, id)) = sql::ready_head(&conn, queue, now)? {
                heads.push(ReadyHead { index, priority, id });
            }
        }
        heads.sort_unstable_by_key(|h| (h.priority, h.id));
        Ok(heads)
    }

    fn set_paused(&self, queue: &str, paused: bool) -> Result<()> {
        let name: Arc<str> = queue.into();
        let recorded = name.clone();
        // A resume wakes this process's waiting reserves when it commits;
        // other processes' watchers see the commit (data_version) and wake theirs.
        self.writer.submit(true, !paused, move |conn, now| sql::set_paused(conn, &name, paused, now))?;
        if paused {
            self.mark_known(recorded);
        }
        Ok(())
    }

    fn set_limits(&self, queue: &str, patch: &LimitsPatch) -> Result<()> {
        let name: Arc<str> = queue.into();
        let recorded = name.clone();
        let patch = *patch;
        // Wakes this process's waiting reserves when it commits; other
        // processes' watchers see the commit (data_version) and wake theirs.
        let recorded_now =
            self.writer.submit(true, true, move |conn, now| sql::set_limits(conn, &name, &patch, now))?;
        self.limited.store(true, SeqCst);
        // A queue left without limits was not recorded by this call.
        if recorded_now {
            self.mark_known(recorded);
        }
        Ok(())
    }

    fn put_schedule(&self, s: NewSchedule) -> Result<()> {
        let queue = s.job.queue.clone();
        self.writer.submit(true, false, move |conn, now| sql::put_schedule(conn, &s, now))?;
        self.mark_known(queue);
        if let Some(t) = &self.scheduler {
            t.unpark();
        }
        Ok(())
    }

    fn remove_schedule(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.writer.submit(true, false, move |conn, _| sql::remove_schedule(conn, &name))
    }

    fn schedules(&self) -> Result<Vec<ScheduleInfo>> {
        let conn = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        let _quiet = crate::fork::quiet();
        sql::schedules(&conn)
    }

    fn fire_schedules(&self) -> Result<u64> {
        self.writer.submit(true, true, sql::fire_due)
    }

    fn counts(&self) -> Result<Vec<(String, QueueCounts)>> {
        let conn = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        let _quiet = crate::fork::quiet();
        sql::counts(&conn, self.clock.now_ms())
    }

    fn list(&self, filter: &JobFilter) -> Result<Vec<JobInfo>> {
        let conn = self.admin_conn()?;
        let _quiet = crate::fork::quiet();
        admin::list(&conn, filter, self.clock.now_ms())
    }

    fn job(&self, id: u64) -> Result<Option<JobInfo>> {
        let conn = self.admin_conn()?;
        let _quiet = crate::fork::quiet();
        admin::get(&conn, id, self.clock.now_ms())
    }

    fn purge_dead(&self, queue: &str) -> Result<u64> {
        let queue = queue.to_owned();
        self.writer.submit(true, false, move |conn, now| admin::purge_dead(conn, &queue, now))
    }

    fn last_job_id(&self) -> Result<u64> {
        let conn = self.admin_conn()?;
        let _quiet = crate::fork::quiet();
        admin::last_job_id(&conn)
    }

    fn next_due(&self, queue: &str) -> Result<Option<i64>> {
        let conn = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        let _quiet = crate::fork::quiet();
        let due = sql::next_due(&conn, queue)?;
        let window_end = sql::limits(&conn, queue)?.and_then(|l| l.blocked_until(self.clock.now_ms()));
        Ok(earliest(due, window_end))
    }

    fn watch_poll_ms(&self) -> Option<u64> {
        // The data_version watcher runs while anyone waits on the notifier.
        None
    }

    fn compact(&self) -> Result<()> {
        let conn = self.admin_conn()?;
        let _quiet = crate::fork::quiet();
        // A reader of another process holding an old snapshot may keep part
        // of the WAL alive; the file is compacted either way, and the WAL is
        // reused from its start once that reader finishes.
        admin::compact(&conn)?;
        Ok(())
    }

    fn close(&self) {
        self.closed.store(true, SeqCst);
        self.writer.stop();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for t in threads {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Tries to lease up to `max` ready jobs of `name`, in (priority, id) order,
/// within the queue's limits (read and counted in this write transaction,
/// which SQLite serialises across processes, so they hold for all); when
/// none is ready, checks (throttled) for dead lease holders and finds when
/// to look again. Notes in `limited` that this handle has seen a limited
/// queue (its finishes then wake waiting reserves).
fn attempt_reserve(
    conn: &Connection,
    now: i64,
    name: &str,
    owner: &str,
    scan: &OwnerScan,
    limited: &AtomicBool,
    max: usize,
) -> Result<Attempt> {
    if max == 0 {
        return Ok(Attempt::default());
    }
    sql::promote_due(conn, name, now)?;
    let limits = sql::limits(conn, name)?;
    if limits.is_some() && !limited.load(SeqCst) {
        limited.store(true, SeqCst);
    }
    // How many the limits allow now (all of `max` without limits).
    let allowed = |conn: &Connection| -> Result<usize> {
        Ok(match &limits {
            None => max,
            Some(l) => {
                let reserved = if l.limits.max_reserved.is_some() { sql::reserved_now(conn, name, now)? } else { 0 };
                l.allowance(now, reserved, max)
            }
        })
    };
    let mut cap = allowed(conn)?;
    let mut first = if cap > 0 { sql::claim_next(conn, name, now, owner)? } else { None };
    // Between scans, go by the last scan's answer.
    let mut others_hold = scan.others_alive.load(SeqCst);
    // Nothing ready (or the cap is reached): maybe a dead process holds
    // jobs. /proc is read at most every OWNER_SCAN_MS per queue handle.
    if first.is_none() && now - scan.last.load(SeqCst) >= OWNER_SCAN_MS {
        scan.last.store(now, SeqCst);
        let (reclaimed, alive) = sql::reclaim_dead_owners(conn, name, now, owner, process::owner_is_dead)?;
        scan.others_alive.store(alive, SeqCst);
        others_hold = alive;
        if reclaimed > 0 {
            cap = allowed(conn)?;
            if cap > 0 {
                first = sql::claim_next(conn, name, now, owner)?;
            }
        }
    }
    let mut more: Vec<Delivery> = Vec::new();
    while first.is_some() && 1 + more.len() < cap {
        match sql::claim_next(conn, name, now, owner)? {
            Some(d) => more.push(d),
            None => break,
        }
    }
    let mut attempt = Attempt { first, more, next_due: None, recheck_ms: None };
    let mut blocked_until = None;
    if let Some(l) = &limits {
        let taken = attempt.len() as u64;
        if l.limits.rate.is_some() && taken > 0 {
            let window = l.after_taking(now, taken);
            sql::set_window(conn, name, window)?;
            blocked_until = Stored { window_start: window.0, window_count: window.1, ..*l }.blocked_until(now);
        } else {
            blocked_until = l.blocked_until(now);
        }
    }
    if attempt.len() < max {
        // A full rate window holds the queue back until it ends.
        attempt.next_due = earliest(sql::next_due(conn, name)?, blocked_until);
        // While other processes hold leases, look again every OWNER_SCAN_MS
        // in case one of them died.
        attempt.recheck_ms = others_hold.then_some(OWNER_SCAN_MS as u64);
    }
    Ok(attempt)
}

/// The watcher: while someone waits in a reserve, polls `PRAGMA
/// data_version` (a read of shared memory, no I/O) to notice commits of
/// other processes, and wakes the waiters. Sleeps while nobody waits.
fn watch(conn: Conn, notifier: &Notifier, closed: &AtomicBool, ready: impl FnOnce()) {
    let mut last = sql::data_version(&conn).ok();
    ready();
    let mut interval = MIN_POLL;
    while !closed.load(SeqCst) {
        if notifier.waiters() == 0 {
            std::thread::park_timeout(Duration::from_secs(1));
            interval = MIN_POLL;
            continue;
        }
        let now = sql::data_version(&conn).ok();
        if now != last {
            last = now;
            notifier.bump();
            interval = MIN_POLL;
        } else {
            interval = (interval * 2).min(MAX_POLL);
        }
        std::thread::park_timeout(interval);
    }
}

/// Open returns only once the backend's threads are set up. A thread that is
/// still starting allocates memory (its stack guard, thread-locals, wait
/// contexts) outside any quiet section (fork.rs): a program that forks right
/// after jobq_open could copy an allocator lock held by it. glibc's malloc
/// guards itself around fork; ASan's (GCC 12) does not, and the C tests'
/// children hung in their first malloc about one run in six.
#[derive(Clone)]
struct Startup(Arc<(Mutex<usize>, std::sync::Condvar)>);

impl Startup {
    fn new(threads: usize) -> Startup {
        Startup(Arc::new((Mutex::new(threads), std::sync::Condvar::new())))
    }

    fn done(&self) {
        let mut left = self.0 .0.lock().unwrap_or_else(PoisonError::into_inner);
        *left = left.saturating_sub(1);
        self.0 .1.notify_all();
    }

    /// Waits (at most `limit`: a late thread only widens that window again).
    fn wait(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut left = self.0 .0.lock().unwrap_or_else(PoisonError::into_inner);
        while *left > 0 {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            left = self.0 .1.wait_timeout(left, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
    }
}
