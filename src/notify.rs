//! Wakeups for waiting reserves. A generation counter that writers bump and
//! waiters watch: in-process puts bump it directly after their commit; the
//! backend bumps it when it sees that another process committed (SQLite: a
//! watcher thread that runs only while someone waits; PostgreSQL: LISTEN).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Condvar, Mutex, PoisonError};
use std::thread::Thread;
use std::time::{Duration, Instant};

#[derive(Default)]
pub(crate) struct Notifier {
    generation: AtomicU64,
    waiters: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
    watcher: Mutex<Option<Thread>>,
}

impl Notifier {
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(SeqCst)
    }

    pub(crate) fn waiters(&self) -> usize {
        self.waiters.load(SeqCst)
    }

    /// Wakes every waiter. Cheap when nobody waits (no lock taken).
    pub(crate) fn bump(&self) {
        self.generation.fetch_add(1, SeqCst);
        if self.waiters.load(SeqCst) > 0 {
            let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
            self.cv.notify_all();
        }
    }

    pub(crate) fn set_watcher(&self, thread: Thread) {
        *self.watcher.lock().unwrap_or_else(PoisonError::into_inner) = Some(thread);
    }

    fn unpark_watcher(&self) {
        if let Some(t) = self.watcher.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            t.unpark();
        }
    }

    /// Waits until the generation differs from `seen`, `stop` is set, or `until`.
    pub(crate) fn wait(&self, seen: u64, until: Instant, stop: Option<&AtomicBool>) {
        if self.waiters.fetch_add(1, SeqCst) == 0 {
            self.unpark_watcher();
        }
        let mut guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if self.generation.load(SeqCst) != seen || stop.is_some_and(|s| s.load(SeqCst)) {
                break;
            }
            let now = Instant::now();
            if now >= until {
                break;
            }
            guard = self.cv.wait_timeout(guard, until - now).unwrap_or_else(PoisonError::into_inner).0;
        }
        drop(guard);
        self.waiters.fetch_sub(1, SeqCst);
    }
}

/// How often the watcher checks for other processes' commits while someone
/// waits: starts fast after activity and backs off to `MAX_POLL` when idle,
/// so the cross-process wake latency stays within a few milliseconds.
pub(crate) const MIN_POLL: Duration = Duration::from_micros(250);
pub(crate) const MAX_POLL: Duration = Duration::from_millis(2);
