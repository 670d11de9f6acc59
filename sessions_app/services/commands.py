"""What an API client asks of a session's running instance: a command run in
it (`POST /sessions/{id}/exec`) and what it uses now (`GET /sessions/{id}/stats`).

Nothing here changes the database: the instance's backend is asked, from the
web process; a command runs as the learner, and what it writes comes back as
records ready for JSON, bounded in size.
"""

import codecs
import dataclasses
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.utils import timezone

from playground.db import release_connection
from sessions_app.backends import backend_for
from sessions_app.backends.base import AttachError, ExecExit, ExecOutput
from sessions_app.errors import (
    InstanceNotRunning,
    ServiceUnavailable,
    SessionClosed,
    SessionHasNoInstance,
    TooManyCommands,
)
from sessions_app.models import Instance, Session
from sessions_app.selectors import session_instance

logger = logging.getLogger(__name__)

EXEC_FAILED = "exec_failed"

RECORD_COST = 32  # bytes: what a record of output costs beyond its data, against PLAYGROUND_EXEC_OUTPUT_MAX

# Places for commands running at once in this process, and how many of them
# each session holds (see instance_exec).
_places = threading.BoundedSemaphore(settings.PLAYGROUND_EXEC_CONCURRENCY)
_running: dict[str, int] = {}
_lock = threading.Lock()
# The last stats measured of each instance, and when (see instance_stats).
STATS_FRESH = 2.0  # seconds
_measured: dict[int, tuple[float, dict]] = {}
# The threads that read the commands' output for the event loop
# (views._ndjson): as many as there are places, and none of the loop's own.
readers = ThreadPoolExecutor(max_workers=settings.PLAYGROUND_EXEC_CONCURRENCY, thread_name_prefix="exec")


def instance_exec(*, session: Session, cmd: list[str], stdin: str, timeout: int) -> Iterator[dict]:
    """Run `cmd` in the session's running instance; yield what it writes, then how it ended.

    The records: `{"stream": "stdout" | "stderr", "data": text}` as output
    arrives (UTF-8, undecodable bytes replaced), then one of
    `{"exit_code": N, "timed_out": bool}`; or, once the output passed
    PLAYGROUND_EXEC_OUTPUT_MAX bytes, `{"exit_code": None, "truncated": True}`:
    the rest is not read, and the command ends by its timeout at the latest;
    or, when the instance stopped answering, `{"exit_code": None, "error":
    "exec_failed", "message": ...}`.
    The checks run at once; the command starts when the first record is asked
    for. A web process runs at most PLAYGROUND_EXEC_CONCURRENCY commands at
    once (503 `exec_busy` beyond): each holds a thread while it runs. The
    records hold that place until they are read to their end or closed.
    """
    instance = running_instance(session, "exec")
    data = stdin.encode()
    # Never past the session's end: a command must not outlive it.
    timeout = max(1, min(timeout, int((session.expires_at - timezone.now()).total_seconds())))
    release = take_place(session.pk)
    release_connection()  # the command may run for minutes without the database
    return Holding(_run(instance, cmd, data, timeout), release)


def take_place(session_id: str):
    """A place for one more command, in this process and in this session; returns its release."""
    with _lock:
        if _running.get(session_id, 0) >= settings.PLAYGROUND_EXEC_PER_SESSION:
            raise TooManyCommands(
                f"This session runs {settings.PLAYGROUND_EXEC_PER_SESSION} commands already; wait for one to end.",
                retry_after=5,
                log_message=f"session {session_id} runs {_running[session_id]} commands: refusing another",
            )
        if not _places.acquire(blocking=False):
            raise ServiceUnavailable(
                "The playground runs as many commands as it may; try again in a few seconds.",
                reason="exec_busy",
                retry_after=5,
                log_message=f"{settings.PLAYGROUND_EXEC_CONCURRENCY} commands running: refusing another",
            )
        _running[session_id] = _running.get(session_id, 0) + 1

    def release() -> None:
        with _lock:
            _running[session_id] -= 1
            if not _running[session_id]:
                del _running[session_id]
        _places.release()

    return release


class Holding(Iterator[dict]):
    """Records that hold a place until they end or are closed, whichever comes first.

    Read from one thread at a time (next() and close() alike): a close while
    a read is under way would find the generator running. The place is
    released once the command is no longer read.
    """

    def __init__(self, records: Iterator[dict], release) -> None:
        self.records, self.release = records, release

    def __next__(self) -> dict:
        try:
            return next(self.records)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        release, self.release = self.release, None
        if release is not None:
            try:
                self.records.close()
            finally:
                release()

    def __del__(self) -> None:
        self.close()


def instance_stats(*, session: Session) -> dict:
    """What the session's running instance uses now, and its limits (backends.base.InstanceStats)."""
    instance = running_instance(session, "stats")
    # Measuring costs the engine two calls and the instance a `df`: viewers
    # polling at once share one measure a moment.
    with _lock:
        measured_at, figures = _measured.get(instance.pk, (0.0, None))
    if figures is not None and time.monotonic() - measured_at < STATS_FRESH:
        return figures
    try:
        figures = dataclasses.asdict(backend_for(instance).stats(instance))
    except AttachError as exc:
        raise InstanceNotRunning(log_message=str(exc)) from None
    with _lock:
        for stale in [key for key, (at, _) in _measured.items() if time.monotonic() - at >= STATS_FRESH]:
            del _measured[stale]
        _measured[instance.pk] = (time.monotonic(), figures)
    return figures


def running_instance(session: Session, what: str) -> Instance:
    if not session.is_open or session.expires_at <= timezone.now():  # ended, or about to be reaped
        raise SessionClosed(log_message=f"{what} in ended session {session.pk}")
    instance = session_instance(session=session)
    if instance is None:
        raise SessionHasNoInstance(log_message=f"session {session.pk} has no instance")
    if instance.status != Instance.Status.RUNNING:
        raise InstanceNotRunning(log_message=f"{what} in session {session.pk}: instance is {instance.status}")
    return instance


def _run(instance: Instance, cmd: list[str], stdin: bytes, timeout: int) -> Iterator[dict]:
    events = backend_for(instance).exec(instance, cmd, stdin=stdin, timeout=timeout)
    decoders = {name: codecs.getincrementaldecoder("utf-8")("replace") for name in ("stdout", "stderr")}
    budget = settings.PLAYGROUND_EXEC_OUTPUT_MAX
    try:
        for event in events:
            if isinstance(event, ExecOutput):
                # Each piece costs its size and a record's worth more, so
                # that a command writing a byte at a time is cut off as soon.
                budget -= len(event.data) + RECORD_COST
                if budget < 0:
                    yield {"exit_code": None, "truncated": True}
                    return
                if text := decoders[event.stream].decode(event.data):
                    yield {"stream": event.stream, "data": text}
            elif isinstance(event, ExecExit):
                for name, decoder in decoders.items():
                    if rest := decoder.decode(b"", final=True):
                        yield {"stream": name, "data": rest}
                yield {"exit_code": event.exit_code, "timed_out": event.timed_out}
                return
    except AttachError as exc:
        logger.warning("exec in session %s: %s", instance.session_id, exc)
        yield {"exit_code": None, "error": EXEC_FAILED, "message": "The command could not be run to its end."}
    finally:
        events.close()
