"""Daphne, with flow control of response bodies.

Daphne hands every `http.response.body` an application sends straight to
Twisted, which keeps what the client has not read yet in memory: a proxied
100 MB download read slowly would sit whole in the web process. Here a
response's body waits while Twisted's send buffer is full (Twisted pauses the
connection's producer) and goes on when it drains, as uvicorn and hypercorn
do. Everything else is Daphne's.

Run as Daphne's command line: `python -m playground.server [daphne options] app`.
"""

import asyncio

from daphne.cli import CommandLineInterface
from daphne.http_protocol import WebRequest
from daphne.server import Server
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


class FlowControlledServer(Server):
    async def handle_reply(self, protocol, message):
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


class FlowControlledCommandLine(CommandLineInterface):
    server_class = FlowControlledServer


if __name__ == "__main__":
    FlowControlledCommandLine.entrypoint()
