//! The `jobq` operator command, run as a program on temporary queue files:
//! its output, its errors and its exit codes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn jobq_with_stdin(args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jobq"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the jobq binary runs");
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    let Output { status, stdout, stderr } = child.wait_with_output().unwrap();
    Run {
        code: status.code().expect("exited, not killed"),
        stdout: String::from_utf8(stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(stderr).expect("stderr is UTF-8"),
    }
}

fn jobq(args: &[&str]) -> Run {
    jobq_with_stdin(args, None)
}

/// Runs and expects success; returns stdout.
fn ok(args: &[&str]) -> String {
    let run = jobq(args);
    assert_eq!(run.code, 0, "jobq {args:?}: stderr: {}", run.stderr);
    run.stdout
}

fn put(file: &str, args: &[&str]) -> u64 {
    let mut all = vec!["put", file];
    all.extend_from_slice(args);
    ok(&all).trim().parse().expect("put prints the id")
}

fn temp_file() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("q.db").to_str().unwrap().to_owned();
    (dir, file)
}

/// The rows of a table (header skipped), split on whitespace.
fn rows(table: &str) -> Vec<Vec<String>> {
    table.lines().skip(1).map(|l| l.split_whitespace().map(str::to_owned).collect()).collect()
}

#[test]
fn put_from_argument_and_stdin_then_show() {
    let (_dir, file) = temp_file();
    let a = put(&file, &["mail", "hello world", "--priority", "-5", "--max-attempts", "3"]);
    let b = jobq_with_stdin(&["put", &file, "mail"], Some(b"\x00\x01binary\xff"));
    assert_eq!(b.code, 0, "{}", b.stderr);
    let b: u64 = b.stdout.trim().parse().unwrap();
    let c = jobq_with_stdin(&["put", &file, "mail", "-"], Some(b"from stdin"));
    let c: u64 = c.stdout.trim().parse().unwrap();
    assert!(a < b && b < c);

    let shown = ok(&["show", &file, &a.to_string()]);
    for line in ["queue:        mail", "state:        ready", "priority:     -5", "attempts:     0 of 3", "hello world"]
    {
        assert!(shown.contains(line), "{line:?} in\n{shown}");
    }
    assert!(shown.contains("payload:      11 bytes, UTF-8 text:"), "{shown}");
    let shown = ok(&["show", &file, &b.to_string()]);
    assert!(shown.contains("not UTF-8; hex:"), "{shown}");
    assert!(shown.contains("00 01 62 69 6e 61 72 79 ff"), "{shown}");
    assert!(ok(&["show", &file, &c.to_string()]).contains("\nfrom stdin\n"));

    let json: serde_json::Value = serde_json::from_str(&ok(&["show", &file, &a.to_string(), "--json"])).unwrap();
    assert_eq!(json["state"], "ready");
    assert_eq!(json["priority"], -5);
    assert_eq!(json["payload_len"], 11);
}

#[test]
fn put_with_unique_key_reports_the_duplicate() {
    let (_dir, file) = temp_file();
    let first = put(&file, &["mail", "one", "--unique-key", "k"]);
    let again = jobq(&["put", &file, "mail", "two", "--unique-key", "k"]);
    assert_eq!(again.code, 0);
    assert_eq!(again.stdout.trim(), first.to_string());
    assert!(again.stderr.contains(&format!("duplicate: job {first}")), "{}", again.stderr);
}

#[test]
fn list_filters_by_queue_and_state_and_escapes_payloads() {
    let (_dir, file) = temp_file();
    let ready = put(&file, &["mail", "line1\nline2\x1b[31m"]);
    let later = put(&file, &["mail", "later", "--delay-ms", "600000"]);
    let other = put(&file, &["sms", &"x".repeat(200)]);

    let all = ok(&["list", &file]);
    assert!(all.starts_with("ID"), "{all}");
    let header: Vec<&str> = all.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["ID", "QUEUE", "STATE", "PRIORITY", "ATTEMPTS", "RUN_AT", "LAST_ERROR", "PAYLOAD"]);
    let ids: Vec<String> = rows(&all).into_iter().map(|r| r[0].clone()).collect();
    assert_eq!(ids, [ready, later, other].map(|i| i.to_string()));
    // Control characters are escaped, long payloads cut.
    assert!(all.contains(r"line1\nline2\u{1b}[31m"), "{all}");
    assert!(!all.contains('\x1b'));
    assert!(all.contains(&format!("{}…", "x".repeat(40))), "{all}");
    assert!(all.contains("in 9m59s") || all.contains("in 10m0s"), "{all}");

    let scheduled = ok(&["list", &file, "--state", "scheduled"]);
    assert_eq!(rows(&scheduled).len(), 1);
    assert_eq!(rows(&scheduled)[0][..3], [later.to_string(), "mail".into(), "scheduled".into()]);
    let sms = ok(&["list", &file, "--queue", "sms"]);
    assert_eq!(rows(&sms).len(), 1);
    assert_eq!(rows(&sms)[0][0], other.to_string());
    assert_eq!(rows(&ok(&["list", &file, "--limit", "1"])).len(), 1);
    assert_eq!(ok(&["list", &file, "--state", "dead"]), "(no jobs)\n");
    assert!(ok(&["list", &file, "--utc", "--state", "ready", "--queue", "mail"]).contains('Z'));
}

#[test]
fn done_jobs_show_their_result_and_filter_by_state() {
    let (_dir, file) = temp_file();
    let q = jobq::Queue::open(&file, jobq::Config { keep_done_ms: 600_000, ..jobq::Config::default() }).unwrap();
    let id = q.put("mail", b"send it", &jobq::PutOptions::default()).unwrap().id();
    let other = q.put("mail", b"still ready", &jobq::PutOptions::default()).unwrap().id();
    let job = q.reserve("mail", Some(std::time::Duration::ZERO)).unwrap().unwrap();
    job.ack_result(b"sent: 250 OK").unwrap();
    q.close().unwrap();
    let shown = ok(&["show", &file, &id.to_string()]);
    for line in [
        "state:        done",
        "[record expires]",
        "finished_at:  ",
        "result:       12 bytes, UTF-8 text:\nsent: 250 OK\n",
    ] {
        assert!(shown.contains(line), "{line:?} in\n{shown}");
    }
    let listed = ok(&["list", &file, "--state", "done"]);
    assert_eq!(rows(&listed).iter().map(|r| r[0].clone()).collect::<Vec<_>>(), [id.to_string()], "{listed}");
    assert!(rows(&ok(&["list", &file, "--state", "ready"])).iter().all(|r| r[0] == other.to_string()));
    assert_eq!(rows(&ok(&["stats", &file]))[0], ["mail", "1", "0", "0", "0", "1", "no"]);
    assert!(ok(&["stats", &file, "--prometheus"]).contains("jobq_jobs{queue=\"mail\",state=\"done\"} 1\n"));
}

#[test]
fn stats_as_table_json_and_prometheus() {
    let (_dir, file) = temp_file();
    for _ in 0..3 {
        put(&file, &["mail", "m"]);
    }
    put(&file, &["mail", "m", "--delay-ms", "600000"]);
    put(&file, &["sms", "s"]);

    let table = ok(&["stats", &file]);
    assert_eq!(
        table.lines().next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["QUEUE", "READY", "SCHEDULED", "RESERVED", "DEAD", "DONE", "PAUSED"]
    );
    assert_eq!(rows(&table), [["mail", "3", "1", "0", "0", "0", "no"], ["sms", "1", "0", "0", "0", "0", "no"]]);

    let json: serde_json::Value = serde_json::from_str(&ok(&["stats", &file, "--json"])).unwrap();
    assert_eq!(json["queues"]["mail"]["ready"], 3);
    assert_eq!(json["queues"]["mail"]["scheduled"], 1);
    assert_eq!(json["queues"]["sms"]["dead"], 0);
    assert_eq!(json["queues"]["sms"]["paused"], false);

    let prom = ok(&["stats", &file, "--prometheus"]);
    let lines: Vec<&str> = prom.lines().collect();
    assert!(lines.contains(&"# TYPE jobq_jobs gauge"), "{prom}");
    assert!(lines.iter().any(|l| l.starts_with("# HELP jobq_jobs ")), "{prom}");
    assert!(lines.contains(&r#"jobq_jobs{queue="mail",state="ready"} 3"#), "{prom}");
    assert!(lines.contains(&r#"jobq_jobs{queue="mail",state="scheduled"} 1"#), "{prom}");
    assert!(lines.contains(&r#"jobq_jobs{queue="sms",state="dead"} 0"#), "{prom}");
    assert!(lines.contains(&"jobq_jobs_created_total 5"), "{prom}");
    assert!(lines.contains(&"# TYPE jobq_queue_paused gauge"), "{prom}");
    assert!(lines.contains(&r#"jobq_queue_paused{queue="mail"} 0"#), "{prom}");
    // Every sample line is `name{labels} value` or `name value`.
    for line in lines.iter().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
    assert_eq!(jobq(&["stats", &file, "--json", "--prometheus"]).code, 2);
}

#[test]
fn kick_cancel_and_purge() {
    let (dir, file) = temp_file();
    // Make dead jobs through the library: a bury is not a CLI operation.
    let q = jobq::Queue::open(&file, jobq::Config::default()).unwrap();
    let mut dead = Vec::new();
    for i in 0..3 {
        let id = q.put("mail", format!("job {i}").as_bytes(), &jobq::PutOptions::default()).unwrap().id();
        let job = q.reserve("mail", Some(std::time::Duration::ZERO)).unwrap().unwrap();
        job.bury(Some("smtp said no")).unwrap();
        dead.push(id);
    }
    let held = q.put("mail", b"held", &jobq::PutOptions::default()).unwrap().id();
    let _job = q.reserve("mail", Some(std::time::Duration::ZERO)).unwrap().unwrap();
    let dead_rows = rows(&ok(&["list", &file, "--state", "dead"]));
    assert_eq!(dead_rows.len(), 3);
    assert!(ok(&["list", &file, "--state", "dead"]).contains("smtp said no"));

    assert_eq!(ok(&["kick", &file, "mail", "--max", "1"]), "kicked 1 dead job of queue mail\n");
    assert_eq!(rows(&ok(&["stats", &file]))[0], ["mail", "1", "0", "1", "2", "0", "no"]);

    // A reserved job with a live lease cannot be cancelled: a runtime error.
    let busy = jobq(&["cancel", &file, &held.to_string()]);
    assert_eq!(busy.code, 1);
    assert!(busy.stderr.starts_with(&format!("jobq: {file}: wrong state: job {held}")), "{}", busy.stderr);
    assert_eq!(ok(&["cancel", &file, &dead[0].to_string()]), format!("cancelled job {}\n", dead[0]));
    let gone = jobq(&["cancel", &file, &dead[0].to_string()]);
    assert_eq!(gone.code, 3);

    let refused = jobq(&["purge", &file, "mail"]);
    assert_eq!(refused.code, 2);
    assert!(refused.stderr.contains("--dead"), "{}", refused.stderr);
    assert_eq!(ok(&["purge", &file, "mail", "--dead"]), "purged 2 dead jobs of queue mail\n");
    assert_eq!(rows(&ok(&["stats", &file]))[0], ["mail", "0", "0", "1", "0", "0", "no"]);
    assert_eq!(ok(&["kick", &file, "mail"]), "kicked 0 dead jobs of queue mail\n");
    q.close().unwrap();
    drop(dir);
}

#[test]
fn pause_and_resume_hold_deliveries_of_one_queue() {
    let (_dir, file) = temp_file();
    let id = put(&file, &["mail", "m"]);
    put(&file, &["sms", "s"]);
    assert_eq!(ok(&["pause", &file, "mail"]), "paused queue mail\n");
    // A queue never used is recorded, paused.
    assert_eq!(ok(&["pause", &file, "later"]), "paused queue later\n");
    assert_eq!(
        rows(&ok(&["stats", &file])),
        [
            ["later", "0", "0", "0", "0", "0", "yes"],
            ["mail", "1", "0", "0", "0", "0", "yes"],
            ["sms", "1", "0", "0", "0", "0", "no"]
        ]
    );
    let json: serde_json::Value = serde_json::from_str(&ok(&["stats", &file, "--json"])).unwrap();
    assert_eq!(json["queues"]["mail"]["paused"], true);
    assert_eq!(json["queues"]["sms"]["paused"], false);
    assert!(ok(&["stats", &file, "--prometheus"]).contains("jobq_queue_paused{queue=\"mail\"} 1\n"));

    // Another process (this test) sees the pause stored in the file; puts still work.
    let q = jobq::Queue::open(&file, jobq::Config::default()).unwrap();
    let zero = Some(std::time::Duration::ZERO);
    assert!(q.reserve("mail", zero).unwrap().is_none());
    assert!(q.reserve("sms", zero).unwrap().is_some());
    q.put("mail", b"while paused", &jobq::PutOptions::default()).unwrap();
    assert_eq!(ok(&["resume", &file, "mail"]), "resumed queue mail\n");
    assert_eq!(q.reserve("mail", zero).unwrap().map(|j| j.id()), Some(id));
    assert_eq!(rows(&ok(&["stats", &file]))[1], ["mail", "1", "0", "1", "0", "0", "no"]);
    // Resuming what is not paused (or never used) is a no-op and records nothing.
    assert_eq!(ok(&["resume", &file, "mail"]), "resumed queue mail\n");
    assert_eq!(ok(&["resume", &file, "nobody"]), "resumed queue nobody\n");
    assert!(!ok(&["stats", &file]).contains("nobody"));
    q.close().unwrap();
}

#[test]
fn schedule_list_and_unschedule() {
    let (_dir, file) = temp_file();
    put(&file, &["q", "x"]);
    let said = ok(&["schedule", &file, "nightly", "q", "30 2 * * MON-FRI", "hello"]);
    assert!(said.starts_with("scheduled nightly into queue q (30 2 * * MON-FRI), next at "), "{said}");
    assert!(said.trim_end().ends_with(" 02:30:00.000"), "{said}");
    ok(&["schedule", &file, "tick", "q", "@every 1h30m", "--priority", "-3"]);
    let listed = rows(&ok(&["schedules", &file]));
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0][..2], ["nightly", "q"]);
    assert_eq!(listed[1][..4], ["tick", "q", "@every", "1h30m"]);
    let json: serde_json::Value = serde_json::from_str(&ok(&["schedules", &file, "--json"])).unwrap();
    assert_eq!(json[1]["priority"], -3);
    assert_eq!(json[0]["payload_len"], 5);
    let stats: serde_json::Value = serde_json::from_str(&ok(&["stats", &file, "--json"])).unwrap();
    assert_eq!(stats["schedules"][0]["name"], "nightly");
    // A bad spec names its field and stores nothing.
    let bad = jobq(&["schedule", &file, "bad", "q", "61 * * * *"]);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("minute field"), "{}", bad.stderr);
    assert_eq!(ok(&["unschedule", &file, "tick"]), "unscheduled tick\n");
    let again = jobq(&["unschedule", &file, "tick"]);
    assert_ne!(again.code, 0);
    assert!(again.stderr.contains("no schedule named tick"), "{}", again.stderr);
    assert_eq!(rows(&ok(&["schedules", &file])).len(), 1);
}

#[test]
fn config_sets_limits_that_stats_show() {
    let (_dir, file) = temp_file();
    put(&file, &["mail", "m1"]);
    put(&file, &["mail", "m2"]);
    put(&file, &["sms", "s"]);
    // Without limits, the table has no LIMITS column.
    assert!(!ok(&["stats", &file]).contains("LIMITS"));
    assert_eq!(ok(&["config", &file, "mail", r#"{"max_reserved": 1}"#]), "queue mail: max=1\n");
    assert_eq!(
        ok(&["config", &file, "mail", r#"{"rate": {"jobs": 5, "per_ms": 60000}}"#]),
        "queue mail: max=1,rate=5/60000ms,used=0\n"
    );
    // Another process (this test) is held to the cap stored in the file.
    let q = jobq::Queue::open(&file, jobq::Config::default()).unwrap();
    let zero = Some(std::time::Duration::ZERO);
    let held = q.reserve("mail", zero).unwrap().expect("one job under the cap");
    assert!(q.reserve("mail", zero).unwrap().is_none(), "the cap holds");
    let text = ok(&["stats", &file]);
    assert!(text.starts_with("QUEUE") && text.lines().next().unwrap().ends_with("LIMITS"), "{text}");
    let table = rows(&text);
    assert_eq!(table[0], ["mail", "1", "0", "1", "0", "0", "no", "max=1,rate=5/60000ms,used=1"]);
    assert_eq!(table[1], ["sms", "1", "0", "0", "0", "0", "no", "-"]);
    let json: serde_json::Value = serde_json::from_str(&ok(&["stats", &file, "--json"])).unwrap();
    assert_eq!(json["queues"]["mail"]["limits"]["max_reserved"], 1);
    assert_eq!(json["queues"]["mail"]["limits"]["rate"]["per_ms"], 60000);
    assert_eq!(json["queues"]["mail"]["rate_used"], 1);
    assert!(json["queues"]["sms"].get("limits").is_none());
    let prom = ok(&["stats", &file, "--prometheus"]);
    assert!(prom.contains("jobq_queue_max_reserved{queue=\"mail\"} 1\n"), "{prom}");
    assert!(prom.contains("jobq_queue_rate_used{queue=\"mail\"} 1\n"), "{prom}");
    // Bad input: a message, exit code 1 (the library's invalid argument), nothing changed.
    let bad = jobq(&["config", &file, "mail", r#"{"max_reserved": 0}"#]);
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    assert!(bad.stderr.contains("max_reserved"), "{}", bad.stderr);
    assert_eq!(ok(&["config", &file, "mail", "{}"]), "queue mail: max=1,rate=5/60000ms,used=1\n");
    assert_eq!(ok(&["config", &file, "mail", r#"{"max_reserved": null, "rate": null}"#]), "queue mail: no limits\n");
    assert_eq!(q.reserve("mail", zero).unwrap().map(|j| j.payload().to_vec()), Some(b"m2".to_vec()));
    held.ack().unwrap();
    assert!(!ok(&["stats", &file]).contains("LIMITS"));
    q.close().unwrap();
}

#[test]
fn watch_prints_one_block_per_tick() {
    let (_dir, file) = temp_file();
    put(&file, &["mail", "m"]);
    let out = ok(&["watch", &file, "--interval-ms", "50", "--count", "2"]);
    // Not a terminal: no screen clearing, one block per tick.
    assert!(!out.contains('\x1b'));
    assert_eq!(out.matches("jobq watch ").count(), 2, "{out}");
    assert_eq!(out.matches("\nQUEUE").count(), 2, "{out}");
    assert!(out.contains("rates from the next refresh on"), "{out}");
    assert!(out.contains("0.0 puts/s"), "{out}");
    let second = out.split("jobq watch ").nth(2).unwrap();
    let mail: Vec<&str> = second.lines().find(|l| l.starts_with("mail")).unwrap().split_whitespace().collect();
    assert_eq!(mail, ["mail", "1", "0", "0", "0", "0", "no", "+0.0", "+0.0"]);
}

#[test]
fn compact_reports_sizes_and_keeps_jobs() {
    let (_dir, file) = temp_file();
    let big = "y".repeat(100_000);
    let keep = put(&file, &["mail", "keep"]);
    for _ in 0..5 {
        let id = put(&file, &["mail", &big]);
        ok(&["cancel", &file, &id.to_string()]);
    }
    let out = ok(&["compact", &file]);
    let size = |prefix: &str| -> u64 {
        let line = out.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("{out}"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    assert!(size("after:") < size("before:") / 4, "{out}");
    assert!(out.contains("WAL 0 B"), "{out}");
    assert!(ok(&["show", &file, &keep.to_string()]).contains("\nkeep\n"));
}

#[test]
fn errors_have_messages_and_exit_codes() {
    let (dir, file) = temp_file();
    // A missing file is an error for every command but put, and is not created.
    for args in [
        vec!["stats", &file],
        vec!["list", &file],
        vec!["show", &file, "1"],
        vec!["kick", &file, "q"],
        vec!["pause", &file, "q"],
        vec!["resume", &file, "q"],
        vec!["cancel", &file, "1"],
        vec!["purge", &file, "q", "--dead"],
        vec!["watch", &file, "--count", "1"],
        vec!["compact", &file],
    ] {
        let run = jobq(&args);
        assert_eq!(run.code, 1, "{args:?}");
        assert_eq!(run.stderr, format!("jobq: {file}: no such queue file (only `jobq put` creates one)\n"), "{args:?}");
        assert!(!Path::new(&file).exists(), "{args:?} created the file");
    }
    put(&file, &["mail", "m"]);

    let unknown = jobq(&["show", &file, "999"]);
    assert_eq!(unknown.code, 3);
    assert_eq!(unknown.stderr, format!("jobq: {file}: no job with id 999\n"));

    for bad in [
        vec!["list", &file, "--state", "sleeping"],
        vec!["list", &file, "--limit", "lots"],
        vec!["show", &file],
        vec!["put", &file, ""],
        vec!["pause", &file, ""],
        vec!["resume", &file],
        vec!["frobnicate", &file],
        vec!["watch", &file, "--count", "0"],
    ] {
        let run = jobq(&bad);
        assert_eq!(run.code, 2, "{bad:?}: {}", run.stderr);
        assert!(run.stderr.contains("error:"), "{bad:?}: {}", run.stderr);
    }

    // A file that is not a queue file.
    let foreign: PathBuf = dir.path().join("notes.txt");
    std::fs::write(&foreign, "not a database, just some text that is long enough ".repeat(100)).unwrap();
    let run = jobq(&["stats", foreign.to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.starts_with(&format!("jobq: {}: corrupt or foreign file", foreign.display())), "{}", run.stderr);
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, "").unwrap();
    let run = jobq(&["list", empty.to_str().unwrap()]);
    assert_eq!((run.code, run.stderr.contains("empty file")), (1, true), "{}", run.stderr);
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
}

#[test]
fn every_subcommand_has_help() {
    let top = ok(&["--help"]);
    for sub in ["stats", "list", "show", "put", "kick", "pause", "resume", "cancel", "purge", "watch", "compact"] {
        assert!(top.lines().any(|l| l.trim_start().starts_with(sub)), "{sub} in\n{top}");
        let help = ok(&[sub, "--help"]);
        assert!(help.lines().next().is_some_and(|l| !l.is_empty()), "{sub}: {help}");
        assert!(help.contains("Usage: jobq"), "{sub}: {help}");
    }
}
