"""The session networks' address pool (sessions_app/subnets.py), on the fake backend."""

import ipaddress
from datetime import timedelta

import pytest
from django.utils import timezone

from sessions_app import services
from sessions_app.errors import OutOfCapacity
from sessions_app.models import Instance, PreparedSession, Session, SessionSubnet
from sessions_app.subnets import subnet_release, subnet_reserve, subnets_free, subnets_reconcile

pytestmark = pytest.mark.django_db

POOL = "10.128.0.0/26"  # four /28s


@pytest.fixture(autouse=True)
def small_pool(settings):
    settings.PLAYGROUND_SESSION_SUBNETS = POOL
    settings.PLAYGROUND_SESSION_SUBNET_PREFIX = 28


def networks(subnets) -> list[ipaddress.IPv4Network]:
    return [ipaddress.IPv4Network(subnet) for subnet in subnets]


def test_it_gives_each_session_a_subnet_of_its_own_in_the_pool():
    held = networks(subnet_reserve(session_id=f"s{i}") for i in range(4))

    assert all(network.prefixlen == 28 and network.subnet_of(ipaddress.IPv4Network(POOL)) for network in held)
    assert not any(a.overlaps(b) for i, a in enumerate(held) for b in held[i + 1 :])
    assert subnets_free() == 0


def test_it_gives_a_session_the_subnet_it_holds_when_asked_again():
    first = subnet_reserve(session_id="s1")

    assert subnet_reserve(session_id="s1") == first
    assert SessionSubnet.objects.count() == 1


def test_it_hands_a_released_subnet_out_again():
    held = {f"s{i}": subnet_reserve(session_id=f"s{i}") for i in range(4)}

    subnet_release(session_id="s2")

    assert subnet_reserve(session_id="s9") == held["s2"]


def test_it_refuses_a_session_when_the_pool_is_full():
    for i in range(4):
        subnet_reserve(session_id=f"s{i}")

    with pytest.raises(OutOfCapacity):
        subnet_reserve(session_id="s9")


def test_it_keeps_clear_of_subnets_held_under_another_size(settings):
    # Held before the operator changed the size: a /27 covers two /28s.
    SessionSubnet.objects.create(session_id="old", subnet="10.128.0.0/27")

    held = networks(subnet_reserve(session_id=f"s{i}") for i in range(2))

    assert not any(network.overlaps(ipaddress.IPv4Network("10.128.0.0/27")) for network in held)
    with pytest.raises(OutOfCapacity):
        subnet_reserve(session_id="s9")


def test_it_keeps_what_was_held_before_a_restart():
    # A platform that stopped left its rows; a new process reads them, it
    # keeps nothing of its own in memory.
    before = {SessionSubnet.objects.create(session_id="a", subnet="10.128.0.16/28").subnet}
    before.add(SessionSubnet.objects.create(session_id="b", subnet="10.128.0.48/28").subnet)

    after = {subnet_reserve(session_id="c"), subnet_reserve(session_id="d")}

    assert after == {"10.128.0.0/28", "10.128.0.32/28"}
    assert subnet_reserve(session_id="a") == "10.128.0.16/28"


def test_a_full_pool_answers_503_before_anything_is_made(api, fake_engine, settings):
    settings.PLAYGROUND_PREPARED_SESSIONS = 0
    for i in range(4):
        subnet_reserve(session_id=f"s{i}")

    response = api.post("/sessions", {"playground_id": "default"}, format="json")

    assert response.status_code == 503
    assert response.json()["error"] == "out_of_capacity"
    assert int(response["Retry-After"]) > 0
    assert Session.objects.count() == 0 and Instance.objects.count() == 0
    assert fake_engine.calls == []


def test_a_session_keeps_its_subnet_until_its_instance_is_removed(api, run_on_commit, open_session):
    session_id = open_session()
    held = SessionSubnet.objects.get(session_id=session_id).subnet

    run_on_commit(api.delete, f"/sessions/{session_id}")

    assert not SessionSubnet.objects.filter(subnet=held).exists()
    assert subnets_free() == 4


def test_a_session_taking_a_prepared_one_keeps_its_subnet(settings, run_on_commit, open_session):
    settings.PLAYGROUND_PREPARED_SESSIONS = 1
    run_on_commit(services.sessions_prepare)
    prepared = PreparedSession.objects.get()
    held = SessionSubnet.objects.get(session_id=prepared.pk).subnet

    session_id = open_session()

    assert session_id == prepared.pk
    assert SessionSubnet.objects.get(session_id=session_id).subnet == held
    assert SessionSubnet.objects.count() == 1


def test_the_reconciler_frees_the_subnets_no_one_holds(run_on_commit, open_session):
    SessionSubnet.objects.create(session_id="gone", subnet="10.128.0.48/28")
    kept = open_session()

    report = run_on_commit(services.instances_reconcile)

    assert report.subnets_freed == ["10.128.0.48/28"]
    assert list(SessionSubnet.objects.values_list("session_id", flat=True)) == [kept]


def test_the_reconciler_keeps_and_records_the_subnets_of_networks_in_docker():
    earlier = timezone.now() - timedelta(seconds=1)
    SessionSubnet.objects.create(session_id="lost-elsewhere", subnet="10.128.0.0/28", created_at=earlier)

    freed = subnets_reconcile(
        live=set(),
        in_docker={"still-there": ["10.128.0.16/28"], "lost-elsewhere": ["10.128.0.0/28"]},
        seen_before=timezone.now(),
    )

    assert freed == []
    assert dict(SessionSubnet.objects.values_list("session_id", "subnet")) == {
        "lost-elsewhere": "10.128.0.0/28",
        "still-there": "10.128.0.16/28",
    }
    assert "10.128.0.16/28" not in {subnet_reserve(session_id=f"s{i}") for i in range(2)}


def test_the_reconciler_leaves_a_subnet_reserved_while_it_ran():
    SessionSubnet.objects.create(session_id="just-opened", subnet="10.128.0.0/28")

    freed = subnets_reconcile(live=set(), in_docker={}, seen_before=timezone.now() - timedelta(seconds=5))

    assert freed == []
    assert SessionSubnet.objects.filter(session_id="just-opened").exists()
