"""The terminal WebSocket on the real routing, without Docker: status events,
close codes, origin rules and control-message validation."""

import asyncio
import contextlib
import dataclasses
import json
import threading
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from playground.asgi import application
from sessions_app import services
from sessions_app.backends.base import AttachError
from sessions_app.backends.fake import FakeContainer, StatsFailingBackend
from sessions_app.messages import ENDINGS
from sessions_app.models import Instance
from terminals.consumers import READ_ONLY_MESSAGE
from terminals.hub import registry
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fake_backend(use_backend):
    """Tasks run in-process on the fake backend; no Docker here."""


SAME_ORIGIN = [(b"host", b"testserver"), (b"origin", b"http://testserver")]


# The access token of each session a test made: its sockets present it.
TOKENS: dict[str, str] = {}


@database_sync_to_async
def make_session(*, instance_status="provisioning", **fields) -> str:
    session_id = factories.make_session(instance_status=instance_status, access_token="a-token", **fields).pk
    TOKENS[session_id] = "a-token"
    return session_id


OPENED: list[WebsocketCommunicator] = []


@pytest.fixture(autouse=True)
async def _disconnect_every_socket():
    """End every consumer inside its test's event loop.

    A consumer left running (one that closed its socket still waits for the
    disconnect) would be cancelled only as the loop closes, in the middle of
    its database or channel-layer calls.
    """
    yield
    while OPENED:
        with contextlib.suppress(Exception):
            await OPENED.pop().disconnect(timeout=2)
    # Hubs linger for a reconnect; their tasks must not outlive this loop.
    await registry.stop_all()


def communicator(session_id: str, headers=SAME_ORIGIN, path: str | None = None, token=None) -> WebsocketCommunicator:
    """A socket to a session's terminal, with its owner's token unless another is given ("" for none)."""
    token = TOKENS.get(session_id, "") if token is None else token
    if token:
        headers = [*headers, (b"authorization", f"Bearer {token}".encode())]
    OPENED.append(WebsocketCommunicator(application, path or f"/sessions/{session_id}/ws", headers=headers))
    return OPENED[-1]


async def receive_json(ws: WebsocketCommunicator) -> dict:
    return json.loads(await ws.receive_from(timeout=3))


async def test_it_closes_with_4404_for_an_unknown_session():
    ws = communicator("0" * 32)

    connected, _ = await ws.connect()

    assert connected
    assert await ws.receive_output(timeout=3) == {"type": "websocket.close", "code": 4404}


async def test_it_reports_a_closed_session_and_closes_with_4410():
    ws = communicator(await make_session(status="closed"))

    await ws.connect()

    assert await receive_json(ws) == {"type": "status", "status": "closed", "message": ENDINGS["closed"].message}
    assert (await ws.receive_output(timeout=3))["code"] == 4410


async def test_it_reports_an_expired_session_and_closes_with_4410():
    ws = communicator(await make_session(expires_in=timedelta(seconds=-1)))

    await ws.connect()

    assert (await receive_json(ws))["status"] == "expired"
    assert (await ws.receive_output(timeout=3))["code"] == 4410


async def test_it_reports_provisioning_then_the_failure_and_closes_with_4500():
    session_id = await make_session(instance_status="provisioning")
    ws = communicator(session_id, path=f"/sessions/{session_id}/ws/")
    connected, _ = await ws.connect()
    assert connected

    first = await receive_json(ws)
    assert first["status"] == "provisioning"
    assert first["instance"]["name"] == "node1"

    await database_sync_to_async(Instance.objects.filter(session_id=session_id).update)(
        status="failed", error="The image is not available on the Docker host."
    )

    failed = await receive_json(ws)
    assert failed == {
        "type": "status",
        "status": "failed",
        "message": "The image is not available on the Docker host.",
    }
    assert (await ws.receive_output(timeout=3))["code"] == 4500


async def test_it_tells_connected_viewers_when_the_session_is_closed():
    session_id = await make_session(instance_status="pending")
    ws = communicator(session_id)
    await ws.connect()
    assert (await receive_json(ws))["status"] == "pending"

    await database_sync_to_async(services.session_close)(session_id=session_id)

    assert await receive_json(ws) == {"type": "status", "status": "closed", "message": ENDINGS["closed"].message}
    assert (await ws.receive_output(timeout=3))["code"] == 4410


async def test_it_refuses_a_page_from_a_foreign_origin():
    ws = communicator(await make_session(), headers=[(b"host", b"testserver"), (b"origin", b"http://evil.example")])

    connected, _ = await ws.connect()

    assert not connected


async def test_it_refuses_an_origin_that_only_shares_the_host_name():
    ws = communicator(await make_session(), headers=[(b"host", b"testserver"), (b"origin", b"http://testserver:81")])

    connected, _ = await ws.connect()

    assert not connected


async def test_it_accepts_a_client_that_sends_no_origin():
    ws = communicator(await make_session(instance_status="pending"), headers=[(b"host", b"testserver")])

    connected, _ = await ws.connect()

    assert connected
    assert (await receive_json(ws))["status"] == "pending"
    await ws.disconnect()


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        ("not json", "Control messages are JSON objects."),
        ("[" * 30_000 + "]" * 30_000, "Control messages are JSON objects."),
        ("[1, 2]", 'Control messages are JSON objects with a "type".'),
        ('{"type": "dance"}', "Unknown control message type 'dance'."),
        ('{"type": "resize", "cols": 0, "rows": 24}', "resize needs whole numbers cols and rows from 1 to 1000."),
        ('{"type": "resize", "cols": "80", "rows": 24}', "resize needs whole numbers cols and rows from 1 to 1000."),
        ('{"type": "resize", "cols": 80, "rows": 100000}', "resize needs whole numbers cols and rows from 1 to 1000."),
        ('{"type": "input", "data": 5}', 'input needs a string "data".'),
        ('{"type": "ack", "bytes": -1}', 'ack needs a whole number of "bytes".'),
        ('{"type": "stats"}', 'stats needs "watch": true or false.'),
        ('{"type": "stats", "watch": 1}', 'stats needs "watch": true or false.'),
    ],
)
async def test_it_answers_a_malformed_control_message_with_an_error(frame, error):
    ws = communicator(await make_session(instance_status="pending"))
    await ws.connect()
    await receive_json(ws)

    await ws.send_to(text_data=frame)

    assert await receive_json(ws) == {"type": "error", "message": error}
    await ws.disconnect()


async def test_it_accepts_valid_control_messages_silently():
    ws = communicator(await make_session(instance_status="pending"))
    await ws.connect()
    await receive_json(ws)

    for frame in (
        {"type": "resize", "cols": 120, "rows": 40},
        {"type": "pause"},
        {"type": "resume"},
        {"type": "ack", "bytes": 0},
        {"type": "input", "data": "ls\r"},
        {"type": "stats", "watch": True},
        {"type": "stats", "watch": False},
    ):
        await ws.send_to(text_data=json.dumps(frame))

    assert await ws.receive_nothing(timeout=0.5)
    await ws.disconnect()


async def test_it_closes_with_1009_on_an_oversized_frame():
    ws = communicator(await make_session(instance_status="pending"))
    await ws.connect()
    await receive_json(ws)

    await ws.send_to(bytes_data=b"x" * (1024 * 1024 + 1))

    assert (await ws.receive_output(timeout=3))["code"] == 1009


@pytest.mark.parametrize("session_id", ["%00", "..", "a" * 65])
async def test_it_closes_with_4404_for_a_malformed_session_id(session_id):
    ws = communicator(session_id)

    connected, _ = await ws.connect()

    assert connected
    assert await ws.receive_output(timeout=3) == {"type": "websocket.close", "code": 4404}


async def test_it_passes_a_new_expiry_on_to_viewers():
    session_id = await make_session(instance_status="pending")
    ws = communicator(session_id)
    await ws.connect()
    await receive_json(ws)

    extended = await database_sync_to_async(services.session_extend)(session_id=session_id)

    event = await receive_json(ws)
    assert event == {"type": "expiry", "expires_at": extended.expires_at.isoformat()}
    await ws.disconnect()


async def test_it_tells_viewers_when_the_session_expires():
    session_id = await make_session(instance_status="pending")
    ws = communicator(session_id)
    await ws.connect()
    await receive_json(ws)

    await database_sync_to_async(services.session_close)(session_id=session_id, reason="expired")

    assert await receive_json(ws) == {"type": "status", "status": "expired", "message": ENDINGS["expired"].message}
    assert (await ws.receive_output(timeout=3))["code"] == 4410


# --- The instance's TTY, on the fake backend's fake TTY --------------------------------


@database_sync_to_async
def open_running_session() -> str:
    """A session opened as the API opens it; its instance runs on the fake backend."""
    factories.make_playground()
    opened = services.session_create(playground_id="default")
    TOKENS[opened.session.pk] = opened.access_token
    return opened.session.pk


async def until(predicate, timeout: float = 3.0):
    for _ in range(int(timeout / 0.02)):
        if value := predicate():
            return value
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


async def receive_bytes_until(ws: WebsocketCommunicator, marker: bytes) -> bytes:
    """Terminal output received until marker; control messages on the way are skipped."""
    received = b""
    while marker not in received:
        output = await ws.receive_output(timeout=3)
        assert output["type"] == "websocket.send", output
        received += output.get("bytes") or b""
    return received


async def attached(session_id: str, fake_engine) -> tuple[WebsocketCommunicator, FakeContainer]:
    """A socket whose viewer is attached to the running instance's TTY, and that instance."""
    ws = communicator(session_id)
    await ws.connect()
    assert (await receive_json(ws))["status"] == "running"
    container = fake_engine.containers[f"playground-{session_id}"]
    await until(lambda: container.attachments)
    return ws, container


async def test_it_pumps_the_instances_tty_both_ways(fake_engine):
    ws, container = await attached(await open_running_session(), fake_engine)

    container.output(b"learner@node1:~$ ")
    assert await receive_bytes_until(ws, b"$ ") == b"learner@node1:~$ "
    await ws.send_to(bytes_data=b"docker ps\r")

    assert await receive_bytes_until(ws, b"docker ps\r") == b"docker ps\r"  # the TTY's echo
    assert container.typed == b"docker ps\r"
    await ws.disconnect()


async def test_keystrokes_do_not_wait_for_djangos_thread_for_sync_code(fake_engine):
    ws, container = await attached(await open_running_session(), fake_engine)
    busy, release = threading.Event(), threading.Event()

    def hold_the_thread() -> None:  # as a database call waiting for a connection would
        busy.set()
        release.wait(10)

    holder = asyncio.ensure_future(sync_to_async(hold_the_thread)())
    try:
        await until(busy.is_set)
        await ws.send_to(bytes_data=b"docker ps\r")

        assert await until(lambda: container.typed == b"docker ps\r")
    finally:
        release.set()
        await holder
    await ws.disconnect()


async def test_it_sizes_the_tty_to_the_smallest_viewer(fake_engine):
    session_id = await open_running_session()
    wide, tall = communicator(session_id), communicator(session_id)
    for ws, (cols, rows) in ((wide, (200, 40)), (tall, (100, 60))):
        await ws.connect()
        assert (await receive_json(ws))["status"] == "running"
        await ws.send_to(text_data=json.dumps({"type": "resize", "cols": cols, "rows": rows}))
    container = fake_engine.containers[f"playground-{session_id}"]

    assert await until(lambda: container.size == (100, 40))

    await tall.disconnect()
    assert await until(lambda: container.size == (200, 40))
    await wide.disconnect()


async def test_it_replays_recent_output_to_a_viewer_who_joins_later(fake_engine):
    session_id = await open_running_session()
    first, container = await attached(session_id, fake_engine)
    container.output(b"output before you came\r\n")
    await receive_bytes_until(first, b"came\r\n")

    later = communicator(session_id)
    await later.connect()

    assert await receive_bytes_until(later, b"came\r\n") == b"output before you came\r\n"
    await first.disconnect()
    await later.disconnect()


# --- Who may connect -------------------------------------------------------------------


@database_sync_to_async
def share_of(session_id: str, mode: str) -> tuple[str, str]:
    created = services.share_create(session_id=session_id, mode=mode)
    return created.share.pk, created.token


async def test_it_answers_a_socket_without_the_owners_credential_as_for_no_session():
    session_id = await make_session(instance_status="pending")

    for token in ("", "not-the-token"):
        ws = communicator(session_id, token=token)
        connected, _ = await ws.connect()
        assert connected
        assert await ws.receive_output(timeout=3) == {"type": "websocket.close", "code": 4404}


async def test_it_lets_a_read_only_share_watch_without_typing_or_resizing(fake_engine):
    session_id = await open_running_session()
    owner, container = await attached(session_id, fake_engine)
    await owner.send_to(text_data=json.dumps({"type": "resize", "cols": 100, "rows": 30}))
    await until(lambda: container.size == (100, 30))
    _, token = await share_of(session_id, "read-only")
    watcher = communicator(session_id, token=token)
    await watcher.connect()
    assert (await receive_json(watcher))["status"] == "running"
    await until(lambda: len(container.attachments) >= 1)

    await watcher.send_to(text_data=json.dumps({"type": "resize", "cols": 40, "rows": 10}))
    await watcher.send_to(bytes_data=b"rm -rf ~\r")
    container.output(b"visible to all\r\n")

    events, output = [], b""
    while b"to all\r\n" not in output or not events:
        frame = await watcher.receive_output(timeout=3)
        if frame.get("text"):
            events.append(json.loads(frame["text"]))
        output += frame.get("bytes") or b""
    assert events == [{"type": "error", "message": READ_ONLY_MESSAGE}]
    assert output.endswith(b"visible to all\r\n")
    await asyncio.sleep(0.3)  # time enough for a resize to be applied, were it taken
    assert container.size == (100, 30)
    assert container.typed == b""


async def test_it_lets_a_read_write_share_type(fake_engine):
    session_id = await open_running_session()
    _, token = await share_of(session_id, "read-write")
    ws = communicator(session_id, token=token)
    await ws.connect()
    assert (await receive_json(ws))["status"] == "running"
    container = fake_engine.containers[f"playground-{session_id}"]
    await until(lambda: container.attachments)

    await ws.send_to(bytes_data=b"ls\r")

    assert await receive_bytes_until(ws, b"ls\r") == b"ls\r"
    assert container.typed == b"ls\r"


async def test_it_closes_the_sockets_of_a_share_at_once_when_it_is_revoked(fake_engine):
    session_id = await open_running_session()
    share_id, token = await share_of(session_id, "read-only")
    ws = communicator(session_id, token=token)
    await ws.connect()
    assert (await receive_json(ws))["status"] == "running"

    await database_sync_to_async(services.share_revoke)(session_id=session_id, share_id=share_id)

    closing = await receive_json(ws)
    assert closing == {"type": "error", "message": ENDINGS["access_ended"].message}
    assert await ws.receive_output(timeout=1) == {"type": "websocket.close", "code": 4403}


async def test_it_refuses_a_host_that_is_not_this_sites():
    session_id = await make_session(instance_status="pending")
    # A page of a name that the attacker made resolve to this server: same-origin to itself.
    rebound = [(b"host", b"attacker.example"), (b"origin", b"http://attacker.example")]

    connected, _ = await communicator(session_id, headers=rebound).connect()

    assert not connected


async def test_it_caps_the_terminals_one_client_keeps_open(settings):
    settings.PLAYGROUND_MAX_TERMINALS_PER_CLIENT = 2
    session_id = await make_session(instance_status="pending")
    first, second, third = (communicator(session_id) for _ in range(3))
    for ws in (first, second):
        await ws.connect()
        assert (await receive_json(ws))["status"] == "pending"

    await third.connect()

    assert await third.receive_output(timeout=3) == {"type": "websocket.close", "code": 4429}
    await first.disconnect()
    again = communicator(session_id)
    await again.connect()
    assert (await receive_json(again))["status"] == "pending"


# --- Nothing typed is lost ------------------------------------------------------------------


async def test_it_keeps_what_is_typed_before_the_shell_is_attached(fake_engine):
    session_id = await make_session(instance_status="pending")
    ws = communicator(session_id)
    await ws.connect()
    # Typed the instant the socket opens, while the instance is still starting.
    await ws.send_to(bytes_data=b"echo hi")
    await ws.send_to(text_data=json.dumps({"type": "input", "data": "-there\r"}))
    assert (await receive_json(ws))["status"] == "pending"

    await database_sync_to_async(services.instance_provision)(
        instance_id=await database_sync_to_async(lambda: Instance.objects.get(session_id=session_id).pk)()
    )

    container = await until(lambda: fake_engine.containers.get(f"playground-{session_id}"))
    assert await until(lambda: container.typed == b"echo hi-there\r")
    await ws.send_to(bytes_data=b"ls\r")
    assert await until(lambda: container.typed == b"echo hi-there\rls\r")


async def test_it_keeps_keystrokes_while_the_terminal_is_reattached(fake_engine):
    session_id = await open_running_session()
    ws, container = await attached(session_id, fake_engine)
    container.stop()  # the instance restarts (its attachments end) ...

    await ws.send_to(bytes_data=b"typed meanwhile\r")
    container.running = True  # ... and is back

    assert await until(lambda: container.typed == b"typed meanwhile\r", timeout=5)


async def test_it_replays_the_scrollback_after_the_web_process_restarts(fake_engine, monkeypatch):
    monkeypatch.setattr("terminals.hub.SCROLLBACK_SAVE_EVERY", 0.05)
    session_id = await open_running_session()
    first, container = await attached(session_id, fake_engine)
    container.output(b"before the restart\r\n")
    await receive_bytes_until(first, b"restart\r\n")
    await asyncio.sleep(0.3)  # the hub keeps a copy in the cache meanwhile

    # What a restart of the web process leaves: no hub, and the page reconnects.
    await first.disconnect()
    await registry.stop_all()
    again = communicator(session_id)
    await again.connect()

    assert await receive_bytes_until(again, b"restart\r\n") == b"before the restart\r\n"


# --- Live stats, while a viewer wants them -----------------------------------------------

STATS_EVERY = 0.1


@pytest.fixture
def stats_every(settings):
    settings.PLAYGROUND_STATS_EVERY = STATS_EVERY


async def stats_events(ws: WebsocketCommunicator, count: int) -> list[dict]:
    """The next `count` stats events; terminal output on the way is skipped."""
    events = []
    while len(events) < count:
        output = await ws.receive_output(timeout=3)
        assert output["type"] == "websocket.send", output
        if output.get("text") and (event := json.loads(output["text"]))["type"] == "stats":
            events.append(event)
    return events


def watch_stats(on: bool = True) -> str:
    return json.dumps({"type": "stats", "watch": on})


async def test_it_sends_the_instances_stats_to_a_viewer_who_asks(fake_engine, stats_every):
    ws, container = await attached(await open_running_session(), fake_engine)

    await ws.send_to(text_data=watch_stats())

    first, second = await stats_events(ws, 2)
    assert first == {"type": "stats", **dataclasses.asdict(container.stats)}
    assert second == first
    await ws.disconnect()


async def test_it_measures_nothing_while_no_viewer_wants_stats(fake_engine, stats_every):
    ws, container = await attached(await open_running_session(), fake_engine)

    await asyncio.sleep(5 * STATS_EVERY)
    assert container.measures == 0
    assert await ws.receive_nothing(timeout=0.2)

    await ws.send_to(text_data=watch_stats())
    await stats_events(ws, 1)
    await ws.send_to(text_data=watch_stats(False))
    await asyncio.sleep(2 * STATS_EVERY)  # a measure under way may still arrive
    while not await ws.receive_nothing(timeout=0.05):
        await ws.receive_output()
    stopped_at = container.measures

    await asyncio.sleep(5 * STATS_EVERY)
    assert container.measures == stopped_at
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()


async def test_it_stops_measuring_when_the_last_viewer_who_wanted_stats_leaves(fake_engine, stats_every):
    session_id = await open_running_session()
    watcher, container = await attached(session_id, fake_engine)
    other, _ = await attached(session_id, fake_engine)
    await watcher.send_to(text_data=watch_stats())
    await stats_events(watcher, 1)

    await watcher.disconnect()
    await asyncio.sleep(2 * STATS_EVERY)
    left_at = container.measures

    await asyncio.sleep(5 * STATS_EVERY)
    assert container.measures == left_at
    assert await other.receive_nothing(timeout=0.2)  # the other viewer never asked
    await other.disconnect()


async def test_viewers_of_one_session_share_one_measure_a_period(fake_engine, stats_every):
    session_id = await open_running_session()
    first, container = await attached(session_id, fake_engine)
    second, _ = await attached(session_id, fake_engine)
    started = asyncio.get_running_loop().time()

    await first.send_to(text_data=watch_stats())
    await second.send_to(text_data=watch_stats())
    await stats_events(first, 8)
    await stats_events(second, 8)

    elapsed = asyncio.get_running_loop().time() - started
    assert container.measures <= elapsed / STATS_EVERY + 1
    await first.disconnect()
    await second.disconnect()


async def test_a_viewer_who_folds_and_unfolds_the_panel_cannot_make_it_measure_faster(fake_engine, stats_every):
    ws, container = await attached(await open_running_session(), fake_engine)
    started = asyncio.get_running_loop().time()

    for _ in range(20):
        await ws.send_to(text_data=watch_stats())
        await asyncio.sleep(STATS_EVERY / 10)
        await ws.send_to(text_data=watch_stats(False))

    elapsed = asyncio.get_running_loop().time() - started
    assert 1 <= container.measures <= elapsed / STATS_EVERY + 1
    await ws.disconnect()


@pytest.mark.parametrize("failure", [AttachError("stats timed out"), KeyError("cpu_stats")])
async def test_a_failing_measure_leaves_the_terminal_working(
    fake_engine, stats_every, use_backend, monkeypatch, failure
):
    use_backend("sessions_app.backends.fake.StatsFailingBackend")
    monkeypatch.setattr(StatsFailingBackend, "failure", failure)
    ws, container = await attached(await open_running_session(), fake_engine)

    await ws.send_to(text_data=watch_stats())
    await until(lambda: container.measures >= 3)
    await ws.send_to(bytes_data=b"still here\r")

    assert await receive_bytes_until(ws, b"still here\r") == b"still here\r"
    assert await ws.receive_nothing(timeout=2 * STATS_EVERY)  # no stats, no close
    await ws.disconnect()


# --- Ports, as they appear and go ---------------------------------------------------------


async def ports_events(ws: WebsocketCommunicator, count: int) -> list[dict]:
    events = []
    while len(events) < count:
        output = await ws.receive_output(timeout=3)
        if output.get("text") and (event := json.loads(output["text"]))["type"] == "ports":
            events.append(event)
    return events


async def test_it_tells_a_viewer_the_ports_when_they_change_and_only_then(fake_engine, settings):
    settings.PLAYGROUND_PORTS_EVERY = 0.05
    ws, container = await attached(await open_running_session(), fake_engine)
    container.listening = {8080}

    await ws.send_to(text_data=json.dumps({"type": "ports", "watch": True}))
    [first] = await ports_events(ws, 1)
    looks = container.ports_looked_up
    await asyncio.sleep(0.3)
    assert container.ports_looked_up > looks  # it keeps looking...
    assert await ws.receive_nothing(timeout=0.1)  # ...and says nothing while nothing changes
    container.listening = {8080, 3000}
    [second] = await ports_events(ws, 1)

    assert first == {"type": "ports", "ports": [8080]}
    assert second == {"type": "ports", "ports": [3000, 8080]}
    await ws.disconnect()


async def test_a_viewer_who_starts_watching_is_told_the_ports_at_once(fake_engine, settings):
    settings.PLAYGROUND_PORTS_EVERY = 0.05
    session_id = await open_running_session()
    first, container = await attached(session_id, fake_engine)
    container.listening = {8080}
    await first.send_to(text_data=json.dumps({"type": "ports", "watch": True}))
    await ports_events(first, 1)

    second, _ = await attached(session_id, fake_engine)
    await second.send_to(text_data=json.dumps({"type": "ports", "watch": True}))

    assert await ports_events(second, 1) == [{"type": "ports", "ports": [8080]}]
    await first.disconnect()
    await second.disconnect()
