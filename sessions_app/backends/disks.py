"""Size-bounded disks for the inner /var/lib/docker of instances.

Docker's local volume driver cannot bound a volume's size, but it can mount
a block device. Each instance whose playground sets a `storage_size` gets a
sparse file of that size in PLAYGROUND_DISK_DIR, named by the instance's
storage token (never its session id: every container on the host can read
the backing file names of loop devices), formatted ext4 and attached
to a loop device. Its volume mounts the device through a symlink in
PLAYGROUND_DISK_LINK_DIR, whose path never changes, so the volume survives a
restart of the engine. The links live on a tmpfs (/run): after the host
reboots they are gone, so an instance's volume cannot mount whatever loop
device now sits at its old number. Its container then fails to start, and the
reconciler provisions it again, which attaches its disk anew.

This needs the platform to run as root on the Docker host itself (loop
devices, and paths the engine resolves). Where it cannot,
`unavailable_reason()` says why, and the backend falls back to an unbounded
volume (PLAYGROUND_BOUND_DISKS "auto") or refuses to start instances ("on").
"""

import contextlib
import fcntl
import logging
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

from sessions_app.models import is_plain_name

logger = logging.getLogger(__name__)

SUFFIX = ".img"
UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
MIN_SIZE = 64 << 20  # ext4 with a journal and room for at least one small image


class DiskError(RuntimeError):
    pass


def parse_size(text: str) -> int:
    """Bytes in a size such as "10G" or "512m"."""
    match = re.fullmatch(r"(\d+)([kKmMgGtT]?)", text.strip())
    if not match:
        raise ValueError(f"not a size: {text!r}")
    return int(match.group(1)) * UNITS[match.group(2).lower()]


class LoopDisks:
    def __init__(self, directory: Path | None = None, link_directory: Path | None = None) -> None:
        self.directory = Path(directory or settings.PLAYGROUND_DISK_DIR)
        self.link_directory = Path(link_directory or settings.PLAYGROUND_DISK_LINK_DIR)

    # --- What the backend asks ------------------------------------------------

    def unavailable_reason(self, docker_host: str) -> str | None:
        """Why this process cannot make bounded disks here, or None if it can."""
        if not docker_host.startswith("unix://"):
            return f"the Docker engine is remote ({docker_host})"
        if os.geteuid() != 0:
            return "the platform does not run as root"
        if not os.path.exists("/dev/loop-control"):
            return "the host has no loop devices (/dev/loop-control)"
        for tool in ("losetup", "mkfs.ext4"):
            if shutil.which(tool) is None:
                return f"{tool} is not installed"
        return None

    def device_path(self, token: str) -> Path:
        """The stable path a volume mounts: a symlink to the disk's loop device."""
        return self.link_directory / self._checked(token)

    def image_path(self, token: str) -> Path:
        return self.directory / f"{self._checked(token)}{SUFFIX}"

    def ensure(self, token: str, size: str) -> Path:
        """Make the disk of this token if there is none, attach it, and return its device path.

        Idempotent: a second call finds the file and the loop device the
        first one made.
        """
        nbytes = max(parse_size(size), MIN_SIZE)
        image = self.image_path(token)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.link_directory.mkdir(parents=True, exist_ok=True)
        if not image.exists():
            self._format(image, nbytes)
        with self._locked(image):
            attached = self._devices_of(image)
            device = attached[0] if attached else self._run("losetup", "--find", "--show", str(image)).strip()
            link = self.device_path(token)
            if not (link.is_symlink() and os.readlink(link) == device):
                temporary = link.with_name(f".{link.name}.{uuid.uuid4().hex}")
                temporary.symlink_to(device)
                os.replace(temporary, link)
        return link

    def release(self, token: str) -> None:
        """Detach and delete the disk of this token; nothing happens if there is none."""
        image = self.image_path(token)
        with contextlib.suppress(FileNotFoundError):
            self.device_path(token).unlink()
        # No file: no disk, or released already.
        with contextlib.suppress(FileNotFoundError), self._locked(image):
            for device in self._devices_of(image):
                # A device still mounted is detached by the kernel as soon
                # as it is unmounted.
                self._run("losetup", "--detach", device)
            image.unlink(missing_ok=True)

    def tokens_present(self) -> set[str]:
        """The storage tokens that have a disk file."""
        if not self.directory.is_dir():
            return set()
        return {
            path.name.removesuffix(SUFFIX)
            for path in self.directory.iterdir()
            if path.name.endswith(SUFFIX) and is_plain_name(path.name.removesuffix(SUFFIX))
        }

    # --- Helpers --------------------------------------------------------------------

    @staticmethod
    def _checked(token: str) -> str:
        if not is_plain_name(token):
            raise DiskError(f"not a storage token: {token!r}")
        return token

    def _format(self, image: Path, nbytes: int) -> None:
        # Formatted under another name and then linked into place, so a
        # racing attempt never sees a half-made file.
        temporary = image.with_name(f".{image.name}.{uuid.uuid4().hex}")
        try:
            with open(temporary, "wb") as handle:
                handle.truncate(nbytes)  # sparse: takes disk space only as it fills
            self._run(
                "mkfs.ext4",
                "-q",
                "-F",
                "-m",
                "0",
                "-E",
                "lazy_itable_init=1,lazy_journal_init=1,nodiscard",
                str(temporary),
            )
            with contextlib.suppress(FileExistsError):
                os.link(temporary, image)
        finally:
            temporary.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _locked(self, image: Path) -> Iterator[None]:
        """Serialise the attempts of every worker process on this disk."""
        with open(image, "rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
            yield

    def _devices_of(self, image: Path) -> list[str]:
        """The loop devices the file is attached to."""
        # "/dev/loop3: [2049]:1234 (/var/.../abc.img)" per device.
        output = self._run("losetup", "--associated", str(image))
        return [line.split(":", 1)[0] for line in output.splitlines() if line.startswith("/dev/")]

    @staticmethod
    def _run(*command: str) -> str:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DiskError(f"{command[0]} failed: {exc}") from exc
        if done.returncode != 0:
            raise DiskError(f"{' '.join(command)} failed: {done.stderr.strip()}")
        return done.stdout
