//! Shared by tests/beanstalkd_clients.rs and tests/beanstalkd_transcripts.rs:
//! starting our `jobq-beanstalkd` (the binary this `cargo test` built) and
//! the real beanstalkd (Debian package `beanstalkd`, installed by
//! scripts/install-deps.sh), each on a free port of 127.0.0.1, killed when
//! dropped.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The server binary this `cargo test` built.
pub fn our_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_jobq-beanstalkd"))
}

/// A server process, SIGKILLed (if still running) on drop.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub what: String,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Server {
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap_or_else(|e| panic!("connect to {}: {e}", self.what));
        s.set_nodelay(true).unwrap();
        s
    }

    /// SIGKILL, and the process reaped. Returns what it wrote to stderr.
    pub fn kill(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default()
    }

    /// SIGTERM, then waits (up to `timeout`) for the exit; SIGKILL after that.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        // SAFETY: kill(2) of a child process this test started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect_stderr(child: &mut Child) -> Option<std::thread::JoinHandle<String>> {
    let mut err = child.stderr.take()?;
    Some(std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    }))
}

/// Starts `jobq-beanstalkd --listen 127.0.0.1:0 [extra] STORE` and waits
/// for its "listening on ADDR" line (it prints the port it bound).
pub fn start_ours(store: &str, extra: &[&str]) -> Server {
    let mut child = Command::new(our_binary())
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .arg(store)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", our_binary().display()));
    let stderr = collect_stderr(&mut child);
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(out).lines();
        if let Some(Ok(first)) = lines.next() {
            let _ = tx.send(first);
        }
        // Keep draining, so the server never blocks on a full pipe.
        for _ in lines {}
    });
    let mut server = Server { child, addr: "127.0.0.1:1".parse().unwrap(), what: "jobq-beanstalkd".into(), stderr };
    let line = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(line) => line,
        Err(_) => {
            let err = server.kill();
            panic!("jobq-beanstalkd on {store} printed no \"listening on\" line within 20 s; stderr:\n{err}");
        }
    };
    let addr = line.rsplit(' ').next().and_then(|a| a.parse::<SocketAddr>().ok());
    let Some(addr) = addr else {
        let err = server.kill();
        panic!("unexpected first line from jobq-beanstalkd: {line:?}; stderr:\n{err}");
    };
    server.addr = addr;
    server
}

/// beanstalkd from $PATH, installing it with scripts/install-deps.sh if missing.
pub fn beanstalkd_binary() -> PathBuf {
    let find = || {
        Command::new("sh")
            .args(["-c", "command -v beanstalkd"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
    };
    if let Some(p) = find() {
        return p;
    }
    let script = root().join("scripts/install-deps.sh");
    let _ = Command::new("bash").arg(&script).status();
    find().unwrap_or_else(|| {
        panic!("beanstalkd (Debian package `beanstalkd`) is needed: run scripts/install-deps.sh (it installs it)")
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Whether something listens on 127.0.0.1:`port` (by /proc/net/tcp, so no
/// probe connection shows in beanstalkd's total-connections).
fn listening(port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp").unwrap_or_default().lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[1] == want && f[3] == "0A"
    })
}

fn wait_accepting(server: &mut Server, timeout: Duration) -> bool {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if !server.is_running() {
            return false;
        }
        if listening(server.addr.port()) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// The real beanstalkd on a free port: `beanstalkd -l 127.0.0.1 -p PORT
/// [extra]` (no -b: no binlog, unless `extra` gives one).
pub fn start_beanstalkd(extra: &[&str]) -> Server {
    let bin = beanstalkd_binary();
    for _ in 0..5 {
        let port = free_port();
        let mut child = Command::new(&bin)
            .args(["-l", "127.0.0.1", "-p", &port.to_string()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        let stderr = collect_stderr(&mut child);
        let mut server =
            Server { child, addr: SocketAddr::from(([127, 0, 0, 1], port)), what: "beanstalkd".into(), stderr };
        if wait_accepting(&mut server, Duration::from_secs(10)) {
            return server;
        }
        server.kill();
    }
    panic!("beanstalkd did not start on a free port in 5 tries");
}

/// A scratch directory under target/ for one test, emptied first.
pub fn scratch(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // <target>/<profile>/deps/<test binary>
    let profile = exe.ancestors().nth(2).expect("profile dir").to_path_buf();
    let d = profile.join("beanstalkd-tests").join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Removes `dir` when dropped.
pub struct RemoveOnDrop(pub PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
