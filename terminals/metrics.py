"""Prometheus metrics about this web process's terminal WebSockets.

These are per process on purpose: each web process reports its own sockets,
and Prometheus, scraping every process, sums them.
"""

import logging
import weakref

from prometheus_client import Counter, Gauge
from prometheus_client.registry import CollectorRegistry

logger = logging.getLogger(__name__)

# Made unregistered; the app registers them when it starts (terminals.apps).
TERMINAL_BYTES = Counter(
    "playground_terminal_bytes",
    "Terminal bytes through this process: out to browsers, in from keystrokes.",
    ["direction"],
    registry=None,
)
# Bound once: output is counted on every frame sent.
_bytes_out = TERMINAL_BYTES.labels(direction="out")
_bytes_in = TERMINAL_BYTES.labels(direction="in")
TERMINALS_OPEN = Gauge("playground_terminals_open", "Terminal WebSockets open in this process.", registry=None)

# The consumers counted as open. The gauge reads the set's size, so a socket
# is counted at most once, only a counted socket is ever uncounted, and a
# consumer that vanished without disconnect() (a crash) drops out on its own.
_open_terminals: weakref.WeakSet = weakref.WeakSet()
TERMINALS_OPEN.set_function(lambda: len(_open_terminals))


def terminal_opened(consumer: object) -> None:
    _open_terminals.add(consumer)


def terminal_closed(consumer: object) -> None:
    _open_terminals.discard(consumer)


def count_output(size: int) -> None:
    _bytes_out.inc(size)


def count_input(size: int) -> None:
    _bytes_in.inc(size)


def register(registry: CollectorRegistry) -> None:
    """Register this process's terminal metrics on a registry, once."""
    for metric in (TERMINAL_BYTES, TERMINALS_OPEN):
        try:
            registry.register(metric)
        except ValueError:
            logger.debug("metrics: %s is already registered", metric)
