"""playground.server: Daphne that neither sends ahead of a slow client nor reads a whole upload into memory.

Each test runs the real server on an ASGI application of tests/support/server_apps.py.
"""

import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from tests.support.stack import ROOT, free_port, wait_for


@pytest.fixture
def serve():
    started = []

    def start(app: str) -> str:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "playground.server", "-b", "127.0.0.1", "-p", str(port), app],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(process)

        def answers() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", port)) == 0

        wait_for(answers, timeout=20, what="playground.server to listen")
        return f"http://127.0.0.1:{port}"

    yield start
    for process in started:
        process.kill()
        process.wait()


def test_a_response_goes_no_faster_than_its_client_reads(serve):
    url = serve("tests.support.server_apps:streaming")
    reader = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])))
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    reader.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
    received = 0
    for _ in range(10):  # a slow client: 64 KiB every 0.1 s
        received += len(reader.recv(64 * 1024))
        time.sleep(0.1)

    sent = int(requests.get(f"{url}/sent", timeout=10).text)

    # The application waited for the client: what it handed over is what was
    # read plus the sockets' buffers, not the whole 200 MiB.
    assert received > 0
    assert sent < 32 << 20, f"the application sent {sent >> 20} MiB to a client that read {received >> 10} KiB"
    reader.close()


def test_a_large_upload_reaches_the_application_whole_without_sitting_in_memory(serve, tmp_path):
    url = serve("tests.support.server_apps:digest")
    body = os.urandom(64 << 20)

    size, digest, grown_kib = requests.post(url, data=body, timeout=60).text.split()

    assert int(size) == len(body)
    assert digest == hashlib.sha256(body).hexdigest()
    assert int(grown_kib) < 16 << 10, f"peak memory grew by {int(grown_kib) >> 10} MiB while reading the body"


def test_a_small_body_and_none_at_all_arrive_as_sent(serve):
    url = serve("tests.support.server_apps:digest")

    assert requests.post(url, data=b"hello", timeout=10).text.split()[:2] == ["5", hashlib.sha256(b"hello").hexdigest()]
    assert requests.get(url, timeout=10).text.split()[0] == "0"


def websocket_to(url: str) -> socket.socket:
    """A raw client socket past the WebSocket handshake (what a browser would do, without reading more)."""
    client = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])))
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    client.sendall(
        b"GET / HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += client.recv(1)
    assert b" 101 " in head, head
    return client


def test_a_websocket_sends_no_faster_than_its_client_reads(serve):
    url = serve("tests.support.server_apps:websocket_flood")
    client = websocket_to(url)
    time.sleep(2)  # the application sends; the client reads nothing

    sent = int(requests.get(url, timeout=10).text)

    assert sent < 32 << 20, f"the application sent {sent >> 20} MiB to a client that read nothing"
    client.close()


def test_a_websockets_messages_stop_being_read_while_the_application_does_not_take_them(serve):
    url = serve("tests.support.server_apps:websocket_sink")
    client = websocket_to(url)
    client.settimeout(2)
    frame = b"\x82\xff" + (1 << 20).to_bytes(8, "big") + b"\0\0\0\0" + b"y" * (1 << 20)  # masked with zeros
    written = 0
    with pytest.raises(TimeoutError):
        for _ in range(200):
            client.sendall(frame)
            written += len(frame)

    # The server stopped reading after about INBOUND_HIGH: the client's own
    # sending blocked, where an unbounded queue would have taken all 200 MiB.
    assert written < 32 << 20
    client.close()


def test_what_is_alive_when_it_starts_is_left_out_of_the_collectors_passes(serve):
    # Django and everything it loads, frozen: a full pass of the cyclic
    # collector then walks only what requests made since, and holds the
    # event loop (every terminal) for milliseconds rather than for 100-500.
    url = serve("tests.support.server_apps:heap")

    assert int(requests.get(url, timeout=10).text) > 10_000


def test_on_sigusr1_it_prints_its_threads_and_what_each_request_awaits(tmp_path):
    port = free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "playground.server", "-b", "127.0.0.1", "-p", str(port)]
            + ["tests.support.server_apps:stalled"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        wait_for(lambda: requests_time_out(f"http://127.0.0.1:{port}/stuck"), timeout=20, what="a request to stall")

        server.send_signal(signal.SIGUSR1)
        printed = wait_for(
            lambda: "wait_for_nothing" in (text := log_path.read_text()) and text, timeout=10, what="the stacks"
        )

        assert "Current thread" in printed and "(most recent call first)" in printed  # each thread's stack
        # The stalled request's task, down to where it waits.
        assert re.search(r"in stalled\n  File \"[^\"]*server_apps.py\", line \d+ in wait_for_nothing", printed), printed
        assert server.poll() is None  # and the server goes on
    finally:
        server.kill()
        server.wait()


def requests_time_out(url: str) -> bool:
    try:
        requests.get(url, timeout=1)
    except requests.Timeout:
        return True
    except requests.ConnectionError:  # not listening yet
        return False
    return False
