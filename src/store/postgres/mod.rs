//! PostgreSQL storage: one database (a schema in it) shared by many
//! machines. `PgStore` implements the storage seam with the meaning the
//! SQLite backend gives each operation.
//!
//! - url.rs: the store URL (`schema` split off, the rest as libpq reads it)
//! - schema.rs: tables created on first open, foreign/newer stores refused
//! - sql.rs: the statements
//! - pool.rs: connections, prepared statements, a pool of `pool_size`
//! - commit.rs: group commit of puts and finishes
//! - wake.rs: the session connection: advisory lock, LISTEN/NOTIFY
//! - owner.rs: reclaiming the jobs of dead clients
//! - errors.rs: driver errors as the core's codes
//!
//! The trait's methods block; they run their work on a tokio runtime the
//! store owns (two worker threads drive the connections).

mod commit;
mod errors;
mod owner;
mod pool;
mod schema;
mod sql;
#[cfg(test)]
mod tests;
mod url;
mod wake;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::clock::Clock;
use crate::config::{Config, Wakeups};
use crate::error::{Error, Result};
use crate::notify::Notifier;
use crate::store::{
    Attempt, Delivery, Env, Finish, JobFilter, JobInfo, JobState, NewJob, Outcome, Put, QueueCounts, ReserveIf, Store,
};

use commit::{pipeline, query, simple, Answer, Committer, Msg, Param, Write};
use pool::{Conn, Fail, Pool, Settings};
use wake::{Session, Wake};

/// How soon a waiting reserve looks again when it cannot count on
/// notifications (`wakeups: poll`, or the session connection is down).
const POLL_MS: u64 = 5;
/// How soon a waiting reserve looks again even when it is listening: a
/// client killed between its commit and its NOTIFY (or a NOTIFY lost any
/// other way) delays a wakeup by at most this much, not by the whole wait.
const LISTEN_RECHECK_MS: u64 = 1000;
/// How often a watch turns readable by itself when it cannot count on
/// notifications (each time, the loop runs a reserve).
const WATCH_POLL_MS: u64 = 20;
/// Rows deleted or updated by one handle between two VACUUMs it runs
/// itself (only when the server's autovacuum is off).
#[cfg(not(test))]
const VACUUM_EVERY: u64 = 20_000;
#[cfg(test)]
const VACUUM_EVERY: u64 = 500;
/// Done jobs one pruning statement deletes at most.
const PRUNE_BATCH: i64 = 1000;
/// How often the pruning task looks for expired done jobs: soon again
/// after it found some, backing off to the longest wait while it finds none.
const PRUNE_MIN_WAIT: Duration = Duration::from_millis(100);
const PRUNE_MAX_WAIT: Duration = Duration::from_millis(1000);
/// How long close waits for the background tasks.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// FNV-1a: a hash that is the same in every process and build (channel
/// names and lock keys must agree between clients).
pub(crate) fn fnv64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A store in a PostgreSQL schema.
pub(crate) struct PgStore {
    runtime: Mutex<Option<Arc<Runtime>>>,
    settings: Arc<Settings>,
    pool: Arc<Pool>,
    clock: Arc<dyn Clock>,
    notifier: Arc<Notifier>,
    wake: Arc<Wake>,
    writes: mpsc::UnboundedSender<Msg>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    scan: owner::Scan,
    owner: i64,
    wakeups: Wakeups,
    closed: AtomicBool,
    vacuum: Arc<SelfVacuum>,
    /// Ends the pruning task (`prune_done`).
    prune_stop: Arc<tokio::sync::Notify>,
}

/// The VACUUMs a handle runs itself when the server's autovacuum is off.
/// Without them, such a server keeps every dead row of every cycled job:
/// the table and the ready index grow without bound and each claim wades
/// through dead index entries.
struct SelfVacuum {
    pool: Arc<Pool>,
    /// Rows this handle deleted or updated since its last own VACUUM.
    churn: AtomicU64,
    running: AtomicBool,
    /// Whether this handle vacuums the jobs table itself: the server's
    /// autovacuum is off (read at open), so nothing else would.
    enabled: AtomicBool,
}

impl SelfVacuum {
    /// Counts `rows` deleted or updated; true when enough accumulated and
    /// the caller must now start `run` (one at a time).
    fn due(&self, rows: usize) -> bool {
        if rows == 0 || !self.enabled.load(SeqCst) {
            return false;
        }
        let total = self.churn.fetch_add(rows as u64, SeqCst) + rows as u64;
        if total < VACUUM_EVERY || self.running.swap(true, SeqCst) {
            return false;
        }
        self.churn.store(0, SeqCst);
        true
    }

    /// `VACUUM (SKIP_LOCKED) jobs`; a failure is left for the next one.
    async fn run(self: Arc<Self>) {
        let _ = self.pool.run(async |c| Ok(c.client.batch_execute("VACUUM (SKIP_LOCKED) jobs").await?)).await;
        self.running.store(false, SeqCst);
    }
}

/// The pruning task of a handle: deletes done jobs whose keep time passed
/// (`keep_done_ms`, docs/results.md), `PRUNE_BATCH` at a time, off every
/// caller's path, until `stop`. Every handle prunes every handle's expired
/// rows (the acking handle set the row's expiry); SKIP LOCKED keeps two
/// handles from waiting on each other. Errors (a lost server) only delay it.
async fn prune_done(pool: Arc<Pool>, clock: Arc<dyn Clock>, vacuum: Arc<SelfVacuum>, stop: Arc<tokio::sync::Notify>) {
    let mut wait = PRUNE_MIN_WAIT;
    loop {
        if tokio::time::timeout(wait, stop.notified()).await.is_ok() {
            return;
        }
        loop {
            let now = clock.now_ms();
            let deleted = pool
                .run_fast(async move |c| {
                    let st = c.prep(sql::PRUNE_DONE).await?;
                    Ok(c.client.execute(&st, &[&now, &PRUNE_BATCH]).await?)
                })
                .await
                .unwrap_or(0);
            if vacuum.due(deleted as usize) {
                tokio::spawn(vacuum.clone().run());
            }
            wait = if deleted > 0 { PRUNE_MIN_WAIT } else { (wait * 2).min(PRUNE_MAX_WAIT) };
            if deleted < PRUNE_BATCH as u64 {
                break;
            }
        }
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.settings.target())
            .field("schema", &self.settings.url.schema)
            .field("owner", &self.owner)
            .finish()
    }
}

impl PgStore {
    /// Opens (creating its tables if missing) the store named by `url`.
    pub(crate) fn open(url: &str, config: &Config, env: Env) -> Result<PgStore> {
        config.validate()?;
        if config.file_mode != Config::default().file_mode {
            return Err(Error::invalid(
                "config: file_mode means nothing for PostgreSQL (the store is a schema in a database)",
            ));
        }
        let settings = Arc::new(Settings::new(url::parse(url)?, config));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("jobq-pg")
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("cannot start the PostgreSQL runtime: {e}")))?;
        let owner = owner::new_owner_id();
        let wake = Arc::new(Wake::default());
        let session = Session {
            settings: settings.clone(),
            owner,
            listen: config.wakeups == Wakeups::Listen,
            notifier: env.notifier.clone(),
            wake: wake.clone(),
        };
        let (first, session_client, autovacuum) = runtime.block_on(async {
            let first = settings.connect().await?;
            schema::prepare(&first.client, &settings).await.map_err(|f| settings.fail(f))?;
            let session_client = session.establish().await?;
            let autovacuum: String = first
                .client
                .query_one("SELECT pg_catalog.current_setting('autovacuum')", &[])
                .await
                .and_then(|r| r.try_get(0))
                .unwrap_or_else(|_| "on".into());
            Ok::<_, Error>((first, session_client, autovacuum))
        })?;
        let pool = Arc::new(Pool::new(settings.clone(), config.pool_size, first));
        let committer = Committer::new(pool.clone(), env.clock.clone(), env.notifier.clone(), wake.clone(), owner);
        let (writes, rx) = mpsc::unbounded_channel();
        let vacuum = Arc::new(SelfVacuum {
            pool: pool.clone(),
            churn: AtomicU64::new(0),
            running: AtomicBool::new(false),
            enabled: AtomicBool::new(autovacuum == "off"),
        });
        let prune_stop = Arc::new(tokio::sync::Notify::new());
        let tasks = vec![
            runtime.spawn(committer.run(rx)),
            runtime.spawn(session.run(Some(session_client))),
            runtime.spawn(prune_done(pool.clone(), env.clock.clone(), vacuum.clone(), prune_stop.clone())),
        ];
        Ok(PgStore {
            runtime: Mutex::new(Some(Arc::new(runtime))),
            settings,
            pool,
            clock: env.clock,
            notifier: env.notifier,
            wake,
            writes,
            tasks: Mutex::new(tasks),
            scan: owner::Scan::default(),
            owner,
            wakeups: config.wakeups,
            closed: AtomicBool::new(false),
            vacuum,
            prune_stop,
        })
    }

    /// This handle's owner id (the key of its session advisory lock).
    #[cfg(test)]
    pub(crate) fn owner_id(&self) -> i64 {
        self.owner
    }

    fn shut() -> Error {
        Error::Shutdown("the queue is closed".into())
    }

    /// Runs `fut` on the store's runtime, blocking this thread.
    fn block<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        if self.closed.load(SeqCst) {
            return Err(Self::shut());
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::Internal(
                "a blocking jobq call was made from inside a tokio runtime; use spawn_blocking".into(),
            ));
        }
        let rt = self.runtime.lock().unwrap_or_else(PoisonError::into_inner).clone().ok_or_else(Self::shut)?;
        rt.block_on(fut)
    }

    /// Queues one write for the committer; the answer comes on the receiver.
    fn submit(&self, write: Write) -> Result<oneshot::Receiver<Result<Answer>>> {
        let (tx, rx) = oneshot::channel();
        self.writes.send(Msg::Write(write, tx)).map_err(|_| Self::shut())?;
        Ok(rx)
    }

    fn write(&self, write: Write) -> Result<Answer> {
        let rx = self.submit(write)?;
        self.block(async { rx.await.map_err(|_| Self::shut())? })
    }

    /// One reserve: promote due rows, claim, read when something is next
    /// due, pipelined (one round trip); when nothing was found, maybe look
    /// for dead owners.
    async fn reserve_async(&self, queue: &str, want: usize) -> Result<Attempt> {
        let mut attempt = Attempt::default();
        if want == 0 {
            return Ok(attempt);
        }
        let (mut got, mut next_due) =
            self.pool.run_fast(async |c| claim_round(c, &*self.clock, queue, want, self.owner).await).await?;
        if got.is_empty() && self.scan.due() {
            let reclaimed = self
                .pool
                .run(async |c| owner::reclaim(c, &self.scan, queue, self.clock.now_ms(), self.owner).await)
                .await?;
            if reclaimed > 0 {
                (got, next_due) =
                    self.pool.run_fast(async |c| claim_round(c, &*self.clock, queue, want, self.owner).await).await?;
                if reclaimed as usize > got.len() {
                    self.wake_queue(queue);
                }
            }
        }
        let n = got.len();
        self.churned(n);
        let mut it = got.into_iter();
        attempt.first = it.next();
        attempt.more = it.collect();
        if n < want {
            attempt.next_due = next_due;
            let mut recheck = LISTEN_RECHECK_MS;
            if self.wakeups == Wakeups::Poll || !self.wake.is_up() {
                recheck = POLL_MS;
            }
            if self.scan.others_alive() {
                recheck = recheck.min(owner::SCAN_MS);
            }
            attempt.recheck_ms = Some(recheck);
        }
        Ok(attempt)
    }

    /// Counts `rows` deleted or updated; when this handle must vacuum and
    /// enough accumulated, starts a `VACUUM (SKIP_LOCKED) jobs` in the
    /// background (see `SelfVacuum`).
    fn churned(&self, rows: usize) {
        if !self.vacuum.due(rows) {
            return;
        }
        let rt = self.runtime.lock().unwrap_or_else(PoisonError::into_inner).clone();
        match rt {
            Some(rt) => drop(rt.spawn(self.vacuum.clone().run())),
            None => self.vacuum.running.store(false, SeqCst),
        }
    }

    fn wake_queue(&self, queue: &str) {
        self.notifier.bump();
        self.wake.send([Arc::<str>::from(queue)]);
    }
}

/// Promote, claim and next-due of one queue, pipelined.
async fn claim_round(
    c: &mut Conn,
    clock: &dyn Clock,
    queue: &str,
    want: usize,
    owner: i64,
) -> std::result::Result<(Vec<Delivery>, Option<i64>), Fail> {
    let promote = c.prep(sql::PROMOTE_DUE).await?;
    let claim = c.prep(sql::CLAIM).await?;
    let now = clock.now_ms();
    let want_n = want.min(i64::MAX as usize) as i64;
    let client = &c.client;
    // One transaction, one round trip, on a connection that does not wait
    // for the WAL flush (`Pool::run_fast`): a claim undone by a server
    // crash leaves the job ready to deliver again (at-least-once), as on
    // SQLite. When the next job is due matters only when the claim came
    // short (the caller then waits): asked only then.
    let promote_p: Vec<Param> = vec![Box::new(queue.to_string()), Box::new(now)];
    let claim_p: Vec<Param> = vec![Box::new(queue.to_string()), Box::new(now), Box::new(want_n), Box::new(owner)];
    let steps = vec![
        simple(client, "BEGIN"),
        query(client, &promote, &promote_p),
        query(client, &claim, &claim_p),
        simple(client, "COMMIT"),
    ];
    let mut results = Vec::with_capacity(4);
    for r in pipeline(steps).await {
        results.push(r?);
    }
    let rows = std::mem::take(&mut results[2]);
    let next_due = if rows.len() < want {
        let next = c.prep(sql::NEXT_DUE).await?;
        c.client.query_one(&next, &[&queue]).await?.try_get::<_, Option<i64>>(0)?
    } else {
        None
    };
    let mut got = Vec::with_capacity(rows.len());
    for r in &rows {
        let delivery = Delivery {
            id: r.try_get::<_, i64>(0)? as u64,
            attempt: r.try_get::<_, i64>(2)?.clamp(0, u32::MAX as i64) as u32,
            token: r.try_get(3)?,
            lease_ms: r.try_get::<_, i64>(4)?.max(0) as u64,
            payload: r.try_get(5)?,
        };
        got.push(((r.try_get::<_, i32>(1)?, delivery.id), delivery));
    }
    // RETURNING does not keep the claim's order: (priority, id) again.
    got.sort_unstable_by_key(|(key, _)| *key);
    let got = got.into_iter().map(|(_, d)| d).collect();
    Ok((got, next_due))
}

fn job_info(r: &Row) -> std::result::Result<JobInfo, tokio_postgres::Error> {
    Ok(JobInfo {
        id: r.try_get::<_, i64>(0)? as u64,
        queue: r.try_get(1)?,
        state: JobState::from_code(r.try_get::<_, i32>(2)?.into()),
        priority: r.try_get(3)?,
        attempts: r.try_get::<_, i64>(4)?.clamp(0, u32::MAX as i64) as u32,
        max_attempts: r.try_get::<_, i64>(5)?.clamp(0, u32::MAX as i64) as u32,
        run_at: r.try_get::<_, Option<i64>>(6)?.unwrap_or(0),
        lease_ms: r.try_get::<_, i64>(7)?.max(0) as u64,
        lease_until: r.try_get(8)?,
        lease_owner: r.try_get::<_, Option<i64>>(9)?.map(|o| format!("pg-owner:{o}")),
        unique_key: r.try_get(10)?,
        payload: r.try_get::<_, Option<Vec<u8>>>(11)?.unwrap_or_default(),
        payload_len: r.try_get::<_, i32>(12)?.max(0) as u64,
        created_at: r.try_get(13)?,
        updated_at: r.try_get(14)?,
        last_error: r.try_get(15)?,
        result: r.try_get(16)?,
    })
}

fn params_of(p: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    p.iter().map(|b| b.as_ref() as &(dyn ToSql + Sync)).collect()
}

impl Store for PgStore {
    fn put(&self, job: NewJob, payload: Vec<u8>) -> Result<Put> {
        match self.write(Write::Put { job, payload })? {
            Answer::Put(p) => Ok(p),
            other => Err(Error::Internal(format!("put answered {other:?}"))),
        }
    }

    fn put_batch(&self, job: NewJob, payloads: Vec<Vec<u8>>) -> Result<Vec<u64>> {
        if payloads.is_empty() {
            return Ok(Vec::new());
        }
        match self.write(Write::Batch { job, payloads })? {
            Answer::Batch(ids) => Ok(ids),
            other => Err(Error::Internal(format!("put_batch answered {other:?}"))),
        }
    }

    fn reserve(&self, queue: &Arc<str>, want: usize) -> Result<Attempt> {
        self.block(self.reserve_async(queue, want))
    }

    fn finish(&self, id: u64, token: i64, finish: Finish) -> Result<bool> {
        match self.write(Write::Finish { id, token, finish })? {
            Answer::Finish(b) => {
                self.churned(usize::from(b));
                Ok(b)
            }
            other => Err(Error::Internal(format!("finish answered {other:?}"))),
        }
    }

    fn finish_and_reserve(
        &self,
        queue: &Arc<str>,
        outcomes: Vec<Outcome>,
        want: usize,
        when: ReserveIf,
    ) -> Result<(Vec<bool>, Attempt)> {
        // All finishes are queued at once, so they share one transaction.
        let mut replies = Vec::with_capacity(outcomes.len());
        for (id, token, finish) in outcomes {
            replies.push(self.submit(Write::Finish { id, token, finish })?);
        }
        self.block(async {
            let mut done = Vec::with_capacity(replies.len());
            for rx in replies {
                match rx.await.map_err(|_| Self::shut())?? {
                    Answer::Finish(b) => done.push(b),
                    other => return Err(Error::Internal(format!("finish answered {other:?}"))),
                }
            }
            self.churned(done.iter().filter(|b| **b).count());
            let want = if when == ReserveIf::AllCurrent && done.contains(&false) { 0 } else { want };
            let attempt = self.reserve_async(queue, want).await?;
            Ok((done, attempt))
        })
    }

    fn kick(&self, queue: &str, max: u64) -> Result<u64> {
        let kicked = self.block(self.pool.run(async |c| {
            let promote = c.prep(sql::PROMOTE_DUE).await?;
            let kick = c.prep(sql::KICK).await?;
            let max = max.min(i64::MAX as u64) as i64;
            let mut tries = 0;
            loop {
                let now = self.clock.now_ms();
                c.client.query_one(&promote, &[&queue, &now]).await?;
                match c.client.execute(&kick, &[&queue, &max, &now]).await {
                    Ok(n) => return Ok(n),
                    // A put took a dead job's key meanwhile: pick again.
                    Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) && tries < 5 => tries += 1,
                    Err(e) => return Err(Fail::Pg(e)),
                }
            }
        }))?;
        if kicked > 0 {
            self.wake_queue(queue);
        }
        Ok(kicked)
    }

    fn cancel(&self, id: u64) -> Result<()> {
        let id = id.min(i64::MAX as u64) as i64;
        self.block(self.pool.run(async |c| {
            let cancel = c.prep(sql::CANCEL).await?;
            let exists = c.prep(sql::EXISTS).await?;
            let now = self.clock.now_ms();
            let (removed, left) =
                futures_util::future::try_join(c.client.query(&cancel, &[&id, &now]), c.client.query(&exists, &[&id]))
                    .await?;
            if !removed.is_empty() {
                Ok(())
            } else if !left.is_empty() {
                Err(Fail::Core(Error::State(format!(
                    "job {id} is reserved with a live lease; it cannot be cancelled now"
                ))))
            } else {
                Err(Fail::Core(Error::NotFound(id as u64)))
            }
        }))
    }

    fn set_paused(&self, queue: &str, paused: bool) -> Result<()> {
        self.block(self.pool.run(async |c| {
            if paused {
                let st = c.prep(sql::PAUSE).await?;
                c.client.execute(&st, &[&queue, &self.clock.now_ms()]).await?;
            } else {
                let st = c.prep(sql::RESUME).await?;
                c.client.execute(&st, &[&queue]).await?;
            }
            Ok(())
        }))?;
        if !paused {
            // Waiting reserves here and (NOTIFY) in other clients look again.
            self.wake_queue(queue);
        }
        Ok(())
    }

    fn counts(&self) -> Result<Vec<(String, QueueCounts)>> {
        static COUNTS: OnceLock<String> = OnceLock::new();
        let counts_sql: &'static str = COUNTS.get_or_init(sql::counts);
        self.block(self.pool.run(async |c| {
            let names = c.prep(sql::QUEUE_NAMES).await?;
            let counts = c.prep(counts_sql).await?;
            let now = self.clock.now_ms();
            let (names, rows) =
                futures_util::future::try_join(c.client.query(&names, &[]), c.client.query(&counts, &[&now])).await?;
            let mut all = BTreeMap::new();
            for r in &names {
                let paused = r.try_get::<_, bool>(1)?;
                all.insert(r.try_get::<_, String>(0)?, QueueCounts { paused, ..QueueCounts::default() });
            }
            for r in &rows {
                let n = |i: usize| r.try_get::<_, i64>(i).map(|v| v.max(0) as u64);
                let c: &mut QueueCounts = all.entry(r.try_get::<_, String>(0)?).or_default();
                *c = QueueCounts {
                    ready: n(1)?,
                    scheduled: n(2)?,
                    reserved: n(3)?,
                    dead: n(4)?,
                    done: n(5)?,
                    paused: c.paused,
                };
            }
            Ok(all.into_iter().collect())
        }))
    }

    fn list(&self, filter: &JobFilter) -> Result<Vec<JobInfo>> {
        let mut text = sql::select_jobs(filter.payload_max);
        text.push_str(&format!(" WHERE id > $2::int8 AND NOT {}", sql::IS_GONE));
        let mut n = 2;
        if filter.queue.is_some() {
            n += 1;
            text.push_str(&format!(" AND queue = ${n}::text"));
        }
        if let Some(state) = filter.state {
            text.push_str(" AND ");
            text.push_str(match state {
                JobState::Ready => sql::IS_READY,
                JobState::Scheduled => sql::IS_SCHEDULED,
                JobState::Reserved => sql::IS_RESERVED,
                JobState::Dead => sql::IS_DEAD,
                JobState::Done => sql::IS_DONE,
            });
        }
        text.push_str(" ORDER BY id");
        if filter.limit.is_some() {
            n += 1;
            text.push_str(&format!(" LIMIT ${n}::int8"));
        }
        self.block(self.pool.run(async |c| {
            let mut p: Vec<Box<dyn ToSql + Sync + Send>> =
                vec![Box::new(self.clock.now_ms()), Box::new(filter.after_id.min(i64::MAX as u64) as i64)];
            if let Some(q) = &filter.queue {
                p.push(Box::new(q.clone()));
            }
            if let Some(limit) = filter.limit {
                p.push(Box::new(limit.min(i64::MAX as u64) as i64));
            }
            let rows = c.client.query(text.as_str(), &params_of(&p)).await?;
            Ok(rows.iter().map(job_info).collect::<std::result::Result<Vec<_>, _>>()?)
        }))
    }

    fn job(&self, id: u64) -> Result<Option<JobInfo>> {
        static GET: OnceLock<String> = OnceLock::new();
        let get: &'static str =
            GET.get_or_init(|| format!("{} WHERE id = $2::int8 AND NOT {}", sql::select_jobs(None), sql::IS_GONE));
        let id = id.min(i64::MAX as u64) as i64;
        self.block(self.pool.run(async |c| {
            let st = c.prep(get).await?;
            let row = c.client.query_opt(&st, &[&self.clock.now_ms(), &id]).await?;
            Ok(row.as_ref().map(job_info).transpose()?)
        }))
    }

    fn purge_dead(&self, queue: &str) -> Result<u64> {
        static PURGE: OnceLock<String> = OnceLock::new();
        let purge: &'static str = PURGE.get_or_init(sql::purge_dead);
        self.block(self.pool.run(async |c| {
            let st = c.prep(purge).await?;
            Ok(c.client.execute(&st, &[&self.clock.now_ms(), &queue]).await?)
        }))
    }

    fn next_due(&self, queue: &str) -> Result<Option<i64>> {
        self.block(self.pool.run(async |c| {
            let st = c.prep(sql::NEXT_DUE).await?;
            Ok(c.client.query_one(&st, &[&queue]).await?.try_get::<_, Option<i64>>(0)?)
        }))
    }

    fn watch_poll_ms(&self) -> Option<u64> {
        (self.wakeups == Wakeups::Poll || !self.wake.is_up()).then_some(WATCH_POLL_MS)
    }

    fn last_job_id(&self) -> Result<u64> {
        self.block(self.pool.run(async |c| {
            let st = c.prep(sql::LAST_ID).await?;
            let v: Option<i64> = c.client.query_one(&st, &[]).await?.try_get(0)?;
            Ok(v.unwrap_or(0).max(0) as u64)
        }))
    }

    fn compact(&self) -> Result<()> {
        self.block(self.pool.run(async |c| Ok(c.client.batch_execute("VACUUM (ANALYZE) jobs, queues, meta").await?)))
    }

    fn close(&self) {
        if self.closed.swap(true, SeqCst) {
            return;
        }
        let _ = self.writes.send(Msg::Stop);
        self.wake.stop();
        self.prune_stop.notify_one();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        let rt = self.runtime.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(rt) = rt {
            if tokio::runtime::Handle::try_current().is_err() {
                rt.block_on(async {
                    for t in tasks {
                        let _ = tokio::time::timeout(CLOSE_WAIT, t).await;
                    }
                });
            }
            self.pool.close();
            match Arc::try_unwrap(rt) {
                Ok(rt) => rt.shutdown_timeout(Duration::from_secs(1)),
                // A call still running holds it; the runtime ends when it returns.
                Err(rt) => drop(rt),
            }
        }
        // Waiting reserves look again (and see Shutdown).
        self.notifier.bump();
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.close();
    }
}
