"""The Redis channel layer, made to ride out a Redis outage.

Only low-rate events travel through the channel layer (a session closed, a
new expiry, terminal hubs agreeing on a size): terminal bytes never do. So
while Redis is away the terminals must go on working, and only those events
wait. channels_redis raises on every call instead, and an error in a
consumer's own receive ends its socket: here a failed receive is tried again
until Redis answers, and a failed send, group_add or group_discard is logged
and dropped (consumers also look at the database every few seconds, which
catches whatever event was lost).
"""

import asyncio
import logging
import time

from channels_redis.core import RedisChannelLayer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeout

logger = logging.getLogger(__name__)

OUTAGE = (RedisConnectionError, RedisTimeout, ConnectionError, OSError)
RETRY_EVERY = 1.0  # seconds between attempts to receive while Redis is away
REPORT_EVERY = 30.0  # seconds between log lines about one outage


class ResilientRedisChannelLayer(RedisChannelLayer):
    _reported = 0.0

    def _report(self, action: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - ResilientRedisChannelLayer._reported >= REPORT_EVERY:
            ResilientRedisChannelLayer._reported = now
            logger.warning("channel layer: %s failed, Redis is out of reach (%s); terminals go on", action, exc)

    async def receive(self, channel):
        while True:
            try:
                return await super().receive(channel)
            except OUTAGE as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # Cancelled (the consumer or hub is ending), which
                    # channels_redis may report as a closed connection.
                    raise
                self._report("receive", exc)
                await asyncio.sleep(RETRY_EVERY)

    async def send(self, channel, message):
        try:
            await super().send(channel, message)
        except OUTAGE as exc:
            self._report("send", exc)

    async def group_send(self, group, message):
        try:
            await super().group_send(group, message)
        except OUTAGE as exc:
            self._report("group_send", exc)

    async def group_add(self, group, channel):
        try:
            await super().group_add(group, channel)
        except OUTAGE as exc:
            self._report("group_add", exc)

    async def group_discard(self, group, channel):
        try:
            await super().group_discard(group, channel)
        except OUTAGE as exc:
            self._report("group_discard", exc)
