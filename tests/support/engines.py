"""A second Docker engine on this machine, for the tests of several Docker hosts.

Its own socket, data root, exec root (and so its own containerd) and default
bridge. It leaves the host's iptables to the
first engine: its session networks are bridges named br-<id> like the first
engine's, so the platform's host firewall (scripts/harden-host) fences them
in alike. The platform's DIND image is copied into it from the first engine.
"""

import contextlib
import os
import signal
import subprocess
from pathlib import Path

import docker
import pytest
from django.conf import settings

from tests.support.stack import ARTIFACTS, TEST_LABEL, free_port, wait_for

RUN_DIR = Path("/run/playground-test-engine2")
DATA_ROOT = Path("/var/lib/playground-test-engine2")
BRIDGE, BRIDGE_ADDRESS = "pgtest-docker1", "10.204.0.1/24"  # its default bridge (it starts no container there)
TLS_DIR = RUN_DIR / "tls"  # the engine's certificate and key, and a client's (DOCKER_CERT_PATH's names)


def make_certificates(folder: Path) -> None:
    """A CA, the engine's certificate for 127.0.0.1, and a client certificate, as dockerd's TLS wants them."""
    folder.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=playground test CA",
            "-keyout", "ca-key.pem", "-out", "ca.pem")  # fmt: skip
    for name, extension in (("server", "subjectAltName=IP:127.0.0.1"), ("", "extendedKeyUsage=clientAuth")):
        prefix = f"{name}-" if name else ""
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name or 'client'}",
                "-keyout", f"{prefix}key.pem", "-out", f"{prefix}req.pem")  # fmt: skip
        (folder / f"{prefix}ext.cnf").write_text(extension + "\n")
        signing = ("-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial", "-days", "2")
        openssl("x509", "-req", "-in", f"{prefix}req.pem", *signing, "-extfile", f"{prefix}ext.cnf",
                "-out", f"{prefix}cert.pem")  # fmt: skip


class SecondEngine:
    def __init__(self) -> None:
        self.socket = RUN_DIR / "docker.sock"
        self.url = f"unix://{self.socket}"
        # The same engine over TCP, with TLS and client certificates (TLS_DIR).
        self.tls_url = f"tcp://127.0.0.1:{free_port()}"
        self.process: subprocess.Popen | None = None

    def start(self) -> "SecondEngine":
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        self._stop_a_stale_one()
        if not (TLS_DIR / "cert.pem").exists():
            make_certificates(TLS_DIR)
        if not Path("/sys/class/net", BRIDGE).exists():
            subprocess.run(["ip", "link", "add", BRIDGE, "type", "bridge"], check=True)
            subprocess.run(["ip", "addr", "add", BRIDGE_ADDRESS, "dev", BRIDGE], check=True)
            subprocess.run(["ip", "link", "set", BRIDGE, "up"], check=True)
        ARTIFACTS.mkdir(exist_ok=True)
        log = (ARTIFACTS / "dockerd-second.log").open("ab")
        self.process = subprocess.Popen(
            [
                "dockerd",
                *("--host", self.url, "--data-root", str(DATA_ROOT), "--exec-root", str(RUN_DIR / "exec")),
                *("--host", self.tls_url, "--tlsverify", "--tlscacert", str(TLS_DIR / "ca.pem")),
                *("--tlscert", str(TLS_DIR / "server-cert.pem"), "--tlskey", str(TLS_DIR / "server-key.pem")),
                # A default bridge of its own: with none, dockerd deletes the
                # machine's docker0 at start, the first engine's default bridge.
                *("--pidfile", str(RUN_DIR / "docker.pid"), "--bridge", BRIDGE),
                # No --default-address-pool: with one, this dockerd too deletes docker0 at start.
                # (Session networks take explicit subnets of the platform's pool anyway.)
                *("--iptables=false", "--ip6tables=false"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(self.answers, timeout=60, interval=0.2, what="the second Docker engine")
        return self

    def _stop_a_stale_one(self) -> None:
        """A daemon left by an earlier run that was killed: stopped, or it would answer in place of ours."""
        pidfile = RUN_DIR / "docker.pid"
        try:
            pid = int(pidfile.read_text())
            os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError):
            return
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), timeout=60, interval=0.2, what="the stale dockerd to stop")

    def answers(self) -> bool:
        assert self.process.poll() is None, "the second dockerd exited (see test-artifacts/dockerd-second.log)"
        try:
            client = self.client(timeout=2)  # asks the engine its version already
        except docker.errors.DockerException:
            return False
        try:
            return client.ping()
        except docker.errors.DockerException:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        """What an engine's crash or shutdown does: its containers stop, its socket goes."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def client(self, *, timeout: float = 60) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, timeout=timeout)

    def give_image(self, first: docker.DockerClient, image: str) -> None:
        """Copy an image of the first engine into this one (what `docker save | docker load` does)."""
        client = self.client(timeout=600)
        try:
            wanted = first.images.get(image).id
            with contextlib.suppress(docker.errors.ImageNotFound):
                if client.images.get(image).id == wanted:
                    return
            client.images.load(first.api.get_image(image))
        finally:
            client.close()

    def remove_test_objects(self) -> None:
        client = self.client()
        try:
            labelled = {"label": TEST_LABEL}
            for container in client.containers.list(all=True, filters=labelled):
                container.remove(force=True, v=True)
            for network in client.networks.list(filters=labelled):
                network.remove()
            for volume in client.volumes.list(filters=labelled):
                volume.remove(force=True)
        finally:
            client.close()


@pytest.fixture(scope="session")
def second_engine(docker_client):
    """A second Docker engine with the platform's DIND image, for the session of tests."""
    first_bridge = Path("/sys/class/net/docker0")
    had_it = first_bridge.exists()
    engine = SecondEngine().start()
    assert first_bridge.exists() or not had_it, "starting the second engine removed the first one's docker0"
    engine.give_image(docker_client, settings.PLAYGROUND_DIND_IMAGE)
    yield engine
    if engine.process.poll() is not None:  # a test stopped it and failed before starting it again
        engine.start()
    engine.remove_test_objects()
    engine.stop()
