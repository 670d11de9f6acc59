"""The browser terminal's WebSocket on the real stack: Daphne, a worker, Redis,
PostgreSQL and a DIND instance's TTY."""

import asyncio
import json
import re

import pytest
import websockets

from tests.integration.test_sessions_on_docker import wait_until_running
from tests.support.api import api
from tests.support.terminal_client import Terminal

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

PROMPT = Terminal.PROMPT


@pytest.fixture
def session_id(platform, web, docker_client):
    response = api.post(f"{web.url}/sessions", json={"playground_id": "default"}, timeout=10)
    assert response.status_code == 201, response.text
    session_id = response.json()["session_id"]
    yield session_id
    api.delete(f"{web.url}/sessions/{session_id}", timeout=10)


async def open_terminal(web, session_id: str, **kwargs) -> Terminal:
    terminal = await Terminal.open(web.url, session_id, **kwargs)
    await terminal.wait_for_status("running", timeout=60)
    await terminal.read_until(PROMPT, timeout=20)
    return terminal


async def test_it_runs_commands_in_the_instances_shell(web, session_id):
    terminal = await open_terminal(web, session_id)

    output = await terminal.run("echo hello-$((6*7)) && hostname")

    assert b"hello-42\r\n" in output
    assert b"node1\r\n" in output
    assert b"[node1]" in terminal.output  # the prompt names the node
    await terminal.close()


async def test_it_runs_docker_against_the_inner_daemon(web, session_id):
    terminal = await open_terminal(web, session_id)

    output = await terminal.run("docker info --format 'containers={{.Containers}} driver={{.Driver}}'")

    assert re.search(rb"containers=0 driver=overlay2", output), output
    await terminal.close()


async def test_it_resizes_the_tty_to_the_smallest_viewer(web, session_id):
    big = await open_terminal(web, session_id, cols=150, rows=50)
    assert b"50 150" in await big.run("stty size")

    small = await Terminal.open(web.url, session_id, cols=90, rows=20)
    await small.wait_for_status("running")
    await asyncio.sleep(0.3)  # the resize is applied asynchronously
    assert b"20 90" in await big.run("stty size")

    await small.close()
    await asyncio.sleep(0.3)
    assert b"50 150" in await big.run("stty size")
    await big.close()


async def test_it_shows_the_same_shell_to_two_viewers(web, session_id):
    first = await open_terminal(web, session_id)
    second = await Terminal.open(web.url, session_id)
    await second.wait_for_status("running")

    await first.run("echo shared-$((20+3))")

    await second.read_until(b"shared-23\r\n")
    await second.type("echo from-second-$((1+1))\r")
    await first.read_until(b"from-second-2\r\n")
    await first.close()
    await second.close()


async def test_it_replays_recent_output_to_a_viewer_that_reconnects(web, session_id):
    first = await open_terminal(web, session_id)
    await first.run("echo before-reconnect-$((5*5))")
    await first.close()

    again = await Terminal.open(web.url, session_id)
    await again.wait_for_status("running")

    await again.read_until(b"before-reconnect-25\r\n", timeout=5)
    await again.close()


async def test_it_passes_multibyte_and_invalid_utf8_through_intact(web, session_id):
    terminal = await open_terminal(web, session_id)

    output = await terminal.run(
        "printf 'gr\\303\\274\\303\\237e \\342\\202\\254 \\360\\237\\220\\263 \\377\\376end\\n'"
    )
    assert "grüße € 🐳 ".encode() + b"\xff\xfeend\r\n" in output

    # 30,000 three-byte characters: read boundaries fall inside characters.
    output = await terminal.run("yes '€' | head -n 30000 | tr -d '\\n'; echo", timeout=30)
    assert output.count("€".encode()) == 30000
    await terminal.close()


async def test_it_delivers_a_40_mb_cat_complete_and_in_order(web, session_id):
    terminal = await open_terminal(web, session_id)
    # 4,000,000 numbered lines of 10 bytes: exactly 40 MB.
    made = await terminal.run("seq -f '%09.0f' 1 4000000 > /tmp/big && wc -c < /tmp/big", timeout=60)
    assert made.startswith(b"40000000\r\n")

    output = await terminal.run("cat /tmp/big", timeout=120)

    numbers = output.split(b"\r\n")[:4000000]
    assert numbers[0] == b"000000001"
    assert numbers[-1] == b"004000000"
    assert all(int(number) == index for index, number in enumerate(numbers, start=1))
    await terminal.close()


async def test_it_stops_a_flood_with_ctrl_c(web, session_id):
    terminal = await open_terminal(web, session_id)
    await terminal.type("yes flood-line\r")
    await terminal.read_until(b"flood-line\r\nflood-line\r\n" * 1000, timeout=20)

    await terminal.type(b"\x03")
    output = await terminal.run("echo stopped-$((2*3))", timeout=20)

    assert b"stopped-6\r\n" in output
    await terminal.close()


async def test_it_starts_a_new_shell_when_the_user_exits(web, session_id):
    terminal = await open_terminal(web, session_id)
    await terminal.run("export MARK=first-shell")
    start = len(terminal.output)

    await terminal.type("exit\r")
    await terminal.read_until(PROMPT, timeout=20, start=start)

    output = await terminal.run("echo mark=${MARK:-none}")
    assert b"mark=none\r\n" in output
    await terminal.close()


async def test_it_closes_viewers_when_the_session_is_deleted(web, session_id):
    terminal = await open_terminal(web, session_id)

    api.delete(f"{web.url}/sessions/{session_id}", timeout=10)

    event = await terminal.wait_for_status("closed", timeout=15)
    assert event["message"]
    await asyncio.wait_for(terminal.connection.wait_closed(), 10)
    assert terminal.connection.close_code == 4410


async def test_it_refuses_a_foreign_origin_on_the_real_server(web, session_id):
    with pytest.raises(Exception) as refused:
        await Terminal.open(web.url, session_id, origin="http://evil.example")

    assert "403" in str(refused.value)


async def test_it_serves_the_api_from_the_same_server(web, session_id):
    # A plain check that the HTTP API is served by the same Daphne.
    body = wait_until_running(web, session_id)
    assert body["ws_url"] == f"ws://127.0.0.1:{web.port}/sessions/{session_id}/ws"


async def test_it_runs_a_command_sent_the_instant_the_socket_opens(web, session_id):
    # Nobody has watched this session yet: its terminal is attached only
    # after the socket opens, and the command is already waiting by then.
    url = web.url.replace("http://", "ws://") + f"/sessions/{session_id}/ws"
    headers = {"Authorization": f"Bearer {api.token(session_id)}"}
    connection = await websockets.connect(url, max_size=None, additional_headers=headers)
    await connection.send(b"echo first-$((6*7))\r")
    await connection.send(json.dumps({"type": "input", "data": "echo second-$((6*7))\r"}))
    await connection.send(b"echo third-$((6*7))\r")
    terminal = Terminal(connection, ack=True)

    end = await terminal.read_until(b"third-42\r\n", timeout=60)
    await terminal.read_until(PROMPT, start=end)

    output = bytes(terminal.output)
    assert output.count(b"first-42\r\n") == output.count(b"second-42\r\n") == output.count(b"third-42\r\n") == 1
    assert output.index(b"first-42\r\n") < output.index(b"second-42\r\n") < output.index(b"third-42\r\n")
    await terminal.close()


async def test_it_types_what_follows_exit_into_the_next_shell_once(web, session_id):
    terminal = await open_terminal(web, session_id)
    start = len(terminal.output)

    # In one keystroke burst: the shell ends, and the next command is already typed.
    await terminal.type("exit\recho next-shell-$((6*7))\r")

    end = await terminal.read_until(b"next-shell-42\r\n", timeout=30, start=start)
    await terminal.read_until(PROMPT, start=end)
    assert bytes(terminal.output[start:]).count(b"next-shell-42\r\n") == 1
    await terminal.close()
