//! How SQLite's errors map to the core's `Error` (and so to the C codes).

use crate::error::Error;

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
                    C::TooBig => Error::TooBig { what: "a value", limit: "SQLite's limit", len: 0, max: 0 },
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
