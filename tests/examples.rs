//! The event-loop examples, end to end: examples/epoll_worker.c (plain epoll,
//! a timerfd, a signalfd) and examples/libevent_worker.c (libevent 2), built
//! against the libraries this `cargo test` built (support/clib.rs), each run
//! on a SQLite file and on a PostgreSQL schema of its own (dropped after).
//!
//! Jobs go into two queues, some delayed and one that always fails (so its
//! retry comes back by the timer, as a delayed job makes no write that would
//! wake the watch), more are put from this process while the worker waits;
//! the worker runs with --idle-exit. Its output must show every job handled
//! exactly once (the failing one once per attempt), and the store must hold
//! nothing afterwards but that job, dead. Also: SIGTERM stops a worker that
//! has no idle exit, cleanly. Needs libevent-dev (scripts/install-deps.sh).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jobq::{Config, PutOptions, Queue, QueueCounts};

#[path = "support/clib.rs"]
mod clib;
#[path = "support/pg.rs"]
mod pg;
use clib::{Libs, Linkage};

/// Retries after 100 ms, dead after the second attempt.
const CONFIG: &str = r#"{"backoff_base_ms": 100, "backoff_jitter": 0, "max_attempts": 2}"#;
const IDLE_EXIT_MS: u64 = 1500;
const DELAY_MS: u64 = 300;

#[derive(Clone, Copy, Debug)]
enum Example {
    Epoll,
    Libevent,
    WatchLatency,
}

impl Example {
    fn name(self) -> &'static str {
        match self {
            Example::Epoll => "epoll_worker",
            Example::Libevent => "libevent_worker",
            Example::WatchLatency => "watch_latency",
        }
    }

    /// Compiled once per test process.
    fn binary(self) -> PathBuf {
        static BUILT: Mutex<BTreeMap<&'static str, PathBuf>> = Mutex::new(BTreeMap::new());
        let mut built = BUILT.lock().unwrap();
        if let Some(bin) = built.get(self.name()) {
            return bin.clone();
        }
        let libs = Libs::find();
        let src = libs.root.join("examples").join(format!("{}.c", self.name()));
        let bin = libs.scratch("examples").join(self.name());
        let extra: &[&str] = match self {
            Example::Epoll | Example::WatchLatency => &[],
            Example::Libevent => &["-levent"],
        };
        libs.compile_with(Linkage::Shared, &[&src], &bin, extra).unwrap_or_else(|e| {
            panic!("{e}\n(libevent_worker needs libevent-dev: run scripts/install-deps.sh)");
        });
        built.insert(self.name(), bin.clone());
        bin
    }
}

/// A running example, its stdout collected line by line.
struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Running {
    fn start(example: Example, args: &[String]) -> Running {
        let mut child = Command::new(example.binary())
            .args(args)
            .env("JOBQ_CONFIG", CONFIG)
            .env_remove("LD_LIBRARY_PATH")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", example.name()));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let sink = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut err, &mut s);
            s
        });
        Running { child, lines, reader: Some(reader), stderr: Some(stderr) }
    }

    fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    fn wait_for_line(&mut self, what: &str, timeout: Duration) {
        let until = Instant::now() + timeout;
        while !self.lines.lock().unwrap().iter().any(|l| l.contains(what)) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the worker exited ({status}) before printing {what:?}:\n{}", self.finish().1);
            }
            assert!(Instant::now() < until, "no {what:?} within {timeout:?}:\n{}", self.output());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits (killing it after 60 s) for the exit; (success, stdout, stderr).
    fn finish(&mut self) -> (bool, String, String) {
        let until = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > until {
                let _ = self.child.kill();
                break self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        let stderr = self.stderr.take().map(|h| h.join().unwrap()).unwrap_or_default();
        (status.success(), self.output(), stderr)
    }
}

/// "job ID (attempt A) on QUEUE: PAYLOAD -> done|failed" lines: (id, attempt, queue, payload, outcome).
fn handled(stdout: &str) -> Vec<(u64, u32, String, String, String)> {
    stdout
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("job ")?;
            let (id, rest) = rest.split_once(" (attempt ")?;
            let (attempt, rest) = rest.split_once(") on ")?;
            let (queue, rest) = rest.split_once(": ")?;
            let (payload, outcome) = rest.rsplit_once(" -> ")?;
            Some((id.parse().ok()?, attempt.parse().ok()?, queue.into(), payload.into(), outcome.into()))
        })
        .collect()
}

fn put(q: &Queue, queue: &str, payload: &str, delay_ms: u64, want: &mut BTreeMap<u64, (String, String)>) {
    let opts = PutOptions { delay_ms, ..PutOptions::default() };
    let id = q.put(queue, payload.as_bytes(), &opts).unwrap().id();
    want.insert(id, (queue.to_string(), payload.to_string()));
}

fn every_job_once(example: Example, postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (path, _schema) = pg::store(dir.path(), "examples.db", postgres);
    let q = Queue::open(&path, Config::from_json(Some(CONFIG)).unwrap()).unwrap();
    let mut want = BTreeMap::new();
    const N: usize = 10;
    for i in 0..N {
        put(&q, "mail", &format!("mail {i}"), 0, &mut want);
        put(&q, "reports", &format!("report {i}"), if i % 3 == 0 { DELAY_MS } else { 0 }, &mut want);
    }
    put(&q, "mail", "fail: smtp down", 0, &mut want);

    let store = path.to_str().unwrap().to_string();
    let args = ["--idle-exit".into(), IDLE_EXIT_MS.to_string(), store, "mail".into(), "reports".into()];
    example.binary(); // compiled before the clock starts
    let started = Instant::now();
    let mut w = Running::start(example, &args);
    w.wait_for_line("watching 2 queues", Duration::from_secs(20));
    // Puts from another process (this one) while the worker waits on its fds.
    std::thread::sleep(Duration::from_millis(200));
    put(&q, "reports", "late report", 0, &mut want);
    put(&q, "mail", "late mail", 0, &mut want);
    let (ok, stdout, stderr) = w.finish();
    let took = started.elapsed();
    assert!(ok, "{} failed:\n{stdout}\n{stderr}", example.name());
    assert!(stderr.is_empty(), "{} wrote to stderr:\n{stderr}", example.name());

    let got = handled(&stdout);
    let mut times: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    for (id, attempt, queue, payload, outcome) in &got {
        let Some((want_queue, want_payload)) = want.get(id) else { panic!("job {id} was never put:\n{stdout}") };
        assert_eq!((queue, payload), (want_queue, want_payload), "job {id}:\n{stdout}");
        let fail = payload.starts_with("fail");
        assert_eq!(outcome, if fail { "failed" } else { "done" }, "job {id}:\n{stdout}");
        times.entry(*id).or_default().push(*attempt);
    }
    for (id, (_, payload)) in &want {
        let attempts = times.get(id).cloned().unwrap_or_default();
        let expected = if payload.starts_with("fail") { vec![1, 2] } else { vec![1] };
        assert_eq!(attempts, expected, "attempts of job {id} ({payload}):\n{stdout}");
    }
    assert!(
        stdout.ends_with(&format!("{} jobs handled, exiting (idle)", got.len())),
        "the last line says why it stopped:\n{stdout}"
    );

    let stats = q.stats().unwrap().queues;
    let counts = |queue: &str| stats.get(queue).cloned().unwrap_or_default();
    assert_eq!(counts("reports"), QueueCounts::default(), "reports is empty: {stats:?}");
    assert_eq!(counts("mail"), QueueCounts { dead: 1, ..QueueCounts::default() }, "mail: the failing job, dead");
    q.close().unwrap();
    println!(
        "{} on {}: {} jobs put, {} handler calls, exit after {:.2?} (idle exit {IDLE_EXIT_MS} ms)",
        example.name(),
        if postgres { "PostgreSQL" } else { "SQLite" },
        want.len(),
        got.len(),
        took
    );
}

/// Without --idle-exit the worker runs until SIGINT/SIGTERM, then closes
/// its watches and the store and exits 0.
fn stops_on_sigterm(example: Example) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("signal.db");
    let q = Queue::open(&store, Config::default()).unwrap();
    q.put("mail", b"before the signal", &PutOptions::default()).unwrap();
    let mut w = Running::start(example, &[store.display().to_string(), "mail".into()]);
    w.wait_for_line("before the signal -> done", Duration::from_secs(20));
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(w.child.id() as libc::pid_t, libc::SIGTERM) }, 0);
    let (ok, stdout, stderr) = w.finish();
    assert!(ok, "{} after SIGTERM:\n{stdout}\n{stderr}", example.name());
    assert!(stdout.ends_with("1 jobs handled, exiting (signal)"), "{stdout}");
    assert_eq!(q.stats().unwrap().queues.get("mail").cloned().unwrap_or_default(), QueueCounts::default());
    q.close().unwrap();
}

/// Bad arguments and a store that cannot be opened: a message and a non-zero exit.
fn reports_errors(example: Example) {
    let bin = example.binary();
    let usage = Command::new(&bin).env_remove("LD_LIBRARY_PATH").output().unwrap();
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("usage:"));
    let bad = Command::new(&bin)
        .args([Path::new("/nonexistent/dir/x.db").to_str().unwrap(), "mail"])
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("cannot open /nonexistent/dir/x.db: JOBQ_E_"), "{err}");
}

/// examples/watch_latency.c (the wake latency of a watch fd, from another
/// process) runs and reports every sample; its numbers are not judged here.
fn watch_latency_runs(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (path, _schema) = pg::store(dir.path(), "latency.db", postgres);
    let out = Command::new(Example::WatchLatency.binary()).args(["40", path.to_str().unwrap()]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("watch fd       samples   40  p50 "), "{stdout}");
}

#[test]
fn watch_latency_runs_sqlite() {
    watch_latency_runs(false);
}

#[test]
fn watch_latency_runs_postgresql() {
    watch_latency_runs(true);
}

#[test]
fn epoll_worker_handles_every_job_once_sqlite() {
    every_job_once(Example::Epoll, false);
}

#[test]
fn epoll_worker_handles_every_job_once_postgresql() {
    every_job_once(Example::Epoll, true);
}

#[test]
fn libevent_worker_handles_every_job_once_sqlite() {
    every_job_once(Example::Libevent, false);
}

#[test]
fn libevent_worker_handles_every_job_once_postgresql() {
    every_job_once(Example::Libevent, true);
}

#[test]
fn epoll_worker_stops_on_sigterm() {
    stops_on_sigterm(Example::Epoll);
}

#[test]
fn libevent_worker_stops_on_sigterm() {
    stops_on_sigterm(Example::Libevent);
}

#[test]
fn examples_report_bad_arguments_and_stores() {
    reports_errors(Example::Epoll);
    reports_errors(Example::Libevent);
}
