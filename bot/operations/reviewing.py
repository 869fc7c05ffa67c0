"""The post-incident review of a break-glass use: the rule's approvers, never the
requester, judge it "justified" or "not justified" once it is over, and are reminded
daily until one of them has.

A review is opened in the transaction that stores the break-glass (``open_review``),
which also DMs each reviewer. A click is checked against the database when it arrives
(``can_review``, and again when the note is submitted: ``review``): the button's value
names a request, nothing more. The first review decides, by a compare-and-set on the
review's row; the review is audited, the reviewers' DMs show it, and "not justified" is
posted to the security channel. ``remind`` asks the reviewers again once a day, claiming
each reminder with a compare-and-set on ``reminded_at``, so a restart or a second replica
never sends one twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session
from sqlmodel import col

from bot.errors import JitError, NotAllowed, WrongState
from bot.names import AuditAction, Verdict
from bot.operations import people, store
from bot.operations.context import Context
from bot.operations.transition import audit
from bot.storage.models import AccessRequest, BreakGlassReview

# Long enough for a sentence and a ticket link; what it says is shown escaped.
NOTE_MAX = 500
# How often unreviewed uses are reminded, and how often the bot looks for due ones.
REMIND_EVERY = timedelta(days=1)
CHECK_EVERY = timedelta(minutes=15)


class AlreadyReviewed(WrongState):
    """The use was reviewed first by someone else (or by this person before): the
    review says by whom, how and when."""

    def __init__(self, review: BreakGlassReview) -> None:
        super().__init__(f"{review.request_id} was already reviewed.")
        self.review = review


class BadNote(JitError):
    field = "note"


def reviewers(request: AccessRequest) -> list[str]:
    """Who is asked to review: the rule's approvers as stored with the request, but the
    requester, who can never judge their own use."""
    return [a for a in request.approvers if a != request.requester_id]


def open_review(ctx: Context, session: Session, request: AccessRequest) -> None:
    """Open the review of a break-glass being stored in ``session``, and ask the reviewers."""
    now = ctx.now()
    session.add(BreakGlassReview(request_id=request.id, opened_at=now, reminded_at=now))
    ctx.notify.ask_reviewers(session, request, reviewers(request), reminder=False)


def can_review(ctx: Context, request_id: str, user_id: str) -> AccessRequest:
    """Raise, saying why, unless ``user_id`` may review this break-glass use now."""
    with ctx.transaction() as session:
        request = store.load(session, request_id)
        review = session.get(BreakGlassReview, request_id)
    if review is None or not request.break_glass:
        raise NotAllowed(f"{request_id} is not a break-glass use; there is nothing to review.")
    if user_id == request.requester_id:
        raise NotAllowed(
            "You broke this glass yourself, so you cannot review it; another approver of "
            "the rule does."
        )
    if user_id not in request.approvers or user_id not in people.current_approvers(ctx, request):
        # Told when the glass was broken, and an approver of the rule still.
        raise NotAllowed(
            f"Only the approvers of the rule that allowed {request_id} may review it; "
            "nothing changed."
        )
    if review.verdict is not None:
        raise AlreadyReviewed(review)
    reviewer = ctx.directory.person(user_id)
    if people.principals(ctx, reviewer.email) & people.principals(ctx, request.requester_email):
        # The requester's other account is the requester.
        raise NotAllowed("This break-glass was yours, under another account; you cannot review it.")
    people.check_identity(ctx, reviewer, "review break-glass")
    return request


def review(
    ctx: Context, request_id: str, user_id: str, verdict: str, note: str | None
) -> BreakGlassReview:
    """Record ``user_id``'s review, unless someone reviewed first (AlreadyReviewed)."""
    judged = _verdict(verdict)
    typed = _note(note)
    request = can_review(ctx, request_id, user_id)
    with ctx.transaction() as session:
        done = _decide(session, request_id, judged, user_id, typed, ctx.now())
        if done is not None:
            audit(
                ctx,
                session,
                user_id,
                AuditAction.BREAK_GLASS_REVIEWED,
                request,
                verdict=judged,
                incident=request.incident,
                note=typed,
            )
            ctx.notify.tell_reviewed(session, request, done, reviewers(request))
    if done is None:
        raise AlreadyReviewed(_reviewed(ctx, request_id))
    return done


def remind(ctx: Context) -> int:
    """Ask the reviewers of every use unreviewed for a day again; returns how many uses
    were reminded. Each reminder is claimed in the database before it is queued."""
    now = ctx.now()
    with ctx.transaction() as session:
        due = list(
            session.scalars(
                select(BreakGlassReview).where(
                    col(BreakGlassReview.verdict).is_(None),
                    col(BreakGlassReview.reminded_at) <= now - REMIND_EVERY,
                )
            )
        )
    reminded = 0
    for waiting in due:
        with ctx.transaction() as session:
            claimed = session.execute(
                update(BreakGlassReview)
                .where(
                    col(BreakGlassReview.request_id) == waiting.request_id,
                    col(BreakGlassReview.verdict).is_(None),
                    col(BreakGlassReview.reminded_at) == waiting.reminded_at,
                )
                .values(reminded_at=now)
            )
            if cast(CursorResult[Any], claimed).rowcount != 1:
                continue  # reviewed meanwhile, or another replica reminded it
            request = store.load(session, waiting.request_id)
            ctx.notify.ask_reviewers(session, request, reviewers(request), reminder=True)
        reminded += 1
    return reminded


def _decide(
    session: Session,
    request_id: str,
    verdict: Verdict,
    user_id: str,
    note: str | None,
    now: datetime,
) -> BreakGlassReview | None:
    """The first review decides: None if the use was reviewed already."""
    result = session.execute(
        update(BreakGlassReview)
        .where(
            col(BreakGlassReview.request_id) == request_id,
            col(BreakGlassReview.verdict).is_(None),
        )
        .values(verdict=verdict, reviewer_id=user_id, reviewed_at=now, note=note)
    )
    if cast(CursorResult[Any], result).rowcount != 1:
        return None
    return session.get(BreakGlassReview, request_id, populate_existing=True)


def _reviewed(ctx: Context, request_id: str) -> BreakGlassReview:
    with ctx.transaction() as session:
        found = session.get(BreakGlassReview, request_id)
    if found is None:
        raise NotAllowed(f"{request_id} is not a break-glass use; there is nothing to review.")
    return found


def _verdict(text: str) -> Verdict:
    try:
        return Verdict(text)
    except ValueError:
        raise NotAllowed(
            "That review was neither justified nor not justified; nothing changed."
        ) from None


def _note(text: str | None) -> str | None:
    note = (text or "").strip()
    if len(note) > NOTE_MAX:
        raise BadNote(f"The note is {len(note)} characters long; say it in at most {NOTE_MAX}.")
    return note or None
