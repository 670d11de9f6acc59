"""The host firewall on the real engine: what an instance reaches, and the worker that keeps the rules.

A learner plays the intruder from inside an instance, without root: servers
on private addresses of the host and on a private network next to it (a
network namespace behind a veth pair, as an external PostgreSQL would be)
answer the host but not the instance, and the drop counters of the
platform's chains rise; the internet (an address outside the dropped ranges,
in the same namespace) and the host's DNS servers stay in reach. Then the
worker: it installs rules that went missing or are out of date, and refuses
to start instances where it cannot see the firewall at all.

Every test leaves the rules as scripts/harden-host writes them by default.
"""

import contextlib
import http.server
import ipaddress
import os
import re
import socket
import socketserver
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
import requests

from sessions_app.backends.docker import resource_names
from sessions_app.firewall import FirewallMissing
from sessions_app.models import Instance
from tests.integration.test_instance_security import sessions  # noqa: F401 (a fixture)
from tests.integration.test_sessions_on_docker import create_session
from tests.support.api import api
from tests.support.stack import FIRST_HOST, ROOT, Worker, wait_for

pytestmark = pytest.mark.integration

SCRIPT = ROOT / "scripts" / "harden-host"
# Who runs the commands a learner types: never root. The rootless profile
# has no other user than uid 1000, and nothing here needs root anyway.
LEARNER_UID = "1000"
# The ranges the platform drops on the way out of a session's bridge, each
# with an address of a server next to the host.
NEIGHBOURS = {
    "10.0.0.0/8": "10.251.0.2",
    "172.16.0.0/12": "172.31.251.2",
    "192.168.0.0/16": "192.168.251.2",
    "100.64.0.0/10": "100.64.251.2",
}
# An address outside every dropped range: the internet, as far as the rules can tell.
PUBLIC = "198.51.100.251"
# Private addresses of the host itself.
HOST_PRIVATE = ["10.250.0.1", "172.31.250.1", "192.168.250.1", "100.64.250.1"]
# The rules the platform wrote before PLAYGROUND-FORWARD dropped more than link-local.
OLD_RULES = """*filter
:PLAYGROUND-FORWARD - [0:0]
:PLAYGROUND-INPUT - [0:0]
-A PLAYGROUND-FORWARD -d 169.254.0.0/16 -j DROP
-A PLAYGROUND-INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A PLAYGROUND-INPUT -j DROP
COMMIT
"""


# --- Helpers -------------------------------------------------------------------


def as_learner(container, script: str) -> tuple[int, str]:
    """Run a bash script inside an instance as a learner would; return (exit code, output)."""
    exit_code, output = container.exec_run(["bash", "-c", script], user=LEARNER_UID)
    return exit_code, output.decode(errors="replace")


def reachable_from(container, targets: list[tuple[str, int]]) -> list[str]:
    """Which (address, TCP port) targets accept a connection from inside the
    instance; all are tried at once, each for at most 3 s. An IPv6 link-local
    address carries its zone: fe80::1%eth0."""
    probes = " ".join(
        f"(timeout 3 bash -c 'echo >/dev/tcp/{address}/{port}' 2>/dev/null && echo {address}:{port}) &"
        for address, port in targets
    )
    exit_code, output = as_learner(container, f"{probes} wait")
    assert exit_code == 0, output
    return sorted(output.split())


def harden_host(*args: str, **settings: str) -> subprocess.CompletedProcess:
    """Run scripts/harden-host with these settings only (none: the defaults)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAYGROUND_")} | settings
    return subprocess.run([SCRIPT, *args], env=env, capture_output=True, text=True, check=False)


def check(**settings: str) -> tuple[int, str]:
    done = harden_host("--check", **settings)
    return done.returncode, (done.stdout + done.stderr).strip()


def rules(family: str, chain: str) -> list[tuple[int, str, str, str]]:
    """A chain's rules as (packets, target, destination, the rest) in order."""
    binary = "iptables" if family == "4" else "ip6tables"
    done = subprocess.run([binary, "-w", "-L", chain, "-n", "-v", "-x"], capture_output=True, text=True, check=True)
    found = []
    for line in done.stdout.splitlines()[2:]:
        packets, _bytes, target, _prot, _opt, _in, _out, _source, destination, *rest = line.split()
        found.append((int(packets), target, destination, " ".join(rest)))
    return found


def dropped(chain: str, destination: str, family: str = "4") -> int:
    """Packets dropped by the chain's DROP rule for that destination (0.0.0.0/0 or ::/0: its last rule)."""
    counts = [n for n, target, to, rest in rules(family, chain) if target == "DROP" and to == destination and not rest]
    assert len(counts) == 1, f"no single DROP rule to {destination} in {chain}: {rules(family, chain)}"
    return counts[0]


def drops_by_destination(chain: str = "PLAYGROUND-FORWARD") -> dict[str, int]:
    return {to: n for n, target, to, _ in rules("4", chain) if target == "DROP"}


def passed_through() -> int:
    """Packets that went through PLAYGROUND-FORWARD to its end (its last rule, the fingerprint)."""
    [(packets, _, _, rest)] = [rule for rule in rules("4", "PLAYGROUND-FORWARD") if "playground-firewall:" in rule[3]]
    return packets


def sh(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


@contextlib.contextmanager
def http_server(*, netns: str | None = None, port: int = 0):
    """A plain HTTP server on every IPv4 address of the host, or of a network namespace; yields its port."""
    if netns is None:

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"private\n")

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield server.server_address[1]
        finally:
            server.shutdown()
            server.server_close()
        return
    command = ["ip", "netns", "exec", netns, sys.executable, "-m", "http.server", str(port), "--bind", "0.0.0.0"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/tmp")
    try:
        yield port
    finally:
        process.kill()
        process.wait(5)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers(address: str, port: int) -> bool:
    with contextlib.suppress(requests.RequestException):
        return requests.get(f"http://{address}:{port}/", timeout=1).ok
    return False


def bridge_of(docker_client, container) -> str:
    """The host interface of the instance's session network."""
    session_id = container.labels["org.playground.session"]
    network = docker_client.networks.get(resource_names(Instance.objects.get(session_id=session_id))["network"])
    return f"br-{network.id[:12]}"


# --- Fixtures ----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def default_rules():
    """Every test ends with the rules harden-host writes by default, in place."""
    yield
    done = harden_host()
    assert done.returncode == 0, done.stderr
    assert check() == (0, "")


@pytest.fixture
def host_private_addresses():
    """Private addresses of the host, on an interface of their own (a veth
    pair with both ends on the host: not every kernel has dummy interfaces)."""
    link = f"pgfw{uuid.uuid4().hex[:6]}"
    sh("ip", "link", "add", link, "type", "veth", "peer", "name", f"{link}p")
    try:
        for address in HOST_PRIVATE:
            sh("ip", "addr", "add", f"{address}/32", "dev", link)
        sh("ip", "link", "set", f"{link}p", "up")
        sh("ip", "link", "set", link, "up")
        yield HOST_PRIVATE
    finally:
        subprocess.run(["ip", "link", "del", link], check=False)  # and its peer


@pytest.fixture(scope="module")
def neighbour():
    """A network namespace next to the host, as a private network around it would be:
    a veth pair, 192.168.251.0/24 on the link, and on the far side the addresses
    of NEIGHBOURS and PUBLIC, routed by the host. Yields the namespace's name."""
    suffix = uuid.uuid4().hex[:6]
    netns, near, far = f"pgfw-{suffix}", f"pgfw-h{suffix}", f"pgfw-n{suffix}"
    routed = [address for address in [*NEIGHBOURS.values(), PUBLIC] if address != NEIGHBOURS["192.168.0.0/16"]]
    sh("ip", "netns", "add", netns)
    try:
        sh("ip", "link", "add", near, "type", "veth", "peer", "name", far, "netns", netns)
        sh("ip", "addr", "add", "192.168.251.1/24", "dev", near)
        sh("ip", "link", "set", near, "up")
        inside = ["ip", "netns", "exec", netns]
        sh(*inside, "ip", "addr", "add", "192.168.251.2/24", "dev", far)
        for address in routed:
            sh(*inside, "ip", "addr", "add", f"{address}/32", "dev", far)
        sh(*inside, "ip", "link", "set", far, "up")
        sh(*inside, "ip", "link", "set", "lo", "up")
        sh(*inside, "ip", "route", "add", "default", "via", "192.168.251.1")
        for address in routed:
            sh("ip", "route", "add", f"{address}/32", "via", "192.168.251.2")
        yield netns
    finally:
        for address in routed:
            subprocess.run(["ip", "route", "del", f"{address}/32"], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", netns], check=False)  # takes the veth pair along


@pytest.fixture
def neighbour_servers(neighbour):
    """Two HTTP servers in the neighbour namespace, on all its addresses: yields their ports."""
    ports = (free_port(), free_port())
    with http_server(netns=neighbour, port=ports[0]), http_server(netns=neighbour, port=ports[1]):
        for port in ports:
            wait_for(lambda port=port: answers(PUBLIC, port), timeout=10, what=f"the neighbour's server on {port}")
        yield ports


@pytest.fixture
def worker_with(worker_env, private_queue, platform):
    """worker_with(**settings): a worker of this test's queue, with these settings on top of the usual,
    serving the Docker host alone (renamed for the test, as start_worker does)."""
    from sessions_app.models import DockerHost

    DockerHost.objects.filter(name=FIRST_HOST).update(name=private_queue)
    started: list[Worker] = []

    def start(**settings: str) -> Worker:
        queues = f"{private_queue},host.{private_queue}"
        started.append(Worker({**worker_env, **settings}, f"firewall-{uuid.uuid4().hex[:6]}", queues).start())
        return started[-1]

    yield start
    for running in started:
        running.stop()


def remove_rules() -> None:
    """What an operator's `iptables -F; iptables -X` or a reboot does to the platform's rules."""
    for binary in ("iptables", "ip6tables"):
        for chain, jump in (
            ("INPUT", "PLAYGROUND-INPUT"),
            ("DOCKER-USER", "PLAYGROUND-FORWARD"),
            ("INPUT", "PLAYGROUND-EGRESS"),
            ("DOCKER-USER", "PLAYGROUND-EGRESS"),
        ):
            subprocess.run([binary, "-w", "-D", chain, "-i", "br-+", "-j", jump], check=False, capture_output=True)
        for chain in ("PLAYGROUND-INPUT", "PLAYGROUND-FORWARD"):
            subprocess.run([binary, "-w", "-F", chain], check=False, capture_output=True)
            subprocess.run([binary, "-w", "-X", chain], check=False, capture_output=True)


# --- What an instance reaches ------------------------------------------------------


def test_it_keeps_private_addresses_of_the_host_out_of_an_instances_reach(sessions, host_private_addresses):  # noqa: F811
    [container] = sessions(1)
    # The packets are for the host itself: INPUT, not FORWARD, drops them.
    dropped_before = dropped("PLAYGROUND-INPUT", "0.0.0.0/0")

    with http_server() as port:
        for address in host_private_addresses:
            assert answers(address, port), f"the host's own server on {address} does not answer the host"
        assert reachable_from(container, [(address, port) for address in host_private_addresses]) == []

    assert dropped("PLAYGROUND-INPUT", "0.0.0.0/0") >= dropped_before + len(host_private_addresses)


def test_it_keeps_private_networks_around_the_host_out_of_reach_but_not_the_internet(
    sessions,  # noqa: F811
    neighbour_servers,
):
    [container] = sessions(1)
    port = neighbour_servers[0]
    for address in NEIGHBOURS.values():
        assert answers(address, port), f"the neighbour's server on {address} does not answer the host"
    before = drops_by_destination()

    assert reachable_from(container, [(address, port) for address in NEIGHBOURS.values()]) == []

    after = drops_by_destination()
    for network in NEIGHBOURS:
        assert after[network] > before[network], f"nothing dropped on the way to {network}"

    # The internet is in reach, and none of the platform's drops saw it.
    passed_before = passed_through()
    assert reachable_from(container, [(PUBLIC, port)]) == [f"{PUBLIC}:{port}"]
    exit_code, output = as_learner(container, f"curl -sS -m 5 http://{PUBLIC}:{port}/ -o /dev/null -w '%{{http_code}}'")
    assert (exit_code, output) == (0, "200")
    assert drops_by_destination() == after
    assert passed_through() > passed_before


def test_it_lets_an_instance_resolve_names_through_the_embedded_dns(sessions):  # noqa: F811
    # Docker 20.10's embedded DNS asks the host's DNS servers from the
    # instance's own network namespace: through FORWARD, where a server in a
    # private range (10.255.255.53 on the test machines, a cloud's resolver)
    # would be dropped but for its own rule.
    name = next((name for name in ("pypi.org", "deb.debian.org", "github.com") if resolves(name)), None)
    if name is None:
        pytest.skip("this host resolves no outside name")
    [container] = sessions(1)
    asked_before = asked_dns_servers()

    exit_code, output = as_learner(container, f"getent ahostsv4 {name}")

    assert exit_code == 0, f"{name} did not resolve inside the instance: {output}"
    assert ipaddress.ip_address(output.split()[0])
    if asked_before is not None:  # the host's DNS servers are not all on loopback
        assert asked_dns_servers() > asked_before


def asked_dns_servers() -> int | None:
    """Packets let through to the host's DNS servers, or None without such a rule."""
    counts = [n for n, target, _, rest in rules("4", "PLAYGROUND-FORWARD") if target == "RETURN" and "dpt:53" in rest]
    return sum(counts) if counts else None


def resolves(name: str) -> bool:
    try:
        return bool(socket.getaddrinfo(name, 443, socket.AF_INET))
    except OSError:
        return False


def test_it_keeps_the_hosts_ipv6_addresses_out_of_reach(sessions, docker_client):  # noqa: F811
    # Session networks have no IPv6, but a root in an instance could turn it
    # on and find the host at its link-local address on the bridge. Here the
    # test does that from the host, into the instance's network namespace.
    [container] = sessions(1)
    container.reload()
    inside = ["nsenter", f"--net=/proc/{container.attrs['State']['Pid']}/ns/net"]
    sh(*inside, "sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=0")

    def link_local_ready(*command: str) -> bool:  # duplicate address detection done
        addresses = sh(*command)
        return "fe80" in addresses and "tentative" not in addresses

    bridge = bridge_of(docker_client, container)
    wait_for(
        lambda: link_local_ready(*inside, "ip", "-6", "addr", "show", "dev", "eth0"),
        timeout=10,
        what="the instance's IPv6 link-local address",
    )
    # The host's side may still be checking its own address, and until then
    # connecting from it fails with "Cannot assign requested address".
    wait_for(
        lambda: link_local_ready("ip", "-6", "addr", "show", "dev", bridge),
        timeout=10,
        what="the host's IPv6 link-local address on the bridge",
    )
    [host_address] = re.findall(r"inet6 (fe80::[0-9a-f:]+)/", sh("ip", "-6", "addr", "show", "dev", bridge))
    dropped_before = dropped("PLAYGROUND-INPUT", "::/0", family="6")

    with ipv6_listener() as (port, accepted):
        with socket.create_connection((f"{host_address}%{bridge}", port), timeout=3):
            pass  # the host reaches it
        wait_for(lambda: accepted, timeout=3, what="the host's own connection")
        accepted.clear()
        assert reachable_from(container, [(f"{host_address}%eth0", port)]) == []
        assert accepted == []

    assert dropped("PLAYGROUND-INPUT", "::/0", family="6") > dropped_before


@contextlib.contextmanager
def ipv6_listener():
    """A TCP server on every IPv6 address of the host: yields its port and the peers it accepted."""
    accepted: list = []

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            accepted.append(self.client_address)

    class Server(socketserver.ThreadingTCPServer):
        address_family = socket.AF_INET6
        allow_reuse_address = True

    with Server(("::", 0), Handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield server.server_address[1], accepted
        finally:
            server.shutdown()


def test_it_opens_what_egress_allow_lists_and_nothing_more(
    worker_with,
    sessions,  # noqa: F811
    neighbour_servers,
    host_private_addresses,
):
    mirror, other = neighbour_servers
    allow = f"192.168.251.2:{mirror} 10.251.0.2/32 192.168.250.1:{mirror}"
    # A worker whose settings say so installs them as it starts.
    worker_with(PLAYGROUND_EGRESS_ALLOW=allow)
    wait_for(lambda: check(PLAYGROUND_EGRESS_ALLOW=allow)[0] == 0, timeout=30, what="the worker to install the rules")
    [container] = sessions(1)
    before = drops_by_destination()

    with http_server(port=mirror):
        reached = reachable_from(
            container,
            [
                ("192.168.251.2", mirror),  # the listed address and port
                ("192.168.251.2", other),  # another port of it
                ("10.251.0.2", other),  # a listed address, any port
                ("172.31.251.2", mirror),  # not listed
                ("192.168.250.1", mirror),  # listed, and the host's own
                ("172.31.250.1", mirror),  # the host's own, not listed
            ],
        )

    assert reached == [f"10.251.0.2:{other}", f"192.168.250.1:{mirror}", f"192.168.251.2:{mirror}"]
    after = drops_by_destination()
    assert after["192.168.0.0/16"] > before["192.168.0.0/16"]
    assert after["172.16.0.0/12"] > before["172.16.0.0/12"]
    assert after["10.0.0.0/8"] == before["10.0.0.0/8"]


# --- The worker keeps the rules -----------------------------------------------------


def test_it_puts_back_rules_removed_while_no_worker_ran(worker_with):
    remove_rules()
    assert check()[0] == 1

    started = worker_with()

    wait_for(lambda: check() == (0, ""), timeout=30, what="the worker to put the rules back")
    log = started.log_path.read_text()
    assert "The host firewall was not in place (IPv4: the rule '-A DOCKER-USER -i br-+ -j PLAYGROUND-FORWARD'" in log
    assert "installed it." in log


def test_it_replaces_an_older_rule_set_before_it_starts_an_instance(
    worker_with,
    sessions,  # noqa: F811
):
    started = worker_with(PLAYGROUND_FIREWALL_CHECK_SECONDS="0")
    wait_for(lambda: " ready." in started.log_path.read_text(), timeout=30, what="the worker")
    # What an upgrade finds: the rules of the version before, private ranges open.
    subprocess.run(["iptables-restore", "-w", "--noflush"], input=OLD_RULES, text=True, check=True)
    assert check()[1].startswith("IPv4: PLAYGROUND-FORWARD has no fingerprint")
    assert "10.0.0.0/8" not in drops_by_destination()

    [container] = sessions(1)

    assert check() == (0, "")
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"} <= set(drops_by_destination())
    assert "; installed it." in started.log_path.read_text()
    assert container.status == "running"


@pytest.fixture
def empty_netns():
    """A network namespace with no Docker engine and no rules in it."""
    name = f"pgfw-empty-{uuid.uuid4().hex[:6]}"
    sh("ip", "netns", "add", name)
    yield Path("/run/netns") / name
    subprocess.run(["ip", "netns", "del", name], check=False)


def test_it_refuses_to_start_instances_where_it_cannot_see_the_firewall(
    worker_with, live_server, platform, empty_netns
):
    # A worker in a container without the host's network namespace sees no
    # Docker rules where it looks: it must neither trust nor "fix" that one.
    started = worker_with(PLAYGROUND_FIREWALL_NETNS=str(empty_netns))
    wait_for(lambda: "No instance will start" in started.log_path.read_text(), timeout=30, what="the worker's warning")
    assert "no Docker engine's rules in this network namespace" in started.log_path.read_text()

    session_id = create_session(live_server)["session_id"]
    try:
        instance = wait_for(
            lambda: (
                (body := api.get(f"{live_server.url}/sessions/{session_id}", timeout=10).json()["instance"])
                and body["status"] == "failed"
                and body
            ),
            timeout=60,
            what="the instance to be refused",
        )
        assert instance["error"] == FirewallMissing.message
        assert Instance.objects.get(session_id=session_id).failure_reason == "firewall_missing"
        assert "PLAYGROUND" not in sh("ip", "netns", "exec", empty_netns.name, "iptables", "-w", "-S")
    finally:
        api.delete(f"{live_server.url}/sessions/{session_id}", timeout=10)


def test_it_installs_the_same_rules_every_time():
    def ours() -> list[str]:
        return [
            rule
            for binary in ("iptables", "ip6tables")
            for rule in sh(binary, "-w", "-S").splitlines()
            if "PLAYGROUND" in rule
        ]

    assert harden_host().returncode == 0
    before = ours()
    assert harden_host().returncode == 0

    assert ours() == before
    jumps = [rule for rule in before if rule.startswith(("-A INPUT", "-A DOCKER-USER"))]
    assert (
        jumps
        == [
            "-A INPUT -i br-+ -j PLAYGROUND-EGRESS",  # before PLAYGROUND-INPUT's ACCEPTs
            "-A INPUT -i br-+ -j PLAYGROUND-INPUT",
            "-A DOCKER-USER -i br-+ -j PLAYGROUND-EGRESS",
            "-A DOCKER-USER -i br-+ -j PLAYGROUND-FORWARD",
        ]
        * 2
    )  # IPv4, then IPv6
    assert check() == (0, "")
