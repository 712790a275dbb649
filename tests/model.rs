//! Model test: random sequences of operations run against a real queue file
//! and against a small in-memory model of the queue's semantics (API.md);
//! every result and the stats after every step must agree.
//!
//! Time is a `ManualClock` and jitter is 0, so retry delays, delays and lease
//! expiries are exact. Leases and backoffs are a few tens of ms and the
//! "advance time" operation moves up to 250 ms, so expiries, retries and
//! delayed jobs all happen within one sequence.
//!
//! A delivery whose lease expired on the job's last allowed attempt makes
//! the job dead at that moment (API.md: "the job is ready again at once, or
//! dead if that was its last allowed attempt"): stats count it dead, `kick`
//! revives it and its unique key is free again. Finishing a delivery succeeds
//! as long as the job was not delivered again (its token is current), even
//! after its lease expired.

#[path = "support/pg.rs"]
mod pg;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use jobq::{Config, Durability, Error, ManualClock, Put, PutOptions, Queue, QueueCounts, QueueLimits};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError};

const QUEUES: [&str; 2] = ["a", "b"];
const KEYS: [&str; 3] = ["k0", "k1", "k2"];
const LEASE_MS: u64 = 100;
const MAX_ATTEMPTS: u32 = 3;
const BACKOFF_BASE_MS: u64 = 20;
const BACKOFF_MAX_MS: u64 = 100;
const START_MS: i64 = 1_700_000_000_000;

fn config() -> Config {
    Config {
        durability: Durability::Normal,
        lease_ms: LEASE_MS,
        max_attempts: MAX_ATTEMPTS,
        backoff_base_ms: BACKOFF_BASE_MS,
        backoff_max_ms: BACKOFF_MAX_MS,
        backoff_jitter: 0.0,
        ..Config::default()
    }
}

// ---------------------------------------------------------------- operations

#[derive(Debug, Clone)]
struct Opts {
    priority: i32,
    delay_ms: u64,
    key: Option<usize>,
    max_attempts: Option<u32>,
    lease_ms: Option<u64>,
}

impl Opts {
    fn to_put_options(&self) -> PutOptions {
        PutOptions {
            priority: self.priority,
            delay_ms: self.delay_ms,
            max_attempts: self.max_attempts,
            lease_ms: self.lease_ms,
            unique_key: self.key.map(|k| KEYS[k].to_owned()),
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Put {
        queue: usize,
        opts: Opts,
    },
    PutBatch {
        queue: usize,
        n: usize,
        opts: Opts,
    },
    Reserve {
        queue: usize,
    },
    Ack(Index),
    Fail(Index),
    /// A release with a delay, and with a new priority if given.
    Release(Index, u64, Option<i32>),
    Touch(Index, u64),
    /// A bury, with a new priority if given.
    Bury(Index, Option<i32>),
    /// `reserve_any` over the queues whose bits are set (bit 0: "a"; 0: both,
    /// given twice).
    ReserveAny {
        mask: u8,
    },
    /// `kick_job` of an id in 0..=next_id (unused and removed ids included).
    KickJob(Index),
    /// `peek` of a queue in a state (0 ready, 1 scheduled, 2 dead).
    Peek {
        queue: usize,
        state: u8,
    },
    Kick {
        queue: usize,
        max: u64,
    },
    Cancel(Index),
    Pause {
        queue: usize,
    },
    Resume {
        queue: usize,
    },
    /// `Queue::configure` with max_reserved (`None`: null, the cap removed).
    Cap {
        queue: usize,
        max: Option<u64>,
    },
    Advance(i64),
    /// Moves time to one of the moments the model expects something to
    /// become due (a delay, a backoff or a lease ends), or 1 ms before it:
    /// pins the boundaries exactly.
    AdvanceToDue {
        pick: Index,
        early: bool,
    },
}

fn opts_strategy(key_weight: u32) -> impl Strategy<Value = Opts> {
    (
        -2i32..3,
        prop_oneof![3 => Just(0u64), 1 => 1u64..200],
        prop_oneof![4 => Just(None), key_weight => (0..KEYS.len()).prop_map(Some)],
        prop_oneof![1 => Just(None), 3 => Just(Some(1u32)), 2 => (2u32..4).prop_map(Some)],
        prop_oneof![3 => Just(None), 1 => (20u64..300).prop_map(Some)],
    )
        .prop_map(|(priority, delay_ms, key, max_attempts, lease_ms)| Opts {
            priority,
            delay_ms,
            key,
            max_attempts,
            lease_ms,
        })
}

/// Mostly none (a plain release or bury), else a new priority.
fn priority_change() -> impl Strategy<Value = Option<i32>> {
    prop_oneof![2 => Just(None), 1 => (-3i32..4).prop_map(Some)]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    // Mostly queue "a", so that one queue sees long histories.
    let queue = prop_oneof![3 => Just(0usize), 1 => Just(1usize)];
    prop_oneof![
        6 => (queue.clone(), opts_strategy(3)).prop_map(|(queue, opts)| Op::Put { queue, opts }),
        1 => (queue.clone(), 0usize..4, opts_strategy(1)).prop_map(|(queue, n, opts)| Op::PutBatch { queue, n, opts }),
        8 => queue.clone().prop_map(|queue| Op::Reserve { queue }),
        2 => any::<Index>().prop_map(Op::Ack),
        2 => any::<Index>().prop_map(Op::Fail),
        1 => (any::<Index>(), prop_oneof![Just(0u64), 1u64..150], priority_change()).prop_map(|(i, d, p)| Op::Release(i, d, p)),
        1 => (any::<Index>(), prop_oneof![Just(0u64), 1u64..300]).prop_map(|(i, l)| Op::Touch(i, l)),
        2 => (any::<Index>(), priority_change()).prop_map(|(i, p)| Op::Bury(i, p)),
        3 => (0u8..4).prop_map(|mask| Op::ReserveAny { mask }),
        2 => any::<Index>().prop_map(Op::KickJob),
        2 => (queue.clone(), 0u8..3).prop_map(|(queue, state)| Op::Peek { queue, state }),
        3 => (queue.clone(), prop_oneof![1 => Just(0u64), 3 => Just(1u64), 2 => 2u64..5]).prop_map(|(queue, max)| Op::Kick { queue, max }),
        // Mostly "b" is paused, and resumed more often than paused, so that
        // "a" keeps its long histories of deliveries.
        1 => prop_oneof![1 => Just(0usize), 2 => Just(1usize)].prop_map(|queue| Op::Pause { queue }),
        3 => queue.clone().prop_map(|queue| Op::Resume { queue }),
        1 => (queue.clone(), prop_oneof![1 => Just(None), 2 => (1u64..3).prop_map(Some)]).prop_map(|(queue, max)| Op::Cap { queue, max }),
        1 => any::<Index>().prop_map(Op::Cancel),
        5 => prop_oneof![1 => Just(0i64), 4 => 1i64..250].prop_map(Op::Advance),
        2 => (any::<Index>(), any::<bool>()).prop_map(|(pick, early)| Op::AdvanceToDue { pick, early }),
    ]
}

// --------------------------------------------------------------------- model

/// The job's state as stored: a reserved job keeps this state after its
/// lease ran out until a reserve on its queue promotes it (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    /// Ready when `run_at <= now`, scheduled before.
    Waiting {
        run_at: i64,
    },
    Reserved {
        until: i64,
    },
    /// `at`: when it died, as stored (an expiry applied later by a reserve
    /// is stored as dying then, not when the lease ended).
    Dead {
        at: i64,
    },
}

/// The state the contract (and stats) speak of at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Logical {
    Ready,
    Scheduled,
    Reserved,
    Dead,
}

#[derive(Debug, Clone)]
struct MJob {
    queue: usize,
    priority: i32,
    stored: Stored,
    attempts: u32,
    max_attempts: u32,
    lease_ms: u64,
    key: Option<usize>,
    /// Counts deliveries: a finish must present the current one.
    token: u64,
    payload: Vec<u8>,
}

/// One delivery handed out by reserve, as the model remembers it.
#[derive(Debug, Clone)]
struct MHeld {
    id: u64,
    token: u64,
    attempt: u32,
    finished: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Ok,
    State,
    NotFound,
    InvalidArg,
    Other(String),
}

fn outcome(r: Result<(), Error>) -> Outcome {
    match r {
        Ok(()) => Outcome::Ok,
        Err(Error::State(_)) => Outcome::State,
        Err(Error::NotFound(_)) => Outcome::NotFound,
        Err(Error::InvalidArg(_)) => Outcome::InvalidArg,
        Err(e) => Outcome::Other(e.to_string()),
    }
}

#[derive(Debug, Clone, Copy)]
enum Finish {
    Ack,
    Fail,
    Release(u64, Option<i32>),
    Touch(u64),
    Bury(Option<i32>),
}

struct Model {
    now: i64,
    next_id: u64,
    jobs: BTreeMap<u64, MJob>,
    queues: BTreeSet<usize>,
    /// Paused queues: reserves deliver nothing of them.
    paused: BTreeSet<usize>,
    /// max_reserved per queue: a reserve delivers nothing while that many
    /// jobs of the queue are reserved with a live lease.
    caps: BTreeMap<usize, u64>,
    held: Vec<MHeld>,
    /// Expired leases promoted to ready / to dead (for `Coverage`).
    promoted: (u64, u64),
}

/// A delivery as the model predicts it: (id, attempt, payload).
type Delivered = (u64, u32, Vec<u8>);

fn retry_delay_ms(attempt: u32) -> u64 {
    let mut delay = BACKOFF_BASE_MS;
    for _ in 1..attempt {
        delay = delay.saturating_mul(2);
        if delay >= BACKOFF_MAX_MS {
            break;
        }
    }
    delay.min(BACKOFF_MAX_MS)
}

impl Model {
    fn new() -> Model {
        Model {
            now: START_MS,
            next_id: 1,
            jobs: BTreeMap::new(),
            queues: BTreeSet::new(),
            paused: BTreeSet::new(),
            caps: BTreeMap::new(),
            held: Vec::new(),
            promoted: (0, 0),
        }
    }

    fn logical(&self, j: &MJob) -> Logical {
        match j.stored {
            Stored::Waiting { run_at } if run_at <= self.now => Logical::Ready,
            Stored::Waiting { .. } => Logical::Scheduled,
            Stored::Reserved { until } if until > self.now => Logical::Reserved,
            Stored::Reserved { .. } if j.attempts >= j.max_attempts => Logical::Dead,
            Stored::Reserved { .. } => Logical::Ready,
            Stored::Dead { .. } => Logical::Dead,
        }
    }

    /// Whether `j` holds its unique key (blocks puts and kicks with that key).
    fn holds_key(&self, j: &MJob) -> bool {
        self.logical(j) != Logical::Dead
    }

    /// Whether `kick` may revive `j`.
    fn kickable(&self, j: &MJob) -> bool {
        self.logical(j) == Logical::Dead
    }

    fn key_holder(&self, queue: usize, key: usize, except: Option<u64>) -> Option<u64> {
        self.jobs
            .iter()
            .find(|(id, j)| Some(**id) != except && j.queue == queue && j.key == Some(key) && self.holds_key(j))
            .map(|(id, _)| *id)
    }

    fn put(&mut self, queue: usize, payload: Vec<u8>, opts: &Opts, allow_key: bool) -> Put {
        self.queues.insert(queue);
        let key = if allow_key { opts.key } else { None };
        if let Some(k) = key {
            if let Some(id) = self.key_holder(queue, k, None) {
                return Put::Duplicate(id);
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        self.jobs.insert(
            id,
            MJob {
                queue,
                priority: opts.priority,
                stored: Stored::Waiting { run_at: self.now + opts.delay_ms as i64 },
                attempts: 0,
                max_attempts: opts.max_attempts.unwrap_or(MAX_ATTEMPTS),
                lease_ms: opts.lease_ms.unwrap_or(LEASE_MS),
                key,
                token: 0,
                payload,
            },
        );
        Put::Stored(id)
    }

    fn put_batch(&mut self, queue: usize, payloads: Vec<Vec<u8>>, opts: &Opts) -> Result<Vec<Put>, Outcome> {
        if opts.key.is_some() && payloads.len() > 1 {
            return Err(Outcome::InvalidArg);
        }
        if payloads.len() == 1 {
            return Ok(vec![self.put(queue, payloads.into_iter().next().unwrap(), opts, true)]);
        }
        Ok(payloads.into_iter().map(|p| self.put(queue, p, opts, false)).collect())
    }

    /// (id, attempt, payload) of the delivery, and records the held delivery.
    fn reserve(&mut self, queue: usize) -> Option<Delivered> {
        let now = self.now;
        // Promotion of expired leases, as a reserve on this queue does it.
        for j in self.jobs.values_mut().filter(|j| j.queue == queue) {
            if let Stored::Reserved { until } = j.stored {
                if until <= now {
                    if j.attempts >= j.max_attempts {
                        j.stored = Stored::Dead { at: now };
                        self.promoted.1 += 1;
                    } else {
                        j.stored = Stored::Waiting { run_at: now };
                        self.promoted.0 += 1;
                    }
                }
            }
        }
        // A paused queue delivers nothing (the promotion above still runs).
        if self.paused.contains(&queue) {
            return None;
        }
        // At the cap, nothing either (expired leases were promoted above).
        if let Some(&cap) = self.caps.get(&queue) {
            let reserved =
                self.jobs.values().filter(|j| j.queue == queue && matches!(j.stored, Stored::Reserved { .. })).count()
                    as u64;
            if reserved >= cap {
                return None;
            }
        }
        let (&id, _) = self
            .jobs
            .iter()
            .filter(|(_, j)| j.queue == queue && matches!(j.stored, Stored::Waiting { run_at } if run_at <= now))
            .min_by_key(|(id, j)| (j.priority, **id))?;
        let j = self.jobs.get_mut(&id).unwrap();
        j.attempts += 1;
        j.token += 1;
        j.stored = Stored::Reserved { until: now + j.lease_ms as i64 };
        self.held.push(MHeld { id, token: j.token, attempt: j.attempts, finished: false });
        Some((id, j.attempts, j.payload.clone()))
    }

    fn finish(&mut self, held: usize, how: Finish) -> Outcome {
        let now = self.now;
        let h = self.held[held].clone();
        if h.finished {
            return Outcome::State;
        }
        // The token decides: not delivered again (and not removed). A dead
        // job can still be acked or buried, but not revived by its holder.
        let current = self.jobs.get(&h.id).is_some_and(|j| {
            j.token == h.token && (matches!(how, Finish::Ack | Finish::Bury(_)) || self.logical(j) != Logical::Dead)
        });
        if !current {
            self.held[held].finished = true;
            return Outcome::State;
        }
        let j = self.jobs.get_mut(&h.id).unwrap();
        match how {
            Finish::Ack => {
                self.jobs.remove(&h.id);
            }
            Finish::Fail => {
                j.stored = if j.attempts >= j.max_attempts {
                    Stored::Dead { at: now }
                } else {
                    Stored::Waiting { run_at: now + retry_delay_ms(h.attempt) as i64 }
                };
            }
            Finish::Release(delay, priority) => {
                j.attempts = j.attempts.saturating_sub(1);
                j.stored = Stored::Waiting { run_at: now + delay as i64 };
                j.priority = priority.unwrap_or(j.priority);
            }
            Finish::Touch(lease) => {
                let lease = if lease > 0 { lease } else { j.lease_ms };
                j.stored = Stored::Reserved { until: now + lease as i64 };
            }
            Finish::Bury(priority) => {
                j.stored = Stored::Dead { at: now };
                j.priority = priority.unwrap_or(j.priority);
            }
        }
        if !matches!(how, Finish::Touch(_)) {
            self.held[held].finished = true;
        }
        Outcome::Ok
    }

    fn kick(&mut self, queue: usize, max: u64) -> u64 {
        let candidates: Vec<u64> =
            self.jobs.iter().filter(|(_, j)| j.queue == queue && self.kickable(j)).map(|(id, _)| *id).collect();
        let mut kicked = 0;
        for id in candidates {
            if kicked >= max {
                break;
            }
            if let Some(k) = self.jobs[&id].key {
                if self.key_holder(queue, k, Some(id)).is_some() {
                    continue;
                }
            }
            let now = self.now;
            let j = self.jobs.get_mut(&id).unwrap();
            j.stored = Stored::Waiting { run_at: now };
            j.attempts = 0;
            kicked += 1;
        }
        kicked
    }

    /// Whether `queue` is at its max_reserved (live leases only).
    fn capped(&self, queue: usize) -> bool {
        self.caps.get(&queue).is_some_and(|&cap| {
            let live =
                |j: &&MJob| j.queue == queue && matches!(j.stored, Stored::Reserved { until } if until > self.now);
            self.jobs.values().filter(live).count() as u64 >= cap
        })
    }

    /// The ready job of `queue` a reserve would take, pause and caps aside:
    /// (priority, id).
    fn ready_head(&self, queue: usize) -> Option<(i32, u64)> {
        self.jobs
            .iter()
            .filter(|(_, j)| j.queue == queue && self.logical(j) == Logical::Ready)
            .map(|(id, j)| (j.priority, *id))
            .min()
    }

    /// `reserve_any`, as the library does it: reserves from the listed
    /// queues in the order of their ready heads (pause and caps aside), so
    /// the first that delivers gives the smallest (priority, id) a reserve
    /// may take; when none does, from every other listed queue once. Each
    /// reserve applies its queue's due expiries, as in the library.
    fn reserve_any(&mut self, queues: &[usize]) -> Option<(usize, Delivered)> {
        let mut distinct: Vec<usize> = Vec::new();
        for &q in queues {
            if !distinct.contains(&q) {
                distinct.push(q);
            }
        }
        let mut heads: Vec<((i32, u64), usize)> =
            distinct.iter().filter_map(|&q| self.ready_head(q).map(|head| (head, q))).collect();
        heads.sort();
        let mut order: Vec<usize> = heads.iter().map(|(_, q)| *q).collect();
        order.extend(distinct.iter().filter(|q| !order.contains(q)).copied().collect::<Vec<_>>());
        for q in order {
            if let Some(got) = self.reserve(q) {
                return Some((q, got));
            }
        }
        None
    }

    fn kick_job(&mut self, id: u64) -> Outcome {
        let now = self.now;
        let Some(j) = self.jobs.get(&id) else { return Outcome::NotFound };
        match self.logical(j) {
            Logical::Dead => {
                if let Some(k) = j.key {
                    if self.key_holder(j.queue, k, Some(id)).is_some() {
                        return Outcome::State;
                    }
                }
                let j = self.jobs.get_mut(&id).unwrap();
                j.stored = Stored::Waiting { run_at: now };
                j.attempts = 0;
                Outcome::Ok
            }
            Logical::Scheduled => {
                self.jobs.get_mut(&id).unwrap().stored = Stored::Waiting { run_at: now };
                Outcome::Ok
            }
            Logical::Ready | Logical::Reserved => Outcome::State,
        }
    }

    /// The id `peek` finds (state 0 ready, 1 scheduled, 2 dead).
    fn peek(&self, queue: usize, state: u8) -> Option<u64> {
        let of_queue = self.jobs.iter().filter(|(_, j)| j.queue == queue);
        match state {
            0 => self.ready_head(queue).map(|(_, id)| id),
            1 => of_queue
                .filter_map(|(id, j)| match j.stored {
                    Stored::Waiting { run_at } if run_at > self.now => Some((run_at, *id)),
                    _ => None,
                })
                .min()
                .map(|(_, id)| id),
            _ => of_queue
                .filter(|(_, j)| self.logical(j) == Logical::Dead)
                .map(|(id, j)| match j.stored {
                    Stored::Dead { at } | Stored::Reserved { until: at } => (at, *id),
                    Stored::Waiting { run_at } => (run_at, *id),
                })
                .min()
                .map(|(_, id)| id),
        }
    }

    /// A pause records the queue (stats list it); a resume records nothing.
    fn set_paused(&mut self, queue: usize, paused: bool) {
        if paused {
            self.queues.insert(queue);
            self.paused.insert(queue);
        } else {
            self.paused.remove(&queue);
        }
    }

    fn cancel(&mut self, id: u64) -> Outcome {
        match self.jobs.get(&id) {
            None => Outcome::NotFound,
            Some(j) if self.logical(j) == Logical::Reserved => Outcome::State,
            Some(_) => {
                self.jobs.remove(&id);
                Outcome::Ok
            }
        }
    }

    /// The future moments at which some job's state changes by itself.
    fn due_times(&self) -> Vec<i64> {
        let times: BTreeSet<i64> = self
            .jobs
            .values()
            .filter_map(|j| match j.stored {
                Stored::Waiting { run_at } | Stored::Reserved { until: run_at } if run_at > self.now => Some(run_at),
                _ => None,
            })
            .collect();
        times.into_iter().collect()
    }

    fn stats(&self) -> BTreeMap<String, QueueCounts> {
        let mut all: BTreeMap<String, QueueCounts> = self
            .queues
            .iter()
            .map(|&q| {
                let limits = self.caps.get(&q).map(|&max| QueueLimits { max_reserved: Some(max), rate: None });
                (
                    QUEUES[q].to_owned(),
                    QueueCounts { paused: self.paused.contains(&q), limits, ..QueueCounts::default() },
                )
            })
            .collect();
        for j in self.jobs.values() {
            let c = all.get_mut(QUEUES[j.queue]).expect("a job's queue is registered");
            match self.logical(j) {
                Logical::Ready => c.ready += 1,
                Logical::Scheduled => c.scheduled += 1,
                Logical::Reserved => c.reserved += 1,
                Logical::Dead => c.dead += 1,
            }
        }
        all
    }
}

// -------------------------------------------------------------------- runner

/// A fresh queue file per case, copied from an empty one made once: creating
/// the schema costs several fsyncs, copying a closed file none.
fn fresh_file_queue(clock: Arc<ManualClock>) -> (tempfile::TempDir, Queue) {
    static TEMPLATE: std::sync::OnceLock<(tempfile::TempDir, std::path::PathBuf)> = std::sync::OnceLock::new();
    let (_, template) = TEMPLATE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("template.db");
        Queue::open(&path, config()).unwrap().close().unwrap();
        (dir, path)
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.db");
    std::fs::copy(template, &path).unwrap();
    let q = Queue::open_with_clock(&path, config(), clock).unwrap();
    (dir, q)
}

/// Which store the model runs against.
#[derive(Clone, Copy, Debug)]
enum Backend {
    File,
    /// A fresh schema per case in the database of `pg::base_url()`.
    Postgres,
}

/// A fresh, empty store for one case, and what removes it afterwards.
fn fresh_queue(clock: Arc<ManualClock>, backend: Backend) -> (Box<dyn std::any::Any>, Queue) {
    match backend {
        Backend::File => {
            let (dir, q) = fresh_file_queue(clock);
            (Box::new(dir), q)
        }
        Backend::Postgres => {
            let schema = pg::Schema::new(&pg::base_url(), "model");
            let q = Queue::open_with_clock(schema.url(), config(), clock).unwrap();
            (Box::new(schema), q)
        }
    }
}

fn run(ops: &[Op], cov: &mut Coverage, backend: Backend) -> Result<(), TestCaseError> {
    let clock = Arc::new(ManualClock::new(START_MS));
    let (_store, q) = fresh_queue(clock.clone(), backend);
    let mut model = Model::new();
    let mut held: Vec<jobq::Job> = Vec::new();
    for (step, op) in ops.iter().enumerate() {
        let ctx = format!("step {step}: {op:?}");
        cov.note_step(&model, op);
        match op {
            Op::Put { queue, opts } => {
                let payload = format!("put-{step}").into_bytes();
                let got = q.put(QUEUES[*queue], &payload, &opts.to_put_options());
                let want = model.put(*queue, payload, opts, true);
                cov.duplicates += matches!(want, Put::Duplicate(_)) as u64;
                prop_assert_eq!(got, Ok(want), "{}", ctx);
            }
            Op::PutBatch { queue, n, opts } => {
                let payloads: Vec<Vec<u8>> = (0..*n).map(|i| format!("batch-{step}-{i}").into_bytes()).collect();
                let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
                let got = q.put_batch(QUEUES[*queue], &refs, &opts.to_put_options()).map_err(|e| outcome(Err(e)));
                let want = model.put_batch(*queue, payloads, opts);
                cov.batch_invalid += want.is_err() as u64;
                prop_assert_eq!(got, want, "{}", ctx);
            }
            Op::Reserve { queue } => {
                cov.paused_reserves += model.paused.contains(queue) as u64;
                let capped = model.capped(*queue);
                cov.capped_reserves += capped as u64;
                let got = q.reserve(QUEUES[*queue], Some(Duration::ZERO)).unwrap();
                let want = model.reserve(*queue);
                cov.deliveries += want.is_some() as u64;
                cov.redeliveries += want.as_ref().is_some_and(|w| w.1 > 1) as u64;
                let got_summary = got.as_ref().map(|j| (j.id(), j.attempt(), j.payload().to_vec()));
                prop_assert_eq!(&got_summary, &want, "{}", ctx);
                if let Some(job) = got {
                    prop_assert_eq!(job.queue(), QUEUES[*queue], "{}", ctx);
                    held.push(job);
                }
            }
            Op::Ack(i) | Op::Fail(i) | Op::Release(i, _, _) | Op::Touch(i, _) | Op::Bury(i, _) => {
                if held.is_empty() {
                    continue;
                }
                let idx = i.index(held.len());
                let job = &held[idx];
                let (got, how) = match op {
                    Op::Ack(_) => (job.ack(), Finish::Ack),
                    Op::Fail(_) => (job.fail(Some("model")), Finish::Fail),
                    Op::Release(_, d, None) => (job.release(*d), Finish::Release(*d, None)),
                    Op::Release(_, d, Some(p)) => (job.release_with_priority(*d, *p), Finish::Release(*d, Some(*p))),
                    Op::Touch(_, l) => (job.touch(*l), Finish::Touch(*l)),
                    Op::Bury(_, Some(p)) => (job.bury_with_priority(Some("model"), *p), Finish::Bury(Some(*p))),
                    _ => (job.bury(Some("model")), Finish::Bury(None)),
                };
                let want = model.finish(idx, how);
                cov.finish_ok += (want == Outcome::Ok) as u64;
                cov.finish_state += (want == Outcome::State) as u64;
                prop_assert_eq!(outcome(got), want, "{} (delivery of job {})", ctx, job.id());
            }
            Op::ReserveAny { mask } => {
                let queues: Vec<usize> = match mask {
                    1 => vec![0],
                    2 => vec![1],
                    3 => vec![1, 0],
                    _ => vec![0, 1, 0],
                };
                let names: Vec<&str> = queues.iter().map(|q| QUEUES[*q]).collect();
                let got = q.reserve_any(&names, Some(Duration::ZERO)).unwrap();
                let want = model.reserve_any(&queues);
                cov.reserve_any += want.is_some() as u64;
                let got_summary =
                    got.as_ref().map(|j| (j.queue().to_owned(), (j.id(), j.attempt(), j.payload().to_vec())));
                let want_summary = want.map(|(q, w)| (QUEUES[q].to_owned(), w));
                prop_assert_eq!(&got_summary, &want_summary, "{}", ctx);
                if let Some(job) = got {
                    held.push(job);
                }
            }
            Op::KickJob(i) => {
                let id = i.index(model.next_id as usize + 1) as u64;
                let got = outcome(q.kick_job(id));
                let want = model.kick_job(id);
                cov.kick_job_ok += (want == Outcome::Ok) as u64;
                prop_assert_eq!(got, want, "{} (id {})", ctx, id);
            }
            Op::Peek { queue, state } => {
                let js = [jobq::JobState::Ready, jobq::JobState::Scheduled, jobq::JobState::Dead][*state as usize];
                let got = q.peek(QUEUES[*queue], js).unwrap().map(|j| j.id);
                let want = model.peek(*queue, *state);
                cov.peek_found += want.is_some() as u64;
                prop_assert_eq!(got, want, "{}", ctx);
            }
            Op::Kick { queue, max } => {
                let got = q.kick(QUEUES[*queue], *max);
                let want = model.kick(*queue, *max);
                cov.kicked += want;
                prop_assert_eq!(got, Ok(want), "{}", ctx);
            }
            Op::Cancel(i) => {
                // Ids 0..=next_id: includes never-used ids and removed ones.
                let id = i.index(model.next_id as usize + 1) as u64;
                let got = outcome(q.cancel(id));
                let want = model.cancel(id);
                match want {
                    Outcome::Ok => cov.cancel_ok += 1,
                    Outcome::State => cov.cancel_state += 1,
                    _ => cov.cancel_not_found += 1,
                }
                prop_assert_eq!(got, want, "{} (id {})", ctx, id);
            }
            Op::Pause { queue } | Op::Resume { queue } => {
                let pause = matches!(op, Op::Pause { .. });
                let got = if pause { q.pause(QUEUES[*queue]) } else { q.resume(QUEUES[*queue]) };
                model.set_paused(*queue, pause);
                prop_assert_eq!(got, Ok(()), "{}", ctx);
            }
            Op::Cap { queue, max } => {
                let json = match max {
                    Some(n) => format!("{{\"max_reserved\": {n}}}"),
                    None => "{\"max_reserved\": null}".to_owned(),
                };
                let got = q.configure(QUEUES[*queue], &json);
                match max {
                    Some(n) => {
                        model.caps.insert(*queue, *n);
                        model.queues.insert(*queue);
                    }
                    None => {
                        model.caps.remove(queue);
                    }
                }
                prop_assert_eq!(got, Ok(()), "{}", ctx);
            }
            Op::Advance(ms) => {
                clock.advance(*ms);
                model.now += ms;
            }
            Op::AdvanceToDue { pick, early } => {
                let times = model.due_times();
                if times.is_empty() {
                    continue;
                }
                let ms = times[pick.index(times.len())] - model.now - *early as i64;
                clock.advance(ms);
                model.now += ms;
            }
        }
        let got = q.stats().unwrap().queues;
        let want = model.stats();
        prop_assert_eq!(got, want, "stats after {}", ctx);
    }
    cov.expired_ready += model.promoted.0;
    cov.expired_dead += model.promoted.1;
    drop(held);
    q.close().unwrap();
    Ok(())
}

/// How often each interesting situation came up over all cases of a run:
/// printed, so a generator change that stops exercising something shows.
#[derive(Debug, Default)]
struct Coverage {
    deliveries: u64,
    redeliveries: u64,
    finish_ok: u64,
    finish_state: u64,
    duplicates: u64,
    kicked: u64,
    cancel_ok: u64,
    cancel_state: u64,
    cancel_not_found: u64,
    expired_ready: u64,
    expired_dead: u64,
    batch_invalid: u64,
    /// Reserves on a paused queue.
    paused_reserves: u64,
    /// Reserves on a queue at its max_reserved.
    capped_reserves: u64,
    /// reserve_any calls that delivered.
    reserve_any: u64,
    /// kick_job calls that moved a job.
    kick_job_ok: u64,
    /// peek calls that found a job.
    peek_found: u64,
    /// Kicks and keyed puts while a job of that queue sits expired on its
    /// last attempt and not yet promoted (the library must promote first).
    lazy_window: u64,
}

impl Coverage {
    fn note_step(&mut self, model: &Model, op: &Op) {
        let queue = match op {
            Op::Kick { queue, .. } => *queue,
            Op::Put { queue, opts } if opts.key.is_some() => *queue,
            _ => return,
        };
        let in_window = model.jobs.values().any(|j| {
            j.queue == queue && matches!(j.stored, Stored::Reserved { .. }) && model.logical(j) == Logical::Dead
        });
        self.lazy_window += in_window as u64;
    }
}

fn run_cases(default_cases: u32, backend: Backend) {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(default_cases);
    // Shrinking is bounded so that a failure is reported in seconds.
    let config =
        ProptestConfig { cases, failure_persistence: None, max_shrink_time: 3000, ..ProptestConfig::default() };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let coverage = std::cell::RefCell::new(Coverage::default());
    let result =
        runner.run(&prop::collection::vec(op_strategy(), 20..40), |ops| run(&ops, &mut coverage.borrow_mut(), backend));
    eprintln!("coverage over all cases (including shrinking): {:#?}", coverage.borrow());
    match result {
        Ok(()) => {}
        Err(proptest::test_runner::TestError::Fail(reason, ops)) => {
            let ops: Vec<String> = ops.iter().enumerate().map(|(i, op)| format!("  {i:2}: {op:?}")).collect();
            panic!("the model disagrees with the library: {reason}\nshrunk sequence:\n{}", ops.join("\n"));
        }
        Err(e) => panic!("model run aborted: {e}"),
    }
}

/// The library against the model of the contract, 128 random sequences.
#[test]
fn model_contract() {
    run_cases(128, Backend::File);
}

/// The same on PostgreSQL: 48 sequences (every operation is a round trip
/// to the server, and each case creates and drops a schema).
#[test]
fn model_contract_postgresql() {
    run_cases(48, Backend::Postgres);
}

// ------------------------------ regression tests: expiry on the last attempt

fn open_manual() -> (tempfile::TempDir, Arc<ManualClock>, Queue) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(START_MS));
    let q = Queue::open_with_clock(dir.path().join("pin.db"), config(), clock.clone()).unwrap();
    (dir, clock, q)
}

/// Stats say dead, so kick revives it (kick applies due expiries first).
#[test]
fn kick_revives_a_job_whose_last_lease_expired() {
    let (_dir, clock, q) = open_manual();
    let opts = PutOptions { max_attempts: Some(1), ..PutOptions::default() };
    let id = q.put("a", b"x", &opts).unwrap().id();
    let job = q.reserve("a", Some(Duration::ZERO)).unwrap().unwrap();
    assert_eq!((job.id(), job.attempt()), (id, 1));
    clock.advance(LEASE_MS as i64);
    let dead = QueueCounts { dead: 1, ..QueueCounts::default() };
    assert_eq!(q.stats().unwrap().queues["a"], dead, "stats count the expired last attempt as dead");
    assert_eq!(q.kick("a", 10).unwrap(), 1, "kick must revive the job that stats count as dead");
}

/// A job dead by expiry frees its unique key (a keyed put applies due expiries first).
#[test]
fn unique_key_is_free_once_the_last_lease_expired() {
    let (_dir, clock, q) = open_manual();
    let opts = PutOptions { max_attempts: Some(1), unique_key: Some("k".into()), ..PutOptions::default() };
    let first = q.put("a", b"x", &opts).unwrap().id();
    let _job = q.reserve("a", Some(Duration::ZERO)).unwrap().unwrap();
    clock.advance(LEASE_MS as i64);
    assert_eq!(q.stats().unwrap().queues["a"].dead, 1);
    let second = q.put("a", b"y", &opts).unwrap();
    assert!(
        matches!(second, Put::Stored(id) if id > first),
        "the key of a dead job must be free again; got {second:?}"
    );
}

/// After a reserve on the queue applied the expiry, both hold as well.
#[test]
fn after_a_reserve_the_expired_last_attempt_is_dead_everywhere() {
    let (_dir, clock, q) = open_manual();
    let opts = PutOptions { max_attempts: Some(1), unique_key: Some("k".into()), ..PutOptions::default() };
    let first = q.put("a", b"x", &opts).unwrap().id();
    let _job = q.reserve("a", Some(Duration::ZERO)).unwrap().unwrap();
    clock.advance(LEASE_MS as i64);
    assert!(q.reserve("a", Some(Duration::ZERO)).unwrap().is_none());
    let second = q.put("a", b"y", &opts).unwrap();
    assert!(matches!(second, Put::Stored(id) if id > first), "{second:?}");
    // The dead one's key is now held by the new job: kick skips it.
    assert_eq!(q.kick("a", 10).unwrap(), 0);
    q.cancel(second.id()).unwrap();
    assert_eq!(q.kick("a", 10).unwrap(), 1);
}
