"""Daphne, with flow control of bodies both ways.

- Responses: Daphne hands every `http.response.body` an application sends
  straight to Twisted, which keeps what the client has not read yet in
  memory: a proxied 100 MB download read slowly would sit whole in the web
  process. Here a response's body waits while Twisted's send buffer is full
  (Twisted pauses the connection's producer) and goes on when it drains, as
  uvicorn and hypercorn do.
- WebSockets, likewise: a message sent waits while the client's connection
  cannot take more, and a client's messages stop being read from its
  connection while the application has more than INBOUND_HIGH bytes of them
  to take (a learner's page flooding a server that does not read, through
  the ports proxy, would otherwise pile up in the web process).
- Requests: Twisted receives a large request body into a temporary file,
  and Daphne then reads all of it into the application's queue at once
  (django/daphne#483): a 100 MB upload would sit whole in memory. Here the
  application's `receive()` reads the body from that file a piece at a
  time, as it asks.

- The heap: once the application is loaded, what is alive is frozen out of
  the cyclic collector's passes (settle_heap).

Everything else is Daphne's.

Run as Daphne's command line: `python -m playground.server [daphne options] app`.
`kill -USR1` the process to have the stack of each of its threads, and what
each of its event loop's tasks awaits, printed to its standard error: a web
process that stops answering says where it waits.
"""

import asyncio
import faulthandler
import gc
import signal
import sys
from functools import partial
from importlib import import_module

from daphne.cli import CommandLineInterface
from daphne.http_protocol import WebRequest
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer


@implementer(IPushProducer)
class Drain:
    """Told by Twisted when the client's connection can take more."""

    def __init__(self) -> None:
        self.writable = asyncio.Event()
        self.writable.set()

    def pauseProducing(self) -> None:  # noqa: N802 (Twisted's interface)
        self.writable.clear()

    def resumeProducing(self) -> None:  # noqa: N802
        self.writable.set()

    def stopProducing(self) -> None:  # noqa: N802 (the connection is gone: nothing more to wait for)
        self.writable.set()


REQUEST_PIECE = 256 * 1024  # bytes of a request body a receive() hands over at most


class _BodyRead(asyncio.Queue):
    """An application's queue of messages whose request body is read as it is asked for."""

    def __init__(self, body) -> None:
        super().__init__()
        self.body = body  # Twisted's: a BytesIO, or a temporary file past 100 kB
        self.done = False

    def put_nowait(self, message: dict) -> None:
        if message.get("type") != "http.request":  # Daphne's own copy of the body is left out
            super().put_nowait(message)

    async def get(self) -> dict:
        if self.done:
            return await super().get()
        try:
            piece = self.body.read(REQUEST_PIECE)
        except ValueError:  # closed: the connection is gone
            piece = b""
        self.done = len(piece) < REQUEST_PIECE
        return {"type": "http.request", "body": piece, "more_body": not self.done}


class _Drained:
    """What Daphne reads the body from: nothing, so that it queues an empty one (left out, above)."""

    def __init__(self, body) -> None:
        self._body = body

    @property
    def closed(self) -> bool:
        return self._body.closed

    def read(self, size: int = -1) -> bytes:
        return b""

    def __getattr__(self, name):  # Twisted's own uses (seek, close) reach the real body
        return getattr(self._body, name)


INBOUND_HIGH = 1024 * 1024  # bytes of a WebSocket's messages waiting for the application before reading stops
INBOUND_LOW = 256 * 1024  # ... and below which it reads again


def _message_size(message: dict) -> int:
    return len(message.get("bytes") or b"") + len(message.get("text") or "")


class _Inbound(asyncio.Queue):
    """A WebSocket's messages for the application: past INBOUND_HIGH bytes, the connection stops being read."""

    def __init__(self, protocol) -> None:
        super().__init__()
        self.protocol = protocol
        self.queued = 0
        self.paused = False

    def put_nowait(self, message: dict) -> None:
        super().put_nowait(message)
        self.queued += _message_size(message)
        transport = self.protocol.transport
        if self.queued > INBOUND_HIGH and not self.paused and transport is not None:
            self.paused = True
            transport.pauseProducing()

    async def get(self) -> dict:
        message = await super().get()
        self.queued -= _message_size(message)
        transport = self.protocol.transport
        if self.paused and self.queued < INBOUND_LOW:
            self.paused = False
            if transport is not None:
                transport.resumeProducing()
        return message


class FlowControlledServer(Server):
    def run(self):
        settle_heap()
        super().run()

    def create_application(self, protocol, scope):
        """Daphne's, but an HTTP request's body goes to the application as it reads it,
        and a WebSocket's messages as fast as the application takes them."""
        if scope.get("type") == "websocket" and isinstance(protocol, WebSocketProtocol):
            queue = _Inbound(protocol)
        elif scope.get("type") == "http" and isinstance(protocol, WebRequest):
            queue = _BodyRead(protocol.content)
            protocol.content = _Drained(protocol.content)
        else:
            return super().create_application(protocol, scope)
        assert "application_instance" not in self.connections[protocol]
        scope.setdefault("asgi", {"version": "3.0"})
        application_instance = self.application(
            scope=scope, receive=queue.get, send=partial(self.handle_reply, protocol)
        )
        if protocol not in self.connections:
            return None
        self.connections[protocol]["application_instance"] = asyncio.ensure_future(
            application_instance, loop=asyncio.get_event_loop()
        )
        return queue

    async def handle_reply(self, protocol, message):
        if isinstance(protocol, WebSocketProtocol) and message.get("type") == "websocket.send":
            return await self._send_websocket(protocol, message)
        if not isinstance(protocol, WebRequest) or message.get("type") not in (
            "http.response.start",
            "http.response.body",
        ):
            return await super().handle_reply(protocol, message)
        connection = self.connections.get(protocol, {})
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            # Twisted lets a channel serve its next request only once the
            # producer of this one is gone.
            if connection.pop("drain", None) is not None and protocol.producer is not None:
                protocol.unregisterProducer()
        await super().handle_reply(protocol, message)
        if message["type"] == "http.response.start" and protocol.channel is not None and protocol.producer is None:
            drain = connection["drain"] = Drain()
            # A channel already waiting for its transport does not say so again.
            if getattr(protocol.channel, "_waitingForTransport", False):
                drain.pauseProducing()
            protocol.registerProducer(drain, True)
        elif message["type"] == "http.response.body" and (drain := connection.get("drain")) is not None:
            await drain.writable.wait()

    async def _send_websocket(self, protocol, message) -> None:
        await super().handle_reply(protocol, message)
        connection = self.connections.get(protocol)
        transport = protocol.transport
        if connection is None or transport is None or not hasattr(transport, "registerProducer"):
            return
        drain = connection.get("drain")
        if drain is None:
            # The connection's producer was the HTTP channel it was upgraded
            # from, which has nothing left to say: the drain takes its place.
            drain = connection["drain"] = Drain()
            if getattr(transport, "producer", None) is not None:
                if getattr(transport, "producerPaused", False):
                    drain.pauseProducing()
                transport.unregisterProducer()
            transport.registerProducer(drain, True)
        await drain.writable.wait()


class FlowControlledCommandLine(CommandLineInterface):
    server_class = FlowControlledServer


def settle_heap() -> None:
    """Load what the first requests would, then leave every object alive out of the cyclic collector's passes.

    A full pass walks every object it tracks, holding the event loop all the
    while: with Django's hundreds of thousands of objects, 140-560 ms of
    every terminal's keystrokes waiting, several times a minute under load.
    What is alive once the application is loaded lives as long as the process.
    """
    from django.conf import settings

    if settings.configured:
        import_module(settings.ROOT_URLCONF)  # and with it every view and what it uses
    gc.collect()
    gc.freeze()


def print_stacks(signum, frame) -> None:
    """Where each thread is, and what each task of the event loop awaits, on standard error."""
    faulthandler.dump_traceback(all_threads=True)
    try:
        tasks = asyncio.all_tasks(asyncio.get_running_loop())
    except RuntimeError:  # the loop is not running (yet, or any more)
        tasks = set()
    print(f"\n{len(tasks)} tasks of the event loop:", file=sys.stderr)
    for task in tasks:
        print(f"{task.get_name()}, awaiting:", file=sys.stderr)
        for awaited in awaits_of(task.get_coro()):
            code = awaited.f_code
            print(f'  File "{code.co_filename}", line {awaited.f_lineno} in {code.co_name}', file=sys.stderr)
    sys.stderr.flush()


def awaits_of(coroutine):
    """The frames of a coroutine and of what it awaits, down to the innermost."""
    while coroutine is not None:
        frame = getattr(coroutine, "cr_frame", None) or getattr(coroutine, "gi_frame", None)
        if frame is not None:
            yield frame
        coroutine = getattr(coroutine, "cr_await", None) or getattr(coroutine, "gi_yieldfrom", None)


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, print_stacks)
    FlowControlledCommandLine.entrypoint()
