"""The seam between sessions and whatever runs their instances.

Like JupyterHub's Spawner, a backend is told about one instance at a time and
keeps no state of its own that the database does not also hold: every method
must work in a fresh process, after a crash, and when called twice.
"""

import asyncio
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, BinaryIO

from sessions_app.errors import PlaygroundError

if TYPE_CHECKING:
    from sessions_app.backends import Engine
    from sessions_app.models import Instance


class BackendError(PlaygroundError):
    """The backend could not do what was asked, and trying again will not help."""

    reason = "backend_error"
    message = "The instance could not be started."


class ImageMissing(BackendError):
    reason = "image_missing"
    message = "The instance's image is not available on the Docker host."


class DaemonNotReady(BackendError):
    reason = "daemon_not_ready"
    message = "The Docker daemon inside the instance did not start."


class ImagePreloadFailed(BackendError):
    reason = "preload_failed"
    message = "An image this playground preloads could not be pulled into the instance."


class OutOfAddresses(BackendError):
    reason = "out_of_addresses"
    message = "The playground has no network address left for another instance."


class TransientBackendError(BackendError):
    """A passing failure (engine busy or unreachable, a removal in progress): retry later."""

    reason = "backend_unavailable"
    message = "The Docker engine is not answering right now."


@dataclass(frozen=True)
class StartResult:
    container_id: str
    container_name: str
    docker_host: str
    ip_address: str | None


@dataclass(frozen=True)
class HostLook:
    """What a host's worker saw of its engine."""

    images: list[str]  # of the images asked about, those it has


class PollResult(StrEnum):
    RUNNING = "running"  # the container runs (whether its daemon answers is not checked)
    STOPPED = "stopped"  # the container exists but does not run
    MISSING = "missing"  # nothing of the instance exists


@dataclass(frozen=True)
class Poll:
    state: PollResult
    ip_address: str | None = None  # where it runs now; None unless RUNNING


class AttachError(Exception):
    """The instance's TTY cannot be reached (not running, engine unreachable)."""


@dataclass(frozen=True)
class ExecOutput:
    """A piece of what a command run by exec() wrote."""

    stream: str  # "stdout" or "stderr"
    data: bytes


@dataclass(frozen=True)
class ExecExit:
    """The end of a command run by exec(): always its last event."""

    exit_code: int
    timed_out: bool  # killed when its time ran out


ExecEvent = ExecOutput | ExecExit


def listening_in(proc_net_tcp: str) -> set[int]:
    """The ports listened on, other than on loopback, in /proc/net/tcp and tcp6 text.

    Each line gives `local_address` as hex address:port; an address is kept
    in 32-bit words of the host's byte order (little-endian here).
    """
    ports = set()
    for line in proc_net_tcp.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[3] != "0A" or ":" not in fields[1]:  # 0A: LISTEN
            continue
        address, _, port = fields[1].partition(":")
        try:
            packed = b"".join(bytes.fromhex(address[i : i + 8])[::-1] for i in range(0, len(address), 8))
            ip = ipaddress.ip_address(packed)
            number = int(port, 16)
        except ValueError:
            continue
        mapped = getattr(ip, "ipv4_mapped", None)
        if not (ip.is_loopback or (mapped is not None and mapped.is_loopback)) and number:
            ports.add(number)
    return ports


@dataclass(frozen=True)
class InstanceStats:
    """What a running instance uses now, and its limits."""

    cpu_percent: float  # of one CPU, over the last moment (200 = two CPUs busy)
    cpu_seconds: float  # since the container started
    memory_bytes: int  # without the page cache it could drop
    memory_limit_bytes: int
    pids: int
    pids_limit: int
    network_rx_bytes: int
    network_tx_bytes: int
    disk_read_bytes: int
    disk_write_bytes: int
    storage_used_bytes: int | None  # of its inner /var/lib/docker; None when unknown
    storage_size_bytes: int | None


class FilesError(Exception):
    """A file operation failed inside the instance (the learner may not, the disk is full):
    its message is what the instance said."""


@dataclass(frozen=True)
class PathInfo:
    """What a path names in an instance, every symbolic link on its way resolved (files_stat)."""

    path: str  # absolute, without symbolic links, `.` or `..`
    type: str  # "file", "dir" or "other" (a device, a socket, a pipe)
    readable: bool  # by the learner
    writable: bool


@dataclass(frozen=True)
class FileEntry:
    """One entry of a directory (files_list), as it is: a symbolic link is not followed."""

    name: str
    type: str  # "file", "dir", "symlink" or "other"
    size: int  # bytes; a symbolic link's is the length of its target
    mtime: float  # seconds since the epoch


@dataclass(frozen=True)
class Upload:
    """A file to write into an instance (files_write): `size` bytes read from `file`."""

    name: str  # a plain file name: no "/", not "." or ".."
    size: int
    file: BinaryIO


@dataclass(frozen=True)
class Tty:
    """An attached TTY: output arrives on `reader`, input goes to `writer`.

    The writer takes bytes (write, then `await drain()`) and `close()` ends
    this attachment only; the instance and its shell go on.
    """

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


class Backend:
    """Runs one DIND instance per session, on one Docker host.

    A backend is made for one host's engine (sessions_app.backends.Engine:
    its name, address and TLS folder; the name is empty for the platform's
    only engine of old, DOCKER_HOST), one per process.

    look(images)
        Whether the engine answers, and which of `images` it has: a
        HostLook. Raises TransientBackendError when it does not answer.

    start(instance)
        Make the instance's container exist and run, and return once the Docker
        daemon inside it answers and holds its playground's preload images
        (pulled where missing; ImagePreloadFailed when one cannot be). Idempotent: when the container (or its
        network or volume) already exists, for instance because an earlier
        attempt died half-way, it is adopted, never duplicated. Raises
        TransientBackendError when a retry may succeed and BackendError when
        it will not; in both cases whatever was created stays in place for
        the next attempt or for remove().
    poll(instance)
        Report whether the container runs, exists stopped, or is missing,
        and, when it runs, its IP address now (it changes when the engine
        restarts the container).
    remove(instance)
        Remove the container, its volume and its network. Returns once they
        are gone; removing what is already gone is not an error. Raises
        TransientBackendError while a removal is still in progress.
    sessions_present()
        The ids of the sessions of which anything (container, volume or
        network) exists, among those this platform made.
    network_subnets()
        The IPv4 subnets of this platform's session networks, by session id
        (sessions_app/subnets.py); a session without a network is absent.
        A backend that makes no networks answers {}.
    remove_orphan(session_id)
        remove() for a session the database no longer knows. Both release
        the session's subnet once its network is gone.
    storage_present()
        The storage tokens (Instance.storage_token) of the disks that exist.
        A disk may outlive its volume (a crash in between): the reconciler
        releases those no instance claims.
    release_storage(token)
        Detach and delete the disk of that token; nothing happens if there
        is none.
    prepare(instance)
        start() ahead of time, for a session to come: `instance` and its
        session are not saved. start() of the real instance later adopts what
        it made. Returns False for a backend that has nothing to gain from
        it. What it makes counts in sessions_present().
    egress_reconcile()
        Put back the missing firewall rules of the egress of this platform's
        session networks (sessions_app/egress.py), and remove the rules of
        networks that no longer exist. Returns the networks' interfaces
        whose rules it put back, and those whose rules it removed. A backend
        without such rules returns two empty lists.

    exec(instance, cmd, stdin, timeout)
        Run `cmd` (a list of arguments, no shell) in the running instance as
        its learner, in the learner's home, feeding it `stdin` (bytes, then
        end of file). A generator: ExecOutput events as the command writes,
        then one ExecExit. A command still running after `timeout` seconds
        is killed (ExecExit.timed_out). Closing the generator early stops
        reading, and the command ends by its timeout at the latest. Raises
        AttachError when the instance does not run or its engine cannot be
        reached.

    stats(instance)
        What the running instance uses now (InstanceStats). Raises
        AttachError like exec().
    listening_ports(instance)
        The TCP ports on which something in the running instance accepts
        connections from outside it (on any address but loopback): the
        learner's own servers and the inner engine's published ports alike.
        Raises AttachError like exec().

    Files, for `/sessions/{id}/files`. Every one runs in the running instance
    as its learner, so that it reads and writes only what the learner may in
    its terminal, and raises AttachError like exec(). Paths are absolute;
    which of them may be reached is the caller's business, not the backend's.

    home(instance)
        The learner's home directory in the instance, where exec() runs.
    files_stat(instance, path)
        What `path` names, as `realpath -e` resolves it as the learner: every
        symbolic link and `..` on its way followed, as a PathInfo. None when
        nothing is there: a missing name, a dangling link, a directory on the
        way the learner cannot search.
    files_list(instance, path, limit)
        The entries of the directory `path` (resolved already), sorted by
        name, at most `limit` of them, as FileEntry: a symbolic link is
        listed as one, not followed. Raises FilesError when it cannot be read.
    files_read(instance, path, timeout)
        A generator of the bytes of `path` (resolved already): a regular
        file's content, or a directory as a tar whose members start with the
        directory's own name. Reading stops after `timeout` seconds, and when
        the generator is closed. What cannot be read in a directory is left
        out of its tar.
    files_write(instance, directory, uploads, timeout)
        Write each Upload as `directory/name` (`directory` resolved already),
        owned by the learner. A file of that name is replaced, and so is a
        symbolic link, which is never followed; a directory of that name is
        an error. The files are written in order: an error leaves the ones
        before it written. Raises FilesError when the learner may not write
        there, the disk is full, or the writing took longer than `timeout`
        seconds.

    The terminal's two methods are coroutines, for the web process's event loop:

    attach(instance)
        Attach to the running instance's own TTY and return a Tty. Several
        attachments share the one TTY: each sees all output from the moment
        it attached, and input from any reaches the shell. The reader ends
        (EOF) when the container stops or is removed. Raises AttachError
        when the instance does not run or its engine cannot be reached.
    resize(instance, cols, rows)
        Set the TTY's size, which every attachment shares. Raises
        AttachError like attach().
    """

    def __init__(self, engine: "Engine | None" = None) -> None:
        from sessions_app.backends import Engine

        self.engine = engine if engine is not None else Engine("", "")

    def look(self, images: list[str]) -> "HostLook":
        raise NotImplementedError

    def start(self, instance: "Instance") -> StartResult:
        raise NotImplementedError

    def poll(self, instance: "Instance") -> Poll:
        raise NotImplementedError

    def remove(self, instance: "Instance") -> None:
        raise NotImplementedError

    def sessions_present(self) -> set[str]:
        raise NotImplementedError

    def egress_reconcile(self) -> tuple[list[str], list[str]]:
        return [], []

    def network_subnets(self) -> dict[str, list[str]]:
        return {}

    def remove_orphan(self, session_id: str) -> None:
        raise NotImplementedError

    def storage_present(self) -> set[str]:
        raise NotImplementedError

    def release_storage(self, token: str) -> None:
        raise NotImplementedError

    def prepare(self, instance: "Instance") -> bool:
        return False

    def exec(self, instance: "Instance", cmd: list[str], *, stdin: bytes, timeout: float) -> Iterator[ExecEvent]:
        raise NotImplementedError

    def stats(self, instance: "Instance") -> InstanceStats:
        raise NotImplementedError

    def listening_ports(self, instance: "Instance") -> set[int]:
        raise NotImplementedError

    def home(self, instance: "Instance") -> str:
        raise NotImplementedError

    def files_stat(self, instance: "Instance", path: str) -> PathInfo | None:
        raise NotImplementedError

    def files_list(self, instance: "Instance", path: str, *, limit: int) -> list[FileEntry]:
        raise NotImplementedError

    def files_read(self, instance: "Instance", path: str, *, timeout: float) -> Iterator[bytes]:
        raise NotImplementedError

    def files_write(self, instance: "Instance", directory: str, uploads: list[Upload], *, timeout: float) -> None:
        raise NotImplementedError

    async def attach(self, instance: "Instance") -> Tty:
        raise NotImplementedError

    async def resize(self, instance: "Instance", *, cols: int, rows: int) -> None:
        raise NotImplementedError
