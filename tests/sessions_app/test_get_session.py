"""GET /sessions/{id}: the session and its instance."""

import pytest

pytestmark = pytest.mark.django_db


def test_it_shows_a_session_with_its_instance(api, session_id):
    response = api.get(f"/sessions/{session_id}")

    assert response.status_code == 200
    body = response.json()
    assert body["session_id"] == session_id
    assert body["instance"]["status"] == "running"
    assert body["instance"]["ip_address"].startswith("10.0.")
    assert body["instance"]["image"] == "playground-dind:latest"


@pytest.mark.parametrize("session_id", ["0" * 32, "..", "a" * 500, "%00", "%27%3B%20DROP%20TABLE"])
def test_it_answers_404_for_an_unknown_session(api, session_id):
    response = api.get(f"/sessions/{session_id}")

    assert response.status_code == 404
    assert response.json()["error"] == "session_not_found"


def test_it_answers_json_404_for_a_path_trick(api):
    response = api.get("/sessions/../admin/")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_it_refuses_put_on_a_session(api, session_id):
    response = api.put(f"/sessions/{session_id}", {}, format="json")

    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_it_answers_a_poll_with_one_query(api, django_assert_num_queries):
    from rest_framework.test import APIClient

    opened = api.post("/sessions", {}, format="json").json()
    poller = APIClient()  # an API client, with the session's token
    poller.credentials(HTTP_AUTHORIZATION=f"Bearer {opened['access_token']}")
    polled = opened["session_id"]

    with django_assert_num_queries(1):
        response = poller.get(f"/sessions/{polled}")

    assert response.status_code == 200
