//! What the connections of one server share: the open `Queue`, beanstalkd's
//! in-memory counters (cmd-*, connections, per-tube uses and watches), the
//! timed pauses of `pause-tube`, every job a connection holds reserved
//! with its TTR deadline (so a shutdown can give them back, and a TTR that
//! ran out counts as a timeout once), and beanstalkd's per-job counts that
//! jobq does not keep (`JobNotes`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use jobq::{Job, JobState, Queue, QueueCounts};

use super::parse::Op;

/// The server: one per process.
pub struct Server {
    pub queue: Queue,
    pub max_job_size: u32,
    pub started: Instant,
    /// A random id for this process (stats `id`).
    pub instance: String,
    ops: [AtomicU64; Op::COUNT],
    pub total_jobs: AtomicU64,
    pub total_connections: AtomicU64,
    pub current_connections: AtomicU64,
    pub producers: AtomicU64,
    pub workers: AtomicU64,
    pub waiting: AtomicU64,
    pub job_timeouts: AtomicU64,
    tubes: Mutex<Tubes>,
    held: Mutex<HashMap<HeldKey, (Arc<Job>, Instant)>>,
    notes: Mutex<HashMap<u64, JobNotes>>,
}

/// (connection id, job id) of a held job.
type HeldKey = (u64, u64);

/// What beanstalkd counts per job and jobq does not store: seen by this
/// server only, since it started (stats-job shows them).
#[derive(Default, Clone, Copy)]
pub struct JobNotes {
    /// The delay of the last put or release, in seconds.
    pub delay: u32,
    pub reserves: u32,
    pub timeouts: u32,
    pub releases: u32,
    pub buries: u32,
    pub kicks: u32,
}

/// Past this many noted jobs the notes start over (jobs deleted by other
/// clients of the store are never forgotten otherwise).
const MAX_NOTES: usize = 1_000_000;

/// What the server knows of each tube beyond the store.
#[derive(Default)]
struct Tubes {
    by_name: HashMap<String, TubeState>,
    /// Tube names in the order they came to exist (beanstalkd lists them so).
    order: Vec<String>,
    pause_generation: u64,
}

#[derive(Default, Clone)]
pub struct TubeState {
    pub using: u64,
    pub watching: u64,
    pub waiting: u64,
    pub total_jobs: u64,
    pub cmd_delete: u64,
    pub cmd_pause: u64,
    pub pause: Option<Pause>,
}

/// A `pause-tube` in force.
#[derive(Clone, Copy)]
pub struct Pause {
    pub seconds: u64,
    pub until: Instant,
    pub generation: u64,
}

impl TubeState {
    fn referenced(&self) -> bool {
        self.using > 0 || self.watching > 0 || self.waiting > 0
    }
}

/// A tube as `stats-tube` and the global `stats` see it.
pub struct TubeView {
    pub name: String,
    pub counts: QueueCounts,
    pub state: TubeState,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether the store holds jobs of a queue that beanstalkd would count.
fn has_jobs(c: &QueueCounts) -> bool {
    c.ready + c.scheduled + c.reserved + c.dead > 0
}

impl Server {
    pub fn new(queue: Queue, max_job_size: u32) -> Server {
        let mut tubes = Tubes::default();
        tubes.order.push("default".to_owned());
        tubes.by_name.insert("default".to_owned(), TubeState::default());
        Server {
            queue,
            max_job_size,
            started: Instant::now(),
            instance: instance_id(),
            ops: std::array::from_fn(|_| AtomicU64::new(0)),
            total_jobs: AtomicU64::new(0),
            total_connections: AtomicU64::new(0),
            current_connections: AtomicU64::new(0),
            producers: AtomicU64::new(0),
            workers: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            job_timeouts: AtomicU64::new(0),
            tubes: Mutex::new(tubes),
            held: Mutex::new(HashMap::new()),
            notes: Mutex::new(HashMap::new()),
        }
    }

    pub fn count_op(&self, op: Op) {
        self.ops[op as usize].fetch_add(1, Relaxed);
    }

    pub fn op_count(&self, op: Op) -> u64 {
        self.ops[op as usize].load(Relaxed)
    }

    /// Changes the server's record of `tube` (creating it).
    pub fn with_tube<R>(&self, tube: &str, f: impl FnOnce(&mut TubeState) -> R) -> R {
        let mut tubes = lock(&self.tubes);
        if !tubes.by_name.contains_key(tube) {
            tubes.by_name.insert(tube.to_owned(), TubeState::default());
            tubes.order.push(tube.to_owned());
        }
        let state = tubes.by_name.entry(tube.to_owned()).or_default();
        f(state)
    }

    /// The existing tubes in beanstalkd's order, given the store's queues:
    /// "default", every tube a connection uses, watches or waits on, every
    /// queue with ready, delayed, reserved or buried jobs, and every paused one.
    pub fn tubes(&self, store: &[(String, QueueCounts)]) -> Vec<TubeView> {
        let mut tubes = lock(&self.tubes);
        let now = Instant::now();
        let store: HashMap<&str, &QueueCounts> = store.iter().map(|(n, c)| (n.as_str(), c)).collect();
        // Queues of the store this server has not seen yet come last, by name.
        let mut fresh: Vec<&str> = store.keys().copied().filter(|n| !tubes.by_name.contains_key(*n)).collect();
        fresh.sort_unstable();
        for name in fresh {
            tubes.by_name.insert(name.to_owned(), TubeState::default());
            tubes.order.push(name.to_owned());
        }
        let Tubes { by_name, order, .. } = &mut *tubes;
        let mut views = Vec::new();
        order.retain(|name| {
            let Some(state) = by_name.get_mut(name) else { return false };
            if state.pause.is_some_and(|p| p.until <= now) {
                state.pause = None;
            }
            let counts = store.get(name.as_str()).copied().copied().unwrap_or_default();
            let exists =
                name == "default" || state.referenced() || has_jobs(&counts) || counts.paused || state.pause.is_some();
            if exists {
                views.push(TubeView { name: name.clone(), counts, state: state.clone() });
            } else {
                // Gone, as beanstalkd frees an unused empty tube; counters restart.
                by_name.remove(name);
            }
            exists
        });
        views
    }

    /// Records a pause of `tube` until now + `seconds` (0: none in force);
    /// returns its generation (the timer that ends it resumes the tube only
    /// if it is still the latest).
    pub fn start_pause(&self, tube: &str, seconds: u64) -> u64 {
        let mut tubes = lock(&self.tubes);
        tubes.pause_generation += 1;
        let generation = tubes.pause_generation;
        if !tubes.by_name.contains_key(tube) {
            tubes.by_name.insert(tube.to_owned(), TubeState::default());
            tubes.order.push(tube.to_owned());
        }
        if let Some(state) = tubes.by_name.get_mut(tube) {
            state.cmd_pause += 1;
            let until = Instant::now().checked_add(Duration::from_secs(seconds));
            state.pause = until.filter(|_| seconds > 0).map(|until| Pause { seconds, until, generation });
        }
        generation
    }

    /// Whether the pause `generation` of `tube` is still the one in force (then it ends now).
    pub fn end_pause(&self, tube: &str, generation: u64) -> bool {
        let mut tubes = lock(&self.tubes);
        match tubes.by_name.get_mut(tube) {
            Some(state) if state.pause.is_some_and(|p| p.generation == generation) => {
                state.pause = None;
                true
            }
            _ => false,
        }
    }

    /// Records that connection `conn` holds `job` until `deadline` (its TTR).
    pub fn hold(&self, conn: u64, job: Arc<Job>, deadline: Instant) {
        lock(&self.held).insert((conn, job.id()), (job, deadline));
    }

    /// Whether `conn` held job `id` (and no longer does).
    pub fn unhold(&self, conn: u64, id: u64) -> bool {
        lock(&self.held).remove(&(conn, id)).is_some()
    }

    /// Counts a timeout for each held job (of id `only`, or all) whose TTR
    /// ran out, once: the first to notice takes it out of the held jobs.
    pub fn expire_held(&self, only: Option<u64>) {
        let now = Instant::now();
        let mut held = lock(&self.held);
        let expired: Vec<(u64, u64)> = held
            .iter()
            .filter(|((_, id), (_, deadline))| only.is_none_or(|o| o == *id) && *deadline <= now)
            .map(|(key, _)| *key)
            .collect();
        for key in &expired {
            held.remove(key);
        }
        drop(held);
        for (_, id) in expired {
            self.timed_out(id);
        }
    }

    /// A held job's TTR ran out (noticed once).
    pub fn timed_out(&self, id: u64) {
        self.job_timeouts.fetch_add(1, Relaxed);
        self.note(id, |n| n.timeouts += 1);
    }

    /// Every job held by a connection, taken out (at shutdown).
    pub fn take_held(&self) -> Vec<Arc<Job>> {
        lock(&self.held).drain().map(|(_, (job, _))| job).collect()
    }

    pub fn note(&self, id: u64, f: impl FnOnce(&mut JobNotes)) {
        let mut notes = lock(&self.notes);
        if notes.len() >= MAX_NOTES && !notes.contains_key(&id) {
            notes.clear();
        }
        f(notes.entry(id).or_default());
    }

    pub fn notes(&self, id: u64) -> Option<JobNotes> {
        lock(&self.notes).get(&id).copied()
    }

    /// The job is gone (deleted).
    pub fn forget(&self, id: u64) {
        lock(&self.notes).remove(&id);
    }
}

/// The ready jobs of `queue` (all queues: `None`) with a beanstalkd priority
/// below 1024. The store keeps no such count: this reads the ready jobs' rows
/// (without payloads), a page at a time.
pub fn urgent_count(q: &Queue, queue: Option<&str>) -> jobq::Result<u64> {
    let threshold = super::parse::to_jobq_priority(super::parse::URGENT_THRESHOLD);
    let mut after_id = 0;
    let mut urgent = 0;
    loop {
        let filter = jobq::JobFilter {
            queue: queue.map(str::to_owned),
            state: Some(JobState::Ready),
            after_id,
            limit: Some(10_000),
            payload_max: Some(0),
        };
        let page = q.list_jobs(&filter)?;
        urgent += page.iter().filter(|j| j.priority < threshold).count() as u64;
        match page.last() {
            Some(last) if page.len() == 10_000 => after_id = last.id,
            _ => return Ok(urgent),
        }
    }
}

/// 16 hex digits from the system's random source (or, failing that, the time and pid).
fn instance_id() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if random.is_err() {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        bytes = ((nanos as u64) ^ (u64::from(std::process::id()) << 32)).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
