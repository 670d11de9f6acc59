"""GET and POST /sessions/{id}/shares: the owner's share links."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from sessions_app.models import Share

pytestmark = pytest.mark.django_db


def test_it_makes_a_share_link_and_shows_its_token_once(api, session_id):
    made = api.post(f"/sessions/{session_id}/shares", {"mode": "read-only", "expires_in": 600}, format="json")

    assert made.status_code == 201
    body = made.json()
    assert body["mode"] == "read-only" and body["active"] is True
    assert body["url"] == f"http://testserver/p/{session_id}#share={body['token']}"
    assert timedelta(minutes=9) < parse_datetime(body["expires_at"]) - timezone.now() <= timedelta(minutes=10)
    [listed] = api.get(f"/sessions/{session_id}/shares").json()
    assert listed["id"] == body["id"]
    assert listed["token"] is None and listed["url"] is None
    assert body["token"] not in str(Share.objects.values().get())


def test_it_lasts_as_long_as_the_session_may_by_default(api, session_id):
    body = api.post(f"/sessions/{session_id}/shares", {"mode": "read-write"}, format="json").json()

    latest = api.get(f"/sessions/{session_id}").json()
    assert parse_datetime(body["expires_at"]) > parse_datetime(latest["expires_at"])


@pytest.mark.parametrize(
    "body",
    [{}, {"mode": "admin"}, {"mode": 1}, {"mode": "read-only", "expires_in": 5}, {"mode": "read-only", "x": 1}, [1]],
)
def test_it_refuses_a_malformed_body_and_makes_nothing(api, session_id, body):
    response = api.post(f"/sessions/{session_id}/shares", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert not Share.objects.exists()


def test_it_refuses_to_share_a_closed_session(api, session_id, run_on_commit):
    run_on_commit(api.delete, f"/sessions/{session_id}")

    response = api.post(f"/sessions/{session_id}/shares", {"mode": "read-only"}, format="json")

    assert response.status_code == 409
    assert response.json()["error"] == "session_closed"


def test_it_answers_404_and_405(api, session_id):
    assert api.get(f"/sessions/{'c' * 32}/shares").status_code == 404
    assert api.post(f"/sessions/{'c' * 32}/shares", {"mode": "read-only"}, format="json").status_code == 404
    response = api.put(f"/sessions/{session_id}/shares", {}, format="json")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
