"""A learner's published ports on the real engine, through Daphne: a server started
in the instance appears in GET /ports and answers at both of its addresses,
over HTTP and WebSockets, to the session's owner only."""

import asyncio
import socket
import time

import pytest
import requests
from websockets.asyncio.client import connect

from sessions_app.backends.docker import exec_user
from tests.support.api import api
from tests.support.learner import containers_of, give_tiny_image
from tests.support.servers import start_websocket_echo
from tests.support.stack import PORTS_DOMAIN, wait_for
from tests.support.tiny_image import INDEX_HTML

pytestmark = pytest.mark.integration


def learner_runs(docker_client, session_id: str, command: str) -> str:
    [container] = containers_of(docker_client, session_id)
    result = container.exec_run(["sh", "-c", command], user=exec_user(), workdir="/home/learner")
    assert result.exit_code == 0, result.output
    return result.output.decode()


def listed(web, session_id: str) -> set[int]:
    response = api.get(f"{web.url}/sessions/{session_id}/ports", timeout=10)
    assert response.status_code == 200, response.text
    return {port["port"] for port in response.json()}


def host_of(web, session_id: str, port: int) -> str:
    return f"{port}-{session_id}.{PORTS_DOMAIN}:{web.port}"


def test_a_published_port_appears_answers_at_both_addresses_and_goes(web, session_id, docker_client):
    give_tiny_image(docker_client, session_id)
    assert 8080 not in listed(web, session_id)

    learner_runs(docker_client, session_id, "docker run -d --name site -p 8080:80 tiny:latest httpd -f -p 80 -h /www")
    appeared = time.monotonic()
    wait_for(lambda: 8080 in listed(web, session_id), timeout=10, interval=0.2, what="port 8080 in /ports")
    seen_after = time.monotonic() - appeared

    by_path = api.get(f"{web.url}/sessions/{session_id}/ports/8080/index.html", timeout=10)
    token = api.token(session_id)
    by_host = requests.get(
        f"{web.url}/index.html", headers={"Host": host_of(web, session_id, 8080), "Authorization": f"Bearer {token}"}
    )

    assert seen_after < 2
    assert by_path.status_code == 200, by_path.text
    assert by_path.content == INDEX_HTML
    assert by_host.status_code == 200, by_host.text
    assert by_host.content == INDEX_HTML

    learner_runs(docker_client, session_id, "docker rm -f site")
    gone = time.monotonic()
    wait_for(lambda: 8080 not in listed(web, session_id), timeout=10, interval=0.2, what="port 8080 to go")
    assert time.monotonic() - gone < 2
    after = api.get(f"{web.url}/sessions/{session_id}/ports/8080/", timeout=10)
    assert after.status_code == 404
    assert after.json()["error"] == "port_not_listening"


def test_another_client_gets_404_and_an_unpublished_port_is_never_dialled(web, session_id, docker_client):
    learner_runs(docker_client, session_id, "mkdir -p site && echo 'my site' > site/index.html")
    learner_runs(docker_client, session_id, "setsid busybox httpd -p 7001 -h site; true")
    # A server on the instance's loopback only: not published, not reachable.
    learner_runs(docker_client, session_id, "setsid busybox httpd -p 127.0.0.1:7000 -h site; true")
    wait_for(lambda: 7001 in listed(web, session_id), timeout=10, interval=0.2, what="port 7001 in /ports")

    stranger_path = requests.get(f"{web.url}/sessions/{session_id}/ports/7001/", timeout=10)
    stranger_host = requests.get(f"{web.url}/", headers={"Host": host_of(web, session_id, 7001)}, timeout=10)
    owner = api.get(f"{web.url}/sessions/{session_id}/ports/7001/", timeout=10)
    loopback_only = api.get(f"{web.url}/sessions/{session_id}/ports/7000/", timeout=10)

    assert owner.status_code == 200
    assert owner.text == "my site\n"
    assert 7000 not in listed(web, session_id)
    for response in (stranger_path, stranger_host):
        assert response.status_code == 404
        assert response.json()["error"] == "session_not_found"
    assert loopback_only.status_code == 404
    assert loopback_only.json()["error"] == "port_not_listening"

    # Made public, the port opens to anyone; the loopback one still does not.
    made = api.post(f"{web.url}/sessions/{session_id}/ports", json={"port": 7001, "public": True}, timeout=10)
    assert made.status_code == 200, made.text
    public = requests.get(f"{web.url}/sessions/{session_id}/ports/7001/", timeout=10)
    still_not = requests.get(f"{web.url}/sessions/{session_id}/ports/7000/", timeout=10)
    assert public.status_code == 200
    assert public.text == "my site\n"
    assert still_not.status_code == 404


def test_websockets_go_through_both_addresses(web, session_id, docker_client):
    [container] = containers_of(docker_client, session_id)
    start_websocket_echo(container, 9000, exec_user())
    wait_for(lambda: 9000 in listed(web, session_id), timeout=10, interval=0.2, what="port 9000 in /ports")
    token = api.token(session_id)

    async def echo(uri: str) -> list:
        # (*.localhost names no address here: the socket is made to Daphne's.)
        reach = socket.create_connection(("127.0.0.1", web.port))
        async with connect(uri, sock=reach, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
            await ws.send("hello")
            text = await ws.recv()
            await ws.send(b"\x00\xffbinary")
            binary = await ws.recv()
            big = "x" * 200_000
            await ws.send(big)
            return [text, binary, await ws.recv() == big]

    by_path = asyncio.run(echo(f"ws://127.0.0.1:{web.port}/sessions/{session_id}/ports/9000/echo"))
    by_host = asyncio.run(echo(f"ws://{host_of(web, session_id, 9000)}/"))

    assert by_path == ["hello", b"\x00\xffbinary", True]
    assert by_host == ["hello", b"\x00\xffbinary", True]
