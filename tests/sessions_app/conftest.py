import pytest


@pytest.fixture(autouse=True)
def _fake_backend(use_backend):
    """Unit tests never touch Docker."""


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
