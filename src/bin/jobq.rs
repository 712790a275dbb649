//! `jobq`: the operator command. Shows and repairs a queue file while other
//! processes use it, through the Rust API only (never SQL).
//!
//! Exit codes: 0 ok, 1 runtime error, 2 usage error, 3 no such job.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use jobq::{Config, Error, JobFilter, JobInfo, JobState, Put, PutOptions, Queue, QueueCounts, Stats};

/// See and repair a jobq queue file, also while other processes use it.
#[derive(Parser)]
#[command(name = "jobq", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the number of ready, scheduled, reserved, dead and done jobs per queue, and which are paused.
    Stats {
        #[command(flatten)]
        file: FileArg,
        /// Print the counts as JSON (as the library's stats JSON).
        #[arg(long, conflicts_with = "prometheus")]
        json: bool,
        /// Print the counts in the Prometheus text exposition format.
        #[arg(long)]
        prometheus: bool,
    },
    /// List jobs, oldest first, with their state and a payload preview.
    List {
        #[command(flatten)]
        file: FileArg,
        /// Only jobs of this queue.
        #[arg(long, short, value_parser = NonEmptyStringValueParser::new())]
        queue: Option<String>,
        /// Only jobs in this state.
        #[arg(long, short)]
        state: Option<StateArg>,
        /// At most this many jobs.
        #[arg(long, short = 'n', default_value_t = 50)]
        limit: u64,
        /// Only jobs with an id above this one (to page on).
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Print times as ISO-8601 UTC instead of relative to now.
        #[arg(long)]
        utc: bool,
    },
    /// Show every field of one job, its payload as text if UTF-8, else as hex.
    Show {
        #[command(flatten)]
        file: FileArg,
        /// The job's id.
        id: u64,
        /// Print the job as JSON (the payload as an array of bytes).
        #[arg(long)]
        json: bool,
    },
    /// Store a job; prints its id. Creates the file if missing.
    Put {
        #[command(flatten)]
        file: FileArg,
        /// The queue to put the job in.
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        queue: String,
        /// The payload; `-` or absent: read it from standard input.
        payload: Option<String>,
        /// Smaller runs first.
        #[arg(long, short, default_value_t = 0, allow_negative_numbers = true)]
        priority: i32,
        /// Not delivered before this many milliseconds from now.
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
        /// At most one live job per queue and key: a second put gives the first job's id.
        #[arg(long)]
        unique_key: Option<String>,
        /// Deliveries before the job goes dead (default: 25).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        max_attempts: Option<u32>,
    },
    /// Make dead jobs of a queue ready again (oldest first, attempts reset).
    Kick {
        #[command(flatten)]
        file: FileArg,
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        queue: String,
        /// At most this many jobs (default: all).
        #[arg(long)]
        max: Option<u64>,
    },
    /// Pause a queue: it takes puts but delivers nothing, to any process, until resumed.
    Pause {
        #[command(flatten)]
        file: FileArg,
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        queue: String,
    },
    /// Make (or replace) a named schedule: a job with PAYLOAD is put into QUEUE at every slot
    /// of SPEC (5-field cron in UTC, e.g. "*/5 * * * *", "@daily", or "@every 30s").
    Schedule {
        #[command(flatten)]
        file: FileArg,
        /// Schedule names are global to the store; an existing one is replaced.
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        name: String,
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        queue: String,
        spec: String,
        /// The payload of each job (default: empty).
        #[arg(default_value = "")]
        payload: String,
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        priority: i32,
    },
    /// Delete a schedule (the jobs it put stay).
    Unschedule {
        #[command(flatten)]
        file: FileArg,
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        name: String,
    },
    /// List the schedules: name, queue, spec, next slot (UTC).
    Schedules {
        #[command(flatten)]
        file: FileArg,
        /// As JSON (one array).
        #[arg(long)]
        json: bool,
    },
    /// Resume a paused queue: its jobs are delivered again.
    Resume {
        #[command(flatten)]
        file: FileArg,
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        queue: String,
    },
    /// Set or remove a queue's limits, for every process: a JSON object with
    /// "max_reserved": N (at most N jobs reserved at once) and/or "rate":
    /// {"jobs": N, "per_ms": M} (at most N deliveries per M ms); null removes
    /// a limit, keys not given keep their value. Prints the queue's limits.
    Config {
        #[command(flatten)]
        file: FileArg,
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        queue: String,
        /// The change, e.g. '{"max_reserved": 4, "rate": {"jobs": 10, "per_ms": 1000}}'; '{}' only prints.
        json: String,
    },
    /// Remove a job that is not currently reserved.
    Cancel {
        #[command(flatten)]
        file: FileArg,
        /// The job's id.
        id: u64,
    },
    /// Delete the dead jobs of a queue (requires --dead); prints how many.
    Purge {
        #[command(flatten)]
        file: FileArg,
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        queue: String,
        /// Delete the dead jobs (the only kind purge deletes; required as a confirmation).
        #[arg(long)]
        dead: bool,
    },
    /// Show the counts per queue and how fast they change, refreshed live.
    Watch {
        #[command(flatten)]
        file: FileArg,
        /// Time between refreshes.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
        interval_ms: u64,
        /// Stop after this many refreshes (default: until interrupted).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
    },
    /// Shrink the file: checkpoint the WAL into it and VACUUM; prints the sizes.
    Compact {
        #[command(flatten)]
        file: FileArg,
    },
}

#[derive(Args)]
struct FileArg {
    /// The queue file.
    #[arg(value_name = "FILE")]
    path: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum StateArg {
    Ready,
    Scheduled,
    Reserved,
    Dead,
    /// Acked and kept (keep_done_ms), until the keep time passes.
    Done,
}

impl From<StateArg> for JobState {
    fn from(s: StateArg) -> JobState {
        match s {
            StateArg::Ready => JobState::Ready,
            StateArg::Scheduled => JobState::Scheduled,
            StateArg::Reserved => JobState::Reserved,
            StateArg::Dead => JobState::Dead,
            StateArg::Done => JobState::Done,
        }
    }
}

/// Why a command failed, and the exit code it gives.
enum Failure {
    Job(Error),
    /// Not the library's: a missing file, unreadable stdin, a closed stdout.
    Other(String),
    /// Whoever read our output went away (`jobq list f | head`): not an error.
    OutputClosed,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Job(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return Failure::OutputClosed;
        }
        Failure::Other(e.to_string())
    }
}

type Outcome = std::result::Result<(), Failure>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let path = cli.command.path().to_path_buf();
    if let Command::Purge { dead: false, .. } = cli.command {
        let mut command = Cli::command();
        // Building gives the subcommand its full name for the usage line.
        command.build();
        command
            .find_subcommand_mut("purge")
            .expect("purge is a subcommand")
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "purge deletes only dead jobs; pass --dead to confirm",
            )
            .exit();
    }
    let (code, message) = match run(cli.command) {
        Ok(()) | Err(Failure::OutputClosed) => return ExitCode::SUCCESS,
        Err(Failure::Job(e)) => (if matches!(e, Error::NotFound(_)) { 3 } else { 1 }, describe(&e, &path)),
        Err(Failure::Other(message)) => (1, message),
    };
    eprintln!("jobq: {}: {message}", jobq::printable_path(&path.to_string_lossy()));
    ExitCode::from(code)
}

/// The error's message without a repeat of the path, which the caller prints first.
fn describe(e: &Error, path: &Path) -> String {
    let text = e.to_string().replacen(&format!("{}: ", path.display()), "", 1);
    match e {
        Error::Busy(_) => format!("{text}; try again later"),
        Error::Version { .. } => format!("{text}; use a newer jobq"),
        _ => text,
    }
}

impl Command {
    fn path(&self) -> &Path {
        match self {
            Command::Stats { file, .. }
            | Command::List { file, .. }
            | Command::Show { file, .. }
            | Command::Put { file, .. }
            | Command::Kick { file, .. }
            | Command::Pause { file, .. }
            | Command::Resume { file, .. }
            | Command::Schedule { file, .. }
            | Command::Unschedule { file, .. }
            | Command::Schedules { file, .. }
            | Command::Config { file, .. }
            | Command::Cancel { file, .. }
            | Command::Purge { file, .. }
            | Command::Watch { file, .. }
            | Command::Compact { file } => &file.path,
        }
    }
}

/// Opens an existing queue file; only `put` may create one. (A PostgreSQL
/// URL is opened as given: its schema is created on first open.)
fn open_existing(path: &Path) -> Result<Queue, Failure> {
    if is_url(path) {
        return Ok(Queue::open(path, Config::default())?);
    }
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failure::Other("no such queue file (only `jobq put` creates one)".into()))
        }
        Err(e) => return Err(Failure::Other(e.to_string())),
        Ok(m) if m.is_dir() => return Err(Failure::Other("is a directory, not a queue file".into())),
        // Opening would turn an empty file into a queue file.
        Ok(m) if m.len() == 0 && file_size(&wal_path(path)) == 0 => {
            return Err(Failure::Other("empty file, not a queue file".into()))
        }
        Ok(_) => {}
    }
    Ok(Queue::open(path, Config::default())?)
}

fn run(command: Command) -> Outcome {
    let mut out = std::io::stdout().lock();
    match command {
        Command::Stats { file, json, prometheus } => stats(&file.path, json, prometheus, &mut out)?,
        Command::List { file, queue, state, limit, after, utc } => {
            let filter = JobFilter {
                queue,
                state: state.map(JobState::from),
                after_id: after,
                limit: Some(limit),
                payload_max: Some(PREVIEW_BYTES),
            };
            with_queue(&file.path, |q| {
                Ok(out.write_all(jobs_table(&q.list_jobs(&filter)?, now_ms(), utc).as_bytes())?)
            })?;
        }
        Command::Show { file, id, json } => with_queue(&file.path, |q| {
            let job = q.job(id)?;
            if json {
                let text = serde_json::to_string_pretty(&job).map_err(|e| Failure::Other(e.to_string()))?;
                writeln!(out, "{text}")?;
            } else {
                out.write_all(job_text(&job, now_ms()).as_bytes())?;
            }
            Ok(())
        })?,
        Command::Put { file, queue, payload, priority, delay_ms, unique_key, max_attempts } => {
            let opts = PutOptions { priority, delay_ms, max_attempts, lease_ms: None, unique_key };
            put(&file.path, &queue, payload, &opts, &mut out)?
        }
        Command::Kick { file, queue, max } => with_queue(&file.path, |q| {
            let kicked = q.kick(&queue, max.unwrap_or(u64::MAX))?;
            writeln!(out, "kicked {kicked} dead job{} of queue {}", plural(kicked), escape(queue.as_bytes(), 80))?;
            Ok(())
        })?,
        Command::Pause { file, queue } => with_queue(&file.path, |q| {
            q.pause(&queue)?;
            Ok(writeln!(out, "paused queue {}", escape(queue.as_bytes(), 80))?)
        })?,
        Command::Resume { file, queue } => with_queue(&file.path, |q| {
            q.resume(&queue)?;
            Ok(writeln!(out, "resumed queue {}", escape(queue.as_bytes(), 80))?)
        })?,
        Command::Config { file, queue, json } => with_queue(&file.path, |q| {
            q.configure(&queue, &json)?;
            let stats = q.stats()?;
            let cell = stats.queues.get(&queue).map(limits_cell).unwrap_or_else(|| "-".into());
            let name = escape(queue.as_bytes(), 80);
            if cell == "-" {
                Ok(writeln!(out, "queue {name}: no limits")?)
            } else {
                Ok(writeln!(out, "queue {name}: {cell}")?)
            }
        })?,
        Command::Schedule { file, name, queue, spec, payload, priority } => with_queue(&file.path, |q| {
            let opts = PutOptions { priority, ..PutOptions::default() };
            q.schedule(&name, &queue, &spec, payload.as_bytes(), &opts)?;
            let next = q.schedules()?.into_iter().find(|s| s.name == name).and_then(|s| s.next_ms);
            writeln!(
                out,
                "scheduled {} into queue {} ({}), next at {}",
                escape(name.as_bytes(), 80),
                escape(queue.as_bytes(), 80),
                escape(spec.as_bytes(), 80),
                next.map_or("never".into(), utc)
            )?;
            Ok(())
        })?,
        Command::Unschedule { file, name } => with_queue(&file.path, |q| {
            if q.unschedule(&name)? {
                Ok(writeln!(out, "unscheduled {}", escape(name.as_bytes(), 80))?)
            } else {
                Err(Failure::Other(format!("no schedule named {}", escape(name.as_bytes(), 80))))
            }
        })?,
        Command::Schedules { file, json } => with_queue(&file.path, |q| {
            let all = q.schedules()?;
            if json {
                let text = serde_json::to_string(&all).map_err(|e| Failure::Other(e.to_string()))?;
                return Ok(writeln!(out, "{text}")?);
            }
            if all.is_empty() {
                return Ok(writeln!(out, "no schedules")?);
            }
            writeln!(out, "{:<24} {:<16} {:<20} next (UTC)", "name", "queue", "spec")?;
            for s in all {
                writeln!(
                    out,
                    "{:<24} {:<16} {:<20} {}",
                    escape(s.name.as_bytes(), 24),
                    escape(s.queue.as_bytes(), 16),
                    escape(s.spec.as_bytes(), 40),
                    s.next_ms.map_or("never".into(), utc)
                )?;
            }
            Ok(())
        })?,
        Command::Cancel { file, id } => with_queue(&file.path, |q| {
            q.cancel(id)?;
            Ok(writeln!(out, "cancelled job {id}")?)
        })?,
        Command::Purge { file, queue, .. } => with_queue(&file.path, |q| {
            let purged = q.purge_dead(&queue)?;
            writeln!(out, "purged {purged} dead job{} of queue {}", plural(purged), escape(queue.as_bytes(), 80))?;
            Ok(())
        })?,
        Command::Watch { file, interval_ms, count } => {
            with_queue(&file.path, |q| watch(q, &file.path, Duration::from_millis(interval_ms), count, &mut out))?
        }
        Command::Compact { file } => with_queue(&file.path, |q| compact(q, &file.path, &mut out))?,
    }
    out.flush()?;
    Ok(())
}

/// Runs `f` on the existing store at `path`, then closes it.
/// Unix ms as "YYYY-MM-DD HH:MM:SS.mmm" (UTC).
fn utc(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (h, mi, s, milli) = (in_day / 3_600_000, in_day / 60_000 % 60, in_day / 1000 % 60, in_day % 1000);
    format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}.{milli:03}")
}

fn with_queue(path: &Path, f: impl FnOnce(&Queue) -> Outcome) -> Outcome {
    let q = open_existing(path)?;
    let result = f(&q);
    q.close()?;
    result
}

fn stats(path: &Path, json: bool, prometheus: bool, out: &mut impl Write) -> Outcome {
    with_queue(path, |q| {
        let stats = q.stats()?;
        if json {
            let text = serde_json::to_string(&stats).map_err(|e| Failure::Other(e.to_string()))?;
            writeln!(out, "{text}")?;
        } else if prometheus {
            let created = q.last_job_id()?;
            out.write_all(prometheus_text(&stats, created).as_bytes())?;
        } else {
            out.write_all(stats_table(&stats, None).as_bytes())?;
        }
        Ok(())
    })
}

/// `jobq put`: the payload from the argument or stdin ("-" or none).
fn put(path: &Path, queue: &str, payload: Option<String>, opts: &PutOptions, out: &mut impl Write) -> Outcome {
    let payload = match payload {
        Some(p) if p != "-" => p.into_bytes(),
        _ => {
            let mut buf = Vec::new();
            std::io::stdin().lock().read_to_end(&mut buf).map_err(|e| Failure::Other(format!("stdin: {e}")))?;
            buf
        }
    };
    let q = Queue::open(path, Config::default())?;
    let result = (|| {
        match q.put(queue, &payload, opts)? {
            Put::Stored(id) => writeln!(out, "{id}")?,
            Put::Duplicate(id) => {
                writeln!(out, "{id}")?;
                eprintln!(
                    "jobq: duplicate: job {id} of queue {} already holds unique key {}; nothing stored",
                    escape(queue.as_bytes(), usize::MAX),
                    escape(opts.unique_key.as_deref().unwrap_or_default().as_bytes(), usize::MAX),
                );
            }
        }
        Ok(())
    })();
    q.close()?;
    result
}

/// `jobq compact`: a file's sizes before and after; a database just says done.
fn compact(q: &Queue, path: &Path, out: &mut impl Write) -> Outcome {
    if is_url(path) {
        q.compact()?;
        writeln!(out, "compacted (VACUUM of the store's tables)")?;
        return Ok(());
    }
    let before = Sizes::of(path);
    q.compact()?;
    let after = Sizes::of(path);
    writeln!(out, "before: {before}")?;
    writeln!(out, "after:  {after}")?;
    Ok(())
}

/// Whether `path` is a PostgreSQL URL rather than a file.
fn is_url(path: &Path) -> bool {
    path.to_str().is_some_and(|p| p.starts_with("postgresql://") || p.starts_with("postgres://"))
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

// ---- stats ----

fn stats_table(stats: &Stats, rates: Option<&Rates>) -> String {
    if stats.queues.is_empty() {
        return "(no queues)\n".into();
    }
    let mut header = vec!["QUEUE", "READY", "SCHEDULED", "RESERVED", "DEAD", "DONE", "PAUSED"];
    // A LIMITS column only when a queue has limits (jobq config).
    let limits = stats.queues.values().any(|c| c.limits.is_some());
    if limits {
        header.push("LIMITS");
    }
    if rates.is_some() {
        header.extend(["READY Δ/s", "DEAD Δ/s"]);
    }
    let mut right = vec![false, true, true, true, true, true, false];
    if limits {
        right.push(false);
    }
    right.extend([true, true]);
    let mut table = Table::new(&header, &right);
    for (name, c) in &stats.queues {
        let mut row = vec![
            escape(name.as_bytes(), 40),
            c.ready.to_string(),
            c.scheduled.to_string(),
            c.reserved.to_string(),
            c.dead.to_string(),
            c.done.to_string(),
            if c.paused { "yes" } else { "no" }.to_string(),
        ];
        if limits {
            row.push(limits_cell(c));
        }
        if let Some(rates) = rates {
            row.push(rates.per_queue(name, |c| c.ready));
            row.push(rates.per_queue(name, |c| c.dead));
        }
        table.row(row);
    }
    table.render()
}

/// A queue's limits in one word: `max=4,rate=10/1000ms,used=3` (`used`:
/// deliveries in the rate window open now), `-` without limits.
fn limits_cell(c: &QueueCounts) -> String {
    let Some(limits) = c.limits else { return "-".into() };
    let mut parts = Vec::new();
    if let Some(max) = limits.max_reserved {
        parts.push(format!("max={max}"));
    }
    if let Some(rate) = limits.rate {
        parts.push(format!("rate={}/{}ms", rate.jobs, rate.per_ms));
        parts.push(format!("used={}", c.rate_used.unwrap_or(0)));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(",")
    }
}

fn prometheus_text(stats: &Stats, created: u64) -> String {
    let mut text =
        String::from("# HELP jobq_jobs Jobs in the queue file, by queue and state.\n# TYPE jobq_jobs gauge\n");
    for (name, c) in &stats.queues {
        let name = prometheus_label(name);
        let states = [
            ("ready", c.ready),
            ("scheduled", c.scheduled),
            ("reserved", c.reserved),
            ("dead", c.dead),
            ("done", c.done),
        ];
        for (state, n) in states {
            text.push_str(&format!("jobq_jobs{{queue=\"{name}\",state=\"{state}\"}} {n}\n"));
        }
    }
    text.push_str(
        "# HELP jobq_queue_paused Whether the queue is paused (1: it delivers nothing).\n\
         # TYPE jobq_queue_paused gauge\n",
    );
    for (name, c) in &stats.queues {
        text.push_str(&format!("jobq_queue_paused{{queue=\"{}\"}} {}\n", prometheus_label(name), u8::from(c.paused)));
    }
    if stats.queues.values().any(|c| c.limits.is_some_and(|l| l.max_reserved.is_some())) {
        text.push_str(
            "# HELP jobq_queue_max_reserved The queue's cap on jobs reserved at once (queues with one).\n\
             # TYPE jobq_queue_max_reserved gauge\n",
        );
        for (name, c) in &stats.queues {
            if let Some(max) = c.limits.and_then(|l| l.max_reserved) {
                text.push_str(&format!("jobq_queue_max_reserved{{queue=\"{}\"}} {max}\n", prometheus_label(name)));
            }
        }
    }
    if stats.queues.values().any(|c| c.rate_used.is_some()) {
        text.push_str(
            "# HELP jobq_queue_rate_used Deliveries in the queue's rate window open now (queues with a rate).\n\
             # TYPE jobq_queue_rate_used gauge\n",
        );
        for (name, c) in &stats.queues {
            if let Some(used) = c.rate_used {
                text.push_str(&format!("jobq_queue_rate_used{{queue=\"{}\"}} {used}\n", prometheus_label(name)));
            }
        }
    }
    text.push_str(
        "# HELP jobq_jobs_created_total Jobs ever stored in the queue file, all queues (the last job id).\n\
         # TYPE jobq_jobs_created_total counter\n",
    );
    text.push_str(&format!("jobq_jobs_created_total {created}\n"));
    text
}

/// A label value as the exposition format wants it: `\`, `"` and newlines escaped.
fn prometheus_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

// ---- watch ----

/// What one refresh saw.
struct Sample {
    at: Instant,
    stats: Stats,
    last_id: u64,
}

/// Changes between two samples, per second.
struct Rates<'a> {
    previous: Option<&'a Sample>,
    current: &'a Sample,
}

impl Rates<'_> {
    fn seconds(&self, previous: &Sample) -> f64 {
        self.current.at.duration_since(previous.at).as_secs_f64().max(1e-3)
    }

    fn per_queue(&self, queue: &str, count: impl Fn(&jobq::QueueCounts) -> u64) -> String {
        let Some(previous) = self.previous else { return "-".into() };
        let get = |s: &Sample| s.stats.queues.get(queue).map(&count).unwrap_or(0) as f64;
        format!("{:+.1}", (get(self.current) - get(previous)) / self.seconds(previous))
    }

    /// Puts and removals (acks, cancels, purges) per second, all queues.
    fn totals(&self) -> Option<(f64, f64)> {
        let previous = self.previous?;
        let jobs = |s: &Sample| {
            s.stats.queues.values().map(|c| c.ready + c.scheduled + c.reserved + c.dead).sum::<u64>() as f64
        };
        let secs = self.seconds(previous);
        let puts = self.current.last_id.saturating_sub(previous.last_id) as f64;
        let removed = (puts - (jobs(self.current) - jobs(previous))).max(0.0);
        Some((puts / secs, removed / secs))
    }
}

fn watch(q: &Queue, path: &Path, interval: Duration, count: Option<u64>, out: &mut impl Write) -> Outcome {
    let tty = std::io::stdout().is_terminal();
    let mut previous: Option<Sample> = None;
    let mut tick = 0u64;
    loop {
        let sample = Sample { at: Instant::now(), stats: q.stats()?, last_id: q.last_job_id()? };
        let rates = Rates { previous: previous.as_ref(), current: &sample };
        let mut block = String::new();
        if tty {
            // Home the cursor and clear the screen: the block replaces the last one.
            block.push_str("\x1b[H\x1b[2J");
        }
        block.push_str(&format!(
            "jobq watch {}  {}  every {} ms\n",
            escape(jobq::printable_path(&path.to_string_lossy()).as_bytes(), 200),
            iso8601(now_ms()),
            interval.as_millis()
        ));
        block.push_str(&stats_table(&sample.stats, Some(&rates)));
        match rates.totals() {
            Some((puts, removed)) => block.push_str(&format!(
                "all queues: {puts:.1} puts/s, {removed:.1} removed/s (acked, cancelled or purged)\n"
            )),
            None => block.push_str("all queues: rates from the next refresh on\n"),
        }
        if !tty {
            block.push('\n');
        }
        out.write_all(block.as_bytes())?;
        out.flush()?;
        tick += 1;
        if count.is_some_and(|c| tick >= c) {
            return Ok(());
        }
        previous = Some(sample);
        std::thread::sleep(interval);
    }
}

// ---- list and show ----

/// Payload bytes read per listed job.
const PREVIEW_BYTES: u64 = 64;
/// Characters of payload shown per listed job.
const PREVIEW_CHARS: usize = 40;

fn jobs_table(jobs: &[JobInfo], now: i64, utc: bool) -> String {
    if jobs.is_empty() {
        return "(no jobs)\n".into();
    }
    let header = ["ID", "QUEUE", "STATE", "PRIORITY", "ATTEMPTS", "RUN_AT", "LAST_ERROR", "PAYLOAD"];
    let mut table = Table::new(&header, &[true, false, false, true, true, false, false, false]);
    for job in jobs {
        let cut = (job.payload.len() as u64) < job.payload_len;
        let mut preview = escape(&job.payload, PREVIEW_CHARS);
        if cut && !preview.ends_with('…') {
            preview.push('…');
        }
        table.row(vec![
            job.id.to_string(),
            escape(job.queue.as_bytes(), 20),
            job.state.to_string(),
            job.priority.to_string(),
            format!("{}/{}", job.attempts, job.max_attempts),
            if utc { iso8601(job.run_at) } else { relative(job.run_at, now) },
            job.last_error.as_deref().map_or("-".into(), |e| escape(e.as_bytes(), 30)),
            preview,
        ]);
    }
    table.render()
}

fn job_text(job: &JobInfo, now: i64) -> String {
    let time = |ms: i64| format!("{} ({})", iso8601(ms), relative(ms, now));
    let text = |s: &Option<String>| s.as_deref().map_or("-".into(), |s| escape(s.as_bytes(), usize::MAX));
    let run_at_means = match job.state {
        JobState::Ready => "may run since",
        JobState::Scheduled => "may run at",
        JobState::Reserved => "lease ends",
        JobState::Dead => "died",
        JobState::Done => "record expires",
    };
    let mut s = String::new();
    s.push_str(&format!("id:           {}\n", job.id));
    s.push_str(&format!("queue:        {}\n", escape(job.queue.as_bytes(), usize::MAX)));
    s.push_str(&format!("state:        {}\n", job.state));
    s.push_str(&format!("priority:     {}\n", job.priority));
    s.push_str(&format!("attempts:     {} of {}\n", job.attempts, job.max_attempts));
    s.push_str(&format!("run_at:       {} [{run_at_means}]\n", time(job.run_at)));
    s.push_str(&format!("lease_ms:     {}\n", job.lease_ms));
    s.push_str(&format!("lease_until:  {}\n", job.lease_until.map_or("-".into(), time)));
    s.push_str(&format!("lease_owner:  {}\n", text(&job.lease_owner)));
    s.push_str(&format!("unique_key:   {}\n", text(&job.unique_key)));
    s.push_str(&format!("created_at:   {}\n", time(job.created_at)));
    s.push_str(&format!("updated_at:   {}\n", time(job.updated_at)));
    s.push_str(&format!("last_error:   {}\n", text(&job.last_error)));
    if job.state == JobState::Done {
        s.push_str(&format!("finished_at:  {}\n", time(job.updated_at)));
        match job.result.as_deref() {
            None => s.push_str("result:       -\n"),
            Some(result) => s.push_str(&bytes_text("result:      ", result, result.len() as u64)),
        }
    }
    s.push_str(&bytes_text("payload:     ", &job.payload, job.payload_len));
    s
}

/// `label` and `len` then `bytes` as text if UTF-8, else as a hex dump.
fn bytes_text(label: &str, bytes: &[u8], len: u64) -> String {
    let mut s = String::new();
    match std::str::from_utf8(bytes) {
        Ok(utf8) => {
            s.push_str(&format!("{label} {len} bytes, UTF-8 text:\n"));
            // Control characters other than newline and tab are escaped, so that
            // a payload cannot drive the terminal.
            for line in utf8.split('\n') {
                let line: String =
                    line.split('\t').map(|part| escape(part.as_bytes(), usize::MAX)).collect::<Vec<_>>().join("\t");
                s.push_str(&line);
                s.push('\n');
            }
        }
        Err(_) => {
            s.push_str(&format!("{label} {len} bytes, not UTF-8; hex:\n"));
            s.push_str(&hexdump(bytes));
        }
    }
    s
}

fn hexdump(bytes: &[u8]) -> String {
    let mut s = String::new();
    for (n, chunk) in bytes.chunks(16).enumerate() {
        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        let ascii: String =
            chunk.iter().map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '.' }).collect();
        s.push_str(&format!("{:08x}  {:<47}  |{ascii}|\n", n * 16, hex.join(" ")));
    }
    s
}

/// Text safe to print on a terminal, at most `max` characters (then `…`):
/// control and invisible formatting characters become `\n`, `\t`, `\\`,
/// `\u{..}`; bytes that are not UTF-8 become `\xNN`.
fn escape(bytes: &[u8], max: usize) -> String {
    let mut out = String::new();
    let mut chars = 0usize;
    let mut push = |piece: &str, out: &mut String| -> bool {
        if chars >= max {
            out.push('…');
            return false;
        }
        out.push_str(piece);
        chars += piece.chars().count();
        true
    };
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            let piece = match c {
                '\n' => "\\n".to_owned(),
                '\t' => "\\t".to_owned(),
                '\r' => "\\r".to_owned(),
                '\\' => "\\\\".to_owned(),
                c if c.is_control() || is_invisible_format(c) => format!("\\u{{{:x}}}", c as u32),
                c => c.to_string(),
            };
            if !push(&piece, &mut out) {
                return out;
            }
        }
        for b in chunk.invalid() {
            if !push(&format!("\\x{b:02x}"), &mut out) {
                return out;
            }
        }
    }
    out
}

/// Characters that reorder or hide text (bidi controls, zero-width marks).
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

// ---- tables, times, sizes ----

struct Table {
    rows: Vec<Vec<String>>,
    right: Vec<bool>,
}

impl Table {
    fn new(header: &[&str], right: &[bool]) -> Table {
        Table { rows: vec![header.iter().map(|h| h.to_string()).collect()], right: right.to_vec() }
    }

    fn row(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    fn render(&self) -> String {
        let columns = self.rows[0].len();
        let width = |i: usize| self.rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns).map(width).collect();
        let mut s = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = " ".repeat(widths[i] - cell.chars().count());
                if self.right.get(i).copied().unwrap_or(false) {
                    line.push_str(&pad);
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    if i + 1 < columns {
                        line.push_str(&pad);
                    }
                }
            }
            s.push_str(line.trim_end());
            s.push('\n');
        }
        s
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// `2026-03-21T10:04:05.123Z`.
fn iso8601(ms: i64) -> String {
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, milli) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60, ms_of_day / 1_000 % 60, ms_of_day % 1_000);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

/// `in 4.2s`, `3m ago`, `now`.
fn relative(ms: i64, now: i64) -> String {
    let delta = ms.saturating_sub(now);
    let abs = delta.unsigned_abs();
    let amount = if abs < 1_000 {
        return "now".into();
    } else if abs < 60_000 {
        format!("{:.1}s", abs as f64 / 1e3)
    } else if abs < 3_600_000 {
        format!("{}m{}s", abs / 60_000, abs / 1_000 % 60)
    } else if abs < 86_400_000 {
        format!("{}h{}m", abs / 3_600_000, abs / 60_000 % 60)
    } else {
        format!("{}d{}h", abs / 86_400_000, abs / 3_600_000 % 24)
    };
    if delta > 0 {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The file and its WAL.
struct Sizes {
    file: u64,
    wal: u64,
}

impl Sizes {
    fn of(path: &Path) -> Sizes {
        Sizes { file: file_size(path), wal: file_size(&wal_path(path)) }
    }
}

impl std::fmt::Display for Sizes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total = self.file + self.wal;
        write!(f, "{total} bytes ({}; file {}, WAL {})", human(total), human(self.file), human(self.wal))
    }
}

fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_matches_known_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso8601(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn escape_makes_text_terminal_safe() {
        assert_eq!(escape(b"plain text", 40), "plain text");
        assert_eq!(escape(b"a\nb\tc\\\x1b[2J\xff", 40), "a\\nb\\tc\\\\\\u{1b}[2J\\xff");
        assert_eq!(escape("é\u{202e}x".as_bytes(), 40), "é\\u{202e}x");
        assert_eq!(escape(b"abcdef", 3), "abc…");
        assert_eq!(escape(b"abc", 3), "abc");
    }

    #[test]
    fn relative_times_read_naturally() {
        assert_eq!(relative(1_000, 1_200), "now");
        assert_eq!(relative(5_500, 1_000), "in 4.5s");
        assert_eq!(relative(0, 190_000), "3m10s ago");
        assert_eq!(relative(0, 90_000_000), "1d1h ago");
    }

    #[test]
    fn prometheus_labels_are_escaped() {
        assert_eq!(prometheus_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
