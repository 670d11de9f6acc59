import json
import re

import pytest
from django.test import Client

from sessions_app import services
from tests.factories import make_step, make_template

pytestmark = pytest.mark.django_db

XTERM_ASSETS = [
    "/static/vendor/xterm/lib/xterm.js",
    "/static/vendor/xterm/css/xterm.css",
    "/static/vendor/addon-fit/lib/addon-fit.js",
    "/static/vendor/addon-web-links/lib/addon-web-links.js",
]


@pytest.fixture
def session_id(client, django_capture_on_commit_callbacks):
    """A session this client (a browser) opened, so its cookie owns it.

    The provisioning task is captured and dropped: these pages need no Docker."""
    with django_capture_on_commit_callbacks():
        return client.post("/sessions", {}, content_type="application/json").json()["session_id"]


@pytest.fixture
def static_files(settings):
    """Serve static files through WhiteNoise from the finders, as under `DEBUG=true`."""
    settings.WHITENOISE_USE_FINDERS = True
    settings.WHITENOISE_AUTOREFRESH = True


def static_urls(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/static/[^"]+)"', html)


def session_data(html: str) -> dict:
    match = re.search(r'<script id="session-data" type="application/json">(.*?)</script>', html, re.S)
    assert match, "the page embeds the session's JSON"
    return json.loads(match.group(1))


def test_it_shows_the_landing_page_with_a_start_button(client):
    response = client.get("/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "A Docker host of your own, in your browser, in about a second" in html
    assert re.search(r'<button id="start"[^>]*data-sessions-url="/sessions"', html)
    assert "/static/terminals/index.js" in html
    assert "csrftoken" in response.cookies


def test_it_prefetches_the_terminal_assets_from_the_landing_page(client):
    html = client.get("/").content.decode()

    assert "/static/vendor/xterm/lib/xterm.js" in static_urls(html)
    assert "/static/terminals/session.js" in static_urls(html)


def test_it_sends_start_to_the_page_of_the_new_session(client, session_id):
    html = client.get("/").content.decode()
    page_url = re.search(r'data-session-page-url="([^"]+)"', html).group(1)

    response = client.get(page_url.replace("__session_id__", session_id))

    assert response.status_code == 200
    assert session_data(response.content.decode())["session_id"] == session_id


def test_it_shows_the_terminal_page_of_a_session(client, session_id):
    response = client.get(f"/p/{session_id}")

    assert response.status_code == 200
    html = response.content.decode()
    for asset in [*XTERM_ASSETS, "/static/terminals/session.js"]:
        assert asset in static_urls(html)
    assert f'data-api-url="/sessions/{session_id}"' in html
    data = session_data(html)
    assert data["status"] == "open"
    assert data["expires_at"]
    assert data["instance"]["name"] == "node1"
    assert data["ws_url"] == f"ws://testserver/sessions/{session_id}/ws"
    assert "csrftoken" in response.cookies


def test_it_accepts_a_trailing_slash(client, session_id):
    assert client.get(f"/p/{session_id}/").status_code == 200


def test_it_shows_a_closed_session_as_closed(client, session_id, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks():
        services.session_close(session_id=session_id)

    response = client.get(f"/p/{session_id}")

    assert response.status_code == 200
    assert session_data(response.content.decode())["status"] == "closed"


def test_it_answers_a_friendly_404_page_for_an_unknown_session(client):
    response = client.get(f"/p/{'a' * 32}")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "No such session" in html
    assert 'href="/"' in html


def test_it_refuses_other_methods(client, session_id):
    assert client.post("/").status_code == 405
    assert client.post(f"/p/{session_id}").status_code == 405


@pytest.mark.usefixtures("static_files")
def test_it_serves_every_static_file_the_pages_reference(client, session_id):
    urls = {url for page in ("/", f"/p/{session_id}") for url in static_urls(client.get(page).content.decode())}
    assert set(XTERM_ASSETS) <= urls

    for url in sorted(urls):
        response = client.get(url)
        assert response.status_code == 200, url
        body = b"".join(response.streaming_content)
        response.close()
        assert body, url


@pytest.mark.usefixtures("static_files")
def test_it_serves_the_browser_builds_of_xterm(client):
    # A plain <script> needs the UMD builds, which define these globals.
    for url, global_name in [
        ("/static/vendor/xterm/lib/xterm.js", b"Terminal"),
        ("/static/vendor/addon-fit/lib/addon-fit.js", b"FitAddon"),
        ("/static/vendor/addon-web-links/lib/addon-web-links.js", b"WebLinksAddon"),
    ]:
        response = client.get(url)
        body = b"".join(response.streaming_content)
        response.close()
        assert response["Content-Type"].startswith("text/javascript")
        assert global_name in body
        assert b"export{" not in body.replace(b" ", b""), f"{url} is an ES module"


# --- A guided lab's steps beside the terminal ------------------------------------------


@pytest.fixture
def lab_session_id(client, django_capture_on_commit_callbacks):
    """A session of a lab with a step, opened by this client."""
    make_step(make_template("first-lab"), 1, check_script="true", solve_script="true")
    with django_capture_on_commit_callbacks():
        response = client.post("/sessions", {"template": "first-lab"}, content_type="application/json")
    return response.json()["session_id"]


@pytest.mark.usefixtures("static_files")
def test_it_shows_a_labs_steps_beside_the_terminal_with_their_controls(client, lab_session_id):
    html = client.get(f"/p/{lab_session_id}").content.decode()

    assert "/static/terminals/steps.js" in static_urls(html)
    assert re.search(rf'<aside id="steps"[^>]*data-api-url="/sessions/{lab_session_id}/steps"', html)
    assert 'class="terminal-area with-steps"' in html
    assert 'id="step-check"' in html and 'id="step-solve"' in html
    assert client.get("/static/terminals/steps.js").status_code == 200


def test_it_shows_a_read_only_viewer_the_steps_without_their_controls(client, lab_session_id):
    token = client.post(f"/sessions/{lab_session_id}/shares", {"mode": "read-only"}, content_type="application/json")
    viewer = Client()
    viewer.post("/shares/redeem", {"token": token.json()["token"]}, content_type="application/json")

    html = viewer.get(f"/p/{lab_session_id}").content.decode()

    assert '<aside id="steps"' in html
    assert 'id="step-check"' not in html and 'id="step-solve"' not in html


def test_it_shows_no_steps_for_a_session_of_no_lab(client, session_id):
    html = client.get(f"/p/{session_id}").content.decode()

    assert "/static/terminals/steps.js" not in static_urls(html)
    assert 'id="steps"' not in html
