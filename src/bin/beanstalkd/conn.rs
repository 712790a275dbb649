//! One client connection: reads command lines and job bodies, answers each
//! command in order, and keeps the connection's beanstalkd state (the tube
//! it uses, the tubes it watches, the jobs it holds reserved). Store calls
//! run on the store threads (`pool`); a waiting reserve waits in slices of at
//! most a second while it watches the socket, so a job is never kept for a
//! client that left. On disconnect the held jobs are released at once.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jobq::{Error, Job, JobState, PutOptions, Queue, QueueCounts};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::parse::{self, Command, Frame, Refusal, LINE_MAX};
use super::pool::blocking;
use super::server::{urgent_count, Server};
use super::stats;

/// The longest wait of one blocking reserve call: between two, the
/// connection notices a client that left or a TTR about to end.
const SLICE: Duration = Duration::from_secs(1);
/// beanstalkd's safety margin: in the last second of a held job's TTR a
/// reserve answers DEADLINE_SOON instead of waiting.
const SAFETY_MARGIN: Duration = Duration::from_secs(1);
/// The most tubes one connection may watch: what one `reserve_any` takes.
pub const MAX_WATCHED: usize = jobq::MAX_RESERVE_ANY;
/// jobq's largest delay or lease (its limits::MAX_DELAY_MS, ~3 years).
const MAX_MS: u64 = 100_000_000_000;
/// Input read ahead while a reserve waits (pipelined commands); past it the
/// connection stops reading until the reserve answers.
const WAIT_READ_AHEAD: usize = 1 << 20;
const READ_CHUNK: usize = 16 * 1024;

/// A job this connection reserved.
struct Held {
    job: Arc<Job>,
    /// When its TTR ends, as this connection counts it (from the reserve or the last touch).
    deadline: Instant,
}

struct Conn {
    srv: Arc<Server>,
    id: u64,
    rd: OwnedReadHalf,
    wr: BufWriter<OwnedWriteHalf>,
    /// Input not consumed yet: `buf[start..]`.
    buf: Vec<u8>,
    start: usize,
    eof: bool,
    /// Dropping an over-long line up to its end (then BAD_FORMAT).
    skipping_line: bool,
    used: String,
    watched: Vec<String>,
    held: HashMap<u64, Held>,
    producer: bool,
    worker: bool,
}

/// Leases the ready job with the smallest (priority, id) of `tubes`.
fn reserve_over(q: &Queue, tubes: &[String], timeout: Option<Duration>) -> jobq::Result<Option<Job>> {
    let names: Vec<&str> = tubes.iter().map(String::as_str).collect();
    q.reserve_any(&names, timeout)
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Seconds from the protocol -> jobq milliseconds, capped at jobq's largest.
fn seconds_to_ms(seconds: u32) -> u64 {
    (u64::from(seconds) * 1000).min(MAX_MS)
}

/// Serves one accepted connection until the client leaves or quits.
pub async fn serve(srv: Arc<Server>, stream: TcpStream, id: u64) {
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    srv.total_connections.fetch_add(1, Relaxed);
    srv.current_connections.fetch_add(1, Relaxed);
    srv.with_tube("default", |t| {
        t.using += 1;
        t.watching += 1;
    });
    let mut conn = Conn {
        srv,
        id,
        rd,
        wr: BufWriter::with_capacity(64 * 1024, wr),
        buf: Vec::with_capacity(4096),
        start: 0,
        eof: false,
        skipping_line: false,
        used: "default".to_owned(),
        watched: vec!["default".to_owned()],
        held: HashMap::new(),
        producer: false,
        worker: false,
    };
    let _ = conn.run().await;
    let _ = conn.wr.flush().await;
    conn.close().await;
}

impl Conn {
    fn input(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    /// Reads more input (after sending what is pending); false at the end of input.
    async fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        self.wr.flush().await?;
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.reserve(READ_CHUNK);
        let n = self.rd.read_buf(&mut self.buf).await?;
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        Ok(true)
    }

    /// Waits until `n` bytes of input are buffered; false if the input ends first.
    async fn need(&mut self, n: usize) -> io::Result<bool> {
        while self.input().len() < n {
            if !self.fill().await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Drops the next `n` bytes of input as they come; false if the input ends first.
    async fn skip(&mut self, mut n: u64) -> io::Result<bool> {
        loop {
            let take = (self.input().len() as u64).min(n);
            self.consume(take as usize);
            n -= take;
            if n == 0 {
                return Ok(true);
            }
            if !self.fill().await? {
                return Ok(false);
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> io::Result<bool> {
        self.wr.write_all(bytes).await?;
        Ok(true)
    }

    /// "<word> <id> <len>\r\n<body>\r\n"
    async fn send_job(&mut self, word: &str, id: u64, body: &[u8]) -> io::Result<bool> {
        self.wr.write_all(format!("{word} {id} {}\r\n", body.len()).as_bytes()).await?;
        self.wr.write_all(body).await?;
        self.send(b"\r\n").await
    }

    /// "OK <len>\r\n<yaml>\r\n"
    async fn send_yaml(&mut self, yaml: &str) -> io::Result<bool> {
        self.wr.write_all(format!("OK {}\r\n", yaml.len()).as_bytes()).await?;
        self.wr.write_all(yaml.as_bytes()).await?;
        self.send(b"\r\n").await
    }

    /// A store error the client cannot act on.
    async fn internal(&mut self, e: &Error) -> io::Result<bool> {
        eprintln!("jobq-beanstalkd: connection {}: {e}", self.id);
        self.send(b"INTERNAL_ERROR\r\n").await
    }

    /// NOT_FOUND for a missing job or tube, INTERNAL_ERROR for the rest.
    async fn not_found_or_internal(&mut self, e: &Error) -> io::Result<bool> {
        match e {
            Error::NotFound(_) | Error::State(_) => self.send(b"NOT_FOUND\r\n").await,
            other => self.internal(other).await,
        }
    }

    async fn run(&mut self) -> io::Result<()> {
        loop {
            match parse::frame(self.input()) {
                Frame::Line(n) => {
                    let line = self.input()[..n - 2].to_vec();
                    self.consume(n);
                    if std::mem::take(&mut self.skipping_line) {
                        self.send(b"BAD_FORMAT\r\n").await?;
                        continue;
                    }
                    if !self.command(&line).await? {
                        return Ok(());
                    }
                }
                Frame::TooLong => {
                    self.consume(LINE_MAX);
                    self.skipping_line = true;
                }
                Frame::Incomplete => {
                    if !self.fill().await? {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Answers one command line; false: close the connection.
    async fn command(&mut self, line: &[u8]) -> io::Result<bool> {
        let cmd = match parse::parse(line) {
            Ok(cmd) => cmd,
            Err(Refusal::BadFormat) => return self.send(b"BAD_FORMAT\r\n").await,
            Err(Refusal::UnknownCommand) => return self.send(b"UNKNOWN_COMMAND\r\n").await,
        };
        self.srv.count_op(cmd.op());
        match cmd {
            Command::Put { pri, delay, ttr, bytes, trailing } => self.put(pri, delay, ttr, bytes, trailing).await,
            Command::Use(tube) => {
                let old = std::mem::replace(&mut self.used, tube.to_owned());
                self.srv.with_tube(&old, |t| t.using = t.using.saturating_sub(1));
                self.srv.with_tube(tube, |t| t.using += 1);
                self.send(format!("USING {tube}\r\n").as_bytes()).await
            }
            Command::Watch(tube) => {
                if !self.watched.iter().any(|w| w == tube) {
                    if self.watched.len() >= MAX_WATCHED {
                        return self.send(b"OUT_OF_MEMORY\r\n").await;
                    }
                    self.watched.push(tube.to_owned());
                    self.srv.with_tube(tube, |t| t.watching += 1);
                }
                self.send(format!("WATCHING {}\r\n", self.watched.len()).as_bytes()).await
            }
            Command::Ignore(tube) => {
                if let Some(i) = self.watched.iter().position(|w| w == tube) {
                    if self.watched.len() < 2 {
                        return self.send(b"NOT_IGNORED\r\n").await;
                    }
                    // As beanstalkd: the last watched tube takes its place.
                    self.watched.swap_remove(i);
                    self.srv.with_tube(tube, |t| t.watching = t.watching.saturating_sub(1));
                }
                self.send(format!("WATCHING {}\r\n", self.watched.len()).as_bytes()).await
            }
            Command::Reserve => self.reserve(None).await,
            Command::ReserveWithTimeout(seconds) => {
                let timeout = u64::try_from(seconds).ok().map(Duration::from_secs);
                self.reserve(timeout).await
            }
            Command::Delete(id) => self.delete(id).await,
            Command::Touch(id) => self.touch(id).await,
            Command::Peek(id) => {
                let q = self.srv.queue.clone();
                match blocking(move || q.job(id)).await {
                    Ok(job) if job.state != JobState::Done => self.send_job("FOUND", job.id, &job.payload).await,
                    Ok(_) => self.send(b"NOT_FOUND\r\n").await,
                    Err(e) => self.not_found_or_internal(&e).await,
                }
            }
            Command::StatsJob(id) => {
                self.prune_expired();
                self.srv.expire_held(Some(id));
                let q = self.srv.queue.clone();
                match blocking(move || q.job(id)).await {
                    Ok(job) if job.state != JobState::Done => {
                        let yaml = stats::job_stats(&job, self.srv.notes(id), now_ms());
                        self.send_yaml(&yaml).await
                    }
                    Ok(_) => self.send(b"NOT_FOUND\r\n").await,
                    Err(e) => self.not_found_or_internal(&e).await,
                }
            }
            Command::StatsTube(tube) => {
                let srv = self.srv.clone();
                let tube = tube.to_owned();
                let answer = blocking(move || {
                    let queues = store_queues(&srv.queue)?;
                    let Some(view) = srv.tubes(&queues).into_iter().find(|v| v.name == tube) else {
                        return Ok(None);
                    };
                    let urgent = urgent_count(&srv.queue, Some(&tube))?;
                    Ok(Some(stats::tube_stats(&view, urgent, Instant::now())))
                })
                .await;
                match answer {
                    Ok(Some(yaml)) => self.send_yaml(&yaml).await,
                    Ok(None) => self.send(b"NOT_FOUND\r\n").await,
                    Err(e) => self.internal(&e).await,
                }
            }
            Command::Stats => {
                self.prune_expired();
                self.srv.expire_held(None);
                let srv = self.srv.clone();
                let answer = blocking(move || {
                    let queues = store_queues(&srv.queue)?;
                    let tubes = srv.tubes(&queues).len();
                    let mut totals = stats::Totals::default();
                    for (_, c) in &queues {
                        totals.ready += c.ready;
                        totals.reserved += c.reserved;
                        totals.delayed += c.scheduled;
                        totals.buried += c.dead;
                    }
                    totals.urgent = urgent_count(&srv.queue, None)?;
                    Ok(stats::server_stats(&srv, &totals, tubes))
                })
                .await;
                match answer {
                    Ok(yaml) => self.send_yaml(&yaml).await,
                    Err(e) => self.internal(&e).await,
                }
            }
            Command::ListTubes => {
                let srv = self.srv.clone();
                let answer = blocking(move || {
                    let queues = store_queues(&srv.queue)?;
                    let tubes = srv.tubes(&queues);
                    Ok(stats::name_list(tubes.iter().map(|t| t.name.as_str())))
                })
                .await;
                match answer {
                    Ok(yaml) => self.send_yaml(&yaml).await,
                    Err(e) => self.internal(&e).await,
                }
            }
            Command::ListTubeUsed => {
                let line = format!("USING {}\r\n", self.used);
                self.send(line.as_bytes()).await
            }
            Command::ListTubesWatched => {
                let yaml = stats::name_list(self.watched.iter().map(String::as_str));
                self.send_yaml(&yaml).await
            }
            Command::PauseTube { tube, delay } => self.pause_tube(tube, delay).await,
            Command::Quit => Ok(false),
            Command::ReserveJob(id) => self.reserve_job(id).await,
            Command::Release { id, pri, delay } => self.release(id, pri, delay).await,
            Command::Bury { id, pri } => self.bury(id, pri).await,
            Command::PeekReady => self.peek_next(JobState::Ready).await,
            Command::PeekDelayed => self.peek_next(JobState::Scheduled).await,
            Command::PeekBuried => self.peek_next(JobState::Dead).await,
            Command::Kick(bound) => self.kick(bound).await,
            Command::KickJob(id) => {
                let q = self.srv.queue.clone();
                match blocking(move || q.kick_job(id)).await {
                    Ok(()) => {
                        self.srv.note(id, |n| n.kicks += 1);
                        self.send(b"KICKED\r\n").await
                    }
                    Err(e) => self.not_found_or_internal(&e).await,
                }
            }
        }
    }

    async fn put(&mut self, pri: u32, delay: u32, ttr: u32, bytes: u32, trailing: bool) -> io::Result<bool> {
        if bytes > self.srv.max_job_size {
            // The body and its "\r\n" are read and dropped, then the answer.
            if !self.skip(u64::from(bytes) + 2).await? {
                return Ok(false);
            }
            return self.send(b"JOB_TOO_BIG\r\n").await;
        }
        if trailing {
            return self.send(b"BAD_FORMAT\r\n").await;
        }
        if !self.producer {
            self.producer = true;
            self.srv.producers.fetch_add(1, Relaxed);
        }
        let len = bytes as usize;
        if !self.need(len + 2).await? {
            // The client left in the middle of the body: nothing is stored.
            return Ok(false);
        }
        let body = self.input()[..len].to_vec();
        let crlf = &self.input()[len..len + 2] == b"\r\n";
        self.consume(len + 2);
        if !crlf {
            return self.send(b"EXPECTED_CRLF\r\n").await;
        }
        let opts = PutOptions {
            priority: parse::to_jobq_priority(pri),
            delay_ms: seconds_to_ms(delay),
            // beanstalkd never kills a job whose TTR ran out: it goes back to ready.
            max_attempts: Some(u32::MAX),
            // A TTR of 0 is 1 s, as beanstalkd makes it.
            lease_ms: Some(seconds_to_ms(ttr.max(1))),
            unique_key: None,
        };
        let q = self.srv.queue.clone();
        let tube = self.used.clone();
        // INSERTED only once the put is durable (the store's durability).
        match blocking(move || q.put(&tube, &body, &opts)).await {
            Ok(put) => {
                if delay > 0 {
                    self.srv.note(put.id(), |n| n.delay = delay);
                }
                self.srv.total_jobs.fetch_add(1, Relaxed);
                self.srv.with_tube(&self.used, |t| t.total_jobs += 1);
                self.send(format!("INSERTED {}\r\n", put.id()).as_bytes()).await
            }
            Err(Error::TooBig { .. }) => self.send(b"JOB_TOO_BIG\r\n").await,
            Err(e) => self.internal(&e).await,
        }
    }

    fn set_worker(&mut self) {
        if !self.worker {
            self.worker = true;
            self.srv.workers.fetch_add(1, Relaxed);
        }
    }

    /// Forgets held jobs whose TTR ended: their lease expired in the store,
    /// so they are ready for anyone (beanstalkd's timeout).
    fn prune_expired(&mut self) {
        let now = Instant::now();
        let expired: Vec<u64> = self.held.iter().filter(|(_, h)| h.deadline <= now).map(|(id, _)| *id).collect();
        for id in expired {
            self.held.remove(&id);
            if self.srv.unhold(self.id, id) {
                self.srv.timed_out(id);
            }
        }
    }

    /// When the safety margin of the held job whose TTR ends first begins.
    fn soonest_margin(&mut self) -> Option<Instant> {
        self.prune_expired();
        self.held.values().map(|h| h.deadline.checked_sub(SAFETY_MARGIN).unwrap_or(h.deadline)).min()
    }

    fn set_waiting(&self, waiting: bool) {
        if waiting {
            self.srv.waiting.fetch_add(1, Relaxed);
        } else {
            self.srv.waiting.fetch_sub(1, Relaxed);
        }
        for tube in &self.watched {
            self.srv.with_tube(tube, |t| {
                t.waiting = if waiting { t.waiting + 1 } else { t.waiting.saturating_sub(1) };
            });
        }
    }

    async fn reserve(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        self.set_worker();
        let q = self.srv.queue.clone();
        let tubes = self.watched.clone();
        match blocking(move || reserve_over(&q, &tubes, Some(Duration::ZERO))).await {
            Ok(Some(job)) => return self.deliver(job).await,
            Ok(None) => {}
            Err(e) => return self.internal(&e).await,
        }
        if self.soonest_margin().is_some_and(|m| Instant::now() >= m) {
            return self.send(b"DEADLINE_SOON\r\n").await;
        }
        // A half-closed client waits for nothing (beanstalkd: TIMED_OUT).
        if timeout == Some(Duration::ZERO) || self.eof {
            return self.send(b"TIMED_OUT\r\n").await;
        }
        self.wr.flush().await?;
        self.set_waiting(true);
        let waited = self.wait(timeout).await;
        self.set_waiting(false);
        match waited {
            Waited::Job(job) => self.deliver(job).await,
            Waited::TimedOut => self.send(b"TIMED_OUT\r\n").await,
            Waited::DeadlineSoon => self.send(b"DEADLINE_SOON\r\n").await,
            Waited::Failed(e) => self.internal(&e).await,
        }
    }

    /// Waits for a job of the watched tubes in slices, reading ahead on the
    /// socket meanwhile. The end of input is a half-closed or gone client:
    /// beanstalkd answers TIMED_OUT then, and a job leased in that slice is
    /// released at once.
    async fn wait(&mut self, timeout: Option<Duration>) -> Waited {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let forever = timeout.is_none() || deadline.is_none();
        loop {
            let now = Instant::now();
            let deadline = if forever { None } else { deadline };
            if deadline.is_some_and(|d| now >= d) {
                return Waited::TimedOut;
            }
            let margin = self.soonest_margin();
            if margin.is_some_and(|m| now >= m) {
                return Waited::DeadlineSoon;
            }
            let mut slice = SLICE;
            for end in [deadline, margin].into_iter().flatten() {
                slice = slice.min(end.saturating_duration_since(now));
            }
            let q = self.srv.queue.clone();
            let tubes = self.watched.clone();
            let task = blocking(move || reserve_over(&q, &tubes, Some(slice)));
            tokio::pin!(task);
            let result = loop {
                let room = !self.eof && self.buf.len() - self.start < WAIT_READ_AHEAD;
                if room {
                    self.buf.reserve(4096);
                }
                tokio::select! {
                    r = &mut task => break r,
                    n = self.rd.read_buf(&mut self.buf), if room => {
                        if !matches!(n, Ok(n) if n > 0) {
                            self.eof = true;
                        }
                    }
                }
            };
            match result {
                Ok(Some(job)) if self.eof => {
                    // Leased for a client that left: give it back now.
                    let _ = blocking(move || job.release(0)).await;
                    return Waited::TimedOut;
                }
                Ok(Some(job)) => return Waited::Job(job),
                Ok(None) if self.eof => return Waited::TimedOut,
                Ok(None) => {}
                Err(e) => return Waited::Failed(e),
            }
        }
    }

    async fn deliver(&mut self, job: Job) -> io::Result<bool> {
        let job = Arc::new(job);
        let deadline = Instant::now() + Duration::from_millis(job.lease_ms());
        self.srv.hold(self.id, job.clone(), deadline);
        self.srv.note(job.id(), |n| n.reserves += 1);
        let written = self.send_job("RESERVED", job.id(), job.payload()).await;
        self.held.insert(job.id(), Held { job, deadline });
        written
    }

    async fn delete(&mut self, id: u64) -> io::Result<bool> {
        if let Some(held) = self.held.remove(&id) {
            self.srv.unhold(self.id, id);
            let job = held.job.clone();
            match blocking(move || job.ack()).await {
                Ok(()) => {
                    self.srv.forget(id);
                    self.srv.with_tube(held.job.queue(), |t| t.cmd_delete += 1);
                    return self.send(b"DELETED\r\n").await;
                }
                // Its lease ran out: delete it as a job reserved by nobody, if it still is.
                Err(Error::State(_)) => {}
                Err(e) => return self.internal(&e).await,
            }
        }
        let q = self.srv.queue.clone();
        // Reserved by nobody: removed (ready, delayed or buried). Reserved
        // by someone else (a live lease): NOT_FOUND, as beanstalkd answers.
        let deleted = blocking(move || {
            let job = q.job(id)?;
            if job.state == JobState::Done {
                return Err(Error::NotFound(id));
            }
            q.cancel(id)?;
            Ok(job.queue)
        })
        .await;
        match deleted {
            Ok(tube) => {
                self.srv.forget(id);
                self.srv.with_tube(&tube, |t| t.cmd_delete += 1);
                self.send(b"DELETED\r\n").await
            }
            Err(e) => self.not_found_or_internal(&e).await,
        }
    }

    /// The job `id` if this connection holds it with its TTR not over.
    fn held_live(&mut self, id: u64) -> Option<Arc<Job>> {
        self.prune_expired();
        self.held.get(&id).map(|h| h.job.clone())
    }

    async fn touch(&mut self, id: u64) -> io::Result<bool> {
        let Some(job) = self.held_live(id) else { return self.send(b"NOT_FOUND\r\n").await };
        let lease = Duration::from_millis(job.lease_ms());
        let touched = job.clone();
        match blocking(move || touched.touch(0)).await {
            Ok(()) => {
                if let Some(h) = self.held.get_mut(&id) {
                    h.deadline = Instant::now() + lease;
                    self.srv.hold(self.id, h.job.clone(), h.deadline);
                }
                self.send(b"TOUCHED\r\n").await
            }
            Err(e) => {
                if matches!(e, Error::State(_)) {
                    self.held.remove(&id);
                    self.srv.unhold(self.id, id);
                }
                self.not_found_or_internal(&e).await
            }
        }
    }

    /// release and bury: a job this connection holds, its TTR not over
    /// (`None`: it holds no such job).
    async fn finish_held(
        &mut self,
        id: u64,
        op: impl FnOnce(&Job) -> jobq::Result<()> + Send + 'static,
    ) -> Option<jobq::Result<()>> {
        let job = self.held_live(id)?;
        let result = blocking(move || op(&job)).await;
        if matches!(result, Ok(()) | Err(Error::State(_))) {
            self.held.remove(&id);
            self.srv.unhold(self.id, id);
        }
        Some(result)
    }

    async fn release(&mut self, id: u64, pri: u32, delay: u32) -> io::Result<bool> {
        let (delay_ms, priority) = (seconds_to_ms(delay), parse::to_jobq_priority(pri));
        match self.finish_held(id, move |job| job.release_with_priority(delay_ms, priority)).await {
            Some(Ok(())) => {
                self.srv.note(id, |n| {
                    n.releases += 1;
                    n.delay = delay;
                });
                self.send(b"RELEASED\r\n").await
            }
            Some(Err(e)) => self.not_found_or_internal(&e).await,
            None => self.send(b"NOT_FOUND\r\n").await,
        }
    }

    async fn bury(&mut self, id: u64, pri: u32) -> io::Result<bool> {
        let priority = parse::to_jobq_priority(pri);
        match self.finish_held(id, move |job| job.bury_with_priority(None, priority)).await {
            Some(Ok(())) => {
                self.srv.note(id, |n| n.buries += 1);
                self.send(b"BURIED\r\n").await
            }
            Some(Err(e)) => self.not_found_or_internal(&e).await,
            None => self.send(b"NOT_FOUND\r\n").await,
        }
    }

    /// peek-ready, peek-delayed, peek-buried: the next job of the used tube.
    async fn peek_next(&mut self, state: JobState) -> io::Result<bool> {
        let q = self.srv.queue.clone();
        let tube = self.used.clone();
        match blocking(move || q.peek(&tube, state)).await {
            Ok(Some(job)) => self.send_job("FOUND", job.id, &job.payload).await,
            Ok(None) => self.send(b"NOT_FOUND\r\n").await,
            Err(e) => self.internal(&e).await,
        }
    }

    /// Buried jobs of the used tube first (oldest first); if there are none,
    /// the delayed ones that are due soonest. One kick_job each, so that
    /// the kicked jobs are known (their kick counts).
    async fn kick(&mut self, bound: u32) -> io::Result<bool> {
        let q = self.srv.queue.clone();
        let tube = self.used.clone();
        let kicked = blocking(move || {
            let mut kicked = Vec::new();
            for state in [JobState::Dead, JobState::Scheduled] {
                let filter = jobq::JobFilter {
                    queue: Some(tube.clone()),
                    state: Some(state),
                    payload_max: Some(0),
                    ..jobq::JobFilter::default()
                };
                let mut jobs = q.list_jobs(&filter)?;
                if jobs.is_empty() {
                    continue;
                }
                jobs.sort_unstable_by_key(|j| (j.run_at, j.id));
                for job in jobs.iter().take(bound as usize) {
                    match q.kick_job(job.id) {
                        Ok(()) => kicked.push(job.id),
                        // Due, kicked or deleted meanwhile (or a dead job whose
                        // unique key a live job holds): not kicked by us.
                        Err(Error::NotFound(_) | Error::State(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                // Delayed jobs only when there were no buried ones.
                break;
            }
            Ok(kicked)
        })
        .await;
        match kicked {
            Ok(ids) => {
                for id in &ids {
                    self.srv.note(*id, |n| n.kicks += 1);
                }
                self.send(format!("KICKED {}\r\n", ids.len()).as_bytes()).await
            }
            Err(e) => self.internal(&e).await,
        }
    }

    /// reserve-job: jobq leases only the head of a queue, so the job is
    /// reserved when it is (or, buried or delayed, would be once kicked) the
    /// next ready job of its tube; otherwise NOT_FOUND, and nothing changed.
    async fn reserve_job(&mut self, id: u64) -> io::Result<bool> {
        self.set_worker();
        let q = self.srv.queue.clone();
        let leased = blocking(move || {
            let job = q.job(id)?;
            if matches!(job.state, JobState::Reserved | JobState::Done) {
                return Ok(None);
            }
            let head = q.peek(&job.queue, JobState::Ready)?;
            let first = match &head {
                Some(head) => (job.priority, job.id) <= (head.priority, head.id),
                None => true,
            };
            if !first {
                return Ok(None);
            }
            if job.state != JobState::Ready {
                q.kick_job(id)?;
            }
            match q.reserve_any(&[job.queue.as_str()], Some(Duration::ZERO))? {
                Some(got) if got.id() == id => Ok(Some(got)),
                Some(other) => {
                    // Another job came first meanwhile: give it back.
                    other.release(0)?;
                    Ok(None)
                }
                None => Ok(None),
            }
        })
        .await;
        match leased {
            Ok(Some(job)) => self.deliver(job).await,
            Ok(None) => self.send(b"NOT_FOUND\r\n").await,
            Err(e) => self.not_found_or_internal(&e).await,
        }
    }

    async fn pause_tube(&mut self, tube: &str, delay: u32) -> io::Result<bool> {
        let srv = self.srv.clone();
        let name = tube.to_owned();
        let paused = blocking(move || {
            let queues = store_queues(&srv.queue)?;
            if !srv.tubes(&queues).iter().any(|t| t.name == name) {
                return Ok(false);
            }
            // beanstalkd pauses 0 s for 1 ns: over at once (a pause in force ends).
            if delay == 0 {
                srv.queue.resume(&name)?;
            } else {
                srv.queue.pause(&name)?;
            }
            Ok(true)
        })
        .await;
        match paused {
            Ok(true) => {}
            Ok(false) => return self.send(b"NOT_FOUND\r\n").await,
            Err(e) => return self.internal(&e).await,
        }
        let seconds = u64::from(delay);
        let generation = self.srv.start_pause(tube, seconds);
        if seconds > 0 {
            let srv = self.srv.clone();
            let name = tube.to_owned();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(seconds)).await;
                if srv.end_pause(&name, generation) {
                    let q = srv.queue.clone();
                    if let Err(e) = blocking(move || q.resume(&name)).await {
                        eprintln!("jobq-beanstalkd: resuming a paused tube: {e}");
                    }
                }
            });
        }
        self.send(b"PAUSED\r\n").await
    }

    /// After the last command: release the held jobs at once (as beanstalkd
    /// does on disconnect), and drop this connection's uses and watches.
    async fn close(&mut self) {
        let mut jobs: Vec<Arc<Job>> = self.held.drain().map(|(_, h)| h.job).collect();
        // Oldest first, one release at a time: a client waiting meanwhile
        // gets the first of them, as from beanstalkd (HashMap order gave it
        // job 2 before job 1 in CI, tests/beanstalkd_server.rs).
        jobs.sort_unstable_by_key(|j| j.id());
        for job in &jobs {
            self.srv.unhold(self.id, job.id());
        }
        if !jobs.is_empty() {
            let released = blocking(move || {
                for job in jobs {
                    // A delivery whose lease ran out and went to someone else is stale: nothing to give back.
                    match job.release(0) {
                        Ok(()) | Err(Error::State(_)) => {}
                        Err(e) => eprintln!("jobq-beanstalkd: releasing job {}: {e}", job.id()),
                    }
                }
                Ok(())
            });
            let _ = released.await;
        }
        self.srv.with_tube(&self.used, |t| t.using = t.using.saturating_sub(1));
        for tube in &self.watched {
            self.srv.with_tube(tube, |t| t.watching = t.watching.saturating_sub(1));
        }
        if self.producer {
            self.srv.producers.fetch_sub(1, Relaxed);
        }
        if self.worker {
            self.srv.workers.fetch_sub(1, Relaxed);
        }
        self.srv.current_connections.fetch_sub(1, Relaxed);
    }
}

enum Waited {
    Job(Job),
    TimedOut,
    DeadlineSoon,
    Failed(Error),
}

/// The store's queues with their counts.
fn store_queues(q: &Queue) -> jobq::Result<Vec<(String, QueueCounts)>> {
    Ok(q.stats()?.queues.into_iter().collect())
}
