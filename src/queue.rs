//! `Queue`: an open queue file. Owns the writer thread (group commit), a
//! read connection for stats, and the watcher that notices other
//! processes' commits. Cheap to clone; all clones share one file handle set.

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::checkpoint::Checkpointer;
use crate::clock::{Clock, SystemClock};
use crate::commit::{Writer, WriterContext};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::job::Job;
use crate::notify::{Notifier, MAX_POLL, MIN_POLL};
use crate::store::{self, NewJob, QueueCounts};

/// Longest accepted queue name, in bytes.
pub const MAX_QUEUE_NAME: usize = 1024;
/// Longest accepted unique key, in bytes.
pub const MAX_UNIQUE_KEY: usize = 4096;
/// How often (ms) a reserve that finds nothing checks whether the holders of
/// other leases in the queue are still alive.
const OWNER_SCAN_MS: i64 = 200;
/// Most queue names a handle keeps shared copies of.
const MAX_CACHED_NAMES: usize = 4096;
/// Largest delay or lease accepted from a caller (~3 years), in ms.
pub const MAX_DELAY_MS: u64 = 100_000_000_000;

/// Options of one put. `Default` = priority 0, no delay, the file's
/// max_attempts and lease_ms, no unique key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// Smaller runs first; ties run in put order.
    pub priority: i32,
    /// Not delivered before now + delay_ms.
    pub delay_ms: u64,
    /// `None` = the file's `max_attempts`.
    pub max_attempts: Option<u32>,
    /// `None` = the file's `lease_ms`.
    pub lease_ms: Option<u64>,
    /// At most one live job per (queue, key).
    pub unique_key: Option<String>,
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

/// Counts per queue, as `jobq_stats_json` prints them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    pub queues: BTreeMap<String, QueueCounts>,
}

/// When this handle last checked whether other processes holding leases
/// are alive (one scan serves all queues of the handle for OWNER_SCAN_MS).
struct OwnerScan {
    last: AtomicI64,
    others_alive: AtomicBool,
}

pub(crate) struct Inner {
    pub(crate) path: PathBuf,
    pub(crate) config: Config,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) writer: Writer,
    pub(crate) notifier: Arc<Notifier>,
    pub(crate) closed: Arc<AtomicBool>,
    pub(crate) active_workers: AtomicUsize,
    owner_scan: Arc<OwnerScan>,
    /// Queue names this handle has used, shared so that a put or reserve
    /// needs no allocation for its name; `true` once the queue is known to
    /// be recorded in the file (skips an insert per put).
    names: Mutex<HashMap<Arc<str>, bool>>,
    reader: Mutex<store::Conn>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    owner: Arc<str>,
}

/// An open queue file. Safe to share between threads (clone it or put it in an Arc).
#[derive(Clone)]
pub struct Queue {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").field("path", &self.inner.path).finish()
    }
}

pub(crate) fn check_queue_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid("queue name is empty"));
    }
    if name.len() > MAX_QUEUE_NAME {
        return Err(Error::invalid(format!("queue name longer than {MAX_QUEUE_NAME} bytes")));
    }
    Ok(())
}

impl Queue {
    /// Opens (creating if missing) the queue file at `path`.
    pub fn open(path: impl AsRef<Path>, config: Config) -> Result<Queue> {
        Self::open_with_clock(path, config, Arc::new(SystemClock))
    }

    /// Like `open`, with a substitute clock (tests move time without sleeping).
    pub fn open_with_clock(path: impl AsRef<Path>, config: Config, clock: Arc<dyn Clock>) -> Result<Queue> {
        config.validate()?;
        let path = path.as_ref().to_path_buf();
        if path.as_os_str().is_empty() {
            return Err(Error::invalid("path is empty"));
        }
        if path.to_str().is_some_and(|p| p.starts_with("postgres://") || p.starts_with("postgresql://")) {
            return Err(Error::invalid("PostgreSQL paths are reserved for a later backend"));
        }
        // Create the file ourselves so that it gets the configured mode (SQLite
        // would use 0644); its -wal and -shm files inherit the mode from it.
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(config.file_mode)
            .open(&path)
            .map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        let write_conn = store::connect(&path, &config)?;
        store::prepare_schema(&write_conn, &path)?;
        let reader = store::connect(&path, &config)?;
        let watch_conn = store::connect(&path, &config)?;
        let checkpoint_conn = store::connect(&path, &config)?;
        let notifier = Arc::new(Notifier::default());
        let checkpointer = Arc::new(Checkpointer::default());
        let closed = Arc::new(AtomicBool::new(false));
        let ctx = WriterContext {
            busy_timeout: Duration::from_millis(config.busy_timeout_ms),
            clock: clock.clone(),
            notifier: notifier.clone(),
            checkpointer: checkpointer.clone(),
            syncer: (config.durability == crate::config::Durability::Full)
                .then(|| Arc::new(crate::sync::Syncer::new(&path))),
        };
        let startup = Startup::new(3);
        let ready = startup.clone();
        let (writer, writer_thread) = Writer::start(write_conn, ctx, move || ready.done())?;
        let mut threads = vec![writer_thread];
        let spawned = (|| -> std::io::Result<()> {
            let (n, c, ready) = (notifier.clone(), closed.clone(), startup.clone());
            let t = std::thread::Builder::new()
                .name("jobq-watcher".into())
                .spawn(move || watch(watch_conn, &n, &c, move || ready.done()))?;
            notifier.set_watcher(t.thread().clone());
            threads.push(t);
            let (k, c, tail, ready) =
                (checkpointer.clone(), closed.clone(), writer.tail_checkpointer(), startup.clone());
            let t = std::thread::Builder::new().name("jobq-checkpoint".into()).spawn(move || {
                ready.done();
                k.run(checkpoint_conn, tail, &c)
            })?;
            checkpointer.set_thread(t.thread().clone());
            threads.push(t);
            Ok(())
        })();
        if spawned.is_ok() {
            startup.wait(Duration::from_secs(2));
        }
        if let Err(e) = spawned {
            closed.store(true, SeqCst);
            writer.stop();
            for t in threads {
                t.thread().unpark();
                let _ = t.join();
            }
            return Err(Error::Internal(format!("cannot start a queue thread: {e}")));
        }
        Ok(Queue {
            inner: Arc::new(Inner {
                path,
                config,
                clock,
                writer,
                notifier,
                closed,
                active_workers: AtomicUsize::new(0),
                owner_scan: Arc::new(OwnerScan {
                    last: AtomicI64::new(i64::MIN / 2),
                    others_alive: AtomicBool::new(false),
                }),
                names: Mutex::new(HashMap::new()),
                reader: Mutex::new(reader),
                threads: Mutex::new(threads),
                owner: crate::process::current_owner().into(),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Closes the file: waiting reserves return `Shutdown`, the writer
    /// finishes what it has, and every thread the queue started is joined.
    /// `Busy` while workers run. Closing twice is a no-op.
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }

    /// Stores one job; returns once it is durable under the file's durability.
    pub fn put(&self, queue: &str, payload: &[u8], opts: &PutOptions) -> Result<Put> {
        let inner = &self.inner;
        inner.check_open()?;
        check_queue_name(queue)?;
        inner.check_payload(payload.len())?;
        let (max_attempts, lease_ms) = inner.check_put_options(opts)?;
        let (known, queue) = inner.name(queue);
        let (payload, key, priority, delay) = (payload.to_vec(), opts.unique_key.clone(), opts.priority, opts.delay_ms);
        let name = queue.clone();
        let put = inner.writer.submit(true, true, move |conn, now| {
            if !known {
                store::add_queue(conn, &queue, now)?;
            }
            if let Some(key) = key.as_deref() {
                // A lease that expired on its last attempt freed its key.
                store::promote_due(conn, &queue, now)?;
                if let Some(id) = store::live_unique(conn, &queue, key)? {
                    return Ok(Put::Duplicate(id));
                }
            }
            let job = NewJob {
                queue: &queue,
                payload: &payload,
                priority,
                run_at: now.saturating_add(delay as i64),
                max_attempts,
                lease_ms,
                unique_key: key.as_deref(),
            };
            Ok(Put::Stored(store::insert(conn, &job, now)?))
        })?;
        if !known {
            inner.mark_known(&name);
        }
        Ok(put)
    }

    /// Stores all payloads in one transaction, or none. A unique key names
    /// one job, so it is accepted only for a batch of one.
    pub fn put_batch(&self, queue: &str, payloads: &[&[u8]], opts: &PutOptions) -> Result<Vec<Put>> {
        let inner = &self.inner;
        inner.check_open()?;
        check_queue_name(queue)?;
        if opts.unique_key.is_some() && payloads.len() > 1 {
            return Err(Error::invalid("a unique_key names one job: put_batch takes it only for a batch of 1"));
        }
        if payloads.len() == 1 {
            return Ok(vec![self.put(queue, payloads[0], opts)?]);
        }
        if payloads.is_empty() {
            return Ok(Vec::new());
        }
        for p in payloads {
            inner.check_payload(p.len())?;
        }
        let (max_attempts, lease_ms) = inner.check_put_options(opts)?;
        let (known, queue) = inner.name(queue);
        let name = queue.clone();
        let payloads: Vec<Vec<u8>> = payloads.iter().map(|p| p.to_vec()).collect();
        let (priority, delay) = (opts.priority, opts.delay_ms);
        let puts = inner.writer.submit(true, true, move |conn, now| {
            conn.prepare_cached("SAVEPOINT put_batch")?.execute([])?;
            if !known {
                store::add_queue(conn, &queue, now)?;
            }
            let job = NewJob {
                queue: &queue,
                payload: &[],
                priority,
                run_at: now.saturating_add(delay as i64),
                max_attempts,
                lease_ms,
                unique_key: None,
            };
            let stored = store::insert_many(conn, &job, &payloads, now)
                .map(|ids| ids.into_iter().map(Put::Stored).collect::<Vec<_>>());
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
            inner.mark_known(&name);
        }
        Ok(puts)
    }

    /// Delivers the ready job of `queue` with the smallest (priority, id).
    /// `timeout`: `Some(ZERO)` = don't wait, `None` = wait forever.
    pub fn reserve(&self, queue: &str, timeout: Option<Duration>) -> Result<Option<Job>> {
        let deadline = timeout.map(|t| Instant::now().checked_add(t).unwrap_or_else(far_future));
        self.reserve_until(queue, deadline, None)
    }

    /// Reserve that also gives up when `stop` is set (and the notifier bumped).
    pub(crate) fn reserve_until(
        &self,
        queue: &str,
        deadline: Option<Instant>,
        stop: Option<&AtomicBool>,
    ) -> Result<Option<Job>> {
        let inner = &self.inner;
        check_queue_name(queue)?;
        loop {
            inner.check_open()?;
            let seen = inner.notifier.generation();
            let (name, owner) = (inner.name(queue).1, inner.owner.clone());
            let scan = inner.owner_scan.clone();
            let job_queue = name.clone();
            let Attempt { first, next_due, others_hold, .. } =
                inner
                    .writer
                    .submit(false, false, move |conn, now| attempt_reserve(conn, now, &name, &owner, &scan, 1))?;
            if let Some(d) = first {
                return Ok(Some(Job::new(self.inner.clone(), job_queue, d)));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) || stop.is_some_and(|s| s.load(SeqCst)) {
                return Ok(None);
            }
            self.wait_for_jobs(seen, next_due, others_hold, deadline, stop);
        }
    }

    /// Waits after a reserve attempt that found nothing (notifier generation
    /// `seen` before it): until a commit may have made a job ready, the next
    /// delay or lease in the queue ends (`next_due`), `deadline`, or `stop`.
    /// While other processes hold leases, looks again every OWNER_SCAN_MS
    /// in case one of them died.
    pub(crate) fn wait_for_jobs(
        &self,
        seen: u64,
        next_due: Option<i64>,
        others_hold: bool,
        deadline: Option<Instant>,
        stop: Option<&AtomicBool>,
    ) {
        let inner = &self.inner;
        let now = Instant::now();
        let mut until = deadline.unwrap_or_else(far_future);
        if let Some(due) = next_due {
            let wait_ms = due.saturating_sub(inner.clock.now_ms()).max(0) as u64;
            until = until.min(now + Duration::from_millis(wait_ms));
        }
        if others_hold {
            until = until.min(now + Duration::from_millis(OWNER_SCAN_MS as u64));
        }
        inner.notifier.wait(seen, until, stop);
    }

    /// The notifier's generation: read it before an attempt whose failure
    /// is followed by `wait_for_jobs`.
    pub(crate) fn generation(&self) -> u64 {
        self.inner.notifier.generation()
    }

    /// Dead -> ready for up to `max` jobs of `queue`, oldest first; attempts reset.
    pub fn kick(&self, queue: &str, max: u64) -> Result<u64> {
        self.inner.check_open()?;
        check_queue_name(queue)?;
        let queue = queue.to_owned();
        self.inner.writer.submit(true, true, move |conn, now| store::kick(conn, &queue, max, now))
    }

    /// Removes a job that is not currently delivered.
    pub fn cancel(&self, id: u64) -> Result<()> {
        self.inner.check_open()?;
        self.inner.writer.submit(true, false, move |conn, now| store::cancel(conn, id, now))
    }

    /// Counts per queue: ready, scheduled (waiting for a delay or backoff),
    /// reserved (with a live lease) and dead.
    pub fn stats(&self) -> Result<Stats> {
        self.inner.check_open()?;
        let conn = self.inner.reader.lock().unwrap_or_else(PoisonError::into_inner);
        let _quiet = crate::fork::quiet();
        let queues = store::counts(&conn, self.inner.clock.now_ms())?;
        Ok(Stats { queues: queues.into_iter().collect() })
    }
}

/// One reserve attempt's outcome, inside the writer's transaction.
pub(crate) struct Attempt {
    /// The first job leased, and (for `max` > 1) the others: a plain
    /// reserve allocates nothing here beyond the delivery itself.
    first: Option<store::Delivery>,
    more: Vec<store::Delivery>,
    /// When something next becomes due in the queue (if nothing was delivered).
    next_due: Option<i64>,
    /// Whether live processes other than this one hold leases in the queue.
    others_hold: bool,
}

/// Tries to lease up to `max` ready jobs of `name`, in (priority, id) order;
/// when none is ready, checks (throttled) for dead lease holders and finds
/// when to look again.
fn attempt_reserve(
    conn: &Connection,
    now: i64,
    name: &str,
    owner: &str,
    scan: &OwnerScan,
    max: usize,
) -> Result<Attempt> {
    let mut more = Vec::new();
    if max == 0 {
        return Ok(Attempt { first: None, more, next_due: None, others_hold: false });
    }
    let mut first = store::reserve(conn, name, now, owner)?;
    // Between scans, go by the last scan's answer.
    let mut others_hold = scan.others_alive.load(SeqCst);
    // Nothing ready: maybe a dead process holds jobs. /proc is read at most
    // every OWNER_SCAN_MS per queue handle.
    if first.is_none() && now - scan.last.load(SeqCst) >= OWNER_SCAN_MS {
        scan.last.store(now, SeqCst);
        let (reclaimed, alive) = store::reclaim_dead_owners(conn, name, now, owner, crate::process::owner_is_dead)?;
        scan.others_alive.store(alive, SeqCst);
        others_hold = alive;
        if reclaimed > 0 {
            first = store::claim_next(conn, name, now, owner)?;
        }
    }
    while first.is_some() && 1 + more.len() < max {
        match store::claim_next(conn, name, now, owner)? {
            Some(d) => more.push(d),
            None => break,
        }
    }
    let got = usize::from(first.is_some()) + more.len();
    let next_due = if got < max { store::next_due(conn, name)? } else { None };
    Ok(Attempt { first, more, next_due, others_hold })
}

/// What one transaction of a worker pool did (see `Queue::pool_round`).
pub(crate) struct PoolRound {
    /// The jobs leased in the same transaction.
    pub jobs: Vec<Job>,
    /// When something next becomes due, if fewer jobs than wanted were ready.
    pub next_due: Option<i64>,
    pub others_hold: bool,
}

impl Queue {
    /// For worker pools: stores the outcomes of finished handlers and leases
    /// up to `want` ready jobs of `queue`, all in one transaction.
    pub(crate) fn pool_round(
        &self,
        queue: &str,
        outcomes: &[(Arc<Job>, store::Finish, bool)],
        want: usize,
    ) -> Result<PoolRound> {
        let inner = &self.inner;
        // The outcomes whose delivery may still be finished go into the
        // transaction (a refused one was finished through its handle already).
        let mut jobs = Vec::with_capacity(outcomes.len());
        let mut ops = Vec::with_capacity(outcomes.len());
        let mut wakes = false;
        for (job, finish, w) in outcomes {
            if let Ok((id, token)) = job.begin_finish() {
                jobs.push(job);
                ops.push((id, token, finish.clone()));
                wakes |= *w;
            }
        }
        let (name, owner, scan) = (inner.name(queue).1, inner.owner.clone(), inner.owner_scan.clone());
        let job_queue = name.clone();
        let (current, attempt) = inner.writer.submit(false, wakes, move |conn, now| {
            let current = ops
                .iter()
                .map(|(id, token, finish)| store::finish(conn, *id, *token, finish, now))
                .collect::<Result<Vec<bool>>>()?;
            Ok((current, attempt_reserve(conn, now, &name, &owner, &scan, want)?))
        })?;
        // Record each outcome on its Job; a stale delivery's outcome changed
        // nothing (at-least-once: the job runs again elsewhere).
        for (job, current) in jobs.into_iter().zip(current) {
            let _ = job.end_finish(current, true);
        }
        let jobs = attempt
            .first
            .into_iter()
            .chain(attempt.more)
            .map(|d| Job::new(inner.clone(), job_queue.clone(), d))
            .collect();
        Ok(PoolRound { jobs, next_due: attempt.next_due, others_hold: attempt.others_hold })
    }
}

/// Open returns only once the queue's threads are set up. A thread that is
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

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

impl Inner {
    /// The shared copy of queue name `queue` (allocated on first use by
    /// this handle), and whether the queue is known to be in the file.
    fn name(&self, queue: &str) -> (bool, Arc<str>) {
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((name, known)) = names.get_key_value(queue) {
            return (*known, name.clone());
        }
        let name: Arc<str> = queue.into();
        // A program that makes up names endlessly gets fresh copies instead
        // of a cache that grows without bound.
        if names.len() < MAX_CACHED_NAMES {
            names.insert(name.clone(), false);
        }
        (false, name)
    }

    fn mark_known(&self, queue: &Arc<str>) {
        self.names.lock().unwrap_or_else(PoisonError::into_inner).insert(queue.clone(), true);
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(SeqCst) {
            Err(Error::Shutdown("the queue is closed".into()))
        } else {
            Ok(())
        }
    }

    fn check_payload(&self, len: usize) -> Result<()> {
        if len as u64 > self.config.max_payload_bytes {
            return Err(Error::TooBig { len, max: self.config.max_payload_bytes as usize });
        }
        Ok(())
    }

    fn check_put_options(&self, opts: &PutOptions) -> Result<(u32, u64)> {
        if opts.delay_ms > MAX_DELAY_MS {
            return Err(Error::invalid(format!("delay_ms must be at most {MAX_DELAY_MS}")));
        }
        let lease_ms = match opts.lease_ms {
            None | Some(0) => self.config.lease_ms,
            Some(ms) if ms > MAX_DELAY_MS => {
                return Err(Error::invalid(format!("lease_ms must be at most {MAX_DELAY_MS}")))
            }
            Some(ms) => ms,
        };
        let max_attempts = match opts.max_attempts {
            None | Some(0) => self.config.max_attempts,
            Some(n) => n,
        };
        if let Some(key) = &opts.unique_key {
            if key.len() > MAX_UNIQUE_KEY {
                return Err(Error::invalid(format!("unique_key longer than {MAX_UNIQUE_KEY} bytes")));
            }
        }
        Ok((max_attempts, lease_ms))
    }

    fn close(&self) -> Result<()> {
        if self.active_workers.load(SeqCst) > 0 {
            return Err(Error::Busy("workers are still running on this queue; stop them first".into()));
        }
        if self.closed.swap(true, SeqCst) {
            return Ok(());
        }
        self.notifier.bump();
        self.writer.stop();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for t in threads {
            t.thread().unpark();
            let _ = t.join();
        }
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.active_workers.store(0, SeqCst);
        let _ = self.close();
    }
}

/// The watcher: while someone waits in a reserve, polls `PRAGMA
/// data_version` (a read of shared memory, no I/O) to notice commits of
/// other processes, and wakes the waiters. Sleeps while nobody waits.
fn watch(conn: store::Conn, notifier: &Notifier, closed: &AtomicBool, ready: impl FnOnce()) {
    let mut last = store::data_version(&conn).ok();
    ready();
    let mut interval = MIN_POLL;
    while !closed.load(SeqCst) {
        if notifier.waiters() == 0 {
            std::thread::park_timeout(Duration::from_secs(1));
            interval = MIN_POLL;
            continue;
        }
        let now = store::data_version(&conn).ok();
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
