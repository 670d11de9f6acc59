"""In-memory backends for unit tests: no Docker, but the same contract.

The siblings of FakeBackend fail in the ways a real engine does, so tests can
see what users see when provisioning goes wrong.
"""

import asyncio
import io
import posixpath
import tarfile
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
    FileEntry,
    FilesError,
    HostLook,
    ImageMissing,
    InstanceStats,
    OutOfAddresses,
    PathInfo,
    Poll,
    PollResult,
    StartResult,
    TransientBackendError,
    Tty,
    Upload,
)
from sessions_app.errors import OutOfCapacity
from sessions_app.models import Instance
from sessions_app.subnets import subnet_release, subnet_reserve

FAKE_HOME = "/home/learner"
SYMLINK_HOPS = 40  # as Linux: a longer chain of links is a loop


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
class FakeNode:
    """A file, directory or symbolic link of a fake instance's filesystem."""

    type: str  # "file", "dir" or "symlink"
    data: bytes = b""
    target: str = ""  # a symbolic link's
    learner_may: str = "rw"  # "r", "rw" or "": what the learner may do with it
    mtime: float = 1_700_000_000.0


def _default_files() -> dict[str, FakeNode]:
    return {
        "/": FakeNode("dir", learner_may="r"),
        "/etc": FakeNode("dir", learner_may="r"),
        "/etc/hostname": FakeNode("file", b"node1\n", learner_may="r"),
        "/home": FakeNode("dir", learner_may="r"),
        FAKE_HOME: FakeNode("dir"),
        "/tmp": FakeNode("dir"),
    }


class FakeFiles(dict[str, FakeNode]):
    """A fake instance's filesystem: absolute path -> node."""

    def resolve(self, path: str) -> str | None:
        """`realpath -e` of an absolute path: None where nothing is."""
        parts, resolved, hops = path.split("/"), "/", 0
        while parts:
            part = parts.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                resolved = posixpath.dirname(resolved)
                continue
            candidate = posixpath.join(resolved, part)
            node = self.get(candidate)
            if node is None or "r" not in self[resolved].learner_may:
                return None
            if node.type == "symlink":
                hops += 1
                if hops > SYMLINK_HOPS:
                    return None
                parts = node.target.split("/") + parts
                resolved = "/" if node.target.startswith("/") else resolved
                continue
            if parts and node.type != "dir" and any(p not in ("", ".") for p in parts):
                return None
            resolved = candidate
        return resolved

    def children(self, directory: str) -> list[str]:
        return sorted(path for path in self if path != "/" and posixpath.dirname(path) == directory)

    def tar(self, directory: str) -> bytes:
        """A tar of the directory, its members named from the directory's own name."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            parent = posixpath.dirname(directory)
            for path in [directory, *sorted(p for p in self if p.startswith(directory + "/"))]:
                node = self[path]
                member = tarfile.TarInfo(posixpath.relpath(path, parent))
                member.mtime = int(node.mtime)
                if node.type == "dir":
                    member.type = tarfile.DIRTYPE
                    archive.addfile(member)
                elif node.type == "symlink":
                    member.type, member.linkname = tarfile.SYMTYPE, node.target
                    archive.addfile(member)
                else:
                    member.size = len(node.data)
                    archive.addfile(member, io.BytesIO(node.data))
        return buffer.getvalue()


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
    images: set[str] = field(default_factory=set)  # what its inner Docker holds (its playground's preload images)
    ports_looked_up: int = 0  # calls of listening_ports()
    measures: int = 0  # how many times stats() measured it
    files: FakeFiles = field(default_factory=lambda: FakeFiles(_default_files()))
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
    # What exec() runs in the containers made from now on (FakeContainer.commands), when set.
    commands: Callable[[list[str], bytes], list[ExecEvent]] | None = None
    # The names of the hosts whose engine does not answer look().
    unreachable: set[str] = field(default_factory=set)

    def reset(self) -> None:
        with self.lock:
            self.containers.clear()
            self.disks.clear()
            self.calls.clear()
            self.commands = None
            self.unreachable.clear()


engine = FakeEngine()


class FakeBackend(Backend):
    def look(self, images: list[str]) -> HostLook:
        if self.engine.name in engine.unreachable:
            raise TransientBackendError(log_message=f"the fake engine of {self.engine.name} does not answer")
        return HostLook(images=list(images))

    def start(self, instance: Instance) -> StartResult:
        name = f"playground-{instance.session_id}"
        try:
            subnet_reserve(session_id=instance.session_id)  # as the Docker backend's network does
        except OutOfCapacity as exc:
            raise OutOfAddresses(log_message=exc.log_message) from exc
        with engine.lock:
            engine.calls.append(("start", instance.session_id))
            if name not in engine.containers:
                made = FakeContainer(name=name, storage=instance.storage_token)
                if engine.commands is not None:
                    made.commands = engine.commands
                engine.containers[name] = made
            container = engine.containers[name]
            engine.disks.add(instance.storage_token)
            container.running = True
            container.starts += 1
            container.images.update(instance.session.playground.preload_images or [])
            number = list(engine.containers).index(name) + 2
            container.address = f"10.0.{number // 250}.{number % 250}"
        return StartResult(
            container_id=f"fake-{instance.session_id}",
            container_name=name,
            docker_host=self.engine.name or "fake",
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
        subnet_release(session_id=session_id)

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

    def home(self, instance: Instance) -> str:
        return FAKE_HOME

    def files_stat(self, instance: Instance, path: str) -> PathInfo | None:
        files = self._running(instance).files
        resolved = files.resolve(path)
        if resolved is None:
            return None
        node = files[resolved]
        return PathInfo(resolved, node.type, "r" in node.learner_may, "w" in node.learner_may)

    def files_list(self, instance: Instance, path: str, *, limit: int) -> list[FileEntry]:
        files = self._running(instance).files
        if "r" not in files[path].learner_may:
            raise FilesError(f"find: '{path}': Permission denied")
        return [
            FileEntry(
                posixpath.basename(child),
                files[child].type,
                len(files[child].data or files[child].target.encode()),
                files[child].mtime,
            )
            for child in files.children(path)[:limit]
        ]

    def files_read(self, instance: Instance, path: str, *, timeout: float) -> Iterator[bytes]:
        files = self._running(instance).files
        data = files.tar(path) if files[path].type == "dir" else files[path].data
        for start in range(0, len(data), 65536):
            yield data[start : start + 65536]

    def files_write(self, instance: Instance, directory: str, uploads: list[Upload], *, timeout: float) -> None:
        files = self._running(instance).files
        for upload in uploads:
            path = posixpath.join(directory, upload.name)
            if "w" not in files[directory].learner_may:
                raise FilesError(f"tar: {upload.name}: Cannot open: Permission denied")
            if path in files and files[path].type == "dir":
                raise FilesError(f"tar: {upload.name}: Cannot open: Is a directory")
            files[path] = FakeNode("file", upload.file.read(upload.size), mtime=time.time())

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
