"""What the web process pays for the API call clients make most: the status poll.

Run against a platform that is up, on its production stack, with no pool of
prepared sessions (refilling it would take the CPU being measured):

    export DATABASE_URL=postgres://playground:playground@127.0.0.1:5432/playground REDIS_URL=redis://127.0.0.1:6390/0
    PLAYGROUND_PREPARED_SESSIONS=0 scripts/run

    .venv/bin/python bench/api.py

It opens one session, then sends `GET /sessions/{id}` --requests times from
--clients threads (each with its own keep-alive connection), and prints the
requests per second, their latency (p50, p99) and the CPU time the web
process spent on each, read from /proc for the process that runs
`playground.server`. Repeated --rounds times: the figures of one machine
move from run to run.
"""

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.api import api  # noqa: E402  (remembers each session's access token)


def web_process() -> int:
    found = subprocess.run(["pgrep", "-f", "^python -m playground.server"], capture_output=True, text=True)
    pids = found.stdout.split()
    if len(pids) != 1:
        sys.exit(f"expected one web process (python -m playground.server), found {len(pids)}")
    return int(pids[0])


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def poll(url: str, headers: dict, count: int, latencies: list[float]) -> None:
    with requests.Session() as client:
        for _ in range(count):
            began = time.perf_counter()
            answer = client.get(url, headers=headers, timeout=30)
            latencies.append(time.perf_counter() - began)
            answer.raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    pid = web_process()
    opened = api.post(f"{args.url}/sessions", json={}, timeout=30)
    opened.raise_for_status()
    session_id = opened.json()["session_id"]
    path = f"/sessions/{session_id}"
    headers = {"Authorization": f"Bearer {api.token(session_id)}"}
    try:
        for round_number in range(1, args.rounds + 1):
            latencies: list[float] = []
            each = args.requests // args.clients
            threads = [
                threading.Thread(target=poll, args=(args.url + path, headers, each, latencies))
                for _ in range(args.clients)
            ]
            cpu_before, began = cpu_seconds(pid), time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            took, cpu = time.monotonic() - began, cpu_seconds(pid) - cpu_before
            done = len(latencies)
            cuts = statistics.quantiles(latencies, n=100)
            print(
                f"round {round_number}: {done} GET {path[:18]}… from {args.clients} clients: "
                f"{done / took:.0f}/s, p50 {cuts[49] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms; "
                f"web process CPU {cpu / done * 1000:.2f} ms each"
            )
    finally:
        api.delete(args.url + path, timeout=30)


if __name__ == "__main__":
    main()
