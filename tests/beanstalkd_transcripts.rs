//! Byte-for-byte protocol transcripts: jobq-beanstalkd against what the real
//! beanstalkd 1.12 answered to the same client bytes.
//!
//! Each tests/beanstalkd/transcripts/NAME.txt is a sequence of client steps
//! (commands, malformed lines, oversize lines, bad numbers, unknown commands,
//! bodies without CRLF, several connections...); NAME.expected holds what
//! beanstalkd answered, recorded with `JOBQ_BS_RECORD=1 cargo test --test
//! beanstalkd_transcripts` (a fresh `beanstalkd -l 127.0.0.1 -p PORT`, no
//! binlog, per transcript). The formats and the normalization (job ids, the
//! stats values of the process, host and clock) are in
//! tests/beanstalkd/transcripts/README.md.
//!
//! * `ours_match_the_recordings`: each transcript against a fresh
//!   jobq-beanstalkd on a fresh SQLite file; every difference is listed.
//!   `ours_match_the_recordings_on_postgres`: the same on PostgreSQL, a
//!   schema per transcript (dropped after it). A transcript about a
//!   difference docs/beanstalkd.md documents has, next to NAME.expected
//!   (beanstalkd's answers), NAME.jobq-expected (ours).
//! * `live_beanstalkd_matches_the_recordings`: each transcript against a
//!   fresh real beanstalkd, so the recordings stay true (and with
//!   JOBQ_BS_RECORD=1 rewrites them). Needs beanstalkd: it runs
//!   scripts/install-deps.sh when it is missing, and fails if still missing.

use std::path::PathBuf;
use std::time::Duration;

#[path = "support/pg.rs"]
mod pg;
#[path = "beanstalkd/support.rs"]
mod support;
#[path = "beanstalkd/transcript.rs"]
mod transcript;

use transcript::{Step, StepOut, Until};

fn dir() -> PathBuf {
    support::root().join("tests/beanstalkd/transcripts")
}

/// (name, steps, recorded outputs) of every transcript.
fn load(need_expected: bool) -> Vec<(String, Vec<Step>, Option<Vec<StepOut>>)> {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .expect("tests/beanstalkd/transcripts")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".txt").map(str::to_string))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "too few transcripts in {}: {names:?}", dir().display());
    let mut all = Vec::new();
    for name in names {
        let text = std::fs::read_to_string(dir().join(format!("{name}.txt"))).unwrap();
        let steps = transcript::parse(&text).unwrap_or_else(|e| panic!("{name}.txt: {e}"));
        let exp_path = dir().join(format!("{name}.expected"));
        let expected = match std::fs::read_to_string(&exp_path) {
            Ok(t) => {
                let (srcs, outs) = transcript::parse_expected(&t).unwrap_or_else(|e| panic!("{name}.expected: {e}"));
                let now: Vec<&str> = steps.iter().map(|s| s.src.as_str()).collect();
                if need_expected {
                    assert_eq!(
                        srcs, now,
                        "{name}.expected was recorded from other steps than {name}.txt has now: record again \
                         (JOBQ_BS_RECORD=1 cargo test --test beanstalkd_transcripts)"
                    );
                }
                Some(outs)
            }
            Err(_) if need_expected => panic!(
                "{} is missing: record it (JOBQ_BS_RECORD=1 cargo test --test beanstalkd_transcripts)",
                exp_path.display()
            ),
            Err(_) => None,
        };
        all.push((name, steps, expected));
    }
    all
}

fn recording() -> bool {
    std::env::var("JOBQ_BS_RECORD").is_ok_and(|v| v == "1")
}

/// Runs `f` on every item, on a few threads (transcripts mostly wait: sleeps,
/// TTRs, timeouts); results in the items' order.
fn parallel<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let n = items.len();
    let work = std::sync::Mutex::new(items.into_iter().enumerate());
    let results = std::sync::Mutex::new(Vec::with_capacity(n));
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| loop {
                let Some((i, item)) = work.lock().unwrap().next() else { break };
                let r = f(item);
                results.lock().unwrap().push((i, r));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

const HEADER: &str =
    "# Recorded from beanstalkd 1.12 (-l 127.0.0.1 -p PORT, no binlog) by tests/beanstalkd_transcripts.rs\n\
# (JOBQ_BS_RECORD=1); normalized as tests/beanstalkd/transcripts/README.md says. Do not edit by hand.\n";

#[test]
fn live_beanstalkd_matches_the_recordings() {
    let record = recording();
    let failures: Vec<String> = parallel(load(!record), |(name, steps, expected)| {
        let mut server = support::start_beanstalkd(&[]);
        let until = match (&expected, record) {
            (Some(exp), false) => Until::Expected(exp),
            _ => Until::Idle(Duration::from_millis(150)),
        };
        let outs = transcript::run(server.addr, &steps, until).unwrap_or_else(|e| panic!("{name} on beanstalkd: {e}"));
        server.kill();
        let got = transcript::render(&steps, &outs);
        if record {
            std::fs::write(dir().join(format!("{name}.expected")), format!("{HEADER}{got}")).unwrap();
            println!("recorded {name}");
            return None;
        }
        let want = transcript::render(&steps, expected.as_ref().unwrap());
        (got != want).then(|| {
            format!(
                "{name}: live beanstalkd differs from {name}.expected\n{}",
                transcript::step_diff(&steps, expected.as_ref().unwrap(), &outs, "recorded", "live beanstalkd")
            )
        })
    })
    .into_iter()
    .flatten()
    .collect();
    assert!(failures.is_empty(), "{} transcript(s) differ:\n\n{}", failures.len(), failures.join("\n"));
}

/// A transcript whose first line says "documented difference" may have a
/// NAME.jobq-expected: what jobq-beanstalkd answers where it differs on purpose
/// (docs/beanstalkd.md), written with JOBQ_BS_RECORD_OURS=1.
fn documented_difference(name: &str) -> bool {
    std::fs::read_to_string(dir().join(format!("{name}.txt")))
        .is_ok_and(|t| t.lines().next().is_some_and(|l| l.starts_with('#') && l.contains("documented difference")))
}

#[test]
fn ours_match_the_recordings() {
    ours_match(false);
}

/// The same on PostgreSQL: a schema per transcript, dropped after it.
#[test]
fn ours_match_the_recordings_on_postgres() {
    ours_match(true);
}

fn ours_match(postgres: bool) {
    let scratch = support::scratch(if postgres { "transcripts-pg" } else { "transcripts" });
    let _cleanup = support::RemoveOnDrop(scratch.clone());
    // (Written from the file store's run only.)
    let record_ours = !postgres && std::env::var("JOBQ_BS_RECORD_OURS").is_ok_and(|v| v == "1");
    let all = load(true);
    let count = all.len();
    let documented = all.iter().filter(|(name, _, _)| dir().join(format!("{name}.jobq-expected")).exists()).count();
    let failures: Vec<String> = parallel(all, |(name, steps, expected)| {
        let beanstalkd = expected.unwrap();
        let ours_path = dir().join(format!("{name}.jobq-expected"));
        let ours_expected = match std::fs::read_to_string(&ours_path) {
            Ok(t) => {
                assert!(
                    documented_difference(&name),
                    "{name}.jobq-expected exists but {name}.txt names no documented difference"
                );
                let (srcs, outs) =
                    transcript::parse_expected(&t).unwrap_or_else(|e| panic!("{name}.jobq-expected: {e}"));
                let now: Vec<&str> = steps.iter().map(|s| s.src.as_str()).collect();
                assert_eq!(srcs, now, "{name}.jobq-expected is stale: write it again (JOBQ_BS_RECORD_OURS=1)");
                Some(outs)
            }
            Err(_) => None,
        };
        let expected = ours_expected.as_ref().unwrap_or(&beanstalkd);
        let (store, _schema) = pg::store(&scratch, &format!("{name}.db"), postgres);
        let mut server = support::start_ours(&support::path_str(&store), &[]);
        let until = if record_ours && documented_difference(&name) {
            Until::Idle(Duration::from_millis(150))
        } else {
            Until::Expected(expected)
        };
        let outs = transcript::run(server.addr, &steps, until);
        let stderr = server.kill();
        let outs = outs.unwrap_or_else(|e| panic!("{name} on jobq-beanstalkd: {e}\nserver stderr:\n{stderr}"));
        let got = transcript::render(&steps, &outs);
        if record_ours && documented_difference(&name) {
            let header = "# What jobq-beanstalkd answers to NAME.txt where it differs from beanstalkd on purpose\n\
                          # (docs/beanstalkd.md; the first line of NAME.txt names the section). Written with\n\
                          # JOBQ_BS_RECORD_OURS=1 cargo test --test beanstalkd_transcripts ours; check it by eye.\n";
            std::fs::write(&ours_path, format!("{}{got}", header.replace("NAME", &name))).unwrap();
            println!(
                "wrote {}; against beanstalkd:\n{}",
                ours_path.display(),
                transcript::step_diff(&steps, &beanstalkd, &outs, "beanstalkd", "jobq-beanstalkd")
            );
            return None;
        }
        if got != transcript::render(&steps, expected) {
            // The whole of ours, to compare with NAME.expected by eye.
            let pg = if postgres { "-pg" } else { "" };
            let out = scratch.with_file_name(format!("transcript-{name}{pg}.jobq"));
            let _ = std::fs::write(&out, &got);
            let against =
                if ours_expected.is_some() { "its documented difference (NAME.jobq-expected)" } else { "beanstalkd" };
            return Some(format!(
                "{name}: jobq-beanstalkd differs from {} ({} has all of ours)\n{}",
                against.replace("NAME", &name),
                out.display(),
                transcript::step_diff(&steps, expected, &outs, "expected", "jobq-beanstalkd")
            ));
        }
        None
    })
    .into_iter()
    .flatten()
    .collect();
    let on = if postgres { "PostgreSQL" } else { "a SQLite file" };
    println!("{count} transcripts run on {on} ({documented} with a documented difference), {} differ", failures.len());
    assert!(failures.is_empty(), "{} of {count} transcript(s) differ:\n\n{}", failures.len(), failures.join("\n"));
}
