"""Sessions of a template on the real stack: its files and setup script are in
place, run as the learner, before the session runs; a failing setup fails it;
the pool prepares sessions of a template, set up, ahead of demand."""

import base64

import pytest

from labs.models import Template
from sessions_app import services
from sessions_app.backends.docker import exec_user
from sessions_app.models import Instance, PreparedSession
from tests.integration.test_sessions_on_docker import close_session, containers_of, wait_until_running
from tests.support.api import api
from tests.support.stack import wait_for

pytestmark = pytest.mark.integration

DOCKERFILE = b"FROM scratch\nCOPY busybox /bin/busybox\n"


def make_template(slug: str, **fields) -> Template:
    fields = {
        "title": f"Lab {slug}",
        "playground_id": "default",
        "files": [
            {"path": "project/Dockerfile", "content": base64.b64encode(DOCKERFILE).decode(), "mode": 0o644},
            {"path": "project/run.sh", "content": base64.b64encode(b"#!/bin/sh\necho ran\n").decode(), "mode": 0o755},
        ],
        "setup": "id -u >> ~/setup-ran-as && cp /bin/busybox ~/project/",
        **fields,
    }
    template, _ = Template.objects.update_or_create(slug=slug, defaults=fields)
    return template


def open_session(live_server, template: str) -> dict:
    response = api.post(f"{live_server.url}/sessions", json={"template": template}, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def read(container, path: str) -> str:
    exit_code, output = container.exec_run(["cat", path], user=exec_user())
    assert exit_code == 0, output
    return output.decode()


def test_a_session_of_a_template_runs_with_its_files_and_setup_done_as_the_learner(
    platform, live_server, worker, docker_client
):
    make_template("files-and-setup", setup="sleep 2; id -u >> ~/setup-ran-as && cp /bin/busybox ~/project/")
    created = open_session(live_server, "files-and-setup")
    session_id = created["session_id"]
    assert created["template"] == "files-and-setup"

    seen = set()

    def running():
        status = api.get(f"{live_server.url}/sessions/{session_id}", timeout=10).json()["instance"]["status"]
        seen.add(status)
        assert status != "failed"
        return status == "running"

    wait_for(running, timeout=60, interval=0.1, what="the session to run")

    assert "setting_up" in seen
    [container] = containers_of(docker_client, session_id)
    home = "/home/learner" if exec_user() else "/root"
    assert read(container, f"{home}/project/Dockerfile").encode() == DOCKERFILE
    mode = container.exec_run(["stat", "-c", "%a %U", f"{home}/project/run.sh"], user=exec_user()).output.decode()
    assert mode.split()[0] == "755"
    # The setup ran once, as the learner the terminal runs as.
    learner = container.exec_run(["id", "-u"], user=exec_user()).output.decode().strip()
    assert read(container, f"{home}/setup-ran-as").split() == [learner]
    # And the project builds in the instance's own Docker, offline.
    built = container.exec_run(["sh", "-c", "cd ~/project && docker build -q -t lab-project ."], user=exec_user())
    assert built.exit_code == 0, built.output
    close_session(live_server, docker_client, session_id)


def test_a_failing_setup_fails_the_session_with_what_it_printed(platform, live_server, worker, docker_client):
    make_template("broken-setup", files=[], setup="echo 'the project could not be fetched' >&2; exit 3")
    session_id = open_session(live_server, "broken-setup")["session_id"]

    def failed():
        instance = api.get(f"{live_server.url}/sessions/{session_id}", timeout=10).json()["instance"]
        assert instance["status"] != "running"
        return instance if instance["status"] == "failed" else None

    instance = wait_for(failed, timeout=60, what="the session to fail")

    assert "the project could not be fetched" in instance["error"]
    assert "exit 3" in instance["error"]
    assert Instance.objects.get(session_id=session_id).failure_reason == "setup_failed"
    close_session(live_server, docker_client, session_id)


def test_the_pool_prepares_sessions_of_a_template_set_up_ahead(platform, live_server, worker, docker_client):
    platform.PLAYGROUND_PREPARED_SESSIONS = 0
    services.sessions_unprepare(keep=0)
    make_template("prepared-lab", prepared=1)

    assert services.sessions_prepare() == 1
    prepared = PreparedSession.objects.get(template_id="prepared-lab", ready=True)
    [container] = containers_of(docker_client, prepared.pk)
    home = "/home/learner" if exec_user() else "/root"
    assert read(container, f"{home}/project/Dockerfile").encode() == DOCKERFILE

    session_id = open_session(live_server, "prepared-lab")["session_id"]
    wait_until_running(live_server, session_id, timeout=30)

    assert session_id == prepared.pk
    [adopted] = containers_of(docker_client, session_id)
    assert adopted.id == container.id
    # Set up once, ahead; not again when the session took it.
    assert len(read(adopted, f"{home}/setup-ran-as").split()) == 1
    # A session of another template (or none) does not take it.
    assert not PreparedSession.objects.filter(template_id="prepared-lab").exclude(pk=session_id).filter(ready=True)
    close_session(live_server, docker_client, session_id)
    Template.objects.filter(pk="prepared-lab").update(prepared=0)
    services.sessions_unprepare(keep=0)
