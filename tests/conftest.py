import pytest

from sessions_app.backends import fake

FAKE_BACKEND = "sessions_app.backends.fake.FakeBackend"


@pytest.fixture
def fake_engine():
    """The fake backend's engine, empty at the start of the test."""
    fake.engine.reset()
    yield fake.engine
    fake.engine.reset()


@pytest.fixture
def use_backend(settings, fake_engine):
    """Run tasks in-process against a fake backend; returns a setter to pick a sibling."""
    from playground.celery import app

    def choose(path: str = FAKE_BACKEND) -> None:
        settings.PLAYGROUND_BACKEND = path

    choose()
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield choose
    app.conf.task_always_eager = previous


# Fixtures of the real stack (Docker, PostgreSQL, Redis, Daphne, a worker),
# shared by the integration and browser tests.
pytest_plugins = ["tests.support.stack", "tests.support.engines"]


@pytest.fixture(autouse=True)
def _generous_limits(settings):
    """Tests open many sessions from one address; the tests of the limits set their own."""
    settings.PLAYGROUND_SESSION_RATE = "100000/min"
    settings.PLAYGROUND_MAX_SESSIONS_PER_CLIENT = 1000


@pytest.fixture(scope="session", autouse=True)
def _close_connections_of_sync_threads(django_db_setup):
    """Close the database connection that async tests opened in asgiref's
    worker thread, so the test database can be dropped at the end."""
    yield
    from asgiref.sync import SyncToAsync
    from django.db import connections

    SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=30)


@pytest.fixture
def api():
    """A REST client of the app, in-process."""
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks):
    """Run the tasks a request enqueues after commit, as the worker would."""

    def call(func, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return func(*args, **kwargs)

    return call
