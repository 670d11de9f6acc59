import pytest

from sessions_app import services
from sessions_app.models import Instance, Session
from tests.factories import make_instance

pytestmark = pytest.mark.django_db


@pytest.fixture
def instance():
    return make_instance()


def test_it_marks_the_instance_running_with_its_address(instance, fake_engine):
    services.instance_provision(instance_id=instance.pk)

    instance.refresh_from_db()
    assert instance.status == "running"
    assert instance.container_name == f"playground-{instance.session_id}"
    assert instance.ip_address
    assert instance.running_at is not None


def test_it_runs_twice_without_a_second_container(instance, fake_engine):
    services.instance_provision(instance_id=instance.pk)
    services.instance_provision(instance_id=instance.pk)

    assert len(fake_engine.containers) == 1
    assert [call for call, _ in fake_engine.calls] == ["start"]


def test_it_adopts_a_container_left_by_a_dead_attempt(instance, fake_engine):
    # A worker died after the container was made but before the row changed.
    Instance.objects.filter(pk=instance.pk).update(status="provisioning")
    from sessions_app.backends.fake import FakeBackend

    FakeBackend().start(instance)

    services.instance_provision(instance_id=instance.pk)

    instance.refresh_from_db()
    assert instance.status == "running"
    assert len(fake_engine.containers) == 1
    assert fake_engine.containers[f"playground-{instance.session_id}"].starts == 2


def test_it_records_a_readable_error_when_the_backend_fails(instance, use_backend):
    use_backend("sessions_app.backends.fake.FailingBackend")

    services.instance_provision(instance_id=instance.pk)

    instance.refresh_from_db()
    assert instance.status == "failed"
    assert instance.error == "The image playground-dind:latest is not available on the Docker host."


def test_it_does_nothing_for_a_closed_session(instance, fake_engine):
    Session.objects.filter(pk=instance.session_id).update(status="closed")

    services.instance_provision(instance_id=instance.pk)

    assert fake_engine.calls == []
    assert Instance.objects.get(pk=instance.pk).status == "pending"


def test_it_removes_the_container_when_the_session_closed_while_starting(instance, fake_engine, monkeypatch):
    from sessions_app.backends.fake import FakeBackend

    real_start = FakeBackend.start

    def start_then_close(self, started):
        result = real_start(self, started)
        Instance.objects.filter(pk=started.pk).update(status="terminating")
        return result

    monkeypatch.setattr(FakeBackend, "start", start_then_close)

    services.instance_provision(instance_id=instance.pk)

    assert fake_engine.containers == {}
    assert Instance.objects.get(pk=instance.pk).status == "terminating"


def test_it_leaves_the_container_when_a_second_delivery_finished_first(instance, fake_engine, monkeypatch):
    from sessions_app.backends.fake import FakeBackend

    real_start = FakeBackend.start

    def start_while_another_delivery_wins(self, started):
        result = real_start(self, started)
        Instance.objects.filter(pk=started.pk).update(status="running")
        return result

    monkeypatch.setattr(FakeBackend, "start", start_while_another_delivery_wins)

    services.instance_provision(instance_id=instance.pk)

    assert list(fake_engine.containers) == [f"playground-{instance.session_id}"]
    assert Instance.objects.get(pk=instance.pk).status == "running"


def test_it_undoes_a_failed_attempt_when_the_session_closed_meanwhile(instance, fake_engine, monkeypatch):
    from sessions_app.backends.base import DaemonNotReady
    from sessions_app.backends.fake import FakeBackend

    real_start = FakeBackend.start

    def start_then_fail_after_close(self, started):
        real_start(self, started)  # made the container...
        Instance.objects.filter(pk=started.pk).update(status="terminated")  # ...the teardown ran...
        raise DaemonNotReady()  # ...and then this attempt failed

    monkeypatch.setattr(FakeBackend, "start", start_then_fail_after_close)

    services.instance_provision(instance_id=instance.pk)

    assert fake_engine.containers == {}
    assert Instance.objects.get(pk=instance.pk).status == "terminated"


@pytest.mark.django_db(transaction=True)
def test_it_holds_no_database_connection_while_the_engine_starts_the_instance(fake_engine, monkeypatch):
    from django.db import connection

    from sessions_app.backends.fake import FakeBackend

    if connection.vendor != "postgresql":
        pytest.skip("SQLite keeps its in-memory test database's one connection; the PostgreSQL run checks this")
    instance = make_instance()
    held = []
    start = FakeBackend.start

    def start_and_look(self, instance):
        held.append(connection.connection is not None)
        return start(self, instance)

    monkeypatch.setattr(FakeBackend, "start", start_and_look)

    services.instance_provision(instance_id=instance.pk)

    assert held == [False]
    instance.refresh_from_db()
    assert instance.status == "running"
