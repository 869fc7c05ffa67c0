"""Deleting the messages the outbox is done with, once they are old enough.

Every DM, update and audit-channel post is an outbox row, fifteen or so per request, and a
sent one is never read again: where a post landed is kept in ``slack_message``, and what
happened is in the audit trail. Kept for ever, they would be most of the database after a
year (a message's blocks run to kilobytes). So, every ``EVERY``, the messages sent (or
refused for good) longer ago than the configured ``settings.keep_sent_messages`` are
deleted, a bounded batch per transaction, so a first run on a database that kept years of
them spreads the work over several runs instead of holding the table. A pending message
is never deleted, however old: it is still to be sent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, literal_column, select
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.storage.models import OutboxMessage, OutboxStatus, table_of

log = logging.getLogger(__name__)

#: How often the outbox is cleared of what it is done with.
EVERY = timedelta(hours=1)
_OUTBOX = table_of(OutboxMessage)
# Statuses a message does not leave: written as constants, like the look for pending ones.
_DONE = _OUTBOX.c.status.in_(
    [literal_column(f"'{OutboxStatus.SENT}'"), literal_column(f"'{OutboxStatus.DEAD}'")]
)


@dataclass(frozen=True)
class OutboxRetention:
    """Deletes sent and dead messages older than ``keep``, at most ``batches`` × ``batch``
    rows a run."""

    sessions: sessionmaker[Session]
    clock: Clock
    keep: timedelta
    batch: int = 5_000
    batches: int = 20

    def prune(self) -> int:
        """Delete what is old enough; returns how many messages were deleted."""
        # A message's next attempt is when it was queued, or its last claim's end (at
        # most 30 s after it was sent): older than the cut, it was done with before it.
        cutoff = self.clock.now() - self.keep
        old = (
            select(_OUTBOX.c.id)
            .where(_OUTBOX.c.next_attempt_at < cutoff, _DONE)
            .limit(self.batch)
            .scalar_subquery()
        )
        deleted = 0
        for _ in range(self.batches):
            with self.sessions.begin() as session:
                result = session.execute(delete(_OUTBOX).where(_OUTBOX.c.id.in_(old)))
            count = cast(CursorResult[Any], result).rowcount
            deleted += count
            if count < self.batch:
                break
        if deleted:
            log.info("deleted %d outbox messages done with before %s", deleted, cutoff)
        return deleted
