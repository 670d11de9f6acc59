"""Session networks drawn from the platform's own pool, on the real engine and PostgreSQL."""

import ipaddress
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.db import connection

from sessions_app import services
from sessions_app.errors import OutOfCapacity
from sessions_app.models import Instance, SessionSubnet
from sessions_app.subnets import subnet_reserve
from tests.integration.test_instance_security import reachable_from, run, sessions  # noqa: F401 (a fixture)
from tests.integration.test_sessions_on_docker import close_session
from tests.support.stack import wait_for
from tests.support.tiny_image import load_tiny_image

pytestmark = pytest.mark.integration


def network_of(docker_client, session_id: str):
    [network] = docker_client.networks.list(names=[f"playground-{session_id}"])
    return network


def test_it_gives_each_session_a_small_network_of_the_pool_and_keeps_them_apart(
    sessions,  # noqa: F811
    live_server,
    docker_client,
):
    intruder, target = sessions(2)
    pool = ipaddress.IPv4Network(settings.PLAYGROUND_SESSION_SUBNETS)
    subnets = {}
    for container in (intruder, target):
        session_id = container.labels["org.playground.session"]
        network = network_of(docker_client, session_id)
        [config] = network.attrs["IPAM"]["Config"]
        subnet = ipaddress.IPv4Network(config["Subnet"])
        address = ipaddress.IPv4Address(Instance.objects.get(session_id=session_id).ip_address)
        assert subnet.prefixlen == settings.PLAYGROUND_SESSION_SUBNET_PREFIX and subnet.subnet_of(pool)
        assert address in subnet and config["Gateway"] == str(next(subnet.hosts()))
        assert SessionSubnet.objects.get(session_id=session_id).subnet == str(subnet)
        subnets[session_id] = subnet
    first, second = subnets.values()
    assert not first.overlaps(second)

    # A server of the target answers in the target, not from the other session.
    load_tiny_image(target)
    exit_code, output = run(target, "docker run -d -p 8080:80 tiny:latest httpd -f -p 80")
    assert exit_code == 0, output
    target_ip = str(Instance.objects.get(session_id=target.labels["org.playground.session"]).ip_address)
    wait_for(lambda: reachable_from(target, [(target_ip, 8080)]) == [f"{target_ip}:8080"], timeout=10, what="httpd")
    assert reachable_from(intruder, [(target_ip, 8080)]) == []

    # Closing a session gives its subnet back.
    closed = intruder.labels["org.playground.session"]
    close_session(live_server, docker_client, closed)
    # (Released by the worker just after the network is gone.)
    wait_for(
        lambda: not SessionSubnet.objects.filter(session_id=closed).exists(), timeout=10, what="the subnet's release"
    )


def test_a_network_in_docker_keeps_its_subnet_when_the_database_lost_it(sessions):  # noqa: F811
    [container] = sessions(1)
    session_id = container.labels["org.playground.session"]
    held = SessionSubnet.objects.get(session_id=session_id).subnet
    SessionSubnet.objects.filter(session_id=session_id).delete()

    services.instances_reconcile()  # each host's reconciler, here and now

    assert SessionSubnet.objects.get(session_id=session_id).subnet == held


def test_racing_workers_never_share_a_subnet_on_postgresql(transactional_db, settings):
    assert connection.vendor == "postgresql"
    settings.PLAYGROUND_SESSION_SUBNETS = "10.143.255.0/24"  # sixteen /28s
    settings.PLAYGROUND_SESSION_SUBNET_PREFIX = 28
    start = threading.Barrier(24)

    def reserve(number: int) -> str | None:
        start.wait()
        try:
            return subnet_reserve(session_id=f"race-{number}")
        except OutOfCapacity:
            return None
        finally:
            connection.close()

    with ThreadPoolExecutor(24) as pool:
        got = list(pool.map(reserve, range(24)))

    held = [subnet for subnet in got if subnet]
    assert len(held) == 16 and len(set(held)) == 16
    assert got.count(None) == 8
    assert SessionSubnet.objects.count() == 16
