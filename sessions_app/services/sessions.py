"""Sessions: open one (within the limits), close, extend, touch, reap."""

import logging
from datetime import datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection, transaction
from django.utils import timezone

from labs.models import Template
from playground.logcontext import set_session
from sessions_app import events, tasks
from sessions_app.errors import (
    CannotExtend,
    ImageNotAllowed,
    InvalidRequest,
    OutOfCapacity,
    PlaygroundNotAllowed,
    ServiceUnavailable,
    SessionClosed,
    TemplateNotAllowed,
    TooManySessions,
)
from sessions_app.messages import ENDINGS
from sessions_app.models import Instance, Playground, Session, hash_secret, new_secret, new_session_id
from sessions_app.selectors import session_get
from sessions_app.services.hosts import OUT_OF_CAPACITY_RETRY, host_place
from sessions_app.services.instances import enqueue_provision, instance_terminate
from sessions_app.services.prepared import prepared_take
from sessions_app.subnets import subnet_reserve

logger = logging.getLogger(__name__)

# The key of the PostgreSQL advisory lock that serializes session creation.
SESSION_CREATION_LOCK = 0x706C6179  # "play"


class Opened(NamedTuple):
    session: Session
    access_token: str  # the owner's credential; only its hash is kept


def session_create(
    *,
    playground_id: str = "default",
    template: str | None = None,
    image: str | None = None,
    duration: timedelta | None = None,
    owner: AbstractBaseUser | None = None,
    browser_key: str = "",
    client_address: str | None = None,
    client_agent: str = "",
    per_client_limit: bool = True,
) -> Opened:
    """Open a session and its one instance; provisioning starts after commit.

    Its owners: the logged-in `owner`, the browser whose key (the hash of its
    cookie's id) is `browser_key`, and whoever holds the access token
    returned here, once.

    A session of a `template` (its slug) gets the template's playground, and
    its instance gets the template's files and setup before it runs.

    `per_client_limit=False` leaves out PLAYGROUND_MAX_SESSIONS_PER_CLIENT
    (the host's own limit still holds): for a caller that bounds the
    sessions it opens itself, such as a workshop's seats.
    """
    lab = None
    if template is not None:
        lab = Template.objects.select_related("playground").filter(pk=template).first()
        if lab is None or not lab.playground.permits_user(owner or AnonymousUser()):
            # The same answer whether it exists or not.
            raise TemplateNotAllowed(f"There is no template {template!r} that you may use.")
        playground_id = lab.playground_id
    playground = Playground.objects.filter(pk=playground_id).first()
    if playground is None or not playground.permits_user(owner or AnonymousUser()):
        # The same answer whether it exists or not.
        raise PlaygroundNotAllowed(f"There is no playground {playground_id!r} that you may use.")
    image = image or playground.image
    if not playground.permits_image(image):
        raise ImageNotAllowed(f"The playground {playground.id!r} does not offer the image {image!r}.")
    duration = duration or playground.default_duration
    if duration > playground.max_duration:
        raise InvalidRequest(
            f"duration: at most {int(playground.max_duration.total_seconds())} seconds in this playground."
        )
    if problem := tasks.broker_problem():
        # The instance could not be started now: refuse before making anything.
        raise ServiceUnavailable(reason="broker_unavailable", retry_after=5, log_message=f"broker: {problem}")
    now = timezone.now()
    owner = owner if owner is not None and owner.is_authenticated else None
    access_token = new_secret()
    with transaction.atomic():
        _check_limits(owner=owner, client_address=client_address, now=now, per_client=per_client_limit)
        host = host_place(image=image)
        prepared = prepared_take(playground=playground, image=image, template=lab, host=host)
        session_id = prepared.pk if prepared else new_session_id()
        # Its network's addresses, before anything is made: a full pool
        # refuses the session here (a prepared session holds its own already).
        subnet_reserve(session_id=session_id)
        session = Session.objects.create(
            id=session_id,
            created_at=now,
            playground=playground,
            template=lab,
            owner=owner,
            browser_key=browser_key,
            access_token_hash=hash_secret(access_token),
            client_address=client_address,
            client_agent=client_agent[:300],
            expires_at=now + duration,
        )
        # A prepared instance's disk and volume are named by its token: keep
        # it. A prepared instance of a template was set up before it was ready.
        storage = {"storage_token": prepared.storage_token, "set_up_at": now} if prepared else {}
        instance = Instance.objects.create(session=session, image=image, host=host, **storage)
        enqueue_provision(instance)
    set_session(session.id)  # what follows in this request or task is about it
    logger.info(
        "session %s opened in playground %s on host %s for %s",
        session.id,
        playground.id,
        host.name,
        owner or client_address,
    )
    return Opened(session, access_token)


def _check_limits(*, owner, client_address: str | None, now: datetime, per_client: bool = True) -> None:
    """Refuse a session beyond the host's capacity or the client's share of it.

    Runs in the creating transaction, under a lock that serializes session
    creation, so that racing requests cannot all slip under a limit.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SESSION_CREATION_LOCK])
    # (SQLite runs one writing transaction at a time already.)
    open_sessions = Session.objects.filter(status=Session.Status.OPEN)
    if open_sessions.count() >= settings.PLAYGROUND_MAX_SESSIONS:
        # A place frees when a session ends: at the latest when the first one
        # expires, often sooner (closed by its learner), so ask again within
        # half a minute.
        first_expiry = open_sessions.order_by("expires_at").values_list("expires_at", flat=True).first()
        raise OutOfCapacity(
            retry_after=min(OUT_OF_CAPACITY_RETRY, max(1, int((first_expiry - now).total_seconds()))),
            log_message=f"{settings.PLAYGROUND_MAX_SESSIONS} sessions open: refusing another",
        )
    if not per_client:
        return
    if owner is not None:
        mine = open_sessions.filter(owner=owner)
    elif client_address:
        mine = open_sessions.filter(owner__isnull=True, client_address=client_address)
    else:
        return
    expiries = list(
        mine.order_by("expires_at").values_list("expires_at", flat=True)[: settings.PLAYGROUND_MAX_SESSIONS_PER_CLIENT]
    )
    if len(expiries) >= settings.PLAYGROUND_MAX_SESSIONS_PER_CLIENT:
        raise TooManySessions(
            f"You may have {settings.PLAYGROUND_MAX_SESSIONS_PER_CLIENT} sessions open at once; close one first.",
            retry_after=max(1, int((expiries[0] - now).total_seconds())),
            log_message=f"client {owner or client_address} has {len(expiries)} open sessions",
        )


def session_close(*, session_id: str, reason: str = "closed") -> Session:
    """Close a session; its instance is torn down after commit. Closing twice is harmless.

    reason is "closed" (its user or an admin), "expired" or "idle" (a key of
    messages.ENDINGS); the last two leave the session expired.
    """
    status = Session.Status.CLOSED if reason == "closed" else Session.Status.EXPIRED
    with transaction.atomic():
        session = session_get(session_id=session_id)
        closed = Session.objects.filter(pk=session.pk, status=Session.Status.OPEN).update(
            status=status, closed_at=timezone.now()
        )
        if closed:
            instance_terminate(session=session)
    if closed:
        logger.info("session %s %s", session_id, "closed" if reason == "closed" else f"ended ({reason})")
        events.session_status_changed(session_id=session_id, status=status, message=ENDINGS[reason].message)
    return session_get(session_id=session_id)


def session_extend(*, session_id: str, duration: timedelta | None = None) -> Session:
    """Move a session's expiry later, by duration (the playground's default
    duration when not given), never beyond its maximum lifetime."""
    with transaction.atomic():
        session = session_get(session_id=session_id)
        if not session.is_open:
            raise SessionClosed()
        duration = duration or session.playground.default_duration
        latest = session.latest_expiry
        if session.expires_at >= latest:
            raise CannotExtend(
                f"The session already lasts as long as it may (until {latest.isoformat(timespec='seconds')})."
            )
        new_expiry = min(max(session.expires_at, timezone.now()) + duration, latest)
        Session.objects.filter(pk=session.pk, status=Session.Status.OPEN).update(expires_at=new_expiry)
    logger.info("session %s extended until %s", session_id, new_expiry.isoformat(timespec="seconds"))
    events.session_expiry_changed(session_id=session_id, expires_at=new_expiry)
    return session_get(session_id=session_id)


def session_touch(*, session_id: str) -> None:
    """Record terminal input, which keeps an idle timeout from closing the session."""
    Session.objects.filter(pk=session_id, status=Session.Status.OPEN).update(last_activity_at=timezone.now())


def sessions_reap_expired(*, now: datetime | None = None) -> list[str]:
    """Close every open session past its expiry or its playground's idle timeout.

    Returns the ids of the sessions it closed.
    """
    now = now or timezone.now()
    reaped = []
    for session_id in Session.objects.filter(status=Session.Status.OPEN, expires_at__lte=now).values_list(
        "pk", flat=True
    ):
        session_close(session_id=session_id, reason="expired")
        reaped.append(session_id)
    idle_candidates = Session.objects.filter(
        status=Session.Status.OPEN, playground__idle_timeout__isnull=False
    ).select_related("playground")
    for session in idle_candidates:
        last = session.last_activity_at or session.created_at
        if last + session.playground.idle_timeout <= now:
            session_close(session_id=session.pk, reason="idle")
            reaped.append(session.pk)
    return reaped
