"""The DIND image on the real Docker engine: it builds (once), its inner daemon
answers, nested containers run and publish ports, and the terminal behaves.

These tests need no database: they start instances the way the Docker backend
does, under the rootless profile (the default) and the capability profile
(what works where --privileged is refused), one module run each.
"""

from __future__ import annotations

import re
import socket
import time
import uuid

import docker
import pytest

from sessions_app.backends.docker import LEARNER_UID, ROOTLESS_VARIABLE, create_container, rootless_options
from sessions_app.dind_image import LABEL_BASE_IMAGE, LABEL_CONTEXT_HASH, build_dind_image
from tests.support.tiny_image import INDEX_HTML, load_tiny_image

pytestmark = pytest.mark.integration

TEST_LABEL = "org.playground.test"
RUN_LABEL = "org.playground.test-run"
RUN_ID = uuid.uuid4().hex[:10]
LABELS = {TEST_LABEL: "1", RUN_LABEL: RUN_ID}
IMAGE_TAG = f"playground-dind:test-{RUN_ID}"

# What the Docker backend passes where --privileged is refused.
CAPABILITY_PROFILE = {
    "cap_add": ["ALL"],
    "cap_drop": ["SYS_RESOURCE"],
    "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
}


@pytest.fixture(scope="module", params=["rootless", "capabilities"])
def profile(request) -> str:
    return request.param


def profile_options(profile: str) -> dict:
    if profile == "rootless":
        return {**rootless_options(), "environment": {ROOTLESS_VARIABLE: "1"}}
    return CAPABILITY_PROFILE


def user_of(profile: str) -> str:
    """Who the platform runs commands as: never root under the rootless profile."""
    return LEARNER_UID if profile == "rootless" else ""


ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture(scope="module")
def engine():
    """The real engine; everything this module makes there is removed at its end."""
    client = docker.from_env(timeout=120)
    yield client
    selector = {"label": f"{RUN_LABEL}={RUN_ID}"}
    for container in client.containers.list(all=True, filters=selector):
        container.remove(force=True, v=True)
    for volume in client.volumes.list(filters=selector):
        volume.remove(force=True)
    try:
        client.images.remove(IMAGE_TAG)  # only the tag: the image is shared with the real one
    except docker.errors.ImageNotFound:
        pass
    client.close()


@pytest.fixture(scope="module")
def image(engine) -> str:
    return build_dind_image(client=engine, tag=IMAGE_TAG, log=lambda message: None)


def start_instance(engine, image: str, profile: str, command: list[str] | None = None, **options):
    """Start an instance as the platform does (without waiting for its daemon)."""
    volume = engine.volumes.create(name=f"playground-test-{uuid.uuid4().hex[:10]}", labels=LABELS)
    container = create_container(
        engine,
        {
            "image": image,
            "command": command,
            "detach": True,
            "hostname": "node1",
            "tty": True,
            "stdin_open": True,
            "labels": LABELS,
            "volumes": {volume.name: {"bind": "/var/lib/docker", "mode": "rw"}},
            "tmpfs": {"/run": "rw,nosuid,nodev,exec,size=64m"},
            **profile_options(profile),
            **options,
        },
    )
    container.start()
    return container


def start_ready_instance(engine, image: str, profile: str, **options):
    """Start an instance and wait until its inner daemon answers."""
    container = start_instance(engine, image, profile, **options)
    result = container.exec_run(["wait-for-docker", "30"], user=user_of(profile))
    assert result.exit_code == 0, result.output.decode(errors="replace")
    return container


@pytest.fixture(scope="module")
def instance(engine, image, profile):
    container = start_ready_instance(engine, image, profile)
    container.profile = profile
    load_tiny_image(container, user=user_of(profile))
    return container


def run(container, command: str) -> tuple[int, str]:
    result = container.exec_run(["sh", "-c", command], user=user_of(container.profile))
    return result.exit_code, result.output.decode(errors="replace")


class Terminal:
    """The container's own TTY, attached over the API as the browser terminal will be."""

    def __init__(self, container) -> None:
        params = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        self.socket: socket.socket = container.attach_socket(params=params)._sock
        self.socket.settimeout(0.1)
        self.screen = b""
        # The first login shell starts once the TTY has a size, as the
        # platform gives it when the first viewer attaches.
        container.resize(height=24, width=80)

    def type(self, text: str) -> None:
        self.socket.sendall(text.encode())

    def expect(self, pattern: str, timeout: float = 5) -> re.Match:
        """Wait for ``pattern`` in the output since the last match, colours stripped."""
        regex = re.compile(pattern.encode())
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(ANSI.sub(b"", self.screen))
            if match:
                self.screen = ANSI.sub(b"", self.screen)[match.end() :]
                return match
            if time.monotonic() > deadline:
                shown = self.screen[-500:]
                raise AssertionError(f"{pattern!r} not seen within {timeout}s; the terminal shows {shown!r}")
            try:
                self.screen += self.socket.recv(65536)
            except TimeoutError:
                pass

    def close(self) -> None:
        self.socket.close()


@pytest.fixture
def terminal(instance):
    attached = Terminal(instance)
    yield attached
    attached.close()


def test_it_builds_the_image_once_and_then_does_nothing(engine, image):
    built = engine.images.get(image)
    assert built.labels["org.playground.dind"] == "1"
    assert len(built.labels[LABEL_CONTEXT_HASH]) == 64
    assert built.labels[LABEL_BASE_IMAGE]
    assert built.attrs["Config"]["Entrypoint"] == ["/usr/local/bin/playground-entrypoint"]

    messages: list[str] = []
    again = build_dind_image(client=engine, tag=IMAGE_TAG, log=messages.append)

    assert again == image
    assert not any("Building" in message for message in messages), messages
    assert any("up to date" in message for message in messages), messages


def test_it_starts_an_inner_daemon_on_overlay2(instance):
    status, output = run(instance, "docker info --format '{{.Driver}} {{.CgroupDriver}} {{.SecurityOptions}}'")

    assert status == 0, output
    driver, cgroups, security = output.split(" ", 2)
    assert driver == "overlay2"
    if instance.profile == "rootless":
        # A rootless daemon on cgroup v1 leaves nested containers in the
        # instance's own cgroup (the next test).
        assert (cgroups, "name=rootless" in security) == ("none", True)
    else:
        assert cgroups == "cgroupfs"


def test_it_runs_nested_containers(instance):
    status, output = run(instance, "docker run --rm tiny:latest echo hello")

    assert status == 0, output
    assert output.strip() == "hello"


def test_it_keeps_nested_containers_inside_the_instance_cgroup(instance):
    # Otherwise the instance's memory and pids limits would not apply to them.
    def memory_cgroup(listing: str) -> str:
        return next(line.split(":", 2)[2] for line in listing.splitlines() if ":memory:" in line)

    _, own = run(instance, "cat /proc/1/cgroup")
    status, nested = run(instance, "docker run --rm tiny:latest cat /proc/self/cgroup")

    assert status == 0, nested
    if instance.profile == "rootless":
        assert memory_cgroup(nested) == memory_cgroup(own)
    else:
        assert memory_cgroup(nested).startswith(memory_cgroup(own).rstrip("/") + "/docker/")


def test_it_publishes_ports_of_nested_containers(instance):
    status, output = run(instance, "docker run -d --name web -p 8080:80 tiny:latest httpd -f -p 80")
    assert status == 0, output

    deadline = time.monotonic() + 10
    while True:
        status, page = run(instance, "curl -sf -m 2 http://localhost:8080/")
        if status == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert page == INDEX_HTML.decode()


def test_it_shows_a_prompt_with_the_hostname_and_address(instance, terminal):
    instance.reload()
    address = instance.attrs["NetworkSettings"]["IPAddress"]

    user = "learner" if instance.profile == "rootless" else "root"
    terminal.type("\n")
    terminal.expect(rf"\[node1\] \(local\) {user}@{re.escape(address)} ~\$ ")
    terminal.type("echo $((6 * 7))\n")
    terminal.expect(r"[\r\n]42\r?\n")


def test_it_lets_ctrl_c_stop_a_command(terminal):
    terminal.type("sleep 60\n")
    terminal.expect(r"sleep 60")
    time.sleep(0.3)
    terminal.type("\x03")
    terminal.type("echo status=$?\n")

    terminal.expect(r"status=130", timeout=3)


def test_it_starts_a_new_login_shell_when_the_user_exits(instance, terminal):
    terminal.type("echo pid=$$\n")
    first = terminal.expect(r"pid=(\d+)").group(1)
    terminal.type("exit\n")

    terminal.expect(r"Welcome to the Docker playground")
    terminal.type("echo pid=$$\n")
    second = terminal.expect(r"pid=(\d+)").group(1)
    assert second != first
    status, output = run(instance, "docker version --format '{{.Server.Version}}'")
    assert status == 0, output


def test_it_stops_its_daemon_and_nested_containers_on_sigterm(engine, image, profile):
    container = start_ready_instance(engine, image, profile)
    container.profile = profile
    load_tiny_image(container, user=user_of(profile))
    status, output = run(container, "docker run -d tiny:latest sleep 600")
    assert status == 0, output

    started = time.monotonic()
    container.stop(timeout=10)
    elapsed = time.monotonic() - started

    container.reload()
    assert container.attrs["State"]["ExitCode"] == 0
    assert elapsed < 8
    stream, _ = container.get_archive("/var/log/dockerd.log")
    assert b"Daemon shutdown complete" in b"".join(stream)


def test_it_reports_a_daemon_that_died(engine, image, profile):
    container = start_instance(
        engine,
        image,
        profile,
        ["sh", "-c", "until pgrep -x dockerd; do sleep 0.05; done; pkill -x dockerd; wait-for-docker 20"],
    )

    result = container.wait(timeout=15)

    assert result["StatusCode"] == 1
    assert b"the inner Docker daemon is not running" in container.logs()


@pytest.mark.parametrize(("nano_cpus", "expected"), [(1_000_000_000, "1"), (500_000_000, "1"), (None, None)])
def test_its_daemons_schedule_on_as_many_processors_as_its_cpu_limit(engine, image, profile, nano_cpus, expected):
    # Go sizes its scheduler by the machine's cores, not by the instance's
    # quota: each inner daemon of a one-CPU instance would keep a processor's
    # caches and threads per core (about 2 MiB of an idle instance on two).
    options = {"nano_cpus": nano_cpus} if nano_cpus else {}
    container = start_ready_instance(engine, image, profile, **options)
    container.profile = profile

    status, output = run(
        container,
        "for name in dockerd containerd; do pid=$(pgrep -x $name) || exit 3; "
        "echo \"$name $(tr '\\0' '\\n' </proc/$pid/environ | grep '^GOMAXPROCS=' || echo default)\"; done",
    )

    assert status == 0, output
    wanted = f"GOMAXPROCS={expected}" if expected else "default"
    assert output.split() == ["dockerd", wanted, "containerd", wanted]
