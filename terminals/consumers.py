"""The WebSocket of a session's terminal: `/sessions/{id}/ws`.

Binary frames carry raw terminal bytes both ways. Text frames carry JSON
control messages; the protocol is described in the README. Close codes:

4403  the share link this terminal was opened with was revoked or has expired
4404  there is no such session (or no access to it: the same answer)
4410  the session is closed or has expired
4429  this client has too many terminals open
4500  the instance failed to start
1009  a frame was larger than the server accepts
1013  the server cannot look at the session right now: try again

Who may connect: the session's owner, staff, or a share link's holder
(sessions_app.access); a read-only share watches and cannot type, and its
window does not shrink the terminal.
"""

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from playground.clients import scope_client
from playground.logcontext import set_session
from sessions_app import access, services
from sessions_app.access import Access, Credentials, Grant
from sessions_app.errors import as_unavailable
from sessions_app.events import session_group
from sessions_app.messages import ENDINGS, INSTANCE_STATUS_MESSAGES
from sessions_app.models import Instance
from sessions_app.selectors import TerminalState, session_terminal_state
from terminals import metrics
from terminals.hub import WATCHES, Viewer, registry

logger = logging.getLogger(__name__)

CLOSE_ACCESS_ENDED = 4403
CLOSE_NO_SESSION = 4404
CLOSE_SESSION_ENDED = 4410
CLOSE_TOO_MANY = 4429
CLOSE_INSTANCE_FAILED = 4500
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013  # the database is out of reach for now: reconnect in a moment
# The close codes after which a client should not reconnect, with the
# messages.ENDINGS entry that explains each (handed to the session page).
FINAL_CLOSE_ENDINGS = {
    CLOSE_ACCESS_ENDED: "access_ended",
    CLOSE_NO_SESSION: "not_found",
    CLOSE_SESSION_ENDED: "ended",
    CLOSE_TOO_MANY: "too_many_terminals",
    CLOSE_INSTANCE_FAILED: "failed",
}
READ_ONLY_MESSAGE = "This is a read-only view of the terminal: typing is off."
# Keystrokes kept while the shell is not attached yet (the instance is
# starting, or its terminal is being reattached); beyond this, the oldest
# would be lost, so the client is told.
MAX_PENDING_INPUT = 64 * 1024
PENDING_INPUT_FULL = "Too much was typed while the terminal was not connected; the rest is dropped."
UNAVAILABLE_RETRY = 2.0  # seconds before looking at the session again after the database failed

# Terminal sockets open in this process, per client address.
_open_per_client: Counter[str] = Counter()

MAX_INPUT_FRAME = 1024 * 1024
MAX_CONTROL_FRAME = 64 * 1024
MAX_TERMINAL_SIDE = 1000
POLL_WHILE_STARTING = 0.2  # seconds between looks at an instance that is not running yet
POLL_WHILE_RUNNING = 5.0  # seconds between looks at a running session (expiry, removal)
TOUCH_EVERY = 30.0  # seconds between records of terminal input


@database_sync_to_async
def load_state(session_id: str, credentials: Credentials) -> tuple[TerminalState | None, Grant]:
    """The session as its terminal sees it, and what this caller may do with it.

    A caller with no access sees no session at all, as for an unknown id.
    """
    state = session_terminal_state(session_id=session_id)
    grant = access.session_grant(state.session, credentials) if state else Grant(Access.NONE)
    return (state if grant.level > Access.NONE else None), grant


class ControlError(ValueError):
    pass


def parse_control(text: str) -> dict:
    """Validate a text frame; raises ControlError with a message for the client."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested thousands deep
        raise ControlError("Control messages are JSON objects.") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ControlError('Control messages are JSON objects with a "type".')
    kind = message["type"]
    if kind == "resize":
        cols, rows = message.get("cols"), message.get("rows")
        for value in (cols, rows):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TERMINAL_SIDE:
                raise ControlError(f"resize needs whole numbers cols and rows from 1 to {MAX_TERMINAL_SIDE}.")
    elif kind == "input":
        if not isinstance(message.get("data"), str):
            raise ControlError('input needs a string "data".')
    elif kind == "ack":
        value = message.get("bytes")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ControlError('ack needs a whole number of "bytes".')
    elif kind in WATCHES:
        if not isinstance(message.get("watch"), bool):
            raise ControlError(f'{kind} needs "watch": true or false.')
    elif kind not in ("pause", "resume"):
        raise ControlError(f"Unknown control message type {kind!r}.")
    return message


class TerminalConsumer(AsyncWebsocketConsumer):
    async def dispatch(self, message: dict) -> None:
        """Hand a message to its handler, at once.

        Channels' own dispatch first closes stale database connections, in
        Django's one thread for sync code: every keystroke would queue there
        behind every terminal's database call (five seconds each while the
        database is out of reach). This consumer touches the database only
        through database_sync_to_async, which does that closing itself.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        self.session_id = self.scope["url_route"]["kwargs"]["session_id"]
        set_session(self.session_id[:64])
        self.viewer: Viewer | None = None
        self.size: tuple[int, int] | None = None
        self.paused = False
        self.watching: frozenset[str] = frozenset()  # what this socket asked to be told (hub.WATCHES)
        # Acknowledgements count output since the socket opened; a viewer
        # counts since it joined. The difference is the output sent before.
        self.sent_total = 0
        self.ack_base = 0
        self.last_touch = -TOUCH_EVERY
        self.follower: asyncio.Task | None = None
        self.wake = asyncio.Event()
        # Input that arrives before the shell is attached waits here, in order.
        self.pending_input = bytearray()
        self.flushing = False
        self.credentials = access.scope_credentials(self.scope)
        self.client = scope_client(self.scope) or "-"
        # Accepted first, before the database is asked: the close code then
        # reaches the client (a refused handshake shows only as a failed
        # connection), and a busy server does not overrun Daphne's handshake
        # timeout. Nothing is sent before the access is known.
        await self.accept()
        metrics.terminal_opened(self)
        if _open_per_client[self.client] >= settings.PLAYGROUND_MAX_TERMINALS_PER_CLIENT:
            logger.warning("client %s has too many terminals open", self.client)
            await self.close(code=CLOSE_TOO_MANY)
            return
        _open_per_client[self.client] += 1
        self.counted = True
        try:
            state, self.grant = await load_state(self.session_id, self.credentials)
        except Exception as exc:
            if as_unavailable(exc) is None:
                raise
            logger.warning("session %s: cannot read the session now: %s", self.session_id, exc)
            await self.close(code=CLOSE_TRY_AGAIN)
            return
        if state is None:
            await self.close(code=CLOSE_NO_SESSION)
            return
        if state.ended:
            await self.send_status(state.status, ENDINGS[state.status].message)
            await self.close(code=CLOSE_SESSION_ENDED)
            return
        if self.channel_layer is not None:
            await self.channel_layer.group_add(session_group(self.session_id), self.channel_name)
        self.follower = asyncio.create_task(self.follow_session(state))

    async def disconnect(self, code: int) -> None:
        metrics.terminal_closed(self)
        if getattr(self, "counted", False):
            self.counted = False
            _open_per_client[self.client] -= 1
            if _open_per_client[self.client] <= 0:
                del _open_per_client[self.client]
        if self.follower:
            self.follower.cancel()
        self.leave_terminal()
        if self.channel_layer is not None:
            with contextlib.suppress(Exception):
                await self.channel_layer.group_discard(session_group(self.session_id), self.channel_name)

    # --- Following the session ----------------------------------------------------

    async def follow_session(self, state: TerminalState | None) -> None:
        """Report the instance's status, attach once it runs, end with the session."""
        reported = None
        while True:
            if state is None and self.grant.level == Access.NONE:
                # A share link that was revoked or expired while its viewer watched.
                await self.leave_with(CLOSE_ACCESS_ENDED, ENDINGS["access_ended"].message)
                return
            if state is None or state.ended:
                status = state.status if state else "closed"
                await self.end(status, ENDINGS[status].message)
                return
            instance = state.instance
            status = instance.status if instance else Instance.Status.PENDING
            if status == Instance.Status.FAILED:
                await self.send_status("failed", instance.error or ENDINGS["failed"].message)
                await self.close(code=CLOSE_INSTANCE_FAILED)
                return
            if status == Instance.Status.RUNNING and self.viewer is None:
                await self.join_terminal(instance)
                if self.viewer is None:
                    status = "reconnecting"
            if status != reported:
                await self.send_status(status, INSTANCE_STATUS_MESSAGES[status], instance)
                reported = status
            delay = POLL_WHILE_RUNNING if self.viewer else POLL_WHILE_STARTING
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), delay)
            self.wake.clear()
            state = await self.look_again(state)

    async def look_again(self, state: TerminalState) -> TerminalState | None:
        """The session now; the last state seen while the database is out of reach
        (the terminal goes on meanwhile)."""
        while True:
            try:
                state, self.grant = await load_state(self.session_id, self.credentials)
                return state
            except Exception as exc:
                if as_unavailable(exc) is None:
                    raise
                logger.warning("session %s: cannot read the session now: %s", self.session_id, exc)
                if self.viewer is not None:
                    return state
                await asyncio.sleep(UNAVAILABLE_RETRY)

    async def join_terminal(self, instance: Instance) -> None:
        try:
            self.viewer = await registry.join(
                instance, send=self.send_output, on_end=self.terminal_ended, on_event=self.send_event
            )
        except Exception as exc:
            logger.info("session %s: cannot attach to the instance yet: %s", self.session_id, exc)
            await asyncio.sleep(1)
            return
        self.ack_base = self.sent_total
        self.viewer.size = self.size if self.may_type else None
        if self.paused:
            self.viewer.pause(True)
        self.viewer.watch(self.watching)
        self.viewer.hub.sizes_changed()
        await self.flush_pending_input()

    async def flush_pending_input(self) -> None:
        """Type what arrived while the shell was not attached, before anything typed since."""
        self.flushing = True
        try:
            while self.pending_input and self.viewer is not None:
                data = bytes(self.pending_input)
                self.pending_input.clear()
                if not await self.write_to_shell(data):
                    break
        finally:
            self.flushing = False

    async def write_to_shell(self, data: bytes) -> bool:
        """Type into the attached shell; if the attachment just broke (the
        instance restarts), keep the keystrokes for the next one."""
        try:
            await self.viewer.hub.write(data)
            return True
        except (ConnectionError, OSError, AttributeError) as exc:  # AttributeError: the viewer left meanwhile
            logger.info("session %s: the terminal went away while typing: %s", self.session_id, exc)
            self.pending_input[:0] = data
            return False

    def terminal_ended(self) -> None:
        # The instance's TTY went away: removed, restarted, or its engine is
        # down. Look at the session again right away.
        self.viewer = None
        self.wake.set()

    def leave_terminal(self) -> None:
        if self.viewer is not None:
            self.viewer.hub.remove_viewer(self.viewer)
            self.viewer = None

    async def end(self, status: str, message: str) -> None:
        self.leave_terminal()
        await self.send_status(status, message)
        await self.close(code=CLOSE_SESSION_ENDED)

    # --- Messages to the browser ------------------------------------------------

    async def send_output(self, data: bytes) -> None:
        self.sent_total += len(data)
        metrics.count_output(len(data))
        await self.send(bytes_data=data)

    async def send_status(self, status: str, message: str, instance: Instance | None = None) -> None:
        event = {"type": "status", "status": status, "message": message}
        if instance is not None:
            event["instance"] = {
                "name": instance.name,
                "hostname": instance.hostname,
                "ip_address": instance.ip_address,
                "status": instance.status,
            }
        await self.send(text_data=json.dumps(event))

    async def send_event(self, event: dict) -> None:
        """A watched figure (hub.WATCHES), e.g. {"type": "stats", ...}."""
        await self.send(text_data=json.dumps(event))

    async def send_error(self, message: str) -> None:
        await self.send(text_data=json.dumps({"type": "error", "message": message}))

    async def session_expiry(self, event: dict) -> None:
        """The session was extended: pass the new expiry on for the countdown."""
        await self.send(text_data=json.dumps({"type": "expiry", "expires_at": event["expires_at"]}))

    async def session_share_revoked(self, event: dict) -> None:
        """A share link was revoked: the terminals it opened close at once."""
        if self.grant.share_id == event["share"]:
            if self.follower:
                self.follower.cancel()
            await self.leave_with(CLOSE_ACCESS_ENDED, ENDINGS["access_ended"].message)

    async def leave_with(self, code: int, message: str) -> None:
        self.leave_terminal()
        await self.send_error(message)
        await self.close(code=code)

    @property
    def may_type(self) -> bool:
        return self.grant.level >= Access.READ_WRITE

    async def session_status(self, event: dict) -> None:
        """A status event from the channel layer (the session was closed or expired)."""
        if self.follower:
            self.follower.cancel()
        await self.end(event["status"], event["message"])

    # --- Messages from the browser ----------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if bytes_data is not None:
            if len(bytes_data) > MAX_INPUT_FRAME:
                await self.close(code=CLOSE_TOO_BIG)
                return
            await self.type_in(bytes_data)
            return
        if len(text_data) > MAX_CONTROL_FRAME:
            await self.close(code=CLOSE_TOO_BIG)
            return
        try:
            message = parse_control(text_data)
        except ControlError as exc:
            await self.send_error(str(exc))
            return
        await self.control(message)

    async def type_in(self, data: bytes) -> None:
        if not self.may_type:
            await self.send_error(READ_ONLY_MESSAGE)
            return
        metrics.count_input(len(data))
        if self.viewer is None or self.flushing or self.pending_input:
            # The shell is not attached yet (or what came before is still
            # being typed): keep the keystrokes, in order, for it.
            if len(self.pending_input) + len(data) > MAX_PENDING_INPUT:
                await self.send_error(PENDING_INPUT_FULL)
                return
            self.pending_input += data
            if self.viewer is not None and not self.flushing:
                await self.flush_pending_input()
        else:
            await self.write_to_shell(data)
        now = time.monotonic()
        if now - self.last_touch >= TOUCH_EVERY:
            # Input keeps an idle timeout away; recorded at most this often,
            # beside the typing, which never waits for the database.
            self.last_touch = now
            self.touching = asyncio.create_task(self.touch())

    async def touch(self) -> None:
        try:
            await database_sync_to_async(services.session_touch)(session_id=self.session_id)
        except Exception as exc:  # a task of its own: nobody else would hear of it
            if as_unavailable(exc) is None:
                logger.exception("session %s: could not record input", self.session_id)
            else:
                logger.warning("session %s: could not record input: %s", self.session_id, exc)

    async def control(self, message: dict) -> None:
        kind = message["type"]
        if kind == "input":
            await self.type_in(message["data"].encode("utf-8", "replace"))
        elif kind == "resize":
            self.size = (message["cols"], message["rows"])
            # A watcher's window does not shrink the terminal of those who type.
            if self.viewer is not None and self.may_type:
                self.viewer.size = self.size
                self.viewer.hub.sizes_changed()
        elif kind in ("pause", "resume"):
            self.paused = kind == "pause"
            if self.viewer is not None:
                self.viewer.pause(self.paused)
        elif kind == "ack" and self.viewer is not None:
            self.viewer.ack(message["bytes"] - self.ack_base)
        elif kind in WATCHES:
            # Kept for the viewers of later attachments too (the instance restarts).
            self.watching = self.watching | {kind} if message["watch"] else self.watching - {kind}
            if self.viewer is not None:
                self.viewer.watch(self.watching)
