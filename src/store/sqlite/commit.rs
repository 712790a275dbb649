//! Group commit. All writes of a process share one write connection, and
//! whoever holds it applies every request waiting at that moment in ONE
//! transaction with one sync, then answers each caller. Under load, N
//! concurrent writers share one fsync.
//!
//! Who holds it: a caller that finds the connection free runs its own
//! request right away on its own thread, together with anything queued
//! (no thread hand-off on the uncontended path). A caller that finds it busy
//! queues its request and waits; the holder may take it into its batch, and
//! otherwise the writer thread picks it up as soon as the connection is
//! free. The writer thread only ever leads when no caller does.
//!
//! Each request says whether it must be durable before its caller hears
//! back (a put must; a reserve or an ack need not: losing one on power loss
//! only means a job is delivered again, which at-least-once allows). No
//! COMMIT syncs; with durability "full", a durable request's caller then
//! waits for a group fsync of the WAL (sync.rs), outside the write lock.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use rusqlite::Connection;

use super::checkpoint::Checkpointer;
use super::sql::Conn;
use super::sync::{Syncer, Ticket};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::notify::Notifier;

/// Called once the request's transaction committed (`Ok(commit number)`,
/// 0 when no sync is needed) or failed.
type Done = Box<dyn FnOnce(std::result::Result<u64, &Error>) + Send>;
/// A queued request's statements, run with the connection and the batch's
/// time; returns its answer-to-be and whether it failed. Given `None` it runs
/// nothing (the transaction could not start) and only prepares the answer.
type Work = Box<dyn FnOnce(Option<(&Connection, i64)>) -> (Done, bool) + Send>;

struct Request {
    work: Work,
    /// Durability "full": counts this request as on its way to a commit
    /// until the transaction that runs it ends (or it is dropped unrun).
    ticket: Option<Ticket>,
    durable: bool,
    /// Whether a commit of this request can make jobs ready (wakes waiting reserves).
    wakes: bool,
}

enum Msg {
    Request(Request),
    Stop,
}

/// The caller's own request on the fast path: not boxed, not queued.
struct Inline<'a> {
    run: &'a mut dyn FnMut(&Connection, i64) -> bool,
    durable: bool,
    wakes: bool,
}

/// Most requests applied in one transaction; bounds the latency a long batch adds.
const MAX_BATCH: usize = 1024;
/// Most requests waiting for the writer; a caller beyond it waits to queue.
const QUEUE_CAP: usize = 4096;

/// What the writer needs besides its connection.
pub(crate) struct WriterContext {
    /// How long to wait for another process's write lock.
    pub busy_timeout: Duration,
    pub clock: Arc<dyn Clock>,
    pub notifier: Arc<Notifier>,
    pub checkpointer: Arc<Checkpointer>,
    /// Durability "full": the group fsync that durable requests wait for.
    pub syncer: Option<Arc<Syncer>>,
}

struct WriteConn {
    conn: Conn,
}

struct Shared {
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
    conn: Mutex<WriteConn>,
    ctx: WriterContext,
    stopped: AtomicBool,
    /// Set by `stop`: the writer thread ends after the Stop message, or
    /// after any transaction if a leader took that message.
    stop_requested: AtomicBool,
    /// Tests: queued durable callers answered before their flush (each
    /// then sleeps a second time, in wait_durable).
    #[cfg(test)]
    answered_early: std::sync::atomic::AtomicU64,
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
}

impl Writer {
    /// Starts the writer thread; it calls `ready` once it is set up (see
    /// `queue::Startup`).
    pub(crate) fn start(
        conn: Conn,
        ctx: WriterContext,
        ready: impl FnOnce() + Send + 'static,
    ) -> Result<(Writer, JoinHandle<()>)> {
        // Waits for other processes' locks are ours to do: see begin_immediate.
        conn.busy_timeout(Duration::ZERO)?;
        // Commits never sync: with durability "full", durable requests wait
        // for the group fsync instead (sync.rs).
        conn.execute_batch("PRAGMA synchronous = NORMAL")?;
        // Bounded: the array flavour allocates nothing per message, so the
        // writer thread's receive never frees memory outside a quiet
        // section (see run).
        let (tx, rx) = crossbeam_channel::bounded(QUEUE_CAP);
        let shared = Arc::new(Shared {
            tx,
            rx,
            conn: Mutex::new(WriteConn { conn }),
            ctx,
            stopped: AtomicBool::new(false),
            stop_requested: AtomicBool::new(false),
            #[cfg(test)]
            answered_early: Default::default(),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("jobq-writer".into())
            .spawn(move || {
                // crossbeam allocates a thread-local wait context the first
                // time a receive blocks: do that now, before open returns.
                let first = s.rx.recv_timeout(Duration::from_millis(1)).ok();
                ready();
                s.run(first)
            })
            .map_err(|e| Error::Internal(format!("cannot start the writer thread: {e}")))?;
        Ok((Writer { shared }, thread))
    }

    /// Runs `f` inside the next transaction and returns its result once that
    /// transaction committed.
    pub(crate) fn submit<T, F>(&self, durable: bool, wakes: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, i64) -> Result<T> + Send + 'static,
    {
        let s = &self.shared;
        if s.stopped.load(SeqCst) {
            return Err(Error::Shutdown("the queue is closed".into()));
        }
        // Quiet before the connection, everywhere (fork.rs): the lock order.
        let quiet = crate::fork::quiet();
        let guard = match s.conn.try_lock() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        };
        let ticket = match &s.ctx.syncer {
            Some(syncer) if durable => Some(syncer.ticket()),
            _ => None,
        };
        if let Some(mut guard) = guard {
            let (result, seq, deferred) = s.lead_with(&mut guard, durable, wakes, f);
            drop(guard);
            drop(quiet);
            drop(ticket);
            let result = s.durable_after(result, seq);
            // Late joiners that wait for the same flush hear back once it
            // has ended (see Deferred).
            deferred.answer();
            return result;
        }
        drop(quiet);
        let (reply_tx, reply_rx) = crossbeam_channel::bounded::<(Result<T>, u64)>(1);
        let work: Work = Box::new(move |ctx| {
            let result = match ctx {
                Some((conn, now)) => f(conn, now),
                None => Err(Error::Internal("not run".into())),
            };
            let failed = result.is_err();
            let done: Done = Box::new(move |commit| {
                let answer = match commit {
                    Err(e) => (Err(e.clone()), 0),
                    Ok(seq) => (result, seq),
                };
                let _ = reply_tx.send(answer);
            });
            (done, failed)
        });
        s.tx.send(Msg::Request(Request { work, ticket, durable, wakes }))
            .map_err(|_| Error::Shutdown("the queue is closed".into()))?;
        if s.stopped.load(SeqCst) {
            // The writer may have drained the channel for the last time
            // before our request arrived: drop what is left (ours included)
            // so every waiting caller hears Shutdown.
            s.discard_queued();
        }
        let (result, seq) =
            reply_rx.recv().map_err(|_| Error::Shutdown("the queue was closed before the request ran".into()))?;
        #[cfg(test)]
        if let Some(syncer) = s.ctx.syncer.as_ref().filter(|sy| seq > 0 && !sy.is_synced(seq)) {
            let _ = syncer;
            s.answered_early.fetch_add(1, SeqCst);
        }
        s.durable_after(result, seq)
    }

    /// Another handle on this writer (for the pruning in the checkpoint
    /// thread); `stop` of either stops both.
    pub(crate) fn handle(&self) -> Writer {
        Writer { shared: self.shared.clone() }
    }

    /// Something that checkpoints the WAL's last frames while holding the
    /// write connection (see `Checkpointer::run`).
    pub(crate) fn tail_checkpointer(&self) -> TailCheckpoint {
        TailCheckpoint { shared: self.shared.clone() }
    }

    /// Stops the writer thread once it has applied what is queued.
    pub(crate) fn stop(&self) {
        self.shared.stop_requested.store(true, SeqCst);
        let _ = self.shared.tx.send(Msg::Stop);
    }
}

/// Checkpoints on the write connection, between this process's transactions.
pub(crate) struct TailCheckpoint {
    shared: Arc<Shared>,
}

impl TailCheckpoint {
    /// Copies the frames still in the WAL into the database file while no
    /// transaction of this process can commit, so that the checkpoint
    /// catches up with the log and the next transaction starts the WAL over
    /// from its beginning. A checkpoint that runs beside a busy writer never
    /// catches up: the WAL then grows without bound, and each commit appends
    /// to the file, whose fdatasync must also journal the new size (measured
    /// on this machine's ext4: 110 us per overwrite fdatasync, 210 us per append).
    pub(crate) fn run(&self) {
        if self.shared.stopped.load(SeqCst) {
            return;
        }
        let _quiet = crate::fork::quiet();
        let guard = lock(&self.shared.conn);
        // Errors (a reader pinning old frames, another process's lock) only
        // mean the WAL is not restarted this time.
        let _ = guard.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    }
}

/// Takes SQLite's write lock, waiting up to `timeout` for other processes.
///
/// SQLite's own busy handler sleeps 1, 2, 5 ... up to 100 ms between tries,
/// so a process that writes in a tight loop (re-taking the lock microseconds
/// after each commit) starves the others until they fail with SQLITE_BUSY
/// although the lock was free thousands of times. We retry ourselves, with
/// short waits growing from 20 us to 1 ms, so a free moment is found soon.
/// (The write connection has SQLite's busy timeout set to 0.)
fn begin_immediate(conn: &Connection, timeout: Duration) -> std::result::Result<(), Error> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(20);
    loop {
        // A cached statement: execute_batch would parse the SQL every time.
        match conn.prepare_cached("BEGIN IMMEDIATE").and_then(|mut st| st.execute([])) {
            Ok(_) => return Ok(()),
            Err(e) => {
                let err = Error::from(e);
                if !matches!(err, Error::Busy(_)) || start.elapsed() >= timeout {
                    return Err(err);
                }
            }
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(1));
    }
}

fn lock(m: &Mutex<WriteConn>) -> MutexGuard<'_, WriteConn> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// For a request that committed as number `seq` (0: needs no sync):
    /// waits until that commit is on disk. Runs on the caller's thread,
    /// outside the write lock.
    fn durable_after<T>(&self, result: Result<T>, seq: u64) -> Result<T> {
        match (&self.ctx.syncer, seq) {
            (Some(syncer), seq) if seq > 0 && result.is_ok() => syncer.wait_durable(seq, true).and(result),
            _ => result,
        }
    }

    /// The writer thread: leads whenever requests are queued and no caller leads.
    ///
    /// Everything it does between two receives, allocations and frees
    /// included, happens inside one quiet section, so that a fork() in
    /// another thread (which waits for quiet sections) never copies a lock
    /// of the memory allocator held by this thread. glibc's malloc protects
    /// itself around fork; ASan's allocator (GCC 12) does not, and a child
    /// forked while this thread freed a batch hung in its first malloc.
    fn run(&self, mut pending: Option<Msg>) {
        loop {
            let msg = match pending.take() {
                Some(m) => Ok(m),
                None => self.rx.recv(),
            };
            let first = match msg {
                Ok(Msg::Request(r)) => r,
                Ok(Msg::Stop) | Err(_) => break,
            };
            let deferred = {
                let _quiet = crate::fork::quiet();
                let mut guard = lock(&self.conn);
                // Each queued request hears its own outcome through its
                // reply; apply takes the rest of the queue along.
                self.apply(&mut guard, vec![first], None, true).1
            };
            // The durable ones hear back after the flush, outside the write
            // lock: callers arriving meanwhile lead their own transactions.
            // No gathering: requests in flight may be queued for this very
            // thread (callers that lead gather, see sync.rs).
            if let (Some(syncer), seq) = (&self.ctx.syncer, deferred.seq) {
                if !deferred.dones.is_empty() {
                    let _ = syncer.wait_durable(seq, false);
                }
            }
            {
                let _quiet = crate::fork::quiet();
                deferred.answer();
            }
            if self.stop_requested.load(SeqCst) {
                break;
            }
        }
        self.stopped.store(true, SeqCst);
        self.discard_queued();
    }

    /// Drops queued requests unanswered: their callers get Shutdown.
    fn discard_queued(&self) {
        while self.rx.try_recv().is_ok() {}
    }

    /// Moves queued requests into `batch`; true if a Stop was among them.
    fn drain(&self, batch: &mut Vec<Request>) -> bool {
        while batch.len() < MAX_BATCH {
            match self.rx.try_recv() {
                Ok(Msg::Request(r)) => batch.push(r),
                Ok(Msg::Stop) => return true,
                Err(_) => break,
            }
        }
        false
    }

    /// The fast path: the caller holds the connection and runs its own
    /// request first, plus whatever others queued meanwhile.
    fn lead_with<T, F>(&self, guard: &mut WriteConn, durable: bool, wakes: bool, f: F) -> (Result<T>, u64, Deferred)
    where
        F: FnOnce(&Connection, i64) -> Result<T>,
    {
        let mut out: Option<Result<T>> = None;
        let mut f = Some(f);
        let mut run = |conn: &Connection, now: i64| match f.take() {
            Some(f) => {
                let r = f(conn, now);
                let failed = r.is_err();
                out = Some(r);
                failed
            }
            None => true,
        };
        // apply takes whatever is queued along (its late joiners). A durable
        // leader waits for the flush anyway: its durable late joiners hear
        // back after it instead of twice (once committed, once flushed).
        let (outcome, deferred) =
            self.apply(guard, Vec::new(), Some(Inline { run: &mut run, durable, wakes }), durable);
        match (outcome, out) {
            (Err(e), _) => (Err(e), 0, deferred),
            (Ok(seq), Some(r)) => (r, if durable { seq } else { 0 }, deferred),
            (Ok(_), None) => {
                (Err(Error::Internal("the request panicked; nothing was stored for it".into())), 0, deferred)
            }
        }
    }

    /// Applies `inline` and `batch` in one transaction and answers each
    /// queued request, except (with `defer`) those that must wait for the
    /// flush: they are returned, for the caller to answer after it. Returns
    /// the transaction's commit number (for the group fsync; 0 if nothing
    /// durable was in it) or its failure.
    fn apply(
        &self,
        wc: &mut WriteConn,
        batch: Vec<Request>,
        inline: Option<Inline<'_>>,
        defer: bool,
    ) -> (std::result::Result<u64, Error>, Deferred) {
        let mut deferred = Deferred { seq: 0, dones: Vec::new() };
        // The caller holds a quiet section (fork.rs) for all of this.
        let conn: &Connection = &wc.conn;
        if let Err(e) = begin_immediate(conn, self.ctx.busy_timeout) {
            for r in batch {
                let (done, _) = (r.work)(None);
                done(Err(&e));
            }
            return (Err(e), deferred);
        }
        // Read the time once the write lock is ours: BEGIN may have waited up
        // to busy_timeout_ms for another process, and leases and delays
        // must count from when the batch really runs.
        let now = self.ctx.clock.now_ms();
        let mut run = self.run_batch(conn, now, batch, inline);
        let outcome = if run.rolled_back {
            Err(Error::Io("the transaction was rolled back (disk full or I/O error); nothing was stored".into()))
        } else {
            self.commit(conn, run.durable)
        };
        // These requests are no longer on their way: a flush need not wait for them.
        drop(std::mem::take(&mut run.tickets));
        for (done, needs_sync) in run.dones {
            match &outcome {
                Ok(seq) if needs_sync && *seq > 0 && defer => {
                    deferred.seq = *seq;
                    deferred.dones.push(done);
                }
                Ok(seq) => done(Ok(if needs_sync { *seq } else { 0 })),
                Err(e) => done(Err(e)),
            }
        }
        self.requeue(run.rest, &outcome);
        if outcome.is_ok() {
            if run.wakes {
                self.ctx.notifier.bump();
            }
            self.ctx.checkpointer.note_commit();
        }
        (outcome, deferred)
    }

    /// Runs `inline`, then `batch`, then late joiners (requests queued
    /// meanwhile) inside the open transaction, until one fails in a way that
    /// rolled the transaction back or MAX_BATCH ran.
    fn run_batch(&self, conn: &Connection, now: i64, batch: Vec<Request>, mut inline: Option<Inline<'_>>) -> Ran {
        let mut ran = Ran {
            dones: Vec::with_capacity(batch.len()),
            tickets: Vec::new(),
            rest: std::collections::VecDeque::from(batch),
            wakes: false,
            durable: false,
            rolled_back: false,
        };
        // A failure such as a full disk makes SQLite roll back the whole
        // transaction: nothing of this batch was stored.
        if let Some(i) = inline.as_mut() {
            let failed = catch_unwind(AssertUnwindSafe(|| (i.run)(conn, now))).unwrap_or(true);
            ran.wakes |= i.wakes && !failed;
            ran.durable |= i.durable;
            ran.rolled_back = failed && conn.is_autocommit();
        }
        let mut stop_seen = false;
        while !ran.rolled_back {
            let Some(r) = ran.rest.pop_front() else {
                // Late joiners: requests queued while this transaction ran
                // ride along before COMMIT, instead of waiting for a
                // transaction of their own.
                if stop_seen || ran.dones.len() >= MAX_BATCH {
                    break;
                }
                let mut more = Vec::new();
                stop_seen = self.drain(&mut more);
                if more.is_empty() {
                    break;
                }
                ran.rest.extend(more);
                continue;
            };
            ran.tickets.extend(r.ticket);
            let (done, failed) = match catch_unwind(AssertUnwindSafe(|| (r.work)(Some((conn, now))))) {
                Ok(x) => x,
                // The request's reply channel was dropped with it: its caller gets an error.
                Err(_) => (Box::new(|_: std::result::Result<u64, &Error>| {}) as Done, true),
            };
            ran.dones.push((done, r.durable));
            ran.wakes |= r.wakes && !failed;
            ran.durable |= r.durable;
            ran.rolled_back = failed && conn.is_autocommit();
        }
        if stop_seen {
            // A Stop taken from the queue belongs to the writer thread. If the
            // queue is full, the writer wakes for those requests and sees
            // stop_requested after them.
            let _ = self.tx.try_send(Msg::Stop);
        }
        ran
    }

    /// COMMITs; the commit's number for the group fsync when it held a
    /// durable request (else 0).
    fn commit(&self, conn: &Connection, durable: bool) -> std::result::Result<u64, Error> {
        match conn.prepare_cached("COMMIT").and_then(|mut st| st.execute([])) {
            Ok(_) => Ok(match &self.ctx.syncer {
                Some(syncer) if durable => syncer.committed(),
                _ => 0,
            }),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(Error::from(e))
            }
        }
    }

    /// Requests not run because the transaction failed midway go back in
    /// line (never blocking: this may be the writer thread itself); if the
    /// line is full, they hear the failure.
    fn requeue(&self, rest: std::collections::VecDeque<Request>, outcome: &std::result::Result<u64, Error>) {
        for r in rest {
            if self.stopped.load(SeqCst) {
                break;
            }
            if let Err(crossbeam_channel::TrySendError::Full(Msg::Request(r))) = self.tx.try_send(Msg::Request(r)) {
                let (done, _) = (r.work)(None);
                match outcome {
                    Err(e) => done(Err(e)),
                    Ok(_) => done(Err(&Error::Internal("the transaction was rolled back".into()))),
                }
            }
        }
    }
}

/// Durable requests of one committed transaction whose answers wait for
/// the flush that covers it. With durability "full" a queued caller used to
/// hear back twice: woken when its transaction committed, it then waited
/// for the group fsync and was woken again. Answered after the flush, it
/// is woken once, and its own wait for commit `seq` returns at once (or
/// with the flush's error: the callers still check, this only saves them
/// a sleep).
struct Deferred {
    seq: u64,
    dones: Vec<Done>,
}

impl Deferred {
    fn answer(self) {
        for done in self.dones {
            done(Ok(self.seq));
        }
    }
}

/// What `run_batch` ran inside one transaction.
struct Ran {
    /// Each run request's answer-to-be, and whether it needs the sync.
    dones: Vec<(Done, bool)>,
    tickets: Vec<Ticket>,
    /// Requests not run (the transaction failed before them).
    rest: std::collections::VecDeque<Request>,
    wakes: bool,
    durable: bool,
    rolled_back: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Durability};

    /// With durability "full", a caller whose durable request was queued
    /// (the connection was busy) hears back once, after the flush that
    /// covers its commit, not when it committed and again after the flush.
    #[test]
    fn a_queued_durable_caller_is_answered_after_its_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let config = Config { durability: Durability::Full, ..Config::default() };
        let conn = super::super::sql::connect(&path, &config).unwrap();
        super::super::sql::prepare_schema(&conn, &path).unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        let ctx = WriterContext {
            busy_timeout: Duration::from_secs(5),
            clock: Arc::new(crate::clock::SystemClock),
            notifier: Arc::new(Notifier::default()),
            checkpointer: Arc::new(Checkpointer::default()),
            syncer: Some(Arc::new(Syncer::new(&path))),
        };
        let (writer, thread) = Writer::start(conn, ctx, || {}).unwrap();
        let writer = Arc::new(writer);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let w = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..150 {
                        w.submit(true, false, move |c, _| Ok(c.execute("INSERT INTO t VALUES (?1)", [i])?)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let early = writer.shared.answered_early.load(SeqCst);
        writer.stop();
        thread.join().unwrap();
        let n: i64 = super::super::sql::connect(&path, &config)
            .unwrap()
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 8 * 150);
        assert_eq!(early, 0, "queued durable callers woken before their flush");
    }
}
