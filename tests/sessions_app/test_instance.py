"""GET and DELETE /sessions/{id}/instances/{name}: one instance; deleting it frees the session for another."""

import pytest

from sessions_app.models import Instance
from tests.factories import make_playground

pytestmark = pytest.mark.django_db


def test_it_shows_the_instance_by_name(api, session_id):
    response = api.get(f"/sessions/{session_id}/instances/node1")

    assert response.status_code == 200
    assert response.json()["hostname"] == "node1"


def test_it_answers_404_for_an_unknown_instance_name(api, session_id):
    response = api.get(f"/sessions/{session_id}/instances/node2")

    assert response.status_code == 404
    assert response.json()["error"] == "instance_not_found"


@pytest.mark.parametrize("path", ["/instances", "/instances/node1"])
def test_it_answers_404_for_an_unknown_session(api, path):
    response = api.get(f"/sessions/{'e' * 32}{path}")

    assert response.status_code == 404
    assert response.json()["error"] == "session_not_found"


def test_it_deletes_the_instance_and_then_allows_a_new_one(api, run_on_commit, session_id, fake_engine):
    deleted = run_on_commit(api.delete, f"/sessions/{session_id}/instances/node1")

    assert deleted.status_code == 202
    assert deleted.json()["status"] == "terminating"
    assert fake_engine.containers == {}
    assert api.get(f"/sessions/{session_id}/instances").json() == []
    assert api.get(f"/sessions/{session_id}").json()["instance"] is None

    created = run_on_commit(api.post, f"/sessions/{session_id}/instances", {}, format="json")

    assert created.status_code == 201
    assert created.json()["name"] == "node1"
    assert api.get(f"/sessions/{session_id}/instances/node1").json()["status"] == "running"
    assert list(fake_engine.containers) == [f"playground-{session_id}"]


def test_it_refuses_wrong_methods(api, session_id):
    assert api.put(f"/sessions/{session_id}/instances", {}, format="json").status_code == 405
    response = api.post(f"/sessions/{session_id}/instances/node1", {}, format="json")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


@pytest.mark.django_db(transaction=True)
def test_it_answers_the_delete_even_when_the_teardown_finishes_first(api):
    # With real commits, the (eager) teardown deletes the row before the view answers.
    make_playground()  # an earlier transactional test may have flushed it
    session_id = api.post("/sessions", {"playground_id": "default"}, format="json").json()["session_id"]

    deleted = api.delete(f"/sessions/{session_id}/instances/node1")

    assert deleted.status_code == 202
    assert deleted.json()["status"] == "terminating"
    assert Instance.objects.filter(session_id=session_id).count() == 0
