"""Per-person quotas: how many requests one person may have waiting for a decision, how
many they may make in an hour, how often they may break the glass in a day (the rule's
``break_glass.per_person_per_day``) and how often they may run ``/jit sync``.

One account (a careless script, a stolen session) must not be able to bury the
approvers in DMs or keep every bot busy re-reading Slack and the clouds. The counts come
from the database, so they hold across replicas and restarts, and are taken in the
transaction that stores the new request or records the sync, after a per-person lock:
two requests sent at once cannot both take the last place.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, select, text
from sqlalchemy.orm import Mapped, Session
from sqlmodel import col

from bot.config import Settings
from bot.errors import QuotaExceeded
from bot.names import AuditAction
from bot.storage.models import AccessRequest, AuditEvent, Status

WINDOW = timedelta(hours=1)
DAY = timedelta(hours=24)


def next_allowed(
    times: Sequence[datetime], limit: int, window: timedelta, now: datetime
) -> datetime | None:
    """None when one more use fits among ``times`` in the ``window`` that ends ``now``;
    otherwise the moment enough of them have left the window for one more to fit."""
    recent = sorted(t for t in times if t > now - window)
    if len(recent) < limit:
        return None
    return recent[-limit] + window


def check_request(session: Session, settings: Settings, person: str, now: datetime) -> None:
    """Raise QuotaExceeded if ``person`` may not make one more request now."""
    _lock(session, person)
    pending = list(
        session.execute(
            select(col(AccessRequest.id), col(AccessRequest.created_at))
            .where(
                col(AccessRequest.requester_id) == person,
                col(AccessRequest.status) == Status.PENDING,
                # Past its TTL a request is the sweeper's to expire; it waits for no one.
                col(AccessRequest.created_at) > now - settings.pending_ttl,
            )
            .order_by(col(AccessRequest.created_at))
        )
    )
    limit = settings.max_pending_per_person
    if len(pending) >= limit:
        ids = ", ".join(request_id for request_id, _ in pending[:5])
        more = f" and {len(pending) - 5} more" if len(pending) > 5 else ""
        oldest_expires = pending[0][1] + settings.pending_ttl
        raise QuotaExceeded(
            f"You already have {len(pending)} requests waiting for a decision ({ids}{more}); "
            f"{limit} at a time is the most jit-bot allows. Cancel one you no longer need "
            "(`/jit cancel <request-id>`) or ask again once one is decided; "
            f"{pending[0][0]} expires undecided {_when(oldest_expires, now)} at the latest.",
            retry_at=oldest_expires,
        )
    hourly = settings.max_requests_per_person_per_hour
    theirs = col(AccessRequest.requester_id) == person
    retry_at = _next_slot(session, col(AccessRequest.created_at), hourly, now, theirs)
    if retry_at is not None:
        raise QuotaExceeded(
            f"You have made {hourly} requests in the last hour, the most jit-bot allows; "
            f"you can ask again {_when(retry_at, now)}.",
            retry_at=retry_at,
        )


def check_break_glass(session: Session, person: str, per_day: int, now: datetime) -> None:
    """Raise QuotaExceeded if ``person`` has broken the glass ``per_day`` times in the 24
    hours that end ``now`` (every break-glass request counts, whatever became of it)."""
    _lock(session, person)
    theirs = (col(AccessRequest.requester_id) == person, col(AccessRequest.break_glass).is_(True))
    retry_at = _next_slot(session, col(AccessRequest.created_at), per_day, now, *theirs, window=DAY)
    if retry_at is not None:
        raise QuotaExceeded(
            f"You have broken the glass {per_day} time(s) in the last 24 hours, the most "
            f"approvers.yaml allows; you can break it again {_when(retry_at, now)}. Until "
            "then, ask with `/jit request`, which approvers decide.",
            retry_at=retry_at,
        )


def check_sync(session: Session, settings: Settings, person: str, now: datetime) -> None:
    """Raise QuotaExceeded if ``person`` may not run ``/jit sync`` once more now."""
    _lock(session, person)
    limit = settings.sync_per_person_per_hour
    theirs = (col(AuditEvent.actor) == person, col(AuditEvent.action) == AuditAction.SYNC)
    retry_at = _next_slot(session, col(AuditEvent.at), limit, now, *theirs)
    if retry_at is not None:
        raise QuotaExceeded(
            f"You have refreshed the caches {limit} times in the last hour, the most jit-bot "
            f"allows; you can run `/jit sync` again {_when(retry_at, now)}. (Caches also "
            "refresh by themselves within minutes.)",
            retry_at=retry_at,
        )


def _next_slot(
    session: Session,
    column: Mapped[datetime],
    limit: int,
    now: datetime,
    *where: ColumnElement[bool],
    window: timedelta = WINDOW,
) -> datetime | None:
    """``next_allowed`` over the times ``column`` holds in the rows ``where`` selects: the
    quotas differ only in which rows they count, and over which window."""
    # The newest ``limit`` times within the window are all a verdict needs.
    newest = session.scalars(
        select(column)
        .where(*where)
        .where(column > now - window)
        .order_by(column.desc())
        .limit(limit)
    )
    return next_allowed(list(newest), limit, window, now)


def _lock(session: Session, person: str) -> None:
    # SQLite transactions already hold the write lock from BEGIN; PostgreSQL ones only
    # lock what they write, which the count here does not.
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(person)})


def _lock_key(person: str) -> int:
    digest = hashlib.sha256(f"jit-bot/quota/{person}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _when(moment: datetime, now: datetime) -> str:
    minutes = max(1, math.ceil((moment - now).total_seconds() / 60))
    span = f"{minutes} minute{'s' if minutes != 1 else ''}"
    if minutes >= 120:
        span = f"{minutes // 60} hours {minutes % 60} minutes"
    return f"in {span} (at {moment.astimezone(UTC).strftime('%H:%M')} UTC)"
