"""Tell connected terminals about their session, through the channel layer.

Only low-rate events travel this way; terminal bytes never do.
"""

import hashlib
import logging
from datetime import datetime

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)


def session_group(session_id: str) -> str:
    """The channel-layer group of a session's terminals. Named by a hash: group
    names are Redis keys, and a session id is a secret worth keeping out of them."""
    return f"session.{hashlib.sha256(session_id.encode()).hexdigest()[:40]}"


def session_status_changed(*, session_id: str, status: str, message: str) -> None:
    """Send a status event to every terminal of the session, in every web process."""
    _send(session_id, {"type": "session.status", "status": status, "message": message})


def session_expiry_changed(*, session_id: str, expires_at: datetime) -> None:
    """Tell the session's terminals its new expiry, for their countdowns."""
    _send(session_id, {"type": "session.expiry", "expires_at": expires_at.isoformat()})


def share_revoked(*, session_id: str, share_id: str) -> None:
    """Close the terminals that a share link opened, now that it is revoked."""
    _send(session_id, {"type": "session.share_revoked", "share": share_id})


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
