"""The address ranges of session networks: one pool, managed by the platform.

Each session's bridge network takes a subnet of PLAYGROUND_SESSION_SUBNET_PREFIX
bits (a /28 by default) from PLAYGROUND_SESSION_SUBNETS (10.128.0.0/12: 65536
of them), handed to the engine as the network's IPAM subnet when it is made.
The engine's own address pools then bound nothing: by default they hold about
30 bridge networks, each a /16 or /20 for an instance that needs two addresses.

The database says which session holds which subnet (SessionSubnet, keyed by
session id so that a prepared session's subnet goes with its id to the session
that takes it). Its unique constraint on the subnet is what keeps two workers
racing for the last free one, on one engine or several, from both getting
it: the loser inserts again with another. A subnet is

- reserved when a session is opened (session_create: a full pool answers
  `503 out_of_capacity` before anything is made), or when a prepared
  session's network is made (subnet_reserve, from the backend's ensure_network);
- released when the session's network is removed (subnet_release, from the
  backend's removal);
- freed by the reconciler when no open session's instance, no prepared
  session and no network in Docker holds it any more (subnets_reconcile),
  and recorded when a network in Docker holds one the database lost.
"""

import ipaddress
import logging
import random
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction

from sessions_app.errors import OutOfCapacity
from sessions_app.models import SessionSubnet

logger = logging.getLogger(__name__)

ATTEMPTS = 20  # inserts tried when racing allocators keep taking the subnet this one chose
OUT_OF_ADDRESSES_RETRY = 30  # seconds a client is asked to wait when the pool is full


def session_pool() -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(settings.PLAYGROUND_SESSION_SUBNETS)


def subnet_reserve(*, session_id: str) -> str:
    """The subnet of the session's network ("10.128.0.16/28"): the one it holds, or a free one now taken.

    Raises OutOfCapacity when the pool has none free. Safe to call twice,
    and from several processes at once: each session holds at most one.
    """
    for _ in range(ATTEMPTS):
        held = SessionSubnet.objects.filter(session_id=session_id).values_list("subnet", flat=True).first()
        if held is not None:
            return held
        subnet = _free_subnet()
        if subnet is None:
            raise OutOfCapacity(
                "The playground has no network address left for another session; please try again in a few minutes.",
                retry_after=OUT_OF_ADDRESSES_RETRY,
                log_message=f"no free subnet in {settings.PLAYGROUND_SESSION_SUBNETS} for session {session_id}",
            )
        try:
            # A savepoint: inside a caller's transaction, a lost race must
            # not spoil it.
            with transaction.atomic():
                SessionSubnet.objects.create(session_id=session_id, subnet=subnet)
            return subnet
        except IntegrityError:
            continue  # another session took this subnet, or this session got one meanwhile
    raise OutOfCapacity(
        retry_after=1, log_message=f"session {session_id}: {ATTEMPTS} subnets taken by racing sessions in a row"
    )


def subnet_release(*, session_id: str) -> None:
    """Free the session's subnet: its network is gone. Releasing twice is harmless."""
    SessionSubnet.objects.filter(session_id=session_id).delete()


def subnet_set_aside(*, session_id: str, subnet: str) -> None:
    """The engine refused the session's subnet: something of its own (a network the platform did not
    make, the engine's own pool) holds addresses in it. The session gives it up, for another on its
    next attempt; the subnet stays taken until the reconciler's next pass frees it."""
    logger.warning(
        "%s overlaps a network of the engine that the platform did not make: PLAYGROUND_SESSION_SUBNETS (%s) "
        "should not overlap the engine's address pools or other networks",
        subnet,
        settings.PLAYGROUND_SESSION_SUBNETS,
    )
    SessionSubnet.objects.filter(session_id=session_id, subnet=subnet).update(session_id=f"set-aside:{subnet}")


def subnets_free() -> int:
    """How many subnets of the pool no session holds (for metrics and the operator)."""
    pool, size = session_pool(), 1 << (32 - settings.PLAYGROUND_SESSION_SUBNET_PREFIX)
    return pool.num_addresses // size - len(_taken_slots(pool, size))


def subnets_reconcile(*, live: set[str], in_docker: dict[str, list[str]], seen_before: datetime) -> list[str]:
    """Free the subnets no one holds; record those Docker holds that the database lost. Returns the freed ones.

    `live`: the session ids whose subnet must stay (open sessions that have
    an instance not terminated, prepared sessions). `in_docker`: the
    subnets of the platform's networks in Docker, by session id; a network
    still there keeps its subnet. Only rows made before `seen_before`
    (when the caller started looking) are freed, so that a subnet reserved
    while this pass ran is not mistaken for a leftover.
    """
    pool = session_pool()
    for session_id, subnets in in_docker.items():
        for subnet in subnets:
            if ipaddress.IPv4Network(subnet).subnet_of(pool):
                _record(session_id, subnet)
    leftovers = SessionSubnet.objects.filter(created_at__lt=seen_before).exclude(session_id__in=live | set(in_docker))
    freed = sorted(leftovers.values_list("subnet", flat=True))
    leftovers.filter(subnet__in=freed).delete()
    return freed


def _record(session_id: str, subnet: str) -> None:
    try:
        with transaction.atomic():
            _, made = SessionSubnet.objects.get_or_create(subnet=subnet, defaults={"session_id": session_id})
    except IntegrityError:
        # The session holds another subnet on record: its network in Docker
        # wins (it is the one in use), the other is freed.
        with transaction.atomic():
            SessionSubnet.objects.filter(session_id=session_id).delete()
            _, made = SessionSubnet.objects.get_or_create(subnet=subnet, defaults={"session_id": session_id})
    if made:
        logger.warning("session %s: its network holds %s, which was not on record; recorded", session_id, subnet)


def _free_subnet() -> str | None:
    """A subnet of the pool that no row overlaps, picked from a random place in the pool.

    Random, not the lowest free one: racing allocators rarely pick the same
    one, and an address freed a moment ago is not handed to the next
    session at once (while a terminal or a proxied port may still point at it).
    """
    pool, size = session_pool(), 1 << (32 - settings.PLAYGROUND_SESSION_SUBNET_PREFIX)
    count = pool.num_addresses // size
    taken = _taken_slots(pool, size)
    start = random.randrange(count)
    for step in range(count):
        slot = (start + step) % count
        if slot not in taken:
            return f"{pool.network_address + slot * size}/{settings.PLAYGROUND_SESSION_SUBNET_PREFIX}"
    return None


def _taken_slots(pool: ipaddress.IPv4Network, size: int) -> set[int]:
    """The pool's slots of `size` addresses that a recorded subnet overlaps, of any size.

    Of any size: rows made under another PLAYGROUND_SESSION_SUBNET_PREFIX
    still hold their addresses until their networks go.
    """
    base, count, taken = int(pool.network_address), pool.num_addresses // size, set()
    for text in SessionSubnet.objects.values_list("subnet", flat=True):
        network = ipaddress.IPv4Network(text)
        first = (int(network.network_address) - base) // size
        last = (int(network.broadcast_address) - base) // size
        taken.update(range(max(first, 0), min(last, count - 1) + 1))
    return taken
