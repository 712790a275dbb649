//! `jobq-beanstalkd` end to end: the built binary on a free port over a
//! temp file and over a PostgreSQL schema, checked by the exact bytes of
//! its replies (as beanstalkd 1.12 writes them), against the Rust API on
//! the same store, and with clients that leave, pipeline, half-send bodies
//! or send garbage.

#[path = "support/pg.rs"]
mod pg;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jobq::{Config, JobState, PutOptions, Queue};

/// A running server over a store of its own; killed on drop.
struct Server {
    child: Child,
    addr: String,
    store: PathBuf,
    _dir: tempfile::TempDir,
    _schema: Option<pg::Schema>,
}

impl Server {
    fn start(postgres: bool) -> Server {
        Self::start_with(postgres, &[])
    }

    fn start_with(postgres: bool, extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let (store, schema) = pg::store(dir.path(), "bs.db", postgres);
        let mut child = Command::new(env!("CARGO_BIN_EXE_jobq-beanstalkd"))
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .arg(&store)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().rsplit(' ').next().unwrap().to_owned();
        assert!(line.starts_with("jobq-beanstalkd listening on "), "{line:?}");
        Server { child, addr, store, _dir: dir, _schema: schema }
    }

    fn connect(&self) -> Client {
        let stream = TcpStream::connect(&self.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Client { reader: BufReader::new(stream.try_clone().unwrap()), stream }
    }

    /// The same store through the Rust API.
    fn queue(&self) -> Queue {
        Queue::open(&self.store, Config::default()).unwrap()
    }

    fn assert_alive(&mut self) {
        assert!(self.child.try_wait().unwrap().is_none(), "the server exited");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Client {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn line(&mut self) -> String {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).unwrap();
        String::from_utf8(line).unwrap()
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        self.reader.read_exact(&mut buf).unwrap();
        buf
    }

    /// Sends `cmd` and checks that the reply is exactly `want`.
    fn expect(&mut self, cmd: &str, want: &str) {
        self.send(cmd.as_bytes());
        let got = self.bytes(want.len());
        assert_eq!(String::from_utf8_lossy(&got), want, "reply to {cmd:?}");
    }

    /// Sends `cmd`, reads "OK <n>\r\n<yaml>\r\n" and returns the YAML.
    fn yaml(&mut self, cmd: &str) -> String {
        self.send(cmd.as_bytes());
        let head = self.line();
        let n: usize = head.strip_prefix("OK ").and_then(|r| r.trim_end().parse().ok()).unwrap_or_else(|| {
            panic!("reply to {cmd:?}: {head:?}");
        });
        let body = self.bytes(n + 2);
        assert!(body.ends_with(b"\r\n"), "{body:?}");
        String::from_utf8(body[..n].to_vec()).unwrap()
    }

    /// Reads until the server closes the connection.
    fn rest(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        let _ = self.reader.read_to_end(&mut all);
        all
    }
}

/// The keys of a YAML dictionary body, in order, and its value of `key`.
fn keys(yaml: &str) -> Vec<&str> {
    assert!(yaml.starts_with("---\n"), "{yaml:?}");
    yaml.lines().skip(1).map(|l| l.split_once(": ").unwrap().0).collect()
}

fn value<'a>(yaml: &'a str, key: &str) -> &'a str {
    yaml.lines().find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(": "))).unwrap_or_else(|| {
        panic!("no {key} in {yaml}");
    })
}

/// One test per backend: `name::sqlite` and `name::postgres`.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        $(mod $name {
            #[test]
            fn sqlite() {
                super::$name(false)
            }
            #[test]
            fn postgres() {
                super::$name(true)
            }
        })*
    };
}

on_both!(
    producer_and_worker_replies,
    peek_kick_bury_release,
    errors_and_line_limits,
    stats_yaml,
    tubes_and_watches,
    pipelined_commands_in_one_write,
    interop_with_the_rust_api,
    disconnect_releases_reserved_jobs,
    a_client_leaving_a_blocking_reserve_gets_no_job,
    deadline_soon,
    pause_tube,
    idle_and_half_sent_connections_do_not_block_others,
    delete_by_others_and_reserve_job,
    sigterm_gives_held_jobs_back,
);

fn producer_and_worker_replies(postgres: bool) {
    let srv = Server::start(postgres);
    let mut c = srv.connect();
    c.expect("put 5 0 10 3\r\nabc\r\n", "INSERTED 1\r\n");
    c.expect("put 0 0 0 0\r\n\r\n", "INSERTED 2\r\n");
    // Smaller priority first.
    c.expect("reserve\r\n", "RESERVED 2 0\r\n\r\n");
    // Job 2's TTR is 1 s (0 becomes 1), so it is in its last second: a
    // reserve still takes a ready job, else answers DEADLINE_SOON at once.
    c.expect("reserve-with-timeout 0\r\n", "RESERVED 1 3\r\nabc\r\n");
    c.expect("reserve-with-timeout 0\r\n", "DEADLINE_SOON\r\n");
    c.expect("touch 1\r\n", "TOUCHED\r\n");
    c.expect("touch 99\r\n", "NOT_FOUND\r\n");
    let job = c.yaml("stats-job 1\r\n");
    assert_eq!(value(&job, "state"), "reserved");
    assert_eq!(value(&job, "pri"), "5");
    assert_eq!(value(&job, "ttr"), "10");
    assert_eq!(value(&job, "reserves"), "1");
    assert!(["9", "10"].contains(&value(&job, "time-left")), "{job}");
    c.expect("delete 1\r\n", "DELETED\r\n");
    c.expect("delete 1\r\n", "NOT_FOUND\r\n");
    // TTR 0 is 1 s.
    let zero_ttr = c.yaml("stats-job 2\r\n");
    assert_eq!(value(&zero_ttr, "ttr"), "1");
    c.expect("delete 2\r\n", "DELETED\r\n");
    // A job reserved by nobody can be deleted too.
    c.expect("put 1 0 5 2\r\nhi\r\n", "INSERTED 3\r\n");
    c.expect("delete 3\r\n", "DELETED\r\n");
    c.expect("quit\r\n", "");
    assert!(c.rest().is_empty());
}

fn peek_kick_bury_release(postgres: bool) {
    let srv = Server::start(postgres);
    let mut c = srv.connect();
    c.expect("put 5 0 10 3\r\nabc\r\n", "INSERTED 1\r\n");
    c.expect("put 1 100 10 1\r\nx\r\n", "INSERTED 2\r\n");
    c.expect("put 2 0 10 2\r\nyy\r\n", "INSERTED 3\r\n");
    c.expect("peek-ready\r\n", "FOUND 3 2\r\nyy\r\n");
    c.expect("peek-delayed\r\n", "FOUND 2 1\r\nx\r\n");
    c.expect("peek-buried\r\n", "NOT_FOUND\r\n");
    c.expect("peek 1\r\n", "FOUND 1 3\r\nabc\r\n");
    c.expect("peek 99\r\n", "NOT_FOUND\r\n");
    let delayed = c.yaml("stats-job 2\r\n");
    assert_eq!(value(&delayed, "state"), "delayed");
    assert_eq!(value(&delayed, "delay"), "100");
    assert!(["99", "100"].contains(&value(&delayed, "time-left")), "{delayed}");

    c.expect("reserve-with-timeout 0\r\n", "RESERVED 3 2\r\nyy\r\n");
    c.expect("bury 3 7\r\n", "BURIED\r\n");
    c.expect("bury 3 7\r\n", "NOT_FOUND\r\n");
    c.expect("peek-buried\r\n", "FOUND 3 2\r\nyy\r\n");
    let buried = c.yaml("stats-job 3\r\n");
    assert_eq!((value(&buried, "state"), value(&buried, "pri")), ("buried", "7"));
    // Buried first; then delayed ones when none is buried.
    c.expect("kick 10\r\n", "KICKED 1\r\n");
    c.expect("kick 10\r\n", "KICKED 1\r\n");
    c.expect("kick 10\r\n", "KICKED 0\r\n");
    c.expect("kick-job 2\r\n", "NOT_FOUND\r\n");
    c.expect("kick-job 99\r\n", "NOT_FOUND\r\n");
    // Now 2 (pri 1), 1 (pri 5), 3 (pri 7) are ready.
    c.expect("reserve\r\n", "RESERVED 2 1\r\nx\r\n");
    c.expect("release 2 9 0\r\n", "RELEASED\r\n");
    c.expect("release 2 9 0\r\n", "NOT_FOUND\r\n");
    assert_eq!(value(&c.yaml("stats-job 2\r\n"), "pri"), "9");
    c.expect("reserve\r\n", "RESERVED 1 3\r\nabc\r\n");
    c.expect("release 1 0 100\r\n", "RELEASED\r\n");
    assert_eq!(value(&c.yaml("stats-job 1\r\n"), "state"), "delayed");
    c.expect("kick-job 1\r\n", "KICKED\r\n");
    c.expect("reserve\r\n", "RESERVED 1 3\r\nabc\r\n");
    c.expect("bury 1 0\r\n", "BURIED\r\n");
    c.expect("kick-job 1\r\n", "KICKED\r\n");
    c.expect("peek-ready\r\n", "FOUND 1 3\r\nabc\r\n");
    // The counts jobq does not keep, as this server saw them.
    let one = c.yaml("stats-job 1\r\n");
    let counts: Vec<&str> =
        ["reserves", "timeouts", "releases", "buries", "kicks", "delay"].iter().map(|k| value(&one, k)).collect();
    assert_eq!(counts, ["2", "0", "1", "1", "2", "100"], "{one}");
    let three = c.yaml("stats-job 3\r\n");
    assert_eq!((value(&three, "buries"), value(&three, "kicks")), ("1", "1"), "{three}");
}

fn errors_and_line_limits(postgres: bool) {
    let srv = Server::start_with(postgres, &["--max-job-size", "10"]);
    let mut c = srv.connect();
    c.expect("bogus\r\n", "UNKNOWN_COMMAND\r\n");
    c.expect("\r\n", "UNKNOWN_COMMAND\r\n");
    c.expect("put\r\n", "UNKNOWN_COMMAND\r\n");
    c.expect("delete abc\r\n", "BAD_FORMAT\r\n");
    c.expect("delete 1 \r\n", "BAD_FORMAT\r\n");
    c.expect("delete 18446744073709551616\r\n", "BAD_FORMAT\r\n");
    c.expect("release 1\r\n", "BAD_FORMAT\r\n");
    c.expect("put 4294967296 0 1 1\r\n", "BAD_FORMAT\r\n");
    c.expect("put 1 0 1 1 x\r\n", "BAD_FORMAT\r\n");
    c.expect("reservex\r\n", "BAD_FORMAT\r\n");
    c.expect("stats\0\r\n", "BAD_FORMAT\r\n");
    c.expect("use -x\r\n", "BAD_FORMAT\r\n");
    c.expect("use a b\r\n", "BAD_FORMAT\r\n");
    c.expect(&format!("use {}\r\n", "a".repeat(201)), "BAD_FORMAT\r\n");
    c.expect(&format!("use {}\r\n", "a".repeat(200)), &format!("USING {}\r\n", "a".repeat(200)));
    c.expect("use default\r\n", "USING default\r\n");
    // A body over --max-job-size is read and dropped: the next command works.
    c.expect("put 0 0 1 11\r\n01234567890\r\nput 0 0 1 2\r\nok\r\n", "JOB_TOO_BIG\r\nINSERTED 1\r\n");
    // A body of the size given but not followed by "\r\n".
    c.expect("put 0 0 1 3\r\nabcde\r\n", "EXPECTED_CRLF\r\n");
    // ... what follows is read as a command (here an empty line).
    c.expect("", "UNKNOWN_COMMAND\r\n");
    c.expect("ignore default\r\n", "NOT_IGNORED\r\n");
    c.expect("stats-job 99\r\n", "NOT_FOUND\r\n");
    c.expect("stats-tube nosuch\r\n", "NOT_FOUND\r\n");
    c.expect("pause-tube nosuch 1\r\n", "NOT_FOUND\r\n");
    c.expect("pause-tube default x\r\n", "BAD_FORMAT\r\n");
    // Lines of 224 bytes with "\r\n" are read; longer ones are BAD_FORMAT
    // once their end comes, whatever their length.
    c.expect(&format!("{}\r\n", "x".repeat(222)), "UNKNOWN_COMMAND\r\n");
    // 225 bytes: the first 224 (the '\r' with them) are dropped, so, as in
    // beanstalkd, the line only ends at the next "\r\n": that line is lost.
    c.expect(&format!("{}\r\nstats-job 99\r\n", "x".repeat(223)), "BAD_FORMAT\r\n");
    c.expect(&format!("{}\r\nstats-job 99\r\n", "x".repeat(10_000)), "BAD_FORMAT\r\nNOT_FOUND\r\n");
    // Sent in pieces: the same.
    c.send("y".repeat(300).as_bytes());
    c.send("y".repeat(300).as_bytes());
    c.expect("\r\npeek 99\r\n", "BAD_FORMAT\r\nNOT_FOUND\r\n");
    // A huge announced body is skipped as it streams in, not buffered.
    c.send(b"put 0 0 1 3000000\r\n");
    let chunk = vec![b'z'; 100_000];
    for _ in 0..30 {
        c.send(&chunk);
    }
    c.expect("\r\npeek 1\r\n", "JOB_TOO_BIG\r\nFOUND 1 2\r\nok\r\n");
}

/// beanstalkd 1.12's stats keys, in its order.
const STATS_KEYS: &[&str] = &[
    "current-jobs-urgent",
    "current-jobs-ready",
    "current-jobs-reserved",
    "current-jobs-delayed",
    "current-jobs-buried",
    "cmd-put",
    "cmd-peek",
    "cmd-peek-ready",
    "cmd-peek-delayed",
    "cmd-peek-buried",
    "cmd-reserve",
    "cmd-reserve-with-timeout",
    "cmd-delete",
    "cmd-release",
    "cmd-use",
    "cmd-watch",
    "cmd-ignore",
    "cmd-bury",
    "cmd-kick",
    "cmd-touch",
    "cmd-stats",
    "cmd-stats-job",
    "cmd-stats-tube",
    "cmd-list-tubes",
    "cmd-list-tube-used",
    "cmd-list-tubes-watched",
    "cmd-pause-tube",
    "job-timeouts",
    "total-jobs",
    "max-job-size",
    "current-tubes",
    "current-connections",
    "current-producers",
    "current-workers",
    "current-waiting",
    "total-connections",
    "pid",
    "version",
    "rusage-utime",
    "rusage-stime",
    "uptime",
    "binlog-oldest-index",
    "binlog-current-index",
    "binlog-records-migrated",
    "binlog-records-written",
    "binlog-max-size",
    "draining",
    "id",
    "hostname",
    "os",
    "platform",
];

fn stats_yaml(postgres: bool) {
    let srv = Server::start(postgres);
    let mut c = srv.connect();
    c.expect("put 5 0 10 3\r\nabc\r\n", "INSERTED 1\r\n");
    c.expect("put 2000 0 10 1\r\nb\r\n", "INSERTED 2\r\n");
    c.expect("put 1 100 10 1\r\nc\r\n", "INSERTED 3\r\n");
    let stats = c.yaml("stats\r\n");
    assert_eq!(keys(&stats), STATS_KEYS);
    for (key, want) in [
        ("current-jobs-urgent", "1"),
        ("current-jobs-ready", "2"),
        ("current-jobs-delayed", "1"),
        ("cmd-put", "3"),
        ("cmd-stats", "1"),
        ("total-jobs", "3"),
        ("max-job-size", "65535"),
        ("current-tubes", "1"),
        ("current-connections", "1"),
        ("current-producers", "1"),
        ("draining", "false"),
    ] {
        assert_eq!(value(&stats, key), want, "{key}");
    }
    assert_eq!(value(&stats, "pid"), srv.child.id().to_string());
    assert!(value(&stats, "version").starts_with('"'));

    let tube = c.yaml("stats-tube default\r\n");
    let want_tube = "---\nname: default\ncurrent-jobs-urgent: 1\ncurrent-jobs-ready: 2\ncurrent-jobs-reserved: 0\n\
                     current-jobs-delayed: 1\ncurrent-jobs-buried: 0\ntotal-jobs: 3\ncurrent-using: 1\n\
                     current-watching: 1\ncurrent-waiting: 0\ncmd-delete: 0\ncmd-pause-tube: 0\npause: 0\n\
                     pause-time-left: 0\n";
    assert_eq!(tube, want_tube);

    let job = c.yaml("stats-job 1\r\n");
    let want_job = "---\nid: 1\ntube: default\nstate: ready\npri: 5\nage: 0\ndelay: 0\nttr: 10\ntime-left: 0\n\
                    file: 0\nreserves: 0\ntimeouts: 0\nreleases: 0\nburies: 0\nkicks: 0\n";
    assert_eq!(job, want_job);
    assert_eq!(c.yaml("list-tubes\r\n"), "---\n- default\n");
    assert_eq!(c.yaml("list-tubes-watched\r\n"), "---\n- default\n");
}

fn tubes_and_watches(postgres: bool) {
    let srv = Server::start(postgres);
    let mut c = srv.connect();
    c.expect("list-tube-used\r\n", "USING default\r\n");
    c.expect("use a\r\n", "USING a\r\n");
    c.expect("put 10 0 10 1\r\na\r\n", "INSERTED 1\r\n");
    c.expect("use b\r\n", "USING b\r\n");
    c.expect("put 5 0 10 1\r\nb\r\n", "INSERTED 2\r\n");
    c.expect("list-tube-used\r\n", "USING b\r\n");
    assert_eq!(c.yaml("list-tubes\r\n"), "---\n- default\n- a\n- b\n");
    c.expect("watch a\r\n", "WATCHING 2\r\n");
    c.expect("watch a\r\n", "WATCHING 2\r\n");
    c.expect("watch b\r\n", "WATCHING 3\r\n");
    c.expect("ignore default\r\n", "WATCHING 2\r\n");
    c.expect("ignore nosuch\r\n", "WATCHING 2\r\n");
    // As in beanstalkd, the last watched tube took the place of the ignored one.
    assert_eq!(c.yaml("list-tubes-watched\r\n"), "---\n- b\n- a\n");
    // The smallest priority over the watched tubes.
    c.expect("reserve\r\n", "RESERVED 2 1\r\nb\r\n");
    c.expect("reserve\r\n", "RESERVED 1 1\r\na\r\n");
    c.expect("ignore a\r\n", "WATCHING 1\r\n");
    c.expect("ignore b\r\n", "NOT_IGNORED\r\n");
    let a = c.yaml("stats-tube a\r\n");
    assert_eq!(value(&a, "current-jobs-reserved"), "1");
    assert_eq!(value(&a, "current-watching"), "0");
    let b = c.yaml("stats-tube b\r\n");
    assert_eq!((value(&b, "current-using"), value(&b, "current-watching")), ("1", "1"));
    // Up to 64 watched tubes: what one reserve over them takes.
    for i in 0..63 {
        c.send(format!("watch w{i}\r\n").as_bytes());
        let want = format!("WATCHING {}\r\n", i + 2);
        assert_eq!(c.line(), want);
    }
    c.expect("watch one-too-many\r\n", "OUT_OF_MEMORY\r\n");
    c.expect("reserve-with-timeout 0\r\n", "TIMED_OUT\r\n");
}

fn pipelined_commands_in_one_write(postgres: bool) {
    let srv = Server::start(postgres);
    let mut c = srv.connect();
    let mut script = String::new();
    let mut want = String::new();
    for i in 1..=50 {
        script.push_str(&format!("put 0 0 10 {}\r\njob-{i}\r\n", format!("job-{i}").len()));
        want.push_str(&format!("INSERTED {i}\r\n"));
    }
    for i in 1..=50 {
        script.push_str("reserve-with-timeout 0\r\n");
        want.push_str(&format!("RESERVED {i} {}\r\njob-{i}\r\n", format!("job-{i}").len()));
        script.push_str(&format!("delete {i}\r\n"));
        want.push_str("DELETED\r\n");
    }
    script.push_str("reserve-with-timeout 0\r\nlist-tube-used\r\nquit\r\n");
    want.push_str("TIMED_OUT\r\nUSING default\r\n");
    c.send(script.as_bytes());
    assert_eq!(String::from_utf8(c.rest()).unwrap(), want);
}

fn interop_with_the_rust_api(postgres: bool) {
    let srv = Server::start(postgres);
    let q = srv.queue();
    let mut c = srv.connect();
    // beanstalkd -> jobq: priority p is p - 2^31, TTR s is a lease of s * 1000 ms.
    c.expect("use mail\r\n", "USING mail\r\n");
    c.expect("put 4294967295 0 7 5\r\nhello\r\n", "INSERTED 1\r\n");
    c.expect("put 0 0 7 5\r\nfirst\r\n", "INSERTED 2\r\n");
    let job = q.reserve("mail", Some(Duration::from_secs(5))).unwrap().unwrap();
    assert_eq!((job.id(), job.payload(), job.lease_ms()), (2, &b"first"[..], 7_000));
    assert_eq!(q.job(2).unwrap().priority, i32::MIN);
    assert_eq!(q.job(1).unwrap().priority, i32::MAX);
    // The server sees the Rust worker's reservation.
    assert_eq!(value(&c.yaml("stats-job 2\r\n"), "state"), "reserved");
    c.expect("delete 2\r\n", "NOT_FOUND\r\n");
    job.ack().unwrap();
    c.expect("peek 2\r\n", "NOT_FOUND\r\n");

    // jobq -> beanstalkd: a put through the API is reserved over TCP, also by a waiting reserve.
    c.expect("watch mail\r\n", "WATCHING 2\r\n");
    c.expect("ignore default\r\n", "WATCHING 1\r\n");
    c.expect("reserve-with-timeout 0\r\n", "RESERVED 1 5\r\nhello\r\n");
    c.expect("delete 1\r\n", "DELETED\r\n");
    c.send(b"reserve-with-timeout 10\r\n");
    std::thread::sleep(Duration::from_millis(300));
    let opts = PutOptions { priority: jobq_priority(3), ..PutOptions::default() };
    let id = q.put("mail", b"from rust", &opts).unwrap().id();
    assert_eq!(c.line(), format!("RESERVED {id} 9\r\n"));
    assert_eq!(c.bytes(11), b"from rust\r\n");
    assert_eq!(value(&c.yaml(&format!("stats-job {id}\r\n")), "pri"), "3");
    c.expect(&format!("bury {id} 4\r\n"), "BURIED\r\n");
    assert_eq!(q.job(id).unwrap().state, JobState::Dead);
    assert_eq!(q.kick("mail", 10).unwrap(), 1);
    c.expect("peek-ready\r\n", &format!("FOUND {id} 9\r\nfrom rust\r\n"));
    q.close().unwrap();
}

fn jobq_priority(beanstalkd: u32) -> i32 {
    (i64::from(beanstalkd) - (1i64 << 31)) as i32
}

fn disconnect_releases_reserved_jobs(postgres: bool) {
    let srv = Server::start(postgres);
    let mut a = srv.connect();
    a.expect("put 0 0 100 1\r\nx\r\n", "INSERTED 1\r\n");
    a.expect("put 0 0 100 1\r\ny\r\n", "INSERTED 2\r\n");
    a.expect("reserve\r\n", "RESERVED 1 1\r\nx\r\n");
    a.expect("reserve\r\n", "RESERVED 2 1\r\ny\r\n");
    let mut b = srv.connect();
    b.expect("reserve-with-timeout 0\r\n", "TIMED_OUT\r\n");
    drop(a);
    // Back at once, not after the TTR of 100 s.
    let started = Instant::now();
    b.expect("reserve-with-timeout 5\r\n", "RESERVED 1 1\r\nx\r\n");
    b.expect("reserve-with-timeout 5\r\n", "RESERVED 2 1\r\ny\r\n");
    assert!(started.elapsed() < Duration::from_secs(5));
    // A connection quitting also gives its jobs back.
    b.expect("quit\r\n", "");
    let mut c = srv.connect();
    c.expect("reserve-with-timeout 5\r\n", "RESERVED 1 1\r\nx\r\n");
}

fn a_client_leaving_a_blocking_reserve_gets_no_job(postgres: bool) {
    let srv = Server::start(postgres);
    // Gone while waiting: the job put afterwards is not kept for it.
    let mut gone = srv.connect();
    gone.send(b"reserve\r\n");
    std::thread::sleep(Duration::from_millis(300));
    drop(gone);
    // Half-closed while waiting: TIMED_OUT, as beanstalkd answers.
    let mut half = srv.connect();
    half.send(b"reserve-with-timeout 30\r\n");
    std::thread::sleep(Duration::from_millis(300));
    half.stream.shutdown(Shutdown::Write).unwrap();
    assert_eq!(String::from_utf8(half.rest()).unwrap(), "TIMED_OUT\r\n");
    let mut p = srv.connect();
    p.expect("put 0 0 100 1\r\nx\r\n", "INSERTED 1\r\n");
    std::thread::sleep(Duration::from_millis(1500));
    p.expect("reserve-with-timeout 3\r\n", "RESERVED 1 1\r\nx\r\n");
    let stats = p.yaml("stats\r\n");
    assert_eq!(value(&stats, "current-waiting"), "0");
    assert_eq!(value(&stats, "current-connections"), "1");
}

fn deadline_soon(postgres: bool) {
    let srv = Server::start(postgres);
    let mut c = srv.connect();
    c.expect("put 0 0 2 1\r\nx\r\n", "INSERTED 1\r\n");
    c.expect("reserve\r\n", "RESERVED 1 1\r\nx\r\n");
    // Waiting with a job whose TTR ends in 2 s: DEADLINE_SOON once 1 s is left.
    let started = Instant::now();
    c.expect("reserve-with-timeout 10\r\n", "DEADLINE_SOON\r\n");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(700) && waited < Duration::from_millis(1900), "{waited:?}");
    // In the margin: at once.
    c.expect("reserve\r\n", "DEADLINE_SOON\r\n");
    c.expect("touch 1\r\n", "TOUCHED\r\n");
    c.expect("reserve-with-timeout 0\r\n", "TIMED_OUT\r\n");
    // A TTR that ran out: the job is ready again, for anyone.
    std::thread::sleep(Duration::from_millis(2200));
    c.expect("release 1 0 0\r\n", "NOT_FOUND\r\n");
    let mut other = srv.connect();
    other.expect("reserve-with-timeout 2\r\n", "RESERVED 1 1\r\nx\r\n");
    assert_eq!(value(&other.yaml("stats-job 1\r\n"), "timeouts"), "1");
    assert_eq!(value(&other.yaml("stats\r\n"), "job-timeouts"), "1");
}

fn pause_tube(postgres: bool) {
    let srv = Server::start(postgres);
    let mut c = srv.connect();
    c.expect("put 0 0 10 1\r\nx\r\n", "INSERTED 1\r\n");
    c.expect("pause-tube default 2\r\n", "PAUSED\r\n");
    let tube = c.yaml("stats-tube default\r\n");
    assert_eq!((value(&tube, "pause"), value(&tube, "cmd-pause-tube")), ("2", "1"));
    assert!(["1", "2"].contains(&value(&tube, "pause-time-left")), "{tube}");
    assert!(srv.queue().stats().unwrap().queues["default"].paused);
    c.expect("reserve-with-timeout 0\r\n", "TIMED_OUT\r\n");
    let started = Instant::now();
    c.expect("reserve-with-timeout 10\r\n", "RESERVED 1 1\r\nx\r\n");
    assert!(started.elapsed() > Duration::from_millis(1000), "{:?}", started.elapsed());
    let tube = c.yaml("stats-tube default\r\n");
    assert_eq!((value(&tube, "pause"), value(&tube, "pause-time-left")), ("0", "0"));
    assert!(!srv.queue().stats().unwrap().queues["default"].paused);
}

fn idle_and_half_sent_connections_do_not_block_others(postgres: bool) {
    let mut srv = Server::start(postgres);
    let mut idle: Vec<TcpStream> = (0..1000).map(|_| TcpStream::connect(&srv.addr).unwrap()).collect();
    let mut half = srv.connect();
    half.send(b"put 0 0 10 100\r\nonly part of the body");
    let mut long_line = srv.connect();
    long_line.send(&[b'x'; 200]);
    let mut waiting = srv.connect();
    waiting.send(b"reserve\r\n");
    let mut c = srv.connect();
    let started = Instant::now();
    c.expect("put 0 0 10 2\r\nok\r\n", "INSERTED 1\r\n");
    c.expect("peek 1\r\n", "FOUND 1 2\r\nok\r\n");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    // Every connection is served (accepted) meanwhile.
    let deadline = Instant::now() + Duration::from_secs(20);
    while value(&c.yaml("stats\r\n"), "current-connections") != "1004" {
        assert!(Instant::now() < deadline, "not all connections were accepted");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(waiting.line(), "RESERVED 1 2\r\n");
    // Garbage on the idle connections changes nothing for the others.
    for s in idle.iter_mut().take(100) {
        let _ = s.write_all(b"\xff\xfe\x00garbage\r\nput 1 2\r\n");
    }
    half.send(b"\r\n");
    drop(idle);
    drop(half);
    c.expect("stats-job 99\r\n", "NOT_FOUND\r\n");
    srv.assert_alive();
    // The half-sent body was never stored.
    std::thread::sleep(Duration::from_millis(200));
    c.expect("peek 2\r\n", "NOT_FOUND\r\n");
    c.expect("put 0 0 10 2\r\nok\r\n", "INSERTED 2\r\n");
}

fn delete_by_others_and_reserve_job(postgres: bool) {
    let srv = Server::start(postgres);
    let mut a = srv.connect();
    let mut b = srv.connect();
    a.expect("put 0 0 100 1\r\nx\r\n", "INSERTED 1\r\n");
    a.expect("put 5 0 100 1\r\ny\r\n", "INSERTED 2\r\n");
    a.expect("reserve\r\n", "RESERVED 1 1\r\nx\r\n");
    // Reserved by someone else: neither deleted, released, buried nor touched.
    b.expect("delete 1\r\n", "NOT_FOUND\r\n");
    b.expect("release 1 0 0\r\n", "NOT_FOUND\r\n");
    b.expect("bury 1 0\r\n", "NOT_FOUND\r\n");
    b.expect("touch 1\r\n", "NOT_FOUND\r\n");
    b.expect("reserve-job 1\r\n", "NOT_FOUND\r\n");
    b.expect("reserve-job 99\r\n", "NOT_FOUND\r\n");
    // The next ready job can be reserved by id; so can a buried one that would come first.
    b.expect("reserve-job 2\r\n", "RESERVED 2 1\r\ny\r\n");
    b.expect("bury 2 1\r\n", "BURIED\r\n");
    b.expect("reserve-job 2\r\n", "RESERVED 2 1\r\ny\r\n");
    a.expect("delete 1\r\n", "DELETED\r\n");
    b.expect("delete 2\r\n", "DELETED\r\n");
}

fn sigterm_gives_held_jobs_back(postgres: bool) {
    let mut srv = Server::start(postgres);
    let mut c = srv.connect();
    c.expect("put 0 0 100 1\r\nx\r\n", "INSERTED 1\r\n");
    c.expect("reserve\r\n", "RESERVED 1 1\r\nx\r\n");
    let q = srv.queue();
    assert!(q.reserve("default", Some(Duration::ZERO)).unwrap().is_none());
    let killed = Command::new("kill").args(["-TERM", &srv.child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = srv.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    // Ready at once, not after the TTR of 100 s.
    let job = q.reserve("default", Some(Duration::from_secs(5))).unwrap().unwrap();
    assert_eq!(job.id(), 1);
    job.ack().unwrap();
    q.close().unwrap();
}
