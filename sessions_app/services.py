"""Every change to sessions and instances goes through these functions.

Views, admin actions, tasks and commands parse their input and call one of
them. Docker is never called inside a database transaction: the services that
need Docker are the ones run by Celery tasks, and they change state with
compare-and-set updates, so two workers racing on one instance cannot both win.
"""

import hashlib
import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from playground.logcontext import set_session
from sessions_app import events, tasks
from sessions_app.backends import get_backend
from sessions_app.backends.base import BackendError, TransientBackendError
from sessions_app.errors import (
    CannotExtend,
    ImageNotAllowed,
    InstanceNotFound,
    InvalidRequest,
    OutOfCapacity,
    SessionAlreadyHasInstance,
    SessionClosed,
    TooManySessions,
    UnknownPlayground,
)
from sessions_app.models import Instance, Playground, PreparedSession, Session, new_session_id
from sessions_app.selectors import instance_get, session_get

logger = logging.getLogger(__name__)

Status = Instance.Status

# The key of the PostgreSQL advisory lock that serializes session creation.
SESSION_CREATION_LOCK = 0x706C6179  # "play"


def session_create(
    *,
    playground_id: str,
    image: str | None = None,
    duration: timedelta | None = None,
    owner: AbstractBaseUser | None = None,
    client_address: str | None = None,
    client_agent: str = "",
) -> Session:
    """Open a session and its one instance; provisioning starts after commit."""
    playground = Playground.objects.filter(pk=playground_id).first()
    if playground is None:
        raise UnknownPlayground(f"There is no playground {playground_id!r}.")
    image = image or playground.image
    if not playground.permits_image(image):
        raise ImageNotAllowed(f"The playground {playground.id!r} does not offer the image {image!r}.")
    duration = duration or playground.default_duration
    if duration > playground.max_duration:
        raise InvalidRequest(
            f"duration: at most {int(playground.max_duration.total_seconds())} seconds in this playground."
        )
    now = timezone.now()
    owner = owner if owner is not None and owner.is_authenticated else None
    with transaction.atomic():
        _check_limits(owner=owner, client_address=client_address, now=now)
        session = Session.objects.create(
            id=_take_prepared_id(playground, image) or new_session_id(),
            created_at=now,
            playground=playground,
            owner=owner,
            client_address=client_address,
            client_agent=client_agent[:300],
            expires_at=now + duration,
        )
        instance = Instance.objects.create(session=session, image=image)
        _enqueue_provision(instance)
    set_session(session.id)  # what follows in this request or task is about it
    logger.info("session %s opened in playground %s", session.id, playground.id)
    return session


PREPARED_PLAYGROUND = "default"  # the playground whose sessions are prepared ahead
PREPARING_GIVES_UP_AFTER = timedelta(minutes=5)


def prepared_spec(playground: Playground, image: str) -> str:
    """What a prepared instance was made with; it is handed out only while this holds."""
    made_with = (
        image,
        playground.memory_limit_mb,
        playground.pids_limit,
        playground.cpu_limit,
        playground.storage_size,
        settings.PLAYGROUND_SECURITY_PROFILE,
        settings.PLAYGROUND_DOCKER_RUNTIME,
        settings.PLAYGROUND_INSTANCE_LOG_DRIVER,
        settings.PLAYGROUND_BOUND_DISKS,
    )
    return hashlib.sha256("|".join(map(str, made_with)).encode()).hexdigest()[:32]


def _take_prepared_id(playground: Playground, image: str) -> str | None:
    """The id of a prepared session whose instance fits, taken out of the pool."""
    prepared = (
        PreparedSession.objects.select_for_update(skip_locked=True)
        .filter(playground=playground, image=image, spec=prepared_spec(playground, image), ready=True)
        .order_by("created_at")
        .values_list("pk", flat=True)
        .first()
    )
    if prepared is not None:
        PreparedSession.objects.filter(pk=prepared).delete()
    return prepared


def sessions_prepare() -> int | None:
    """Top the pool of prepared sessions up to PLAYGROUND_PREPARED_SESSIONS.

    Each gets a running instance for the default playground and its default
    image, one after another. Returns how many it prepared, or None if it
    stopped because instances of real sessions are being provisioned: making
    more then would slow them down, so the pool is refilled once they run
    (the task runs every few seconds).
    """
    playground = Playground.objects.filter(pk=PREPARED_PLAYGROUND).first()
    target = settings.PLAYGROUND_PREPARED_SESSIONS if playground else 0
    sessions_unprepare(keep=target)
    if not target:
        return 0
    image, backend, made = playground.image, get_backend(), 0
    spec = prepared_spec(playground, image)
    while PreparedSession.objects.count() < target:
        if Instance.objects.filter(
            status__in=[Instance.Status.PENDING, Instance.Status.PROVISIONING], session__status=Session.Status.OPEN
        ).exists():
            return None
        # The row first: the reconciler keeps what Docker holds of it.
        prepared = PreparedSession.objects.create(playground=playground, image=image, spec=spec)
        try:
            if not backend.prepare(prepared.instance()):
                prepared.delete()
                break
        except BackendError as exc:
            logger.warning("could not prepare a session: %s", exc.log_message)
            prepared_session_remove(backend, prepared.pk)
            return made
        PreparedSession.objects.filter(pk=prepared.pk).update(ready=True)
        made += 1
    if made:
        logger.info("prepared %d sessions ahead", made)
    return made


def sessions_unprepare(*, keep: int) -> list[str]:
    """Remove prepared sessions that may no longer be handed out.

    Those made with other limits or another image than their playground has
    now, those whose preparation never finished, and the oldest beyond `keep`
    (after the setting was lowered). Returns their ids.
    """
    backend = get_backend()
    playground = Playground.objects.filter(pk=PREPARED_PLAYGROUND).first()
    current = Q(pk__in=[])
    if playground is not None:
        image = playground.image
        current = Q(playground=playground, image=image, spec=prepared_spec(playground, image))
    abandoned = Q(ready=False, created_at__lt=timezone.now() - PREPARING_GIVES_UP_AFTER)
    unwanted = list(PreparedSession.objects.exclude(current).values_list("pk", flat=True))
    unwanted += PreparedSession.objects.filter(current & abandoned).values_list("pk", flat=True)
    kept = PreparedSession.objects.filter(current).exclude(pk__in=unwanted).order_by("-created_at")
    unwanted += kept.values_list("pk", flat=True)[keep:]
    for session_id in unwanted:
        prepared_session_remove(backend, session_id)
    return unwanted


def prepared_session_remove(backend, session_id: str) -> None:
    """Remove a prepared session and its instance (the refill makes another)."""
    try:
        backend.remove_orphan(session_id)
    except BackendError as exc:
        # Its row goes anyway; the reconciler removes what is left in Docker.
        logger.warning("session %s: could not remove the prepared instance: %s", session_id, exc.log_message)
    PreparedSession.objects.filter(pk=session_id).delete()


CLOSE_MESSAGES = {
    "closed": "The session was closed.",
    "expired": "The session has expired.",
    "idle": "The session was closed after a long time without input.",
}


def _check_limits(*, owner, client_address: str | None, now: datetime) -> None:
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
        raise OutOfCapacity(log_message=f"{settings.PLAYGROUND_MAX_SESSIONS} sessions open: refusing another")
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

    reason is "closed" (its user or an admin), "expired" or "idle"; the last
    two leave the session expired.
    """
    status = Session.Status.CLOSED if reason == "closed" else Session.Status.EXPIRED
    with transaction.atomic():
        session = session_get(session_id=session_id)
        closed = Session.objects.filter(pk=session.pk, status=Session.Status.OPEN).update(
            status=status, closed_at=timezone.now()
        )
        if closed:
            _terminate_instance_of(session)
    if closed:
        logger.info("session %s %s", session_id, "closed" if reason == "closed" else f"ended ({reason})")
        events.session_status_changed(session_id=session_id, status=status, message=CLOSE_MESSAGES[reason])
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


def instance_create(*, session_id: str, image: str | None = None) -> Instance:
    """Give a session a new instance, if it has none.

    The database's UNIQUE constraint decides: of any number of racing
    requests, exactly one inserts and the others get SessionAlreadyHasInstance.
    """
    with transaction.atomic():
        session = session_get(session_id=session_id)
        playground = session.playground
        image = image or playground.image
        try:
            with transaction.atomic():
                instance = Instance.objects.create(session=session, image=image)
        except IntegrityError:
            raise SessionAlreadyHasInstance(log_message=f"session {session_id} already has an instance") from None
        # Checked after the insert so that the conflict, the more useful
        # answer, wins; raising here rolls the insert back.
        if not session.is_open:
            raise SessionClosed()
        if not playground.permits_image(image):
            raise ImageNotAllowed(f"The playground {playground.id!r} does not offer the image {image!r}.")
        _enqueue_provision(instance)
    logger.info("session %s got a new instance", session_id)
    return instance


def instance_remove(*, session_id: str, name: str) -> Instance:
    """Tear down a session's instance; once it is gone the session may get a new one."""
    with transaction.atomic():
        instance = instance_get(session_id=session_id, name=name)
        _terminate_instance_of(instance.session)
        if instance.status != Status.TERMINATED:
            instance.status = Status.TERMINATING
    # Not re-read from the database: the teardown, queued at commit, may
    # already have deleted the row.
    return instance


def instance_reprovision(*, session_id: str) -> Instance:
    """Replace a session's instance with a fresh one (an admin's remedy).

    The old container, volume and network are removed first, by the task.
    """
    with transaction.atomic():
        session = session_get(session_id=session_id)
        if not session.is_open:
            raise SessionClosed()
        replaced = Instance.objects.filter(
            session=session, status__in=[Status.PENDING, Status.PROVISIONING, Status.RUNNING, Status.FAILED]
        ).update(
            status=Status.PENDING,
            attempts=0,
            error="",
            failure_reason="",
            container_id="",
            ip_address=None,
            running_at=None,
        )
        if not replaced:
            raise InstanceNotFound("This session has no instance to replace.")
        instance = Instance.objects.get(session=session)
        transaction.on_commit(lambda: tasks.reprovision_instance.delay(instance.pk))
    logger.info("session %s: instance to be replaced", session_id)
    return instance


def instance_replace(*, instance_id: int) -> None:
    """Remove a pending instance's old container, then provision it anew."""
    instance = Instance.objects.select_related("session__playground").filter(pk=instance_id).first()
    if instance is None or instance.status != Status.PENDING or not instance.session.is_open:
        return
    get_backend().remove(instance)
    instance_provision(instance_id=instance_id)


def provisioning_is_full(*, instance_id: int) -> bool:
    """Whether PLAYGROUND_MAX_PROVISIONING other instances are being provisioned right now.

    The instance itself does not count: a job handed out again after its
    worker died finds its instance still provisioning.
    """
    others = Instance.objects.filter(status=Status.PROVISIONING).exclude(pk=instance_id)
    return others.count() >= settings.PLAYGROUND_MAX_PROVISIONING


def instance_provision(*, instance_id: int) -> None:
    """Start an instance's container and mark it running once its daemon answers.

    Safe to run twice and after a crash: the backend adopts what an earlier
    attempt made. TransientBackendError propagates so the task can retry;
    any other backend failure marks the instance failed with a readable error.
    """
    instance = Instance.objects.select_related("session__playground").filter(pk=instance_id).first()
    if instance is None or not instance.session.is_open:
        return
    claimed = Instance.objects.filter(pk=instance_id, status__in=[Status.PENDING, Status.PROVISIONING]).update(
        status=Status.PROVISIONING, started_at=timezone.now(), attempts=F("attempts") + 1
    )
    if not claimed:
        return  # already running, failed or being removed
    backend = get_backend()
    try:
        result = backend.start(instance)
    except TransientBackendError:
        if _still_provisioning(instance_id):
            raise  # the task tries again
        backend.remove(instance)  # closed meanwhile: undo what this attempt made
        return
    except BackendError as exc:
        failed = instance_fail(
            instance_id=instance_id, message=exc.message, reason=exc.reason, log_message=exc.log_message
        )
        if not failed:
            # Closed or removed meanwhile, perhaps by a teardown that ran
            # while this attempt was still making things: undo them.
            backend.remove(instance)
        return
    now = timezone.now()
    became_running = Instance.objects.filter(pk=instance_id, status=Status.PROVISIONING).update(
        status=Status.RUNNING,
        provision_seconds=(now - instance.created_at).total_seconds(),
        container_id=result.container_id,
        container_name=result.container_name,
        docker_host=result.docker_host,
        ip_address=result.ip_address,
        running_at=now,
        error="",
        failure_reason="",
    )
    if became_running:
        logger.info("session %s: instance running at %s", instance.session_id, result.ip_address)
        return
    current = Instance.objects.filter(pk=instance_id).values_list("status", flat=True).first()
    if current in (None, Status.TERMINATING, Status.TERMINATED):
        # Closed or removed while the container was starting: the teardown may
        # already have run, so remove what this attempt made.
        logger.info("session %s: instance ended while starting; removing it", instance.session_id)
        backend.remove(instance)
    # Otherwise a second delivery of this task finished first; nothing to do.


def instance_fail(*, instance_id: int, message: str, reason: str, log_message: str = "") -> bool:
    """Mark a starting instance failed, with a message for its user and a short reason for metrics.

    Returns False when the instance was no longer starting (closed or removed meanwhile).
    """
    failed = Instance.objects.filter(pk=instance_id, status__in=[Status.PENDING, Status.PROVISIONING]).update(
        status=Status.FAILED, error=message, failure_reason=reason
    )
    if failed:
        logger.warning("instance %s failed: %s", instance_id, log_message or message)
    return bool(failed)


def _still_provisioning(instance_id: int) -> bool:
    return Instance.objects.filter(
        pk=instance_id, status=Status.PROVISIONING, session__status=Session.Status.OPEN
    ).exists()


def instance_teardown(*, instance_id: int) -> None:
    """Remove a terminating instance's container, volume and network.

    An instance of a closed session stays on record as terminated; one removed
    from an open session is deleted, which frees the session for a new one.
    """
    instance = Instance.objects.select_related("session").filter(pk=instance_id).first()
    if instance is None or instance.status != Status.TERMINATING:
        return
    get_backend().remove(instance)
    remaining = Instance.objects.filter(pk=instance_id, status=Status.TERMINATING)
    if instance.session.is_open:
        remaining.delete()
    else:
        remaining.update(status=Status.TERMINATED, terminated_at=timezone.now())
    logger.info("session %s: instance removed", instance.session_id)


def _terminate_instance_of(session: Session) -> None:
    terminating = Instance.objects.filter(session=session).exclude(status__in=[Status.TERMINATED])
    instance = terminating.first()
    if instance is None:
        return
    terminating.update(status=Status.TERMINATING)
    transaction.on_commit(lambda: tasks.teardown_instance.delay(instance.pk))


def _enqueue_provision(instance: Instance) -> None:
    transaction.on_commit(lambda: tasks.provision_instance.delay(instance.pk))
