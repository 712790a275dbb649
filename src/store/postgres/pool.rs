//! Connections: how one is opened (settings every jobq connection runs
//! with), a per-connection cache of prepared statements, and a small pool
//! of `pool_size` of them. Hand-written rather than deadpool-postgres: it
//! is ~100 lines, needs no further crate, and does exactly what the store
//! needs (a broken connection is dropped and replaced on the next call,
//! a failed call rolls back before its connection is reused).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::{Client, NoTls, Socket, Statement};

use super::errors;
use super::url::{quote_ident, StoreUrl};
use crate::config::{Config, Durability};
use crate::error::{Error, Result};

/// What a call fails with inside the store: a driver error (mapped, and
/// maybe retried, by `Pool::run`) or the core's own answer.
#[derive(Debug)]
pub(crate) enum Fail {
    Pg(tokio_postgres::Error),
    Core(Error),
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Self {
        Fail::Pg(e)
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Core(e)
    }
}

/// How many times a transaction that hit a serialization failure or a
/// deadlock is run again.
const RETRIES: usize = 5;

/// How every connection of a store is opened.
pub(crate) struct Settings {
    pub url: StoreUrl,
    /// Run on every new connection: search_path, synchronous_commit, lock_timeout.
    setup: String,
    /// Durability "full": connections start with synchronous_commit on.
    pub durable: bool,
}

impl Settings {
    pub(crate) fn new(url: StoreUrl, config: &Config) -> Settings {
        let sync = match config.durability {
            Durability::Full => "on",
            Durability::Normal => "off",
        };
        // lock_timeout 0 would mean "wait forever"; busy_timeout_ms 0 means
        // "do not wait", as close as PostgreSQL gets is 1 ms.
        let lock_ms = config.busy_timeout_ms.max(1);
        let setup = format!(
            "SET search_path = {}; SET synchronous_commit = {sync}; SET lock_timeout = {lock_ms}",
            quote_ident(&url.schema)
        );
        Settings { url, setup, durable: config.durability == Durability::Full }
    }

    pub(crate) fn target(&self) -> &str {
        &self.url.target
    }

    pub(crate) fn map(&self, e: &tokio_postgres::Error) -> Error {
        errors::map(&self.url.target, e)
    }

    pub(crate) fn fail(&self, f: Fail) -> Error {
        match f {
            Fail::Pg(e) => self.map(&e),
            Fail::Core(e) => e,
        }
    }

    /// Opens a connection; the caller drives its `Connection` half.
    pub(crate) async fn connect_raw(
        &self,
    ) -> Result<(Client, tokio_postgres::Connection<Socket, tokio_postgres::tls::NoTlsStream>)> {
        let limit = self.url.pg.get_connect_timeout().copied().unwrap_or(super::url::DEFAULT_CONNECT_TIMEOUT);
        // The driver's connect_timeout bounds each TCP connect; this bounds
        // the whole start-up (TLS refusal, authentication) as well.
        match tokio::time::timeout(limit + limit / 2, self.url.pg.connect(NoTls)).await {
            Ok(Ok(pair)) => Ok(pair),
            Ok(Err(e)) => {
                Err(Error::Io(format!("cannot connect to PostgreSQL at {}: {}", self.url.target, detail(&e))))
            }
            Err(_) => Err(Error::Io(format!(
                "cannot connect to PostgreSQL at {}: timed out after {} ms",
                self.url.target,
                limit.as_millis()
            ))),
        }
    }

    /// Runs the per-connection settings on a new connection.
    pub(crate) async fn setup(&self, client: &Client) -> Result<()> {
        client.batch_execute(&self.setup).await.map_err(|e| self.map(&e))
    }

    /// A new connection, driven by a task of the current runtime.
    pub(crate) async fn connect(&self) -> Result<Conn> {
        let (client, connection) = self.connect_raw().await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        self.setup(&client).await?;
        Ok(Conn { client, stmts: HashMap::new(), fast: false })
    }
}

/// A connect error with its causes (the driver's Display leaves out e.g.
/// "password authentication failed" details and OS errors).
fn detail(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    super::errors::with_sources(e)
}

/// One connection and its prepared statements.
pub(crate) struct Conn {
    pub client: Client,
    stmts: HashMap<&'static str, Statement>,
    /// The session's synchronous_commit was turned off (durability "full"
    /// only; with "normal" it is off from the start) for work that need not
    /// wait for the WAL flush (`Pool::run_fast`).
    pub fast: bool,
}

impl Conn {
    /// Whether commits on this connection wait for the WAL flush now.
    pub(crate) fn waits_for_flush(&self, settings: &Settings) -> bool {
        settings.durable && !self.fast
    }

    /// Sets the session's synchronous_commit for the next work: `fast` =
    /// do not wait for the WAL flush. A statement only when it changes.
    async fn set_fast(&mut self, fast: bool, settings: &Settings) -> std::result::Result<(), tokio_postgres::Error> {
        if settings.durable && self.fast != fast {
            let sql = if fast { "SET synchronous_commit = off" } else { "SET synchronous_commit = on" };
            self.client.batch_execute(sql).await?;
            self.fast = fast;
        }
        Ok(())
    }

    /// `sql`, prepared on this connection once.
    pub(crate) async fn prep(&mut self, sql: &'static str) -> std::result::Result<Statement, tokio_postgres::Error> {
        if let Some(st) = self.stmts.get(sql) {
            return Ok(st.clone());
        }
        let st = self.client.prepare(sql).await?;
        self.stmts.insert(sql, st.clone());
        Ok(st)
    }
}

/// Up to `size` connections, opened on demand, replaced when broken.
pub(crate) struct Pool {
    pub settings: std::sync::Arc<Settings>,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
}

/// A connection taken from the pool; goes back when dropped unless broken.
pub(crate) struct Lease<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
    _permit: SemaphorePermit<'a>,
}

impl Lease<'_> {
    pub(crate) fn conn(&mut self) -> Option<&mut Conn> {
        self.conn.as_mut()
    }

    /// Drops the connection instead of giving it back.
    pub(crate) fn discard(&mut self) {
        self.conn = None;
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if !conn.client.is_closed() {
                self.pool.idle.lock().unwrap_or_else(PoisonError::into_inner).push(conn);
            }
        }
    }
}

impl Pool {
    pub(crate) fn new(settings: std::sync::Arc<Settings>, size: u32, first: Conn) -> Pool {
        Pool { settings, idle: Mutex::new(vec![first]), permits: Semaphore::new(size.max(1) as usize) }
    }

    /// A connection: an idle one that is still open, or a new one.
    pub(crate) async fn get(&self) -> Result<Lease<'_>> {
        let permit = self.permits.acquire().await.map_err(|_| Error::Shutdown("the store is closed".into()))?;
        loop {
            let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
            match idle {
                Some(conn) if conn.client.is_closed() => continue,
                Some(conn) => return Ok(Lease { pool: self, conn: Some(conn), _permit: permit }),
                None => break,
            }
        }
        let conn = self.settings.connect().await?;
        Ok(Lease { pool: self, conn: Some(conn), _permit: permit })
    }

    /// Runs `f` on a connection: again on a serialization failure or a
    /// deadlock; after any failure, rolls back what `f` left open, and
    /// drops a connection that broke (the next call opens a new one).
    pub(crate) async fn run<T>(&self, f: impl AsyncFnMut(&mut Conn) -> std::result::Result<T, Fail>) -> Result<T> {
        self.run_with(false, f).await
    }

    /// `run` for work whose commits need not wait for the WAL flush (a
    /// claim: undone by a server crash, the job is delivered again).
    pub(crate) async fn run_fast<T>(&self, f: impl AsyncFnMut(&mut Conn) -> std::result::Result<T, Fail>) -> Result<T> {
        self.run_with(true, f).await
    }

    async fn run_with<T>(
        &self,
        fast: bool,
        mut f: impl AsyncFnMut(&mut Conn) -> std::result::Result<T, Fail>,
    ) -> Result<T> {
        let mut tries = 0;
        loop {
            let mut lease = self.get().await?;
            let Some(conn) = lease.conn() else {
                return Err(Error::Internal("a pool lease without a connection".into()));
            };
            let result = match conn.set_fast(fast, &self.settings).await {
                Ok(()) => f(conn).await,
                Err(e) => Err(Fail::Pg(e)),
            };
            match result {
                Ok(v) => return Ok(v),
                Err(fail) => {
                    let retry = matches!(&fail, Fail::Pg(e) if errors::is_retryable(e)) && tries < RETRIES;
                    let clean = match &fail {
                        Fail::Pg(e) => errors::is_clean_failure(e),
                        Fail::Core(_) => true,
                    };
                    if clean {
                        // Ends a transaction `f` had open (a warning otherwise).
                        if conn.client.batch_execute("ROLLBACK").await.is_err() {
                            lease.discard();
                        }
                    } else {
                        lease.discard();
                    }
                    if retry {
                        tries += 1;
                        continue;
                    }
                    return Err(self.settings.fail(fail));
                }
            }
        }
    }

    /// Closes every idle connection; later calls fail.
    pub(crate) fn close(&self) {
        self.permits.close();
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}
