"""The pool of prepared sessions: instances started ahead of demand.

A new session of the default playground takes one (see PreparedSession), so
that its learner does not wait for a container and a Docker daemon to start.
"""

import hashlib
import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from sessions_app.backends import get_backend
from sessions_app.backends.base import BackendError
from sessions_app.models import Instance, Playground, PreparedSession, Session

logger = logging.getLogger(__name__)

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
        # The firewall rules of its network and its inner daemon.json are made when it starts.
        playground.egress,
        # Its preload images are pulled when it starts.
        sorted(playground.preload_images or []),
        settings.PLAYGROUND_REGISTRY_MIRROR,
        settings.PLAYGROUND_SECURITY_PROFILE,
        settings.PLAYGROUND_DOCKER_RUNTIME,
        settings.PLAYGROUND_INSTANCE_LOG_DRIVER,
        settings.PLAYGROUND_BOUND_DISKS,
    )
    return hashlib.sha256("|".join(map(str, made_with)).encode()).hexdigest()[:32]


def prepared_take(*, playground: Playground, image: str) -> PreparedSession | None:
    """A prepared session whose instance fits, taken out of the pool.

    Runs inside the transaction that creates the session, which then takes
    its id and storage token; racing requests skip each other's rows.
    """
    prepared = (
        PreparedSession.objects.select_for_update(skip_locked=True)
        .filter(playground=playground, image=image, spec=prepared_spec(playground, image), ready=True)
        .order_by("created_at")
        .first()
    )
    if prepared is not None:
        PreparedSession.objects.filter(pk=prepared.pk).delete()
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
            prepared_session_remove(session_id=prepared.pk)
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
        prepared_session_remove(session_id=session_id)
    return unwanted


def prepared_session_remove(*, session_id: str) -> None:
    """Remove a prepared session and its instance (the refill makes another)."""
    try:
        get_backend().remove_orphan(session_id)
    except BackendError as exc:
        # Its row goes anyway; the reconciler removes what is left in Docker.
        logger.warning("session %s: could not remove the prepared instance: %s", session_id, exc.log_message)
    PreparedSession.objects.filter(pk=session_id).delete()
