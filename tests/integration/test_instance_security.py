"""An instance cannot hurt the host or other sessions, shown on the real engine.

A learner is root inside an instance. These tests play that learner: they
exhaust processes and memory, and reach for other sessions, the platform's
servers, the host's Docker and the cloud metadata address, and check each
time that the harm stays inside the instance. The host firewall they rely on
is set by scripts/harden-host (scripts/test runs it).
"""

import contextlib
import http.server
import os
import re
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from sessions_app import tasks
from sessions_app.backends.disks import LoopDisks
from sessions_app.backends.docker import INNER_DOCKER_DIR, exec_user, resource_names
from sessions_app.models import Instance, Playground
from tests.integration.test_sessions_on_docker import containers_of, create_session, wait_until_running
from tests.support.api import api
from tests.support.stack import wait_for
from tests.support.tiny_image import INDEX_HTML, load_tiny_image

pytestmark = pytest.mark.integration

PIDS_LIMIT = 200
MEMORY_LIMIT_MB = 256
METADATA_URL = "http://169.254.169.254/"


# --- Helpers -------------------------------------------------------------------


def run(container, script: str) -> tuple[int, str]:
    """Run a bash script inside an instance as the platform would (the learner,
    under the rootless profile); return (exit code, output)."""
    exit_code, output = container.exec_run(["bash", "-c", script], user=exec_user())
    return exit_code, output.decode(errors="replace")


def curl(container, url: str) -> tuple[int, str]:
    """Fetch url from inside an instance, giving up after 3 s."""
    return run(container, f"curl -sS -m 3 {url}")


def reachable_from(container, targets: list[tuple[str, int]]) -> list[str]:
    """Which of the (address, TCP port) targets accept a connection from inside
    the instance. All are tried at once, each for at most 3 s."""
    probes = " ".join(
        f"(timeout 3 bash -c 'echo >/dev/tcp/{address}/{port}' 2>/dev/null && echo {address}:{port}) &"
        for address, port in targets
    )
    exit_code, output = run(container, f"{probes} wait")
    assert exit_code == 0, output
    return sorted(output.split())


@pytest.fixture
def sessions(platform, live_server, worker, docker_client):
    """Start sessions through the API: sessions(n) -> n running containers.

    At the end every session is closed and waited for, all at once.
    """
    started: list[str] = []

    def start(count: int = 1) -> list:
        ids = [create_session(live_server)["session_id"] for _ in range(count)]
        started.extend(ids)
        with ThreadPoolExecutor(count) as pool:
            list(pool.map(lambda session_id: wait_until_running(live_server, session_id), ids))
        return [containers_of(docker_client, session_id)[0] for session_id in ids]

    yield start
    for session_id in started:
        api.delete(f"{live_server.url}/sessions/{session_id}", timeout=10)
    for session_id in started:
        wait_for(
            lambda session_id=session_id: not containers_of(docker_client, session_id),
            timeout=30,
            interval=0.2,
            what=f"session {session_id} to leave Docker",
        )


def cgroup_dir(controller: str, container_id: str) -> Path:
    """The host's cgroup directory of a container (v1 or v2, cgroupfs or systemd driver)."""
    candidates = [
        Path(f"/sys/fs/cgroup/{controller}/docker/{container_id}"),
        Path(f"/sys/fs/cgroup/{controller}/system.slice/docker-{container_id}.scope"),
        Path(f"/sys/fs/cgroup/docker/{container_id}"),
        Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope"),
    ]
    found = next((path for path in candidates if path.is_dir()), None)
    assert found, f"no {controller} cgroup found for {container_id}"
    return found


def read_counter(path: Path, key: str) -> int:
    """A `key value` line of a cgroup file such as pids.events or memory.oom_control."""
    match = re.search(rf"^{key} (\d+)$", path.read_text(), re.MULTILINE)
    return int(match.group(1)) if match else 0


def host_addresses() -> dict[str, str]:
    """The host's own IPv4 addresses (interface -> address), loopback aside."""
    output = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True).stdout
    found = {}
    for line in output.splitlines():
        fields = line.split()
        if fields[1] != "lo":
            found[fields[1]] = fields[3].split("/")[0]
    return found


def iptables_rules(chain: str) -> list[tuple[int, str]]:
    """The rules of a filter chain as (packet count, rule text) pairs."""
    result = subprocess.run(
        ["iptables", "-w", "-L", chain, "-n", "-v", "-x"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"chain {chain} is missing: {result.stderr.strip()} (run scripts/harden-host)"
    rules = []
    for line in result.stdout.splitlines()[2:]:
        packets, _bytes, *rest = line.split()
        rules.append((int(packets), " ".join(rest)))
    return rules


def drop_count(chain: str, pattern: str) -> int:
    rules = [packets for packets, text in iptables_rules(chain) if text.startswith("DROP") and re.search(pattern, text)]
    assert rules, f"no DROP rule matching {pattern!r} in {chain}: {iptables_rules(chain)}"
    return sum(rules)


@contextlib.contextmanager
def host_listener():
    """An HTTP server on the host, on every address (0.0.0.0), on a free port."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"host secret\n")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


# --- Processes and memory ---------------------------------------------------------


def test_it_keeps_a_fork_bomb_inside_the_instance_pids_limit(sessions, live_server, docker_client):
    Playground.objects.filter(pk="default").update(pids_limit=PIDS_LIMIT)
    bombed, neighbour = sessions(2)
    pids = cgroup_dir("pids", bombed.id)
    assert (pids / "pids.max").read_text().strip() == str(PIDS_LIMIT)
    refused_before = read_counter(pids / "pids.events", "max")

    # The classic bash fork bomb. timeout kills its whole process group after
    # 15 s, and removing the instance at the end kills whatever is left.
    bombed.exec_run(["timeout", "-s", "KILL", "15", "bash", "-c", ":(){ :|:& };:"], detach=True, user=exec_user())
    peak = 0
    newcomer_ids: list[str] = []

    def watch_pids(seconds: float) -> None:
        nonlocal peak
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            peak = max(peak, int((pids / "pids.current").read_text()))
            time.sleep(0.02)

    with ThreadPoolExecutor(1) as pool:
        watching = pool.submit(watch_pids, 8)
        # Meanwhile the neighbour works and a new session starts.
        wait_for(lambda: read_counter(pids / "pids.events", "max") > refused_before, timeout=5, what="the bomb")
        assert neighbour.exec_run(["echo", "still here"], user=exec_user()) == (0, b"still here\n")
        newcomer_ids.extend(c.labels["org.playground.session"] for c in sessions(1))
        assert neighbour.exec_run(["echo", "still here"], user=exec_user()) == (0, b"still here\n")
        watching.result()

    # The bomb ran into the limit (forks were refused) and never went past it.
    assert read_counter(pids / "pids.events", "max") > refused_before
    assert PIDS_LIMIT - 20 <= peak <= PIDS_LIMIT
    assert int((pids / "pids.current").read_text()) <= PIDS_LIMIT
    assert api.get(f"{live_server.url}/sessions/{newcomer_ids[0]}", timeout=10).json()["instance"]["status"] == (
        "running"
    )
    # Stop the bomb now rather than when the session is closed.
    bombed.remove(force=True, v=True)


def test_it_oom_kills_a_memory_hog_inside_the_instance_and_keeps_it_running(sessions, live_server, docker_client):
    Playground.objects.filter(pk="default").update(memory_limit_mb=MEMORY_LIMIT_MB)
    [container] = sessions(1)
    host_config = container.attrs["HostConfig"]
    assert host_config["Memory"] == MEMORY_LIMIT_MB * 1024 * 1024
    assert host_config["MemorySwap"] == MEMORY_LIMIT_MB * 1024 * 1024  # no swap to spill into
    assert not host_config.get("OomKillDisable")
    memory = cgroup_dir("memory", container.id)
    oom_kills_before = read_counter(memory / "memory.oom_control", "oom_kill")

    # tail keeps the whole last "line" in memory, and /dev/zero has no newline:
    # it grows to 600 MiB unless the kernel kills it first.
    exit_code, output = run(container, "head -c 600m /dev/zero | tail >/dev/null; echo status=$?")

    assert exit_code == 0 and "status=137" in output.splitlines(), output  # 128 + SIGKILL
    assert read_counter(memory / "memory.oom_control", "oom_kill") > oom_kills_before
    container.reload()
    assert container.status == "running"
    assert container.attrs["State"]["OOMKilled"] is False
    assert run(container, "docker version --format '{{.Server.Version}}'")[0] == 0
    # The platform, on the host, did not notice.
    session_id = container.labels["org.playground.session"]
    body = api.get(f"{live_server.url}/sessions/{session_id}", timeout=10).json()
    assert body["instance"]["status"] == "running"


# --- Disk ------------------------------------------------------------------------------

DISK_SIZE = 256 << 20


def disk_bytes(container, path: str) -> tuple[int, int]:
    """(size, available) of the filesystem at path inside the instance."""
    exit_code, output = run(container, f"df -B1 --output=size,avail {path} | tail -1")
    assert exit_code == 0, output
    size, available = output.split()
    return int(size), int(available)


def test_it_bounds_the_inner_docker_directory_to_the_playgrounds_size(sessions, docker_client):
    Playground.objects.filter(pk="default").update(storage_size="256M")
    [container] = sessions(1)
    instance = Instance.objects.get(session_id=container.labels["org.playground.session"])
    disks = LoopDisks()
    volume = docker_client.volumes.get(resource_names(instance)["volume"])
    assert volume.attrs["Options"] == {"type": "ext4", "device": str(disks.device_path(instance.storage_token))}

    size, _ = disk_bytes(container, INNER_DOCKER_DIR)
    assert DISK_SIZE * 0.85 <= size <= DISK_SIZE

    # A learner who fills it gets "no space left" inside; the host's file
    # stops at the size.
    exit_code, output = run(container, f"dd if=/dev/zero of={INNER_DOCKER_DIR}/fill bs=1M count=400 2>&1")
    assert exit_code != 0 and "No space left on device" in output, output
    assert disks.image_path(instance.storage_token).stat().st_blocks * 512 <= DISK_SIZE
    # Freed again, the inner Docker goes on working.
    assert run(container, f"rm {INNER_DOCKER_DIR}/fill && docker info --format '{{{{.Driver}}}}'") == (0, "overlay2\n")


def test_it_gives_an_instance_its_disk_back_after_the_host_lost_its_loop_devices(sessions, live_server, docker_client):
    Playground.objects.filter(pk="default").update(storage_size="256M")
    [container] = sessions(1)
    session_id = container.labels["org.playground.session"]
    assert run(container, f"echo kept >{INNER_DOCKER_DIR}/marker")[0] == 0
    disks, token = LoopDisks(), Instance.objects.get(session_id=session_id).storage_token
    image, link = disks.image_path(token), disks.device_path(token)

    # What a reboot of the host does: the container stops, loop devices and
    # the links on /run are gone.
    container.stop(timeout=5)
    subprocess.run(["losetup", "--detach", os.readlink(link)], check=True)
    link.unlink()
    container.reload()
    assert container.status == "exited"
    tasks.reconcile.delay()

    def revived():
        container.reload()
        return container.status == "running" and Instance.objects.get(session_id=session_id).status == "running"

    wait_for(revived, timeout=60, interval=0.2, what="the instance to run again")
    assert run(container, f"cat {INNER_DOCKER_DIR}/marker") == (0, "kept\n")
    assert DISK_SIZE * 0.85 <= disk_bytes(container, INNER_DOCKER_DIR)[0] <= DISK_SIZE
    attached = subprocess.run(["losetup", "--associated", str(image)], capture_output=True, text=True, check=True)
    assert os.readlink(link) in attached.stdout


# --- Networks ------------------------------------------------------------------------


def test_it_keeps_a_session_from_reaching_another_sessions_servers(sessions):
    intruder, target = sessions(2)
    target.reload()
    target_ip = next(iter(target.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]
    load_tiny_image(target)
    # A nested container publishing a port, and a server on the instance itself.
    exit_code, output = run(target, "docker run -d -p 8080:80 tiny:latest httpd -f -p 80")
    assert exit_code == 0, output
    exit_code, output = run(
        target,
        "mkdir -p /tmp/www && echo served by node1 >/tmp/www/index.html && busybox httpd -p 8081 -h /tmp/www",
    )
    assert exit_code == 0, output
    nested, direct = f"http://{target_ip}:8080/", f"http://{target_ip}:8081/"

    # Both servers answer on the target and from the host...
    wait_for(lambda: curl(target, nested) == (0, INDEX_HTML.decode()), timeout=10, what="the nested httpd")
    wait_for(lambda: curl(target, direct) == (0, "served by node1\n"), timeout=10, what="the instance's server")
    assert requests.get(nested, timeout=3).content == INDEX_HTML
    assert requests.get(direct, timeout=3).text == "served by node1\n"

    # ...and neither from another session.
    assert reachable_from(intruder, [(target_ip, 8080), (target_ip, 8081)]) == []
    exit_code, output = curl(intruder, nested)
    assert exit_code != 0 and INDEX_HTML.decode() not in output, f"{nested} answered another session: {output}"


def test_it_keeps_the_host_out_of_an_instances_reach(sessions, docker_client):
    [container] = sessions(1)
    container.reload()
    session_id = container.labels["org.playground.session"]
    network = docker_client.networks.get(resource_names(Instance.objects.get(session_id=session_id))["network"])
    gateway = network.attrs["IPAM"]["Config"][0]["Gateway"]
    host_ips = sorted({gateway, *host_addresses().values()})

    # The platform's PostgreSQL and Redis, on every address of the host.
    assert reachable_from(container, [(address, port) for address in host_ips for port in (5432, 6390)]) == []

    # A server on all of the host's addresses answers the host but not the
    # instance: the firewall, not the bind address, keeps it out.
    dropped_before = drop_count("PLAYGROUND-INPUT", r"0\.0\.0\.0/0\s+0\.0\.0\.0/0$")
    with host_listener() as port:
        for address in host_ips:
            assert requests.get(f"http://{address}:{port}/", timeout=3).text == "host secret\n"
        assert reachable_from(container, [(address, port) for address in host_ips]) == []
    assert drop_count("PLAYGROUND-INPUT", r"0\.0\.0\.0/0\s+0\.0\.0\.0/0$") > dropped_before

    # The cloud metadata address is dropped on its way out of the session's bridge.
    dropped_before = drop_count("PLAYGROUND-FORWARD", r"169\.254\.0\.0/16")
    exit_code, output = curl(container, METADATA_URL)
    assert exit_code != 0, f"the metadata address answered: {output}"
    assert drop_count("PLAYGROUND-FORWARD", r"169\.254\.0\.0/16") > dropped_before

    # The Docker inside is the instance's own, not the host's.
    exit_code, inner_id = run(container, "docker info --format '{{.ID}}'")
    assert exit_code == 0, inner_id
    assert inner_id.strip() and inner_id.strip() != docker_client.info()["ID"]

    # Nothing of the host is mounted and no other network is joined: the only
    # mount is the session's own volume for the inner Docker.
    names = resource_names(Instance.objects.get(session_id=session_id))
    host_config = container.attrs["HostConfig"]
    assert container.attrs["Mounts"] == [
        {
            "Type": "volume",
            "Name": names["volume"],
            "Source": f"{docker_client.info()['DockerRootDir']}/volumes/{names['volume']}/_data",
            "Destination": INNER_DOCKER_DIR,
            "Driver": "local",
            "Mode": "rw",
            "RW": True,
            "Propagation": "",
        }
    ]
    assert host_config["Binds"] == [f"{names['volume']}:{INNER_DOCKER_DIR}:rw"]
    assert not host_config.get("Mounts")
    assert not host_config.get("VolumesFrom")
    assert not host_config.get("Devices")
    assert host_config["NetworkMode"] == docker_client.networks.get(names["network"]).id
    assert list(container.attrs["NetworkSettings"]["Networks"]) == [names["network"]]
    assert host_config["PidMode"] == "" and host_config["IpcMode"] in {"private", "shareable"}


def test_it_keeps_the_host_firewall_rules_in_place():
    # Docker sends forwarded traffic through DOCKER-USER first; the host's
    # own INPUT sends everything from a bridge to PLAYGROUND-INPUT.
    assert any(text.startswith("PLAYGROUND-FORWARD") and "br-+" in text for _, text in iptables_rules("DOCKER-USER"))
    assert any(text.startswith("PLAYGROUND-INPUT") and "br-+" in text for _, text in iptables_rules("INPUT"))
    forward = [text for _, text in iptables_rules("PLAYGROUND-FORWARD")]
    assert any(text.startswith("DROP") and "169.254.0.0/16" in text for text in forward)
    inbound = [text.split()[0] for _, text in iptables_rules("PLAYGROUND-INPUT")]
    assert inbound[0] == "ACCEPT" and inbound[-1] == "DROP"

    # Running the script again leaves the same rules, once each. (Only ours
    # are compared: Docker may change its own meanwhile, for other sessions.)
    def ours() -> list[str]:
        rules = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True, check=True).stdout
        return [rule for rule in rules.splitlines() if "PLAYGROUND" in rule]

    before = ours()
    subprocess.run([Path(__file__).parents[2] / "scripts" / "harden-host"], check=True)
    assert ours() == before
    assert sorted(rule for rule in before if rule.startswith(("-A INPUT", "-A DOCKER-USER"))) == [
        "-A DOCKER-USER -i br-+ -j PLAYGROUND-EGRESS",  # each restricted playground's network (egress)
        "-A DOCKER-USER -i br-+ -j PLAYGROUND-FORWARD",
        "-A INPUT -i br-+ -j PLAYGROUND-EGRESS",
        "-A INPUT -i br-+ -j PLAYGROUND-INPUT",
    ]
