"""A small client of the terminal WebSocket, for integration tests and benchmarks."""

import asyncio
import json
import time

import websockets

from tests.support.api import api


class Terminal:
    """One viewer of a session's terminal: raw output collected, status events kept apart."""

    PROMPT = b"$ "  # the end of the instance's coloured prompt

    def __init__(self, connection, *, ack: bool) -> None:
        self.connection = connection
        self.output = bytearray()
        self.events: list[dict] = []
        self.ack = ack
        self.received = 0
        self._acked = 0
        self._after_last_command = 0

    @classmethod
    async def open(
        cls,
        base_url: str,
        session_id: str,
        *,
        cols: int = 80,
        rows: int = 24,
        ack: bool = True,
        token: str | None = None,
        **kwargs,
    ) -> "Terminal":
        """Open the session's terminal with `token` (by default, the access
        token `api` got when it opened the session; "" for none)."""
        url = base_url.replace("http://", "ws://") + f"/sessions/{session_id}/ws"
        token = api.token(session_id) if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        connection = await websockets.connect(url, max_size=None, additional_headers=headers, **kwargs)
        terminal = cls(connection, ack=ack)
        await terminal.resize(cols, rows)
        return terminal

    async def resize(self, cols: int, rows: int) -> None:
        await self.connection.send(json.dumps({"type": "resize", "cols": cols, "rows": rows}))

    async def type(self, text: str | bytes) -> None:
        await self.connection.send(text.encode() if isinstance(text, str) else text)

    async def _receive(self, timeout: float) -> None:
        frame = await asyncio.wait_for(self.connection.recv(), timeout)
        if isinstance(frame, str):
            self.events.append(json.loads(frame))
            return
        self.output += frame
        self.received += len(frame)
        if self.ack and self.received - self._acked >= 64 * 1024:
            self._acked = self.received
            await self.connection.send(json.dumps({"type": "ack", "bytes": self.received}))

    async def read_until(self, marker: bytes, *, timeout: float = 20, start: int = 0) -> int:
        """Receive until marker appears in the output after offset start; return where it ends.

        The search only looks at what arrived since the last look, so waiting
        costs the same however long the output already is.
        """
        deadline = time.monotonic() + timeout
        searched = start
        while True:
            found = self.output.find(marker, searched)
            if found >= 0:
                return found + len(marker)
            searched = max(start, len(self.output) - len(marker) + 1)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                tail = bytes(self.output[-300:])
                raise AssertionError(f"{marker!r} did not arrive within {timeout}s; last output: {tail!r}")
            await self._receive(remaining)

    async def wait_for_status(self, status: str, *, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.get("status") == status:
                    return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {status!r} status within {timeout}s; events: {self.events}")
            await self._receive(remaining)

    async def run(self, command: str, *, timeout: float = 20) -> bytes:
        """Type a command and return its output, up to a marker printed after it."""
        # Type only at a prompt: input typed while the shell is busy is echoed
        # twice, once by the TTY and again by readline.
        await self.read_until(self.PROMPT, timeout=timeout, start=self._after_last_command)
        marker = f"done-{time.monotonic_ns()}"
        start = len(self.output)
        # The marker is split in the command line so that only its output matches.
        half = len(marker) // 2
        await self.type(f"{command}; echo '{marker[:half]}''{marker[half:]}'\r")
        end = await self.read_until(marker.encode() + b"\r\n", timeout=timeout, start=start)
        self._after_last_command = end
        # Drop the echo of the command line and the shell's bracketed-paste switch.
        output = bytes(self.output[start:end]).split(b"\r\n", 1)[1]
        return output.removeprefix(b"\x1b[?2004l\r")

    async def close(self) -> None:
        await self.connection.close()
