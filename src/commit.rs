//! Group commit: every write of a process goes through one writer thread
//! that owns the write connection. It takes all requests waiting in its
//! channel, applies them in ONE transaction with one sync, and only then
//! answers each caller. Under load, N concurrent writers share one fsync.
//!
//! Each request says whether it must be durable before its caller hears
//! back (a put must; a reserve or an ack need not: losing one on power loss
//! only means a job is delivered again, which at-least-once allows). A batch
//! with no durable request commits without syncing; the next durable commit
//! syncs the WAL, and with it everything before it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use rusqlite::Connection;

use crate::checkpoint::Checkpointer;
use crate::clock::Clock;
use crate::config::Durability;
use crate::error::{Error, Result};
use crate::notify::Notifier;

/// Called once the request's transaction committed (`None`) or failed.
pub(crate) type Done = Box<dyn FnOnce(Option<&Error>) + Send>;
/// The request's statements, run with the connection and the batch's time;
/// returns its answer-to-be and whether it failed. Given `None` it runs
/// nothing (the transaction could not start) and only prepares the answer.
type Work = Box<dyn FnOnce(Option<(&Connection, i64)>) -> (Done, bool) + Send>;

pub(crate) struct Request {
    work: Work,
    durable: bool,
    /// Whether a commit of this request can make jobs ready (wakes waiting reserves).
    wakes: bool,
}

enum Msg {
    Request(Request),
    Stop,
}

/// Most requests applied in one transaction; bounds the latency a long batch adds.
const MAX_BATCH: usize = 1024;

pub(crate) struct Writer {
    tx: Sender<Msg>,
}

impl Writer {
    pub(crate) fn start(conn: Connection, ctx: WriterContext) -> Result<(Writer, JoinHandle<()>)> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new()
            .name("jobq-writer".into())
            .spawn(move || run(conn, rx, ctx))
            .map_err(|e| Error::Internal(format!("cannot start the writer thread: {e}")))?;
        Ok((Writer { tx }, thread))
    }

    /// Runs `f` inside the writer's next transaction and returns its result
    /// once that transaction committed.
    pub(crate) fn submit<T, F>(&self, durable: bool, wakes: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, i64) -> Result<T> + Send + 'static,
    {
        let (reply_tx, reply_rx) = crossbeam_channel::bounded::<Result<T>>(1);
        let work: Work = Box::new(move |ctx| {
            let result = match ctx {
                Some((conn, now)) => f(conn, now),
                None => Err(Error::Internal("not run".into())),
            };
            let failed = result.is_err();
            let done: Done = Box::new(move |commit_error| {
                let answer = match commit_error {
                    Some(e) => Err(e.clone()),
                    None => result,
                };
                let _ = reply_tx.send(answer);
            });
            (done, failed)
        });
        self.tx
            .send(Msg::Request(Request { work, durable, wakes }))
            .map_err(|_| Error::Shutdown("the queue is closed".into()))?;
        reply_rx.recv().map_err(|_| Error::Shutdown("the request was dropped: the queue was closed".into()))?
    }

    /// Asks the writer to finish what it has and exit.
    pub(crate) fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
    }
}

/// What the writer thread needs besides its connection.
pub(crate) struct WriterContext {
    pub durability: Durability,
    pub clock: Arc<dyn Clock>,
    pub notifier: Arc<Notifier>,
    pub checkpointer: Arc<Checkpointer>,
}

fn run(conn: Connection, rx: Receiver<Msg>, ctx: WriterContext) {
    let WriterContext { durability, clock, notifier, checkpointer } = ctx;
    let mut synced = durability == Durability::Full;
    let mut pending: Vec<Request> = Vec::new();
    let mut stopping = false;
    while !stopping {
        if pending.is_empty() {
            match rx.recv() {
                Ok(Msg::Request(r)) => pending.push(r),
                Ok(Msg::Stop) | Err(_) => break,
            }
        }
        while pending.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Msg::Request(r)) => pending.push(r),
                Ok(Msg::Stop) => {
                    stopping = true;
                    break;
                }
                Err(_) => break,
            }
        }
        // Sync only batches that hold a durable request (see the module doc).
        if durability == Durability::Full {
            let want = pending.iter().any(|r| r.durable);
            if want != synced {
                let pragma = if want { "PRAGMA synchronous = FULL" } else { "PRAGMA synchronous = NORMAL" };
                if conn.execute_batch(pragma).is_ok() {
                    synced = want;
                }
            }
        }
        let batch = std::mem::take(&mut pending);
        pending = apply(&conn, batch, clock.now_ms(), &notifier);
        checkpointer.note_commit();
    }
    // Requests still queued after Stop: the channel is dropped with them,
    // which answers their callers with Shutdown.
    drop(rx);
}

/// Applies `batch` in one transaction and answers each request. Returns the
/// requests not yet run (when a failure rolled the transaction back midway).
fn apply(conn: &Connection, batch: Vec<Request>, now: i64, notifier: &Notifier) -> Vec<Request> {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let e = Error::from(e);
        for r in batch {
            let (done, _) = (r.work)(None);
            done(Some(&e));
        }
        return Vec::new();
    }
    let mut dones: Vec<Done> = Vec::with_capacity(batch.len());
    let mut wakes = false;
    let mut rest = batch.into_iter();
    let mut rolled_back = None;
    for r in rest.by_ref() {
        let (done, failed) = run_guarded(r.work, conn, now);
        dones.push(done);
        wakes |= r.wakes && !failed;
        // A failure such as a full disk makes SQLite roll back the whole
        // transaction: nothing of this batch was stored.
        if failed && conn.is_autocommit() {
            rolled_back =
                Some(Error::Io("the transaction was rolled back (disk full or I/O error); nothing was stored".into()));
            break;
        }
    }
    let outcome = match rolled_back {
        Some(e) => Some(e),
        None => conn.execute_batch("COMMIT").err().map(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            Error::from(e)
        }),
    };
    for done in dones {
        done(outcome.as_ref());
    }
    if outcome.is_none() && wakes {
        notifier.bump();
    }
    rest.collect()
}

/// A panic inside a request must not take the writer down with it.
fn run_guarded(work: Work, conn: &Connection, now: i64) -> (Done, bool) {
    match catch_unwind(AssertUnwindSafe(|| work(Some((conn, now))))) {
        Ok(r) => r,
        // The request's reply channel was dropped with it: its caller gets an error.
        Err(_) => (Box::new(|_| {}), true),
    }
}
