//! Measures how fast a blocked reserve wakes up after a put:
//! in the same process (another thread puts) and from another process.
//!
//!     cargo run --release --example wake_latency [SAMPLES [STORE]]
//!
//! STORE: a queue file (default: a fresh one in the temp dir) or a
//! PostgreSQL URL such as
//! `postgresql://postgres@127.0.0.1:5432/test?schema=jobq_wake` (the
//! "cross-process" row is then what a worker on another host sees, over
//! loopback: LISTEN/NOTIFY).
//!
//! Each sample: the consumer is blocked in `reserve(.., None)` (wait
//! forever); the producer notes the wall-clock time in the payload right
//! before `put`; the consumer takes the difference when reserve returns.
//! So a sample is put (incl. its commit) + wakeup + the reserve's own
//! transaction: the latency a blocked worker sees. Durability "normal", so
//! the disk's fsync time is not part of it (with "full", add one fsync).

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jobq::{Config, Durability, PutOptions, Queue};

fn now_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

fn config() -> Config {
    Config { durability: Durability::Normal, ..Config::default() }
}

/// Consumes `samples` jobs whose payload is the put's start time; returns latencies in µs.
fn consume(q: &Queue, queue: &str, samples: usize) -> Vec<f64> {
    let mut lat = Vec::with_capacity(samples);
    for _ in 0..samples {
        let job = q.reserve(queue, None).expect("reserve").expect("a job");
        let got = now_ns();
        let sent: u128 = std::str::from_utf8(job.payload()).ok().and_then(|s| s.parse().ok()).unwrap_or(got);
        lat.push((got.saturating_sub(sent)) as f64 / 1000.0);
        job.ack().expect("ack");
    }
    lat
}

/// Puts `samples` jobs, one every `gap`, each carrying its start time.
fn produce(q: &Queue, queue: &str, samples: usize, gap: Duration) {
    for _ in 0..samples {
        std::thread::sleep(gap);
        q.put(queue, now_ns().to_string().as_bytes(), &PutOptions::default()).expect("put");
    }
}

fn report(what: &str, mut lat: Vec<f64>) {
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
    println!(
        "{what:<14} samples {:>4}  p50 {:>8.1} us  p90 {:>8.1} us  p99 {:>8.1} us  max {:>8.1} us",
        lat.len(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        lat[lat.len() - 1]
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "--child" {
        // The producer process of the cross-process measurement.
        let q = Queue::open(&args[2], config()).expect("child open");
        produce(&q, "x", args[3].parse().unwrap_or(200), Duration::from_millis(5));
        q.close().expect("child close");
        return;
    }
    let samples: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(500);
    let dir = std::env::temp_dir().join(format!("jobq-wake-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = match args.get(2) {
        Some(store) => std::path::PathBuf::from(store),
        None => dir.join("wake.db"),
    };
    let q = Queue::open(&path, config()).expect("open");

    // In-process: a thread puts every 2 ms, the main thread is blocked in reserve.
    let producer = {
        let q = q.clone();
        std::thread::spawn(move || produce(&q, "in", samples, Duration::from_millis(2)))
    };
    let lat = consume(&q, "in", samples);
    producer.join().expect("producer thread");
    report("in-process", lat);

    // Cross-process: a child process puts every 5 ms.
    let exe = std::env::current_exe().expect("own path");
    let mut child = Command::new(exe)
        .args(["--child", path.to_str().expect("utf-8 path"), &samples.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn child");
    let lat = consume(&q, "x", samples);
    child.wait().expect("child exit");
    report("cross-process", lat);

    q.close().expect("close");
    let _ = std::fs::remove_dir_all(&dir);
}
