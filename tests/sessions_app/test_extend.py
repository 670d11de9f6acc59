"""POST /sessions/{id}/extend: more time, up to the playground's maximum."""

from datetime import timedelta

import pytest
from django.utils import timezone

from sessions_app.models import Session

pytestmark = pytest.mark.django_db


def shift(session_id: str, **times) -> None:
    Session.objects.filter(pk=session_id).update(**times)


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
