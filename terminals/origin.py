from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings


def origin_allowed(scope: dict) -> bool:
    """A browser page may open a terminal only from this site (or a trusted origin).

    Browsers always send Origin on a WebSocket handshake; command-line clients
    usually send none, and they carry no user's cookies, so they may connect.
    """
    headers = dict(scope.get("headers") or [])
    origin = headers.get(b"origin")
    if origin is None:
        return True
    origin = origin.decode("latin-1").strip().lower()
    if origin in {o.lower() for o in settings.CSRF_TRUSTED_ORIGINS}:
        return True
    host = headers.get(b"host", b"").decode("latin-1").strip().lower()
    parsed = urlsplit(origin)
    return parsed.scheme in {"http", "https"} and bool(host) and parsed.netloc == host


class OriginCheck:
    """ASGI middleware refusing the WebSocket handshake of a page from a foreign origin."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
