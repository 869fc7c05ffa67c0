"""Expiry jobs follow the bot's clock, not the host's: one that wakes before its time on
the bot's clock waits again, and expires the request once that clock reaches it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from bot.clock import FakeClock
from bot.scheduler import HORIZON, Timers


class WatchedClock(FakeClock):
    """A fake clock that notes when a thread other than the test's reads it."""

    def __init__(self) -> None:
        super().__init__()
        self.read_by_a_job = threading.Event()
        self._test = threading.current_thread()

    def now(self) -> datetime:
        value = super().now()  # read before telling, so the job acts on what it read
        if threading.current_thread() is not self._test:
            self.read_by_a_job.set()
        return value


class Expiries:
    def __init__(self) -> None:
        self.ids: list[str] = []
        self.any = threading.Event()

    def __call__(self, request_id: str) -> None:
        self.ids.append(request_id)
        self.any.set()


@pytest.fixture
def clock() -> WatchedClock:
    return WatchedClock()


@pytest.fixture
def expiries() -> Expiries:
    return Expiries()


@pytest.fixture
def timers(clock: WatchedClock, expiries: Expiries) -> Iterator[Timers]:
    started = Timers(expire=expiries, clock=clock)
    started.start([])
    yield started
    started.stop()


def test_a_job_that_wakes_early_by_the_bots_clock_waits_and_expires_once_it_is_reached(
    clock: WatchedClock, timers: Timers, expiries: Expiries
) -> None:
    timers.schedule("R-1", clock.now() + timedelta(seconds=1))
    # A second of the host's clock later the job wakes; the fake clock has not moved.
    assert clock.read_by_a_job.wait(30), "the expiry job never woke"
    assert expiries.ids == []
    clock.advance(timedelta(seconds=1))
    assert expiries.any.wait(30), "the expiry job was lost when it woke early"
    assert expiries.ids == ["R-1"]


def test_a_job_already_due_by_the_bots_clock_expires_at_once(
    clock: WatchedClock, timers: Timers, expiries: Expiries
) -> None:
    timers.schedule("R-2", clock.now() - timedelta(hours=1))
    assert expiries.any.wait(30)
    assert expiries.ids == ["R-2"]


def test_only_grants_ending_within_the_horizon_get_a_job_until_the_look_ahead_finds_them(
    clock: WatchedClock, timers: Timers, expiries: Expiries
) -> None:
    soon, later = clock.now() + timedelta(seconds=1), clock.now() + HORIZON + timedelta(hours=1)
    timers.look_ahead([("R-soon", soon)])
    timers.schedule("R-later", later)
    assert timers.scheduled() == {"R-soon": soon}
    # Extended past the horizon: the job for the old end goes.
    timers.schedule("R-soon", later)
    assert timers.scheduled() == {}
    # The look-ahead, once the end is near, gives it its job; once, however often it runs.
    clock.advance(timedelta(hours=1) + HORIZON - timedelta(seconds=1))
    timers.look_ahead([("R-soon", later), ("R-later", later)])
    timers.look_ahead([("R-soon", later), ("R-later", later)])
    assert timers.scheduled() == {"R-soon": later, "R-later": later}
    clock.advance(timedelta(seconds=1))
    assert expiries.any.wait(30)
    # Both fire (each once) and leave no job behind.
    for _ in range(300):
        if sorted(expiries.ids) == ["R-later", "R-soon"] and not timers.scheduled():
            break
        threading.Event().wait(0.1)
    assert sorted(expiries.ids) == ["R-later", "R-soon"]
    assert timers.scheduled() == {}


def test_a_cancelled_grant_loses_its_job(clock: WatchedClock, timers: Timers) -> None:
    timers.schedule("R-3", clock.now() + timedelta(minutes=1))
    timers.cancel("R-3")
    assert timers.scheduled() == {}
