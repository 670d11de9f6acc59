import pytest

from tests.support.learner import close_session, open_session


@pytest.fixture
def session_id(platform, web, docker_client):
    """A session of the real stack whose instance runs; closed at the end."""
    session_id = open_session(web)
    yield session_id
    close_session(web, session_id)
