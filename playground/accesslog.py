"""One log line per request and per terminal socket, through logging.

Daphne's own access log prints paths as they are, and a path names its
session; this one goes through the logging filter that hashes session ids
(playground.logcontext), with the client address as the limits see it
(playground.clients). Daphne runs with `-v 0`, which turns its own off.
"""

import logging
import time

from playground.clients import scope_client

logger = logging.getLogger("playground.access")


class AccessLog:
    """ASGI middleware: `<client> <method> <path> <status> <ms>` once each request (or socket) ends."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.application(scope, receive, send)
        started = time.monotonic()
        status = None

        async def send_and_note(message):
            nonlocal status
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
            elif kind == "websocket.accept":
                status = 101
            elif kind in ("websocket.close", "websocket.http.response.start") and status is None:
                status = message.get("status", 403)
            await send(message)

        try:
            await self.application(scope, receive, send_and_note)
        finally:
            method = scope.get("method", "WS")
            milliseconds = (time.monotonic() - started) * 1000
            logger.info("%s %s %s %s %.0fms", scope_client(scope) or "-", method, scope["path"], status, milliseconds)
