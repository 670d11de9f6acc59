"""POST /sessions/{id}/files: files written into the instance as its learner, within the home and /tmp."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from sessions_app.backends.fake import FakeNode

pytestmark = pytest.mark.django_db


def files_of(fake_engine, session_id: str):
    return fake_engine.containers[f"playground-{session_id}"].files


def raw(api, session_id: str, path: str, data: bytes, **extra):
    return api.post(f"/sessions/{session_id}/files?path={path}", data, content_type="application/octet-stream", **extra)


def test_it_writes_a_raw_body_at_a_path_relative_to_the_home(session_id, api, fake_engine):
    data = bytes(range(256)) * 10

    response = raw(api, session_id, "notes.bin", data)

    assert response.status_code == 201, response.content
    assert response.json() == {"files": [{"path": "/home/learner/notes.bin", "size": 2560}]}
    assert files_of(fake_engine, session_id)["/home/learner/notes.bin"].data == data


def test_it_writes_every_file_of_a_multipart_body_into_a_directory(session_id, api, fake_engine):
    response = api.post(
        f"/sessions/{session_id}/files?path=/tmp",
        {
            "files": [SimpleUploadedFile("a.txt", b"first"), SimpleUploadedFile("b.bin", b"\x00\xff")],
            "more": SimpleUploadedFile("c.txt", b"third"),
        },
        format="multipart",
    )

    assert response.status_code == 201, response.content
    assert sorted(f["path"] for f in response.json()["files"]) == ["/tmp/a.txt", "/tmp/b.bin", "/tmp/c.txt"]
    files = files_of(fake_engine, session_id)
    assert (files["/tmp/a.txt"].data, files["/tmp/b.bin"].data, files["/tmp/c.txt"].data) == (
        b"first",
        b"\x00\xff",
        b"third",
    )


def test_a_multipart_upload_lands_in_the_home_by_default(session_id, api, fake_engine):
    response = api.post(
        f"/sessions/{session_id}/files", {"files": [SimpleUploadedFile("x.txt", b"x")]}, format="multipart"
    )

    assert response.status_code == 201, response.content
    assert files_of(fake_engine, session_id)["/home/learner/x.txt"].data == b"x"


def test_it_refuses_an_upload_over_the_cap_with_413_and_writes_nothing(session_id, api, fake_engine, settings):
    settings.PLAYGROUND_UPLOAD_MAX = 1000
    before = dict(files_of(fake_engine, session_id))

    too_big = raw(api, session_id, "big", b"x" * 1001)
    too_many = api.post(
        f"/sessions/{session_id}/files",
        {"files": [SimpleUploadedFile("a", b"x" * 600), SimpleUploadedFile("b", b"x" * 600)]},
        format="multipart",
    )

    for response in (too_big, too_many):
        assert response.status_code == 413, response.content
        assert response.json()["error"] == "upload_too_large"
    assert files_of(fake_engine, session_id) == before
    assert raw(api, session_id, "fits", b"x" * 1000).status_code == 201


def test_a_raw_body_past_the_cap_is_refused_as_it_is_read_without_a_content_length(session_id, fake_engine, settings):
    from sessions_app.errors import UploadTooLarge
    from sessions_app.services import upload_spool

    settings.PLAYGROUND_UPLOAD_MAX = 3 << 20

    class Endless:
        read_bytes = 0

        def read(self, size):
            self.read_bytes += size
            return b"x" * size

    body = Endless()
    with pytest.raises(UploadTooLarge):
        upload_spool(stream=body, name="endless")
    assert body.read_bytes <= (4 << 20)


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("../etc/passwd", "invalid_path"),
        ("a/../../x", "invalid_path"),
        ("/tmp/../etc/x", "invalid_path"),
        ("/etc/x", "path_not_allowed"),
        ("/home/other/x", "path_not_allowed"),
        ("/tmpx/y", "path_not_allowed"),
        ("out/x", "path_not_allowed"),  # a link in the home to /etc
        ("out-file", "path_not_allowed"),  # a link in the home to /etc/hostname
        ("dir", "invalid_path"),  # a directory, for a raw body
        ("", "invalid_request"),
    ],
)
def test_it_refuses_paths_outside_the_roots_with_400_and_writes_nothing(session_id, api, fake_engine, path, error):
    files = files_of(fake_engine, session_id)
    files["/home/learner/out"] = FakeNode("symlink", target="/etc")
    files["/home/learner/out-file"] = FakeNode("symlink", target="../../etc/hostname")
    files["/home/learner/dir"] = FakeNode("dir")
    before = dict(files)

    response = raw(api, session_id, path, b"data")

    assert response.status_code == 400, response.content
    assert response.json()["error"] == error
    assert response.json()["message"]
    assert files_of(fake_engine, session_id) == before


def test_it_refuses_a_multipart_upload_into_a_link_leading_out(session_id, api, fake_engine):
    files_of(fake_engine, session_id)["/tmp/etc"] = FakeNode("symlink", target="/etc")

    response = api.post(
        f"/sessions/{session_id}/files?path=/tmp/etc", {"files": [SimpleUploadedFile("x", b"x")]}, format="multipart"
    )

    assert response.status_code == 400
    assert response.json()["error"] == "path_not_allowed"
    assert "/etc/x" not in files_of(fake_engine, session_id)


def test_a_link_inside_the_roots_is_resolved_before_writing(session_id, api, fake_engine):
    files_of(fake_engine, session_id)["/home/learner/scratch"] = FakeNode("symlink", target="/tmp")

    response = raw(api, session_id, "scratch/x", b"x")

    assert response.status_code == 201, response.content
    assert response.json()["files"][0]["path"] == "/tmp/x"


def test_it_answers_404_when_the_directory_is_missing(session_id, api, fake_engine):
    response = raw(api, session_id, "nowhere/x", b"x")

    assert response.status_code == 404
    assert response.json()["error"] == "file_not_found"


def test_it_answers_403_where_the_learner_may_not_write(session_id, api, fake_engine):
    files_of(fake_engine, session_id)["/tmp/root-only"] = FakeNode("dir", learner_may="r")

    response = raw(api, session_id, "/tmp/root-only/x", b"x")

    assert response.status_code == 403
    assert response.json()["error"] == "file_permission_denied"


def test_a_read_write_share_may_upload_and_a_read_only_one_may_not(session_id, api, fake_engine):
    def upload_as(mode: str, name: str) -> int:
        share = api.post(f"/sessions/{session_id}/shares", {"mode": mode}, format="json").json()
        guest = APIClient()
        guest.credentials(HTTP_AUTHORIZATION=f"Bearer {share['token']}")
        return raw(guest, session_id, name, b"x").status_code

    assert upload_as("read-write", "rw") == 201
    assert upload_as("read-only", "ro") == 403
    assert "/home/learner/ro" not in files_of(fake_engine, session_id)


def test_anyone_else_gets_the_same_404_as_for_an_unknown_session(session_id, fake_engine):
    stranger = APIClient()

    mine = raw(stranger, session_id, "x", b"x")
    unknown = raw(stranger, "nope", "x", b"x")

    assert mine.status_code == unknown.status_code == 404
    assert mine.json() == unknown.json()
    assert "/home/learner/x" not in files_of(fake_engine, session_id)


def test_it_refuses_a_multipart_body_without_files(session_id, api, fake_engine):
    response = api.post(f"/sessions/{session_id}/files", {"note": "no file"}, format="multipart")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_it_refuses_a_write_the_instance_refuses_with_409(session_id, api, fake_engine):
    files_of(fake_engine, session_id)["/home/learner/taken"] = FakeNode("dir")

    response = api.post(
        f"/sessions/{session_id}/files", {"files": [SimpleUploadedFile("taken", b"x")]}, format="multipart"
    )

    assert response.status_code == 409
    assert response.json()["error"] == "file_transfer_failed"
    assert "Is a directory" in response.json()["message"]


def test_it_refuses_while_the_instance_does_not_run(session_id, api, fake_engine):
    from sessions_app.models import Instance

    Instance.objects.filter(session_id=session_id).update(status=Instance.Status.PROVISIONING)

    response = raw(api, session_id, "x", b"x")

    assert response.status_code == 409
    assert response.json()["error"] == "instance_not_running"


def test_it_answers_405_to_a_method_it_does_not_offer(session_id, api):
    assert api.put(f"/sessions/{session_id}/files?path=x", b"x", content_type="text/plain").status_code == 405


def test_a_form_encoded_raw_body_is_written_as_it_is(session_id, api, fake_engine):
    # curl --data-binary sends this type unless told otherwise.
    response = api.post(
        f"/sessions/{session_id}/files?path=form.txt", b"a=1&b=2", content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 201, response.content
    assert files_of(fake_engine, session_id)["/home/learner/form.txt"].data == b"a=1&b=2"


def test_a_form_encoded_body_on_the_strength_of_the_pages_cookie_is_refused_with_415(fake_engine):
    # The CSRF check of a cookie-authenticated write reads such a body as a
    # form, which the route does not parse: the page sends multipart.
    from sessions_app.backends.fake import FakeBackend
    from sessions_app.models import Instance

    browser = APIClient(enforce_csrf_checks=True)
    session_id = browser.post("/sessions", {"playground_id": "default"}, format="json").json()["session_id"]
    Instance.objects.filter(session_id=session_id).update(status=Instance.Status.RUNNING)
    FakeBackend().start(Instance.objects.get(session_id=session_id))
    browser.cookies["csrftoken"] = "a" * 32

    response = browser.post(
        f"/sessions/{session_id}/files?path=form.txt",
        b"a=1&b=2",
        content_type="application/x-www-form-urlencoded",
        HTTP_X_CSRFTOKEN="a" * 32,
    )
    multipart = browser.post(
        f"/sessions/{session_id}/files",
        {"files": [SimpleUploadedFile("page.txt", b"from the page")]},
        format="multipart",
        HTTP_X_CSRFTOKEN="a" * 32,
    )

    assert response.status_code == 415, response.content
    assert response.json()["error"] == "unsupported_media_type"
    assert multipart.status_code == 201, multipart.content
    assert files_of(fake_engine, session_id)["/home/learner/page.txt"].data == b"from the page"


def test_a_malformed_content_length_is_not_an_error_of_the_server(session_id, api, fake_engine):
    response = raw(api, session_id, "x", b"x", CONTENT_LENGTH="many")

    assert response.status_code < 500


@pytest.mark.parametrize("query", ["?path=x&pth=y", "?paht=x", "?path=x&overwrite=true"])
def test_an_unknown_query_parameter_is_refused_and_nothing_is_written(session_id, api, fake_engine, query):
    before = dict(files_of(fake_engine, session_id))

    raw_body = api.post(f"/sessions/{session_id}/files{query}", b"data", content_type="application/octet-stream")
    multipart = api.post(
        f"/sessions/{session_id}/files{query}", {"files": [SimpleUploadedFile("m.txt", b"m")]}, format="multipart"
    )
    download = api.get(f"/sessions/{session_id}/files{query}")
    listing = api.get(f"/sessions/{session_id}/files/list{query}")

    for response in (raw_body, multipart, download, listing):
        assert response.status_code == 400, response.content
        assert response.json()["error"] == "invalid_request"
        assert "Unknown query parameter" in response.json()["message"]
    assert dict(files_of(fake_engine, session_id)) == before
