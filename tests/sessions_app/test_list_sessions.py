"""GET /sessions: the caller's own sessions."""

import pytest
from rest_framework.test import APIClient

from tests.factories import make_token

pytestmark = pytest.mark.django_db


def test_it_lists_only_the_callers_own_sessions(api):
    mine = api.post("/sessions", {}, format="json").json()["session_id"]
    someone_else = APIClient().post("/sessions", {}, format="json").json()["session_id"]

    listed = [s["session_id"] for s in api.get("/sessions").json()]
    stranger = APIClient().get("/sessions").json()

    assert listed == [mine]
    assert someone_else not in listed
    assert stranger == []


def test_it_lists_a_users_sessions_and_all_to_staff(admin_client):
    token = make_token()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    own = client.post("/sessions", {}, format="json").json()["session_id"]
    other = APIClient().post("/sessions", {}, format="json").json()["session_id"]

    assert [s["session_id"] for s in client.get("/sessions").json()] == [own]
    assert {s["session_id"] for s in admin_client.get("/sessions").json()} == {own, other}


def test_it_refuses_put_on_the_collection(api):
    response = api.put("/sessions", {}, format="json")

    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
