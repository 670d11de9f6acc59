import pytest

from sessions_app.models import Instance, Playground

pytestmark = pytest.mark.django_db

CONFLICT = {
    "error": "session_already_has_instance",
    "message": "This session already has an instance. Only one instance per session is allowed.",
}


@pytest.fixture
def session_id(api, run_on_commit):
    return run_on_commit(api.post, "/sessions", {"playground_id": "default"}, format="json").json()["session_id"]


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


def test_it_shows_the_instance_by_name(api, session_id):
    response = api.get(f"/sessions/{session_id}/instances/node1")

    assert response.status_code == 200
    assert response.json()["hostname"] == "node1"


def test_it_answers_404_for_an_unknown_instance_name(api, session_id):
    response = api.get(f"/sessions/{session_id}/instances/node2")

    assert response.status_code == 404
    assert response.json()["error"] == "instance_not_found"


@pytest.mark.parametrize("path", ["/instances", "/instances/node1"])
def test_it_answers_404_for_an_unknown_session(api, path):
    response = api.get(f"/sessions/{'e' * 32}{path}")

    assert response.status_code == 404
    assert response.json()["error"] == "session_not_found"


def test_it_deletes_the_instance_and_then_allows_a_new_one(api, run_on_commit, session_id, fake_engine):
    deleted = run_on_commit(api.delete, f"/sessions/{session_id}/instances/node1")

    assert deleted.status_code == 202
    assert deleted.json()["status"] == "terminating"
    assert fake_engine.containers == {}
    assert api.get(f"/sessions/{session_id}/instances").json() == []
    assert api.get(f"/sessions/{session_id}").json()["instance"] is None

    created = run_on_commit(api.post, f"/sessions/{session_id}/instances", {}, format="json")

    assert created.status_code == 201
    assert created.json()["name"] == "node1"
    assert api.get(f"/sessions/{session_id}/instances/node1").json()["status"] == "running"
    assert list(fake_engine.containers) == [f"playground-{session_id}"]


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


def test_it_refuses_wrong_methods(api, session_id):
    assert api.put(f"/sessions/{session_id}/instances", {}, format="json").status_code == 405
    response = api.post(f"/sessions/{session_id}/instances/node1", {}, format="json")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


@pytest.mark.django_db(transaction=True)
def test_it_answers_the_delete_even_when_the_teardown_finishes_first(api):
    # With real commits, the (eager) teardown deletes the row before the view answers.
    Playground.objects.get_or_create(pk="default")  # an earlier transactional test may have flushed it
    session_id = api.post("/sessions", {"playground_id": "default"}, format="json").json()["session_id"]

    deleted = api.delete(f"/sessions/{session_id}/instances/node1")

    assert deleted.status_code == 202
    assert deleted.json()["status"] == "terminating"
    assert Instance.objects.filter(session_id=session_id).count() == 0
