"""The audit trail written for auditors: every event, or one row per grant built from
the chained events alone, as JSON lines or CSV that a spreadsheet cannot run.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from sqlmodel import col

from bot.names import AuditAction
from bot.storage.models import AuditEvent


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
    if kind == "events":
        rows = list(_events(sessions, since, until))
    elif kind == "breakglass":
        rows = list(_break_glass(sessions, since, until))
    else:
        rows = list(_grants(sessions, since, until))
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
                "key_id": event.key_id,
            }


def _grants(
    sessions: sessionmaker[Session], since: datetime | None, until: datetime | None
) -> Iterator[dict[str, Any]]:
    """Who had which role where, approved by whom, from when to when: one row per grant
    whose access overlapped the window. Read from the chained events alone, never from
    the request or vote rows, so each fact here is one the chain covers."""
    stories = _stories(sessions)
    by_id = {grant.request_id: grant for _, grant in stories}
    for granted_at, grant in stories:
        if granted_at is None:
            continue
        ended = grant.ended_at or grant.expires_at
        if until and granted_at >= until:
            continue
        if since and ended and ended < since:
            continue
        # Each extension that moved its end, with who approved it and why.
        extensions = [by_id[e] for e in grant.extensions if e in by_id]
        yield grant.row() | {
            "extensions": [
                {"request_id": e.request_id, "approved_by": e.approved_by(), "reason": e.reason}
                for e in extensions
            ]
        }


def _break_glass(
    sessions: sessionmaker[Session], since: datetime | None, until: datetime | None
) -> Iterator[dict[str, Any]]:
    """Every break-glass use asked for in the window, granted or not, with its incident,
    duration and post-incident review, from the chained events alone like the grants."""
    for _, grant in _stories(sessions):
        asked = grant.requested_at
        if not grant.break_glass or asked is None:
            continue
        if (since and asked < since) or (until and asked >= until):
            continue
        yield grant.row() | grant.review_row()


def _stories(sessions: sessionmaker[Session]) -> list[tuple[datetime | None, _Grant]]:
    """Each request's story from its events, in the order access was granted (never
    granted last, in the order asked)."""
    grants: dict[str, _Grant] = {}
    with sessions() as session:
        for event in session.scalars(
            select(AuditEvent)
            .where(col(AuditEvent.request_id).is_not(None))
            .order_by(col(AuditEvent.id))
            .execution_options(yield_per=1000)
        ):
            grants.setdefault(event.request_id or "", _Grant(event.request_id or "")).apply(event)
    never = datetime.max.replace(tzinfo=UTC)
    return sorted(
        ((g.granted_at, g) for g in grants.values()),
        key=lambda pair: (pair[0] or never, pair[1].requested_at or never),
    )


@dataclass
class _Grant:
    """One request's story, as its chained events tell it."""

    request_id: str
    requester: str | None = None
    requester_email: str | None = None
    role: str | None = None
    environment: str | None = None
    reason: str | None = None
    targets: list[str] = field(default_factory=list)
    auto_approved: bool = False
    break_glass: bool = False
    incident: str | None = None
    approvers: list[str] = field(default_factory=list)
    granted_at: datetime | None = None
    expires_at: datetime | None = None
    ended_at: datetime | None = None
    ended_by: str | None = None
    end_reason: str | None = None
    status: str | None = None
    requested_at: datetime | None = None
    duration: str | None = None
    review: str = "unreviewed"
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None
    review_note: str | None = None
    #: An extension: the request whose access it extended.
    extends: str | None = None
    #: The extensions applied to this grant, in order.
    extensions: list[str] = field(default_factory=list)

    def apply(self, event: AuditEvent) -> None:
        details = event.details
        self.role = details.get("role", self.role)
        self.environment = details.get("environment", self.environment)
        self.requester = details.get("requester", self.requester)
        if details.get("expires_at") and self.granted_at is not None:
            self.expires_at = _moment(details["expires_at"])  # a later extension counts
        match event.action:
            case AuditAction.REQUESTED:
                self.reason = details.get("reason")
                self.targets = list(details.get("targets") or [])
                self.requester_email = details.get("requester_email")
                self.requested_at = event.at
                self.duration = details.get("duration")
                self.extends = details.get("extends")
                self.status = "pending"
            case AuditAction.AUTO_APPROVED:
                self.auto_approved = True
            case AuditAction.BREAK_GLASS:
                self.break_glass = True
                self.status = "approved"
                self.incident = details.get("incident")
            case AuditAction.APPROVAL_RECORDED if event.actor not in self.approvers:
                self.approvers.append(event.actor)
            case AuditAction.GRANTED:
                self.granted_at = event.at
                self.expires_at = _moment(details.get("expires_at"))
                self.status = "active"
            case AuditAction.REVOKE_STARTED:
                self.ended_at = self.ended_at or event.at
                self.ended_by = self.ended_by or event.actor
                self.end_reason = self.end_reason or details.get("reason")
                self.status = "revoking"
            case AuditAction.REVOKED:
                self.ended_by = event.actor
                self.end_reason = details.get("reason", self.end_reason)
                self.status = "revoked"
            case AuditAction.REVOKE_FAILED:
                self.status = "revoke_failed"
            case AuditAction.GRANT_FAILED:
                self.status = "failed"
            case AuditAction.APPROVED:
                self.status = "approved"
            case AuditAction.DENIED:
                self.status = "denied"
            case AuditAction.CANCELLED:
                self.status = "cancelled"
            case AuditAction.EXPIRED_UNDECIDED:
                self.status = "expired"
            case AuditAction.EXTENDED:
                self.status = "extended"
            case AuditAction.EXPIRY_MOVED:
                self.extensions.append(str(details.get("extension")))
            case AuditAction.BREAK_GLASS_REVIEWED if self.reviewed_by is None:
                # The first review decides; the database refuses a second.
                self.review = str(details.get("verdict"))
                self.reviewed_by = event.actor
                self.reviewed_at = event.at
                self.review_note = details.get("note")

    def row(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "requester": self.requester,
            "requester_email": self.requester_email,
            "role": self.role,
            "environment": self.environment,
            "reason": self.reason,
            "targets": self.targets,
            "approved_by": self.approved_by(),
            "granted_at": _iso(self.granted_at),
            "ended_at": _iso(self.ended_at),
            "expires_at": _iso(self.expires_at),
            "status": self.status,
            "ended_by": self.ended_by,
            "end_reason": self.end_reason,
            # Granted by the requester's break-glass: no one approved it.
            "break_glass": self.break_glass,
            "incident": self.incident,
            "extends": self.extends,
        }

    def approved_by(self) -> str | list[str]:
        return "auto-approve rule" if self.auto_approved else self.approvers

    def review_row(self) -> dict[str, Any]:
        """A break-glass use's own columns: how long it was asked for and its review."""
        return {
            "requested_at": _iso(self.requested_at),
            "duration": self.duration,
            "review": self.review,
            "reviewed_by": self.reviewed_by,
            "reviewed_at": _iso(self.reviewed_at),
            "review_note": self.review_note,
        }


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    moment = datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP, "CSV
# injection"); a reason such as "=HYPERLINK(…)" must reach the auditor as text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if isinstance(value, list | dict):
        value = json.dumps(value, sort_keys=True)
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value
