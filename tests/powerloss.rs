//! Power loss, simulated from a trace (SQLite backend). See docs/durability-testing.md.
//!
//! A workload (producers putting single jobs and batches, consumers
//! reserving and acking) runs in a child process under an LD_PRELOAD
//! interposer (tests/powerloss/interpose.c) that logs, in one order, every
//! write, truncation and fsync/fdatasync the process makes to the queue
//! file, its -wal and -shm (jobq's own group fdatasync of the WAL
//! included: it is a plain fdatasync(2) on a descriptor of jobq's own, which
//! a SQLite VFS would never see), and every confirmation the workload
//! writes to its marker file after a call returned OK.
//!
//! From that log the parent builds crash images: a cut point anywhere in
//! the log; for each file, the writes before the start of its last sync
//! that completed before the cut are kept; every later write (up to the
//! cut) is kept, dropped, or torn at a 512-byte boundary (its head or its
//! tail survives); the -shm is dropped. All choices come from a seed. Each
//! image is opened with the library and checked: it opens, every put and
//! batch confirmed before the cut is there (unless an ack of the job began
//! before the cut: a job may be gone because it was acked), no job id or
//! payload twice, batches all or nothing, stats agree with a listing, and
//! SQLite's integrity_check passes.
//!
//! Controls prove the checks can fail: durability "normal" (puts return
//! before any sync) and a deliberately broken build (the cargo feature
//! `fault-injection`, or any debug build, with `JOBQ_FAULT_SKIP_GROUP_SYNC=1`
//! skips jobq's group fdatasync) must lose confirmed puts in some images.
//!
//! `JOBQ_POWERLOSS_SEEDS=N` builds N images per scenario (default 24);
//! `JOBQ_POWERLOSS_OPS=N` sets each producer's operations (default 60).

#[path = "powerloss/check.rs"]
mod check;
mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use check::{check_queue, Confirmed, Tally, QUEUE};
use common::{child_command, env, env_path, Rng, ARG, ROLE, SEED};
use jobq::{Config, Durability, Error, PutOptions, Queue};

/// The queue file's path (the interposer traces it and its -wal, -shm).
const PL_DB: &str = "JOBQ_PL_DB";
/// The workload's confirmations; the interposer logs each write to it as a mark.
const PL_MARK: &str = "JOBQ_PL_MARK";
/// The interposer's log.
const PL_LOG: &str = "JOBQ_PL_LOG";
const PRODUCERS: u64 = 3;
const CONSUMERS: u64 = 2;

static SERIAL: Mutex<()> = Mutex::new(());

fn seeds() -> u64 {
    std::env::var("JOBQ_POWERLOSS_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(24)
}

fn ops_per_producer() -> u64 {
    std::env::var("JOBQ_POWERLOSS_OPS").ok().and_then(|s| s.parse().ok()).unwrap_or(60)
}

// ------------------------------------------------------------------ the child

/// Does nothing in a normal test run; in a child process, runs the workload.
#[test]
fn child_process_entry() {
    let Ok(role) = std::env::var(ROLE) else { return };
    assert_eq!(role, "powerloss-workload");
    workload();
}

/// One confirmation: ONE write(2) to the marker file (the interposer logs it
/// in order with the file changes).
struct Marks(fs::File);

impl Marks {
    fn mark(&self, line: &str) {
        let buf = format!("{line}\n");
        let n = (&self.0).write(buf.as_bytes()).unwrap();
        assert_eq!(n, buf.len(), "a short write to the marker file");
    }
}

/// `ARG` = "full" or "normal". Producers mark `P id payload` after put
/// returned OK and `B id,id,... prefix` after put_batch returned OK (item j
/// of n has payload `prefix:j:n`); consumers mark `T id payload` before
/// they ack (the ack may be on disk from then on) and `A id` after.
fn workload() {
    let durability = if env(ARG) == "full" { Durability::Full } else { Durability::Normal };
    let seed: u64 = env(SEED).parse().unwrap();
    let marks = Arc::new(Marks(fs::OpenOptions::new().append(true).create(true).open(env_path(PL_MARK)).unwrap()));
    let q = Queue::open(env_path(PL_DB), Config { durability, ..Config::default() }).unwrap();
    marks.mark("START");
    let ops = ops_per_producer();
    let producing = Arc::new(AtomicBool::new(true));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|t| {
            let (q, marks) = (q.clone(), marks.clone());
            std::thread::spawn(move || {
                let mut rng = Rng::new(seed ^ (t + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                let opts = PutOptions::default();
                for i in 0..ops {
                    if rng.below(3) == 0 {
                        let n = 2 + rng.below(7);
                        let prefix = format!("b{t}:{i}");
                        let payloads: Vec<Vec<u8>> = (0..n).map(|j| format!("{prefix}:{j}:{n}").into_bytes()).collect();
                        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
                        let ids = q.put_batch(QUEUE, &refs, &opts).unwrap();
                        let ids: Vec<String> = ids.iter().map(|p| p.id().to_string()).collect();
                        marks.mark(&format!("B {} {prefix}", ids.join(",")));
                    } else {
                        let payload = format!("p{t}:{i}");
                        let id = q.put(QUEUE, payload.as_bytes(), &opts).unwrap().id();
                        marks.mark(&format!("P {id} {payload}"));
                    }
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let (q, marks, producing) = (q.clone(), marks.clone(), producing.clone());
            std::thread::spawn(move || loop {
                let busy = producing.load(Ordering::SeqCst);
                match q.reserve(QUEUE, Some(Duration::from_millis(10))).unwrap() {
                    Some(job) => {
                        marks.mark(&format!("T {} {}", job.id(), String::from_utf8_lossy(job.payload())));
                        job.ack().unwrap();
                        marks.mark(&format!("A {}", job.id()));
                    }
                    None if !busy => break,
                    None => {}
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    producing.store(false, Ordering::SeqCst);
    for c in consumers {
        c.join().unwrap();
    }
    marks.mark("END");
    q.close().unwrap();
    marks.mark("CLOSED");
}

// ------------------------------------------------------------------ the log

const F_DB: u8 = 0;
const F_WAL: u8 = 1;
const F_SHM: u8 = 2;
const SUFFIX: [&str; 4] = ["", "-wal", "-shm", "-journal"];

#[derive(Debug)]
enum Op {
    Write {
        file: u8,
        off: u64,
        data: Vec<u8>,
    },
    Trunc {
        file: u8,
        len: u64,
    },
    Open {
        file: u8,
        trunc: bool,
    },
    /// (`file` is in the log for a reader of it; a sync's end says which file.)
    SyncBegin {
        _file: u8,
        id: u64,
    },
    SyncEnd {
        file: u8,
        id: u64,
        ok: bool,
    },
    Unlink {
        file: u8,
    },
    Mark(String),
}

fn parse_log(bytes: &[u8]) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut at = 0;
    let u32_at = |b: &[u8], i: usize| u32::from_ne_bytes(b[i..i + 4].try_into().unwrap());
    let u64_at = |b: &[u8], i: usize| u64::from_ne_bytes(b[i..i + 8].try_into().unwrap());
    while at + 24 <= bytes.len() {
        let (kind, file) = (bytes[at], bytes[at + 1]);
        let len = u32_at(bytes, at + 4) as usize;
        let (off, aux) = (u64_at(bytes, at + 8), u64_at(bytes, at + 16));
        let data = &bytes[at + 24..at + 24 + len];
        at += 24 + len;
        ops.push(match kind {
            1 => Op::Write { file, off, data: data.to_vec() },
            2 => Op::Trunc { file, len: off },
            3 => Op::SyncBegin { _file: file, id: aux },
            4 => Op::SyncEnd { file, id: aux, ok: off == 0 },
            5 => Op::Unlink { file },
            6 => Op::Mark(String::from_utf8_lossy(data).trim_end().to_owned()),
            7 => Op::Open { file, trunc: aux != 0 },
            k => panic!("unknown record kind {k} in the interposer's log"),
        });
    }
    assert_eq!(at, bytes.len(), "the interposer's log ends in a partial record");
    ops
}

// ------------------------------------------------------------------ images

/// One file of an image: its bytes, or `None` if it does not exist.
type Files = [Option<Vec<u8>>; 4];

/// What the seed did with the writes that were not yet certainly on disk.
#[derive(Default, Debug, Clone, Copy)]
struct Choices {
    kept: u64,
    dropped: u64,
    torn: u64,
}

fn apply_write(buf: &mut Vec<u8>, off: u64, data: &[u8]) {
    let off = off as usize;
    if buf.len() < off + data.len() {
        buf.resize(off + data.len(), 0);
    }
    buf[off..off + data.len()].copy_from_slice(data);
}

/// The files as a power loss after `ops[..cut]` may leave them, choices by `rng`.
fn build_image(base: &Files, ops: &[Op], cut: usize, rng: &mut Rng) -> (Files, Choices) {
    // For each file, ops before this index are on disk (the start of its
    // last sync that completed before the cut).
    let mut durable = [0usize; 4];
    let mut begins: BTreeMap<u64, usize> = BTreeMap::new();
    for (i, op) in ops[..cut].iter().enumerate() {
        match op {
            Op::SyncBegin { id, .. } => {
                begins.insert(*id, i);
            }
            Op::SyncEnd { file, id, ok: true } => {
                if let Some(&b) = begins.get(id) {
                    durable[*file as usize] = durable[*file as usize].max(b);
                }
            }
            _ => {}
        }
    }
    let mut files = base.clone();
    let mut ch = Choices::default();
    for (i, op) in ops[..cut].iter().enumerate() {
        match op {
            Op::Write { file, off, data } => {
                let f = &mut files[*file as usize];
                let buf = f.get_or_insert_with(Vec::new);
                if i < durable[*file as usize] {
                    apply_write(buf, *off, data);
                    continue;
                }
                // A 512-byte boundary strictly inside the write, if any.
                let first = (off / 512 + 1) * 512;
                let end = off + data.len() as u64;
                let boundaries = if first < end { (end - 1 - first) / 512 + 1 } else { 0 };
                match rng.below(10) {
                    0..=3 => {
                        ch.kept += 1;
                        apply_write(buf, *off, data);
                    }
                    4..=6 => ch.dropped += 1,
                    _ if boundaries == 0 => ch.dropped += 1,
                    _ => {
                        ch.torn += 1;
                        let at = (first + 512 * rng.below(boundaries) - off) as usize;
                        if rng.below(2) == 0 {
                            apply_write(buf, *off, &data[..at]);
                        } else {
                            apply_write(buf, off + at as u64, &data[at..]);
                        }
                    }
                }
            }
            Op::Trunc { file, .. } | Op::Open { file, trunc: true } if *file != F_SHM => {
                let len = if let Op::Trunc { len, .. } = op { *len } else { 0 };
                let certain = i < durable[*file as usize];
                if certain || rng.below(2) == 0 {
                    files[*file as usize].get_or_insert_with(Vec::new).resize(len as usize, 0);
                }
            }
            Op::Open { file, .. } => {
                files[*file as usize].get_or_insert_with(Vec::new);
            }
            // A directory change: taken as done (SQLite unlinks the WAL
            // only after the checkpoint that emptied it was synced).
            Op::Unlink { file } => files[*file as usize] = None,
            _ => {}
        }
    }
    files[F_SHM as usize] = None;
    (files, ch)
}

// ------------------------------------------------------------------ checks

/// The confirmations among `ops[..cut]`.
fn confirmed_before(ops: &[Op], cut: usize) -> Confirmed {
    let mut c = Confirmed::default();
    for op in &ops[..cut] {
        if let Op::Mark(text) = op {
            text.lines().for_each(|l| c.line(l));
        }
    }
    c
}

/// Opens the image in `dir` (never Corrupt or another error), checks it
/// against what was confirmed, then runs SQLite's integrity_check on it.
fn check_image(dir: &Path, confirmed: &Confirmed, t: &mut Tally, what: &str) {
    let path = dir.join("q.db");
    let q = match Queue::open(&path, Config::default()) {
        Ok(q) => q,
        Err(e) => {
            t.unopenable += 1;
            let kind = if matches!(e, Error::Corrupt(_)) { "Corrupt" } else { "another error" };
            t.note(format!("{what}: open failed ({kind}): {e}"));
            return;
        }
    };
    if !check_queue(&q, confirmed, t, what) {
        return;
    }
    q.close().unwrap();
    drop(q);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let ok: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap_or_else(|e| e.to_string());
    if ok != "ok" {
        t.unopenable += 1;
        t.note(format!("{what}: integrity_check: {ok}"));
    }
}

// ------------------------------------------------------------------ a scenario

/// The interposer, compiled once per test process (into a directory of
/// its own under cargo's CARGO_TARGET_TMPDIR).
fn interposer() -> PathBuf {
    static SO: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut so = SO.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(p) = so.as_ref() {
        return p.clone();
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/powerloss/interpose.c");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("powerloss-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let out = dir.join("interpose.so");
    let o = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&out)
        .arg(&src)
        .args(["-ldl", "-lpthread"])
        .output()
        .expect("run cc");
    assert!(o.status.success(), "compiling {}: {}", src.display(), String::from_utf8_lossy(&o.stderr));
    *so = Some(out.clone());
    out
}

/// Runs the workload under the interposer, then builds and checks
/// `seeds()` crash images from its log.
fn scenario(name: &str, durability: &str, skip_group_sync: bool) -> Tally {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let first_seed = std::env::var(SEED).ok().and_then(|s| s.parse().ok()).unwrap_or_else(common::unix_micros);
    let mut t = Tally::default();
    let mut choices = Choices::default();
    let total = seeds();
    // A fresh trace (another run of the workload, other timings) per IMAGES_PER_TRACE images.
    for (k, first_image) in (0..total).step_by(IMAGES_PER_TRACE as usize).enumerate() {
        let images = first_image..total.min(first_image + IMAGES_PER_TRACE);
        trace_and_check(name, durability, skip_group_sync, first_seed + k as u64, images, &mut t, &mut choices);
    }
    eprintln!(
        "powerloss {name}: {}; unsynced writes kept {}, dropped {}, torn {}",
        t.summary(),
        choices.kept,
        choices.dropped,
        choices.torn
    );
    for n in &t.notes {
        eprintln!("  {n}");
    }
    t
}

/// Most images built from one trace.
const IMAGES_PER_TRACE: u64 = 50;

/// One run of the workload under the interposer, and images `seeds` of its log.
fn trace_and_check(
    name: &str,
    durability: &str,
    skip_group_sync: bool,
    run_seed: u64,
    seeds: std::ops::Range<u64>,
    t: &mut Tally,
    choices: &mut Choices,
) {
    let tmp = tempfile::tempdir().unwrap();
    let so = interposer();
    let work = tmp.path().join("work");
    fs::create_dir(&work).unwrap();
    let db = work.join("q.db");
    // The starting point, on disk before the trace begins: a new, empty queue file.
    Queue::open(&db, Config::default()).unwrap().close().unwrap();
    let base: Files = std::array::from_fn(|f| fs::read(format!("{}{}", db.display(), SUFFIX[f])).ok());
    let log = tmp.path().join("trace.log");
    let started = Instant::now();
    let mut cmd = child_command("powerloss-workload");
    cmd.env("LD_PRELOAD", &so)
        .env(PL_DB, &db)
        .env(PL_MARK, tmp.path().join("marks"))
        .env(PL_LOG, &log)
        .env(ARG, durability)
        .env(SEED, run_seed.to_string())
        .env_remove("JOBQ_FAULT_SKIP_GROUP_SYNC");
    if skip_group_sync {
        cmd.env("JOBQ_FAULT_SKIP_GROUP_SYNC", "1");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{name}: the workload failed: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    let ran = started.elapsed();
    let ops = parse_log(&fs::read(&log).unwrap());
    let count = |f: &dyn Fn(&Op) -> bool| ops.iter().filter(|o| f(o)).count();
    let writes = count(&|o| matches!(o, Op::Write { .. }));
    let wal_syncs = count(&|o| matches!(o, Op::SyncEnd { file: F_WAL, .. }));
    let db_syncs = count(&|o| matches!(o, Op::SyncEnd { file: F_DB, .. }));
    let marks = count(&|o| matches!(o, Op::Mark(_)));
    assert!(
        ops.iter().any(|o| matches!(o, Op::Mark(m) if m == "CLOSED")),
        "{name}: the log has no CLOSED mark: the interposer did not see the marker file"
    );
    assert!(writes > 100, "{name}: only {writes} writes traced: the interposer did not see the queue file");
    let all = confirmed_before(&ops, ops.len());
    eprintln!(
        "powerloss {name}: workload {:.1}s (seed {run_seed}), {} ops traced: {writes} writes, {wal_syncs} WAL syncs, {db_syncs} file syncs, {marks} marks, {} confirmed puts",
        ran.as_secs_f64(),
        ops.len(),
        all.puts.len()
    );
    let images = tmp.path().join("images");
    for seed in seeds {
        let mut rng = Rng::new(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0x5eed);
        let cut = rng.below(ops.len() as u64 + 1) as usize;
        let (files, ch) = build_image(&base, &ops, cut, &mut rng);
        choices.kept += ch.kept;
        choices.dropped += ch.dropped;
        choices.torn += ch.torn;
        let _ = fs::remove_dir_all(&images);
        fs::create_dir(&images).unwrap();
        for (f, content) in files.iter().enumerate() {
            if let Some(bytes) = content {
                fs::write(images.join(format!("q.db{}", SUFFIX[f])), bytes).unwrap();
            }
        }
        let confirmed = confirmed_before(&ops, cut);
        check_image(
            &images,
            &confirmed,
            t,
            &format!("run seed {run_seed}, image seed {seed}, cut {cut}/{}", ops.len()),
        );
        t.images += 1;
    }
}

/// Durability "full": every confirmed put survives every image.
#[test]
fn power_loss_full_loses_nothing_confirmed() {
    let t = scenario("full", "full", false);
    t.assert_consistent("full");
    assert_eq!(t.lost, 0, "full: confirmed puts lost: {:?}", t.notes);
    assert!(t.checked > 0, "full: no image had a confirmed put to look for");
}

/// Control: durability "normal" returns before the WAL is synced, so some
/// images lose confirmed puts (and stay consistent).
#[test]
fn power_loss_control_normal_loses_confirmed_puts() {
    let t = scenario("control normal", "normal", false);
    t.assert_consistent("control normal");
    assert!(
        t.lost > 0,
        "control normal: no confirmed put lost in {} images: the harness cannot see a missing sync",
        t.images
    );
}

/// Control: a build whose group fdatasync is skipped (fault-injection)
/// loses confirmed puts under durability "full". The switch exists in
/// debug builds and with the feature `fault-injection` (sync.rs).
#[cfg(any(feature = "fault-injection", debug_assertions))]
#[test]
fn power_loss_control_skipped_group_sync_loses_confirmed_puts() {
    let t = scenario("control broken-sync", "full", true);
    t.assert_consistent("control broken-sync");
    assert!(
        t.lost > 0,
        "control broken-sync: no confirmed put lost in {} images: the harness missed a skipped fdatasync",
        t.images
    );
}
