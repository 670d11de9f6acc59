"""The host firewall that keeps instances off the host and every private network.

scripts/harden-host is the one place its rules are written: this module asks
it whether they are in place (`--check`) and, where this process may, runs it
to install them. The Docker backend calls firewall_ensure() before it starts
an instance and the worker once when it starts, so that no instance runs on a
host whose firewall would let it reach the platform's PostgreSQL and Redis, a
Docker API over TCP, or the networks around the host.

PLAYGROUND_FIREWALL=off skips all of it, for operators who fence the host some
other way. A worker in a container (docker/compose.yaml) sees its own network
namespace, not the host's where the rules live: PLAYGROUND_FIREWALL_NETNS
(/proc/1/ns/net, with the container in the host's pid namespace) names the
host's, and the script then runs in it through nsenter.
"""

import logging
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass

from django.conf import settings

from sessions_app.backends.base import BackendError

logger = logging.getLogger(__name__)

# The exit codes of `harden-host --check` besides 0: the rules are missing or
# out of date (running harden-host fixes that), or they cannot be checked
# from here (no rights, not the engine's network namespace, a bad setting).
MISSING = 1
UNCHECKABLE = 2

HINT = (
    "Run scripts/harden-host as root on the Docker host (compose: the firewall service), "
    "or set PLAYGROUND_FIREWALL=off if the host is fenced some other way."
)


class FirewallMissing(BackendError):
    reason = "firewall_missing"
    message = (
        "No instance can start right now: the firewall that keeps instances away from the "
        "platform's own servers is not in place on the Docker host. The operator has been told."
    )


@dataclass(frozen=True)
class _Verdict:
    reason: str | None
    checked_at: float


# One answer per configuration, shared by the threads of this process; the
# lock makes a burst of instances wait for one check rather than run twenty.
_verdicts: dict[tuple, _Verdict] = {}
_lock = threading.Lock()


def firewall_check(engine_url: str | None = None) -> str | None:
    """None when the platform's chains, their jumps and the current rule set are in place; else why not.

    A rule set of another version, or of other settings (PLAYGROUND_EGRESS_ALLOW,
    PLAYGROUND_HOST_ALLOW, PLAYGROUND_REGISTRY_MIRROR, the host's DNS servers),
    counts as missing.
    """
    return _remote_engine(engine_url or settings.DOCKER_HOST) or _check()[1]


def firewall_ensure(engine_url: str | None = None) -> None:
    """Return when the host firewall is in place, installing it first where this process can.

    Raises FirewallMissing when it is not in place and cannot be installed
    from here. The answer is kept for PLAYGROUND_FIREWALL_CHECK_SECONDS;
    PLAYGROUND_FIREWALL=off makes this a no-op.
    """
    if settings.PLAYGROUND_FIREWALL == "off":
        return
    engine_url = engine_url or settings.DOCKER_HOST
    key = (engine_url, settings.PLAYGROUND_FIREWALL_NETNS, *_script_settings().values())
    with _lock:
        verdict = _verdicts.get(key)
        if verdict is None or time.monotonic() - verdict.checked_at >= settings.PLAYGROUND_FIREWALL_CHECK_SECONDS:
            verdict = _verdicts[key] = _Verdict(_check_or_install(engine_url), time.monotonic())
            if verdict.reason:
                logger.error("No instance will start: the host firewall is not in place: %s. %s", verdict.reason, HINT)
    if verdict.reason:
        raise FirewallMissing(log_message=f"the host firewall is not in place: {verdict.reason}. {HINT}")


def firewall_forget() -> None:
    """Drop the kept answers: the next firewall_ensure() checks again."""
    with _lock:
        _verdicts.clear()


def _check_or_install(engine_url: str) -> str | None:
    if remote := _remote_engine(engine_url):
        return remote
    code, reason = _check()
    if code != MISSING:
        return reason
    cannot = _cannot_install()
    if cannot:
        return f"{reason}; this worker cannot install it: {cannot}"
    code, output = _harden_host()
    if code != 0:
        return f"{reason}; installing it failed: {output}"
    logger.warning("The host firewall was not in place (%s); installed it.", reason)
    return _check()[1]


def _remote_engine(engine_url: str) -> str | None:
    # A host's worker runs next to it (sessions_app.models.DockerHost) and
    # reaches it at its socket (PLAYGROUND_ENGINE_URLS, when others use TLS or ssh).
    if engine_url.startswith("unix://"):
        return None
    return (
        f"the Docker engine is remote ({engine_url}), so this worker cannot see the "
        "firewall of the host that runs the instances"
    )


def _check() -> tuple[int, str | None]:
    code, output = _harden_host("--check")
    if code == 0:
        return 0, None
    return code, output or f"harden-host --check failed with exit code {code}"


def _cannot_install() -> str | None:
    """Why this process cannot run harden-host, or None if it can."""
    if os.geteuid() != 0:
        return "it does not run as root"
    needed = ["iptables", "nsenter"] if settings.PLAYGROUND_FIREWALL_NETNS else ["iptables"]
    missing = [tool for tool in needed if shutil.which(tool) is None]
    return f"{' and '.join(missing)} not installed" if missing else None


def _script_settings() -> dict[str, str]:
    return {
        "PLAYGROUND_EGRESS_ALLOW": settings.PLAYGROUND_EGRESS_ALLOW,
        "PLAYGROUND_HOST_ALLOW": settings.PLAYGROUND_HOST_ALLOW,
        # The mirror is opened to instances like an EGRESS_ALLOW entry.
        "PLAYGROUND_REGISTRY_MIRROR": settings.PLAYGROUND_REGISTRY_MIRROR,
    }


def _harden_host(*args: str) -> tuple[int, str]:
    """Run scripts/harden-host (in PLAYGROUND_FIREWALL_NETNS, if set); return its exit code and output."""
    env = {**os.environ, **_script_settings()}
    netns = settings.PLAYGROUND_FIREWALL_NETNS
    # The rules let instances reach the host's DNS servers, which the script
    # reads from the host's resolv.conf: seen at /proc/<pid>/root when the
    # namespace is a process's.
    if netns and (match := re.fullmatch(r"(/proc/\d+)/ns/net", netns)):
        env.setdefault("PLAYGROUND_HOST_ROOT", f"{match[1]}/root")
    return run_in_host_netns(["bash", str(settings.BASE_DIR / "scripts" / "harden-host"), *args], env=env)


def harden_host(*args: str) -> tuple[int, str]:
    """scripts/harden-host with these arguments, as the worker runs it: its exit code and output."""
    return _harden_host(*args)


def run_in_host_netns(
    command: list[str], *, env: dict[str, str] | None = None, input: str | None = None
) -> tuple[int, str]:
    """Run a command in the network namespace whose firewall counts (PLAYGROUND_FIREWALL_NETNS, if set).

    Returns its exit code and output; UNCHECKABLE when it cannot run at all.
    """
    netns = settings.PLAYGROUND_FIREWALL_NETNS
    if netns:
        try:
            open(netns).close()  # nsenter would say so with exit code 1, which means "missing"
        except OSError as exc:
            return UNCHECKABLE, f"cannot enter the network namespace {netns}: {exc.strerror}"
        command = ["nsenter", f"--net={netns}", *command]
    if input is None:
        return _run(command, env=env or dict(os.environ))
    return _run(command, env=env or dict(os.environ), input=input)


def _run(command: list[str], *, env: dict[str, str], input: str | None = None) -> tuple[int, str]:
    try:
        done = subprocess.run(command, env=env, input=input, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return UNCHECKABLE, f"{command[0]} could not run: {exc}"
    output = " ".join(part.strip() for part in (done.stdout, done.stderr) if part.strip())
    return done.returncode, output
