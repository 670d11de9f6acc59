"""Build the DIND image that every playground instance runs.

The build context is the ``docker/`` directory at the root of the project. The
image is built on the configured base (``debian:trixie-slim`` by default) when the
engine has it or can pull it, and otherwise on an offline Debian base made with
``docker/make-offline-base.sh``, so that machines without a registry can still
run instances.

A build is skipped when an image with the wanted tag already carries the
content hash of the build context and of the base it was built on: calling
``build_dind_image`` at every deploy costs two image look-ups.
"""

from __future__ import annotations

import hashlib
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import docker
from docker.errors import BuildError, DockerException, ImageNotFound
from docker.models.images import Image
from docker.utils import parse_repository_tag
from docker.utils.build import exclude_paths

DOCKER_DIR = Path(__file__).resolve().parent.parent / "docker"
DEFAULT_TAG = "playground-dind:latest"
DEFAULT_BASE_IMAGE = "debian:trixie-slim"
OFFLINE_BASE_IMAGE = "playground-dind-base:trixie"
OFFLINE_BASE_SCRIPT = DOCKER_DIR / "make-offline-base.sh"

LABEL_CONTEXT_HASH = "org.playground.context-hash"
LABEL_BASE_IMAGE = "org.playground.base-image"

# How long to try pulling the base. Where no registry is reachable the engine
# usually fails at once (no DNS), but a firewall that drops packets would make
# it wait for a TCP timeout; past this the offline base is used instead.
PULL_TIMEOUT_SECONDS = 8.0

Log = Callable[[str], None]


class DindImageError(RuntimeError):
    """The DIND image, or the base it needs, could not be built."""


def build_dind_image(
    *,
    client: docker.DockerClient,
    tag: str = DEFAULT_TAG,
    base_image: str | None = None,
    force: bool = False,
    log: Log = print,
) -> str:
    """Make sure the engine has an up-to-date DIND image tagged ``tag``; return its id.

    ``base_image`` is the preferred base (``DEFAULT_BASE_IMAGE`` when None). It
    is used when the engine has it or can pull it within
    ``PULL_TIMEOUT_SECONDS``; otherwise the image is built on
    ``OFFLINE_BASE_IMAGE``, which is made first when missing. Nothing is built
    when the existing image already matches the build context and its base,
    unless ``force`` is set. Raises ``DindImageError`` when a build fails.
    """
    base_image = base_image or DEFAULT_BASE_IMAGE
    context_digest = _context_digest(DOCKER_DIR)

    if not force:
        current = _up_to_date_image(client, tag, base_image, context_digest)
        if current is not None:
            log(f"The image {tag} is up to date (built from {current.labels[LABEL_BASE_IMAGE]}); nothing to do.")
            return current.id

    base_name, base = _choose_base(client, base_image, log)
    context_hash = _context_hash(context_digest, base.id)
    log(f"Building {tag} from {base_name} (context hash {context_hash[:12]}).")
    try:
        image, _ = client.images.build(
            path=str(DOCKER_DIR),
            tag=tag,
            buildargs={"BASE_IMAGE": base_name},
            labels={LABEL_CONTEXT_HASH: context_hash, LABEL_BASE_IMAGE: base_name},
            rm=True,
            forcerm=True,
            pull=False,
        )
    except BuildError as exc:
        lines = [chunk.get("stream", "") or chunk.get("error", "") for chunk in exc.build_log]
        tail = "".join(lines)[-2000:]
        raise DindImageError(f"Building {tag} failed: {exc.msg}\n{tail}") from exc
    log(f"Built {tag} as {image.short_id}.")
    return image.id


def _context_digest(directory: Path) -> str:
    """Hash the files that `docker build` sends from ``directory``, names and modes included."""
    if not (directory / "Dockerfile").is_file():
        raise DindImageError(f"There is no Dockerfile in {directory}.")
    # docker/.dockerignore keeps the files of the platform's own deployment
    # (platform.Dockerfile, compose.yaml, .env) out of this image's context, so
    # editing them neither sends them to the engine nor changes this hash. Its
    # lines are read as the Docker SDK reads them when it builds (stripped,
    # blank lines and comments dropped), so both see the same files.
    ignore_file = directory / ".dockerignore"
    lines = ignore_file.read_text().splitlines() if ignore_file.is_file() else []
    patterns = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    digest = hashlib.sha256()
    for name in sorted(exclude_paths(str(directory), patterns)):
        path = directory / name
        # .dockerignore itself is always sent but never copied into the image;
        # what it changes (the files sent) is hashed below.
        if name == ".dockerignore" or not path.is_file():
            continue
        digest.update(name.encode() + b"\0")
        # The executable bit matters: the entrypoint is copied with it.
        digest.update(b"x" if path.stat().st_mode & 0o111 else b"-")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _context_hash(context_digest: str, base_id: str) -> str:
    return hashlib.sha256(f"{context_digest}\n{base_id}".encode()).hexdigest()


def _local_image(client: docker.DockerClient, name: str) -> Image | None:
    try:
        return client.images.get(name)
    except ImageNotFound:
        return None


def _up_to_date_image(client: docker.DockerClient, tag: str, base_image: str, context_digest: str) -> Image | None:
    """The existing ``tag`` image if nothing it was built from has changed, else None.

    The preferred base counts whenever the engine has it. An image built on the
    offline base stays current while the preferred base is missing, so that a
    machine without a registry does not retry the pull at every call.
    """
    current = _local_image(client, tag)
    if current is None:
        return None
    built_from = current.labels.get(LABEL_BASE_IMAGE)
    preferred = _local_image(client, base_image)
    if preferred is not None:
        base = preferred if built_from == base_image else None
    elif built_from == OFFLINE_BASE_IMAGE:
        base = _local_image(client, OFFLINE_BASE_IMAGE)
    else:
        base = None
    if base is None:
        return None
    if current.labels.get(LABEL_CONTEXT_HASH) != _context_hash(context_digest, base.id):
        return None
    return current


def _choose_base(client: docker.DockerClient, base_image: str, log: Log) -> tuple[str, Image]:
    """The base to build on, as (name, image): the preferred one if it can be had, else the offline one."""
    image = _local_image(client, base_image)
    if image is not None:
        log(f"Using the base image {base_image}, which the engine already has.")
        return base_image, image
    log(f"The engine does not have {base_image}; trying to pull it for up to {PULL_TIMEOUT_SECONDS:.0f} s.")
    image = _pull(client, base_image, log)
    if image is not None:
        log(f"Pulled {base_image}.")
        return base_image, image
    image = _local_image(client, OFFLINE_BASE_IMAGE)
    if image is not None:
        log(f"Using the offline base image {OFFLINE_BASE_IMAGE}.")
        return OFFLINE_BASE_IMAGE, image
    log(f"Making the offline base image {OFFLINE_BASE_IMAGE} with {OFFLINE_BASE_SCRIPT.name} (about a minute).")
    _make_offline_base(OFFLINE_BASE_IMAGE, log)
    image = _local_image(client, OFFLINE_BASE_IMAGE)
    if image is None:
        raise DindImageError(f"{OFFLINE_BASE_SCRIPT.name} finished but the engine has no {OFFLINE_BASE_IMAGE}.")
    return OFFLINE_BASE_IMAGE, image


def _pull(client: docker.DockerClient, name: str, log: Log) -> Image | None:
    """Pull ``name``, giving up after PULL_TIMEOUT_SECONDS; None when it cannot be had."""
    repository, tag = parse_repository_tag(name)
    outcome: dict[str, BaseException] = {}

    def pull() -> None:
        try:
            client.api.pull(repository, tag=tag or "latest")
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc

    # docker-py sends pulls without a timeout, so the wait is bounded here, in
    # a daemon thread that cannot hold up the interpreter's exit. A pull still
    # running when we give up carries on in the engine harmlessly.
    worker = threading.Thread(target=pull, name=f"pull {name}", daemon=True)
    worker.start()
    worker.join(PULL_TIMEOUT_SECONDS)
    if worker.is_alive():
        log(f"Pulling {name} did not finish within {PULL_TIMEOUT_SECONDS:.0f} s; giving up.")
        return None
    error = outcome.get("error")
    if isinstance(error, DockerException):
        log(f"Pulling {name} failed: {getattr(error, 'explanation', None) or error}")
        return None
    if error is not None:
        raise error
    return _local_image(client, name)


def _make_offline_base(tag: str, log: Log) -> None:
    """Run make-offline-base.sh, passing its progress lines to ``log``."""
    try:
        process = subprocess.Popen(
            ["sh", str(OFFLINE_BASE_SCRIPT), tag],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    except OSError as exc:
        raise DindImageError(f"Could not run {OFFLINE_BASE_SCRIPT}: {exc}") from exc
    output: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line)
        log(line.rstrip())
    status = process.wait()
    if status != 0:
        tail = "".join(output)[-2000:]
        raise DindImageError(f"{OFFLINE_BASE_SCRIPT.name} failed with exit status {status}:\n{tail}")
