"""How fast a session reaches `running`, and what an idle instance costs.

Run against a platform that is up, with the per-client limits raised, since
every session of the benchmark comes from one address:

    PLAYGROUND_MAX_SESSIONS_PER_CLIENT=100 PLAYGROUND_SESSION_RATE=1000/min scripts/run

    .venv/bin/python bench/sessions.py --url http://127.0.0.1:8000 --sequential 10 --concurrent 20

It creates sessions one after another, then N at once, and prints the time
from `POST /sessions` to the instance reading `running` (p50, p95, max), then
the memory of one idle instance as the Docker engine reports it. Every session
it opens is closed before it exits.

Before each phase it lets the platform refill its pool of prepared sessions
(instances started ahead, PLAYGROUND_PREPARED_SESSIONS, 20 by default) and
prints how many were waiting. For the figures of instances started on
demand, run the platform with PLAYGROUND_PREPARED_SESSIONS=0.

For the sessions made one after another it also prints the CPU the whole
machine spent on each (from /proc/stat, less what it spends idle): with
PLAYGROUND_PREPARED_SESSIONS=0, what starting an instance costs, all
processes counted (the Docker engine, runc, the instance's own daemon).

With `--template SLUG` the sessions are of that template: their files and
setup script run before they count as running, unless the template keeps
sessions prepared (its `prepared` count), which are set up ahead.
"""

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import docker
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.api import api  # noqa: E402  (remembers each session's access token)

CPU_SETTLE = 3.0  # seconds after running that still count to a session's start (its daemon settling)
POLL_INTERVAL = 0.5  # the figure comes from running_at; looking more often only loads the platform
HEADERS: dict[str, str] = {}  # sent with every request (--token)
BODY = {"playground_id": "default"}  # what POST /sessions is sent (--template changes it)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def time_to_running(http, url: str, timeout: float, opened: list[str]) -> tuple[str, float]:
    """Seconds from just before POST /sessions to the instance's recorded `running_at`.

    The platform stamps `running_at` when the daemon inside first answers, so
    the figure does not depend on how often this client looks; it looks every
    POLL_INTERVAL only to learn that it happened, without loading the
    platform it measures (20 clients polling every 10 ms would).
    """
    posted_at = datetime.now(UTC)
    response = http.post(f"{url}/sessions", json=BODY, timeout=30, headers=HEADERS)
    response.raise_for_status()
    session_id = response.json()["session_id"]
    opened.append(session_id)  # closed at the end, whatever happens
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        instance = http.get(f"{url}/sessions/{session_id}", timeout=30, headers=HEADERS).json()["instance"]
        if instance["status"] == "running":
            running_at = datetime.fromisoformat(instance["running_at"].replace("Z", "+00:00"))
            return session_id, (running_at - posted_at).total_seconds()
        if instance["status"] == "failed":
            raise RuntimeError(f"session {session_id} failed: {instance['error']}")
        time.sleep(POLL_INTERVAL)
    raise RuntimeError(f"session {session_id} not running after {timeout}s")


def close_all(url: str, session_ids: list[str], wait: float = 120) -> None:
    """Close the sessions and wait until Docker is done removing them, so that
    one phase's teardown does not weigh on the next phase's figures."""
    for session_id in session_ids:
        api.delete(f"{url}/sessions/{session_id}", timeout=30, headers=HEADERS)
    deadline = time.monotonic() + wait
    for session_id in session_ids:
        while time.monotonic() < deadline:
            instance = api.get(f"{url}/sessions/{session_id}", timeout=30, headers=HEADERS).json().get("instance")
            if not instance or instance["status"] in ("terminated", "failed"):
                break
            time.sleep(0.2)


def prepared_sessions(url: str) -> int:
    for line in requests.get(f"{url}/metrics", timeout=30, headers=HEADERS).text.splitlines():
        if line.startswith("playground_prepared_sessions "):
            return int(float(line.split()[1]))
    return 0


def wait_for_prepared(url: str, wanted: int, patience: float = 15) -> int:
    """Let the platform refill its pool of prepared sessions (PLAYGROUND_PREPARED_SESSIONS)
    before a phase: until `wanted` wait, or the count has not grown for `patience` s."""
    best, since = prepared_sessions(url), time.monotonic()
    while best < wanted and time.monotonic() - since < patience:
        time.sleep(1)
        now = prepared_sessions(url)
        if now > best:
            best, since = now, time.monotonic()
    return best


def machine_busy_seconds() -> float:
    """CPU-seconds the whole machine has spent busy since it started (/proc/stat: all but idle and iowait)."""
    with open("/proc/stat") as stat:
        ticks = [int(field) for field in stat.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def idle_rate(seconds: float = 5) -> float:
    """CPU-seconds a second the machine spends while nothing is asked of the platform."""
    before = machine_busy_seconds()
    time.sleep(seconds)
    return (machine_busy_seconds() - before) / seconds


def report(label: str, seconds: list[float]) -> None:
    print(
        f"{label:<28} n={len(seconds):<3} p50={statistics.median(seconds):.3f}s "
        f"p95={percentile(seconds, 0.95):.3f}s max={max(seconds):.3f}s"
    )


def idle_memory_mib(client: docker.DockerClient, session_id: str, settle: float) -> tuple[float, float]:
    """What `docker stats` shows (usage less the reclaimable page cache), and the
    resident memory of the instance's processes, in MiB.

    The first figure also counts the page cache of the files the instance was
    the first to read (binaries shared with other instances): the resident
    memory is what each further instance costs.
    """
    time.sleep(settle)
    stats = client.containers.get(f"playground-{session_id}").stats(stream=False)
    memory, counters = stats["memory_stats"], stats["memory_stats"].get("stats", {})
    cache = counters.get("total_inactive_file", counters.get("inactive_file", 0))
    resident = counters.get("total_rss", counters.get("anon", 0))
    return (memory["usage"] - cache) / 2**20, resident / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--sequential", type=int, default=10, help="sessions created one after another")
    parser.add_argument("--concurrent", type=int, default=20, help="sessions created at once")
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--settle", type=float, default=10, help="seconds an instance idles before measuring")
    parser.add_argument("--token", help="an API token, where the platform requires a login")
    parser.add_argument(
        "--template", help="open sessions of this template (its files and setup, its own prepared pool) instead"
    )
    args = parser.parse_args()
    if args.template:
        BODY.clear()
        BODY["template"] = args.template
    if args.token:
        HEADERS["Authorization"] = f"Token {args.token}"
    opened: list[str] = []
    try:
        http = api
        sequential, cpu = [], []
        for _ in range(args.sequential):
            waiting = wait_for_prepared(args.url, 1)
            baseline = idle_rate()
            busy_before, started = machine_busy_seconds(), time.monotonic()
            session_id, seconds = time_to_running(http, args.url, args.timeout, opened)
            time.sleep(CPU_SETTLE)
            cpu.append(machine_busy_seconds() - busy_before - baseline * (time.monotonic() - started))
            sequential.append(seconds)
            close_all(args.url, [session_id])
        report("one after another", sequential)
        print(f"{'':<28} (prepared sessions waiting before the last: {waiting})")
        print(
            f"{'machine CPU per session':<28} p50={statistics.median(cpu):.2f} CPU-s max={max(cpu):.2f} CPU-s "
            f"(from POST to {CPU_SETTLE:.0f} s after running, over the idle rate; {os.cpu_count()} cores)"
        )

        waiting = wait_for_prepared(args.url, args.concurrent)

        with ThreadPoolExecutor(args.concurrent) as pool:
            results = list(
                pool.map(
                    lambda _: time_to_running(api, args.url, args.timeout, opened),
                    range(args.concurrent),
                )
            )
        report(f"{args.concurrent} at once", [seconds for _, seconds in results])
        print(f"{'':<28} (prepared sessions waiting before: {waiting})")
        close_all(args.url, [session_id for session_id, _ in results])

        session_id, _ = time_to_running(http, args.url, args.timeout, opened)
        shown, resident = idle_memory_mib(docker.from_env(), session_id, args.settle)
        print(f"{'idle instance memory':<28} {shown:.1f} MiB as docker stats shows it, {resident:.1f} MiB resident")
        print(f"{'':<28} (after {args.settle:.0f}s idle)")
    finally:
        close_all(args.url, opened)
    return 0


if __name__ == "__main__":
    sys.exit(main())
