"""Every SQL statement of the request lifecycle, as named queries. Each takes the
caller's ``Session`` and plain values and returns rows or ids: persistence only. The
operations decide when to call them and in which transaction; no query here commits.

The compare-and-set updates (``set_statuses``, ``take_over``, ``renew``, ``lock_pending``)
return the ids they changed: a state change is made only by the caller whose update moved
the row, so two processes racing for one request cannot both act on it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Update, and_, bindparam, func, or_, select, tuple_, update
from sqlalchemy.orm import Session
from sqlmodel import col

from bot.errors import RequestNotFound
from bot.names import Decision
from bot.storage.lists import among
from bot.storage.models import (
    TERMINAL,
    AccessRequest,
    AuditEvent,
    BotSignal,
    RequestTarget,
    Status,
    TargetStatus,
    Vote,
    table_of,
)
from bot.storage.planning import unindexed

#: Every state a request is in until it is finished, in the order of the lifecycle.
UNFINISHED = [status for status in Status if status not in TERMINAL]
# Statuses whose granted targets count as "still needed" when another grant ends.
HOLDING = (Status.GRANTING, Status.ACTIVE)
RELEASABLE = (
    TargetStatus.GRANTING,
    TargetStatus.GRANTED,
    TargetStatus.FAILED,
    TargetStatus.REVOKE_FAILED,
)
# A request's owner confirms it still owns it (a write that renews the lease) before a
# provider call or a write, unless it did so this recently: a batch costs nothing extra,
# a thread that sat in a call for longer than a lease finds out.
OWNERS = (Status.GRANTING, Status.REVOKING, Status.FAILED)

Snapshot = tuple[list[RequestTarget], list[Vote]]


def load(session: Session, request_id: str) -> AccessRequest:
    request = session.get(AccessRequest, request_id, populate_existing=True)
    if request is None:
        raise RequestNotFound(f"There is no request `{request_id}`.")
    return request


def load_all(session: Session, request_ids: Sequence[str]) -> dict[str, AccessRequest]:
    """The requests, fresh from the database, in the order asked for."""
    if not request_ids:
        return {}
    loaded = {
        request.id: request
        for request in session.scalars(
            select(AccessRequest)
            .where(among(session, col(AccessRequest.id), request_ids))
            .execution_options(populate_existing=True)
        )
    }
    return {request_id: loaded[request_id] for request_id in request_ids}


def snapshot(session: Session, request_id: str) -> Snapshot:
    return snapshots(session, [request_id])[request_id]


def snapshots(session: Session, request_ids: Sequence[str]) -> dict[str, Snapshot]:
    """Each request's targets (in order) and votes, read in two queries."""
    found: dict[str, Snapshot] = {request_id: ([], []) for request_id in request_ids}
    if not request_ids:
        return found
    for target in session.scalars(
        select(RequestTarget)
        .where(among(session, col(RequestTarget.request_id), request_ids))
        .order_by(col(RequestTarget.request_id), col(RequestTarget.position))
    ):
        found[target.request_id][0].append(target)
    for vote in session.scalars(
        select(Vote).where(among(session, col(Vote.request_id), request_ids)).order_by(col(Vote.id))
    ):
        found[vote.request_id][1].append(vote)
    return found


def by_origin(session: Session, origin: str) -> AccessRequest | None:
    """The request stored for this Slack interaction, if any."""
    return session.scalars(select(AccessRequest).where(col(AccessRequest.origin) == origin)).first()


def at_versions(session: Session, versions: Mapping[str, int]) -> ColumnElement[bool]:
    """Requests at exactly these versions, checked on the rows found by id:
    ``(id, version) IN (…)``; on PostgreSQL ``id || '@' || version`` among one array (the
    version, only digits, follows the last ``@``: no two pairs read alike)."""
    if session.get_bind().dialect.name != "postgresql":
        pairs = list(versions.items())
        return tuple_(col(AccessRequest.id), col(AccessRequest.version)).in_(pairs)
    pair = func.concat(col(AccessRequest.id), "@", col(AccessRequest.version))
    return among(session, pair, [f"{request_id}@{v}" for request_id, v in versions.items()])


def moved(session: Session, statement: Update) -> list[str]:
    """Run a compare-and-set UPDATE on requests; the ids it changed."""
    returning = statement.returning(col(AccessRequest.id)).execution_options(
        synchronize_session=False
    )
    return list(session.scalars(returning))


def set_statuses(
    session: Session,
    request_ids: Sequence[str],
    expected: Collection[Status],
    new: Status,
    *,
    now: datetime,
    versions: Mapping[str, int] | None = None,
    where: ColumnElement[bool] | None = None,
    **values: Any,
) -> list[str]:
    """Move the requests still in one of the ``expected`` states (and, given
    ``versions``, still at those versions; given ``where``, still meeting it) to ``new``;
    returns the ids moved."""
    if not request_ids:
        return []
    condition = and_(
        among(session, col(AccessRequest.id), request_ids),
        # Found by id: a lookup by status would walk every live request.
        unindexed(col(AccessRequest.status)).in_(list(expected)),
    )
    if versions is not None:
        condition = and_(condition, at_versions(session, versions))
    if where is not None:
        condition = and_(condition, where)
    return moved(
        session,
        update(AccessRequest)
        .where(condition)
        .values(
            status=new,
            updated_at=now,
            version=col(AccessRequest.version) + 1,
            **values,
        ),
    )


def take_over(
    session: Session, request_ids: Sequence[str], status: Status, *, now: datetime, lease: timedelta
) -> list[str]:
    """Claim requests in ``status`` whose lease has run out; returns the ids claimed. The
    lease check is part of the compare-and-set, so only one process wins each."""
    if not request_ids:
        return []
    return moved(
        session,
        update(AccessRequest)
        .where(
            among(session, col(AccessRequest.id), request_ids),
            unindexed(col(AccessRequest.status)) == status,
            col(AccessRequest.updated_at) <= now - lease,
        )
        .values(updated_at=now, version=col(AccessRequest.version) + 1),
    )


def renew(session: Session, versions: Mapping[str, int], now: datetime) -> list[str]:
    """Renew the lease of those requests still at these versions and in a state their
    owner works on; their row stays locked until the transaction ends."""
    return moved(
        session,
        update(AccessRequest)
        .where(
            among(session, col(AccessRequest.id), versions),
            at_versions(session, versions),
            unindexed(col(AccessRequest.status)).in_(OWNERS),
        )
        .values(updated_at=now),
    )


def changed(session: Session, request_id: str, *where: ColumnElement[bool], **values: Any) -> bool:
    """A compare-and-set on one request: set ``values`` if it still meets every ``where``;
    whether it did. Its row stays locked until the transaction ends."""
    statement = update(AccessRequest).where(col(AccessRequest.id) == request_id, *where)
    return bool(moved(session, statement.values(**values)))


def lock_pending(session: Session, request_id: str) -> bool:
    """Lock a pending request's row (bumping its version); False if it is not pending."""
    return changed(
        session,
        request_id,
        col(AccessRequest.status) == Status.PENDING,
        version=col(AccessRequest.version) + 1,
    )


def lock_active(session: Session, request_id: str, now: datetime) -> bool:
    """Lock an active request's row until the transaction ends; False unless it is
    active and not yet due. Extensions of one access queue up here."""
    return changed(
        session,
        request_id,
        col(AccessRequest.status) == Status.ACTIVE,
        col(AccessRequest.expires_at) > now,
        version=col(AccessRequest.version),
    )


def move_expiry(
    session: Session, request_id: str, old: datetime, new: datetime, now: datetime
) -> bool:
    """Move an active request's expiry from ``old`` to ``new``: a compare-and-set that
    loses to its own expiry's revocation (or another move) if that came first."""
    return changed(
        session,
        request_id,
        col(AccessRequest.status) == Status.ACTIVE,
        col(AccessRequest.expires_at) == old,
        expires_at=new,
        updated_at=now,
    )


def open_extension(session: Session, request_id: str) -> str | None:
    """The extension of this request still being decided or applied, if any."""
    return session.scalars(
        select(col(AccessRequest.id)).where(
            col(AccessRequest.extends) == request_id,
            col(AccessRequest.status).not_in(list(TERMINAL)),
        )
    ).first()


def mark_nudged(session: Session, request_id: str, expires_at: datetime) -> bool:
    """Record the nudge about this expiry; False if another process (or an earlier
    run) made it, or the expiry has moved since it was read."""
    return changed(
        session,
        request_id,
        col(AccessRequest.status) == Status.ACTIVE,
        col(AccessRequest.expires_at) == expires_at,
        or_(col(AccessRequest.nudged_for).is_(None), col(AccessRequest.nudged_for) != expires_at),
        nudged_for=expires_at,
    )


def set_target(
    session: Session, target_id: int | None, status: TargetStatus, **values: Any
) -> None:
    session.execute(
        update(RequestTarget)
        .where(col(RequestTarget.id) == target_id)
        .values(status=status, **values)
    )


def set_targets(session: Session, status: TargetStatus, rows: Sequence[dict[str, Any]]) -> None:
    """Each row (``id`` and values) of a target moved to ``status``: one Core UPDATE per
    set of columns, run for all its rows at once (none of the ORM's work per row)."""
    table = table_of(RequestTarget)
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        shapes.setdefault(tuple(sorted(k for k in row if k != "id")), []).append(row)
    for columns, same in shapes.items():
        statement = (
            update(table)
            .where(table.c.id == bindparam("target_id"))
            .values({**{column: bindparam(column) for column in columns}, "status": status})
        )
        session.execute(
            statement, [{"target_id": row["id"], **{c: row[c] for c in columns}} for row in same]
        )


def votes_cast(session: Session, request_id: str) -> list[tuple[str, str | None]]:
    """(voter id, voter email) of every vote cast on the request so far."""
    rows = session.execute(
        select(col(Vote.voter_id), col(Vote.voter_email)).where(col(Vote.request_id) == request_id)
    ).all()
    return [(voter_id, email) for voter_id, email in rows]


def approvals(session: Session, request_id: str, approvers: Collection[str]) -> int:
    """The approvals that count now: votes of people who are approvers of the request at
    this moment. One deactivated (or removed from the approvers) since counts for nothing."""
    voters = session.scalars(
        select(col(Vote.voter_id)).where(
            col(Vote.request_id) == request_id, col(Vote.decision) == Decision.APPROVE
        )
    )
    return sum(1 for voter in voters if voter in approvers)


def ids_where(session: Session, *where: ColumnElement[bool]) -> list[str]:
    """The ids of the requests meeting every condition."""
    return list(session.scalars(select(col(AccessRequest.id)).where(*where)))


def requests_where(session: Session, *where: ColumnElement[bool]) -> list[AccessRequest]:
    """The requests meeting every condition, oldest first."""
    query = select(AccessRequest).where(*where).order_by(col(AccessRequest.created_at))
    return list(session.scalars(query))


def unfinished_of(session: Session, user_id: str) -> list[AccessRequest]:
    """The user's requests that are not finished yet, oldest first."""
    # Named as the states they are in, not those they are not, and put in order here: the
    # index on (requester, status) then finds the live few, where one on (requester,
    # time) would walk the person's whole history to spare the sort of a handful.
    query = select(AccessRequest).where(
        col(AccessRequest.requester_id) == user_id,
        col(AccessRequest.status).in_(UNFINISHED),
    )
    return sorted(session.scalars(query), key=lambda r: (r.created_at, r.id))


def finished_of(session: Session, user_id: str, limit: int) -> list[AccessRequest]:
    """The user's last ``limit`` finished requests (extensions aside), newest first."""
    query = (
        select(AccessRequest)
        .where(
            col(AccessRequest.requester_id) == user_id,
            col(AccessRequest.status).in_(list(TERMINAL)),
            col(AccessRequest.extends).is_(None),
        )
        .order_by(col(AccessRequest.created_at).desc(), col(AccessRequest.id).desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def pending(session: Session) -> list[AccessRequest]:
    return requests_where(session, col(AccessRequest.status) == Status.PENDING)


def pending_and_voted(session: Session, user_id: str) -> tuple[list[AccessRequest], set[str]]:
    """Every pending request, and the ids of those this user has voted on (what is left to
    work out who may decide which, outside the transaction: it asks Slack)."""
    waiting = pending(session)
    return waiting, voted_on(session, user_id, [request.id for request in waiting])


def voted_on(session: Session, user_id: str, request_ids: Collection[str]) -> set[str]:
    """Which of these requests this user has voted on. Asked of the requests at hand (by
    their index), never of everything an approver ever voted on, which only grows."""
    if not request_ids:
        return set()
    return set(
        session.scalars(
            select(col(Vote.request_id)).where(
                among(session, col(Vote.request_id), request_ids), col(Vote.voter_id) == user_id
            )
        )
    )


def audit_events(session: Session, request_id: str | None) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(col(AuditEvent.id))
    if request_id is not None:
        query = query.where(col(AuditEvent.request_id) == request_id)
    return list(session.scalars(query))


def signal(session: Session, name: str) -> BotSignal | None:
    return session.get(BotSignal, name)
