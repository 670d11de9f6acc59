"""The brokers' kombu transports, each mended where it fails the platform.

The embedded default, kombu's filesystem transport, made safe for several
writers: kombu writes a message file in place, so a worker that lists the
folder at that moment moves away an empty file, fails to decode it and stops.
Writing the message beside its final name and renaming it, which is atomic on
POSIX, means a worker only ever sees whole messages.

Redis, made to survive its own outage: when Redis goes away while a worker
runs a job (acknowledged late, as all of ours), the worker closes the broken
connection, and closing its channel puts the unacknowledged job back through
a fresh connection pool, built from a connection kombu has already released.
That raises AttributeError, which nothing expects: the worker stops for good
("Unrecoverable error"). Here the same moment raises the connection error it
is, which the worker ignores while it reconnects; the job is handed out again
after the visibility timeout, and the worker carries on once Redis is back.
"""

import os
import uuid
from time import monotonic

import redis
from kombu import transport as kombu_transports
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

SCHEME = "playground-filesystem"


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # The reader takes only names ending in ".<queue>.msg".
        partial = final + ".part"
        try:
            with open(partial, "wb") as file:
                file.write(str_to_bytes(dumps(payload)))
            os.rename(partial, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


class RedisChannel(kombu_redis.Channel):
    def _connparams(self, asynchronous=False):
        if self.connection.client is None:  # released: see the module's docstring
            raise redis.exceptions.ConnectionError("the connection to the broker is closed")
        return super()._connparams(asynchronous=asynchronous)


class RedisTransport(kombu_redis.Transport):
    Channel = RedisChannel


def register_redis() -> None:
    """Let `redis://` and `rediss://` broker URLs use RedisTransport.

    Called when the app starts (sessions_app.apps), before any connection to
    the broker is made; the URLs, and what the logs show of them, stay as they are.
    """
    for scheme in ("redis", "rediss"):
        TRANSPORT_ALIASES[scheme] = f"{__name__}:RedisTransport"
        kombu_transports._transport_cache.pop(scheme, None)


def register(folders: dict[str, str]) -> None:
    """Make the broker's folders and let kombu find the transport by its scheme.

    Called when the app starts (sessions_app.apps), in every process that
    sends or takes tasks.
    """
    for folder in set(folders.values()):
        os.makedirs(folder, exist_ok=True)
    TRANSPORT_ALIASES[SCHEME] = f"{__name__}:Transport"
