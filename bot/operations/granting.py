"""Granting an approved request: check again that its requester may receive it, call
each target's provider in order, and record each result as it comes, so a crash at any
point is resumed from the database. A failure rolls back what was granted."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from bot.errors import DirectoryError, DirectoryUnavailable, UnverifiedIdentity, WrongState
from bot.names import BOT_ACTOR, AuditAction
from bot.notify import RequesterNews
from bot.operations import leases, people, provider_calls, revoking, store
from bot.operations.context import Context
from bot.operations.transition import (
    ACTIVATE,
    announce_all,
    audit,
    audit_all,
    failing,
    move,
    set_status,
    take_over,
)
from bot.storage.models import AccessRequest, RequestTarget, Status, TargetStatus
from providers.base import GrantOutcome, ProviderError

log = logging.getLogger(__name__)


def grant(ctx: Context, request_id: str) -> None:
    """Grant every target of an approved request; roll back on a partial failure."""
    with leases.claim(ctx, request_id) as claimed:
        if claimed:
            _grant(ctx, request_id)


def _grant(ctx: Context, request_id: str) -> None:
    with ctx.transaction() as session:
        request = store.load(session, request_id)
    if request.extends is not None:
        return  # an extension grants nothing of its own: extending applies it
    if not _may_receive(ctx, request):
        return
    started = _start(ctx, request)
    if started is None:
        return
    request = started
    leases.fence(ctx, [request])
    expires_at = request.expires_at
    if expires_at is None:  # set by the move to granting, in the same statement
        raise WrongState(f"{request_id} is granting without an expiry; nothing was granted.")
    ours, failure = _grant_targets(ctx, request)
    if not ours:
        return  # another process took the grant over: it carries on, not us
    if failure is None:
        _activate(ctx, request_id, expires_at)
        return
    rollback_errors = revoking.release(ctx, [(request, _targets(ctx, request_id))])[request_id]
    _fail(ctx, request_id, Status.GRANTING, failure, fenced=True, rollback_errors=rollback_errors)


def _activate(ctx: Context, request_id: str, expires_at: datetime) -> None:
    """Every target granted: the request is active, its expiry scheduled."""
    with ctx.transaction() as session:
        granted = move(
            ctx,
            session,
            request_id,
            ACTIVATE,
            actor=BOT_ACTOR,
            details=lambda moved: {
                "expires_at": moved.expires_at,
                "principal": moved.requester_email,
                "principals": _granted_to(store.snapshot(session, request_id)[0]),
            },
            fenced=True,
            granted_at=ctx.now(),
        )
    if granted is not None:
        ctx.expiry.schedule(request_id, expires_at)


def _may_receive(ctx: Context, request: AccessRequest) -> bool:
    """Whether the grant may go on; if the requester may not receive it now, the request
    has failed (or, Slack not answering, stays approved for the sweeper to try again)."""
    request_id = request.id
    try:
        identity_problem = (
            _identity_changed(ctx, request) if request.status == Status.APPROVED else None
        )
        eligible = request.status != Status.APPROVED or people.still_eligible(ctx, request)
    except DirectoryUnavailable as exc:
        # Not an answer: the request stays approved and the sweeper asks again; failing
        # it would refuse someone who may still be eligible.
        log.warning("%s: eligibility not checked, granting later: %s", request_id, exc)
        return False
    except DirectoryError as exc:
        _fail(
            ctx,
            request_id,
            Status.APPROVED,
            "Could not check that the requester may still request "
            f"`{request.role}`: {exc} Nothing was granted.",
        )
        return False
    if identity_problem is not None:
        _fail(ctx, request_id, Status.APPROVED, identity_problem, reason="identity_changed")
        return False
    if not eligible:
        _fail(
            ctx,
            request_id,
            Status.APPROVED,
            f"The requester may no longer request `{request.role}`; nothing was granted.",
        )
        return False
    return True


def _start(ctx: Context, request: AccessRequest) -> AccessRequest | None:
    """Move an approved request to granting, or take over one a crash left granting;
    the request as this process now owns it, or None if another got there first."""
    request_id = request.id
    with ctx.transaction() as session:
        if request.status == Status.APPROVED:
            expires_at = ctx.now() + timedelta(seconds=request.duration_seconds)
            if not set_status(
                ctx, session, request_id, [Status.APPROVED], Status.GRANTING, expires_at=expires_at
            ):
                return None
            request = store.load(session, request_id)
            audit(
                ctx, session, BOT_ACTOR, AuditAction.GRANT_STARTED, request, expires_at=expires_at
            )
        elif request.status == Status.GRANTING:
            # Resuming after a crash: take the request over (the CAS on version makes
            # sure only one process does) and continue where the targets say.
            if not take_over(ctx, session, [request_id], Status.GRANTING):
                return None
            request = store.load(session, request_id)
            audit(ctx, session, BOT_ACTOR, AuditAction.GRANT_RESUMED, request)
        else:
            return None
    return request


def _grant_targets(ctx: Context, request: AccessRequest) -> tuple[bool, str | None]:
    """Grant, in order, each target not granted yet: (whether this process still owns
    the grant, the failure that stopped it, if one did)."""
    request_id = request.id
    context = provider_calls.grant_context(request)
    principal = provider_calls.principal(request)
    targets = _targets(ctx, request_id)
    # A target that failed means the grant had failed and a crash cut its rollback
    # short: finish the rollback, do not carry on granting the rest.
    failed = next((t for t in targets if t.status == TargetStatus.FAILED), None)
    failure = None if failed is None else f"{failed.description}: {failed.error}"
    for target in targets if failure is None else []:
        if target.status not in (TargetStatus.PENDING, TargetStatus.GRANTING):
            continue
        # Mark the call before making it: if we crash in between, the resumed grant
        # knows this access may be ours, not standing access found in the cloud.
        called_before = target.status == TargetStatus.GRANTING
        if not _record_target(ctx, request_id, target.id, TargetStatus.GRANTING):
            return False, None
        provider, spec = provider_calls.spec(ctx, target)
        try:
            outcome = provider.grant(principal, spec, context)
        except ProviderError as exc:
            failure = f"{target.description}: {exc}"
            if not _record_target(ctx, request_id, target.id, TargetStatus.FAILED, error=str(exc)):
                return False, None
            break
        if not _record_granted(ctx, request, target, outcome, called_before):
            return False, None
    return True, failure


def _record_granted(
    ctx: Context,
    request: AccessRequest,
    target: RequestTarget,
    outcome: GrantOutcome,
    called_before: bool,
) -> bool:
    """Record a target granted; False if another process has taken the grant over."""
    # A cloud cannot tell our own earlier grant from standing access: what another
    # active jit-bot grant of this person holds is not standing, and must still be
    # revoked when the last grant needing it ends.
    preexisting = (
        outcome.preexisting
        and not called_before
        and (request.requester_email, target.target_key)
        not in revoking.other_holders(ctx, [request], jit_owned=True)
    )
    if not _record_target(
        ctx,
        request.id,
        target.id,
        TargetStatus.GRANTED,
        granted_at=ctx.now(),
        preexisting=preexisting,
        error=None,
        principal=outcome.principal or target.principal,
    ):
        return False
    if preexisting:
        with ctx.transaction() as session:
            audit(
                ctx,
                session,
                BOT_ACTOR,
                AuditAction.STANDING_ACCESS_FOUND,
                request,
                target=target.description,
                detail=outcome.detail,
            )
    return True


def finish_rollbacks(ctx: Context, request_ids: Sequence[str]) -> None:
    """A failed grant whose rollback a cloud refused left access behind: take it back
    now. The request stays ``failed`` (a terminal state); only its targets move, and
    the lease on the request row keeps two processes from doing it at once."""
    with leases.claim_all(ctx, request_ids) as claimed:
        if not claimed:
            return
        with ctx.transaction() as session:
            taken = take_over(ctx, session, claimed, Status.FAILED)
            requests = store.load_all(session, taken)
            granted = store.snapshots(session, taken)
        if not requests:
            return
        leases.fence(ctx, list(requests.values()))
        errors = revoking.release(ctx, [(r, granted[rid][0]) for rid, r in requests.items()])
        done = [rid for rid in requests if not errors[rid]]
        if not done:
            return  # still refused: the grant_failed post said so, the next sweep retries
        with ctx.transaction() as session:
            ended = store.load_all(session, done)
            audit_all(
                ctx,
                session,
                [(BOT_ACTOR, AuditAction.ROLLED_BACK, ended[rid], {}) for rid in done],
            )
            announce_all(ctx, session, ended, lambda _: RequesterNews.ROLLED_BACK)


def _fail(
    ctx: Context,
    request_id: str,
    current: Status,
    error: str,
    *,
    fenced: bool = False,
    **details: Any,
) -> None:
    with ctx.transaction() as session:
        move(
            ctx,
            session,
            request_id,
            failing(current),
            actor=BOT_ACTOR,
            details={"error": error, **details},
            fenced=fenced,
            error=error,
            ended_at=ctx.now(),
        )


def _identity_changed(ctx: Context, request: AccessRequest) -> str | None:
    """Read the requester afresh from Slack as access is about to be granted: what is
    wrong with who would receive it now, or None. An email changed since the request
    would hand the approved access to another cloud user than the approvers saw."""
    person = ctx.directory.person_now(request.requester_id)
    if person.email != request.requester_email:
        return (
            "The requester's Slack email changed since the request, from "
            f"{request.requester_email} to {person.email}; the approval was for "
            f"{request.requester_email}, so nothing was granted. Request again if the "
            "new email is right."
        )
    try:
        people.check_identity(ctx, person, "receive access")
    except UnverifiedIdentity as exc:
        return f"The requester cannot receive access: {exc} Nothing was granted."
    return None


def _targets(ctx: Context, request_id: str) -> list[RequestTarget]:
    with ctx.transaction() as session:
        return store.snapshot(session, request_id)[0]


def _record_target(
    ctx: Context, request_id: str, target_id: int | None, status: TargetStatus, **values: Any
) -> bool:
    """Record a target's state, if this process still owns the request (False: it
    was taken over, nothing is written)."""
    with ctx.transaction() as session:
        if not leases.renew(ctx, session, [request_id]):
            return False
        store.set_target(session, target_id, status, **values)
        return True


def _granted_to(targets: Sequence[RequestTarget]) -> list[str]:
    """Each target with the cloud identity that received it, for the audit trail."""
    return [f"{t.description} → {t.principal}" for t in targets if t.principal]
