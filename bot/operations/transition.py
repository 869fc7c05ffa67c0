"""The one way a request changes state: a compare-and-set on its row, then, in the same
transaction, its audit event and the messages that tell people about it.

``move`` is that sequence (set the status → load → audit → refresh the approvers' DMs →
tell the requester). Committed together, a state change and the news of it are never
seen apart: a crash loses both or neither.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from bot import audit as audit_trail
from bot.names import AuditAction
from bot.notify import RequesterNews, RequestState
from bot.operations import home_refresh, leases, store
from bot.operations.context import Context
from bot.storage.models import AccessRequest, Status

Details = Mapping[str, Any] | Callable[[AccessRequest], Mapping[str, Any]]


@dataclass(frozen=True)
class Step:
    """One edge of the request's state machine (DESIGN.md, "States"): the states it
    leaves, the one it enters, the audit action that records it and what the requester
    is told (None: nothing, a later step tells them)."""

    expected: tuple[Status, ...]
    new: Status
    action: AuditAction
    news: RequesterNews | None


APPROVE = Step((Status.PENDING,), Status.APPROVED, AuditAction.APPROVED, None)
DENY = Step((Status.PENDING,), Status.DENIED, AuditAction.DENIED, RequesterNews.DENIED)
CANCEL = Step((Status.PENDING,), Status.CANCELLED, AuditAction.CANCELLED, RequesterNews.CANCELLED)
EXPIRE_UNDECIDED = Step(
    (Status.PENDING,), Status.EXPIRED, AuditAction.EXPIRED_UNDECIDED, RequesterNews.EXPIRED
)
ACTIVATE = Step((Status.GRANTING,), Status.ACTIVE, AuditAction.GRANTED, RequesterNews.GRANTED)
EXTEND = Step((Status.GRANTING,), Status.EXTENDED, AuditAction.EXTENDED, RequesterNews.EXTENDED)


def failing(current: Status) -> Step:
    """A grant that cannot go on fails, from the one state it is known to be in."""
    return Step((current,), Status.FAILED, AuditAction.GRANT_FAILED, RequesterNews.FAILED)


def extension_failing(current: Status) -> Step:
    """An extension that cannot be applied fails; the access it extends is unchanged."""
    return Step((current,), Status.FAILED, AuditAction.EXTENSION_FAILED, RequesterNews.FAILED)


def move(
    ctx: Context,
    session: Session,
    request_id: str,
    step: Step,
    *,
    actor: str,
    details: Details | None = None,
    fenced: bool = False,
    **values: Any,
) -> AccessRequest | None:
    """Take ``step`` (setting ``values`` on the request's row), audit it, refresh the
    approvers' DMs and, if the step has news, tell the requester. None, and nothing
    written, if another caller moved the request first.

    ``details`` are the audit event's; a function of the moved request when they depend
    on what the move wrote."""
    if not set_status(ctx, session, request_id, step.expected, step.new, fenced=fenced, **values):
        return None
    request = store.load(session, request_id)
    found = details(request) if callable(details) else details
    audit(ctx, session, actor, step.action, request, **(found or {}))
    refresh(ctx, session, request)
    if step.news is not None:
        tell(ctx, session, request, step.news)
    return request


def set_status(
    ctx: Context,
    session: Session,
    request_id: str,
    expected: Collection[Status],
    new: Status,
    *,
    fenced: bool = False,
    **values: Any,
) -> bool:
    """Compare-and-set: move the request to ``new`` only if it is still in one of the
    ``expected`` states (and, ``fenced``, at the version this process owns it at).
    Returns whether this call made the move."""
    return bool(set_statuses(ctx, session, [request_id], expected, new, fenced=fenced, **values))


def set_statuses(
    ctx: Context,
    session: Session,
    request_ids: Sequence[str],
    expected: Collection[Status],
    new: Status,
    *,
    fenced: bool = False,
    **values: Any,
) -> list[str]:
    """Compare-and-set on several requests at once; returns the ids this call moved.
    ``fenced``: only those still at the version this process owns them at."""
    if not request_ids:
        return []
    versions = None
    if fenced:
        versions = leases.versions(ctx, request_ids)
        if not versions:
            return []
    return store.set_statuses(
        session, request_ids, expected, new, now=ctx.now(), versions=versions, **values
    )


def take_over(
    ctx: Context, session: Session, request_ids: Sequence[str], status: Status
) -> list[str]:
    """Claim requests stuck in granting/revoking (or failed ones with access left
    behind) once their lease has run out; returns the ids claimed."""
    return store.take_over(session, request_ids, status, now=ctx.now(), lease=ctx.lease)


def audit(
    ctx: Context,
    session: Session,
    actor: str,
    action: AuditAction,
    request: AccessRequest,
    **details: Any,
) -> None:
    audit_all(ctx, session, [(actor, action, request, details)])


def audit_all(
    ctx: Context,
    session: Session,
    events: Sequence[tuple[str, AuditAction, AccessRequest, Mapping[str, Any]]],
) -> None:
    """Append (actor, action, request, details) events to the trail, in order, and queue
    a refresh of the Homes they change."""
    audit_trail.record_all(
        session,
        ctx.clock,
        ctx.notify,
        [
            audit_trail.Entry(
                actor=actor,
                action=action,
                request_id=request.id,
                details={
                    "role": request.role,
                    "environment": request.environment,
                    "requester": request.requester_id,
                    # Every event of a break-glass request carries the badge.
                    **({"break_glass": True} if request.break_glass else {}),
                    **details,
                },
            )
            for actor, action, request, details in events
        ],
    )
    # Every transition is audited here: the Homes it concerns are refreshed with it.
    home_refresh.after(ctx, session, [(action, request) for _, action, request, _ in events])


def refresh(ctx: Context, session: Session, request: AccessRequest) -> None:
    ctx.notify.refresh_approver_messages(session, _state(session, request))


def tell(ctx: Context, session: Session, request: AccessRequest, news: RequesterNews) -> None:
    ctx.notify.tell_requester(session, _state(session, request), news)


def _state(session: Session, request: AccessRequest) -> RequestState:
    return state_of(session, request, store.snapshot(session, request.id))


def state_of(session: Session, request: AccessRequest, snapshot: store.Snapshot) -> RequestState:
    """The request as people are told about it. An extension grants nothing of its own:
    it is shown with the access it extends, and that access's targets."""
    targets, votes = snapshot
    if request.extends is None:
        return RequestState(request, targets, votes)
    original = store.load(session, request.extends)
    return RequestState(request, store.snapshot(session, original.id)[0], votes, original)


def announce_all(
    ctx: Context,
    session: Session,
    requests: Mapping[str, AccessRequest],
    news: Callable[[str], RequesterNews],
) -> None:
    """Refresh the approvers' DMs of each request and tell its requester ``news(id)``:
    the end of a batch move (revocations, rollbacks), their snapshots read at once."""
    snapshots = store.snapshots(session, list(requests))
    for request_id, request in requests.items():
        state = state_of(session, request, snapshots[request_id])
        ctx.notify.refresh_approver_messages(session, state)
        ctx.notify.tell_requester(session, state, news(request_id))
