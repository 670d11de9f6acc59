"""Who may open sessions, and how many: per-client and global limits, login, CSRF."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from sessions_app.models import Session
from tests.factories import make_token, make_user

pytestmark = pytest.mark.django_db


def an_address() -> str:
    """A client address of this test's own, so rate counts of other tests do not leak in."""
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"


def create(client, address: str, **extra):
    return client.post("/sessions", {}, format="json", REMOTE_ADDR=address, **extra)


def test_it_refuses_more_open_sessions_than_a_client_may_have(api, settings):
    settings.PLAYGROUND_MAX_SESSIONS_PER_CLIENT = 2
    address = an_address()
    assert [create(api, address).status_code for _ in range(2)] == [201, 201]

    refused = create(api, address)

    assert refused.status_code == 429
    assert refused.json()["error"] == "too_many_sessions"
    assert 0 < int(refused["Retry-After"]) <= 7200
    assert Session.objects.filter(client_address=address).count() == 2
    assert create(api, an_address()).status_code == 201  # another client is not affected


def test_it_lets_a_client_open_a_session_again_after_closing_one(api, settings, run_on_commit):
    settings.PLAYGROUND_MAX_SESSIONS_PER_CLIENT = 1
    address = an_address()
    first = create(api, address).json()["session_id"]
    assert create(api, address).status_code == 429

    run_on_commit(api.delete, f"/sessions/{first}")

    assert create(api, address).status_code == 201


def test_it_limits_how_fast_a_client_creates_sessions(api, settings):
    settings.PLAYGROUND_SESSION_RATE = "3/min"
    address = an_address()
    assert [create(api, address).status_code for _ in range(3)] == [201, 201, 201]

    refused = create(api, address)

    assert refused.status_code == 429
    assert refused.json()["error"] == "throttled"
    assert 0 < int(refused["Retry-After"]) <= 60
    assert Session.objects.filter(client_address=address).count() == 3


def test_it_answers_503_out_of_capacity_before_creating_anything(api, settings):
    settings.PLAYGROUND_MAX_SESSIONS = 2
    assert create(api, an_address()).status_code == 201
    assert create(api, an_address()).status_code == 201

    refused = create(api, an_address())

    assert refused.status_code == 503
    assert refused.json()["error"] == "out_of_capacity"
    assert 1 <= int(refused["Retry-After"]) <= 30
    assert Session.objects.count() == 2


def test_a_full_host_asks_to_try_again_when_its_first_session_expires(api, settings):
    settings.PLAYGROUND_MAX_SESSIONS = 1
    assert create(api, an_address()).status_code == 201
    Session.objects.update(expires_at=timezone.now() + timedelta(seconds=12))

    refused = create(api, an_address())

    assert refused.status_code == 503
    assert 10 <= int(refused["Retry-After"]) <= 12


def test_it_can_require_a_login_and_accepts_api_tokens(api, settings):
    settings.PLAYGROUND_REQUIRE_LOGIN = True
    token = make_token()
    user = token.user

    anonymous = create(api, an_address())
    with_token = create(api, an_address(), HTTP_AUTHORIZATION=f"Token {token.key}")

    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "not_authenticated"
    assert with_token.status_code == 201
    assert Session.objects.get(pk=with_token.json()["session_id"]).owner == user
    assert Session.objects.count() == 1


def test_it_counts_a_users_sessions_wherever_they_come_from(settings):
    settings.PLAYGROUND_MAX_SESSIONS_PER_CLIENT = 1
    token = make_token()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")

    assert create(client, an_address()).status_code == 201
    assert create(client, an_address()).status_code == 429


def test_it_needs_the_csrf_token_for_cookie_authenticated_writes():
    make_user(password="secret-password")
    browser = APIClient(enforce_csrf_checks=True)
    browser.login(username="learner", password="secret-password")

    forged = create(browser, an_address())

    assert forged.status_code == 403
    assert Session.objects.count() == 0
    browser.get("/")  # the page sets the CSRF cookie
    genuine = create(browser, an_address(), HTTP_X_CSRFTOKEN=browser.cookies["csrftoken"].value)
    assert genuine.status_code == 201
