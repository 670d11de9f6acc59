"""Runs each instance as a Docker-in-Docker container on one Docker engine.

`start` is broken into steps that a subclass may override, in the order they
run: ensure_network, ensure_volume, ensure_container, ensure_running,
wait_until_ready, read_address.

This module is the platform's only way to Docker: the terminal attaches
through the backend, and the health checks and the image build take their
client from docker_client().
"""

import asyncio
import contextlib
import fcntl
import functools
import ipaddress
import json
import logging
import math
import posixpath
import socket
import ssl
import tarfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import docker
import requests
from django.conf import settings
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.models.containers import Container, _create_container_args
from docker.models.networks import Network
from docker.types import IPAMConfig, IPAMPool, LogConfig
from docker.utils.socket import STDERR, frames_iter

from sessions_app.backends import Engine
from sessions_app.backends.base import (
    AttachError,
    Backend,
    BackendError,
    DaemonNotReady,
    ExecEvent,
    ExecExit,
    ExecOutput,
    FileEntry,
    FilesError,
    HostLook,
    ImageMissing,
    ImagePreloadFailed,
    InstanceStats,
    OutOfAddresses,
    PathInfo,
    Poll,
    PollResult,
    StartResult,
    TransientBackendError,
    Tty,
    Upload,
    listening_in,
)
from sessions_app.backends.disks import DiskError, LoopDisks
from sessions_app.egress import EgressUnenforced, egress_apply, egress_interfaces, egress_remove
from sessions_app.errors import OutOfCapacity
from sessions_app.firewall import firewall_ensure
from sessions_app.models import Instance, Playground
from sessions_app.subnets import subnet_release, subnet_reserve, subnet_set_aside

logger = logging.getLogger(__name__)

LABEL_MANAGED = "org.playground.managed"
LABEL_PLATFORM = "org.playground.platform"  # which platform made it, if several share an engine
LABEL_SESSION = "org.playground.session"
LABEL_PLAYGROUND = "org.playground.playground"
LABEL_INSTANCE = "org.playground.instance"
LABEL_STORAGE = "org.playground.storage"  # the storage token: names the volume and its disk
# A session network's egress (Playground.Egress), fixed when the network is made.
LABEL_EGRESS = "org.playground.egress"

INNER_DOCKER_DIR = "/var/lib/docker"
# The Engine API version the terminal's own HTTP requests speak (Docker 20.10 and later).
ATTACH_API_VERSION = "v1.41"


def docker_client(*, timeout: float = 30, engine: Engine | None = None) -> docker.DockerClient:
    """A client of a host's engine; by default of DOCKER_HOST, the engine the platform's own tools use."""
    engine = engine or Engine("", settings.DOCKER_HOST)
    if engine.url.startswith("ssh://"):
        # The ssh binary and its configuration (keys, known hosts), as the docker CLI does.
        return docker.DockerClient(base_url=engine.url, timeout=timeout, use_ssh_client=True)
    if not engine.tls_path:
        return docker.DockerClient(base_url=engine.url, timeout=timeout)
    # A fixed API version: "auto" would ask the engine before the line below.
    version = ATTACH_API_VERSION.removeprefix("v")
    client = docker.DockerClient(base_url=engine.url, timeout=timeout, tls=_tls_config(engine), version=version)
    # requests lets REQUESTS_CA_BUNDLE (set on many machines) override the
    # client's own CA, and the engine's certificate would then be refused
    # (psf/requests#3829): the host's CA is the one to trust here.
    client.api.trust_env = False
    return client


def _tls_config(engine: Engine) -> docker.tls.TLSConfig:
    folder = Path(engine.tls_path)
    return docker.tls.TLSConfig(
        client_cert=(str(folder / "cert.pem"), str(folder / "key.pem")),
        ca_cert=str(folder / "ca.pem"),
        verify=True,
    )


def _ssl_context(engine: Engine) -> ssl.SSLContext:
    """The TLS of the terminal's own connection: the engine's CA, and the client's certificate."""
    folder = Path(engine.tls_path)
    context = ssl.create_default_context(cafile=str(folder / "ca.pem"))
    context.load_cert_chain(str(folder / "cert.pem"), str(folder / "key.pem"))
    return context


def resource_names(instance: Instance) -> dict[str, str]:
    """Docker names of an instance's container, volume and network.

    They derive from the instance's session id and storage token alone, so an
    attempt that runs twice finds what the first one made. The volume is
    named by the token: its name shows inside the instance (in its mounts).
    """
    base = f"playground-{instance.session_id}"
    return {"container": base, "network": base, "volume": f"playground-{instance.storage_token}-docker"}


class Stopwatch:
    """Seconds spent in each step, for the log: "network 0.12s, volume 0.03s, ..."."""

    def __init__(self) -> None:
        self.laps: list[tuple[str, float]] = []
        self.last = time.monotonic()

    def lap(self, step: str) -> None:
        now = time.monotonic()
        self.laps.append((step, now - self.last))
        self.last = now

    def __str__(self) -> str:
        return ", ".join(f"{step} {seconds:.2f}s" for step, seconds in self.laps)


# --- Security profiles -------------------------------------------------------------

ROOTLESS_VARIABLE = "PLAYGROUND_ROOTLESS"
MIRROR_VARIABLE = "PLAYGROUND_REGISTRY_MIRROR"
# An option of container_options() that goes into the HostConfig as it is.
HOST_CONFIG = "host_config_extra"
LEARNER_UID = "1000"  # the image's `learner`
LEARNER_HOME = "/home/learner"
EXEC_GRACE = 10  # seconds the exec socket waits beyond a command's timeout
KILLED = 137  # the exit code of a command killed by SIGKILL (128 + 9)
PROCESSES_KEPT = 4096  # instances whose process listening_ports() remembers
CPU_SAMPLE = 0.25  # seconds between the two samples of stats()
FILES_CHECK_TIMEOUT = 30  # seconds a path's resolution or a listing may take
TAR_BLOCK = 512
UPLOAD_CHUNK = 256 * 1024  # bytes of an upload sent to the instance at a time
# The shell scripts of the file methods, run as the learner; their arguments follow.
# files_stat: the resolved path, its type and what the learner may do, each ended by NUL.
STAT_SCRIPT = (
    'realpath -ez -- "$1" || exit 3; stat -L --printf "%F\\0" -- "$1" || exit 3; '
    '[ -r "$1" ] && printf r; [ -w "$1" ] && printf w; [ -x "$1" ] && printf x; printf "\\0"'
)
# files_list: "name/type/size/mtime" of each entry ("/" is the one byte no name
# holds), ended by NUL, the first $2 by name; find's own exit status.
LIST_SCRIPT = (
    'find "$1" -mindepth 1 -maxdepth 1 -printf "%f/%y/%s/%T@\\0" | LC_ALL=C sort -z | head -z -n "$2"; '
    'exit "${PIPESTATUS[0]}"'
)
# files_read: a directory as a tar of its own name, a file as it is.
READ_SCRIPT = 'if [ -d "$1" ]; then exec tar -c -f - -C "$2" -- "$3"; else exec cat -- "$1"; fi'
# files_write: GNU tar replaces an existing file or symbolic link of a
# member's name (it unlinks it, then creates the file anew): a link is never
# followed. Not root: the files are the learner's, with its umask.
WRITE_COMMAND = ["tar", "-x", "-f", "-", "--no-same-owner", "--no-same-permissions", "-C"]
STAT_TYPES = {"regular file": "file", "regular empty file": "file", "directory": "dir"}
FIND_TYPES = {"f": "file", "d": "dir", "l": "symlink"}
SECCOMP_ROOTLESS = Path(settings.BASE_DIR) / "docker" / "seccomp-rootless.json"


@functools.cache
def _rootless_seccomp() -> str:
    # The engine takes the profile's text, not a path (as `docker run
    # --security-opt seccomp=FILE` does: the CLI reads the file).
    return json.dumps(json.loads(SECCOMP_ROOTLESS.read_text()), separators=(",", ":"))


def rootless_options() -> dict:
    """Container options of the rootless profile (see docker/entrypoint.sh).

    An ordinary container: a few capabilities, which the entrypoint needs as
    root for a moment (make /dev/net/tun, hand the inner data root to the
    learner, then drop to the learner for good through setpriv), and
    Docker's default seccomp profile plus what a user namespace needs
    (docker/seccomp-rootless.json). /proc and /sys are left unmasked
    (systempaths=unconfined) so that nested containers can mount their own
    /proc: only file permissions guard them then, which is why no process
    of the learner, nor any the platform starts, may run as root of this
    container (exec_user()). An init reaps the shims of finished nested
    containers.
    """
    return {
        "cap_drop": ["ALL"],
        # KILL: docker-init, PID 1, stays root and must pass SIGTERM on to the
        # entrypoint, which by then runs as the learner.
        "cap_add": ["SETUID", "SETGID", "MKNOD", "CHOWN", "KILL"],
        "security_opt": [f"seccomp={_rootless_seccomp()}"],
        # `--security-opt systempaths=unconfined` of the CLI: nothing masked
        # or read-only under /proc and /sys, or the kernel refuses nested
        # containers a /proc of their own.
        HOST_CONFIG: {"MaskedPaths": [], "ReadonlyPaths": []},
        "init": True,
    }


def create_container(client: docker.DockerClient, options: dict) -> Container:
    """client.containers.create(**options), with the HostConfig fields the SDK has no keyword for."""
    options = dict(options)
    host_config = options.pop(HOST_CONFIG, {})
    if not host_config:
        return client.containers.create(**options)
    # What containers.create does, with the extra fields added on the way.
    arguments = _create_container_args({**options, "version": client.api._version})
    arguments["host_config"].update(host_config)
    return client.containers.get(client.api.create_container(**arguments)["Id"])


def exec_user() -> str:
    """Who runs what the platform executes in an instance: never root under the rootless profile."""
    return LEARNER_UID if settings.PLAYGROUND_SECURITY_PROFILE == "rootless" else ""


def _tar_of(uploads: list[Upload]) -> Iterator[bytes]:
    """A tar of the uploads, made as it is sent: each one's header, its bytes a
    piece at a time, its padding; memory stays flat whatever their size."""
    for upload in uploads:
        member = tarfile.TarInfo(upload.name)
        member.size, member.mode, member.mtime = upload.size, 0o644, int(time.time())
        yield member.tobuf(format=tarfile.PAX_FORMAT)
        left = upload.size
        while left > 0:
            piece = upload.file.read(min(UPLOAD_CHUNK, left))
            if not piece:
                raise FilesError(f"{upload.name} is shorter than its {upload.size} bytes")
            left -= len(piece)
            yield piece
        if upload.size % TAR_BLOCK:
            yield b"\0" * (TAR_BLOCK - upload.size % TAR_BLOCK)
    yield b"\0" * (2 * TAR_BLOCK)  # the end of the archive


def _ip_address(container: Container, network_name: str) -> str | None:
    """The container's address on its session's network, from its last inspection."""
    networks = container.attrs["NetworkSettings"]["Networks"]
    return (networks.get(network_name) or {}).get("IPAddress") or None


def bridge_interface(network: Network) -> str:
    """The host's interface of a session network: Docker names it br-<the network id's first 12 digits>."""
    return f"br-{network.id[:12]}"


def network_egress(network: Network) -> str:
    """The egress of a session network; `internet` for those made before egress existed."""
    return (network.attrs.get("Labels") or {}).get(LABEL_EGRESS) or Playground.Egress.INTERNET


def _bridge_exists(interface: str) -> bool:
    """Whether the firewall's machine still has the interface (as far as this process can see it)."""
    if settings.PLAYGROUND_FIREWALL_NETNS:
        return False  # another network namespace: only this engine's networks are known there
    return Path("/sys/class/net", interface).exists()


def _is_transient(exc: Exception) -> bool:
    if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
        return True
    if isinstance(exc, APIError):
        code = exc.status_code or 0
        return code >= 500 or code == 409
    return False


def _refuses_privileged(exc: APIError) -> bool:
    # The engine creates a privileged container but fails to start it where
    # the host's capability bounding set is incomplete, e.g.
    # "OCI runtime create failed: ... unable to apply caps: operation not permitted".
    text = str(exc.explanation or exc)
    return "apply caps" in text or "operation not permitted" in text


class DockerBackend(Backend):
    # Where "auto" found that the engine refuses --privileged; remembered for
    # the life of the process so only the first instance pays the probe.
    _privileged_refused = False
    _lock = threading.Lock()

    def __init__(self, engine: Engine | None = None) -> None:
        super().__init__(engine or Engine("", settings.DOCKER_HOST))
        self.client = docker_client(timeout=30, engine=self.engine)
        self.docker_host = self.engine.url
        self.disks = LoopDisks()
        # Each running instance's process (pid, container id), for listening_ports().
        self._processes: dict[str, tuple[int, str]] = {}

    # --- Interface ------------------------------------------------------------

    def look(self, images: list[str]) -> HostLook:
        try:
            self.client.ping()
            present = {tag for image in self.client.images.list() for tag in image.tags}
        except (DockerException, requests.exceptions.RequestException) as exc:
            raise self._translate(exc, "look at", f"the engine {self.docker_host}") from exc
        return HostLook(images=[image for image in images if image in present])

    def start(self, instance: Instance) -> StartResult:
        firewall_ensure(self.docker_host)  # no instance runs unfenced (sessions_app/firewall.py)
        names = resource_names(instance)
        try:
            # Two deliveries of one job take turns on this host: the second
            # finds what the first made. (Across hosts, the steps themselves
            # tolerate a racing attempt.)
            steps = Stopwatch()
            with self._session_lock(instance.session_id):
                steps.lap("lock")
                network = self.ensure_network(instance, names["network"])
                self.ensure_egress(network)
                steps.lap("network")
                self.ensure_volume(instance, names["volume"])
                steps.lap("volume")
                container = self.ensure_container(instance, names, network)
                steps.lap("create")
                container = self.ensure_running(instance, container, names, network)
                steps.lap("start")
                self.wait_until_ready(instance, container)
                steps.lap("ready")
                ip_address = self.read_address(container, network)
                self.preload(instance)
                steps.lap("preload")
        except (DockerException, requests.exceptions.RequestException, DiskError) as exc:
            raise self._translate(exc, "start", instance) from exc
        logger.info("session %s: started in %s", instance.session_id, steps)
        return StartResult(
            container_id=container.id,
            container_name=names["container"],
            docker_host=self.docker_host,
            ip_address=ip_address,
        )

    def poll(self, instance: Instance) -> Poll:
        names = resource_names(instance)
        try:
            container = self.client.containers.get(names["container"])
        except NotFound:
            return Poll(PollResult.MISSING)
        except (DockerException, requests.exceptions.RequestException) as exc:
            raise self._translate(exc, "poll", instance) from exc
        if container.status != "running":
            return Poll(PollResult.STOPPED)
        return Poll(PollResult.RUNNING, _ip_address(container, names["network"]))

    def remove(self, instance: Instance) -> None:
        self.remove_orphan(instance.session_id)
        self.release_storage(instance.storage_token)  # in case its volume was never made

    def remove_orphan(self, session_id: str) -> None:
        base = f"playground-{session_id}"  # the container's and the network's name (resource_names)
        try:
            self._remove_container(base)
            # The volume is named by its storage token, which its labels hold.
            for volume in self.client.volumes.list(filters={"label": f"{LABEL_SESSION}={session_id}"}):
                self._remove_volume(volume.name)
                if token := (volume.attrs.get("Labels") or {}).get(LABEL_STORAGE):
                    self.disks.release(token)
            self._remove_network(base)
            subnet_release(session_id=session_id)
            (settings.VAR_DIR / "locks" / base).unlink(missing_ok=True)
        except (DockerException, requests.exceptions.RequestException, DiskError) as exc:
            raise self._translate(exc, "remove", f"session {session_id}") from exc

    def storage_present(self) -> set[str]:
        return self.disks.tokens_present()

    def release_storage(self, token: str) -> None:
        try:
            self.disks.release(token)
        except DiskError as exc:
            raise self._translate(exc, "release", f"the disk {token}") from exc

    def prepare(self, instance: Instance) -> bool:
        """Start the instance of a session to come (see PreparedSession)."""
        self.start(instance)
        return True

    def egress_reconcile(self) -> tuple[list[str], list[str]]:
        """Restore the missing firewall rules of this platform's restricted networks, and remove those of
        networks gone from the engine. Returns the bridges whose rules it restored and those it removed."""
        if not self.docker_host.startswith("unix://"):
            return [], []  # the firewall of a remote engine's host is out of sight (firewall_ensure refuses it)
        # The rules first: a network made after this look has its rules made
        # after it too, so it is never mistaken for one that is gone.
        ruled = egress_interfaces()
        try:
            everyone = [self.client.networks.prepare_model(attrs) for attrs in self.client.api.networks()]
        except (DockerException, requests.exceptions.RequestException) as exc:
            raise self._translate(exc, "list", "the networks") from exc
        restored = []
        for network in everyone:
            labels = network.attrs.get("Labels") or {}
            interface = bridge_interface(network)
            if labels.get(LABEL_PLATFORM) != settings.PLAYGROUND_PLATFORM_ID or ruled.get(interface):
                continue
            if network_egress(network) != Playground.Egress.INTERNET:
                egress_apply(interface=interface, egress=network_egress(network))
                restored.append(interface)
        # Another engine on this machine (a second host) has bridges of its
        # own: rules go only with a bridge that is gone from the machine.
        removed = sorted(
            interface
            for interface in set(ruled) - {bridge_interface(network) for network in everyone}
            if not _bridge_exists(interface)
        )
        for interface in removed:
            egress_remove(interface=interface)
        return restored, removed

    def sessions_present(self) -> set[str]:
        mine = {"label": [f"{LABEL_MANAGED}=true", f"{LABEL_PLATFORM}={settings.PLAYGROUND_PLATFORM_ID}"]}
        try:
            found = [
                *(
                    c.attrs.get("Labels") or {}
                    for c in self.client.containers.list(all=True, sparse=True, filters=mine)
                ),
                *(v.attrs.get("Labels") or {} for v in self.client.volumes.list(filters=mine)),
                *(n.attrs.get("Labels") or {} for n in self.client.networks.list(filters=mine)),
            ]
        except (DockerException, requests.exceptions.RequestException) as exc:
            raise self._translate(exc, "list", "this platform's objects") from exc
        return {labels[LABEL_SESSION] for labels in found if labels.get(LABEL_SESSION)}

    def network_subnets(self) -> dict[str, list[str]]:
        mine = {"label": [f"{LABEL_MANAGED}=true", f"{LABEL_PLATFORM}={settings.PLAYGROUND_PLATFORM_ID}"]}
        try:
            networks = self.client.api.networks(filters=mine)  # the list holds IPAM: no inspection each
        except (DockerException, requests.exceptions.RequestException) as exc:
            raise self._translate(exc, "list", "this platform's networks") from exc
        found: dict[str, list[str]] = {}
        for attrs in networks:
            if session_id := (attrs.get("Labels") or {}).get(LABEL_SESSION):
                configs = (attrs.get("IPAM") or {}).get("Config") or []
                found.setdefault(session_id, []).extend(c["Subnet"] for c in configs if "." in c.get("Subnet", ""))
        return found

    # --- Steps of start() -------------------------------------------------------

    def labels(self, instance: Instance) -> dict[str, str]:
        return {
            LABEL_MANAGED: "true",
            LABEL_PLATFORM: settings.PLAYGROUND_PLATFORM_ID,
            LABEL_SESSION: instance.session_id,
            LABEL_PLAYGROUND: instance.session.playground_id,
            LABEL_INSTANCE: instance.name,
            LABEL_STORAGE: instance.storage_token,
            **settings.PLAYGROUND_EXTRA_LABELS,
        }

    def ensure_network(self, instance: Instance, name: str) -> Network:
        """The session's own bridge network, so instances cannot reach each other.

        It exists already when the session was prepared, or an earlier
        attempt made it.
        """
        existing = self._networks_named(name)
        if existing:
            return existing[0]
        labels = {**self.labels(instance), LABEL_EGRESS: instance.session.playground.egress}
        # Its addresses come from the platform's pool (sessions_app/subnets.py),
        # not from the engine's own pools, which hold a few dozen networks.
        try:
            subnet = subnet_reserve(session_id=instance.session_id)
        except OutOfCapacity as exc:
            raise OutOfAddresses(log_message=exc.log_message) from exc
        # The gateway named, as the engine's own pools record it (inspect shows it).
        gateway = str(next(ipaddress.IPv4Network(subnet).hosts()))
        ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=subnet, gateway=gateway)])
        try:
            created = self.client.api.create_network(
                name, driver="bridge", labels=labels, ipam=ipam, check_duplicate=True
            )
        except APIError as exc:
            # A racing attempt made it (409, or "Pool overlaps" with its own
            # network of the same subnet): keep the one network of this name.
            if self._networks_named(name):
                return self._settle_network(name)
            if "overlaps" in str(exc.explanation or exc):
                subnet_set_aside(session_id=instance.session_id, subnet=subnet)
                raise TransientBackendError(log_message=f"{subnet} is taken in the engine: {exc}") from exc
            raise
        return self.client.networks.prepare_model({"Id": created["Id"], "Name": name, "Labels": labels})

    def ensure_egress(self, network: Network) -> None:
        """The firewall rules of the network's egress (sessions_app/egress.py), before anything runs on it.

        The egress is the one its label says: that of the playground when the
        network was made (a prepared session's network is made before anyone
        claims it, and prepared_spec holds the egress it was made with).
        """
        egress_apply(interface=bridge_interface(network), egress=network_egress(network))

    @contextlib.contextmanager
    def _session_lock(self, session_id: str) -> Iterator[None]:
        directory = settings.VAR_DIR / "locks"
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / f"playground-{session_id}", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
            yield

    def _settle_network(self, name: str) -> Network:
        """The oldest network of this name, once the others are removed.

        The engine's duplicate check is best effort: two attempts racing in
        ensure_network can both create a network of this name. Every attempt
        keeps the oldest and removes the rest, so all of them settle on the
        same one.
        """
        survivor, *duplicates = self._networks_named(name)
        for duplicate in duplicates:
            try:
                duplicate.remove()
            except (NotFound, APIError):
                pass
        return survivor

    def _start(self, container: Container, network_name: str) -> None:
        # The engine looks the network up by name when it starts the
        # container: while a racing attempt's duplicate still exists, the
        # name is "ambiguous". Removing the duplicates settles it.
        for attempt in range(20):
            try:
                container.start()
                return
            except APIError as exc:
                if "ambiguous" not in str(exc.explanation or exc) or attempt == 19:
                    raise
            self._settle_network(network_name)
            time.sleep(0.05)

    def _networks_named(self, name: str) -> list[Network]:
        """Networks of exactly this name (the engine's filter matches substrings), oldest first."""
        # The low-level list: the high-level one inspects each network, which
        # fails if a racing attempt removed it in between.
        found = [
            self.client.networks.prepare_model(attrs)
            for attrs in self.client.api.networks(names=[name])
            if attrs.get("Name") == name
        ]
        return sorted(found, key=lambda network: (network.attrs.get("Created", ""), network.id))

    def ensure_volume(self, instance: Instance, name: str) -> None:
        """The volume of the inner /var/lib/docker, of the playground's size where it can be bounded."""
        options = {}
        size = instance.session.playground.storage_size
        if size and self.can_bound_disks():
            device = self.disks.ensure(instance.storage_token, size)
            options = {"driver": "local", "driver_opts": {"type": "ext4", "device": str(device)}}
        # Creating a volume that exists returns the existing one.
        self.client.volumes.create(name=name, labels=self.labels(instance), **options)

    def can_bound_disks(self) -> bool:
        mode = settings.PLAYGROUND_BOUND_DISKS
        if mode == "off":
            return False
        if self.disks_unavailable is None:
            return True
        if mode == "on":
            raise BackendError(
                "The platform cannot bound this instance's disk.",
                log_message=f"PLAYGROUND_BOUND_DISKS=on but {self.disks_unavailable}",
            )
        return False

    @functools.cached_property
    def disks_unavailable(self) -> str | None:
        """Why this process cannot bound disks, or None; looked at once (one backend per process)."""
        reason = self.disks.unavailable_reason(self.docker_host)
        if reason is not None and settings.PLAYGROUND_BOUND_DISKS == "auto":
            logger.warning("Instances' inner /var/lib/docker is not size-bounded: %s.", reason)
        return reason

    def ensure_container(self, instance: Instance, names: dict[str, str], network: Network) -> Container:
        try:
            return create_container(self.client, self.container_options(instance, names, network))
        except ImageNotFound as exc:
            raise ImageMissing(
                f"The image {instance.image} is not available on the Docker host.",
                log_message=f"image {instance.image} missing: {exc}",
            ) from exc
        except APIError as exc:
            if exc.status_code == 409:  # an earlier or racing attempt made it
                return self.client.containers.get(names["container"])
            raise

    def container_options(self, instance: Instance, names: dict[str, str], network: Network) -> dict:
        playground = instance.session.playground
        options = {
            "image": instance.image,
            "name": names["container"],
            "hostname": instance.hostname,
            "detach": True,
            # The container's own TTY is the learner's shell.
            "tty": True,
            "stdin_open": True,
            # By id: while two racing attempts briefly hold two networks of
            # this name, a name would be "ambiguous" to the engine.
            "network": network.id,
            "labels": self.labels(instance),
            "environment": {
                "PLAYGROUND_ID": playground.id,
                "INSTANCE_NAME": instance.name,
                "DOCKER_TLS_CERTDIR": "",
                # The entrypoint starts a rootless inner dockerd and drops to the learner for good.
                ROOTLESS_VARIABLE: "1" if settings.PLAYGROUND_SECURITY_PROFILE == "rootless" else "",
                # The entrypoint writes it into the inner daemon.json as
                # registry mirror and insecure (plain HTTP) registry.
                MIRROR_VARIABLE: settings.PLAYGROUND_REGISTRY_MIRROR,
            },
            # Without a volume the inner daemon falls back to the slow vfs
            # driver, because overlay on overlay fails.
            "volumes": {names["volume"]: {"bind": INNER_DOCKER_DIR, "mode": "rw"}},
            # As on any Linux host, /run starts empty at every boot: when the
            # instance restarts (engine restart, revival) no pid file or
            # socket of the previous inner dockerd misleads the new one or
            # wait-for-docker.
            "tmpfs": {"/run": "rw,nosuid,nodev,exec,size=64m"},
            "mem_limit": f"{playground.memory_limit_mb}m",
            "memswap_limit": f"{playground.memory_limit_mb}m",
            "pids_limit": playground.pids_limit,
            "nano_cpus": int(float(playground.cpu_limit) * 1_000_000_000),
            "log_config": self.log_config(),
            "restart_policy": {"Name": "unless-stopped"},
        }
        options.update(self.security_options())
        if playground.storage_size and self.engine_supports_storage_size():
            options["storage_opt"] = {"size": playground.storage_size}
        return options

    def log_config(self) -> LogConfig:
        """How the engine keeps the container's output, which is the learner's terminal.

        By default it keeps nothing ("none"): the engine then hands the TTY's
        output straight to the attached terminals, about four times as fast
        as when it also writes every byte to a log, and no learner's screen
        ends up on the host's disk. A logging driver, when configured, rotates.
        """
        driver = settings.PLAYGROUND_INSTANCE_LOG_DRIVER
        if driver == "none":
            return LogConfig(type="none")
        return LogConfig(type=driver, config={"max-size": "1m", "max-file": "2"})

    def security_options(self) -> dict:
        profile = settings.PLAYGROUND_SECURITY_PROFILE
        if profile == "rootless":
            return rootless_options()
        if profile == "runtime":
            return {"runtime": settings.PLAYGROUND_DOCKER_RUNTIME}
        if profile == "privileged" or (profile == "auto" and not DockerBackend._privileged_refused):
            return {"privileged": True}
        # What works where --privileged is refused: every capability but the
        # one the host lacks, and no seccomp or AppArmor filter, which is what
        # --privileged implies besides devices.
        return {
            "cap_add": ["ALL"],
            "cap_drop": ["SYS_RESOURCE"],
            "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
        }

    def engine_supports_storage_size(self) -> bool:
        """Whether the engine can bound a container's disk (overlay2 on XFS with quotas)."""
        info = self.client.info()
        status = dict(info.get("DriverStatus") or [])
        return info.get("Driver") == "overlay2" and status.get("Backing Filesystem") == "xfs"

    def ensure_running(
        self, instance: Instance, container: Container, names: dict[str, str], network: Network
    ) -> Container:
        if container.status == "running":
            return container
        try:
            self._start(container, names["network"])
            return container
        except APIError as exc:
            if not (
                settings.PLAYGROUND_SECURITY_PROFILE == "auto"
                and container.attrs["HostConfig"].get("Privileged")
                and _refuses_privileged(exc)
            ):
                raise
        with self._lock:
            if not DockerBackend._privileged_refused:
                logger.warning("The Docker engine refuses --privileged; using the capability profile instead.")
            DockerBackend._privileged_refused = True
        container.remove(force=True)
        replacement = create_container(self.client, self.container_options(instance, names, network))
        self._start(replacement, names["network"])
        return replacement

    def wait_until_ready(self, instance: Instance, container: Container) -> None:
        timeout = int(settings.PLAYGROUND_DAEMON_READY_TIMEOUT)
        exit_code, output = container.exec_run(["wait-for-docker", str(timeout)], user=exec_user())
        if exit_code != 0:
            tail = output.decode("utf-8", "replace")[-2000:]
            raise DaemonNotReady(
                "The Docker daemon inside the instance did not start.",
                log_message=f"inner dockerd of {container.name} not ready (exit {exit_code}): {tail}",
            )

    def read_address(self, container: Container, network: Network) -> str | None:
        container.reload()
        return _ip_address(container, network.name)

    # --- Commands ---------------------------------------------------------------

    def exec(self, instance: Instance, cmd: list[str], *, stdin: bytes, timeout: float) -> Iterator[ExecEvent]:
        """Run a command in the instance as its learner (see Backend).

        The command runs under the instance's own `timeout`, which kills it
        (and its process group) when its time is up. Reading stops a little
        later all the same, should the instance not answer, or should a
        process that left the group (`setsid`) keep the output open.
        """
        return self._exec(instance, cmd, stdin=[stdin], timeout=timeout)

    def _exec(
        self, instance: Instance, cmd: list[str], *, stdin: Iterable[bytes], timeout: float
    ) -> Iterator[ExecEvent]:
        """exec(), its input sent a piece at a time as `stdin` gives them (uploads)."""
        name = self._container_name(instance)
        api = self.client.api
        seconds = max(1, math.ceil(timeout))
        try:
            exec_id = api.exec_create(
                name,
                ["timeout", "--signal=KILL", str(seconds), *cmd],
                stdin=True,
                user=exec_user(),
                workdir=self.home(instance),
            )["Id"]
            stream = api.exec_start(exec_id, socket=True)
        except (DockerException, requests.exceptions.RequestException) as exc:
            raise AttachError(f"exec in {name} failed: {exc}") from exc
        raw = getattr(stream, "_sock", stream)
        started = time.monotonic()
        deadline = started + seconds + EXEC_GRACE
        try:
            raw.settimeout(seconds + EXEC_GRACE)
            # A command that stops reading its input while it writes much
            # output could block this send for good: the socket's timeout ends it.
            try:
                for piece in stdin:
                    raw.sendall(piece)
                raw.shutdown(socket.SHUT_WR)
            except BrokenPipeError:
                pass  # the command ended without reading it all: what it wrote is still to be read
            for number, data in frames_iter(stream, tty=False):
                if data:
                    yield ExecOutput("stderr" if number == STDERR else "stdout", data)
                if (left := deadline - time.monotonic()) <= 0:
                    raise TimeoutError
                raw.settimeout(left)
        except TimeoutError:
            logger.info("exec in %s: output still open past its timeout; no longer read", name)
            yield ExecExit(exit_code=KILLED, timed_out=True)
            return
        except OSError as exc:
            raise AttachError(f"exec in {name} broke off: {exc}") from exc
        finally:
            stream.close()
        try:
            exit_code = api.exec_inspect(exec_id)["ExitCode"]
        except (DockerException, requests.exceptions.RequestException) as exc:
            raise AttachError(f"exec in {name}: no exit code: {exc}") from exc
        timed_out = exit_code == KILLED and time.monotonic() - started >= seconds
        yield ExecExit(exit_code=exit_code if exit_code is not None else KILLED, timed_out=timed_out)

    def stats(self, instance: Instance) -> InstanceStats:
        """Two quick samples of the engine's figures, a moment apart, for the CPU's rate (see Backend)."""
        name = self._container_name(instance)
        try:
            first = self.client.api.stats(name, stream=False, one_shot=True)
            time.sleep(CPU_SAMPLE)
            now = self.client.api.stats(name, stream=False, one_shot=True)
        except (DockerException, requests.exceptions.RequestException) as exc:
            raise AttachError(f"stats of {name} failed: {exc}") from exc
        # A container stopping between the samples answers with parts left out.
        cpu, before = now.get("cpu_stats") or {}, first.get("cpu_stats") or {}
        total = (cpu.get("cpu_usage") or {}).get("total_usage") or 0
        used = total - ((before.get("cpu_usage") or {}).get("total_usage") or 0)
        elapsed = (cpu.get("system_cpu_usage") or 0) - (before.get("system_cpu_usage") or 0)
        cpus = cpu.get("online_cpus") or 1
        memory = now.get("memory_stats") or {}
        counters = memory.get("stats") or {}
        page_cache = counters.get("total_inactive_file", counters.get("inactive_file", 0))  # cgroup v1, v2
        networks = (now.get("networks") or {}).values()
        disk = {"read": 0, "write": 0}
        for entry in (now.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
            if entry.get("op", "").lower() in disk:
                disk[entry["op"].lower()] += entry.get("value", 0)
        used_bytes, size_bytes = self._storage(instance)
        return InstanceStats(
            cpu_percent=round(used / elapsed * cpus * 100, 1) if elapsed > 0 else 0.0,
            cpu_seconds=round(total / 1e9, 3),
            memory_bytes=max(0, memory.get("usage", 0) - page_cache),
            memory_limit_bytes=memory.get("limit", 0),
            pids=(now.get("pids_stats") or {}).get("current", 0),
            pids_limit=(now.get("pids_stats") or {}).get("limit", 0),
            network_rx_bytes=sum(network.get("rx_bytes", 0) for network in networks),
            network_tx_bytes=sum(network.get("tx_bytes", 0) for network in networks),
            disk_read_bytes=disk["read"],
            disk_write_bytes=disk["write"],
            storage_used_bytes=used_bytes,
            storage_size_bytes=size_bytes,
        )

    def listening_ports(self, instance: Instance) -> set[int]:
        """Read from the instance's own /proc/net/tcp and tcp6 (see Backend).

        Where the engine runs on this machine and this process may read the
        container's process, straight from the host's /proc (no exec, and
        once its process is known no call to the engine: the page looks
        every second); else through an exec of `cat`.
        """
        name = self._container_name(instance)
        known = self._processes.get(name)
        if known is not None and (text := self._host_proc_net(*known)) is not None:
            return listening_in(text)
        try:
            attrs = self.client.api.inspect_container(name)
        except (DockerException, requests.exceptions.RequestException) as exc:
            raise AttachError(f"inspecting {name} failed: {exc}") from exc
        if not attrs["State"].get("Running"):
            self._processes.pop(name, None)
            raise AttachError(f"{name} does not run")
        process = (attrs["State"].get("Pid") or 0, attrs["Id"])
        if (text := self._host_proc_net(*process)) is not None:
            if len(self._processes) >= PROCESSES_KEPT:
                self._processes.clear()
            self._processes[name] = process
            return listening_in(text)
        output, _ = self._output_of(instance, ["cat", "/proc/net/tcp", "/proc/net/tcp6"], timeout=5)
        return listening_in(output.decode(errors="replace"))

    def _host_proc_net(self, pid: int, container_id: str) -> str | None:
        """The container's /proc/net/tcp and tcp6 read from this machine's /proc, if that pid is the container's.

        The pid is the engine's, of its host's pid namespace: it names the
        container's process only where this process sees that namespace and
        finds the container's id in the process's cgroup (which also tells
        a pid the container's end left to another process).
        """
        if pid <= 0 or urlsplit(self.docker_host).scheme != "unix":
            return None
        proc = Path(f"/proc/{pid}")
        try:
            if container_id not in (proc / "cgroup").read_text():
                return None
            return (proc / "net" / "tcp").read_text() + (proc / "net" / "tcp6").read_text()
        except OSError:
            return None

    def preload(self, instance: Instance) -> None:
        """Pull the playground's preload images into the running instance, as its learner, those it lacks.

        Through the instance's own Docker, so from the registry mirror where
        there is one; a prepared instance does this before it is handed out.
        """
        for image in instance.session.playground.preload_images or []:
            script = 'docker image inspect "$1" >/dev/null 2>&1 || docker pull -q "$1"'
            output, end = self._output_of(
                instance, ["sh", "-c", script, "sh", image], timeout=settings.PLAYGROUND_PRELOAD_TIMEOUT
            )
            if end is None or end.exit_code != 0:
                said = output.decode(errors="replace").strip()[-300:]
                raise ImagePreloadFailed(
                    f"The image {image} could not be pulled into the instance: {said or 'no answer'}",
                    log_message=f"session {instance.session_id}: preloading {image} failed: {said}",
                )

    def _output_of(self, instance: Instance, cmd: list[str], *, timeout: float) -> tuple[bytes, ExecExit | None]:
        """What a command run by exec() wrote (stdout and stderr together), and how it ended."""
        output, end = b"", None
        try:
            for event in self.exec(instance, cmd, stdin=b"", timeout=timeout):
                if isinstance(event, ExecOutput):
                    output += event.data
                elif isinstance(event, ExecExit):
                    end = event
        except AttachError as exc:
            return str(exc).encode(), None
        return output, end

    def _storage(self, instance: Instance) -> tuple[int | None, int | None]:
        """The used and whole size of the instance's inner /var/lib/docker, as its `df` sees them.

        Only for a disk of its own (see ensure_volume): an unbounded volume
        lies on the host's filesystem, whose figures are not the learner's to see.
        """
        try:
            options = self.client.volumes.get(resource_names(instance)["volume"]).attrs.get("Options") or {}
        except (DockerException, requests.exceptions.RequestException):
            return None, None
        if "device" not in options:
            return None, None
        output, end = self._output_of(instance, ["df", "-B1", "--output=used,size", INNER_DOCKER_DIR], timeout=5)
        figures = output.split()[-2:]
        if end is None or end.exit_code != 0 or len(figures) != 2 or not all(f.isdigit() for f in figures):
            return None, None
        return int(figures[0]), int(figures[1])

    # --- Files ------------------------------------------------------------------
    # Each runs as the learner through exec, never through the engine's archive
    # API, which reads and writes as root of the container: a link the learner
    # swaps in after the path was checked could then reach /etc/shadow, or
    # /etc/passwd for writing (see Backend for the contract).

    def home(self, instance: Instance) -> str:
        return LEARNER_HOME if exec_user() else "/root"

    def files_stat(self, instance: Instance, path: str) -> PathInfo | None:
        exit_code, output, errors = self._run(instance, ["sh", "-c", STAT_SCRIPT, "sh", path])
        if exit_code == 3:
            return None
        fields = output.split(b"\0")
        if exit_code != 0 or len(fields) < 3:
            raise AttachError(f"stat of {path} in {self._container_name(instance)} failed ({exit_code}): {errors!r}")
        resolved, kind, may = (field.decode("utf-8", "replace") for field in fields[:3])
        kind = STAT_TYPES.get(kind, "other")
        searchable = kind != "dir" or "x" in may  # a directory is read and written through, too
        return PathInfo(resolved, kind, readable="r" in may and searchable, writable="w" in may and searchable)

    def files_list(self, instance: Instance, path: str, *, limit: int) -> list[FileEntry]:
        exit_code, output, errors = self._run(instance, ["bash", "-c", LIST_SCRIPT, "bash", path, str(limit)])
        if exit_code != 0:
            raise FilesError(errors.decode("utf-8", "replace").strip()[-500:] or f"find exited with {exit_code}")
        entries = []
        for record in output.split(b"\0"):
            if record.count(b"/") != 3:
                continue  # the end of the output
            name, kind, size, mtime = record.split(b"/")
            entries.append(
                FileEntry(
                    name.decode("utf-8", "replace"),
                    FIND_TYPES.get(kind.decode(), "other"),
                    int(size),
                    float(mtime),
                )
            )
        return sorted(entries, key=lambda entry: entry.name)

    def files_read(self, instance: Instance, path: str, *, timeout: float) -> Iterator[bytes]:
        parent, name = posixpath.split(path)
        events = self.exec(instance, ["sh", "-c", READ_SCRIPT, "sh", path, parent, name], stdin=b"", timeout=timeout)
        errors = b""
        try:
            for event in events:
                if isinstance(event, ExecOutput) and event.stream == "stdout":
                    yield event.data
                elif isinstance(event, ExecOutput):
                    errors = (errors + event.data)[-2000:]
                elif event.exit_code != 0:
                    raise FilesError(f"reading {path} ended with {event.exit_code}: {errors!r}")
        finally:
            events.close()

    def files_write(self, instance: Instance, directory: str, uploads: list[Upload], *, timeout: float) -> None:
        events = self._exec(instance, [*WRITE_COMMAND, directory], stdin=_tar_of(uploads), timeout=timeout)
        errors, end = b"", None
        for event in events:
            if isinstance(event, ExecOutput):
                errors = (errors + event.data)[-2000:]
            else:
                end = event
        if end is None or end.exit_code != 0:
            said = errors.decode("utf-8", "replace").strip()
            if end is not None and end.timed_out:
                said = "the upload took longer than the session has left"
            raise FilesError(said or f"tar exited with {end.exit_code if end else None}")

    def _run(self, instance: Instance, cmd: list[str]) -> tuple[int | None, bytes, bytes]:
        """A short command run to its end: its exit code, stdout and stderr."""
        output = {"stdout": b"", "stderr": b""}
        exit_code = None
        for event in self.exec(instance, cmd, stdin=b"", timeout=FILES_CHECK_TIMEOUT):
            if isinstance(event, ExecOutput):
                output[event.stream] += event.data
            else:
                exit_code = event.exit_code
        return exit_code, output["stdout"], output["stderr"]

    # --- The terminal -----------------------------------------------------------

    async def attach(self, instance: Instance) -> Tty:
        """Attach to the container's TTY (see Backend).

        The Docker SDK is synchronous, and a terminal needs a socket the event
        loop can read and write: the attach request, a single HTTP upgrade,
        is made here on an asyncio connection to the same engine. The stream
        after the upgrade is the raw TTY, unframed because the container has
        a TTY.
        """
        container = self._container_name(instance)
        try:
            reader, writer = await self._open_engine_connection()
        except OSError as exc:
            raise AttachError(f"cannot reach the Docker engine at {self.docker_host}: {exc}") from exc
        writer.write(
            (
                f"POST /{ATTACH_API_VERSION}/containers/{container}/attach?stream=1&stdin=1&stdout=1&stderr=1 "
                "HTTP/1.1\r\nHost: docker\r\nUpgrade: tcp\r\nConnection: Upgrade\r\nContent-Length: 0\r\n\r\n"
            ).encode()
        )
        try:
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            writer.close()
            raise AttachError(f"attach to {container} failed: {exc}") from exc
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        if " 101 " not in status_line and " 200 " not in status_line:
            writer.close()
            raise AttachError(f"attach to {container} refused: {status_line}")
        return Tty(reader=reader, writer=writer)

    async def resize(self, instance: Instance, *, cols: int, rows: int) -> None:
        try:
            await asyncio.to_thread(self.client.api.resize, self._container_name(instance), height=rows, width=cols)
        except (DockerException, requests.exceptions.RequestException) as exc:
            raise AttachError(f"resize of {self._container_name(instance)} failed: {exc}") from exc

    @staticmethod
    def _container_name(instance: Instance) -> str:
        return instance.container_name or resource_names(instance)["container"]

    async def _open_engine_connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        url = urlsplit(self.docker_host)
        if url.scheme == "unix":
            return await asyncio.open_unix_connection(url.path, limit=1 << 20)
        if url.scheme in ("tcp", "http", "https"):
            tls = _ssl_context(self.engine) if self.engine.tls_path else None
            port = url.port or (2376 if tls else 2375)
            return await asyncio.open_connection(url.hostname or "127.0.0.1", port, ssl=tls, limit=1 << 20)
        if url.scheme == "ssh":
            # As the docker CLI reaches an engine over ssh: its socket, relayed by `docker system dial-stdio`.
            target = f"{url.username}@{url.hostname}" if url.username else url.hostname
            port = ["-p", str(url.port)] if url.port else []
            relay = await asyncio.create_subprocess_exec(
                "ssh", *port, "--", target, "docker", "system", "dial-stdio",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 20,
            )  # fmt: skip
            return relay.stdout, relay.stdin  # ssh ends when its input does
        raise AttachError(f"terminals need an engine at unix://, tcp:// or ssh://, not {url.scheme}://")

    # --- Removal --------------------------------------------------------------

    def _remove_container(self, name: str) -> None:
        try:
            self.client.api.remove_container(name, v=True, force=True)
        except NotFound:
            return  # already gone
        except APIError as exc:
            if exc.status_code == 409:  # "removal already in progress"
                raise TransientBackendError(log_message=f"removal of {name} in progress") from exc
            raise

    def _remove_volume(self, name: str) -> None:
        try:
            self.client.api.remove_volume(name, force=True)
        except NotFound:
            return

    def _remove_network(self, name: str) -> None:
        for network in self._networks_named(name):
            try:
                network.remove()
            except NotFound:
                pass
            self._remove_egress(bridge_interface(network))

    def _remove_egress(self, interface: str) -> None:
        try:
            egress_remove(interface=interface)
        except EgressUnenforced as exc:
            # The network is gone, and its bridge with it: its rules match
            # nothing now. The reconciler removes them later.
            logger.warning("the firewall rules of %s stay for now: %s", interface, exc.log_message)

    def _translate(self, exc: Exception, action: str, subject: Instance | str) -> BackendError:
        """The BackendError for a failure of `action` on an instance (or on what `subject` names)."""
        if isinstance(exc, BackendError):
            return exc
        about = subject if isinstance(subject, str) else f"session {subject.session_id}"
        log_message = f"docker {action} for {about} failed: {exc}"
        if isinstance(exc, DiskError):
            return BackendError("The instance's disk could not be prepared.", log_message=log_message)
        if _is_transient(exc):
            return TransientBackendError(log_message=log_message)
        return BackendError(log_message=log_message)
