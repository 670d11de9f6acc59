"""Faults on the real stack: a part of the platform goes away and comes back,
and every session ends consistent between the database and Docker, with
nothing left behind.

The shared Redis and the session's web server serve the other tests, so the
Redis outage has a redis-server, a worker (threads, as in the Procfile) and a
Daphne of its own. The worker killed while provisioning is in
test_sessions_on_docker.py; a PostgreSQL or Docker engine restart would
disturb every other test, and is bench/faults.py's.
"""

import asyncio
import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from sessions_app.models import Instance, Session
from tests.integration.test_sessions_on_docker import (
    close_session,
    create_session,
    docker_leftovers,
    wait_until_running,
)
from tests.support.api import api
from tests.support.stack import Beat, PrivateRedis, WebServer, Worker, wait_for
from tests.support.terminal_client import Terminal

pytestmark = pytest.mark.integration

REDIS_OUTAGE = 30  # seconds, as the issue that asked for it


@pytest.fixture
def platform_on_its_own_redis(platform, worker_env, docker_client):
    """A worker and a Daphne whose broker, channel layer and cache are a redis-server of their own."""
    redis_server = PrivateRedis().start()
    env = {**worker_env, "REDIS_URL": redis_server.url, "PLAYGROUND_PREPARED_SESSIONS": "0"}
    worker = Worker(env, f"redis-outage-{uuid.uuid4().hex[:6]}", pool="threads").start()
    web = WebServer(env, name="daphne-redis-outage").start()
    yield redis_server, web
    web.stop()
    worker.stop()
    redis_server.stop()


def assert_consistent(web, docker_client, session_id: str) -> None:
    """The session as the API, the database and Docker see it agree."""
    body = api.get(f"{web.url}/sessions/{session_id}", timeout=10).json()
    instance = Instance.objects.get(session_id=session_id)
    assert body["instance"]["status"] == instance.status == "running"
    (container,) = docker_leftovers(docker_client, session_id)["containers"]
    assert container.status == "running"
    assert container.name == instance.container_name


@pytest.mark.asyncio
async def test_a_redis_outage_refuses_new_sessions_keeps_terminals_and_heals(platform_on_its_own_redis, docker_client):
    redis_server, web = platform_on_its_own_redis
    session_id = (await asyncio.to_thread(create_session, web))["session_id"]
    await asyncio.to_thread(wait_until_running, web, session_id)
    terminal = await Terminal.open(web.url, session_id)
    await terminal.wait_for_status("running")
    assert b"before-2\r\n" in await terminal.run("echo before-$((1+1))")

    redis_server.stop()
    outage_ends = time.monotonic() + REDIS_OUTAGE

    ready = await asyncio.to_thread(api.get, f"{web.url}/readyz", timeout=10)
    assert ready.status_code == 503
    assert f"127.0.0.1:{redis_server.port}" in ready.json()["checks"]["broker"]
    refused = await asyncio.to_thread(api.post, f"{web.url}/sessions", json={"playground_id": "default"}, timeout=10)
    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"]
    assert refused.json()["error"].endswith("unavailable")
    assert refused.json()["message"]
    looked_at = await asyncio.to_thread(api.get, f"{web.url}/sessions/{session_id}", timeout=10)
    assert looked_at.status_code == 200, looked_at.text

    # The terminal goes on all through the outage.
    rounds = 0
    while time.monotonic() < outage_ends:
        rounds += 1
        assert f"during-{rounds}-ok".encode() in await terminal.run(f"echo during-{rounds}-$((0))k | tr 0 o")
        await asyncio.sleep(min(5, max(0, outage_ends - time.monotonic())))
    assert rounds >= 5

    redis_server.start()

    def ready_again():
        return api.get(f"{web.url}/readyz", timeout=10).status_code == 200

    await asyncio.to_thread(wait_for, ready_again, timeout=30, interval=0.5, what="/readyz to recover")
    second_id = (await asyncio.to_thread(create_session, web))["session_id"]
    await asyncio.to_thread(wait_until_running, web, second_id, 90)
    assert b"after-2\r\n" in await terminal.run("echo after-$((1+1))")
    await terminal.close()

    for each in (session_id, second_id):
        await asyncio.to_thread(assert_consistent, web, docker_client, each)
        await asyncio.to_thread(close_session, web, docker_client, each)


def test_expired_sessions_are_reaped_once_beat_returns(
    platform, worker_env, worker, live_server, docker_client, tmp_path
):
    session_id = create_session(live_server)["session_id"]
    wait_until_running(live_server, session_id)

    # Beat is down (no fixture started it) when the session runs out.
    Session.objects.filter(pk=session_id).update(expires_at=timezone.now() - timedelta(minutes=5))
    time.sleep(3)
    assert docker_leftovers(docker_client, session_id)["containers"], "reaped without beat"

    beat = Beat(worker_env, tmp_path).start()
    try:
        wait_for(
            lambda: not any(docker_leftovers(docker_client, session_id).values()),
            timeout=60,
            interval=0.5,
            what="the reaper, once beat is back",
        )
        wait_for(
            lambda: Instance.objects.get(session_id=session_id).status == "terminated", timeout=15, what="terminated"
        )
    finally:
        beat.stop()
    assert api.get(f"{live_server.url}/sessions/{session_id}", timeout=10).json()["status"] == "expired"
