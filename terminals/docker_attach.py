"""Asynchronous access to an instance's own TTY on the Docker engine.

The Docker SDK is synchronous; a terminal needs a socket the event loop can
read and write. So the attach request, a single HTTP upgrade, is made here on
an asyncio connection to the same engine the SDK talks to (its unix socket or
plain TCP, from DOCKER_HOST). The stream after the upgrade is the raw TTY:
no framing, because the container runs with a TTY.
"""

import asyncio
import os
from urllib.parse import urlsplit

import docker

API_VERSION = "v1.41"


class AttachError(Exception):
    pass


def _docker_address() -> tuple[str, str | tuple[str, int]]:
    url = urlsplit(os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"))
    if url.scheme == "unix":
        return "unix", url.path
    if url.scheme in ("tcp", "http"):
        return "tcp", (url.hostname or "127.0.0.1", url.port or 2375)
    raise AttachError(f"terminals need DOCKER_HOST as unix:// or tcp:// (without TLS), not {url.scheme}://")


async def _open() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    kind, address = _docker_address()
    if kind == "unix":
        return await asyncio.open_unix_connection(address, limit=1 << 20)
    host, port = address
    return await asyncio.open_connection(host, port, limit=1 << 20)


async def attach_tty(container: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Attach to a container's TTY: output arrives on the reader, input goes to the writer.

    Several attaches to one container share its TTY: each sees all output,
    and input from any of them reaches the shell.
    """
    reader, writer = await _open()
    writer.write(
        (
            f"POST /{API_VERSION}/containers/{container}/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\n"
            "Host: docker\r\nUpgrade: tcp\r\nConnection: Upgrade\r\nContent-Length: 0\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    if " 101 " not in status_line and " 200 " not in status_line:
        writer.close()
        raise AttachError(f"attach to {container} refused: {status_line}")
    return reader, writer


_client: docker.DockerClient | None = None


def _sync_client() -> docker.DockerClient:
    global _client
    if _client is None:
        _client = docker.from_env(timeout=10)
    return _client


async def resize_tty(container: str, *, cols: int, rows: int) -> None:
    """Resize the container's TTY; every attached viewer sees the new size."""
    await asyncio.to_thread(_sync_client().api.resize, container, height=rows, width=cols)
