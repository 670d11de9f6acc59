"""Nothing a client sends can change how an instance's container is made.

The container's privileges, networks, mounts, environment and command come
from the playground row and the backend alone. The create endpoints refuse
any field they do not know, so an attempt to set one fails loudly and makes
nothing, rather than being dropped in silence (or, after a careless change
to a serializer, passed on to Docker).
"""

import pytest

from sessions_app.models import Instance, Session

pytestmark = pytest.mark.django_db

CONTAINER_OPTIONS = {
    "privileged": True,
    "network": "host",
    "network_mode": "host",
    "volumes": {"/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"}},
    "binds": ["/:/host"],
    "environment": {"DOCKER_HOST": "tcp://10.0.0.1:2375"},
    "cap_add": ["ALL"],
    "security_opt": ["seccomp=unconfined"],
    "devices": ["/dev/kmsg:/dev/kmsg"],
    "command": ["sh", "-c", "cat /host/etc/shadow"],
    "pid_mode": "host",
    "mem_limit": "64g",
}


@pytest.mark.parametrize("field", sorted(CONTAINER_OPTIONS))
def test_it_refuses_a_container_option_when_creating_a_session(api, run_on_commit, fake_engine, field):
    body = {"playground_id": "default", field: CONTAINER_OPTIONS[field]}

    response = run_on_commit(api.post, "/sessions", body, format="json")

    assert response.status_code == 400, response.content
    assert field in response.content.decode()
    assert Session.objects.count() == 0
    assert Instance.objects.count() == 0
    assert fake_engine.containers == {}


def test_it_refuses_all_container_options_at_once(api, run_on_commit, fake_engine):
    response = run_on_commit(api.post, "/sessions", {"playground_id": "default", **CONTAINER_OPTIONS}, format="json")

    assert response.status_code == 400
    text = response.content.decode()
    assert all(field in text for field in CONTAINER_OPTIONS)
    assert Session.objects.count() == 0
    assert fake_engine.containers == {}


@pytest.mark.parametrize("field", ["privileged", "volumes", "environment", "cap_add", "network", "command"])
def test_it_refuses_a_container_option_when_adding_an_instance(api, run_on_commit, fake_engine, field):
    session = run_on_commit(api.post, "/sessions", {"playground_id": "default"}, format="json").json()
    containers_before = dict(fake_engine.containers)

    response = run_on_commit(
        api.post, f"/sessions/{session['session_id']}/instances", {field: CONTAINER_OPTIONS[field]}, format="json"
    )

    assert response.status_code == 400, response.content
    assert Instance.objects.filter(session_id=session["session_id"]).count() == 1
    assert fake_engine.containers == containers_before
