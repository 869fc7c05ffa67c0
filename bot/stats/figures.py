"""Approver-load figures computed from the audit trail alone: how long decisions take,
how often a rule approves by itself, who decides and how fast, break-glass and its
reviews, extensions per grant and requests left to expire undecided.

Pure: events in, in trail order, figures out. One pass that keeps, per request of the
window, only what its later events still need (who was asked when, who voted), so a long
trail streams through. The window selects requests by the time they were asked; every
later event of such a request counts, whenever it happened.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.names import BOT_ACTOR, AuditAction

# An approver whose median click comes sooner than this after the DM may not be reading.
RUBBER_STAMP_SECONDS = 10.0
_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Event:
    """One audit event, as the figures read it."""

    at: datetime
    actor: str
    action: str
    request_id: str | None
    details: Mapping[str, Any]


@dataclass(frozen=True)
class Window:
    """Requests asked at ``since`` or later and before ``until``; None: unbounded."""

    since: datetime | None = None
    until: datetime | None = None

    def holds(self, moment: datetime) -> bool:
        return (self.since is None or moment >= self.since) and (
            self.until is None or moment < self.until
        )


@dataclass(frozen=True)
class DecisionTimes:
    """Seconds from asking to the approval or denial, for one role in one environment."""

    role: str
    environment: str
    decided: int
    p50_seconds: float
    p90_seconds: float


@dataclass(frozen=True)
class ApproverLoad:
    """One person's decisions: approval votes and denials, each counted once per request."""

    approver: str
    approvals: int
    denials: int
    #: Approvals over the window's days; None when the window spans no day.
    approvals_per_day: float | None
    #: This person's decisions over everyone's.
    share_of_decisions: float
    #: Median seconds from the DM that asked them to their click; None when no DM asked
    #: them (a quiet approver deciding from the App Home or /jit approve).
    median_seconds_to_click: float | None

    @property
    def decisions(self) -> int:
        return self.approvals + self.denials

    @property
    def approval_rate(self) -> float:
        return self.approvals / self.decisions

    @property
    def possible_rubber_stamping(self) -> bool:
        median = self.median_seconds_to_click
        return median is not None and median < RUBBER_STAMP_SECONDS


@dataclass(frozen=True)
class BreakGlass:
    uses: int
    reviewed: int

    @property
    def review_completion(self) -> float | None:
        return self.reviewed / self.uses if self.uses else None


@dataclass(frozen=True)
class ExtensionRate:
    """Extensions asked per request of the role granted: a default that is too short
    shows as people asking for more."""

    role: str
    granted: int
    extensions: int

    @property
    def per_grant(self) -> float | None:
        return self.extensions / self.granted if self.granted else None


@dataclass(frozen=True)
class Figures:
    window: Window
    #: The days the window spans (a missing bound: the day of its first or last request).
    days: float
    requests: int
    auto_approved: int
    expired_undecided: int
    decision_times: tuple[DecisionTimes, ...]
    approvers: tuple[ApproverLoad, ...]
    break_glass: BreakGlass
    extensions: tuple[ExtensionRate, ...]

    @property
    def auto_approved_share(self) -> float | None:
        return self.auto_approved / self.requests if self.requests else None


def compute(events: Iterable[Event], window: Window | None = None) -> Figures:
    """The figures of the requests asked in ``window``, from their events in trail order."""
    tally = _Tally(window or Window())
    for event in events:
        tally.add(event)
    return tally.figures()


@dataclass(slots=True)
class _Request:
    """What a request's later events still need to know about it."""

    role: str
    environment: str
    requested_at: datetime
    extension: bool
    #: Who was DM'd to decide it, and when; None once it is decided.
    asked: dict[str, datetime] | None
    voted: set[str] = field(default_factory=set)
    granted: bool = False
    reviewed: bool = False


@dataclass
class _Tally:
    window: Window
    requests: dict[str, _Request] = field(default_factory=dict)
    first: datetime | None = None
    last: datetime | None = None
    auto_approved: int = 0
    expired: int = 0
    uses: int = 0
    reviewed: int = 0
    waits: defaultdict[tuple[str, str], list[float]] = field(
        default_factory=lambda: defaultdict(list)
    )
    clicks: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    approvals: Counter[str] = field(default_factory=Counter)
    denials: Counter[str] = field(default_factory=Counter)
    granted: Counter[str] = field(default_factory=Counter)
    extensions: Counter[str] = field(default_factory=Counter)

    def add(self, event: Event) -> None:
        if event.request_id is None:
            return
        if event.action == AuditAction.REQUESTED:
            self._asked(event.request_id, event)
            return
        request = self.requests.get(event.request_id)
        if request is None:  # asked outside the window
            return
        match event.action:
            case AuditAction.AUTO_APPROVED:
                self.auto_approved += 1
                request.asked = None
            case AuditAction.APPROVAL_RECORDED:
                self._vote(request, event, self.approvals)
            case AuditAction.DENIED:
                self._vote(request, event, self.denials)
                self._decided(request, event)
            case AuditAction.APPROVED:
                self._decided(request, event)
            case AuditAction.EXPIRED_UNDECIDED:
                self.expired += 1
                request.asked = None
            case AuditAction.CANCELLED:
                request.asked = None
            case AuditAction.GRANTED if not request.extension and not request.granted:
                request.granted = True
                self.granted[request.role] += 1
            case AuditAction.BREAK_GLASS:
                self.uses += 1
            case AuditAction.BREAK_GLASS_REVIEWED if not request.reviewed:
                request.reviewed = True  # the first review decides
                self.reviewed += 1
            case AuditAction.ESCALATED if request.asked is not None:
                # The approvers it names were DM'd at that moment.
                for approver in event.details.get("approvers") or []:
                    request.asked.setdefault(str(approver), event.at)

    def _asked(self, request_id: str, event: Event) -> None:
        if not self.window.holds(event.at):
            return
        details = event.details
        role, environment = str(details.get("role")), str(details.get("environment"))
        extension = details.get("extends") is not None
        self.requests[request_id] = _Request(
            role,
            environment,
            event.at,
            extension,
            # Quiet approvers got no DM: there is no DM-to-click to measure for them.
            {
                str(a): event.at
                for a in details.get("approvers") or []
                if a not in (details.get("quiet_approvers") or [])
            },
        )
        self.first = min(self.first or event.at, event.at)
        self.last = max(self.last or event.at, event.at)
        if extension:
            self.extensions[role] += 1

    def _vote(self, request: _Request, event: Event, votes: Counter[str]) -> None:
        """Count a person's approval or denial, once per request, and how long after
        their DM it came."""
        voter = event.actor
        if voter == BOT_ACTOR or voter in request.voted:
            return
        request.voted.add(voter)
        votes[voter] += 1
        dm = (request.asked or {}).get(voter)
        if dm is not None:  # never DM'd (a quiet approver): no time to measure
            self.clicks[voter].append((event.at - dm).total_seconds())

    def _decided(self, request: _Request, event: Event) -> None:
        key = (request.role, request.environment)
        self.waits[key].append((event.at - request.requested_at).total_seconds())
        request.asked = None

    def figures(self) -> Figures:
        days = _days(self.window, self.first, self.last)
        total = sum(self.approvals.values()) + sum(self.denials.values())
        people = sorted(
            set(self.approvals) | set(self.denials),
            key=lambda p: (-(self.approvals[p] + self.denials[p]), p),
        )
        return Figures(
            window=self.window,
            days=days,
            requests=len(self.requests),
            auto_approved=self.auto_approved,
            expired_undecided=self.expired,
            decision_times=tuple(
                DecisionTimes(role, env, len(waits), *_p50_p90(waits))
                for (role, env), waits in sorted(self.waits.items())
            ),
            approvers=tuple(
                ApproverLoad(
                    approver=person,
                    approvals=self.approvals[person],
                    denials=self.denials[person],
                    approvals_per_day=self.approvals[person] / days if days else None,
                    share_of_decisions=(self.approvals[person] + self.denials[person]) / total,
                    median_seconds_to_click=(
                        statistics.median(self.clicks[person]) if self.clicks[person] else None
                    ),
                )
                for person in people
            ),
            break_glass=BreakGlass(self.uses, self.reviewed),
            extensions=tuple(
                ExtensionRate(role, self.granted[role], self.extensions[role])
                for role in sorted(set(self.granted) | set(self.extensions))
            ),
        )


def _p50_p90(values: list[float]) -> tuple[float, float]:
    """Linear interpolation between the closest ranks (as numpy's default and
    ``statistics.quantiles(method="inclusive")``): p = value at rank p·(n−1)."""
    if len(values) == 1:
        return values[0], values[0]
    cuts = statistics.quantiles(values, n=10, method="inclusive")
    return cuts[4], cuts[8]


def _days(window: Window, first: datetime | None, last: datetime | None) -> float:
    """How many days the window spans: from --since (else the midnight before its first
    request) to --until (else the midnight after its last); 0 when that is unknown."""
    start = window.since or (_midnight(first) if first else None)
    end = window.until or (_midnight(last) + _DAY if last else None)
    if start is None or end is None or end <= start:
        return 0.0
    return (end - start) / _DAY


def _midnight(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
