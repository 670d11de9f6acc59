"""The proxy to a learner's published ports, in front of Django in the web process.

    /sessions/{id}/ports/{port}/...     on the platform's own host
    {port}-{id}.{PLAYGROUND_PORTS_DOMAIN}/...   on a host of the port's own

Both forms carry HTTP (streamed both ways: a response body goes on only as
fast as the client reads it, see playground.server) and WebSockets. Who may
use a port, and where a request for it may go, is the ports service's to say
(sessions_app.services.ports.port_target): the proxy only ever dials the
session's own instance, at its address, on a port something there listens on.

What the learner's server sees: the request as the browser sent it, less the
platform's own credentials (its cookies, and a bearer token of the session),
with the X-Forwarded-* headers of a reverse proxy; under the session's path,
X-Forwarded-Prefix names that path, and the path itself starts after it.

Under the platform's path the learner's pages share the platform's origin.
They are served with a `sandbox` Content-Security-Policy, so that they run as
an origin of their own: their scripts cannot read the platform's cookies or
call its API in the visitor's name. Their cookies are kept to the port's
path. Apps that need an origin of their own (service workers, storage) are
for the port's own host name.
"""

import asyncio
import contextlib
import json
import logging
import re
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import aiohttp
import websockets
from channels.db import database_sync_to_async
from django.conf import settings
from websockets.asyncio.client import connect as websocket_connect
from yarl import URL

from playground.clients import scope_client
from sessions_app import access
from sessions_app.errors import (
    InvalidRequest,
    PlaygroundError,
    PortUnreachable,
    SessionNotFound,
    as_unavailable,
    error_body,
    status_of,
)
from sessions_app.services import ports

logger = logging.getLogger(__name__)

PATH = re.compile(r"^/sessions/(?P<session>[^/?]+)/ports/(?P<port>[0-9]{1,5})(?P<rest>/[^?]*)?(?P<query>\?.*)?$")
HOST_LABEL = re.compile(r"^(?P<port>[0-9]{1,5})-(?P<session>[0-9a-z]+)$")
PORT_COOKIE = "playground_port"
TICKET_PARAMETER = "playground-ticket"
HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
}
# Set by the proxy itself, whatever a client sends.
FORWARDED = {b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto", b"x-forwarded-prefix", b"forwarded"}
# What a learner's server may not say to its visitors' browsers: clear their
# cookies and storage (on the platform's own site too).
NEVER_FROM_PORTS = {b"clear-site-data"}
# ... nor, under the platform's own origin, anything that would hold for the
# whole origin; its own CSP is replaced by the sandbox.
NOT_ON_PLATFORMS_ORIGIN = {
    b"content-security-policy",
    b"content-security-policy-report-only",
    b"strict-transport-security",
    b"service-worker-allowed",
    b"origin-agent-cluster",
}
WEBSOCKET_OWN = {b"host", b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions"}
SANDBOX = b"sandbox allow-scripts allow-forms allow-modals allow-popups allow-popups-to-escape-sandbox allow-downloads"
CONNECT_TIMEOUT = 5.0
POOL_WAIT = 10.0  # seconds a request waits for a connection to its port, connecting included
PER_INSTANCE = 32  # connections to one instance at once, per web process
WEBSOCKET_MAX_MESSAGE = 4 * 1024 * 1024
WEBSOCKET_QUEUE = 4  # messages from a port kept while its client is slow to take them
# WebSocket close codes when the port cannot be used (sent after accepting,
# so that the browser sees them): as the terminal's, see terminals.consumers.
CLOSE_BY_STATUS = {400: 1008, 404: 4404, 409: 4410, 502: 1014, 503: 1013}
CLOSE_CROSS_ORIGIN = 4403


@dataclass(frozen=True)
class Route:
    session_id: str
    port: int
    target: bytes  # the path and query to ask the port for
    prefix: str  # where the port lives under the platform's path; "" on a host of its own
    host: str  # the Host the client asked for
    bare: bool = False  # the port's path without its closing slash


def platform_cookies() -> set[str]:
    return {
        access.BROWSER_COOKIE,
        access.SHARES_COOKIE,
        settings.SESSION_COOKIE_NAME,
        settings.CSRF_COOKIE_NAME,
        PORT_COOKIE,
    }


class PortProxy:
    """ASGI middleware: requests for a port go to the port, the rest to `app`."""

    def __init__(self, app) -> None:
        self.app = app
        self._client: aiohttp.ClientSession | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    @property
    def client(self) -> aiohttp.ClientSession:
        # Made on first use, in the server's event loop (of which tests have
        # one each: a session of another loop is of no use here).
        if self._client is None or self._client_loop is not asyncio.get_running_loop():
            self._client_loop = asyncio.get_running_loop()
            self._client = aiohttp.ClientSession(
                # A connection per request: one kept alive to an instance goes
                # stale when the learner restarts their server (or the instance
                # its address), and its next request would fail; a new one to
                # the instance's bridge costs a fraction of a millisecond.
                # At most PER_INSTANCE of them to one instance: a learner's
                # server that never answers holds up its own requests only.
                connector=aiohttp.TCPConnector(
                    limit=settings.PLAYGROUND_PORTS_CONNECTIONS, limit_per_host=PER_INSTANCE, force_close=True
                ),
                # `connect` counts the wait for a free connection too; no read
                # timeout: a stream (server-sent events, a long poll) may idle.
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=POOL_WAIT, sock_connect=CONNECT_TIMEOUT, sock_read=None
                ),
                auto_decompress=False,  # the client's to decode, as the server sent it
                trust_env=False,  # no proxy from the environment: the instance's address, always
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            )
        return self._client

    async def aclose(self) -> None:
        """Close the connections to ports (of the running event loop's client)."""
        if self._client is not None and self._client_loop is asyncio.get_running_loop():
            await self._client.close()
            self._client = None

    async def __call__(self, scope, receive, send) -> None:
        route = route_of(scope) if scope["type"] in ("http", "websocket") else None
        if route is None:
            return await self.app(scope, receive, send)
        if scope["type"] == "http":
            return await self.http(scope, receive, send, route)
        return await self.websocket(scope, receive, send, route)

    # --- HTTP ---------------------------------------------------------------------

    async def http(self, scope, receive, send, route: Route) -> None:
        headers = dict(scope["headers"])
        if not route.target.startswith(b"/"):
            # `GET @host:port/ HTTP/1.1`, `GET http://host/`, `OPTIONS *`: only a path is asked of a port.
            return await respond_error(send, InvalidRequest("Ask a port for a path, starting with /."))
        if route.bare:
            # /sessions/{id}/ports/{port}: the app's relative links need the slash.
            query = scope["query_string"].decode("latin-1")
            location = f"{route.prefix}/" + (f"?{query}" if query else "")
            return await respond(send, 308, b"", [(b"location", location.encode("latin-1"))])
        port_pass = None
        if not route.prefix:
            ticket = ticket_in(scope)
            if ticket is not None:
                return await self.exchange_ticket(scope, send, route, ticket)
            port_pass = pass_in(headers)
        try:
            target = await find_target(scope, route, port_pass)
        except PlaygroundError as exc:
            return await respond_error(send, exc)
        request_body = await first_body(receive)
        if request_body is None:
            return  # the client left
        first, more = request_body
        body = RequestBody(first, receive) if more else None
        try:
            url = upstream_url("http", target, route.target)
        except InvalidRequest as exc:
            return await respond_error(send, exc)
        try:
            response = await self.client.request(
                scope["method"],
                url,
                headers=[(n.decode("latin-1"), v.decode("latin-1")) for n, v in upstream_headers(scope, route, target)],
                data=body.chunks() if body is not None else (first or None),
                allow_redirects=False,
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            if body is not None and body.client_gone:
                return  # it left while its body was on its way: nobody to answer
            logger.info("port %s of session %s: %s", route.port, route.session_id, exc)
            return await respond_error(send, PortUnreachable(log_message=str(exc)))
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": downstream_headers(response.raw_headers, route, target),
                }
            )
            await pump_body(response, receive, send)
        finally:
            response.release()

    async def exchange_ticket(self, scope, send, route: Route, ticket: str) -> None:
        """The page's ticket becomes this host's cookie, and the browser asks again without it."""
        port_pass = ports.port_pass_from_ticket(ticket)
        if port_pass is None or (port_pass.session_id, port_pass.port) != (route.session_id, route.port):
            return await respond_error(
                send, SessionNotFound(log_message=f"a ticket not for port {route.port} of {route.session_id}")
            )
        query = [(k, v) for k, v in parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)]
        kept = urlencode([(k, v) for k, v in query if k != TICKET_PARAMETER])
        cookie = SimpleCookie()
        cookie[PORT_COOKIE] = ports.port_pass_cookie(port_pass)
        morsel = cookie[PORT_COOKIE]
        morsel.update({"path": "/", "httponly": True, "samesite": "Lax", "max-age": ports.PASS_MAX_AGE})
        if scope.get("scheme") in ("https", "wss"):
            morsel["secure"] = True
        # The path as the browser sent it, never `//elsewhere`.
        path = "/" + route.target.split(b"?", 1)[0].decode("latin-1").lstrip("/")
        location = path + (f"?{kept}" if kept else "")
        await respond(
            send,
            302,
            b"",
            [(b"location", location.encode("latin-1")), (b"set-cookie", morsel.OutputString().encode("latin-1"))],
        )

    # --- WebSockets -------------------------------------------------------------------

    async def websocket(self, scope, receive, send, route: Route) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        headers = dict(scope["headers"])
        port_pass = pass_in(headers) if not route.prefix else None
        origin = headers.get(b"origin", b"").decode("latin-1")
        if port_pass is not None and origin and urlsplit(origin).netloc.lower() != route.host:
            # The port's cookie rides along with a socket any page of the
            # ports' domain opens: only the port's own pages may use it.
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": CLOSE_CROSS_ORIGIN})
            return
        try:
            target = await find_target(scope, route, port_pass)
            uri = str(upstream_url("ws", target, route.target))
        except PlaygroundError as exc:
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": CLOSE_BY_STATUS.get(status_of(exc) or 404, 1011)})
            return
        try:
            upstream = await websocket_connect(
                uri,
                additional_headers=[
                    (name.decode("latin-1"), value.decode("latin-1"))
                    for name, value in upstream_headers(scope, route, target)
                    if name not in WEBSOCKET_OWN and name != b"origin" and name != b"sec-websocket-protocol"
                ],
                origin=headers.get(b"origin", b"").decode("latin-1") or None,
                subprotocols=scope.get("subprotocols") or None,
                open_timeout=CONNECT_TIMEOUT,
                ping_interval=None,  # the browser's and the server's own business
                max_size=WEBSOCKET_MAX_MESSAGE,
                max_queue=WEBSOCKET_QUEUE,  # then it stops reading: the port's server waits
                compression=None,
                proxy=None,
            )
        except (OSError, websockets.exceptions.WebSocketException, TimeoutError) as exc:
            logger.info("websocket to port %s of session %s: %s", route.port, route.session_id, exc)
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": CLOSE_BY_STATUS[502]})
            return
        await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})
        async with upstream:
            await relay_websocket(upstream, receive, send)


# --- Routing and access -------------------------------------------------------------------


def route_of(scope) -> Route | None:
    """The session and port a request is for, if it is for one."""
    raw = scope.get("raw_path") or scope["path"].encode("utf-8")
    query = scope.get("query_string") or b""
    target = raw + (b"?" + query if query else b"")
    host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1").lower()
    domain = settings.PLAYGROUND_PORTS_DOMAIN
    if domain:
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name.endswith("." + domain) and (match := HOST_LABEL.match(name[: -len(domain) - 1])):
            return Route(match["session"], int(match["port"]), target, "", host)
    match = PATH.match(raw.decode("latin-1"))
    if match is None:
        return None
    prefix = f"/sessions/{match['session']}/ports/{match['port']}"
    rest = (match["rest"] or "/").encode("latin-1")
    target = rest + (b"?" + query if query else b"")
    return Route(unquote(match["session"]), int(match["port"]), target, prefix, host, bare=match["rest"] is None)


def upstream_url(scheme: str, target: ports.PortTarget, path_and_query: bytes) -> URL:
    """The URL of the request at the port: the instance's address and port, and the path asked for.

    Built from its parts, never by pasting text: nothing in the path can
    name another host (`@host:port/...`), and it is checked all the same.
    """
    text = path_and_query.decode("latin-1")
    path, _, query = text.partition("?")
    if not path.startswith("/"):
        raise InvalidRequest("Ask a port for a path, starting with /.")
    try:
        url = URL.build(
            scheme=scheme, host=target.address, port=target.port, path=path, query_string=query, encoded=True
        )
    except (ValueError, TypeError):
        raise InvalidRequest("That path cannot be asked of a port.") from None
    if (url.host, url.port) != (target.address, target.port):
        raise InvalidRequest("That path cannot be asked of a port.")
    return url


async def find_target(scope, route: Route, port_pass) -> ports.PortTarget:
    try:
        return await _find_target(scope, route, port_pass)
    except Exception as exc:
        unavailable = as_unavailable(exc)
        if unavailable is None:
            raise
        raise unavailable from None


@database_sync_to_async
def _find_target(scope, route: Route, port_pass) -> ports.PortTarget:
    credentials = access.scope_credentials(scope, with_user=True)
    return ports.port_target(session_id=route.session_id, port=route.port, credentials=credentials, port_pass=port_pass)


def ticket_in(scope) -> str | None:
    for name, value in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True):
        if name == TICKET_PARAMETER:
            return value
    return None


def pass_in(headers: dict) -> ports.PortPass | None:
    cookies = parse_cookies(headers.get(b"cookie", b""))
    value = cookies.get(PORT_COOKIE)
    return ports.port_pass_from_cookie(value) if value else None


def parse_cookies(header: bytes) -> dict[str, str]:
    cookies = {}
    for part in header.decode("latin-1").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name:
            cookies.setdefault(name, value)
    return cookies


# --- Headers ------------------------------------------------------------------------------


def upstream_headers(scope, route: Route, target: ports.PortTarget) -> list[tuple[bytes, bytes]]:
    """The client's headers for the port: less hop-by-hop ones and the platform's credentials."""
    own = platform_cookies()
    kept = []
    for name, value in scope["headers"]:
        name = name.lower()
        if name in HOP_BY_HOP or name in FORWARDED or name == b"host":
            continue  # (one Host below: the one the request was routed by)
        if name == b"authorization" and target.strip_authorization:
            continue
        if name == b"cookie":
            value = "; ".join(
                part.strip()
                for part in value.decode("latin-1").split(";")
                if part.strip() and part.strip().partition("=")[0] not in own
            ).encode("latin-1")
            if not value:
                continue
        kept.append((name, value))
    client = scope_client(scope)
    scheme = scope.get("scheme", "http").replace("ws", "http")
    kept += [
        (b"host", route.host.encode("latin-1")),
        (b"x-forwarded-host", route.host.encode("latin-1")),
        (b"x-forwarded-proto", scheme.encode("latin-1")),
    ]
    if client:
        kept.append((b"x-forwarded-for", client.encode("latin-1")))
    if route.prefix:
        kept.append((b"x-forwarded-prefix", route.prefix.encode("latin-1")))
    return kept


def downstream_headers(raw: list[tuple[bytes, bytes]], route: Route, target: ports.PortTarget) -> list:
    headers = []
    for name, value in raw:
        name = name.lower()
        if name in HOP_BY_HOP or name in NEVER_FROM_PORTS or (route.prefix and name in NOT_ON_PLATFORMS_ORIGIN):
            continue
        if route.prefix and name == b"location":
            value = _rebased_location(value.decode("latin-1"), route, target).encode("latin-1")
        elif name == b"set-cookie":
            cookie = _cookie_of_port(value.decode("latin-1"), route.prefix)
            if cookie is None:
                continue
            value = cookie.encode("latin-1")
        headers.append((name, value))
    if route.prefix:
        headers.append((b"content-security-policy", SANDBOX))
    return headers


def _rebased_location(location: str, route: Route, target: ports.PortTarget) -> str:
    """A redirect of the learner's app, to where it lives under the platform's path."""
    parts = urlsplit(location)
    if parts.netloc and parts.netloc not in (f"{target.address}:{target.port}", target.address, route.host):
        return location  # another site's
    if not parts.netloc and not location.startswith("/"):
        return location  # relative: right as it is
    rest = parts.path or "/"
    if rest.startswith(route.prefix + "/"):
        rest = rest[len(route.prefix) :]
    return (
        route.prefix
        + rest
        + (f"?{parts.query}" if parts.query else "")
        + (f"#{parts.fragment}" if parts.fragment else "")
    )


def _cookie_of_port(set_cookie: str, prefix: str) -> str | None:
    """A cookie of the learner's app, for its port alone: never for another domain (the
    platform's, or the ports' whole domain), under the platform's path only below the
    port's prefix, and never in the name of one of the platform's own cookies."""
    name_value, *attributes = set_cookie.split(";")
    if name_value.strip().partition("=")[0].strip() in platform_cookies():
        return None
    kept = [name_value.strip()]
    path = "/"
    for attribute in attributes:
        key, _, value = attribute.strip().partition("=")
        key = key.strip().lower()
        if key == "path":
            path = value.strip() or "/"
        elif key and key != "domain":
            kept.append(attribute.strip())
    if not prefix:
        kept.append(f"Path={path}")
        return "; ".join(kept)
    kept.append(f"Path={prefix}{path if path.startswith('/') else '/' + path}")
    return "; ".join(kept)


# --- Bodies -------------------------------------------------------------------------------


async def first_body(receive) -> tuple[bytes, bool] | None:
    message = await receive()
    if message["type"] == "http.disconnect":
        return None
    return message.get("body", b""), message.get("more_body", False)


class RequestBody:
    """The rest of a request's body, for the port, as the client sends it."""

    def __init__(self, first: bytes, receive) -> None:
        self.first = first
        self.receive = receive
        self.client_gone = False

    async def chunks(self):
        yield self.first
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.client_gone = True
                raise ConnectionResetError("the client left in the middle of its request's body")
            yield message.get("body", b"")
            if not message.get("more_body", False):
                return


async def pump_body(response: aiohttp.ClientResponse, receive, send) -> None:
    """The port's answer to the client, as it comes, as fast as the client reads it.

    Stops as soon as the client leaves (Daphne says so on `receive`).
    """

    async def copy() -> None:
        async for chunk in response.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def client_left() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    copying, watching = asyncio.create_task(copy()), asyncio.create_task(client_left())
    try:
        done, _ = await asyncio.wait({copying, watching}, return_when=asyncio.FIRST_COMPLETED)
        if copying in done:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                copying.result()
    finally:
        for task in (copying, watching):
            task.cancel()
        await asyncio.gather(copying, watching, return_exceptions=True)


async def relay_websocket(upstream, receive, send) -> None:
    async def to_port() -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                code = message.get("code", 1000)
                await upstream.close(code=code if code == 1000 or 3000 <= code < 5000 else 1000)
                return
            if message["type"] == "websocket.receive":
                await upstream.send(message["text"] if message.get("text") is not None else message.get("bytes", b""))

    async def to_client() -> None:
        try:
            async for data in upstream:
                key = "text" if isinstance(data, str) else "bytes"
                await send({"type": "websocket.send", key: data})
        except websockets.exceptions.ConnectionClosedError:
            pass
        code = upstream.close_code if upstream.close_code and upstream.close_code not in (1005, 1006) else 1000
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": code})

    pumps = [asyncio.create_task(to_port()), asyncio.create_task(to_client())]
    try:
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)


# --- Answers of the proxy itself ----------------------------------------------------------


async def respond(send, status: int, body: bytes, headers: list | None = None) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-length", str(len(body)).encode()), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def respond_error(send, exc: PlaygroundError) -> None:
    status = status_of(exc) or 500
    (logger.warning if status >= 500 else logger.info)("%s: %s", exc.reason, exc.log_message)
    headers = [(b"content-type", b"application/json")]
    if (retry_after := getattr(exc, "retry_after", None)) is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await respond(send, status, json.dumps(error_body(exc.reason, exc.message)).encode(), headers)
