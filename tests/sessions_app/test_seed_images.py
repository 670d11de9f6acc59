"""manage.py seed_images: which names it takes, and what it refuses before anything is pushed."""

import pytest
from django.core.management import CommandError, call_command

from sessions_app import mirror
from sessions_app.mirror import MirrorError, hub_name


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("busybox", ("library/busybox", "latest")),
        ("busybox:1.36", ("library/busybox", "1.36")),
        ("team/tool:v1", ("team/tool", "v1")),
        ("docker.io/library/nginx:1.27", ("library/nginx", "1.27")),
        ("docker.io/nginx", ("library/nginx", "latest")),
    ],
)
def test_it_seeds_an_image_under_the_name_docker_hub_gives_it(reference, expected):
    assert hub_name(reference) == expected


@pytest.mark.parametrize(
    ("reference", "why"),
    [
        ("ghcr.io/team/tool:v1", "Docker Hub's images only"),
        ("localhost:5000/tool", "Docker Hub's images only"),
        ("busybox@sha256:" + "0" * 64, "by tag, not by digest"),
        ("Busybox", "not an image name"),
        ("busybox:-bad", "not an image name"),
    ],
)
def test_it_refuses_what_a_mirror_cannot_serve(reference, why):
    with pytest.raises(MirrorError) as caught:
        hub_name(reference)

    assert why in caught.value.message


@pytest.fixture
def no_engine(monkeypatch):
    """Fail the test if the command reaches for the Docker engine."""

    def refuse(**kwargs):
        raise AssertionError("the engine was used")

    monkeypatch.setattr(mirror, "docker_client", refuse)


@pytest.mark.parametrize("arguments", [[], ["busybox", "--from-tar", "images.tar"]])
def test_it_wants_images_or_a_tar(arguments, no_engine):
    with pytest.raises(CommandError, match="name the images to seed, or give --from-tar FILE"):
        call_command("seed_images", *arguments)


def test_it_checks_every_name_before_it_pushes_any(no_engine):
    with pytest.raises(CommandError, match="ghcr.io/team/tool: the mirror serves Docker Hub's images only"):
        call_command("seed_images", "busybox", "ghcr.io/team/tool")


def test_it_says_which_image_the_engine_lacks(monkeypatch):
    import docker

    class Images:
        def get(self, reference):
            raise docker.errors.ImageNotFound(reference)

    class Client:
        images = Images()

        def close(self):
            pass

    monkeypatch.setattr(mirror, "docker_client", lambda **kwargs: Client())

    with pytest.raises(CommandError, match="nothere:1: the host's Docker engine has no such image"):
        call_command("seed_images", "nothere:1")


def test_it_says_when_the_tar_cannot_be_read(tmp_path, monkeypatch):
    monkeypatch.setattr(mirror, "docker_client", lambda **kwargs: type("Client", (), {"close": lambda self: None})())

    with pytest.raises(CommandError, match="No such file or directory"):
        call_command("seed_images", "--from-tar", str(tmp_path / "missing.tar"))
