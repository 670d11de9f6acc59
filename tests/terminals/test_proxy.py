"""The proxy to a session's ports (terminals.proxy), on the real ASGI application,
with the fake backend and real HTTP and WebSocket servers on this machine
standing in for the learner's servers (the instance's address is 127.0.0.1)."""

import contextlib
import http.server
import json
import socket
import threading

import httpx
import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone
from rest_framework.test import APIClient
from websockets.asyncio.server import serve

from playground import asgi
from playground.asgi import application
from sessions_app.access import Credentials
from sessions_app.backends.fake import engine
from sessions_app.models import Instance, Session, Share, hash_secret
from sessions_app.selectors import session_get
from sessions_app.services import port_ticket, ports
from terminals.proxy import PORT_COOKIE, TICKET_PARAMETER
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)

DOMAIN = "ports.test"


@pytest.fixture(autouse=True)
def _fake_backend(use_backend, settings):
    settings.PLAYGROUND_PORTS_DOMAIN = DOMAIN
    ports._looked.clear()


@pytest.fixture(autouse=True)
async def _close_the_proxys_connections():
    """In the test's own event loop, which ends with the test."""
    yield
    await asgi.ports.aclose()


class Upstream(http.server.ThreadingHTTPServer):
    """A learner's web server: remembers what it was asked."""

    daemon_threads = True

    def __init__(self):
        self.seen: list[dict] = []
        super().__init__(("127.0.0.1", 0), Handler)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    extra_headers: list[tuple[str, str]] = []  # sent with every answer

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        self.server.seen.append({"path": self.path, "headers": dict(self.headers)})
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "/there?x=1")
            self.send_header("Set-Cookie", "app=1; Path=/; Domain=testserver; HttpOnly")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"hello from the instance\n"
        self.send_response(200)
        for name, value in self.extra_headers:
            self.send_header(name, value)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        self.server.seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
        self.send_response(201)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def upstream():
    server = Upstream()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _open_session(django_capture_on_commit_callbacks) -> tuple[str, str]:
    factories.make_playground()  # a transactional test starts without the migration's rows
    client = APIClient()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/sessions", {}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    Instance.objects.filter(session_id=body["session_id"]).update(ip_address="127.0.0.1")
    return body["session_id"], body["access_token"]


@pytest.fixture
def session(django_capture_on_commit_callbacks, upstream):
    """A running session whose instance's server listens on `upstream`'s port: (id, token, port)."""
    session_id, token = _open_session(django_capture_on_commit_callbacks)
    port = upstream.server_address[1]
    engine.containers[f"playground-{session_id}"].listening = {port}
    return session_id, token, port


def asgi_client(**headers) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application, client=("203.0.113.9", 5000)),
        base_url="http://testserver",
        headers=headers,
    )


async def test_an_owner_reaches_the_port_under_the_sessions_path(session, upstream):
    session_id, token, port = session
    async with asgi_client(Authorization=f"Bearer {token}") as client:
        response = await client.get(
            f"/sessions/{session_id}/ports/{port}/hello/world?x=1",
            headers={"Cookie": "playground_browser=secret; csrftoken=abc; app=kept"},
        )

    assert response.status_code == 200
    assert response.text == "hello from the instance\n"
    [seen] = upstream.seen
    assert seen["path"] == "/hello/world?x=1"  # the app lives at /
    headers = {name.lower(): value for name, value in seen["headers"].items()}
    assert headers["x-forwarded-prefix"] == f"/sessions/{session_id}/ports/{port}"
    assert headers["x-forwarded-for"] == "203.0.113.9"
    assert headers["cookie"] == "app=kept"  # the platform's own cookies stay with the platform
    assert "authorization" not in headers  # and so does the session's token
    # Pages under the platform's own origin run as an origin of their own.
    assert response.headers["content-security-policy"].startswith("sandbox ")
    assert "allow-same-origin" not in response.headers["content-security-policy"]


async def test_the_bare_port_path_gains_its_slash(session):
    session_id, token, port = session
    async with asgi_client(Authorization=f"Bearer {token}") as client:
        response = await client.get(f"/sessions/{session_id}/ports/{port}?a=b")

    assert response.status_code == 308
    assert response.headers["location"] == f"/sessions/{session_id}/ports/{port}/?a=b"


async def test_a_stranger_gets_the_same_404_as_for_no_session_and_nothing_is_dialled(session, upstream):
    session_id, _, port = session
    async with asgi_client() as client:
        stranger = await client.get(f"/sessions/{session_id}/ports/{port}/")
        unknown = await client.get(f"/sessions/{'0' * 32}/ports/{port}/")
        wrong_token = await client.get(
            f"/sessions/{session_id}/ports/{port}/", headers={"Authorization": "Bearer not-the-token"}
        )

    for response in (stranger, unknown, wrong_token):
        assert response.status_code == 404
        assert response.json()["error"] == "session_not_found"
    assert upstream.seen == []


async def test_a_port_nothing_listens_on_is_404_and_never_dialled(session, upstream):
    session_id, token, port = session
    async with asgi_client(Authorization=f"Bearer {token}") as client:
        response = await client.get(f"/sessions/{session_id}/ports/{port + 1}/")
        too_big = await client.get(f"/sessions/{session_id}/ports/99999/")

    assert response.status_code == 404
    assert response.json()["error"] == "port_not_listening"
    assert too_big.status_code == 404
    assert upstream.seen == []


async def test_a_public_port_opens_for_anyone(session, upstream):
    session_id, token, port = session
    owner = APIClient()
    owner.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    answer = await sync_to_async(owner.post)(
        f"/sessions/{session_id}/ports", {"port": port, "public": True}, format="json"
    )
    assert answer.status_code == 200, answer.content

    async with asgi_client() as client:
        response = await client.get(f"/sessions/{session_id}/ports/{port}/")

    assert response.status_code == 200
    assert response.text == "hello from the instance\n"


async def test_redirects_and_cookies_of_the_app_stay_under_the_ports_path(session):
    session_id, token, port = session
    prefix = f"/sessions/{session_id}/ports/{port}"
    async with asgi_client(Authorization=f"Bearer {token}") as client:
        response = await client.get(f"{prefix}/redirect")

    assert response.status_code == 302
    assert response.headers["location"] == f"{prefix}/there?x=1"
    cookie = response.headers["set-cookie"]
    assert f"Path={prefix}/" in cookie
    assert "Domain" not in cookie
    assert "HttpOnly" in cookie


async def test_a_request_body_reaches_the_port(session, upstream):
    session_id, token, port = session
    body = bytes(range(256)) * 1000
    async with asgi_client(Authorization=f"Bearer {token}") as client:
        response = await client.post(f"/sessions/{session_id}/ports/{port}/upload", content=body)

    assert response.status_code == 201
    assert response.content == body
    assert upstream.seen[-1]["body"] == body


async def test_a_port_that_does_not_answer_is_a_502(session, upstream):
    session_id, token, port = session
    upstream.shutdown()
    upstream.server_close()  # "listening" by the backend's last word, but gone

    async with asgi_client(Authorization=f"Bearer {token}") as client:
        response = await client.get(f"/sessions/{session_id}/ports/{port}/")

    assert response.status_code == 502
    assert response.json()["error"] == "port_unreachable"


# --- A host name of the port's own --------------------------------------------------


def _ticket(session_id: str, token: str, port: int) -> str:
    found = session_get(session_id=session_id)
    return port_ticket(session=found, port=port, credentials=Credentials(bearer=hash_secret(token)))


async def test_the_pages_ticket_becomes_the_hosts_cookie(session, upstream):
    session_id, token, port = session
    host = f"{port}-{session_id}.{DOMAIN}"
    ticket = await sync_to_async(_ticket)(session_id, token, port)

    async with asgi_client(Host=host) as client:
        without = await client.get("/")
        exchanged = await client.get(f"/page?{TICKET_PARAMETER}={ticket}&keep=1")
        cookie = exchanged.headers["set-cookie"]
        value = cookie.split(";")[0].split("=", 1)[1]
        opened = await client.get("/page", headers={"Cookie": f"{PORT_COOKIE}={value}; app=kept"})

    assert without.status_code == 404  # no cookie, no token: as for no session
    assert exchanged.status_code == 302
    assert exchanged.headers["location"] == "/page?keep=1"
    assert cookie.startswith(f"{PORT_COOKIE}=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert opened.status_code == 200
    assert opened.text == "hello from the instance\n"
    assert "content-security-policy" not in opened.headers  # an origin of its own already
    seen = {name.lower(): value for name, value in upstream.seen[-1]["headers"].items()}
    assert seen["cookie"] == "app=kept"
    assert seen["x-forwarded-host"] == host
    assert upstream.seen[-1]["path"] == "/page"


async def test_a_cookie_opens_only_its_own_port_and_session(session, upstream, django_capture_on_commit_callbacks):
    session_id, token, port = session
    ticket = await sync_to_async(_ticket)(session_id, token, port)
    async with asgi_client(Host=f"{port}-{session_id}.{DOMAIN}") as client:
        exchanged = await client.get(f"/?{TICKET_PARAMETER}={ticket}")
    value = exchanged.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    other_id, _ = await sync_to_async(_open_session)(django_capture_on_commit_callbacks)
    engine.containers[f"playground-{other_id}"].listening = {port}

    async with asgi_client(Cookie=f"{PORT_COOKIE}={value}") as client:
        other_port = await client.get("/", headers={"Host": f"{port + 1}-{session_id}.{DOMAIN}"})
        other_session = await client.get("/", headers={"Host": f"{port}-{other_id}.{DOMAIN}"})
        forged = await client.get(
            "/", headers={"Host": f"{port}-{session_id}.{DOMAIN}", "Cookie": f"{PORT_COOKIE}={value}x"}
        )
        ticket_elsewhere = await client.get(
            f"/?{TICKET_PARAMETER}={ticket}", headers={"Host": f"{port}-{other_id}.{DOMAIN}"}
        )

    for response in (other_port, other_session, forged, ticket_elsewhere):
        assert response.status_code == 404
    assert upstream.seen == []


async def test_a_revoked_share_link_closes_the_ports_host_too(session, upstream):
    session_id, token, port = session
    owner = APIClient()
    owner.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    share = (
        await sync_to_async(owner.post)(f"/sessions/{session_id}/shares", {"mode": "read-only"}, format="json")
    ).json()

    def ticket_of_share() -> str:
        found = session_get(session_id=session_id)
        return port_ticket(session=found, port=port, credentials=Credentials(bearer=hash_secret(share["token"])))

    ticket = await sync_to_async(ticket_of_share)()
    async with asgi_client(Host=f"{port}-{session_id}.{DOMAIN}") as client:
        exchanged = await client.get(f"/?{TICKET_PARAMETER}={ticket}")
        cookie = {"Cookie": f"{PORT_COOKIE}={exchanged.headers['set-cookie'].split(';')[0].split('=', 1)[1]}"}
        before = await client.get("/", headers=cookie)
        await sync_to_async(Share.objects.filter(pk=share["id"]).update)(revoked_at=timezone.now())
        after = await client.get("/", headers=cookie)

    assert before.status_code == 200
    assert after.status_code == 404


# --- WebSockets ---------------------------------------------------------------------


@contextlib.asynccontextmanager
async def echo_server():
    async def echo(connection):
        async for message in connection:
            await connection.send(message)

    async with serve(echo, "127.0.0.1", 0) as server:
        yield server.sockets[0].getsockname()[1]


async def test_a_websocket_goes_through_both_ways(session):
    session_id, token, _ = session
    async with echo_server() as port:
        await sync_to_async(_listen_on)(session_id, port)
        communicator = WebsocketCommunicator(
            application,
            f"/sessions/{session_id}/ports/{port}/socket",
            headers=[(b"host", b"testserver"), (b"authorization", f"Bearer {token}".encode())],
        )
        connected, _ = await communicator.connect()
        assert connected
        await communicator.send_to(text_data="hello")
        assert await communicator.receive_from() == "hello"
        await communicator.send_to(bytes_data=b"\x00\x01binary")
        assert await communicator.receive_from() == b"\x00\x01binary"
        await communicator.disconnect()


async def test_a_strangers_websocket_is_closed_with_4404(session):
    session_id, _, _ = session
    async with echo_server() as port:
        await sync_to_async(_listen_on)(session_id, port)
        communicator = WebsocketCommunicator(
            application, f"/sessions/{session_id}/ports/{port}/", headers=[(b"host", b"testserver")]
        )
        connected, _ = await communicator.connect()
        assert connected
        closed = await communicator.receive_output()
        assert closed == {"type": "websocket.close", "code": 4404}
        await communicator.disconnect()


def _listen_on(session_id: str, port: int) -> None:
    engine.containers[f"playground-{session_id}"].listening = {port}


def test_the_listening_ports_come_from_proc_net_tcp():
    from sessions_app.backends.base import listening_in

    text = "\n".join(
        [
            "  sl  local_address rem_address   st tx_queue",
            "   0: 0B00007F:8B2B 00000000:0000 0A 00000000:00000000",  # 127.0.0.11: loopback
            "   1: 00000000:1F90 00000000:0000 0A 00000000:00000000",  # 0.0.0.0:8080
            "   2: 0100007F:2382 00000000:0000 0A 00000000:00000000",  # 127.0.0.1:9090
            "   3: 0201A8C0:0050 0101A8C0:D431 01 00000000:00000000",  # an established connection
            "   0: 00000000000000000000000000000000:1B58 00000000000000000000000000000000:0000 0A 0",  # [::]:7000
            "   1: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 0",  # [::1]:22
            # 127.0.0.1, mapped
            "   2: 0000000000000000FFFF00000100007F:0017 00000000000000000000000000000000:0000 0A 0",
            "   3: 0000000000000000FFFF00000201A8C0:0018 00000000000000000000000000000000:0000 0A 0",  # 192.168.1.2
        ]
    )
    assert listening_in(text) == {8080, 7000, 24}


# --- What an intruder tries ---------------------------------------------------------


async def raw_request(raw_path: bytes, headers: list, method: str = "GET") -> tuple[int, dict, bytes]:
    """The application's answer to a request as Daphne would hand it over, whatever its target."""
    path, _, query = raw_path.partition(b"?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path.decode("latin-1"),
        "raw_path": path,
        "query_string": query,
        "headers": headers,
        "client": ("203.0.113.9", 5000),
        "server": ("testserver", 80),
    }
    messages = []
    sent = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive():
        return sent.pop() if sent else {"type": "http.disconnect"}

    async def send(message):
        messages.append(message)

    await application(scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body


async def test_a_target_that_is_no_path_never_names_another_host(session, upstream):
    session_id, token, port = session
    with socket.socket() as elsewhere:  # what the intruder would like to reach
        elsewhere.bind(("127.0.0.1", 0))
        elsewhere.listen()
        elsewhere.settimeout(0.5)
        other = elsewhere.getsockname()[1]
        headers = [(b"host", f"{port}-{session_id}.{DOMAIN}".encode()), (b"authorization", f"Bearer {token}".encode())]
        for target in (f"@127.0.0.1:{other}/secret", f"http://127.0.0.1:{other}/x", "*", "a", f":{other}/", "\\x"):
            status, _, body = await raw_request(target.encode(), headers)

            assert status == 400, (target, status, body)
            assert json.loads(body)["error"] == "invalid_request"
            with pytest.raises(TimeoutError):
                elsewhere.accept()  # nothing was dialled
    assert upstream.seen == []


async def test_what_the_learners_server_may_not_tell_its_visitors(session, upstream, monkeypatch):
    session_id, token, port = session
    monkeypatch.setattr(
        Handler,
        "extra_headers",
        [
            ("Clear-Site-Data", '"cookies", "storage"'),
            ("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),
            ("Set-Cookie", "playground_browser=forged; Path=/"),
            ("Set-Cookie", "x=1; Domain =testserver; Path=/"),
            ("Set-Cookie", "y=2; domain=ports.test"),
        ],
        raising=False,
    )
    async with asgi_client(Authorization=f"Bearer {token}") as client:
        by_path = await client.get(f"/sessions/{session_id}/ports/{port}/")
        by_host = await client.get("/", headers={"Host": f"{port}-{session_id}.{DOMAIN}"})

    for response, prefix in ((by_path, f"/sessions/{session_id}/ports/{port}"), (by_host, "")):
        assert response.status_code == 200
        assert "clear-site-data" not in response.headers
        cookies = response.headers.get_list("set-cookie")
        assert not [c for c in cookies if c.startswith("playground_browser=")]
        assert not [c for c in cookies if "domain" in c.lower()]
        assert f"x=1; Path={prefix}/" in cookies
    assert "strict-transport-security" not in by_path.headers  # the platform's origin is not the app's


async def test_a_sessions_token_is_kept_from_a_public_port_too(session, upstream):
    session_id, token, port = session
    await sync_to_async(Session.objects.filter(pk=session_id).update)(public_ports=[port])
    async with asgi_client() as client:
        await client.get(f"/sessions/{session_id}/ports/{port}/", headers={"Authorization": f"Bearer {token}"})
        await client.get(f"/sessions/{session_id}/ports/{port}/", headers={"Authorization": "Bearer the-apps-own"})

    first, second = ({name.lower(): value for name, value in seen["headers"].items()} for seen in upstream.seen)
    assert "authorization" not in first
    assert second["authorization"] == "Bearer the-apps-own"


async def test_the_ticket_exchange_sends_the_browser_nowhere_else(session):
    session_id, token, port = session
    ticket = await sync_to_async(_ticket)(session_id, token, port)
    headers = [(b"host", f"{port}-{session_id}.{DOMAIN}".encode())]

    status, answer, _ = await raw_request(f"//evil.example/?{TICKET_PARAMETER}={ticket}".encode(), headers)

    assert status == 302
    assert answer["location"] == "/evil.example/"


async def test_a_ports_cookie_opens_no_websocket_for_another_pages_origin(session):
    session_id, token, _ = session
    async with echo_server() as port:
        await sync_to_async(_listen_on)(session_id, port)
        ticket = await sync_to_async(_ticket)(session_id, token, port)
        host = f"{port}-{session_id}.{DOMAIN}"
        async with asgi_client(Host=host) as client:
            exchanged = await client.get(f"/?{TICKET_PARAMETER}={ticket}")
        cookie = f"{PORT_COOKIE}={exchanged.headers['set-cookie'].split(';')[0].split('=', 1)[1]}".encode()

        async def opened_from(origin: bytes) -> dict:
            headers = [(b"host", host.encode()), (b"cookie", cookie), (b"origin", origin)]
            communicator = WebsocketCommunicator(application, "/", headers=headers)
            assert (await communicator.connect())[0]
            await communicator.send_to(text_data="hi")
            answer = await communicator.receive_output(timeout=3)
            await communicator.disconnect()
            return answer

        assert await opened_from(f"http://{host}".encode()) == {"type": "websocket.send", "text": "hi"}
        assert await opened_from(f"http://9999-attacker.{DOMAIN}".encode()) == {"type": "websocket.close", "code": 4403}


async def test_a_client_gone_in_the_middle_of_its_body_is_no_error(session, upstream):
    session_id, token, port = session
    path = f"/sessions/{session_id}/ports/{port}/upload".encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path.decode(),
        "raw_path": path,
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("203.0.113.9", 5000),
        "server": ("testserver", 80),
    }
    messages = [{"type": "http.disconnect"}, {"type": "http.request", "body": b"x" * 1000, "more_body": True}]
    sent = []

    async def receive():
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await application(scope, receive, send)  # raises nothing

    assert [m for m in sent if m["type"] == "http.response.start" and m["status"] >= 500] == []
