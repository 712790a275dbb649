//! Faults of the file and its surroundings: a full disk (a real ENOSPC on
//! a small tmpfs), a read-only file, directory and file system, no
//! permission, a lock held past busy_timeout_ms, truncated, garbage and
//! foreign files, a newer schema (and an older one, upgraded in place), and
//! the mode of a new file. Each must give
//! a clear error of the right kind (never a panic or `Error::Internal`), and
//! no job acknowledged as stored may be lost.
//!
//! Root bypasses permission bits, so the permission cases run in a child
//! process that drops to `nobody` (65534); a read-only mount covers root.
//! Tests that need root say so loudly when not root, and fail only when
//! `JOBQ_REQUIRE_ROOT_TESTS=1` (CI sets it).

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use jobq::{Config, Error, PutOptions, Queue};

/// Does nothing in a normal test run; in a child process, plays `JOBQ_CRASH_ROLE`.
#[test]
fn child_process_entry() {
    let Ok(role) = std::env::var(ROLE) else { return };
    match role.as_str() {
        "access" => access(),
        "lock" => lock(),
        "mode" => mode(),
        other => panic!("unknown child role {other}"),
    }
}

/// An outcome as one line: `Ok ...` or the error's variant and message.
fn outcome<T: std::fmt::Debug, E: std::borrow::Borrow<Error>>(r: &Result<T, E>) -> String {
    match r {
        Ok(v) => format!("Ok {v:?}"),
        Err(e) => format!("{} {}", variant(e.borrow()), e.borrow()),
    }
}

fn variant(e: &Error) -> &'static str {
    match e {
        Error::InvalidArg(_) => "InvalidArg",
        Error::Handle(_) => "Handle",
        Error::NotFound(_) => "NotFound",
        Error::State(_) => "State",
        Error::Busy(_) => "Busy",
        Error::Io(_) => "Io",
        Error::Corrupt(_) => "Corrupt",
        Error::Version { .. } => "Version",
        Error::TooBig { .. } => "TooBig",
        Error::Shutdown(_) => "Shutdown",
        Error::Internal(_) => "Internal",
    }
}

/// Opens `PATH` and tries a put, a reserve and stats; prints one
/// `TAG OPEN|PUT|RESERVE|STATS outcome` line each (a panic fails the child).
fn access() {
    let path = env_path(PATH);
    let report = |what: &str, line: String| println!("{TAG} {what} {line}");
    let q = Queue::open(&path, Config::default());
    report("OPEN", outcome(&q));
    if let Ok(q) = q {
        report("PUT", outcome(&q.put("q", b"from nobody", &PutOptions::default())));
        let job = q.reserve("q", Some(Duration::ZERO));
        report("RESERVE", outcome(&job.as_ref().map(|j| j.as_ref().map(|j| j.id()))));
        if let Ok(Some(job)) = job {
            report("ACK", outcome(&job.ack()));
        }
        report("STATS", outcome(&q.stats()));
        let _ = q.close();
    }
    std::io::stdout().flush().unwrap();
}

/// Takes the file's write lock with SQLite directly, reports LOCKED, waits to be killed.
fn lock() {
    let conn = rusqlite::Connection::open(env_path(PATH)).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    println!("{TAG} LOCKED");
    std::io::stdout().flush().unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// With umask `ARG` (octal), creates queue files in `PATH` (a directory)
/// with the default and several file_mode values; prints `TAG MODE name
/// file wal shm` (octal modes, while the queue is open).
fn mode() {
    let umask = u32::from_str_radix(&env(ARG), 8).unwrap();
    // SAFETY: umask(2) cannot fail; this child runs one thread of interest.
    unsafe { libc::umask(umask as libc::mode_t) };
    let dir = env_path(PATH);
    let show =
        |p: &Path| fs::metadata(p).map_or("none".to_string(), |m| format!("{:o}", m.permissions().mode() & 0o777));
    for (name, file_mode) in [("default", None), ("640", Some(0o640)), ("666", Some(0o666)), ("604", Some(0o604))] {
        let path = dir.join(format!("{name}-{umask:o}.db"));
        let config = match file_mode {
            Some(m) => Config { file_mode: m, ..Config::default() },
            None => Config::default(),
        };
        let q = Queue::open(&path, config).unwrap();
        q.put("q", b"x", &PutOptions::default()).unwrap();
        let wal = path.with_extension("db-wal");
        let shm = path.with_extension("db-shm");
        println!("{TAG} MODE {name} {} {} {}", show(&path), show(&wal), show(&shm));
        q.close().unwrap();
    }
    std::io::stdout().flush().unwrap();
}

// ------------------------------------------------------------------ helpers

/// Runs the `access` child on `path`, as `nobody` when we are root.
/// Returns its report lines by kind (OPEN, PUT, ...).
///
/// As root, the child runs a copy of this test binary in a fresh
/// world-readable directory, from there: the checkout (and so target/) may
/// live under a directory `nobody` cannot enter (root's 0700 home, a
/// `mktemp -d`), where it could not even exec the binary.
fn access_as_nobody(path: &Path) -> Vec<(String, String)> {
    let (mut cmd, _exe_dir) = if is_root() {
        let (dir, exe) = exe_copy_for_nobody();
        let mut cmd = child_command_at(&exe, "access");
        cmd.current_dir(dir.path()).uid(65534).gid(65534);
        (cmd, Some(dir))
    } else {
        (child_command("access"), None)
    };
    cmd.env(PATH, path);
    // A fresh copy can be ETXTBSY for a moment: another test's fork may
    // still hold the copy's write descriptor until its exec closes it.
    let mut tries = 0;
    let out = loop {
        match cmd.output() {
            Ok(out) => break out,
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("cannot run the access child {cmd:?}: {e}"),
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the child panicked or failed ({:?}): {stdout}", out.status);
    stdout
        .lines()
        .filter_map(|l| l.find(TAG).map(|at| &l[at + TAG.len()..]))
        .map(|l| {
            let (kind, rest) = l.trim().split_once(' ').unwrap();
            (kind.to_string(), rest.to_string())
        })
        .collect()
}

/// A copy of this test binary, mode 0755, in a new 0755 directory under the
/// system's temporary directory (removed with the returned guard).
fn exe_copy_for_nobody() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new().prefix("jobq-faults-exe").tempdir().unwrap();
    chmod(dir.path(), 0o755);
    let exe = dir.path().join("faults-child");
    fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    chmod(&exe, 0o755);
    (dir, exe)
}

fn report<'a>(lines: &'a [(String, String)], kind: &str) -> Option<&'a str> {
    lines.iter().find(|(k, _)| k == kind).map(|(_, v)| v.as_str())
}

/// A queue file with `n` jobs, closed (so its WAL is checkpointed and gone).
fn make_queue(path: &Path, n: usize) -> BTreeSet<u64> {
    let q = Queue::open(path, Config::default()).unwrap();
    let ids = (0..n).map(|i| q.put("q", format!("job {i}").as_bytes(), &PutOptions::default()).unwrap().id()).collect();
    q.close().unwrap();
    ids
}

/// The ids of every job in `queue`, taken by reserving them all (and acking).
fn drain(q: &Queue, queue: &str) -> Vec<(u64, Vec<u8>)> {
    let mut jobs = Vec::new();
    while let Some(job) = q.reserve(queue, Some(Duration::ZERO)).unwrap() {
        jobs.push((job.id(), job.payload().to_vec()));
        job.ack().unwrap();
    }
    jobs
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Gives `path` to the user the `access` child runs as (nobody, when root).
fn give_to_child(path: &Path) {
    if is_root() {
        std::os::unix::fs::chown(path, Some(65534), Some(65534)).unwrap();
    }
}

/// A world-accessible directory for the `nobody` child (tempdir makes 0700).
fn open_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o755);
    let sub = dir.path().join("d");
    fs::create_dir(&sub).unwrap();
    chmod(&sub, 0o777);
    (dir, sub)
}

fn integrity_ok(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok", "{}", path.display());
}

// ------------------------------------------------------------------ disk full

#[test]
fn a_full_disk_fails_puts_with_io_stores_nothing_half_and_recovers_when_space_is_freed() {
    if !root_or_skip("disk full", "mounts a 2 MiB tmpfs to get a real ENOSPC") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let fs_guard = Tmpfs::mount(&mnt, "2m").unwrap_or_else(|e| panic!("mount tmpfs on {}: {e}", mnt.display()));
    let path = fs_guard.path().join("full.db");
    let q = Queue::open(&path, Config::default()).unwrap();
    // Short leases: a reserve that succeeds on the full disk gives its job back soon.
    let opts = PutOptions { lease_ms: Some(50), ..PutOptions::default() };
    let payload = |tag: &str, i: usize| {
        let mut p = format!("{tag} {i} ").into_bytes();
        p.resize(3000, b'.');
        p
    };
    let mut stored: BTreeSet<Vec<u8>> = BTreeSet::new();
    for i in 0..20 {
        let p = payload("before", i);
        q.put("q", &p, &opts).unwrap();
        stored.insert(p);
    }
    let (filler, filler_size) = fill_disk(fs_guard.path());

    // Keep putting until the disk refuses.
    let mut failure = None;
    let mut ok_while_full = 0;
    for i in 0..2_000 {
        let p = payload("full", i);
        match q.put("q", &p, &opts) {
            Ok(_) => {
                stored.insert(p);
                ok_while_full += 1;
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let failure = failure.expect("puts kept succeeding on a full disk");
    // A batch on the full disk: all or nothing, so nothing.
    let batch: Vec<Vec<u8>> = (0..20).map(|i| payload("batch", i)).collect();
    let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
    let batch_result = q.put_batch("q", &refs, &opts);
    if batch_result.is_ok() {
        stored.extend(batch.iter().cloned());
    }
    let reserve_result = q.reserve("q", Some(Duration::ZERO)).map(|j| j.map(|j| j.id()));
    let stats_result = q.stats();

    fs::remove_file(&filler).unwrap();
    let after = q.put("q", &payload("after", 0), &opts);
    if after.is_ok() {
        stored.insert(payload("after", 0));
    }
    q.close().unwrap();
    let q = Queue::open(&path, Config::default()).unwrap();
    std::thread::sleep(Duration::from_millis(60));
    let present: Vec<Vec<u8>> = drain(&q, "q").into_iter().map(|(_, p)| p).collect();
    let present_set: BTreeSet<Vec<u8>> = present.iter().cloned().collect();
    q.close().unwrap();
    integrity_ok(&path);
    let missing = stored.difference(&present_set).count();
    let extra: Vec<String> = present_set
        .difference(&stored)
        .map(|p| String::from_utf8_lossy(&p[..p.iter().position(|&b| b == b'.').unwrap_or(p.len())]).into_owned())
        .collect();
    println!(
        "disk full (2 MiB tmpfs, filler {filler_size} bytes): 20 puts before; {ok_while_full} more Ok once the \
         filler was written; then put -> {}; put_batch(20) -> {}; reserve -> {}; stats -> {}; filler deleted: put \
         -> {}; afterwards {} jobs in the file = {} acknowledged, missing {missing}, extra (stored though the put \
         failed) {}",
        outcome::<(), _>(&Err(failure.clone())),
        outcome(&batch_result.as_ref().map(Vec::len)),
        outcome(&reserve_result),
        outcome(&stats_result.as_ref().map(|_| ())),
        outcome(&after.as_ref().map(|p| p.id())),
        present.len(),
        stored.len(),
        extra.len()
    );
    assert!(matches!(failure, Error::Io(_)), "a full disk must give Error::Io, got {failure:?}");
    let msg = failure.to_string();
    assert!(
        msg.contains("full") || msg.contains("disk I/O"),
        "the message should say the disk is full or an I/O error happened: {msg}"
    );
    assert!(matches!(batch_result, Err(Error::Io(_))), "put_batch on a full disk: {batch_result:?}");
    for r in [reserve_result.as_ref().map(|_| ()), stats_result.as_ref().map(|_| ())] {
        assert!(matches!(r, Ok(_) | Err(Error::Io(_))), "reserve/stats on a full disk: {r:?}");
    }
    assert!(after.is_ok(), "a put once space is free again must succeed: {after:?}");
    assert_eq!(missing, 0, "LOST: jobs whose put returned Ok are not in the file");
    assert!(extra.is_empty(), "jobs stored although their put failed: {extra:?}");
    assert_eq!(present.len(), present_set.len(), "a job stored twice");
}

// ------------------------------------------------------------------ permissions

#[test]
fn a_read_only_file_gives_io_and_changes_nothing() {
    let (_dir, sub) = open_dir();
    let path = sub.join("ro.db");
    let ids = make_queue(&path, 5);
    give_to_child(&path);
    chmod(&path, 0o444);
    let lines = access_as_nobody(&path);
    println!("read-only file (its owner's, 0444; directory writable), as nobody: {lines:?}");
    check_refused(&lines, "read-only file");
    chmod(&path, 0o600);
    let q = Queue::open(&path, Config::default()).unwrap();
    assert_eq!(drain(&q, "q").iter().map(|j| j.0).collect::<BTreeSet<_>>(), ids, "the jobs are intact");
    q.close().unwrap();
}

#[test]
fn a_read_only_directory_gives_io_and_changes_nothing() {
    let (_dir, sub) = open_dir();
    let path = sub.join("rodir.db");
    let ids = make_queue(&path, 5);
    assert!(!path.with_extension("db-wal").exists(), "the WAL is gone after close");
    give_to_child(&path);
    give_to_child(&sub);
    chmod(&path, 0o644);
    chmod(&sub, 0o555);
    let lines = access_as_nobody(&path);
    println!(
        "read-only directory (0555, file 0644, both the child's: no -wal/-shm can be created), as nobody: {lines:?}"
    );
    check_refused(&lines, "read-only directory");
    // A new file in a read-only directory.
    let new = sub.join("new.db");
    let lines_new = access_as_nobody(&new);
    println!("new file in a read-only directory, as nobody: {lines_new:?}");
    let open = report(&lines_new, "OPEN").unwrap();
    assert!(open.starts_with("Io "), "creating a file in a read-only directory: {open}");
    chmod(&sub, 0o755);
    let q = Queue::open(&path, Config::default()).unwrap();
    assert_eq!(drain(&q, "q").iter().map(|j| j.0).collect::<BTreeSet<_>>(), ids, "the jobs are intact");
    q.close().unwrap();
}

#[test]
fn a_file_without_permission_gives_io() {
    let (_dir, sub) = open_dir();
    let path = sub.join("noperm.db");
    make_queue(&path, 1);
    give_to_child(&path);
    chmod(&path, 0o000);
    let lines = access_as_nobody(&path);
    println!("chmod 000 file (its own), as nobody: {lines:?}");
    let open = report(&lines, "OPEN").unwrap();
    assert!(open.starts_with("Io ") && open.contains("noperm.db"), "open of a 000 file: {open}");
    // Missing directory: the same code, naming the path.
    let missing = sub.join("no/such/dir/q.db");
    let e = Queue::open(&missing, Config::default()).unwrap_err();
    println!("missing directory: {e}");
    assert!(matches!(&e, Error::Io(m) if m.contains("no/such/dir")), "{e:?}");
}

/// The common checks of an unwritable file: opening may fail, or succeed
/// read-only, but every write fails with Io and nothing panics.
fn check_refused(lines: &[(String, String)], what: &str) {
    let open = report(lines, "OPEN").unwrap_or_else(|| panic!("{what}: no OPEN report: {lines:?}"));
    for (kind, outcome) in lines {
        assert!(
            outcome.starts_with("Ok ") || outcome.starts_with("Io "),
            "{what}: {kind} must succeed or give Io, got {outcome}"
        );
    }
    if open.starts_with("Ok ") {
        let put = report(lines, "PUT").unwrap();
        assert!(put.starts_with("Io "), "{what}: a put that cannot be stored must fail with Io: {put}");
        let reserve = report(lines, "RESERVE").unwrap();
        assert!(reserve.starts_with("Io "), "{what}: a reserve that cannot be recorded must fail: {reserve}");
    }
}

#[test]
fn a_read_only_file_system_gives_io_even_to_root() {
    if !root_or_skip("read-only file system", "mounts a tmpfs and remounts it read-only") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let fs_guard = Tmpfs::mount(&mnt, "4m").unwrap();
    let path = fs_guard.path().join("rofs.db");
    let ids = make_queue(&path, 5);
    // EBUSY while a file there is open for writing: a child that another
    // test is forking right now holds copies of our descriptors until exec.
    let mut remounted = fs_guard.remount(true, "4m");
    for _ in 0..100 {
        if !matches!(&remounted, Err(e) if e.raw_os_error() == Some(libc::EBUSY)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        remounted = fs_guard.remount(true, "4m");
    }
    if let Err(e) = remounted {
        let open: Vec<_> = fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|f| fs::read_link(f.unwrap().path()).ok())
            .filter(|t| t.starts_with(fs_guard.path()))
            .collect();
        panic!("remount read-only: {e}; files of this process open there: {open:?}");
    }
    let q = Queue::open(&path, Config::default());
    let mut lines = vec![("OPEN".to_string(), outcome(&q))];
    if let Ok(q) = &q {
        lines.push(("PUT".into(), outcome(&q.put("q", b"x", &PutOptions::default()))));
        let job = q.reserve("q", Some(Duration::ZERO));
        lines.push(("RESERVE".into(), outcome(&job.as_ref().map(|j| j.as_ref().map(|j| j.id())))));
        drop(job);
        lines.push(("STATS".into(), outcome(&q.stats())));
    }
    println!("read-only file system, as root: {lines:?}");
    if let Ok(q) = q {
        q.close().unwrap();
    }
    check_refused(&lines, "read-only file system");
    fs_guard.remount(false, "4m").unwrap();
    let q = Queue::open(&path, Config::default()).unwrap();
    assert_eq!(drain(&q, "q").iter().map(|j| j.0).collect::<BTreeSet<_>>(), ids, "the jobs are intact");
    q.close().unwrap();
}

// ------------------------------------------------------------------ locks

#[test]
fn a_file_locked_by_another_process_past_busy_timeout_gives_busy() {
    const BUSY_MS: u64 = 300;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    let ids = make_queue(&path, 3);
    let mut locker = child_command("lock").env(PATH, &path).spawn().unwrap();
    let mut lines = stdout_lines(&mut locker);
    wait_for_report(&mut lines, "LOCKED");
    let result = std::panic::catch_unwind(|| {
        let q = Queue::open(&path, Config { busy_timeout_ms: BUSY_MS, ..Config::default() })
            .expect("opening an existing file needs no write lock");
        let started = Instant::now();
        let put = q.put("q", b"blocked", &PutOptions::default());
        let waited = started.elapsed();
        let started = Instant::now();
        let reserve = q.reserve("q", Some(Duration::ZERO)).map(|j| j.map(|j| j.id()));
        let waited_reserve = started.elapsed();
        println!(
            "write lock held by another process, busy_timeout_ms {BUSY_MS}: put -> {} after {waited:.1?}; \
             reserve -> {} after {waited_reserve:.1?}",
            outcome(&put),
            outcome(&reserve)
        );
        assert!(matches!(&put, Err(Error::Busy(m)) if m.contains("busy_timeout")), "{put:?}");
        assert!(matches!(&reserve, Err(Error::Busy(_))), "{reserve:?}");
        for w in [waited, waited_reserve] {
            assert!(w >= Duration::from_millis(BUSY_MS - 50), "gave up before busy_timeout_ms: {w:?}");
            assert!(w < Duration::from_millis(BUSY_MS + 2_000), "waited far past busy_timeout_ms: {w:?}");
        }
        q
    });
    kill9(&mut locker);
    let q = result.unwrap_or_else(|p| std::panic::resume_unwind(p));
    let id = q.put("q", b"after", &PutOptions::default()).unwrap().id();
    let mut expected = ids;
    expected.insert(id);
    assert_eq!(drain(&q, "q").iter().map(|j| j.0).collect::<BTreeSet<_>>(), expected, "only the Ok puts");
    q.close().unwrap();
}

// ------------------------------------------------------------------ damaged and foreign files

/// Opens `path` and uses it: stats, list_jobs, reserve + ack of each
/// job, one put; goes on after a failure. Returns each call's outcome and
/// the first error (None: everything worked).
fn open_and_use(path: &Path) -> (String, Option<Error>) {
    let q = match Queue::open(path, Config::default()) {
        Ok(q) => q,
        Err(e) => return (format!("open -> {}", outcome::<(), _>(&Err(&e))), Some(e)),
    };
    let mut steps = Vec::new();
    let mut first = None;
    let mut note = |step: &str, r: jobq::Result<String>| {
        steps.push(format!("{step} -> {}", outcome(&r)));
        if let Err(e) = r {
            first.get_or_insert(e);
        }
    };
    note("stats", q.stats().map(|s| format!("{} queues", s.queues.len())));
    note("list_jobs", q.list_jobs(&jobq::JobFilter::default()).map(|j| format!("{} jobs", j.len())));
    let mut acked = 0;
    let drained = loop {
        match q.reserve("q", Some(Duration::ZERO)) {
            Ok(Some(job)) => match job.ack() {
                Ok(()) => acked += 1,
                Err(e) => break Err(e),
            },
            Ok(None) => break Ok(format!("{acked} acked")),
            Err(e) => break Err(e),
        }
    };
    note("reserve/ack", drained);
    note("put", q.put("q", b"x", &PutOptions::default()).map(|p| format!("{p:?}")));
    let _ = q.close();
    (format!("open -> Ok; {}", steps.join("; ")), first)
}

#[test]
fn truncated_files_give_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("whole.db");
    let q = Queue::open(&original, Config::default()).unwrap();
    let big = vec![b'p'; 2000];
    for _ in 0..100 {
        q.put("q", &big, &PutOptions::default()).unwrap();
    }
    q.close().unwrap();
    drop(q);
    assert!(!original.with_extension("db-wal").exists(), "the last connection checkpointed and removed the WAL");
    let bytes = fs::read(&original).unwrap();
    let mut seen = Vec::new();
    let mut wrong = Vec::new();
    for cut in [10, 99, 100, 1000, 4096, 4097, 8192, bytes.len() / 2, bytes.len() - 4096, bytes.len() - 100] {
        let path = dir.path().join(format!("cut-{cut}.db"));
        fs::write(&path, &bytes[..cut]).unwrap();
        let (steps, first) = open_and_use(&path);
        let line = format!("cut to {cut} of {} bytes: {steps}", bytes.len());
        if !matches!(first, Some(Error::Corrupt(_))) {
            wrong.push(line.clone());
        }
        seen.push(line);
    }
    println!("truncated files:\n  {}", seen.join("\n  "));
    // Regression (found by this test): a file cut inside its last page reads
    // back zeros, so a NOT NULL column comes back NULL; that gave
    // Error::Internal until src/error.rs mapped wrong-typed columns and NOT
    // NULL violations (jobq never writes a NULL there) to Error::Corrupt.
    assert!(wrong.is_empty(), "truncated files must give Error::Corrupt:\n  {}", wrong.join("\n  "));
}

#[test]
fn garbage_and_foreign_files_give_corrupt_and_are_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(0x5eed);
    let random: Vec<u8> = (0..16384).map(|_| rng.next() as u8).collect();
    let mut sqlite_header_then_garbage = b"SQLite format 3\0".to_vec();
    sqlite_header_then_garbage.extend_from_slice(&random[..8192]);
    let foreign = dir.path().join("foreign.db");
    {
        let conn = rusqlite::Connection::open(&foreign).unwrap();
        conn.execute_batch(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO customers VALUES (1, 'x');",
        )
        .unwrap();
    }
    let cases: Vec<(&str, Option<Vec<u8>>)> = vec![
        ("random bytes", Some(random)),
        ("text", Some(b"hello, I am a text file, not a queue\n".repeat(100))),
        ("SQLite magic, then garbage", Some(sqlite_header_then_garbage)),
        ("another program's SQLite database", None),
    ];
    let mut seen = Vec::new();
    for (name, content) in cases {
        let path = match &content {
            Some(bytes) => {
                let p = dir.path().join(format!("{}.db", name.replace(' ', "_")));
                fs::write(&p, bytes).unwrap();
                p
            }
            None => foreign.clone(),
        };
        let before = fs::read(&path).unwrap();
        let (steps, first) = open_and_use(&path);
        seen.push(format!("{name}: {steps}"));
        assert!(matches!(first, Some(Error::Corrupt(_))), "{name}: {steps}");
        assert_eq!(fs::read(&path).unwrap(), before, "{name}: the failed open changed the file");
    }
    println!("garbage and foreign files:\n  {}", seen.join("\n  "));
}

#[test]
fn a_file_of_a_newer_schema_gives_version_and_is_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("newer.db");
    make_queue(&path, 2);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
    }
    let before = fs::read(&path).unwrap();
    let e = Queue::open(&path, Config::default()).unwrap_err();
    println!("newer schema (user_version 99): {e}");
    assert_eq!(e, Error::Version { found: 99, supported: 3 });
    assert_eq!(fs::read(&path).unwrap(), before, "the refused open changed the file");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v, 99);
}

/// The schema of jobq's first file format (user_version 1), as it wrote it.
const SCHEMA_V1: &str = "
PRAGMA page_size = 1024;
PRAGMA journal_mode = WAL;
CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    queue        TEXT    NOT NULL,
    state        INTEGER NOT NULL,
    priority     INTEGER NOT NULL,
    run_at       INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    lease_ms     INTEGER NOT NULL,
    lease_until  INTEGER,
    lease_token  INTEGER NOT NULL DEFAULT 0,
    lease_owner  TEXT,
    unique_key   TEXT,
    payload      BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    last_error   TEXT
);
CREATE TABLE queues (
    name       TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX jobs_ready     ON jobs (queue, priority, id) WHERE state = 0;
CREATE INDEX jobs_leased    ON jobs (queue, run_at)       WHERE state = 1;
CREATE INDEX jobs_dead      ON jobs (queue, id)           WHERE state = 2;
CREATE INDEX jobs_scheduled ON jobs (queue, run_at)       WHERE state = 3;
CREATE UNIQUE INDEX jobs_unique ON jobs (queue, unique_key)
    WHERE unique_key IS NOT NULL AND state IN (0, 1, 3);
PRAGMA application_id = 1785684593;
PRAGMA user_version = 1;
INSERT INTO queues (name, created_at) VALUES ('old', 1700000000000), ('empty', 1700000000000);
INSERT INTO jobs (queue, state, priority, run_at, max_attempts, lease_ms, payload, created_at, updated_at)
    VALUES ('old', 0, 0, 1700000000000, 25, 30000, X'6f6c64206a6f62', 1700000000000, 1700000000000);
";

#[test]
fn a_file_of_the_first_schema_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
    }
    let q = Queue::open(&path, Config::default()).unwrap();
    let stats = q.stats().unwrap();
    assert_eq!(stats.queues.keys().collect::<Vec<_>>(), ["empty", "old"]);
    assert!(!stats.queues["old"].paused && stats.queues["old"].ready == 1);
    // The upgraded file pauses and resumes; its old job is still there.
    q.pause("old").unwrap();
    assert!(q.reserve("old", Some(Duration::ZERO)).unwrap().is_none());
    q.close().unwrap();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, 3, "upgraded: a jobq that knows only version 1 now refuses the file");
        let paused: i64 = conn.query_row("SELECT paused FROM queues WHERE name = 'old'", [], |r| r.get(0)).unwrap();
        assert_eq!(paused, 1);
    }
    let q = Queue::open(&path, Config::default()).unwrap();
    assert!(q.stats().unwrap().queues["old"].paused, "the pause is stored");
    q.resume("old").unwrap();
    let job = q.reserve("old", Some(Duration::ZERO)).unwrap().expect("the version 1 job");
    assert_eq!(job.payload(), b"old job");
    job.ack().unwrap();
    q.close().unwrap();
}

#[test]
fn a_file_of_schema_2_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        // Version 2 added queues.paused.
        conn.execute_batch(
            "ALTER TABLE queues ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
             UPDATE queues SET paused = 1 WHERE name = 'empty';
             PRAGMA user_version = 2;",
        )
        .unwrap();
    }
    let q = Queue::open(&path, Config::default()).unwrap();
    let stats = q.stats().unwrap();
    assert!(stats.queues["empty"].paused && stats.queues["old"].limits.is_none());
    // The upgraded file stores limits, and enforces them.
    q.configure("old", r#"{"max_reserved": 1}"#).unwrap();
    q.put("old", b"second", &PutOptions::default()).unwrap();
    let first = q.reserve("old", Some(Duration::ZERO)).unwrap().expect("the version 2 job");
    assert_eq!(first.payload(), b"old job");
    assert!(q.reserve("old", Some(Duration::ZERO)).unwrap().is_none(), "capped at 1");
    first.ack().unwrap();
    q.close().unwrap();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, 3, "upgraded: a jobq that knows only version 2 now refuses the file");
        let max: i64 =
            conn.query_row("SELECT max_reserved FROM queue_limits WHERE queue = 'old'", [], |r| r.get(0)).unwrap();
        assert_eq!(max, 1);
    }
    let q = Queue::open(&path, Config::default()).unwrap();
    let stats = q.stats().unwrap();
    assert_eq!(stats.queues["old"].limits.and_then(|l| l.max_reserved), Some(1), "the limit is stored");
    assert!(stats.queues["empty"].paused, "the pause survived the upgrade");
    q.close().unwrap();
}

#[test]
fn a_file_of_schema_2_is_upgraded_in_place_with_schedules() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.execute_batch("ALTER TABLE queues ADD COLUMN paused INTEGER NOT NULL DEFAULT 0; PRAGMA user_version = 2;")
            .unwrap();
    }
    let clock = std::sync::Arc::new(jobq::ManualClock::new(1_000_000));
    let q = Queue::open_with_clock(&path, Config::default(), clock.clone()).unwrap();
    assert_eq!(q.stats().unwrap().queues["old"].ready, 1);
    q.schedule("s", "old", "@every 1s", b"tick", &jobq::PutOptions::default()).unwrap();
    clock.advance(1_000);
    q.fire_schedules().unwrap();
    assert_eq!(q.stats().unwrap().queues["old"].ready, 2);
    q.close().unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v, 3);
    let next: i64 = conn.query_row("SELECT next_slot FROM schedules WHERE name = 's'", [], |r| r.get(0)).unwrap();
    assert_eq!(next, 1_002_000);
}

// ------------------------------------------------------------------ file mode

/// Runs the `mode` child with `umask`; returns (name, file, wal, shm) modes.
fn modes_with_umask(dir: &Path, umask: u32) -> Vec<(String, u32, u32, u32)> {
    let out = child_command("mode").env(PATH, dir).env(ARG, format!("{umask:o}")).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "mode child failed: {stdout}");
    stdout
        .lines()
        .filter_map(|l| l.find(&format!("{TAG} MODE ")).map(|at| &l[at + TAG.len() + 6..]))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let m = |s: &str| u32::from_str_radix(s, 8).unwrap_or_else(|_| panic!("no such file: {l}"));
            (f[0].to_string(), m(f[1]), m(f[2]), m(f[3]))
        })
        .collect()
}

#[test]
fn a_new_file_is_0600_and_file_mode_is_honoured_under_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    for umask in [0o022, 0o077] {
        for (name, file, wal, shm) in modes_with_umask(dir.path(), umask) {
            let asked = match name.as_str() {
                "default" => 0o600,
                other => u32::from_str_radix(other, 8).unwrap(),
            };
            let expected = asked & !umask;
            seen.push(format!("umask {umask:03o} file_mode {name}: file {file:o}, -wal {wal:o}, -shm {shm:o}"));
            assert_eq!(file, expected, "umask {umask:o}, file_mode {name}: the file");
            assert_eq!((wal, shm), (file, file), "umask {umask:o}, file_mode {name}: -wal and -shm follow the file");
        }
    }
    // An existing file keeps its mode whatever file_mode says.
    let path = dir.path().join("existing.db");
    make_queue(&path, 1);
    chmod(&path, 0o620);
    let q = Queue::open(&path, Config { file_mode: 0o644, ..Config::default() }).unwrap();
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    q.close().unwrap();
    seen.push(format!("existing 0620 file opened with file_mode 644: {mode:o}"));
    println!("file modes:\n  {}", seen.join("\n  "));
    assert_eq!(mode, 0o620);
}
