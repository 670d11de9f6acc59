"""The channel layer rides out a Redis outage, but never outlives its cancellation."""

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from playground import channel_layer
from playground.channel_layer import ResilientRedisChannelLayer


@pytest.fixture
def layer(monkeypatch):
    monkeypatch.setattr(channel_layer, "RETRY_EVERY", 0.01)
    return ResilientRedisChannelLayer(hosts=[("127.0.0.1", 1)])  # nothing listens there


async def test_it_keeps_receiving_through_an_outage(layer, monkeypatch):
    attempts = []

    async def flaky(self, channel):
        attempts.append(channel)
        if len(attempts) < 3:
            raise RedisConnectionError("Connection refused")
        return {"type": "session.status"}

    monkeypatch.setattr("channels_redis.core.RedisChannelLayer.receive", flaky)

    assert await layer.receive("specific.abc!def") == {"type": "session.status"}
    assert len(attempts) == 3


async def test_it_ends_a_receive_that_is_cancelled_even_if_redis_reports_a_closed_connection(layer, monkeypatch):
    async def closed_when_cancelled(self, channel):
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            raise RedisConnectionError("Connection closed by server.") from None

    monkeypatch.setattr("channels_redis.core.RedisChannelLayer.receive", closed_when_cancelled)
    receiving = asyncio.create_task(layer.receive("specific.abc!def"))
    await asyncio.sleep(0.05)

    receiving.cancel()

    with pytest.raises((asyncio.CancelledError, RedisConnectionError)):
        await asyncio.wait_for(receiving, 2)


async def test_it_drops_a_group_send_while_redis_is_away(layer):
    await layer.group_send("session.x", {"type": "session.status"})  # no exception: terminals go on
