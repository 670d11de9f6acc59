"""In-memory backends for unit tests: no Docker, but the same contract.

The siblings of FakeBackend fail in the ways a real engine does, so tests can
see what users see when provisioning goes wrong.
"""

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from sessions_app.backends.base import (
    AttachError,
    Backend,
    ExecEvent,
    ExecExit,
    ExecOutput,
    ImageMissing,
    InstanceStats,
    Poll,
    PollResult,
    StartResult,
    TransientBackendError,
    Tty,
)
from sessions_app.models import Instance


class FakeAttachment:
    """One attachment to a fake TTY. Fed through its event loop, so that a
    service running in another thread (a removal) may end it."""

    def __init__(self, container: "FakeContainer") -> None:
        self.container = container
        self.loop = asyncio.get_running_loop()
        self.reader = asyncio.StreamReader()

    def feed(self, data: bytes) -> None:
        self.loop.call_soon_threadsafe(self.reader.feed_data, data)

    def end(self) -> None:
        self.loop.call_soon_threadsafe(self.reader.feed_eof)

    # The writer's side (see base.Tty): what is typed is echoed to every
    # attachment, as a terminal does.

    def write(self, data: bytes) -> None:
        self.container.typed += data
        self.container.output(data)

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        if self in self.container.attachments:
            self.container.attachments.remove(self)
        self.end()


@dataclass
class FakeContainer:
    name: str
    storage: str = ""  # the storage token of its disk
    running: bool = True
    starts: int = 0
    address: str | None = None
    size: tuple[int, int] | None = None  # (cols, rows) of its TTY
    typed: bytes = b""  # everything written to its TTY
    attachments: list[FakeAttachment] = field(default_factory=list)
    # What exec() runs: (cmd, stdin) -> the events; by default `cat` of stdin.
    commands: Callable[[list[str], bytes], list[ExecEvent]] = field(
        default=lambda cmd, stdin: [ExecOutput("stdout", stdin), ExecExit(exit_code=0, timed_out=False)]
    )
    ran: list[list[str]] = field(default_factory=list)  # every cmd exec() was given
    listening: set[int] = field(default_factory=set)  # ports its "servers" listen on
    ports_looked_up: int = 0  # calls of listening_ports()
    measures: int = 0  # how many times stats() measured it
    stats: InstanceStats = field(
        default_factory=lambda: InstanceStats(
            cpu_percent=1.5,
            cpu_seconds=2.0,
            memory_bytes=40 << 20,
            memory_limit_bytes=2 << 30,
            pids=30,
            pids_limit=1000,
            network_rx_bytes=1000,
            network_tx_bytes=500,
            disk_read_bytes=0,
            disk_write_bytes=4096,
            storage_used_bytes=1 << 20,
            storage_size_bytes=10 << 30,
        )
    )

    def output(self, data: bytes) -> None:
        """Something the "shell" prints: every attachment sees it."""
        for attachment in self.attachments:
            attachment.feed(data)

    def stop(self) -> None:
        """The container stops: every attachment ends."""
        self.running = False
        for attachment in self.attachments:
            attachment.end()
        self.attachments.clear()


@dataclass
class FakeEngine:
    """What the fake "engine" holds, shared by every fake backend in the process."""

    containers: dict[str, FakeContainer] = field(default_factory=dict)
    disks: set[str] = field(default_factory=set)  # storage tokens
    calls: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.containers.clear()
            self.disks.clear()
            self.calls.clear()


engine = FakeEngine()


class FakeBackend(Backend):
    def start(self, instance: Instance) -> StartResult:
        name = f"playground-{instance.session_id}"
        with engine.lock:
            engine.calls.append(("start", instance.session_id))
            container = engine.containers.setdefault(name, FakeContainer(name=name, storage=instance.storage_token))
            engine.disks.add(instance.storage_token)
            container.running = True
            container.starts += 1
            number = list(engine.containers).index(name) + 2
            container.address = f"10.0.{number // 250}.{number % 250}"
        return StartResult(
            container_id=f"fake-{instance.session_id}",
            container_name=name,
            docker_host="fake",
            ip_address=container.address,
        )

    def poll(self, instance: Instance) -> Poll:
        container = engine.containers.get(f"playground-{instance.session_id}")
        if container is None:
            return Poll(PollResult.MISSING)
        if not container.running:
            return Poll(PollResult.STOPPED)
        return Poll(PollResult.RUNNING, container.address)

    def remove(self, instance: Instance) -> None:
        self.remove_orphan(instance.session_id)
        self.release_storage(instance.storage_token)

    def remove_orphan(self, session_id: str) -> None:
        with engine.lock:
            engine.calls.append(("remove", session_id))
            container = engine.containers.pop(f"playground-{session_id}", None)
            if container is not None:
                engine.disks.discard(container.storage)
        if container is not None:
            container.stop()

    def storage_present(self) -> set[str]:
        return set(engine.disks)

    def release_storage(self, token: str) -> None:
        engine.disks.discard(token)

    def sessions_present(self) -> set[str]:
        return {name.removeprefix("playground-") for name in engine.containers}

    def prepare(self, instance: Instance) -> bool:
        engine.calls.append(("prepare", instance.session_id))
        self.start(instance)
        return True

    def exec(self, instance: Instance, cmd: list[str], *, stdin: bytes, timeout: float) -> Iterator[ExecEvent]:
        container = self._running(instance)
        container.ran.append(cmd)
        yield from container.commands(cmd, stdin)

    def stats(self, instance: Instance) -> InstanceStats:
        container = self._running(instance)
        container.measures += 1
        return container.stats

    def listening_ports(self, instance: Instance) -> set[int]:
        container = self._running(instance)
        container.ports_looked_up += 1
        return set(container.listening)

    async def attach(self, instance: Instance) -> Tty:
        container = self._running(instance)
        attachment = FakeAttachment(container)
        container.attachments.append(attachment)
        return Tty(reader=attachment.reader, writer=attachment)

    async def resize(self, instance: Instance, *, cols: int, rows: int) -> None:
        self._running(instance).size = (cols, rows)

    @staticmethod
    def _running(instance: Instance) -> FakeContainer:
        container = engine.containers.get(f"playground-{instance.session_id}")
        if container is None or not container.running:
            raise AttachError(f"the instance of session {instance.session_id} does not run")
        return container


class FailingBackend(FakeBackend):
    """The engine refuses the instance for good (e.g. the image is missing)."""

    def start(self, instance: Instance) -> StartResult:
        engine.calls.append(("start", instance.session_id))
        raise ImageMissing(f"The image {instance.image} is not available on the Docker host.")


class NeverStartingBackend(FakeBackend):
    """The engine never answers: every attempt is a transient failure."""

    def start(self, instance: Instance) -> StartResult:
        engine.calls.append(("start", instance.session_id))
        raise TransientBackendError(log_message="fake engine unreachable")


class SlowBackend(FakeBackend):
    """Starts, but takes its time, as a loaded engine does."""

    delay = 0.5

    def start(self, instance: Instance) -> StartResult:
        time.sleep(self.delay)
        return super().start(instance)


class StatsFailingBackend(FakeBackend):
    """Runs instances, but measuring them fails (an engine too loaded to answer, or an answer it cannot read)."""

    failure: Exception = AttachError("fake engine: stats timed out")

    def stats(self, instance: Instance) -> InstanceStats:
        self._running(instance).measures += 1
        raise self.failure
