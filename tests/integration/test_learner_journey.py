"""What a learner does in an instance works, typed at its browser terminal.

The welcome text promises a real Docker host: "run containers, build images,
try docker compose". Each promise is tried here as a learner types it, in a
rootless instance (the default), with today's tools: Docker 26, `docker
compose` (and the old `docker-compose` name), BuildKit and buildx.
"""

import re
import uuid

import pytest
import requests

from tests.support.api import api
from tests.support.learner import Learner, close_session, give_tiny_image, open_session
from tests.support.stack import wait_for
from tests.support.tiny_image import INDEX_HTML

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


@pytest.fixture
async def learner(platform, web, docker_client):
    session_id = open_session(web)
    give_tiny_image(docker_client, session_id)
    learner = await Learner.at(web, session_id)
    learner.session_id = session_id
    yield learner
    await learner.close()
    close_session(web, session_id)


async def test_it_welcomes_the_learner_with_what_the_instance_offers(learner):
    await learner.terminal.read_until(b"$ ")

    assert b"Welcome to the Docker playground" in learner.terminal.output
    versions = await learner.ok("docker version --format '{{.Server.Version}}'; docker compose version --short")
    server, compose = versions.split()
    assert server.startswith("26.") and compose.startswith("2.")
    assert "rootless" in await learner.ok("docker info --format '{{.SecurityOptions}}'")


async def test_it_runs_containers_with_a_user_network_and_volumes(learner):
    await learner.ok("docker run --rm tiny:latest echo hello from a nested container")
    await learner.ok("docker network create mynet && docker volume create myvol")
    await learner.ok("docker run -d --name server --network mynet -v myvol:/data tiny:latest httpd -f -p 80")
    # The embedded DNS of a user network finds the server by name.
    page = await learner.ok("docker run --rm --network mynet tiny:latest wget -qO- http://server/")
    await learner.ok("docker run --rm -v myvol:/data tiny:latest sh -c 'echo kept >/data/file'")
    kept = await learner.ok("docker run --rm -v myvol:/data tiny:latest cat /data/file")

    assert INDEX_HTML.decode() in page
    assert "kept" in kept


async def test_it_publishes_a_port_that_answers_from_the_host(learner, web):
    body = api.get(f"{web.url}/sessions/{learner.session_id}", timeout=10).json()
    address = body["instance"]["ip_address"]

    await learner.ok("docker run -d -p 8080:80 tiny:latest httpd -f -p 80")

    def answered():
        try:
            return requests.get(f"http://{address}:8080/", timeout=2).content
        except requests.RequestException:
            return None

    assert wait_for(answered, timeout=15, what="the published port") == INDEX_HTML


def run_step_cached(build_output: str) -> bool:
    """Whether BuildKit's plain progress shows the RUN step taken from its cache."""
    step = re.search(r"^#(\d+) \[[^\]]*\] RUN --mount", build_output, re.MULTILINE)
    assert step, build_output
    return re.search(rf"^#{step.group(1)} CACHED$", build_output, re.MULTILINE) is not None


async def test_it_builds_images_with_buildkit_and_its_cache(learner):
    await learner.ok("mkdir -p ~/cached && cd ~/cached")
    await learner.write_file(
        "Dockerfile",
        "FROM tiny:latest\n"
        "RUN --mount=type=cache,target=/cache sh -c 'echo run >>/cache/runs; wc -l </cache/runs >/runs'\n"
        "CMD cat /runs\n",
    )

    first = await learner.ok("docker build --progress=plain -t cached:1 . 2>&1", timeout=120)
    second = await learner.ok("docker build --progress=plain -t cached:2 . 2>&1", timeout=120)
    await learner.ok("sed -i 's/echo run/echo run again/' Dockerfile")
    third = await learner.ok("docker buildx build --progress=plain --load -t cached:3 . 2>&1", timeout=120)

    assert run_step_cached(first) is False
    assert run_step_cached(second) is True
    # The third build runs the step again, and its cache mount kept what the first put there.
    assert run_step_cached(third) is False
    assert (await learner.ok("docker run --rm cached:3")).strip() == "2"


async def test_it_runs_a_compose_project_and_takes_it_down(learner):
    project = f"app{uuid.uuid4().hex[:6]}"
    await learner.ok(f"mkdir -p ~/{project}/web && cd ~/{project}")
    await learner.write_file("web/Dockerfile", "FROM tiny:latest\nRUN echo built by compose >/www/built.txt\n")
    await learner.write_file(
        "compose.yaml",
        "services:\n"
        "  web:\n"
        "    build: ./web\n"
        "    command: httpd -f -p 80 -h /www\n"
        "  client:\n"
        "    image: tiny:latest\n"
        "    command: sh -c 'sleep 2; wget -qO- http://web/built.txt; sleep 600'\n",
    )

    await learner.ok("docker compose up -d 2>&1", timeout=120)
    running = await learner.ok("docker compose ps --format '{{.Service}} {{.State}}'")
    logs = await learner.ok("sleep 3; docker compose logs client")
    legacy = await learner.ok("docker-compose ps --services")
    await learner.ok("docker compose down 2>&1", timeout=60)
    left = await learner.ok(f"docker ps -a --filter label=com.docker.compose.project={project} -q | wc -l")

    assert sorted(line.strip() for line in running.splitlines() if line.strip()) == ["client running", "web running"]
    assert "built by compose" in logs
    assert sorted(legacy.split()) == ["client", "web"]
    assert left.strip() == "0"
