"""The byte pump between an instance's TTY and the browsers that show it.

Each web process keeps one TerminalHub per session that has viewers there:
one attachment to the instance's own TTY (through the backend: attach and
resize), shared by all of the process's viewers of that session. Several
attachments share one TTY, so hubs in other processes see the same output
and feed the same shell.

Hubs of one session coordinate through the channel layer, with low-rate
messages only:
- the TTY's size is the smallest viewport among all viewers: each hub
  announces its own viewers' smallest size and resizes the TTY to the
  smallest of all announcements;
- a hub that starts asks its peers for their recent output (the scrollback),
  so a viewer that reconnects to another process still sees what was there.

The scrollback is also kept in the cache every few seconds (Redis in
production), so that after the web process restarts the viewers that
reconnect still see what was on their screen.

Flow control: output is queued per viewer. The hub stops reading from Docker
while any viewer is paused or has more than HIGH_WATER bytes queued or sent
but not acknowledged, and reads again once every viewer is below LOW_WATER.
The shell then blocks on its own TTY, so nothing buffers without bound.

Watches: what a viewer may ask to be told about the instance every so often
(its stats), as JSON events beside the output. The hub measures each kind
once a period for all of its viewers that want it, and only while one does.
"""

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.core.cache import cache

from sessions_app.backends import backend_for
from sessions_app.backends.base import AttachError, Backend
from sessions_app.events import session_group
from sessions_app.models import Instance

logger = logging.getLogger(__name__)

# Output is read, and sent, in turns: each busy terminal of the process
# reads (and sends) its share of READ_BUDGET, then lets the others (and every
# typed key's echo) have the event loop. One terminal alone reads 256 KiB at
# a time (its throughput); twenty flooding ones 13 KiB each, so a keystroke
# waits for one round of 256 KiB of work, not twenty.
#
# And when several terminals flood at once, together they get
# PLAYGROUND_TERMINAL_FLOOD_RATE bytes a second, shared evenly: a flood costs
# CPU all along its way (the program, the TTY, Docker's shim and engine, this
# process), and on a small host twenty `yes` would otherwise leave none for
# everyone else's keystrokes and new instances. The hub then simply reads
# later, and the flooding program blocks on its TTY. A terminal that floods
# alone is not held back, and a quiet one never is.
READ_BUDGET = 256 * 1024
MIN_READ = 8 * 1024
BUSY_FOR = 0.5  # seconds a terminal counts as flooding after its last full read
SCROLLBACK_BYTES = 256 * 1024
HIGH_WATER = 1024 * 1024
LOW_WATER = 256 * 1024
DEFAULT_SIZE = (80, 24)
DEFAULT_SIZE_AFTER = 0.5  # seconds without any viewer's size before the TTY gets DEFAULT_SIZE
PEER_REPLY_WAIT = 0.15
PEER_SIZE_TTL = 90.0
PEER_ANNOUNCE_EVERY = 30.0
LINGER_SECONDS = 60.0  # a hub with no viewers keeps its scrollback this long for a reconnect
SCROLLBACK_SAVE_EVERY = 2.0  # seconds between copies of a changing scrollback to the cache
SCROLLBACK_KEPT_FOR = 3600  # seconds the cache keeps the copy of a session nobody watches


@dataclass(frozen=True)
class Watch:
    """Something of the instance a hub measures every `every()` seconds while a viewer wants it.

    `measure` blocks (it asks the engine), so it runs in a thread of its own;
    what it returns is sent as `{"type": <kind>, **figures}`. A measure that
    fails is logged and skipped: the terminal goes on.
    """

    measure: Callable[[Backend, Instance], dict]
    every: Callable[[], float]  # read at every turn, so that tests may shorten it
    # Sent only when it differs from the last one sent (and once to a viewer
    # that starts watching), rather than every period.
    changes_only: bool = False


# The kinds a viewer may watch, by the type of their control message and event.
WATCHES: dict[str, Watch] = {
    "stats": Watch(
        measure=lambda backend, instance: dataclasses.asdict(backend.stats(instance)),
        every=lambda: settings.PLAYGROUND_STATS_EVERY,
    ),
    # The ports something in the instance listens on: the page's badges.
    "ports": Watch(
        measure=lambda backend, instance: {"ports": sorted(backend.listening_ports(instance))},
        every=lambda: settings.PLAYGROUND_PORTS_EVERY,
        changes_only=True,
    ),
}
# The threads that measure, apart from the loop's default ones (resizes, the
# scrollback's copies): a slow engine makes watches late, never the terminal.
_measurers = ThreadPoolExecutor(max_workers=16, thread_name_prefix="watch")


def scrollback_key(instance: Instance) -> str:
    """The cache key of an instance's scrollback (by its storage token: a new instance starts blank)."""
    return f"terminal-scrollback:{instance.storage_token}"


def hub_group(session_id: str) -> str:
    # Named by a hash, like the session's own group (events.session_group).
    return "terminal-hubs." + session_group(session_id).removeprefix("session.")


class Viewer:
    """One connected terminal: its output queue, its flow-control state and its size."""

    def __init__(self, hub: "TerminalHub", send: Callable[[bytes], Awaitable[None]]) -> None:
        self.hub = hub
        self._send = send
        self._queue: deque[bytes] = deque()
        self.queued = 0
        self.sent = 0
        self.acked: int | None = None  # None until the client acknowledges for the first time
        self.paused = False
        self.size: tuple[int, int] | None = None
        self.watching: frozenset[str] = frozenset()  # the WATCHES it wants
        self.on_end: Callable[[], None] = lambda: None
        self.on_event: Callable[[dict], Awaitable[None]] = _ignore
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._deliver())

    @property
    def backlog(self) -> int:
        unacked = self.sent - self.acked if self.acked is not None else 0
        return self.queued + unacked

    def feed(self, chunk: bytes) -> None:
        self._queue.append(chunk)
        self.queued += len(chunk)
        self._wake.set()

    def ack(self, total: int) -> None:
        self.acked = max(self.acked or 0, min(max(total, 0), self.sent))
        self.hub.flow_changed()

    def pause(self, paused: bool) -> None:
        self.paused = paused
        self.hub.flow_changed()

    def watch(self, kinds: frozenset[str]) -> None:
        started = kinds - self.watching
        self.watching = kinds
        self.hub.watches_changed(started)

    async def _deliver(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                # A turn's frame is no bigger than a turn's read: twenty busy
                # terminals send 13 KiB each, not 256 KiB, before a quiet
                # one's echo goes out.
                frame = self._take(registry.read_size())
                await self._send(frame)
                self.sent += len(frame)
                self.hub.flow_changed()
                await asyncio.sleep(0)  # one frame, then the others' turn

    def _take(self, limit: int) -> bytes:
        parts = [self._queue.popleft()]
        size = len(parts[0])
        while self._queue and size + len(self._queue[0]) <= limit:
            parts.append(self._queue.popleft())
            size += len(parts[-1])
        self.queued -= size
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def close(self) -> None:
        self._task.cancel()


async def _ignore(event: dict) -> None:
    return None


class TerminalHub:
    def __init__(self, instance: Instance, on_end: Callable[[], None]) -> None:
        self.session_id = instance.session_id
        self.instance = instance
        self.backend = backend_for(instance)
        self.viewers: list[Viewer] = []
        self.can_read = asyncio.Event()
        self.can_read.set()
        self._scrollback = bytearray()
        self._scrollback_changed = False
        self._allowance = float(READ_BUDGET)  # bytes it may read now (the flood rate)
        self._allowance_at = time.monotonic()
        self._on_end = on_end
        self._peer_sizes: dict[str, tuple[tuple[int, int], float]] = {}
        self._applied_size: tuple[int, int] | None = None
        self._resize_wanted = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._watchers: dict[str, asyncio.Task] = {}
        self._measured_at: dict[str, float] = {}  # when each kind was last measured (monotonic)
        self._last_sent: dict[str, dict] = {}  # of the watches that send changes only
        self._linger: asyncio.TimerHandle | None = None
        self.layer = get_channel_layer()
        self.channel: str | None = None
        self.ended = False

    # --- Life cycle -------------------------------------------------------------

    async def start(self) -> None:
        tty = await self.backend.attach(self.instance)
        self.reader, self.writer = tty.reader, tty.writer
        self._tasks.append(asyncio.create_task(self._pump()))
        self._tasks.append(asyncio.create_task(self._resizer()))
        self._tasks.append(asyncio.create_task(self._default_size()))
        if self._has_peers():
            self.channel = await self.layer.new_channel()
            await self.layer.group_add(hub_group(self.session_id), self.channel)
            self._tasks.append(asyncio.create_task(self._listen()))
            await self._fetch_peer_scrollback()
            await self._broadcast({"type": "hub.hello", "hub": self.channel})
        if not self._scrollback:
            await self._load_saved_scrollback()
        self._tasks.append(asyncio.create_task(self._save_scrollback()))

    def _has_peers(self) -> bool:
        # With the in-memory layer there is one web process, hence one hub.
        return self.layer is not None and not isinstance(self.layer, InMemoryChannelLayer)

    async def stop(self) -> None:
        if self._linger:
            self._linger.cancel()
        for task in [*self._tasks, *self._watchers.values()]:
            task.cancel()
        for viewer in self.viewers:
            viewer.close()
        self.writer.close()
        if self.channel:
            with contextlib.suppress(Exception):
                await self._broadcast({"type": "hub.size", "hub": self.channel, "size": None})
                await self.layer.group_discard(hub_group(self.session_id), self.channel)

    # --- Viewers ----------------------------------------------------------------

    def add_viewer(self, send: Callable[[bytes], Awaitable[None]]) -> Viewer:
        """Register a viewer; its queue starts with the scrollback, then live output."""
        if self._linger:
            self._linger.cancel()
            self._linger = None
        viewer = Viewer(self, send)
        if self._scrollback:
            viewer.feed(bytes(self._scrollback))
        self.viewers.append(viewer)
        return viewer

    def remove_viewer(self, viewer: Viewer) -> None:
        viewer.close()
        if viewer in self.viewers:
            self.viewers.remove(viewer)
        self.flow_changed()
        self.sizes_changed()
        self.watches_changed()
        if not self.viewers and not self.ended:
            self._linger = asyncio.get_running_loop().call_later(
                LINGER_SECONDS, lambda: asyncio.ensure_future(registry.drop(self))
            )

    async def write(self, data: bytes) -> None:
        """Type into the TTY. Raises ConnectionError once the attachment has ended."""
        if self.ended:
            raise ConnectionResetError("the terminal's attachment has ended")
        self.writer.write(data)
        await self.writer.drain()

    # --- Output -----------------------------------------------------------------

    async def _pump(self) -> None:
        try:
            while True:
                await self.can_read.wait()
                await self._keep_to_the_flood_rate()
                wanted = registry.read_size()
                chunk = await self.reader.read(wanted)
                if not chunk:
                    break
                # A full read means more is waiting: this terminal is busy.
                registry.note_busy(self, len(chunk) >= wanted)
                self._allowance -= len(chunk)
                self._remember(chunk)
                for viewer in self.viewers:
                    viewer.feed(chunk)
                self.flow_changed()
                # A read from a full buffer does not wait: let the others run.
                await asyncio.sleep(0)
        except (ConnectionError, OSError) as exc:
            logger.info("session %s: terminal stream broke: %s", self.session_id, exc)
        self.ended = True
        registry.note_busy(self, False)
        self._on_end()

    async def _keep_to_the_flood_rate(self) -> None:
        """Wait, while several terminals flood, until this one's share of the rate allows more.

        A token bucket: the allowance grows at the share's rate, up to a
        tenth of a second's worth, and each read spends it.
        """
        rate = registry.flood_share()
        now = time.monotonic()
        if rate is None:
            self._allowance, self._allowance_at = float(READ_BUDGET), now
            return
        self._allowance = min(rate / 10, self._allowance + (now - self._allowance_at) * rate)
        self._allowance_at = now
        if self._allowance < 0:
            await asyncio.sleep(-self._allowance / rate)

    def _remember(self, chunk: bytes) -> None:
        self._scrollback_changed = True
        self._scrollback += chunk
        if len(self._scrollback) > 2 * SCROLLBACK_BYTES:
            cut = len(self._scrollback) - SCROLLBACK_BYTES
            # Start the kept part at a line boundary, so it does not begin
            # inside a character or an escape sequence.
            newline = self._scrollback.find(b"\n", cut, cut + 4096)
            del self._scrollback[: newline + 1 if newline >= 0 else cut]

    def flow_changed(self) -> None:
        if self.can_read.is_set():
            if any(v.paused or v.backlog > HIGH_WATER for v in self.viewers):
                self.can_read.clear()
        elif all(not v.paused and v.backlog < LOW_WATER for v in self.viewers):
            self.can_read.set()

    async def _load_saved_scrollback(self) -> None:
        """The scrollback as an earlier hub (before a restart of the web process) left it."""
        try:
            saved = await sync_to_async(cache.get, thread_sensitive=False)(scrollback_key(self.instance))
        except Exception as exc:  # the cache is out of reach: start blank
            logger.info("session %s: no saved scrollback: %s", self.session_id, exc)
            return
        if saved:
            self._scrollback[:0] = saved

    async def _save_scrollback(self) -> None:
        while True:
            await asyncio.sleep(SCROLLBACK_SAVE_EVERY)
            if not self._scrollback_changed:
                continue
            self._scrollback_changed = False
            try:
                # (In a thread of its own: a slow cache holds up no terminal.)
                await sync_to_async(cache.set, thread_sensitive=False)(
                    scrollback_key(self.instance), bytes(self._scrollback), SCROLLBACK_KEPT_FOR
                )
            except Exception as exc:  # a cache outage costs only the copy
                logger.info("session %s: could not save the scrollback: %s", self.session_id, exc)

    # --- Watches ----------------------------------------------------------------

    def watches_changed(self, started: frozenset[str] = frozenset()) -> None:
        """Start the watches a viewer now wants; stop those that none wants any more.

        `started`: the kinds a viewer has just begun to watch; one that sends
        changes only sends its next measure to all, that viewer included.
        """
        for kind in started:
            self._last_sent.pop(kind, None)
        wanted = set() if self.ended else {kind for viewer in self.viewers for kind in viewer.watching}
        for kind in wanted - self._watchers.keys():
            self._watchers[kind] = asyncio.create_task(self._watch(kind))
        for kind in self._watchers.keys() - wanted:
            self._watchers.pop(kind).cancel()

    async def _watch(self, kind: str) -> None:
        watch, loop = WATCHES[kind], asyncio.get_running_loop()
        while True:
            # Once a period at most, also when viewers stop and start again
            # (a panel folded and unfolded): a client cannot make it measure faster.
            wait = self._measured_at.get(kind, -float("inf")) + watch.every() - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._measured_at[kind] = time.monotonic()
            try:
                figures = await loop.run_in_executor(_measurers, watch.measure, self.backend, self.instance)
            except AttachError as exc:  # the instance may be going away: its hub ends soon
                logger.info("session %s: no %s now: %s", self.session_id, kind, exc)
                continue
            except Exception:
                logger.exception("session %s: measuring %s failed", self.session_id, kind)
                continue
            event = {"type": kind, **figures}
            if watch.changes_only:
                if self._last_sent.get(kind) == event:
                    continue
                self._last_sent[kind] = event
            for viewer in [viewer for viewer in self.viewers if kind in viewer.watching]:
                try:
                    await viewer.on_event(event)
                except Exception as exc:  # that viewer's socket is closing
                    logger.info("session %s: could not send %s: %s", self.session_id, kind, exc)

    # --- Size -------------------------------------------------------------------

    def local_size(self) -> tuple[int, int] | None:
        sizes = [v.size for v in self.viewers if v.size]
        if not sizes:
            return None
        return min(cols for cols, _ in sizes), min(rows for _, rows in sizes)

    def sizes_changed(self) -> None:
        self._resize_wanted.set()
        if self.channel:
            asyncio.ensure_future(self._broadcast({"type": "hub.size", "hub": self.channel, "size": self.local_size()}))

    def wanted_size(self) -> tuple[int, int] | None:
        now = time.monotonic()
        sizes = [size for size, seen in self._peer_sizes.values() if now - seen < PEER_SIZE_TTL]
        if own := self.local_size():
            sizes.append(own)
        if not sizes:
            return None
        return min(cols for cols, _ in sizes), min(rows for _, rows in sizes)

    async def _resizer(self) -> None:
        """Apply the wanted size, coalescing bursts (a window being dragged)."""
        while True:
            await self._resize_wanted.wait()
            self._resize_wanted.clear()
            size = self.wanted_size()
            if size and size != self._applied_size:
                try:
                    if self._applied_size is None and not self._scrollback:
                        # Nothing to replay (a new hub after a restart of the
                        # web process): make the shell or the program in it
                        # redraw, by changing the size, which signals it.
                        await self.backend.resize(self.instance, cols=size[0], rows=size[1] + 1)
                    await self.backend.resize(self.instance, cols=size[0], rows=size[1])
                    self._applied_size = size
                except Exception as exc:  # the container may be going away
                    logger.info("session %s: resize failed: %s", self.session_id, exc)

    async def _default_size(self) -> None:
        # The instance starts its shell once its TTY has a size, so that the
        # welcome text and prompt reach the first viewer; a client that never
        # says its size still gets a shell.
        await asyncio.sleep(DEFAULT_SIZE_AFTER)
        if self._applied_size is None and self.wanted_size() is None:
            await self.backend.resize(self.instance, cols=DEFAULT_SIZE[0], rows=DEFAULT_SIZE[1])
            self._applied_size = DEFAULT_SIZE

    # --- Peers in other web processes ------------------------------------------

    async def _broadcast(self, message: dict) -> None:
        await self.layer.group_send(hub_group(self.session_id), message)

    async def _fetch_peer_scrollback(self) -> None:
        await self._broadcast({"type": "hub.scrollback.request", "hub": self.channel})
        self._peer_scrollback = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            earlier = await asyncio.wait_for(self._peer_scrollback, PEER_REPLY_WAIT)
            self._scrollback[:0] = earlier

    async def _listen(self) -> None:
        while True:
            message = await self.layer.receive(self.channel)
            if message.get("hub") == self.channel:
                continue
            kind = message["type"]
            if kind == "hub.hello":
                await self.layer.send(
                    message["hub"], {"type": "hub.size", "hub": self.channel, "size": self.local_size()}
                )
            elif kind == "hub.scrollback.request":
                await self.layer.send(
                    message["hub"], {"type": "hub.scrollback", "hub": self.channel, "data": bytes(self._scrollback)}
                )
            elif kind == "hub.scrollback":
                future = getattr(self, "_peer_scrollback", None)
                if future and not future.done():
                    future.set_result(message["data"])
            elif kind == "hub.size":
                if message["size"]:
                    self._peer_sizes[message["hub"]] = (tuple(message["size"]), time.monotonic())
                else:
                    self._peer_sizes.pop(message["hub"], None)
                self._resize_wanted.set()


class HubRegistry:
    """The hubs of this process, one per session, made on first use."""

    def __init__(self) -> None:
        self.hubs: dict[str, TerminalHub] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # Hubs whose last full read (more output was waiting) was recent: the
        # terminals flooding now. A momentary gap does not take one off.
        self._busy: dict[TerminalHub, float] = {}

    def _flooding(self) -> int:
        now = time.monotonic()
        for hub in [hub for hub, seen in self._busy.items() if now - seen > BUSY_FOR]:
            del self._busy[hub]
        return len(self._busy)

    def read_size(self) -> int:
        """How much a terminal reads in its turn: a share of READ_BUDGET among the busy ones."""
        return max(MIN_READ, READ_BUDGET // max(1, self._flooding()))

    def flood_share(self) -> float | None:
        """Bytes a second each flooding terminal may have, or None while at most one floods."""
        flooding = self._flooding()
        if flooding <= 1:
            return None
        return settings.PLAYGROUND_TERMINAL_FLOOD_RATE / flooding

    def note_busy(self, hub: TerminalHub, busy: bool) -> None:
        if busy:
            self._busy[hub] = time.monotonic()
        elif hub.ended:
            self._busy.pop(hub, None)

    async def join(
        self,
        instance: Instance,
        send: Callable[[bytes], Awaitable[None]],
        on_end: Callable[[], None],
        on_event: Callable[[dict], Awaitable[None]] = _ignore,
    ) -> Viewer:
        """A new viewer of the session's terminal: `send` gets its output,
        `on_event` the events of what it watches (Viewer.watch), and `on_end`
        is called when the instance's TTY goes away."""
        session_id = instance.session_id
        lock = self._locks.setdefault(session_id, asyncio.Lock())
        async with lock:
            hub = self.hubs.get(session_id)
            if hub is None or hub.ended:
                hub = TerminalHub(instance, on_end=lambda: self._ended(hub))
                await hub.start()
                self.hubs[session_id] = hub
            viewer = hub.add_viewer(send)
            viewer.on_end, viewer.on_event = on_end, on_event
            return viewer

    def _ended(self, hub: TerminalHub) -> None:
        if self.hubs.get(hub.session_id) is hub:
            del self.hubs[hub.session_id]
        for viewer in list(hub.viewers):
            viewer.on_end()
        asyncio.ensure_future(hub.stop())

    async def drop(self, hub: TerminalHub) -> None:
        if self.hubs.get(hub.session_id) is hub and not hub.viewers:
            del self.hubs[hub.session_id]
            await hub.stop()

    async def stop_all(self) -> None:
        """Stop every hub now, lingering ones included (their tasks belong to this event loop)."""
        hubs, self.hubs = list(self.hubs.values()), {}
        self._locks.clear()
        self._busy.clear()
        for hub in hubs:
            await hub.stop()


registry = HubRegistry()
