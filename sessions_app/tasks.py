"""Celery tasks: each takes a primary key, re-fetches, and calls one service.

Each imports the services inside its body: the services enqueue these tasks,
so importing them here at the top would make an import circle.

All are safe to run twice. `acks_late` with `reject_on_worker_lost` means a
worker killed half-way does not lose the job: the broker hands it out again
and the backend adopts whatever the first attempt made.
"""

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_ready
from django.core.cache import cache
from django.db import InterfaceError, OperationalError, transaction

from playground.logcontext import set_session
from sessions_app.backends.base import TransientBackendError
from sessions_app.models import Instance

logger = logging.getLogger(__name__)

PROVISION_ATTEMPTS = 6
PROVISION_SOFT_TIME_LIMIT = 120
BROKER_CHECK_TIMEOUT = 1.0
WAIT_FOR_A_TURN = 0.5  # seconds before a job that found PLAYGROUND_MAX_PROVISIONING reached looks again


def broker_problem() -> str | None:
    """Why a job could not be queued right now (the broker is out of reach), or None."""
    from playground.celery import app

    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=0, timeout=BROKER_CHECK_TIMEOUT)
    except Exception as exc:  # whatever the transport raises, it means the same
        return str(exc) or type(exc).__name__
    return None


def enqueue_on_commit(task, *args) -> None:
    """Queue a job once the transaction commits (at once outside one).

    Should the broker fail right then, the job is not lost: its instance stays
    in the state it was put in, and the reconciler hands it out again.
    """

    def send() -> None:
        try:
            task.delay(*args)
        except Exception as exc:
            logger.warning("could not queue %s%s, the reconciler will: %s", task.name, args, exc)

    transaction.on_commit(send)


def _backoff(retries: int) -> float:
    return min(2**retries, 30)


def _tag(instance_id: int) -> None:
    """Tag this task's log lines with the instance's session."""
    session_id = Instance.objects.filter(pk=instance_id).values_list("session_id", flat=True).first()
    set_session(session_id or "-")


# A database that is restarting or out of connections: the job waits and
# tries again, rather than losing what it was recording.
DATABASE_OUTAGE = {"autoretry_for": (OperationalError, InterfaceError), "retry_backoff": 1, "retry_backoff_max": 30}


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=PROVISION_ATTEMPTS - 1,
    **DATABASE_OUTAGE,
    soft_time_limit=PROVISION_SOFT_TIME_LIMIT,
    time_limit=PROVISION_SOFT_TIME_LIMIT + 30,
)
def provision_instance(self, instance_id: int) -> None:
    from sessions_app import services

    _tag(instance_id)
    if services.provisioning_is_full(instance_id=instance_id):
        # The host is busy starting others: come back in a moment, as a new
        # job, so that the wait spends none of this job's retries (however
        # long a burst keeps the host busy).
        provision_instance.apply_async((instance_id,), countdown=WAIT_FOR_A_TURN)
        return
    try:
        services.instance_provision(instance_id=instance_id)
    except TransientBackendError as exc:
        if self.request.retries < self.max_retries:
            raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc
        services.instance_fail(
            instance_id=instance_id,
            message=f"The Docker engine did not answer after {PROVISION_ATTEMPTS} attempts.",
            reason="engine_unavailable",
            log_message=exc.log_message,
        )
    except SoftTimeLimitExceeded:
        services.instance_fail(
            instance_id=instance_id,
            message=f"The instance did not start within {PROVISION_SOFT_TIME_LIMIT} seconds.",
            reason="timeout",
        )


@shared_task(
    bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=PROVISION_ATTEMPTS - 1, **DATABASE_OUTAGE
)
def reprovision_instance(self, instance_id: int) -> None:
    from sessions_app import services

    _tag(instance_id)
    try:
        services.instance_replace(instance_id=instance_id)
    except TransientBackendError as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None, **DATABASE_OUTAGE)
def teardown_instance(self, instance_id: int) -> None:
    from sessions_app import services

    _tag(instance_id)
    try:
        services.instance_teardown(instance_id=instance_id)
    except TransientBackendError as exc:
        # A removal must eventually happen, or Docker leaks; keep trying.
        raise self.retry(exc=exc, countdown=_backoff(min(self.request.retries, 5))) from exc


@shared_task(ignore_result=True)
def reap_expired_sessions() -> None:
    from sessions_app import services

    services.sessions_reap_expired()


@shared_task(ignore_result=True)
def reconcile() -> None:
    """Each host's reconciler, on its own queue; a host that is down waits until it returns."""
    for name in _host_names(exclude_state="down"):
        # Not kept past the next run: a host whose workers are away does not pile them up.
        reconcile_host.apply_async((name,), expires=60)


@shared_task(ignore_result=True, **DATABASE_OUTAGE)
def reconcile_host(name: str) -> None:
    from sessions_app import services

    host = services.host_get(name=name)
    if host is not None:
        services.instances_reconcile(host=host)


def prepare_lock(name: str) -> str:
    return f"playground:prepare-sessions:{name}"


@shared_task(ignore_result=True)
def prepare_sessions() -> None:
    """Each host's pools of prepared sessions, refilled on its own queue."""
    for name in _host_names():
        prepare_host_sessions.apply_async((name,), expires=5)


@shared_task(bind=True, ignore_result=True)
def prepare_host_sessions(self, name: str) -> None:
    # One refill per host at a time: beat asks every 5 s, and a refill of
    # the whole pool takes longer. The lock names the worker that holds it:
    # should that worker die, the lock expires, or goes at once when the
    # worker starts again (drop_refill_lock).
    from sessions_app import services

    if not cache.add(prepare_lock(name), self.request.hostname or "-", timeout=600):
        return
    try:
        host = services.host_get(name=name)
        if host is not None:
            services.sessions_prepare(host=host)
    finally:
        cache.delete(prepare_lock(name))


@shared_task(ignore_result=True)
def check_hosts() -> None:
    from sessions_app import services

    services.hosts_check()


def _host_names(*, exclude_state: str | None = None) -> list[str]:
    from sessions_app.models import DockerHost

    hosts = DockerHost.objects.exclude(state=exclude_state) if exclude_state else DockerHost.objects.all()
    return list(hosts.values_list("name", flat=True))


# --- Routing: a host's work goes to its own queue ---------------------------------

INSTANCE_TASKS = {"sessions_app.tasks.provision_instance", "sessions_app.tasks.reprovision_instance",
                  "sessions_app.tasks.teardown_instance"}  # fmt: skip
HOST_TASKS = {"sessions_app.tasks.reconcile_host", "sessions_app.tasks.prepare_host_sessions"}


def route(name: str, args, kwargs, options, task=None, **_) -> dict | None:
    """Celery's router (CELERY_TASK_ROUTES): the work of an instance, or of a
    host, goes to the queue of the host (models.host_queue), whose workers
    run next to its engine. An instance of no host goes to the default queue."""
    from sessions_app.models import host_queue

    if name in HOST_TASKS and args:
        return {"queue": host_queue(args[0])}
    if name in INSTANCE_TASKS and args:
        host = Instance.objects.filter(pk=args[0]).values_list("host__name", flat=True).first()
        if host:
            return {"queue": host_queue(host)}
    return None


# --- At a worker's start -------------------------------------------------------------


def hosts_served(consumer) -> list[str]:
    """The names of the hosts whose queues this worker takes jobs from."""
    from sessions_app.models import HOST_QUEUE_PREFIX

    queues = consumer.app.amqp.queues.consume_from or {}
    return [queue.removeprefix(HOST_QUEUE_PREFIX) for queue in queues if queue.startswith(HOST_QUEUE_PREFIX)]


@worker_ready.connect
def reconcile_at_start(sender, **kwargs) -> None:
    # What happened while no worker ran (an engine restart, a crash) is
    # noticed at once rather than at the next scheduled run.
    for name in hosts_served(sender):
        reconcile_host.delay(name)
        drop_refill_lock(name, sender.hostname)
        prepare_host_sessions.delay(name)


def drop_refill_lock(name: str, worker: str) -> None:
    """Drop the host's refill lock if `worker` holds it: a worker starting
    again held it when it died (killed mid-refill), and no refill of that
    host would run until the lock expired, minutes later."""
    if cache.get(prepare_lock(name)) == worker:
        cache.delete(prepare_lock(name))


@worker_ready.connect
def look_at_hosts(sender, **kwargs) -> None:
    """Look at the engines of the hosts this worker serves, every few seconds, in a thread of its own."""
    from sessions_app.services.host_watch import HostWatch

    names = hosts_served(sender)
    if names:
        HostWatch(names).start()


@worker_ready.connect
def check_firewall_at_start(sender, **kwargs) -> None:
    # Said at once in the worker's log, rather than at the first learner's
    # failed instance; the worker keeps running (and checks again before
    # each instance), so that the operator can fix the host meanwhile.
    from sessions_app.firewall import FirewallMissing, firewall_ensure

    try:
        firewall_ensure()
    except FirewallMissing:
        pass  # firewall_ensure() has logged why
