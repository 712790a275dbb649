//! docs/migrating.md and its programs in docs/migrating/: the guide quotes
//! the files as they are, its syntax-check command passes as written, and
//! each "after" program, built against the libraries this `cargo test`
//! built (support/clib.rs), runs its migration on a queue file: the drain
//! step where it needs no third-party library (the spool directory, a POSIX
//! message queue), the producer and the worker, with the priority mappings
//! the guide states. The Berkeley DB drain needs libdb's db.h and is only
//! checked by the guide's command (it is compiled out without -DWITH_BDB).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use jobq::{Config, JobState, Queue, QueueCounts};

#[path = "support/clib.rs"]
mod clib;
#[path = "support/markdown.rs"]
mod markdown;
use clib::{Libs, Linkage};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn guide() -> String {
    std::fs::read_to_string(root().join("docs/migrating.md")).expect("docs/migrating.md")
}

/// The fenced blocks of `lang` in `text`, in order.
fn blocks(text: &str, lang: &str) -> Vec<String> {
    markdown::fenced_blocks(text, lang, false)
}

/// The guide's numbered sections ("## 1. ..."), each with the program it links.
fn sections(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for part in text.split("\n## ").skip(1) {
        if !part.starts_with(|c: char| c.is_ascii_digit()) {
            continue;
        }
        let title = part.lines().next().unwrap().to_owned();
        let links: Vec<&str> = part
            .match_indices("](migrating/")
            .map(|(at, _)| {
                let rest = &part[at + 2..];
                &rest[..rest.find(')').unwrap()]
            })
            .collect();
        assert!(!links.is_empty(), "section {title:?} links no program under docs/migrating/");
        assert!(links.iter().all(|l| *l == links[0]), "section {title:?} links several programs: {links:?}");
        out.push((part.to_owned(), links[0].to_owned()));
    }
    out
}

#[test]
fn the_guide_quotes_its_programs_as_they_are_and_stays_short() {
    let text = guide();
    assert!(text.lines().count() <= 520, "docs/migrating.md has {} lines: keep it short", text.lines().count());
    let sections = sections(&text);
    assert_eq!(sections.len(), 4, "spool, Berkeley DB, POSIX mq, beanstalkd");
    let mut linked: Vec<String> = Vec::new();
    for (body, program) in &sections {
        let title = body.lines().next().unwrap();
        let file =
            std::fs::read_to_string(root().join("docs").join(program)).unwrap_or_else(|e| panic!("{program}: {e}"));
        let code = blocks(body, "c");
        assert!(code.len() >= 2, "section {title:?}: a before and an after block");
        // The first block is the code before the migration; every later one
        // is quoted from the program, verbatim.
        assert!(!file.contains(code[0].as_str()), "section {title:?}: the first block should be the old code");
        for quote in &code[1..] {
            assert!(
                file.contains(quote.as_str()),
                "section {title:?} quotes code that is not in {program} as written:\n{quote}"
            );
        }
        linked.push(program.clone());
    }
    let mut on_disk: Vec<String> = std::fs::read_dir(root().join("docs/migrating"))
        .unwrap()
        .flatten()
        .map(|e| format!("migrating/{}", e.file_name().to_string_lossy()))
        .collect();
    on_disk.sort();
    linked.sort();
    assert_eq!(linked, on_disk, "every program under docs/migrating/ belongs to one section");
}

#[test]
fn the_guide_s_syntax_check_passes_as_written() {
    clib::ensure_tools();
    let text = guide();
    let line = blocks(&text, "sh")
        .iter()
        .flat_map(|b| b.lines().map(str::to_owned).collect::<Vec<_>>())
        .find(|l| l.starts_with("gcc ") && l.contains("docs/migrating/*.c"))
        .expect("the guide's gcc line");
    let out = Command::new("sh").arg("-c").arg(&line).current_dir(root()).output().unwrap();
    assert!(out.status.success(), "{line}\nfailed:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// `docs/migrating/<name>.c`, built once per test process.
fn program(name: &str) -> PathBuf {
    let libs = Libs::find();
    let bin = libs.scratch("migrating").join(name);
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap();
    if !built.iter().any(|b| b == name) {
        let src = root().join("docs/migrating").join(format!("{name}.c"));
        libs.compile(Linkage::Shared, &[&src], &bin).unwrap_or_else(|e| panic!("{e}"));
        built.push(name.to_owned());
    }
    bin
}

/// Runs `bin args` to the end; panics unless it exits 0.
fn run(bin: &Path, args: &[&str]) -> String {
    let out: Output = Command::new(bin).args(args).env_remove("LD_LIBRARY_PATH").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{} {args:?}: {}\n{stdout}{}",
        bin.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn counts(store: &Path) -> BTreeMap<String, QueueCounts> {
    Queue::open(store, Config::default()).unwrap().stats().unwrap().queues
}

fn empty(c: &QueueCounts) -> bool {
    c.ready == 0 && c.scheduled == 0 && c.reserved == 0 && c.dead == 0
}

#[test]
fn spool_directory_drain_producer_and_worker() {
    let bin = program("spool_after");
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("jobs.db");
    let spool = tmp.path().join("spool");
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(spool.join(sub)).unwrap();
    }
    std::fs::write(spool.join("new/100.1.0"), "a1").unwrap();
    std::fs::write(spool.join("new/100.1.1"), "b2").unwrap();
    std::fs::write(spool.join("cur/99.7.0"), "stuck").unwrap(); // a worker died mid-job
    let (s, sp) = (store.to_str().unwrap(), spool.to_str().unwrap());
    run(&bin, &[s, "import", sp]);
    // A crash between a put and its unlink leaves the file: the next run
    // finds its job by the unique key and only unlinks it.
    std::fs::write(spool.join("new/100.1.1"), "b2").unwrap();
    run(&bin, &[s, "import", sp]);
    for sub in ["new", "cur"] {
        assert_eq!(std::fs::read_dir(spool.join(sub)).unwrap().count(), 0, "{sub}/ is empty after the drain");
    }
    run(&bin, &[s, "put", "hello"]);
    let out = run(&bin, &[s, "work", "300"]);
    let mut lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.last(), Some(&"processed hello"), "{out}");
    lines.sort_unstable();
    assert_eq!(lines, ["processed a1", "processed b2", "processed hello", "processed stuck"], "each job once");
    assert!(counts(&store).values().all(empty));
}

/// A C helper that fills (or unlinks) a POSIX message queue, as the old producers did.
const MQ_HELPER: &str = r#"
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* mq_helper NAME unlink | mq_helper NAME PRIO:TEXT... */
int main(int argc, char **argv) {
  struct mq_attr attr;
  mqd_t mq;
  int i;
  if (argc == 3 && strcmp(argv[2], "unlink") == 0) return mq_unlink(argv[1]) == 0 ? 0 : 1;
  memset(&attr, 0, sizeof attr);
  attr.mq_maxmsg = 10;
  attr.mq_msgsize = 1024;
  if ((mq = mq_open(argv[1], O_WRONLY | O_CREAT, 0600, &attr)) == (mqd_t)-1) {
    perror("mq_open");
    return 1;
  }
  for (i = 2; i < argc; i++) {
    char *text = strchr(argv[i], ':') + 1;
    if (mq_send(mq, text, strlen(text), (unsigned)atoi(argv[i])) != 0) {
      perror("mq_send");
      return 1;
    }
  }
  return 0;
}
"#;

#[test]
fn posix_message_queue_drain_keeps_the_priority_order() {
    let bin = program("mq_after");
    let libs = Libs::find();
    let tmp = tempfile::tempdir().unwrap();
    let helper_src = tmp.path().join("mq_helper.c");
    std::fs::write(&helper_src, MQ_HELPER).unwrap();
    let helper = tmp.path().join("mq_helper");
    libs.compile(Linkage::Shared, &[&helper_src], &helper).unwrap_or_else(|e| panic!("{e}"));
    let name = format!("/jobq-migrating-{}", std::process::id());
    let store = tmp.path().join("jobs.db");
    let s = store.to_str().unwrap();
    run(&helper, &[&name, "1:low-1", "9:high", "1:low-2", "5:mid"]);
    run(&bin, &[s, "put", "5", "mid-put-first"]); // a moved producer, before the drain
    let drained = std::panic::catch_unwind(|| run(&bin, &[s, "drain", &name]));
    run(&helper, &[&name, "unlink"]);
    drained.unwrap();
    let out = run(&bin, &[s, "work", "300"]);
    // mq order (highest priority first, FIFO within one) survives the
    // negation; the job put before the drain is older than the drained "mid".
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["order high", "order mid-put-first", "order mid", "order low-1", "order low-2"]
    );
    assert!(counts(&store).values().all(empty));
}

#[test]
fn berkeley_db_worker_pool_stops_on_sigterm_with_every_outcome_stored() {
    let bin = program("bdb_after");
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("jobs.db");
    let s = store.to_str().unwrap();
    let mut worker = Command::new(&bin)
        .args([s, "work", "2"])
        .env_remove("LD_LIBRARY_PATH")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = worker.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    run(&bin, &[s, "put", "o-1", "o-2", "o-3"]); // another process
    let mut seen = Vec::new();
    let until = Instant::now() + Duration::from_secs(20);
    while seen.len() < 3 {
        let left = until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = worker.kill();
                panic!("the pool handled only {seen:?}");
            }
        }
    }
    seen.sort();
    assert_eq!(seen, ["order o-1", "order o-2", "order o-3"]);
    let kill = Command::new("sh").arg("-c").arg(format!("kill -TERM {}", worker.id())).status().unwrap();
    assert!(kill.success());
    let out = worker.wait_with_output().unwrap();
    assert!(out.status.success(), "after SIGTERM: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(counts(&store).values().all(empty), "every job acked: {:?}", counts(&store));
}

#[test]
fn beanstalkd_producer_and_worker_map_priority_delay_and_ttr() {
    let bin = program("beanstalkd_after");
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("jobs.db");
    let s = store.to_str().unwrap();
    let mut put = String::new();
    put += &run(&bin, &[s, "put", "orders", "4294967295", "0", "60", "last"]);
    put += &run(&bin, &[s, "put", "orders", "0", "0", "0", "first", "bad-one"]);
    put += &run(&bin, &[s, "put", "orders", "1024", "1", "60", "delayed"]);
    assert_eq!(put, "INSERTED 1\nINSERTED 2\nINSERTED 3\nINSERTED 4\n");
    let q = Queue::open(&store, Config::default()).unwrap();
    let (last, first) = (q.job(1).unwrap(), q.job(2).unwrap());
    assert_eq!((last.priority, first.priority), (i32::MAX, i32::MIN), "p - 2^31");
    assert_eq!((last.lease_ms, first.lease_ms), (60_000, 1_000), "TTR is the lease; TTR 0 is 1 s");
    assert_eq!(first.max_attempts, u32::MAX);
    assert_eq!(q.job(4).unwrap().state, JobState::Scheduled, "delay 1 s");
    let out = run(&bin, &[s, "work", "orders", "2000"]);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["order first", "order bad-one", "order last", "order delayed"]);
    let c = &counts(&store)["orders"];
    assert_eq!((c.ready, c.scheduled, c.reserved, c.dead), (0, 0, 0, 1), "bad-one is buried");
    assert_eq!(q.job(3).unwrap().state, JobState::Dead);
}
