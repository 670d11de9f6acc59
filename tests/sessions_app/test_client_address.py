"""The per-client limits count one honest client address (playground.clients):
a forged X-Forwarded-For passes neither, and IPv6 clients count by their /64."""

import uuid

import pytest

from playground.clients import parse_trusted_proxies
from sessions_app.models import Session

pytestmark = pytest.mark.django_db


def test_it_groups_ipv6_clients_by_their_64(api, settings):
    settings.PLAYGROUND_MAX_SESSIONS_PER_CLIENT = 1

    first = api.post("/sessions", {}, format="json", REMOTE_ADDR="2001:db8:1:2::a")
    neighbour = api.post("/sessions", {}, format="json", REMOTE_ADDR="2001:db8:1:2:ffff::b")
    elsewhere = api.post("/sessions", {}, format="json", REMOTE_ADDR="2001:db8:1:3::a")

    assert (first.status_code, neighbour.status_code, elsewhere.status_code) == (201, 429, 201)
    assert Session.objects.filter(client_address="2001:db8:1:2::").count() == 1


@pytest.mark.parametrize("trusted", ["", "1"])
def test_a_forged_header_per_request_passes_neither_limit(api, settings, trusted):
    settings.PLAYGROUND_TRUSTED_PROXIES = parse_trusted_proxies(trusted)
    settings.PLAYGROUND_SESSION_RATE = "3/min"
    settings.PLAYGROUND_MAX_SESSIONS_PER_CLIENT = 1000
    # The client connects to the proxy (the peer the platform sees, when one
    # is trusted) or straight to the platform, always from one address: one
    # of a range of each case's own, so that the other case's requests (the
    # rate is counted for a minute) never count for it.
    peer, own = (
        ("10.9.9.9", f"203.0.113.{uuid.uuid4().int % 200}")
        if trusted
        else (f"198.51.100.{uuid.uuid4().int % 200}", None)
    )

    def create(forged: str):
        header = f"{forged}, {own}" if own else forged
        return api.post("/sessions", {}, format="json", REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=header).status_code

    codes = [create(f"192.0.2.{n}") for n in range(5)]

    assert codes == [201, 201, 201, 429, 429]
    settings.PLAYGROUND_SESSION_RATE = "1000/min"
    settings.PLAYGROUND_MAX_SESSIONS_PER_CLIENT = 3
    assert create("192.0.2.99") == 429  # and the open-session cap counts them as one client too


def test_it_never_answers_500_for_a_malformed_header(api, settings):
    settings.PLAYGROUND_TRUSTED_PROXIES = 1

    response = api.post("/sessions", {}, format="json", HTTP_X_FORWARDED_FOR="\x00; drop table, ::::")

    assert response.status_code == 201
    assert Session.objects.get().client_address == "127.0.0.1"
