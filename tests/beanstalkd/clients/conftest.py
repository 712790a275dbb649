"""Shared fixtures of the beanstalkd client suites (test_greenstalk.py,
test_pystalk.py), run by tests/beanstalkd_clients.rs against jobq-beanstalkd
(file store and PostgreSQL) and against the real beanstalkd.

BS_ADDR=host:port is the server; BS_SERVER names it ("jobq" or "beanstalkd").
Every test works in tubes of its own (a fresh random name), so the tests
share one server and never see each other's jobs."""

import os
import socket
import uuid

import pytest


#: "jobq" or "beanstalkd": the few documented differences (docs/beanstalkd.md) are checked per server.
SERVER = os.environ.get("BS_SERVER", "jobq")


def addr():
    host, port = os.environ["BS_ADDR"].rsplit(":", 1)
    return host, int(port)


@pytest.fixture
def address():
    return addr()


@pytest.fixture
def tube():
    return "t-" + uuid.uuid4().hex[:12]


@pytest.fixture
def tube2():
    return "u-" + uuid.uuid4().hex[:12]


def raw(cmd: bytes) -> bytes:
    """One command on a connection of its own; the first reply chunk."""
    with socket.create_connection(addr(), timeout=5) as s:
        s.sendall(cmd)
        return s.recv(65536)
