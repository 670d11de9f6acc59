"""Bring Docker and the database back in line, in both directions, one Docker host at a time.

Runs for each host on a worker of its own queue (next to its engine), when
the worker starts, every minute, and when a host that was down returns.
What it decides, for the instances placed on that host:

- Something in Docker (container, volume or network, made by this platform)
  whose session is not open, or unknown to the database, is removed.
- A running instance whose container is gone or stopped is provisioned
  again: a stopped container is started again with its data, a missing one is
  made anew (its data is lost). After MAX_ATTEMPTS provisioning attempts in
  all, the instance is marked failed instead, so a container that keeps dying
  does not loop forever.
- An instance stuck in pending, provisioning or setting_up (its job lost with
  a broker, or its worker killed) is handed to a worker again, within the same
  limit.
- An instance stuck terminating is handed to the teardown again.
- Prepared sessions (instances started ahead, see services.prepared) are
  kept; those made with limits their playground no longer has, those beyond
  PLAYGROUND_PREPARED_SESSIONS, and those whose instance is not running are
  removed (the refill makes new ones).
- The firewall rules of a session network's egress (sessions_app/egress.py)
  that went missing (a reboot, an operator's flush) are put back, and those
  of networks that no longer exist are removed.
- A session network's subnet (sessions_app/subnets.py) that neither an open
  session, nor a prepared one, nor a network in Docker holds is freed; one
  that a network in Docker holds is kept, and recorded if the database lost it.
- A running instance whose address changed (its container restarted with the
  engine: instances have a restart policy, so they come back) gets its new
  address recorded.
- An instance shown failed while its host was down (`host_down`) is running
  again if its container runs, else provisioned again.

It reads Docker through the backend and changes the database only through
the instance services, whose compare-and-set lets a worker that changed an
instance meanwhile win.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from sessions_app.backends import get_backend
from sessions_app.backends.base import BackendError, PollResult, TransientBackendError
from sessions_app.models import DockerHost, Instance, PreparedSession, Session
from sessions_app.services.instances import (
    instance_back_from_host_down,
    instance_fail,
    instance_readdress,
    instance_requeue,
    instance_retry_teardown,
)
from sessions_app.services.prepared import prepared_session_remove, sessions_unprepare
from sessions_app.subnets import subnets_reconcile

logger = logging.getLogger(__name__)

Status = Instance.Status

MAX_ATTEMPTS = 5
PENDING_STUCK_AFTER = timedelta(minutes=1)
# Beyond the provisioning task's own time limit (150 s).
PROVISIONING_STUCK_AFTER = timedelta(minutes=4)


@dataclass
class Report:
    removed: list[str] = field(default_factory=list)
    disks_released: list[str] = field(default_factory=list)
    reprovisioned: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    torn_down: list[str] = field(default_factory=list)
    readdressed: list[str] = field(default_factory=list)
    back_from_host_down: list[str] = field(default_factory=list)
    egress_restored: list[str] = field(default_factory=list)
    egress_removed: list[str] = field(default_factory=list)
    subnets_freed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any(vars(self).values())


def instances_reconcile(*, host: DockerHost | None = None) -> Report:
    """Reconcile one host; without one, each host that is not down, one after another."""
    if host is None:
        report = Report()
        for each in DockerHost.objects.exclude(state=DockerHost.State.DOWN):
            for key, value in vars(_reconcile_host(each)).items():
                getattr(report, key).extend(value)
        return report
    return _reconcile_host(host)


def _reconcile_host(host: DockerHost) -> Report:
    report = Report()
    backend = get_backend(host)
    instances = Instance.objects.filter(host=host)
    _remove_leftovers(backend, host, report)
    _reconcile_egress(backend, report)
    _release_leftover_disks(backend, report)
    _revive_lost_instances(backend, instances, report)
    _revive_after_host_down(backend, instances, report)
    _retry_stuck_instances(instances, report)
    _retry_teardowns(instances, report)
    report.removed.extend(sessions_unprepare(host=host, keep=settings.PLAYGROUND_PREPARED_SESSIONS))
    _remove_dead_prepared(backend, host, report)
    _reconcile_subnets(backend, host, report)
    if report:
        logger.info("reconciled %s: %s", host.name, {key: value for key, value in vars(report).items() if value})
    return report


def _remove_leftovers(backend, host: DockerHost, report: Report) -> None:
    present = backend.sessions_present()
    if not present:
        return
    wanted = set(
        Instance.objects.filter(host=host, session_id__in=present, session__status=Session.Status.OPEN).values_list(
            "session_id", flat=True
        )
    ) | set(PreparedSession.objects.filter(host=host, pk__in=present).values_list("pk", flat=True))
    for session_id in sorted(present - wanted):
        logger.info("session %s: removing what Docker still holds of it", session_id)
        try:
            backend.remove_orphan(session_id)
        except TransientBackendError as exc:
            # A removal under way (a teardown racing this pass), or the engine
            # busy: the next pass tries again, and this one goes on.
            logger.info("session %s: not removed yet: %s", session_id, exc.log_message)
            continue
        report.removed.append(session_id)


def _reconcile_egress(backend, report: Report) -> None:
    try:
        restored, removed = backend.egress_reconcile()
    except BackendError as exc:
        # The next pass tries again; the rest of this one goes on.
        logger.error("the firewall rules of the session networks' egress could not be reconciled: %s", exc.log_message)
        return
    if restored:
        logger.warning("put back the missing egress rules of %s", ", ".join(restored))
    report.egress_restored.extend(restored)
    report.egress_removed.extend(removed)


def _reconcile_subnets(backend, host: DockerHost, report: Report) -> None:
    seen_before = timezone.now()
    try:
        in_docker = backend.network_subnets()
    except BackendError as exc:
        logger.error("the session networks' subnets could not be reconciled: %s", exc.log_message)
        return
    # The prepared sessions first: one taken meanwhile is then an open session.
    live = set(PreparedSession.objects.values_list("pk", flat=True))
    live |= set(Session.objects.filter(status=Session.Status.OPEN).values_list("pk", flat=True))
    # The networks of other hosts are out of this engine's sight: theirs keep their subnets.
    elsewhere = Instance.objects.exclude(host=host).exclude(status=Status.TERMINATED)
    live |= set(elsewhere.values_list("session_id", flat=True))
    report.subnets_freed.extend(subnets_reconcile(live=live, in_docker=in_docker, seen_before=seen_before))


def _release_leftover_disks(backend, report: Report) -> None:
    """A disk whose instance is gone (its volume was never made, or went first) is released."""
    present = backend.storage_present()
    if not present:
        return
    claimed = set(
        Instance.objects.filter(storage_token__in=present)
        .exclude(status=Status.TERMINATED)
        .values_list("storage_token", flat=True)
    ) | set(PreparedSession.objects.filter(storage_token__in=present).values_list("storage_token", flat=True))
    for token in sorted(present - claimed):
        logger.info("releasing the disk %s, which no instance claims", token)
        try:
            backend.release_storage(token)
        except TransientBackendError as exc:
            logger.info("the disk %s: not released yet: %s", token, exc.log_message)
            continue
        report.disks_released.append(token)


def _remove_dead_prepared(backend, host: DockerHost, report: Report) -> None:
    """A prepared instance that stopped or vanished is not handed out: it goes, and the refill makes another."""
    for prepared in PreparedSession.objects.filter(host=host, ready=True).select_related("playground", "host"):
        if backend.poll(prepared.instance()).state != PollResult.RUNNING:
            logger.warning("session %s: the prepared instance is not running; removing it", prepared.pk)
            prepared_session_remove(session_id=prepared.pk)
            report.removed.append(prepared.pk)


def _revive_lost_instances(backend, instances, report: Report) -> None:
    running = instances.filter(status=Status.RUNNING, session__status=Session.Status.OPEN).select_related("session")
    for instance in running:
        found = backend.poll(instance)
        if found.state == PollResult.RUNNING:
            # After the engine restarted it, the container may have a new address.
            if found.ip_address and instance_readdress(instance_id=instance.pk, ip_address=found.ip_address):
                report.readdressed.append(instance.session_id)
            continue
        logger.warning("session %s: the instance's container is %s", instance.session_id, found.state)
        _provision_again(instance, report.reprovisioned, report, fresh=found.state == PollResult.MISSING)


def _revive_after_host_down(backend, instances, report: Report) -> None:
    from sessions_app.services.hosts import HOST_DOWN_REASON

    shown_failed = instances.filter(
        status=Status.FAILED, failure_reason=HOST_DOWN_REASON, session__status=Session.Status.OPEN
    ).select_related("session")
    for instance in shown_failed:
        found = backend.poll(instance)
        if found.state == PollResult.RUNNING:
            if instance_back_from_host_down(instance_id=instance.pk, ip_address=found.ip_address):
                report.back_from_host_down.append(instance.session_id)
        elif instance_requeue(
            instance_id=instance.pk, from_statuses=[Status.FAILED], fresh=found.state == PollResult.MISSING
        ):
            report.back_from_host_down.append(instance.session_id)


def _retry_stuck_instances(instances, report: Report) -> None:
    now = timezone.now()
    stuck = instances.filter(session__status=Session.Status.OPEN).filter(
        Q(status=Status.PENDING, created_at__lt=now - PENDING_STUCK_AFTER)
        | Q(status__in=[Status.PROVISIONING, Status.SETTING_UP], started_at__lt=now - PROVISIONING_STUCK_AFTER)
    )
    for instance in stuck:
        logger.warning("session %s: the instance is stuck %s", instance.session_id, instance.status)
        _provision_again(instance, report.retried, report)


def _retry_teardowns(instances, report: Report) -> None:
    for instance in instances.filter(status=Status.TERMINATING):
        if instance_retry_teardown(instance_id=instance.pk):
            report.torn_down.append(instance.session_id)


def _provision_again(instance: Instance, bucket: list[str], report: Report, *, fresh: bool = False) -> None:
    # Only from the status it was seen in: if a worker changed it meanwhile, the worker wins.
    if instance.attempts >= MAX_ATTEMPTS:
        if instance_fail(
            instance_id=instance.pk,
            message="The instance stopped and could not be brought back.",
            reason="lost",
            from_statuses=[instance.status],
        ):
            report.failed.append(instance.session_id)
        return
    if instance_requeue(instance_id=instance.pk, from_statuses=[instance.status], fresh=fresh):
        bucket.append(instance.session_id)
