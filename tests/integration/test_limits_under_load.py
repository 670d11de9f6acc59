"""The session limits hold when requests race, on PostgreSQL (its advisory lock)."""

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from sessions_app.models import Session
from tests.integration.test_sessions_on_docker import docker_leftovers
from tests.support.api import api
from tests.support.stack import wait_for

pytestmark = pytest.mark.integration


def post_sessions_at_once(live_server, count: int) -> list[requests.Response]:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: api.post(f"{live_server.url}/sessions", json={}, timeout=30), range(count)))


def close_all(live_server, docker_client) -> None:
    opened = list(Session.objects.filter(status="open").values_list("pk", flat=True))
    for session_id in opened:
        api.delete(f"{live_server.url}/sessions/{session_id}", timeout=10)
    wait_for(
        lambda: not any(any(docker_leftovers(docker_client, sid).values()) for sid in opened),
        timeout=60,
        what="cleanup",
    )


def test_racing_requests_cannot_pass_the_per_client_limit(platform, live_server, worker, docker_client):
    platform.PLAYGROUND_MAX_SESSIONS_PER_CLIENT = 3

    responses = post_sessions_at_once(live_server, 12)

    assert sorted(r.status_code for r in responses) == [201] * 3 + [429] * 9
    assert Session.objects.filter(status="open").count() == 3
    close_all(live_server, docker_client)


def test_racing_requests_cannot_pass_the_hosts_capacity(platform, live_server, worker, docker_client):
    platform.PLAYGROUND_MAX_SESSIONS = 2

    responses = post_sessions_at_once(live_server, 10)

    assert sorted(r.status_code for r in responses) == [201] * 2 + [503] * 8
    assert all(r.json()["error"] == "out_of_capacity" for r in responses if r.status_code == 503)
    assert Session.objects.count() == 2
    close_all(live_server, docker_client)
