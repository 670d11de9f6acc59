"""GET /metrics: session and provisioning figures from the database, and this
process's terminal metrics."""

import gc

import pytest
from channels.testing import WebsocketCommunicator
from django.db import DatabaseError
from django.test import Client

from playground.asgi import application
from sessions_app.metrics import DatabaseCollector
from sessions_app.models import Instance
from terminals import metrics as terminal_metrics
from tests.factories import make_host, make_instance, make_session


def scrape(client) -> list[str]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    return response.content.decode().splitlines()


def samples(lines: list[str], name: str) -> list[str]:
    return [line for line in lines if line.startswith((f"{name}{{", f"{name} "))]


@pytest.mark.django_db
def test_it_counts_sessions_and_instances_by_status(client):
    make_session(status="closed")
    make_session(status="expired")
    make_instance(status="running")  # each instance comes with an open session
    make_instance(status="failed", failure_reason="image_missing")

    lines = scrape(client)

    assert samples(lines, "playground_sessions") == [
        'playground_sessions{status="closed"} 1.0',
        'playground_sessions{status="expired"} 1.0',
        'playground_sessions{status="open"} 2.0',
    ]
    assert samples(lines, "playground_instances") == [
        'playground_instances{status="failed"} 1.0',
        'playground_instances{status="pending"} 0.0',
        'playground_instances{status="provisioning"} 0.0',
        'playground_instances{status="running"} 1.0',
        'playground_instances{status="setting_up"} 0.0',
        'playground_instances{status="terminated"} 0.0',
        'playground_instances{status="terminating"} 0.0',
    ]


@pytest.mark.django_db
def test_it_counts_sessions_and_instances_by_playground(client):
    make_session(status="closed", playground_id="swarm")
    make_instance(status="running", session=make_session(playground_id="swarm"))
    make_instance(status="running", session=make_session(playground_id="swarm"))
    make_instance(status="failed")  # of the default playground
    make_session(status="expired")

    lines = scrape(client)

    assert samples(lines, "playground_sessions_by_playground") == [
        'playground_sessions_by_playground{playground="default",status="closed"} 0.0',
        'playground_sessions_by_playground{playground="default",status="expired"} 1.0',
        'playground_sessions_by_playground{playground="default",status="open"} 1.0',
        'playground_sessions_by_playground{playground="swarm",status="closed"} 1.0',
        'playground_sessions_by_playground{playground="swarm",status="expired"} 0.0',
        'playground_sessions_by_playground{playground="swarm",status="open"} 2.0',
    ]
    instances = samples(lines, "playground_instances_by_playground")
    assert 'playground_instances_by_playground{playground="default",status="failed"} 1.0' in instances
    assert 'playground_instances_by_playground{playground="default",status="running"} 0.0' in instances
    assert 'playground_instances_by_playground{playground="swarm",status="running"} 2.0' in instances
    assert 'playground_instances_by_playground{playground="swarm",status="failed"} 0.0' in instances
    assert len(instances) == 2 * len(Instance.Status)  # every status of each playground
    # The totals over all playgrounds stay as they were.
    assert 'playground_sessions{status="open"} 3.0' in lines
    assert 'playground_instances{status="running"} 2.0' in lines


@pytest.mark.django_db
def test_it_reads_the_figures_by_playground_in_one_query_per_model(django_assert_num_queries):
    for playground_id in ("default", "swarm", "k8s", "compose"):
        make_instance(status="running", session=make_session(playground_id=playground_id))

    with django_assert_num_queries(2):
        DatabaseCollector.sessions()
        DatabaseCollector.instances()


@pytest.mark.django_db
def test_it_builds_the_provisioning_histogram_from_the_recorded_times(client):
    for seconds in (0.4, 0.9, 1.0, 2.5, 45.0):
        make_instance(status="running", provision_seconds=seconds)
    make_instance(status="provisioning")  # no time yet: not in the histogram

    lines = scrape(client)

    assert "# TYPE playground_provisioning_seconds histogram" in lines
    assert samples(lines, "playground_provisioning_seconds_bucket") == [
        'playground_provisioning_seconds_bucket{le="0.5"} 1.0',
        'playground_provisioning_seconds_bucket{le="1.0"} 3.0',
        'playground_provisioning_seconds_bucket{le="1.5"} 3.0',
        'playground_provisioning_seconds_bucket{le="2.0"} 3.0',
        'playground_provisioning_seconds_bucket{le="3.0"} 4.0',
        'playground_provisioning_seconds_bucket{le="5.0"} 4.0',
        'playground_provisioning_seconds_bucket{le="8.0"} 4.0',
        'playground_provisioning_seconds_bucket{le="13.0"} 4.0',
        'playground_provisioning_seconds_bucket{le="20.0"} 4.0',
        'playground_provisioning_seconds_bucket{le="30.0"} 4.0',
        'playground_provisioning_seconds_bucket{le="60.0"} 5.0',
        'playground_provisioning_seconds_bucket{le="+Inf"} 5.0',
    ]
    assert samples(lines, "playground_provisioning_seconds_count") == ["playground_provisioning_seconds_count 5.0"]
    assert samples(lines, "playground_provisioning_seconds_sum") == ["playground_provisioning_seconds_sum 49.8"]


@pytest.mark.django_db
def test_it_reports_each_docker_host(client):
    local = make_host(capacity=10)
    second = make_host("second", capacity=40, state="draining", seen_at=None)
    for seconds in (0.4, 2.5):
        make_instance(status="running", provision_seconds=seconds, host=second)
    make_instance(status="running", provision_seconds=1.2, host=local)
    make_instance(status="terminated", provision_seconds=1.0, host=local, session=make_session(status="closed"))

    lines = scrape(client)

    assert samples(lines, "playground_host_sessions") == [
        'playground_host_sessions{host="local"} 1.0',
        'playground_host_sessions{host="second"} 2.0',
    ]
    assert samples(lines, "playground_host_capacity") == [
        'playground_host_capacity{host="local"} 10.0',
        'playground_host_capacity{host="second"} 40.0',
    ]
    assert 'playground_host_state{host="second",state="draining"} 1.0' in lines
    assert 'playground_host_state{host="second",state="active"} 0.0' in lines
    assert samples(lines, "playground_host_provisioning_seconds_count") == [
        'playground_host_provisioning_seconds_count{host="local"} 2.0',
        'playground_host_provisioning_seconds_count{host="second"} 2.0',
    ]
    assert 'playground_host_provisioning_seconds_bucket{host="second",le="1.0"} 1.0' in lines
    assert samples(lines, "playground_host_provisioning_seconds_sum") == [
        'playground_host_provisioning_seconds_sum{host="local"} 2.2',
        'playground_host_provisioning_seconds_sum{host="second"} 2.9',
    ]


@pytest.mark.django_db
def test_it_reports_an_empty_histogram_when_nothing_has_run_yet(client):
    lines = scrape(client)

    assert 'playground_provisioning_seconds_bucket{le="+Inf"} 0.0' in lines
    assert "playground_provisioning_seconds_sum 0.0" in lines


@pytest.mark.django_db
def test_it_counts_provisioning_failures_by_reason(client):
    make_instance(status="failed", failure_reason="image_missing")
    make_instance(status="failed", failure_reason="daemon_not_ready")
    make_instance(status="failed", failure_reason="daemon_not_ready")
    # A failed instance that was removed afterwards still counts.
    make_instance(status="terminated", failure_reason="image_missing")
    make_instance(status="running", provision_seconds=1.2)

    lines = scrape(client)

    assert "# TYPE playground_provisioning_failures_total counter" in lines
    assert samples(lines, "playground_provisioning_failures_total") == [
        'playground_provisioning_failures_total{reason="daemon_not_ready"} 2.0',
        'playground_provisioning_failures_total{reason="image_missing"} 2.0',
    ]


@pytest.mark.django_db
def test_it_still_answers_when_the_database_does_not(client, monkeypatch):
    def broken():
        raise DatabaseError("the database is gone")

    monkeypatch.setattr(DatabaseCollector, "sessions", staticmethod(broken))

    lines = scrape(client)

    assert samples(lines, "playground_sessions") == []
    assert samples(lines, "playground_terminals_open")  # this process's own metrics are still there


def test_it_refuses_other_methods_with_405():
    response = Client(enforce_csrf_checks=True).post("/metrics")

    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


# The metrics themselves: a scrape of the whole registry would also query
# the database, which these tests do not need (and async tests may not do).


def terminal_bytes(direction: str) -> float:
    [family] = terminal_metrics.TERMINAL_BYTES.collect()
    return next(
        sample.value
        for sample in family.samples
        if sample.name == "playground_terminal_bytes_total" and sample.labels == {"direction": direction}
    )


def terminals_open() -> float:
    [family] = terminal_metrics.TERMINALS_OPEN.collect()
    return family.samples[0].value


def test_it_counts_terminal_bytes_each_way():
    before_out, before_in = terminal_bytes("out"), terminal_bytes("in")

    terminal_metrics.count_output(1000)
    terminal_metrics.count_output(24)
    terminal_metrics.count_input(3)

    assert terminal_bytes("out") == before_out + 1024
    assert terminal_bytes("in") == before_in + 3


def test_it_uncounts_only_a_terminal_that_was_counted():
    before = terminals_open()
    first, second = object.__new__(type("Consumer", (), {})), object.__new__(type("Consumer", (), {}))

    terminal_metrics.terminal_opened(first)
    terminal_metrics.terminal_opened(first)
    assert terminals_open() == before + 1

    terminal_metrics.terminal_closed(second)
    assert terminals_open() == before + 1

    terminal_metrics.terminal_closed(first)
    terminal_metrics.terminal_closed(first)
    assert terminals_open() == before


@pytest.mark.django_db(transaction=True)
async def test_it_counts_an_open_terminal_socket_until_it_disconnects():
    gc.collect()  # consumers of earlier tests that never disconnected
    before = terminals_open()
    # An id that cannot be a session's is refused without a database query.
    ws = WebsocketCommunicator(application, "/sessions/no~such~session/ws", headers=[(b"host", b"testserver")])

    connected, _ = await ws.connect()
    assert connected
    assert await ws.receive_output(timeout=3) == {"type": "websocket.close", "code": 4404}
    assert terminals_open() == before + 1

    await ws.disconnect()
    assert terminals_open() == before
