"""Throughput and keystroke latency of the browser terminal, over its WebSocket.

Run against a platform that is up, with the per-client limits raised, since
every session of the benchmark comes from one address:

    PLAYGROUND_MAX_SESSIONS_PER_CLIENT=100 PLAYGROUND_SESSION_RATE=1000/min scripts/run

    .venv/bin/python bench/terminal.py --url http://127.0.0.1:8000 --many 20

For one terminal and then for N at once it prints the throughput of a 40 MB
`cat` (MB of file per second) and the keystroke echo latency (p50, p99). Next
to them it prints the ceiling: the rate at which the Docker API itself
delivers the same `cat` from an instance's TTY to a plain socket reader, with
no platform in between, measured in the same run on an instance of its own.
"""

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")

import django  # noqa: E402

django.setup()

from sessions_app.backends.docker import DockerBackend  # noqa: E402
from sessions_app.models import Instance  # noqa: E402
from tests.support.api import api  # noqa: E402
from tests.support.terminal_client import Terminal  # noqa: E402

FILE_BYTES = 40_000_000
MAKE_FILE = "seq -f '%09.0f' 1 4000000 > /tmp/big"  # 4,000,000 lines of 10 bytes


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def open_session(url: str) -> str:
    session_id = api.post(f"{url}/sessions", json={"playground_id": "default"}, timeout=30).json()["session_id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        instance = api.get(f"{url}/sessions/{session_id}", timeout=30).json()["instance"]
        if instance["status"] == "running":
            return session_id
        if instance["status"] == "failed":
            raise RuntimeError(instance["error"])
        time.sleep(0.05)
    raise RuntimeError(f"session {session_id} did not start")


async def ready_terminal(url: str, session_id: str) -> Terminal:
    terminal = await Terminal.open(url, session_id, cols=120, rows=40)
    await terminal.wait_for_status("running")
    await terminal.read_until(Terminal.PROMPT)
    await terminal.run(MAKE_FILE, timeout=120)
    return terminal


async def cat_seconds(terminal: Terminal) -> float:
    started = time.perf_counter()
    await terminal.run("cat /tmp/big", timeout=300)
    return time.perf_counter() - started


async def echo_latencies(terminal: Terminal, count: int, pause: float = 0.0) -> list[float]:
    """Type single characters at the prompt and time each one's echo.

    With a pause, keys come at a person's pace instead of back to back.
    """
    await terminal.run("true")
    await terminal.read_until(Terminal.PROMPT, start=terminal._after_last_command)
    latencies = []
    for index in range(count):
        key = b"abcdefghij"[index % 10 : index % 10 + 1]
        start = len(terminal.output)
        began = time.perf_counter()
        await terminal.type(key)
        await terminal.read_until(key, start=start, timeout=10)
        latencies.append(time.perf_counter() - began)
        if pause:
            await asyncio.sleep(pause * random.uniform(0.5, 1.5))
    await terminal.type(b"\x15")  # Ctrl-U: clear the typed line
    return latencies


async def ceiling_mb_per_s(url: str) -> float:
    """The Docker API's own TTY delivery rate, read straight from the attach socket."""
    session_id = open_session(url)
    backend, instance = DockerBackend(), Instance(session_id=session_id)
    try:
        tty = await backend.attach(instance)
        reader, writer = tty.reader, tty.writer
        await backend.resize(instance, cols=120, rows=40)
        await _read_until(reader, b"$ ")
        writer.write(f"{MAKE_FILE}; echo made''-file\r".encode())
        await _read_until(reader, b"made-file\r\n", timeout=120)
        writer.write(b"cat /tmp/big; echo end''-of-cat\r")
        started = time.perf_counter()
        await _read_until(reader, b"end-of-cat\r\n", timeout=300)
        seconds = time.perf_counter() - started
        writer.close()
        return FILE_BYTES / seconds / 1e6
    finally:
        api.delete(f"{url}/sessions/{session_id}", timeout=30)


async def _read_until(reader: asyncio.StreamReader, marker: bytes, timeout: float = 30) -> None:
    tail = b""
    deadline = time.monotonic() + timeout
    while marker not in tail:
        chunk = await asyncio.wait_for(reader.read(1 << 16), max(0.1, deadline - time.monotonic()))
        if not chunk:
            raise RuntimeError("attach stream ended")
        tail = (tail + chunk)[-4096:]


def line(label: str, values: list[float] | None = None, text: str = "") -> None:
    if values is not None:
        text = (
            f"p50={statistics.median(values) * 1000:.2f}ms p99={percentile(values, 0.99) * 1000:.2f}ms n={len(values)}"
        )
    print(f"{label:<34} {text}")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--many", type=int, default=20, help="terminals at once")
    parser.add_argument("--keys", type=int, default=300, help="keystrokes timed per terminal")
    args = parser.parse_args()
    opened: list[str] = []
    try:
        ceiling = await ceiling_mb_per_s(args.url)
        line("ceiling: Docker attach, 40 MB cat", text=f"{ceiling:.1f} MB/s")

        session_id = open_session(args.url)
        opened.append(session_id)
        terminal = await ready_terminal(args.url, session_id)
        seconds = await cat_seconds(terminal)
        rate = FILE_BYTES / seconds / 1e6
        line("one terminal, 40 MB cat", text=f"{rate:.1f} MB/s ({rate / ceiling:.0%} of the ceiling)")
        line("one terminal, echo", await echo_latencies(terminal, args.keys))
        await terminal.close()

        ids = await asyncio.gather(*(asyncio.to_thread(open_session, args.url) for _ in range(args.many)))
        opened.extend(ids)
        terminals = await asyncio.gather(*(ready_terminal(args.url, i) for i in ids))
        # People type a few keys a second; 20 keys a second each is a fast typist.
        latencies = await asyncio.gather(*(echo_latencies(t, args.keys // 3, pause=0.05) for t in terminals))
        line(f"{args.many} at once, echo, 20 keys/s each", [value for one in latencies for value in one])
        latencies = await asyncio.gather(*(echo_latencies(t, args.keys // 3) for t in terminals))
        line(f"{args.many} at once, echo, back to back", [value for one in latencies for value in one])
        started = time.perf_counter()
        await asyncio.gather(*(cat_seconds(t) for t in terminals))
        total = time.perf_counter() - started
        line(
            f"{args.many} terminals at once, 40 MB cat",
            text=f"{args.many * FILE_BYTES / total / 1e6:.1f} MB/s in all, "
            f"{FILE_BYTES / total / 1e6:.1f} MB/s each ({total:.1f} s)",
        )
        for one in terminals:
            await one.close()
    finally:
        for session_id in opened:
            api.delete(f"{args.url}/sessions/{session_id}", timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
