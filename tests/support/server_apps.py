"""Plain ASGI applications for the tests of playground.server (no Django)."""

import asyncio
import hashlib

sent = 0  # bytes `streaming` has handed to the server so far


def peak_memory_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


async def streaming(scope, receive, send):
    """GET /: 200 MiB as fast as the server takes them; GET /sent: how much so far."""
    global sent
    if scope["type"] != "http":
        return
    if scope["path"] == "/sent":
        body = str(sent).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
        return
    length = [(b"content-length", str(200 << 20).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": length})
    chunk = b"x" * (64 << 10)
    for _ in range(3200):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        sent += len(chunk)
    await send({"type": "http.response.body", "body": b""})


STARTED_PEAK = peak_memory_kib()  # when the server imported this module, before any request


async def digest(scope, receive, send):
    """POST /: the body's size and sha256, and how much the process's peak memory grew since it started (KiB)."""
    if scope["type"] != "http":
        return
    before = STARTED_PEAK
    hashed, size = hashlib.sha256(), 0
    while True:
        message = await receive()
        hashed.update(message.get("body", b""))
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = f"{size} {hashed.hexdigest()} {peak_memory_kib() - before}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


ws_sent = 0  # bytes `websocket_flood` has handed to the server so far


async def websocket_flood(scope, receive, send):
    """A WebSocket that sends 600 MiB as fast as the server takes them; HTTP GET: how much so far."""
    global ws_sent
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(ws_sent).encode()})
        return
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    message = b"x" * (1 << 20)
    for _ in range(600):
        await send({"type": "websocket.send", "bytes": message})
        ws_sent += len(message)


async def websocket_sink(scope, receive, send):
    """A WebSocket that accepts and then never reads what it is sent."""
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        await asyncio.sleep(3600)


async def stalled(scope, receive, send):
    """Any request: never answered, its task waiting in wait_for_nothing."""
    if scope["type"] == "http":
        await wait_for_nothing()


async def wait_for_nothing():
    await asyncio.Event().wait()


async def heap(scope, receive, send):
    """GET /: how many objects the collector had frozen when the server started answering."""
    import gc

    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(gc.get_freeze_count()).encode()})
