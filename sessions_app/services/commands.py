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
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings

from sessions_app.backends import get_backend
from sessions_app.backends.base import AttachError, ExecExit, ExecOutput
from sessions_app.errors import InstanceNotRunning, ServiceUnavailable, SessionClosed, SessionHasNoInstance
from sessions_app.models import Instance, Session
from sessions_app.selectors import session_instance

logger = logging.getLogger(__name__)

EXEC_FAILED = "exec_failed"

# Places for commands running at once in this process (see instance_exec).
_places = threading.BoundedSemaphore(settings.PLAYGROUND_EXEC_CONCURRENCY)
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
    instance = _running_instance(session, "exec")
    if not _places.acquire(blocking=False):
        raise ServiceUnavailable(
            "The playground runs as many commands as it may; try again in a few seconds.",
            reason="exec_busy",
            retry_after=5,
            log_message=f"{settings.PLAYGROUND_EXEC_CONCURRENCY} commands running: refusing another",
        )
    return _Holding(_run(instance, cmd, stdin.encode(), timeout), _places.release)


class _Holding(Iterator[dict]):
    """An iterator that calls `release` once, when it ends or is closed."""

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

    __del__ = close


def instance_stats(*, session: Session) -> dict:
    """What the session's running instance uses now, and its limits (backends.base.InstanceStats)."""
    instance = _running_instance(session, "stats")
    try:
        return dataclasses.asdict(get_backend().stats(instance))
    except AttachError as exc:
        raise InstanceNotRunning(log_message=str(exc)) from None


def _running_instance(session: Session, what: str) -> Instance:
    if not session.is_open:
        raise SessionClosed(log_message=f"{what} in closed session {session.pk}")
    instance = session_instance(session=session)
    if instance is None:
        raise SessionHasNoInstance(log_message=f"session {session.pk} has no instance")
    if instance.status != Instance.Status.RUNNING:
        raise InstanceNotRunning(log_message=f"{what} in session {session.pk}: instance is {instance.status}")
    return instance


def _run(instance: Instance, cmd: list[str], stdin: bytes, timeout: int) -> Iterator[dict]:
    events = get_backend().exec(instance, cmd, stdin=stdin, timeout=timeout)
    decoders = {name: codecs.getincrementaldecoder("utf-8")("replace") for name in ("stdout", "stderr")}
    budget = settings.PLAYGROUND_EXEC_OUTPUT_MAX
    try:
        for event in events:
            if isinstance(event, ExecOutput):
                budget -= len(event.data)
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
