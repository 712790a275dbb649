//! jobq: a durable job queue in one SQLite file, shared by the threads and
//! processes of one machine, with at-least-once delivery, leases, retries
//! with backoff, dead letters, delays, priorities, unique jobs and batches.
//!
//! Layers point one way: `ffi` (the C ABI) -> the core (`Queue`, `Job`,
//! `Worker`) -> `store` (SQLite). The core is safe Rust; code that trusts raw
//! pointers from C lives only in `ffi`.
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

mod admin;
pub mod backoff;
mod checkpoint;
pub mod clock;
mod commit;
pub mod config;
pub mod error;
mod fork;
// The C ABI. Private to Rust users: its functions take raw pointers on the
// C caller's word, so they are for C only; Rust code uses the core API.
mod ffi;
mod job;
mod notify;
mod process;
mod queue;
mod store;
mod sync;
mod worker;

pub use admin::{JobFilter, JobInfo, JobState};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Config, Durability};
pub use error::{Error, Result};
pub use job::Job;
pub use queue::{Put, PutOptions, Queue, Stats, MAX_QUEUE_NAME};
pub use store::QueueCounts;
pub use worker::{Handler, Outcome, Worker, WorkerOptions};
