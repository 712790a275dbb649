//! jobq-beanstalkd with real beanstalkd clients, under abuse, and next to
//! jobq's own C API.
//!
//! * Client suites: greenstalk and pystalk (PyPI, pinned) are pip-installed
//!   into a venv under target/ (as tests/python.rs does; kept between runs
//!   while the pins are unchanged), and our pytest scripts
//!   tests/beanstalkd/clients/test_greenstalk.py and test_pystalk.py drive
//!   each client's whole API against jobq-beanstalkd on a SQLite file and on
//!   PostgreSQL (a schema per test, dropped after), and against the real
//!   beanstalkd (so the scripts' expectations are beanstalkd's). Neither
//!   package's sdist ships a test suite of its own (greenstalk 2.1.1 holds
//!   only the module; pystalk 0.9.1 the module and docs), so there is none
//!   to run.
//! * Robustness: 1,000 idle connections while another client works;
//!   half-sent bodies and huge lines; SIGKILL of the server during a put
//!   load from several clients, then every put answered INSERTED is checked
//!   in the store through the jobq Rust API, and through a restarted server.
//! * Interop: greenstalk puts jobs that examples/worker.c (linked to
//!   libjobq) works on the same store; jobs of examples/producer.c are
//!   reserved by greenstalk. Two jobq-beanstalkd processes on one store
//!   share its jobs (a waiting reserve on one gets a put made through the
//!   other).
//!
//! Needs python3 with venv (scripts/install-deps.sh installs it, and this
//! test runs it when missing), network access to PyPI for the first run,
//! and beanstalkd for the reference run (install-deps.sh). Never skips.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "support/clib.rs"]
mod clib;
#[path = "support/pg.rs"]
mod pg;
#[path = "beanstalkd/support.rs"]
mod support;

use support::Server;

const PINS: &[&str] = &["greenstalk==2.1.1", "pystalk==0.9.1", "pytest"];

// ------------------------------------------------------------ python

fn has_venv(python: &str) -> bool {
    Command::new(python)
        .args(["-c", "import venv, ensurepip, sys; assert sys.version_info >= (3, 9)"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(what: &str, cmd: &mut Command) -> String {
    let started = Instant::now();
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{what}: {:.1}s", started.elapsed().as_secs_f64());
    assert!(out.status.success(), "{what} failed with {}:\n{text}", out.status);
    text
}

/// The venv's python, with the pinned clients and pytest installed (once per
/// pin set: target/<profile>/beanstalkd-venv/ is kept between runs).
fn venv_python() -> PathBuf {
    static PY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PY.get_or_init(|| {
        let python = std::env::var("JOBQ_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        if !has_venv(&python) {
            let _ = Command::new("bash").arg(support::root().join("scripts/install-deps.sh")).status();
            assert!(
                has_venv(&python),
                "{python} with venv and ensurepip (3.9 or newer) is needed: run scripts/install-deps.sh"
            );
        }
        let exe = std::env::current_exe().unwrap();
        let venv = exe.ancestors().nth(2).unwrap().join("beanstalkd-venv");
        let stamp = venv.join("jobq-pins.txt");
        let vpy = venv.join("bin/python");
        let pins = PINS.join("\n");
        if std::fs::read_to_string(&stamp).ok().as_deref() != Some(pins.as_str()) || !vpy.exists() {
            let _ = std::fs::remove_dir_all(&venv);
            run("python3 -m venv", Command::new(&python).args(["-m", "venv"]).arg(&venv));
            run(
                "pip install greenstalk pystalk pytest",
                Command::new(&vpy)
                    .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q"])
                    .args(PINS)
                    .env_remove("PYTHONPATH"),
            );
            std::fs::write(&stamp, &pins).unwrap();
        }
        vpy
    })
    .clone()
}

/// pytest of `scripts` (file names in tests/beanstalkd/clients/) against `server`.
fn pytest(server: &Server, label: &str, scripts: &[&str], extra_env: &[(&str, &str)]) {
    let dir = support::root().join("tests/beanstalkd/clients");
    let mut cmd = Command::new(venv_python());
    cmd.args(["-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"]);
    cmd.args(scripts)
        .current_dir(&dir)
        .env("BS_ADDR", server.addr.to_string())
        .env("BS_SERVER", label)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("PYTHONPATH");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let out = cmd.output().expect("run pytest");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("pytest {scripts:?} on {label}: {:.1}s\n{text}", started.elapsed().as_secs_f64());
    let summary = text.lines().rev().find(|l| l.contains(" passed") || l.contains(" failed")).unwrap_or("");
    assert!(out.status.success(), "pytest {scripts:?} against {label} failed:\n{text}");
    assert!(!summary.contains("skipped") && !summary.is_empty(), "pytest skipped tests or printed no summary: {text}");
}

const SUITES: &[&str] = &["test_greenstalk.py", "test_pystalk.py"];

#[test]
fn client_suites_pass_against_real_beanstalkd() {
    let server = support::start_beanstalkd(&[]);
    pytest(&server, "beanstalkd", SUITES, &[]);
}

#[test]
fn client_suites_pass_on_a_file_store() {
    let dir = support::scratch("clients-file");
    let _rm = support::RemoveOnDrop(dir.clone());
    let server = support::start_ours(&support::path_str(&dir.join("bs.db")), &[]);
    pytest(&server, "jobq", SUITES, &[]);
}

#[test]
fn client_suites_pass_on_postgres() {
    let schema = pg::Schema::new(&pg::base_url(), "bscl");
    let server = support::start_ours(&schema.url(), &[]);
    pytest(&server, "jobq", SUITES, &[]);
}

// ------------------------------------------------------------ a raw client

/// A blocking protocol client for the robustness tests.
struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    fn connect(server: &Server) -> Raw {
        let s = server.connect();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Raw { s, buf: Vec::new() }
    }

    fn send(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.s.write_all(b)
    }

    /// One reply line (without CRLF).
    fn line(&mut self) -> std::io::Result<String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let l = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Ok(l);
            }
            let mut b = [0u8; 4096];
            let n = self.s.read(&mut b)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&b[..n]);
        }
    }

    fn body(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        while self.buf.len() < n + 2 {
            let mut b = [0u8; 4096];
            let k = self.s.read(&mut b)?;
            if k == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&b[..k]);
        }
        let body = self.buf[..n].to_vec();
        self.buf.drain(..n + 2);
        Ok(body)
    }

    fn cmd(&mut self, c: &str) -> String {
        self.send(format!("{c}\r\n").as_bytes()).unwrap();
        self.line().unwrap_or_else(|e| panic!("{c}: {e}"))
    }

    fn put(&mut self, body: &[u8]) -> std::io::Result<u64> {
        let mut m = format!("put 100 0 60 {}\r\n", body.len()).into_bytes();
        m.extend_from_slice(body);
        m.extend_from_slice(b"\r\n");
        self.send(&m)?;
        let l = self.line()?;
        l.strip_prefix("INSERTED ")
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("put: {l}")))
    }

    /// The YAML of `stats` / `stats-tube` as key -> value.
    fn stats(&mut self, c: &str) -> std::collections::HashMap<String, String> {
        let l = self.cmd(c);
        let n: usize = l.strip_prefix("OK ").and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{c}: {l}"));
        let body = String::from_utf8(self.body(n).unwrap()).unwrap();
        body.lines().filter_map(|l| l.split_once(": ")).map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// put, reserve-with-timeout, delete in `tube` (already used and watched).
    fn cycle(&mut self, i: usize) {
        let body = format!("cycle-{i}");
        let id = self.put(body.as_bytes()).unwrap();
        let l = self.cmd("reserve-with-timeout 2");
        assert_eq!(l, format!("RESERVED {id} {}", body.len()));
        assert_eq!(self.body(body.len()).unwrap(), body.as_bytes());
        assert_eq!(self.cmd(&format!("delete {id}")), "DELETED");
    }

    fn use_and_watch(&mut self, tube: &str) {
        assert_eq!(self.cmd(&format!("use {tube}")), format!("USING {tube}"));
        assert_eq!(self.cmd(&format!("watch {tube}")), "WATCHING 2");
        assert_eq!(self.cmd("ignore default"), "WATCHING 1");
    }
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:").and_then(|v| v.split_whitespace().next()?.parse().ok()))
        .unwrap_or(0)
}

// ------------------------------------------------------------ robustness

#[test]
fn a_thousand_idle_connections_do_not_stall_a_working_client() {
    let dir = support::scratch("idle");
    let _rm = support::RemoveOnDrop(dir.clone());
    let mut server = support::start_ours(&support::path_str(&dir.join("bs.db")), &[]);
    let mut idle = Vec::new();
    for i in 0..1000 {
        let mut s = TcpStream::connect(server.addr).unwrap_or_else(|e| panic!("connection {i}: {e}"));
        // Some say nothing, some half a command line.
        if i % 3 == 0 {
            s.write_all(b"use idle").unwrap();
        }
        idle.push(s);
    }
    let mut w = Raw::connect(&server);
    w.use_and_watch("work");
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..200 {
        let t = Instant::now();
        w.cycle(i);
        slowest = slowest.max(t.elapsed());
    }
    println!(
        "200 put/reserve/delete cycles next to 1000 idle connections: {:?}, slowest {slowest:?}",
        started.elapsed()
    );
    assert!(slowest < Duration::from_secs(2), "a cycle took {slowest:?}");
    let st = w.stats("stats");
    assert_eq!(st["current-connections"], "1001", "{st:?}");
    // Every idle connection still answers.
    for (i, s) in idle.iter_mut().enumerate() {
        let (cmd, want): (&[u8], &str) = if i % 3 == 0 {
            (b"-more\r\n", "USING idle-more\r\n")
        } else {
            (b"list-tube-used\r\n", "USING default\r\n")
        };
        s.write_all(cmd).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = vec![0u8; want.len()];
        s.read_exact(&mut got).unwrap_or_else(|e| panic!("idle connection {i}: {e}"));
        assert_eq!(String::from_utf8_lossy(&got), want, "idle connection {i}");
    }
    drop(idle);
    assert!(server.is_running());
}

#[test]
fn half_sent_bodies_and_huge_lines_leave_the_server_working() {
    let dir = support::scratch("abuse");
    let _rm = support::RemoveOnDrop(dir.clone());
    let mut server = support::start_ours(&support::path_str(&dir.join("bs.db")), &[]);
    let pid = server.child.id();
    let mut w = Raw::connect(&server);
    w.use_and_watch("work");
    w.cycle(0);
    let rss0 = rss_kb(pid);

    // Half a body, then silence; then half a body and a close.
    let mut half = Raw::connect(&server);
    half.send(b"use halves\r\nput 0 0 60 100\r\nonly part of it").unwrap();
    assert_eq!(half.line().unwrap(), "USING halves");
    let mut gone = server.connect();
    gone.write_all(b"use halves\r\nput 0 0 60 100\r\nthe rest never comes").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(gone);
    for i in 1..50 {
        w.cycle(i);
    }

    // Huge lines: 4 MB without a line end, from two connections at once.
    let mut huge = Vec::new();
    for _ in 0..2 {
        let mut s = server.connect();
        s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        huge.push(std::thread::spawn(move || {
            let chunk = vec![b'a'; 64 * 1024];
            let mut sent = 0usize;
            // The server may answer BAD_FORMAT and go on reading, or close: both are fine.
            while sent < 4 << 20 {
                match s.write(&chunk) {
                    Ok(n) => sent += n,
                    Err(_) => break,
                }
            }
            sent
        }));
    }
    // A body size far over max-job-size, and one beyond u32.
    // (JOB_TOO_BIG comes once the announced body went by, as in beanstalkd: never, here.)
    let mut big = Raw::connect(&server);
    big.send(b"put 0 0 60 4294967295\r\nsome of that body").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    drop(big);
    let mut big = Raw::connect(&server);
    assert_eq!(big.cmd("put 0 0 60 99999999999999999999"), "BAD_FORMAT");
    for i in 50..100 {
        w.cycle(i);
    }
    for h in huge {
        let sent = h.join().unwrap();
        println!("huge line: {sent} bytes sent");
    }
    for i in 100..120 {
        w.cycle(i);
    }
    let rss1 = rss_kb(pid);
    println!("server RSS: {rss0} kB before, {rss1} kB after");
    assert!(rss1 < rss0 + 64 * 1024, "the server grew from {rss0} kB to {rss1} kB");

    // No job from the half-sent bodies.
    drop(half);
    std::thread::sleep(Duration::from_millis(100));
    // (A tube without jobs nor users is gone: NOT_FOUND, as in beanstalkd.)
    assert_eq!(w.cmd("stats-tube halves"), "NOT_FOUND");
    assert_eq!(w.cmd("use halves"), "USING halves");
    assert_eq!(w.cmd("peek-ready"), "NOT_FOUND");
    assert!(server.is_running(), "the server died");
}

/// Puts from `clients` threads until the server dies; returns (id, body, tube) of every INSERTED.
fn put_until_killed(server: &mut Server, clients: usize, run_for: Duration) -> Vec<(u64, String, String)> {
    let inserted = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for c in 0..clients {
        let mut r = Raw::connect(server);
        let (inserted, stop) = (inserted.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let tube = format!("load{}", c % 2);
            if r.send(format!("use {tube}\r\n").as_bytes()).is_err() || r.line().is_err() {
                return;
            }
            for n in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let body = format!("c{c}-n{n}-{}", "x".repeat(n % 200));
                match r.put(body.as_bytes()) {
                    Ok(id) => inserted.lock().unwrap().push((id, body, tube.clone())),
                    Err(_) => break, // the server is gone
                }
            }
        }));
    }
    std::thread::sleep(run_for);
    let stderr = server.kill();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    println!("server killed; its stderr: {stderr}");
    Arc::try_unwrap(inserted).unwrap().into_inner().unwrap()
}

fn sigkill_during_puts(store: &str, server_args: &[&str]) {
    let mut server = support::start_ours(store, server_args);
    let inserted = put_until_killed(&mut server, 4, Duration::from_millis(1500));
    assert!(inserted.len() > 20, "only {} puts in 1.5 s", inserted.len());
    println!("{} puts answered INSERTED before the SIGKILL", inserted.len());
    // Through the jobq Rust API.
    let q = jobq::Queue::open(store, jobq::Config::default()).unwrap();
    let mut missing = Vec::new();
    for (id, body, tube) in &inserted {
        match q.job(*id) {
            Ok(info) => {
                assert_eq!(&info.queue, tube, "job {id}");
                assert_eq!(info.payload, body.as_bytes(), "job {id}");
                assert_eq!(info.state, jobq::JobState::Ready, "job {id}");
            }
            Err(e) => missing.push(format!("{id}: {e}")),
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} INSERTED jobs are not in the store: {missing:?}",
        missing.len(),
        inserted.len()
    );
    q.close().unwrap();
    // And through a restarted server.
    let server = support::start_ours(store, &[]);
    let mut r = Raw::connect(&server);
    let total: usize = ["load0", "load1"]
        .iter()
        .map(|t| r.stats(&format!("stats-tube {t}"))["current-jobs-ready"].parse::<usize>().unwrap())
        .sum();
    // At most one more per client: a put the store took whose INSERTED the kill cut off.
    assert!(
        total >= inserted.len() && total <= inserted.len() + 4,
        "{total} ready jobs after the restart, {} were INSERTED by 4 clients",
        inserted.len()
    );
    for (id, body, _) in inserted.iter().step_by(inserted.len() / 20 + 1) {
        assert_eq!(r.cmd(&format!("peek {id}")), format!("FOUND {id} {}", body.len()));
        assert_eq!(r.body(body.len()).unwrap(), body.as_bytes());
    }
}

#[test]
fn sigkill_during_a_put_load_keeps_every_inserted_job_on_a_file_store() {
    let dir = support::scratch("kill-file");
    let _rm = support::RemoveOnDrop(dir.clone());
    sigkill_during_puts(&support::path_str(&dir.join("bs.db")), &[]);
}

/// "normal" durability gives up only the last writes on a power loss: a killed process loses nothing.
#[test]
fn sigkill_during_a_put_load_keeps_every_inserted_job_with_durability_normal() {
    let dir = support::scratch("kill-normal");
    let _rm = support::RemoveOnDrop(dir.clone());
    sigkill_during_puts(&support::path_str(&dir.join("bs.db")), &["--config", r#"{"durability":"normal"}"#]);
}

#[test]
fn sigkill_during_a_put_load_keeps_every_inserted_job_on_postgres() {
    let schema = pg::Schema::new(&pg::base_url(), "bskill");
    sigkill_during_puts(&schema.url(), &[]);
}

// ------------------------------------------------------------ interop with the C API

fn interop(store: &str) {
    let libs = clib::Libs::find();
    let bin = libs.scratch("beanstalkd-interop");
    let (worker, producer) = (bin.join("worker"), bin.join("producer"));
    for (name, out) in [("worker", &worker), ("producer", &producer)] {
        let c = libs.root.join("examples").join(format!("{name}.c"));
        libs.compile(clib::Linkage::Shared, &[&c], out).unwrap_or_else(|e| panic!("{e}"));
    }
    let server = support::start_ours(store, &[]);
    let py = |args: &[&str]| {
        run(
            &format!("interop.py {}", args[0]),
            Command::new(venv_python())
                .arg("interop.py")
                .args(args)
                .current_dir(support::root().join("tests/beanstalkd/clients"))
                .env("BS_ADDR", server.addr.to_string())
                .env_remove("PYTHONPATH"),
        )
    };

    // greenstalk -> examples/worker.c
    let bodies: Vec<String> = (0..10).map(|i| format!("from-greenstalk-{i}")).collect();
    let mut args = vec!["put", "py2c"];
    args.extend(bodies.iter().map(String::as_str));
    let put = py(&args);
    let ids: Vec<(u64, String)> = put
        .lines()
        .filter_map(|l| l.split_once(' ').and_then(|(id, b)| Some((id.parse().ok()?, b.to_string()))))
        .collect();
    assert_eq!(ids.len(), 10, "{put}");
    let out =
        run("examples/worker", Command::new(&worker).args([store, "py2c", "2", "10"]).env_remove("LD_LIBRARY_PATH"));
    for (id, body) in &ids {
        let want = format!("job {id} (attempt 1) on py2c: {body} -> done");
        assert!(out.contains(&want), "worker output lacks {want:?}:\n{out}");
    }
    // Done in jobq = deleted in beanstalkd.
    let mut r = Raw::connect(&server);
    for (id, _) in &ids {
        assert_eq!(r.cmd(&format!("peek {id}")), "NOT_FOUND", "job {id} after the worker");
    }

    // examples/producer.c -> greenstalk
    let out = run(
        "examples/producer",
        Command::new(&producer).args([store, "c2py", "c-one", "c-two", "c-three"]).env_remove("LD_LIBRARY_PATH"),
    );
    let produced: Vec<String> = out.lines().filter_map(|l| l.strip_prefix("put job ")).map(str::to_string).collect();
    assert_eq!(produced.len(), 3, "{out}");
    let taken = py(&["take", "c2py", "3"]);
    let lines: Vec<&str> = taken.lines().filter(|l| !l.starts_with("interop.py")).collect();
    for (line, want) in lines.iter().zip(&produced) {
        // "ID: BODY" from the producer, "ID PRI BODY" from greenstalk; jobq priority 0 is
        // beanstalkd priority 2^31 (the contract's order-preserving mapping).
        let (id, body) = want.split_once(": ").unwrap();
        assert_eq!(*line, format!("{id} 2147483648 {body}"), "{taken}");
    }
    assert_eq!(lines.len(), 3, "{taken}");
}

#[test]
fn greenstalk_and_the_c_examples_share_a_file_store() {
    let dir = support::scratch("interop-file");
    let _rm = support::RemoveOnDrop(dir.clone());
    interop(&support::path_str(&dir.join("bs.db")));
}

#[test]
fn greenstalk_and_the_c_examples_share_a_postgres_schema() {
    let schema = pg::Schema::new(&pg::base_url(), "bsinterop");
    interop(&schema.url());
}

// ------------------------------------------------------------ two servers, one store

/// Two jobq-beanstalkd processes on one store share its jobs: a reserve
/// waiting on one server gets a job put through the other.
fn two_servers(store: &str) {
    let (a, b) = (support::start_ours(store, &[]), support::start_ours(store, &[]));
    let (mut pa, mut cb) = (Raw::connect(&a), Raw::connect(&b));
    pa.use_and_watch("shared");
    cb.use_and_watch("shared");
    for i in 0..5 {
        let body = format!("across-{i}");
        let id = pa.put(body.as_bytes()).unwrap();
        assert_eq!(cb.cmd("reserve-with-timeout 5"), format!("RESERVED {id} {}", body.len()));
        assert_eq!(cb.body(body.len()).unwrap(), body.as_bytes());
        // Reserved through b: a sees it reserved, and cannot delete it.
        assert_eq!(pa.cmd(&format!("delete {id}")), "NOT_FOUND");
        assert_eq!(cb.cmd(&format!("delete {id}")), "DELETED");
    }
    // A reserve already waiting on b when a takes the put.
    let waiter = std::thread::spawn(move || {
        let t = Instant::now();
        let l = cb.cmd("reserve-with-timeout 10");
        (l, t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    let id = pa.put(b"wake-across").unwrap();
    let (l, waited) = waiter.join().unwrap();
    assert_eq!(l, format!("RESERVED {id} 11"));
    println!("a reserve waiting on one server got a put through the other after {waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

#[test]
fn two_servers_share_a_file_store() {
    let dir = support::scratch("two-file");
    let _rm = support::RemoveOnDrop(dir.clone());
    two_servers(&support::path_str(&dir.join("bs.db")));
}

#[test]
fn two_servers_share_a_postgres_schema() {
    let schema = pg::Schema::new(&pg::base_url(), "bstwo");
    two_servers(&schema.url());
}
