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
//! store owns (two worker threads drive the connections). Tasks on it: the
//! committer, the session, and the scheduler (`schedule_loop`).

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
use crate::qconfig::{earliest, LimitsPatch, QueueLimits, Rate, Stored};
use crate::store::{
    Attempt, Delivery, DueSchedule, Env, Finish, JobFilter, JobInfo, JobState, NewJob, NewSchedule, Outcome, Put,
    QueueCounts, ReadyHead, ReserveIf, ScheduleInfo, Store,
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
/// How soon a reserve held back by a queue's limits looks again at most.
const LIMITED_RECHECK_MS: u64 = 100;
/// How often a watch turns readable by itself when it cannot count on
/// notifications (each time, the loop runs a reserve).
const WATCH_POLL_MS: u64 = 20;
/// Rows deleted or updated by one handle between two VACUUMs it runs
/// itself (only when the server's autovacuum is off).
#[cfg(not(test))]
const VACUUM_EVERY: u64 = 20_000;
#[cfg(test)]
const VACUUM_EVERY: u64 = 500;
/// The scheduler re-reads the earliest slot at least this often, to see
/// schedules that other clients made or changed.
const SCHEDULE_RECHECK: Duration = Duration::from_millis(1000);
/// After a failed fire (a lost connection, a lock timeout), try again after this long.
const SCHEDULE_RETRY: Duration = Duration::from_millis(50);
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
    /// Wakes the scheduler task (a schedule changed here, or close).
    schedule_poke: Arc<tokio::sync::Notify>,
    schedule_stop: Arc<AtomicBool>,
    /// Queues seen with limits (shared with the committer).
    limited: Arc<Limited>,
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
        let limited = Arc::new(Limited::default());
        let committer =
            Committer::new(pool.clone(), env.clock.clone(), env.notifier.clone(), wake.clone(), owner, limited.clone());
        let (writes, rx) = mpsc::unbounded_channel();
        let schedule_poke = Arc::new(tokio::sync::Notify::new());
        let schedule_stop = Arc::new(AtomicBool::new(false));
        let scheduler = Scheduler {
            pool: pool.clone(),
            clock: env.clock.clone(),
            notifier: env.notifier.clone(),
            wake: wake.clone(),
            poke: schedule_poke.clone(),
            stop: schedule_stop.clone(),
        };
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
            runtime.spawn(scheduler.run()),
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
            schedule_poke,
            schedule_stop,
            limited,
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
                "a blocking jobq call on a PostgreSQL store was made from a thread inside a tokio runtime \
                 (spawn_blocking threads too): make it from a plain std::thread"
                    .into(),
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
        let limited = &*self.limited;
        let (mut got, mut next_due) =
            self.pool.run_fast(async |c| claim_round(c, &*self.clock, queue, want, self.owner, limited).await).await?;
        if got.is_empty() && self.scan.due() {
            let reclaimed = self
                .pool
                .run(async |c| owner::reclaim(c, &self.scan, queue, self.clock.now_ms(), self.owner).await)
                .await?;
            if reclaimed > 0 {
                (got, next_due) = self
                    .pool
                    .run_fast(async |c| claim_round(c, &*self.clock, queue, want, self.owner, limited).await)
                    .await?;
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
            if self.limited.contains(queue) {
                // A client that does not know the queue is limited (its
                // limits came after its last claim of it) frees a slot
                // without a NOTIFY: look again soon anyway.
                recheck = recheck.min(LIMITED_RECHECK_MS);
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

/// What the scheduler task needs.
struct Scheduler {
    pool: Arc<Pool>,
    clock: Arc<dyn Clock>,
    notifier: Arc<Notifier>,
    wake: Arc<Wake>,
    poke: Arc<tokio::sync::Notify>,
    stop: Arc<AtomicBool>,
}

impl Scheduler {
    /// Sleeps until the earliest schedule slot (re-read at least every
    /// SCHEDULE_RECHECK, and when poked), then fires what is due. With no
    /// schedules, its cost is one indexed `min()` per second.
    async fn run(self) {
        while !self.stop.load(SeqCst) {
            let wait = match self.next().await {
                Err(_) => SCHEDULE_RECHECK,
                Ok(Some(slot)) if slot <= self.clock.now_ms() => match self.fire().await {
                    Ok(()) => Duration::ZERO,
                    Err(()) => SCHEDULE_RETRY,
                },
                Ok(Some(slot)) => {
                    let ms = (slot - self.clock.now_ms()).clamp(1, SCHEDULE_RECHECK.as_millis() as i64);
                    Duration::from_millis(ms as u64)
                }
                Ok(None) => SCHEDULE_RECHECK,
            };
            if !wait.is_zero() && !self.stop.load(SeqCst) {
                let _ = tokio::time::timeout(wait, self.poke.notified()).await;
            }
        }
    }

    // A task on the runtime takes its connection from the pool itself
    // (`Pool::run`'s closures do not make futures that are Send for every
    // lifetime); a connection that failed is dropped, not reused.

    async fn next(&self) -> std::result::Result<Option<i64>, ()> {
        let mut lease = self.pool.get().await.map_err(|_| ())?;
        let Some(c) = lease.conn() else { return Err(()) };
        match next_schedule(c).await {
            Ok(v) => Ok(v),
            Err(_) => {
                lease.discard();
                Err(())
            }
        }
    }

    /// `fire_due`, then wakes the reserves of the queues that got jobs.
    async fn fire(&self) -> std::result::Result<(), ()> {
        let mut lease = self.pool.get().await.map_err(|_| ())?;
        let Some(c) = lease.conn() else { return Err(()) };
        let durable = self.pool.settings.durable;
        match fire_due(c, &*self.clock, durable).await {
            Ok(queues) => {
                drop(lease);
                if !queues.is_empty() {
                    self.notifier.bump();
                    self.wake.send(queues.into_iter().map(Arc::<str>::from));
                }
                Ok(())
            }
            Err(_) => {
                lease.discard();
                Err(())
            }
        }
    }
}

async fn next_schedule(c: &mut Conn) -> std::result::Result<Option<i64>, Fail> {
    let st = c.prep(sql::NEXT_SCHEDULE).await?;
    Ok(c.client.query_one(&st, &[]).await?.try_get::<_, Option<i64>>(0)?)
}

/// One transaction: locks the due schedules (skipping those another client
/// is firing), advances each slot by compare-and-set on the value read,
/// and inserts the job of each one moved. Returns the queue of each job put.
/// `durable`: the store's durability is "full" (then the commit waits for
/// the WAL flush even on a connection last used for claims).
async fn fire_due(c: &mut Conn, clock: &dyn Clock, durable: bool) -> std::result::Result<Vec<String>, Fail> {
    let due_st = c.prep(sql::DUE_SCHEDULES).await?;
    let advance = c.prep(sql::ADVANCE_SCHEDULE).await?;
    let insert = c.prep(sql::INSERT).await?;
    let add_queue = c.prep(sql::ADD_QUEUE).await?;
    c.client.batch_execute("BEGIN").await?;
    if durable && c.fast {
        c.client.batch_execute("SET LOCAL synchronous_commit = on").await?;
    }
    let now = clock.now_ms();
    let mut due = Vec::new();
    for r in c.client.query(&due_st, &[&now]).await? {
        due.push(DueSchedule { name: r.try_get(0)?, spec: r.try_get(1)?, slot: r.try_get(2)? });
    }
    let mut queues = Vec::with_capacity(due.len());
    for d in due {
        let next = d.next_slot(now);
        let Some(row) = c.client.query_opt(&advance, &[&next, &now, &d.name, &d.slot]).await? else { continue };
        let queue: String = row.try_get(0)?;
        let delay: i64 = row.try_get(2)?;
        let run_at = now.saturating_add(delay.max(0));
        let state: i16 = if run_at > now { 3 } else { 0 };
        let payload: Vec<u8> = row.try_get(5)?;
        c.client.execute(&add_queue, &[&queue, &now]).await?;
        let params: [&(dyn ToSql + Sync); 8] = [
            &queue,
            &state,
            &row.try_get::<_, i32>(1)?,
            &run_at,
            &row.try_get::<_, i64>(3)?,
            &row.try_get::<_, i64>(4)?,
            &payload,
            &now,
        ];
        c.client.query_one(&insert, &params).await?;
        queues.push(queue);
    }
    c.client.batch_execute("COMMIT").await?;
    Ok(queues)
}

/// Most queue names a handle remembers as limited.
const MAX_LIMITED: usize = 4096;

/// The queues this handle has seen with limits: their claims go straight
/// to the locked round (`claim_limited`), and their finishes that free a
/// reserved slot wake waiting reserves (here and, by NOTIFY, elsewhere).
/// Only a hint: every claim of an unlimited queue checks in its own
/// statement that the queue has no limits, and a locked round of a queue
/// whose limits were removed claims as an unlimited one.
#[derive(Default)]
pub(crate) struct Limited(Mutex<std::collections::HashSet<Arc<str>>>);

impl Limited {
    pub(crate) fn contains(&self, queue: &str) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).contains(queue)
    }

    fn set(&self, queue: &str, limited: bool) {
        let mut set = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !limited {
            set.remove(queue);
        } else if set.len() < MAX_LIMITED && !set.contains(queue) {
            set.insert(queue.into());
        }
    }
}

/// A limited queue's stored state from `cols` (at `at`: max_reserved,
/// rate_jobs, rate_per_ms, window_start, window_count).
fn stored_of(r: &Row, at: usize) -> std::result::Result<Stored, tokio_postgres::Error> {
    let n = |v: Option<i64>| v.map(|v| v.max(0) as u64);
    let rate = match (n(r.try_get(at + 1)?), n(r.try_get(at + 2)?)) {
        (Some(jobs), Some(per_ms)) => Some(Rate { jobs, per_ms }),
        _ => None,
    };
    Ok(Stored {
        limits: QueueLimits { max_reserved: n(r.try_get(at)?), rate },
        window_start: r.try_get::<_, Option<i64>>(at + 3)?.unwrap_or(0),
        window_count: n(r.try_get(at + 4)?).unwrap_or(0),
    })
}

/// The deliveries of claimed rows, in (priority, id) order.
fn deliveries(rows: &[Row]) -> std::result::Result<Vec<Delivery>, Fail> {
    let mut got = Vec::with_capacity(rows.len());
    for r in rows {
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
    Ok(got.into_iter().map(|(_, d)| d).collect())
}

/// When something of `queue` next becomes due (`NEXT_DUE`), and its
/// limits if it has any.
async fn next_due_of(c: &mut Conn, queue: &str) -> std::result::Result<(Option<i64>, Option<Stored>), Fail> {
    let next = c.prep(sql::NEXT_DUE).await?;
    let row = c.client.query_one(&next, &[&queue]).await?;
    let due = row.try_get::<_, Option<i64>>(0)?;
    let stored = if row.try_get::<_, bool>(6)? { Some(stored_of(&row, 1)?) } else { None };
    Ok((due, stored))
}

/// Promote, claim and next-due of one queue, pipelined; a limited queue's
/// claim goes through `claim_limited`.
async fn claim_round(
    c: &mut Conn,
    clock: &dyn Clock,
    queue: &str,
    want: usize,
    owner: i64,
    limited: &Limited,
) -> std::result::Result<(Vec<Delivery>, Option<i64>), Fail> {
    if limited.contains(queue) {
        return claim_limited(c, clock, queue, want, owner, limited).await;
    }
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
    let mut next_due = None;
    if rows.len() < want {
        let (due, stored) = next_due_of(c, queue).await?;
        if let Some(stored) = stored {
            // The claim found the queue limited and leased nothing: the
            // locked round, now and from now on.
            limited.set(queue, true);
            if rows.is_empty() {
                return claim_limited(c, clock, queue, want, owner, limited).await;
            }
            next_due = earliest(due, stored.blocked_until(now));
        } else {
            next_due = due;
        }
    }
    Ok((deliveries(&rows)?, next_due))
}

/// The claim of a limited queue: in one transaction, lock its limits row
/// (concurrent claims of the queue, from any client, wait for each other
/// here), count its live leases with a snapshot taken after the lock, and
/// claim what the limits allow, counting the deliveries in the rate window.
/// Two round trips.
async fn claim_limited(
    c: &mut Conn,
    clock: &dyn Clock,
    queue: &str,
    want: usize,
    owner: i64,
    limited: &Limited,
) -> std::result::Result<(Vec<Delivery>, Option<i64>), Fail> {
    let promote = c.prep(sql::PROMOTE_DUE).await?;
    let lock = c.prep(sql::LOCK_LIMITS).await?;
    let count = c.prep(sql::RESERVED_NOW).await?;
    let claim = c.prep(sql::CLAIM_LIMITED).await?;
    let now = clock.now_ms();
    let queue_p: Vec<Param> = vec![Box::new(queue.to_string())];
    let at_p: Vec<Param> = vec![Box::new(queue.to_string()), Box::new(now)];
    let client = &c.client;
    let steps = vec![
        simple(client, "BEGIN"),
        query(client, &promote, &at_p),
        query(client, &lock, &queue_p),
        query(client, &count, &at_p),
    ];
    let mut results = Vec::with_capacity(4);
    for r in pipeline(steps).await {
        results.push(r?);
    }
    let stored = match results[2].first() {
        Some(row) => Some(stored_of(row, 0)?),
        None => None,
    };
    limited.set(queue, stored.is_some());
    let reserved = match results[3].first() {
        Some(row) => row.try_get::<_, i64>(0)?.max(0) as u64,
        None => 0,
    };
    let allowed = stored.map_or(want, |s| s.allowance(now, reserved, want));
    let mut rows = Vec::new();
    if allowed > 0 {
        let fresh = stored.is_some_and(|s| s.window_over(now));
        let claim_p: Vec<Param> = vec![
            Box::new(queue.to_string()),
            Box::new(now),
            Box::new(allowed.min(i64::MAX as usize) as i64),
            Box::new(owner),
            Box::new(fresh),
        ];
        let steps = vec![query(client, &claim, &claim_p), simple(client, "COMMIT")];
        let mut results = Vec::with_capacity(2);
        for r in pipeline(steps).await {
            results.push(r?);
        }
        rows = std::mem::take(&mut results[0]);
    } else {
        client.batch_execute("COMMIT").await?;
    }
    let mut next_due = None;
    if rows.len() < want {
        let (due, after) = next_due_of(c, queue).await?;
        next_due = earliest(due, after.and_then(|s| s.blocked_until(now)));
    }
    Ok((deliveries(&rows)?, next_due))
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

    fn kick_job(&self, id: u64) -> Result<()> {
        let key = id.min(i64::MAX as u64) as i64;
        let kicked = self.block(self.pool.run(async |c| {
            let st = c.prep(sql::KICK_JOB).await?;
            match c.client.query_opt(&st, &[&key, &self.clock.now_ms()]).await {
                Ok(row) => Ok(row.map(|r| r.try_get::<_, String>(0)).transpose()?),
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Err(Fail::Core(Error::State(format!(
                    "job {id} is dead and its unique key is held by a live job of its queue; it stays dead"
                )))),
                Err(e) => Err(Fail::Pg(e)),
            }
        }))?;
        if let Some(queue) = kicked {
            self.wake_queue(&queue);
            return Ok(());
        }
        match self.job(id)? {
            None => Err(Error::NotFound(id)),
            Some(job) => {
                Err(Error::State(format!("job {id} is {}: only a dead or scheduled job can be kicked", job.state)))
            }
        }
    }

    fn peek(&self, queue: &str, state: JobState) -> Result<Option<JobInfo>> {
        static READY: OnceLock<Option<String>> = OnceLock::new();
        static SCHEDULED: OnceLock<Option<String>> = OnceLock::new();
        static DEAD: OnceLock<Option<String>> = OnceLock::new();
        let cell = match state {
            JobState::Ready => &READY,
            JobState::Scheduled => &SCHEDULED,
            JobState::Dead => &DEAD,
            JobState::Reserved | JobState::Done => {
                return Err(Error::invalid(format!("peek: no peek of {state} jobs (ready, scheduled or dead)")))
            }
        };
        let Some(text) = cell.get_or_init(|| sql::peek(state)) else {
            return Err(Error::invalid(format!("peek: no peek of {state} jobs")));
        };
        let text: &'static str = text;
        self.block(self.pool.run(async |c| {
            let st = c.prep(text).await?;
            let row = c.client.query_opt(&st, &[&self.clock.now_ms(), &queue]).await?;
            Ok(row.as_ref().map(job_info).transpose()?)
        }))
    }

    fn ready_heads(&self, queues: &[Arc<str>]) -> Result<Vec<ReadyHead>> {
        static HEADS: OnceLock<String> = OnceLock::new();
        let text: &'static str = HEADS.get_or_init(sql::ready_heads);
        let names: Vec<&str> = queues.iter().map(|q| &**q).collect();
        let rows: Vec<(i64, i32, i64)> = self.block(self.pool.run(async |c| {
            let st = c.prep(text).await?;
            let rows = c.client.query(&st, &[&self.clock.now_ms(), &names]).await?;
            Ok(rows
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
                .collect::<std::result::Result<_, tokio_postgres::Error>>()?)
        }))?;
        let mut heads = Vec::with_capacity(rows.len());
        for (n, priority, id) in rows {
            // WITH ORDINALITY counts from 1.
            let index = usize::try_from(n - 1)
                .ok()
                .filter(|i| *i < queues.len())
                .ok_or_else(|| Error::Internal(format!("ready_heads answered position {n}")))?;
            heads.push(ReadyHead { index, priority, id: id as u64 });
        }
        heads.sort_unstable_by_key(|h| (h.priority, h.id));
        Ok(heads)
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

    fn put_schedule(&self, s: NewSchedule) -> Result<()> {
        self.block(self.pool.run(async |c| {
            let add_queue = c.prep(sql::ADD_QUEUE).await?;
            let put = c.prep(sql::PUT_SCHEDULE).await?;
            let now = self.clock.now_ms();
            let queue: &str = &s.job.queue;
            let delay = s.job.delay_ms.min(i64::MAX as u64) as i64;
            let (max_attempts, lease_ms) = (i64::from(s.job.max_attempts), s.job.lease_ms as i64);
            c.client.batch_execute("BEGIN").await?;
            c.client.execute(&add_queue, &[&queue, &now]).await?;
            let params: [&(dyn ToSql + Sync); 10] = [
                &s.name,
                &queue,
                &s.spec,
                &s.payload,
                &s.job.priority,
                &delay,
                &max_attempts,
                &lease_ms,
                &s.next_slot,
                &now,
            ];
            c.client.execute(&put, &params).await?;
            c.client.batch_execute("COMMIT").await?;
            Ok(())
        }))?;
        self.schedule_poke.notify_one();
        Ok(())
    }

    fn remove_schedule(&self, name: &str) -> Result<bool> {
        self.block(self.pool.run(async |c| {
            let st = c.prep(sql::REMOVE_SCHEDULE).await?;
            Ok(c.client.execute(&st, &[&name]).await? == 1)
        }))
    }

    fn schedules(&self) -> Result<Vec<ScheduleInfo>> {
        self.block(self.pool.run(async |c| {
            let st = c.prep(sql::LIST_SCHEDULES).await?;
            let mut out = Vec::new();
            for r in c.client.query(&st, &[]).await? {
                out.push(ScheduleInfo {
                    name: r.try_get(0)?,
                    queue: r.try_get(1)?,
                    spec: r.try_get(2)?,
                    next_ms: r.try_get(3)?,
                    priority: r.try_get(4)?,
                    delay_ms: r.try_get::<_, i64>(5)?.max(0) as u64,
                    max_attempts: r.try_get::<_, i64>(6)?.clamp(0, u32::MAX as i64) as u32,
                    lease_ms: r.try_get::<_, i64>(7)?.max(0) as u64,
                    payload_len: r.try_get::<_, i32>(8)?.max(0) as u64,
                });
            }
            Ok(out)
        }))
    }

    fn fire_schedules(&self) -> Result<u64> {
        let durable = self.pool.settings.durable;
        let queues = self.block(self.pool.run(async |c| fire_due(c, &*self.clock, durable).await))?;
        let n = queues.len() as u64;
        if n > 0 {
            self.notifier.bump();
            self.wake.send(queues.into_iter().map(Arc::<str>::from));
        }
        Ok(n)
    }

    fn set_limits(&self, queue: &str, patch: &LimitsPatch) -> Result<()> {
        let i = |v: Option<u64>| v.map(|v| v.min(i64::MAX as u64) as i64);
        let (set_max, max) = (patch.max_reserved.is_some(), i(patch.max_reserved.flatten()));
        let rate = patch.rate.flatten();
        let (set_rate, jobs, per_ms) = (patch.rate.is_some(), i(rate.map(|r| r.jobs)), i(rate.map(|r| r.per_ms)));
        self.block(self.pool.run(async |c| {
            let upsert = c.prep(sql::UPSERT_LIMITS).await?;
            let drop_empty = c.prep(sql::DROP_EMPTY_LIMITS).await?;
            let record = c.prep(sql::RECORD_LIMITED).await?;
            let now = self.clock.now_ms();
            let queue_p: Vec<Param> = vec![Box::new(queue.to_string())];
            let upsert_p: Vec<Param> = vec![
                Box::new(queue.to_string()),
                Box::new(set_max),
                Box::new(max),
                Box::new(set_rate),
                Box::new(jobs),
                Box::new(per_ms),
            ];
            let record_p: Vec<Param> = vec![Box::new(queue.to_string()), Box::new(now)];
            let client = &c.client;
            let steps = vec![
                simple(client, "BEGIN"),
                query(client, &upsert, &upsert_p),
                query(client, &drop_empty, &queue_p),
                query(client, &record, &record_p),
                simple(client, "COMMIT"),
            ];
            for r in pipeline(steps).await {
                r?;
            }
            Ok(())
        }))?;
        // A hint (see Limited): the next claim of the queue learns whether it still has limits.
        self.limited.set(queue, true);
        // Waiting reserves here and (NOTIFY) in other clients look again.
        self.wake_queue(queue);
        Ok(())
    }

    fn counts(&self) -> Result<Vec<(String, QueueCounts)>> {
        static COUNTS: OnceLock<String> = OnceLock::new();
        let counts_sql: &'static str = COUNTS.get_or_init(sql::counts);
        self.block(self.pool.run(async |c| {
            let names = c.prep(sql::QUEUE_NAMES).await?;
            let counts = c.prep(counts_sql).await?;
            let limits = c.prep(sql::ALL_LIMITS).await?;
            let now = self.clock.now_ms();
            let (names, rows, limits) = futures_util::future::try_join3(
                c.client.query(&names, &[]),
                c.client.query(&counts, &[&now]),
                c.client.query(&limits, &[]),
            )
            .await?;
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
                    ..QueueCounts::default()
                };
            }
            for r in &limits {
                let stored = stored_of(r, 1)?;
                all.entry(r.try_get::<_, String>(0)?).or_default().set_limits(&stored, now);
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
            let (due, stored) = next_due_of(c, queue).await?;
            Ok(earliest(due, stored.and_then(|s| s.blocked_until(self.clock.now_ms()))))
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
        self.schedule_stop.store(true, SeqCst);
        self.schedule_poke.notify_one();
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
