"""jobq: a durable job queue (a SQLite file or a PostgreSQL schema), over its C ABI.

    import jobq

    with jobq.Queue("jobs.db") as q:
        q.put("emails", b"welcome alice", priority=1)
        for job in q.jobs("emails", timeout=1.0):
            with job:                      # ack on success, fail (retry) on an exception
                send(job.payload)

``jobq.lib`` and ``jobq.ffi`` are the raw cffi bindings of every function
of include/jobq.h (generated from the header at build time), for what the
Pythonic layer does not wrap. See docs/python.md.
"""

from ._errors import (
    Busy,
    Corrupt,
    Duplicate,
    Error,
    HandleError,
    InternalError,
    InvalidArgument,
    IoError,
    NotFound,
    Shutdown,
    StateError,
    TooBig,
    VersionError,
    check,
    error_for,
    last_error,
    status_name,
)
from ._jobq_cffi import ffi, lib
from ._queue import (
    BURY,
    DONE,
    RESERVE_ANY_MAX,
    RESERVE_MANY_MAX,
    RETRY,
    Handler,
    Job,
    JobView,
    Queue,
    Watch,
    Worker,
    ack_many,
    library_version,
    library_version_number,
)

#: The version of the package: the C library's it was built with.
__version__: str = library_version()

__all__ = [
    "BURY",
    "DONE",
    "RESERVE_ANY_MAX",
    "RESERVE_MANY_MAX",
    "RETRY",
    "Busy",
    "Corrupt",
    "Duplicate",
    "Error",
    "HandleError",
    "Handler",
    "InternalError",
    "InvalidArgument",
    "IoError",
    "Job",
    "JobView",
    "NotFound",
    "Queue",
    "Shutdown",
    "StateError",
    "TooBig",
    "VersionError",
    "Watch",
    "Worker",
    "ack_many",
    "check",
    "error_for",
    "ffi",
    "last_error",
    "lib",
    "library_version",
    "library_version_number",
    "status_name",
]
