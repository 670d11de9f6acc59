"""manage.py mirror_gc: oldest first down to the cap, shared layers counted once (a fake registry answers)."""

import os
import subprocess
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from sessions_app import mirror
from tests.support.fake_registry import FakeRegistry

MB = 2**20


@pytest.fixture
def registry(settings, tmp_path):
    fake = FakeRegistry()
    settings.PLAYGROUND_REGISTRY_API = fake.url
    # No store.yml there: garbage-collect is left to where the registry runs, and says so.
    settings.PLAYGROUND_REGISTRY_DIR = tmp_path
    settings.PLAYGROUND_REGISTRY_CAP_MB = 0
    yield fake
    fake.close()


def pushed(tmp_path, name: str, at: int) -> None:
    """Date the tag's link in the registry's storage, as a push at `at` would have."""
    repository, tag = name.rsplit(":", 1)
    link = tmp_path / "storage/docker/registry/v2/repositories" / repository / "_manifests/tags" / tag / "current/link"
    link.parent.mkdir(parents=True)
    link.write_text("sha256:x")
    os.utime(link, (at, at))


def gc(*arguments: str) -> str:
    out = StringIO()
    call_command("mirror_gc", *arguments, stdout=out)
    return out.getvalue()


def test_it_deletes_the_oldest_images_until_the_mirror_fits_under_the_cap(registry, tmp_path, settings):
    old = registry.add_image("library/old:1", 4 * MB)
    middle = registry.add_image("library/middle:1", 3 * MB)
    registry.add_image("library/new:1", 2 * MB)
    for name, at in [("library/old:1", 1000), ("library/middle:1", 2000), ("library/new:1", 3000)]:
        pushed(tmp_path, name, at)
    settings.PLAYGROUND_REGISTRY_CAP_MB = 4

    out = gc()

    assert registry.deleted == [f"library/old@{old}", f"library/middle@{middle}"]
    assert "run `registry garbage-collect CONFIG` where the registry runs" in out
    assert "Deleted 2 image(s); the mirror holds 2.0 MiB (4 MiB)" in out


def test_it_frees_nothing_by_deleting_an_image_whose_layers_another_holds_and_goes_on(registry, tmp_path):
    shared = registry.add_image("library/a:1", 5 * MB, config=10)
    registry.add_image("library/b:1", 5 * MB, config=20)  # the same layer
    registry.add_image("library/c:1", 1 * MB, config=30)
    for name, at in [("library/a:1", 1000), ("library/b:1", 2000), ("library/c:1", 3000)]:
        pushed(tmp_path, name, at)

    gc("--cap-mb", "2")

    assert registry.deleted[0] == f"library/a@{shared}"
    assert [entry.split("@")[0] for entry in registry.deleted] == ["library/a", "library/b"]


def test_it_deletes_nothing_under_the_cap_or_without_one(registry):
    registry.add_image("library/busybox:latest", 1 * MB)

    assert "Deleted 0 image(s); the mirror holds 1.0 MiB (no cap)" in gc()  # PLAYGROUND_REGISTRY_CAP_MB = 0
    assert "Deleted 0 image(s); the mirror holds 1.0 MiB (2 MiB)" in gc("--cap-mb", "2")
    assert registry.deleted == []


def test_it_refuses_a_negative_cap(registry):
    with pytest.raises(CommandError, match="--cap-mb must be 0"):
        gc("--cap-mb", "-1")


def test_it_says_when_the_mirror_does_not_answer(registry):
    registry.close()

    with pytest.raises(CommandError, match="does not answer"):
        gc("--cap-mb", "1")


def test_it_runs_the_registrys_garbage_collect_on_the_stores_configuration(registry, tmp_path, monkeypatch):
    (tmp_path / "store.yml").write_text("version: 0.1\n")
    ran = []

    def run(command, **kwargs):
        ran.append(command)
        return subprocess.CompletedProcess(command, 0, stdout="blob eligible for deletion: sha256:a\n", stderr="")

    monkeypatch.setattr(mirror.subprocess, "run", run)

    assert "garbage-collect freed 1 blob(s)" in gc()
    # Not --delete-untagged, which would take the platforms of a tagged list too.
    assert ran == [["docker-registry", "garbage-collect", str(tmp_path / "store.yml")]]
