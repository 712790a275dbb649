//! WAL checkpoints off the commit path. SQLite's automatic checkpoint runs
//! inside the COMMIT that crosses its threshold, so one unlucky caller (and
//! every request queued behind it in the writer) waits for a few MB of
//! copying and an fsync of the database file. Instead, the writer only
//! counts commits, and this thread runs PASSIVE checkpoints on its own
//! connection while there is write activity: they never block the writer.
//!
//! The same thread prunes done jobs whose keep time passed (`prune`, see
//! `Pruner` in mod.rs): after each checkpoint while commits happen, and
//! about once a second while idle, so no caller's commit pays for it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Mutex, PoisonError};
use std::thread::Thread;
use std::time::{Duration, Instant};

use super::sql::Conn;

/// How often to checkpoint while commits are happening. Each checkpoint
/// syncs the WAL and the database file, so this bounds that extra fsync load.
const INTERVAL: Duration = Duration::from_millis(200);
/// Checkpoint sooner once this many commits piled up (keeps the WAL small).
const EARLY_COMMITS: u64 = 1000;

#[derive(Default)]
pub(crate) struct Checkpointer {
    commits: AtomicU64,
    thread: Mutex<Option<Thread>>,
}

impl Checkpointer {
    /// Called by the writer after each commit; cheap.
    pub(crate) fn note_commit(&self) {
        let n = self.commits.fetch_add(1, SeqCst) + 1;
        if n == 1 || n == EARLY_COMMITS {
            self.wake();
        }
    }

    pub(crate) fn set_thread(&self, t: Thread) {
        *self.thread.lock().unwrap_or_else(PoisonError::into_inner) = Some(t);
    }

    fn wake(&self) {
        if let Some(t) = self.thread.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            t.unpark();
        }
    }

    /// The thread's loop: checkpoint at most every INTERVAL while commits
    /// happen (sooner after EARLY_COMMITS), sleep while idle.
    /// `tail` checkpoints the last frames with this process's writes held
    /// back (the writer's `TailCheckpoint::run`); `prune` deletes expired
    /// done jobs, reading through `conn` first whether there are any.
    pub(crate) fn run(&self, conn: Conn, tail: impl Fn(), prune: impl Fn(&Conn), closed: &AtomicBool) {
        let mut last = Instant::now();
        while !closed.load(SeqCst) {
            let pending = self.commits.load(SeqCst);
            if pending == 0 {
                std::thread::park_timeout(Duration::from_secs(1));
                if !closed.load(SeqCst) && self.commits.load(SeqCst) == 0 {
                    prune(&conn);
                }
                continue;
            }
            let since = last.elapsed();
            if pending < EARLY_COMMITS && since < INTERVAL {
                std::thread::park_timeout(INTERVAL - since);
                continue;
            }
            self.commits.store(0, SeqCst);
            // Errors (a reader pinning old frames, a busy lock) only delay
            // the checkpoint to the next round.
            {
                let _quiet = crate::fork::quiet();
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            }
            // The bulk was copied without blocking anyone; now the frames
            // committed meanwhile, with this process's writes held back.
            tail();
            prune(&conn);
            last = Instant::now();
        }
    }
}
