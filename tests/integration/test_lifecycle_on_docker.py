"""Sessions end on time and nothing leaks: beat, the reconciler and the admin
on the real stack (a worker on Redis, PostgreSQL, the Docker engine)."""

from datetime import timedelta

import pytest

from sessions_app import tasks
from sessions_app.backends.docker import exec_user
from sessions_app.models import Instance, Session
from tests.integration.test_sessions_on_docker import (
    containers_of,
    create_session,
    docker_leftovers,
    wait_until_running,
)
from tests.support.api import api
from tests.support.stack import wait_for

pytestmark = pytest.mark.integration


def gone_from_docker(docker_client, session_id: str) -> bool:
    return not any(docker_leftovers(docker_client, session_id).values())


def test_extending_never_passes_the_maximum_lifetime(platform, live_server, worker, docker_client):
    created = create_session(live_server)
    session_id = created["session_id"]
    url = f"{live_server.url}/sessions/{session_id}/extend"

    first = api.post(url, json={}, timeout=10)
    second = api.post(url, json={"duration": 3600}, timeout=10)

    session = Session.objects.get(pk=session_id)
    assert first.status_code == 200
    assert session.expires_at == session.created_at + timedelta(hours=4)
    assert second.status_code == 409
    assert second.json()["error"] == "cannot_extend"
    api.delete(f"{live_server.url}/sessions/{session_id}", timeout=10)
    wait_for(lambda: gone_from_docker(docker_client, session_id), timeout=30, what="cleanup")


def test_the_reconciler_revives_an_instance_removed_behind_its_back(platform, live_server, worker, docker_client):
    session_id = create_session(live_server)["session_id"]
    wait_until_running(live_server, session_id)
    [original] = containers_of(docker_client, session_id)

    original.remove(force=True)  # as an operator's `docker rm -f` would
    tasks.reconcile.delay()

    def revived():
        found = containers_of(docker_client, session_id)
        instance = Instance.objects.get(session_id=session_id)
        return found and found[0].id != original.id and instance.status == "running" and found[0]

    container = wait_for(revived, timeout=60, interval=0.2, what="a new container")
    assert container.exec_run(["docker", "version"], user=exec_user()).exit_code == 0
    assert Instance.objects.get(session_id=session_id).attempts == 2
    api.delete(f"{live_server.url}/sessions/{session_id}", timeout=10)
    wait_for(lambda: gone_from_docker(docker_client, session_id), timeout=30, what="cleanup")


def test_the_reconciler_removes_a_container_whose_rows_were_deleted(platform, live_server, worker, docker_client):
    session_id = create_session(live_server)["session_id"]
    wait_until_running(live_server, session_id)

    Session.objects.filter(pk=session_id).delete()  # the instance row goes with it
    tasks.reconcile.delay()

    wait_for(lambda: gone_from_docker(docker_client, session_id), timeout=30, interval=0.2, what="the leftovers")


def test_an_admin_closes_a_session_through_the_admin(platform, live_server, worker, docker_client, admin_client):
    session_id = create_session(live_server)["session_id"]
    wait_until_running(live_server, session_id)

    response = admin_client.post(
        "/admin/sessions_app/session/",
        {"action": "close_sessions", "_selected_action": [session_id]},
        follow=True,
    )

    assert response.status_code == 200
    assert Session.objects.get(pk=session_id).status == "closed"
    wait_for(lambda: gone_from_docker(docker_client, session_id), timeout=30, interval=0.2, what="removal")
