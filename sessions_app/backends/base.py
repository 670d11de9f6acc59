"""The seam between sessions and whatever runs their instances.

Like JupyterHub's Spawner, a backend is told about one instance at a time and
keeps no state of its own that the database does not also hold: every method
must work in a fresh process, after a crash, and when called twice.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from sessions_app.errors import PlaygroundError

if TYPE_CHECKING:
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


class PollResult(StrEnum):
    RUNNING = "running"  # the container runs (whether its daemon answers is not checked)
    STOPPED = "stopped"  # the container exists but does not run
    MISSING = "missing"  # nothing of the instance exists


class Backend:
    """Runs one DIND instance per session.

    start(instance)
        Make the instance's container exist and run, and return once the Docker
        daemon inside it answers. Idempotent: when the container (or its
        network or volume) already exists, for instance because an earlier
        attempt died half-way, it is adopted, never duplicated. Raises
        TransientBackendError when a retry may succeed and BackendError when
        it will not; in both cases whatever was created stays in place for
        the next attempt or for remove().
    stop(instance)
        Stop the container, keeping it and its data. Stopping a missing or
        stopped container is not an error.
    poll(instance)
        Report whether the container runs, exists stopped, or is missing.
    address(instance)
        The instance's IP address now (it may change when the engine
        restarts its container), or None.
    remove(instance)
        Remove the container, its volume and its network. Returns once they
        are gone; removing what is already gone is not an error. Raises
        TransientBackendError while a removal is still in progress.
    sessions_present()
        The ids of the sessions of which anything (container, volume or
        network) exists, among those this platform made.
    remove_orphan(session_id)
        remove() for a session the database no longer knows.
    prepare(instance)
        start() ahead of time, for a session to come: `instance` and its
        session are not saved. start() of the real instance later adopts what
        it made. Returns False for a backend that has nothing to gain from
        it. What it makes counts in sessions_present().
    """

    def start(self, instance: "Instance") -> StartResult:
        raise NotImplementedError

    def stop(self, instance: "Instance") -> None:
        raise NotImplementedError

    def poll(self, instance: "Instance") -> PollResult:
        raise NotImplementedError

    def address(self, instance: "Instance") -> str | None:
        raise NotImplementedError

    def remove(self, instance: "Instance") -> None:
        raise NotImplementedError

    def sessions_present(self) -> set[str]:
        raise NotImplementedError

    def remove_orphan(self, session_id: str) -> None:
        raise NotImplementedError

    def prepare(self, instance: "Instance") -> bool:
        return False
