"""The Pythonic layer on a file store and on PostgreSQL (the `store` fixture)."""

from __future__ import annotations

import selectors
import threading
import time

import pytest

import jobq
from conftest import FAST


def test_put_reserve_ack_roundtrip(store: str) -> None:
    with jobq.Queue(store, FAST) as q:
        payload = bytes(range(256)) + b"\0tail"
        jid = q.put("q", payload)
        assert isinstance(jid, int) and jid > 0
        job = q.reserve("q")
        assert job is not None
        assert (job.id, job.queue, job.payload, job.attempt, job.attempts) == (jid, "q", payload, 1, 1)
        assert not job.finished
        job.ack()
        assert job.finished
        assert q.reserve("q") is None
        with pytest.raises(jobq.StateError) as e:
            job.ack()
        assert e.value.status == jobq.lib.JOBQ_E_STATE and e.value.name == "JOBQ_E_STATE"
        job.close()
        job.close()  # twice is fine


def test_payload_types(store: str) -> None:
    with jobq.Queue(store, FAST) as q:
        q.put("q", b"")
        q.put("q", bytearray(b"ba"))
        q.put("q", memoryview(b"xmvx")[1:3])
        with pytest.raises(TypeError):
            q.put("q", "a str")  # type: ignore[arg-type]
        got = [q.reserve("q") for _ in range(3)]
        assert [j.payload for j in got if j] == [b"", b"ba", b"mv"]
        assert jobq.ack_many(j for j in got if j) == [True, True, True]


def test_put_options_priority_delay_attempts_lease(store: str) -> None:
    with jobq.Queue(store, FAST) as q:
        q.put("q", b"late", priority=5)
        q.put("q", b"first", priority=-1)
        q.put("q", b"delayed", priority=-9, delay_ms=150)
        assert q.stats()["queues"]["q"]["scheduled"] == 1
        a, b = q.reserve("q"), q.reserve("q")
        assert a and b and (a.payload, b.payload) == (b"first", b"late")
        assert q.reserve("q") is None
        d = q.reserve("q", timeout=5)
        assert d and d.payload == b"delayed"
        for j in (a, b, d):
            j.ack()
        # max_attempts=1: the first failure is final.
        q.put("q", b"once", max_attempts=1)
        j = q.reserve("q")
        assert j
        j.fail("boom")
        assert q.stats()["queues"]["q"]["dead"] == 1
        # lease_ms: a short lease expires and the job is delivered again.
        q.put("l", b"lease", lease_ms=50)
        j1 = q.reserve("l")
        assert j1
        j2 = q.reserve("l", timeout=5)
        assert j2 and j2.id == j1.id and j2.attempt == 2
        with pytest.raises(jobq.StateError):
            j1.ack()
        j2.ack()


def test_unique_key_duplicate(store: str) -> None:
    with jobq.Queue(store, FAST) as q:
        first = q.put("q", b"a", unique_key="k1")
        with pytest.raises(jobq.Duplicate) as e:
            q.put("q", b"b", unique_key="k1")
        assert e.value.id == first and e.value.status == jobq.lib.JOBQ_DUPLICATE
        assert isinstance(e.value, jobq.Error)
        assert q.put("q", b"c", unique_key="k2") != first


def test_put_batch(store: str) -> None:
    with jobq.Queue(store, FAST) as q:
        ids = q.put_batch("b", [b"1", b"2", bytearray(b"3")], priority=2)
        assert len(ids) == 3 and ids == sorted(ids)
        assert q.put_batch("b", []) == []
        with pytest.raises(jobq.InvalidArgument):
            q.put_batch("b", [b"x", b"y"], unique_key="k")
        jobs = q.reserve_many("b", 10)
        assert [j.payload for j in jobs] == [b"1", b"2", b"3"]
        assert [j.id for j in jobs] == ids
        assert jobq.ack_many(jobs) == [True] * 3


def test_errors_carry_status_and_message(store: str, tmp_path) -> None:
    with jobq.Queue(store, FAST) as q:
        with pytest.raises(jobq.InvalidArgument) as e:
            q.put("", b"x")
        assert e.value.status == -1 and e.value.message and isinstance(e.value, ValueError)
        with pytest.raises(jobq.NotFound):
            q.cancel(123456789)
    with pytest.raises(jobq.InvalidArgument) as e:
        jobq.Queue(tmp_path / "x.db", {"no_such_key": 1})
    assert "no_such_key" in e.value.message
    with pytest.raises(jobq.IoError) as e:
        jobq.Queue(tmp_path / "missing-dir" / "x.db")
    assert e.value.status == jobq.lib.JOBQ_E_IO and isinstance(e.value, OSError)
    (tmp_path / "junk.db").write_bytes(b"not a database" * 100)
    with pytest.raises(jobq.Corrupt):
        jobq.Queue(tmp_path / "junk.db")


def test_closed_queue(store: str) -> None:
    q = jobq.Queue(store, FAST)
    with q:
        q.put("q", b"x")
        job = q.reserve("q")
    assert q.closed
    q.close()  # again: nothing
    with pytest.raises(jobq.HandleError):
        q.put("q", b"x")
    with pytest.raises(jobq.HandleError):
        q.stats()
    assert job is not None
    with pytest.raises(jobq.Shutdown):
        job.ack()  # its store is closed


def test_job_context_manager(store: str) -> None:
    with jobq.Queue(store, FAST) as q:
        q.put("q", b"ok")
        q.put("q", b"bad")
        with q.reserve("q") as job:  # type: ignore[union-attr]
            assert job.payload == b"ok"
        assert job.finished
        with pytest.raises(RuntimeError):
            with q.reserve("q") as job:  # type: ignore[union-attr]
                raise RuntimeError("handler broke")
        # Failed, not acked: back after the 20 ms backoff, attempt 2.
        again = q.reserve("q", timeout=5)
        assert again and again.payload == b"bad" and again.attempt == 2
        with again:
            again.bury("by hand")  # finished inside: exit leaves it alone
        assert q.stats()["queues"]["q"]["dead"] == 1
        assert q.kick("q") == 1
        with q.reserve("q") as j:  # type: ignore[union-attr]
            assert j.payload == b"bad"


def test_release_touch_fail_retries(store: str) -> None:
    with jobq.Queue(store, FAST) as q:
        q.put("q", b"x")
        j = q.reserve("q")
        assert j
        j.touch(1000)
        j.release(delay_ms=0)
        j2 = q.reserve("q", timeout=2)
        assert j2 and j2.attempt == 1  # a release is not a failure
        j2.fail("one")
        j3 = q.reserve("q", timeout=5)
        assert j3 and j3.attempt == 2
        j3.fail("two")
        j4 = q.reserve("q", timeout=5)
        assert j4 and j4.attempt == 3
        j4.fail("three")  # max_attempts 3: dead
        assert q.reserve("q", timeout=0.1) is None
        s = q.stats()["queues"]["q"]
        assert (s["dead"], s["ready"], s["reserved"]) == (1, 0, 0)


def test_reserve_timeout_returns_none_and_waits(store: str) -> None:
    with jobq.Queue(store, FAST) as q:
        t = time.monotonic()
        assert q.reserve("empty", timeout=0.2) is None
        waited = time.monotonic() - t
        assert 0.15 <= waited < 3
        with pytest.raises(ValueError):
            q.reserve("empty", timeout=-1)
        # A waiting reserve (GIL released) wakes for another thread's put.
        got = []
        t = threading.Thread(target=lambda: got.append(q.reserve("w", timeout=None)))
        t.start()
        time.sleep(0.05)
        q.put("w", b"wake")
        t.join(5)
        assert not t.is_alive() and got[0] is not None and got[0].payload == b"wake"
        got[0].ack()


def test_close_wakes_waiting_reserve(file_store: str) -> None:
    q = jobq.Queue(file_store, FAST)
    errors = []

    def wait() -> None:
        try:
            q.reserve("q", timeout=None)
        except jobq.Error as e:
            errors.append(e)

    t = threading.Thread(target=wait)
    t.start()
    time.sleep(0.1)
    q.close()
    t.join(5)
    assert not t.is_alive()
    assert errors and isinstance(errors[0], (jobq.Shutdown, jobq.HandleError))


def test_jobs_iterator(store: str) -> None:
    with jobq.Queue(store, FAST) as q:
        q.put_batch("it", [b"a", b"b", b"c"])
        seen = []
        for job in q.jobs("it", timeout=0.1):
            with job:
                seen.append(job.payload)
        assert seen == [b"a", b"b", b"c"]


def test_stats_pause_resume(store: str) -> None:
    with jobq.Queue(store, FAST) as q:
        q.put("p", b"x")
        q.pause("p")
        s = q.stats()
        assert s["queues"]["p"] == {"ready": 1, "scheduled": 0, "reserved": 0, "dead": 0, "done": 0, "paused": True}
        assert q.reserve("p", timeout=0.1) is None
        q.resume("p")
        assert q.stats()["queues"]["p"]["paused"] is False
        j = q.reserve("p", timeout=1)
        assert j
        assert q.stats()["queues"]["p"]["reserved"] == 1
        j.ack()
        with pytest.raises(jobq.InvalidArgument):
            q.pause("")


def test_cancel(store: str) -> None:
    with jobq.Queue(store, FAST) as q:
        a = q.put("c", b"a")
        b = q.put("c", b"b")
        q.cancel(a)
        j = q.reserve("c")
        assert j and j.id == b
        with pytest.raises(jobq.StateError):
            q.cancel(b)  # leased
        j.ack()


def test_reserve_many_ack_many_ack_reserve(store: str) -> None:
    with jobq.Queue(store, FAST) as q:
        q.put_batch("m", [b"%d" % i for i in range(5)])
        with pytest.raises(jobq.InvalidArgument):
            q.reserve_many("m", jobq.RESERVE_MANY_MAX + 1)
        with pytest.raises(ValueError):
            q.reserve_many("m", 0)
        jobs = q.reserve_many("m", 3)
        assert [j.payload for j in jobs] == [b"0", b"1", b"2"]
        jobs[1].ack()
        assert jobq.ack_many(jobs) == [True, False, True]
        assert q.reserve_many("empty", 4, timeout=0.05) == []
        j = q.reserve("m")
        assert j and j.payload == b"3"
        nxt = j.ack_and_reserve()
        assert j.finished and nxt and nxt.payload == b"4"
        assert nxt.ack_and_reserve(timeout=0.1) is None  # acked, nothing next
        assert nxt.finished
        with pytest.raises(jobq.StateError):
            nxt.ack_and_reserve()
        assert q.stats()["queues"]["m"]["ready"] == 0
        assert q.stats()["queues"]["m"]["reserved"] == 0


def test_watch_with_selectors(store: str) -> None:
    with jobq.Queue(store, FAST) as q:
        with q.watch("w") as w:
            sel = selectors.DefaultSelector()
            sel.register(w, selectors.EVENT_READ)
            assert sel.select(timeout=2), "a watch starts readable"
            assert w.consume() is None  # nothing scheduled
            q.put("w", b"x")
            assert sel.select(timeout=2), "a put makes it readable"
            w.consume()
            j = q.reserve("w")
            assert j and j.payload == b"x"
            j.ack()
            q.put("w", b"later", delay_ms=5000)
            due = w.consume()
            assert due is not None and 0 < due <= 5000
            sel.unregister(w)
            sel.close()
        with pytest.raises(jobq.HandleError):
            w.fileno()
        w.close()  # twice: nothing


def test_close_stops_watches(file_store: str) -> None:
    q = jobq.Queue(file_store, FAST)
    w = q.watch("w")
    q.close()  # would be JOBQ_E_BUSY in C with the watch open
    with pytest.raises(jobq.HandleError):
        w.consume()


def test_exception_hierarchy() -> None:
    for cls in (jobq.InvalidArgument, jobq.HandleError, jobq.NotFound, jobq.StateError, jobq.Busy, jobq.IoError,
                jobq.Corrupt, jobq.VersionError, jobq.TooBig, jobq.Shutdown, jobq.InternalError, jobq.Duplicate):
        assert issubclass(cls, jobq.Error)
    e = jobq.error_for(-12345, "from the future")
    assert type(e) is jobq.Error and e.status == -12345 and "from the future" in str(e)


def test_too_big(tmp_path) -> None:
    with jobq.Queue(tmp_path / "t.db", {"max_payload_bytes": 10}) as q:
        with pytest.raises(jobq.TooBig):
            q.put("q", b"x" * 11)
        q.put("q", b"x" * 10)
