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
    /// The file cannot be created or written: permissions, missing directory, disk full.
    #[error("I/O error: {0}")]
    Io(String),
    /// The file is not a jobq database, or it is damaged.
    #[error("corrupt or foreign file: {0}")]
    Corrupt(String),
    /// The file was written by a newer, incompatible jobq.
    #[error("the file has schema version {found}; this jobq supports up to {supported}")]
    Version { found: i64, supported: i64 },
    /// The payload exceeds `max_payload_bytes`.
    #[error("payload of {len} bytes exceeds max_payload_bytes ({max})")]
    TooBig { len: usize, max: usize },
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
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ffi::ErrorCode as C;
        match &e {
            rusqlite::Error::SqliteFailure(f, _) => {
                let msg = e.to_string();
                match f.code {
                    C::DatabaseBusy | C::DatabaseLocked => {
                        Error::Busy(format!("{msg} (another process held the lock past busy_timeout_ms)"))
                    }
                    C::DiskFull => Error::Io(format!("{msg} (disk or quota full)")),
                    C::ReadOnly => Error::Io(format!("{msg} (file or directory is read-only)")),
                    C::PermissionDenied | C::CannotOpen | C::SystemIoFailure | C::NoLargeFileSupport => Error::Io(msg),
                    C::NotADatabase | C::DatabaseCorrupt => Error::Corrupt(msg),
                    // jobq never writes a NULL into a NOT NULL column: a row
                    // that makes a statement do so was damaged on disk.
                    C::ConstraintViolation if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_NOTNULL => {
                        Error::Corrupt(format!("{msg} (a damaged row)"))
                    }
                    C::TooBig => Error::TooBig { len: 0, max: 0 },
                    _ => Error::Internal(msg),
                }
            }
            // A column holding a value of the wrong type: jobq wrote every
            // row with the right types, so the file was damaged.
            rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..) => {
                Error::Corrupt(format!("{e} (a damaged row: the file is corrupt)"))
            }
            _ => Error::Internal(e.to_string()),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}
