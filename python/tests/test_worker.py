"""Worker pools: jobq_worker running Python callables on the library's threads."""

from __future__ import annotations

import logging
import threading
import time

import pytest

import jobq
from conftest import FAST


def wait_for(cond, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def test_outcomes(store: str, caplog: pytest.LogCaptureFixture) -> None:
    with jobq.Queue(store, FAST) as q:
        for p in (b"ok", b"none", b"retry", b"bury", b"raise", b"weird"):
            q.put("w", p)
        calls: list = []
        lock = threading.Lock()

        def handler(job: jobq.JobView) -> int | None:
            with lock:
                calls.append((job.payload, job.attempt, job.queue, job.id))
            if job.payload == b"ok":
                return jobq.DONE
            if job.payload == b"none":
                return None
            if job.payload == b"retry":
                return jobq.RETRY if job.attempt == 1 else jobq.DONE
            if job.payload == b"bury":
                return jobq.BURY
            if job.payload == b"raise":
                if job.attempt == 1:
                    raise KeyError("first try")
                return None
            return 42  # not an outcome: retried, then done
        with caplog.at_level(logging.WARNING, logger="jobq"):
            with q.worker("w", handler, concurrency=2) as pool:
                assert pool.running
                assert wait_for(lambda: q.stats()["queues"]["w"]["ready"] + q.stats()["queues"]["w"]["scheduled"]
                                + q.stats()["queues"]["w"]["reserved"] == 0 and len(calls) >= 10)
            assert not pool.running
        s = q.stats()["queues"]["w"]
        assert s["dead"] == 2  # bury, and weird (42 counts as RETRY) after its 3 attempts
        payloads = [c[0] for c in calls]
        assert payloads.count(b"retry") == 2 and payloads.count(b"raise") == 2 and payloads.count(b"weird") == 3
        assert pool.errors == 1
        assert any("first try" in r.getMessage() for r in caplog.records)


def test_concurrency_uses_several_threads(file_store: str) -> None:
    with jobq.Queue(file_store, FAST) as q:
        q.put_batch("c", [b"x"] * 8)
        threads = set()
        running = 0
        peak = 0
        lock = threading.Lock()

        def handler(job: jobq.JobView) -> None:
            nonlocal running, peak
            with lock:
                threads.add(threading.get_ident())
                running += 1
                peak = max(peak, running)
            time.sleep(0.05)  # releases the GIL: handlers overlap
            with lock:
                running -= 1

        with q.worker("c", handler, concurrency=4):
            assert wait_for(lambda: sum(q.stats()["queues"]["c"][k] for k in ("ready", "reserved")) == 0)
        assert threading.get_ident() not in threads
        assert len(threads) >= 2 and peak >= 2


def test_stop_timeout_and_queue_close_stops_pools(file_store: str) -> None:
    q = jobq.Queue(file_store, FAST)
    q.put("s", b"slow")
    started = threading.Event()
    release = threading.Event()

    def handler(job: jobq.JobView) -> None:
        started.set()
        release.wait(5)

    pool = q.worker("s", handler)
    assert started.wait(5)
    assert pool.stop(timeout=0.05) is False  # the handler still runs
    assert pool.stop() is True  # already stopped
    release.set()
    # The pool's thread ends when its handler returns; then close works.
    assert wait_for(lambda: _try_close(q))
    # A queue closed with a pool running stops it first.
    q2 = jobq.Queue(file_store, FAST)
    q2.put("t", b"x")
    done = threading.Event()
    p2 = q2.worker("t", lambda job: done.set())
    assert done.wait(5)
    q2.close()
    assert not p2.running


def _try_close(q: jobq.Queue) -> bool:
    try:
        q.close()
        return True
    except jobq.Busy:
        return False


def test_handler_may_use_the_queue(store: str) -> None:
    with jobq.Queue(store, FAST) as q:
        q.put("a", b"1")

        def handler(job: jobq.JobView) -> None:
            q.put("b", job.payload + b"!")

        with q.worker("a", handler):
            j = q.reserve("b", timeout=10)
        assert j and j.payload == b"1!"
        j.ack()


def test_bad_handler(file_store: str) -> None:
    with jobq.Queue(file_store, FAST) as q:
        with pytest.raises(TypeError):
            q.worker("x", "not callable")  # type: ignore[arg-type]
        with pytest.raises(jobq.InvalidArgument):
            q.worker("", lambda j: None)
