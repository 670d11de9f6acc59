"""GET /sessions/{id}/files/list: the entries of a directory of the instance."""

import pytest
from rest_framework.test import APIClient

from sessions_app.backends.fake import FakeNode

pytestmark = pytest.mark.django_db


def files_of(fake_engine, session_id: str):
    return fake_engine.containers[f"playground-{session_id}"].files


def test_it_lists_the_home_by_default_links_as_links(session_id, api, fake_engine):
    files = files_of(fake_engine, session_id)
    files["/home/learner/notes.txt"] = FakeNode("file", b"hello", mtime=1_700_000_000)
    files["/home/learner/work"] = FakeNode("dir", mtime=1_700_000_060)
    files["/home/learner/etc"] = FakeNode("symlink", target="/etc", mtime=1_700_000_120)
    files["/home/learner/work/inner"] = FakeNode("file", b"not listed")

    response = api.get(f"/sessions/{session_id}/files/list")

    assert response.status_code == 200, response.content
    assert response.json() == {
        "path": "/home/learner",
        "entries": [
            {"name": "etc", "type": "symlink", "size": 4, "mtime": "2023-11-14T22:15:20Z"},
            {"name": "notes.txt", "type": "file", "size": 5, "mtime": "2023-11-14T22:13:20Z"},
            {"name": "work", "type": "dir", "size": 0, "mtime": "2023-11-14T22:14:20Z"},
        ],
        "truncated": False,
    }


def test_it_lists_a_directory_through_a_link_inside_the_roots(session_id, api, fake_engine):
    files = files_of(fake_engine, session_id)
    files["/home/learner/scratch"] = FakeNode("symlink", target="/tmp")
    files["/tmp/a"] = FakeNode("file", b"a")

    response = api.get(f"/sessions/{session_id}/files/list?path=scratch")

    assert response.json()["path"] == "/tmp"
    assert [entry["name"] for entry in response.json()["entries"]] == ["a"]


def test_it_says_when_a_listing_is_truncated(session_id, api, fake_engine, monkeypatch):
    from sessions_app.services import files as files_service

    monkeypatch.setattr(files_service, "LIST_MAX", 2)
    for name in "abc":
        files_of(fake_engine, session_id)[f"/tmp/{name}"] = FakeNode("file")

    listing = api.get(f"/sessions/{session_id}/files/list?path=/tmp").json()

    assert [entry["name"] for entry in listing["entries"]] == ["a", "b"]
    assert listing["truncated"] is True


@pytest.mark.parametrize(
    ("path", "status", "error"),
    [
        ("..", 400, "invalid_path"),
        ("/etc", 400, "path_not_allowed"),
        ("etc", 400, "path_not_allowed"),  # a link to /etc
        ("notes.txt", 400, "invalid_path"),  # not a directory
        ("nowhere", 404, "file_not_found"),
    ],
)
def test_it_refuses_what_is_not_a_directory_within_the_roots(session_id, api, fake_engine, path, status, error):
    files = files_of(fake_engine, session_id)
    files["/home/learner/etc"] = FakeNode("symlink", target="/etc")
    files["/home/learner/notes.txt"] = FakeNode("file", b"hello")

    response = api.get(f"/sessions/{session_id}/files/list", {"path": path})

    assert response.status_code == status, response.content
    assert response.json()["error"] == error


def test_only_the_owner_or_a_read_write_share_may_list(session_id, api, fake_engine):
    def list_as(mode: str) -> int:
        share = api.post(f"/sessions/{session_id}/shares", {"mode": mode}, format="json").json()
        guest = APIClient()
        guest.credentials(HTTP_AUTHORIZATION=f"Bearer {share['token']}")
        return guest.get(f"/sessions/{session_id}/files/list").status_code

    assert list_as("read-write") == 200
    assert list_as("read-only") == 403
    assert APIClient().get(f"/sessions/{session_id}/files/list").status_code == 404


def test_it_answers_405_to_a_method_it_does_not_offer(session_id, api):
    assert api.post(f"/sessions/{session_id}/files/list", {}, format="json").status_code == 405
