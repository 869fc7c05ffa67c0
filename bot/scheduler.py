"""Timers: one APScheduler date job per active grant ending soon, and the periodic jobs
(sweeper, lease heartbeat, drift check, the expiry jobs' look-ahead).

Jobs are derived from the database; losing them (a crash, a restart) loses nothing,
because the sweeper revokes whatever is past its time. Only grants ending within
``HORIZON`` have a job: a periodic look-ahead (``look_ahead``) adds each grant's job as its
end comes near, so a bot starting on 100,000 active grants is up at once and keeps a few
hundred jobs, not 100,000.

Each periodic job runs on a thread of its own, so none of them waits behind the others
or behind expiry jobs: a drift check stuck on a slow cloud, or a burst of expiries, never
skips a lease heartbeat or a sweep. Expiry jobs only start their revocation (the calls
run on the revocation executor, bot/revoker.py), so their own pool stays free.

An expiry is due by the bot's clock, while APScheduler waits on the host's. They are the
same clock in production; under a clock that moves on its own terms (tests' FakeClock), a
job waits what is left by the bot's clock, and one that wakes before its time on that
clock waits again instead of being lost.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler

from bot.clock import Clock
from bot.operations.context import ExpiryScheduler

log = logging.getLogger(__name__)

#: Grants ending within this have their expiry job; the others get theirs from the
#: look-ahead, which runs every ``LOOK_AHEAD_EVERY`` (well inside the horizon, so a grant
#: has its job minutes before its end even if a look-ahead or two is late).
HORIZON = timedelta(minutes=5)
LOOK_AHEAD_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Periodic:
    name: str
    job: Callable[[], object]
    every: timedelta
    at_start: bool = False  # also run once right away


class Timers(ExpiryScheduler):
    def __init__(self, expire: Callable[[str], None], clock: Clock) -> None:
        self._expire = expire
        self._clock = clock
        # request id → the end its job is set for: a look-ahead re-adds nothing it has.
        self._jobs: dict[str, datetime] = {}
        self._jobs_lock = threading.Lock()
        self._scheduler = BackgroundScheduler(
            timezone="UTC",
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            executors={"default": {"type": "threadpool", "max_workers": 8}},
        )

    def start(self, periodic: list[Periodic]) -> None:
        for task in periodic:
            self._scheduler.add_executor(ThreadPoolExecutor(max_workers=1), alias=task.name)
        self._scheduler.start()
        for task in periodic:
            self._scheduler.add_job(
                self._safely(task.job, task.name),
                "interval",
                seconds=task.every.total_seconds(),
                id=task.name,
                executor=task.name,
                **({"next_run_time": datetime.now().astimezone()} if task.at_start else {}),
            )

    def scheduled(self) -> dict[str, datetime]:
        """request id → the end its job is set for."""
        with self._jobs_lock:
            return dict(self._jobs)

    def look_ahead(self, ending: Iterable[tuple[str, datetime]]) -> None:
        """Give each grant of ``ending`` (those ending within ``HORIZON``) its job, unless
        it has one for that end already."""
        for request_id, at in ending:
            self.schedule(request_id, at)

    def stop(self) -> None:
        if self._scheduler.running:
            # APScheduler marks itself stopped before it takes its job-store lock, so a loop
            # pass caught between running a date job and removing it raises JobLookupError
            # on the scheduler's thread. Pause it (new passes return at once) and remove
            # the jobs (which waits for a pass under way to end) before shutting it down.
            self._scheduler.pause()
            self._scheduler.remove_all_jobs()
            self._scheduler.shutdown(wait=False)

    def schedule(self, request_id: str, at: datetime) -> None:
        """Expire ``request_id`` at ``at`` by the bot's clock: a job now if that is within
        ``HORIZON``; otherwise the look-ahead adds it later, and a job set for an earlier
        end (before an extension) goes."""
        if at - self._clock.now() > HORIZON:
            self.cancel(request_id)
            return
        with self._jobs_lock:
            if self._jobs.get(request_id) == at:
                return
            self._jobs[request_id] = at
        self._add(request_id, at, self._left(at))

    def _left(self, at: datetime) -> timedelta:
        return max(at - self._clock.now(), timedelta(0))

    def _add(self, request_id: str, at: datetime, wait: timedelta) -> None:
        self._scheduler.add_job(
            self._due,
            "date",
            run_date=datetime.now(UTC) + wait,
            args=[request_id, at],
            id=f"expire:{request_id}",
            replace_existing=True,
        )

    def _due(self, request_id: str, at: datetime) -> None:
        if self._clock.now() < at:
            # Early by the bot's clock (it is not the host's): wait what is left. At least
            # a second, so a job re-added under its own id never finds itself running.
            self._add(request_id, at, max(self._left(at), timedelta(seconds=1)))
            return
        with self._jobs_lock:
            if self._jobs.get(request_id) == at:
                del self._jobs[request_id]
        self._expire(request_id)

    def cancel(self, request_id: str) -> None:
        with self._jobs_lock:
            self._jobs.pop(request_id, None)
        with contextlib.suppress(JobLookupError):
            self._scheduler.remove_job(f"expire:{request_id}")

    @staticmethod
    def _safely(job: Callable[[], object], what: str) -> Callable[[], None]:
        def run() -> None:
            try:
                job()
            except Exception:  # the next run tries again; say so loudly
                log.exception("%s failed", what)

        return run
