"""Plain ASGI applications for the tests of playground.server (no Django)."""

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
