//! Several processes on one queue file, through the Rust API. The test
//! binary re-executes itself (`--exact child_process_entry`) with
//! `JOBQ_MP_ROLE` naming the part the child plays; children report to the
//! parent on stdout in lines starting with `@@jobq-child`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jobq::{Config, Durability, PutOptions, Queue, QueueCounts};

#[path = "support/pg.rs"]
mod pg;

const ROLE: &str = "JOBQ_MP_ROLE";
const PATH: &str = "JOBQ_MP_PATH";
const ARG: &str = "JOBQ_MP_ARG";
const MARKER: &str = "JOBQ_MP_MARKER";
const TAG: &str = "@@jobq-child";

const PRODUCERS: usize = 3;
const CONSUMERS: usize = 3;
const JOBS_PER_PRODUCER: usize = 300;

fn config() -> Config {
    Config { durability: Durability::Normal, ..Config::default() }
}

fn unix_micros() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros()
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("child needs {name}"))
}

// ------------------------------------------------------------------ children

/// Does nothing in a normal test run; in a child process, plays `JOBQ_MP_ROLE`.
#[test]
fn child_process_entry() {
    let Ok(role) = std::env::var(ROLE) else { return };
    let path = PathBuf::from(env(PATH));
    match role.as_str() {
        "producer" => producer(&path, env(ARG).parse().unwrap()),
        "consumer" => consumer(&path, Path::new(&env(MARKER))),
        "waker" => waker(&path, Path::new(&env(MARKER)), env(ARG).parse().unwrap()),
        "holder" => holder(&path),
        other => panic!("unknown child role {other}"),
    }
}

/// Puts JOBS_PER_PRODUCER jobs, half one by one and half in batches of 10.
fn producer(path: &Path, index: usize) {
    let q = Queue::open(path, config()).unwrap();
    let mut ids = Vec::with_capacity(JOBS_PER_PRODUCER);
    let payload = |i: usize| format!("producer {index} job {i}").into_bytes();
    for i in 0..JOBS_PER_PRODUCER / 2 {
        ids.push(q.put("mp", &payload(i), &PutOptions::default()).unwrap().id());
    }
    for chunk in (JOBS_PER_PRODUCER / 2..JOBS_PER_PRODUCER).collect::<Vec<_>>().chunks(10) {
        let payloads: Vec<Vec<u8>> = chunk.iter().map(|&i| payload(i)).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        ids.extend(q.put_batch("mp", &refs, &PutOptions::default()).unwrap().into_iter().map(|p| p.id()));
    }
    q.close().unwrap();
    let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
    println!("{TAG} PUT {}", ids.join(","));
}

/// Reserves and acks until the producers are done (marker file) and nothing is left.
fn consumer(path: &Path, producers_done: &Path) {
    let q = Queue::open(path, config()).unwrap();
    let mut acked = Vec::new();
    let mut deliveries = 0;
    loop {
        // Checked before the reserve: an empty reserve after the marker
        // appeared means every job was put and is taken.
        let done = producers_done.exists();
        match q.reserve("mp", Some(Duration::from_millis(100))).unwrap() {
            Some(job) => {
                deliveries += 1;
                assert_eq!(job.attempt(), 1, "job {} delivered twice", job.id());
                job.ack().unwrap();
                acked.push(job.id().to_string());
            }
            None if done => break,
            None => {}
        }
    }
    q.close().unwrap();
    println!("{TAG} DELIVERIES {deliveries}");
    println!("{TAG} ACKED {}", acked.join(","));
}

/// Waits until the parent is about to block in a reserve, then puts `rounds`
/// jobs, 100 ms apart, each time printing when the put started.
fn waker(path: &Path, parent_waiting: &Path, rounds: usize) {
    let q = Queue::open(path, config()).unwrap();
    for round in 0..rounds {
        let marker = parent_waiting.with_extension(round.to_string());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !marker.exists() {
            assert!(Instant::now() < deadline, "the parent never started waiting");
            std::thread::sleep(Duration::from_millis(2));
        }
        // The parent creates the marker just before it blocks.
        std::thread::sleep(Duration::from_millis(100));
        let started = unix_micros();
        q.put("wake", format!("round {round}").as_bytes(), &PutOptions::default()).unwrap();
        let returned = unix_micros();
        println!("{TAG} PUT {round} {started} {returned}");
    }
    q.close().unwrap();
}

/// Reserves the one job of queue "held", reports it, and waits to be killed.
fn holder(path: &Path) {
    let q = Queue::open(path, config()).unwrap();
    let job = q.reserve("held", Some(Duration::from_secs(10))).unwrap().expect("the parent put a job");
    println!("{TAG} RESERVED {} {}", job.id(), job.attempt());
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

// ------------------------------------------------------------------ parent

fn spawn_child(role: &str, path: &Path, vars: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child_process_entry", "--nocapture", "--quiet", "--test-threads=1"])
        .env(ROLE, role)
        .env(PATH, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// The child's report lines with `what`, without the tag and `what`.
fn reports<'a>(stdout: &'a str, what: &str) -> Vec<&'a str> {
    let prefix = format!("{TAG} {what}");
    stdout.lines().filter_map(|l| l.find(&prefix).map(|at| l[at + prefix.len()..].trim())).collect()
}

fn parse_ids(list: &str) -> Vec<u64> {
    list.split(',').filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect()
}

fn wait_ok(child: Child, who: &str) -> String {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{who} failed: {:?}", out.status);
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn producers_and_consumers_in_separate_processes_account_for_every_job() {
    producers_and_consumers_in_separate_processes_account_for_every_job_on(false);
}

/// The same with the store in PostgreSQL.
#[test]
fn postgresql_producers_and_consumers_in_separate_processes_account_for_every_job() {
    producers_and_consumers_in_separate_processes_account_for_every_job_on(true);
}

fn producers_and_consumers_in_separate_processes_account_for_every_job_on(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (path, _schema) = pg::store(dir.path(), "mp.db", postgres);
    let marker = dir.path().join("producers-done");
    // Create the file (and its schema) once, before the children race to.
    Queue::open(&path, config()).unwrap().close().unwrap();
    let started = Instant::now();
    let consumers: Vec<Child> =
        (0..CONSUMERS).map(|_| spawn_child("consumer", &path, &[(MARKER, marker.display().to_string())])).collect();
    let producers: Vec<Child> =
        (0..PRODUCERS).map(|i| spawn_child("producer", &path, &[(ARG, i.to_string())])).collect();
    let mut put = Vec::new();
    for (i, p) in producers.into_iter().enumerate() {
        let out = wait_ok(p, &format!("producer {i}"));
        let lines = reports(&out, "PUT");
        assert_eq!(lines.len(), 1, "producer {i} output: {out}");
        put.extend(parse_ids(lines[0]));
    }
    std::fs::write(&marker, b"").unwrap();
    let mut acked_by: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    let mut per_consumer = Vec::new();
    for (i, c) in consumers.into_iter().enumerate() {
        let out = wait_ok(c, &format!("consumer {i}"));
        let acked = parse_ids(reports(&out, "ACKED")[0]);
        let deliveries: usize = reports(&out, "DELIVERIES")[0].parse().unwrap();
        assert_eq!(deliveries, acked.len(), "consumer {i}: every delivery acked");
        per_consumer.push(acked.len());
        for id in acked {
            acked_by.entry(id).or_default().push(i);
        }
    }
    let elapsed = started.elapsed();
    println!(
        "multi-process: {PRODUCERS} producers put {} jobs, {CONSUMERS} consumers acked {:?} = {} in {elapsed:?}",
        put.len(),
        per_consumer,
        per_consumer.iter().sum::<usize>()
    );
    let put_set: BTreeSet<u64> = put.iter().copied().collect();
    assert_eq!(put.len(), PRODUCERS * JOBS_PER_PRODUCER);
    assert_eq!(put_set.len(), put.len(), "ids are unique across processes");
    let twice: Vec<_> = acked_by.iter().filter(|(_, by)| by.len() > 1).collect();
    assert!(twice.is_empty(), "acked more than once: {twice:?}");
    let acked_set: BTreeSet<u64> = acked_by.keys().copied().collect();
    let missing: Vec<_> = put_set.difference(&acked_set).collect();
    let unknown: Vec<_> = acked_set.difference(&put_set).collect();
    assert!(missing.is_empty() && unknown.is_empty(), "never acked: {missing:?}; acked but never put: {unknown:?}");
    let q = Queue::open(&path, config()).unwrap();
    assert_eq!(q.stats().unwrap().queues["mp"], QueueCounts::default());
    q.close().unwrap();
}

#[test]
fn a_put_from_another_process_wakes_a_blocked_reserve() {
    a_put_from_another_process_wakes_a_blocked_reserve_on(false);
}

/// LISTEN/NOTIFY: the same with the store in PostgreSQL.
#[test]
fn postgresql_a_put_from_another_process_wakes_a_blocked_reserve() {
    a_put_from_another_process_wakes_a_blocked_reserve_on(true);
}

fn a_put_from_another_process_wakes_a_blocked_reserve_on(postgres: bool) {
    const ROUNDS: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let (path, _schema) = pg::store(dir.path(), "wake.db", postgres);
    let marker = dir.path().join("parent-waiting");
    let q = Queue::open(&path, config()).unwrap();
    let child = spawn_child("waker", &path, &[(MARKER, marker.display().to_string()), (ARG, ROUNDS.to_string())]);
    let mut woke_at = Vec::new();
    for round in 0..ROUNDS {
        std::fs::write(marker.with_extension(round.to_string()), b"").unwrap();
        let job = q.reserve("wake", Some(Duration::from_secs(10))).unwrap();
        woke_at.push(unix_micros());
        let job = job.expect("woken by the child's put, not the timeout");
        assert_eq!(job.payload(), format!("round {round}").as_bytes());
        job.ack().unwrap();
    }
    let out = wait_ok(child, "waker");
    let puts = reports(&out, "PUT");
    assert_eq!(puts.len(), ROUNDS, "{out}");
    let mut latencies = Vec::new();
    for (round, line) in puts.iter().enumerate() {
        let f: Vec<u128> = line.split(' ').map(|s| s.parse().unwrap()).collect();
        assert_eq!(f[0], round as u128);
        let from_start = Duration::from_micros(woke_at[round].saturating_sub(f[1]) as u64);
        let from_return = Duration::from_micros(woke_at[round].saturating_sub(f[2]) as u64);
        latencies.push((from_start, from_return));
    }
    println!("cross-process wake latency (from put start, from put return): {latencies:?}");
    for (from_start, _) in &latencies {
        assert!(*from_start < Duration::from_secs(1), "woken {from_start:?} after the other process's put");
    }
    q.close().unwrap();
}

/// Starts a holder child for a job with a 60 s lease and waits until it
/// reports the reservation. Returns (queue, job id, child).
fn held_by_child(path: &Path) -> (Queue, u64, Child) {
    let q = Queue::open(path, config()).unwrap();
    let opts = PutOptions { lease_ms: Some(60_000), ..PutOptions::default() };
    let id = q.put("held", b"survive me", &opts).unwrap().id();
    let mut child = spawn_child("holder", path, &[]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let reserved = loop {
        let line = lines.next().expect("the holder exited before reserving").unwrap();
        if let Some(at) = line.find(&format!("{TAG} RESERVED ")) {
            break line[at..].split(' ').skip(2).map(|s| s.parse::<u64>().unwrap()).collect::<Vec<_>>();
        }
    };
    assert_eq!(reserved, [id, 1], "the child got attempt 1 of the job");
    assert_eq!(q.stats().unwrap().queues["held"], QueueCounts { reserved: 1, ..QueueCounts::default() });
    (q, id, child)
}

fn kill_and_reap(mut child: Child) {
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed: {status:?}");
}

fn check_redelivered(job: Option<jobq::Job>, id: u64, waited: Duration) {
    let job = job.expect("the job of the dead holder is delivered again");
    assert_eq!((job.id(), job.attempt(), job.payload()), (id, 2, &b"survive me"[..]));
    job.ack().unwrap();
    assert!(waited < Duration::from_secs(1), "reclaimed only after {waited:?}");
}

#[test]
fn a_job_held_by_a_killed_process_is_delivered_again_at_once() {
    a_job_held_by_a_killed_process_is_delivered_again_at_once_on(false);
}

/// The holder's advisory lock goes with its process.
#[test]
fn postgresql_a_job_held_by_a_killed_process_is_delivered_again_at_once() {
    a_job_held_by_a_killed_process_is_delivered_again_at_once_on(true);
}

fn a_job_held_by_a_killed_process_is_delivered_again_at_once_on(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (path, _schema) = pg::store(dir.path(), "kill.db", postgres);
    let (q, id, child) = held_by_child(&path);
    kill_and_reap(child);
    let started = Instant::now();
    let job = q.reserve("held", Some(Duration::from_secs(2))).unwrap();
    let waited = started.elapsed();
    println!("kill: job of a SIGKILLed holder (60 s lease) delivered again after {waited:?}");
    check_redelivered(job, id, waited);
    q.close().unwrap();
}

/// The parent is already blocked in a reserve when the holder dies.
///
/// Regression: the waiting reserve scanned the holders (alive), was woken
/// early by the watcher, skipped the throttled scan on its next loop, and
/// then slept until its timeout instead of rechecking.
#[test]
fn a_waiting_reserve_gets_the_job_of_a_holder_killed_meanwhile() {
    a_waiting_reserve_gets_the_job_of_a_holder_killed_meanwhile_on(false);
}

/// The same with the store in PostgreSQL.
#[test]
fn postgresql_a_waiting_reserve_gets_the_job_of_a_holder_killed_meanwhile() {
    a_waiting_reserve_gets_the_job_of_a_holder_killed_meanwhile_on(true);
}

fn a_waiting_reserve_gets_the_job_of_a_holder_killed_meanwhile_on(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (path, _schema) = pg::store(dir.path(), "killwait.db", postgres);
    let (q, id, child) = held_by_child(&path);
    let waiter = {
        let q = q.clone();
        std::thread::spawn(move || {
            let job = q.reserve("held", Some(Duration::from_secs(2))).unwrap();
            (job, Instant::now())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let killed = Instant::now();
    kill_and_reap(child);
    let (job, woke) = waiter.join().unwrap();
    let waited = woke.saturating_duration_since(killed);
    println!("kill while waiting: delivered again {waited:?} after the kill");
    check_redelivered(job, id, waited);
    q.close().unwrap();
}

/// Regression: a reserve whose holder scan was skipped (another reserve of
/// this handle scanned less than 200 ms ago) must still plan a recheck, not
/// sleep until the lease ends (60 s here) or its timeout: a reserve that
/// found the holder alive, the kill, then a reserve with a 2 s timeout must
/// get the job long before its deadline.
#[test]
fn a_reserve_soon_after_an_owner_check_still_notices_the_killed_holder() {
    let dir = tempfile::tempdir().unwrap();
    let (q, id, child) = held_by_child(&dir.path().join("killsoon.db"));
    assert!(q.reserve("held", Some(Duration::ZERO)).unwrap().is_none(), "the child's lease is live");
    kill_and_reap(child);
    let started = Instant::now();
    let job = q.reserve("held", Some(Duration::from_secs(2))).unwrap();
    let waited = started.elapsed();
    println!("kill soon after a check: delivered again after {waited:?}");
    check_redelivered(job, id, waited);
    q.close().unwrap();
}
