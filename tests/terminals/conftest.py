import pytest
from channels.layers import channel_layers


@pytest.fixture(autouse=True)
def in_memory_channel_layer(settings):
    """Consumers and hubs of these tests talk through the in-memory layer.

    Each async test has an event loop of its own, and channels_redis's layer,
    one per process, keeps state bound to the loop that first used it: a
    later test's reads could wait on a lock of a closed loop. How terminals
    behave across processes on Redis is tried on the real stack
    (tests/integration, with Daphne and Redis).
    """
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()
