"""Queueing Slack calls in the outbox, in the transaction of the change they report.

The rows are kept on the session and inserted together just before it commits (one
multi-row insert, whatever the number of calls), or dropped with it on a rollback: a
message is sent if and only if its change was stored. ``bot.slack.outbox`` sends them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, insert
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.storage.models import OutboxMessage, OutboxStatus, table_of

# Where a session keeps the outbox rows its transaction will insert at commit.
_QUEUED = "jit_outbox_queued"
#: In a chat.postMessage payload: the reference of the message to reply to in its thread.
#: Resolved (and removed) when the call is made, since that message's ts is only known
#: once it was posted; a reply to one never posted is posted on its own.
THREAD_OF = "_thread_of"


def enqueue(
    session: Session,
    clock: Clock,
    *,
    key: str,
    method: str,
    payload: dict[str, Any],
    message_ref: str | None = None,
) -> None:
    """Queue a Slack call in the caller's transaction. The rows are inserted together
    when the transaction commits (and dropped with it on rollback), in the order queued."""
    now = clock.now()
    session.info.setdefault(_QUEUED, []).append(
        {
            "created_at": now,
            "ordering_key": key,
            "method": method,
            "payload": payload,
            "message_ref": message_ref,
            "status": OutboxStatus.PENDING,
            "attempts": 0,
            "next_attempt_at": now,
        }
    )


@event.listens_for(Session, "before_commit")
def _insert_queued(session: Session) -> None:
    rows = session.info.pop(_QUEUED, None)
    if rows:
        session.execute(insert(table_of(OutboxMessage)), rows)


@event.listens_for(Session, "after_rollback")
def _drop_queued(session: Session) -> None:
    session.info.pop(_QUEUED, None)
