"""The audit trail as the figures read it: each request's events in id order, streamed a
thousand at a time (for ``jit-bot stats`` and the admins' App Home)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from sqlmodel import col

from bot.stats.figures import Event
from bot.storage.models import AuditEvent


def events(sessions: sessionmaker[Session], since: datetime | None) -> Iterator[Event]:
    """The request events of the trail in id order, streamed. Events before ``since``
    are left in the database: a request's events all come at or after its asking."""
    query = (
        select(
            col(AuditEvent.at),
            col(AuditEvent.actor),
            col(AuditEvent.action),
            col(AuditEvent.request_id),
            col(AuditEvent.details),
        )
        .where(col(AuditEvent.request_id).is_not(None))
        .order_by(col(AuditEvent.id))
        .execution_options(yield_per=1000)
    )
    if since is not None:
        query = query.where(col(AuditEvent.at) >= since)
    with sessions() as session:
        for at, actor, action, request_id, details in session.execute(query):
            yield Event(at, actor, action, str(request_id), details)
