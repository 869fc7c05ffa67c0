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
from datetime import datetime, timedelta

# How long an event newer than every posted one may wait in the outbox before its absence
# from the channel is a finding rather than a warning (a busy bot posts behind its writes).
POSTING_GRACE = timedelta(minutes=10)


@dataclass(frozen=True)
class Seal:
    """One event as the audit channel shows it: its full hash, or the first 12 hex digits
    that posts made before the full hash was posted carry."""

    event_id: int
    hash: str
    at: datetime | None = None  # when the event was written (stored events only)


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
    # Events newer than the newest posted one and younger than the grace period: most
    # likely still in the outbox, so a warning, not a finding.
    waiting: tuple[Finding, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.findings


def compare(
    events: Sequence[Seal],
    posted: Sequence[Seal],
    now: datetime | None = None,
    grace: timedelta = POSTING_GRACE,
) -> Testimony:
    """Every event must have been posted with the hash it has now, and every posted event
    must still be in the database. An unposted event newer than the newest posted one and
    younger than ``grace`` at ``now`` is reported as waiting, not as a finding."""
    stored = {event.event_id: event.hash for event in events}
    written = {event.event_id: event.at for event in events}
    seen: dict[int, set[str]] = defaultdict(set)
    for seal in posted:
        seen[seal.event_id].add(seal.hash)
    newest_stored = max(stored, default=0)
    newest_posted = max(seen, default=0)
    findings: list[Finding] = []
    waiting: list[Finding] = []
    for event_id in sorted(stored.keys() | seen.keys()):
        holds, shown = stored.get(event_id), sorted(seen.get(event_id, ()))
        if holds is None:
            where = (
                "newer than the newest event in the database: the newest events were deleted"
                if event_id > newest_stored
                else "removed from the database"
            )
            findings.append(Finding(event_id, f"posted to the audit channel but missing: {where}"))
        elif not shown:
            at = written.get(event_id)
            if now is not None and at is not None and event_id > newest_posted:
                age = now - at
                if age < grace:
                    waiting.append(
                        Finding(
                            event_id,
                            f"not posted yet ({max(age.total_seconds(), 0):.0f} s old, newer "
                            "than every posted event: most likely still in the outbox; a "
                            f"finding if still unposted after {grace.total_seconds() / 60:g} "
                            "minutes)",
                        )
                    )
                    continue
            findings.append(
                Finding(
                    event_id,
                    "in the database but never posted to the audit channel (written behind "
                    "the bot's back, or lost from the outbox)",
                )
            )
        elif differing := [h for h in shown if not holds.startswith(h)]:
            findings.append(
                Finding(
                    event_id,
                    f"the channel shows hash {', '.join(differing)}, the database holds "
                    f"{holds}: changed after it was posted",
                )
            )
    return Testimony(
        tuple(findings), len(stored), len(seen), max(seen, default=None), tuple(waiting)
    )
