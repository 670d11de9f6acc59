"""GET /sessions/{id}/files: a file of the instance streamed, or a directory as a tar."""

import io
import tarfile

import pytest
from rest_framework.test import APIClient

from sessions_app.backends.fake import FakeNode

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume")]


def files_of(fake_engine, session_id: str):
    return fake_engine.containers[f"playground-{session_id}"].files


def test_it_streams_a_file(session_id, api, fake_engine):
    data = bytes(range(256)) * 1000  # several chunks
    files_of(fake_engine, session_id)["/home/learner/data.bin"] = FakeNode("file", data)

    response = api.get(f"/sessions/{session_id}/files?path=data.bin")

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"] == 'attachment; filename="data.bin"'
    assert b"".join(response) == data


def test_it_streams_a_directory_as_a_tar(session_id, api, fake_engine):
    files = files_of(fake_engine, session_id)
    files["/tmp/project"] = FakeNode("dir")
    files["/tmp/project/a.txt"] = FakeNode("file", b"alpha")
    files["/tmp/project/sub"] = FakeNode("dir")
    files["/tmp/project/sub/b.txt"] = FakeNode("file", b"beta")

    response = api.get(f"/sessions/{session_id}/files?path=/tmp/project")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-tar"
    assert response["Content-Disposition"] == 'attachment; filename="project.tar"'
    with tarfile.open(fileobj=io.BytesIO(b"".join(response))) as archive:
        assert sorted(archive.getnames()) == ["project", "project/a.txt", "project/sub", "project/sub/b.txt"]
        assert archive.extractfile("project/sub/b.txt").read() == b"beta"


def test_a_file_name_outside_ascii_is_given_as_rfc_5987(session_id, api, fake_engine):
    files_of(fake_engine, session_id)["/home/learner/résumé.txt"] = FakeNode("file", b"x")

    response = api.get(f"/sessions/{session_id}/files?path=résumé.txt")

    assert response.status_code == 200
    assert response["Content-Disposition"] == "attachment; filename*=utf-8''r%C3%A9sum%C3%A9.txt"


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("../../etc/hostname", "invalid_path"),
        ("/tmp/../etc/hostname", "invalid_path"),
        ("/etc/hostname", "path_not_allowed"),
        ("/", "path_not_allowed"),
        ("/home", "path_not_allowed"),
        ("link-out", "path_not_allowed"),
        ("dir-out/hostname", "path_not_allowed"),
        ("", "invalid_request"),
        ("a\x00b", "invalid_path"),
    ],
)
def test_it_refuses_paths_outside_the_roots_with_400(session_id, api, fake_engine, path, error):
    files = files_of(fake_engine, session_id)
    files["/home/learner/link-out"] = FakeNode("symlink", target="/etc/hostname")
    files["/home/learner/dir-out"] = FakeNode("symlink", target="../../etc")

    response = api.get(f"/sessions/{session_id}/files", {"path": path})

    assert response.status_code == 400, response.content
    assert response.json()["error"] == error
    assert b"node1" not in response.content


def test_it_answers_404_for_a_missing_file_or_a_dangling_link(session_id, api, fake_engine):
    files_of(fake_engine, session_id)["/tmp/dangling"] = FakeNode("symlink", target="/tmp/gone")

    missing = api.get(f"/sessions/{session_id}/files?path=nope.txt")
    dangling = api.get(f"/sessions/{session_id}/files?path=/tmp/dangling")

    for response in (missing, dangling):
        assert response.status_code == 404
        assert response.json()["error"] == "file_not_found"


def test_it_answers_403_for_a_file_the_learner_may_not_read(session_id, api, fake_engine):
    files_of(fake_engine, session_id)["/tmp/secret"] = FakeNode("file", b"s3cret", learner_may="")

    response = api.get(f"/sessions/{session_id}/files?path=/tmp/secret")

    assert response.status_code == 403
    assert response.json()["error"] == "file_permission_denied"


def test_only_the_owner_or_a_read_write_share_may_download(session_id, api, fake_engine):
    files_of(fake_engine, session_id)["/home/learner/x"] = FakeNode("file", b"x")

    def download_as(mode: str) -> int:
        share = api.post(f"/sessions/{session_id}/shares", {"mode": mode}, format="json").json()
        guest = APIClient()
        guest.credentials(HTTP_AUTHORIZATION=f"Bearer {share['token']}")
        return guest.get(f"/sessions/{session_id}/files?path=x").status_code

    assert download_as("read-write") == 200
    assert download_as("read-only") == 403
    stranger = APIClient().get(f"/sessions/{session_id}/files?path=x")
    assert stranger.status_code == 404
    assert stranger.json() == APIClient().get("/sessions/nope/files?path=x").json()


def test_it_answers_409_when_the_instance_stops_answering_before_the_first_bytes(
    session_id, api, fake_engine, monkeypatch
):
    from sessions_app.backends.base import AttachError
    from sessions_app.backends.fake import FakeBackend

    def broken(self, instance, path, *, timeout):
        raise AttachError("the engine went away")
        yield b""

    monkeypatch.setattr(FakeBackend, "files_read", broken)
    files_of(fake_engine, session_id)["/home/learner/x"] = FakeNode("file", b"x")

    response = api.get(f"/sessions/{session_id}/files?path=x")

    assert response.status_code == 409
    assert response.json()["error"] == "instance_not_running"


def test_a_download_holds_a_place_until_it_is_read(session_id, api, fake_engine, settings):
    settings.PLAYGROUND_EXEC_PER_SESSION = 1
    files_of(fake_engine, session_id)["/home/learner/x"] = FakeNode("file", b"x" * 100_000)

    held = api.get(f"/sessions/{session_id}/files?path=x")
    refused = api.get(f"/sessions/{session_id}/files?path=x")

    assert refused.status_code == 429
    assert b"".join(held) == b"x" * 100_000
    assert api.get(f"/sessions/{session_id}/files?path=x").status_code == 200


def test_it_answers_405_to_a_method_it_does_not_offer(session_id, api):
    assert api.delete(f"/sessions/{session_id}/files?path=x").status_code == 405
