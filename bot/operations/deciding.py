"""Deciding a request: approvers' votes, re-checked against the database and the current
config at each click, and the requester's cancel. The last approval needed starts the
grant; one deny decides."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.directory import Person
from bot.errors import (
    DirectoryError,
    DirectoryUnavailable,
    InvalidDecision,
    NotAllowed,
    WrongState,
)
from bot.names import BOT_ACTOR, AuditAction, Decision, VoteOutcome
from bot.operations import granting, people, prolonging, store, sweeping
from bot.operations.context import Context
from bot.operations.transition import APPROVE, CANCEL, DENY, audit, move, refresh
from bot.policy import (
    REFUSAL_TEXT,
    Refusal,
    VoteDecision,
    admits,
    decide_vote,
    standing_refusal,
    undecided_too_long,
)
from bot.storage.models import AccessRequest, Status, Vote


@dataclass(frozen=True)
class VoteResult:
    request: AccessRequest
    approvals: int
    outcome: VoteOutcome


def vote(
    ctx: Context, request_id: str, voter_id: str, decision: str, reason: str | None = None
) -> VoteResult:
    """Record an approve/deny click after re-checking, from the database and the
    current config, that this person may decide this request now."""
    if decision not in (Decision.APPROVE, Decision.DENY):
        raise InvalidDecision(f"`{decision}` is neither approve nor deny; nothing changed.")
    request = _get(ctx, request_id)
    _refuse_if_expired(ctx, request)
    _check_standing(ctx, request, voter_id)
    approvers = people.current_approvers(ctx, request)
    voter = _voter(ctx, voter_id, request, approvers)
    with ctx.transaction() as session:
        # Take the row lock first: concurrent voters on one request queue up here, so
        # the count below sees every committed vote and exactly one voter completes it.
        locked = store.lock_pending(session, request_id)
        _refuse(
            _verdict(
                ctx,
                session,
                request,
                Status.PENDING if locked else Status.APPROVED,
                voter_id,
                voter,
                approvers,
            )
        )
        if voter is not None:
            people.check_identity(ctx, voter, "decide access requests")
        session.add(
            Vote(
                request_id=request_id,
                voter_id=voter_id,
                decision=decision,
                reason=reason,
                created_at=ctx.clock.now(),
                voter_email=voter.email if voter is not None else None,
            )
        )
        try:
            session.flush()
        except IntegrityError:
            raise NotAllowed(REFUSAL_TEXT[Refusal.ALREADY_VOTED]) from None
        approvals = store.approvals(session, request_id, approvers)
        request, outcome = _count(ctx, session, request, voter_id, decision, reason, approvals)
    if outcome == VoteOutcome.APPROVED:
        if request.extends is None:
            ctx.background(lambda: granting.grant(ctx, request_id))
        else:
            ctx.background(lambda: prolonging.apply(ctx, request_id))
    return VoteResult(request, approvals, outcome)


def _count(
    ctx: Context,
    session: Session,
    request: AccessRequest,
    voter_id: str,
    decision: str,
    reason: str | None,
    approvals: int,
) -> tuple[AccessRequest, VoteOutcome]:
    """What the vote just cast does to its (locked, pending) request: the request as it
    is now, and the outcome."""
    outcome, step, actor = VoteOutcome.RECORDED, None, voter_id
    details: dict[str, object] = {}
    if decision == Decision.DENY:
        outcome, step, details = VoteOutcome.DENIED, DENY, {"reason": reason}
    else:
        audit(
            ctx,
            session,
            voter_id,
            AuditAction.APPROVAL_RECORDED,
            request,
            approvals=approvals,
            required=request.required_approvals,
        )
        if approvals >= request.required_approvals:
            outcome, step, actor = VoteOutcome.APPROVED, APPROVE, BOT_ACTOR
            details = {"approvals": approvals}
    moved = None
    if step is not None:
        moved = move(
            ctx, session, request.id, step, actor=actor, details=details, decided_at=ctx.now()
        )
    if moved is not None:
        return moved, outcome
    # Still waiting for approvals: the approvers' DMs show the vote just counted.
    request = store.load(session, request.id)
    refresh(ctx, session, request)
    return request, outcome


def can_decide(ctx: Context, request_id: str, user_id: str) -> None:
    """Raise NotAllowed unless ``user_id`` could approve or deny the request now."""
    request = _get(ctx, request_id)
    _refuse_if_expired(ctx, request)
    approvers = people.current_approvers(ctx, request)
    voter = _voter(ctx, user_id, request, approvers)
    _check_standing(ctx, request, user_id)
    with ctx.transaction() as session:
        verdict = _verdict(ctx, session, request, Status(request.status), user_id, voter, approvers)
    _refuse(verdict)
    if voter is not None:
        people.check_identity(ctx, voter, "decide access requests")


def cancel(ctx: Context, request_id: str, actor: str) -> AccessRequest:
    request = _get(ctx, request_id)
    if actor != request.requester_id:
        raise NotAllowed("Only the requester can cancel a request; nothing changed.")
    with ctx.transaction() as session:
        cancelled = move(ctx, session, request_id, CANCEL, actor=actor, decided_at=ctx.now())
        if cancelled is None:
            raise WrongState(
                f"{request_id} is {store.load(session, request_id).status}, not pending; "
                "only a pending request can be cancelled (use `/jit revoke` to end access)."
            )
    return cancelled


def _get(ctx: Context, request_id: str) -> AccessRequest:
    with ctx.transaction() as session:
        return store.load(session, request_id)


def _refuse(verdict: VoteDecision) -> None:
    """Raise NotAllowed, saying why, unless the vote may be cast."""
    if verdict.allowed:
        return
    if verdict.refusal is None:  # decide_vote names a reason for every refusal
        raise NotAllowed("You may not decide this request now; nothing changed.")
    raise NotAllowed(REFUSAL_TEXT[verdict.refusal])


def _check_standing(ctx: Context, request: AccessRequest, voter_id: str) -> None:
    """Refuse, saying why, a voter whose account may not approve this role at all."""
    try:
        kind = people.standing(ctx, voter_id)
    except DirectoryUnavailable:
        raise
    except DirectoryError:
        return  # no such account: not among the approvers, decide_vote says so
    if not admits(ctx.config, request.role, kind):
        raise NotAllowed(standing_refusal(kind, request.role, "approve") + " Nothing changed.")


def _voter(
    ctx: Context, user_id: str, request: AccessRequest, approvers: set[str]
) -> Person | None:
    """The clicker, looked up when their identity matters: an approver (anyone else is
    refused by id alone)."""
    if user_id not in approvers:
        return None
    return ctx.directory.person(user_id)


def _verdict(
    ctx: Context,
    session: Session,
    request: AccessRequest,
    status: Status,
    voter_id: str,
    voter: Person | None,
    approvers: set[str],
) -> VoteDecision:
    """decide_vote with people compared by id and by principal (email after each
    provider's mapping): votes cast so far are read in ``session``."""
    votes = store.votes_cast(session, request.id)
    return decide_vote(
        status=status,
        voter=voter_id,
        requester=request.requester_id,
        approvers=approvers,
        allow_self_approval=request.allow_self_approval,
        voted={voted_id for voted_id, _ in votes},
        voter_principals=people.principals(ctx, voter.email) if voter is not None else (),
        requester_principals=people.principals(ctx, request.requester_email),
        voted_principals={p for _, email in votes if email for p in people.principals(ctx, email)},
        expired=_undecided_too_long(ctx, request),
    )


def _undecided_too_long(ctx: Context, request: AccessRequest) -> bool:
    return undecided_too_long(request.created_at, ctx.config.settings.pending_ttl, ctx.now())


def _refuse_if_expired(ctx: Context, request: AccessRequest) -> None:
    """A click on a request past its ``pending_ttl`` expires it now, rather than at the
    next sweep, and never counts; so does one on an extension of access that has ended."""
    if request.status != Status.PENDING:
        return
    if request.extends is not None and not _extends_live_access(ctx, request.extends):
        sweeping.expire_pending(ctx, request.id, why=sweeping.ACCESS_ENDED)
        raise NotAllowed(
            f"This extension expired: the access it extends, {request.extends}, has ended; "
            "nothing changed."
        )
    if _undecided_too_long(ctx, request):
        sweeping.expire_pending(ctx, request_id=request.id)
        raise NotAllowed(REFUSAL_TEXT[Refusal.EXPIRED])


def _extends_live_access(ctx: Context, request_id: str) -> bool:
    original = _get(ctx, request_id)
    return (
        original.status == Status.ACTIVE
        and original.expires_at is not None
        and original.expires_at > ctx.now()
    )
