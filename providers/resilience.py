"""Retries, backoff, Retry-After and caching, for every provider and directory.

One place says how a call to a cloud (or to Slack, or Google's directory) is tried again
and how long it may keep trying: each provider declares one `RetryPolicy`, and
`RetryPolicy.worst_case` is the longest it waits before giving up on one call. The
domain does not retry on top (a ProviderError that reaches it is final for that attempt),
so these figures are the whole wait of one call; tests/unit/test_resilience.py pins them
below the revocation deadline. An operation that makes several calls (GCP's
read-modify-write of a policy, restarted on a concurrent change; Azure PIM's lookups
before its write) can wait for several of them: the revocation's own deadline
(bot/revoker.py) bounds what the bot waits for, and a later answer changes nothing.

What is retryable, and which codes mean "later", stays with each provider: this module
only knows "failed, try again?" and "wait how long?".
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Generic, TypeVar

from cachetools import TTLCache

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: Room for every person, group and role a large workspace looks up; beyond it the least
#: recently used answers are forgotten first (they are asked again, nothing is lost).
CACHE_SIZE = 65536


@dataclass(frozen=True)
class RetryPolicy:
    """How one call is tried again.

    After failed attempt *n* (1-based) the wait is a random point in the upper half of a
    ceiling that doubles from ``base`` up to ``cap`` (``jitter``; without it, the ceiling
    itself), so retries of many calls spread out without collapsing to no wait at all. A
    Retry-After the caller read from the answer replaces the backoff when the policy
    honours one (``retry_after_cap`` > 0); a longer one than the cap is not waited out:
    the call gives up at once (callers that prefer waiting the cap clip while parsing, see
    `parse_retry_after`). ``budget`` bounds the total waiting of one call: a wait that
    would pass it is not started.
    """

    attempts: int
    base: float = 0.5
    cap: float = 30.0
    jitter: bool = True
    retry_after_cap: float = 0.0
    budget: float | None = None

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("a retry policy needs at least one attempt")
        if self.base < 0 or self.cap < 0 or self.retry_after_cap < 0:
            raise ValueError("waits cannot be negative")

    def ceiling(self, attempt: int) -> float:
        """The longest backoff after failed attempt ``attempt``."""
        return min(self.cap, self.base * 2 ** (attempt - 1))

    def backoff(self, attempt: int, fraction: float) -> float:
        """The backoff after failed attempt ``attempt``; ``fraction`` in [0, 1) picks the
        point in the ceiling's upper half."""
        ceiling = self.ceiling(attempt)
        return ceiling / 2 + ceiling / 2 * fraction if self.jitter else ceiling

    def delay(
        self, attempt: int, retry_after: float | None = None, *, waited: float = 0.0
    ) -> float | None:
        """Seconds to wait after failed attempt ``attempt``, ``waited`` seconds into this
        call; None: give up."""
        if attempt >= self.attempts:
            return None
        if retry_after is not None and self.retry_after_cap > 0:
            if retry_after > self.retry_after_cap:
                return None
            wait = max(retry_after, 0.0)
        else:
            wait = self.backoff(attempt, random.random())
        if self.budget is not None and waited + wait > self.budget:
            return None
        return wait

    def worst_case(self) -> timedelta:
        """The longest one call waits before it gives up: every wait as long as it may be
        (a full ceiling, or the longest Retry-After honoured), bounded by the budget. The
        time the attempts themselves take (timeouts) comes on top."""
        waits = (
            max(self.ceiling(attempt), self.retry_after_cap) for attempt in range(1, self.attempts)
        )
        total = sum(waits, 0.0)
        if self.budget is not None:
            total = min(total, self.budget)
        return timedelta(seconds=total)

    def start(self, sleep: Callable[[float], None] = time.sleep) -> Retrying:
        """The retries of one call."""
        return Retrying(self, sleep)


#: For test doubles: tries like the domain used to (four times) and never waits.
NO_WAIT = RetryPolicy(attempts=4, base=0.0, cap=0.0)


@dataclass
class Retrying:
    """One call's way through its policy: which attempt it is on, how long it waited."""

    policy: RetryPolicy
    _sleep: Callable[[float], None]
    attempt: int = 1
    waited: float = field(default=0.0)

    def plan(self, retry_after: float | None = None) -> float | None:
        """The wait before the next attempt, or None: give up (nothing is slept)."""
        return self.policy.delay(self.attempt, retry_after, waited=self.waited)

    def sleep(self, seconds: float) -> None:
        """Wait before the next attempt, and count it."""
        self._sleep(seconds)
        self.waited += seconds
        self.attempt += 1

    def again(self, retry_after: float | None = None, *, why: object = None) -> bool:
        """After a failed attempt: wait and say True, or say False to give up."""
        wait = self.plan(retry_after)
        if wait is None:
            return False
        if why is not None:
            log.info(
                "%s; retrying in %.1fs (attempt %d/%d)",
                why,
                wait,
                self.attempt,
                self.policy.attempts,
            )
        self.sleep(wait)
        return True


def parse_retry_after(
    value: str | None, *, cap: float, now: datetime | None = None
) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date), clipped to
    [0, cap]; None when absent or unreadable, so the normal backoff applies. A date is
    read against ``now`` (when the request was sent), the wall clock by default."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # an HTTP-date is GMT
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), cap)


class TtlCache(Generic[K, V]):
    """Answers kept for ``ttl`` seconds of ``timer`` (injectable: tests move a fake
    clock), safe across threads. A miss is loaded outside the lock, so a slow lookup
    holds up no other; two threads missing together both load, the later answer stays.
    An answer's age counts from when it was stored."""

    def __init__(
        self, ttl: float, timer: Callable[[], float] = time.monotonic, maxsize: int = CACHE_SIZE
    ) -> None:
        self._entries: TTLCache[K, V] = TTLCache(maxsize, ttl, timer=timer)
        self._lock = threading.Lock()

    def get(self, key: K, load: Callable[[], V]) -> V:
        """The cached answer for ``key``, else ``load()``'s (then kept)."""
        with self._lock:
            try:
                return self._entries[key]
            except KeyError:
                pass
        value = load()
        self.put(key, value)
        return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._entries[key] = value

    def discard(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
