"""Several Docker hosts, on the real stack: the machine's engine ("local") and a
second engine started by the tests (tests/support/engines.py), each served
by workers of its own queue."""

import asyncio
import uuid

import docker
import pytest

from sessions_app.backends.docker import LABEL_SESSION
from sessions_app.models import DockerHost, Instance
from sessions_app.services import host_set_state
from tests.integration.test_sessions_on_docker import containers_of
from tests.support.api import api
from tests.support.engines import TLS_DIR
from tests.support.learner import Learner, close_session, open_session
from tests.support.stack import FIRST_HOST, Worker, wait_for

pytestmark = pytest.mark.integration

SECOND_HOST = "second"


@pytest.fixture
def second_host(platform, second_engine, worker_env):
    """The second engine as a Docker host, with a worker of its queue next to it."""
    host = DockerHost.objects.create(name=SECOND_HOST, url=second_engine.url)
    worker = Worker(worker_env, f"second-{uuid.uuid4().hex[:6]}", f"host.{SECOND_HOST}", pool="threads").start()
    yield host
    worker.stop()
    second_engine.remove_test_objects()


def host_of(session_id: str) -> str:
    return Instance.objects.filter(session_id=session_id).values_list("host__name", flat=True).get()


def status_of(web, session_id: str) -> dict:
    return api.get(f"{web.url}/sessions/{session_id}", timeout=10).json()["instance"]


async def learner_runs(web, session_id: str, command: str) -> str:
    learner = await Learner.at(web, session_id)
    try:
        return await learner.ok(command)
    finally:
        await learner.close()


def test_placement_spreads_sessions_by_free_capacity_and_refuses_when_all_are_full(
    platform,
    web,
    second_host,
    docker_client,
    second_engine,
):
    DockerHost.objects.filter(name=FIRST_HOST).update(capacity=2)
    DockerHost.objects.filter(name=SECOND_HOST).update(capacity=3)

    sessions = [open_session(web) for _ in range(5)]

    # Each goes where the most places are free (a tie to the older host).
    assert [host_of(session_id) for session_id in sessions] == ["second", "local", "second", "local", "second"]
    engine2 = second_engine.client()
    for session_id in sessions:
        on_first, on_second = containers_of(docker_client, session_id), containers_of(engine2, session_id)
        expected = (0, 1) if host_of(session_id) == SECOND_HOST else (1, 0)
        assert (len(on_first), len(on_second)) == expected, session_id
    full = api.post(f"{web.url}/sessions", json={"playground_id": "default"}, timeout=10)
    assert full.status_code == 503, full.text
    assert full.json()["error"] == "out_of_capacity"
    assert int(full.headers["Retry-After"]) > 0
    for session_id in sessions:
        close_session(web, session_id)


def test_a_session_on_the_second_host_has_a_working_terminal(platform, web, second_host, second_engine):
    host_set_state(host=DockerHost.objects.get(name=FIRST_HOST), state=DockerHost.State.DRAINING)

    session_id = open_session(web)

    assert host_of(session_id) == SECOND_HOST
    [container] = second_engine.client().containers.list(filters={"label": f"{LABEL_SESSION}={session_id}"})
    output = asyncio.run(learner_runs(web, session_id, "hostname; docker info --format '{{.ServerVersion}}'"))
    assert "node1" in output
    assert container.attrs["Config"]["Hostname"] == "node1"
    close_session(web, session_id)


def test_draining_a_host_sends_new_sessions_elsewhere_and_lets_its_own_run(
    platform,
    web,
    second_host,
    docker_client,
):
    DockerHost.objects.filter(name=FIRST_HOST).update(capacity=1)
    on_second = open_session(web)  # more free places there
    assert host_of(on_second) == SECOND_HOST

    host_set_state(host=DockerHost.objects.get(name=SECOND_HOST), state=DockerHost.State.DRAINING)
    elsewhere = open_session(web)

    assert host_of(elsewhere) == FIRST_HOST
    assert status_of(web, on_second)["status"] == "running"
    assert "still-here" in asyncio.run(learner_runs(web, on_second, "echo still-here"))
    # And with the first host full, a draining host takes none.
    refused = api.post(f"{web.url}/sessions", json={"playground_id": "default"}, timeout=10)
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"] == "out_of_capacity"
    for session_id in (on_second, elsewhere):
        close_session(web, session_id)


def test_a_stopped_engine_marks_its_sessions_host_down_and_they_return_with_it(
    platform,
    web,
    second_host,
    second_engine,
    beat,
):
    DockerHost.objects.filter(name=FIRST_HOST).update(capacity=1)
    DockerHost.objects.filter(name=SECOND_HOST).update(capacity=2)
    on_second = open_session(web)
    on_first = open_session(web)  # one place free on each: the tie goes to the older host
    assert (host_of(on_second), host_of(on_first)) == (SECOND_HOST, FIRST_HOST)

    second_engine.stop()
    failed = wait_for(
        lambda: (instance := status_of(web, on_second))["status"] == "failed" and instance,
        timeout=60,
        interval=1,
        what="the second host's session to be shown failed",
    )
    assert failed["failure_reason"] == "host_down", failed
    assert DockerHost.objects.get(name=SECOND_HOST).state == DockerHost.State.DOWN
    # The first host's session is untouched, and its terminal works.
    assert status_of(web, on_first)["status"] == "running"
    assert "untouched" in asyncio.run(learner_runs(web, on_first, "echo untouched"))

    second_engine.start()
    wait_for(
        lambda: status_of(web, on_second)["status"] == "running",
        timeout=90,
        interval=1,
        what="the second host's session to run again",
    )
    assert DockerHost.objects.get(name=SECOND_HOST).state == DockerHost.State.ACTIVE
    assert "back" in asyncio.run(learner_runs(web, on_second, "echo back"))
    for session_id in (on_second, on_first):
        close_session(web, session_id)


def test_a_host_reached_over_tls_runs_sessions_and_their_terminals(platform, web, second_engine, worker_env):
    # The web processes reach the engine over TCP with TLS client certificates;
    # its worker, next to it, at its socket (PLAYGROUND_ENGINE_URLS).
    DockerHost.objects.create(name=SECOND_HOST, url=second_engine.tls_url, tls_path=str(TLS_DIR))
    host_set_state(host=DockerHost.objects.get(name=FIRST_HOST), state=DockerHost.State.DRAINING)
    env = {**worker_env, "PLAYGROUND_ENGINE_URLS": f"{SECOND_HOST}={second_engine.url}"}
    worker = Worker(env, f"second-tls-{uuid.uuid4().hex[:6]}", f"host.{SECOND_HOST}", pool="threads").start()
    try:
        session_id = open_session(web)

        assert host_of(session_id) == SECOND_HOST
        assert "over-tls" in asyncio.run(learner_runs(web, session_id, "echo over-tls"))
        # Without a client certificate, the engine answers nobody.
        with pytest.raises(docker.errors.DockerException):
            docker.DockerClient(base_url=second_engine.tls_url, timeout=5).ping()
        close_session(web, session_id)
    finally:
        worker.stop()
        second_engine.remove_test_objects()
