"""The pools of prepared sessions: instances started ahead of demand.

A new session of the default playground, or of a template that keeps some
prepared, takes one (see PreparedSession), so that its learner does not wait
for a container and a Docker daemon to start, nor for the template's setup.

Each Docker host keeps pools of its own, refilled by its own workers: a new
session takes a prepared one of the host it was placed on. An active host
keeps each pool's target; a draining or down one keeps none.
"""

import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from labs.models import Template
from labs.pools import prepared_targets
from labs.setup import instance_set_up, needs_setup
from sessions_app.backends import get_backend
from sessions_app.backends.base import BackendError
from sessions_app.models import DockerHost, Instance, Playground, PreparedSession, Session
from sessions_app.services.instances import STARTING

logger = logging.getLogger(__name__)

PREPARED_PLAYGROUND = "default"  # the playground whose sessions are prepared ahead
PREPARING_GIVES_UP_AFTER = timedelta(minutes=5)


@dataclass(frozen=True)
class Pool:
    """Sessions prepared alike on one host: of one playground and image, set up from one template or none."""

    host: DockerHost
    playground: Playground
    template: Template | None
    target: int

    @property
    def image(self) -> str:
        return self.playground.image

    @property
    def spec(self) -> str:
        return prepared_spec(self.playground, self.image, self.template)

    def current(self) -> Q:
        return Q(host=self.host, playground=self.playground, template=self.template, image=self.image, spec=self.spec)


def prepared_spec(playground: Playground, image: str, template: Template | None = None) -> str:
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
        # Its template's files and setup script were put in place: any change to it counts.
        template.pk if template else "",
        template.updated_at.isoformat() if template else "",
    )
    return hashlib.sha256("|".join(map(str, made_with)).encode()).hexdigest()[:32]


def prepared_take(
    *, playground: Playground, image: str, host: DockerHost, template: Template | None = None
) -> PreparedSession | None:
    """A prepared session of `host` whose instance fits, taken out of the pool.

    Runs inside the transaction that creates the session, which then takes
    its id and storage token; racing requests skip each other's rows.
    """
    prepared = (
        PreparedSession.objects.select_for_update(skip_locked=True)
        .filter(
            host=host,
            playground=playground,
            template=template,
            image=image,
            spec=prepared_spec(playground, image, template),
            ready=True,
        )
        .order_by("created_at")
        .first()
    )
    if prepared is not None:
        PreparedSession.objects.filter(pk=prepared.pk).delete()
    return prepared


def pools(*, host: DockerHost, default_target: int) -> list[Pool]:
    """The pools a host keeps: the default playground's (PLAYGROUND_PREPARED_SESSIONS), then each template's.

    None on a host that takes no new sessions (draining or down).
    """
    if host.state != DockerHost.State.ACTIVE:
        return []
    found = []
    playground = Playground.objects.filter(pk=PREPARED_PLAYGROUND).first()
    if playground is not None:
        found.append(Pool(host, playground, None, default_target))
    found += [Pool(host, template.playground, template, target) for template, target in prepared_targets().items()]
    return found


def sessions_prepare(*, host: DockerHost | None = None) -> int | None:
    """Top each pool of prepared sessions of a host (without one: of each host) up to its target.

    The default playground's pool holds PLAYGROUND_PREPARED_SESSIONS; each
    template's as many as it asks for (labs.pools), each one set up from the
    template before it may be handed out. They are made one after another.
    Returns how many it prepared, or None if it stopped because instances of
    real sessions are being provisioned: making more then would slow them
    down, so the pools are refilled once they run (the task runs every few
    seconds).
    """
    if host is None:
        made = [sessions_prepare(host=each) for each in DockerHost.objects.all()]
        return None if None in made else sum(made)
    wanted = pools(host=host, default_target=settings.PLAYGROUND_PREPARED_SESSIONS)
    sessions_unprepare(host=host, keep=settings.PLAYGROUND_PREPARED_SESSIONS, kept_pools=wanted)
    backend, made = get_backend(host), 0
    starting = Instance.objects.filter(host=host, status__in=STARTING, session__status=Session.Status.OPEN)
    for pool in wanted:
        spec = pool.spec
        while PreparedSession.objects.filter(pool.current()).count() < pool.target:
            if starting.exists():
                return None
            # The row first: the reconciler keeps what Docker holds of it.
            prepared = PreparedSession.objects.create(
                host=host, playground=pool.playground, template=pool.template, image=pool.image, spec=spec
            )
            try:
                if not backend.prepare(prepared.instance()):
                    prepared.delete()
                    break
                if needs_setup(pool.template):
                    instance_set_up(backend, prepared.instance(), pool.template)
            except BackendError as exc:
                logger.warning("could not prepare a session on %s: %s", host.name, exc.log_message)
                prepared_session_remove(session_id=prepared.pk)
                return made
            PreparedSession.objects.filter(pk=prepared.pk).update(ready=True)
            made += 1
    if made:
        logger.info("prepared %d sessions ahead on %s", made, host.name)
    return made


def sessions_unprepare(*, keep: int, host: DockerHost | None = None, kept_pools: list[Pool] | None = None) -> list[str]:
    """Remove prepared sessions of a host (without one: of each host) that may no longer be handed out.

    Those made with other limits, another image or another version of their
    template than they have now, those of no pool any more, those whose
    preparation never finished, and the oldest beyond their pool's target
    (`keep` for the default playground's). Returns their ids.
    """
    if host is None:
        return [removed for each in DockerHost.objects.all() for removed in sessions_unprepare(keep=keep, host=each)]
    kept_pools = pools(host=host, default_target=keep) if kept_pools is None else kept_pools
    current = Q(pk__in=[])
    for pool in kept_pools:
        current |= pool.current()
    abandoned = Q(ready=False, created_at__lt=timezone.now() - PREPARING_GIVES_UP_AFTER)
    of_host = PreparedSession.objects.filter(host=host)
    unwanted = list(of_host.exclude(current).values_list("pk", flat=True))
    unwanted += of_host.filter(current & abandoned).values_list("pk", flat=True)
    for pool in kept_pools:
        kept = PreparedSession.objects.filter(pool.current()).exclude(pk__in=unwanted).order_by("-created_at")
        unwanted += kept.values_list("pk", flat=True)[pool.target :]
    for session_id in unwanted:
        prepared_session_remove(session_id=session_id)
    return unwanted


def prepared_session_remove(*, session_id: str) -> None:
    """Remove a prepared session and its instance (the refill makes another)."""
    prepared = PreparedSession.objects.select_related("host").filter(pk=session_id).first()
    if prepared is None:
        return
    try:
        get_backend(prepared.host).remove_orphan(session_id)
    except BackendError as exc:
        # Its row goes anyway; the reconciler removes what is left in Docker.
        logger.warning("session %s: could not remove the prepared instance: %s", session_id, exc.log_message)
    PreparedSession.objects.filter(pk=session_id).delete()
