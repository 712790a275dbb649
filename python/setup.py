# setuptools has no pyproject.toml key for cffi's builder, and the version
# is the C library's (JOBQ_VERSION_STRING of the header it is built
# against): the two things this file does; the rest is in pyproject.toml.
import os
import pathlib
import re

from setuptools import setup

here = pathlib.Path(__file__).resolve().parent
header = pathlib.Path(os.environ.get("JOBQ_INCLUDE_DIR") or here.parent / "include") / "jobq.h"
m = re.search(r'^#define JOBQ_VERSION_STRING "([^"]+)"', header.read_text(encoding="utf-8"), re.M) if header.is_file() else None
if m is None:
    raise SystemExit(f"jobq build: no JOBQ_VERSION_STRING in {header}: set JOBQ_INCLUDE_DIR to the directory of jobq.h")

setup(version=m.group(1), cffi_modules=["jobq_build.py:ffibuilder"])
