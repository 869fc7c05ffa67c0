"""Reads for the Home tab: what one person's Home shows (their access, their requests,
what waits for their decision, what they asked for lately, what their last click on it
did) and, for admins, everyone's active access and the break-glass uses waiting for
review. Nothing here writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlmodel import col

from bot.operations import queries, reviewing, store
from bot.operations.context import Context
from bot.storage.models import AccessRequest, BreakGlassReview, HomeViewer, Status

#: How many finished requests "Recent requests" shows.
RECENT = 5
#: Access held now: active, or still there because removing it failed (being retried).
HOLDING = (Status.ACTIVE, Status.REVOKE_FAILED)


@dataclass(frozen=True)
class Home:
    """What one person's Home shows, read at one moment."""

    user_id: str
    now: datetime
    #: Their requests that are past pending and not finished: active, granting, ending …
    access: list[AccessRequest]
    pending: list[AccessRequest]
    #: Pending requests they may decide now.
    awaiting: list[AccessRequest]
    #: Their last few finished requests, newest first.
    recent: list[AccessRequest]
    #: Whether they are an admin (settings.admins): then their Home has the admins' sections.
    admin: bool
    #: What their last click on the Home did, or why not (mrkdwn, escaped).
    notice: str | None = None


@dataclass(frozen=True)
class Review:
    """A break-glass use waiting for its post-incident review, and who may review it."""

    request: AccessRequest
    opened_at: datetime
    reviewers: list[str]


def home(ctx: Context, user_id: str) -> Home:
    with ctx.transaction() as session:  # one transaction: one round of the pool
        mine = store.unfinished_of(session, user_id)
        recent = store.finished_of(session, user_id, RECENT)
        viewer = session.get(HomeViewer, user_id)
        waiting, voted = store.pending_and_voted(session, user_id)
    return Home(
        user_id=user_id,
        now=ctx.now(),
        access=[r for r in mine if r.status != Status.PENDING],
        pending=[r for r in mine if r.status == Status.PENDING],
        awaiting=queries.decidable(ctx, user_id, waiting, voted),
        recent=recent,
        admin=is_admin(ctx, user_id),
        notice=viewer.notice if viewer is not None else None,
    )


def is_admin(ctx: Context, user_id: str) -> bool:
    """Whether ``settings.admins`` names this person (resolved like any other entry)."""
    admins = ctx.config.settings.admins
    return bool(admins) and ctx.directory.is_member(admins, user_id)


def everyone_active(ctx: Context) -> list[AccessRequest]:
    """Everyone's access held now, by role, environment and end."""
    with ctx.transaction() as session:
        held = store.requests_where(session, col(AccessRequest.status).in_(HOLDING))
    return sorted(held, key=lambda r: (r.role, r.environment, r.expires_at or r.created_at))


def reviews_waiting(ctx: Context) -> list[Review]:
    """Break-glass uses nobody has reviewed yet, oldest first."""
    with ctx.transaction() as session:
        rows = session.execute(
            select(BreakGlassReview, AccessRequest)
            .join(AccessRequest, col(AccessRequest.id) == col(BreakGlassReview.request_id))
            .where(col(BreakGlassReview.verdict).is_(None))
            .order_by(col(BreakGlassReview.opened_at))
        ).all()
    return [
        Review(request, review.opened_at, reviewing.reviewers(request)) for review, request in rows
    ]
