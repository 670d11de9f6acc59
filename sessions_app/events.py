"""Tell connected terminals about their session, through the channel layer.

Only low-rate events travel this way; terminal bytes never do.
"""

import logging
from datetime import datetime

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)


def session_group(session_id: str) -> str:
    return f"session.{session_id}"


def session_status_changed(*, session_id: str, status: str, message: str) -> None:
    """Send a status event to every terminal of the session, in every web process."""
    _send(session_id, {"type": "session.status", "status": status, "message": message})


def session_expiry_changed(*, session_id: str, expires_at: datetime) -> None:
    """Tell the session's terminals its new expiry, for their countdowns."""
    _send(session_id, {"type": "session.expiry", "expires_at": expires_at.isoformat()})


def _send(session_id: str, message: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(session_group(session_id), message)
    except Exception:
        # Terminals also notice changes on their own within seconds; an
        # unreachable channel layer must not fail the change itself.
        logger.warning("session %s: could not notify terminals", session_id, exc_info=True)
