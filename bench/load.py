"""A room of learners at once: does the platform hold, on PostgreSQL and Redis?

Run the platform on its production stack (PostgreSQL, Redis, Daphne, the
threaded worker) with the per-client limits raised, since every client of
the benchmark comes from one address:

    export DATABASE_URL=postgres://playground:playground@127.0.0.1:5432/playground REDIS_URL=redis://127.0.0.1:6390/0
    PLAYGROUND_MAX_SESSIONS=200 PLAYGROUND_MAX_SESSIONS_PER_CLIENT=200 PLAYGROUND_SESSION_RATE=10000/min \\
        PLAYGROUND_MAX_TERMINALS_PER_CLIENT=200 scripts/run

    .venv/bin/python bench/load.py

(scripts/test starts PostgreSQL and Redis on those addresses.) First it opens
the sessions the terminals use and lets the platform settle; then, for
--storm seconds, at once:

- `--creators` (40) clients each open a session and poll it every 100 ms
  until it runs;
- `--pollers` (100) clients each look at an existing session once a second;
- `--streamers` (20) terminals print output without pause (`yes`);
- `--typists` (20) terminals type a key every 50 ms and time its echo;
- one more session's TTY gets a key every 50 ms through the Docker engine
  alone, its echo timed: the floor, what the machine gives a keystroke with
  no platform in its way.

The floods and the HTTP clients run in processes of their own, so that the
typists' timings are the platform's and not this client's.

It prints the answers by status (every 5xx must be a 503 with Retry-After),
the time the 40 new sessions took to run, the typists' echo latency beside
the floor's, how busy the machine was, the most PostgreSQL connections seen; then it closes the storm's sessions and
prints the resident memory of the web and worker processes. It does so
--rounds (2) times, so that memory after the first storm can be compared
with memory after the next: flat, or growing with every storm. Every session
it opened is closed at the end.
"""

import argparse
import asyncio
import collections
import multiprocessing
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.sessions import machine_busy_seconds, wait_for_prepared  # noqa: E402
from tests.support.api import api  # noqa: E402  (remembers each session's access token)
from tests.support.terminal_client import Terminal  # noqa: E402

STREAM = "yes 'streaming output of the load benchmark, line after line after line'"


class Tally:
    """Answers by status code, from many threads."""

    def __init__(self) -> None:
        self.codes: collections.Counter[int] = collections.Counter()
        self.unavailable_without_retry_after = 0
        self.failures: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()

    def note(self, response) -> None:
        with self.lock:
            self.codes[response.status_code] += 1
            if response.status_code == 503 and "Retry-After" not in response.headers:
                self.unavailable_without_retry_after += 1

    def failed(self, what: str) -> None:
        with self.lock:
            self.failures[what] += 1


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] if ordered else float("nan")


def request(tally: Tally, method: str, url: str, **kwargs):
    try:
        response = api.request(method, url, timeout=30, **kwargs)
    except Exception as exc:  # a refused or broken connection is a failure too
        tally.failed(type(exc).__name__)
        return None
    tally.note(response)
    return response


def open_running(url: str, tally: Tally, timeout: float = 120, poll: float = 0.1) -> tuple[str | None, float | None]:
    """Open a session and poll it until it runs: (its id, seconds from the request to running)."""
    started = time.monotonic()
    created = None
    while created is None or created.status_code != 201:
        created = request(tally, "POST", f"{url}/sessions", json={"playground_id": "default"})
        if created is not None and created.status_code not in (201, 503):
            return None, None
        if created is None or created.status_code == 503:
            time.sleep(float(created.headers.get("Retry-After", 1)) if created is not None else 1)
        if time.monotonic() - started > timeout:
            return None, None
    session_id = created.json()["session_id"]
    while time.monotonic() - started < timeout:
        response = request(tally, "GET", f"{url}/sessions/{session_id}")
        if response is not None and response.status_code == 200:
            instance = response.json()["instance"] or {}
            if instance.get("status") == "running":
                return session_id, time.monotonic() - started
            if instance.get("status") == "failed":
                return session_id, None
        time.sleep(poll)
    return session_id, None


def poll_existing(url: str, tally: Tally, session_id: str, until: float) -> None:
    while time.monotonic() < until:
        request(tally, "GET", f"{url}/sessions/{session_id}")
        time.sleep(1)


def resident_mib(pattern: str) -> float:
    """The resident memory of the processes whose command line matches (and their threads)."""
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    total = 0
    for pid in found:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return total / 1024


def postgres_connections() -> int:
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as connection:
        return connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()[0]


class Watch:
    """The most PostgreSQL connections seen, sampled every half second while it runs."""

    def __init__(self) -> None:
        self.most = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.most = max(self.most, postgres_connections())
            except Exception:  # the benchmark's own look must not end it
                pass
            self.stop.wait(0.5)


async def attach(url: str, session_id: str) -> Terminal:
    """The session's terminal at its prompt; a refused or dropped socket is
    opened again, as the page does."""
    for attempt in range(5):
        try:
            terminal = await Terminal.open(url, session_id, cols=120, rows=40)
            await terminal.wait_for_status("running", timeout=120)
            await terminal.read_until(Terminal.PROMPT, timeout=60)
            return terminal
        except Exception:
            if attempt == 4:
                raise
            await asyncio.sleep(1)


async def stream(url: str, session_id: str, until: float) -> None:
    terminal = await attach(url, session_id)
    await terminal.type(STREAM + "\r")
    while time.monotonic() < until:
        try:
            await terminal._receive(max(0.1, until - time.monotonic()))
            if len(terminal.output) > 1 << 20:
                del terminal.output[: len(terminal.output) - (1 << 16)]
        except TimeoutError:
            pass
    await terminal.type(b"\x03")
    await terminal.close()


async def type_keys(url: str, session_id: str, until: float, every: float, latencies: list[float]) -> None:
    terminal = await attach(url, session_id)
    index = 0
    while time.monotonic() < until:
        key = b"abcdefghij"[index % 10 : index % 10 + 1]
        index += 1
        start = len(terminal.output)
        began = time.perf_counter()
        await terminal.type(key)
        await terminal.read_until(key, start=start, timeout=10)
        latencies.append(time.perf_counter() - began)
        await asyncio.sleep(max(0.0, every - (time.perf_counter() - began)))
        if index % 60 == 0:
            await terminal.type(b"\x15")  # Ctrl-U: clear the line typed so far
    await terminal.close()


async def gather_reporting(coroutines) -> None:
    outcomes = await asyncio.gather(*coroutines, return_exceptions=True)
    failed = [repr(outcome)[:200] for outcome in outcomes if isinstance(outcome, BaseException)]
    if failed:
        print(f"terminals that failed: {len(failed)}, e.g. {failed[0]}", flush=True)


def docker_typist_process(session_id: str, until_in: float, every: float, out) -> None:
    """The floor: a key every `every` s typed into the instance's TTY through the Docker engine alone
    (no platform in the way), its echo timed; the latencies go to `out`."""
    import docker

    until = time.monotonic() + until_in
    tty = docker.from_env().api.attach_socket(
        f"playground-{session_id}", params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
    )
    raw = getattr(tty, "_sock", tty)
    raw.settimeout(10)
    latencies, index = [], 0
    while time.monotonic() < until:
        key = b"klmnopqrst"[index % 10 : index % 10 + 1]
        index += 1
        began = time.perf_counter()
        raw.sendall(key)
        seen = b""
        while key not in seen:
            seen += raw.recv(4096)
        latencies.append(time.perf_counter() - began)
        time.sleep(max(0.0, every - (time.perf_counter() - began)))
        if index % 60 == 0:
            raw.sendall(b"\x15")  # Ctrl-U
    raw.close()
    out.put(latencies)


def streamers_process(url: str, session_ids: list[str], tokens: dict[str, str], until_in: float) -> None:
    """The floods, in a process of their own: reading them must not slow the typists' own clock."""
    api.tokens.update(tokens)
    until = time.monotonic() + until_in
    asyncio.run(gather_reporting([stream(url, session_id, until) for session_id in session_ids]))


def requests_process(url: str, tokens: dict[str, str], creators: int, pollers: list[str], until_in: float, out) -> None:
    """The new sessions and the pollers, in a process of their own; its tally and timings go to `out`."""
    api.tokens.update(tokens)
    tally, until = Tally(), time.monotonic() + until_in
    with ThreadPoolExecutor(max(1, creators + len(pollers))) as pool:
        creating = [pool.submit(open_running, url, tally) for _ in range(creators)]
        for session_id in pollers:
            pool.submit(poll_existing, url, tally, session_id, until)
        created = [future.result() for future in creating]
    out.put((dict(tally.codes), tally.unavailable_without_retry_after, dict(tally.failures), created, dict(api.tokens)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--creators", type=int, default=40)
    parser.add_argument("--pollers", type=int, default=100)
    parser.add_argument("--streamers", type=int, default=20)
    parser.add_argument("--typists", type=int, default=20)
    parser.add_argument("--storm", type=float, default=30, help="seconds the load lasts")
    parser.add_argument("--type-every", type=float, default=0.05)
    parser.add_argument("--settle", type=float, default=15, help="seconds before measuring memory after the storm")
    parser.add_argument("--prepared", type=int, default=20, help="the platform's PLAYGROUND_PREPARED_SESSIONS")
    parser.add_argument("--rounds", type=int, default=2, help="storms one after another (memory after each)")
    args = parser.parse_args()
    tally, opened = Tally(), []
    try:
        print(f"opening {args.streamers + args.typists + 1} sessions for the terminals…", flush=True)
        wanted = args.streamers + args.typists + 1
        with ThreadPoolExecutor(10) as pool:
            ready = [session_id for session_id, _ in pool.map(lambda _: open_running(args.url, tally), range(wanted))]
        opened += [s for s in ready if s]
        if len(opened) < wanted:
            print(f"only {len(opened)} terminal sessions could be opened")
            return 1
        streamers, typists = opened[: args.streamers], opened[args.streamers : args.streamers + args.typists]
        floor = opened[-1]  # typed into through Docker alone
        # The sessions just opened took prepared instances: let the pool refill,
        # so that the storm meets the platform as a class would.
        waiting = wait_for_prepared(args.url, args.prepared, patience=120)
        print(f"prepared sessions waiting: {waiting}", flush=True)
        before = {"web": resident_mib("playground.server"), "worker": resident_mib("celery -A playground worker")}
        print(f"resident memory before: web {before['web']:.0f} MiB, worker {before['worker']:.0f} MiB")
        print(f"answers while opening them: {dict(sorted(tally.codes.items()))}")
        for number in range(1, args.rounds + 1):
            if number > 1:
                waiting = wait_for_prepared(args.url, args.prepared, patience=120)
                print(f"prepared sessions waiting: {waiting}", flush=True)
            created = storm(args, number, streamers, typists, floor, opened)
            # Each round meets the platform as the first did: its new sessions
            # are closed before memory is measured and the next round starts.
            close(args.url, created)
            time.sleep(args.settle)
            print(
                f"resident memory after round {number} (its sessions closed, {args.settle:.0f} s later): "
                f"web {resident_mib('playground.server'):.0f} MiB, "
                f"worker {resident_mib('celery -A playground worker'):.0f} MiB"
            )
    finally:
        print(f"closing {len(opened)} sessions…", flush=True)
        close(args.url, opened)
    return 0


def storm(args, number: int, streamers: list[str], typists: list[str], floor: str, opened: list[str]) -> list[str]:
    """One storm; prints its figures and returns the sessions it opened."""
    tally, watch = Tally(), Watch()
    print(f"storm {number}: {args.creators} new sessions, {args.pollers} pollers, terminals for {args.storm:.0f} s…")
    # Spawned, not forked: a fork copies whatever lock a thread of this
    # process holds at that instant (a storm hung so, once).
    context = multiprocessing.get_context("spawn")
    results, floor_latencies = context.Queue(), context.Queue()
    tokens = dict(api.tokens)
    pollers = [opened[index % len(opened)] for index in range(args.pollers)]
    load = [
        context.Process(target=streamers_process, args=(args.url, streamers, tokens, args.storm)),
        context.Process(target=requests_process, args=(args.url, tokens, args.creators, pollers, args.storm, results)),
        context.Process(target=docker_typist_process, args=(floor, args.storm, args.type_every, floor_latencies)),
    ]
    busy_before, started = machine_busy_seconds(), time.monotonic()
    for process in load:
        process.start()
    watch.thread.start()
    latencies: list[float] = []
    until = time.monotonic() + args.storm
    asyncio.run(gather_reporting([type_keys(args.url, s, until, args.type_every, latencies) for s in typists]))
    codes, no_retry_after, failures, created, more_tokens = results.get()
    through_docker = floor_latencies.get()
    busy = (machine_busy_seconds() - busy_before) / (time.monotonic() - started)
    for process in load:
        process.join()
    watch.stop.set()
    api.tokens.update(more_tokens)
    tally.codes.update(codes)
    tally.unavailable_without_retry_after += no_retry_after
    tally.failures.update(failures)

    running = [seconds for _, seconds in created if seconds is not None]
    server_errors = {code: n for code, n in tally.codes.items() if code >= 500}
    print(f"answers during the storm: {dict(sorted(tally.codes.items()))}")
    print(f"5xx: {server_errors or 'none'}; 503 without Retry-After: {tally.unavailable_without_retry_after}")
    print(f"connection failures: {dict(tally.failures) or 'none'}")
    print(
        f"new sessions running: {len(running)}/{args.creators}, "
        f"p50={statistics.median(running) if running else float('nan'):.2f}s "
        f"p95={percentile(running, 0.95):.2f}s max={max(running, default=float('nan')):.2f}s"
    )
    print(
        f"typists' echo: n={len(latencies)} p50={percentile(latencies, 0.5) * 1000:.1f}ms "
        f"p99={percentile(latencies, 0.99) * 1000:.1f}ms"
    )
    print(
        f"echo through Docker alone (the floor): n={len(through_docker)} "
        f"p50={percentile(through_docker, 0.5) * 1000:.1f}ms p99={percentile(through_docker, 0.99) * 1000:.1f}ms"
    )
    print(f"machine busy: {busy:.2f} of {os.cpu_count()} cores, on average over the storm")
    print(f"PostgreSQL connections, most seen: {watch.most}", flush=True)
    return [session_id for session_id, _ in created if session_id]


def close(url: str, sessions: list[str]) -> None:
    with ThreadPoolExecutor(20) as pool:
        list(pool.map(lambda s: request(Tally(), "DELETE", f"{url}/sessions/{s}"), sessions))


if __name__ == "__main__":
    sys.exit(main())
