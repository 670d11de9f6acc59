"""The registry mirror on the real engine: images seeded from the host's engine (or a tar) are
pulled in an instance, as its learner, through the mirror, and run there.

A learner cannot push into it. The mirror is the one scripts/run and scripts/test start (scripts/lib.sh
ensure_registry), or the one PLAYGROUND_REGISTRY_MIRROR names. The tags are
this run's own, so that nothing but the mirror can answer their pull, even
where Docker Hub is in reach. The worker puts the host firewall in place with
the mirror opened to instances, as it does in production.
"""

import contextlib
import os
import subprocess
import uuid

import docker
import pytest
from django.core.management import call_command

from sessions_app.models import Playground, PreparedSession
from tests.integration.test_firewall_on_docker import bridge_of, dropped
from tests.integration.test_sessions_on_docker import containers_of, wait_until_running
from tests.support.api import api
from tests.support.learner import close_session, open_session
from tests.support.stack import ROOT, PrivateRedis, WebServer, Worker, wait_for
from tests.support.tiny_image import INDEX_HTML, tiny_image_tar

pytestmark = pytest.mark.integration

REGISTRY_SETTINGS = ("PLAYGROUND_REGISTRY_MIRROR", "PLAYGROUND_REGISTRY_STORE", "PLAYGROUND_REGISTRY_DIR")


@pytest.fixture(scope="module")
def registry_env() -> dict[str, str]:
    """The settings of a running mirror: the environment's, or those of the one ensure_registry starts."""
    if os.environ.get("PLAYGROUND_REGISTRY_MIRROR"):
        return {name: os.environ[name] for name in REGISTRY_SETTINGS if name in os.environ}
    done = subprocess.run(
        ["bash", "-c", "source scripts/lib.sh && ensure_registry && env"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    found = dict(line.split("=", 1) for line in done.stdout.splitlines() if line.startswith("PLAYGROUND_REGISTRY_"))
    return {name: found[name] for name in REGISTRY_SETTINGS}


@contextlib.contextmanager
def platform_with_mirror(platform, worker_env, registry_env, prepared: int = 0):
    """A worker and a Daphne whose instances pull through the mirror (a broker of their own)."""
    for name, value in registry_env.items():
        setattr(platform, name, value)
    platform.PLAYGROUND_REGISTRY_API = f"http://{registry_env['PLAYGROUND_REGISTRY_STORE']}"
    redis_server = PrivateRedis().start()
    env = {**worker_env, **registry_env, "REDIS_URL": redis_server.url, "PLAYGROUND_PREPARED_SESSIONS": str(prepared)}
    worker = Worker(env, f"mirror-{uuid.uuid4().hex[:6]}", pool="threads").start()
    web = WebServer(env, name="daphne-mirror").start()
    try:
        yield web
    finally:
        web.stop()
        worker.stop()
        redis_server.stop()


@pytest.fixture
def mirrored_platform(platform, worker_env, registry_env, docker_client):
    with platform_with_mirror(platform, worker_env, registry_env) as web:
        yield web


@pytest.fixture
def tiny_busybox(docker_client):
    """The tiny busybox image in the host's engine, as busybox:<a tag of this test's own>."""
    tag = f"test-{uuid.uuid4().hex[:10]}"
    done = subprocess.run(
        ["docker", "import", "--change", "WORKDIR /www", "--change", 'CMD ["sh"]', "-", f"busybox:{tag}"],
        input=tiny_image_tar(),
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    yield tag
    for name in (f"busybox:{tag}", f"busybox:{tag}-tar"):
        try:
            docker_client.images.remove(name, noprune=False)
        except docker.errors.ImageNotFound:
            pass


def run(web, session_id: str, command: str, timeout: int = 120) -> dict:
    """Run a shell command in the instance as its learner, through the exec API."""
    ran = api.post(
        f"{web.url}/sessions/{session_id}/exec?wait=1",
        json={"cmd": ["sh", "-c", command], "timeout": timeout},
        timeout=timeout + 30,
    )
    assert ran.status_code == 200, ran.text
    return ran.json()


def test_an_image_seeded_into_the_mirror_is_pulled_in_an_instance_and_runs(
    mirrored_platform, registry_env, tiny_busybox, docker_client, tmp_path
):
    web = mirrored_platform
    mirror = registry_env["PLAYGROUND_REGISTRY_MIRROR"]
    call_command("seed_images", f"busybox:{tiny_busybox}")
    # And one from a tar (docker save), no longer in the host's engine when seeded.
    docker_client.images.get(f"busybox:{tiny_busybox}").tag("busybox", f"{tiny_busybox}-tar")
    tar = tmp_path / "images.tar"
    subprocess.run(["docker", "save", "-o", str(tar), f"busybox:{tiny_busybox}-tar"], check=True, timeout=120)
    docker_client.images.remove(f"busybox:{tiny_busybox}-tar")
    call_command("seed_images", "--from-tar", str(tar))

    session_id = open_session(web)
    try:
        info = run(web, session_id, "docker info --format '{{json .RegistryConfig.Mirrors}}'")
        assert info["stdout"].strip() == f'["http://{mirror}/"]', info

        pulled = run(web, session_id, f"docker pull busybox:{tiny_busybox} && docker pull busybox:{tiny_busybox}-tar")
        assert pulled["exit_code"] == 0, pulled
        ran = run(web, session_id, f"docker run --rm busybox:{tiny_busybox} cat /www/index.html")
        assert ran["exit_code"] == 0, ran
        assert ran["stdout"].encode() == INDEX_HTML

        # Only the mirror could have answered: Docker Hub has no such tag.
        whoami = run(web, session_id, "id -u")["stdout"].strip()
        assert whoami == "1000"
        missing = run(web, session_id, f"docker pull busybox:{tiny_busybox}-never-seeded")
        assert missing["exit_code"] != 0

        # A learner cannot put an image into the mirror for the others to pull.
        poison = f"{mirror}/library/busybox:{tiny_busybox}-poisoned"
        pushed = run(web, session_id, f"docker tag busybox:{tiny_busybox} {poison} && docker push {poison}")
        assert pushed["exit_code"] != 0, pushed
        assert f"{tiny_busybox}-poisoned" not in api.get(f"http://{mirror}/v2/library/busybox/tags/list").text
    finally:
        close_session(web, session_id)


def test_the_admin_lists_what_was_seeded_with_its_size(mirrored_platform, tiny_busybox, admin_client):
    call_command("seed_images", f"busybox:{tiny_busybox}")

    page = admin_client.get("/admin/mirror/")

    assert page.status_code == 200
    [seeded] = [image for image in page.context["images"] if image.name == f"library/busybox:{tiny_busybox}"]
    assert 1_000_000 < seeded.size < 2_000_000  # the static busybox, compressed
    assert seeded.pushed_at is not None


def test_a_preloaded_image_is_in_the_instance_the_moment_it_is_claimed(
    platform, worker_env, registry_env, tiny_busybox, docker_client
):
    call_command("seed_images", f"busybox:{tiny_busybox}")
    Playground.objects.filter(pk="default").update(preload_images=[f"busybox:{tiny_busybox}"])

    with platform_with_mirror(platform, worker_env, registry_env, prepared=2) as web:
        wait_for(lambda: PreparedSession.objects.filter(ready=True).count() == 2, timeout=180, what="the pool")
        prepared = set(PreparedSession.objects.values_list("pk", flat=True))
        session_id = open_session(web)
        try:
            assert session_id in prepared  # handed out from the pool, not started for it
            # No pull, no mirror: it is there already (and the tag is this run's own).
            there = run(web, session_id, f"docker image inspect --format '{{{{.Id}}}}' busybox:{tiny_busybox}")
            ran = run(web, session_id, f"docker run --rm --pull never busybox:{tiny_busybox} cat /www/index.html")
        finally:
            close_session(web, session_id)

    assert there["exit_code"] == 0, there
    assert there["stdout"].startswith("sha256:")
    assert ran["stdout"].encode() == INDEX_HTML


def test_a_mirror_only_instance_pulls_through_the_mirror_and_reaches_nothing_else(
    mirrored_platform, tiny_busybox, docker_client
):
    web = mirrored_platform
    call_command("seed_images", f"busybox:{tiny_busybox}")
    playground = Playground.objects.create(pk=f"mirror-only-{uuid.uuid4().hex[:6]}", egress="mirror-only")
    opened = api.post(f"{web.url}/sessions", json={"playground_id": playground.pk}, timeout=10)
    assert opened.status_code == 201, opened.text
    session_id = opened.json()["session_id"]
    try:
        wait_until_running(web, session_id)
        [container] = containers_of(docker_client, session_id)
        chain = "PLAYGROUND-E-" + bridge_of(docker_client, container).removeprefix("br-")
        before = dropped(chain, "0.0.0.0/0")

        pulled = run(web, session_id, f"docker pull busybox:{tiny_busybox}")
        elsewhere = run(web, session_id, "timeout 5 bash -c 'echo >/dev/tcp/192.0.2.1/80'")  # TEST-NET-1

        assert pulled["exit_code"] == 0, pulled
        assert elsewhere["exit_code"] != 0, elsewhere
        assert dropped(chain, "0.0.0.0/0") > before
    finally:
        close_session(web, session_id)
