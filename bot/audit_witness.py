"""The audit channel as a witness of the chain: compare what the bot posted there (each
event's id and full hash) with what the database holds now.

The keyed chain catches an event changed without the key; the channel catches what the
chain alone cannot: the newest events deleted, and events rewritten by someone holding
the key. Pure: the reading of the channel is in bot/slack/audit_channel.py.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Seal:
    """One event as the audit channel shows it: its full hash, or the first 12 hex digits
    that posts made before the full hash was posted carry."""

    event_id: int
    hash: str


@dataclass(frozen=True)
class Finding:
    event_id: int
    problem: str


@dataclass(frozen=True)
class Testimony:
    findings: tuple[Finding, ...]
    events: int  # in the database
    posted: int  # distinct events seen in the channel
    newest_posted: int | None

    @property
    def ok(self) -> bool:
        return not self.findings


def compare(events: Sequence[Seal], posted: Sequence[Seal]) -> Testimony:
    """Every event must have been posted with the hash it has now, and every posted event
    must still be in the database."""
    stored = {event.event_id: event.hash for event in events}
    seen: dict[int, set[str]] = defaultdict(set)
    for seal in posted:
        seen[seal.event_id].add(seal.hash)
    newest_stored = max(stored, default=0)
    findings: list[Finding] = []
    for event_id in sorted(stored.keys() | seen.keys()):
        now, shown = stored.get(event_id), sorted(seen.get(event_id, ()))
        if now is None:
            where = (
                "newer than the newest event in the database: the newest events were deleted"
                if event_id > newest_stored
                else "removed from the database"
            )
            findings.append(Finding(event_id, f"posted to the audit channel but missing: {where}"))
        elif not shown:
            findings.append(
                Finding(
                    event_id,
                    "in the database but never posted to the audit channel (written behind "
                    "the bot's back, or still waiting in the outbox: run again in a minute)",
                )
            )
        elif differing := [h for h in shown if not now.startswith(h)]:
            findings.append(
                Finding(
                    event_id,
                    f"the channel shows hash {', '.join(differing)}, the database holds "
                    f"{now}: changed after it was posted",
                )
            )
    return Testimony(tuple(findings), len(stored), len(seen), max(seen, default=None))
