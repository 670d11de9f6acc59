"""GET and POST /sessions/{id}/instances: the seed's legacy instance routes; a second instance is refused."""

import pytest

from sessions_app.models import Instance

pytestmark = pytest.mark.django_db

CONFLICT = {
    "error": "session_already_has_instance",
    "message": "This session already has an instance. Only one instance per session is allowed.",
}


def test_it_refuses_a_second_instance_with_the_seeds_conflict(api, session_id):
    response = api.post(f"/sessions/{session_id}/instances", {"image": "franela/dind"}, format="json")

    assert response.status_code == 409
    assert response.json() == CONFLICT
    assert Instance.objects.filter(session_id=session_id).count() == 1


def test_it_refuses_a_second_instance_with_an_empty_body(api, session_id):
    response = api.post(f"/sessions/{session_id}/instances/", {}, format="json")

    assert response.status_code == 409
    assert response.json() == CONFLICT


def test_it_lists_the_one_instance(api, session_id):
    response = api.get(f"/sessions/{session_id}/instances")

    assert response.status_code == 200
    assert [instance["name"] for instance in response.json()] == ["node1"]
    assert response.json()[0]["status"] == "running"


def test_it_refuses_a_new_instance_with_a_foreign_image(api, run_on_commit, session_id):
    run_on_commit(api.delete, f"/sessions/{session_id}/instances/node1")

    response = run_on_commit(api.post, f"/sessions/{session_id}/instances", {"image": "franela/dind"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"] == "image_not_allowed"
    assert Instance.objects.filter(session_id=session_id).count() == 0


def test_it_refuses_an_instance_for_a_closed_session(api, run_on_commit, session_id):
    run_on_commit(api.delete, f"/sessions/{session_id}/instances/node1")
    run_on_commit(api.delete, f"/sessions/{session_id}")

    response = run_on_commit(api.post, f"/sessions/{session_id}/instances", {}, format="json")

    assert response.status_code == 409
    assert response.json()["error"] == "session_closed"
    assert Instance.objects.filter(session_id=session_id).count() == 0


@pytest.mark.parametrize("body", [["x"], {"image": 5}, {"image": "x", "privileged": True}])
def test_it_refuses_a_malformed_body_and_creates_nothing(api, session_id, body):
    before = list(Instance.objects.values_list("pk", flat=True))

    response = api.post(f"/sessions/{session_id}/instances", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert list(Instance.objects.values_list("pk", flat=True)) == before
