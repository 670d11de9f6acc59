"""When the database, the broker or the cache is out of reach or saturated,
requests get 503 with Retry-After and a JSON reason, never 500, and nothing changes."""

import pytest
from django.db import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError

from sessions_app import selectors, tasks
from sessions_app.models import Session

pytestmark = pytest.mark.django_db


def refuse(*args, **kwargs):
    raise OperationalError("couldn't get a connection after 5.00 sec")


def test_it_answers_503_when_the_database_pool_is_exhausted(api, session_id, monkeypatch):
    monkeypatch.setattr(selectors.Session.objects, "select_related", refuse)

    response = api.get(f"/sessions/{session_id}")

    assert response.status_code == 503
    assert response.json()["error"] == "database_unavailable"
    assert int(response["Retry-After"]) > 0


def test_it_answers_503_on_a_page_too(client, monkeypatch):
    from sessions_app import access

    monkeypatch.setattr(access, "session_get", refuse)

    response = client.get("/p/" + "a" * 32)

    assert response.status_code == 503
    assert response.json()["error"] == "database_unavailable"
    assert response["Retry-After"]


def test_it_opens_no_session_while_the_broker_is_away(api, monkeypatch):
    monkeypatch.setattr(tasks, "broker_problem", lambda: "Error 111 connecting to 127.0.0.1:6390. Connection refused.")

    response = api.post("/sessions", {}, format="json")

    assert response.status_code == 503
    assert response.json()["error"] == "broker_unavailable"
    assert int(response["Retry-After"]) >= 1
    assert Session.objects.count() == 0


def test_it_answers_503_when_the_cache_behind_the_rate_limit_is_away(api, monkeypatch):
    from django.core.cache import cache

    def away(*args, **kwargs):
        raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6390. Connection refused.")

    monkeypatch.setattr(cache, "get", away)

    response = api.post("/sessions", {}, format="json")

    assert response.status_code == 503
    assert response.json()["error"] == "broker_unavailable"
    assert Session.objects.count() == 0


def test_it_finds_the_broker_when_it_is_there():
    assert tasks.broker_problem() is None
