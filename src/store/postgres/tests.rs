//! Tests against a running server: `JOBQ_TEST_PG_URL` (default
//! `postgresql://postgres@127.0.0.1:5432/test`). Each test works in a
//! schema of its own and drops it at the end.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::PgStore;
use crate::clock::{Clock, ManualClock, SystemClock};
use crate::config::Config;
use crate::error::Error;
use crate::notify::Notifier;
use crate::qconfig::{LimitsPatch, Rate};
use crate::store::{Env, Finish, JobFilter, JobState, NewJob, NewSchedule, Put, QueueCounts, ReserveIf, Store};

fn base_url() -> String {
    std::env::var("JOBQ_TEST_PG_URL").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".into())
}

fn url_for(schema: &str) -> String {
    let base = base_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}schema={schema}")
}

/// Runs `sql` on a connection of its own (setup and checks of the tests).
fn admin(sql: &str) -> Vec<tokio_postgres::Row> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&base_url(), tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client.simple_query("SET client_min_messages = warning").await.unwrap();
        let rows = client.query(sql, &[]).await.unwrap();
        rows
    })
}

/// A schema of the test's own, dropped when it ends (also on failure).
struct Schema(String);

impl Schema {
    fn new(tag: &str) -> Schema {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!("jobq_t_{tag}_{}_{}", std::process::id(), N.fetch_add(1, SeqCst));
        admin(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"));
        Schema(name)
    }
    fn url(&self) -> String {
        url_for(&self.0)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        admin(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.0));
    }
}

fn config() -> Config {
    Config { lease_ms: 1_000, max_attempts: 3, ..Config::default() }
}

fn open(s: &Schema, clock: Arc<dyn Clock>) -> PgStore {
    open_with(s, clock, &config()).unwrap()
}

fn open_with(s: &Schema, clock: Arc<dyn Clock>, config: &Config) -> crate::error::Result<PgStore> {
    PgStore::open(&s.url(), config, Env { clock, notifier: Arc::new(Notifier::default()) })
}

fn job(queue: &str) -> NewJob {
    NewJob { queue: queue.into(), priority: 0, delay_ms: 0, max_attempts: 3, lease_ms: 1_000, unique_key: None }
}

fn q(name: &str) -> Arc<str> {
    name.into()
}

fn counts_of(st: &PgStore, queue: &str) -> QueueCounts {
    st.counts().unwrap().into_iter().find(|(n, _)| n == queue).map(|(_, c)| c).unwrap_or_default()
}

#[test]
fn put_reserve_ack_in_priority_then_fifo_order() {
    let s = Schema::new("basic");
    let clock = Arc::new(ManualClock::new(1_000_000));
    let st = open(&s, clock.clone());
    assert_eq!(st.last_job_id().unwrap(), 0);
    let a = st.put(job("mail"), b"a".to_vec()).unwrap().id();
    let b = st.put(job("mail"), b"b".to_vec()).unwrap().id();
    let c = st.put(NewJob { priority: -1, ..job("mail") }, b"c".to_vec()).unwrap().id();
    assert!(a < b && b < c);
    assert_eq!(st.last_job_id().unwrap(), c);
    st.put(job("empty-later"), Vec::new()).unwrap();
    let got = st.reserve(&q("mail"), 3).unwrap();
    assert_eq!(got.len(), 3);
    let ids: Vec<u64> = got.first.iter().chain(&got.more).map(|d| d.id).collect();
    assert_eq!(ids, vec![c, a, b]);
    let first = got.first.unwrap();
    assert_eq!((first.attempt, first.payload.as_slice()), (1, &b"c"[..]));
    assert_eq!(counts_of(&st, "mail"), QueueCounts { reserved: 3, ..Default::default() });
    assert!(st.finish(first.id, first.token, Finish::Ack).unwrap());
    assert!(!st.finish(first.id, first.token, Finish::Ack).unwrap(), "a second ack is stale");
    assert!(st.job(first.id).unwrap().is_none());
    let info = st.job(a).unwrap().unwrap();
    assert_eq!((info.state, info.attempts, info.queue.as_str()), (JobState::Reserved, 1, "mail"));
    assert!(info.lease_owner.is_some());
    // Acks of several deliveries at once (one batched DELETE).
    let acks = got.more.iter().map(|d| (d.id, d.token, Finish::Ack)).collect();
    let (done, next) = st.finish_and_reserve(&q("mail"), acks, 1, ReserveIf::Always).unwrap();
    assert_eq!(done, vec![true, true]);
    assert!(next.first.is_none() && next.next_due.is_none());
    let names: Vec<String> = st.counts().unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["empty-later".to_string(), "mail".to_string()]);
    assert_eq!(st.list(&JobFilter::default()).unwrap().len(), 1);
    st.close();
    assert!(matches!(st.put(job("mail"), vec![]), Err(Error::Shutdown(_))));
}

#[test]
fn delays_and_expired_leases_count_attempts_then_go_dead() {
    let s = Schema::new("lease");
    let clock = Arc::new(ManualClock::new(5_000_000));
    let st = open(&s, clock.clone());
    let id = st.put(NewJob { delay_ms: 100, max_attempts: 2, lease_ms: 50, ..job("q") }, b"x".to_vec()).unwrap().id();
    assert_eq!(counts_of(&st, "q").scheduled, 1);
    let none = st.reserve(&q("q"), 1).unwrap();
    assert!(none.first.is_none());
    assert_eq!(none.next_due, Some(5_000_100));
    clock.advance(100);
    let d1 = st.reserve(&q("q"), 1).unwrap().first.unwrap();
    assert_eq!((d1.id, d1.attempt), (id, 1));
    assert_eq!(st.reserve(&q("q"), 1).unwrap().next_due, Some(5_000_150));
    clock.advance(60);
    assert_eq!(counts_of(&st, "q").ready, 1, "an expired lease is ready again");
    let d2 = st.reserve(&q("q"), 1).unwrap().first.unwrap();
    assert_eq!((d2.id, d2.attempt), (id, 2));
    assert_ne!(d1.token, d2.token);
    // The first delivery is stale: nothing it does changes anything.
    for f in [
        Finish::Ack,
        Finish::Fail { reason: None, delay_ms: 0 },
        Finish::Release { delay_ms: 0, priority: None },
        Finish::Touch { lease_ms: 0 },
        Finish::Bury { reason: None, priority: None },
    ] {
        assert!(!st.finish(d1.id, d1.token, f).unwrap());
    }
    assert_eq!(st.job(id).unwrap().unwrap().state, JobState::Reserved);
    clock.advance(60);
    assert_eq!(counts_of(&st, "q").dead, 1, "expired on its last attempt");
    // It cannot be revived by its holder, but can still be acked or buried.
    assert!(!st.finish(d2.id, d2.token, Finish::Release { delay_ms: 0, priority: None }).unwrap());
    assert!(!st.finish(d2.id, d2.token, Finish::Touch { lease_ms: 0 }).unwrap());
    assert!(st.reserve(&q("q"), 1).unwrap().first.is_none());
    let info = st.job(id).unwrap().unwrap();
    assert_eq!(info.state, JobState::Dead);
    assert_eq!(info.last_error.as_deref(), Some("lease expired on the last allowed attempt (2)"));
    assert_eq!(st.purge_dead("q").unwrap(), 1);
    st.close();
}

#[test]
fn release_touch_fail_bury_kick() {
    let s = Schema::new("finish");
    let clock = Arc::new(ManualClock::new(9_000_000));
    let st = open(&s, clock.clone());
    let id = st.put(NewJob { max_attempts: 2, ..job("w") }, b"p".to_vec()).unwrap().id();
    let d = st.reserve(&q("w"), 1).unwrap().first.unwrap();
    assert!(st.finish(id, d.token, Finish::Release { delay_ms: 0, priority: None }).unwrap());
    let d = st.reserve(&q("w"), 1).unwrap().first.unwrap();
    assert_eq!(d.attempt, 1, "a release does not count");
    clock.advance(900);
    assert!(st.finish(id, d.token, Finish::Touch { lease_ms: 500 }).unwrap());
    clock.advance(400);
    assert_eq!(counts_of(&st, "w").reserved, 1, "touched: still leased");
    assert_eq!(st.job(id).unwrap().unwrap().lease_until, Some(clock.now_ms() + 100));
    assert!(st.finish(id, d.token, Finish::Fail { reason: Some("boom".into()), delay_ms: 50 }).unwrap());
    let info = st.job(id).unwrap().unwrap();
    assert_eq!((info.state, info.last_error.as_deref()), (JobState::Scheduled, Some("boom")));
    clock.advance(50);
    let d = st.reserve(&q("w"), 1).unwrap().first.unwrap();
    assert_eq!(d.attempt, 2);
    assert!(st.finish(id, d.token, Finish::Fail { reason: None, delay_ms: 50 }).unwrap());
    assert_eq!(st.job(id).unwrap().unwrap().state, JobState::Dead, "failed on its last attempt");
    assert_eq!(st.kick("w", 10).unwrap(), 1);
    let d = st.reserve(&q("w"), 1).unwrap().first.unwrap();
    assert_eq!(d.attempt, 1, "kick resets attempts");
    assert!(st.finish(id, d.token, Finish::Bury { reason: Some("no".into()), priority: None }).unwrap());
    assert_eq!(counts_of(&st, "w"), QueueCounts { dead: 1, ..Default::default() });
    assert!(!st.finish(id, d.token, Finish::Release { delay_ms: 0, priority: None }).unwrap(), "dead is not revived");
    assert!(st.finish(id, d.token, Finish::Ack).unwrap(), "but its holder may still ack it");
    st.close();
}

#[test]
fn priorities_with_release_and_bury_kick_job_peek_and_ready_heads() {
    use crate::store::ReadyHead;
    let s = Schema::new("ops");
    let clock = Arc::new(ManualClock::new(9_000_000));
    let st = open(&s, clock.clone());
    let a = st.put(job("a"), b"a".to_vec()).unwrap().id();
    let b = st.put(NewJob { priority: 4, ..job("b") }, b"b".to_vec()).unwrap().id();
    let names = [q("a"), q("b"), q("empty")];
    let head = |index, priority, id| ReadyHead { index, priority, id };
    assert_eq!(st.ready_heads(&names).unwrap(), vec![head(0, 0, a), head(1, 4, b)]);
    // Release with a priority: stored in the same statement.
    let d = st.reserve(&q("a"), 1).unwrap().first.unwrap();
    assert_eq!(st.ready_heads(&names).unwrap(), vec![head(1, 4, b)]);
    assert!(st.finish(a, d.token, Finish::Release { delay_ms: 0, priority: Some(9) }).unwrap());
    assert_eq!(st.ready_heads(&names).unwrap(), vec![head(1, 4, b), head(0, 9, a)]);
    assert_eq!(st.peek("a", JobState::Ready).unwrap().map(|j| (j.id, j.priority)), Some((a, 9)));
    // A stale release (the job was delivered again) changes no priority.
    let stale = d.token;
    let d = st.reserve(&q("a"), 1).unwrap().first.unwrap();
    assert!(!st.finish(a, stale, Finish::Release { delay_ms: 0, priority: Some(1) }).unwrap());
    assert!(!st.finish(a, stale, Finish::Bury { reason: None, priority: Some(1) }).unwrap());
    assert_eq!(st.job(a).unwrap().unwrap().priority, 9);
    // Bury with a priority, then kick_job: ready with it, attempts reset.
    assert!(st.finish(a, d.token, Finish::Bury { reason: None, priority: Some(-2) }).unwrap());
    assert_eq!(st.peek("a", JobState::Dead).unwrap().map(|j| j.id), Some(a));
    assert_eq!(st.peek("a", JobState::Ready).unwrap(), None);
    st.kick_job(a).unwrap();
    let info = st.job(a).unwrap().unwrap();
    assert_eq!((info.state, info.priority, info.attempts), (JobState::Ready, -2, 0));
    assert_eq!(st.ready_heads(&names).unwrap(), vec![head(0, -2, a), head(1, 4, b)]);
    assert!(matches!(st.kick_job(a), Err(Error::State(_))));
    assert!(matches!(st.kick_job(a + 100), Err(Error::NotFound(_))));
    // A scheduled job: ready now, its attempts kept.
    let d = st.reserve(&q("b"), 1).unwrap().first.unwrap();
    assert!(st.finish(b, d.token, Finish::Fail { reason: None, delay_ms: 5_000 }).unwrap());
    assert_eq!(st.peek("b", JobState::Scheduled).unwrap().map(|j| j.id), Some(b));
    st.kick_job(b).unwrap();
    let info = st.job(b).unwrap().unwrap();
    assert_eq!((info.state, info.attempts), (JobState::Ready, 1));
    assert!(matches!(st.peek("b", JobState::Reserved), Err(Error::InvalidArg(_))));
    st.close();
}

#[test]
fn unique_keys_batches_and_cancel() {
    let s = Schema::new("unique");
    let clock = Arc::new(ManualClock::new(1_000));
    let st = open(&s, clock.clone());
    let keyed = || NewJob { unique_key: Some("k".into()), ..job("u") };
    let first = st.put(keyed(), b"1".to_vec()).unwrap();
    let Put::Stored(id) = first else { panic!("{first:?}") };
    assert_eq!(st.put(keyed(), b"2".to_vec()).unwrap(), Put::Duplicate(id));
    let d = st.reserve(&q("u"), 1).unwrap().first.unwrap();
    assert_eq!(st.put(keyed(), b"3".to_vec()).unwrap(), Put::Duplicate(id), "reserved still holds it");
    assert!(st.finish(id, d.token, Finish::Ack).unwrap());
    assert!(matches!(st.put(keyed(), b"4".to_vec()).unwrap(), Put::Stored(n) if n > id), "freed after ack");

    let ids = st.put_batch(job("b"), (0..100u8).map(|i| vec![i]).collect()).unwrap();
    assert_eq!(ids.len(), 100);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let got = st.reserve(&q("b"), 100).unwrap();
    assert_eq!(got.first.as_ref().unwrap().payload, vec![0]);
    assert_eq!(got.more.last().unwrap().payload, vec![99]);
    // All or nothing: text cannot hold a NUL byte, so this batch fails whole.
    let last = st.last_job_id().unwrap();
    assert!(st.put_batch(job("bad\0queue"), vec![vec![1], vec![2]]).is_err());
    assert!(st.counts().unwrap().iter().all(|(n, _)| !n.starts_with("bad")));
    assert!(st.list(&JobFilter { after_id: last, ..Default::default() }).unwrap().is_empty());
    // The store still works after a failed write.
    let c = st.put(job("c"), vec![]).unwrap().id();

    let reserved = got.first.unwrap().id;
    assert!(matches!(st.cancel(reserved), Err(Error::State(_))));
    st.cancel(c).unwrap();
    assert!(matches!(st.cancel(c), Err(Error::NotFound(_))));
    st.close();
}

#[test]
fn foreign_and_newer_schemas_are_refused_untouched() {
    let s = Schema::new("foreign");
    admin(&format!("CREATE SCHEMA {}", s.0));
    admin(&format!("CREATE TABLE {}.accounts (id int)", s.0));
    let e = open_with(&s, Arc::new(SystemClock), &config()).unwrap_err();
    assert!(matches!(e, Error::Corrupt(_)), "{e}");
    let tables = admin(&format!("SELECT tablename::text FROM pg_tables WHERE schemaname = '{}'", s.0));
    assert_eq!(tables.len(), 1, "nothing created");

    let n = Schema::new("newer");
    open(&n, Arc::new(SystemClock)).close();
    admin(&format!("UPDATE {}.meta SET value = '99' WHERE key = 'version'", n.0));
    let e = open_with(&n, Arc::new(SystemClock), &config()).unwrap_err();
    assert_eq!(e, Error::Version { found: 99, supported: super::schema::SCHEMA_VERSION });

    let e = open_with(&n, Arc::new(SystemClock), &Config { file_mode: 0o644, ..config() }).unwrap_err();
    assert!(matches!(&e, Error::InvalidArg(m) if m.contains("file_mode")), "{e}");
}

#[test]
fn a_store_of_the_first_schema_is_upgraded_in_place() {
    let s = Schema::new("v1");
    let st = open(&s, Arc::new(SystemClock));
    let id = st.put(job("old"), b"old job".to_vec()).unwrap().id();
    st.close();
    // Back to version 1 by hand: its schema is this one without queues.paused
    // (version 2) nor the version 3 tables, column and index.
    admin(&format!("DROP INDEX {}.jobs_done", s.0));
    admin(&format!("ALTER TABLE {}.jobs DROP COLUMN result", s.0));
    admin(&format!("ALTER TABLE {}.queues DROP COLUMN paused", s.0));
    admin(&format!("DROP TABLE {}.queue_limits", s.0));
    admin(&format!("DROP TABLE {}.schedules", s.0));
    admin(&format!("UPDATE {}.meta SET value = '1' WHERE key = 'version'", s.0));
    let st = open(&s, Arc::new(SystemClock));
    assert_eq!(counts_of(&st, "old"), QueueCounts { ready: 1, ..Default::default() });
    st.set_paused("old", true).unwrap();
    assert!(st.reserve(&q("old"), 1).unwrap().first.is_none());
    st.close();
    let version = admin(&format!("SELECT value::text FROM {}.meta WHERE key = 'version'", s.0));
    assert_eq!(version[0].get::<_, String>(0), "3", "upgraded: a jobq that knows only version 1 refuses it");
    let st = open(&s, Arc::new(SystemClock));
    assert!(counts_of(&st, "old").paused, "the pause is stored");
    st.set_paused("old", false).unwrap();
    assert_eq!(st.reserve(&q("old"), 1).unwrap().first.map(|d| d.id), Some(id));
    st.close();
}

#[test]
fn a_store_of_schema_2_is_upgraded_in_place() {
    let s = Schema::new("v2");
    let st = open(&s, Arc::new(SystemClock));
    let id = st.put(job("old"), b"old job".to_vec()).unwrap().id();
    st.put(job("old"), b"second".to_vec()).unwrap();
    st.close();
    // Back to version 2 by hand: without every version 3 table, column and index.
    admin(&format!("DROP TABLE IF EXISTS {}.queue_limits", s.0));
    admin(&format!("DROP TABLE IF EXISTS {}.schedules", s.0));
    admin(&format!("DROP INDEX IF EXISTS {}.jobs_done", s.0));
    admin(&format!("ALTER TABLE {}.jobs DROP COLUMN IF EXISTS result", s.0));
    admin(&format!("UPDATE {}.meta SET value = '2' WHERE key = 'version'", s.0));
    let st = open(&s, Arc::new(SystemClock));
    assert_eq!(counts_of(&st, "old"), QueueCounts { ready: 2, ..Default::default() });
    let cap = LimitsPatch { max_reserved: Some(Some(1)), ..Default::default() };
    st.set_limits("old", &cap).unwrap();
    assert_eq!(st.reserve(&q("old"), 5).unwrap().first.map(|d| d.id), Some(id));
    assert_eq!(st.reserve(&q("old"), 5).unwrap().len(), 0, "capped at 1");
    st.close();
    let version = admin(&format!("SELECT value::text FROM {}.meta WHERE key = 'version'", s.0));
    assert_eq!(version[0].get::<_, String>(0), "3", "upgraded: a jobq that knows only version 2 refuses it");
    let st = open(&s, Arc::new(SystemClock));
    assert_eq!(counts_of(&st, "old").limits.and_then(|l| l.max_reserved), Some(1), "the limit is stored");
    st.close();
}

/// Concurrent claims of a limited queue from several handles (each its own
/// connections, as separate hosts would be) never lease past the cap, and
/// the rate window counts every client's deliveries.
#[test]
fn limits_hold_across_handles() {
    let s = Schema::new("limits");
    let clock = Arc::new(ManualClock::new(1_000_000));
    let handles: Vec<PgStore> = (0..3).map(|_| open(&s, clock.clone())).collect();
    for _ in 0..20 {
        handles[0].put(job("l"), b"x".to_vec()).unwrap();
    }
    let cap = LimitsPatch { max_reserved: Some(Some(4)), ..Default::default() };
    handles[1].set_limits("l", &cap).unwrap();
    let leased: usize = std::thread::scope(|sc| {
        let tasks: Vec<_> = handles
            .iter()
            .map(|h| sc.spawn(move || (0..4).map(|_| h.reserve(&q("l"), 3).unwrap().len()).sum::<usize>()))
            .collect();
        tasks.into_iter().map(|t| t.join().unwrap()).sum()
    });
    assert_eq!(leased, 4, "all clients together lease up to the cap");
    assert_eq!(counts_of(&handles[2], "l").reserved, 4);
    // Leases that expire free their slots.
    clock.advance(60_000);
    assert_eq!(handles[2].reserve(&q("l"), 10).unwrap().len(), 4);
    // A rate: 3 per 100 ms of the store's clock, counted over all clients.
    let rate = LimitsPatch { max_reserved: Some(None), rate: Some(Some(Rate { jobs: 3, per_ms: 100 })) };
    handles[0].set_limits("l", &rate).unwrap();
    clock.advance(60_000);
    assert_eq!(handles[0].reserve(&q("l"), 2).unwrap().len(), 2);
    let short = handles[1].reserve(&q("l"), 2).unwrap();
    assert_eq!(short.len(), 1);
    assert_eq!(short.next_due, Some(clock.now_ms() + 100), "the window's end");
    assert_eq!(handles[2].reserve(&q("l"), 2).unwrap().len(), 0);
    assert_eq!(handles[2].next_due("l").unwrap(), Some(clock.now_ms() + 100));
    assert_eq!(counts_of(&handles[2], "l").rate_used, Some(3));
    clock.advance(100);
    assert_eq!(handles[2].reserve(&q("l"), 5).unwrap().len(), 3, "a new window");
    for h in handles {
        h.close();
    }
}

#[test]
fn a_paused_queue_takes_puts_and_delivers_nothing() {
    let s = Schema::new("pause");
    let clock = Arc::new(ManualClock::new(1_000_000));
    let st = open(&s, clock.clone());
    let other = open(&s, clock.clone());
    let a = st.put(job("p"), b"a".to_vec()).unwrap().id();
    st.put(job("free"), b"f".to_vec()).unwrap();
    st.set_paused("p", true).unwrap();
    st.put(job("p"), b"b".to_vec()).unwrap();
    // No client delivers it, one job or several at once, nor a worker round.
    for client in [&st, &other] {
        let got = client.reserve(&q("p"), 5).unwrap();
        assert_eq!(got.len(), 0);
        assert!(got.recheck_ms.is_some());
        let (_, got) = client.finish_and_reserve(&q("p"), Vec::new(), 2, ReserveIf::Always).unwrap();
        assert_eq!(got.len(), 0);
    }
    assert_eq!(other.reserve(&q("free"), 1).unwrap().len(), 1);
    assert_eq!(counts_of(&other, "p"), QueueCounts { ready: 2, paused: true, ..Default::default() });
    // A queue never used is recorded by a pause; a resume records nothing.
    other.set_paused("new", true).unwrap();
    assert_eq!(counts_of(&st, "new"), QueueCounts { paused: true, ..Default::default() });
    other.set_paused("nobody", false).unwrap();
    assert!(st.counts().unwrap().iter().all(|(n, _)| n != "nobody"));
    other.set_paused("p", false).unwrap();
    assert_eq!(st.reserve(&q("p"), 1).unwrap().first.map(|d| d.id), Some(a));
    other.close();
    st.close();
}

#[test]
fn unreachable_server_is_io_naming_the_host() {
    let started = Instant::now();
    let e = PgStore::open(
        "postgresql://postgres@127.0.0.1:1/test?connect_timeout=2",
        &config(),
        Env { clock: Arc::new(SystemClock), notifier: Arc::new(Notifier::default()) },
    )
    .unwrap_err();
    assert!(matches!(&e, Error::Io(m) if m.contains("127.0.0.1:1")), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let e = PgStore::open(
        "postgresql://h/db?bogus=1",
        &config(),
        Env { clock: Arc::new(SystemClock), notifier: Arc::new(Notifier::default()) },
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidArg(_)), "{e}");
}

#[test]
fn concurrent_puts_from_eight_threads_are_all_stored() {
    let s = Schema::new("conc");
    let st = Arc::new(open(&s, Arc::new(SystemClock)));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let st = st.clone();
            std::thread::spawn(move || (0..50).map(|i| st.put(job("c"), vec![t, i]).unwrap().id()).collect::<Vec<_>>())
        })
        .collect();
    let mut ids: Vec<u64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 400);
    assert_eq!(counts_of(&st, "c").ready, 400);
    st.close();
}

#[test]
fn a_dead_clients_jobs_come_back_promptly() {
    let s = Schema::new("dead");
    let a = open(&s, Arc::new(SystemClock));
    let b = open_with(&s, Arc::new(SystemClock), &Config { lease_ms: 60_000, ..config() }).unwrap();
    let id = b.put(NewJob { lease_ms: 60_000, ..job("d") }, b"x".to_vec()).unwrap().id();
    let d = b.reserve(&q("d"), 1).unwrap().first.unwrap();
    assert_eq!(d.id, id);
    // A looks while B is alive: nothing, and it is told to look again.
    let none = a.reserve(&q("d"), 1).unwrap();
    assert!(none.first.is_none());
    assert_eq!(none.recheck_ms, Some(super::owner::SCAN_MS));
    // B's session (the one holding its advisory lock) is killed, and B dies.
    let owner = b.owner_id();
    admin(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'
           AND ((classid::int8 << 32) | objid::int8) = {owner}"
    ));
    drop(b);
    let started = Instant::now();
    let got = loop {
        if let Some(d) = a.reserve(&q("d"), 1).unwrap().first {
            break d;
        }
        assert!(started.elapsed() < Duration::from_millis(1500), "not reclaimed in time");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!((got.id, got.attempt), (id, 2));
    let info = a.job(id).unwrap().unwrap();
    assert_eq!(info.state, JobState::Reserved);
    a.close();
}

#[test]
fn a_broken_connection_is_replaced_and_the_session_comes_back() {
    let s = Schema::new("reconnect");
    // An application_name of its own, to find this store's connections.
    let app = format!("app_{}", s.0);
    let url = format!("{}&application_name={app}", s.url());
    let env = Env { clock: Arc::new(SystemClock), notifier: Arc::new(Notifier::default()) };
    let st = PgStore::open(&url, &config(), env).unwrap();
    st.put(job("r"), vec![]).unwrap();
    let killed =
        admin(&format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{app}'"));
    assert!(killed.len() >= 2, "the pool's and the session's connections");
    // A call may fail with Io once; then the store works again.
    let mut ok = false;
    for _ in 0..5 {
        match st.put(job("r"), vec![]) {
            Ok(_) => {
                ok = true;
                break;
            }
            Err(Error::Io(_)) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("{e}"),
        }
    }
    assert!(ok);
    let started = Instant::now();
    let owner = st.owner_id();
    loop {
        let held = admin(&format!(
            "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
               AND ((classid::int8 << 32) | objid::int8) = {owner}"
        ));
        if !held.is_empty() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(3), "advisory lock not re-taken");
        std::thread::sleep(Duration::from_millis(20));
    }
    st.close();
}

#[test]
fn a_put_just_before_close_still_notifies_the_others() {
    let s = Schema::new("lastput");
    let notifier = Arc::new(Notifier::default());
    let env = Env { clock: Arc::new(SystemClock), notifier: notifier.clone() };
    let a = PgStore::open(&s.url(), &config(), env).unwrap();
    for round in 0..5 {
        let b = open(&s, Arc::new(SystemClock));
        let seen = notifier.generation();
        b.put(job("w"), vec![round]).unwrap();
        // Closed at once, inside the NOTIFY rate limit of the put.
        b.close();
        notifier.wait(seen, Instant::now() + Duration::from_secs(5), None);
        assert_ne!(notifier.generation(), seen, "round {round}: B's last put never reached A");
    }
    a.close();
}

#[test]
fn two_acks_of_one_delivery_in_one_batch_answer_once() {
    let s = Schema::new("ackdup");
    let st = open(&s, Arc::new(SystemClock));
    st.put(job("a"), b"x".to_vec()).unwrap();
    let d = st.reserve(&q("a"), 1).unwrap().first.unwrap();
    let twice = vec![(d.id, d.token, Finish::Ack), (d.id, d.token, Finish::Ack)];
    let (done, _) = st.finish_and_reserve(&q("a"), twice, 0, ReserveIf::Always).unwrap();
    assert_eq!(done, vec![true, false]);
    st.close();
}

/// A lease renewal changes no indexed column, so PostgreSQL updates the row
/// in place (HOT): no index entry per touch, no index bloat from renewals.
#[test]
fn a_lease_renewal_is_a_hot_update() {
    const TOUCHES: i64 = 40;
    let s = Schema::new("hot");
    let st = open(&s, Arc::new(SystemClock));
    st.put(job("h"), b"x".to_vec()).unwrap();
    let d = st.reserve(&q("h"), 1).unwrap().first.unwrap();
    for _ in 0..TOUCHES {
        assert!(st.finish(d.id, d.token, Finish::Touch { lease_ms: 5_000 }).unwrap());
    }
    // Sessions report their table statistics when they end.
    st.close();
    let sql = format!(
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE schemaname = '{}' AND relname = 'jobs'",
        s.0
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let (upd, hot) = loop {
        let rows = admin(&sql);
        let (upd, hot): (i64, i64) = rows.first().map(|r| (r.get(0), r.get(1))).unwrap_or((0, 0));
        // The claim (state 0 -> 1) is one non-HOT update; every touch after it.
        if upd > TOUCHES || Instant::now() > deadline {
            break (upd, hot);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(upd, TOUCHES + 1, "updates counted");
    assert!(hot >= TOUCHES, "{hot} of {upd} updates were HOT; every lease renewal should be");
}

/// With the server's autovacuum off, the handle vacuums the jobs table
/// itself every VACUUM_EVERY rows it deleted or updated, so a steady load
/// does not grow it without bound.
#[test]
fn a_handle_vacuums_when_autovacuum_is_off() {
    let s = Schema::new("vac");
    let st = open(&s, Arc::new(SystemClock));
    st.vacuum.enabled.store(true, SeqCst);
    for _ in 0..6 {
        st.put_batch(job("v"), (0..100u8).map(|i| vec![i]).collect()).unwrap();
        loop {
            let got = st.reserve(&q("v"), 100).unwrap();
            let all: Vec<_> = got.first.into_iter().chain(got.more).collect();
            if all.is_empty() {
                break;
            }
            let acks = all.iter().map(|d| (d.id, d.token, Finish::Ack)).collect();
            st.finish_and_reserve(&q("v"), acks, 0, ReserveIf::Always).unwrap();
        }
    }
    // 600 claims + 600 acks: over VACUUM_EVERY (500) once at least.
    let sql = format!("SELECT vacuum_count FROM pg_stat_user_tables WHERE schemaname = '{}' AND relname = 'jobs'", s.0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let vacuums = loop {
        let n: i64 = admin(&sql).first().map(|r| r.get(0)).unwrap_or(0);
        if n > 0 || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(vacuums > 0, "the handle never vacuumed the jobs table");
    st.close();
}

/// Durability "full": claims run on connections that do not wait for the
/// WAL flush, everything else (kick, cancel, purge, pause) waits, whatever
/// a connection did before; the committer's transactions set their own.
#[test]
fn only_work_that_may_be_undone_skips_the_wal_flush() {
    let s = Schema::new("sync");
    let st = open_with(&s, Arc::new(SystemClock), &Config { pool_size: 1, ..config() }).unwrap();
    let show = async |c: &mut super::pool::Conn| -> std::result::Result<String, super::pool::Fail> {
        Ok(c.client.query_one("SHOW synchronous_commit", &[]).await?.try_get(0)?)
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        // One connection: each call below reuses it.
        assert_eq!(st.pool.run_fast(show).await.unwrap(), "off");
        assert_eq!(st.pool.run(show).await.unwrap(), "on");
        assert_eq!(st.pool.run_fast(show).await.unwrap(), "off");
        assert_eq!(st.pool.run_fast(show).await.unwrap(), "off");
        assert_eq!(st.pool.run(show).await.unwrap(), "on");
    });
    // A put after a claim on the same connection still commits durably: its
    // transaction says so (SET LOCAL), and the session stays as the claim left it.
    st.put(job("s"), b"x".to_vec()).unwrap();
    let d = st.reserve(&q("s"), 1).unwrap().first.unwrap();
    st.put(job("s"), b"y".to_vec()).unwrap();
    assert!(st.finish(d.id, d.token, Finish::Ack).unwrap());
    assert_eq!(counts_of(&st, "s").ready, 1);
    st.close();
}

fn every(name: &str, queue: &str, ms: i64, now: i64) -> NewSchedule {
    NewSchedule {
        name: name.into(),
        spec: format!("@every {ms}ms"),
        job: job(queue),
        payload: b"tick".to_vec(),
        next_slot: now + ms,
    }
}

fn jobs_of(st: &PgStore, queue: &str) -> u64 {
    let c = counts_of(st, queue);
    c.ready + c.scheduled + c.reserved + c.dead
}

/// `count()` once it reached `want` (polled up to 3 s), re-read 100 ms
/// later so that a job too many shows. A handle's own scheduler task may be
/// firing the slot when the test's `fire_schedules` runs: that call then
/// skips the locked schedule (SKIP LOCKED) and returns before the task's
/// transaction commits, so the job shows a moment later.
fn settled(count: impl Fn() -> u64, want: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(3);
    while count() != want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    count()
}

/// Two handles (their scheduler tasks too) fire the same due slots with one
/// clock: each slot is put once; a long downtime gives one job; the next
/// slot stays on the grid.
#[test]
fn schedules_fire_each_slot_once_across_handles() {
    let s = Schema::new("sched");
    let clock = Arc::new(ManualClock::new(1_000_000));
    let a = open(&s, clock.clone());
    let b = open(&s, clock.clone());
    a.put_schedule(every("t", "tq", 1_000, 1_000_000)).unwrap();
    assert_eq!(a.schedules().unwrap()[0].next_ms, Some(1_001_000));
    assert_eq!(jobs_of(&a, "tq"), 0);
    clock.advance(1_000_999 - clock.now_ms());
    a.fire_schedules().unwrap();
    assert_eq!(jobs_of(&a, "tq"), 0, "not due yet");
    clock.advance(1_001_000 - clock.now_ms());
    std::thread::scope(|sc| {
        sc.spawn(|| a.fire_schedules().unwrap());
        sc.spawn(|| b.fire_schedules().unwrap());
    });
    a.fire_schedules().unwrap();
    assert_eq!(settled(|| jobs_of(&a, "tq"), 1), 1, "one job for the slot");
    assert_eq!(b.schedules().unwrap()[0].next_ms, Some(1_002_000));
    // 20 slots missed: one job, the next slot on the grid after now.
    clock.advance(1_021_500 - clock.now_ms());
    b.fire_schedules().unwrap();
    a.fire_schedules().unwrap();
    assert_eq!(settled(|| jobs_of(&a, "tq"), 2), 2);
    assert_eq!(a.schedules().unwrap()[0].next_ms, Some(1_022_000));
    // Replace: the next slot is computed from now; remove stops it.
    a.put_schedule(every("t", "tq", 5_000, 1_021_500)).unwrap();
    assert_eq!(b.schedules().unwrap()[0].next_ms, Some(1_026_500));
    assert!(b.remove_schedule("t").unwrap());
    assert!(!b.remove_schedule("t").unwrap());
    clock.advance(2_000_000 - clock.now_ms());
    a.fire_schedules().unwrap();
    assert_eq!(jobs_of(&a, "tq"), 2);
    a.close();
    b.close();
}

#[test]
fn a_store_of_schema_2_is_upgraded_in_place_with_schedules() {
    let s = Schema::new("v2");
    let st = open(&s, Arc::new(SystemClock));
    st.put(job("old"), b"old job".to_vec()).unwrap();
    st.close();
    // Back to version 2 by hand: without every version 3 table, column and index.
    admin(&format!("DROP TABLE IF EXISTS {}.queue_limits", s.0));
    admin(&format!("DROP TABLE IF EXISTS {}.schedules", s.0));
    admin(&format!("DROP INDEX IF EXISTS {}.jobs_done", s.0));
    admin(&format!("ALTER TABLE {}.jobs DROP COLUMN IF EXISTS result", s.0));
    admin(&format!("UPDATE {}.meta SET value = '2' WHERE key = 'version'", s.0));
    let clock = Arc::new(ManualClock::new(1_000_000));
    let st = open(&s, clock.clone());
    assert_eq!(counts_of(&st, "old").ready, 1);
    st.put_schedule(every("u", "old", 100, 1_000_000)).unwrap();
    clock.advance(1_000_100 - clock.now_ms());
    st.fire_schedules().unwrap();
    assert_eq!(settled(|| counts_of(&st, "old").ready, 2), 2);
    st.close();
    let version = admin(&format!("SELECT value::text FROM {}.meta WHERE key = 'version'", s.0));
    assert_eq!(version[0].get::<_, String>(0), "3");
}

/// Acks that keep (keep_done_ms): state done with the result, never
/// claimed, the unique key free at once, hidden at expiry; a second ack of
/// the delivery is stale, in one batch or two; a dead job's holder may
/// still ack it.
#[test]
fn kept_acks_are_done_until_their_expiry() {
    let s = Schema::new("done");
    let clock = Arc::new(ManualClock::new(1_000_000));
    let st = open(&s, clock.clone());
    let keyed = NewJob { unique_key: Some("k".into()), ..job("d") };
    let id = st.put(keyed.clone(), b"x".to_vec()).unwrap().id();
    let d = st.reserve(&q("d"), 1).unwrap().first.unwrap();
    let keep = |r: &[u8]| Finish::AckKeep { result: Some(r.to_vec()), keep_ms: 500 };
    let twice = vec![(d.id, d.token, keep(b"first")), (d.id, d.token, keep(b"second"))];
    let (answers, _) = st.finish_and_reserve(&q("d"), twice, 0, ReserveIf::Always).unwrap();
    assert_eq!(answers, vec![true, false]);
    assert!(!st.finish(d.id, d.token, Finish::Ack).unwrap(), "stale after the kept ack");
    let info = st.job(id).unwrap().unwrap();
    assert_eq!((info.state, info.result.as_deref()), (JobState::Done, Some(&b"first"[..])));
    assert_eq!((info.run_at, info.updated_at, info.lease_until), (1_000_500, 1_000_000, None));
    assert_eq!(counts_of(&st, "d"), QueueCounts { done: 1, ..Default::default() });
    assert!(st.reserve(&q("d"), 5).unwrap().first.is_none(), "a done job is never claimed");
    let again = st.put(keyed, b"y".to_vec()).unwrap();
    assert!(matches!(again, Put::Stored(n) if n != id), "the done job's key is free: {again:?}");
    let listed = |state| st.list(&JobFilter { state: Some(state), ..JobFilter::default() }).unwrap().len();
    assert_eq!((listed(JobState::Done), listed(JobState::Ready)), (1, 1));
    clock.advance(500);
    assert!(st.job(id).unwrap().is_none(), "past its expiry");
    assert_eq!(counts_of(&st, "d").done, 0);
    assert_eq!(listed(JobState::Done), 0);
    assert_eq!(st.list(&JobFilter::default()).unwrap().len(), 1);

    // Buried (dead), then acked by its holder: done.
    let d = st.reserve(&q("d"), 1).unwrap().first.unwrap();
    assert!(st.finish(d.id, d.token, Finish::Bury { reason: None, priority: None }).unwrap());
    assert!(st.finish(d.id, d.token, Finish::AckKeep { result: None, keep_ms: 500 }).unwrap());
    let info = st.job(d.id).unwrap().unwrap();
    assert_eq!((info.state, info.result, info.last_error.as_deref()), (JobState::Done, None, Some("buried")));
    st.close();
}

/// The pruning task deletes expired done rows, and with it (and the
/// handle's own VACUUM, autovacuum being off) the jobs table stays bounded
/// under a steady load of kept acks. Prints the table's size at intervals.
#[test]
fn cycled_kept_jobs_leave_the_table_bounded() {
    let s = Schema::new("prune");
    let st = open(&s, Arc::new(SystemClock));
    st.vacuum.enabled.store(true, SeqCst);
    let size_sql = format!("SELECT pg_total_relation_size('{}.jobs')", s.0);
    let rows_sql = format!("SELECT count(*) FROM {}.jobs", s.0);
    let size = || admin(&size_sql)[0].get::<_, i64>(0);
    let rows = || admin(&rows_sql)[0].get::<_, i64>(0);
    let started = Instant::now();
    let mut sizes = Vec::new();
    const ROUNDS: usize = 40;
    for round in 1..=ROUNDS {
        st.put_batch(job("c"), (0..200).map(|_| vec![b'p'; 32]).collect()).unwrap();
        loop {
            let got = st.reserve(&q("c"), 200).unwrap();
            let all: Vec<_> = got.first.into_iter().chain(got.more).collect();
            if all.is_empty() {
                break;
            }
            let keep = || Finish::AckKeep { result: Some(vec![b'r'; 64]), keep_ms: 50 };
            let acks = all.iter().map(|d| (d.id, d.token, keep())).collect();
            st.finish_and_reserve(&q("c"), acks, 0, ReserveIf::Always).unwrap();
        }
        if round % 5 == 0 {
            let (bytes, n) = (size(), rows());
            println!(
                "{:>6} jobs, {:5.1} s: jobs table {bytes:>9} B, rows {n}",
                round * 200,
                started.elapsed().as_secs_f64()
            );
            sizes.push(bytes);
        }
    }
    let (early, last) = (sizes[1], *sizes.last().unwrap());
    if last > early * 2 + 1024 * 1024 {
        // VACUUM cannot reclaim rows that a transaction open elsewhere in
        // this database may still see (another test running beside this
        // one): only then is the size not this handle's to bound.
        let others = admin(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid() AND backend_xmin IS NOT NULL",
        )[0]
        .get::<_, i64>(0);
        assert!(others > 0, "the jobs table grew {early} -> {last} over {} jobs", ROUNDS * 200);
        println!("the jobs table grew {early} -> {last}: {others} other sessions held the xmin horizon");
    }
    // Idle: the task prunes the rest.
    let deadline = Instant::now() + Duration::from_secs(10);
    while rows() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(rows(), 0, "expired done rows left after 10 s");
    st.close();
}

#[test]
fn a_store_of_schema_2_is_upgraded_in_place_with_results() {
    let s = Schema::new("v2");
    let st = open(&s, Arc::new(SystemClock));
    let id = st.put(job("old"), b"old job".to_vec()).unwrap().id();
    st.close();
    // Back to version 2 by hand: without every version 3 table, column and index.
    admin(&format!("DROP TABLE IF EXISTS {}.queue_limits", s.0));
    admin(&format!("DROP TABLE IF EXISTS {}.schedules", s.0));
    admin(&format!("DROP INDEX IF EXISTS {}.jobs_done", s.0));
    admin(&format!("ALTER TABLE {}.jobs DROP COLUMN IF EXISTS result", s.0));
    admin(&format!("UPDATE {}.meta SET value = '2' WHERE key = 'version'", s.0));
    let st = open(&s, Arc::new(SystemClock));
    let d = st.reserve(&q("old"), 1).unwrap().first.unwrap();
    assert_eq!(d.id, id);
    assert!(st.finish(d.id, d.token, Finish::AckKeep { result: Some(b"r".to_vec()), keep_ms: 60_000 }).unwrap());
    assert_eq!(st.job(id).unwrap().unwrap().result.as_deref(), Some(&b"r"[..]));
    st.close();
    let version = admin(&format!("SELECT value::text FROM {}.meta WHERE key = 'version'", s.0));
    assert_eq!(version[0].get::<_, String>(0), "3");
    let index =
        admin(&format!("SELECT count(*) FROM pg_indexes WHERE schemaname = '{}' AND indexname = 'jobs_done'", s.0));
    assert_eq!(index[0].get::<_, i64>(0), 1);
    let st = open(&s, Arc::new(SystemClock));
    assert_eq!(counts_of(&st, "old").done, 1, "opened again: no second upgrade, the done job kept");
    st.close();
}
