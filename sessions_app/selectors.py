import re

from sessions_app.errors import InstanceNotFound, SessionNotFound
from sessions_app.models import Instance, Session

# Session ids and instance names are short and URL-safe; anything else (a NUL
# byte, which PostgreSQL refuses outright, or a path) names nothing.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def is_plain_name(value: str) -> bool:
    return bool(_PLAIN_NAME.fullmatch(value))


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
