"""Who may use a session: its owners (user, browser, access token), staff and
share links; anyone else gets the 404 of an unknown id, and nothing changes."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from sessions_app.access import BROWSER_COOKIE
from sessions_app.models import Instance, Session, Share
from tests.factories import make_playground, make_token, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def opened(api, run_on_commit) -> dict:
    """A session opened by `api` (a browser: it keeps the cookie), its body with the access token."""
    response = run_on_commit(api.post, "/sessions", {}, format="json")
    assert response.status_code == 201
    return response.json()


# Every route of a session, with what it would change.
ROUTES = [
    ("get", "/sessions/{id}", None),
    ("delete", "/sessions/{id}", None),
    ("post", "/sessions/{id}/extend", {}),
    ("get", "/sessions/{id}/terminal", None),
    ("get", "/sessions/{id}/instances", None),
    ("post", "/sessions/{id}/instances", {}),
    ("get", "/sessions/{id}/instances/node1", None),
    ("delete", "/sessions/{id}/instances/node1", None),
    ("get", "/sessions/{id}/shares", None),
    ("post", "/sessions/{id}/shares", {"mode": "read-write"}),
    ("delete", "/sessions/{id}/shares/abc", None),
]


def call(client, method: str, path: str, body, session_id: str, **extra):
    return getattr(client, method)(path.format(id=session_id), body, format="json", **extra)


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_it_answers_a_stranger_as_if_the_session_did_not_exist(opened, method, path, body):
    session_id = opened["session_id"]
    before = Session.objects.get(pk=session_id)

    stranger = call(APIClient(), method, path, body, session_id)
    unknown = call(APIClient(), method, path, body, "f" * 32)

    assert stranger.status_code == unknown.status_code == 404
    assert stranger.json() == unknown.json() == {"error": "session_not_found", "message": "There is no such session."}
    after = Session.objects.get(pk=session_id)
    assert (after.status, after.expires_at) == (before.status, before.expires_at)
    assert Instance.objects.get(session_id=session_id).status == "running"
    assert not Share.objects.exists()


def test_it_takes_the_access_token_as_the_owners_credential(opened, run_on_commit):
    session_id, token = opened["session_id"], opened["access_token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    assert client.get(f"/sessions/{session_id}").json()["access"] == "owner"
    assert [s["session_id"] for s in client.get("/sessions").json()] == [session_id]
    assert run_on_commit(client.delete, f"/sessions/{session_id}").json()["status"] == "closed"


def test_it_returns_the_access_token_only_when_the_session_is_opened(api, opened):
    assert len(opened["access_token"]) >= 40
    assert "access_token" not in api.get(f"/sessions/{opened['session_id']}").json()
    assert opened["access_token"] not in str(Session.objects.filter(pk=opened["session_id"]).values().get())


def test_it_refuses_a_wrong_or_forged_credential(opened):
    session_id = opened["session_id"]
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION=f"Bearer {opened['access_token']}x")
    forged = APIClient()
    forged.cookies[BROWSER_COOKIE] = "some-browser-id:forged-signature"

    assert wrong.get(f"/sessions/{session_id}").status_code == 404
    assert forged.get(f"/sessions/{session_id}").status_code == 404


def test_it_keeps_the_browser_cookie_from_scripts_and_other_sites(api):
    response = api.post("/sessions", {}, format="json")

    cookie = response.cookies[BROWSER_COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert ":" in cookie.value  # signed


def test_it_gives_a_logged_in_owner_and_staff_the_session_but_not_another_user(run_on_commit):
    owner, other = APIClient(), APIClient()
    owner.credentials(HTTP_AUTHORIZATION=f"Token {make_token(make_user('owner')).key}")
    other.credentials(HTTP_AUTHORIZATION=f"Token {make_token(make_user('other')).key}")
    staff = APIClient()
    staff.force_authenticate(make_user("staff", is_staff=True))
    session_id = run_on_commit(owner.post, "/sessions", {}, format="json").json()["session_id"]

    assert owner.get(f"/sessions/{session_id}").status_code == 200
    assert other.get(f"/sessions/{session_id}").status_code == 404
    assert staff.get(f"/sessions/{session_id}").json()["access"] == "owner"
    assert run_on_commit(staff.delete, f"/sessions/{session_id}").status_code == 200


def share(api, session_id: str, mode: str, **body) -> dict:
    response = api.post(f"/sessions/{session_id}/shares", {"mode": mode, **body}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


@pytest.mark.parametrize(("method", "path", "body"), [r for r in ROUTES if r[0] != "get" or "shares" in r[1]])
def test_it_lets_a_share_link_holder_read_but_not_act_as_the_owner(api, opened, method, path, body):
    session_id = opened["session_id"]
    holder = APIClient()
    holder.credentials(HTTP_AUTHORIZATION=f"Bearer {share(api, session_id, 'read-write')['token']}")
    shares_before = Share.objects.count()

    refused = call(holder, method, path, body, session_id)

    assert holder.get(f"/sessions/{session_id}").json()["access"] == "read-write"
    assert refused.status_code == 403
    assert refused.json()["error"] == "not_owner"
    assert Session.objects.get(pk=session_id).status == "open"
    assert Share.objects.count() == shares_before


def test_it_ends_a_share_link_when_revoked_or_expired(api, opened):
    session_id = opened["session_id"]
    revoked, expiring = share(api, session_id, "read-only"), share(api, session_id, "read-only", expires_in=60)
    holders = {}
    for name, made in (("revoked", revoked), ("expiring", expiring)):
        holders[name] = APIClient()
        holders[name].credentials(HTTP_AUTHORIZATION=f"Bearer {made['token']}")
        assert holders[name].get(f"/sessions/{session_id}").json()["access"] == "read-only"

    assert api.delete(f"/sessions/{session_id}/shares/{revoked['id']}").status_code == 204
    Share.objects.filter(pk=expiring["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert holders["revoked"].get(f"/sessions/{session_id}").status_code == 404
    assert holders["expiring"].get(f"/sessions/{session_id}").status_code == 404


def test_it_lets_a_browser_redeem_a_share_link_into_its_cookie(api, opened, client):
    session_id = opened["session_id"]
    made = share(api, session_id, "read-only")
    assert made["url"] == f"http://testserver/p/{session_id}#share={made['token']}"
    assert client.get(f"/p/{session_id}").status_code == 404

    redeemed = client.post("/shares/redeem", {"token": made["token"]}, content_type="application/json")

    assert redeemed.status_code == 200
    assert redeemed.json()["session_id"] == session_id
    assert client.get(f"/p/{session_id}").status_code == 200
    assert client.get(f"/sessions/{session_id}").json()["access"] == "read-only"
    assert client.delete(f"/sessions/{session_id}").status_code == 403


# --- Cross-site writes ------------------------------------------------------------


def test_it_creates_nothing_for_another_sites_page(api):
    from_evil = api.post("/sessions", {}, format="json", HTTP_ORIGIN="https://evil.example")
    fetched = api.post("/sessions", {}, format="json", HTTP_SEC_FETCH_SITE="cross-site")
    form = api.post("/sessions", "playground_id=default", content_type="application/x-www-form-urlencoded")
    bare = api.generic("POST", "/sessions", "")  # no body and no content type: a no-cors fetch can send this

    assert from_evil.status_code == fetched.status_code == 403
    assert from_evil.json()["error"] == "cross_site_request"
    assert form.status_code == bare.status_code == 415
    assert Session.objects.count() == 0


def test_it_accepts_the_sites_own_page(api):
    response = api.post(
        "/sessions", {}, format="json", HTTP_ORIGIN="http://testserver", HTTP_SEC_FETCH_SITE="same-origin"
    )

    assert response.status_code == 201


def test_it_needs_the_csrf_token_for_a_write_on_the_strength_of_the_browser_cookie(run_on_commit):
    browser = APIClient(enforce_csrf_checks=True)
    browser.get("/")  # the page sets the CSRF cookie
    csrf = browser.cookies["csrftoken"].value
    session_id = browser.post("/sessions", {}, format="json", HTTP_X_CSRFTOKEN=csrf).json()["session_id"]

    forged = browser.delete(f"/sessions/{session_id}")
    genuine = run_on_commit(browser.delete, f"/sessions/{session_id}", HTTP_X_CSRFTOKEN=csrf)

    assert forged.status_code == 403
    assert genuine.status_code == 200
    assert Session.objects.get(pk=session_id).status == "closed"


# --- Playgrounds for some ---------------------------------------------------------------


def test_it_refuses_a_restricted_playground_as_if_it_did_not_exist(api):
    make_playground("course", access="staff")

    restricted = api.post("/sessions", {"playground_id": "course"}, format="json")
    missing = api.post("/sessions", {"playground_id": "nosuch"}, format="json")

    assert restricted.status_code == missing.status_code == 400
    assert restricted.json()["error"] == missing.json()["error"] == "playground_not_allowed"
    assert restricted.json()["message"].replace("course", "X") == missing.json()["message"].replace("nosuch", "X")
    assert Session.objects.count() == 0


def test_it_opens_a_group_playground_to_its_members_and_staff(run_on_commit):
    from django.contrib.auth.models import Group

    course = make_playground("course", access="groups")
    students = Group.objects.create(name="students")
    course.groups.add(students)
    member, outsider = make_user("member"), make_user("outsider")
    member.groups.add(students)

    def create(user):
        client = APIClient()
        client.force_authenticate(user)
        return run_on_commit(client.post, "/sessions", {"playground_id": "course"}, format="json").status_code

    assert create(member) == 201
    assert create(make_user("boss", is_staff=True)) == 201
    assert create(outsider) == 400
