//! The single-job operations a beanstalkd front needs, through the Rust API,
//! on both backends: `reserve_any` (the smallest (priority, id) of several
//! queues), `Job::release_with_priority` / `bury_with_priority`,
//! `Queue::kick_job` and `Queue::peek`. Time is a `ManualClock` except where
//! a test waits for real time to pass.

#[path = "support/pg.rs"]
mod pg;

use std::sync::Arc;
use std::time::{Duration, Instant};

use jobq::{Config, Durability, Error, JobState, ManualClock, PutOptions, Queue, MAX_RESERVE_ANY};

const ZERO: Option<Duration> = Some(Duration::ZERO);
const T0: i64 = 1_700_000_000_000;

fn config() -> Config {
    Config {
        durability: Durability::Normal,
        lease_ms: 1_000,
        backoff_base_ms: 10_000,
        backoff_jitter: 0.0,
        ..Config::default()
    }
}

/// Runs `body` with a fresh queue on SQLite, then on PostgreSQL.
fn on_both(body: impl Fn(&Queue, &ManualClock)) {
    for postgres in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (path, _schema) = pg::store(dir.path(), "ops.db", postgres);
        let clock = Arc::new(ManualClock::new(T0));
        let q = Queue::open_with_clock(&path, config(), clock.clone()).unwrap();
        body(&q, &clock);
        q.close().unwrap();
    }
}

/// Like `on_both`, on the system clock (for waits).
fn on_both_real(body: impl Fn(&Queue)) {
    for postgres in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (path, _schema) = pg::store(dir.path(), "ops-real.db", postgres);
        let q = Queue::open(&path, config()).unwrap();
        body(&q);
        q.close().unwrap();
    }
}

fn pri(priority: i32) -> PutOptions {
    PutOptions { priority, ..PutOptions::default() }
}

fn put(q: &Queue, queue: &str, priority: i32) -> u64 {
    q.put(queue, b"x", &pri(priority)).unwrap().id()
}

fn is_invalid<T: std::fmt::Debug>(r: jobq::Result<T>) -> bool {
    matches!(r, Err(Error::InvalidArg(_)))
}

fn is_state<T: std::fmt::Debug>(r: jobq::Result<T>) -> bool {
    matches!(r, Err(Error::State(_)))
}

fn peek_id(q: &Queue, queue: &str, state: JobState) -> Option<u64> {
    q.peek(queue, state).unwrap().map(|j| j.id)
}

#[test]
fn reserve_any_leases_the_smallest_priority_then_id_across_queues() {
    on_both(|q, _| {
        let a1 = put(q, "a", 5);
        let b1 = put(q, "b", 1);
        let c1 = put(q, "c", 5);
        let b2 = put(q, "b", 5);
        let a2 = put(q, "a", -3);
        let order: Vec<u64> = std::iter::from_fn(|| {
            let job = q.reserve_any(&["a", "b", "c"], ZERO).unwrap()?;
            job.ack().unwrap();
            Some(job.id())
        })
        .collect();
        // Priority first; among equal priorities the job put first, whatever its queue.
        assert_eq!(order, vec![a2, b1, a1, c1, b2]);
        // Queues not listed are left alone; the job's queue is its own.
        let other = put(q, "other", -100);
        let mine = put(q, "b", 0);
        let job = q.reserve_any(&["c", "b"], ZERO).unwrap().unwrap();
        assert_eq!((job.id(), job.queue()), (mine, "b"));
        job.ack().unwrap();
        assert!(q.reserve_any(&["b", "c"], ZERO).unwrap().is_none());
        // A name given twice counts once.
        let job = q.reserve_any(&["other", "other"], ZERO).unwrap().unwrap();
        assert_eq!(job.id(), other);
        job.ack().unwrap();
    });
}

#[test]
fn reserve_any_takes_due_delays_and_expired_leases() {
    on_both(|q, clock| {
        let late = q.put("a", b"d", &PutOptions { delay_ms: 500, priority: -1, ..PutOptions::default() }).unwrap().id();
        let held = put(q, "b", 0);
        let first = q.reserve_any(&["a", "b"], ZERO).unwrap().unwrap();
        assert_eq!(first.id(), held, "the delayed job is not due yet");
        assert!(q.reserve_any(&["a", "b"], ZERO).unwrap().is_none());
        clock.advance(1_001);
        // Both are ready now: the delay passed, the lease expired.
        let job = q.reserve_any(&["b", "a"], ZERO).unwrap().unwrap();
        assert_eq!(job.id(), late);
        let again = q.reserve_any(&["b", "a"], ZERO).unwrap().unwrap();
        assert_eq!((again.id(), again.attempt()), (held, 2));
        assert!(is_state(first.ack()), "the first delivery is stale");
        job.ack().unwrap();
        again.ack().unwrap();
    });
}

#[test]
fn reserve_any_respects_pause_and_limits() {
    on_both(|q, _| {
        let paused = put(q, "p", -10);
        let limited1 = put(q, "l", -5);
        let limited2 = put(q, "l", -5);
        let plain = put(q, "n", 0);
        q.pause("p").unwrap();
        q.configure("l", r#"{"max_reserved": 1}"#).unwrap();
        let queues = ["p", "l", "n"];
        let first = q.reserve_any(&queues, ZERO).unwrap().unwrap();
        assert_eq!(first.id(), limited1, "the paused queue's job is passed over");
        let second = q.reserve_any(&queues, ZERO).unwrap().unwrap();
        assert_eq!(second.id(), plain, "the limited queue is full");
        assert!(q.reserve_any(&queues, ZERO).unwrap().is_none());
        first.ack().unwrap();
        let third = q.reserve_any(&queues, ZERO).unwrap().unwrap();
        assert_eq!(third.id(), limited2);
        q.resume("p").unwrap();
        let fourth = q.reserve_any(&queues, ZERO).unwrap().unwrap();
        assert_eq!(fourth.id(), paused);
        for j in [second, third, fourth] {
            j.ack().unwrap();
        }
    });
}

#[test]
fn reserve_any_refuses_bad_lists() {
    on_both(|q, _| {
        put(q, "a", 0);
        assert!(is_invalid(q.reserve_any(&[], ZERO)));
        assert!(is_invalid(q.reserve_any(&["a", ""], ZERO)));
        let long = "x".repeat(jobq::MAX_QUEUE_NAME + 1);
        assert!(is_invalid(q.reserve_any(&["a", &long], ZERO)));
        let names: Vec<String> = (0..=MAX_RESERVE_ANY).map(|i| format!("q{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        assert!(is_invalid(q.reserve_any(&refs, ZERO)));
        // The largest list is fine, and nothing was leased by the refusals.
        let mut refs = refs[..MAX_RESERVE_ANY - 1].to_vec();
        refs.push("a");
        let job = q.reserve_any(&refs, ZERO).unwrap().unwrap();
        job.ack().unwrap();
        q.close().unwrap();
        assert!(matches!(q.reserve_any(&["a"], ZERO), Err(Error::Shutdown(_))));
    });
}

#[test]
fn reserve_any_waits_and_is_woken_by_a_put_to_any_listed_queue() {
    on_both_real(|q| {
        // Nothing comes: it waits its timeout.
        let t0 = Instant::now();
        assert!(q.reserve_any(&["a", "b"], Some(Duration::from_millis(80))).unwrap().is_none());
        assert!(t0.elapsed() >= Duration::from_millis(75));
        for queue in ["a", "b"] {
            let waiter = {
                let q = q.clone();
                std::thread::spawn(move || {
                    let t0 = Instant::now();
                    let job = q.reserve_any(&["a", "b"], Some(Duration::from_secs(20))).unwrap();
                    (job.map(|j| (j.id(), j.queue().to_owned(), j.ack())), t0.elapsed())
                })
            };
            std::thread::sleep(Duration::from_millis(100));
            put(q, "elsewhere", 0);
            let id = put(q, queue, 0);
            let (got, took) = waiter.join().unwrap();
            let (got_id, got_queue, acked) = got.expect("the put woke the wait");
            assert_eq!((got_id, got_queue.as_str()), (id, queue));
            acked.unwrap();
            assert!(took < Duration::from_secs(5), "{took:?}");
        }
        // A delay that ends wakes it too (the next due time of the queues).
        q.put("b", b"later", &PutOptions { delay_ms: 150, ..PutOptions::default() }).unwrap();
        let t0 = Instant::now();
        let job = q.reserve_any(&["a", "b"], Some(Duration::from_secs(20))).unwrap().unwrap();
        assert!(t0.elapsed() >= Duration::from_millis(140) && t0.elapsed() < Duration::from_secs(5));
        job.ack().unwrap();
    });
}

#[test]
fn release_and_bury_with_priority_change_the_order_of_later_reserves() {
    on_both(|q, _| {
        let a = put(q, "r", 0);
        let b = put(q, "r", 0);
        let c = put(q, "r", 0);
        let job = q.reserve("r", ZERO).unwrap().unwrap();
        assert_eq!(job.id(), a);
        job.release_with_priority(0, 10).unwrap();
        assert!(job.is_finished());
        assert_eq!(q.job(a).unwrap().priority, 10);
        assert_eq!(q.job(a).unwrap().attempts, 0, "a release does not count an attempt");
        let next = q.reserve("r", ZERO).unwrap().unwrap();
        assert_eq!(next.id(), b, "a now runs after b");
        // Released with a delay and a smaller priority: first once due.
        next.release_with_priority(0, -5).unwrap();
        assert_eq!(q.peek("r", JobState::Ready).unwrap().map(|j| (j.id, j.priority)), Some((b, -5)));
        let job_b = q.reserve("r", ZERO).unwrap().unwrap();
        assert_eq!(job_b.id(), b);
        // Buried with a priority: a kick brings it back with that priority.
        job_b.bury_with_priority(Some("later"), 20).unwrap();
        let info = q.job(b).unwrap();
        assert_eq!((info.state, info.priority, info.last_error.as_deref()), (JobState::Dead, 20, Some("later")));
        q.kick_job(b).unwrap();
        let order: Vec<u64> = std::iter::from_fn(|| {
            let j = q.reserve("r", ZERO).unwrap()?;
            j.ack().unwrap();
            Some(j.id())
        })
        .collect();
        assert_eq!(order, vec![c, a, b]);
        // A stale delivery changes nothing, its priority included.
        let d = put(q, "r", 3);
        let job = q.reserve("r", ZERO).unwrap().unwrap();
        job.ack().unwrap();
        assert!(is_state(job.release_with_priority(0, 1)));
        assert!(is_state(job.bury_with_priority(None, 1)));
        let _ = d;
        // Out of range delay: nothing changes.
        let e = put(q, "r", 3);
        let job = q.reserve("r", ZERO).unwrap().unwrap();
        assert!(is_invalid(job.release_with_priority(u64::MAX, 1)));
        assert_eq!(q.job(e).unwrap().priority, 3);
        job.release_with_priority(100, i32::MIN).unwrap();
        let info = q.job(e).unwrap();
        assert_eq!((info.state, info.priority), (JobState::Scheduled, i32::MIN));
    });
}

#[test]
fn kick_job_moves_dead_and_scheduled_jobs_only() {
    on_both(|q, clock| {
        // Buried: ready, attempts reset.
        let buried = put(q, "k", 0);
        let job = q.reserve("k", ZERO).unwrap().unwrap();
        job.bury(Some("no")).unwrap();
        q.kick_job(buried).unwrap();
        let info = q.job(buried).unwrap();
        assert_eq!((info.state, info.attempts), (JobState::Ready, 0));
        assert!(is_state(q.kick_job(buried)), "a ready job");
        let job = q.reserve("k", ZERO).unwrap().unwrap();
        assert_eq!((job.id(), job.attempt()), (buried, 1));
        assert!(is_state(q.kick_job(buried)), "a reserved job");
        // Failed, waiting for its backoff: ready now, attempts kept.
        job.fail(Some("retry")).unwrap();
        assert_eq!(q.job(buried).unwrap().state, JobState::Scheduled);
        q.kick_job(buried).unwrap();
        let info = q.job(buried).unwrap();
        assert_eq!((info.state, info.attempts), (JobState::Ready, 1));
        let job = q.reserve("k", ZERO).unwrap().unwrap();
        assert_eq!((job.id(), job.attempt()), (buried, 2));
        job.ack().unwrap();
        assert!(matches!(q.kick_job(buried), Err(Error::NotFound(id)) if id == buried));
        assert!(matches!(q.kick_job(u64::MAX), Err(Error::NotFound(_))));

        // Delayed: ready at once.
        let delayed = q.put("k", b"d", &PutOptions { delay_ms: 60_000, ..PutOptions::default() }).unwrap().id();
        q.kick_job(delayed).unwrap();
        assert_eq!(q.reserve("k", ZERO).unwrap().map(|j| (j.id(), j.ack())).map(|(id, _)| id), Some(delayed));

        // Dead because its last lease expired: ready, attempts reset.
        let once = PutOptions { max_attempts: Some(1), ..PutOptions::default() };
        let expired = q.put("k", b"e", &once).unwrap().id();
        let held = q.reserve("k", ZERO).unwrap().unwrap();
        assert!(is_state(q.kick_job(expired)), "reserved with a live lease");
        clock.advance(1_001);
        assert_eq!(q.job(expired).unwrap().state, JobState::Dead);
        q.kick_job(expired).unwrap();
        let info = q.job(expired).unwrap();
        assert_eq!((info.state, info.attempts), (JobState::Ready, 0));
        drop(held);
        let job = q.reserve("k", ZERO).unwrap().unwrap();
        assert_eq!(job.id(), expired);
        job.ack().unwrap();

        // A dead job whose unique key a live job holds stays dead.
        let keyed = PutOptions { unique_key: Some("key".into()), ..PutOptions::default() };
        let old = q.put("k", b"o", &keyed).unwrap().id();
        q.reserve("k", ZERO).unwrap().unwrap().bury(None).unwrap();
        let new = q.put("k", b"n", &keyed).unwrap().id();
        assert!(new != old);
        assert!(is_state(q.kick_job(old)));
        assert_eq!(q.job(old).unwrap().state, JobState::Dead);
        q.cancel(new).unwrap();
        q.kick_job(old).unwrap();
        assert_eq!(q.job(old).unwrap().state, JobState::Ready);
        q.cancel(old).unwrap();
        assert!(matches!(q.kick_job(old), Err(Error::NotFound(_))));
    });
}

#[test]
fn kick_job_of_a_done_job_is_state_until_its_keep_time_passes() {
    for postgres in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (path, _schema) = pg::store(dir.path(), "ops-done.db", postgres);
        let clock = Arc::new(ManualClock::new(T0));
        let q = Queue::open_with_clock(&path, Config { keep_done_ms: 1_000, ..config() }, clock.clone()).unwrap();
        let id = put(&q, "d", 0);
        q.reserve("d", ZERO).unwrap().unwrap().ack().unwrap();
        assert!(is_state(q.kick_job(id)), "postgres: {postgres}");
        clock.advance(1_001);
        assert!(matches!(q.kick_job(id), Err(Error::NotFound(_))), "postgres: {postgres}");
        q.close().unwrap();
    }
}

#[test]
fn kick_job_wakes_a_waiting_reserve() {
    on_both_real(|q| {
        let id = put(q, "w", 0);
        q.reserve("w", ZERO).unwrap().unwrap().bury(None).unwrap();
        let waiter = {
            let q = q.clone();
            std::thread::spawn(move || {
                let t0 = Instant::now();
                let job = q.reserve_any(&["w"], Some(Duration::from_secs(20))).unwrap();
                (job.map(|j| (j.id(), j.ack())), t0.elapsed())
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        q.kick_job(id).unwrap();
        let (got, took) = waiter.join().unwrap();
        let (got_id, acked) = got.expect("the kick woke the wait");
        assert_eq!(got_id, id);
        acked.unwrap();
        assert!(took < Duration::from_secs(5), "{took:?}");
    });
}

#[test]
fn peek_shows_the_next_job_of_each_state_without_leasing_it() {
    on_both(|q, clock| {
        assert_eq!(peek_id(q, "p", JobState::Ready), None);
        assert_eq!(peek_id(q, "p", JobState::Scheduled), None);
        assert_eq!(peek_id(q, "p", JobState::Dead), None);
        let a = put(q, "p", 5);
        let b = put(q, "p", 1);
        let c = put(q, "p", 1);
        put(q, "other", -9);
        let ready = q.peek("p", JobState::Ready).unwrap().unwrap();
        assert_eq!((ready.id, ready.state, ready.payload.as_slice()), (b, JobState::Ready, &b"x"[..]));
        assert_eq!(peek_id(q, "p", JobState::Ready), Some(b), "a peek leases nothing");
        // A paused queue's next job is still shown.
        q.pause("p").unwrap();
        assert_eq!(peek_id(q, "p", JobState::Ready), Some(b));
        q.resume("p").unwrap();

        // Scheduled: the one due soonest, not the smallest id.
        let later = q.put("p", b"l", &PutOptions { delay_ms: 5_000, ..PutOptions::default() }).unwrap().id();
        let sooner = q.put("p", b"s", &PutOptions { delay_ms: 2_000, ..PutOptions::default() }).unwrap().id();
        assert_eq!(peek_id(q, "p", JobState::Scheduled), Some(sooner));

        // Dead: the one that died first.
        let jb = q.reserve("p", ZERO).unwrap().unwrap();
        let jc = q.reserve("p", ZERO).unwrap().unwrap();
        assert_eq!((jb.id(), jc.id()), (b, c));
        jc.bury(None).unwrap();
        clock.advance(10);
        jb.bury(None).unwrap();
        assert_eq!(peek_id(q, "p", JobState::Dead), Some(c));
        assert_eq!(peek_id(q, "p", JobState::Ready), Some(a));

        // Time passes: the sooner delay is due (ready, and first by priority
        // 0 < 5); the expired lease of a held job makes it ready too.
        let held = q.reserve("p", ZERO).unwrap().unwrap();
        assert_eq!(held.id(), a);
        assert_eq!(peek_id(q, "p", JobState::Ready), None);
        clock.advance(2_000);
        assert_eq!(peek_id(q, "p", JobState::Ready), Some(sooner));
        assert_eq!(peek_id(q, "p", JobState::Scheduled), Some(later));
        let info = q.peek("p", JobState::Ready).unwrap().unwrap();
        assert_eq!(info.state, JobState::Ready);
        let s = q.reserve("p", ZERO).unwrap().unwrap();
        assert_eq!(s.id(), sooner);
        s.ack().unwrap();
        // a's lease (1 s) expired: ready again, and shown as such.
        assert_eq!(peek_id(q, "p", JobState::Ready), Some(a));
        drop(held);

        // Reserved and Done have no peek; bad names are refused.
        assert!(is_invalid(q.peek("p", JobState::Reserved)));
        assert!(is_invalid(q.peek("p", JobState::Done)));
        assert!(is_invalid(q.peek("", JobState::Ready)));
    });
}

#[test]
fn peek_dead_includes_a_job_whose_last_lease_expired() {
    on_both(|q, clock| {
        let once = PutOptions { max_attempts: Some(1), ..PutOptions::default() };
        let buried = put(q, "x", 0);
        let expired = q.put("x", b"e", &once).unwrap().id();
        let jb = q.reserve("x", ZERO).unwrap().unwrap();
        let _je = q.reserve("x", ZERO).unwrap().unwrap();
        assert_eq!(peek_id(q, "x", JobState::Dead), None);
        clock.advance(1_001);
        // The lease ended at T0 + 1000, before the bury at T0 + 1001.
        jb.bury(None).unwrap();
        assert_eq!(jb.id(), buried);
        assert_eq!(peek_id(q, "x", JobState::Dead), Some(expired));
        let info = q.peek("x", JobState::Dead).unwrap().unwrap();
        assert_eq!(info.state, JobState::Dead);
        q.kick_job(expired).unwrap();
        assert_eq!(peek_id(q, "x", JobState::Dead), Some(buried));
    });
}
