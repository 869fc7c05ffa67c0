"""The revocation executor: provider revoke calls, kept apart by the system they talk to,
each revocation bounded by one deadline.

Every endpoint (a provider, or for webhooks the service that receives them) has a few
threads of its own, at most ``per_endpoint``: an endpoint that hangs fills its own slots
and delays nobody else's revocations. A revocation's calls are started together and its
outcome is handed over once, when the last call has answered or when the deadline (one
for the whole revocation: timeouts, attempts and retries included) has passed, whichever
comes first. A call still running then returns into nothing: the rest of its lane is
not started and its answer is dropped; whoever recorded the outcome has already let the
sweeper have the request. (The provider's own retries of that call are bounded by its
retry policy, see providers/resilience.py.)

Nothing here knows about requests or providers; the service builds the calls.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from bot.clock import Clock
from bot.durations import format_duration

log = logging.getLogger(__name__)

#: A call's answer: None when it succeeded, otherwise what went wrong.
Outcome = str | None

# How often deadlines are compared with the clock, in real seconds. The clock is not
# always the wall clock (tests move a fake one), so it is read rather than slept on.
_TICK = 0.1

DEFAULT_PER_ENDPOINT = 8
DEFAULT_DEADLINE = timedelta(minutes=2)


@dataclass(frozen=True)
class Call:
    """One revoke call. Calls of one ``lane`` run one after the other, in order; the
    ``endpoint`` says whose slots it takes."""

    endpoint: str
    lane: Hashable
    run: Callable[[], Outcome]


class _State(Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


class Revocation:
    """One revocation's calls in flight; its outcomes are handed to ``on_done`` once."""

    def __init__(
        self,
        calls: Sequence[Call],
        deadline: datetime,
        allowed: timedelta,
        on_done: Callable[[list[Outcome]], None],
        forget: Callable[[Revocation], None],
    ) -> None:
        self.deadline = deadline
        self._allowed = allowed
        self._on_done = on_done
        self._forget = forget
        self._outcomes: list[Outcome] = [None] * len(calls)
        self._states = [_State.QUEUED] * len(calls)
        self._left = len(calls)
        self._closed = False
        self._lock = threading.Lock()
        self._finished = threading.Event()

    def wanted(self) -> bool:
        """Whether the calls are still wanted (the outcome has not been handed over)."""
        with self._lock:
            return not self._closed

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the outcome has been handed over (and recorded); whether it was."""
        return self._finished.wait(timeout)

    def _running(self, index: int) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._states[index] = _State.RUNNING
            return True

    def _answered(self, index: int, outcome: Outcome) -> None:
        with self._lock:
            if self._closed:
                return  # past the deadline: its outcome was handed over without it
            self._outcomes[index] = outcome
            self._states[index] = _State.DONE
            self._left -= 1
            if self._left:
                return
        self._close()

    def _close(self) -> None:
        """Hand the outcomes over, once; calls that have not answered count as failed."""
        outcomes = self._seal()
        if outcomes is not None:
            self._hand_over(outcomes)

    def _seal(self) -> list[Outcome] | None:
        """Take the outcomes as they stand now, once (None if already taken): calls
        that have not answered count as failed, and nothing they answer later counts."""
        with self._lock:
            if self._closed:
                return None
            self._closed = True
            allowed = format_duration(self._allowed)
            late = {
                _State.RUNNING: f"no answer within the revocation deadline ({allowed})",
                _State.QUEUED: (
                    f"not started within the revocation deadline ({allowed}): earlier "
                    "revocations on the same provider were still running"
                ),
            }
            return [
                outcome if state is _State.DONE else late[state]
                for outcome, state in zip(self._outcomes, self._states, strict=True)
            ]

    def _hand_over(self, outcomes: list[Outcome]) -> None:
        try:
            self._on_done(outcomes)
        except Exception:  # the request stays revoking: the sweeper takes it over
            log.exception("recording a revocation failed")
        finally:
            self._finished.set()
            self._forget(self)


class _Endpoint:
    """One endpoint's threads: up to ``slots``, started as work arrives, kept after."""

    def __init__(self, name: str, slots: int) -> None:
        self.name = name
        self._slots = slots
        self._tasks: deque[Callable[[], None]] = deque()
        self._threads = 0
        self._idle = 0
        self._ready = threading.Condition()

    def submit(self, task: Callable[[], None]) -> None:
        with self._ready:
            self._tasks.append(task)
            if len(self._tasks) > self._idle and self._threads < self._slots:
                self._threads += 1
                # Daemon threads: a call that never returns must not keep the process alive.
                threading.Thread(
                    target=self._work,
                    name=f"jit-revoke-{self.name}-{self._threads}",
                    daemon=True,
                ).start()
            self._ready.notify()

    def _work(self) -> None:
        while True:
            with self._ready:
                while not self._tasks:
                    self._idle += 1
                    try:
                        self._ready.wait()
                    finally:
                        self._idle -= 1
                task = self._tasks.popleft()
            task()


class Revoker:
    """Runs revocations' calls on per-endpoint threads, each revocation within its
    deadline (read from ``clock``)."""

    def __init__(
        self,
        clock: Clock,
        *,
        per_endpoint: int = DEFAULT_PER_ENDPOINT,
        deadline: timedelta = DEFAULT_DEADLINE,
    ) -> None:
        self._clock = clock
        self._per_endpoint = per_endpoint
        self._deadline = deadline
        self._endpoints: dict[str, _Endpoint] = {}
        self._in_flight: set[Revocation] = set()
        self._changed = threading.Condition()
        self._watch: threading.Thread | None = None
        self._stopped = False

    @property
    def deadline(self) -> timedelta:
        return self._deadline

    def start(self, calls: Sequence[Call], on_done: Callable[[list[Outcome]], None]) -> Revocation:
        """Start the calls and return at once; ``on_done`` gets their outcomes, in order,
        on whichever thread sees the last answer or the deadline."""
        revocation = Revocation(
            calls, self._clock.now() + self._deadline, self._deadline, on_done, self._forget
        )
        if not calls:
            revocation._close()
            return revocation
        lanes: dict[tuple[str, Hashable], list[int]] = {}
        for index, call in enumerate(calls):
            lanes.setdefault((call.endpoint, call.lane), []).append(index)
        with self._changed:
            self._in_flight.add(revocation)
            if self._watch is None and not self._stopped:
                self._watch = threading.Thread(
                    target=self._watch_deadlines, name="jit-revoke-deadlines", daemon=True
                )
                self._watch.start()
            self._changed.notify_all()
        for (endpoint, _), indexes in lanes.items():
            self._endpoint(endpoint).submit(_lane_task(revocation, calls, indexes))
        return revocation

    def run(self, calls: Sequence[Call]) -> list[Outcome]:
        """Make the calls and wait for their outcomes (at most until the deadline)."""
        found: list[Outcome] = []
        self.start(calls, found.extend).wait()
        return found

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no revocation is in flight (calls past their deadline may still be
        running: their answers no longer matter)."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._in_flight, timeout)

    def stop(self) -> None:
        """Stop watching deadlines (at shutdown; calls still running are abandoned)."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()

    def _endpoint(self, name: str) -> _Endpoint:
        with self._changed:
            endpoint = self._endpoints.get(name)
            if endpoint is None:
                endpoint = self._endpoints[name] = _Endpoint(name, self._per_endpoint)
            return endpoint

    def _forget(self, revocation: Revocation) -> None:
        with self._changed:
            self._in_flight.discard(revocation)
            self._changed.notify_all()

    def _watch_deadlines(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._stopped or self._in_flight)
                if self._stopped:
                    self._watch = None
                    return
                now = self._clock.now()
                overdue = [r for r in self._in_flight if r.deadline <= now and r.wanted()]
                if not overdue:
                    self._changed.wait(_TICK)
            for revocation in overdue:
                log.warning("a revocation passed its deadline; recording it as failed")
                # Recorded on a thread of its own: recording may call a provider again
                # (ending live sessions), and must not hold up the other deadlines.
                outcomes = revocation._seal()
                if outcomes is not None:
                    threading.Thread(
                        target=revocation._hand_over,
                        args=(outcomes,),
                        name="jit-revoke-late",
                        daemon=True,
                    ).start()


def _lane_task(
    revocation: Revocation, calls: Sequence[Call], indexes: list[int]
) -> Callable[[], None]:
    def run() -> None:
        for index in indexes:
            if not revocation._running(index):
                return  # past the deadline: the rest of the lane is not wanted any more
            try:
                outcome = calls[index].run()
            except Exception as exc:  # a bug in one call must not hold up the others
                log.exception("a revoke call failed unexpectedly")
                outcome = f"unexpected error: {exc!r}"
            revocation._answered(index, outcome)

    return run
