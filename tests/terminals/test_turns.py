"""How the terminals of one web process share it: read turns and the flood rate."""

import pytest

from terminals import hub as hub_module
from terminals.hub import BUSY_FOR, MIN_READ, READ_BUDGET, HubRegistry


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(hub_module.time, "monotonic", clock)
    return clock


class Terminal:
    ended = False


def terminal():
    return Terminal()


def test_a_terminal_flooding_alone_reads_the_whole_budget_and_is_not_held_back(clock):
    registry = HubRegistry()
    registry.note_busy(terminal(), True)

    assert registry.read_size() == READ_BUDGET
    assert registry.flood_share() is None


def test_flooding_terminals_share_the_read_budget_and_the_flood_rate(clock, settings):
    settings.PLAYGROUND_TERMINAL_FLOOD_RATE = 4_000_000
    registry = HubRegistry()
    for _ in range(4):
        registry.note_busy(terminal(), True)

    assert registry.read_size() == READ_BUDGET // 4
    assert registry.flood_share() == 1_000_000


def test_many_floods_still_read_a_useful_amount_per_turn(clock):
    registry = HubRegistry()
    for _ in range(1000):
        registry.note_busy(terminal(), True)

    assert registry.read_size() == MIN_READ


def test_a_terminal_stops_counting_as_flooding_once_it_quiets_down(clock):
    registry = HubRegistry()
    quiet, loud = terminal(), terminal()
    registry.note_busy(quiet, True)
    registry.note_busy(loud, True)

    clock.now += BUSY_FOR / 2
    registry.note_busy(loud, True)
    registry.note_busy(quiet, False)  # a short read: a gap, not yet quiet
    assert registry.flood_share() is not None

    clock.now += BUSY_FOR * 0.75
    assert registry.flood_share() is None
    assert registry.read_size() == READ_BUDGET


def test_an_ended_terminal_stops_counting_at_once(clock):
    registry = HubRegistry()
    ending, other = terminal(), terminal()
    registry.note_busy(ending, True)
    registry.note_busy(other, True)

    ending.ended = True
    registry.note_busy(ending, False)

    assert registry.flood_share() is None
