//! The threads that make the store's blocking calls for the connections.
//! Not tokio's blocking pool: the PostgreSQL store refuses calls from any
//! thread that has a tokio runtime handle, which tokio's blocking threads
//! do. A thread is started whenever no idle one is there (up to
//! `MAX_THREADS`), and ends after `IDLE` without work.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::OnceLock;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use jobq::Error;

/// At most this many threads: a waiting reserve holds one for up to a second.
const MAX_THREADS: usize = 4096;
const IDLE: Duration = Duration::from_secs(10);
const STACK: usize = 1 << 20;

type Task = Box<dyn FnOnce() + Send>;

struct Pool {
    tx: Sender<Task>,
    rx: Receiver<Task>,
    /// Threads waiting for work and not yet claimed by a sender.
    idle: AtomicUsize,
    threads: AtomicUsize,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = crossbeam_channel::unbounded();
        Pool { tx, rx, idle: AtomicUsize::new(0), threads: AtomicUsize::new(0) }
    })
}

impl Pool {
    /// Claims an idle thread for one task, or starts one (if below the cap;
    /// else the task waits for the next free thread).
    fn claim_or_start(&'static self) {
        let mut idle = self.idle.load(SeqCst);
        while idle > 0 {
            match self.idle.compare_exchange(idle, idle - 1, SeqCst, SeqCst) {
                Ok(_) => return,
                Err(now) => idle = now,
            }
        }
        if self.threads.fetch_add(1, SeqCst) >= MAX_THREADS {
            self.threads.fetch_sub(1, SeqCst);
            return;
        }
        let started = std::thread::Builder::new().name("jobq-bs-store".into()).stack_size(STACK).spawn(|| self.work());
        if let Err(e) = started {
            self.threads.fetch_sub(1, SeqCst);
            eprintln!("jobq-beanstalkd: cannot start a store thread: {e}");
        }
    }

    fn work(&'static self) {
        loop {
            match self.rx.recv_timeout(IDLE) {
                Ok(task) => {
                    task();
                    self.idle.fetch_add(1, SeqCst);
                }
                Err(RecvTimeoutError::Timeout) => {
                    // Leave only if no sender counted on this thread meanwhile.
                    let idle = self.idle.load(SeqCst);
                    if idle > 0 && self.idle.compare_exchange(idle, idle - 1, SeqCst, SeqCst).is_ok() {
                        self.threads.fetch_sub(1, SeqCst);
                        return;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}

/// Runs `f` on a store thread; a panic in it is an internal error.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> jobq::Result<T> + Send + 'static) -> jobq::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task: Task = Box::new(move || {
        let result =
            catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| Err(Error::Internal("a store call panicked".into())));
        let _ = tx.send(result);
    });
    let pool = pool();
    pool.claim_or_start();
    if pool.tx.send(task).is_err() {
        return Err(Error::Internal("the store threads are gone".into()));
    }
    rx.await.unwrap_or_else(|_| Err(Error::Internal("a store call was dropped".into())))
}
