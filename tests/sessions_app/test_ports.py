"""GET and POST /sessions/{id}/ports: what the instance listens on, and which ports are public."""

import pytest
from rest_framework.test import APIClient

from sessions_app.models import Instance, Session
from sessions_app.services import ports

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _nothing_looked_at_yet():
    ports._looked.clear()


def test_it_lists_the_listening_ports_with_their_links(session_id, api, fake_engine):
    fake_engine.containers[f"playground-{session_id}"].listening = {8080, 3000}

    response = api.get(f"/sessions/{session_id}/ports")

    assert response.status_code == 200
    assert response.json() == [
        {
            "port": port,
            "public": False,
            "url": f"http://testserver/sessions/{session_id}/ports/{port}/",
            "open_url": f"http://testserver/p/{session_id}/ports/{port}",
        }
        for port in (3000, 8080)
    ]


def test_a_port_that_appears_or_goes_is_seen_within_a_second(session_id, api, fake_engine, monkeypatch):
    container = fake_engine.containers[f"playground-{session_id}"]
    clock = [1000.0]
    monkeypatch.setattr(ports.time, "monotonic", lambda: clock[0])
    assert api.get(f"/sessions/{session_id}/ports").json() == []

    container.listening = {8080}
    clock[0] += 0.5
    assert api.get(f"/sessions/{session_id}/ports").json() == []  # the same look, shared
    clock[0] += ports.PORTS_FRESH
    assert [p["port"] for p in api.get(f"/sessions/{session_id}/ports").json()] == [8080]

    container.listening = set()
    clock[0] += ports.PORTS_FRESH
    assert api.get(f"/sessions/{session_id}/ports").json() == []
    assert container.ports_looked_up == 3


def test_the_owner_makes_a_port_public_and_private_again(session_id, api, fake_engine):
    fake_engine.containers[f"playground-{session_id}"].listening = {8080}

    made_public = api.post(f"/sessions/{session_id}/ports", {"port": 8080, "public": True}, format="json")
    listed = api.get(f"/sessions/{session_id}/ports").json()
    made_private = api.post(f"/sessions/{session_id}/ports", {"port": 8080, "public": False}, format="json")

    assert made_public.status_code == 200
    assert made_public.json()["public"] is True
    assert listed[0]["public"] is True
    assert made_private.json()["public"] is False
    assert Session.objects.get(pk=session_id).public_ports == []


@pytest.mark.parametrize(
    "body",
    [
        {"port": 0, "public": True},
        {"port": 65536, "public": True},
        {"port": "8080", "public": True},
        {"port": 8080, "public": "yes"},
        {"port": 8080},
        {"port": 8080, "public": True, "extra": 1},
        [],
    ],
)
def test_a_bad_body_is_a_400_and_changes_nothing(session_id, api, body):
    response = api.post(f"/sessions/{session_id}/ports", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"] in ("invalid_request", "malformed_request")
    assert Session.objects.get(pk=session_id).public_ports == []


def test_a_read_only_share_sees_the_ports_but_cannot_open_them_to_all(session_id, api, fake_engine):
    fake_engine.containers[f"playground-{session_id}"].listening = {8080}
    share = api.post(f"/sessions/{session_id}/shares", {"mode": "read-only"}, format="json").json()
    viewer = APIClient()
    viewer.post("/shares/redeem", {"token": share["token"]}, format="json")
    viewer.credentials(HTTP_X_CSRFTOKEN=viewer.get(f"/p/{session_id}").cookies["csrftoken"].value)

    assert viewer.get(f"/sessions/{session_id}/ports").status_code == 200
    refused = viewer.post(f"/sessions/{session_id}/ports", {"port": 8080, "public": True}, format="json")
    assert refused.status_code == 403
    assert Session.objects.get(pk=session_id).public_ports == []


def test_anyone_else_gets_the_same_404_as_for_an_unknown_session(session_id):
    stranger = APIClient()

    assert stranger.get(f"/sessions/{session_id}/ports").status_code == 404
    refused = stranger.post(f"/sessions/{session_id}/ports", {"port": 8080, "public": True}, format="json")
    assert refused.status_code == 404
    assert Session.objects.get(pk=session_id).public_ports == []


def test_an_instance_not_running_is_a_409(session_id, api):
    Instance.objects.filter(session_id=session_id).update(status=Instance.Status.PROVISIONING)

    response = api.get(f"/sessions/{session_id}/ports")

    assert response.status_code == 409
    assert response.json()["error"] == "instance_not_running"


def test_the_badge_link_leads_to_the_port(session_id, api, settings):
    settings.PLAYGROUND_PORTS_DOMAIN = ""
    assert api.get(f"/p/{session_id}/ports/8080").headers["location"] == f"/sessions/{session_id}/ports/8080/"

    settings.PLAYGROUND_PORTS_DOMAIN = "ports.example.org"
    location = api.get(f"/p/{session_id}/ports/8080").headers["location"]
    assert location.startswith(f"http://8080-{session_id}.ports.example.org/?playground-ticket=")

    assert APIClient().get(f"/p/{session_id}/ports/8080").status_code == 404
