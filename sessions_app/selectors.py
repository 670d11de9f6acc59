from sessions_app.errors import InstanceNotFound, SessionNotFound
from sessions_app.models import Instance, Session


def session_get(*, session_id: str) -> Session:
    """The session with its playground and instance, or SessionNotFound."""
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
    instance = Instance.objects.select_related("session").filter(session_id=session_id, name=name).first()
    if instance is None:
        session_get(session_id=session_id)  # an unknown session is the better answer
        raise InstanceNotFound(log_message=f"no instance {name!r} in session {session_id}")
    return instance
