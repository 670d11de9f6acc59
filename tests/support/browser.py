"""A real headless Chromium for the browser tests, and a journal of what its pages did.

A page that stalls (a script that never arrives, a socket that never opens)
fails its test with a timeout that says only what was missing on the page;
the journal says what the browser asked for and what never came back.
"""

import time

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def errors_of_the_page(console_errors: list[str]) -> list[str]:
    # Chromium notices the host's network interfaces change when the platform
    # makes an instance's bridge, and retries what it was loading: not an
    # error of the page.
    return [error for error in console_errors if "ERR_NETWORK_CHANGED" not in error]


class BrowserJournal:
    """Every request, WebSocket, console message and page error of a browser's contexts, timed."""

    def __init__(self) -> None:
        self.began = time.monotonic()
        self.lines: list[str] = []
        self.pending: dict[object, str] = {}

    def watch(self, context) -> None:
        context.on("request", self._request)
        context.on("requestfinished", lambda request: self._ended(request, "done"))
        context.on("requestfailed", lambda request: self._ended(request, f"failed: {request.failure}"))
        context.on("console", lambda message: self._note(f"console {message.type}: {message.text}"))
        context.on("weberror", lambda error: self._note(f"page error: {error.error}"))
        context.on("page", lambda page: page.on("websocket", self._websocket))

    def report(self) -> str:
        unanswered = [f"  {what}" for what in self.pending.values()] or ["  nothing"]
        return "\n".join([*self.lines, "still waiting for:", *unanswered])

    def _request(self, request) -> None:
        what = f"{request.method} {request.url}"
        self.pending[request] = what
        self._note(f"→ {what}")

    def _ended(self, request, how: str) -> None:
        what = self.pending.pop(request, f"{request.method} {request.url}")
        self._note(f"← {what} {how}")

    def _websocket(self, socket) -> None:
        self._note(f"websocket {socket.url} opened")
        socket.on("close", lambda closed: self._note(f"websocket {closed.url} closed"))

    def _note(self, line: str) -> None:
        self.lines.append(f"{time.monotonic() - self.began:7.3f} s  {line}")
