"""What the domain tells people, as an interface. The Slack implementation renders these
into messages and writes them to the outbox in the caller's transaction, so a state
change and the news of it are committed together."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Protocol

from sqlalchemy.orm import Session

from bot.storage.models import AccessRequest, AuditEvent, BreakGlassReview, RequestTarget, Vote


class RequesterNews(StrEnum):
    SUBMITTED = "submitted"
    GRANTED = "granted"
    DENIED = "denied"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    ENDED = "ended"
    REVOKE_FAILED = "revoke_failed"
    ROLLED_BACK = "rolled_back"  # what a failed grant left behind is gone at last
    EXTENDED = "extended"  # an extension applied: the access it extends lasts longer


@dataclass(frozen=True)
class RequestState:
    """A request as people are told about it: its row, its targets in order and the
    votes cast on it, read in the transaction that changed it."""

    request: AccessRequest
    targets: Sequence[RequestTarget]
    votes: Sequence[Vote] = ()
    #: For an extension: the access it extends (whose targets ``targets`` then are).
    original: AccessRequest | None = None


def asked(approvers: Collection[str], quiet: Collection[str]) -> list[str]:
    """The approvers who get a DM: all but the quiet ones."""
    silent = set(quiet)
    return [a for a in approvers if a not in silent]


class Notifier(Protocol):
    def ask_approvers(self, session: Session, state: RequestState) -> None:
        """DM every approver the request, with Approve / Deny buttons."""
        ...

    def remind_approvers(
        self, session: Session, request: AccessRequest, approvers: Sequence[str], waited: timedelta
    ) -> None:
        """Remind ``approvers`` that the request still waits for them, in a threaded reply
        to the DM that asked them."""
        ...

    def escalate(
        self,
        session: Session,
        state: RequestState,
        group: str,
        added: Sequence[str],
        *,
        informed: Sequence[str],
    ) -> None:
        """Ask ``added`` (the escalation group's members) with buttons, and tell the
        approvers asked first (``informed``) whom the request went to."""
        ...

    def alert_break_glass(self, session: Session, state: RequestState) -> None:
        """Tell every approver of the rule and the security channel, loudly, that the
        requester broke the glass (refreshed later like the approvers' DMs)."""
        ...

    def announces_break_glass(self) -> bool:
        """Whether there is a channel to announce break-glass in (JIT_SECURITY_CHANNEL,
        else the audit channel): without one, nobody but the approvers would know."""
        ...

    def ask_reviewers(
        self, session: Session, request: AccessRequest, reviewers: Sequence[str], *, reminder: bool
    ) -> None:
        """DM each reviewer the break-glass use to review, with Justified / Not justified
        buttons: as the glass is broken, and daily (``reminder``) until it is reviewed."""
        ...

    def tell_reviewed(
        self,
        session: Session,
        request: AccessRequest,
        review: BreakGlassReview,
        reviewers: Sequence[str],
    ) -> None:
        """Show the review on the reviewers' DMs; post "not justified" to the security
        channel."""
        ...

    def nudge_requester(self, session: Session, state: RequestState, left: timedelta) -> None:
        """Tell the requester their access ends in ``left``, with Extend and End access
        now buttons."""
        ...

    def refresh_approver_messages(self, session: Session, state: RequestState) -> None:
        """Update the approvers' DMs (and a break-glass alert) in place to show the
        request's current state."""
        ...

    def tell_requester(self, session: Session, state: RequestState, news: RequesterNews) -> None:
        """Tell the requester ``news`` about their request."""
        ...

    def post_audit(self, session: Session, event: AuditEvent) -> None:
        """Post one audit event to the audit channel."""
        ...

    def refresh_homes(self, session: Session, users: Collection[str]) -> None:
        """Re-publish the Home tab of each of ``users``, built from the database when it
        is sent."""
        ...
