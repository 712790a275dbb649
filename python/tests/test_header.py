"""The bindings against include/jobq.h: nothing of the header may be missing.

The cdef is generated from the header at build time (jobq_cdef.py), so a
declaration cannot drift; these tests check that the installed module has
every function and constant the header has, with the header's values, and
that the Pythonic layer wraps every function (or says why not in UNWRAPPED).
A function added to the C API fails test_every_function_is_wrapped until it
gets a method (or an UNWRAPPED entry): see docs/python.md, "Adding a function".
"""

from __future__ import annotations

import os
import pathlib
import re
import sys

import jobq
from jobq import ffi, lib

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import jobq_cdef  # noqa: E402

HEADER = pathlib.Path(os.environ.get("JOBQ_INCLUDE_DIR") or HERE.parents[1] / "include") / "jobq.h"

# Functions of the header that the Pythonic layer does not call, and why.
# (They are still in jobq.lib.)
UNWRAPPED = {
    "jobq_put_opts_init": "the dlsym form of the init macro; the layer calls jobq_put_opts_init_sized",
    "jobq_worker_opts_init": "the dlsym form of the init macro; the layer calls jobq_worker_opts_init_sized",
}


def header_text() -> str:
    assert HEADER.is_file(), f"{HEADER} not found (set JOBQ_INCLUDE_DIR)"
    return HEADER.read_text(encoding="utf-8")


def test_header_parser_finds_the_functions() -> None:
    # A second, cruder count: every line that starts a prototype.
    crude = set(re.findall(r"^(?:const )?(?:enum |struct )?\w+[ *]+(jobq_\w+)\(", header_text(), re.M))
    found = jobq_cdef.header_functions(header_text())
    assert set(found) == crude
    assert len(found) >= 38  # 0.1.0's API plus pause/resume, watches, batched calls


def test_every_header_function_is_declared() -> None:
    missing = [f for f in jobq_cdef.header_functions(header_text()) if not hasattr(lib, f)]
    assert not missing, f"in {HEADER} but not in jobq.lib (reinstall the package): {missing}"


def test_nothing_declared_that_the_header_lacks() -> None:
    declared = {n for n in dir(lib) if n.startswith("jobq_")}
    extra = declared - set(jobq_cdef.header_functions(header_text()))
    assert not extra, f"declared in jobq.lib but not functions of {HEADER}: {sorted(extra)}"


def test_every_function_is_wrapped() -> None:
    sources = "".join(p.read_text() for p in pathlib.Path(jobq.__file__).parent.glob("*.py"))
    used = set(re.findall(r"\blib\.(jobq_\w+)", sources))
    missing = [f for f in jobq_cdef.header_functions(header_text()) if f not in used and f not in UNWRAPPED]
    assert not missing, (
        f"C functions without a Python wrapper: {missing}. Add a method in python/src/jobq/_queue.py "
        "(or list the function in UNWRAPPED in this file with the reason): docs/python.md, 'Adding a function'"
    )
    stale = [f for f in UNWRAPPED if f not in jobq_cdef.header_functions(header_text())]
    assert not stale, f"UNWRAPPED names functions the header no longer has: {stale}"


def test_integer_macros_match_the_header() -> None:
    defines = dict(re.findall(r"^#define (JOBQ_\w+) (-?\d+)\s*$", header_text(), re.M))
    assert "JOBQ_RESERVE_MANY_MAX" in defines and "JOBQ_RETRY" in defines
    for name, value in defines.items():
        assert getattr(lib, name) == int(value), name
    assert jobq.RESERVE_MANY_MAX == int(defines["JOBQ_RESERVE_MANY_MAX"])
    assert (jobq.DONE, jobq.RETRY, jobq.BURY) == (0, 1, 2)


def test_status_codes_match_the_header_and_have_classes() -> None:
    enum = re.search(r"typedef enum jobq_status \{(.*?)\} jobq_status;", jobq_cdef.strip_comments(header_text()), re.S)
    assert enum
    codes = dict(re.findall(r"(JOBQ_\w+) = (-?\d+)", enum.group(1)))
    assert len(codes) >= 14
    for name, value in codes.items():
        assert getattr(lib, name) == int(value), name
        assert jobq.status_name(int(value)) == name
        if int(value) < 0:
            # Every error code has its own exception class.
            cls = type(jobq.error_for(int(value), "m"))
            assert cls is not jobq.Error, f"{name} has no exception class in jobq/_errors.py"


def test_structs_match_the_compiled_header() -> None:
    # The cdef's layout is the C compiler's (API mode): spot-check the fields.
    assert ffi.offsetof("jobq_put_opts", "unique_key") == 32
    assert ffi.sizeof("jobq_put_opts") >= 40  # grows at the end only (docs/abi.md)
    assert ffi.sizeof("jobq_worker_opts") >= 8


def test_cdef_generation_steps() -> None:
    text = """
#ifndef X_H
#define X_H
#include <stdint.h>
#define JOBQ_A 12
#define JOBQ_S "str"
#define jobq_m(o) jobq_f((o), sizeof *(o))
/* c */ typedef int t; // d
#ifdef __cplusplus
extern "C" {
#endif
int jobq_f(int *o, size_t n);
#ifdef __cplusplus
}
#endif
#endif
"""
    out = jobq_cdef.cdef_from_header(text)
    assert [l.strip() for l in out.split("\n")] == ["#define JOBQ_A ...", "typedef int t;", "int jobq_f(int *o, size_t n);", ""]


def test_versions() -> None:
    import importlib.metadata

    assert jobq.library_version() == jobq.__version__ == importlib.metadata.version("jobq")
    major, minor, patch = (int(x) for x in jobq.__version__.split("."))
    assert jobq.library_version_number() == major * 10000 + minor * 100 + patch == lib.JOBQ_VERSION_NUMBER
