"""POST /sessions/{id}/exec: a command in the instance, its output streamed or in one answer."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from sessions_app.backends.base import ExecExit, ExecOutput
from sessions_app.models import Instance, Session

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume")]


def container(fake_engine, session_id: str):
    return fake_engine.containers[f"playground-{session_id}"]


def lines(response) -> list[dict]:
    assert response["Content-Type"] == "application/x-ndjson"
    return [json.loads(line) for line in b"".join(response).splitlines()]


def test_it_streams_a_commands_output_then_its_exit_code(session_id, api, fake_engine):
    container(fake_engine, session_id).commands = lambda cmd, stdin: [
        ExecOutput("stdout", b"out\n"),
        ExecOutput("stderr", b"err\n"),
        ExecExit(exit_code=7, timed_out=False),
    ]

    response = api.post(f"/sessions/{session_id}/exec", {"cmd": ["sh", "-c", "exit 7"]}, format="json")

    assert response.status_code == 200
    assert lines(response) == [
        {"stream": "stdout", "data": "out\n"},
        {"stream": "stderr", "data": "err\n"},
        {"exit_code": 7, "timed_out": False},
    ]
    assert container(fake_engine, session_id).ran == [["sh", "-c", "exit 7"]]


def test_it_answers_once_with_wait(session_id, api, fake_engine):
    response = api.post(f"/sessions/{session_id}/exec?wait=1", {"cmd": ["cat"], "stdin": "héllo"}, format="json")

    assert response.status_code == 200
    assert response.json() == {
        "stdout": "héllo",
        "stderr": "",
        "exit_code": 0,
        "timed_out": False,
        "truncated": False,
    }


def test_it_joins_characters_split_between_pieces_of_output(session_id, api, fake_engine):
    encoded = "é".encode()
    container(fake_engine, session_id).commands = lambda cmd, stdin: [
        ExecOutput("stdout", encoded[:1]),
        ExecOutput("stdout", encoded[1:] + b"\xff"),
        ExecExit(exit_code=0, timed_out=False),
    ]

    response = api.post(f"/sessions/{session_id}/exec?wait=1", {"cmd": ["printf", "x"]}, format="json")

    assert response.json()["stdout"] == "é\ufffd"


def test_it_says_when_the_command_ran_out_of_time(session_id, api, fake_engine):
    container(fake_engine, session_id).commands = lambda cmd, stdin: [ExecExit(exit_code=137, timed_out=True)]

    response = api.post(f"/sessions/{session_id}/exec?wait=1", {"cmd": ["sleep", "9"], "timeout": 1}, format="json")

    assert response.json()["timed_out"] is True
    assert response.json()["exit_code"] == 137


def test_it_stops_reading_past_the_output_limit(session_id, api, fake_engine, settings):
    from sessions_app.services.commands import RECORD_COST

    settings.PLAYGROUND_EXEC_OUTPUT_MAX = 2 * (5 + RECORD_COST)  # two pieces of 5 bytes, each in a record
    read = []

    def flood(cmd, stdin):
        for number in range(100):
            read.append(number)
            yield ExecOutput("stdout", b"12345")
        yield ExecExit(exit_code=0, timed_out=False)

    container(fake_engine, session_id).commands = flood

    streamed = lines(api.post(f"/sessions/{session_id}/exec", {"cmd": ["yes"]}, format="json"))
    waited = api.post(f"/sessions/{session_id}/exec?wait=1", {"cmd": ["yes"]}, format="json").json()

    assert streamed == [{"stream": "stdout", "data": "12345"}] * 2 + [{"exit_code": None, "truncated": True}]
    assert waited == {"stdout": "1234512345", "stderr": "", "exit_code": None, "timed_out": False, "truncated": True}
    assert len(read) == 6  # three pieces a command, the third not passed on


def test_a_command_writing_a_byte_at_a_time_is_cut_off_as_soon(session_id, api, fake_engine, settings):
    from sessions_app.services.commands import RECORD_COST

    settings.PLAYGROUND_EXEC_OUTPUT_MAX = 100 * (1 + RECORD_COST)
    container(fake_engine, session_id).commands = lambda cmd, stdin: (
        *(ExecOutput("stdout", b"y") for _ in range(10_000)),
        ExecExit(exit_code=0, timed_out=False),
    )

    waited = api.post(f"/sessions/{session_id}/exec?wait=1", {"cmd": ["yes"]}, format="json").json()

    assert waited["truncated"] is True
    assert waited["stdout"] == "y" * 100


def test_a_read_write_share_may_run_commands_and_a_read_only_one_may_not(session_id, api, fake_engine):
    read_write = api.post(f"/sessions/{session_id}/shares", {"mode": "read-write"}, format="json").json()
    read_only = api.post(f"/sessions/{session_id}/shares", {"mode": "read-only"}, format="json").json()

    def run_as(share) -> int:
        guest = APIClient()
        assert guest.post("/shares/redeem", {"token": share["token"]}, format="json").status_code == 200
        return guest.post(f"/sessions/{session_id}/exec?wait=1", {"cmd": ["true"]}, format="json").status_code

    assert run_as(read_write) == 200
    assert run_as(read_only) == 403
    assert container(fake_engine, session_id).ran == [["true"]]


def test_anyone_else_gets_the_same_404_as_for_an_unknown_session(session_id, fake_engine):
    stranger = APIClient()

    mine = stranger.post(f"/sessions/{session_id}/exec", {"cmd": ["id"]}, format="json")
    unknown = stranger.post("/sessions/nope/exec", {"cmd": ["id"]}, format="json")

    assert mine.status_code == unknown.status_code == 404
    assert mine.json() == unknown.json()
    assert container(fake_engine, session_id).ran == []


def test_it_refuses_while_the_instance_does_not_run(session_id, api, fake_engine):
    Instance.objects.filter(session_id=session_id).update(status=Instance.Status.PROVISIONING)

    response = api.post(f"/sessions/{session_id}/exec", {"cmd": ["id"]}, format="json")

    assert response.status_code == 409
    assert response.json()["error"] == "instance_not_running"


def test_it_refuses_in_a_session_past_its_end_not_yet_reaped(session_id, api, fake_engine):
    Session.objects.filter(pk=session_id).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = api.post(f"/sessions/{session_id}/exec", {"cmd": ["id"]}, format="json")

    assert response.status_code == 409
    assert response.json()["error"] == "session_closed"
    assert container(fake_engine, session_id).ran == []


def test_a_command_never_outlives_its_session(session_id, api, fake_engine, monkeypatch):
    from sessions_app.backends.fake import FakeBackend

    given = []

    def exec_(self, instance, cmd, *, stdin, timeout):
        given.append(timeout)
        yield ExecExit(exit_code=0, timed_out=False)

    monkeypatch.setattr(FakeBackend, "exec", exec_)
    Session.objects.filter(pk=session_id).update(expires_at=timezone.now() + timedelta(seconds=30))

    api.post(f"/sessions/{session_id}/exec?wait=1", {"cmd": ["sleep", "600"], "timeout": 600}, format="json")

    assert 28 <= given[0] <= 30


def test_it_refuses_in_a_closed_session(session_id, api, fake_engine):
    Session.objects.filter(pk=session_id).update(status=Session.Status.CLOSED)

    response = api.post(f"/sessions/{session_id}/exec", {"cmd": ["id"]}, format="json")

    assert response.status_code == 409
    assert response.json()["error"] == "session_closed"


def test_it_answers_409_when_the_instance_stops_answering_midway(session_id, api, fake_engine):
    from sessions_app.backends.base import AttachError

    def breaks(cmd, stdin):
        yield ExecOutput("stdout", b"partial")
        raise AttachError("the engine went away")

    container(fake_engine, session_id).commands = breaks

    waited = api.post(f"/sessions/{session_id}/exec?wait=1", {"cmd": ["id"]}, format="json")
    streamed = lines(api.post(f"/sessions/{session_id}/exec", {"cmd": ["id"]}, format="json"))

    assert waited.status_code == 409
    assert waited.json()["error"] == "instance_not_running"
    assert streamed[0] == {"stream": "stdout", "data": "partial"}
    assert streamed[-1]["error"] == "exec_failed"
    assert streamed[-1]["exit_code"] is None


@pytest.mark.parametrize(
    ("body", "query"),
    [
        ({}, ""),
        ({"cmd": []}, ""),
        ({"cmd": "id"}, ""),
        ({"cmd": ["id", 3]}, ""),
        ({"cmd": ["a\x00b"]}, ""),
        ({"cmd": ["id"], "timeout": 0}, ""),
        ({"cmd": ["id"], "timeout": 601}, ""),
        ({"cmd": ["id"], "timeout": "9"}, ""),
        ({"cmd": ["id"], "stdin": 5}, ""),
        ({"cmd": ["id"], "user": "root"}, ""),
        ({"cmd": ["id"]}, "?wait=yes"),
        ({"cmd": ["id"]}, "?wait=true"),
    ],
)
def test_it_refuses_bad_input_with_400_and_runs_nothing(session_id, api, fake_engine, body, query):
    response = api.post(f"/sessions/{session_id}/exec{query}", body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["error"] in ("invalid_request", "malformed_request")
    assert container(fake_engine, session_id).ran == []


def test_a_process_runs_so_many_commands_at_once_and_frees_their_places(session_id, api, fake_engine, monkeypatch):
    import threading

    from sessions_app.services import commands

    monkeypatch.setattr(commands, "_places", threading.BoundedSemaphore(1))
    streaming = api.post(f"/sessions/{session_id}/exec", {"cmd": ["cat"], "stdin": "x"}, format="json")

    refused = api.post(f"/sessions/{session_id}/exec?wait=1", {"cmd": ["id"]}, format="json")
    assert refused.status_code == 503
    assert refused.json()["error"] == "exec_busy"
    assert refused["Retry-After"] == "5"

    assert lines(streaming)[-1] == {"exit_code": 0, "timed_out": False}  # read to its end: its place is free
    assert api.post(f"/sessions/{session_id}/exec?wait=1", {"cmd": ["id"]}, format="json").status_code == 200
    assert api.post(f"/sessions/{session_id}/exec?wait=1", {"cmd": ["id"]}, format="json").status_code == 200


def test_one_session_runs_so_many_commands_at_once(session_id, open_session, api, fake_engine, settings):
    settings.PLAYGROUND_EXEC_PER_SESSION = 2
    other = open_session()
    held = [api.post(f"/sessions/{session_id}/exec", {"cmd": ["cat"]}, format="json") for _ in range(2)]

    refused = api.post(f"/sessions/{session_id}/exec?wait=1", {"cmd": ["id"]}, format="json")
    elsewhere = api.post(f"/sessions/{other}/exec?wait=1", {"cmd": ["id"]}, format="json")

    assert refused.status_code == 429
    assert refused.json()["error"] == "too_many_commands"
    assert refused["Retry-After"] == "5"
    assert elsewhere.status_code == 200
    for response in held:
        lines(response)
    assert api.post(f"/sessions/{session_id}/exec?wait=1", {"cmd": ["id"]}, format="json").status_code == 200


@pytest.mark.asyncio
async def test_a_client_gone_mid_read_frees_the_place_once_the_read_under_way_returns():
    import asyncio
    import threading

    from sessions_app.services.commands import Holding
    from sessions_app.views import _ndjson

    more, released = threading.Event(), threading.Event()

    def records():
        yield {"stream": "stdout", "data": "a"}
        more.wait(10)  # a command that writes nothing for a while
        yield {"stream": "stdout", "data": "b"}

    stream = _ndjson(Holding(records(), released.set))
    assert await anext(stream) == b'{"stream": "stdout", "data": "a"}\n'
    waiting = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.2)  # a reader thread is inside next() now

    waiting.cancel()  # the client hung up: Django cancels the response
    with pytest.raises(asyncio.CancelledError):
        await waiting

    assert not released.is_set()  # its thread is still busy: so is its place
    more.set()
    assert await asyncio.to_thread(released.wait, 5)
