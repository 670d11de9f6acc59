"""Every log line about a session carries it, and no log line holds a session id.

Views, tasks and terminal consumers set the session they work for in a
context variable; a logging filter copies it onto each record, and the
format prints it. Context variables follow asyncio tasks and the threads
Django and asgiref hand work to, so lines written deep in services and
backends are tagged too.

A session id is what its owner's pages are found by, so logs (which travel
to log services and screenshots) never show one: the filter prints a short
hash of it instead, and replaces any session id in a line's text the same
way. The admin finds a session by the hash too (its search box takes both).
"""

import contextlib
import hashlib
import logging
import re
from contextvars import ContextVar

current_session_id: ContextVar[str] = ContextVar("current_session_id", default="-")

# A session id (32 hex digits), alone or in a name such as playground-<id>.
SESSION_ID = re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")


def log_id(session_id: str) -> str:
    """What the logs call a session: the first 10 hex digits of its id's SHA-256."""
    if session_id in ("", "-"):
        return "-"
    return hashlib.sha256(session_id.encode()).hexdigest()[:10]


def set_session(session_id: str) -> None:
    current_session_id.set(session_id)


@contextlib.contextmanager
def session_context(session_id: str):
    token = current_session_id.set(session_id)
    try:
        yield
    finally:
        current_session_id.reset(token)


class SessionIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.session_id = log_id(current_session_id.get())
        message = record.getMessage()
        if SESSION_ID.search(message):
            record.msg, record.args = SESSION_ID.sub(lambda match: log_id(match.group()), message), ()
        return True
