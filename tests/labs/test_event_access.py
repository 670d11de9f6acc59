"""A workshop's trainer watches each seat's terminal read-only, and no one else's; attacks that must fail."""

import asyncio
import contextlib
import json

import pytest
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from rest_framework.test import APIClient

from labs import events
from labs.models import Event
from playground.asgi import application
from sessions_app.access import Access, Credentials, session_grant
from sessions_app.models import Session
from terminals.consumers import READ_ONLY_MESSAGE
from terminals.hub import registry
from tests import factories


@pytest.fixture(autouse=True)
def _fake_backend(use_backend):
    """Unit tests never touch Docker."""


def logged_in(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def workshop(trainer_name: str = "trainer", slug: str = "lab"):
    """An event run by a new trainer, and two learners' clients and sessions."""
    trainer = factories.make_user(trainer_name)
    event = factories.make_event(template=factories.make_template(slug), owner=trainer)
    learners = []
    for name in ("Ada", "Grace"):
        client = APIClient()
        response = client.post("/events/join", {"invite": event.invite_code, "name": name}, format="json")
        assert response.status_code == 201
        learners.append((client, response.json()["session_id"]))
    return trainer, event, learners


# --- Pages and the API --------------------------------------------------------------------


@pytest.mark.django_db
def test_it_gives_the_trainer_read_only_access_to_a_seats_session():
    trainer, _, [(_, session_id), _] = workshop()

    page = logged_in(trainer).get(f"/p/{session_id}")
    api = logged_in(trainer).get(f"/sessions/{session_id}")

    assert page.status_code == 200
    assert api.status_code == 200
    assert api.json()["access"] == "read-only"
    session = Session.objects.get(pk=session_id)
    assert session_grant(session, Credentials(user=trainer)).level == Access.READ_ONLY


@pytest.mark.django_db
def test_it_lets_the_trainer_neither_type_nor_close_nor_extend_a_learners_session():
    trainer, _, [(_, session_id), _] = workshop()
    trainer_api = logged_in(trainer)
    before = Session.objects.get(pk=session_id)

    attempts = [
        trainer_api.delete(f"/sessions/{session_id}"),
        trainer_api.post(f"/sessions/{session_id}/extend", {}, format="json"),
        trainer_api.post(f"/sessions/{session_id}/exec", {"cmd": ["id"]}, format="json"),
        trainer_api.post(f"/sessions/{session_id}/shares", {"mode": "read-write"}, format="json"),
        trainer_api.get(f"/sessions/{session_id}/files/list"),
        trainer_api.post(f"/sessions/{session_id}/ports", {"port": 80, "public": True}, format="json"),
        trainer_api.delete(f"/sessions/{session_id}/instances/node1"),
    ]

    assert [response.status_code for response in attempts] == [403] * len(attempts)
    assert {response.json()["error"] for response in attempts} == {"not_owner"}
    after = Session.objects.get(pk=session_id)
    assert (after.status, after.expires_at, after.public_ports) == (before.status, before.expires_at, [])
    assert not after.shares.exists()


@pytest.mark.django_db
def test_it_keeps_a_learner_out_of_another_learners_session():
    _, _, [(ada, ada_session), (grace, grace_session)] = workshop()

    for client, other in ((ada, grace_session), (grace, ada_session)):
        assert client.get(f"/p/{other}").status_code == 404
        assert client.get(f"/sessions/{other}").status_code == 404
        assert client.delete(f"/sessions/{other}").status_code == 404
    assert set(Session.objects.values_list("status", flat=True)) == {"open"}


@pytest.mark.django_db
def test_it_keeps_the_trainer_of_another_workshop_out():
    _, _, [(_, session_id), _] = workshop()
    other_trainer, _, _ = workshop("other-trainer", "other-lab")

    assert logged_in(other_trainer).get(f"/p/{session_id}").status_code == 404
    assert logged_in(other_trainer).get(f"/sessions/{session_id}").status_code == 404


@pytest.mark.django_db
def test_it_gives_the_trainer_nothing_on_sessions_outside_their_workshop():
    trainer, _, _ = workshop()
    plain = factories.make_session()

    assert logged_in(trainer).get(f"/p/{plain.pk}").status_code == 404
    assert session_grant(plain, Credentials(user=trainer)).level == Access.NONE


@pytest.mark.django_db
def test_it_ends_the_trainers_view_when_the_event_changes_hands():
    trainer, event, [(_, session_id), _] = workshop()
    Event.objects.filter(pk=event.pk).update(owner=factories.make_user("successor"))

    assert logged_in(trainer).get(f"/sessions/{session_id}").status_code == 404


@pytest.mark.django_db
def test_it_still_gives_staff_everything():
    _, _, [(_, session_id), _] = workshop()
    staff = factories.make_user("admin", is_staff=True)

    assert logged_in(staff).get(f"/sessions/{session_id}").json()["access"] == "owner"


# --- The terminal's WebSocket --------------------------------------------------------------

SAME_ORIGIN = [(b"host", b"testserver"), (b"origin", b"http://testserver")]
OPENED: list[WebsocketCommunicator] = []


@pytest.fixture
def in_memory_channel_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture
async def sockets(in_memory_channel_layer):
    """Sockets to open; each is closed inside the test's event loop."""
    yield OPENED
    while OPENED:
        with contextlib.suppress(Exception):
            await OPENED.pop().disconnect(timeout=2)
    await registry.stop_all()


@database_sync_to_async
def running_workshop():
    """A workshop with a learner whose instance runs (on the fake backend), its trainer, and another trainer."""
    trainer = factories.make_user("trainer")
    event = factories.make_event(owner=trainer)
    joined = events.event_join(invite_code=event.invite_code, name="Ada", browser_key="ada's browser")
    other = factories.make_user("other-trainer")
    factories.make_event(template=event.template, owner=other)
    return joined.session.pk, trainer, other


@database_sync_to_async
def cookie_of(user) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(user)
    return (b"cookie", f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode())


def socket(session_id: str, cookie: tuple[bytes, bytes]) -> WebsocketCommunicator:
    OPENED.append(WebsocketCommunicator(application, f"/sessions/{session_id}/ws", headers=[*SAME_ORIGIN, cookie]))
    return OPENED[-1]


@pytest.mark.django_db(transaction=True)
async def test_it_lets_the_trainer_watch_a_seats_terminal_without_typing(sockets, fake_engine):
    session_id, trainer, _ = await running_workshop()
    ws = socket(session_id, await cookie_of(trainer))
    connected, _ = await ws.connect()
    assert connected
    assert json.loads(await ws.receive_from(timeout=3))["status"] == "running"
    container = fake_engine.containers[f"playground-{session_id}"]
    for _ in range(150):
        if container.attachments:
            break
        await asyncio.sleep(0.02)

    await ws.send_to(bytes_data=b"rm -rf ~\r")
    container.output(b"the learner's output\r\n")

    events_seen, output = [], b""
    while b"output\r\n" not in output or not events_seen:
        frame = await ws.receive_output(timeout=3)
        if frame.get("text"):
            events_seen.append(json.loads(frame["text"]))
        output += frame.get("bytes") or b""
    assert events_seen == [{"type": "error", "message": READ_ONLY_MESSAGE}]
    assert container.typed == b""


@pytest.mark.django_db(transaction=True)
async def test_it_shuts_the_terminal_to_the_trainer_of_another_workshop(sockets):
    session_id, _, other = await running_workshop()
    ws = socket(session_id, await cookie_of(other))

    connected, _ = await ws.connect()

    assert connected
    assert await ws.receive_output(timeout=3) == {"type": "websocket.close", "code": 4404}
