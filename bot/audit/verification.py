"""Checking the audit trail: walk the chain oldest first and name the first event that
does not fit (or cannot be checked with the keys given); the seals the audit channel is
compared with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from sqlmodel import col

from bot.audit.trail import KEY_CHANGED, chain_hash, keyed_hash
from bot.audit_key import AuditKey
from bot.audit_witness import Seal
from bot.storage.models import AuditEvent


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
    walk = _Walk(keys)
    with sessions() as session:
        for event in session.scalars(
            select(AuditEvent).order_by(col(AuditEvent.id)).execution_options(yield_per=1000)
        ):
            if (verdict := walk.step(event)) is not None:
                return verdict
    return walk.end()


class _Walk:
    """One walk along the chain, oldest event first: what has been checked so far."""

    def __init__(self, keys: Sequence[AuditKey]) -> None:
        self.keys = keys
        self.by_id = {key.key_id: key for key in keys}
        self.previous = ""
        self.previous_key: str | None = None
        self.last_id = self.checked = self.unkeyed = 0
        self.signed_by: list[str] = []
        self.keyed_from: int | None = None
        self.keyed_at: datetime | None = None

    def bad(self, event_id: int, problem: str, *, unchecked: bool = False) -> Verdict:
        return Verdict(
            self.checked,
            event_id,
            problem,
            unchecked,
            self.unkeyed,
            tuple(self.signed_by),
            self.keyed_from,
            self.keyed_at,
        )

    def step(self, event: AuditEvent) -> Verdict | None:
        """Check the next event; the verdict if it is the first that does not fit."""
        event_id = event.id or 0
        if event_id <= self.last_id:
            return self.bad(event_id, "ids are out of order")
        if event.prev_hash != self.previous:
            return self.bad(
                event_id,
                "does not follow the event before it (an event before it was changed, "
                "removed or reordered)",
            )
        if event.key_id is None:
            verdict = self._unkeyed(event, event_id)
        else:
            verdict = self._keyed(event, event_id, event.key_id)
        if verdict is not None:
            return verdict
        self.previous, self.previous_key, self.last_id = event.hash, event.key_id, event_id
        self.checked += 1
        return None

    def _unkeyed(self, event: AuditEvent, event_id: int) -> Verdict | None:
        if self.previous_key is not None:
            return self.bad(
                event_id,
                "is not keyed, yet follows a keyed event (rewritten without the key)",
            )
        if chain_hash(self.previous, event.model_dump()) != event.hash:
            return self.bad(event_id, "its content does not match its hash (changed)")
        if event.action == KEY_CHANGED:
            # The bot signs every change of key with the new key: an unkeyed one
            # is a keyed trail stripped of its keys (and, if a bot has started
            # since, adopted again over the forgery).
            return self.bad(
                event_id,
                "records a change of key, yet is not keyed: the bot signs every "
                "change of key, so this trail was keyed and has been rewritten "
                "without the key (stripped to plain SHA-256)",
            )
        self.unkeyed += 1
        return None

    def _keyed(self, event: AuditEvent, event_id: int, key_id: str) -> Verdict | None:
        if (
            self.checked
            and key_id != self.previous_key
            and not _changes_key(event, self.previous_key)
        ):
            return self.bad(
                event_id,
                f"is signed with key {key_id}, the event before it with "
                f"{self.previous_key or 'no key'}, and no change of key is recorded "
                "between them (forged)",
            )
        key = self.by_id.get(key_id)
        if key is None:
            return self.bad(event_id, _missing_key(key_id, self.keys), unchecked=True)
        if keyed_hash(key, self.previous, event.model_dump()) != event.hash:
            return self.bad(
                event_id,
                "its content does not match its HMAC (changed, or re-chained without the key)",
            )
        if self.keyed_from is not None and _changes_key(event, None):
            return self.bad(
                event_id,
                f"records a second adoption from no key (the first is event "
                f"#{self.keyed_from}): a trail is adopted from no key once (forged)",
            )
        if self.keyed_from is None:
            self.keyed_from, self.keyed_at = event_id, _utc(event.at)
        if key_id not in self.signed_by:
            self.signed_by.append(key_id)
        return None

    def end(self) -> Verdict:
        """The verdict once every event fitted."""
        if self.checked and self.previous_key is None and self.keys:
            # Unkeyed events are trusted only below a keyed one, whose HMAC covers them: a
            # chain that ends unkeyed may have had all its keyed events rewritten.
            return self.bad(
                self.last_id,
                "is the newest event and is not keyed: a bot with a key records the change of "
                "key as soon as it starts, so either no bot with this key has run on this "
                "database yet (start one, then verify again) or its keyed events were "
                "rewritten without the key",
            )
        return Verdict(
            self.checked,
            unkeyed=self.unkeyed,
            key_ids=tuple(self.signed_by),
            keyed_from=self.keyed_from,
            keyed_at=self.keyed_at,
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
