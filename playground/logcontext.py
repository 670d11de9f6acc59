"""Every log line about a session carries its id.

Views, tasks and terminal consumers set the session they work for in a
context variable; a logging filter copies it onto each record, and the
format prints it. Context variables follow asyncio tasks and the threads
Django and asgiref hand work to, so lines written deep in services and
backends are tagged too.
"""

import contextlib
import logging
from contextvars import ContextVar

current_session_id: ContextVar[str] = ContextVar("current_session_id", default="-")


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
        record.session_id = current_session_id.get()
        return True
