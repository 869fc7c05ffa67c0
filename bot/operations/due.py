"""What the clock has made due, as named queries: what a sweep finds to do (``due``), what
an expiry may revoke (``due_by``), the grants the timers are rebuilt from, and the access
whose end is near (for the nudge). Persistence only, like ``store``, whose helpers it uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session, aliased
from sqlmodel import col

from bot.operations.store import ids_where, requests_where
from bot.storage.models import AccessRequest, RequestTarget, Status, TargetStatus

#: How long an extension approved before the access's end, and still being applied when
#: that end passes, holds the access past it (a cloud slow to answer must not make an
#: approved extension a lapse). Within what was approved, and bounded: an extension that
#: fails, or takes longer, leaves the access to end at once.
EXTENSION_GRACE = timedelta(minutes=5)


def due_by(now: datetime) -> ColumnElement[bool]:
    """Active access whose time is up (any other state passes): what an expiry may
    revoke. An extension that moved the expiry first wins the race with the old one, and
    one approved in time and still being applied holds it for ``EXTENSION_GRACE``."""
    extension = aliased(AccessRequest, name="extension")
    in_flight = (
        select(col(extension.id))
        .where(
            col(extension.extends) == col(AccessRequest.id),
            col(extension.status).in_([Status.APPROVED, Status.GRANTING]),
            col(extension.decided_at) <= col(AccessRequest.expires_at),
        )
        .exists()
    )
    held = and_(col(AccessRequest.expires_at) > now - EXTENSION_GRACE, in_flight)
    return or_(
        col(AccessRequest.status) != Status.ACTIVE,
        and_(col(AccessRequest.expires_at) <= now, ~held),
    )


@dataclass(frozen=True)
class Due:
    """What one sweep has to do, read in one transaction."""

    stale: list[str]  # pending past their pending_ttl
    overdue: list[str]  # active (or failed to revoke) past their expiry
    retry: list[str]  # failed to revoke, not yet expired
    approved: list[str]
    stuck: list[tuple[str, Status]]  # granting/revoking, lease run out
    left_behind: list[str]  # failed grants whose rollback a cloud refused
    # extensions approved, or being applied with their lease run out
    extensions: list[str]
    orphaned: list[str]  # pending extensions of access that has ended


def stale_pending(session: Session, now: datetime, ttl: timedelta) -> list[str]:
    return ids_where(
        session,
        col(AccessRequest.status) == Status.PENDING,
        col(AccessRequest.created_at) <= now - ttl,
    )


def overdue_grants(session: Session, now: datetime) -> list[str]:
    return ids_where(
        session,
        col(AccessRequest.status).in_([Status.ACTIVE, Status.REVOKE_FAILED]),
        col(AccessRequest.expires_at) <= now,
    )


def failed_revocations(session: Session, now: datetime) -> list[str]:
    return ids_where(
        session,
        col(AccessRequest.status) == Status.REVOKE_FAILED,
        col(AccessRequest.expires_at) > now,
    )


# The two reads below leave out extensions in Python, not in SQL: "extends IS NULL" is
# true of nearly every request ever made, yet SQLite, which keeps no statistics, takes
# it for a selective lookup on the extends index and may walk the whole history that
# way instead of the few live rows the status index finds (the sweep's "stuck" read took
# 40 ms on 100,000 finished requests).


def approved(session: Session) -> list[str]:
    rows = session.execute(
        select(col(AccessRequest.id), col(AccessRequest.extends)).where(
            col(AccessRequest.status) == Status.APPROVED
        )
    ).all()
    return [request_id for request_id, extends in rows if extends is None]


def stuck(session: Session, now: datetime, lease: timedelta) -> list[tuple[str, Status]]:
    rows = session.execute(
        select(col(AccessRequest.id), col(AccessRequest.status), col(AccessRequest.extends)).where(
            col(AccessRequest.status).in_([Status.GRANTING, Status.REVOKING]),
            col(AccessRequest.updated_at) <= now - lease,
        )
    ).all()
    return [(request_id, Status(status)) for request_id, status, extends in rows if extends is None]


def extensions_to_apply(session: Session, now: datetime, lease: timedelta) -> list[str]:
    """Extensions approved and not yet applied: at once, or once the lease of a process
    that was applying one has run out."""
    return ids_where(
        session,
        # The status first: it is indexed, and finished extensions pile up.
        col(AccessRequest.status).in_([Status.APPROVED, Status.GRANTING]),
        col(AccessRequest.extends).is_not(None),
        or_(
            col(AccessRequest.status) == Status.APPROVED,
            and_(
                col(AccessRequest.status) == Status.GRANTING,
                col(AccessRequest.updated_at) <= now - lease,
            ),
        ),
    )


def left_behind(session: Session, now: datetime, lease: timedelta) -> list[str]:
    # From the targets still to take back (a handful, by their status's index), never
    # from every failed request, which history piles up: two statements, so that no
    # planner can start from the other end.
    holding = set(
        session.scalars(
            select(col(RequestTarget.request_id)).where(
                col(RequestTarget.status) == TargetStatus.REVOKE_FAILED
            )
        )
    )
    if not holding:
        return []
    return ids_where(
        session,
        col(AccessRequest.id).in_(sorted(holding)),
        col(AccessRequest.status) == Status.FAILED,
        col(AccessRequest.updated_at) <= now - lease,
    )


def due(session: Session, now: datetime, ttl: timedelta, lease: timedelta) -> Due:
    # An approved request has no provider call in flight (approved → granting is a
    # compare-and-set), so it is picked up at once; granting/revoking ones only once
    # their lease has run out, in case another process is still working on them.
    return Due(
        stale=stale_pending(session, now, ttl),
        overdue=overdue_grants(session, now),
        retry=failed_revocations(session, now),
        approved=approved(session),
        stuck=stuck(session, now, lease),
        left_behind=left_behind(session, now, lease),
        extensions=extensions_to_apply(session, now, lease),
        orphaned=orphaned_extensions(session, now),
    )


def upcoming_expiries(
    session: Session, now: datetime, until: datetime | None = None
) -> list[tuple[str, datetime]]:
    """Active grants not yet due (and ending by ``until``, when given), with their end."""
    query = select(col(AccessRequest.id), col(AccessRequest.expires_at)).where(
        col(AccessRequest.status) == Status.ACTIVE,
        col(AccessRequest.expires_at) > now,
    )
    if until is not None:
        query = query.where(col(AccessRequest.expires_at) <= until)
    rows = session.execute(query).all()
    return [(r[0], r[1]) for r in rows if r[1] is not None]


def orphaned_extensions(session: Session, now: datetime) -> list[str]:
    """Pending extensions of access that has ended, or whose time is up: they expire
    with it."""
    original = aliased(AccessRequest, name="original")
    return list(
        session.scalars(
            select(col(AccessRequest.id))
            .join(original, col(original.id) == col(AccessRequest.extends))
            .where(
                col(AccessRequest.status) == Status.PENDING,
                or_(col(original.status) != Status.ACTIVE, col(original.expires_at) <= now),
            )
        )
    )


def near_expiry(session: Session, now: datetime, until: datetime) -> list[AccessRequest]:
    """Active access ending after ``now`` and by ``until`` whose requester has not been
    nudged about this expiry yet."""
    return requests_where(
        session,
        col(AccessRequest.status) == Status.ACTIVE,
        col(AccessRequest.expires_at) > now,
        col(AccessRequest.expires_at) <= until,
        or_(
            col(AccessRequest.nudged_for).is_(None),
            col(AccessRequest.nudged_for) != col(AccessRequest.expires_at),
        ),
    )
