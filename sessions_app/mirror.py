"""The registry mirror instances pull through: what it holds, seeding it, keeping it under its cap.

Two registries share one storage (scripts/lib.sh, docker/compose.yaml): the
mirror, which instances' inner dockerds list under `registry-mirrors`, and
the store, which takes pushes (a registry in proxy mode refuses them). This
module talks to the store only: over its HTTP API
(settings.PLAYGROUND_REGISTRY_API) to list and delete, and through the host's
Docker engine (settings.PLAYGROUND_REGISTRY_STORE, a loopback address the
engine speaks plain HTTP to) to push.

A mirror answers pulls of Docker Hub images only, so an image goes in under
its Docker Hub name: `busybox` as `library/busybox:latest`.
"""

import logging
import re
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import docker
import requests
from django.conf import settings

from sessions_app.backends.docker import docker_client
from sessions_app.errors import PlaygroundError

logger = logging.getLogger(__name__)

Log = Callable[[str], None]

MANIFEST_TYPES = {
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
}
LIST_TYPES = {
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
}
ACCEPT = ", ".join(sorted(MANIFEST_TYPES | LIST_TYPES))
TIMEOUT = 10  # seconds for one request to the registry
PAGE = 1000  # repositories asked for at a time
# A Docker Hub name: lower-case path components, an optional tag.
HUB_NAME = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*")


class MirrorError(PlaygroundError):
    reason = "mirror_error"
    message = "The registry mirror cannot do that."


class MirrorUnavailable(MirrorError):
    reason = "mirror_unavailable"
    message = "The registry mirror does not answer."


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int


@dataclass(frozen=True)
class MirrorImage:
    """One tag the mirror holds."""

    repository: str
    tag: str
    digest: str
    # Its config and layers (of every platform the mirror holds, for a list).
    blobs: tuple[Blob, ...]
    # When the tag was last pushed or cached; None where the storage is not local.
    pushed_at: datetime | None

    @property
    def name(self) -> str:
        return f"{self.repository}:{self.tag}"

    @property
    def size(self) -> int:
        return sum(blob.size for blob in set(self.blobs))


def stored_size(images: Iterable[MirrorImage]) -> int:
    """Bytes of the blobs these images hold, each blob counted once (layers are shared)."""
    return sum(blob.size for blob in {blob for image in images for blob in image.blobs})


# --- Reading ------------------------------------------------------------------------


def mirror_images() -> list[MirrorImage]:
    """Every tag of every repository in the mirror, by name.

    Raises MirrorUnavailable when the store does not answer.
    """
    with requests.Session() as http:
        images = []
        for repository in _repositories(http):
            tags = _get(http, f"/v2/{repository}/tags/list").json().get("tags") or []
            for tag in sorted(tags):
                image = _image(http, repository, tag)
                if image is not None:  # deleted meanwhile
                    images.append(image)
    return images


def _repositories(http: requests.Session) -> list[str]:
    repositories: list[str] = []
    path = f"/v2/_catalog?n={PAGE}"
    while path:
        response = _get(http, path)
        repositories += response.json().get("repositories") or []
        # The next page, as <URL>; rel="next" (with or without the host).
        link = re.match(r"<(?:https?://[^/]+)?([^>]+)>", response.headers.get("Link", ""))
        path = link[1] if link else ""
    return repositories


def _image(http: requests.Session, repository: str, tag: str) -> MirrorImage | None:
    response = _get(http, f"/v2/{repository}/manifests/{tag}", missing_ok=True)
    if response is None:
        return None
    manifest = response.json()
    blobs = _blobs(http, repository, manifest)
    return MirrorImage(
        repository=repository,
        tag=tag,
        digest=response.headers.get("Docker-Content-Digest", ""),
        blobs=tuple(blobs),
        pushed_at=_pushed_at(repository, tag),
    )


def _blobs(http: requests.Session, repository: str, manifest: dict) -> list[Blob]:
    if manifest.get("mediaType") in LIST_TYPES or "manifests" in manifest:
        # A list of platforms: the mirror holds those it was asked for (a
        # cache) or given (a seeded list); the others are not counted.
        blobs = []
        for child in manifest.get("manifests", []):
            response = _get(http, f"/v2/{repository}/manifests/{child['digest']}", missing_ok=True)
            if response is not None:
                blobs += _blobs(http, repository, response.json())
        return blobs
    parts = [manifest.get("config") or {}, *(manifest.get("layers") or [])]
    return [Blob(part["digest"], int(part.get("size", 0))) for part in parts if part.get("digest")]


def _pushed_at(repository: str, tag: str) -> datetime | None:
    link = (
        Path(settings.PLAYGROUND_REGISTRY_DIR)
        / "storage/docker/registry/v2/repositories"
        / repository
        / "_manifests/tags"
        / tag
        / "current/link"
    )
    try:
        return datetime.fromtimestamp(link.stat().st_mtime, tz=UTC)
    except OSError:
        return None


def _get(http: requests.Session, path: str, *, missing_ok: bool = False) -> requests.Response | None:
    url = f"{settings.PLAYGROUND_REGISTRY_API.rstrip('/')}{path}"
    try:
        response = http.get(url, headers={"Accept": ACCEPT}, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise MirrorUnavailable(log_message=f"the registry mirror's store at {url} does not answer: {exc}") from exc
    if response.status_code == 404 and missing_ok:
        return None
    if response.status_code != 200:
        answer = f"{response.status_code} {response.text[:200]}".strip()
        raise MirrorUnavailable(log_message=f"the registry mirror's store answered GET {url} with {answer}")
    return response


# --- Seeding ------------------------------------------------------------------------


def hub_name(reference: str) -> tuple[str, str]:
    """The repository and tag a Docker Hub image is pulled as: "busybox" -> ("library/busybox", "latest").

    Raises MirrorError for an image of another registry (a mirror serves
    Docker Hub's only), by digest, or of a name Docker Hub cannot have.
    """
    name, tag = reference, "latest"
    if "@" in name:
        raise MirrorError(f"{reference}: an image goes into the mirror by tag, not by digest.")
    if ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        if first not in ("docker.io", "index.docker.io", "registry-1.docker.io"):
            raise MirrorError(f"{reference}: the mirror serves Docker Hub's images only, and this one is of {first}.")
        name = rest
    if "/" not in name:
        name = f"library/{name}"
    if not HUB_NAME.fullmatch(name) or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", tag):
        raise MirrorError(f"{reference}: not an image name Docker Hub could have.")
    return name, tag


def mirror_seed(*, references: list[str], log: Log) -> list[str]:
    """Push these images of the host's engine into the mirror; return what it then holds, as repository:tag.

    Each is tagged for the store, pushed through the engine, and the extra
    tag removed again. Raises MirrorError when an image is missing or the
    push fails (those pushed before it stay).
    """
    names = [hub_name(reference) for reference in references]  # all checked before any is pushed
    client = docker_client(timeout=600)
    try:
        for reference, (repository, tag) in zip(references, names, strict=True):
            try:
                image = client.images.get(reference)
            except docker.errors.ImageNotFound:
                raise MirrorError(f"{reference}: the host's Docker engine has no such image.") from None
            _push(client, image, repository, tag, log)
    finally:
        client.close()
    return [f"{repository}:{tag}" for repository, tag in names]


def mirror_seed_tar(*, path: Path, log: Log) -> list[str]:
    """Load a `docker save` tar into the host's engine, then push every tagged image in it; as mirror_seed."""
    client = docker_client(timeout=600)
    try:
        try:
            with open(path, "rb") as tar:
                loaded = client.images.load(tar)
        except OSError as exc:
            raise MirrorError(f"{path}: {exc.strerror}.") from exc
        except docker.errors.APIError as exc:
            raise MirrorError(f"{path}: the engine could not load it: {exc.explanation}") from exc
        references = [tag for image in loaded for tag in image.tags]
        if not references:
            raise MirrorError(f"{path}: it holds no tagged image (save images by name: docker save NAME:TAG).")
    finally:
        client.close()
    return mirror_seed(references=references, log=log)


def _push(client: docker.DockerClient, image, repository: str, tag: str, log: Log) -> None:
    target = f"{settings.PLAYGROUND_REGISTRY_STORE}/{repository}"
    image.tag(target, tag)
    try:
        log(f"Pushing {repository}:{tag} ({image.short_id})")
        for event in client.images.push(target, tag, stream=True, decode=True):
            if "error" in event:
                raise MirrorError(f"{repository}:{tag}: the push failed: {event['error']}")
    except docker.errors.APIError as exc:
        raise MirrorError(f"{repository}:{tag}: the push failed: {exc.explanation}") from exc
    finally:
        # Only the extra name goes; the image stays.
        client.images.remove(f"{target}:{tag}", noprune=True)


# --- The cap --------------------------------------------------------------------------


def mirror_trim(*, cap_bytes: int, log: Log) -> list[str]:
    """Delete images, oldest first, until what the mirror holds fits under cap_bytes; return their names.

    An image of unknown age counts as the oldest. A layer another image
    shares frees nothing: the loop goes on until the total really fits. The
    space itself comes back with mirror_collect_garbage().
    """
    images = sorted(mirror_images(), key=lambda image: (image.pushed_at is not None, image.pushed_at, image.name))
    deleted: list[str] = []
    with requests.Session() as http:
        while images and stored_size(images) > cap_bytes:
            oldest = images.pop(0)
            # By digest: every tag of the repository on that digest goes with it.
            _delete(http, f"/v2/{oldest.repository}/manifests/{oldest.digest}")
            gone = [image for image in images if (image.repository, image.digest) == (oldest.repository, oldest.digest)]
            images = [image for image in images if image not in gone]
            deleted += [oldest.name, *(image.name for image in gone)]
            log(f"Deleted {oldest.name} ({oldest.size / 2**20:.1f} MiB)")
    return deleted


def _delete(http: requests.Session, path: str) -> None:
    url = f"{settings.PLAYGROUND_REGISTRY_API.rstrip('/')}{path}"
    try:
        response = http.delete(url, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise MirrorUnavailable(log_message=f"the registry mirror's store at {url} does not answer: {exc}") from exc
    if response.status_code not in (202, 404):  # 404: gone already
        raise MirrorError(
            f"The mirror refused to delete {path} ({response.status_code}: {response.text[:200]}); "
            "its storage.delete.enabled must be true."
        )


def mirror_collect_garbage(*, log: Log) -> bool:
    """Run the registry's garbage-collect on the store's storage, where the platform started it.

    Returns False when there is no local configuration to run it on (the
    operator runs `registry garbage-collect` where the registry runs).
    Raises MirrorError when it fails.
    """
    config = Path(settings.PLAYGROUND_REGISTRY_DIR) / "store.yml"
    if not config.is_file():
        log(f"No {config}: run `registry garbage-collect CONFIG` where the registry runs to free the space.")
        return False
    # Not --delete-untagged: Distribution 2.8 would also delete the platforms of
    # a tagged list, which are untagged manifests.
    try:
        done = subprocess.run(
            ["docker-registry", "garbage-collect", str(config)], capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise MirrorError(f"docker-registry garbage-collect could not run: {exc}") from exc
    if done.returncode != 0:
        raise MirrorError(f"docker-registry garbage-collect failed: {(done.stderr or done.stdout).strip()[-500:]}")
    freed = done.stdout.count("blob eligible for deletion")
    log(f"garbage-collect freed {freed} blob(s)")
    return True
