"""Sessions on the real stack: the API in a live server, a Celery worker on
Redis, PostgreSQL, and DIND instances on the Docker engine."""

import subprocess
from concurrent.futures import ThreadPoolExecutor

import docker
import pytest
import requests

from sessions_app import services, tasks
from sessions_app.backends.disks import LoopDisks
from sessions_app.backends.docker import LABEL_SESSION, exec_user
from sessions_app.models import Instance, PreparedSession
from tests.support.api import api
from tests.support.stack import wait_for
from tests.support.tiny_image import load_tiny_image

pytestmark = pytest.mark.integration

CONFLICT = {
    "error": "session_already_has_instance",
    "message": "This session already has an instance. Only one instance per session is allowed.",
}


def create_session(live_server) -> dict:
    response = api.post(f"{live_server.url}/sessions", json={"playground_id": "default"}, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def wait_until_running(live_server, session_id: str, timeout: float = 60) -> dict:
    last = {}

    def running():
        last["body"] = body = api.get(f"{live_server.url}/sessions/{session_id}", timeout=10).json()
        instance = body["instance"] or {}
        assert instance.get("status") != "failed", instance.get("error")
        return body if instance.get("status") == "running" else None

    try:
        return wait_for(running, timeout=timeout, what=f"session {session_id} to run")
    except AssertionError as exc:
        instance = Instance.objects.filter(session_id=session_id).values().first()
        raise AssertionError(f"{exc}; last seen {last.get('body')}; in the database {instance}") from None


def containers_of(docker_client, session_id: str) -> list:
    """The session's containers. Listed sparse, then inspected one by one: a
    container may go away in between (the first start in a worker process
    probes --privileged and replaces a refused container)."""
    found = []
    for sparse in docker_client.containers.list(
        all=True, sparse=True, filters={"label": f"{LABEL_SESSION}={session_id}"}
    ):
        try:
            found.append(docker_client.containers.get(sparse.id))
        except docker.errors.NotFound:
            pass
    return found


def disk_leftovers(session_id: str) -> list[str]:
    """The session's bounded disk: its file, its device link and the loop devices holding it."""
    token = Instance.objects.filter(session_id=session_id).values_list("storage_token", flat=True).first()
    if token is None:
        return []
    disks = LoopDisks()
    image, link = disks.image_path(token), disks.device_path(token)
    found = [str(path) for path in (image, link) if path.exists() or path.is_symlink()]
    attached = subprocess.run(
        ["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"], capture_output=True, text=True
    )
    found += [line for line in attached.stdout.splitlines() if str(image) in line]
    return found


def docker_leftovers(docker_client, session_id: str) -> dict:
    network = f"playground-{session_id}"
    return {
        "containers": containers_of(docker_client, session_id),
        "volumes": docker_client.volumes.list(filters={"label": f"{LABEL_SESSION}={session_id}"}),
        "networks": [n for n in docker_client.networks.list(names=[network]) if n.name == network],
        "disks": disk_leftovers(session_id),
    }


def close_session(live_server, docker_client, session_id: str) -> None:
    api.delete(f"{live_server.url}/sessions/{session_id}", timeout=10)
    wait_for(
        lambda: not any(docker_leftovers(docker_client, session_id).values()),
        timeout=30,
        what=f"session {session_id} to leave Docker",
    )


def test_it_gives_a_session_a_running_docker_host(platform, live_server, worker, docker_client):
    created = create_session(live_server)
    session_id = created["session_id"]
    assert created["instance"]["status"] in {"pending", "provisioning"}

    body = wait_until_running(live_server, session_id)

    instance = body["instance"]
    assert instance["ip_address"]
    [container] = containers_of(docker_client, session_id)
    assert container.name == f"playground-{session_id}"
    assert container.attrs["Config"]["Hostname"] == "node1"
    assert container.labels["org.playground.playground"] == "default"
    assert "PLAYGROUND_ROOTLESS=1" in container.attrs["Config"]["Env"]  # the default profile
    assert not [variable for variable in container.attrs["Config"]["Env"] if session_id in variable]
    host_config = container.attrs["HostConfig"]
    assert host_config["PidsLimit"] == 1000
    assert host_config["Memory"] == 2048 * 1024 * 1024
    assert host_config["LogConfig"]["Type"] == "none"  # the terminal is not written to the host's disk
    networks = container.attrs["NetworkSettings"]["Networks"]
    assert list(networks) == [f"playground-{session_id}"]
    assert networks[f"playground-{session_id}"]["IPAddress"] == instance["ip_address"]
    mounts = {mount["Destination"]: mount for mount in container.attrs["Mounts"]}
    token = Instance.objects.get(session_id=session_id).storage_token
    assert mounts["/var/lib/docker"]["Name"] == f"playground-{token}-docker"  # never named by the session id

    # The learner's first `docker run` works: nothing can be pulled here, so
    # a small image made on this machine is loaded into the inner daemon.
    load_tiny_image(container)
    exit_code, output = container.exec_run(
        ["docker", "run", "--rm", "tiny:latest", "echo", "hello from inside"], user=exec_user()
    )
    assert (exit_code, output.decode().strip()) == (0, "hello from inside")

    close_session(live_server, docker_client, session_id)


def test_it_leaves_nothing_in_docker_after_delete(platform, live_server, worker, docker_client):
    session_id = create_session(live_server)["session_id"]
    wait_until_running(live_server, session_id)
    assert all(docker_leftovers(docker_client, session_id).values())

    response = api.delete(f"{live_server.url}/sessions/{session_id}", timeout=10)

    assert response.status_code == 200
    assert response.json()["status"] == "closed"
    wait_for(
        lambda: not any(docker_leftovers(docker_client, session_id).values()),
        timeout=15,
        what="container, volume and network to be removed",
    )
    body = wait_for(
        lambda: (
            (b := api.get(f"{live_server.url}/sessions/{session_id}", timeout=10).json())["instance"]["status"]
            == "terminated"
            and b
        ),
        timeout=15,
        what="the instance to read as terminated",
    )
    assert body["status"] == "closed"


def post_instances_at_once(live_server, session_id: str, count: int = 20) -> list[requests.Response]:
    url = f"{live_server.url}/sessions/{session_id}/instances"
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: api.post(url, json={}, timeout=30), range(count)))


def test_it_refuses_every_one_of_twenty_concurrent_instance_requests(platform, live_server, worker, docker_client):
    session_id = create_session(live_server)["session_id"]

    responses = post_instances_at_once(live_server, session_id)

    assert [r.status_code for r in responses] == [409] * 20
    assert all(r.json() == CONFLICT for r in responses)
    assert Instance.objects.filter(session_id=session_id).count() == 1
    wait_until_running(live_server, session_id)
    assert len(containers_of(docker_client, session_id)) == 1
    close_session(live_server, docker_client, session_id)


def test_it_lets_exactly_one_of_twenty_racing_requests_replace_a_removed_instance(
    platform, live_server, worker, docker_client
):
    session_id = create_session(live_server)["session_id"]
    wait_until_running(live_server, session_id)
    assert api.delete(f"{live_server.url}/sessions/{session_id}/instances/node1", timeout=10).status_code == 202
    wait_for(
        lambda: api.get(f"{live_server.url}/sessions/{session_id}/instances", timeout=10).json() == [],
        timeout=30,
        what="the instance to be removed",
    )
    assert not any(docker_leftovers(docker_client, session_id).values())

    responses = post_instances_at_once(live_server, session_id)

    assert sorted(r.status_code for r in responses) == [201] + [409] * 19
    assert Instance.objects.filter(session_id=session_id).count() == 1
    wait_until_running(live_server, session_id)
    assert len(containers_of(docker_client, session_id)) == 1
    close_session(live_server, docker_client, session_id)


def test_it_makes_one_container_when_the_provisioning_task_is_delivered_twice(
    platform, live_server, worker, docker_client
):
    session_id = create_session(live_server)["session_id"]
    # A second delivery of the same job, running beside the first.
    tasks.provision_instance.delay(Instance.objects.get(session_id=session_id).pk)

    wait_until_running(live_server, session_id)

    assert len(containers_of(docker_client, session_id)) == 1
    assert len(docker_leftovers(docker_client, session_id)["networks"]) == 1
    close_session(live_server, docker_client, session_id)


def test_it_recovers_from_a_worker_killed_while_provisioning(platform, live_server, start_worker, docker_client):
    doomed = start_worker()
    session_id = create_session(live_server)["session_id"]
    # Kill the worker in the middle: its container exists, the instance is
    # not running yet.
    wait_for(lambda: containers_of(docker_client, session_id), timeout=30, interval=0.01, what="the container")
    doomed.kill()
    instance = Instance.objects.get(session_id=session_id)
    assert instance.status == "provisioning", "the worker finished before it could be killed"

    start_worker()  # the job is handed out again to the new worker
    wait_until_running(live_server, session_id, timeout=90)

    [container] = containers_of(docker_client, session_id)
    assert container.status == "running"
    exit_code, _ = container.exec_run(["docker", "version"], user=exec_user())
    assert exit_code == 0
    close_session(live_server, docker_client, session_id)


def test_a_session_takes_an_instance_prepared_before_it(platform, live_server, worker, docker_client):
    platform.PLAYGROUND_PREPARED_SESSIONS = 1
    services.sessions_unprepare(keep=0)
    assert services.sessions_prepare() == 1
    prepared_id = PreparedSession.objects.get(ready=True).pk
    [prepared] = containers_of(docker_client, prepared_id)
    assert prepared.status == "running"

    session_id = create_session(live_server)["session_id"]
    wait_until_running(live_server, session_id)

    assert session_id == prepared_id
    [container] = containers_of(docker_client, session_id)
    assert container.id == prepared.id  # adopted, not made again
    assert container.exec_run(["docker", "version"], user=exec_user()).exit_code == 0
    assert (
        Instance.objects.get(session_id=session_id).ip_address
        == (container.attrs["NetworkSettings"]["Networks"][f"playground-{session_id}"]["IPAddress"])
    )
    close_session(live_server, docker_client, session_id)
