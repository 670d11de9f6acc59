"""Faults that would disturb the test suite: PostgreSQL and the Docker engine
restarted under a running platform, with learners in their terminals.

Run the platform on its production stack, then this, as root (it restarts
PostgreSQL with pg_ctlcluster and the Docker engine with systemctl, or, where
the engine was started by hand, by signalling it and starting it again with
the same command line):

    export DATABASE_URL=postgres://playground:playground@127.0.0.1:5432/playground REDIS_URL=redis://127.0.0.1:6390/0
    PLAYGROUND_MAX_SESSIONS_PER_CLIENT=100 PLAYGROUND_SESSION_RATE=10000/min scripts/run

    .venv/bin/python bench/faults.py

It opens --sessions sessions, a terminal on each, and leaves a file in each
learner's home. Then, for each fault, while clients keep creating sessions
and looking at them:

- postgres: PostgreSQL is stopped for --pg-outage seconds and started again;
- docker: the Docker engine is restarted.

It prints, per fault, the answers by status (every 5xx must be a 503 with
Retry-After), whether every open terminal answered all along (postgres) or
came back on the same socket (docker), how long until new sessions ran again,
and whether every session is consistent afterwards: running in the API, in
the database's view and in Docker, with the learner's file still there. At
the end it closes every session it opened and checks that nothing of them
is left in Docker. The other faults (worker killed while provisioning, Redis
out for 30 s, web process crashed, beat down) are integration tests:
tests/integration/test_faults.py and tests/e2e/test_browser.py.
"""

import argparse
import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import django
import docker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")
django.setup()

from bench.load import Tally, open_running, request  # noqa: E402
from sessions_app.backends.docker import LABEL_SESSION  # noqa: E402
from tests.support.terminal_client import Terminal  # noqa: E402

MARKER = "kept-across-faults"


class Traffic:
    """Clients that go on creating (and closing) sessions and looking at the open ones, counting answers."""

    def __init__(self, url: str, session_ids: list[str]) -> None:
        self.url = url
        self.session_ids = session_ids
        self.tally = Tally()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=work, daemon=True) for work in (self.look, self.create)]

    def __enter__(self) -> "Traffic":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def look(self) -> None:
        while not self.stop.is_set():
            for session_id in self.session_ids:
                request(self.tally, "GET", f"{self.url}/sessions/{session_id}")
            self.stop.wait(0.2)

    def create(self) -> None:
        while not self.stop.is_set():
            created = request(self.tally, "POST", f"{self.url}/sessions", json={"playground_id": "default"})
            if created is not None and created.status_code == 201:
                request(Tally(), "DELETE", f"{self.url}/sessions/{created.json()['session_id']}")
            self.stop.wait(1)

    def report(self) -> list[str]:
        server_errors = {code: n for code, n in self.tally.codes.items() if code >= 500}
        problems = []
        if set(server_errors) - {503} or self.tally.unavailable_without_retry_after:
            problems.append(f"5xx other than 503 with Retry-After: {server_errors}")
        print(f"  answers: {dict(sorted(self.tally.codes.items()))}; connection failures: {dict(self.tally.failures)}")
        return problems


# --- The faults -------------------------------------------------------------


def postgres_cluster() -> list[str]:
    line = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=True).stdout.split("\n")[0]
    version, name = line.split()[:2]
    return [version, name]


def restart_docker_engine() -> None:
    """Restart the engine as its operator would: by systemd, or as it was started by hand."""
    if subprocess.run(["systemctl", "is-active", "--quiet", "docker"], capture_output=True).returncode == 0:
        subprocess.run(["systemctl", "restart", "docker"], check=True)
        return
    ours = os.readlink("/proc/self/ns/mnt")
    pid, argv = None, None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == "dockerd" and os.readlink(entry / "ns/mnt") == ours:
                pid, argv = int(entry.name), (entry / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        except OSError:
            continue
    if pid is None:
        raise SystemExit("no dockerd of this host found to restart")
    os.kill(pid, 15)
    while Path(f"/proc/{pid}").exists():
        time.sleep(0.2)
    with open("/var/log/dockerd.log", "ab") as log:
        subprocess.Popen([arg.decode() for arg in argv], stdout=log, stderr=log, start_new_session=True)


def wait_for_docker(client: docker.DockerClient, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.ping()
            return
        except Exception:
            time.sleep(0.5)
    raise SystemExit("the Docker engine did not come back")


# --- What must hold ---------------------------------------------------------


async def answers(terminal: Terminal, word: str, timeout: float = 20) -> bool:
    try:
        output = await terminal.run(f"echo {word}-$((1+1))", timeout=timeout)
    except (AssertionError, TimeoutError, OSError) as exc:
        print(f"  a terminal did not answer: {exc}")
        return False
    return f"{word}-2\r\n".encode() in output


def inconsistencies(url: str, client: docker.DockerClient, session_ids: list[str]) -> list[str]:
    problems = []
    for session_id in session_ids:
        response = request(Tally(), "GET", f"{url}/sessions/{session_id}")
        status = ((response.json().get("instance") or {}) if response is not None else {}).get("status")
        containers = client.containers.list(all=True, filters={"label": f"{LABEL_SESSION}={session_id}"})
        states = [container.status for container in containers]
        if status != "running" or states != ["running"]:
            problems.append(f"session {session_id[:8]}: API says {status}, Docker has {states}")
            continue
        kept = containers[0].exec_run(f"cat /home/learner/{MARKER}", user="1000").output
        if MARKER.encode() not in kept:
            problems.append(f"session {session_id[:8]}: the learner's file is gone ({kept!r})")
    return problems


def until_sessions_run(url: str, started: float, timeout: float = 120) -> float | None:
    """Seconds from `started` until a new session runs again (it is closed at once)."""
    while time.monotonic() - started < timeout:
        session_id, seconds = open_running(url, Tally(), timeout=30)
        if session_id:
            request(Tally(), "DELETE", f"{url}/sessions/{session_id}")
        if seconds is not None:
            return time.monotonic() - started
    return None


async def postgres_outage(url: str, client, session_ids, terminals, outage: float) -> list[str]:
    version, name = postgres_cluster()
    problems = []
    with Traffic(url, session_ids) as traffic:
        await asyncio.sleep(2)
        subprocess.run(["pg_ctlcluster", version, name, "stop", "-m", "fast"], check=True)
        started = time.monotonic()
        rounds = 0
        while time.monotonic() - started < outage:
            rounds += 1
            results = await asyncio.gather(*[answers(t, f"pg-down-{rounds}") for t in terminals])
            if not all(results):
                problems.append(f"{results.count(False)} terminals did not answer while PostgreSQL was down")
            await asyncio.sleep(2)
        subprocess.run(["pg_ctlcluster", version, name, "start"], check=True)
        back = time.monotonic()
        again = await asyncio.to_thread(until_sessions_run, url, back)
        await asyncio.sleep(2)
    print(f"  PostgreSQL down {back - started:.1f} s; terminals answered {rounds} rounds while it was down")
    print(f"  a new session ran again {again:.1f} s after PostgreSQL was back" if again else "  no new session ran")
    problems += traffic.report()
    if again is None:
        problems.append("no new session ran after PostgreSQL came back")
    return problems


async def docker_restart(url: str, client, session_ids, terminals) -> list[str]:
    problems = []
    with Traffic(url, session_ids) as traffic:
        await asyncio.sleep(2)
        started = time.monotonic()
        await asyncio.to_thread(restart_docker_engine)
        await asyncio.to_thread(wait_for_docker, client)
        engine_back = time.monotonic() - started
        # The same sockets: each terminal reattaches to its restarted instance.
        reattached = await asyncio.gather(*[answers(t, "engine-back", timeout=120) for t in terminals])
        terminals_back = time.monotonic() - started
        again = await asyncio.to_thread(until_sessions_run, url, started)
        await asyncio.sleep(2)
    print(f"  engine answering again after {engine_back:.1f} s")
    print(f"  {reattached.count(True)}/{len(terminals)} answered on their socket after {terminals_back:.1f} s")
    print(f"  a new session ran {again:.1f} s after the restart began" if again else "  no new session ran")
    problems += traffic.report()
    if not all(reattached):
        problems.append(f"{reattached.count(False)} terminals did not come back")
    if again is None:
        problems.append("no new session ran after the engine restart")
    return problems


async def run(args) -> int:
    client = docker.from_env()
    session_ids: list[str] = []
    failures: dict[str, list[str]] = {}
    try:
        for _ in range(args.sessions):
            session_id, seconds = await asyncio.to_thread(open_running, args.url, Tally())
            if session_id:
                session_ids.append(session_id)
            if seconds is None:
                raise SystemExit("could not open the sessions to begin with")
        terminals = [await Terminal.open(args.url, s) for s in session_ids]
        for terminal in terminals:
            await terminal.run(f"echo {MARKER} > ~/{MARKER}")
        for fault in args.faults:
            print(f"{fault}:", flush=True)
            if fault == "postgres":
                problems = await postgres_outage(args.url, client, session_ids, terminals, args.pg_outage)
            else:
                problems = await docker_restart(args.url, client, session_ids, terminals)
            deadline = time.monotonic() + 120
            while (late := inconsistencies(args.url, client, session_ids)) and time.monotonic() < deadline:
                await asyncio.sleep(1)
            failures[fault] = problems + late
            print(f"  every session consistent: {'yes' if not late else late}")
        for terminal in terminals:
            await terminal.close()
    finally:
        for session_id in session_ids:
            request(Tally(), "DELETE", f"{args.url}/sessions/{session_id}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        left = [
            kind
            for session_id in session_ids
            for kind, found in (
                ("container", client.containers.list(all=True, filters={"label": f"{LABEL_SESSION}={session_id}"})),
                ("volume", client.volumes.list(filters={"label": f"{LABEL_SESSION}={session_id}"})),
            )
            if found
        ]
        if not left:
            break
        time.sleep(1)
    print(f"left behind after closing: {left or 'nothing'}")
    for fault, problems in failures.items():
        print(f"{fault}: {'held' if not problems else 'FAILED: ' + '; '.join(problems)}")
    return 1 if left or any(failures.values()) else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--sessions", type=int, default=3)
    parser.add_argument("--pg-outage", type=float, default=15, help="seconds PostgreSQL stays down")
    parser.add_argument("faults", nargs="*", help="postgres, docker or both (the default)")
    args = parser.parse_args()
    args.faults = args.faults or ["postgres", "docker"]
    if set(args.faults) - {"postgres", "docker"}:
        parser.error("the faults are postgres and docker")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
