//! The one error type of the core. Each variant maps to exactly one negative
//! `jobq_status` code of the C API (see `ffi::status`), so a C caller and a
//! Rust caller see the same distinctions.

/// What went wrong, named for what the caller can do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A bad argument: empty queue name, bad config, oversized struct, ...
    #[error("invalid argument: {0}")]
    InvalidArg(String),
    /// A handle that is closed, freed or was never valid (used by the FFI layer).
    #[error("invalid handle: {0}")]
    Handle(String),
    /// No job with this id.
    #[error("no job with id {0}")]
    NotFound(u64),
    /// The job is not in a state that allows the operation.
    #[error("wrong state: {0}")]
    State(String),
    /// The database stayed locked past `busy_timeout_ms`, or workers still run.
    #[error("busy: {0}")]
    Busy(String),
    /// The store cannot be reached or written: permissions, missing directory,
    /// disk full; a database server that is down, unreachable or refuses us.
    #[error("I/O error: {0}")]
    Io(String),
    /// The file or schema is not a jobq store, or it is damaged.
    #[error("corrupt or foreign file: {0}")]
    Corrupt(String),
    /// The store was written by a newer, incompatible jobq.
    #[error("the store has schema version {found}; this jobq supports up to {supported}")]
    Version { found: i64, supported: i64 },
    /// A payload over `max_payload_bytes`, or a job result over
    /// `MAX_RESULT_BYTES`: `what` names the value, `limit` the bound.
    #[error("{what} of {len} bytes exceeds {limit} ({max})")]
    TooBig { what: &'static str, limit: &'static str, len: usize, max: usize },
    /// The queue or worker is being closed.
    #[error("shut down: {0}")]
    Shutdown(String),
    /// A bug in jobq (including a caught panic).
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArg(msg.into())
    }

    /// The same error (same code) with `prefix: ` before its message, to
    /// say which item of a batch it is about.
    pub(crate) fn prefixed(self, prefix: &str) -> Self {
        let p = |m: String| format!("{prefix}: {m}");
        match self {
            Error::InvalidArg(m) => Error::InvalidArg(p(m)),
            Error::Handle(m) => Error::Handle(p(m)),
            Error::State(m) => Error::State(p(m)),
            Error::Busy(m) => Error::Busy(p(m)),
            Error::Io(m) => Error::Io(p(m)),
            Error::Corrupt(m) => Error::Corrupt(p(m)),
            Error::Shutdown(m) => Error::Shutdown(p(m)),
            Error::Internal(m) => Error::Internal(p(m)),
            other @ (Error::NotFound(_) | Error::Version { .. } | Error::TooBig { .. }) => other,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}
