"""A learner's published port through the platform's proxy: how fast, and at what memory?

Run the platform (`scripts/run`), then, on the same machine (the benchmark
also reads from the instance's address directly, to compare):

    .venv/bin/python bench/ports.py [--url http://127.0.0.1:8000] [--megabytes 100]

It opens a session and, through the exec API, starts two servers in its
instance as the learner would: busybox httpd serving a file of --megabytes
of random bytes, and a WebSocket echo server (Perl, tests/support/servers.py).
Then it prints:

- the download's speed read straight from the instance's address and
  through the proxy (`/sessions/{id}/ports/8000/`), best of --rounds, and
  their ratio (the target: at least 50 %);
- the web process's resident memory before, while a slow client reads the
  file at about 1 MB/s for --slow-seconds, and after (the target: flat: the
  proxy reads from the instance only as fast as the client takes it);
- a WebSocket echo's round trip, straight and through the proxy, p50 and p99
  of --echoes messages (the target: p50 at most 2 ms through the proxy).

The session is closed at the end.
"""

import argparse
import asyncio
import socket
import statistics
import sys
import time
from pathlib import Path

import requests
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.load import resident_mib  # noqa: E402
from tests.support.servers import WEBSOCKET_ECHO  # noqa: E402

HTTP_PORT = 8000
ECHO_PORT = 9000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slow-seconds", type=float, default=10.0)
    parser.add_argument("--echoes", type=int, default=2000)
    args = parser.parse_args()

    api = requests.Session()
    opened = api.post(f"{args.url}/sessions", json={}, timeout=30)
    opened.raise_for_status()
    session = opened.json()
    session_id = session["session_id"]
    api.headers["Authorization"] = f"Bearer {session['access_token']}"
    try:
        address = wait_running(api, args.url, session_id)
        start_servers(api, args.url, session_id, args.megabytes)
        wait_listening(api, args.url, session_id, {HTTP_PORT, ECHO_PORT})
        size = args.megabytes * 1024 * 1024
        direct_url = f"http://{address}:{HTTP_PORT}/big"
        proxied_url = f"{args.url}/sessions/{session_id}/ports/{HTTP_PORT}/big"

        direct = max(download(requests.Session(), direct_url, size) for _ in range(args.rounds))
        proxied = max(download(api, proxied_url, size) for _ in range(args.rounds))
        print(f"download of {args.megabytes} MB, best of {args.rounds}:")
        print(f"  straight from the instance: {direct:7.0f} MB/s")
        print(f"  through the proxy:          {proxied:7.0f} MB/s ({proxied / direct:.0%} of straight)")

        before = resident_mib("playground.server")
        during = slow_read(args.url, session_id, session["access_token"], args.slow_seconds)
        after = resident_mib("playground.server")
        print(f"web process while a client reads at about 1 MB/s for {args.slow_seconds:.0f} s:")
        print(f"  resident before {before:.0f} MiB, highest while reading {max(during):.0f} MiB, after {after:.0f} MiB")

        straight = asyncio.run(echo_times(f"ws://{address}:{ECHO_PORT}/", None, args.echoes))
        through = asyncio.run(
            echo_times(
                f"{args.url.replace('http', 'ws', 1)}/sessions/{session_id}/ports/{ECHO_PORT}/",
                session["access_token"],
                args.echoes,
            )
        )
        print(f"WebSocket echo round trip, {args.echoes} messages:")
        for name, times in (("straight from the instance", straight), ("through the proxy", through)):
            print(f"  {name + ':':28s}p50 {percentile(times, 50):.2f} ms, p99 {percentile(times, 99):.2f} ms")
    finally:
        api.delete(f"{args.url}/sessions/{session_id}", timeout=30)


def wait_running(api: requests.Session, url: str, session_id: str) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        instance = api.get(f"{url}/sessions/{session_id}", timeout=10).json()["instance"]
        if instance and instance["status"] == "running":
            return instance["ip_address"]
        time.sleep(0.2)
    raise SystemExit("the session's instance did not run within two minutes")


def run(api: requests.Session, url: str, session_id: str, script: str) -> None:
    ran = api.post(f"{url}/sessions/{session_id}/exec?wait=1", json={"cmd": ["sh", "-c", script]}, timeout=120)
    ran.raise_for_status()
    if ran.json()["exit_code"] != 0:
        raise SystemExit(f"{script!r} failed in the instance: {ran.json()}")


def start_servers(api: requests.Session, url: str, session_id: str, megabytes: int) -> None:
    run(api, url, session_id, f"mkdir -p www && head -c {megabytes}M /dev/urandom > www/big")
    run(api, url, session_id, f"setsid busybox httpd -p {HTTP_PORT} -h www")
    ran = api.post(
        f"{url}/sessions/{session_id}/exec?wait=1",
        json={"cmd": ["sh", "-c", f'setsid perl -e "$1" {ECHO_PORT} >/dev/null 2>&1 &', "sh", WEBSOCKET_ECHO]},
        timeout=60,
    )
    ran.raise_for_status()


def wait_listening(api: requests.Session, url: str, session_id: str, ports: set[int]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if ports <= {p["port"] for p in api.get(f"{url}/sessions/{session_id}/ports", timeout=10).json()}:
            return
        time.sleep(0.2)
    raise SystemExit(f"ports {sorted(ports)} did not appear")


def download(client: requests.Session, url: str, size: int) -> float:
    """MB/s of one download, checking that all of it came."""
    started = time.perf_counter()
    got = 0
    with client.get(url, stream=True, timeout=60) as response:
        response.raise_for_status()
        for chunk in response.iter_content(1 << 20):
            got += len(chunk)
    elapsed = time.perf_counter() - started
    if got != size:
        raise SystemExit(f"{url}: {got} bytes of {size}")
    return size / elapsed / 1e6


def slow_read(url: str, session_id: str, token: str, seconds: float) -> list[float]:
    """Read the file through the proxy at about 1 MB/s; the web process's memory, sampled each second."""
    host, port = url.split("//", 1)[1].split(":")
    reader = socket.create_connection((host, int(port)))
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    reader.sendall(
        f"GET /sessions/{session_id}/ports/{HTTP_PORT}/big HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {token}\r\n\r\n".encode()
    )
    samples = []
    started = time.monotonic()
    next_sample = started
    while time.monotonic() - started < seconds:
        reader.recv(64 * 1024)
        time.sleep(0.06)
        if time.monotonic() >= next_sample:
            samples.append(resident_mib("playground.server"))
            next_sample += 1
    reader.close()
    return samples


async def echo_times(uri: str, token: str | None, count: int) -> list[float]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with connect(uri, additional_headers=headers, compression=None) as ws:
        for _ in range(50):  # warm up
            await ws.send("warm")
            await ws.recv()
        times = []
        for number in range(count):
            started = time.perf_counter()
            await ws.send(f"echo {number:08d}")
            await ws.recv()
            times.append((time.perf_counter() - started) * 1000)
    return times


def percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100)[p - 1] if len(values) > 1 else values[0]


if __name__ == "__main__":
    main()
