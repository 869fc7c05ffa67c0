"""The audit trail written for auditors: every event, or one row per grant built from
the chained events alone, as JSON lines or CSV that a spreadsheet cannot run.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, TextIO

from sqlalchemy.orm import Session, sessionmaker

from bot.audit.spool import Spool
from bot.audit.stored import batches, iso, newest_id
from bot.names import AuditAction

#: ``progress(done, total)``: how far along the trail (event ids) the export is.
Progress = Callable[[int, int], None]


def export(
    sessions: sessionmaker[Session],
    out: TextIO,
    *,
    since: datetime | None,
    until: datetime | None,
    fmt: str,
    kind: str,
    progress: Progress | None = None,
) -> int:
    """Write the trail for auditors; returns the number of rows written. Events are
    streamed as they are read (``progress`` is told after each batch); grants and
    break-glass uses are each one request's whole story, told once it is read."""
    if kind == "events":
        rows = _events(sessions, since, until, progress)
    elif kind == "breakglass":
        rows = _break_glass(sessions, since, until)
    else:
        rows = _grants(sessions, since, until)
    if fmt == "jsonl":
        return _jsonl(rows, out)
    return _csv(rows, out)


def _jsonl(rows: Iterator[dict[str, Any]], out: TextIO) -> int:
    count = 0
    for row in rows:
        out.write(json.dumps(row, sort_keys=True, default=str) + "\n")
        count += 1
    return count


def _csv(rows: Iterator[dict[str, Any]], out: TextIO) -> int:
    """Every row of one kind has the same keys: the first row's are the header."""
    first = next(rows, None)
    writer = csv.DictWriter(out, fieldnames=sorted(first) if first else ["id"])
    writer.writeheader()
    if first is None:
        return 0
    count = 0
    for row in itertools.chain([first], rows):
        writer.writerow({k: _cell(v) for k, v in row.items()})
        count += 1
    return count


def _events(
    sessions: sessionmaker[Session],
    since: datetime | None,
    until: datetime | None,
    progress: Progress | None,
) -> Iterator[dict[str, Any]]:
    with sessions() as session:
        total = newest_id(session)
        for batch in batches(session, since=since, until=until):
            for event in batch:
                yield {
                    "id": event.id,
                    "at": iso(event.at),
                    "actor": event.actor,
                    "action": event.action,
                    "request_id": event.request_id,
                    "details": event.document(),
                    "hash": event.hash,
                    "key_id": event.key_id,
                }
            if progress is not None:
                progress(batch[-1].id, total)


def _grants(
    sessions: sessionmaker[Session], since: datetime | None, until: datetime | None
) -> Iterator[dict[str, Any]]:
    """Who had which role where, approved by whom, from when to when: one row per grant
    whose access overlapped the window. Read from the chained events alone, never from
    the request or vote rows, so each fact here is one the chain covers."""
    with _stories(sessions) as stories:
        for grant in stories.ordered():
            granted_at = grant.granted_at
            if granted_at is None:
                continue
            ended = grant.ended_at or grant.expires_at
            if until and granted_at >= until:
                continue
            if since and ended and ended < since:
                continue
            # Each extension that moved its end, with who approved it and why.
            extensions = [e for e in map(stories.get, grant.extensions) if e is not None]
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
    with _stories(sessions) as stories:
        for grant in stories.ordered():
            asked = grant.requested_at
            if not grant.break_glass or asked is None:
                continue
            if (since and asked < since) or (until and asked >= until):
                continue
            yield grant.row() | grant.review_row()


@contextmanager
def _stories(sessions: sessionmaker[Session]) -> Iterator[Spool]:
    """Each request's story from its events, spooled in the order access was granted
    (never granted last, in the order asked): one story in memory at a time."""
    never = "~"  # after every ISO time
    with Spool() as spool, sessions() as session:
        grant: _Grant | None = None
        first = 0  # the id of the story's first event: ties in the order the stories began
        for batch in batches(session, by_request=True):
            for event in batch:
                if grant is None or grant.request_id != event.request_id:
                    if grant is not None:
                        spool.add(grant.request_id, f"{grant.sort_key(never)} {first:020d}", grant)
                    grant, first = _Grant(event.request_id or ""), event.id
                grant.apply(_Told(event.action, event.actor, event.moment(), event.document()))
        if grant is not None:
            spool.add(grant.request_id, f"{grant.sort_key(never)} {first:020d}", grant)
        yield spool


class _Told(NamedTuple):
    """What a story needs of one of its events."""

    action: str
    actor: str
    at: datetime
    details: dict[str, Any]


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

    def sort_key(self, never: str) -> str:
        """Granted first, in the order granted; then never granted, in the order asked."""
        return " ".join(
            f"{m.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%f}" if m else never
            for m in (self.granted_at, self.requested_at)
        )

    def apply(self, event: _Told) -> None:
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
