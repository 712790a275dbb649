"""cffi builder of ``jobq._jobq_cffi`` (API mode, out-of-line), run by
``pip install`` through setup.py's ``cffi_modules``.

Where the C library comes from:

* ``JOBQ_INCLUDE_DIR``: the directory holding jobq.h; default ``include/``
  of the jobq repository this package sits in (``python/..``).
* ``JOBQ_LIB_DIR``: the directory holding libjobq.a; default
  ``target/release/`` of that repository. When that file is missing and the
  repository is there, the build runs ``cargo build --release --lib`` in it
  first (a few minutes on 2 cores), so ``pip install ./python`` works on a
  fresh checkout with the Rust toolchain installed.

libjobq.a is linked statically into the extension; its own symbols (the
bundled SQLite, Rust's standard library) are kept local to the extension
(``--exclude-libs,ALL``), so a process that also loads the system SQLite
(``import sqlite3``) or another Rust library keeps each one's own.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from jobq_cdef import cdef_from_header  # noqa: E402

REPO = HERE.parent

# rustc's native-static-libs for the staticlib on Linux (`make
# native-static-libs` prints them): what libjobq.a needs besides libc.
NATIVE_LIBS = ["gcc_s", "util", "rt", "pthread", "m", "dl"]

# The one function the package adds: the worker pool's handler, a Python
# callable called from the pool's threads (cffi takes the GIL for it).
EXTRA_CDEF = """
extern "Python" jobq_outcome _jobq_py_handler(const struct jobq_job *job, void *user_data);
"""


def _fail(msg: str) -> None:
    raise SystemExit(f"jobq build: {msg}")


def include_dir() -> pathlib.Path:
    d = pathlib.Path(os.environ.get("JOBQ_INCLUDE_DIR") or REPO / "include")
    if not (d / "jobq.h").is_file():
        _fail(f"{d}/jobq.h not found: set JOBQ_INCLUDE_DIR to the directory holding jobq.h")
    return d


def static_lib() -> pathlib.Path:
    env = os.environ.get("JOBQ_LIB_DIR")
    if env:
        lib = pathlib.Path(env) / "libjobq.a"
        if not lib.is_file():
            _fail(f"JOBQ_LIB_DIR={env} holds no libjobq.a")
        return lib
    lib = REPO / "target" / "release" / "libjobq.a"
    if not lib.is_file():
        if not (REPO / "Cargo.toml").is_file():
            _fail(f"{lib} not found and {REPO} is no jobq repository: set JOBQ_LIB_DIR and JOBQ_INCLUDE_DIR")
        print(f"jobq build: {lib} missing; running cargo build --release --lib in {REPO}", file=sys.stderr)
        try:
            subprocess.run(["cargo", "build", "--release", "--lib"], cwd=REPO, check=True)
        except (OSError, subprocess.CalledProcessError) as e:
            _fail(f"cargo build --release --lib failed ({e}); install the Rust toolchain or set JOBQ_LIB_DIR")
    return lib


_inc = include_dir()
_lib = static_lib()

ffibuilder = FFI()
ffibuilder.cdef(cdef_from_header((_inc / "jobq.h").read_text(encoding="utf-8")) + EXTRA_CDEF)
ffibuilder.set_source(
    "jobq._jobq_cffi",
    '#include "jobq.h"\n',
    include_dirs=[str(_inc)],
    extra_objects=[str(_lib)],
    libraries=NATIVE_LIBS,
    extra_link_args=["-Wl,--exclude-libs,ALL"],
    # Relink when the library changes even if the generated C did not.
    depends=[str(_lib), str(_inc / "jobq.h")],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
