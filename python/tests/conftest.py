"""Fixtures: a store on a file and on PostgreSQL, and the C programs of the interop tests.

PostgreSQL: as the C tests (tests/c_api.rs, c_tests/check.h), each store is
a schema ``<JOBQ_TEST_PG_PREFIX>_<n>`` in the database of JOBQ_TEST_PG_BASE;
tests/python.rs sets both and drops every schema of the prefix afterwards.
Run standalone, the base is JOBQ_TEST_PG_URL (default
postgresql://postgres@127.0.0.1:5432/test), the prefix ``jobq_py_<pid>``,
and the schemas are dropped at the end with psql when it is installed.
Nothing is skipped: without a server the PostgreSQL tests fail.
"""

from __future__ import annotations

import itertools
import os
import pathlib
import shutil
import subprocess
from typing import Iterator

import pytest

# Short leases and retry delays keep the tests fast; jitter 0 keeps them exact.
FAST = {"lease_ms": 300, "backoff_base_ms": 20, "backoff_max_ms": 40, "backoff_jitter": 0, "max_attempts": 3}

PG_BASE = os.environ.get("JOBQ_TEST_PG_BASE") or os.environ.get(
    "JOBQ_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
PG_PREFIX = os.environ.get("JOBQ_TEST_PG_PREFIX") or f"jobq_py_{os.getpid()}"
_schemas = itertools.count()

REPO = pathlib.Path(__file__).resolve().parents[2]


def pg_url() -> str:
    sep = "&" if "?" in PG_BASE else "?"
    return f"{PG_BASE}{sep}schema={PG_PREFIX}_{next(_schemas)}"


@pytest.fixture(params=["file", "pg"])
def store(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> str:
    """The path of a fresh store: a file, or a PostgreSQL schema."""
    if request.param == "file":
        return str(tmp_path / "q.db")
    return pg_url()


@pytest.fixture
def file_store(tmp_path: pathlib.Path) -> str:
    return str(tmp_path / "q.db")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("JOBQ_TEST_PG_PREFIX") or shutil.which("psql") is None:
        return  # the runner drops them (tests/python.rs), or nothing can
    sql = (
        "DO $$DECLARE s text; BEGIN FOR s IN SELECT nspname FROM pg_namespace WHERE nspname LIKE "
        f"'{PG_PREFIX}\\_%' LOOP EXECUTE format('DROP SCHEMA %I CASCADE', s); END LOOP; END$$;"
    )
    subprocess.run(["psql", "-q", PG_BASE, "-c", sql], capture_output=True, check=False)


def _static_lib() -> pathlib.Path:
    d = os.environ.get("JOBQ_LIB_DIR")
    return pathlib.Path(d) / "libjobq.a" if d else REPO / "target" / "release" / "libjobq.a"


def _include_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("JOBQ_INCLUDE_DIR") or REPO / "include")


@pytest.fixture(scope="session")
def c_programs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """examples/producer.c and examples/worker.c as programs: the paths in
    JOBQ_TEST_C_PRODUCER / JOBQ_TEST_C_WORKER (tests/python.rs builds them),
    else compiled here against libjobq.a (JOBQ_LIB_DIR or target/release)."""
    given = {"producer": os.environ.get("JOBQ_TEST_C_PRODUCER"), "worker": os.environ.get("JOBQ_TEST_C_WORKER")}
    if all(given.values()):
        yield {k: str(v) for k, v in given.items()}
        return
    out = tmp_path_factory.mktemp("cprog")
    lib = _static_lib()
    assert lib.is_file(), f"{lib} not found: set JOBQ_TEST_C_PRODUCER/WORKER or JOBQ_LIB_DIR, or cargo build --release"
    progs = {}
    for name in ("producer", "worker"):
        src = REPO / "examples" / f"{name}.c"
        exe = out / name
        subprocess.run(
            ["cc", "-std=c99", "-D_GNU_SOURCE", "-O1", "-I", str(_include_dir()), str(src), "-o", str(exe),
             str(lib), "-lpthread", "-ldl", "-lm", "-lrt", "-lutil"],
            check=True,
        )
        progs[name] = str(exe)
    yield progs
