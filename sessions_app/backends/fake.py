"""In-memory backends for unit tests: no Docker, but the same contract.

The siblings of FakeBackend fail in the ways a real engine does, so tests can
see what users see when provisioning goes wrong.
"""

import threading
import time
from dataclasses import dataclass, field

from sessions_app.backends.base import Backend, ImageMissing, PollResult, StartResult, TransientBackendError
from sessions_app.models import Instance


@dataclass
class FakeContainer:
    name: str
    running: bool = True
    starts: int = 0
    address: str | None = None


@dataclass
class FakeEngine:
    """What the fake "engine" holds, shared by every fake backend in the process."""

    containers: dict[str, FakeContainer] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.containers.clear()
            self.calls.clear()


engine = FakeEngine()


class FakeBackend(Backend):
    def start(self, instance: Instance) -> StartResult:
        name = f"playground-{instance.session_id}"
        with engine.lock:
            engine.calls.append(("start", instance.session_id))
            container = engine.containers.setdefault(name, FakeContainer(name=name))
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

    def stop(self, instance: Instance) -> None:
        with engine.lock:
            engine.calls.append(("stop", instance.session_id))
            container = engine.containers.get(f"playground-{instance.session_id}")
            if container:
                container.running = False

    def poll(self, instance: Instance) -> PollResult:
        container = engine.containers.get(f"playground-{instance.session_id}")
        if container is None:
            return PollResult.MISSING
        return PollResult.RUNNING if container.running else PollResult.STOPPED

    def address(self, instance: Instance) -> str | None:
        container = engine.containers.get(f"playground-{instance.session_id}")
        return container.address if container else None

    def remove(self, instance: Instance) -> None:
        self.remove_orphan(instance.session_id)

    def remove_orphan(self, session_id: str) -> None:
        with engine.lock:
            engine.calls.append(("remove", session_id))
            engine.containers.pop(f"playground-{session_id}", None)

    def sessions_present(self) -> set[str]:
        return {name.removeprefix("playground-") for name in engine.containers}

    def prepare(self, instance: Instance) -> bool:
        engine.calls.append(("prepare", instance.session_id))
        self.start(instance)
        return True


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
