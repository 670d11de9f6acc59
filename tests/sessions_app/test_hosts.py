"""Several Docker hosts, on the fake backend: placement, prepared pools per
host, a host that stops answering and returns, draining, routing of jobs."""

from datetime import timedelta

import pytest
from django.contrib.admin.sites import site
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from sessions_app import services, tasks
from sessions_app.backends import engine_of, get_backend
from sessions_app.models import DockerHost, Instance, PreparedSession
from sessions_app.services.hosts import LAST_CHECK
from tests.factories import make_host, make_playground, make_user

pytestmark = pytest.mark.django_db

State = DockerHost.State


@pytest.fixture(autouse=True)
def _backend(use_backend, settings):
    settings.PLAYGROUND_PREPARED_SESSIONS = 0
    make_playground()
    cache.delete(LAST_CHECK)  # no check of the hosts ran before


def open_session(api, run_on_commit):
    return run_on_commit(api.post, "/sessions", {"playground_id": "default"}, format="json")


def opened(api, run_on_commit) -> str:
    response = open_session(api, run_on_commit)
    assert response.status_code == 201, response.content
    return response.json()["session_id"]


def host_of(session_id: str) -> str:
    return Instance.objects.filter(session_id=session_id).values_list("host__name", flat=True).get()


# --- Placement ---------------------------------------------------------------------


def test_each_session_goes_to_the_host_with_the_most_free_places(api, run_on_commit):
    make_host(capacity=2)
    make_host("second", capacity=3)

    placed = [host_of(opened(api, run_on_commit)) for _ in range(5)]

    # second has 3 free, then 2 each (the older host wins a tie), ...
    assert placed == ["second", "local", "second", "local", "second"]
    refused = open_session(api, run_on_commit)
    assert refused.status_code == 503
    assert refused.json()["error"] == "out_of_capacity"
    assert int(refused["Retry-After"]) > 0
    assert Instance.objects.count() == 5  # nothing made for the refused one


def test_closed_sessions_free_their_place(api, run_on_commit):
    make_host(capacity=1)
    first = opened(api, run_on_commit)
    assert open_session(api, run_on_commit).status_code == 503

    run_on_commit(api.delete, f"/sessions/{first}")

    assert host_of(opened(api, run_on_commit)) == "local"


@pytest.mark.parametrize("state", [State.DRAINING, State.DOWN])
def test_a_host_that_is_not_active_takes_no_session(api, run_on_commit, state):
    make_host(capacity=1)
    make_host("second", capacity=50, state=state)

    assert host_of(opened(api, run_on_commit)) == "local"
    assert open_session(api, run_on_commit).status_code == 503


def test_a_host_without_the_image_takes_no_session(api, run_on_commit, settings):
    make_host(capacity=1, checked_at=timezone.now(), images=[settings.PLAYGROUND_DIND_IMAGE])
    make_host("second", capacity=50, checked_at=timezone.now(), images=["something:else"])

    assert host_of(opened(api, run_on_commit)) == "local"
    assert open_session(api, run_on_commit).status_code == 503


def test_a_new_instance_of_a_session_is_placed_too(api, run_on_commit):
    make_host(capacity=5, state=State.DRAINING)
    make_host("second", capacity=5)
    session_id = opened(api, run_on_commit)
    run_on_commit(api.delete, f"/sessions/{session_id}/instances/node1")

    response = run_on_commit(api.post, f"/sessions/{session_id}/instances", {}, format="json")

    assert response.status_code == 201, response.content
    assert host_of(session_id) == "second"
    assert response.json()["docker_host"] == "second"


def test_the_api_names_the_host_not_its_engine_address(api, run_on_commit):
    make_host(url="tcp://10.1.2.3:2376")
    session_id = opened(api, run_on_commit)

    instance = api.get(f"/sessions/{session_id}").json()["instance"]

    assert instance["docker_host"] == "local"
    assert "10.1.2.3" not in str(instance)


# --- Prepared sessions, per host ---------------------------------------------------------


def test_each_active_host_keeps_its_own_pool_and_a_session_takes_one_of_its_host(api, run_on_commit, settings):
    settings.PLAYGROUND_PREPARED_SESSIONS = 2
    make_host(capacity=1)
    make_host("second", capacity=10)
    make_host("third", state=State.DRAINING)

    services.sessions_prepare()

    by_host = sorted(PreparedSession.objects.values_list("host__name", flat=True))
    assert by_host == ["local", "local", "second", "second"]
    session_id = opened(api, run_on_commit)
    assert host_of(session_id) == "second"
    assert session_id not in set(PreparedSession.objects.values_list("pk", flat=True))
    assert PreparedSession.objects.filter(host__name="second").count() == 1


def test_a_draining_host_loses_its_prepared_sessions(settings, fake_engine):
    settings.PLAYGROUND_PREPARED_SESSIONS = 2
    second = make_host("second")
    services.sessions_prepare()
    theirs = set(PreparedSession.objects.filter(host=second).values_list("pk", flat=True))

    services.host_set_state(host=second, state=State.DRAINING)
    services.instances_reconcile(host=DockerHost.objects.get(name="second"))

    assert not PreparedSession.objects.filter(host=second).exists()
    assert not theirs & {name.removeprefix("playground-") for name in fake_engine.containers}


# --- A host that stops answering, and returns ----------------------------------------------


def checks_every_10_s(now, seconds: int) -> list[list[str]]:
    """What beat's check of the hosts marks down at each run, every 10 s for that long."""
    return [services.hosts_check(now=now + timedelta(seconds=t)) for t in range(0, seconds + 1, 10)]


def test_a_host_whose_engine_stops_answering_is_marked_down_and_its_sessions_shown_failed(api, run_on_commit, settings):
    settings.PLAYGROUND_HOST_DOWN_AFTER = 30
    now = timezone.now()
    image = [settings.PLAYGROUND_DIND_IMAGE]
    later = now + timedelta(seconds=60)
    make_host(capacity=1, seen_at=later, checked_at=later, images=image)
    # Its workers look, and the engine has not answered them for 10 s.
    second = make_host(
        "second", capacity=2, seen_at=now - timedelta(seconds=10), checked_at=now, problem="refused", images=image
    )
    on_second, on_first = opened(api, run_on_commit), opened(api, run_on_commit)
    assert (host_of(on_second), host_of(on_first)) == ("second", "local")

    # (The first check judges nothing: no check ran before it.)
    assert checks_every_10_s(now, 30) == [[], [], [], ["second"]]

    assert DockerHost.objects.get(pk=second.pk).state == State.DOWN
    shown = api.get(f"/sessions/{on_second}").json()["instance"]
    assert (shown["status"], shown["failure_reason"]) == ("failed", "host_down")
    assert "down" in shown["error"]
    assert api.get(f"/sessions/{on_first}").json()["instance"]["status"] == "running"


def test_a_host_whose_workers_do_not_report_either_is_given_longer(settings):
    settings.PLAYGROUND_HOST_DOWN_AFTER = 30
    now = timezone.now()
    # Its workers' last look saw the engine: then nothing (a machine gone, or its workers restarting).
    make_host(seen_at=now, checked_at=now)

    marked = checks_every_10_s(now, 100)

    assert marked.index(["local"]) * 10 == 100  # 3 × 30 s, and at the first check past it
    assert DockerHost.objects.get(name="local").state == State.DOWN


def test_nothing_is_marked_down_by_a_check_after_a_gap(settings):
    settings.PLAYGROUND_HOST_DOWN_AFTER = 30
    now = timezone.now()
    make_host(seen_at=now - timedelta(seconds=300), checked_at=now)  # the database was away, say

    assert services.hosts_check(now=now - timedelta(seconds=120)) == []  # the last check before the gap
    assert services.hosts_check(now=now) == []
    assert services.hosts_check(now=now + timedelta(seconds=10)) == ["local"]


def test_a_host_that_answers_again_is_active_and_its_instances_run_again(api, run_on_commit, fake_engine):
    make_host(capacity=1, state=State.DRAINING)
    second = make_host("second")
    back, lost = opened(api, run_on_commit), opened(api, run_on_commit)
    fake_engine.unreachable.add("second")
    assert services.host_look(name="second") is False
    assert DockerHost.objects.get(pk=second.pk).problem
    services.host_mark_down(host=second, automatically=True)
    del fake_engine.containers[f"playground-{lost}"]  # its container did not survive the outage

    fake_engine.unreachable.clear()
    with_commits = run_on_commit(services.host_look, name="second")

    assert with_commits is True
    host = DockerHost.objects.get(pk=second.pk)
    assert (host.state, host.problem, host.seen_at is not None) == (State.ACTIVE, "", True)
    for session_id in (back, lost):
        instance = Instance.objects.get(session_id=session_id)
        assert (instance.status, instance.failure_reason) == ("running", ""), session_id
    assert fake_engine.containers[f"playground-{lost}"].running  # made anew


def test_a_host_an_operator_marked_down_stays_down_when_it_answers(api, run_on_commit):
    make_host(state=State.DRAINING)
    second = make_host("second")
    session_id = opened(api, run_on_commit)
    services.host_set_state(host=second, state=State.DOWN)

    assert services.host_look(name="second") is True

    assert DockerHost.objects.get(pk=second.pk).state == State.DOWN
    assert Instance.objects.get(session_id=session_id).failure_reason == "host_down"

    run_on_commit(services.host_set_state, host=second, state=State.ACTIVE)

    assert Instance.objects.get(session_id=session_id).status == "running"


# --- Jobs go to the host's own queue ------------------------------------------------------------


def test_the_work_of_an_instance_goes_to_the_queue_of_its_host(api, run_on_commit):
    make_host(state=State.DRAINING)
    make_host("second")
    session_id = opened(api, run_on_commit)
    instance = Instance.objects.get(session_id=session_id)

    for task in (tasks.provision_instance, tasks.reprovision_instance, tasks.teardown_instance):
        assert tasks.route(task.name, (instance.pk,), {}, {}) == {"queue": "host.second"}
    assert tasks.route(tasks.reconcile_host.name, ("local",), {}, {}) == {"queue": "host.local"}
    assert tasks.route(tasks.prepare_host_sessions.name, ("second",), {}, {}) == {"queue": "host.second"}
    assert tasks.route(tasks.reap_expired_sessions.name, (), {}, {}) is None
    assert tasks.route(tasks.check_hosts.name, (), {}, {}) is None


def test_a_worker_next_to_its_host_may_reach_it_at_another_address(settings):
    host = make_host("second", url="tcp://10.1.2.3:2376", tls_path="/etc/playground/tls")
    assert engine_of(host) == ("second", "tcp://10.1.2.3:2376", "/etc/playground/tls")

    settings.PLAYGROUND_ENGINE_URLS = {"second": "unix:///var/run/docker.sock"}

    assert engine_of(host) == ("second", "unix:///var/run/docker.sock", "")
    assert get_backend(host) is get_backend(host)  # one backend per host and process
    assert get_backend(host) is not get_backend(make_host())


# --- The admin ------------------------------------------------------------------------------------


@pytest.fixture
def admin_client():
    client = Client()
    client.force_login(make_user("admin", is_staff=True, is_superuser=True))
    return client


def test_an_admin_marking_a_host_down_shows_its_sessions_failed(api, run_on_commit, admin_client):
    host = make_host()
    session_id = opened(api, run_on_commit)
    form = {"name": "local", "url": host.url, "tls_path": "", "capacity": 100, "state": "down", "labels": "{}"}

    response = admin_client.post(f"/admin/sessions_app/dockerhost/{host.pk}/change/", form)

    assert response.status_code == 302, response.content[:2000]
    assert DockerHost.objects.get(pk=host.pk).state == State.DOWN
    assert Instance.objects.get(session_id=session_id).failure_reason == "host_down"


def test_an_admin_cannot_delete_a_host_that_runs_sessions(api, run_on_commit, admin_client):
    host = make_host()
    opened(api, run_on_commit)

    assert not site._registry[DockerHost].has_delete_permission(None, host)
    response = admin_client.post(f"/admin/sessions_app/dockerhost/{host.pk}/delete/", {"post": "yes"})

    assert response.status_code == 403
    assert DockerHost.objects.filter(pk=host.pk).exists()
