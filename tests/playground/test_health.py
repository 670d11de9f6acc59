"""The probes: /healthz (alive) and /readyz (every component answers)."""

import threading

import docker
import pytest
from django.db import OperationalError
from django.test import Client

from playground import health
from sessions_app.models import DockerHost
from tests.factories import make_host

pytestmark = pytest.mark.django_db

ALL_OK = {"database": "ok", "broker": "ok", "docker": "ok", "dind_image": "ok"}


def answers(timeout: float) -> None:
    """A check whose component is up."""


@pytest.fixture
def docker_up(monkeypatch):
    """Unit tests may run where no Docker engine answers: pretend the hosts' engines do."""
    make_host()
    monkeypatch.setattr(health, "look_at_host", lambda host, timeout: None)


LOCAL_UP = {"local": {"state": "active", "engine": "ok", "sessions": 0, "capacity": 100}}


def failing(exc: Exception):
    def check(timeout: float) -> None:
        raise exc

    return check


def test_it_answers_healthz_without_looking_at_anything(client, monkeypatch):
    for name in list(health.CHECKS):
        monkeypatch.setitem(health.CHECKS, name, failing(AssertionError(f"{name} was checked")))

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_it_is_ready_when_the_database_broker_and_docker_answer(client, docker_up):
    # The database and the broker are the real ones of this run: SQLite and
    # the filesystem broker, or PostgreSQL and Redis.
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": ALL_OK, "hosts": LOCAL_UP}


def test_it_answers_head_and_a_trailing_slash(client, docker_up):
    assert client.head("/readyz/").status_code == 200
    assert client.head("/healthz/").status_code == 200


def test_it_names_the_component_that_is_down_and_reports_the_others(client, docker_up, monkeypatch):
    error = OperationalError(
        'connection to server at "127.0.0.1", port 5432 failed: Connection refused\n'
        "\tIs the server running on that host and accepting TCP/IP connections?"
    )
    monkeypatch.setitem(health.CHECKS, "database", failing(error))

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {
            **ALL_OK,
            "database": 'connection to server at "127.0.0.1", port 5432 failed: Connection refused',
        },
        "hosts": LOCAL_UP,
    }


class Engine:
    """A client of an engine that answers, without the DIND image."""

    class images:
        @staticmethod
        def get(name):
            raise docker.errors.ImageNotFound(f"No such image: {name}")

    def ping(self):
        return True

    def close(self):
        pass


def test_it_reports_a_missing_dind_image(client, monkeypatch, settings):
    make_host()
    settings.PLAYGROUND_DIND_IMAGE = "playground-dind:missing"
    monkeypatch.setattr(health, "docker_client", lambda timeout, engine: Engine())

    response = client.get("/readyz")

    assert response.status_code == 503
    missing = "the image playground-dind:missing is missing (manage.py build_dind_image builds it)"
    assert response.json()["checks"] == {**ALL_OK, "dind_image": missing}
    assert response.json()["hosts"]["local"]["engine"] == missing


@pytest.mark.django_db(transaction=True)  # the hosts are read in another thread
def test_it_is_ready_while_one_active_host_answers_and_reports_the_others(client, monkeypatch):
    make_host()
    make_host("second", url="tcp://10.0.0.9:2376", capacity=40)
    make_host("third", url="tcp://10.0.0.10:2376", state=DockerHost.State.DRAINING)

    def look(host, timeout):
        if host.name != "local":
            raise ConnectionError(f"Connection refused by {host.url}")

    monkeypatch.setattr(health, "look_at_host", look)
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"] == ALL_OK
    assert response.json()["hosts"] == {
        **LOCAL_UP,
        "second": {"state": "active", "engine": "Connection refused by tcp://10.0.0.9:2376", "sessions": 0,
                   "capacity": 40},
        "third": {"state": "draining", "engine": "Connection refused by tcp://10.0.0.10:2376", "sessions": 0,
                  "capacity": 100},
    }  # fmt: skip


@pytest.mark.django_db(transaction=True)  # the hosts are read in another thread
def test_it_is_unavailable_when_no_active_host_answers(client, monkeypatch):
    make_host()
    make_host("second", url="tcp://10.0.0.9:2376", state=DockerHost.State.DRAINING)
    monkeypatch.setattr(health, "look_at_host", failing_look)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["docker"] == "no active Docker host answers (local: Connection refused)"


def failing_look(host, timeout):
    raise ConnectionError("Connection refused")


def test_it_does_not_wait_for_a_component_that_hangs(client, docker_up, monkeypatch):
    release = threading.Event()
    monkeypatch.setattr(health, "CHECK_TIMEOUT", 0.05)
    monkeypatch.setitem(health.CHECKS, "broker", lambda timeout: release.wait())
    try:
        response = client.get("/readyz")
    finally:
        release.set()

    assert response.status_code == 503
    assert response.json()["checks"] == {**ALL_OK, "broker": "no answer within 0.05 s"}
    assert response.json()["hosts"] == LOCAL_UP


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_it_refuses_other_methods_with_405(path):
    response = Client(enforce_csrf_checks=True).post(path)

    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert response["Allow"] == "GET, HEAD"
