import pytest

from sessions_app import tasks
from sessions_app.models import Instance
from tests.factories import make_instance

pytestmark = pytest.mark.django_db


@pytest.fixture
def instance():
    return make_instance()


@pytest.fixture
def no_backoff(monkeypatch):
    monkeypatch.setattr(tasks, "_backoff", lambda retries: 0)


def test_it_provisions_the_instance(instance, fake_engine):
    tasks.provision_instance.delay(instance.pk)

    assert Instance.objects.get(pk=instance.pk).status == "running"


def test_it_retries_transient_failures_then_fails_readably(instance, use_backend, fake_engine, no_backoff):
    use_backend("sessions_app.backends.fake.NeverStartingBackend")

    tasks.provision_instance.delay(instance.pk)

    instance.refresh_from_db()
    assert [call for call, _ in fake_engine.calls] == ["start"] * tasks.PROVISION_ATTEMPTS
    assert instance.status == "failed"
    assert instance.error == f"The Docker engine did not answer after {tasks.PROVISION_ATTEMPTS} attempts."


def test_it_does_not_retry_a_permanent_failure(instance, use_backend, fake_engine):
    use_backend("sessions_app.backends.fake.FailingBackend")

    tasks.provision_instance.delay(instance.pk)

    assert [call for call, _ in fake_engine.calls] == ["start"]
    assert Instance.objects.get(pk=instance.pk).status == "failed"


def test_it_ignores_an_instance_that_no_longer_exists(instance, fake_engine):
    Instance.objects.filter(pk=instance.pk).delete()

    tasks.provision_instance.delay(instance.pk)

    assert fake_engine.calls == []


def test_it_is_acknowledged_late_and_requeued_when_the_worker_dies():
    assert tasks.provision_instance.acks_late is True
    assert tasks.provision_instance.reject_on_worker_lost is True
    assert tasks.teardown_instance.acks_late is True


def test_it_waits_while_the_provisioning_cap_is_reached(instance, fake_engine, settings, monkeypatch):
    settings.PLAYGROUND_MAX_PROVISIONING = 1
    other = make_instance(status="provisioning")
    queued = []

    def queue_again(args, countdown):
        queued.append((args, countdown))

    monkeypatch.setattr(tasks.provision_instance, "apply_async", queue_again)

    # However long the host stays busy, waiting never spends the job's attempts.
    for _ in range(tasks.PROVISION_ATTEMPTS * 3):
        tasks.provision_instance.run(instance.pk)

    assert queued == [((instance.pk,), tasks.WAIT_FOR_A_TURN)] * (tasks.PROVISION_ATTEMPTS * 3)
    assert fake_engine.calls == []
    assert Instance.objects.get(pk=instance.pk).status == "pending"
    Instance.objects.filter(pk=other.pk).update(status="running")
    tasks.provision_instance.run(instance.pk)
    assert Instance.objects.get(pk=instance.pk).status == "running"


def test_it_tries_again_when_the_database_fails_while_provisioning(instance, fake_engine, monkeypatch, no_backoff):
    from django.db import OperationalError

    from sessions_app import services

    provision, failures = services.instance_provision, []

    def database_down_once(**kwargs):
        if not failures:
            failures.append(1)
            raise OperationalError("the connection pool is exhausted")
        provision(**kwargs)

    monkeypatch.setattr(services, "instance_provision", database_down_once)

    tasks.provision_instance.delay(instance.pk)

    instance.refresh_from_db()
    assert failures == [1]
    assert instance.status == "running"
