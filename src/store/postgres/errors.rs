//! tokio-postgres errors as the core's `Error`, with the codes of API.md:
//! a lost or unreachable server is `Io` (with the server's message), a lock
//! wait past `busy_timeout_ms` is `Busy`, serialization failures and
//! deadlocks are retried by the caller (`is_retryable`).

use tokio_postgres::error::SqlState;

use crate::error::Error;

/// `err` as the core's error; `target` (host:port) names the server.
pub(crate) fn map(target: &str, err: &tokio_postgres::Error) -> Error {
    let Some(db) = err.as_db_error() else {
        // No server error: the connection could not be made, broke, or
        // timed out.
        return Error::Io(format!("PostgreSQL at {target}: {}", describe(err)));
    };
    let code = db.code();
    let msg = format!("PostgreSQL at {target}: {} (SQLSTATE {})", db.message(), code.code());
    let class = &code.code()[..2.min(code.code().len())];
    if *code == SqlState::LOCK_NOT_AVAILABLE || *code == SqlState::QUERY_CANCELED {
        return Error::Busy(format!("{msg}: a lock was held past busy_timeout_ms"));
    }
    match class {
        // connection exception, invalid authorization, insufficient
        // resources (disk full, too many connections), operator
        // intervention (admin shutdown, terminated backend), system error
        "08" | "28" | "53" | "57" | "58" | "3D" => Error::Io(msg),
        // A table or column of ours is missing or of the wrong type: the
        // store was changed behind our back.
        "42" if *code == SqlState::UNDEFINED_TABLE || *code == SqlState::UNDEFINED_COLUMN => {
            Error::Corrupt(format!("{msg}: the jobq tables were changed or dropped"))
        }
        _ => Error::Internal(msg),
    }
}

/// Whether running the transaction again may succeed (serialization
/// failure, deadlock detected).
pub(crate) fn is_retryable(err: &tokio_postgres::Error) -> bool {
    matches!(err.code(), Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED)
}

/// Whether the failed statement left the connection usable (a server error
/// that aborted only the transaction), so the same requests can be tried
/// again one by one without doubt about what was committed.
pub(crate) fn is_clean_failure(err: &tokio_postgres::Error) -> bool {
    err.as_db_error().is_some_and(|db| {
        let c = db.code().code();
        !(c.starts_with("08") || c.starts_with("57") || c.starts_with("58"))
    })
}

/// The error with its source chain (tokio-postgres's Display leaves out the
/// OS error, e.g. "connection refused").
fn describe(err: &tokio_postgres::Error) -> String {
    let mut text = with_sources(err);
    if err.is_closed() {
        text.push_str(" (the connection was lost; the next call reconnects)");
    }
    text
}

/// `err`'s text followed by each of its sources' that adds something.
pub(crate) fn with_sources(err: &tokio_postgres::Error) -> String {
    use std::error::Error as _;
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}
