"""Every log line about a session names it, by a hash: no line holds a session id."""

import contextvars
import io
import logging

import pytest
from django.conf import settings

from playground.logcontext import SessionIdFilter, log_id

pytestmark = pytest.mark.django_db


@pytest.fixture
def log_lines(use_backend):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(SessionIdFilter())
    handler.setFormatter(logging.Formatter(settings.LOGGING["formatters"]["plain"]["format"]))
    loggers = [logging.getLogger(name) for name in ("sessions_app", "celery.app.trace")]
    for logger in loggers:
        logger.addHandler(handler)
    yield lambda: stream.getvalue().splitlines()
    for logger in loggers:
        logger.removeHandler(handler)


def test_it_tags_api_and_task_lines_with_the_session(client, django_capture_on_commit_callbacks, log_lines):
    with django_capture_on_commit_callbacks(execute=True):
        session_id = client.post("/sessions", {}, content_type="application/json").json()["session_id"]
    with django_capture_on_commit_callbacks(execute=True):
        client.delete(f"/sessions/{session_id}")

    lines = [line for line in log_lines() if "sessions_app" in line]
    assert any("opened in playground" in line for line in lines)
    assert any("instance running" in line for line in lines)
    assert any("instance removed" in line for line in lines)
    assert all(f"[session={log_id(session_id)}]" in line for line in lines), lines
    assert not [line for line in log_lines() if session_id in line]


def test_it_hides_session_ids_in_the_text_of_a_line():
    session_id = "0123456789abcdef0123456789abcdef"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "removing playground-%s and %s", (session_id, "x"), None)

    SessionIdFilter().filter(record)

    assert record.getMessage() == f"removing playground-{log_id(session_id)} and x"
    assert len(log_id(session_id)) == 10


def test_it_marks_lines_about_no_session():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "starting", None, None)

    contextvars.Context().run(SessionIdFilter().filter, record)  # a context no session has touched

    assert record.session_id == "-"


def test_a_job_about_no_session_is_not_tagged_with_the_last_one_of_its_thread(use_backend):
    from playground.logcontext import current_session_id, set_session
    from sessions_app.tasks import prepare_sessions

    set_session("0123456789abcdef0123456789abcdef")  # what an earlier job in this thread was about

    prepare_sessions.delay()

    assert current_session_id.get() == "-"
