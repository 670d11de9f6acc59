"""What the Docker backend asks the engine for, without an engine."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from sessions_app.backends.docker import DockerBackend, resource_names
from sessions_app.models import Instance, Playground, Session

pytestmark = pytest.mark.django_db


@pytest.fixture
def instance():
    Playground.objects.filter(pk="default").update(memory_limit_mb=512, pids_limit=300, cpu_limit="0.5")
    session = Session.objects.create(playground_id="default", expires_at=timezone.now() + timedelta(hours=1))
    return Instance.objects.create(session=session, image="playground-dind:latest")


def options(instance, **kwargs):
    backend = DockerBackend()
    network = SimpleNamespace(name=resource_names(instance.session_id)["network"], id="f00dfeed")
    return backend.container_options(instance, resource_names(instance.session_id), network)


def test_it_applies_the_playgrounds_limits(instance):
    made = options(instance)

    assert made["name"] == f"playground-{instance.session_id}"
    assert made["hostname"] == "node1"
    assert made["mem_limit"] == made["memswap_limit"] == "512m"
    assert made["pids_limit"] == 300
    assert made["nano_cpus"] == 500_000_000
    assert made["network"] == "f00dfeed"  # by id, never ambiguous
    assert made["volumes"] == {f"playground-{instance.session_id}-docker": {"bind": "/var/lib/docker", "mode": "rw"}}
    assert made["labels"]["org.playground.session"] == instance.session_id
    assert made["environment"]["SESSION_ID"] == instance.session_id
    assert made["restart_policy"] == {"Name": "unless-stopped"}


def test_it_keeps_no_log_of_the_terminal_by_default(instance):
    assert options(instance)["log_config"]["Type"] == "none"


def test_it_rotates_the_log_when_a_logging_driver_is_chosen(instance, settings):
    settings.PLAYGROUND_INSTANCE_LOG_DRIVER = "json-file"

    log = options(instance)["log_config"]

    assert log["Type"] == "json-file"
    assert log["Config"] == {"max-size": "1m", "max-file": "2"}


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        ("privileged", {"privileged": True}),
        (
            "capabilities",
            {
                "cap_add": ["ALL"],
                "cap_drop": ["SYS_RESOURCE"],
                "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
            },
        ),
    ],
)
def test_it_grants_the_configured_security_profile(instance, settings, profile, expected):
    settings.PLAYGROUND_SECURITY_PROFILE = profile

    made = options(instance)

    assert {key: made[key] for key in expected} == expected
    assert ("privileged" in made) == (profile == "privileged")


def test_it_runs_instances_under_another_runtime_when_configured(instance, settings):
    settings.PLAYGROUND_SECURITY_PROFILE = "runtime"
    settings.PLAYGROUND_DOCKER_RUNTIME = "sysbox-runc"

    made = options(instance)

    assert made["runtime"] == "sysbox-runc"
    assert "privileged" not in made and "cap_add" not in made
