"""DELETE /sessions/{id}: the session closes and its instance is removed."""

import pytest

pytestmark = pytest.mark.django_db


def test_it_closes_a_session_and_removes_its_instance(api, run_on_commit, fake_engine, session_id):
    response = run_on_commit(api.delete, f"/sessions/{session_id}")

    assert response.status_code == 200
    assert response.json()["status"] == "closed"
    assert fake_engine.containers == {}
    body = api.get(f"/sessions/{session_id}").json()
    assert body["status"] == "closed"
    assert body["closed_at"]
    assert body["instance"]["status"] == "terminated"


def test_it_closes_a_session_twice_without_harm(api, run_on_commit, fake_engine, session_id):
    run_on_commit(api.delete, f"/sessions/{session_id}")

    response = run_on_commit(api.delete, f"/sessions/{session_id}")

    assert response.status_code == 200
    assert response.json()["status"] == "closed"
    assert [call for call, _ in fake_engine.calls].count("remove") == 1


def test_it_answers_404_when_closing_an_unknown_session(api):
    response = api.delete("/sessions/" + "f" * 32)

    assert response.status_code == 404
    assert response.json()["error"] == "session_not_found"


def test_it_refuses_delete_on_the_collection(api, session_id):
    response = api.delete("/sessions")

    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
