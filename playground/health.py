"""Liveness, readiness and metrics endpoints for load balancers and Prometheus.

`/healthz` says only that the process answers. `/readyz` checks everything a
request may need (the database, the Celery broker, an active Docker host whose
engine answers and has the DIND image), names what is down, and reports each
Docker host. `/metrics` is the Prometheus exposition.
"""

import asyncio
import logging
import os
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor

import docker
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from playground.celery import app as celery_app
from sessions_app.backends import engine_of
from sessions_app.backends.docker import docker_client
from sessions_app.errors import error_body
from sessions_app.models import DockerHost
from sessions_app.services.hosts import hosts_counted

logger = logging.getLogger(__name__)

CHECK_TIMEOUT = 2.0  # seconds each readiness check may take
MAX_ERROR_LENGTH = 200
SAFE_METHODS = ("GET", "HEAD")


# --- Readiness checks -----------------------------------------------------------
# Each check takes a timeout in seconds and raises on failure; the exception's
# text is what /readyz reports. Tests replace entries of CHECKS.


def check_database(timeout: float) -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        # Checks run in a worker thread, and Django's connections belong to
        # their thread: one left open here would never be reused or closed.
        connection.close()


def check_broker(timeout: float) -> None:
    # The URL is read at each check (not from the Celery app's configuration,
    # fixed at start-up) so that tests can point the check at another broker.
    with celery_app.connection_for_write(
        settings.CELERY_BROKER_URL, connect_timeout=timeout, transport_options={"socket_timeout": timeout}
    ) as broker:
        # No retries: an answer that waits for a reconnection is no answer.
        broker.ensure_connection(max_retries=0, timeout=timeout)
        if broker.transport.driver_type == "filesystem":
            # Connecting to the filesystem broker touches nothing; what it
            # needs is a queue folder it can write to.
            folder = broker.transport_options.get("data_folder_out", "")
            if not os.access(folder, os.W_OK):
                raise OSError(f"the broker folder {folder} is missing or not writable")


CHECKS: dict[str, Callable[[float], None]] = {
    "database": check_database,
    "broker": check_broker,
}


# --- The Docker hosts -------------------------------------------------------------
# Each host's engine is asked, from this process (which attaches terminals
# to it), whether it answers and has the DIND image. The platform is ready
# while one active host can take a session.


def look_at_host(host: DockerHost, timeout: float) -> None:
    """Raise unless the host's engine answers and has the DIND image."""
    client = docker_client(timeout=timeout, engine=engine_of(host))
    try:
        client.ping()
        try:
            client.images.get(settings.PLAYGROUND_DIND_IMAGE)
        except docker.errors.ImageNotFound:
            raise ImageMissing(
                f"the image {settings.PLAYGROUND_DIND_IMAGE} is missing (manage.py build_dind_image builds it)"
            ) from None
    finally:
        client.close()


class ImageMissing(LookupError):
    pass


def host_report(timeout: float) -> dict[str, dict]:
    """Each host: its state, sessions and capacity, and what its engine answered now."""
    try:
        hosts = list(hosts_counted().order_by("name"))
    finally:
        connection.close()  # see check_database
    looks = {}
    with ThreadPoolExecutor(max_workers=max(1, len(hosts)), thread_name_prefix="readyz-host") as pool:
        futures = {host.name: pool.submit(look_at_host, host, timeout) for host in hosts}
        for name, future in futures.items():
            try:
                future.result(timeout=timeout)
                looks[name] = "ok"
            except TimeoutError:
                looks[name] = f"no answer within {timeout:g} s"
            except ImageMissing as exc:
                looks[name] = str(exc)
            except Exception as exc:
                looks[name] = describe_error(exc)
    return {
        host.name: {"state": host.state, "engine": looks[host.name], "sessions": host.used, "capacity": host.capacity}
        for host in hosts
    }


def hosts_verdict(report: dict[str, dict]) -> dict[str, str]:
    """The checks "docker" (an active host's engine answers) and "dind_image" (and has the image)."""
    active = {name: host["engine"] for name, host in report.items() if host["state"] == "active"}
    if not active:
        none = "no Docker host is active (sessions_app.DockerHost, in the admin)"
        return {"docker": none, "dind_image": none}
    answering = {name: look for name, look in active.items() if look == "ok" or look.startswith("the image ")}
    if not answering:
        down = "; ".join(f"{name}: {look}" for name, look in active.items())
        return {"docker": f"no active Docker host answers ({down})"[:MAX_ERROR_LENGTH], "dind_image": "unknown"}
    if "ok" not in answering.values():
        return {"docker": "ok", "dind_image": next(iter(answering.values()))}
    return {"docker": "ok", "dind_image": "ok"}


def describe_error(exc: BaseException) -> str:
    """The first line of an exception's text, short enough for a status page."""
    lines = str(exc).strip().splitlines()
    text = lines[0].strip() if lines else type(exc).__name__
    return text if len(text) <= MAX_ERROR_LENGTH else text[: MAX_ERROR_LENGTH - 1] + "…"


async def run_check(name: str, check: Callable[[float], None], timeout: float, executor: Executor) -> str:
    """Run one blocking check in a thread; "ok" or a short error, never an exception."""
    try:
        await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(executor, check, timeout), timeout)
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except Exception as exc:
        logger.warning("readiness check %s failed: %s", name, exc)
        return describe_error(exc)
    return "ok"


# --- Views ---------------------------------------------------------------------
# The probes are async views: under Daphne, sync views share one thread, and a
# probe must neither wait behind a slow request nor hold the others up. All
# are exempt from CSRF so that a wrong method gets its 405, not a 403.


def method_not_allowed(request: HttpRequest) -> JsonResponse:
    response = JsonResponse(
        error_body("method_not_allowed", f"Method {request.method} is not allowed here."), status=405
    )
    response["Allow"] = ", ".join(SAFE_METHODS)
    return response


@csrf_exempt
async def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive. No I/O: a slow database must not get the web process restarted."""
    if request.method not in SAFE_METHODS:
        return method_not_allowed(request)
    return JsonResponse({"status": "ok"})


@csrf_exempt
async def readyz(request: HttpRequest) -> JsonResponse:
    """200 when every component answers, else 503 naming the failing ones."""
    if request.method not in SAFE_METHODS:
        return method_not_allowed(request)
    checks = dict(CHECKS)
    # Threads of their own, not the event loop's default executor: a check
    # that hangs past the deadline is left to end on its client's timeout,
    # and neither this answer nor the loop's shutdown waits for it.
    executor = ThreadPoolExecutor(max_workers=len(checks) + 1, thread_name_prefix="readyz")
    try:
        hosts_looked = asyncio.get_running_loop().run_in_executor(executor, host_report, CHECK_TIMEOUT)
        results = await asyncio.gather(
            *(run_check(name, check, CHECK_TIMEOUT, executor) for name, check in checks.items())
        )
        try:
            # Each host is asked within CHECK_TIMEOUT; reading the hosts first takes the database.
            hosts = await asyncio.wait_for(hosts_looked, 2 * CHECK_TIMEOUT)
        except Exception as exc:
            hosts, failure = {}, "no answer" if isinstance(exc, TimeoutError) else describe_error(exc)
            outcome_of_hosts = {"docker": f"the Docker hosts could not be read: {failure}", "dind_image": "unknown"}
        else:
            outcome_of_hosts = hosts_verdict(hosts)
    finally:
        executor.shutdown(wait=False)
    outcome = dict(zip(checks, results, strict=True)) | outcome_of_hosts
    ready = all(result == "ok" for result in outcome.values())
    return JsonResponse(
        {"status": "ready" if ready else "unavailable", "checks": outcome, "hosts": hosts},
        status=200 if ready else 503,
    )


@csrf_exempt
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics: sessions and provisioning from the database, terminals of this process."""
    if request.method not in SAFE_METHODS:
        return method_not_allowed(request)
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
