"""Appending to the audit trail. Every event is a row in the append-only ``audit_event``
table and, through the outbox, a line in the audit channel, in the same transaction as
the change it records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.notify import Notifier
from bot.storage.models import AuditEvent


def record(
    session: Session,
    clock: Clock,
    notifier: Notifier,
    *,
    actor: str,
    action: str,
    request_id: str | None,
    details: dict[str, Any],
) -> AuditEvent:
    event = AuditEvent(
        at=clock.now(),
        actor=actor,
        action=action,
        request_id=request_id,
        details=jsonable(details),
    )
    session.add(event)
    session.flush()
    notifier.post_audit(session, event)
    return event


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    return value
