"""Sessions prepared ahead (their network made before anyone asked), on the fake backend."""

import pytest

from sessions_app import reconciliation, services
from sessions_app.models import Instance, PreparedSession, Session

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _backend(use_backend, settings):
    settings.PLAYGROUND_PREPARED_SESSIONS = 3


def open_session(api, run_on_commit) -> str:
    response = run_on_commit(api.post, "/sessions", {"playground_id": "default"}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["session_id"]


def test_it_fills_the_pool_up_to_the_setting(fake_engine):
    assert services.sessions_prepare() == 3
    assert services.sessions_prepare() == 0

    prepared = set(PreparedSession.objects.values_list("pk", flat=True))
    assert len(prepared) == 3
    assert fake_engine.prepared == prepared
    assert all(len(session_id) == 32 for session_id in prepared)


def test_a_new_session_takes_the_oldest_prepared_id_and_runs_on_it(api, run_on_commit, fake_engine):
    services.sessions_prepare()
    oldest = PreparedSession.objects.order_by("created_at").first().pk

    session_id = open_session(api, run_on_commit)

    assert session_id == oldest
    assert not PreparedSession.objects.filter(pk=oldest).exists()
    assert Instance.objects.get(session_id=session_id).status == "running"
    assert ("start", oldest) in fake_engine.calls


def test_sessions_open_with_fresh_ids_when_the_pool_is_empty(api, run_on_commit):
    first, second = open_session(api, run_on_commit), open_session(api, run_on_commit)

    assert first != second
    assert Session.objects.count() == 2


def test_it_waits_while_instances_are_being_provisioned(api, run_on_commit, fake_engine, settings):
    session_id = open_session(api, run_on_commit)
    Instance.objects.filter(session_id=session_id).update(status="provisioning")

    assert services.sessions_prepare() is None
    assert PreparedSession.objects.count() == 0 and fake_engine.prepared == set()

    Instance.objects.filter(session_id=session_id).update(status="running")
    assert services.sessions_prepare() == 3


def test_the_reconciler_keeps_prepared_networks_and_removes_those_it_no_longer_knows(run_on_commit, fake_engine):
    services.sessions_prepare()
    forgotten = PreparedSession.objects.first().pk
    PreparedSession.objects.filter(pk=forgotten).delete()

    report = run_on_commit(reconciliation.instances_reconcile)

    assert report.removed == [forgotten]
    assert fake_engine.prepared == set(PreparedSession.objects.values_list("pk", flat=True))
    assert len(fake_engine.prepared) == 2


def test_the_reconciler_trims_the_pool_when_the_setting_is_lowered(run_on_commit, fake_engine, settings):
    services.sessions_prepare()
    settings.PLAYGROUND_PREPARED_SESSIONS = 1

    report = run_on_commit(reconciliation.instances_reconcile)

    assert len(report.removed) == 2
    assert PreparedSession.objects.count() == 1
    assert fake_engine.prepared == set(PreparedSession.objects.values_list("pk", flat=True))
