//! `Watch`: readiness of one queue as a file descriptor, for programs built
//! around poll/epoll/select, libuv or libevent (C: `jobq_watch`).
//!
//! The descriptor is the reading end of a socket pair (non-blocking,
//! close-on-exec). A thread per watch waits on the handle's notifier (the
//! same wakeups a blocked reserve gets: this process's commits, and other
//! processes' through the backend: SQLite's data_version watcher,
//! PostgreSQL's LISTEN) and writes one byte when the notifier moves; the
//! byte stays until `consume` reads it, so the descriptor stays readable.
//! `consume` also tells how long until the queue's next scheduled job or
//! lease expiry, for the loop's timer (such a job makes no write).

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::context::Context;
use crate::error::{Error, Result};

/// How long the watch thread waits at most before it looks at `stop` again
/// (a close also wakes it at once).
const IDLE: Duration = Duration::from_secs(1);

struct Shared {
    ctx: Arc<Context>,
    queue: Arc<str>,
    reader: UnixStream,
    writer: UnixStream,
    /// A byte is in the socket (cleared by `consume` before it reads).
    signaled: AtomicBool,
    stop: AtomicBool,
}

impl Shared {
    fn signal(&self) {
        if !self.signaled.swap(true, SeqCst) {
            // Non-blocking; one byte in an empty pair never blocks, and a
            // full pair is readable anyway.
            let _ = (&self.writer).write(&[1]);
        }
    }

    fn run(&self) {
        let notifier = &self.ctx.notifier;
        let mut seen = notifier.generation();
        while !self.stop.load(SeqCst) {
            // A store that cannot hear every other client's writes (PostgreSQL
            // with `wakeups: poll`, or while its session connection is down)
            // asks to be looked at that often: the fd then turns readable
            // that often too (a spurious wakeup, which the contract allows).
            let poll = self.ctx.store.watch_poll_ms().map(Duration::from_millis);
            let wait = poll.unwrap_or(IDLE);
            notifier.wait(seen, Instant::now() + wait, Some(&self.stop));
            if self.stop.load(SeqCst) {
                break;
            }
            let now = notifier.generation();
            if now != seen || poll.is_some() {
                seen = now;
                self.signal();
            }
        }
    }
}

/// Readiness of one queue as a file descriptor.
pub struct Watch {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").field("queue", &self.shared.queue).field("fd", &self.fd()).finish()
    }
}

impl Watch {
    /// Starts watching `queue` of the handle `ctx`. The fd starts readable,
    /// so a loop first drains the jobs that are already there.
    pub(crate) fn open(ctx: Arc<Context>, queue: Arc<str>) -> Result<Watch> {
        ctx.check_open()?;
        let io = |e: std::io::Error| Error::Io(format!("cannot make the watch's socket pair: {e}"));
        let (reader, writer) = UnixStream::pair().map_err(io)?;
        reader.set_nonblocking(true).map_err(io)?;
        writer.set_nonblocking(true).map_err(io)?;
        ctx.open_watches.fetch_add(1, SeqCst);
        let shared = Arc::new(Shared {
            ctx,
            queue,
            reader,
            writer,
            signaled: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        shared.signal();
        let runner = shared.clone();
        let thread = std::thread::Builder::new().name("jobq-watch".into()).spawn(move || runner.run());
        match thread {
            Ok(t) => Ok(Watch { shared, thread: Some(t) }),
            Err(e) => {
                shared.ctx.open_watches.fetch_sub(1, SeqCst);
                Err(Error::Internal(format!("cannot start the watch thread: {e}")))
            }
        }
    }

    /// The descriptor to wait on (readable: the queue may have a ready job).
    pub fn fd(&self) -> RawFd {
        self.shared.reader.as_raw_fd()
    }

    /// The queue watched.
    pub fn queue(&self) -> &str {
        &self.shared.queue
    }

    /// Clears the readiness, then answers how long until the queue's next
    /// scheduled job or lease expiry is due (`Some(ZERO)` if one is due
    /// now, `None` if there is none). A write after the clear makes the fd
    /// readable again, so none is missed.
    ///
    /// The socket is drained first and the flag cleared after: a signal
    /// that comes between the two finds the flag still set and writes
    /// nothing, but its commit came before this call returns, so the
    /// caller's reserve after it sees the job. (Clearing first lost
    /// wakeups for good: a signal between the clear and the read set the
    /// flag and wrote a byte that the read then took, leaving the flag set
    /// over an empty socket, so no later signal ever wrote again.)
    pub fn consume(&self) -> Result<Option<Duration>> {
        self.shared.ctx.check_open()?;
        let mut buf = [0u8; 64];
        loop {
            match (&self.shared.reader).read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::Io(format!("cannot read the watch's socket: {e}"))),
            }
        }
        self.shared.signaled.store(false, SeqCst);
        let ctx = &self.shared.ctx;
        let due = ctx.store.next_due(&self.shared.queue)?;
        let now = ctx.clock.now_ms();
        Ok(due.map(|at| Duration::from_millis(at.saturating_sub(now).max(0) as u64)))
    }

    /// Stops the thread and closes the descriptor (also on drop).
    pub fn close(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.shared.stop.store(true, SeqCst);
            self.shared.ctx.notifier.bump();
            let _ = t.join();
            self.shared.ctx.open_watches.fetch_sub(1, SeqCst);
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop();
    }
}
