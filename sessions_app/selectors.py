"""Reads that are more than a one-line query, for views, consumers and services."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from sessions_app.errors import InstanceNotFound, SessionNotFound
from sessions_app.models import Instance, Session, is_plain_name


def session_get(*, session_id: str) -> Session:
    """The session with its playground and instance, or SessionNotFound."""
    if not is_plain_name(session_id):
        raise SessionNotFound(log_message=f"malformed session id {session_id[:80]!r}")
    session = Session.objects.select_related("playground", "instance__host").filter(pk=session_id).first()
    if session is None:
        raise SessionNotFound(log_message=f"no session {session_id!r}")
    return session


def session_instance(*, session: Session) -> Instance | None:
    try:
        return session.instance
    except Instance.DoesNotExist:
        return None


def instance_get(*, session_id: str, name: str) -> Instance:
    instance = None
    if is_plain_name(session_id) and is_plain_name(name):
        instance = Instance.objects.select_related("session", "host").filter(session_id=session_id, name=name).first()
    if instance is None:
        session_get(session_id=session_id)  # an unknown session is the better answer
        raise InstanceNotFound(log_message=f"no instance {name!r} in session {session_id}")
    return instance


def sessions_of(*, credentials, limit: int = 100):
    """The sessions a caller owns (see access.Credentials), newest first; staff see all."""
    sessions = Session.objects.select_related("playground", "instance__host").order_by("-created_at")
    user = credentials.user
    if user.is_authenticated and user.is_staff:
        return sessions[:limit]
    owned = Q(pk__in=[])
    if user.is_authenticated:
        owned |= Q(owner=user)
    if credentials.browser:
        owned |= Q(browser_key=credentials.browser)
    if credentials.bearer:
        owned |= Q(access_token_hash=credentials.bearer)
    return sessions.filter(owned)[:limit]


@dataclass(frozen=True)
class TerminalState:
    """What a session's terminal needs to know, read in one query."""

    status: str  # "open", "closed" or "expired"
    expires_at: datetime
    instance: Instance | None
    session: Session

    @property
    def ended(self) -> bool:
        return self.status != Session.Status.OPEN


def session_terminal_state(*, session_id: str) -> TerminalState | None:
    """The session as its terminal sees it, or None if there is no such session.

    A session past its expiry counts as expired before the reaper gets to it.
    """
    if not is_plain_name(session_id):
        return None
    session = Session.objects.select_related("instance__host").filter(pk=session_id).first()
    if session is None:
        return None
    status = session.status
    if status == Session.Status.OPEN and session.expires_at <= timezone.now():
        status = Session.Status.EXPIRED
    return TerminalState(
        status=status, expires_at=session.expires_at, instance=session_instance(session=session), session=session
    )
