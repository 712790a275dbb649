//! Lifecycle of a queue through the public Rust API: durability modes, close
//! semantics, worker pools (concurrency, outcomes, panics, lease renewal),
//! cross-thread wakeups and persistence across close/reopen.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use jobq::{Config, Durability, Error, Job, Outcome, Put, PutOptions, Queue, QueueCounts, Worker, WorkerOptions};

const ZERO: Option<Duration> = Some(Duration::ZERO);

fn counts(ready: u64, scheduled: u64, reserved: u64, dead: u64) -> QueueCounts {
    QueueCounts { ready, scheduled, reserved, dead, done: 0, paused: false }
}

fn fast_config() -> Config {
    Config {
        durability: Durability::Normal,
        lease_ms: 2_000,
        backoff_base_ms: 10,
        backoff_max_ms: 40,
        backoff_jitter: 0.0,
        ..Config::default()
    }
}

fn is_shutdown<T: std::fmt::Debug>(r: Result<T, Error>) -> bool {
    matches!(r, Err(Error::Shutdown(_)))
}

#[test]
fn both_durability_modes_store_and_deliver() {
    for durability in [Durability::Normal, Durability::Full] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("durability.db");
        let config = Config { durability, ..Config::default() };
        let q = Queue::open(&path, config.clone()).unwrap();
        assert_eq!(q.config().durability, durability);
        let ids: Vec<u64> =
            (0..5).map(|i| q.put("d", format!("job {i}").as_bytes(), &PutOptions::default()).unwrap().id()).collect();
        let batch: Vec<&[u8]> = vec![b"b0", b"b1", b"b2"];
        let batch_ids: Vec<u64> =
            q.put_batch("d", &batch, &PutOptions::default()).unwrap().into_iter().map(Put::id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]) && batch_ids[0] > ids[4], "{ids:?} {batch_ids:?}");
        let first = q.reserve("d", ZERO).unwrap().expect("a job is ready");
        assert_eq!((first.id(), first.payload(), first.attempt()), (ids[0], &b"job 0"[..], 1));
        first.ack().unwrap();
        q.close().unwrap();

        let q = Queue::open(&path, config).unwrap();
        assert_eq!(q.stats().unwrap().queues["d"], counts(7, 0, 0, 0), "{durability:?}");
        let mut seen = Vec::new();
        while let Some(job) = q.reserve("d", ZERO).unwrap() {
            seen.push(job.id());
            job.ack().unwrap();
        }
        let want: Vec<u64> = ids[1..].iter().chain(&batch_ids).copied().collect();
        assert_eq!(seen, want, "{durability:?}: FIFO order after reopen");
        q.close().unwrap();
    }
}

#[test]
fn closed_queue_refuses_everything_with_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(dir.path().join("close.db"), fast_config()).unwrap();
    let id = q.put("c", b"x", &PutOptions::default()).unwrap().id();
    q.put("c", b"y", &PutOptions::default()).unwrap();
    let held = q.reserve("c", ZERO).unwrap().unwrap();
    let clone = q.clone();
    q.close().unwrap();
    assert!(is_shutdown(q.put("c", b"z", &PutOptions::default())));
    assert!(is_shutdown(q.put_batch("c", &[b"1", b"2"], &PutOptions::default())));
    assert!(is_shutdown(q.reserve("c", ZERO)));
    assert!(is_shutdown(q.reserve("c", Some(Duration::from_millis(50)))));
    assert!(is_shutdown(q.kick("c", 1)));
    assert!(is_shutdown(q.cancel(id)));
    assert!(is_shutdown(q.stats()));
    assert!(is_shutdown(clone.put("c", b"z", &PutOptions::default())), "clones share the closed state");
    assert!(is_shutdown(held.ack()));
    assert!(is_shutdown(held.touch(0)));
    assert!(matches!(
        Worker::start(&q, "c", WorkerOptions::default(), Arc::new(|_: &Arc<Job>| Outcome::Done)),
        Err(Error::Shutdown(_))
    ));
    q.close().unwrap();
    clone.close().unwrap();
}

#[test]
fn close_wakes_a_waiting_reserve_with_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(dir.path().join("closewake.db"), fast_config()).unwrap();
    q.put("other", b"x", &PutOptions::default()).unwrap();
    let waiter = {
        let q = q.clone();
        std::thread::spawn(move || {
            let t = Instant::now();
            (q.reserve("w", Some(Duration::from_secs(10))), t.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    q.close().unwrap();
    let (result, waited) = waiter.join().unwrap();
    assert!(is_shutdown(result), "a reserve waiting during close gets Shutdown");
    assert!(waited < Duration::from_secs(1), "woken by close after {waited:?}");
}

#[test]
fn close_with_a_running_worker_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.db");
    let q = Queue::open(&path, fast_config()).unwrap();
    let worker =
        Worker::start(&q, "busy", WorkerOptions { concurrency: 2 }, Arc::new(|_: &Arc<Job>| Outcome::Done)).unwrap();
    assert!(matches!(q.close(), Err(Error::Busy(_))), "close while a worker runs");
    // Still fully usable after the refused close.
    q.put("busy", b"x", &PutOptions::default()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while q.stats().unwrap().queues["busy"] != QueueCounts::default() {
        assert!(Instant::now() < deadline, "the worker did not take the job");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(worker.stop(Some(Duration::from_secs(5))).unwrap(), "stop returns true once handlers are done");
    q.close().unwrap();
}

/// Keeps the handler panics this file causes on purpose out of the output;
/// every other panic is reported as usual.
fn quiet_intended_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info.payload().downcast_ref::<String>().map(String::as_str).unwrap_or("");
        if !msg.starts_with("handler panic on purpose") {
            default(info);
        }
    }));
}

/// Blocks up to `concurrency` handlers until all of them run at once, so
/// the test sees whether the pool really runs that many in parallel.
struct Gate {
    running: Mutex<(usize, usize)>,
    cv: Condvar,
}

impl Gate {
    fn enter(&self, want: usize) {
        let mut g = self.running.lock().unwrap();
        g.0 += 1;
        g.1 = g.1.max(g.0);
        self.cv.notify_all();
        let deadline = Instant::now() + Duration::from_secs(2);
        while g.1 < want && Instant::now() < deadline {
            g = self.cv.wait_timeout(g, Duration::from_millis(20)).unwrap().0;
        }
    }
    fn leave(&self) {
        self.running.lock().unwrap().0 -= 1;
    }
    fn max(&self) -> usize {
        self.running.lock().unwrap().1
    }
}

#[test]
fn worker_runs_handlers_concurrently_and_stores_outcomes() {
    const N: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(dir.path().join("worker.db"), fast_config()).unwrap();
    // Two tries for retried and panicking jobs, so their second failure buries them.
    let two = PutOptions { max_attempts: Some(2), ..PutOptions::default() };
    let mut kinds: BTreeMap<u64, &str> = BTreeMap::new();
    for kind in ["done", "retry", "bury", "panic", "done", "retry", "bury", "panic", "done", "done"] {
        kinds.insert(q.put("w", kind.as_bytes(), &two).unwrap().id(), kind);
    }
    let gate = Arc::new(Gate { running: Mutex::new((0, 0)), cv: Condvar::new() });
    let calls: Arc<Mutex<Vec<(u64, u32)>>> = Arc::default();
    let handler = {
        let (gate, calls) = (gate.clone(), calls.clone());
        Arc::new(move |job: &Arc<Job>| {
            calls.lock().unwrap().push((job.id(), job.attempt()));
            gate.enter(N);
            gate.leave();
            match job.payload() {
                b"done" => Outcome::Done,
                b"retry" => Outcome::Retry,
                b"bury" => Outcome::Bury,
                _ => panic!("handler panic on purpose (job {})", job.id()),
            }
        })
    };
    quiet_intended_panics();
    let worker = Worker::start(&q, "w", WorkerOptions { concurrency: N as u32 }, handler).unwrap();
    // 4 done + 2 bury + 2x2 retry + 2x2 panic = 14 calls.
    let deadline = Instant::now() + Duration::from_secs(10);
    while calls.lock().unwrap().len() < 14 || q.stats().unwrap().queues["w"] != counts(0, 0, 0, 6) {
        assert!(Instant::now() < deadline, "outcomes not stored: {:?}, calls {:?}", q.stats(), calls.lock().unwrap());
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(worker.stop(Some(Duration::from_secs(5))).unwrap());
    println!("worker: max concurrent handlers {} of {N}", gate.max());
    assert_eq!(gate.max(), N, "the pool runs `concurrency` handlers at once when enough jobs are ready");
    let mut calls = calls.lock().unwrap().clone();
    calls.sort();
    let mut want = Vec::new();
    for (&id, &kind) in &kinds {
        want.push((id, 1));
        if kind == "retry" || kind == "panic" {
            want.push((id, 2));
        }
    }
    assert_eq!(calls, want, "each job ran once per allowed attempt; a panic counts as a retry");
    // The dead ones are exactly the buried, retried and panicking jobs: kick brings back 6.
    assert_eq!(q.kick("w", 100).unwrap(), 6);
    let mut revived = Vec::new();
    while let Some(job) = q.reserve("w", ZERO).unwrap() {
        assert_eq!(job.attempt(), 1, "kick resets attempts");
        revived.push(kinds[&job.id()]);
        job.ack().unwrap();
    }
    revived.sort();
    assert_eq!(revived, ["bury", "bury", "panic", "panic", "retry", "retry"]);
    q.close().unwrap();
}

#[test]
fn worker_renews_the_lease_of_a_long_handler() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config { lease_ms: 90, ..fast_config() };
    let q = Queue::open(dir.path().join("renew.db"), config).unwrap();
    let id = q.put("r", b"slow", &PutOptions::default()).unwrap().id();
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = {
        let calls = calls.clone();
        Arc::new(move |_: &Arc<Job>| {
            calls.fetch_add(1, SeqCst);
            // Four leases long.
            std::thread::sleep(Duration::from_millis(360));
            Outcome::Done
        })
    };
    let worker = Worker::start(&q, "r", WorkerOptions::default(), handler).unwrap();
    let started = Instant::now();
    while calls.load(SeqCst) == 0 {
        assert!(started.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(2));
    }
    // While the handler runs, the job stays reserved: nobody else gets it.
    let mut checks = 0;
    while started.elapsed() < Duration::from_millis(300) {
        assert!(q.reserve("r", ZERO).unwrap().is_none(), "job {id} delivered twice while its handler ran");
        assert_eq!(q.stats().unwrap().queues["r"].reserved, 1);
        checks += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(worker.stop(Some(Duration::from_secs(5))).unwrap());
    assert_eq!(calls.load(SeqCst), 1);
    assert!(checks > 5);
    assert_eq!(q.stats().unwrap().queues["r"], QueueCounts::default(), "acked after the long handler");
    q.close().unwrap();
}

#[test]
fn a_put_in_another_thread_wakes_a_blocked_reserve_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(dir.path().join("wake.db"), fast_config()).unwrap();
    let mut latencies = Vec::new();
    for round in 0..5 {
        let waiter = {
            let q = q.clone();
            std::thread::spawn(move || {
                let job = q.reserve("wake", Some(Duration::from_secs(10))).unwrap();
                let woke = Instant::now();
                let job = job.expect("woken with a job, not a timeout");
                job.ack().unwrap();
                (woke, job.payload().to_vec())
            })
        };
        // Let the waiter block first.
        std::thread::sleep(Duration::from_millis(30));
        let payload = format!("round {round}");
        let before_put = Instant::now();
        q.put("wake", payload.as_bytes(), &PutOptions::default()).unwrap();
        let (woke, got) = waiter.join().unwrap();
        assert_eq!(got, payload.as_bytes());
        latencies.push(woke.saturating_duration_since(before_put));
    }
    println!("same-process wake latency (put start -> reserve returned): {latencies:?}");
    let worst = latencies.iter().max().unwrap();
    assert!(*worst < Duration::from_secs(1), "a put woke the waiting reserve only after {worst:?}");
    q.close().unwrap();
}

#[test]
fn data_persists_across_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("persist.db");
    let q = Queue::open(&path, fast_config()).unwrap();
    let ready = q.put("p", b"ready", &PutOptions { priority: 5, ..PutOptions::default() }).unwrap().id();
    let urgent = q.put("p", b"urgent", &PutOptions { priority: -5, ..PutOptions::default() }).unwrap().id();
    let delayed = q.put("p", b"later", &PutOptions { delay_ms: 60_000, ..PutOptions::default() }).unwrap().id();
    let keyed = PutOptions { unique_key: Some("only-one".into()), ..PutOptions::default() };
    let unique = q.put("p", b"unique", &keyed).unwrap().id();
    q.put("dead", b"buried", &PutOptions::default()).unwrap();
    q.reserve("dead", ZERO).unwrap().unwrap().bury(Some("test")).unwrap();
    // Reserved with a live lease (2 s) at close time.
    let held = q.reserve("p", ZERO).unwrap().unwrap();
    assert_eq!(held.id(), urgent);
    q.put("empty", b"gone", &PutOptions::default()).unwrap();
    q.reserve("empty", ZERO).unwrap().unwrap().ack().unwrap();
    let before = q.stats().unwrap();
    drop(held);
    q.close().unwrap();

    let q = Queue::open(&path, fast_config()).unwrap();
    let after = q.stats().unwrap();
    assert_eq!(after, before);
    assert_eq!(after.queues["p"], counts(2, 1, 1, 0));
    assert_eq!(after.queues["dead"], counts(0, 0, 0, 1));
    assert_eq!(after.queues["empty"], QueueCounts::default(), "a used queue stays listed when empty");
    assert_eq!(q.put("p", b"again", &keyed).unwrap(), Put::Duplicate(unique), "unique keys survive reopen");
    let next = q.put("p", b"new", &PutOptions::default()).unwrap().id();
    assert!(next > unique, "ids keep increasing across reopen: {next} after {unique}");
    assert!(matches!(q.cancel(urgent), Err(Error::State(_))), "the lease taken before close is still live");
    let mut order = Vec::new();
    while let Some(job) = q.reserve("p", ZERO).unwrap() {
        assert_eq!(job.attempt(), 1);
        order.push((job.id(), String::from_utf8(job.payload().to_vec()).unwrap()));
        job.ack().unwrap();
    }
    let want = [(unique, "unique"), (next, "new"), (ready, "ready")].map(|(id, p)| (id, p.to_owned()));
    assert_eq!(order, want, "(priority, id) order over old and new jobs");
    assert_eq!(q.kick("dead", 10).unwrap(), 1);
    q.cancel(delayed).unwrap();
    q.close().unwrap();
}

#[test]
fn put_batch_of_any_size_stores_every_payload_under_consecutive_ids() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(dir.path().join("batch.db"), fast_config()).unwrap();
    // Around the 50-row multi-row INSERT: below, at, above, two chunks plus a rest.
    let sizes = [2usize, 49, 50, 51, 100, 130, 7];
    let opts = PutOptions { priority: 3, max_attempts: Some(4), ..PutOptions::default() };
    let mut expected = Vec::new();
    let mut last_id = 0;
    for (b, &n) in sizes.iter().enumerate() {
        let payloads: Vec<Vec<u8>> = (0..n).map(|i| format!("batch {b} job {i}").into_bytes()).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
        let ids: Vec<u64> = q.put_batch("b", &refs, &opts).unwrap().into_iter().map(Put::id).collect();
        assert_eq!(ids.len(), n);
        for (k, id) in ids.iter().enumerate() {
            assert_eq!(*id, last_id + 1 + k as u64, "batch {b}: ids consecutive after the previous put");
        }
        last_id = *ids.last().unwrap();
        expected.extend(ids.into_iter().zip(payloads));
    }
    assert_eq!(q.stats().unwrap().queues["b"], counts(expected.len() as u64, 0, 0, 0));
    for (id, payload) in expected {
        let job = q.reserve("b", ZERO).unwrap().expect("a job");
        assert_eq!((job.id(), job.payload(), job.attempt()), (id, payload.as_slice(), 1));
        job.ack().unwrap();
    }
    assert!(q.reserve("b", ZERO).unwrap().is_none());
    q.close().unwrap();
}
