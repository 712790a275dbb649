//! The largest values accepted from callers, checked by the core before
//! anything reaches the store.

/// Longest accepted queue name, in bytes.
pub const MAX_QUEUE_NAME: usize = 1024;
/// Longest accepted unique key, in bytes.
pub const MAX_UNIQUE_KEY: usize = 4096;
/// Largest delay or lease accepted from a caller (~3 years), in ms.
pub const MAX_DELAY_MS: u64 = 100_000_000_000;
/// Most jobs one `reserve_many` leases (JOBQ_RESERVE_MANY_MAX): one
/// transaction holds the write lock for all of them.
pub const MAX_RESERVE_MANY: usize = 1000;
/// Most queues one `reserve_any` looks at (JOBQ_RESERVE_ANY_MAX): each
/// wait reads the head of every one of them.
pub const MAX_RESERVE_ANY: usize = 64;
/// Longest accepted schedule name, in bytes.
pub const MAX_SCHEDULE_NAME: usize = 1024;
/// Largest `max_reserved` or `rate.jobs` of a queue's limits.
pub const MAX_LIMIT: u64 = 1_000_000_000_000;
/// Largest result `Job::ack_result` (jobq_ack_result) stores, in bytes
/// (JOBQ_RESULT_MAX): results are kept in the job's row, read whole by
/// jobq_job_info, and meant to be small.
pub const MAX_RESULT_BYTES: usize = 64 * 1024;
