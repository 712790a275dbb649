"""pystalk (PyPI) against a beanstalkd server: the client's whole API
(BeanstalkClient and ProductionPool). See conftest.py."""

import time

import pytest
from pystalk import BeanstalkClient, BeanstalkError, ProductionPool

from conftest import addr


def client(**kw):
    host, port = addr()
    return BeanstalkClient(host, port, auto_decode=True, **kw)


def test_ping_and_from_uri():
    host, port = addr()
    assert client().ping()
    c = BeanstalkClient.from_uri(f"beanstalk://{host}:{port}", auto_decode=True)
    assert "default" in c.list_tubes()
    c.close()


def test_put_reserve_delete(tube):
    c = client()
    c.use(tube)
    c.watch(tube)  # the first watch also ignores default
    assert c.watchlist == {tube}
    status, jid = c.put_job("hello")
    assert status == b"INSERTED" and jid > 0
    job = c.reserve_job(1)
    assert (job.job_id, job.job_data) == (jid, "hello")
    c.delete_job(job.job_id)
    with pytest.raises(BeanstalkError) as e:
        c.delete_job(jid)
    assert e.value.message == "NOT_FOUND"
    with pytest.raises(BeanstalkError) as e:
        c.reserve_job(0)
    assert e.value.message == "TIMED_OUT"
    c.close()


def test_bytes_bodies(tube):
    c = client()
    c = BeanstalkClient(*addr(), auto_decode=False)
    body = bytes(range(256)) * 10
    c.put_job_into(tube, body)
    c.watch(tube)
    job = c.reserve_job(1)
    assert job.job_data == body
    c.delete_job(job)
    c.close()


def test_put_job_into_and_using(tube, tube2):
    c = client()
    with c.using(tube) as inserter:
        _, j1 = inserter.put_job("via proxy", pri=5)
    assert c.current_tube == "default"
    _, j2 = c.put_job_into(tube2, "into", pri=1)
    assert c.current_tube == "default"
    assert c.stats_job(j1)["tube"] == tube
    assert c.stats_job(j2)["tube"] == tube2
    c.watchlist = [tube, tube2]
    assert c.watchlist == {tube, tube2}
    # priorities across tubes: j2 (pri 1) before j1 (pri 5)
    assert [j.job_id for j in c.reserve_iter()] == [j2, j1]
    c.delete_job(j1)
    c.delete_job(j2)
    c.close()


def test_release_bury_kick(tube):
    c = client()
    c.use(tube)
    c.watch(tube)
    _, jid = c.put_job("work", pri=100)
    job = c.reserve_job(0)
    assert c.release_job(job.job_id, pri=7, delay=0) == b"RELEASED"
    s = c.stats_job(jid)
    assert (s["state"], s["pri"]) == ("ready", 7)
    job = c.reserve_job(0)
    assert c.bury_job(job.job_id, pri=3) == b"BURIED"
    assert c.peek_buried().job_id == jid
    assert c.stats_tube(tube)["current-jobs-buried"] == 1
    assert c.kick_jobs(5) == (b"KICKED", 1)
    assert c.stats_job(jid)["state"] == "ready"
    job = c.reserve_job(0)
    c.bury_job(job)
    c.kick_job(jid)
    assert c.stats_job(jid)["state"] == "ready"
    with pytest.raises(BeanstalkError):
        c.kick_job(jid)
    c.delete_job(jid)
    c.close()


def test_release_with_delay(tube):
    c = client()
    c.use(tube)
    c.watch(tube)
    _, jid = c.put_job("later")
    job = c.reserve_job(0)
    c.release_job(job.job_id, delay=1)
    assert c.stats_job(jid)["state"] == "delayed"
    assert c.peek_delayed().job_id == jid
    with pytest.raises(BeanstalkError):
        c.reserve_job(0)
    job = c.reserve_job(3)
    assert job.job_id == jid
    c.delete_job(job)
    c.close()


def test_peek_iters(tube):
    c = client()
    c.use(tube)
    assert list(c.peek_ready_iter()) == []
    assert list(c.peek_delayed_iter()) == []
    assert list(c.peek_buried_iter()) == []
    _, r = c.put_job("r")
    _, d = c.put_job("d", delay=60)
    assert c.peek_ready().job_data == "r"
    assert c.peek_delayed().job_id == d
    # peek-ready of a tube holding one ready job: the same job each time;
    # the iterator stops when it is gone.
    seen = []
    for job in c.peek_ready_iter():
        seen.append(job.job_id)
        c.delete_job(job.job_id)
    assert seen == [r]
    seen = []
    for job in c.peek_delayed_iter():
        seen.append(job.job_id)
        c.delete_job(job.job_id)
    assert seen == [d]
    c.close()


def test_stats_and_list_tubes(tube):
    c = client()
    c.use(tube)
    s = c.stats()
    assert s["max-job-size"] == 65535
    assert {"current-jobs-ready", "cmd-put", "current-connections", "uptime", "pid"} <= set(s)
    c.put_job("s", pri=9, ttr=45)
    t = c.stats_tube(tube)
    assert t["name"] == tube and t["current-jobs-ready"] == 1 and t["current-using"] == 1
    assert tube in c.list_tubes()
    with pytest.raises(BeanstalkError) as e:
        c.stats_tube("nosuch-" + tube)
    assert e.value.message == "NOT_FOUND"
    c.close()


def test_watch_ignore(tube, tube2):
    c = client()
    c.watch(tube)
    c.watch(tube2)
    assert c.watchlist == {tube, tube2}
    c.ignore(tube)
    assert c.watchlist == {tube2}
    with pytest.raises(KeyError):
        c.ignore(tube)
    # The server's view.
    c._send_message("list-tubes-watched", c._socket)
    import yaml

    assert yaml.safe_load(c._receive_data_with_prefix(b"OK", c._socket)) == [tube2]
    c.close()


def test_pause_and_unpause(tube):
    c = client()
    c.use(tube)
    c.watch(tube)
    _, jid = c.put_job("p")
    assert c.pause_tube(tube, 1) == b"PAUSED"
    with pytest.raises(BeanstalkError):
        c.reserve_job(0)
    job = c.reserve_job(4)
    assert job.job_id == jid
    c.release_job(job.job_id)
    c.pause_tube(tube, 100)
    assert c.unpause_tube(tube) == b"PAUSED"
    assert c.reserve_job(0).job_id == jid
    c.delete_job(jid)
    c.close()


def test_reconnect_restores_use_and_watch(tube, tube2):
    c = client()
    c.use(tube)
    c.watch(tube2)
    c.close()  # the next command reconnects and sends use/watch again
    _, jid = c.put_job("after reconnect")
    assert c.stats_job(jid)["tube"] == tube
    c.put_job_into(tube2, "watched")
    job = c.reserve_job(1)
    assert job.job_data == "watched"
    c.delete_job(job)
    c.delete_job(jid)
    c.close()


def test_socket_timeout_guard(tube):
    c = client(socket_timeout=2)
    c.watch(tube)
    t0 = time.monotonic()
    with pytest.raises(BeanstalkError):
        c.reserve_job(1)
    assert time.monotonic() - t0 >= 0.8
    with pytest.raises(ValueError):
        c.reserve_job(5)
    c.close()


def test_production_pool(tube):
    host, port = addr()
    pool = ProductionPool.from_uris([f"beanstalk://{host}:{port}", f"beanstalkd://{host}:{port}"], auto_decode=True)
    pool.use(tube)
    ids = [pool.put_job(f"p{i}")[1] for i in range(6)]
    pool.put_job_into(tube, "into")
    c = client()
    c.watch(tube)
    got = [j.job_data for j in c.reserve_iter()]
    assert sorted(got) == sorted([f"p{i}" for i in range(6)] + ["into"])
    assert len(set(ids)) == 6
    c.close()
