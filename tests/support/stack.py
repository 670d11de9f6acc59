"""Fixtures for tests on the real stack: Docker engine, PostgreSQL, Redis, Daphne and a worker.

Everything these tests make in Docker carries the label org.playground.test,
and the session-scoped docker_client fixture removes all of it at the end.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import docker
import pytest
import redis
from django.conf import settings
from django.db import connection


def _flush_despite_deadlocks() -> None:
    """Let a test's closing flush survive PostgreSQL choosing it as a deadlock victim.

    The worker and Daphne of these tests keep reading sessions while a test's
    rows are truncated at its end; the TRUNCATE's table-by-table locks can
    then deadlock with such a read, and PostgreSQL aborts one of the two.
    Aborted, the flush is simply run again.
    """
    from django.test.testcases import TransactionTestCase

    flush = TransactionTestCase._fixture_teardown

    def flush_again_on_deadlock(self) -> None:
        for attempt in range(5):
            try:
                return flush(self)
            except Exception as exc:
                if not deadlocked(exc) or attempt == 4:
                    raise
                time.sleep(0.2)

    TransactionTestCase._fixture_teardown = flush_again_on_deadlock


def deadlocked(exc: BaseException | None) -> bool:
    """Whether PostgreSQL aborted this, or what it was raised from, as a deadlock's victim
    (the flush command raises its own CommandError from the database's error)."""
    from django.db.utils import OperationalError

    while exc is not None:
        if isinstance(exc, OperationalError) and "deadlock detected" in str(exc):
            return True
        exc = exc.__cause__
    return False


_flush_despite_deadlocks()

TEST_LABEL = "org.playground.test"
PLATFORM_ID = f"test-{uuid.uuid4().hex[:8]}"
PORTS_DOMAIN = "ports.localhost"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


def wait_for(predicate, *, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Poll until predicate() returns something truthy, and return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def remove_labelled(client: docker.DockerClient) -> None:
    """Remove what the tests made; a removal the platform already started is waited for.

    Instances of another test run on the same engine (another checkout's) are
    left to that run: they carry its platform id.
    """
    from sessions_app.backends.docker import LABEL_PLATFORM

    selector = {"label": TEST_LABEL}

    def ours(kind: list) -> list:
        return [item for item in kind if (item.attrs.get("Labels") or {}).get(LABEL_PLATFORM) in (None, PLATFORM_ID)]

    def containers() -> list:
        return [
            container
            for container in client.containers.list(all=True, filters=selector)
            if container.labels.get(LABEL_PLATFORM) in (None, PLATFORM_ID)
        ]

    def remove_all() -> bool:
        for kind in (containers(), ours(client.volumes.list(filters=selector))):
            for item in kind:
                with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                    item.remove(force=True, **({"v": True} if hasattr(item, "wait") else {}))
        for network in ours(client.networks.list(filters=selector)):
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                network.remove()
        return not (
            containers() or ours(client.volumes.list(filters=selector)) or ours(client.networks.list(filters=selector))
        )

    wait_for(remove_all, timeout=60, interval=0.5, what="the tests' Docker objects to be removed")


@pytest.fixture(scope="session")
def docker_client():
    client = docker.from_env(timeout=60)
    yield client
    remove_labelled(client)
    release_disks()


def release_disks() -> None:
    """Release the bounded disks left in the tests' own disk folder (a test that
    removed an instance's volume behind the platform's back leaves its disk)."""
    from sessions_app.backends.disks import LoopDisks

    disks = LoopDisks()
    if disks.unavailable_reason(settings.DOCKER_HOST) is None:
        for token in disks.tokens_present():
            disks.release(token)


@pytest.fixture(scope="session")
def real_services():
    """The integration tests need PostgreSQL and Redis; scripts/test provides both."""
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.fail("integration tests need DATABASE_URL (PostgreSQL) and REDIS_URL: run scripts/test")


class PlatformProcess:
    """One of the platform's processes (worker, beat, Daphne), run from this checkout.

    It gets a process group of its own, so that it can be killed whole, pool
    processes included, and its output goes to test-artifacts/<name>.log.
    """

    def __init__(self, env: dict[str, str], name: str) -> None:
        self.env = env
        self.name = name
        self.process: subprocess.Popen | None = None
        self.log_path = ARTIFACTS / f"{name}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        return True

    def start(self):
        ARTIFACTS.mkdir(exist_ok=True)
        self.log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", *self.command()],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(self.ready, timeout=30, what=f"{self.name} to start")
        return self

    def kill(self) -> None:
        """Kill the process and its children at once, as a crash or an OOM kill would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


class Worker(PlatformProcess):
    """A real `celery -A playground worker` on the test database."""

    def __init__(self, env: dict[str, str], name: str, queue: str = "celery,host.local", pool: str = "prefork") -> None:
        super().__init__(env, f"worker-{name}")
        self.hostname = name
        self.queue = queue
        self.pool = pool  # the Procfile's is "threads"

    def command(self) -> list[str]:
        return [
            *("celery", "-A", "playground", "worker", "--loglevel=INFO", f"--pool={self.pool}", "--concurrency=4"),
            *(f"--hostname={self.hostname}@%h", f"--queues={self.queue}", "--without-gossip", "--without-mingle"),
        ]

    def ready(self) -> bool:
        return " ready." in self.log_path.read_text()


@pytest.fixture(scope="session")
def worker_env(django_db_setup, real_services) -> dict[str, str]:
    """The environment of a worker that sees the test database and labels its objects."""
    db = connection.settings_dict
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "PLAYGROUND_EXTRA_LABELS": f"{TEST_LABEL}=1",
        # The reconciler of a test worker touches only what this run made.
        "PLAYGROUND_PLATFORM_ID": PLATFORM_ID,
        # Every test session comes from 127.0.0.1.
        "PLAYGROUND_SESSION_RATE": "100000/min",
        "PLAYGROUND_MAX_SESSIONS_PER_CLIENT": "1000",
        # A small pool of prepared sessions: made at worker start, not more.
        "PLAYGROUND_PREPARED_SESSIONS": "2",
        # A task whose worker was killed is handed out again this soon.
        "PLAYGROUND_BROKER_VISIBILITY_TIMEOUT": "5",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        # Each job's receipt and end in the workers' logs, which a failed test shows.
        "CELERY_LOG_LEVEL": "INFO",
        # Ports also at {port}-{session}.ports.localhost (the tests send that Host).
        "PLAYGROUND_PORTS_DOMAIN": PORTS_DOMAIN,
    }


FIRST_HOST = "local"  # the Docker host made by a migration, whose queue is host.local


@pytest.fixture(scope="session")
def worker(worker_env):
    running = Worker(worker_env, f"main-{uuid.uuid4().hex[:6]}").start()
    yield running
    running.stop()


@pytest.fixture
def private_queue():
    """A queue of this test's own, so that only the workers it starts take its jobs."""
    from playground.celery import app

    previous = app.conf.task_default_queue
    app.conf.task_default_queue = f"test-{uuid.uuid4().hex[:8]}"
    yield app.conf.task_default_queue
    app.conf.task_default_queue = previous


@pytest.fixture
def start_worker(worker_env, private_queue, platform):
    """Start workers on the test's private queue, which serve the Docker host alone (renamed
    for the test, so that the session's worker does not take its jobs); stopped at its end."""
    from sessions_app.models import DockerHost

    DockerHost.objects.filter(name=FIRST_HOST).update(name=private_queue)
    started: list[Worker] = []

    def start() -> Worker:
        queues = f"{private_queue},host.{private_queue}"
        started.append(Worker(worker_env, f"extra-{uuid.uuid4().hex[:6]}", queues).start())
        return started[-1]

    yield start
    for extra in started:
        extra.stop()


@pytest.fixture
def platform(transactional_db, settings, docker_client, real_services):
    """The database state every integration test starts from, with test labels on Docker objects."""
    from sessions_app.models import DockerHost, Playground

    settings.PLAYGROUND_EXTRA_LABELS = {TEST_LABEL: "1"}
    settings.PLAYGROUND_PLATFORM_ID = PLATFORM_ID
    Playground.objects.get_or_create(pk="default")
    DockerHost.objects.get_or_create(name=FIRST_HOST, defaults={"url": settings.DOCKER_HOST})
    return settings


class Beat(PlatformProcess):
    """A real `celery -A playground beat`, sending the scheduled tasks."""

    def __init__(self, env: dict[str, str], schedule_dir: Path) -> None:
        super().__init__(env, "beat")
        self.schedule = schedule_dir / "celerybeat-schedule"

    def command(self) -> list[str]:
        return ["celery", "-A", "playground", "beat", "--loglevel=INFO", f"--schedule={self.schedule}"]


@pytest.fixture
def beat(worker_env, worker, tmp_path):
    """Celery beat for the length of one test, with a worker to run what it sends."""
    running = Beat(worker_env, tmp_path).start()
    yield running
    running.stop()


class WebServer(PlatformProcess):
    """The platform's ASGI application under a real Daphne, on the test database."""

    serving: "set[WebServer]" = set()  # those running now, whose stacks a failed test shows

    def __init__(self, env: dict[str, str], port: int | None = None, name: str = "daphne") -> None:
        super().__init__(env, name)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return ["playground.server", "-b", "127.0.0.1", "-p", str(self.port), "playground.asgi:application"]

    def ready(self) -> bool:
        with socket.socket() as client:
            return client.connect_ex(("127.0.0.1", self.port)) == 0

    def start(self) -> "WebServer":
        super().start()
        WebServer.serving.add(self)
        return self

    def stop(self) -> None:
        WebServer.serving.discard(self)
        super().stop()

    def thread_stacks(self) -> str:
        """Where each of the server's threads and tasks is now (playground.server prints them on SIGUSR1)."""
        if self.process is None or self.process.poll() is not None:
            return "(not running)"
        self.log.flush()
        seen = self.log_path.stat().st_size
        self.process.send_signal(signal.SIGUSR1)
        time.sleep(1)
        with self.log_path.open(errors="replace") as log:
            log.seek(seen)
            return log.read()


class PrivateRedis:
    """A redis-server of a test's own, to stop and start again (the shared one serves everyone)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> "PrivateRedis":
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--daemonize", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        wait_for(lambda: self.answers(client), timeout=10, what=f"redis-server on port {self.port}")
        return self

    def answers(self, client: redis.Redis) -> bool:
        assert self.process.poll() is None, "redis-server exited"
        try:
            return client.ping()
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def web(worker_env, worker):
    """Daphne serving the API and the terminal WebSocket, with a worker behind it."""
    server = WebServer(worker_env).start()
    yield server
    server.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test of the real stack shows the end of the logs of the
    platform's processes (workers, Daphne, beat) that wrote during it, and
    where the threads of each running Daphne are: CI keeps only what the run
    printed."""
    report = yield
    if report.failed and call.when == "call" and ARTIFACTS.is_dir():
        began = call.start - 5
        for log in sorted(ARTIFACTS.glob("*.log")):
            if log.stat().st_mtime >= began:
                tail = log.read_text(errors="replace").splitlines()[-40:]
                report.sections.append((f"end of {log.relative_to(ROOT)}", "\n".join(tail)))
        for server in sorted(WebServer.serving, key=lambda server: server.name):
            report.sections.append((f"threads and tasks of {server.name} now", server.thread_stacks()))
    return report
