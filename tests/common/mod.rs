//! Helpers shared by the crash and fault tests (tests/crash.rs,
//! tests/faults.rs): re-executing the test binary as a child process with a
//! role, killing it with SIGKILL, append-only record files that survive the
//! kill, a small seeded random generator, and a tmpfs mount guard.
//!
//! A test binary re-executes itself as `<exe> --exact child_process_entry`
//! with `JOBQ_CRASH_ROLE` set; its `child_process_entry` test does nothing
//! in a normal run and plays the role in a child.
#![allow(dead_code)]

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The role a child plays; unset in the parent.
pub const ROLE: &str = "JOBQ_CRASH_ROLE";
/// The queue file a child works on.
pub const PATH: &str = "JOBQ_CRASH_PATH";
/// The child's append-only record file.
pub const LOG: &str = "JOBQ_CRASH_LOG";
/// A file whose existence tells a child to finish and exit cleanly.
pub const STOP: &str = "JOBQ_CRASH_STOP";
/// A role-specific argument.
pub const ARG: &str = "JOBQ_CRASH_ARG";
/// The seed of the child's random generator.
pub const SEED: &str = "JOBQ_CRASH_SEED";
/// Lines a child prints on stdout for the parent start with this.
pub const TAG: &str = "@@jobq-child";

/// A variable the parent set for this child.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("child needs {name}"))
}

pub fn env_path(name: &str) -> PathBuf {
    PathBuf::from(env(name))
}

/// Wall-clock microseconds: comparable between processes of one machine.
pub fn unix_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

/// A command that re-executes this test binary as a child playing `role`.
/// Its stdout is piped (for `TAG` lines), its stderr goes to the test's.
pub fn child_command(role: &str) -> Command {
    child_command_at(&std::env::current_exe().unwrap(), role)
}

/// `child_command`, running `exe` (a copy of this test binary) instead.
pub fn child_command_at(exe: &Path, role: &str) -> Command {
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", "child_process_entry", "--nocapture", "--quiet", "--test-threads=1"])
        .env(ROLE, role)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd
}

/// Sends SIGKILL and reaps the child. Returns its status; it must have died
/// of the signal (a child that exited on its own before the kill is a
/// failure of the test's premise, so it is reported).
pub fn kill9(child: &mut Child) -> ExitStatus {
    let pid = child.id() as libc::pid_t;
    // SAFETY: plain kill(2) of our own, not yet reaped, child.
    let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill({pid}, SIGKILL): {}", std::io::Error::last_os_error());
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "child {pid} was not killed by SIGKILL: {status:?}");
    status
}

/// Like `kill9`, for a child that may be finishing on its own right now:
/// a clean exit (status 0) that beat the signal is accepted too.
pub fn kill9_racing_exit(child: &mut Child) -> ExitStatus {
    // SAFETY: kill(2) of our own child, not yet reaped (wait below reaps it).
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    let status = child.wait().unwrap();
    assert!(status.success() || status.signal() == Some(libc::SIGKILL), "child {}: {status:?}", child.id());
    status
}

/// Waits up to `timeout` for the child to exit; kills it and panics if it does not.
pub fn wait_exit(child: &mut Child, timeout: Duration, who: &str) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{who} (pid {}) did not exit within {timeout:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reads the child's stdout until a `TAG what ...` line; returns the rest of that line.
pub fn wait_for_report(lines: &mut impl Iterator<Item = std::io::Result<String>>, what: &str) -> String {
    let prefix = format!("{TAG} {what}");
    for line in lines {
        let line = line.unwrap();
        if let Some(at) = line.find(&prefix) {
            return line[at + prefix.len()..].trim().to_string();
        }
    }
    panic!("the child exited before reporting {what}");
}

/// The child's stdout as lines.
pub fn stdout_lines(child: &mut Child) -> impl Iterator<Item = std::io::Result<String>> {
    BufReader::new(child.stdout.take().expect("stdout is piped")).lines()
}

/// An append-only record file. Each `record` is ONE write(2) of one whole
/// line to a file opened with O_APPEND: a SIGKILL cannot tear it (it is in
/// the page cache once write returns) and lines of several threads or
/// processes never interleave. Nothing is buffered in the process.
pub struct Records {
    file: File,
}

impl Records {
    pub fn open(path: &Path) -> Records {
        let file = OpenOptions::new().create(true).append(true).open(path).unwrap();
        Records { file }
    }

    pub fn record(&self, line: &str) {
        let mut buf = String::with_capacity(line.len() + 1);
        buf.push_str(line);
        buf.push('\n');
        let written = (&self.file).write(buf.as_bytes()).unwrap();
        assert_eq!(written, buf.len(), "a short write to the record file");
    }
}

/// The complete lines of a record file (a missing file has none).
pub fn read_records(path: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => return Vec::new(),
    };
    complete.lines().map(str::to_owned).collect()
}

/// xorshift64*: small, seeded, reproducible (tests print their seed).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// Seeded from `JOBQ_CRASH_SEED` if set, else from the clock and pid.
    pub fn from_env_or_time() -> (Rng, u64) {
        let seed = std::env::var(SEED)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| unix_micros() ^ ((std::process::id() as u64) << 32));
        (Rng::new(seed), seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in lo..hi milliseconds.
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo))
    }
}

pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// For a test that needs root (mount, setuid): says so loudly, and fails
/// only when `JOBQ_REQUIRE_ROOT_TESTS=1` (CI sets it). Returns whether to go on.
pub fn root_or_skip(test: &str, why: &str) -> bool {
    if is_root() {
        return true;
    }
    let required = std::env::var("JOBQ_REQUIRE_ROOT_TESTS").is_ok_and(|v| v == "1");
    eprintln!("\n!!!!!!!! {test}: NOT RUN: needs root ({why}); run as root or set JOBQ_REQUIRE_ROOT_TESTS=1 to make this a failure\n");
    assert!(!required, "{test} needs root ({why}) and JOBQ_REQUIRE_ROOT_TESTS=1");
    false
}

/// A tmpfs of `size` mounted on `dir`; unmounted (lazily) when dropped,
/// also when the test panics.
pub struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> std::io::Result<Tmpfs> {
        let target = CString::new(dir.as_os_str().as_bytes()).unwrap();
        let fstype = CString::new("tmpfs").unwrap();
        let data = CString::new(format!("size={size},mode=0755")).unwrap();
        // SAFETY: all pointers are valid NUL-terminated strings for the call.
        let rc = unsafe {
            libc::mount(fstype.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, data.as_ptr() as *const libc::c_void)
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Tmpfs { dir: dir.to_path_buf() })
    }

    /// Remounts read-only (`true`) or read-write.
    pub fn remount(&self, read_only: bool, size: &str) -> std::io::Result<()> {
        let target = CString::new(self.dir.as_os_str().as_bytes()).unwrap();
        let fstype = CString::new("tmpfs").unwrap();
        let data = CString::new(format!("size={size}")).unwrap();
        let flags = libc::MS_REMOUNT | if read_only { libc::MS_RDONLY } else { 0 };
        // SAFETY: as in `mount`.
        let rc = unsafe {
            libc::mount(fstype.as_ptr(), target.as_ptr(), fstype.as_ptr(), flags, data.as_ptr() as *const libc::c_void)
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let target = CString::new(self.dir.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid path; MNT_DETACH unmounts even if files are still open.
        let rc = unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        if rc != 0 {
            eprintln!("umount {}: {}", self.dir.display(), std::io::Error::last_os_error());
        }
    }
}

/// Fills the file system holding `dir` with a filler file until ENOSPC.
/// Returns the filler's path and size.
pub fn fill_disk(dir: &Path) -> (PathBuf, u64) {
    let path = dir.join("filler");
    let mut f = File::create(&path).unwrap();
    let chunk = vec![0xabu8; 4096];
    let mut size = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => size += n as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    // Data that fit in the page cache but not on the "disk" shows up at fsync.
    let _ = f.sync_all();
    (path, size)
}
