"""Reads that are more than a one-line query, for views, consumers and services."""

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from sessions_app.errors import InstanceNotFound, SessionNotFound
from sessions_app.models import Instance, Session, is_plain_name


def session_get(*, session_id: str) -> Session:
    """The session with its playground and instance, or SessionNotFound."""
    if not is_plain_name(session_id):
        raise SessionNotFound(log_message=f"malformed session id {session_id[:80]!r}")
    session = Session.objects.select_related("playground", "instance").filter(pk=session_id).first()
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
        instance = Instance.objects.select_related("session").filter(session_id=session_id, name=name).first()
    if instance is None:
        session_get(session_id=session_id)  # an unknown session is the better answer
        raise InstanceNotFound(log_message=f"no instance {name!r} in session {session_id}")
    return instance


def sessions_of(*, user, session_ids: list[str], limit: int = 100):
    """The sessions a caller may list: all for staff, a user's own, or the given ids (a browser's)."""
    sessions = Session.objects.select_related("playground", "instance").order_by("-created_at")
    if user.is_authenticated and user.is_staff:
        return sessions[:limit]
    if user.is_authenticated:
        return sessions.filter(owner=user)[:limit]
    return sessions.filter(pk__in=[i for i in session_ids if isinstance(i, str)][:limit])


@dataclass(frozen=True)
class TerminalState:
    """What a session's terminal needs to know, read in one query."""

    status: str  # "open", "closed" or "expired"
    expires_at: datetime
    instance: Instance | None

    @property
    def ended(self) -> bool:
        return self.status != Session.Status.OPEN


def session_terminal_state(*, session_id: str) -> TerminalState | None:
    """The session as its terminal sees it, or None if there is no such session.

    A session past its expiry counts as expired before the reaper gets to it.
    """
    if not is_plain_name(session_id):
        return None
    session = Session.objects.select_related("instance").filter(pk=session_id).first()
    if session is None:
        return None
    status = session.status
    if status == Session.Status.OPEN and session.expires_at <= timezone.now():
        status = Session.Status.EXPIRED
    return TerminalState(status=status, expires_at=session.expires_at, instance=session_instance(session=session))
