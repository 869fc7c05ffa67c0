"""Audit events as the database stores them, read oldest first in batches, and the
canonical text their hashes cover: what ``audit verify`` and ``audit export`` stream.

A trail holds millions of events. They are read on the driver's own cursor (a
server-side one on PostgreSQL), never as ORM objects or through SQLAlchemy's type
processing, which would cost more than checking them: the details come as their stored
JSON text, the time as the driver gives it. Memory is one batch, whatever the size.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any, NamedTuple

from sqlalchemy import Text, bindparam, cast, func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from bot.storage.models import AuditEvent

#: Events read from the database at a time.
BATCH = 5_000


class Stored(NamedTuple):
    """One event as stored: ``details`` is its JSON text; ``at`` is what the driver gives
    (SQLite: naive UTC text; PostgreSQL: an aware datetime)."""

    id: int
    at: datetime | str
    actor: str
    action: str
    request_id: str | None
    details: str
    prev_hash: str
    hash: str
    key_id: str | None

    def moment(self) -> datetime:
        return utc(self.at)

    def document(self) -> Any:
        return json.loads(self.details)


def newest_id(session: Session) -> int:
    """The id of the newest event (0 for none): the length of a walk, for its progress."""
    return session.scalar(select(func.max(col(AuditEvent.id)))) or 0


def batches(
    session: Session,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    ids: tuple[int, int] | None = None,
    by_request: bool = False,
    size: int = BATCH,
) -> Iterator[list[Stored]]:
    """Every event (``at`` in [since, until), ``id`` in [first, end) when given), oldest
    first, ``size`` at a time; or (``by_request``) every event of a request, request by
    request, each request's oldest first."""
    query = select(
        col(AuditEvent.id),
        col(AuditEvent.at),
        col(AuditEvent.actor),
        col(AuditEvent.action),
        col(AuditEvent.request_id),
        cast(col(AuditEvent.details), Text),
        col(AuditEvent.prev_hash),
        col(AuditEvent.hash),
        col(AuditEvent.key_id),
    )
    if by_request:
        query = query.where(col(AuditEvent.request_id).is_not(None))
        query = query.order_by(col(AuditEvent.request_id), col(AuditEvent.id))
    else:
        query = query.order_by(col(AuditEvent.id))
    window: dict[str, Any] = {}
    if ids is not None:
        query = query.where(col(AuditEvent.id) >= bindparam("first"))
        query = query.where(col(AuditEvent.id) < bindparam("end"))
    if since is not None:
        query, window["since"] = query.where(col(AuditEvent.at) >= bindparam("since")), since
    if until is not None:
        query, window["until"] = query.where(col(AuditEvent.at) < bindparam("until")), until
    connection = session.connection()
    dialect = connection.dialect
    compiled = query.compile(dialect=dialect)
    # The bounds as the column stores a time (SQLite: naive UTC text), as SQLAlchemy would.
    stored_as = AuditEvent.__table__.c.at.type.bind_processor(dialect)  # type: ignore[attr-defined]
    values = {name: stored_as(value) if stored_as else value for name, value in window.items()}
    if ids is not None:
        values["first"], values["end"] = ids
    order = compiled.positiontup
    parameters = tuple(values[name] for name in order) if order is not None else values
    driver: Any = connection.connection.driver_connection
    # PostgreSQL sends everything at once unless the cursor is a server-side one.
    cursor = (
        driver.cursor(name="jit_audit_events") if dialect.name == "postgresql" else driver.cursor()
    )
    try:
        cursor.execute(str(compiled), parameters)
        while rows := cursor.fetchmany(size):
            yield [Stored(*row) for row in rows]
    finally:
        cursor.close()


def canonical(event: Stored, *, keyed: bool, details: str | None = None) -> str:
    """``trail._canonical`` of a stored event, built from its stored form: the same text,
    without building the event (tests/e2e/test_audit_streaming.py holds the two together).
    ``details``: the details' text to put in, when the caller has it (``canonical_details``
    of the stored text, or the stored text itself where that is already canonical)."""
    return _FORMAT[keyed] % (
        _string(event.action),
        _string(event.actor),
        iso(event.at),
        canonical_details(event.details) if details is None else details,
        event.id,
        *((_string_or_null(event.key_id),) if keyed else ()),
        _string_or_null(event.request_id),
    )


# Keys in sorted order, no spaces: json.dumps(sort_keys=True, separators=(",", ":")).
_FORMAT = {
    False: '{"action":%s,"actor":%s,"at":"%s","details":%s,"id":%d,"request_id":%s}',
    True: '{"action":%s,"actor":%s,"at":"%s","details":%s,"id":%d,"key_id":%s,"request_id":%s}',
}
_canonical_json = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@functools.lru_cache(maxsize=4096)
def canonical_details(stored: str) -> str:
    """The details' canonical JSON text (what the hash covers) from their stored text. The
    bot stores them in that form (``bot.storage.db``); events stored by earlier versions
    are not. Most events' details repeat ({}, {"reason": "expired"} …): each is parsed
    once."""
    return _canonical_json.encode(json.loads(stored))


def canonical_json(value: Any) -> str:
    """JSON as the audit trail's hashes cover it: sorted keys, no spaces, UTF-8 kept."""
    return _canonical_json.encode(value)


@functools.lru_cache(maxsize=4096)
def _string(value: str) -> str:
    # Actions, actors and key ids repeat.
    return encode_basestring(value)


def _string_or_null(value: str | None) -> str:
    return "null" if value is None else _string(value)


def iso(at: datetime | str) -> str:
    """The stored time as ``datetime.isoformat()`` of the aware UTC time."""
    if isinstance(at, str) and len(at) == 26 and at[10] == " " and at[19] == ".":
        # SQLite's stored form, naive UTC with microseconds: isoformat() without parsing
        # (which leaves out microseconds that are zero).
        clock = at[11:19] if at.endswith(".000000") else at[11:]
        return f"{at[:10]}T{clock}+00:00"
    return utc(at).isoformat()


def utc(moment: datetime | str) -> datetime:
    if isinstance(moment, str):  # SQLite: naive UTC text
        moment = datetime.fromisoformat(moment)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
