"""Who is asking: one honest client address for limits, the admin and the logs.

The address is the socket's peer unless that peer is a trusted reverse proxy
(PLAYGROUND_TRUSTED_PROXIES): then it is read from X-Forwarded-For, from the
right, through the trusted hops only. The entries a client writes itself sit
at the left and are never taken; a malformed entry ends the walk. IPv6
clients are grouped by their /64, the smallest block a provider hands one
customer, so one client cannot pass a per-client limit by changing the low
bits of its address.
"""

import ipaddress
from collections.abc import Iterable

from django.conf import settings

IPV6_CLIENT_PREFIX = 64

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_trusted_proxies(raw: str) -> int | list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The setting: a number of proxy hops ("1"), or networks ("10.0.0.0/8, 127.0.0.1"); "" for none.

    Raises ValueError on anything else.
    """
    raw = raw.strip()
    if not raw:
        return 0
    if raw.isdigit():
        return int(raw)
    return [ipaddress.ip_network(item.strip(), strict=False) for item in raw.split(",") if item.strip()]


def _parse(value: str | None) -> Address | None:
    if not value:
        return None
    try:
        address = ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _forwarded_for(values: Iterable[str]) -> list[str]:
    return [entry.strip() for value in values for entry in value.split(",") if entry.strip()]


def resolve_client(peer: str | None, forwarded_for: Iterable[str] = ()) -> Address | None:
    """The client's own address, given the socket's peer and the X-Forwarded-For headers."""
    address = _parse(peer)
    trusted = settings.PLAYGROUND_TRUSTED_PROXIES
    if address is None or not trusted:
        return address
    hops = _forwarded_for(forwarded_for)
    if isinstance(trusted, int):
        # Each of the N proxies appended the address it saw: the client's is
        # the Nth from the right. With fewer entries, a proxy was skipped.
        return (_parse(hops[-trusted]) or address) if len(hops) >= trusted else address
    while hops and any(address in network for network in trusted):
        previous = _parse(hops.pop())
        if previous is None:
            break
        address = previous
    return address


def client_group(address: Address | None) -> str | None:
    """What limits count by: the address, or an IPv6 address's /64 network address."""
    if address is None:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False).network_address)
    return str(address)


def request_client(request) -> str | None:
    """The client of a Django or DRF request (see the module)."""
    meta = request.META
    forwarded = [meta["HTTP_X_FORWARDED_FOR"]] if meta.get("HTTP_X_FORWARDED_FOR") else []
    return client_group(resolve_client(meta.get("REMOTE_ADDR"), forwarded))


def scope_client(scope: dict) -> str | None:
    """The client of an ASGI connection (the terminal's WebSocket)."""
    peer = (scope.get("client") or [None])[0]
    forwarded = [v.decode("latin-1") for k, v in scope.get("headers") or [] if k == b"x-forwarded-for"]
    return client_group(resolve_client(peer, forwarded))
