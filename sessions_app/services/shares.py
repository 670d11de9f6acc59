"""Share links: someone else may watch a session's terminal, or use it, until
the link expires or its owner revokes it."""

import logging
from datetime import timedelta
from typing import NamedTuple

from django.db import transaction
from django.utils import timezone

from sessions_app import events
from sessions_app.errors import InvalidRequest, SessionClosed, ShareNotFound
from sessions_app.models import Session, Share, hash_secret, new_secret
from sessions_app.selectors import session_get

logger = logging.getLogger(__name__)


class Created(NamedTuple):
    share: Share
    token: str  # the link's credential; only its hash is kept


def share_create(*, session_id: str, mode: str, expires_in: timedelta | None = None) -> Created:
    """A new share link of an open session, lasting expires_in (at most as long
    as the session may last); by default until the session's latest expiry."""
    session = session_get(session_id=session_id)
    if not session.is_open:
        raise SessionClosed()
    latest = session.latest_expiry
    expires_at = min(timezone.now() + expires_in, latest) if expires_in else latest
    if expires_at <= timezone.now():
        raise InvalidRequest("expires_in: the session cannot last that long any more.")
    token = new_secret()
    share = Share.objects.create(session=session, mode=mode, token_hash=hash_secret(token), expires_at=expires_at)
    logger.info("session %s shared %s until %s", session_id, mode, expires_at.isoformat(timespec="seconds"))
    return Created(share, token)


def share_revoke(*, session_id: str, share_id: str) -> Share:
    """End a share link now: its open terminals close. Revoking twice is harmless."""
    with transaction.atomic():
        share = Share.objects.filter(session_id=session_id, pk=share_id).first()
        if share is None:
            raise ShareNotFound(log_message=f"no share {share_id!r} of session {session_id}")
        revoked = Share.objects.filter(pk=share.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    if revoked:
        logger.info("session %s: share %s revoked", session_id, share_id)
        events.share_revoked(session_id=session_id, share_id=share_id)
    share.refresh_from_db()
    return share


def share_redeem(*, token: str) -> Share:
    """The active share link of this token (for the page, which keeps it in a cookie)."""
    share = (
        Share.objects.select_related("session")
        .filter(
            token_hash=hash_secret(token),
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
            session__status=Session.Status.OPEN,
        )
        .first()
    )
    if share is None:
        raise ShareNotFound(log_message="a share token that is unknown, expired or revoked")
    return share
