"""Exceptions: one class per jobq_status error code, all under :class:`Error`."""

from __future__ import annotations

from typing import Dict, Optional, Type

from ._jobq_cffi import ffi, lib


class Error(Exception):
    """A jobq call failed. ``status`` is the C ``jobq_status`` code (< 0 for
    errors), ``name`` its name (e.g. ``"JOBQ_E_STATE"``), ``message`` what
    ``jobq_last_error()`` said."""

    status: int
    name: str
    message: str

    def __init__(self, status: int, message: str = "") -> None:
        self.status = status
        self.name = status_name(status)
        self.message = message
        super().__init__(f"{self.name}: {message}" if message else self.name)


class InvalidArgument(Error, ValueError):
    """JOBQ_E_INVALID_ARG: bad UTF-8, empty queue name, bad config key, ..."""


class HandleError(Error):
    """JOBQ_E_HANDLE: the queue, job or worker is closed or freed (or came across fork())."""


class NotFound(Error, LookupError):
    """JOBQ_E_NOT_FOUND: no job with this id."""


class StateError(Error):
    """JOBQ_E_STATE: the job is not in a state that allows this (e.g. its lease
    expired and it was delivered again, or it was finished already)."""


class Busy(Error):
    """JOBQ_E_BUSY: the store stayed locked past busy_timeout_ms, or close while
    workers or watches run."""


class IoError(Error, OSError):
    """JOBQ_E_IO: cannot open/create the store, I/O error, disk full, server unreachable."""


class Corrupt(Error):
    """JOBQ_E_CORRUPT: not a jobq store, or a damaged one."""


class VersionError(Error):
    """JOBQ_E_VERSION: the store was written by a newer, incompatible jobq."""


class TooBig(Error, ValueError):
    """JOBQ_E_TOO_BIG: the payload is larger than max_payload_bytes."""


class Shutdown(Error):
    """JOBQ_E_SHUTDOWN: the queue or worker is being closed."""


class InternalError(Error):
    """JOBQ_E_INTERNAL: a bug in jobq (the handle stays usable)."""


class Duplicate(Error):
    """JOBQ_DUPLICATE (not an error in C): :meth:`Queue.put` with a
    ``unique_key`` that a live job holds. ``id`` is that job's id."""

    id: int

    def __init__(self, status: int, message: str = "", id: int = 0) -> None:
        super().__init__(status, message)
        self.id = id


_BY_STATUS: Dict[int, Type[Error]] = {
    lib.JOBQ_E_INVALID_ARG: InvalidArgument,
    lib.JOBQ_E_HANDLE: HandleError,
    lib.JOBQ_E_NOT_FOUND: NotFound,
    lib.JOBQ_E_STATE: StateError,
    lib.JOBQ_E_BUSY: Busy,
    lib.JOBQ_E_IO: IoError,
    lib.JOBQ_E_CORRUPT: Corrupt,
    lib.JOBQ_E_VERSION: VersionError,
    lib.JOBQ_E_TOO_BIG: TooBig,
    lib.JOBQ_E_SHUTDOWN: Shutdown,
    lib.JOBQ_E_INTERNAL: InternalError,
    lib.JOBQ_DUPLICATE: Duplicate,
}


def status_name(status: int) -> str:
    """The C name of a status code (``jobq_status_str``)."""
    return ffi.string(lib.jobq_status_str(status)).decode("utf-8", "replace")


def last_error() -> str:
    """This thread's ``jobq_last_error()``."""
    return ffi.string(lib.jobq_last_error()).decode("utf-8", "replace")


def error_for(status: int, message: Optional[str] = None) -> Error:
    """The exception for ``status``; ``message`` defaults to this thread's last error.
    Codes this version does not know give the base class :class:`Error`."""
    cls = _BY_STATUS.get(status, Error)
    return cls(status, last_error() if message is None else message)


def check(status: int) -> int:
    """Raises for an error status (< 0); returns ``status`` otherwise."""
    if status < 0:
        raise error_for(status)
    return status
