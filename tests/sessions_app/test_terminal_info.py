"""GET /sessions/{id}/terminal: the instance and the URL of its WebSocket."""

import pytest

pytestmark = pytest.mark.django_db


def test_it_shows_the_instance_and_its_websocket(api, session_id):
    response = api.get(f"/sessions/{session_id}/terminal")

    assert response.status_code == 200
    body = response.json()
    assert body["session_id"] == session_id
    assert body["name"] == "node1"
    assert body["status"] == "running"
    assert body["ip_address"]
    assert body["ws_url"] == f"ws://testserver/sessions/{session_id}/ws"


def test_it_accepts_a_trailing_slash(api, session_id):
    assert api.get(f"/sessions/{session_id}/terminal/").status_code == 200


def test_it_answers_404_for_an_unknown_session(api):
    response = api.get(f"/sessions/{'a' * 32}/terminal")

    assert response.status_code == 404
    assert response.json()["error"] == "session_not_found"


def test_it_answers_404_when_the_instance_was_removed(api, run_on_commit, session_id):
    run_on_commit(api.delete, f"/sessions/{session_id}/instances/node1")

    response = api.get(f"/sessions/{session_id}/terminal")

    assert response.status_code == 404
    assert response.json()["error"] == "no_instance"


def test_it_refuses_post(api, session_id):
    response = api.post(f"/sessions/{session_id}/terminal", {}, format="json")

    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
