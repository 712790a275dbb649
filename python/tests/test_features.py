"""Limits, schedules, results and the beanstalkd-style calls (reserve_any,
release/bury with a priority, kick_job, peek) through the Pythonic layer, on
both backends."""

from __future__ import annotations

import time

import pytest

import jobq
from conftest import FAST


def test_configure_caps_reserved_jobs(store: str) -> None:
    with jobq.Queue(store, FAST) as q:
        for i in range(3):
            q.put("cap", b"%d" % i)
        q.configure("cap", {"max_reserved": 2})
        a, b = q.reserve("cap"), q.reserve("cap")
        assert a is not None and b is not None
        assert q.reserve("cap") is None, "a third reserve is held back by max_reserved"
        assert q.stats()["queues"]["cap"]["limits"] == {"max_reserved": 2}
        a.ack()
        c = q.reserve("cap", timeout=2)
        assert c is not None
        b.ack()
        c.ack()
        q.configure("cap", {"max_reserved": None})
        assert "limits" not in q.stats()["queues"]["cap"]
        with pytest.raises(jobq.InvalidArgument):
            q.configure("cap", {"max_reserved": 0})
        with pytest.raises(jobq.InvalidArgument):
            q.configure("cap", {"no_such_key": 1})


def test_schedule_every_fires_and_unschedule_stops(store: str) -> None:
    with jobq.Queue(store, FAST) as q:
        q.schedule("tick", "ticks", "@every 100ms", b"tick")
        assert [s["name"] for s in q.stats()["schedules"]] == ["tick"]
        job = q.reserve("ticks", timeout=3)
        assert job is not None and job.payload == b"tick"
        job.ack()
        q.unschedule("tick")
        assert "schedules" not in q.stats()
        with pytest.raises(jobq.InvalidArgument):
            q.schedule("bad", "ticks", "61 * * * *")


def test_ack_result_and_job_info(store: str) -> None:
    with jobq.Queue(store, dict(FAST, keep_done_ms=60_000)) as q:
        jid = q.put("r", b"work")
        job = q.reserve("r")
        assert job is not None
        job.ack_result(b"42")
        info = q.job_info(jid)
        assert (info["state"], info["result"], info["attempts"]) == ("done", "42", 1)
        with pytest.raises(jobq.NotFound):
            q.job_info(jid + 1000)


def test_ack_result_too_big_keeps_the_job(store: str) -> None:
    with jobq.Queue(store, FAST) as q:
        q.put("r", b"x")
        job = q.reserve("r")
        assert job is not None
        with pytest.raises(jobq.TooBig):
            job.ack_result(b"\0" * (jobq.lib.JOBQ_RESULT_MAX + 1))
        assert not job.finished
        job.ack()
        time.sleep(0)


def test_reserve_any_priorities_kick_job_and_peek(store: str) -> None:
    with jobq.Queue(store, FAST) as q:
        a = q.put("ba", b"a", priority=5)
        b = q.put("bb", b"b")
        job = q.reserve_any(["ba", "bb"])
        assert job is not None and (job.id, job.queue) == (b, "bb")
        job.release(priority=9)
        assert q.peek("bb") == b
        job = q.reserve_any(("bb", "ba"))
        assert job is not None and job.id == a
        job.bury("later", priority=-1)
        assert q.peek("ba", "dead") == a and q.peek("ba", "ready") is None
        q.kick_job(a)
        with pytest.raises(jobq.StateError):
            q.kick_job(a)
        with pytest.raises(jobq.NotFound):
            q.kick_job(a + 1000)
        job = q.reserve_any(["bb", "ba"], timeout=1)
        assert job is not None and (job.id, job.attempt) == (a, 1)
        job.ack()
        later = q.put("bb", b"later", delay_ms=60000)
        assert q.peek("bb", "scheduled") == later
        assert q.reserve_any(["ba"], timeout=0.05) is None
        with pytest.raises(jobq.InvalidArgument):
            q.reserve_any([])
        with pytest.raises(jobq.InvalidArgument):
            q.reserve_any(["x"] * (jobq.RESERVE_ANY_MAX + 1))
        with pytest.raises(jobq.InvalidArgument):
            q.peek("bb", "reserved")
