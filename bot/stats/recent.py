"""The last seven days' figures, for the admins' App Home: computed from the audit trail
like ``jit-bot stats``, and kept for a few minutes (of the bot's clock), since an admin's
Home is rebuilt whenever access starts or ends and a week's figures barely move in that
time."""

from __future__ import annotations

import threading
from datetime import timedelta

from cachetools import TTLCache
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.stats import reading
from bot.stats.figures import Figures, Window, compute

WEEK = timedelta(days=7)
KEEP = timedelta(minutes=5)


class RecentFigures:
    def __init__(self, sessions: sessionmaker[Session], clock: Clock) -> None:
        self._sessions = sessions
        self._clock = clock
        self._lock = threading.Lock()
        self._kept: TTLCache[str, Figures] = TTLCache(
            maxsize=1, ttl=KEEP.total_seconds(), timer=lambda: clock.now().timestamp()
        )

    def week(self) -> Figures:
        """The figures of the requests asked in the last seven days."""
        with self._lock:
            found = self._kept.get("week")
            if found is None:
                since = self._clock.now() - WEEK
                found = compute(reading.events(self._sessions, since), Window(since=since))
                self._kept["week"] = found
            return found
