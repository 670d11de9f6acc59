"""Docker hosts (models.DockerHost): where a new session goes, whether each
host answers, and what becomes of the sessions of one that does not.

- Placement: a new session goes to the active host with the most free
  capacity among those that have its image (as their worker last saw).
- Health: each host's workers, next to it, look at its engine every few
  seconds (host_look, from a thread of the worker: a queue full of jobs does
  not delay it). A host whose engine has not answered them for
  PLAYGROUND_HOST_DOWN_AFTER seconds is marked down (hosts_check): its
  instances are shown failed, reason `host_down`. Once its engine answers
  again it is active again, and its reconciler brings its instances back.
- Draining: no new sessions go there; those it has run to their end, and
  its prepared sessions are removed.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from sessions_app import tasks
from sessions_app.backends import get_backend
from sessions_app.backends.base import BackendError
from sessions_app.errors import OutOfCapacity
from sessions_app.models import DockerHost, Instance, Playground, PreparedSession, Session
from sessions_app.services.instances import STARTING

logger = logging.getLogger(__name__)

State = DockerHost.State
OUT_OF_CAPACITY_RETRY = 30  # seconds: the most a full platform asks a client to wait before it tries again
HOST_DOWN_REASON = "host_down"
HOST_DOWN_MESSAGE = "The Docker host of this instance is down; the instance comes back when its host does."
MAX_PROBLEM_LENGTH = 300
LAST_CHECK = "playground:hosts-checked-at"
CHECKS_CONTINUOUS_WITHIN = 60  # seconds between two checks (beat: 10) beyond which the next one judges nothing
SILENT_WORKERS_FACTOR = 3


def host_get(*, name: str) -> DockerHost | None:
    return DockerHost.objects.filter(name=name).first()


def live_instances() -> Q:
    """The instances of a host that take a place in it (as a filter across DockerHost.instances)."""
    return Q(instances__session__status=Session.Status.OPEN) & ~Q(instances__status=Instance.Status.TERMINATED)


def hosts_counted():
    """The Docker hosts, each with `used`: the sessions taking a place in it."""
    return DockerHost.objects.annotate(used=Count("instances", filter=live_instances()))


def host_place(*, image: str) -> DockerHost:
    """The host a new session of `image` goes to; OutOfCapacity if none can take it.

    Runs in the transaction that creates the session, under the lock that
    serializes session creation, so that racing requests count each other.
    A host whose worker has not looked yet is taken to have every image.
    """
    hosts = hosts_counted().filter(state=State.ACTIVE)
    candidates = [
        host for host in hosts if host.used < host.capacity and (host.checked_at is None or image in host.images)
    ]
    if not candidates:
        raise OutOfCapacity(
            retry_after=OUT_OF_CAPACITY_RETRY,
            log_message=f"no active Docker host has room for a session of {image}",
        )
    return max(candidates, key=lambda host: (host.capacity - host.used, -host.pk))


def instance_images() -> list[str]:
    """The images instances run: the platform's DIND image and every playground's."""
    images = {settings.PLAYGROUND_DIND_IMAGE}
    for default_image, allowed in Playground.objects.values_list("default_image", "allowed_images"):
        images.update([default_image] if default_image else [])
        images.update(image for image in allowed or [] if isinstance(image, str))
    return sorted(images)


def host_look(*, name: str) -> bool | None:
    """Look at a host's engine from next to it and record what was seen; whether it answered.

    None when there is no such host. A host marked down because it stopped
    answering is active again, and its instances are reconciled.
    """
    host = host_get(name=name)
    if host is None:
        return None
    now = timezone.now()
    try:
        look = get_backend(host).look(instance_images())
    except BackendError as exc:
        problem = (exc.log_message or exc.message)[:MAX_PROBLEM_LENGTH]
        DockerHost.objects.filter(pk=host.pk).update(checked_at=now, problem=problem)
        return False
    DockerHost.objects.filter(pk=host.pk).update(checked_at=now, seen_at=now, problem="", images=look.images)
    back = DockerHost.objects.filter(pk=host.pk, state=State.DOWN, down_automatically=True).update(
        state=State.ACTIVE, down_automatically=False
    )
    if back:
        logger.warning("Docker host %s answers again: active, its instances are reconciled", name)
        tasks.reconcile_host.delay(name)
    return True


def hosts_check(*, now: datetime | None = None) -> list[str]:
    """Mark down each host whose engine has not answered for long enough; the names of those it marked.

    PLAYGROUND_HOST_DOWN_AFTER when its workers look and the engine does not
    answer them; three times that when its workers do not report either (the
    whole machine may be gone, or its workers only restarting: their
    sessions' terminals do not depend on them). Nothing is marked when this
    check itself did not run for a while (the database or beat was away):
    the watches report again first.
    """
    now = now or timezone.now()
    last_check = cache.get(LAST_CHECK)
    cache.set(LAST_CHECK, now.timestamp(), timeout=None)
    if last_check is None or now.timestamp() - last_check > CHECKS_CONTINUOUS_WITHIN:
        return []
    marked = []
    for host in DockerHost.objects.exclude(state=State.DOWN):
        seen = host.seen_at or host.created_at
        engine_fails = host.checked_at is not None and host.checked_at > seen
        allowed = settings.PLAYGROUND_HOST_DOWN_AFTER * (1 if engine_fails else SILENT_WORKERS_FACTOR)
        if seen < now - timedelta(seconds=allowed):
            why = (host.problem or "its engine did not answer") if engine_fails else "its workers did not report"
            if host_mark_down(host=host, automatically=True, why=why):
                marked.append(host.name)
    return marked


def host_mark_down(*, host: DockerHost, automatically: bool = False, why: str = "marked down") -> bool:
    """Mark a host down: its instances are shown failed (host_down), its prepared sessions go.

    `automatically`: because it stopped answering, so that it is active again
    once it answers. Returns whether it was not down already.
    """
    with transaction.atomic():
        marked = (
            DockerHost.objects.filter(pk=host.pk)
            .exclude(state=State.DOWN)
            .update(state=State.DOWN, down_automatically=automatically)
        )
        if not marked:
            return False
        failed = Instance.objects.filter(
            host=host, status__in=[*STARTING, Instance.Status.RUNNING], session__status=Session.Status.OPEN
        ).update(status=Instance.Status.FAILED, error=HOST_DOWN_MESSAGE, failure_reason=HOST_DOWN_REASON)
        # What Docker holds of them goes when the host's reconciler runs again.
        PreparedSession.objects.filter(host=host).delete()
    logger.error("Docker host %s is down (%s): %d instances shown failed", host.name, why, failed)
    return True


def host_set_state(*, host: DockerHost, state: str) -> None:
    """An operator's change of a host's state (the admin)."""
    if state == State.DOWN:
        host_mark_down(host=host, why="marked down by an operator")
        return
    was = DockerHost.objects.filter(pk=host.pk).values_list("state", flat=True).first()
    DockerHost.objects.filter(pk=host.pk).update(state=state, down_automatically=False)
    logger.warning("Docker host %s is %s (was %s)", host.name, state, was)
    if was == State.DOWN:
        tasks.enqueue_on_commit(tasks.reconcile_host, host.name)
