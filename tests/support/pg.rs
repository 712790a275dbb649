//! PostgreSQL for the tests: the server of `JOBQ_TEST_PG_URL` (default
//! `postgresql://postgres@127.0.0.1:5432/test`) when it answers, else a
//! throwaway cluster this process starts (initdb + pg_ctl in a temp dir, as
//! `nobody` when run as root; a watchdog shell stops it when the test
//! process exits). Schemas of their own per test, dropped afterwards.
//! Nothing skips, whether or not JOBQ_REQUIRE_PG=1 (.ci/run) is set: without a server and without PostgreSQL's binaries
//! (scripts/install-deps.sh installs them) the tests fail, saying why.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The configured server's URL, as given.
fn configured_url() -> String {
    std::env::var("JOBQ_TEST_PG_URL").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".into())
}

/// A database URL the tests can use: the configured server if it answers,
/// else a throwaway cluster started once per test process.
pub fn base_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let url = configured_url();
        match postgres::Client::connect(&url, postgres::NoTls) {
            Ok(_) => url,
            Err(e) => {
                eprintln!("PostgreSQL at {url} does not answer ({e}); starting a throwaway cluster");
                let cluster = TempCluster::start_trust();
                let url = cluster.url("", "test");
                cluster.stop_when_this_process_exits();
                // Kept running until the process exits (the watchdog stops it).
                std::mem::forget(cluster);
                url
            }
        }
    })
    .clone()
}

/// A schema name unique to this process and call.
pub fn schema_name(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("jobq_f_{}_{}_{}", tag, std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

pub fn with_schema(base: &str, schema: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}schema={schema}")
}

pub fn client(base: &str) -> postgres::Client {
    postgres::Client::connect(base, postgres::NoTls).unwrap_or_else(|e| panic!("cannot connect to {base}: {e}"))
}

/// Drops its schema at the end of the test.
pub struct Schema {
    pub base: String,
    pub name: String,
}

impl Schema {
    pub fn new(base: &str, tag: &str) -> Schema {
        Schema { base: base.to_owned(), name: schema_name(tag) }
    }
    pub fn url(&self) -> String {
        with_schema(&self.base, &self.name)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.base, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

// ------------------------------------------------------------ a throwaway cluster

fn pg_bin(tool: &str) -> PathBuf {
    if !std::path::Path::new("/usr/lib/postgresql").exists() {
        // A fresh machine: install Debian's PostgreSQL (scripts/install-deps.sh).
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-deps.sh");
        let ok = Command::new("bash").arg(&script).status().is_ok_and(|s| s.success());
        assert!(ok, "no PostgreSQL binaries and {} failed", script.display());
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    versions.sort();
    for v in versions.iter().rev() {
        let p = v.join("bin").join(tool);
        if p.exists() {
            return p;
        }
    }
    panic!("no PostgreSQL {tool} under /usr/lib/postgresql: run scripts/install-deps.sh");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

/// A PostgreSQL cluster of its own, with password authentication (user
/// `postgres`, password `secret`), stopped and removed on drop.
pub struct TempCluster {
    dir: PathBuf,
    port: u16,
}

impl TempCluster {
    pub fn start() -> TempCluster {
        Self::start_with(true)
    }

    /// Trust authentication (no password), like the CI server.
    pub fn start_trust() -> TempCluster {
        Self::start_with(false)
    }

    fn start_with(password: bool) -> TempCluster {
        let dir = std::env::temp_dir().join(format!("jobq-pgtest-{}-{}", std::process::id(), schema_name("c")));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pw"), "secret\n").unwrap();
        if is_root() {
            let ok = Command::new("chown").args(["-R", "nobody:nogroup"]).arg(&dir).status().unwrap().success();
            assert!(ok, "chown {} to nobody", dir.display());
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let c = TempCluster { dir, port };
        let data = c.dir.join("data");
        let pw = c.dir.join("pw");
        c.run(
            pg_bin("initdb").as_os_str(),
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                if password { "--auth=scram-sha-256".as_ref() } else { "--auth=trust".as_ref() },
                if password { "--pwfile".as_ref() } else { "--no-sync".as_ref() },
                if password { pw.as_os_str() } else { "--no-instructions".as_ref() },
                "-E".as_ref(),
                "UTF8".as_ref(),
            ],
        );
        c.pg_ctl("start");
        let mut admin = client(&c.url(if password { "secret" } else { "" }, "postgres"));
        admin.batch_execute("CREATE DATABASE test").unwrap();
        c
    }

    /// `tool`, as `nobody` when we are root (PostgreSQL refuses to run as root).
    fn command(&self, tool: &std::ffi::OsStr) -> Command {
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "nobody", "--"]).arg(tool);
            c
        } else {
            Command::new(tool)
        };
        cmd.current_dir(&self.dir);
        cmd
    }

    fn run(&self, tool: &std::ffi::OsStr, args: &[&std::ffi::OsStr]) {
        let out = self.command(tool).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{:?} {:?} failed: {}{}",
            tool,
            args,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn pg_ctl(&self, what: &str) {
        let data = self.dir.join("data").display().to_string();
        let log = self.dir.join("log").display().to_string();
        let opts = format!("-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off", self.port, self.dir.display());
        let mut args: Vec<&str> = vec![what, "-D", &data, "-l", &log, "-w"];
        if what == "stop" {
            args.extend(["-m", "immediate"]);
        } else {
            args.extend(["-o", &opts]);
        }
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        self.run(pg_bin("pg_ctl").as_os_str(), &args);
    }

    /// The postmaster's pid and every process it started (its children, by
    /// /proc), or `None` if the cluster is not running.
    pub fn processes(&self) -> Option<Vec<i32>> {
        let pidfile = std::fs::read_to_string(self.dir.join("data/postmaster.pid")).ok()?;
        let postmaster: i32 = pidfile.lines().next()?.trim().parse().ok()?;
        if !std::path::Path::new(&format!("/proc/{postmaster}")).exists() {
            return None;
        }
        let mut pids = vec![postmaster];
        for e in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
            // pid (comm) state ppid ...: comm may hold spaces, so parse after the last ')'.
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok());
            if ppid == Some(postmaster) {
                pids.push(pid);
            }
        }
        Some(pids)
    }

    /// What a power loss looks like to the server's processes: all of them
    /// stop at one moment (SIGSTOP), then die (SIGKILL), postmaster and
    /// backends alike, with no chance to write anything more. Returns once
    /// they are gone (or zombies), with how many were killed. The OS and
    /// its page cache survive: see docs/durability-testing.md.
    pub fn kill_all(&self) -> usize {
        let pids = self.processes().expect("the cluster is not running");
        for sig in [libc::SIGSTOP, libc::SIGKILL] {
            for &pid in &pids {
                // SAFETY: kill(2) of a process of this test's own cluster.
                unsafe { libc::kill(pid, sig) };
            }
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        for &pid in &pids {
            loop {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let gone = stat.rsplit_once(')').is_none_or(|(_, rest)| rest.trim_start().starts_with('Z'));
                if gone {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "process {pid} of the cluster survived SIGKILL");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        // A killed postmaster stays a zombie where no init reaps orphans (this
        // machine's pid 1 does not), and the next start would take the lock
        // files naming it for a running server. It is dead: remove them.
        let _ = std::fs::remove_file(self.dir.join("data/postmaster.pid"));
        let _ = std::fs::remove_file(self.dir.join(format!(".s.PGSQL.{}.lock", self.port)));
        pids.len()
    }

    pub fn url(&self, password: &str, db: &str) -> String {
        if password.is_empty() {
            format!("postgresql://postgres@127.0.0.1:{}/{db}", self.port)
        } else {
            format!("postgresql://postgres:{password}@127.0.0.1:{}/{db}", self.port)
        }
    }

    /// A shell that waits for this process to exit, then stops the cluster
    /// and removes its directory.
    fn stop_when_this_process_exits(&self) {
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {ctl} stop -m immediate -D {data} >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            ctl = pg_bin("pg_ctl").display(),
            data = self.dir.join("data").display(),
            dir = self.dir.display()
        );
        let mut cmd = self.command("sh".as_ref());
        let _ = cmd
            .args(["-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = self.command(pg_bin("pg_ctl").as_os_str()).args(["stop", "-m", "immediate", "-D"]).arg(data).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Drops every schema whose name starts with `prefix` when dropped.
pub struct SchemaPrefix {
    pub base: String,
    pub prefix: String,
}

impl Drop for SchemaPrefix {
    fn drop(&mut self) {
        let Ok(mut c) = postgres::Client::connect(&self.base, postgres::NoTls) else { return };
        let like = format!("{}\\_%", self.prefix);
        let Ok(rows) = c.query("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE $1", &[&like]) else {
            return;
        };
        for row in rows {
            let name: String = row.get(0);
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", name.replace('"', "\"\"")));
        }
    }
}

/// The store of a test: a file `name` in `dir`, or (`postgres`) a fresh
/// schema, dropped with the returned guard.
pub fn store(dir: &std::path::Path, name: &str, postgres: bool) -> (PathBuf, Option<Schema>) {
    if postgres {
        let schema = Schema::new(&base_url(), "st");
        (PathBuf::from(schema.url()), Some(schema))
    } else {
        (dir.join(name), None)
    }
}
