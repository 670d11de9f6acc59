"""/sessions/{id}/files on the real engine, through Daphne: files go in and come out
byte for byte, as the learner's, and nothing outside the home and /tmp is reached."""

import io
import os
import tarfile

import pytest
import requests

from tests.support.api import api
from tests.support.stack import WebServer

pytestmark = pytest.mark.integration

SMALL_CAP = 1 << 20


@pytest.fixture(scope="module")
def small_cap_web(worker_env, worker):
    """A second Daphne of the same platform that takes uploads of at most SMALL_CAP bytes."""
    server = WebServer({**worker_env, "PLAYGROUND_UPLOAD_MAX": str(SMALL_CAP)}, name="daphne-small-cap").start()
    yield server
    server.stop()


def run(web, session_id: str, script: str) -> dict:
    ran = api.post(f"{web.url}/sessions/{session_id}/exec?wait=1", json={"cmd": ["sh", "-c", script]}, timeout=60)
    assert ran.status_code == 200, ran.text
    return ran.json()


def files_url(web, session_id: str, path: str) -> str:
    return f"{web.url}/sessions/{session_id}/files?path={requests.utils.quote(path, safe='')}"


def test_a_binary_file_goes_in_and_comes_out_byte_for_byte_as_the_learners(web, session_id):
    data = os.urandom(3 << 20) + bytes(range(256))

    put = api.post(files_url(web, session_id, "blob.bin"), data=data, timeout=60)
    got = api.get(files_url(web, session_id, "/home/learner/blob.bin"), timeout=60)

    assert put.status_code == 201, put.text
    assert put.json() == {"files": [{"path": "/home/learner/blob.bin", "size": len(data)}]}
    assert got.status_code == 200, got.text
    assert got.headers["Content-Disposition"] == 'attachment; filename="blob.bin"'
    assert got.content == data
    owner = run(web, session_id, "stat -c '%U %u:%g %a' blob.bin && sha256sum blob.bin")["stdout"].splitlines()
    assert owner[0] == "learner 1000:1000 644"


def test_several_files_go_in_as_multipart_and_a_directory_comes_out_as_a_tar(web, session_id):
    run(web, session_id, "mkdir -p project/sub && printf nested >project/sub/inner.txt")
    files = [
        ("files", ("a.txt", b"alpha\n", "text/plain")),
        ("files", ("b.bin", bytes(range(256)) * 3, "application/octet-stream")),
        ("files", ("ünï cödé.txt", b"names too", "text/plain")),
    ]

    put = api.post(files_url(web, session_id, "project"), files=files, timeout=60)
    listing = api.get(f"{web.url}/sessions/{session_id}/files/list?path=project", timeout=60)
    got = api.get(files_url(web, session_id, "project"), timeout=60)

    assert put.status_code == 201, put.text
    assert sorted(f["path"] for f in put.json()["files"]) == [
        "/home/learner/project/a.txt",
        "/home/learner/project/b.bin",
        "/home/learner/project/ünï cödé.txt",
    ]
    assert listing.status_code == 200, listing.text
    entries = {entry["name"]: (entry["type"], entry["size"]) for entry in listing.json()["entries"]}
    assert entries == {"a.txt": ("file", 6), "b.bin": ("file", 768), "ünï cödé.txt": ("file", 9), "sub": ("dir", 4096)}
    assert got.status_code == 200, got.text
    assert got.headers["Content-Type"] == "application/x-tar"
    assert got.headers["Content-Disposition"] == 'attachment; filename="project.tar"'
    with tarfile.open(fileobj=io.BytesIO(got.content)) as archive:
        assert archive.extractfile("project/b.bin").read() == bytes(range(256)) * 3
        assert archive.extractfile("project/ünï cödé.txt").read() == b"names too"
        assert archive.extractfile("project/sub/inner.txt").read() == b"nested"
    owners = run(web, session_id, "stat -c '%u:%g' project/*")["stdout"].split()
    assert set(owners) == {"1000:1000"}


def test_a_link_is_listed_as_one_and_replaced_by_an_upload_never_followed(web, session_id):
    run(web, session_id, "printf mine >/tmp/target && ln -s /tmp/target link")

    listing = api.get(f"{web.url}/sessions/{session_id}/files/list", timeout=60).json()
    put = api.post(files_url(web, session_id, "link"), data=b"new", timeout=60)

    assert {"name": "link", "type": "symlink", "size": len("/tmp/target")}.items() <= next(
        entry for entry in listing["entries"] if entry["name"] == "link"
    ).items()
    assert put.status_code == 201, put.text
    after = run(web, session_id, "cat /tmp/target; echo; [ -L link ] && echo link || cat link")["stdout"]
    assert after == "mine\nnew"


@pytest.mark.parametrize("path", ["../../etc/passwd", "/tmp/../etc/passwd", "/etc/passwd", "out/passwd", "out"])
def test_paths_out_of_the_home_and_tmp_are_refused(web, session_id, path):
    run(web, session_id, "ln -s /etc out")

    download = api.get(files_url(web, session_id, path), timeout=60)
    upload = api.post(files_url(web, session_id, path), data=b"root::0:0::/root:/bin/sh\n", timeout=60)
    listing = api.get(f"{web.url}/sessions/{session_id}/files/list?path={path}", timeout=60)

    for response in (download, upload, listing):
        assert response.status_code == 400, response.text
        assert response.json()["error"] in ("invalid_path", "path_not_allowed")
        assert "root:x:0:0" not in response.text
    assert run(web, session_id, "head -c 9 /etc/passwd")["stdout"] == "root:x:0:"


def test_a_missing_path_is_404(web, session_id):
    response = api.get(files_url(web, session_id, "nope/nothing.txt"), timeout=60)

    assert response.status_code == 404
    assert response.json()["error"] == "file_not_found"


def test_an_upload_over_the_cap_is_413_and_leaves_nothing(web, small_cap_web, session_id):
    over = api.post(files_url(small_cap_web, session_id, "big.bin"), data=b"x" * (SMALL_CAP + 1), timeout=60)
    over_multipart = api.post(
        files_url(small_cap_web, session_id, "/tmp"),
        files=[("files", ("a.bin", b"x" * (SMALL_CAP // 2 + 1))), ("files", ("b.bin", b"x" * (SMALL_CAP // 2)))],
        timeout=60,
    )
    fits = api.post(files_url(small_cap_web, session_id, "fits.bin"), data=b"x" * SMALL_CAP, timeout=60)

    for response in (over, over_multipart):
        assert response.status_code == 413, response.text
        assert response.json()["error"] == "upload_too_large"
    assert fits.status_code == 201, fits.text
    left = run(web, session_id, "ls big.bin /tmp/a.bin /tmp/b.bin 2>&1; stat -c %s fits.bin")["stdout"]
    assert "No such file" in left and left.count("No such file") == 3
    assert left.splitlines()[-1] == str(SMALL_CAP)
