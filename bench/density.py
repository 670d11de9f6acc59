"""Density: how many idle sessions one host holds, and what it still answers then.

Run against the platform on its production stack (PostgreSQL and Redis),
its limits raised above the sessions to make (every session of the
benchmark comes from one address):

    export DATABASE_URL=postgres://playground:playground@127.0.0.1:5432/playground REDIS_URL=redis://127.0.0.1:6390/0
    PLAYGROUND_MAX_SESSIONS=450 PLAYGROUND_MAX_SESSIONS_PER_CLIENT=1000 PLAYGROUND_SESSION_RATE=100000/min \\
        scripts/run
    .venv/bin/python bench/density.py --sessions 400

It opens N sessions ten at a time (each ten running before the next ten
are asked for), then, with all of them and the prepared pool idle, prints:
the time to make them (in all, and from POST to running for the first and
the last ten), the memory of each instance (median and max, as `docker
stats` counts it: usage less the reclaimable page cache; and resident), the
host's available memory and load, the time to make one more session and a
terminal's keystroke round trip at that load, how long a `/metrics` scrape
and a reconciler pass take, and the most PostgreSQL connections seen. Every
session it opened is closed before it exits, and it waits until Docker is
done removing them.
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.load import Watch  # noqa: E402
from bench.sessions import close_all, percentile, prepared_sessions, wait_for_prepared  # noqa: E402
from bench.terminal import echo_latencies  # noqa: E402
from tests.support.api import api  # noqa: E402  (remembers each session's access token)
from tests.support.terminal_client import Terminal  # noqa: E402

BATCH = 10
LABEL_SESSION = "org.playground.session"


def open_running(url: str, opened: list[str], timeout: float) -> float:
    """Open a session and wait until it runs; seconds from POST to its recorded running_at."""
    posted_at = datetime.now(UTC)
    response = api.post(f"{url}/sessions", json={"playground_id": "default"}, timeout=60)
    if response.status_code != 201:
        raise RuntimeError(f"POST /sessions answered {response.status_code}: {response.text[:300]}")
    session_id = response.json()["session_id"]
    opened.append(session_id)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        instance = api.get(f"{url}/sessions/{session_id}", timeout=60).json()["instance"]
        if instance["status"] == "running":
            return (datetime.fromisoformat(instance["running_at"].replace("Z", "+00:00")) - posted_at).total_seconds()
        if instance["status"] == "failed":
            raise RuntimeError(f"session {session_id} failed: {instance['error']}")
        time.sleep(0.25)
    raise RuntimeError(f"session {session_id} not running after {timeout}s")


def memory_of(client: docker.DockerClient, container_id: str) -> tuple[float, float]:
    """The container's memory as `docker stats` shows it (usage less inactive page cache), and resident, in MiB."""
    stats = client.api.stats(container_id, stream=False, one_shot=True)
    memory, counters = stats["memory_stats"], stats["memory_stats"].get("stats", {})
    cache = counters.get("total_inactive_file", counters.get("inactive_file", 0))
    resident = counters.get("total_rss", counters.get("anon", 0))
    return (memory["usage"] - cache) / 2**20, resident / 2**20


def instances_memory(client: docker.DockerClient, platform_id: str) -> list[tuple[float, float]]:
    containers = client.containers.list(
        sparse=True, filters={"label": [f"org.playground.platform={platform_id}", LABEL_SESSION]}
    )
    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(lambda container: memory_of(client, container.id), containers))


def available_mib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def round_trips(url: str, session_id: str, count: int) -> list[float]:
    terminal = await Terminal.open(url, session_id, cols=120, rows=40)
    try:
        await terminal.wait_for_status("running", timeout=60)
        await terminal.read_until(Terminal.PROMPT, timeout=60)
        return await echo_latencies(terminal, count, pause=0.05)
    finally:
        await terminal.close()


def platform_mib(command: str) -> float:
    """The resident memory of this checkout's processes whose command line holds `command`
    (another platform may run the same commands on this host)."""
    total = 0
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if (
                command not in (proc / "cmdline").read_text().replace("\0", " ")
                or proc.joinpath("cwd").resolve() != ROOT
            ):
                continue
            status = (proc / "status").read_text()
        except OSError:
            continue
        total += next((int(row.split()[1]) for row in status.splitlines() if row.startswith("VmRSS:")), 0)
    return total / 1024


def spread(values: list[float], unit: str, top: float = 1.0) -> str:
    """ "median 3.1 ms, p99 8.0 ms", or with top=1.0 "median ..., max ..."."""
    name = "max" if top == 1.0 else f"p{round(top * 100)}"
    return f"median {statistics.median(values):.1f} {unit}, {name} {percentile(values, top):.1f} {unit}"


def cpu_busy(seconds: float = 10) -> float:
    """The share of the host's CPU time spent busy over the next `seconds` (load lags by minutes)."""

    def sample() -> tuple[int, int]:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]  # all, idle and iowait

    total, idle = sample()
    time.sleep(seconds)
    total_after, idle_after = sample()
    return 1 - (idle_after - idle) / max(1, total_after - total)


def network_seconds(client: docker.DockerClient) -> tuple[float, float]:
    """Seconds the engine takes to make and to remove one more bridge network, as a session's
    (its iptables rules grow with the networks there are). In TEST-NET-1, clear of any pool."""
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="192.0.2.0/28")])
    started = time.perf_counter()
    network = client.networks.create("density-bench-probe", driver="bridge", ipam=ipam)
    made = time.perf_counter() - started
    started = time.perf_counter()
    network.remove()
    return made, time.perf_counter() - started


def seconds_of(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def line(label: str, text: str) -> None:
    print(f"{label:<40} {text}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--sessions", type=int, default=400)
    parser.add_argument("--prepared", type=int, default=20, help="the platform's PLAYGROUND_PREPARED_SESSIONS")
    parser.add_argument("--platform-id", default=os.environ.get("PLAYGROUND_PLATFORM_ID", "playground"))
    parser.add_argument("--settle", type=float, default=180, help="seconds the instances idle before measuring")
    parser.add_argument("--keys", type=int, default=100, help="keystrokes whose round trip is timed")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    client = docker.DockerClient(timeout=120)
    opened: list[str] = []
    watch = Watch()
    watch.thread.start()
    line("prepared sessions waiting", str(wait_for_prepared(args.url, args.prepared)))
    line("host memory available before", f"{available_mib():.0f} MiB, load {os.getloadavg()[0]:.2f}")
    try:
        started, batches = time.perf_counter(), []
        while len(opened) < args.sessions:
            count = min(BATCH, args.sessions - len(opened))
            with ThreadPoolExecutor(count) as pool:
                batches.append(list(pool.map(lambda _: open_running(args.url, opened, args.timeout), range(count))))
            if len(batches) % 5 == 0:
                line(f"  {len(opened)} running", f"{time.perf_counter() - started:.0f}s so far")
        made = time.perf_counter() - started
        line(f"{len(opened)} sessions made, {BATCH} at a time", f"{made:.1f}s")
        for label, batch in (("first ten", batches[0]), ("last ten", batches[-1])):
            line(f"  {label}: POST to running", f"p50 {statistics.median(batch):.2f}s, max {max(batch):.2f}s")
        line("prepared sessions waiting", str(wait_for_prepared(args.url, args.prepared, patience=60)))
        time.sleep(args.settle)
        figures = instances_memory(client, args.platform_id)
        shown, resident = [f[0] for f in figures], [f[1] for f in figures]
        line("instances running", str(len(figures)))
        line("memory per instance (docker stats)", spread(shown, "MiB"))
        line("memory per instance (resident)", spread(resident, "MiB"))
        line("host memory available", f"{available_mib():.0f} MiB")
        line("load (1, 5, 15 min)", ", ".join(f"{value:.2f}" for value in os.getloadavg()))
        line("CPU busy over 10 s", f"{cpu_busy():.0%}")
        line("one more network: make, remove", "{:.2f}s, {:.2f}s".format(*network_seconds(client)))
        waiting = prepared_sessions(args.url)
        one_more = open_running(args.url, opened, args.timeout)
        line("one more session: POST to running", f"{one_more:.2f}s ({'prepared' if waiting else 'cold'})")
        keys = asyncio.run(round_trips(args.url, opened[-1], args.keys))
        line("terminal round trip", spread([key * 1000 for key in keys], "ms", top=0.99))
        scrape = seconds_of(lambda: api.get(f"{args.url}/metrics", timeout=60).raise_for_status())
        line("GET /metrics", f"{scrape * 1000:.0f} ms")
        command = [sys.executable, "manage.py", "reconcile"]
        reconcile = seconds_of(lambda: subprocess.run(command, cwd=ROOT, check=True, capture_output=True))
        line("manage.py reconcile (with its start)", f"{reconcile:.1f}s")
        web, worker = platform_mib("playground.server"), platform_mib("celery -A playground worker")
        line("web, worker resident", f"{web:.0f} MiB, {worker:.0f} MiB")
        line("PostgreSQL connections, most seen", str(watch.most))
    finally:
        watch.stop.set()
        started = time.perf_counter()
        close_all(args.url, opened, wait=900)
        line(f"closed {len(opened)} sessions", f"{time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
