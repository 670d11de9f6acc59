"""Expiry, extension and the idle timeout, on the fake backend."""

from datetime import timedelta

import pytest
from django.utils import timezone

from sessions_app import services
from sessions_app.models import Instance, Playground, Session

pytestmark = pytest.mark.django_db


@pytest.fixture
def session_id(api, run_on_commit):
    return run_on_commit(api.post, "/sessions", {"playground_id": "default"}, format="json").json()["session_id"]


def shift(session_id: str, **times) -> None:
    Session.objects.filter(pk=session_id).update(**times)


def test_it_reaps_an_expired_session_and_removes_its_instance(session_id, run_on_commit, fake_engine, api):
    shift(session_id, expires_at=timezone.now() - timedelta(seconds=1))

    closed = run_on_commit(services.sessions_reap_expired)

    assert closed == [session_id]
    body = api.get(f"/sessions/{session_id}").json()
    assert body["status"] == "expired"
    assert body["instance"]["status"] == "terminated"
    assert fake_engine.containers == {}


def test_it_leaves_a_session_that_has_time_left(session_id, run_on_commit):
    assert run_on_commit(services.sessions_reap_expired) == []
    assert Session.objects.get(pk=session_id).status == "open"


def test_it_closes_a_session_idle_past_its_playgrounds_timeout(session_id, run_on_commit):
    Playground.objects.filter(pk="default").update(idle_timeout=timedelta(minutes=10))
    shift(session_id, last_activity_at=timezone.now() - timedelta(minutes=11))

    assert run_on_commit(services.sessions_reap_expired) == [session_id]
    assert Session.objects.get(pk=session_id).status == "expired"


def test_it_keeps_a_session_with_recent_input_despite_the_idle_timeout(session_id, run_on_commit):
    Playground.objects.filter(pk="default").update(idle_timeout=timedelta(minutes=10))
    shift(session_id, created_at=timezone.now() - timedelta(minutes=30))
    services.session_touch(session_id=session_id)

    assert run_on_commit(services.sessions_reap_expired) == []


def test_it_extends_a_session_by_the_default_duration(session_id, api):
    # Created an hour ago, 1.5 h left: +2 h would pass the 4 h maximum by half an hour.
    now = timezone.now()
    shift(session_id, created_at=now - timedelta(hours=1), expires_at=now + timedelta(minutes=90))

    response = api.post(f"/sessions/{session_id}/extend", {}, format="json")

    assert response.status_code == 200
    session = Session.objects.get(pk=session_id)
    assert session.expires_at == session.created_at + timedelta(hours=4)


def test_it_extends_by_a_given_duration(session_id, api):
    before = Session.objects.get(pk=session_id).expires_at

    response = api.post(f"/sessions/{session_id}/extend/", {"duration": 600}, format="json")

    assert response.status_code == 200
    assert Session.objects.get(pk=session_id).expires_at == before + timedelta(seconds=600)


def test_it_refuses_to_extend_beyond_the_maximum(session_id, api):
    session = Session.objects.get(pk=session_id)
    shift(session_id, expires_at=session.created_at + timedelta(hours=4))

    response = api.post(f"/sessions/{session_id}/extend", {"duration": 600}, format="json")

    assert response.status_code == 409
    assert response.json()["error"] == "cannot_extend"
    assert Session.objects.get(pk=session_id).expires_at == session.created_at + timedelta(hours=4)


def test_it_refuses_to_extend_a_closed_session(session_id, api, run_on_commit):
    run_on_commit(api.delete, f"/sessions/{session_id}")

    response = api.post(f"/sessions/{session_id}/extend", {}, format="json")

    assert response.status_code == 409
    assert response.json()["error"] == "session_closed"


@pytest.mark.parametrize("body", [{"duration": 5}, {"duration": "600"}, {"minutes": 5}, [1]])
def test_it_refuses_a_malformed_extension(session_id, api, body):
    before = Session.objects.get(pk=session_id).expires_at

    response = api.post(f"/sessions/{session_id}/extend", body, format="json")

    assert response.status_code == 400
    assert Session.objects.get(pk=session_id).expires_at == before


def test_it_answers_404_and_405_for_extend(api, session_id):
    assert api.post(f"/sessions/{'b' * 32}/extend", {}, format="json").status_code == 404
    assert api.get(f"/sessions/{session_id}/extend").status_code == 405


def test_it_records_how_long_provisioning_took(session_id):
    instance = Instance.objects.get(session_id=session_id)

    assert instance.attempts == 1
    assert instance.provision_seconds is not None and instance.provision_seconds >= 0
