"""The reconciler on the fake backend: leftovers removed, lost instances revived."""

from datetime import timedelta

import pytest
from django.utils import timezone

from sessions_app import services
from sessions_app.backends.fake import FakeContainer
from sessions_app.models import Instance, Session
from sessions_app.services import reconcile as reconciliation

pytestmark = pytest.mark.django_db


def reconcile(run_on_commit):
    return run_on_commit(services.instances_reconcile)


def test_it_removes_a_container_the_database_does_not_know(fake_engine, run_on_commit, session_id):
    fake_engine.containers["playground-" + "9" * 32] = FakeContainer(name="playground-" + "9" * 32)

    report = reconcile(run_on_commit)

    assert report.removed == ["9" * 32]
    assert list(fake_engine.containers) == [f"playground-{session_id}"]


def test_it_removes_the_container_of_a_closed_session(fake_engine, run_on_commit, session_id):
    Session.objects.filter(pk=session_id).update(status="closed")

    report = reconcile(run_on_commit)

    assert report.removed == [session_id]
    assert fake_engine.containers == {}


def test_it_provisions_again_an_instance_whose_container_vanished(fake_engine, run_on_commit, session_id):
    fake_engine.containers.clear()

    report = reconcile(run_on_commit)

    assert report.reprovisioned == [session_id]
    instance = Instance.objects.get(session_id=session_id)
    assert instance.status == "running"
    assert instance.attempts == 2
    assert list(fake_engine.containers) == [f"playground-{session_id}"]


def test_it_starts_again_a_stopped_container(fake_engine, run_on_commit, session_id):
    fake_engine.containers[f"playground-{session_id}"].running = False

    report = reconcile(run_on_commit)

    assert report.reprovisioned == [session_id]
    assert fake_engine.containers[f"playground-{session_id}"].running


def test_it_gives_up_on_an_instance_that_keeps_dying(fake_engine, run_on_commit, session_id):
    Instance.objects.filter(session_id=session_id).update(attempts=reconciliation.MAX_ATTEMPTS)
    fake_engine.containers.clear()

    report = reconcile(run_on_commit)

    assert report.failed == [session_id]
    instance = Instance.objects.get(session_id=session_id)
    assert (instance.status, instance.failure_reason) == ("failed", "lost")


def test_it_hands_a_stuck_instance_to_a_worker_again(fake_engine, run_on_commit, session_id):
    Instance.objects.filter(session_id=session_id).update(
        status="provisioning", started_at=timezone.now() - timedelta(minutes=10)
    )

    report = reconcile(run_on_commit)

    assert report.retried == [session_id]
    assert Instance.objects.get(session_id=session_id).status == "running"


def test_it_leaves_a_healthy_session_alone(fake_engine, run_on_commit, session_id):
    report = reconcile(run_on_commit)

    assert not report
    assert Instance.objects.get(session_id=session_id).attempts == 1


def test_it_records_the_new_address_of_a_restarted_container(fake_engine, run_on_commit, session_id):
    fake_engine.containers[f"playground-{session_id}"].address = "10.9.9.9"

    report = reconcile(run_on_commit)

    assert report.readdressed == [session_id]
    assert Instance.objects.get(session_id=session_id).ip_address == "10.9.9.9"


def test_it_releases_a_disk_that_no_instance_claims(fake_engine, run_on_commit, session_id):
    fake_engine.disks.add("a-disk-left-behind")

    report = reconcile(run_on_commit)

    assert report.disks_released == ["a-disk-left-behind"]
    assert fake_engine.disks == {Instance.objects.get(session_id=session_id).storage_token}


def test_a_removal_under_way_does_not_stop_the_rest_of_the_pass(fake_engine, run_on_commit, session_id, monkeypatch):
    from sessions_app.backends.base import TransientBackendError
    from sessions_app.backends.fake import FakeBackend

    busy, gone = "1" * 32, "9" * 32
    for name in (busy, gone):
        fake_engine.containers[f"playground-{name}"] = FakeContainer(name=f"playground-{name}")
    fake_engine.disks.add("a" * 32)  # a disk no instance claims
    remove = FakeBackend.remove_orphan

    def remove_unless_busy(self, orphan):
        if orphan == busy:
            raise TransientBackendError(log_message=f"removal of playground-{busy} in progress")
        remove(self, orphan)

    monkeypatch.setattr(FakeBackend, "remove_orphan", remove_unless_busy)

    report = reconcile(run_on_commit)

    assert report.removed == [gone]
    assert report.disks_released == ["a" * 32]
    assert f"playground-{busy}" in fake_engine.containers  # for the next pass
