"""What a message's outbox row records of an attempt to send it: sent, refused for good
(dead), or to be tried again later: after a 429's Retry-After, or backing off
exponentially (at most five minutes) on a 5xx, a transient Slack error or the network.
``bot.slack.outbox`` sends; this writes down how it went."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from slack_sdk.errors import SlackApiError
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.slack import TRANSIENT_ERRORS, retry_after
from bot.storage.models import OutboxMessage, OutboxStatus, table_of

log = logging.getLogger(__name__)

_MAX_BACKOFF = timedelta(minutes=5)
# Core statements on the table: none of the ORM's bookkeeping.
_OUTBOX = table_of(OutboxMessage)


@dataclass(frozen=True)
class Marks:
    """Marks messages' rows, each in a transaction of its own (``mark``: the caller's)."""

    sessions: sessionmaker[Session]
    clock: Clock

    def failed(self, message: OutboxMessage, exc: SlackApiError) -> bool:
        """Slack answered with an error: retried where that can help; whether the message
        is done with (refused for good)."""
        status = exc.response.status_code
        error = str(exc.response.get("error", "")) if exc.response.data else ""
        if status == 429:
            wait = retry_after(exc)
            self.retry(message, f"429 ratelimited, retry after {wait:g}s", wait)
            return False
        if status >= 500 or error in TRANSIENT_ERRORS:
            self.retry(message, f"HTTP {status} {error}".strip(), None)
            return False
        log.error("Slack refused %s #%s for good: %s", message.method, message.id, error or status)
        self.finish(message, OutboxStatus.DEAD, error or f"HTTP {status}")
        return True

    def retry(self, message: OutboxMessage, reason: str, wait: float | None) -> None:
        """Try again after ``wait`` seconds, or after the backoff of its attempts so far."""
        if wait is not None:
            delay = timedelta(seconds=wait)
        else:
            delay = min(timedelta(seconds=2 ** min(message.attempts, 10)), _MAX_BACKOFF)
        log.warning("Slack %s #%s deferred %s: %s", message.method, message.id, delay, reason)
        with self.sessions.begin() as session:
            session.execute(
                update(_OUTBOX)
                .where(_OUTBOX.c.id == message.id)
                .values(
                    attempts=message.attempts + 1,
                    next_attempt_at=self.clock.now() + delay,
                    last_error=reason,
                )
            )

    def finish(self, message: OutboxMessage, status: OutboxStatus, error: str | None) -> None:
        with self.sessions.begin() as session:
            self.mark(session, message, status, error)

    def mark(
        self, session: Session, message: OutboxMessage, status: OutboxStatus, error: str | None
    ) -> None:
        session.execute(
            update(_OUTBOX)
            .where(_OUTBOX.c.id == message.id)
            .values(
                status=status,
                attempts=message.attempts + 1,
                sent_at=self.clock.now() if status == OutboxStatus.SENT else None,
                last_error=error,
            )
        )
