"""Expiry and the idle timeout (services.sessions_reap_expired), on the fake backend."""

from datetime import timedelta

import pytest
from django.utils import timezone

from sessions_app import services
from sessions_app.models import Instance, Session
from tests.factories import make_playground

pytestmark = pytest.mark.django_db


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
    make_playground(idle_timeout=timedelta(minutes=10))
    shift(session_id, last_activity_at=timezone.now() - timedelta(minutes=11))

    assert run_on_commit(services.sessions_reap_expired) == [session_id]
    assert Session.objects.get(pk=session_id).status == "expired"


def test_it_keeps_a_session_with_recent_input_despite_the_idle_timeout(session_id, run_on_commit):
    make_playground(idle_timeout=timedelta(minutes=10))
    shift(session_id, created_at=timezone.now() - timedelta(minutes=30))
    services.session_touch(session_id=session_id)

    assert run_on_commit(services.sessions_reap_expired) == []


def test_it_records_how_long_provisioning_took(session_id):
    instance = Instance.objects.get(session_id=session_id)

    assert instance.attempts == 1
    assert instance.provision_seconds is not None and instance.provision_seconds >= 0
