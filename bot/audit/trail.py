"""Appending to the audit trail: events recorded in the caller's transaction, chained
by keyed hash (HMAC) under the bot's key, and posted to the audit channel; the adoption
of a new key (or of a trail from before keys); the hashes themselves.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session
from sqlmodel import col

from bot.audit_key import AuditKey, AuditKeyError
from bot.clock import Clock
from bot.names import BOT_ACTOR, AuditAction
from bot.notify import Notifier
from bot.storage.models import AuditEvent, table_of

log = logging.getLogger(__name__)

# Serialises appends on PostgreSQL so two transactions never chain onto the same event.
# (SQLite transactions already take the write lock at BEGIN.)
_CHAIN_LOCK = 0x6A17_0A0D

KEY_CHANGED = AuditAction.AUDIT_KEY_CHANGED
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
    action: AuditAction  # every action the trail knows is named there, nowhere else
    request_id: str | None
    details: dict[str, Any]


def record(
    session: Session,
    clock: Clock,
    notifier: Notifier,
    *,
    actor: str,
    action: AuditAction,
    request_id: str | None,
    details: dict[str, Any],
) -> None:
    record_all(session, clock, notifier, [Entry(actor, action, request_id, details)])


def record_by_bot(
    session: Session,
    clock: Clock,
    notifier: Notifier,
    action: AuditAction,
    request_id: str | None,
    details: dict[str, Any],
) -> None:
    """``record`` an event the bot itself is the actor of."""
    record(
        session,
        clock,
        notifier,
        actor=BOT_ACTOR,
        action=action,
        request_id=request_id,
        details=details,
    )


def record_all(
    session: Session, clock: Clock, notifier: Notifier, entries: Sequence[Entry]
) -> None:
    """Append the events in order, in the caller's transaction, and post each to the audit
    channel. The chain is computed here, over ids taken before the insert, and the rows
    are inserted together, hashes included, in one statement."""
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
        select(col(AuditEvent.id), col(AuditEvent.hash), col(AuditEvent.key_id))
        .order_by(col(AuditEvent.id).desc())
        .limit(1)
    ).first()
    previous = last.hash if last else ""
    if last is not None and last.key_id != key.key_id:
        # The verifier accepts a new key only where the chain says so, in an event the new
        # key signs: stripping or swapping keys elsewhere is a forgery.
        if last.key_id is not None:
            log.warning("the audit key changed: events are now signed with key %s", key.key_id)
        else:
            _warn_adoption(session, key)
        entries = [
            Entry(BOT_ACTOR, KEY_CHANGED, None, {"from": last.key_id, "to": key.key_id}),
            *entries,
        ]
    if not entries:
        return
    at, key_id = clock.now(), key.key_id
    ids = _new_ids(session, last.id if last else 0, len(entries))
    rows: list[dict[str, Any]] = []
    for event_id, entry in zip(ids, entries, strict=True):
        row = {
            "id": event_id,
            "at": at,
            "actor": entry.actor,
            "action": entry.action,
            "request_id": entry.request_id,
            "details": jsonable(entry.details),
            "key_id": key_id,
            "prev_hash": previous,
        }
        row["hash"] = previous = keyed_hash(key, row["prev_hash"], row)
        rows.append(row)
    # The ids are known before the insert, so each row goes in whole: one statement,
    # and the table is only ever appended to.
    session.execute(insert(table_of(AuditEvent)), rows)
    for row in rows:
        # What the audit channel is told, read from the row as written (model_construct:
        # a plain copy of the values, none of an ORM instance's bookkeeping).
        notifier.post_audit(session, AuditEvent.model_construct(**row))


def _new_ids(session: Session, last: int, count: int) -> list[int]:
    """The ids the next ``count`` events get, in order, all above ``last`` (the newest
    event's). Appends are serialised (the advisory lock on PostgreSQL, SQLite's write
    lock), so on SQLite these are the ids the database would give them itself."""
    if session.get_bind().dialect.name == "postgresql":
        return sorted(
            session.scalars(
                text(
                    "SELECT nextval(pg_get_serial_sequence('audit_event', 'id')) "
                    "FROM generate_series(1, :count)"
                ),
                {"count": count},
            )
        )
    return list(range(last + 1, last + 1 + count))


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


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    return value
