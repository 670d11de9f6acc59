"""POST /sessions: a session and its instance, at once."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from sessions_app.models import Instance, Session
from tests.factories import make_playground

pytestmark = pytest.mark.django_db


def create(api, run_on_commit, body=None, **kwargs):
    return run_on_commit(
        api.post, "/sessions", body if body is not None else {"playground_id": "default"}, format="json", **kwargs
    )


def test_it_creates_a_session_with_a_running_instance(api, run_on_commit, fake_engine):
    response = create(api, run_on_commit)

    assert response.status_code == 201
    body = response.json()
    session_id = body["session_id"]
    assert len(session_id) >= 32
    assert body["hostname"] == "testserver"
    assert body["status"] == "open"
    assert body["instance"]["name"] == "node1"
    assert body["instance"]["hostname"] == "node1"
    assert body["instance"]["image"] == "playground-dind:latest"
    assert body["ws_url"] == f"ws://testserver/sessions/{session_id}/ws"
    assert body["terminal_url"] == f"http://testserver/p/{session_id}"
    expires = parse_datetime(body["expires_at"])
    assert timedelta(hours=1, minutes=59) < expires - timezone.now() <= timedelta(hours=2)
    # The provisioning task ran after commit and the fake engine holds the container.
    assert list(fake_engine.containers) == [f"playground-{session_id}"]
    assert Instance.objects.get(session_id=session_id).status == "running"


def test_it_answers_before_provisioning_has_run(api):
    # Without the commit hooks executing, the response shows what a client
    # sees at once: an instance that is still pending.
    response = api.post("/sessions", {"playground_id": "default"}, format="json")

    assert response.status_code == 201
    assert response.json()["instance"]["status"] == "pending"


def test_it_accepts_a_trailing_slash(api, run_on_commit):
    response = run_on_commit(api.post, "/sessions/", {"playground_id": "default"}, format="json")

    assert response.status_code == 201


def test_it_uses_the_default_playground_when_none_is_named(api, run_on_commit):
    response = create(api, run_on_commit, {})

    assert response.status_code == 201
    assert response.json()["playground_id"] == "default"


def test_it_gives_a_chosen_duration_and_allowed_image(api, run_on_commit):
    make_playground(allowed_images=["playground-dind:other"])

    response = create(
        api, run_on_commit, {"playground_id": "default", "image": "playground-dind:other", "duration": 600}
    )

    assert response.status_code == 201
    body = response.json()
    assert body["instance"]["image"] == "playground-dind:other"
    remaining = parse_datetime(body["expires_at"]) - timezone.now()
    assert timedelta(minutes=9) < remaining <= timedelta(minutes=10)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"playground_id": "nope"}, "playground_not_allowed"),
        ({"playground_id": "default", "image": "franela/dind"}, "image_not_allowed"),
        ({"playground_id": "default", "duration": 5 * 3600}, "invalid_request"),
        ({"playground_id": "default", "duration": -5}, "invalid_request"),
        ({"playground_id": "default", "duration": "long"}, "invalid_request"),
        ({"playground_id": "default", "privileged": True}, "invalid_request"),
        ({"playground_id": ["default"]}, "invalid_request"),
        (["default"], "invalid_request"),
    ],
)
def test_it_refuses_bad_input_and_creates_nothing(api, run_on_commit, fake_engine, body, reason):
    response = create(api, run_on_commit, body)

    assert response.status_code == 400
    assert response.json()["error"] == reason
    assert response.json()["message"]
    assert Session.objects.count() == 0
    assert Instance.objects.count() == 0
    assert fake_engine.calls == []


def test_it_refuses_malformed_json(api):
    response = api.post("/sessions", "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"] == "malformed_request"
    assert Session.objects.count() == 0


def test_it_refuses_a_body_that_is_not_json(api):
    response = api.post("/sessions", "playground_id=default", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"
    assert Session.objects.count() == 0


@pytest.mark.parametrize("method", ["put", "patch"])
def test_it_refuses_other_methods_on_the_collection(api, method):
    response = getattr(api, method)("/sessions", {}, format="json")

    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_it_refuses_an_oversized_body_with_413(api):
    response = api.post("/sessions", '{"playground_id": "' + "x" * 1_100_000 + '"}', content_type="application/json")

    assert response.status_code == 413
    assert response.json()["error"] == "request_too_large"
    assert Session.objects.count() == 0


def test_it_refuses_json_nested_too_deep_with_400(api):
    response = api.post("/sessions", "[" * 100_000 + "]" * 100_000, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"] == "malformed_request"
    assert Session.objects.count() == 0
