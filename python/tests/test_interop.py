"""Interop with C programs over the same store: examples/producer.c and examples/worker.c."""

from __future__ import annotations

import json
import os
import subprocess

import jobq
from conftest import FAST

ENV = {**os.environ, "JOBQ_CONFIG": json.dumps(FAST)}


def test_python_puts_c_worker_handles(store: str, c_programs: dict) -> None:
    with jobq.Queue(store, FAST) as q:
        ids = [q.put("mail", b"hello from python"), q.put("mail", b"poison pill"), q.put("mail", b"third")]
    # worker FILE QUEUE THREADS COUNT: handles COUNT jobs, prints each.
    out = subprocess.run([c_programs["worker"], store, "mail", "1", "3"], capture_output=True, text=True,
                         env=ENV, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    for i, text in zip(ids, ["hello from python", "poison pill", "third"]):
        assert f"job {i} (attempt 1) on mail: {text}" in out.stdout, out.stdout
    with jobq.Queue(store, FAST) as q:
        s = q.stats()["queues"]["mail"]
        assert (s["ready"], s["reserved"], s["dead"]) == (0, 0, 1)  # "poison" is buried by the C worker


def test_c_producer_puts_python_reserves(store: str, c_programs: dict) -> None:
    out = subprocess.run([c_programs["producer"], store, "jobs", "from C", "second"], capture_output=True,
                         text=True, env=ENV, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    with jobq.Queue(store, FAST) as q:
        got = []
        for job in q.jobs("jobs", timeout=0.2):
            with job:
                got.append(job.payload)
        assert got == [b"from C", b"second"]
