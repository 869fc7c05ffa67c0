"""The audit trail: append, verify, export.

Every event is a row in the append-only ``audit_event`` table and, through the outbox, a
line in the audit channel, written in the same transaction as the change it records.
Events form a hash chain: each event's hash covers the previous event's hash and its own
content (its id included), so changing, removing or reordering an event breaks the chain
from that point on, and ``jit-bot audit verify`` names the first event that no longer
fits. (Removing events from the very end leaves a shorter valid chain; the audit channel,
where every post carries the event's hash, is the witness for that.)
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from sqlalchemy import insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker
from sqlmodel import col

from bot.clock import Clock
from bot.notify import Notifier
from bot.storage.models import AccessRequest, AuditEvent, RequestTarget, Vote

# Serialises appends on PostgreSQL so two transactions never chain onto the same event.
# (SQLite transactions already take the write lock at BEGIN.)
_CHAIN_LOCK = 0x6A17_0A0D


@dataclass(frozen=True)
class Entry:
    """An event to append: who did what, to which request, with which details."""

    actor: str
    action: str
    request_id: str | None
    details: dict[str, Any]


def record(
    session: Session,
    clock: Clock,
    notifier: Notifier,
    *,
    actor: str,
    action: str,
    request_id: str | None,
    details: dict[str, Any],
) -> None:
    record_all(session, clock, notifier, [Entry(actor, action, request_id, details)])


def record_all(
    session: Session, clock: Clock, notifier: Notifier, entries: Sequence[Entry]
) -> None:
    """Append the events in order, in the caller's transaction, and post each to the audit
    channel. Rows are inserted together; their ids (which the hashes cover) come back
    from the insert, and the chain is computed here and written in one more statement."""
    if not entries:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHAIN_LOCK})
    previous = (
        session.scalar(select(col(AuditEvent.hash)).order_by(col(AuditEvent.id).desc()).limit(1))
        or ""
    )
    at = clock.now()
    rows = [
        {
            "at": at,
            "actor": entry.actor,
            "action": entry.action,
            "request_id": entry.request_id,
            "details": jsonable(entry.details),
        }
        for entry in entries
    ]
    ids = session.scalars(
        insert(AuditEvent).returning(col(AuditEvent.id), sort_by_parameter_order=True), rows
    ).all()
    events: list[AuditEvent] = []
    for event_id, row in zip(ids, rows, strict=True):
        event = AuditEvent(id=event_id, prev_hash=previous, **row)
        event.hash = previous = chain_hash(event.prev_hash, event.model_dump())
        events.append(event)
    session.execute(
        update(AuditEvent),
        [{"id": e.id, "prev_hash": e.prev_hash, "hash": e.hash} for e in events],
    )
    for event in events:
        notifier.post_audit(session, event)


def chain_hash(previous: str, event: dict[str, Any]) -> str:
    """sha256 over the previous hash and a canonical form of the event."""
    at = event["at"]
    if isinstance(at, datetime):
        at = (at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)).isoformat()
    content = {
        "id": event["id"],
        "at": at,
        "actor": event["actor"],
        "action": event["action"],
        "request_id": event["request_id"],
        "details": event["details"],
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{previous}\n{canonical}".encode()).hexdigest()


@dataclass(frozen=True)
class Verdict:
    checked: int
    first_bad_id: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_bad_id is None


def verify(sessions: sessionmaker[Session]) -> Verdict:
    """Walk the chain oldest first; report the first event that does not fit."""
    previous = ""
    last_id = 0
    checked = 0
    with sessions() as session:
        for event in session.scalars(
            select(AuditEvent).order_by(col(AuditEvent.id)).execution_options(yield_per=1000)
        ):
            assert event.id is not None
            if event.id <= last_id:
                return Verdict(checked, event.id, "ids are out of order")
            if event.prev_hash != previous:
                return Verdict(
                    checked,
                    event.id,
                    "does not follow the event before it (an event before it was changed, "
                    "removed or reordered)",
                )
            if chain_hash(previous, event.model_dump()) != event.hash:
                return Verdict(checked, event.id, "its content does not match its hash (changed)")
            previous, last_id = event.hash, event.id
            checked += 1
    return Verdict(checked)


def export(
    sessions: sessionmaker[Session],
    out: TextIO,
    *,
    since: datetime | None,
    until: datetime | None,
    fmt: str,
    kind: str,
) -> int:
    """Write the trail for auditors; returns the number of rows written."""
    rows = list(
        _events(sessions, since, until) if kind == "events" else _grants(sessions, since, until)
    )
    if fmt == "jsonl":
        for row in rows:
            out.write(json.dumps(row, sort_keys=True, default=str) + "\n")
    else:
        columns = sorted({key for row in rows for key in row}) if rows else ["id"]
        writer = csv.DictWriter(out, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})
    return len(rows)


def _events(
    sessions: sessionmaker[Session], since: datetime | None, until: datetime | None
) -> Iterator[dict[str, Any]]:
    query = select(AuditEvent).order_by(col(AuditEvent.id))
    if since:
        query = query.where(col(AuditEvent.at) >= since)
    if until:
        query = query.where(col(AuditEvent.at) < until)
    with sessions() as session:
        for event in session.scalars(query):
            yield {
                "id": event.id,
                "at": event.at.isoformat(),
                "actor": event.actor,
                "action": event.action,
                "request_id": event.request_id,
                "details": event.details,
                "hash": event.hash,
            }


def _grants(
    sessions: sessionmaker[Session], since: datetime | None, until: datetime | None
) -> Iterator[dict[str, Any]]:
    """Who had which role where, approved by whom, from when to when: one row per grant
    whose access overlapped the window."""
    query = (
        select(AccessRequest)
        .where(col(AccessRequest.granted_at).is_not(None))
        .order_by(col(AccessRequest.granted_at))
    )
    if until:
        query = query.where(col(AccessRequest.granted_at) < until)
    with sessions() as session:
        for request in session.scalars(query):
            ended = request.ended_at or request.expires_at
            if since and ended and ended < since:
                continue
            votes = session.scalars(select(Vote).where(col(Vote.request_id) == request.id))
            targets = session.scalars(
                select(RequestTarget)
                .where(col(RequestTarget.request_id) == request.id)
                .order_by(col(RequestTarget.position))
            )
            yield {
                "request_id": request.id,
                "requester": request.requester_id,
                "requester_email": request.requester_email,
                "role": request.role,
                "environment": request.environment,
                "reason": request.reason,
                "targets": [t.description for t in targets],
                "approved_by": "auto-approve rule"
                if request.auto_approve
                else [v.voter_id for v in votes if v.decision == "approve"],
                "granted_at": request.granted_at.isoformat() if request.granted_at else None,
                "ended_at": request.ended_at.isoformat() if request.ended_at else None,
                "expires_at": request.expires_at.isoformat() if request.expires_at else None,
                "status": request.status,
                "ended_by": request.ended_by,
                "end_reason": request.end_reason,
            }


def _cell(value: Any) -> Any:
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True)
    return value


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    return value
