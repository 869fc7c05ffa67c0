"""Who holds access: the queries that ask which live grants hold a target or a role.
Persistence only, like ``store``: each takes the caller's ``Session`` and commits nothing."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from bot.operations.store import HOLDING, RELEASABLE
from bot.storage.lists import among
from bot.storage.models import AccessRequest, RequestTarget, Status, TargetStatus


def other_holders(
    session: Session, requests: Sequence[AccessRequest], *, jit_owned: bool
) -> dict[tuple[str, str], str]:
    """(email, target key) → another request of the same person holding this access (see
    ``revoking.other_holders``), the lowest id where there are several."""
    # Start from the people's own live requests (by email and status, a handful each),
    # never from every grant of a target, which a popular role shares with thousands, nor
    # from every live target: the targets' status is checked here, not in SQL, so that no
    # planner (SQLite keeps no statistics) starts from its index.
    emails = {request.requester_email for request in requests}
    query = (
        select(
            col(AccessRequest.requester_email),
            col(RequestTarget.target_key),
            col(RequestTarget.request_id),
            col(RequestTarget.status),
            col(RequestTarget.preexisting),
        )
        .join(RequestTarget, col(RequestTarget.request_id) == col(AccessRequest.id))
        .where(
            among(session, col(AccessRequest.requester_email), emails),
            ~among(session, col(AccessRequest.id), [request.id for request in requests]),
        )
        .order_by(col(RequestTarget.request_id).desc())
    )
    if jit_owned:
        statuses = [*HOLDING, Status.REVOKING, Status.REVOKE_FAILED]

        def holds(status: str, preexisting: bool) -> bool:
            return status in RELEASABLE and not preexisting
    else:
        statuses = list(HOLDING)

        def holds(status: str, preexisting: bool) -> bool:
            return status == TargetStatus.GRANTED

    rows = session.execute(query.where(col(AccessRequest.status).in_(statuses)))
    # Ordered newest id first, so the dict keeps the lowest id: a stable answer.
    return {
        (email, key): holder
        for email, key, holder, status, preexisting in rows
        if holds(status, preexisting)
    }


def active_holders(session: Session) -> list[tuple[str, str, str]]:
    """(request id, requester id, role) of every active grant."""
    rows = session.execute(
        select(
            col(AccessRequest.id), col(AccessRequest.requester_id), col(AccessRequest.role)
        ).where(col(AccessRequest.status) == Status.ACTIVE)
    ).all()
    return [(request_id, requester_id, role) for request_id, requester_id, role in rows]
