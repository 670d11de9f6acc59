import pytest
from rest_framework.test import APIClient


@pytest.fixture(autouse=True)
def _fake_backend(use_backend):
    """Unit tests never touch Docker."""


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks):
    """Run the tasks a request enqueues after commit, as the worker would."""

    def call(func, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return func(*args, **kwargs)

    return call


@pytest.fixture
def open_session(api, run_on_commit):
    """Open sessions through the API, their instance provisioned on the fake backend: open_session() -> id."""

    def open_(**body) -> str:
        response = run_on_commit(api.post, "/sessions", {"playground_id": "default", **body}, format="json")
        assert response.status_code == 201, response.content
        return response.json()["session_id"]

    return open_


@pytest.fixture
def session_id(open_session) -> str:
    """One session opened through the API, its instance running."""
    return open_session()
