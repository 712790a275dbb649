//! The YAML bodies of `stats`, `stats-tube`, `stats-job`, `list-tubes` and
//! `list-tubes-watched`, byte for byte as beanstalkd 1.12 writes them:
//! "---\n", then "key: value\n" lines in its order (names unquoted, the
//! version quoted), or "- name\n" items.

use std::fmt::Write as _;
use std::time::Instant;

use jobq::{JobInfo, JobState};

use super::parse::{from_jobq_priority, Op};
use super::server::{JobNotes, Server, TubeView};

/// beanstalkd's binlog-max-size default, shown although there is no binlog.
const BINLOG_MAX_SIZE: u64 = 10_485_760;

/// Store-wide job counts for `stats`.
#[derive(Default)]
pub struct Totals {
    pub urgent: u64,
    pub ready: u64,
    pub reserved: u64,
    pub delayed: u64,
    pub buried: u64,
}

pub fn server_stats(srv: &Server, totals: &Totals, tubes: usize) -> String {
    let mut s = String::from("---\n");
    let mut kv = |k: &str, v: &dyn std::fmt::Display| {
        let _ = writeln!(s, "{k}: {v}");
    };
    kv("current-jobs-urgent", &totals.urgent);
    kv("current-jobs-ready", &totals.ready);
    kv("current-jobs-reserved", &totals.reserved);
    kv("current-jobs-delayed", &totals.delayed);
    kv("current-jobs-buried", &totals.buried);
    for (op, key) in Op::SHOWN {
        kv(key, &srv.op_count(op));
    }
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    kv("job-timeouts", &load(&srv.job_timeouts));
    kv("total-jobs", &load(&srv.total_jobs));
    kv("max-job-size", &srv.max_job_size);
    kv("current-tubes", &tubes);
    kv("current-connections", &load(&srv.current_connections));
    kv("current-producers", &load(&srv.producers));
    kv("current-workers", &load(&srv.workers));
    kv("current-waiting", &load(&srv.waiting));
    kv("total-connections", &load(&srv.total_connections));
    kv("pid", &std::process::id());
    kv("version", &format!("\"{}\"", version()));
    let (utime, stime) = cpu_times();
    kv("rusage-utime", &utime);
    kv("rusage-stime", &stime);
    kv("uptime", &srv.started.elapsed().as_secs());
    kv("binlog-oldest-index", &0);
    kv("binlog-current-index", &0);
    kv("binlog-records-migrated", &0);
    kv("binlog-records-written", &0);
    kv("binlog-max-size", &BINLOG_MAX_SIZE);
    kv("draining", &"false");
    kv("id", &srv.instance);
    kv("hostname", &proc_text("/proc/sys/kernel/hostname"));
    kv("os", &proc_text("/proc/sys/kernel/version"));
    kv("platform", &std::env::consts::ARCH);
    s
}

/// The version string: jobq's, marked as this server.
pub fn version() -> String {
    format!("jobq-beanstalkd {}", env!("CARGO_PKG_VERSION"))
}

pub fn tube_stats(t: &TubeView, urgent: u64, now: Instant) -> String {
    let mut s = String::from("---\n");
    let mut kv = |k: &str, v: &dyn std::fmt::Display| {
        let _ = writeln!(s, "{k}: {v}");
    };
    let (pause, left) = match t.state.pause {
        Some(p) => (p.seconds, p.until.saturating_duration_since(now).as_secs()),
        None => (0, 0),
    };
    kv("name", &t.name);
    kv("current-jobs-urgent", &urgent);
    kv("current-jobs-ready", &t.counts.ready);
    kv("current-jobs-reserved", &t.counts.reserved);
    kv("current-jobs-delayed", &t.counts.scheduled);
    kv("current-jobs-buried", &t.counts.dead);
    kv("total-jobs", &t.state.total_jobs);
    kv("current-using", &t.state.using);
    kv("current-watching", &t.state.watching);
    kv("current-waiting", &t.state.waiting);
    kv("cmd-delete", &t.state.cmd_delete);
    kv("cmd-pause-tube", &t.state.cmd_pause);
    kv("pause", &pause);
    kv("pause-time-left", &left);
    s
}

/// The beanstalkd name of a jobq state (`None`: done, which beanstalkd has not).
pub fn state_name(state: JobState) -> Option<&'static str> {
    match state {
        JobState::Ready => Some("ready"),
        JobState::Scheduled => Some("delayed"),
        JobState::Reserved => Some("reserved"),
        JobState::Dead => Some("buried"),
        JobState::Done => None,
    }
}

/// `now_ms`: Unix ms. The counts jobq does not keep come from `notes`
/// (what this server saw; 0 without); reserves are at least the job's
/// attempts; no binlog (file 0).
pub fn job_stats(job: &JobInfo, notes: Option<JobNotes>, now_ms: i64) -> String {
    let notes = notes.unwrap_or_default();
    let state = state_name(job.state).unwrap_or("invalid");
    let secs = |ms: i64| ms / 1000;
    // The delay of the last put or release: noted by this server, else
    // run_at - updated_at while the job waits for it (or waited, and was
    // not leased since).
    let delay = match job.state {
        _ if notes.delay > 0 => i64::from(notes.delay),
        JobState::Scheduled => secs(job.run_at - job.updated_at),
        JobState::Ready if job.lease_until.is_none() && job.run_at > job.updated_at => {
            secs(job.run_at - job.updated_at)
        }
        _ => 0,
    };
    let time_left = match job.state {
        JobState::Reserved => secs(job.lease_until.unwrap_or(job.run_at) - now_ms),
        JobState::Scheduled => secs(job.run_at - now_ms),
        _ => 0,
    };
    let mut s = String::from("---\n");
    let mut kv = |k: &str, v: &dyn std::fmt::Display| {
        let _ = writeln!(s, "{k}: {v}");
    };
    kv("id", &job.id);
    kv("tube", &job.queue);
    kv("state", &state);
    kv("pri", &from_jobq_priority(job.priority));
    kv("age", &secs(now_ms - job.created_at));
    kv("delay", &delay);
    kv("ttr", &(job.lease_ms / 1000));
    kv("time-left", &time_left);
    kv("file", &0);
    kv("reserves", &job.attempts.max(notes.reserves));
    kv("timeouts", &notes.timeouts);
    kv("releases", &notes.releases);
    kv("buries", &notes.buries);
    kv("kicks", &notes.kicks);
    s
}

/// A YAML list of names, as list-tubes and list-tubes-watched answer.
pub fn name_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut s = String::from("---\n");
    for name in names {
        s.push_str("- ");
        s.push_str(name);
        s.push('\n');
    }
    s
}

/// User and system CPU seconds of this process as "s.micros", read from
/// /proc/self/stat (clock ticks of 1/100 s, Linux's USER_HZ).
fn cpu_times() -> (String, String) {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after = text.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the name.
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    let fmt = |t: u64| format!("{}.{:06}", t / 100, (t % 100) * 10_000);
    (fmt(ticks(11)), fmt(ticks(12)))
}

fn proc_text(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_owned()).unwrap_or_default()
}
