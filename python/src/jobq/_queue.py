"""Queue, Job, Watch and Worker: the Pythonic layer over the C API.

Units: every ``timeout`` argument is in SECONDS as a float, like
``queue.Queue.get`` (``None`` = wait forever, ``0`` = don't wait); every
argument ending in ``_ms`` is in milliseconds, as the C field of the same
name. Every call releases the GIL while the C library works (cffi does so
for all calls), so other Python threads run while one waits in reserve.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
import weakref
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Union

from ._errors import Duplicate, Error, HandleError, check
from ._jobq_cffi import ffi, lib

log = logging.getLogger("jobq")

PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
Buffer = Union[bytes, bytearray, memoryview]

# A wait is done in slices of this many ms so that Ctrl-C (KeyboardInterrupt)
# and other signal handlers run while a thread waits for a job.
_WAIT_SLICE_MS = 500

# Worker outcomes (the C JOBQ_DONE / JOBQ_RETRY / JOBQ_BURY).
DONE: int = lib.JOBQ_DONE
RETRY: int = lib.JOBQ_RETRY
BURY: int = lib.JOBQ_BURY

RESERVE_MANY_MAX: int = lib.JOBQ_RESERVE_MANY_MAX
RESERVE_ANY_MAX: int = lib.JOBQ_RESERVE_ANY_MAX


def _cstr(s: Union[str, bytes], what: str) -> bytes:
    if isinstance(s, bytes):
        return s
    if isinstance(s, str):
        return s.encode("utf-8")
    raise TypeError(f"{what} must be str, not {type(s).__name__}")


def _buffer(payload: Buffer, what: str = "payload") -> Any:
    if isinstance(payload, str):
        raise TypeError(f"{what} must be bytes-like (encode the str first), not str")
    return ffi.from_buffer(payload)


def _deadline(timeout: Optional[float]) -> Optional[float]:
    if timeout is not None and timeout < 0:
        raise ValueError("timeout must be >= 0 seconds or None (wait forever)")
    return None if timeout is None else time.monotonic() + timeout


def _slice_ms(deadline: Optional[float]) -> int:
    """The next wait's timeout_ms: at most one slice; 0 once the deadline passed."""
    if deadline is None:
        return _WAIT_SLICE_MS
    left = deadline - time.monotonic()
    return 0 if left <= 0 else min(_WAIT_SLICE_MS, max(1, int(left * 1000 + 0.999)))


def _put_opts(
    priority: int, delay_ms: int, max_attempts: int, lease_ms: int, unique_key: Optional[str]
) -> "tuple[Any, Any]":
    opts = ffi.new("jobq_put_opts *")
    lib.jobq_put_opts_init_sized(opts, ffi.sizeof("jobq_put_opts"))
    opts.priority = priority
    opts.delay_ms = delay_ms
    opts.max_attempts = max_attempts
    opts.lease_ms = lease_ms
    key = ffi.NULL
    if unique_key is not None:
        key = ffi.new("char[]", _cstr(unique_key, "unique_key"))
        opts.unique_key = key
    return opts, key  # the key's buffer must outlive the call


class Job:
    """One delivered job, leased to this process until it is finished (ack,
    fail, bury, release) or its lease expires.

    ``payload`` (bytes), ``id``, ``queue`` and ``attempt`` are read once at
    delivery. As a context manager it acks on success and fails (a retry,
    with the exception as the job's last error) on an exception, unless the
    block finished the job itself; the C handle is freed on exit. A job
    may move between threads but must not be used by two at once.
    """

    __slots__ = ("_ptr", "_queue_obj", "id", "queue", "payload", "attempt", "finished", "__weakref__")

    id: int
    queue: str
    payload: bytes
    attempt: int
    #: True once ack/fail/bury/release (or ack_many / ack_and_reserve) stored an outcome.
    finished: bool

    def __init__(self, ptr: Any, queue_obj: "Queue") -> None:
        self._ptr = ffi.gc(ptr, lib.jobq_job_free)
        self._queue_obj = queue_obj
        self.id = lib.jobq_job_id(ptr)
        self.queue = ffi.string(lib.jobq_job_queue(ptr)).decode("utf-8")
        n = ffi.new("size_t *")
        data = lib.jobq_job_payload(ptr, n)
        self.payload = bytes(ffi.buffer(data, n[0])) if n[0] else b""
        self.attempt = lib.jobq_job_attempt(ptr)
        self.finished = False

    @property
    def attempts(self) -> int:
        """Alias of ``attempt``: 1 on the first delivery."""
        return self.attempt

    def _handle(self) -> Any:
        if self._ptr is None:
            raise HandleError(lib.JOBQ_E_HANDLE, "this Job was closed")
        return self._ptr

    def _finish(self, status: int) -> None:
        check(status)
        self.finished = True

    def ack(self) -> None:
        """Done: the job is removed. :class:`StateError` if this delivery is no
        longer current (finished already, or its lease expired and it was
        delivered again)."""
        self._finish(lib.jobq_ack(self._handle()))

    def ack_result(self, result: Buffer) -> None:
        """Acks like :meth:`ack` and stores ``result`` (at most
        ``JOBQ_RESULT_MAX`` bytes, else :class:`TooBig` and the job stays
        reserved). With the store's ``keep_done_ms`` > 0 the job stays
        readable as "done" with its result (:meth:`Queue.job_info`)."""
        buf = _buffer(result, "result")
        self._finish(lib.jobq_ack_result(self._handle(), buf, len(buf)))

    def fail(self, reason: Optional[str] = None) -> None:
        """Failed: retried after the store's backoff, or dead once its attempts
        are used up. ``reason`` is kept as the job's last error."""
        r = ffi.NULL if reason is None else _cstr(reason, "reason")
        self._finish(lib.jobq_fail(self._handle(), r))

    def bury(self, reason: Optional[str] = None, priority: Optional[int] = None) -> None:
        """Dead now (``Queue.kick`` / ``Queue.kick_job`` revive it); ``reason`` is
        kept as its last error. With ``priority``, the job's priority becomes
        it, stored with the bury (``jobq_bury_priority``)."""
        r = ffi.NULL if reason is None else _cstr(reason, "reason")
        if priority is None:
            self._finish(lib.jobq_bury(self._handle(), r))
        else:
            self._finish(lib.jobq_bury_priority(self._handle(), r, priority))

    def release(self, delay_ms: int = 0, priority: Optional[int] = None) -> None:
        """Gives the job back unfinished, ready again after ``delay_ms``; not a
        failure. With ``priority``, the job's priority becomes it, stored with
        the release (``jobq_release_priority``)."""
        if priority is None:
            self._finish(lib.jobq_release(self._handle(), delay_ms))
        else:
            self._finish(lib.jobq_release_priority(self._handle(), delay_ms, priority))

    def touch(self, lease_ms: int = 0) -> None:
        """Extends the lease to now + ``lease_ms`` (0 = the job's lease_ms)."""
        check(lib.jobq_touch(self._handle(), lease_ms))

    def ack_and_reserve(self, queue: Optional[str] = None, timeout: Optional[float] = 0) -> Optional["Job"]:
        """Acks this job and leases the next ready job of ``queue`` (default:
        this job's queue) of the same store, in one transaction on SQLite
        (``jobq_ack_reserve``). Returns the next job, or None when none came
        within ``timeout`` seconds (the ack is stored either way).
        :class:`StateError`: this delivery was no longer current, nothing
        acked or reserved."""
        qname = _cstr(self.queue if queue is None else queue, "queue")
        deadline = _deadline(timeout)
        out = ffi.new("jobq_job **")
        # The first call acks; if it waits in vain, later slices are plain reserves.
        status = lib.jobq_ack_reserve(self._handle(), qname, 0 if timeout == 0 else _slice_ms(deadline), out)
        check(status)
        self.finished = True
        if status == lib.JOBQ_OK:
            return Job(out[0], self._queue_obj)
        if timeout == 0:
            return None
        return self._queue_obj.reserve(qname.decode("utf-8"), timeout=_remaining(deadline))

    def close(self) -> None:
        """Frees the C handle now (else the garbage collector does). An
        unfinished job is delivered again when its lease expires."""
        if self._ptr is not None:
            ffi.release(self._ptr)
            self._ptr = None

    def __enter__(self) -> "Job":
        return self

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        try:
            if not self.finished and self._ptr is not None:
                if exc is None:
                    self.ack()
                else:
                    try:
                        self.fail(f"{type(exc).__name__}: {exc}")
                    except Error as e:
                        # E.g. the lease expired meanwhile: the block's own
                        # exception is the one to see.
                        log.warning("jobq: could not fail job %s after %r: %s", self.id, exc, e)
        finally:
            self.close()

    def __repr__(self) -> str:
        return f"<jobq.Job id={self.id} queue={self.queue!r} attempt={self.attempt} {len(self.payload)} bytes>"


def _remaining(deadline: Optional[float]) -> Optional[float]:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


class JobView:
    """What a :class:`Worker` handler receives: the job's ``id``, ``queue``,
    ``payload`` and ``attempt`` (read-only; the handler's return value, not
    the handler, finishes the job)."""

    __slots__ = ("id", "queue", "payload", "attempt")

    def __init__(self, ptr: Any) -> None:
        self.id: int = lib.jobq_job_id(ptr)
        self.queue: str = ffi.string(lib.jobq_job_queue(ptr)).decode("utf-8")
        n = ffi.new("size_t *")
        data = lib.jobq_job_payload(ptr, n)
        self.payload: bytes = bytes(ffi.buffer(data, n[0])) if n[0] else b""
        self.attempt: int = lib.jobq_job_attempt(ptr)

    def __repr__(self) -> str:
        return f"<jobq.JobView id={self.id} queue={self.queue!r} attempt={self.attempt}>"


Handler = Callable[[JobView], Optional[int]]


class Queue:
    """An open queue store: a SQLite file, or a PostgreSQL URL
    (``postgresql://user@host/db?schema=NAME``). Safe to share between
    threads. A context manager: closed on exit (stopping its workers and
    closing its watches first).

    ``config``: None for defaults, a dict (serialised to JSON) or a JSON
    string, with the keys of ``jobq_open`` (lease_ms, max_attempts,
    backoff_base_ms, durability, ...).
    """

    def __init__(self, path: PathLike, config: Union[None, str, Dict[str, Any]] = None) -> None:
        p = os.fspath(path)
        cpath = p if isinstance(p, bytes) else p.encode("utf-8")
        cfg = ffi.NULL
        if config is not None:
            cfg = (config if isinstance(config, str) else json.dumps(config)).encode("utf-8")
        out = ffi.new("jobq **")
        check(lib.jobq_open(cpath, cfg, out))
        self._ptr: Any = out[0]
        self._lock = threading.Lock()
        self._workers: "weakref.WeakSet[Worker]" = weakref.WeakSet()
        self._watches: "weakref.WeakSet[Watch]" = weakref.WeakSet()
        self.path = p

    # ------------------------------------------------------------ lifecycle

    def _handle(self) -> Any:
        ptr = self._ptr
        if ptr is None:
            raise HandleError(lib.JOBQ_E_HANDLE, "this Queue is closed")
        return ptr

    @property
    def closed(self) -> bool:
        return self._ptr is None

    def close(self) -> None:
        """Stops this queue's workers (waiting for running handlers), closes
        its watches, then closes the store. Waiting reserves in other threads
        raise :class:`Shutdown`. A second close does nothing."""
        with self._lock:
            ptr = self._ptr
            if ptr is None:
                return
            for w in list(self._workers):
                w.stop()
            for watch in list(self._watches):
                watch.close()
            check(lib.jobq_close(ptr))
            self._ptr = None

    def __del__(self) -> None:
        # A queue dropped without close() is closed when collected.
        try:
            if getattr(self, "_ptr", None) is not None:
                self.close()
        except Exception:  # noqa: BLE001 - best effort
            pass

    def __enter__(self) -> "Queue":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<jobq.Queue {'closed' if self.closed else 'open'}>"

    # ------------------------------------------------------------ producing

    def put(
        self,
        queue: str,
        payload: Buffer,
        *,
        priority: int = 0,
        delay_ms: int = 0,
        max_attempts: int = 0,
        lease_ms: int = 0,
        unique_key: Optional[str] = None,
    ) -> int:
        """Stores a job in ``queue`` (created on first use) and returns its id,
        once stored with the store's durability. The keywords are the fields
        of ``jobq_put_opts``: smaller ``priority`` runs first (ties in put
        order); not delivered before now + ``delay_ms``; ``max_attempts`` /
        ``lease_ms`` 0 = the store's. With ``unique_key`` held by a live job:
        :class:`Duplicate`, whose ``.id`` is that job's."""
        opts, _key = _put_opts(priority, delay_ms, max_attempts, lease_ms, unique_key)
        buf = _buffer(payload)
        out = ffi.new("uint64_t *")
        status = lib.jobq_put(self._handle(), _cstr(queue, "queue"), buf, len(buf), opts, out)
        if status == lib.JOBQ_DUPLICATE:
            raise Duplicate(status, f"a live job with unique_key {unique_key!r} exists: {out[0]}", id=out[0])
        check(status)
        return int(out[0])

    def put_batch(
        self,
        queue: str,
        payloads: Iterable[Buffer],
        *,
        priority: int = 0,
        delay_ms: int = 0,
        max_attempts: int = 0,
        lease_ms: int = 0,
        unique_key: Optional[str] = None,
    ) -> List[int]:
        """Stores all ``payloads`` in one transaction (or none) with the same
        options, returning their ids in order. A ``unique_key`` only for one
        payload."""
        bufs = [_buffer(p) for p in payloads]
        if not bufs:
            return []
        items = ffi.new("jobq_payload[]", len(bufs))
        for i, b in enumerate(bufs):
            items[i].data = b
            items[i].len = len(b)
        opts, _key = _put_opts(priority, delay_ms, max_attempts, lease_ms, unique_key)
        ids = ffi.new("uint64_t[]", len(bufs))
        status = lib.jobq_put_batch(self._handle(), _cstr(queue, "queue"), items, len(bufs), opts, ids)
        if status == lib.JOBQ_DUPLICATE:
            raise Duplicate(status, f"a live job with unique_key {unique_key!r} exists: {ids[0]}", id=ids[0])
        check(status)
        return [int(ids[i]) for i in range(len(bufs))]

    # ------------------------------------------------------------ consuming

    def reserve(self, queue: str, timeout: Optional[float] = 0) -> Optional[Job]:
        """The ready job of ``queue`` with the smallest (priority, id), leased
        for its lease_ms; None if none came within ``timeout`` seconds
        (0 = don't wait, None = wait forever). A timeout is not an exception."""
        qname = _cstr(queue, "queue")
        deadline = _deadline(timeout)
        out = ffi.new("jobq_job **")
        while True:
            ms = 0 if timeout == 0 else _slice_ms(deadline)
            status = check(lib.jobq_reserve(self._handle(), qname, ms, out))
            if status == lib.JOBQ_OK:
                return Job(out[0], self)
            if ms == 0 or (deadline is not None and time.monotonic() >= deadline):
                return None

    def reserve_many(self, queue: str, max: int, timeout: Optional[float] = 0) -> List[Job]:
        """Leases up to ``max`` (1 to RESERVE_MANY_MAX) ready jobs in one
        transaction, smallest (priority, id) first; waits (``timeout``
        seconds) only while none is ready. [] when none came."""
        qname = _cstr(queue, "queue")
        if max < 1:
            raise ValueError("max must be at least 1")
        deadline = _deadline(timeout)
        jobs = ffi.new("jobq_job *[]", max)
        n = ffi.new("size_t *")
        while True:
            ms = 0 if timeout == 0 else _slice_ms(deadline)
            status = check(lib.jobq_reserve_many(self._handle(), qname, max, ms, jobs, n))
            if status == lib.JOBQ_OK:
                return [Job(jobs[i], self) for i in range(n[0])]
            if ms == 0 or (deadline is not None and time.monotonic() >= deadline):
                return []

    def reserve_any(self, queues: Iterable[str], timeout: Optional[float] = 0) -> Optional[Job]:
        """The ready job with the smallest (priority, id) among ``queues`` (1 to
        RESERVE_ANY_MAX names; a paused queue, or one its limits hold back, is
        passed over), leased for its lease_ms; ``job.queue`` says which. None
        if none came within ``timeout`` seconds (``jobq_reserve_any``)."""
        names = [ffi.new("char[]", _cstr(q, "queue")) for q in queues]
        arr = ffi.new("const char *[]", names) if names else ffi.NULL
        deadline = _deadline(timeout)
        out = ffi.new("jobq_job **")
        while True:
            ms = 0 if timeout == 0 else _slice_ms(deadline)
            status = check(lib.jobq_reserve_any(self._handle(), arr, len(names), ms, out))
            if status == lib.JOBQ_OK:
                return Job(out[0], self)
            if ms == 0 or (deadline is not None and time.monotonic() >= deadline):
                return None

    def jobs(self, queue: str, timeout: Optional[float] = None) -> Iterator[Job]:
        """Yields jobs of ``queue`` as they come; ends when none came within
        ``timeout`` seconds (None = never ends). Finish each one, e.g. with
        ``with job: ...``."""
        while True:
            job = self.reserve(queue, timeout=timeout)
            if job is None:
                return
            yield job

    # ------------------------------------------------------------ admin

    def kick(self, queue: str, max: int = 2**64 - 1) -> int:
        """Dead -> ready for up to ``max`` jobs of ``queue`` (oldest first);
        returns how many."""
        out = ffi.new("uint64_t *")
        check(lib.jobq_kick(self._handle(), _cstr(queue, "queue"), max, out))
        return int(out[0])

    def kick_job(self, id: int) -> None:
        """Job ``id`` (of any queue) -> ready now, if it is dead (attempts reset)
        or scheduled (a delay or retry backoff; attempts kept).
        :class:`NotFound`: no such job; :class:`StateError`: it is ready,
        reserved or done, or dead while a live job holds its unique key."""
        check(lib.jobq_kick_job(self._handle(), id))

    def peek(self, queue: str, state: str = "ready") -> Optional[int]:
        """The id of the next job of ``queue`` in ``state``, leasing nothing:
        "ready" (what reserve would deliver now, even while paused),
        "scheduled" (due soonest) or "dead" (died first); None if there is
        none. Another state is :class:`InvalidArgument` (``jobq_peek``)."""
        out = ffi.new("uint64_t *")
        status = lib.jobq_peek(self._handle(), _cstr(queue, "queue"), _cstr(state, "state"), out)
        if status == lib.JOBQ_E_NOT_FOUND:
            return None
        check(status)
        return int(out[0])

    def cancel(self, id: int) -> None:
        """Removes a job that is not currently delivered. :class:`StateError`
        if it is leased, :class:`NotFound` if there is no such job."""
        check(lib.jobq_cancel(self._handle(), id))

    def pause(self, queue: str) -> None:
        """Pauses ``queue`` for every client of the store: puts are accepted,
        nothing is delivered until :meth:`resume`. Stored (survives restarts)."""
        check(lib.jobq_pause(self._handle(), _cstr(queue, "queue")))

    def resume(self, queue: str) -> None:
        """Resumes a paused ``queue`` (a no-op if it is not paused)."""
        check(lib.jobq_resume(self._handle(), _cstr(queue, "queue")))

    def configure(self, queue: str, limits: Union[str, Dict[str, Any]]) -> None:
        """Sets or removes delivery limits of ``queue`` for every client of the
        store (``jobq_queue_config``): ``{"max_reserved": N, "rate": {"jobs": N,
        "per_ms": M}}``; ``None`` for a key removes that limit, keys not given
        keep their value. :class:`InvalidArgument` for a bad key or value."""
        text = limits if isinstance(limits, str) else json.dumps(limits)
        check(lib.jobq_queue_config(self._handle(), _cstr(queue, "queue"), _cstr(text, "limits")))

    def schedule(
        self,
        name: str,
        queue: str,
        spec: str,
        payload: Buffer = b"",
        *,
        priority: int = 0,
        delay_ms: int = 0,
        max_attempts: int = 0,
        lease_ms: int = 0,
    ) -> None:
        """Makes (or replaces) the periodic job ``name`` (``jobq_schedule``):
        ``payload`` is put into ``queue`` at every slot of ``spec``, a 5-field
        cron spec in UTC or ``@every 30s``; each slot exactly once, however
        many handles are open. :class:`InvalidArgument` for a bad spec."""
        opts, _key = _put_opts(priority, delay_ms, max_attempts, lease_ms, None)
        buf = _buffer(payload)
        check(
            lib.jobq_schedule(
                self._handle(), _cstr(queue, "queue"), _cstr(name, "name"), _cstr(spec, "spec"), buf, len(buf), opts
            )
        )

    def unschedule(self, name: str) -> None:
        """Deletes the schedule ``name`` (a no-op if there is none)."""
        check(lib.jobq_unschedule(self._handle(), _cstr(name, "name")))

    def job_info(self, id: int) -> Dict[str, Any]:
        """Job ``id`` as a dict (``jobq_job_info``): state, attempts,
        last_error, result / result_b64, times. :class:`NotFound` if there is
        no such job (or it was acked and not kept, or its keep time passed)."""
        out = ffi.new("char **")
        check(lib.jobq_job_info(self._handle(), id, out))
        try:
            text = ffi.string(out[0]).decode("utf-8")
        finally:
            lib.jobq_string_free(out[0])
        result: Dict[str, Any] = json.loads(text)
        return result

    def stats(self) -> Dict[str, Any]:
        """Counts per queue, parsed from ``jobq_stats_json``:
        ``{"queues": {name: {"ready": n, "scheduled": n, "reserved": n,
        "dead": n, "done": n, "paused": bool}}}`` (plus "limits"/"rate_used" on limited queues and a top-level "schedules" list while there are any)."""
        out = ffi.new("char **")
        check(lib.jobq_stats_json(self._handle(), out))
        try:
            text = ffi.string(out[0]).decode("utf-8")
        finally:
            lib.jobq_string_free(out[0])
        result: Dict[str, Any] = json.loads(text)
        return result

    # ------------------------------------------------------------ event loops, pools

    def watch(self, queue: str) -> "Watch":
        """A :class:`Watch` on ``queue``: a file descriptor for selectors/asyncio."""
        w = Watch(self, queue)
        self._watches.add(w)
        return w

    def worker(self, queue: str, handler: Handler, concurrency: int = 1) -> "Worker":
        """Starts a :class:`Worker` pool running ``handler`` on jobs of ``queue``."""
        w = Worker(self, queue, handler, concurrency)
        self._workers.add(w)
        return w


def ack_many(jobs: Iterable[Job]) -> List[bool]:
    """Acks the jobs (all from one Queue) in one transaction on SQLite
    (``jobq_ack_many``). Returns per job True (acked) or False (that delivery
    was no longer current: it changed nothing, the others were acked). A
    failure of the whole call raises (nothing marked finished)."""
    js = list(jobs)
    if not js:
        return []
    arr = ffi.new("jobq_job *[]", len(js))
    for i, j in enumerate(js):
        arr[i] = j._handle()
    statuses = ffi.new("jobq_status[]", len(js))
    status = lib.jobq_ack_many(arr, len(js), statuses)
    if status not in (lib.JOBQ_OK, lib.JOBQ_E_STATE):
        check(status)
    result = []
    for i, j in enumerate(js):
        ok = statuses[i] == lib.JOBQ_OK
        if ok:
            j.finished = True
        result.append(ok)
    return result


class Watch:
    """A watch on one queue (``jobq_watch_*``): :meth:`fileno` becomes
    readable when the queue may have a ready job (starts readable; wakeups
    may be spurious). The loop: wait for it (``selectors``, or asyncio's
    ``loop.add_reader``), :meth:`consume`, then ``reserve(queue, 0)`` until
    None; arm a timer for what consume returns. A context manager."""

    def __init__(self, q: Queue, queue: str) -> None:
        out = ffi.new("jobq_watch **")
        check(lib.jobq_watch_open(q._handle(), _cstr(queue, "queue"), out))
        self._ptr: Any = out[0]
        self.queue = queue

    def fileno(self) -> int:
        """The watch's fd (owned by the watch: don't read or close it)."""
        if self._ptr is None:
            raise HandleError(lib.JOBQ_E_HANDLE, "this Watch is closed")
        return int(lib.jobq_watch_fd(self._ptr))

    def consume(self) -> Optional[int]:
        """Clears the readiness; returns the milliseconds until the queue's
        next delayed job or lease expiry is due (0 = now), None if none."""
        if self._ptr is None:
            raise HandleError(lib.JOBQ_E_HANDLE, "this Watch is closed")
        out = ffi.new("int64_t *")
        check(lib.jobq_watch_consume(self._ptr, out))
        return None if out[0] < 0 else int(out[0])

    def close(self) -> None:
        """Stops the watch and closes its fd (remove it from your loop first)."""
        ptr, self._ptr = self._ptr, None
        if ptr is not None:
            check(lib.jobq_watch_close(ptr))

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - the queue may be closed already
            pass

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# Every running pool, held strongly: the C threads call back into it through
# its cffi handle, so it must stay alive until stopped even if the caller
# drops it. Pools still running at interpreter exit are stopped first:
# their threads must not call into a finalizing interpreter.
_live_workers: "set[Worker]" = set()


@atexit.register
def _stop_live_workers() -> None:
    for w in list(_live_workers):
        try:
            w.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


@ffi.def_extern(error=lib.JOBQ_RETRY)
def _jobq_py_handler(job: Any, user_data: Any) -> int:
    # Called on the pool's threads; cffi holds the GIL for this call.
    worker: Worker = ffi.from_handle(user_data)
    return worker._run(job)


class Worker:
    """A pool of ``concurrency`` threads of the C library (``jobq_worker``)
    running ``handler(job)`` on jobs of ``queue``. The handler gets a
    :class:`JobView`; it returns None or ``jobq.DONE`` (ack), ``jobq.RETRY``
    (fail: retried after backoff) or ``jobq.BURY`` (dead now); an exception
    counts as RETRY and is logged on the "jobq" logger. Leases are renewed
    while a handler runs. Handlers run holding the GIL, so Python code in
    them runs one at a time; handlers that wait (I/O, time.sleep, C code
    that releases the GIL) overlap. A context manager: stopped on exit.

    ``errors`` counts the handler calls that raised."""

    def __init__(self, q: Queue, queue: str, handler: Handler, concurrency: int = 1) -> None:
        if not callable(handler):
            raise TypeError("handler must be callable")
        self._handler = handler
        self._self_handle = ffi.new_handle(self)
        self.errors = 0
        self.queue = queue
        opts = ffi.new("jobq_worker_opts *")
        lib.jobq_worker_opts_init_sized(opts, ffi.sizeof("jobq_worker_opts"))
        opts.concurrency = concurrency
        out = ffi.new("jobq_worker **")
        check(
            lib.jobq_worker_start(
                q._handle(), _cstr(queue, "queue"), opts, lib._jobq_py_handler, self._self_handle, out
            )
        )
        self._ptr: Any = out[0]
        _live_workers.add(self)

    def _run(self, job: Any) -> int:
        try:
            outcome = self._handler(JobView(job))
        except BaseException as e:  # noqa: BLE001 - nothing may unwind into C
            self.errors += 1
            log.warning("jobq worker handler raised on job %s: %r", lib.jobq_job_id(job), e, exc_info=True)
            return RETRY
        if outcome is None:
            return DONE
        if outcome in (DONE, RETRY, BURY):
            return int(outcome)
        log.warning("jobq worker handler returned %r (not None/DONE/RETRY/BURY): retried", outcome)
        return RETRY

    @property
    def running(self) -> bool:
        return self._ptr is not None

    def stop(self, timeout: Optional[float] = None) -> bool:
        """Stops taking jobs and waits up to ``timeout`` seconds (None =
        forever) for running handlers. True: all returned and their outcomes
        are stored; False: some still ran (their jobs come back after their
        leases). The pool is gone either way; a second stop returns True."""
        ptr, self._ptr = self._ptr, None
        if ptr is None:
            return True
        _live_workers.discard(self)
        ms = -1 if timeout is None else int(timeout * 1000)
        status = check(lib.jobq_worker_stop(ptr, ms))
        return status == lib.JOBQ_OK

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def library_version() -> str:
    """The C library's version string (``jobq_version()``)."""
    return ffi.string(lib.jobq_version()).decode("utf-8")


def library_version_number() -> int:
    """``jobq_version_number()``: MAJOR * 10000 + MINOR * 100 + PATCH."""
    return int(lib.jobq_version_number())


__all__ = [
    "BURY",
    "DONE",
    "RETRY",
    "RESERVE_MANY_MAX",
    "Handler",
    "Job",
    "JobView",
    "Queue",
    "Watch",
    "Worker",
    "ack_many",
    "library_version",
    "library_version_number",
]
