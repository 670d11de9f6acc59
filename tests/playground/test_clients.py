"""One honest client address: X-Forwarded-For is read only through trusted proxies."""

import pytest

from playground.clients import parse_trusted_proxies, resolve_client


def resolved(settings, trusted: str, peer: str, forwarded: str | None = None) -> str | None:
    settings.PLAYGROUND_TRUSTED_PROXIES = parse_trusted_proxies(trusted)
    address = resolve_client(peer, [forwarded] if forwarded else [])
    return str(address) if address else None


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded", "client"),
    [
        # No proxy trusted: the socket's peer, whatever the header says.
        ("", "203.0.113.7", "198.51.100.1", "203.0.113.7"),
        # One proxy: the entry it appended, not the ones the client wrote.
        ("1", "10.0.0.2", "1.2.3.4, 198.51.100.9", "198.51.100.9"),
        ("1", "10.0.0.2", None, "10.0.0.2"),
        # Two hops: the second from the right.
        ("2", "10.0.0.2", "1.2.3.4, 198.51.100.9, 10.0.0.3", "198.51.100.9"),
        # Proxies by network: walk from the right while the hop is trusted.
        ("10.0.0.0/8", "10.0.0.2", "1.2.3.4, 198.51.100.9, 10.0.0.3", "198.51.100.9"),
        # A peer outside the trusted networks forged the header: its own address.
        ("10.0.0.0/8", "203.0.113.7", "10.0.0.9, 1.2.3.4", "203.0.113.7"),
        # Malformed entries end the walk; never an error.
        ("1", "10.0.0.2", "not-an-ip", "10.0.0.2"),
        ("10.0.0.0/8", "10.0.0.2", "x, <script>", "10.0.0.2"),
        ("", "::ffff:203.0.113.7", None, "203.0.113.7"),
    ],
)
def test_it_reads_the_client_through_trusted_proxies_only(settings, trusted, peer, forwarded, client):
    assert resolved(settings, trusted, peer, forwarded) == client
