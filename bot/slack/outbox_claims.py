"""Claiming outbox messages before they are sent, so another replica's worker leaves them
alone meanwhile (and takes one over if the claimer dies mid-send), and the call each one
makes: an update or a threaded reply goes where the message it refers to was posted, read
in the claim's transaction. ``bot.slack.outbox`` sends what is claimed here."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.slack.queueing import THREAD_OF
from bot.storage.lists import among
from bot.storage.models import OutboxMessage, OutboxStatus, SlackMessage, table_of

# Longer than one Slack call can take (a 10 s timeout, one retry after a connection
# error), so a live sender never loses its claim; a dead one's is taken over after this.
CLAIM = timedelta(seconds=30)
# Core statements on the tables: none of the ORM's bookkeeping.
_OUTBOX = table_of(OutboxMessage)
_POSTED = table_of(SlackMessage)


class Call(NamedTuple):
    """A claimed message's payload as sent (None: the message to update was never posted),
    and until when it is claimed where it was claimed with others (``Claims.first``)."""

    payload: dict[str, Any] | None
    until: datetime | None = None


@dataclass(frozen=True)
class Claims:
    """Claims messages' rows; ``built`` are the methods whose payload is built when sent."""

    sessions: sessionmaker[Session]
    clock: Clock
    built: Collection[str]

    def first(
        self, session: Session, heads: Sequence[OutboxMessage], now: datetime
    ) -> dict[int | None, Call]:
        """Claim the first due message of each key, all in one statement, with each one's
        call (the messages before it under its key are sent already). id → call, for
        those claimed; the rest are another replica's now. The messages after a first one
        are claimed one by one as the one before is marked sent (``next``), so a claim
        never outlasts one Slack call."""
        if not heads:
            return {}
        until = now + CLAIM
        claimed = set(
            session.scalars(
                update(_OUTBOX)
                .where(
                    among(session, _OUTBOX.c.id, [head.id for head in heads]),
                    _OUTBOX.c.status == OutboxStatus.PENDING,
                    _OUTBOX.c.next_attempt_at <= now,
                )
                .values(next_attempt_at=until)
                .returning(_OUTBOX.c.id)
            )
        )
        return {
            head.id: self._call(session, head)._replace(until=until)
            for head in heads
            if head.id in claimed
        }

    def next(self, session: Session, message: OutboxMessage) -> Call | None:
        """Claim the message as it was loaded, with its call; None if another worker has
        it (or it changed since)."""
        claimed = session.execute(
            update(_OUTBOX)
            .where(
                _OUTBOX.c.id == message.id,
                _OUTBOX.c.status == OutboxStatus.PENDING,
                _OUTBOX.c.next_attempt_at == message.next_attempt_at,
            )
            .values(next_attempt_at=self.clock.now() + CLAIM)
        )
        if cast(CursorResult[Any], claimed).rowcount != 1:
            return None
        return self._call(session, message)

    def release(self, message: OutboxMessage, claimed: Call) -> None:
        """Give back a claim not used: the message is due again as it was."""
        with self.sessions.begin() as session:
            session.execute(
                update(_OUTBOX)
                .where(
                    _OUTBOX.c.id == message.id,
                    _OUTBOX.c.status == OutboxStatus.PENDING,
                    _OUTBOX.c.next_attempt_at == claimed.until,
                )
                .values(next_attempt_at=message.next_attempt_at)
            )

    def _call(self, session: Session, message: OutboxMessage) -> Call:
        """The claimed message's call as sent: with the channel and ts of the message it
        updates or replies to, read in the claim's transaction."""
        payload = dict(message.payload)
        if message.method in self.built:
            return Call(payload)  # built when sent
        if message.method == "chat.update":
            target = _posted(session, message.message_ref)
            if target is None:
                return Call(None)
            payload.update(channel=target.channel, ts=target.ts)
        if THREAD_OF in payload:
            parent = _posted(session, payload.pop(THREAD_OF))
            if parent is not None:
                payload.update(channel=parent.channel, thread_ts=parent.ts)
        return Call(payload)


def _posted(session: Session, ref: str | None) -> Any:
    """Where the message ``ref`` was posted (channel, ts), or None if it never was."""
    return session.execute(
        select(_POSTED.c.channel, _POSTED.c.ts).where(_POSTED.c.ref == ref)
    ).first()
