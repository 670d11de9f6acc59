"""Egress per playground on the real engine: what leaves an instance of a mirror-only, none or internet playground.

A learner plays the intruder from inside the instance, without root. The
outside world is the neighbour namespace of test_firewall_on_docker.py: its
PUBLIC address is the internet as far as the rules can tell. One of its
servers stands in for the registry mirror (a plain HTTP server, its address
set as PLAYGROUND_REGISTRY_MIRROR for the worker); another port of the same
address is any other server on the internet.

Every test leaves the rules as scripts/harden-host writes them by default.
"""

import subprocess
import uuid

import pytest

from sessions_app.models import Playground
from sessions_app.services.reconcile import instances_reconcile
from tests.integration.test_firewall_on_docker import (  # noqa: F401 (fixtures)
    PUBLIC,
    as_learner,
    asked_dns_servers,
    bridge_of,
    check,
    default_rules,
    dropped,
    harden_host,
    http_server,
    neighbour,
    neighbour_servers,
    reachable_from,
    resolves,
    worker_with,
)
from tests.integration.test_sessions_on_docker import containers_of, wait_until_running
from tests.support.api import api
from tests.support.stack import wait_for

pytestmark = pytest.mark.integration


def network_chain(bridge: str) -> str:
    return "PLAYGROUND-E-" + bridge.removeprefix("br-")


def chains() -> str:
    return subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True, check=True).stdout


def outside_name() -> str:
    name = next((name for name in ("pypi.org", "deb.debian.org", "github.com") if resolves(name)), None)
    if name is None:
        pytest.skip("this host resolves no outside name")
    return name


@pytest.fixture
def sessions_of(platform, live_server, docker_client):
    """sessions_of(egress) -> the running container of a new session of a playground with that egress.

    At the end every session is closed, and its network's rules must go with it.
    """
    started: list[tuple[str, str]] = []

    def start(egress: str):
        playground_id = f"egress-{egress}-{uuid.uuid4().hex[:6]}"
        Playground.objects.create(pk=playground_id, egress=egress)
        response = api.post(f"{live_server.url}/sessions", json={"playground_id": playground_id}, timeout=10)
        assert response.status_code == 201, response.text
        session_id = response.json()["session_id"]
        wait_until_running(live_server, session_id)
        [container] = containers_of(docker_client, session_id)
        started.append((session_id, bridge_of(docker_client, container)))
        return container

    yield start
    for session_id, _ in started:
        api.delete(f"{live_server.url}/sessions/{session_id}", timeout=10)
    for session_id, bridge in started:
        wait_for(
            lambda session_id=session_id: not containers_of(docker_client, session_id),
            timeout=30,
            interval=0.2,
            what=f"session {session_id} to leave Docker",
        )
        wait_for(
            lambda bridge=bridge: network_chain(bridge) not in chains(),
            timeout=30,
            what=f"the rules of {bridge} to go with its network",
        )


@pytest.fixture
def mirror(worker_with, neighbour_servers, settings):  # noqa: F811
    """A worker whose registry mirror is PUBLIC:<a server's port> (and this process's, for the reconciler
    run here); returns (mirror port, another port of PUBLIC)."""
    mirror_port, other_port = neighbour_servers
    settings.PLAYGROUND_REGISTRY_MIRROR = f"{PUBLIC}:{mirror_port}"
    worker_with(PLAYGROUND_REGISTRY_MIRROR=settings.PLAYGROUND_REGISTRY_MIRROR)
    return mirror_port, other_port


def test_it_lets_a_mirror_only_instance_reach_the_mirror_and_dns_and_nothing_else(mirror, sessions_of, docker_client):
    mirror_port, other_port = mirror
    name = outside_name()
    container = sessions_of("mirror-only")
    chain = network_chain(bridge_of(docker_client, container))
    drops_before = dropped(chain, "0.0.0.0/0")

    reached = reachable_from(container, [(PUBLIC, mirror_port), (PUBLIC, other_port)])
    exit_code, output = as_learner(container, f"curl -sS -m 5 http://{PUBLIC}:{other_port}/ -o /dev/null")

    assert reached == [f"{PUBLIC}:{mirror_port}"]
    assert exit_code != 0, output
    assert dropped(chain, "0.0.0.0/0") >= drops_before + 3  # 3 SYNs at least
    exit_code, output = as_learner(
        container, f"curl -sS -m 5 http://{PUBLIC}:{mirror_port}/ -o /dev/null -w '%{{http_code}}'"
    )
    assert (exit_code, output) == (0, "200")
    asked_before = asked_dns_servers()
    exit_code, output = as_learner(container, f"getent ahostsv4 {name}")
    assert exit_code == 0, f"{name} did not resolve inside the mirror-only instance: {output}"
    if asked_before is not None:
        assert asked_dns_servers() > asked_before
    # Not a DNS server of the learner's choosing: a tunnel out on port 53.
    exit_code, _ = as_learner(container, f"timeout 5 bash -c 'echo >/dev/tcp/{PUBLIC}/53'")
    assert exit_code != 0


def test_it_lets_nothing_leave_an_instance_of_none(mirror, sessions_of, docker_client):
    mirror_port, other_port = mirror
    name = outside_name()
    container = sessions_of("none")
    chain = network_chain(bridge_of(docker_client, container))
    drops_before = dropped(chain, "0.0.0.0/0")

    reached = reachable_from(container, [(PUBLIC, mirror_port), (PUBLIC, other_port)])
    exit_code, output = as_learner(container, f"timeout 15 getent ahostsv4 {name}")

    assert reached == []
    assert exit_code != 0, f"{name} resolved inside an instance of none: {output}"
    assert dropped(chain, "0.0.0.0/0") >= drops_before + 3  # 2 SYNs and a DNS query at least


def test_it_leaves_an_internet_instance_as_it_was(mirror, sessions_of, docker_client):
    mirror_port, other_port = mirror
    container = sessions_of("internet")

    reached = reachable_from(container, [(PUBLIC, mirror_port), (PUBLIC, other_port)])

    assert reached == sorted([f"{PUBLIC}:{mirror_port}", f"{PUBLIC}:{other_port}"])
    assert network_chain(bridge_of(docker_client, container)) not in chains()


def test_it_keeps_the_rules_through_harden_host_and_puts_back_what_a_flush_removed(mirror, sessions_of, docker_client):
    mirror_port, other_port = mirror
    container = sessions_of("mirror-only")
    bridge = bridge_of(docker_client, container)
    chain = network_chain(bridge)
    # The operator re-runs harden-host (or the worker does, its rules out of date).
    assert harden_host().returncode == 0
    assert reachable_from(container, [(PUBLIC, mirror_port), (PUBLIC, other_port)]) == [f"{PUBLIC}:{mirror_port}"]
    # Rules of a network that is gone, and the instance's own rules lost.
    stale = "PLAYGROUND-E-0000deadbeef"
    subprocess.run(["iptables", "-w", "-N", stale], check=True)
    subprocess.run(["iptables", "-w", "-A", "PLAYGROUND-EGRESS", "-i", "br-0000deadbeef", "-g", stale], check=True)
    # Only IPv4's: the IPv6 rules stay, and do not make the reconciler think all is well.
    subprocess.run(["iptables", "-w", "-D", "PLAYGROUND-EGRESS", "-i", bridge, "-g", chain], check=True)
    subprocess.run(["iptables", "-w", "-F", chain], check=True)
    subprocess.run(["iptables", "-w", "-X", chain], check=True)
    assert reachable_from(container, [(PUBLIC, other_port)]) == [f"{PUBLIC}:{other_port}"]

    # What the worker runs every minute, here in the test's own process (as root, on the same engine).
    report = instances_reconcile()

    assert bridge in report.egress_restored
    assert "br-0000deadbeef" in report.egress_removed
    assert stale not in chains()
    assert f"-A PLAYGROUND-EGRESS -i {bridge} -g {chain}" in chains()
    assert reachable_from(container, [(PUBLIC, mirror_port), (PUBLIC, other_port)]) == [f"{PUBLIC}:{mirror_port}"]


def test_it_keeps_a_none_instance_off_the_hosts_ports_that_host_allow_opens(worker_with, sessions_of):  # noqa: F811
    with http_server() as port:  # on every IPv4 address of the host
        allow = f"{port}/tcp"
        worker_with(PLAYGROUND_HOST_ALLOW=allow)
        wait_for(lambda: check(PLAYGROUND_HOST_ALLOW=allow)[0] == 0, timeout=30, what="the worker to install the rules")
        opened, closed = sessions_of("internet"), sessions_of("none")

        # Each reaches the host at its network's gateway, the host's address on the bridge.
        assert reachable_from(opened, [(gateway(opened), port)]) == [f"{gateway(opened)}:{port}"]
        assert reachable_from(closed, [(gateway(closed), port)]) == []


def gateway(container) -> str:
    container.reload()
    [network] = container.attrs["NetworkSettings"]["Networks"].values()
    return network["Gateway"]


def test_it_puts_the_egress_jump_back_before_playground_input():
    # PLAYGROUND-INPUT accepts replies and the ports PLAYGROUND_HOST_ALLOW
    # opens: were it first, a none instance would reach them.
    subprocess.run(["iptables", "-w", "-D", "INPUT", "-i", "br-+", "-j", "PLAYGROUND-INPUT"], check=True)
    subprocess.run(["iptables", "-w", "-I", "INPUT", "1", "-i", "br-+", "-j", "PLAYGROUND-INPUT"], check=True)
    assert check() == (1, "IPv4: the jump to PLAYGROUND-EGRESS does not come before PLAYGROUND-INPUT in INPUT")

    assert harden_host().returncode == 0

    assert check() == (0, "")
    jumps = [rule for rule in chains().splitlines() if rule.startswith("-A INPUT -i br-+")]
    assert jumps == ["-A INPUT -i br-+ -j PLAYGROUND-EGRESS", "-A INPUT -i br-+ -j PLAYGROUND-INPUT"]
