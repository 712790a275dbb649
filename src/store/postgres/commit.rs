//! Group commit: every write of the handle (puts, batches, finishes) goes
//! to one committer task, which takes all requests queued meanwhile and
//! applies them in one transaction, its statements pipelined (sent
//! together, answered together): a BEGIN, the queue records, one statement
//! per put, finish and batch, all acks as one `DELETE ... USING unnest`,
//! then a COMMIT. So concurrent callers share two round trips and one WAL
//! flush. A server error in a shared transaction (which PostgreSQL aborts
//! whole) makes the committer apply the requests again one by one, so one
//! caller's failure is not another's; a lost connection fails them all
//! with `Io` (a COMMIT whose answer never came may or may not have been
//! applied, so nothing is run twice).

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;

use futures_util::TryStreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement};

use super::pool::{Conn, Fail, Pool};
use super::sql;
use super::wake::Wake;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::notify::Notifier;
use crate::store::{Finish, NewJob, Put};

/// Requests taken into one transaction at most.
const MAX_BATCH: usize = 256;
/// Queue names the committer remembers as recorded.
const MAX_KNOWN_QUEUES: usize = 4096;
/// Tries of a keyed put whose key holder vanished between two statements.
const KEY_TRIES: usize = 5;
const RETRIES: usize = 5;

/// One write.
pub(crate) enum Write {
    Put { job: NewJob, payload: Vec<u8> },
    Batch { job: NewJob, payloads: Vec<Vec<u8>> },
    Finish { id: u64, token: i64, finish: Finish },
}

/// Its answer.
#[derive(Debug)]
pub(crate) enum Answer {
    Put(Put),
    Batch(Vec<u64>),
    Finish(bool),
}

pub(crate) enum Msg {
    Write(Write, oneshot::Sender<Result<Answer>>),
    /// Finish what is queued, then end.
    Stop,
}

/// What the committer task needs.
pub(crate) struct Committer {
    pub pool: Arc<Pool>,
    pub clock: Arc<dyn Clock>,
    pub notifier: Arc<Notifier>,
    pub wake: Arc<Wake>,
    pub owner: i64,
    known: Mutex<HashSet<Arc<str>>>,
    /// Queues seen with limits: a finish that frees one of their reserved
    /// slots wakes waiting reserves.
    limited: Arc<super::Limited>,
}

pub(super) type Param = Box<dyn ToSql + Sync + Send>;
pub(super) type Rows = std::result::Result<Vec<Row>, tokio_postgres::Error>;
pub(super) type Step<'a> = Pin<Box<dyn Future<Output = Rows> + Send + 'a>>;

pub(super) fn query<'a>(client: &'a Client, st: &'a Statement, params: &'a [Param]) -> Step<'a> {
    Box::pin(async move {
        let rows = client.query_raw(st, params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync))).await?;
        rows.try_collect().await
    })
}

pub(super) fn simple<'a>(client: &'a Client, text: &'static str) -> Step<'a> {
    Box::pin(async move { client.batch_execute(text).await.map(|()| Vec::new()) })
}

/// Runs `steps` pipelined: each is first polled (and so sent) in order.
pub(super) async fn pipeline(steps: Vec<Step<'_>>) -> Vec<Rows> {
    let mut steps: Vec<Option<Step<'_>>> = steps.into_iter().map(Some).collect();
    let mut out: Vec<Option<Rows>> = steps.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, result) in steps.iter_mut().zip(out.iter_mut()) {
            if let Some(step) = slot {
                match step.as_mut().poll(cx) {
                    Poll::Ready(r) => {
                        *result = Some(r);
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|r| r.unwrap_or_else(|| Ok(Vec::new()))).collect()
}

/// Where a write's answer comes from in the pipeline.
enum Slot {
    Put { step: usize, keyed: bool },
    Batch { step: usize },
    Finish { step: usize, wakes: bool, frees: bool },
    Ack { id: i64, token: i64 },
}

fn i64_of(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

fn state_for(delay_ms: u64) -> i16 {
    if delay_ms > 0 {
        3
    } else {
        0
    }
}

impl Committer {
    pub(crate) fn new(
        pool: Arc<Pool>,
        clock: Arc<dyn Clock>,
        notifier: Arc<Notifier>,
        wake: Arc<Wake>,
        owner: i64,
        limited: Arc<super::Limited>,
    ) -> Self {
        Committer { pool, clock, notifier, wake, owner, known: Mutex::new(HashSet::new()), limited }
    }

    /// The task: batches of queued requests until `Stop` or every sender is gone.
    pub(crate) async fn run(self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        let mut stop = false;
        while !stop {
            let Some(first) = rx.recv().await else { break };
            let mut batch = Vec::new();
            let take = |m: Msg, batch: &mut Vec<(Write, oneshot::Sender<Result<Answer>>)>| match m {
                Msg::Write(w, tx) => {
                    batch.push((w, tx));
                    false
                }
                Msg::Stop => true,
            };
            stop = take(first, &mut batch);
            while !stop && batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(m) => stop = take(m, &mut batch),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                self.apply(batch).await;
            }
        }
        // Calls still queued after a stop are refused.
        rx.close();
        while let Ok(m) = rx.try_recv() {
            if let Msg::Write(_, tx) = m {
                let _ = tx.send(Err(Error::Shutdown("the queue is closed".into())));
            }
        }
    }

    async fn apply(&self, batch: Vec<(Write, oneshot::Sender<Result<Answer>>)>) {
        let (writes, replies): (Vec<Write>, Vec<_>) = batch.into_iter().unzip();
        let refs: Vec<&Write> = writes.iter().collect();
        let answers = match self.shared(&refs).await {
            Ok(answers) => answers,
            Err(None) => {
                // A server error in the shared transaction: each alone.
                let mut answers = Vec::with_capacity(refs.len());
                for w in &refs {
                    answers.push(self.alone(w).await);
                }
                answers
            }
            Err(Some(e)) => refs.iter().map(|_| Err(e.clone())).collect(),
        };
        for (answer, reply) in answers.into_iter().zip(replies) {
            let _ = reply.send(answer);
        }
    }

    /// All of `writes` in one transaction. `Err(None)`: a server error that
    /// aborted it cleanly (try them one by one); `Err(Some)`: the error for all.
    async fn shared(&self, writes: &[&Write]) -> std::result::Result<Vec<Result<Answer>>, Option<Error>> {
        let settings = self.pool.settings.clone();
        let mut tries = 0;
        loop {
            let mut lease = self.pool.get().await.map_err(Some)?;
            let Some(conn) = lease.conn() else {
                return Err(Some(Error::Internal("a pool lease without a connection".into())));
            };
            match self.transaction(conn, writes).await {
                Ok((answers, wake)) => {
                    self.committed(writes, wake);
                    return Ok(answers.into_iter().map(Ok).collect());
                }
                Err(fail) => {
                    let (clean, retry) = match &fail {
                        Fail::Pg(e) => (super::errors::is_clean_failure(e), super::errors::is_retryable(e)),
                        Fail::Core(_) => (true, false),
                    };
                    if clean && conn.client.batch_execute("ROLLBACK").await.is_err() {
                        lease.discard();
                    }
                    if !clean {
                        lease.discard();
                        return Err(Some(settings.fail(fail)));
                    }
                    if retry && tries < RETRIES {
                        tries += 1;
                        continue;
                    }
                    if writes.len() > 1 {
                        return Err(None);
                    }
                    return Err(Some(settings.fail(fail)));
                }
            }
        }
    }

    async fn alone(&self, write: &Write) -> Result<Answer> {
        match self.shared(&[write]).await {
            Ok(mut answers) => answers.pop().unwrap_or_else(|| Err(Error::Internal("no answer".into()))),
            Err(Some(e)) => Err(e),
            Err(None) => Err(Error::Internal("a single write failed without an error".into())),
        }
    }

    /// After a commit: remember the recorded queues, wake waiters here and
    /// (by NOTIFY) in other clients.
    fn committed(&self, writes: &[&Write], wake: Vec<Arc<str>>) {
        {
            let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
            for w in writes {
                if let Write::Put { job, .. } | Write::Batch { job, .. } = w {
                    if known.len() < MAX_KNOWN_QUEUES {
                        known.insert(job.queue.clone());
                    }
                }
            }
        }
        if !wake.is_empty() {
            self.notifier.bump();
            self.wake.send(wake);
        }
    }

    /// The statements of `writes` in one transaction, pipelined.
    async fn transaction(
        &self,
        conn: &mut Conn,
        writes: &[&Write],
    ) -> std::result::Result<(Vec<Answer>, Vec<Arc<str>>), Fail> {
        // Statements first (prepared once per connection).
        let add_queue = conn.prep(sql::ADD_QUEUE).await?;
        let insert = conn.prep(sql::INSERT).await?;
        let insert_unique = conn.prep(sql::INSERT_UNIQUE).await?;
        let expire_key = conn.prep(sql::EXPIRE_KEY_HOLDER).await?;
        let insert_many = conn.prep(sql::INSERT_MANY).await?;
        let ack_many = conn.prep(sql::ACK_MANY).await?;
        let fail_st = conn.prep(sql::FAIL).await?;
        let release_st = conn.prep(sql::RELEASE).await?;
        let touch_st = conn.prep(sql::TOUCH).await?;
        let bury_st = conn.prep(sql::BURY).await?;
        let ack_keep_st = conn.prep(sql::ACK_KEEP).await?;
        let live_key = conn.prep(sql::LIVE_KEY).await?;
        let now = self.clock.now_ms();

        // Parameters, owned here while the pipeline borrows them.
        let mut calls: Vec<(&Statement, Vec<Param>)> = Vec::new();
        let mut slots = Vec::with_capacity(writes.len());
        let mut wake: Vec<Arc<str>> = Vec::new();
        let mut new_queues: Vec<Arc<str>> = Vec::new();
        {
            let known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
            for w in writes {
                if let Write::Put { job, .. } | Write::Batch { job, .. } = w {
                    if !known.contains(&job.queue) && !new_queues.contains(&job.queue) {
                        new_queues.push(job.queue.clone());
                    }
                }
            }
        }
        for q in &new_queues {
            calls.push((&add_queue, vec![Box::new(q.to_string()), Box::new(now)]));
        }
        let (mut ack_ids, mut ack_tokens) = (Vec::new(), Vec::new());
        for w in writes {
            match w {
                Write::Put { job, payload } => {
                    let run_at = now.saturating_add(i64_of(job.delay_ms));
                    let mut params: Vec<Param> = vec![
                        Box::new(job.queue.to_string()),
                        Box::new(state_for(job.delay_ms)),
                        Box::new(job.priority),
                        Box::new(run_at),
                        Box::new(i64::from(job.max_attempts)),
                        Box::new(i64_of(job.lease_ms)),
                        Box::new(payload.clone()),
                        Box::new(now),
                    ];
                    if let Some(key) = &job.unique_key {
                        calls.push((
                            &expire_key,
                            vec![Box::new(job.queue.to_string()), Box::new(key.clone()), Box::new(now)],
                        ));
                        params.push(Box::new(key.clone()));
                        slots.push(Slot::Put { step: calls.len(), keyed: true });
                        calls.push((&insert_unique, params));
                    } else {
                        slots.push(Slot::Put { step: calls.len(), keyed: false });
                        calls.push((&insert, params));
                    }
                    wake.push(job.queue.clone());
                }
                Write::Batch { job, payloads } => {
                    let params: Vec<Param> = vec![
                        Box::new(job.queue.to_string()),
                        Box::new(state_for(job.delay_ms)),
                        Box::new(job.priority),
                        Box::new(now.saturating_add(i64_of(job.delay_ms))),
                        Box::new(i64::from(job.max_attempts)),
                        Box::new(i64_of(job.lease_ms)),
                        Box::new(payloads.clone()),
                        Box::new(now),
                    ];
                    slots.push(Slot::Batch { step: calls.len() });
                    calls.push((&insert_many, params));
                    wake.push(job.queue.clone());
                }
                Write::Finish { id, token, finish } => {
                    let id = i64_of(*id);
                    let token = *token;
                    let (st, params): (&Statement, Vec<Param>) = match finish {
                        Finish::Ack => {
                            ack_ids.push(id);
                            ack_tokens.push(token);
                            slots.push(Slot::Ack { id, token });
                            continue;
                        }
                        Finish::AckKeep { result, keep_ms } => (
                            &ack_keep_st,
                            vec![
                                Box::new(id),
                                Box::new(token),
                                Box::new(now.saturating_add(i64_of(*keep_ms))),
                                Box::new(now),
                                Box::new(result.clone()),
                            ],
                        ),
                        Finish::Fail { reason, delay_ms } => (
                            &fail_st,
                            vec![
                                Box::new(id),
                                Box::new(token),
                                Box::new(now.saturating_add(i64_of(*delay_ms))),
                                Box::new(now),
                                Box::new(reason.clone().unwrap_or_else(|| "failed".into())),
                            ],
                        ),
                        Finish::Release { delay_ms, priority } => (
                            &release_st,
                            vec![
                                Box::new(id),
                                Box::new(token),
                                Box::new(i64_of(*delay_ms)),
                                Box::new(now),
                                Box::new(*priority),
                            ],
                        ),
                        Finish::Touch { lease_ms } => (
                            &touch_st,
                            vec![
                                Box::new(id),
                                Box::new(token),
                                Box::new(i64_of(*lease_ms)),
                                Box::new(now),
                                Box::new(self.owner),
                            ],
                        ),
                        Finish::Bury { reason, priority } => (
                            &bury_st,
                            vec![
                                Box::new(id),
                                Box::new(token),
                                Box::new(now),
                                Box::new(reason.clone().unwrap_or_else(|| "buried".into())),
                                Box::new(*priority),
                            ],
                        ),
                    };
                    // Touch frees no slot of a limited queue; the others do.
                    let frees = !matches!(finish, Finish::Touch { .. });
                    slots.push(Slot::Finish { step: calls.len(), wakes: finish.wakes(), frees });
                    calls.push((st, params));
                }
            }
        }
        let ack_step = (!ack_ids.is_empty()).then(|| {
            calls.push((&ack_many, vec![Box::new(ack_ids), Box::new(ack_tokens)]));
            calls.len() - 1
        });

        // BEGIN, every statement, pipelined; then the answers in order. The
        // COMMIT goes in the same pipeline unless a keyed put may need a
        // second look inside the transaction. Without a put or batch in it
        // the transaction does not wait for the WAL flush, whatever the
        // durability: as on SQLite, a finish undone by a server crash means
        // the job is delivered again, never lost.
        let client = &conn.client;
        let durable = writes.iter().any(|w| matches!(w, Write::Put { .. } | Write::Batch { .. }));
        let commit_now = !slots.iter().any(|s| matches!(s, Slot::Put { keyed: true, .. }));
        let mut steps = Vec::with_capacity(calls.len() + 3);
        steps.push(simple(client, "BEGIN"));
        // `fast` is only ever set with durability "full" (see pool.rs).
        if durable && conn.fast {
            steps.push(simple(client, "SET LOCAL synchronous_commit = on"));
        } else if !durable && conn.waits_for_flush(&self.pool.settings) {
            steps.push(simple(client, "SET LOCAL synchronous_commit = off"));
        }
        let first = steps.len();
        for (st, params) in &calls {
            steps.push(query(client, st, params));
        }
        if commit_now {
            steps.push(simple(client, "COMMIT"));
        }
        let mut results = Vec::with_capacity(calls.len());
        for (i, r) in pipeline(steps).await.into_iter().enumerate() {
            // The first error is the cause; those after it say "aborted".
            let rows = r?;
            if i >= first && results.len() < calls.len() {
                results.push(rows);
            }
        }
        // Each delivery acked once: a second finish of it in the same batch is stale.
        let mut acked: HashSet<(i64, i64)> = HashSet::new();
        if let Some(step) = ack_step {
            for r in &results[step] {
                acked.insert((r.try_get::<_, i64>(0)?, r.try_get::<_, i64>(1)?));
                let q: &str = r.try_get(2)?;
                if self.limited.contains(q) {
                    wake.push(Arc::from(q));
                }
            }
        }
        let mut answers = Vec::with_capacity(writes.len());
        for (slot, w) in slots.iter().zip(writes) {
            let answer = match *slot {
                Slot::Put { step, keyed: false } => Answer::Put(Put::Stored(first_id(&results[step])?)),
                Slot::Put { step, keyed: true } => {
                    let put = match results[step].first() {
                        Some(row) => {
                            let id = row.try_get::<_, i64>(0)? as u64;
                            if row.try_get::<_, bool>(1)? {
                                Put::Stored(id)
                            } else {
                                Put::Duplicate(id)
                            }
                        }
                        None => {
                            let Write::Put { job, payload } = w else {
                                return Err(Fail::Core(Error::Internal("slot of a put without a put".into())));
                            };
                            keyed_put_again(client, &insert_unique, &live_key, job, payload, now).await?
                        }
                    };
                    Answer::Put(put)
                }
                Slot::Batch { step } => {
                    let mut ids = results[step]
                        .iter()
                        .map(|r| r.try_get::<_, i64>(0).map(|v| v as u64))
                        .collect::<std::result::Result<Vec<_>, _>>()?;
                    ids.sort_unstable();
                    Answer::Batch(ids)
                }
                Slot::Finish { step, wakes, frees } => {
                    let row = results[step].first();
                    if let Some(row) = row {
                        let q: &str = row.try_get(0)?;
                        if wakes || (frees && self.limited.contains(q)) {
                            wake.push(Arc::from(q));
                        }
                    }
                    Answer::Finish(row.is_some())
                }
                Slot::Ack { id, token } => Answer::Finish(acked.remove(&(id, token))),
            };
            answers.push(answer);
        }
        if !commit_now {
            client.batch_execute("COMMIT").await?;
        }
        wake.sort_unstable();
        wake.dedup();
        Ok((answers, wake))
    }
}

fn first_id(rows: &[Row]) -> std::result::Result<u64, Fail> {
    match rows.first() {
        Some(r) => Ok(r.try_get::<_, i64>(0)? as u64),
        None => Err(Fail::Core(Error::Internal("an insert returned no id".into()))),
    }
}

/// A keyed put whose key holder committed after the insert's snapshot:
/// find it, or (if it went away meanwhile) insert again.
async fn keyed_put_again(
    client: &Client,
    insert_unique: &Statement,
    live_key: &Statement,
    job: &NewJob,
    payload: &[u8],
    now: i64,
) -> std::result::Result<Put, Fail> {
    let Some(key) = job.unique_key.as_deref() else {
        return Err(Fail::Core(Error::Internal("a keyed put without a key".into())));
    };
    let queue: &str = &job.queue;
    for _ in 0..KEY_TRIES {
        if let Some(row) = client.query_opt(live_key, &[&queue, &key]).await? {
            return Ok(Put::Duplicate(row.try_get::<_, i64>(0)? as u64));
        }
        let run_at = now.saturating_add(i64_of(job.delay_ms));
        let rows = client
            .query(
                insert_unique,
                &[
                    &queue,
                    &state_for(job.delay_ms),
                    &job.priority,
                    &run_at,
                    &i64::from(job.max_attempts),
                    &i64_of(job.lease_ms),
                    &payload,
                    &now,
                    &key,
                ],
            )
            .await?;
        if let Some(row) = rows.first() {
            let id = row.try_get::<_, i64>(0)? as u64;
            return Ok(if row.try_get::<_, bool>(1)? { Put::Stored(id) } else { Put::Duplicate(id) });
        }
    }
    Err(Fail::Core(Error::Busy(format!("unique key {key:?} of queue {queue:?} kept changing hands; try again"))))
}
