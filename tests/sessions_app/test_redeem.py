"""POST /shares/redeem: a browser keeps a share link's token in its cookie."""

import pytest
from rest_framework.test import APIClient

from sessions_app.access import SHARES_COOKIE


@pytest.fixture
def token(api, session_id) -> str:
    return api.post(f"/sessions/{session_id}/shares", {"mode": "read-write"}, format="json").json()["token"]


pytestmark = pytest.mark.django_db


def test_it_redeems_a_share_link_into_a_signed_httponly_cookie(session_id, token):
    browser = APIClient()

    response = browser.post("/shares/redeem", {"token": token}, format="json")

    assert response.status_code == 200
    assert response.json()["mode"] == "read-write"
    assert response.json()["terminal_url"] == f"http://testserver/p/{session_id}"
    cookie = response.cookies[SHARES_COOKIE]
    assert cookie["httponly"] is True and cookie["samesite"] == "Lax"
    assert token not in cookie.value
    assert browser.get(f"/sessions/{session_id}").json()["access"] == "read-write"


@pytest.mark.parametrize("body", [{}, {"token": 5}, {"token": ""}, ["x"], {"token": "x" * 300}])
def test_it_refuses_a_malformed_body(body):
    response = APIClient().post("/shares/redeem", body, format="json")

    assert response.status_code == 400
    assert SHARES_COOKIE not in response.cookies


def test_it_answers_404_for_an_unknown_or_revoked_link(api, session_id, token):
    share_id = api.get(f"/sessions/{session_id}/shares").json()[0]["id"]
    api.delete(f"/sessions/{session_id}/shares/{share_id}")

    for attempt in ("not-a-token", token):
        response = APIClient().post("/shares/redeem", {"token": attempt}, format="json")
        assert response.status_code == 404
        assert response.json()["error"] == "share_not_found"


def test_it_refuses_other_methods():
    assert APIClient().get("/shares/redeem").status_code == 405
