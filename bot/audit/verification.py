"""Checking the audit trail: walk the chain oldest first and name the first event that
does not fit (or cannot be checked with the keys given); the seals the audit channel is
compared with.

The walk streams (``stored``): events are read in batches as the database stores them,
never as ORM objects, so a trail of millions is checked with the memory of one batch.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from sqlmodel import col

from bot.audit.stored import Stored, batches, canonical, canonical_details, newest_id, utc
from bot.audit.trail import KEY_CHANGED
from bot.audit_key import AuditKey
from bot.audit_witness import Seal
from bot.storage.models import AuditEvent

#: ``progress(checked, total)``: told after each batch (``total`` is the newest event's id).
Progress = Callable[[int, int], None]
#: Trails this long are walked in parts, one process each, when there are CPUs for it.
PARALLEL_FROM = 200_000


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


def verify(
    sessions: sessionmaker[Session],
    keys: Sequence[AuditKey],
    progress: Progress | None = None,
    *,
    workers: int | None = None,
) -> Verdict:
    """Walk the chain oldest first with the bot's key (and any earlier keys); report the
    first event that does not fit or cannot be checked. A long trail is walked in parts,
    one process each (``workers``; by default one per CPU, up to four): the verdict is
    the one a single walk would give."""
    with sessions() as session:
        total = newest_id(session)
    parts = workers if workers is not None else default_workers(total)
    if parts > 1 and total > parts:
        from bot.audit.parallel import verify_in_parts

        return verify_in_parts(sessions, keys, total, parts, progress)
    walk = Walk(keys)
    verdict = walk_part(sessions, walk, None, lambda done: progress and progress(done, total))
    return verdict or walk.end()


def default_workers(total: int) -> int:
    """One process for a short trail (starting more costs more than it saves)."""
    return min(os.cpu_count() or 1, 4) if total >= PARALLEL_FROM else 1


def walk_part(
    sessions: sessionmaker[Session],
    walk: Walk,
    ids: tuple[int, int] | None,
    told: Callable[[int], object],
) -> Verdict | None:
    """Walk the events with ids in [first, end) (all of them without ``ids``); the
    verdict of the first that does not fit, if one does. ``told`` gets the id reached
    after each batch."""
    with sessions() as session:
        for batch in batches(session, ids=ids):
            for event in batch:
                if (verdict := walk.step(event)) is not None:
                    return verdict
            told(batch[-1].id)
    return None


@dataclass(frozen=True)
class Start:
    """Where a walk along a later part of the chain begins: the event just before it, as
    stored, and the first keyed event before it (if all before it fits, these are what a
    walk from the first event would hold there)."""

    previous: str
    previous_key: str | None
    last_id: int
    keyed_from: int | None
    keyed_at: datetime | None


class Walk:
    """One walk along the chain, oldest event first: what has been checked so far."""

    def __init__(self, keys: Sequence[AuditKey], start: Start | None = None) -> None:
        self.keys = keys
        self.by_id = {key.key_id: key for key in keys}
        self.previous = ""
        self.previous_key: str | None = None
        self.last_id = self.checked = self.unkeyed = 0
        self.signed_by: list[str] = []
        self.keyed_from: int | None = None
        self.keyed_at: datetime | None = None
        #: Events come before this walk's first (a part of the chain walked on its own).
        self.after_others = start is not None
        #: The last event's details were stored in canonical form: try the next as stored.
        self.as_stored = True
        if start is not None:
            self.previous, self.previous_key = start.previous, start.previous_key
            self.last_id, self.keyed_from, self.keyed_at = (
                start.last_id,
                start.keyed_from,
                start.keyed_at,
            )

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

    def step(self, event: Stored) -> Verdict | None:
        """Check the next event; the verdict if it is the first that does not fit."""
        event_id = event.id
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

    def _unkeyed(self, event: Stored, event_id: int) -> Verdict | None:
        if self.previous_key is not None:
            return self.bad(
                event_id,
                "is not keyed, yet follows a keyed event (rewritten without the key)",
            )
        if not self._fits(event, keyed=False, digest=_sha256):
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

    def _keyed(self, event: Stored, event_id: int, key_id: str) -> Verdict | None:
        if (
            (self.checked or self.after_others)
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
        if not self._fits(event, keyed=True, digest=key.sign):
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
            self.keyed_from, self.keyed_at = event_id, utc(event.at)
        if key_id not in self.signed_by:
            self.signed_by.append(key_id)
        return None

    def _fits(self, event: Stored, *, keyed: bool, digest: Callable[[bytes], str]) -> bool:
        """Whether the event's hash covers it. Its details are taken as stored while they
        are stored in canonical form (as the bot stores them), which spares parsing and
        re-encoding them; a trail stored otherwise (by an earlier version) is checked on
        their canonical form, as is any event that does not fit as stored."""
        if self.as_stored:
            text = canonical(event, keyed=keyed, details=event.details)
            if digest(f"{self.previous}\n{text}".encode()) == event.hash:
                return True
        details = canonical_details(event.details)
        self.as_stored = details == event.details
        text = canonical(event, keyed=keyed, details=details)
        return digest(f"{self.previous}\n{text}".encode()) == event.hash

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


def _sha256(message: bytes) -> str:
    return hashlib.sha256(message).hexdigest()


def _changes_key(event: Stored, previous_key: str | None) -> bool:
    """The event records the change from the previous event's key to its own."""
    if event.action != KEY_CHANGED:
        return False
    details = json.loads(event.details)
    return (
        isinstance(details, dict)
        and details.get("from") == previous_key
        and details.get("to") == event.key_id
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
        return [Seal(event_id or 0, digest, utc(at)) for event_id, digest, at in rows]
