"""The worker's check of the host firewall, with scripts/harden-host faked.

What it decides: when it lets instances start, when it installs the rules,
when it refuses and with what words, where it runs the script, and how often.
The script itself, on the real firewall: tests/integration/test_firewall_on_docker.py.
"""

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import pytest

from sessions_app import firewall, services, tasks
from sessions_app.backends import docker as docker_backend
from sessions_app.firewall import FirewallMissing, firewall_check, firewall_ensure
from sessions_app.models import Instance
from tests.factories import make_instance

NO_ENGINE_HERE = "no Docker engine's rules in this network namespace, so not the one instances use"


class Script:
    """Stands in for scripts/harden-host: --check answers from `installed`; a plain run installs."""

    def __init__(self) -> None:
        self.installed = True
        self.install_works = True
        self.check_answer = (1, "IPv4: PLAYGROUND-FORWARD has no fingerprint")
        self.check_seconds = 0.0
        self.calls: list[tuple[list[str], dict[str, str]]] = []
        self._lock = threading.Lock()

    def __call__(self, command: list[str], *, env: dict[str, str]) -> tuple[int, str]:
        with self._lock:
            self.calls.append((command, env))
        if command[-1] == "--check":
            time.sleep(self.check_seconds)
            return (0, "") if self.installed else self.check_answer
        if not self.install_works:
            return 1, "iptables-restore: line 7 failed"
        self.installed = True
        return 0, ""

    @property
    def runs(self) -> list[str]:
        """What each call asked: "check" or "install"."""
        return ["check" if command[-1] == "--check" else "install" for command, _ in self.calls]


@pytest.fixture(autouse=True)
def as_root_beside_the_engine(settings, monkeypatch):
    """A worker that could install the rules: root, iptables at hand, the engine local."""
    settings.PLAYGROUND_FIREWALL = "auto"
    settings.PLAYGROUND_FIREWALL_NETNS = ""
    settings.PLAYGROUND_FIREWALL_CHECK_SECONDS = 30
    settings.PLAYGROUND_EGRESS_ALLOW = ""
    settings.PLAYGROUND_HOST_ALLOW = ""
    settings.PLAYGROUND_REGISTRY_MIRROR = ""
    settings.DOCKER_HOST = "unix:///var/run/docker.sock"
    monkeypatch.setattr(firewall.os, "geteuid", lambda: 0)
    monkeypatch.setattr(firewall.shutil, "which", lambda tool: f"/usr/sbin/{tool}")
    firewall.firewall_forget()
    yield
    firewall.firewall_forget()


@pytest.fixture
def script(monkeypatch) -> Script:
    fake = Script()
    monkeypatch.setattr(firewall, "_run", fake)
    return fake


def refusal() -> FirewallMissing:
    with pytest.raises(FirewallMissing) as caught:
        firewall_ensure()
    return caught.value


# --- Checking and installing ---------------------------------------------------------


def test_it_lets_instances_start_when_the_rules_are_in_place(script, settings):
    firewall_ensure()

    assert script.runs == ["check"]
    command, _ = script.calls[0]
    assert command == ["bash", str(settings.BASE_DIR / "scripts" / "harden-host"), "--check"]
    assert firewall_check() is None


def test_it_installs_missing_rules_and_checks_them_again(script, caplog):
    script.installed = False

    firewall_ensure()

    assert script.runs == ["check", "install", "check"]
    assert script.calls[1][0][-1].endswith("scripts/harden-host")
    assert "The host firewall was not in place (IPv4: PLAYGROUND-FORWARD has no fingerprint); installed it." in (
        caplog.text
    )


def test_it_refuses_when_installing_does_not_help(script, caplog):
    script.installed, script.install_works = False, False

    refused = refusal()

    assert refused.reason == "firewall_missing"
    assert refused.message == FirewallMissing.message
    assert "firewall" in refused.message and "operator" in refused.message
    assert refused.log_message == (
        "the host firewall is not in place: IPv4: PLAYGROUND-FORWARD has no fingerprint; installing it failed: "
        f"iptables-restore: line 7 failed. {firewall.HINT}"
    )
    assert "PLAYGROUND_FIREWALL=off" in refused.log_message
    assert [r.levelname for r in caplog.records if "No instance will start" in r.getMessage()] == ["ERROR"]


@pytest.mark.parametrize(
    ("euid", "tools", "why"),
    [
        (1000, {"iptables"}, "it does not run as root"),
        (0, set(), "iptables not installed"),
    ],
)
def test_it_refuses_without_trying_to_install_where_it_cannot(script, monkeypatch, euid, tools, why):
    script.installed = False
    monkeypatch.setattr(firewall.os, "geteuid", lambda: euid)
    monkeypatch.setattr(firewall.shutil, "which", lambda tool: f"/usr/sbin/{tool}" if tool in tools else None)

    refused = refusal()

    assert script.runs == ["check"]
    assert f"no fingerprint; this worker cannot install it: {why}." in refused.log_message


def test_it_does_not_install_what_it_cannot_check(script):
    # In a container without the host's network namespace: installing there
    # would fence nothing, and --check says so with exit code 2.
    script.installed = False
    script.check_answer = (2, NO_ENGINE_HERE)

    refused = refusal()

    assert script.runs == ["check"]
    assert refused.log_message.startswith(f"the host firewall is not in place: {NO_ENGINE_HERE}.")


def test_it_refuses_a_remote_engine_whose_host_it_cannot_see(script, settings):
    settings.DOCKER_HOST = "tcp://10.0.0.7:2375"

    refused = refusal()

    assert script.calls == []
    assert "the Docker engine is remote (tcp://10.0.0.7:2375)" in refused.log_message
    assert firewall_check().startswith("the Docker engine is remote")


def test_it_leaves_the_firewall_to_the_operator_when_told(script, settings):
    settings.PLAYGROUND_FIREWALL = "off"
    script.installed = False

    firewall_ensure()

    assert script.calls == []


# --- What the script is given --------------------------------------------------------


def test_it_hands_the_settings_to_the_script(script, settings):
    settings.PLAYGROUND_EGRESS_ALLOW = "10.0.0.5:5000 [fd00::5]:5000"
    settings.PLAYGROUND_HOST_ALLOW = "53/udp"
    settings.PLAYGROUND_REGISTRY_MIRROR = "172.17.0.1:5000"
    script.installed = False

    firewall_ensure()

    assert script.runs == ["check", "install", "check"]
    for _, env in script.calls:
        assert env["PLAYGROUND_EGRESS_ALLOW"] == "10.0.0.5:5000 [fd00::5]:5000"
        assert env["PLAYGROUND_HOST_ALLOW"] == "53/udp"
        assert env["PLAYGROUND_REGISTRY_MIRROR"] == "172.17.0.1:5000"
        assert env["PATH"] == os.environ["PATH"]


def test_it_runs_the_script_in_the_hosts_network_namespace_when_told(script, settings):
    netns = f"/proc/{os.getpid()}/ns/net"
    settings.PLAYGROUND_FIREWALL_NETNS = netns
    script.installed = False

    firewall_ensure()

    assert script.runs == ["check", "install", "check"]
    for command, env in script.calls:
        assert command[:3] == ["nsenter", f"--net={netns}", "bash"]
        # The host's resolv.conf, whose DNS servers instances must reach, is seen there too.
        assert env["PLAYGROUND_HOST_ROOT"] == f"/proc/{os.getpid()}/root"


def test_it_needs_nsenter_to_install_in_another_namespace(script, settings, monkeypatch):
    settings.PLAYGROUND_FIREWALL_NETNS = f"/proc/{os.getpid()}/ns/net"
    monkeypatch.setattr(firewall.shutil, "which", lambda tool: "/usr/sbin/iptables" if tool == "iptables" else None)
    script.installed = False

    assert "this worker cannot install it: nsenter not installed." in refusal().log_message


def test_it_says_so_when_it_cannot_enter_the_namespace(script, settings):
    settings.PLAYGROUND_FIREWALL_NETNS = "/proc/999999999/ns/net"

    refused = refusal()

    assert script.calls == []
    assert "cannot enter the network namespace /proc/999999999/ns/net: No such file or directory" in (
        refused.log_message
    )


# --- How often -------------------------------------------------------------------


def test_it_checks_once_for_a_burst_of_instances(script):
    script.check_seconds = 0.05  # long enough for the others to arrive meanwhile

    with ThreadPoolExecutor(20) as pool:
        list(pool.map(lambda _: firewall_ensure(), range(20)))

    assert script.runs == ["check"]


def test_it_notices_removed_rules_once_its_answer_is_old(script, settings, monkeypatch):
    settings.PLAYGROUND_FIREWALL_CHECK_SECONDS = 0.2
    monkeypatch.setattr(firewall.os, "geteuid", lambda: 1000)  # cannot put them back
    firewall_ensure()
    script.installed = False  # someone flushed the firewall

    firewall_ensure()  # the answer of a moment ago still holds
    time.sleep(0.25)
    refusal()
    refusal()  # and now the refusal holds for a while

    assert script.runs == ["check", "check"]


def test_it_checks_again_when_the_settings_change(script, settings):
    firewall_ensure()
    settings.PLAYGROUND_EGRESS_ALLOW = "10.0.0.5:5000"

    firewall_ensure()

    assert script.runs == ["check", "check"]


# --- Where it is called ----------------------------------------------------------


@pytest.mark.django_db
def test_it_fails_the_instance_with_a_readable_error_before_docker_is_touched(script, monkeypatch):
    script.installed, script.install_works = False, False
    engine = mock.MagicMock()
    monkeypatch.setattr(docker_backend, "docker_client", lambda **kwargs: engine)
    monkeypatch.setattr(services.instances, "backend_for", lambda instance: docker_backend.DockerBackend())
    instance = make_instance()

    services.instance_provision(instance_id=instance.pk)

    instance.refresh_from_db()
    assert instance.status == Instance.Status.FAILED
    assert instance.failure_reason == "firewall_missing"
    assert instance.error == FirewallMissing.message
    assert engine.mock_calls == []


def test_it_says_at_worker_start_that_instances_will_not_start_and_keeps_running(script, caplog):
    script.installed, script.install_works = False, False

    tasks.check_firewall_at_start(sender=None)

    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage().startswith(
        "No instance will start: the host firewall is not in place: IPv4: PLAYGROUND-FORWARD has no fingerprint"
    )
