//! PostgreSQL faults, through the Rust API: a server restarted mid-run, a
//! backend connection killed by `pg_terminate_backend`, a bad URL, a wrong
//! password, an unreachable host, a schema holding someone else's tables.
//!
//! The tests that stop the server or need password authentication run
//! their own throwaway cluster (`TempCluster`: initdb + pg_ctl in a temp dir,
//! as `nobody` when run as root); the others use the server of
//! `JOBQ_TEST_PG_URL` (default `postgresql://postgres@127.0.0.1:5432/test`),
//! each in a schema of its own that it drops. Nothing here skips: without
//! PostgreSQL binaries (scripts/install-deps.sh installs them) they fail.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "support/pg.rs"]
mod pg;
use pg::{base_url, client, with_schema, Schema, TempCluster};

fn config() -> Config {
    Config { durability: Durability::Normal, ..Config::default() }
}

use jobq::{Config, Durability, Error, PutOptions, Queue};

fn ids_in(q: &Queue, queue: &str) -> Vec<u64> {
    let filter = jobq::JobFilter { queue: Some(queue.into()), ..jobq::JobFilter::default() };
    q.list_jobs(&filter).unwrap().iter().map(|j| j.id).collect()
}

fn assert_io(r: jobq::Result<impl std::fmt::Debug>, what: &str) -> String {
    match r {
        Err(Error::Io(m)) => m,
        other => panic!("{what}: want Io, got {other:?}"),
    }
}

// ------------------------------------------------------------------ tests

#[test]
fn a_server_restart_fails_calls_with_io_and_the_same_handle_works_again() {
    let cluster = TempCluster::start();
    let base = cluster.url("secret", "test");
    let schema = Schema::new(&base, "restart");
    let q = Queue::open(schema.url(), Config { durability: Durability::Full, ..Config::default() }).unwrap();
    let mut stored: Vec<u64> =
        (0..20).map(|i| q.put("r", format!("{i}").as_bytes(), &PutOptions::default()).unwrap().id()).collect();

    cluster.pg_ctl("stop");
    let started = Instant::now();
    let m = assert_io(q.put("r", b"while down", &PutOptions::default()), "put while the server is down");
    assert!(started.elapsed() < Duration::from_secs(15), "the failing put took {:?}", started.elapsed());
    assert_io(q.reserve("r", Some(Duration::ZERO)), "reserve while the server is down");
    assert_io(q.stats(), "stats while the server is down");
    eprintln!("while down: {m}");

    cluster.pg_ctl("start");
    // The handle reconnects by itself; the first call may still meet a
    // connection that died with the server, so allow a few tries.
    let deadline = Instant::now() + Duration::from_secs(10);
    let id = loop {
        match q.put("r", b"after", &PutOptions::default()) {
            Ok(p) => break p.id(),
            Err(Error::Io(m)) if Instant::now() < deadline => {
                eprintln!("after restart: {m}");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("put after the restart: {e:?}"),
        }
    };
    stored.push(id);
    let mut found = ids_in(&q, "r");
    found.sort_unstable();
    // Every put that returned OK is there; the one that failed is not.
    assert_eq!(found, stored);
    let job = q.reserve("r", Some(Duration::from_secs(5))).unwrap().expect("a job after the restart");
    job.ack().unwrap();
    q.close().unwrap();
}

#[test]
fn killed_backend_connections_are_replaced_and_lose_nothing() {
    let base = base_url();
    let schema = Schema::new(&base, "term");
    let app = schema.name.clone();
    let url = format!("{}&application_name={app}", schema.url());
    let holder = Queue::open(&url, config()).unwrap();
    let other = Queue::open(schema.url(), config()).unwrap();
    let id = holder.put("t", b"held", &PutOptions { lease_ms: Some(60_000), ..PutOptions::default() }).unwrap().id();
    let job = holder.reserve("t", Some(Duration::ZERO)).unwrap().expect("the job");
    assert_eq!(job.id(), id);

    let mut admin = client(&base);
    let killed: i64 = admin
        .query_one("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", &[&app])
        .unwrap()
        .get(0);
    assert!(killed > 0, "no backend of {app} to kill");

    // The holder is alive: its handle reconnects (and takes its advisory
    // lock again), so its delivery stays its own unless another client
    // reclaimed it in the moment the lock was free. Either way nothing is
    // lost and the job is finished once.
    let deadline = Instant::now() + Duration::from_secs(10);
    let acked = loop {
        match job.ack() {
            Ok(()) => break true,
            Err(Error::State(_)) => break false,
            Err(Error::Io(m)) if Instant::now() < deadline => {
                eprintln!("ack after the kill: {m}");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("ack after the kill: {e:?}"),
        }
    };
    if !acked {
        let again = other.reserve("t", Some(Duration::from_secs(5))).unwrap().expect("a reclaimed job is ready");
        assert_eq!(again.id(), id);
        again.ack().unwrap();
    }
    assert_eq!(other.stats().unwrap().queues["t"], jobq::QueueCounts::default());
    // The holder's handle works again.
    loop {
        match holder.put("t", b"after", &PutOptions::default()) {
            Ok(_) => break,
            Err(Error::Io(_)) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("put after the kill: {e:?}"),
        }
    }
    assert_eq!(other.stats().unwrap().queues["t"].ready, 1);
    holder.close().unwrap();
    other.close().unwrap();
}

#[test]
fn a_wrong_password_is_io_with_the_servers_word() {
    let cluster = TempCluster::start();
    let started = Instant::now();
    let e = Queue::open(with_schema(&cluster.url("wrong", "test"), "x"), config()).unwrap_err();
    let m = match &e {
        Error::Io(m) => m.clone(),
        other => panic!("want Io, got {other:?}"),
    };
    assert!(m.contains("password") || m.contains("authentication"), "{m}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // The right password works.
    let schema = Schema::new(&cluster.url("secret", "test"), "pw");
    Queue::open(schema.url(), config()).unwrap().close().unwrap();
}

#[test]
fn an_unreachable_host_is_io_within_connect_timeout() {
    // A port nobody listens on (bound, then released).
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = Instant::now();
    let e =
        Queue::open(format!("postgresql://postgres@127.0.0.1:{port}/test?connect_timeout=2"), config()).unwrap_err();
    assert!(matches!(e, Error::Io(_)), "{e:?}");
    assert!(e.to_string().contains("127.0.0.1"), "the message names the host: {e}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

/// This version has no TLS (docs/postgresql.md, "Limits"): a URL that
/// requires it is refused with Io naming TLS, and nothing is created.
#[test]
fn a_url_that_requires_tls_is_io_naming_tls() {
    let schema = Schema::new(&base_url(), "tls");
    let url = format!("{}&sslmode=require", schema.url());
    let e = Queue::open(&url, config()).unwrap_err();
    assert!(matches!(e, Error::Io(_)), "{e:?}");
    assert!(e.to_string().contains("TLS"), "the message names TLS: {e}");
    let mut c = client(&base_url());
    let n: i64 = c.query_one("SELECT count(*) FROM pg_namespace WHERE nspname = $1", &[&schema.name]).unwrap().get(0);
    assert_eq!(n, 0, "no schema was created");
}

#[test]
fn bad_urls_are_refused_with_a_clear_message() {
    for bad in [
        "postgresql://",
        "postgresql://postgres@127.0.0.1:notaport/test",
        "postgresql://postgres@127.0.0.1:5432/test?schema=",
        "postgresql://postgres@127.0.0.1:5432/test?nosuchparam=1",
    ] {
        match Queue::open(bad, config()) {
            Err(Error::InvalidArg(m)) | Err(Error::Io(m)) => eprintln!("{bad}: {m}"),
            other => panic!("{bad}: want InvalidArg or Io, got {other:?}"),
        }
    }
    // file_mode means nothing for a database.
    let schema = Schema::new(&base_url(), "mode");
    let e = Queue::open(schema.url(), Config { file_mode: 0o644, ..config() }).unwrap_err();
    assert!(matches!(&e, Error::InvalidArg(m) if m.contains("file_mode")), "{e:?}");
}

#[test]
fn a_schema_holding_someone_elses_tables_is_corrupt_and_untouched() {
    let base = base_url();
    let schema = Schema::new(&base, "foreign");
    let mut admin = client(&base);
    admin
        .batch_execute(&format!(
            "CREATE SCHEMA {s}; CREATE TABLE {s}.jobs (x int); INSERT INTO {s}.jobs VALUES (42);",
            s = schema.name
        ))
        .unwrap();
    let e = Queue::open(schema.url(), config()).unwrap_err();
    assert!(matches!(e, Error::Corrupt(_)), "{e:?}");
    let tables: Vec<String> = admin
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
            &[&schema.name],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tables, ["jobs"], "nothing created beside the foreign table");
    let x: i32 = admin.query_one(&format!("SELECT x FROM {}.jobs", schema.name), &[]).unwrap().get(0);
    assert_eq!(x, 42);
}

#[test]
fn the_cli_works_on_a_url() {
    let schema = Schema::new(&base_url(), "cli");
    let url = schema.url();
    let jobq = Path::new(env!("CARGO_BIN_EXE_jobq"));
    let run = |args: &[&str]| {
        let out = Command::new(jobq).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, id, err) = run(&["put", &url, "mail", "hello"]);
    assert_eq!(code, Some(0), "{err}");
    let id = id.trim().to_owned();
    let (code, out, err) = run(&["stats", &url, "--json"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(r#""mail":{"ready":1,"scheduled":0,"reserved":0,"dead":0,"done":0,"paused":false}"#), "{out}");
    let (code, out, err) = run(&["list", &url]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("hello"), "{out}");
    let (code, out, err) = run(&["show", &url, &id]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("hello"), "{out}");
    let (code, _, err) = run(&["kick", &url, "mail"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = run(&["purge", &url, "mail", "--dead"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = run(&["watch", &url, "--count", "1", "--interval-ms", "10"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = run(&["pause", &url, "mail"]);
    assert_eq!((code, out.as_str()), (Some(0), "paused queue mail\n"), "{err}");
    let (code, out, err) = run(&["stats", &url, "--json"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(r#""paused":true"#), "{out}");
    let (code, out, err) = run(&["resume", &url, "mail"]);
    assert_eq!((code, out.as_str()), (Some(0), "resumed queue mail\n"), "{err}");
    let (code, _, err) = run(&["cancel", &url, &id]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, _) = run(&["show", &url, &id]);
    assert_eq!(code, Some(3), "a cancelled job is not found");
    let (code, _, err) = run(&["compact", &url]);
    assert_eq!(code, Some(0), "{err}");
    // A password is never printed.
    let (_, _, err) = run(&["stats", "postgresql://postgres:hunter2@127.0.0.1:1/test?connect_timeout=1"]);
    assert!(!err.contains("hunter2"), "{err}");
}
