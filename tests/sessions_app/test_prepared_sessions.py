"""Sessions prepared ahead (their instance already running), on the fake backend."""

import pytest

from sessions_app import services
from sessions_app.models import Instance, Playground, PreparedSession, Session

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _backend(use_backend, settings):
    settings.PLAYGROUND_PREPARED_SESSIONS = 3


def open_session(api, run_on_commit, **body) -> str:
    response = run_on_commit(api.post, "/sessions", {"playground_id": "default", **body}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["session_id"]


def prepared_ids() -> set[str]:
    return set(PreparedSession.objects.values_list("pk", flat=True))


def running_containers(fake_engine) -> set[str]:
    return {name.removeprefix("playground-") for name, c in fake_engine.containers.items() if c.running}


def test_it_fills_the_pool_with_running_instances_up_to_the_setting(fake_engine):
    assert services.sessions_prepare() == 3
    assert services.sessions_prepare() == 0

    assert len(prepared_ids()) == 3
    assert all(PreparedSession.objects.values_list("ready", flat=True))
    assert running_containers(fake_engine) == prepared_ids()
    assert all(len(session_id) == 32 for session_id in prepared_ids())


def test_a_new_session_takes_the_oldest_prepared_instance(api, run_on_commit, fake_engine):
    services.sessions_prepare()
    oldest = PreparedSession.objects.order_by("created_at").first().pk

    session_id = open_session(api, run_on_commit)

    assert session_id == oldest
    assert oldest not in prepared_ids()
    assert Instance.objects.get(session_id=session_id).status == "running"
    # Adopted: the instance prepared ahead, started once.
    assert fake_engine.containers[f"playground-{oldest}"].starts == 2  # prepare, then the adopting start()


def test_a_session_that_asks_for_another_image_gets_a_fresh_instance(api, run_on_commit):
    Playground.objects.filter(pk="default").update(allowed_images=["other:latest"])
    services.sessions_prepare()

    session_id = open_session(api, run_on_commit, image="other:latest")

    assert session_id not in prepared_ids() and len(prepared_ids()) == 3


def test_sessions_open_with_fresh_ids_when_the_pool_is_empty(api, run_on_commit):
    first, second = open_session(api, run_on_commit), open_session(api, run_on_commit)

    assert first != second
    assert Session.objects.count() == 2


def test_it_waits_while_instances_are_being_provisioned(api, run_on_commit, fake_engine):
    session_id = open_session(api, run_on_commit)
    Instance.objects.filter(session_id=session_id).update(status="provisioning")

    assert services.sessions_prepare() is None
    assert prepared_ids() == set()

    Instance.objects.filter(session_id=session_id).update(status="running")
    assert services.sessions_prepare() == 3


def test_instances_made_with_old_limits_are_replaced_not_handed_out(api, run_on_commit, fake_engine):
    services.sessions_prepare()
    before = prepared_ids()
    Playground.objects.filter(pk="default").update(memory_limit_mb=1024)

    session_id = open_session(api, run_on_commit)
    assert session_id not in before

    assert services.sessions_prepare() == 3
    assert prepared_ids().isdisjoint(before)
    assert running_containers(fake_engine) == prepared_ids() | {session_id}


def test_instances_made_before_the_registry_mirror_changed_are_replaced_not_handed_out(
    api, run_on_commit, fake_engine, settings
):
    settings.PLAYGROUND_REGISTRY_MIRROR = ""
    services.sessions_prepare()
    before = prepared_ids()
    settings.PLAYGROUND_REGISTRY_MIRROR = "172.17.0.1:5000"

    session_id = open_session(api, run_on_commit)

    assert session_id not in before
    assert services.sessions_prepare() == 3
    assert prepared_ids().isdisjoint(before)


@pytest.mark.parametrize(
    "change",
    [{"egress": "none"}, {"egress": "mirror-only"}],
)
def test_instances_started_with_another_egress_are_not_handed_out(api, run_on_commit, change):
    # Their network's firewall rules were made for the egress they started with.
    services.sessions_prepare()
    before = prepared_ids()
    Playground.objects.filter(pk="default").update(**change)

    assert open_session(api, run_on_commit) not in before


def test_the_reconciler_keeps_prepared_instances_and_removes_those_it_no_longer_knows(run_on_commit, fake_engine):
    services.sessions_prepare()
    forgotten = PreparedSession.objects.first().pk
    PreparedSession.objects.filter(pk=forgotten).delete()

    report = run_on_commit(services.instances_reconcile)

    assert report.removed == [forgotten]
    assert running_containers(fake_engine) == prepared_ids()
    assert len(prepared_ids()) == 2


def test_the_reconciler_trims_the_pool_when_the_setting_is_lowered(run_on_commit, fake_engine, settings):
    services.sessions_prepare()
    settings.PLAYGROUND_PREPARED_SESSIONS = 1

    report = run_on_commit(services.instances_reconcile)

    assert len(report.removed) == 2
    assert len(prepared_ids()) == 1
    assert running_containers(fake_engine) == prepared_ids()


def test_one_refill_runs_at_a_time(fake_engine):
    from django.core.cache import cache

    from sessions_app import tasks

    cache.add(tasks.prepare_lock("local"), True)
    tasks.prepare_sessions()
    assert prepared_ids() == set()

    cache.delete(tasks.prepare_lock("local"))
    tasks.prepare_sessions()
    assert len(prepared_ids()) == 3
    assert cache.get(tasks.prepare_lock("local")) is None


def test_a_worker_that_starts_again_drops_the_refill_lock_it_held_when_it_died(fake_engine):
    # Killed mid-refill, a worker leaves its lock behind; until it expired
    # (10 minutes) no refill of the host would run.
    from django.core.cache import cache

    from sessions_app import tasks

    cache.add(tasks.prepare_lock("local"), "celery@node-a")
    tasks.drop_refill_lock("local", "celery@node-b")
    tasks.prepare_sessions()
    assert prepared_ids() == set()  # another worker's refill may still run

    tasks.drop_refill_lock("local", "celery@node-a")
    tasks.prepare_sessions()
    assert len(prepared_ids()) == 3
    assert cache.get(tasks.prepare_lock("local")) is None


def test_the_reconciler_replaces_a_prepared_instance_that_stopped(run_on_commit, fake_engine):
    services.sessions_prepare()
    dead = PreparedSession.objects.first().pk
    fake_engine.containers[f"playground-{dead}"].running = False

    report = run_on_commit(services.instances_reconcile)

    assert report.removed == [dead]
    assert dead not in prepared_ids() and f"playground-{dead}" not in fake_engine.containers
    assert services.sessions_prepare() == 1
    assert running_containers(fake_engine) == prepared_ids()


def test_a_session_keeps_the_storage_token_its_prepared_instance_was_made_with(api, run_on_commit):
    services.sessions_prepare()
    prepared = PreparedSession.objects.order_by("created_at").first()

    session_id = open_session(api, run_on_commit)

    instance = Instance.objects.get(session_id=session_id)
    assert session_id == prepared.pk
    assert instance.storage_token == prepared.storage_token != session_id


def test_a_prepared_instance_holds_its_preload_images_when_it_is_handed_out(api, run_on_commit, fake_engine):
    Playground.objects.filter(pk="default").update(preload_images=["nginx:alpine", "busybox"])
    services.sessions_prepare()

    session_id = open_session(api, run_on_commit)

    assert fake_engine.containers[f"playground-{session_id}"].images == {"nginx:alpine", "busybox"}


def test_instances_prepared_before_the_preload_images_changed_are_replaced(api, run_on_commit, fake_engine):
    services.sessions_prepare()
    before = prepared_ids()

    Playground.objects.filter(pk="default").update(preload_images=["busybox"])
    services.sessions_prepare()
    session_id = open_session(api, run_on_commit)

    assert not prepared_ids() & before
    assert session_id not in before
    assert fake_engine.containers[f"playground-{session_id}"].images == {"busybox"}
