//! Worker-pool throughput: jobs per second through `Worker` with trivial
//! handlers, next to the raw reserve/ack loop on the same machine.
//!
//!     cargo run --release --example pool_throughput [JOBS] [full|normal]
//!
//! Two workloads, each on a fresh file, 100-byte payloads, 2 handler threads:
//! - drain: JOBS jobs are put first (put_batch of 100), then the pool (or
//!   2 raw reserve/ack threads) empties the queue; rate = JOBS / drain time.
//! - cycle: 1 producer thread puts JOBS jobs one by one (jobq_put) while
//!   the pool consumes them; rate = JOBS / time until the last is done.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobq::{Config, Durability, Outcome, PutOptions, Queue, Worker, WorkerOptions};

const THREADS: u32 = 2;

fn open(dir: &std::path::Path, name: &str, durability: Durability) -> Queue {
    let config = Config { durability, ..Config::default() };
    Queue::open(dir.join(name), config).expect("open")
}

fn fill(q: &Queue, jobs: usize) {
    let payload = [b'x'; 100];
    let mut left = jobs;
    while left > 0 {
        let n = left.min(100);
        let batch: Vec<&[u8]> = (0..n).map(|_| &payload[..]).collect();
        q.put_batch("bench", &batch, &PutOptions::default()).expect("put_batch");
        left -= n;
    }
}

/// Runs a pool until `jobs` handlers ran; returns the elapsed time.
fn pool_until(q: &Queue, jobs: usize, start: Instant) -> Duration {
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    let handler = Arc::new(move |_job: &Arc<jobq::Job>| {
        d.fetch_add(1, SeqCst);
        Outcome::Done
    });
    let worker = Worker::start(q, "bench", WorkerOptions { concurrency: THREADS }, handler).expect("worker");
    while done.load(SeqCst) < jobs {
        std::thread::sleep(Duration::from_micros(200));
    }
    let took = start.elapsed();
    worker.stop(None).expect("stop");
    took
}

/// 2 threads reserve + ack until `jobs` were acked; returns the elapsed time.
fn raw_until(q: &Queue, jobs: usize, start: Instant) -> Duration {
    let done = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (q, done) = (q.clone(), done.clone());
            std::thread::spawn(move || {
                while done.load(SeqCst) < jobs {
                    if let Some(job) = q.reserve("bench", Some(Duration::from_millis(50))).expect("reserve") {
                        job.ack().expect("ack");
                        done.fetch_add(1, SeqCst);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("consumer");
    }
    start.elapsed()
}

fn produce(q: &Queue, jobs: usize) -> std::thread::JoinHandle<()> {
    let q = q.clone();
    std::thread::spawn(move || {
        let payload = [b'x'; 100];
        for _ in 0..jobs {
            q.put("bench", &payload, &PutOptions::default()).expect("put");
        }
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let jobs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(30_000);
    let durability = match args.next().as_deref() {
        Some("full") => Durability::Full,
        _ => Durability::Normal,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let rate = |took: Duration| jobs as f64 / took.as_secs_f64();
    println!("{jobs} jobs, durability {durability:?}, {THREADS} consumer threads");

    let q = open(dir.path(), "drain-raw.db", durability);
    fill(&q, jobs);
    println!("drain  raw reserve+ack : {:>8.0} jobs/s", rate(raw_until(&q, jobs, Instant::now())));
    q.close().expect("close");

    let q = open(dir.path(), "drain-pool.db", durability);
    fill(&q, jobs);
    println!("drain  worker pool     : {:>8.0} jobs/s", rate(pool_until(&q, jobs, Instant::now())));
    q.close().expect("close");

    let q = open(dir.path(), "cycle-raw.db", durability);
    let start = Instant::now();
    let p = produce(&q, jobs);
    let took = raw_until(&q, jobs, start);
    p.join().expect("producer");
    println!("cycle  raw reserve+ack : {:>8.0} jobs/s", rate(took));
    q.close().expect("close");

    let q = open(dir.path(), "cycle-pool.db", durability);
    let start = Instant::now();
    let p = produce(&q, jobs);
    let took = pool_until(&q, jobs, start);
    p.join().expect("producer");
    println!("cycle  worker pool     : {:>8.0} jobs/s", rate(took));
    q.close().expect("close");
}
