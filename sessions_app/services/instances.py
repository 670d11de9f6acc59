"""Instances: create, remove, provision, fail, tear down, replace.

Every status change is a compare-and-set: it names the statuses it may
change (`from_statuses`) and reports whether it did, so that a worker, the
reconciler and a request racing on one instance cannot both win.
"""

import logging
from collections.abc import Iterable

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from labs.setup import SetupFailed, instance_set_up, needs_setup
from playground.db import release_connection
from sessions_app import tasks
from sessions_app.backends import backend_for
from sessions_app.backends.base import BackendError, TransientBackendError
from sessions_app.errors import ImageNotAllowed, InstanceNotFound, SessionAlreadyHasInstance, SessionClosed
from sessions_app.models import Instance, Session
from sessions_app.selectors import instance_get, session_get

logger = logging.getLogger(__name__)

Status = Instance.Status

STARTING = (Status.PENDING, Status.PROVISIONING, Status.SETTING_UP)
# Statuses from which an instance may be torn down.
NOT_TERMINATED = (*STARTING, Status.RUNNING, Status.FAILED, Status.TERMINATING)


def _set_status(instance_id: int, *, to: str, from_statuses: Iterable[str], **fields) -> bool:
    """Move the instance to `to` if its status is one of from_statuses; whether it did."""
    return bool(Instance.objects.filter(pk=instance_id, status__in=list(from_statuses)).update(status=to, **fields))


def enqueue_provision(instance: Instance) -> None:
    tasks.enqueue_on_commit(tasks.provision_instance, instance.pk)


def _enqueue_teardown(instance_id: int) -> None:
    tasks.enqueue_on_commit(tasks.teardown_instance, instance_id)


# --- Requests --------------------------------------------------------------------


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
        instance.host = _place(image)
        instance.save(update_fields=["host"])
        enqueue_provision(instance)
    logger.info("session %s got a new instance", session_id)
    return instance


def _place(image: str):
    # Imported here: hosts imports this module (its statuses).
    from sessions_app.services.hosts import host_place

    return host_place(image=image)


def instance_remove(*, session_id: str, name: str) -> Instance:
    """Tear down a session's instance; once it is gone the session may get a new one."""
    with transaction.atomic():
        instance = instance_get(session_id=session_id, name=name)
        instance_terminate(session=instance.session)
        if instance.status != Status.TERMINATED:
            instance.status = Status.TERMINATING
    # Not re-read from the database: the teardown, queued at commit, may
    # already have deleted the row.
    return instance


def instance_terminate(*, session: Session) -> None:
    """Mark the session's instance terminating; its teardown runs after commit."""
    instance = Instance.objects.filter(session=session, status__in=NOT_TERMINATED).first()
    if instance is not None and _set_status(instance.pk, to=Status.TERMINATING, from_statuses=NOT_TERMINATED):
        _enqueue_teardown(instance.pk)


def instance_reprovision(*, session_id: str) -> Instance:
    """Replace a session's instance with a fresh one (an admin's remedy).

    The old container, volume and network are removed first, by the task.
    """
    with transaction.atomic():
        session = session_get(session_id=session_id)
        if not session.is_open:
            raise SessionClosed()
        instance = Instance.objects.filter(session=session).first()
        replaced = instance is not None and _set_status(
            instance.pk,
            to=Status.PENDING,
            from_statuses=(*STARTING, Status.RUNNING, Status.FAILED),
            attempts=0,
            error="",
            failure_reason="",
            container_id="",
            ip_address=None,
            running_at=None,
            set_up_at=None,  # a new container: its template's files and setup again
        )
        if not replaced:
            raise InstanceNotFound("This session has no instance to replace.")
        instance.refresh_from_db()
        tasks.enqueue_on_commit(tasks.reprovision_instance, instance.pk)
    logger.info("session %s: instance to be replaced", session_id)
    return instance


# --- Work of the tasks -------------------------------------------------------------


def instance_replace(*, instance_id: int) -> None:
    """Remove a pending instance's old container, then provision it anew."""
    instance = Instance.objects.select_related("session__playground").filter(pk=instance_id).first()
    if instance is None or instance.status != Status.PENDING or not instance.session.is_open:
        return
    backend_for(instance).remove(instance)
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
    instance = (
        Instance.objects.select_related("session__playground", "session__template").filter(pk=instance_id).first()
    )
    if instance is None or not instance.session.is_open:
        return
    claimed = _set_status(
        instance_id,
        to=Status.PROVISIONING,
        from_statuses=STARTING,
        started_at=timezone.now(),
        attempts=F("attempts") + 1,
    )
    if not claimed:
        return  # already running, failed or being removed
    backend = backend_for(instance)
    release_connection()
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
    if needs_setup(instance.session.template) and instance.set_up_at is None:
        if not _set_up(instance, backend, result):
            _remove_if_ended(instance, backend)
            return
    now = timezone.now()
    became_running = _set_status(
        instance_id,
        to=Status.RUNNING,
        from_statuses=[Status.PROVISIONING, Status.SETTING_UP],
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
    _remove_if_ended(instance, backend)


def _remove_if_ended(instance: Instance, backend) -> None:
    """Remove what this attempt made if the instance was closed or removed while it started.

    The teardown may already have run. Otherwise (it failed, or a second
    delivery of the job finished first) there is nothing to do.
    """
    current = Instance.objects.filter(pk=instance.pk).values_list("status", flat=True).first()
    if current in (None, Status.TERMINATING, Status.TERMINATED):
        logger.info("session %s: instance ended while starting; removing it", instance.session_id)
        backend.remove(instance)


def _set_up(instance: Instance, backend, result) -> bool:
    """Put the session's template in place (labs.setup), in status setting_up; whether it was.

    A setup that fails fails the instance, with what the script printed.
    """
    if not _set_status(instance.pk, to=Status.SETTING_UP, from_statuses=[Status.PROVISIONING]):
        return False  # closed meanwhile, or a second delivery of the job got here first
    try:
        instance_set_up(backend, instance, instance.session.template)
    except SetupFailed as exc:
        instance_fail(
            instance_id=instance.pk,
            message=exc.message,
            reason=exc.reason,
            log_message=exc.log_message,
            from_statuses=[Status.SETTING_UP],
        )
        return False
    return bool(Instance.objects.filter(pk=instance.pk).update(set_up_at=timezone.now()))


def _still_provisioning(instance_id: int) -> bool:
    return Instance.objects.filter(
        pk=instance_id, status=Status.PROVISIONING, session__status=Session.Status.OPEN
    ).exists()


def instance_fail(
    *,
    instance_id: int,
    message: str,
    reason: str,
    log_message: str = "",
    from_statuses: Iterable[str] = STARTING,
) -> bool:
    """Mark an instance failed, with a message for its user and a short reason for metrics.

    Returns False when the instance was in none of from_statuses (by
    default: no longer starting, because it was closed or removed meanwhile).
    """
    failed = _set_status(
        instance_id, to=Status.FAILED, from_statuses=from_statuses, error=message, failure_reason=reason
    )
    if failed:
        logger.warning("instance %s failed: %s", instance_id, log_message or message)
    return failed


def instance_teardown(*, instance_id: int) -> None:
    """Remove a terminating instance's container, volume and network.

    An instance of a closed session stays on record as terminated; one removed
    from an open session is deleted, which frees the session for a new one.
    """
    instance = Instance.objects.select_related("session").filter(pk=instance_id).first()
    if instance is None or instance.status != Status.TERMINATING:
        return
    release_connection()
    backend_for(instance).remove(instance)
    if instance.session.is_open:
        Instance.objects.filter(pk=instance_id, status=Status.TERMINATING).delete()
    else:
        _set_status(instance_id, to=Status.TERMINATED, from_statuses=[Status.TERMINATING], terminated_at=timezone.now())
    logger.info("session %s: instance removed", instance.session_id)


# --- What the reconciler asks for ----------------------------------------------------


def instance_requeue(*, instance_id: int, from_statuses: Iterable[str], fresh: bool = False) -> bool:
    """Hand an instance to a worker to be provisioned again (its container was
    lost, or its job was); whether it was still in one of from_statuses.

    A `fresh` one (its container is gone: it is made anew) gets its
    template's files and setup again.
    """
    with transaction.atomic():
        cleared = {"set_up_at": None} if fresh else {}
        requeued = _set_status(instance_id, to=Status.PENDING, from_statuses=from_statuses, **cleared)
        if requeued:
            tasks.enqueue_on_commit(tasks.provision_instance, instance_id)
    return requeued


def instance_readdress(*, instance_id: int, ip_address: str) -> bool:
    """Record the new address of a running instance (the engine restarted its container)."""
    return bool(
        Instance.objects.filter(pk=instance_id, status=Status.RUNNING)
        .exclude(ip_address=ip_address)
        .update(ip_address=ip_address)
    )


def instance_back_from_host_down(*, instance_id: int, ip_address: str | None) -> bool:
    """An instance shown failed while its host was down, whose container runs again: running."""
    from sessions_app.services.hosts import HOST_DOWN_REASON

    back = Instance.objects.filter(pk=instance_id, status=Status.FAILED, failure_reason=HOST_DOWN_REASON).update(
        status=Status.RUNNING, error="", failure_reason="", ip_address=ip_address
    )
    if back:
        logger.info("instance %s runs again: its host is back", instance_id)
    return bool(back)


def instance_retry_teardown(*, instance_id: int) -> bool:
    """Hand a terminating instance to the teardown again (its job was lost)."""
    if not Instance.objects.filter(pk=instance_id, status=Status.TERMINATING).exists():
        return False
    tasks.teardown_instance.delay(instance_id)
    return True
