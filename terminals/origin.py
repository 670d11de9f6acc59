from channels.security.websocket import WebsocketDenier

from playground.origins import host_allowed, origin_allowed


def handshake_allowed(scope: dict) -> bool:
    """A terminal may be opened only for this site's name, and by a page only from this site.

    The Host must be one of ALLOWED_HOSTS (as for any request): a page on a
    name the attacker controls that resolves to this server (DNS rebinding)
    is same-origin to itself but names the wrong host. Browsers always send
    Origin on a WebSocket handshake, and it must be this site (or a trusted
    origin); command-line clients usually send none, and they carry no
    browser's cookies, so they may connect.
    """
    headers = dict(scope.get("headers") or [])
    host = headers.get(b"host", b"").decode("latin-1")
    if not host_allowed(host):
        return False
    origin = headers.get(b"origin")
    return origin is None or origin_allowed(origin.decode("latin-1"), host)


class OriginCheck:
    """ASGI middleware refusing the WebSocket handshake of a wrong Host or a page from a foreign origin."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not handshake_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
