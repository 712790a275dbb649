//! The batched calls through the Rust API, on both backends: ack_and_reserve
//! (ack and lease the next job in one call), reserve_many and ack_many.
//! Time is a `ManualClock`, so a lease expires exactly when a test says.

#[path = "support/pg.rs"]
mod pg;

use std::sync::Arc;
use std::time::Duration;

use jobq::{Config, Durability, Error, ManualClock, PutOptions, Queue, QueueCounts};

const ZERO: Option<Duration> = Some(Duration::ZERO);
const SHORT_LEASE: u64 = 100;

fn counts(ready: u64, scheduled: u64, reserved: u64, dead: u64) -> QueueCounts {
    QueueCounts { ready, scheduled, reserved, dead, done: 0, paused: false }
}

fn counts_of(q: &Queue, queue: &str) -> QueueCounts {
    q.stats().unwrap().queues.get(queue).copied().unwrap_or_default()
}

fn short_lease() -> PutOptions {
    PutOptions { lease_ms: Some(SHORT_LEASE), ..PutOptions::default() }
}

/// Runs `body` with a fresh queue on SQLite, then on PostgreSQL.
fn on_both(body: impl Fn(&Queue, &ManualClock, &dyn Fn() -> Queue)) {
    for postgres in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (path, _schema) = pg::store(dir.path(), "batched.db", postgres);
        let config = Config { durability: Durability::Normal, ..Config::default() };
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let q = Queue::open_with_clock(&path, config.clone(), clock.clone()).unwrap();
        // Another handle on the same store, for the checks about handles.
        let open_other = || Queue::open_with_clock(&path, config.clone(), clock.clone()).unwrap();
        body(&q, &clock, &open_other);
        q.close().unwrap();
    }
}

#[test]
fn ack_and_reserve_acks_then_leases_the_next_in_order() {
    on_both(|q, _, _| {
        let opts = PutOptions::default();
        let a = q.put("q", b"a", &opts).unwrap().id();
        let urgent = q.put("q", b"u", &PutOptions { priority: -1, ..opts.clone() }).unwrap().id();
        let b = q.put("q", b"b", &opts).unwrap().id();
        let first = q.reserve("q", ZERO).unwrap().unwrap();
        assert_eq!(first.id(), urgent);
        let second = q.ack_and_reserve(&first, "q", ZERO).unwrap().unwrap();
        assert_eq!((second.id(), second.attempt()), (a, 1));
        assert!(first.is_finished());
        assert!(matches!(first.ack(), Err(Error::State(_))));
        assert_eq!(counts_of(q, "q"), counts(1, 0, 1, 0));
        let third = q.ack_and_reserve(&second, "q", ZERO).unwrap().unwrap();
        assert_eq!(third.id(), b);
        // Nothing left: None, and the ack is stored all the same.
        assert!(q.ack_and_reserve(&third, "q", Some(Duration::from_millis(20))).unwrap().is_none());
        assert_eq!(counts_of(q, "q"), counts(0, 0, 0, 0));
        assert!(matches!(q.ack_and_reserve(&third, "q", ZERO), Err(Error::State(_))));
    });
}

#[test]
fn a_stale_ack_and_reserve_acks_nothing_and_leases_nothing() {
    on_both(|q, clock, _| {
        let id = q.put("s", b"x", &short_lease()).unwrap().id();
        q.put("next", b"y", &PutOptions::default()).unwrap();
        let slow = q.reserve("s", ZERO).unwrap().unwrap();
        clock.advance(SHORT_LEASE as i64 + 1);
        let again = q.reserve("s", ZERO).unwrap().unwrap();
        assert_eq!((again.id(), again.attempt()), (id, 2));
        assert!(matches!(q.ack_and_reserve(&slow, "next", ZERO), Err(Error::State(_))));
        assert_eq!(counts_of(q, "s"), counts(0, 0, 1, 0));
        assert_eq!(counts_of(q, "next"), counts(1, 0, 0, 0));
        again.ack().unwrap();
    });
}

#[test]
fn bad_arguments_ack_nothing() {
    on_both(|q, _, open_other| {
        q.put("b", b"x", &PutOptions::default()).unwrap();
        let job = q.reserve("b", ZERO).unwrap().unwrap();
        assert!(matches!(q.ack_and_reserve(&job, "", ZERO), Err(Error::InvalidArg(_))));
        let other = open_other();
        assert!(matches!(other.ack_and_reserve(&job, "b", ZERO), Err(Error::InvalidArg(_))));
        assert!(matches!(other.ack_many(&[&job]), Err(Error::InvalidArg(_))));
        for max in [0, jobq::MAX_RESERVE_MANY + 1] {
            assert!(matches!(q.reserve_many("b", max, ZERO), Err(Error::InvalidArg(_))), "max {max}");
        }
        assert!(!job.is_finished());
        assert_eq!(counts_of(q, "b"), counts(0, 0, 1, 0));
        assert!(q.ack_many(&[]).unwrap().is_empty());
        job.ack().unwrap();
        other.close().unwrap();
    });
}

#[test]
fn reserve_many_leases_up_to_max_in_priority_then_fifo_order() {
    on_both(|q, _, _| {
        let opts = PutOptions::default();
        let batch: Vec<&[u8]> = vec![b"0", b"1", b"2"];
        let normal: Vec<u64> = q.put_batch("m", &batch, &opts).unwrap().into_iter().map(|p| p.id()).collect();
        let urgent = q.put("m", b"u", &PutOptions { priority: -5, ..opts.clone() }).unwrap().id();
        let got = q.reserve_many("m", 3, ZERO).unwrap();
        let ids: Vec<u64> = got.iter().map(|j| j.id()).collect();
        assert_eq!(ids, vec![urgent, normal[0], normal[1]]);
        let rest = q.reserve_many("m", 10, ZERO).unwrap();
        assert_eq!(rest.iter().map(|j| j.id()).collect::<Vec<_>>(), vec![normal[2]]);
        assert!(q.reserve_many("m", 10, Some(Duration::from_millis(20))).unwrap().is_empty());
        let all: Vec<&jobq::Job> = got.iter().chain(&rest).collect();
        let answers = q.ack_many(&all).unwrap();
        assert!(answers.iter().all(|a| a.is_ok()), "{answers:?}");
        assert_eq!(counts_of(q, "m"), counts(0, 0, 0, 0));
    });
}

#[test]
fn ack_many_reports_a_stale_delivery_and_acks_the_others() {
    on_both(|q, clock, _| {
        q.put("a", b"1", &PutOptions::default()).unwrap();
        let stale = q.put("a", b"2", &short_lease()).unwrap().id();
        q.put("a", b"3", &PutOptions::default()).unwrap();
        let got = q.reserve_many("a", 3, ZERO).unwrap();
        assert_eq!(got.len(), 3);
        clock.advance(SHORT_LEASE as i64 + 1);
        let again = q.reserve("a", ZERO).unwrap().unwrap();
        assert_eq!(again.id(), stale);
        // The same delivery twice is acked once.
        let jobs = [&got[0], &got[1], &got[2], &got[0]];
        let answers = q.ack_many(&jobs).unwrap();
        assert!(answers[0].is_ok() && answers[2].is_ok(), "{answers:?}");
        assert!(matches!(answers[1], Err(Error::State(_))), "{answers:?}");
        assert!(matches!(answers[3], Err(Error::State(_))), "{answers:?}");
        assert!(got.iter().all(|j| j.is_finished()));
        assert_eq!(counts_of(q, "a"), counts(0, 0, 1, 0));
        again.ack().unwrap();
    });
}
