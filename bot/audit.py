"""The audit trail: append, verify, export.

Every event is a row in the append-only ``audit_event`` table and, through the outbox, a
line in the audit channel, written in the same transaction as the change it records.
Events form a keyed hash chain: each event's hash is an HMAC, under a key that is not in
the database (bot/audit_key.py), over the previous event's hash and its own content (its
id and the id of the key included). Changing, removing or reordering an event breaks the
chain from that point on, and without the key nobody can re-chain what follows, so
``jit-bot audit verify`` names the first event that no longer fits. Events from before
the chain was keyed keep their plain SHA-256 hashes; the first keyed event records the
change of key and, through its HMAC, covers them. That adoption from no key happens once
per trail: an unkeyed event after a keyed one, a second adoption, or an unkeyed change of
key (a trail that was keyed, stripped and re-adopted) fails verify. What only SHA-256
chains cannot show (a whole unkeyed part rewritten before the adoption) the channel
shows, so verify names the adoption boundary every time. (Removing events from the very end
leaves a shorter valid chain; the audit channel, where every post carries the event's
full hash, is the witness for that: ``audit verify --against-slack``.)

The grants export is built from chained events only, so every fact in it is covered.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker
from sqlmodel import col

from bot.audit_key import AuditKey, AuditKeyError
from bot.audit_witness import Seal
from bot.clock import Clock
from bot.notify import Notifier
from bot.storage.models import AuditEvent

log = logging.getLogger(__name__)

# Serialises appends on PostgreSQL so two transactions never chain onto the same event.
# (SQLite transactions already take the write lock at BEGIN.)
_CHAIN_LOCK = 0x6A17_0A0D

KEY_CHANGED = "audit_key_changed"
_BOT = "jit-bot"
# Where a session finds the key it signs events with. The key travels with the sessions
# the composition root builds, so every writer of the trail signs, and none can forget to.
_SIGNING_KEY = "jit_audit_signing_key"


def signing_info(key: AuditKey) -> dict[str, Any]:
    """``sessionmaker(..., info=signing_info(key))``: sessions that append signed events."""
    return {_SIGNING_KEY: key}


def _signing_key(session: Session) -> AuditKey:
    key = session.info.get(_SIGNING_KEY)
    if not isinstance(key, AuditKey):
        raise AuditKeyError(
            "this session has no audit key; build its sessionmaker with "
            "info=audit.signing_info(key)"
        )
    return key


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
    if entries:
        _append(session, clock, notifier, list(entries))


def adopt_key(session: Session, clock: Clock, notifier: Notifier) -> None:
    """Record a change of key now, if the newest event was signed by another key (or by
    none), so the head of the chain is signed by this bot's key from start-up on."""
    _append(session, clock, notifier, [])


def _append(session: Session, clock: Clock, notifier: Notifier, entries: list[Entry]) -> None:
    key = _signing_key(session)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHAIN_LOCK})
    last = session.execute(
        select(col(AuditEvent.hash), col(AuditEvent.key_id))
        .order_by(col(AuditEvent.id).desc())
        .limit(1)
    ).first()
    previous = last[0] if last else ""
    if last is not None and last[1] != key.key_id:
        # The verifier accepts a new key only where the chain says so, in an event the new
        # key signs: stripping or swapping keys elsewhere is a forgery.
        if last[1] is not None:
            log.warning("the audit key changed: events are now signed with key %s", key.key_id)
        else:
            _warn_adoption(session, key)
        entries = [Entry(_BOT, KEY_CHANGED, None, {"from": last[1], "to": key.key_id}), *entries]
    if not entries:
        return
    at = clock.now()
    rows = [
        {
            "at": at,
            "actor": entry.actor,
            "action": entry.action,
            "request_id": entry.request_id,
            "details": jsonable(entry.details),
            "key_id": key.key_id,
        }
        for entry in entries
    ]
    ids = session.scalars(
        insert(AuditEvent).returning(col(AuditEvent.id), sort_by_parameter_order=True), rows
    ).all()
    events: list[AuditEvent] = []
    for event_id, row in zip(ids, rows, strict=True):
        event = AuditEvent(id=event_id, prev_hash=previous, **row)
        event.hash = previous = keyed_hash(key, event.prev_hash, event.model_dump())
        events.append(event)
    session.execute(
        update(AuditEvent),
        [{"id": e.id, "prev_hash": e.prev_hash, "hash": e.hash} for e in events],
    )
    for event in events:
        notifier.post_audit(session, event)


def _warn_adoption(session: Session, key: AuditKey) -> None:
    """Adopting an unkeyed trail signs over whatever it holds: say how much, and say so
    loudly if it looks stripped. Never refuses: a bot that does not start revokes nothing."""
    unkeyed = session.scalar(
        select(func.count()).select_from(AuditEvent).where(col(AuditEvent.key_id).is_(None))
    )
    log.warning(
        "adopting the audit trail: %s earlier events are unkeyed (only SHA-256 chained) and "
        "are now covered by key %s; check them against the audit channel with "
        "`jit-bot audit verify --against-slack`",
        unkeyed,
        key.key_id,
    )
    stripped = session.scalar(
        select(func.min(col(AuditEvent.id))).where(
            col(AuditEvent.key_id).is_(None), col(AuditEvent.action) == KEY_CHANGED
        )
    )
    if stripped is not None:
        log.error(
            "AUDIT TRAIL REWRITTEN: unkeyed event #%s records a change of key, which the bot "
            "always signs: this trail was keyed before and its keys were stripped. "
            "`jit-bot audit verify` will name it.",
            stripped,
        )


def chain_hash(previous: str, event: dict[str, Any]) -> str:
    """sha256 over the previous hash and a canonical form of the event: the unkeyed hash
    of the events written before the chain was keyed."""
    return hashlib.sha256(f"{previous}\n{_canonical(event)}".encode()).hexdigest()


def keyed_hash(key: AuditKey, previous: str, event: dict[str, Any]) -> str:
    """HMAC-SHA256 under ``key`` over the previous hash and the event, its key id included."""
    return key.sign(f"{previous}\n{_canonical(event, keyed=True)}".encode())


def _canonical(event: dict[str, Any], *, keyed: bool = False) -> str:
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
    if keyed:
        content["key_id"] = event["key_id"]
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Verdict:
    checked: int
    first_bad_id: int | None = None
    problem: str | None = None
    # The first bad event could not be checked (its key was not given), rather than
    # found changed.
    unchecked: bool = False
    unkeyed: int = 0  # events from before the chain was keyed, among those checked
    key_ids: tuple[str, ...] = field(default=())  # the keys that signed the checked events
    # The first keyed event (the adoption, when unkeyed events precede it) and its time.
    keyed_from: int | None = None
    keyed_at: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.first_bad_id is None


def verify(sessions: sessionmaker[Session], keys: Sequence[AuditKey]) -> Verdict:
    """Walk the chain oldest first with the bot's key (and any earlier keys); report the
    first event that does not fit or cannot be checked."""
    by_id = {key.key_id: key for key in keys}
    previous, previous_key = "", None
    last_id = checked = unkeyed = 0
    signed_by: list[str] = []
    keyed_from: int | None = None
    keyed_at: datetime | None = None

    def bad(event_id: int, problem: str, *, unchecked: bool = False) -> Verdict:
        return Verdict(
            checked, event_id, problem, unchecked, unkeyed, tuple(signed_by), keyed_from, keyed_at
        )

    with sessions() as session:
        for event in session.scalars(
            select(AuditEvent).order_by(col(AuditEvent.id)).execution_options(yield_per=1000)
        ):
            event_id = event.id or 0
            if event_id <= last_id:
                return bad(event_id, "ids are out of order")
            if event.prev_hash != previous:
                return bad(
                    event_id,
                    "does not follow the event before it (an event before it was changed, "
                    "removed or reordered)",
                )
            if event.key_id is None:
                if previous_key is not None:
                    return bad(
                        event_id,
                        "is not keyed, yet follows a keyed event (rewritten without the key)",
                    )
                if chain_hash(previous, event.model_dump()) != event.hash:
                    return bad(event_id, "its content does not match its hash (changed)")
                if event.action == KEY_CHANGED:
                    # The bot signs every change of key with the new key: an unkeyed one
                    # is a keyed trail stripped of its keys (and, if a bot has started
                    # since, adopted again over the forgery).
                    return bad(
                        event_id,
                        "records a change of key, yet is not keyed: the bot signs every "
                        "change of key, so this trail was keyed and has been rewritten "
                        "without the key (stripped to plain SHA-256)",
                    )
                unkeyed += 1
            else:
                if (
                    checked
                    and event.key_id != previous_key
                    and not _changes_key(event, previous_key)
                ):
                    return bad(
                        event_id,
                        f"is signed with key {event.key_id}, the event before it with "
                        f"{previous_key or 'no key'}, and no change of key is recorded "
                        "between them (forged)",
                    )
                key = by_id.get(event.key_id)
                if key is None:
                    return bad(event_id, _missing_key(event.key_id, keys), unchecked=True)
                if keyed_hash(key, previous, event.model_dump()) != event.hash:
                    return bad(
                        event_id,
                        "its content does not match its HMAC (changed, or re-chained "
                        "without the key)",
                    )
                if keyed_from is not None and _changes_key(event, None):
                    return bad(
                        event_id,
                        f"records a second adoption from no key (the first is event "
                        f"#{keyed_from}): a trail is adopted from no key once (forged)",
                    )
                if keyed_from is None:
                    keyed_from, keyed_at = event_id, _utc(event.at)
                if event.key_id not in signed_by:
                    signed_by.append(event.key_id)
            previous, previous_key, last_id = event.hash, event.key_id, event_id
            checked += 1
    if checked and previous_key is None and keys:
        # Unkeyed events are trusted only below a keyed one, whose HMAC covers them: a
        # chain that ends unkeyed may have had all its keyed events rewritten.
        return bad(
            last_id,
            "is the newest event and is not keyed: a bot with a key records the change of "
            "key as soon as it starts, so either no bot with this key has run on this "
            "database yet (start one, then verify again) or its keyed events were "
            "rewritten without the key",
        )
    return Verdict(
        checked,
        unkeyed=unkeyed,
        key_ids=tuple(signed_by),
        keyed_from=keyed_from,
        keyed_at=keyed_at,
    )


def _changes_key(event: AuditEvent, previous_key: str | None) -> bool:
    """The event records the change from the previous event's key to its own."""
    return (
        event.action == KEY_CHANGED
        and event.details.get("from") == previous_key
        and event.details.get("to") == event.key_id
    )


def _missing_key(key_id: str, keys: Sequence[AuditKey]) -> str:
    given = ", ".join(f"{key.key_id} ({key.source})" for key in keys) or "none"
    return (
        f"cannot be checked: it is signed with key {key_id}, and the key given is not that "
        f"key (given: {given}). Set JIT_AUDIT_KEY or JIT_AUDIT_KEY_FILE to the key the bot "
        "signs with, and give keys used before a rotation with --previous-key-file. If you "
        "never used such a key, the trail was rewritten"
    )


def seals(sessions: sessionmaker[Session]) -> list[Seal]:
    """Each stored event's id, hash and time, to compare with what the audit channel shows."""
    with sessions() as session:
        rows = session.execute(
            select(col(AuditEvent.id), col(AuditEvent.hash), col(AuditEvent.at)).order_by(
                col(AuditEvent.id)
            )
        )
        return [Seal(event_id or 0, digest, _utc(at)) for event_id, digest, at in rows]


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


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
                "key_id": event.key_id,
            }


def _grants(
    sessions: sessionmaker[Session], since: datetime | None, until: datetime | None
) -> Iterator[dict[str, Any]]:
    """Who had which role where, approved by whom, from when to when: one row per grant
    whose access overlapped the window. Read from the chained events alone, never from
    the request or vote rows, so each fact here is one the chain covers."""
    grants: dict[str, _Grant] = {}
    with sessions() as session:
        for event in session.scalars(
            select(AuditEvent)
            .where(col(AuditEvent.request_id).is_not(None))
            .order_by(col(AuditEvent.id))
            .execution_options(yield_per=1000)
        ):
            grants.setdefault(event.request_id or "", _Grant(event.request_id or "")).apply(event)
    granted = sorted(
        ((g.granted_at, g) for g in grants.values() if g.granted_at is not None),
        key=lambda pair: pair[0],
    )
    for granted_at, grant in granted:
        ended = grant.ended_at or grant.expires_at
        if until and granted_at >= until:
            continue
        if since and ended and ended < since:
            continue
        yield grant.row()


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
    approvers: list[str] = field(default_factory=list)
    granted_at: datetime | None = None
    expires_at: datetime | None = None
    ended_at: datetime | None = None
    ended_by: str | None = None
    end_reason: str | None = None
    status: str | None = None

    def apply(self, event: AuditEvent) -> None:
        details = event.details
        self.role = details.get("role", self.role)
        self.environment = details.get("environment", self.environment)
        self.requester = details.get("requester", self.requester)
        if details.get("expires_at") and self.granted_at is not None:
            self.expires_at = _moment(details["expires_at"])  # a later extension counts
        match event.action:
            case "requested":
                self.reason = details.get("reason")
                self.targets = list(details.get("targets") or [])
                self.requester_email = details.get("requester_email")
                self.status = "pending"
            case "auto_approved":
                self.auto_approved = True
            case "approval_recorded" if event.actor not in self.approvers:
                self.approvers.append(event.actor)
            case "granted":
                self.granted_at = event.at
                self.expires_at = _moment(details.get("expires_at"))
                self.status = "active"
            case "revoke_started":
                self.ended_at = self.ended_at or event.at
                self.ended_by = self.ended_by or event.actor
                self.end_reason = self.end_reason or details.get("reason")
                self.status = "revoking"
            case "revoked":
                self.ended_by = event.actor
                self.end_reason = details.get("reason", self.end_reason)
                self.status = "revoked"
            case "revoke_failed":
                self.status = "revoke_failed"

    def row(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "requester": self.requester,
            "requester_email": self.requester_email,
            "role": self.role,
            "environment": self.environment,
            "reason": self.reason,
            "targets": self.targets,
            "approved_by": "auto-approve rule" if self.auto_approved else self.approvers,
            "granted_at": _iso(self.granted_at),
            "ended_at": _iso(self.ended_at),
            "expires_at": _iso(self.expires_at),
            "status": self.status,
            "ended_by": self.ended_by,
            "end_reason": self.end_reason,
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


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    return value
