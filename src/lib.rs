//! jobq: a durable job queue in one SQLite file shared by the threads and
//! processes of one machine, or in a PostgreSQL database shared by many
//! machines, with at-least-once delivery, leases, retries with backoff, dead
//! letters, delays, priorities, unique jobs and batches.
//!
//! Layers point one way: `ffi` (the C ABI) -> the core (`Queue`, `Job`,
//! `Worker`) -> `store` (the seam, and one backend per folder). The core is
//! safe Rust; code that trusts raw pointers from C lives only in `ffi`.
//!
//! ```no_run
//! use jobq::{Config, PutOptions, Queue};
//! use std::time::Duration;
//! let q = Queue::open("/tmp/jobs.db", Config::default())?;
//! q.put("mail", b"hello", &PutOptions::default())?;
//! if let Some(job) = q.reserve("mail", Some(Duration::from_secs(1)))? {
//!     println!("job {} says {:?}", job.id(), job.payload());
//!     job.ack()?;
//! }
//! q.close()?;
//! # Ok::<(), jobq::Error>(())
//! ```

// The C handles are 64-bit tokens (a 4-bit type tag, a 28-bit generation, a
// 32-bit slot; src/ffi/handle.rs) in pointer-typed values. On a 32-bit target
// they would be cut to their slot and every handle refused at run time; a
// narrower layout would shrink the generation that makes stale handles fail
// (a freed handle would name a new object after a few hundred reuses of its
// slot). No 32-bit target is built or tested, so refuse to build for one.
#[cfg(not(target_pointer_width = "64"))]
compile_error!("jobq supports 64-bit targets only: its C handles are 64-bit tokens (see src/ffi/handle.rs)");

mod admin;
pub mod backoff;
pub mod clock;
pub mod config;
mod context;
pub mod error;
mod fork;
mod info;
// The C ABI. Private to Rust users: its functions take raw pointers on the
// C caller's word, so they are for C only; Rust code uses the core API.
mod ffi;
mod job;
mod limits;
mod notify;
mod qconfig;
mod queue;
mod schedule;
mod store;
mod watch;
mod worker;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Config, Durability, Wakeups};
pub use error::{Error, Result};
pub use job::Job;
pub use qconfig::{LimitsPatch, QueueLimits, Rate};
pub use queue::{
    PutOptions, Queue, Stats, MAX_QUEUE_NAME, MAX_RESERVE_ANY, MAX_RESERVE_MANY, MAX_SCHEDULE_NAME, MIN_EVERY_MS,
};
pub use store::{redacted as printable_path, JobFilter, JobInfo, JobState, Put, QueueCounts, ScheduleInfo};
pub use watch::Watch;
pub use worker::{Handler, Outcome, Worker, WorkerOptions};
