"""The ports a learner's servers listen on in their instance, and who may open them.

The platform's proxy (terminals.proxy) asks `port_target()` where a request
for a session's port may go: only ever to the session's own instance, on a
port something in it listens on, for the session's owner, a share link's
holder, or anyone once the learner has marked the port public.

A browser reaches a port at its own host name (`{port}-{session}.{domain}`,
with PLAYGROUND_PORTS_DOMAIN) with a pass: a short-lived signed ticket the
platform's page hands out (`port_ticket()`), which the proxy swaps for a
cookie of that host alone, saying which session and port it opens and on
whose access (the owner's, or a share link's, checked again at every request).
"""

import logging
import threading
import time
from dataclasses import dataclass

from django.core import signing
from django.db import transaction
from django.utils import timezone

from sessions_app import access
from sessions_app.access import Access, Credentials
from sessions_app.backends import backend_for
from sessions_app.backends.base import AttachError
from sessions_app.errors import InstanceNotRunning, PortNotListening, SessionNotFound
from sessions_app.models import Instance, Session, Share
from sessions_app.selectors import session_get
from sessions_app.services.commands import running_instance

logger = logging.getLogger(__name__)

PORTS_FRESH = 1.0  # seconds a look at an instance's listening ports is reused
MIN_PORT, MAX_PORT = 1, 65535
TICKET_SALT = "playground.port-ticket"
TICKET_MAX_AGE = 60  # seconds from the page's link to the port's first answer
PASS_SALT = "playground.port-pass"
PASS_MAX_AGE = 12 * 3600  # seconds a port's cookie lasts

_looked: dict[int, tuple[float, frozenset[int]]] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class PortTarget:
    """Where the proxy may send a request for a session's port."""

    address: str  # the instance's own address
    port: int
    # The request's Authorization is the platform's (a session's or share's
    # bearer token): not for the learner's server to see.
    strip_authorization: bool = False


@dataclass(frozen=True)
class PortPass:
    """What a port's ticket or cookie says: this session's port, on whose access."""

    session_id: str
    port: int
    share_id: str | None  # None: the owner's access


def listening_ports(*, instance: Instance, fresh: bool = False) -> frozenset[int]:
    """The ports something in the running instance listens on, looked at in the last second (or now)."""
    now = time.monotonic()
    with _lock:
        looked_at, ports = _looked.get(instance.pk, (0.0, None))
    if ports is not None and not fresh and now - looked_at < PORTS_FRESH:
        return ports
    try:
        ports = frozenset(backend_for(instance).listening_ports(instance))
    except AttachError as exc:
        raise InstanceNotRunning(log_message=str(exc)) from None
    with _lock:
        for stale in [key for key, (at, _) in _looked.items() if now - at >= PORTS_FRESH]:
            del _looked[stale]
        _looked[instance.pk] = (time.monotonic(), ports)
    return ports


def session_ports(*, session: Session) -> list[dict]:
    """The session's listening ports, each with whether the learner made it public."""
    instance = running_instance(session, "ports")
    public = set(session.public_ports)
    return [{"port": port, "public": port in public} for port in sorted(listening_ports(instance=instance))]


def port_set_public(*, session: Session, port: int, public: bool) -> dict:
    """Open a port to anyone with its link, or close it to all but the session's own people again."""
    with transaction.atomic():
        locked = Session.objects.select_for_update().get(pk=session.pk)
        ports = set(locked.public_ports) - {port}
        if public:
            ports.add(port)
        locked.public_ports = sorted(ports)
        locked.save(update_fields=["public_ports"])
    session.public_ports = locked.public_ports
    logger.info("session %s: port %s %s", session.pk, port, "made public" if public else "made private")
    return {"port": port, "public": public}


def port_target(
    *, session_id: str, port: int, credentials: Credentials | None = None, port_pass: PortPass | None = None
) -> PortTarget:
    """Where a request for this session's port may go, for whoever presents these credentials or this pass.

    Raises SessionNotFound (for one who may not open it, as for an unknown
    session), SessionClosed or InstanceNotRunning, and PortNotListening when
    nothing in the instance listens on the port: the proxy dials nothing else.
    """
    if not MIN_PORT <= port <= MAX_PORT:
        raise PortNotListening(log_message=f"port {port} of session {session_id}")
    session = session_get(session_id=session_id)
    grant = access.session_grant(session, credentials or Credentials())
    # A bearer token that is the session's or a share's is the platform's, public port or not.
    strip = bool(credentials and credentials.bearer) and not grant.by_cookie and grant.level > Access.NONE
    if port not in session.public_ports:
        allowed = _pass_holds(session, port, port_pass) if port_pass is not None else grant.level > Access.NONE
        if not allowed:
            raise SessionNotFound(log_message=f"no access to port {port} of session {session_id}")
    instance = running_instance(session, f"port {port}")
    if not instance.ip_address:
        raise InstanceNotRunning(log_message=f"session {session_id}: the instance has no address yet")
    # A server that started a moment ago is not yet in the last look.
    if port not in listening_ports(instance=instance) and port not in listening_ports(instance=instance, fresh=True):
        raise PortNotListening(log_message=f"nothing listens on port {port} of session {session_id}")
    return PortTarget(address=instance.ip_address, port=port, strip_authorization=strip)


def _pass_holds(session: Session, port: int, port_pass: PortPass) -> bool:
    if port_pass.session_id != session.pk or port_pass.port != port:
        return False
    if port_pass.share_id is None:
        return True
    return Share.objects.filter(
        pk=port_pass.share_id, session=session, revoked_at__isnull=True, expires_at__gt=timezone.now()
    ).exists()


# --- Tickets and passes of a port's own host ----------------------------------------------


def port_ticket(*, session: Session, port: int, credentials: Credentials) -> str:
    """A ticket to open this port at its own host name, for a caller who may see the session."""
    _, grant = access.session_for(session_id=session.pk, credentials=credentials, need=Access.READ_ONLY)
    share_id = None if grant.level == Access.OWNER else grant.share_id
    return signing.dumps({"s": session.pk, "p": port, "h": share_id}, salt=TICKET_SALT, compress=True)


def port_pass_from_ticket(ticket: str) -> PortPass | None:
    return _load(ticket, TICKET_SALT, TICKET_MAX_AGE)


def port_pass_cookie(port_pass: PortPass) -> str:
    """The cookie value that carries a pass (signed, and dated for PASS_MAX_AGE)."""
    return signing.dumps({"s": port_pass.session_id, "p": port_pass.port, "h": port_pass.share_id}, salt=PASS_SALT)


def port_pass_from_cookie(value: str) -> PortPass | None:
    return _load(value, PASS_SALT, PASS_MAX_AGE)


def _load(value: str, salt: str, max_age: int) -> PortPass | None:
    try:
        data = signing.loads(value, salt=salt, max_age=max_age)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("s"), str) or not isinstance(data.get("p"), int):
        return None
    share_id = data.get("h")
    return PortPass(session_id=data["s"], port=data["p"], share_id=share_id if isinstance(share_id, str) else None)
