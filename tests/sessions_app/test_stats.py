"""GET /sessions/{id}/stats: what the running instance uses now."""

import dataclasses

import pytest
from rest_framework.test import APIClient

from sessions_app.backends.base import InstanceStats
from sessions_app.models import Instance

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _nothing_measured_yet(monkeypatch):
    from sessions_app.services import commands

    monkeypatch.setattr(commands, "_measured", {})


def test_it_answers_what_the_backend_measures(session_id, api, fake_engine):
    measured = fake_engine.containers[f"playground-{session_id}"].stats

    response = api.get(f"/sessions/{session_id}/stats")

    assert response.status_code == 200
    assert response.json() == dataclasses.asdict(measured)
    assert set(response.json()) == {field.name for field in dataclasses.fields(InstanceStats)}


def test_a_read_only_share_may_look(session_id, api, fake_engine):
    share = api.post(f"/sessions/{session_id}/shares", {"mode": "read-only"}, format="json").json()
    viewer = APIClient()
    viewer.post("/shares/redeem", {"token": share["token"]}, format="json")

    assert viewer.get(f"/sessions/{session_id}/stats").status_code == 200


def test_anyone_else_gets_the_same_404_as_for_an_unknown_session(session_id, fake_engine):
    stranger = APIClient()

    assert stranger.get(f"/sessions/{session_id}/stats").json() == stranger.get("/sessions/nope/stats").json()
    assert stranger.get(f"/sessions/{session_id}/stats").status_code == 404


def test_it_answers_409_while_the_instance_does_not_run(session_id, api, fake_engine):
    Instance.objects.filter(session_id=session_id).update(status=Instance.Status.PENDING)

    response = api.get(f"/sessions/{session_id}/stats")

    assert response.status_code == 409
    assert response.json()["error"] == "instance_not_running"


def test_it_answers_409_when_the_container_is_gone(session_id, api, fake_engine):
    fake_engine.containers[f"playground-{session_id}"].stop()

    response = api.get(f"/sessions/{session_id}/stats")

    assert response.status_code == 409
    assert response.json()["error"] == "instance_not_running"


def test_viewers_polling_at_once_share_one_measure(session_id, api, fake_engine, monkeypatch):
    from sessions_app.backends.fake import FakeBackend

    measures = []
    stats = FakeBackend.stats
    monkeypatch.setattr(FakeBackend, "stats", lambda self, instance: measures.append(1) or stats(self, instance))

    answers = [api.get(f"/sessions/{session_id}/stats").json() for _ in range(5)]

    assert len(measures) == 1
    assert all(answer == answers[0] for answer in answers)
