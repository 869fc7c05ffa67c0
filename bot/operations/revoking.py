"""Taking access away: on request (``end_early``), at expiry, and for the sweeper. One
transaction starts a batch, the provider calls run in parallel on the revocation
executor, and one transaction records how each grant ended. Access another live grant of
the same person still needs, or that was there before jit-bot, is kept."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from sqlalchemy import func
from sqlmodel import col

from bot.errors import NotAllowed, WrongState
from bot.names import BOT_ACTOR, AuditAction
from bot.notify import RequesterNews
from bot.operations import due, leases, people, provider_calls, store
from bot.operations import holders as holding
from bot.operations.context import Context
from bot.operations.transition import announce_all, audit_all, set_status, set_statuses, take_over
from bot.revoker import Call, Outcome, Revocation
from bot.storage.models import AccessRequest, RequestTarget, Status, TargetStatus
from providers.base import Provider, ProviderError, TargetSpec

log = logging.getLogger(__name__)

_LOST = "another jit-bot process took this request over"

Grants = Sequence[tuple[AccessRequest, Sequence[RequestTarget]]]
Kept = list[tuple[str, dict[str, Any]]]
Calls = Sequence[tuple[AccessRequest, RequestTarget]]


def end_early(ctx: Context, request_id: str, actor: str) -> AccessRequest:
    """End access now, on the requester's or one of its approvers' word."""
    with ctx.transaction() as session:
        request = store.load(session, request_id)
    if actor != request.requester_id and actor not in people.current_approvers(ctx, request):
        raise NotAllowed(
            "Only the requester or an approver of this request can end it; nothing changed."
        )
    if request.status not in (Status.ACTIVE, Status.REVOKE_FAILED):
        raise WrongState(f"{request_id} is {request.status}; only active access can be ended.")

    def start() -> None:  # only started: the calls run on the revocation executor
        start_revoking(ctx, [request_id], actor, "ended early")

    ctx.background(start)
    return request


def expire(ctx: Context, request_id: str) -> None:
    """Revoke if the request is active and its time is up (the expiry job's entry).
    Returns once the revocation has started: its calls run on the revocation
    executor, so an expiry job never waits on a provider."""
    with ctx.transaction() as session:
        request = store.load(session, request_id)
    if request.status != Status.ACTIVE or request.expires_at is None:
        return
    if request.expires_at <= ctx.now():
        start_revoking(ctx, [request_id], BOT_ACTOR, "expired", only_due=True)
    else:
        # Extended since this job was set (by another process): wait for the new end.
        ctx.expiry.schedule(request_id, request.expires_at)


def revoke_many(ctx: Context, request_ids: Sequence[str], *, actor: str, reason: str) -> None:
    """Revoke several grants together: one transaction starts them all, their provider
    calls run in parallel, one transaction records how each ended. A bot starting on
    thousands of overdue grants catches up in seconds, not minutes. Returns once that
    is recorded (at the latest when the revocation deadline has passed)."""
    started = start_revoking(ctx, request_ids, actor, reason)
    if started is not None:
        started.wait()


def start_revoking(
    ctx: Context,
    request_ids: Sequence[str],
    actor: str,
    reason: str,
    *,
    only_due: bool = False,
) -> Revocation | None:
    """Start revoking and return at once: the calls run on the revocation executor,
    and how each grant ended is recorded when they have answered or the deadline has
    passed (then as ``revoke_failed``, for the sweeper to retry).

    ``only_due``: an expiry; access whose expiry an extension has moved since it was
    found due is left active."""
    claimed = leases.take(ctx, request_ids)
    if not claimed:
        return None
    try:
        begun = _begin_revoke(ctx, claimed, actor, reason, only_due=only_due)
        if begun is None:
            leases.let_go(ctx, claimed)
            return None
        requests, granted = begun
        grants = [(request, granted[rid][0]) for rid, request in requests.items()]
        kept, calls = _plan_release(ctx, grants)
    except BaseException:
        leases.let_go(ctx, claimed)
        raise

    def record(outcomes: list[Outcome]) -> None:
        try:
            errors = _record_release(ctx, grants, kept, calls, outcomes)
            # Sessions taken during the grant outlive it where the cloud lets them: end
            # those too; a failure leaves the revocation failed, and retrying it
            # retries this.
            for request_id, problems in ctx.session_ends.end(grants).items():
                errors[request_id] += problems
            _end_revoke(ctx, requests, errors, actor)
        finally:
            leases.let_go(ctx, claimed)

    try:
        return ctx.revoker.start(_revoke_calls(ctx, calls), record)
    except BaseException:
        # Never started (no thread to be had): claimed, it would keep its lease fresh
        # and no sweeper would ever take it over.
        leases.let_go(ctx, claimed)
        raise


def _begin_revoke(
    ctx: Context, request_ids: Sequence[str], actor: str, reason: str, *, only_due: bool
) -> tuple[dict[str, AccessRequest], dict[str, store.Snapshot]] | None:
    now = ctx.now()
    with ctx.transaction() as session:
        started = set_statuses(
            ctx,
            session,
            request_ids,
            [Status.ACTIVE, Status.REVOKE_FAILED],
            Status.REVOKING,
            where=due.due_by(now) if only_due else None,
            ended_at=func.coalesce(col(AccessRequest.ended_at), now),
            ended_by=func.coalesce(col(AccessRequest.ended_by), actor),
            end_reason=func.coalesce(col(AccessRequest.end_reason), reason),
        )
        rest = [request_id for request_id in request_ids if request_id not in started]
        resumed = take_over(ctx, session, rest, Status.REVOKING)
        requests = store.load_all(session, started + resumed)
        audit_all(
            ctx,
            session,
            [
                (actor, AuditAction.REVOKE_STARTED, requests[rid], {"reason": reason})
                for rid in started
            ],
        )
        granted = store.snapshots(session, list(requests))
    if not requests:
        return None
    leases.fence(ctx, list(requests.values()))
    for request_id in requests:
        ctx.expiry.cancel(request_id)
    return requests, granted


def _end_revoke(
    ctx: Context,
    requests: Mapping[str, AccessRequest],
    errors: Mapping[str, list[str]],
    actor: str,
) -> None:
    with ctx.transaction() as session:
        failed: list[str] = []
        for request_id, problems in errors.items():
            if problems and set_status(
                ctx,
                session,
                request_id,
                [Status.REVOKING],
                Status.REVOKE_FAILED,
                fenced=True,
                error="; ".join(problems),
            ):
                failed.append(request_id)
        revoked = set_statuses(
            ctx,
            session,
            [rid for rid in requests if not errors.get(rid)],
            [Status.REVOKING],
            Status.REVOKED,
            fenced=True,
            error=None,
        )
        ended = store.load_all(session, failed + revoked)
        audit_all(
            ctx,
            session,
            [
                (BOT_ACTOR, AuditAction.REVOKE_FAILED, ended[rid], {"errors": errors[rid]})
                for rid in failed
            ]
            + [
                (
                    ended[rid].ended_by or actor,
                    AuditAction.REVOKED,
                    ended[rid],
                    {"reason": ended[rid].end_reason},
                )
                for rid in revoked
            ],
        )
        announce_all(
            ctx,
            session,
            ended,
            lambda rid: RequesterNews.REVOKE_FAILED if rid in failed else RequesterNews.ENDED,
        )


def release(ctx: Context, grants: Grants) -> dict[str, list[str]]:
    """Revoke every target these requests granted, except access that was there before
    jit-bot (standing) or that another active grant of the same person still needs
    (where the cloud does not keep each grant apart).
    Returns each request's errors; targets that failed stay marked for the sweeper to
    retry."""
    kept, calls = _plan_release(ctx, grants)
    outcomes = ctx.revoker.run(_revoke_calls(ctx, calls))
    return _record_release(ctx, grants, kept, calls, outcomes)


def _plan_release(
    ctx: Context, grants: Grants
) -> tuple[Kept, list[tuple[AccessRequest, RequestTarget]]]:
    """The targets to keep, (request id, row) each, and the revoke calls to make."""
    holders = other_holders(ctx, [request for request, _ in grants])
    kept: Kept = []
    calls: list[tuple[AccessRequest, RequestTarget]] = []
    for request, targets in grants:
        for target in targets:
            # A grant call that failed may still have landed in the cloud (a timeout
            # after the cloud accepted it); revoking is idempotent, so revoke those too.
            if target.status not in store.RELEASABLE:
                continue
            holder = holders.get((request.requester_email, target.target_key))
            if ctx.providers[target.provider].separate_grants:
                holder = None  # revoking this grant leaves the other one in place
            if target.preexisting:
                why = "standing access"
            elif holder is not None:
                why = f"still needed by {holder}"
            else:
                calls.append((request, target))
                continue
            kept.append((request.id, {"id": target.id, "error": why}))
    return kept, calls


def _record_release(
    ctx: Context,
    grants: Grants,
    kept: Kept,
    calls: Calls,
    outcomes: Sequence[Outcome],
) -> dict[str, list[str]]:
    """Record each target's end; returns each request's errors."""
    rows = [(rid, TargetStatus.KEPT, row) for rid, row in kept]
    errors: dict[str, list[str]] = {request.id: [] for request, _ in grants}
    for (request, target), problem in zip(calls, outcomes, strict=True):
        if problem is None:
            row = {"id": target.id, "revoked_at": ctx.now()}
            rows.append((request.id, TargetStatus.REVOKED, row))
        elif problem != _LOST:
            errors[request.id].append(f"{target.description}: {problem}")
            rows.append(
                (request.id, TargetStatus.REVOKE_FAILED, {"id": target.id, "error": problem})
            )
    with ctx.transaction() as session:
        # Only what this process still owns: a request another process took over is
        # that process's to record (the row lock taken here keeps it from taking it now).
        mine = leases.renew(ctx, session, list(errors))
        for status in (TargetStatus.KEPT, TargetStatus.REVOKED, TargetStatus.REVOKE_FAILED):
            batch = [row for rid, st, row in rows if st == status and rid in mine]
            if batch:
                store.set_targets(session, status, batch)
    return errors


def _revoke_one(
    ctx: Context,
    request: AccessRequest,
    target: RequestTarget,
    read: tuple[Provider, TargetSpec] | None,
) -> str | None:
    """One provider revoke call; the error, if it failed (``_LOST`` if another
    process has taken the request over, when no call is made). ``read``: the target's
    provider and spec, if reading them succeeded when the call was planned."""
    if not leases.owned(ctx, request.id):
        return _LOST
    try:
        provider, spec = read or provider_calls.spec(ctx, target)
        principal = dataclasses.replace(
            provider_calls.principal(request), recorded=target.principal
        )
        context = provider_calls.grant_context(request)
        provider.revoke(principal, spec, context)
    except ProviderError as exc:
        return str(exc)
    except Exception as exc:  # a bug in one call must not hold up the whole batch
        log.exception("revoking %s of %s failed", target.description, request.id)
        return f"unexpected error: {exc!r}"
    return None


def _revoke_calls(ctx: Context, calls: Calls) -> list[Call]:
    """The calls for the revocation executor. One request's targets go in their order,
    calls a provider says write the same thing (its ``lane``) one after the other, and
    each takes a slot of the endpoint it talks to."""
    found: list[Call] = []
    for request, target in calls:
        endpoint, lane, read = _endpoint_and_lane(ctx, target)
        found.append(
            Call(
                endpoint=endpoint,
                lane=("request", request.id) if lane is None else ("lane", lane),
                run=partial(_revoke_one, ctx, request, target, read),
            )
        )
    return found


def _endpoint_and_lane(
    ctx: Context, target: RequestTarget
) -> tuple[str, str | None, tuple[Provider, TargetSpec] | None]:
    """Where the call goes, its lane, and the provider and spec it was read with (read
    once: validating a spec twice was 2 % of the bot's CPU in a backlog's profile)."""
    try:
        provider, spec = provider_calls.spec(ctx, target)
        return provider.endpoint(spec), provider.lane(spec), (provider, spec)
    except Exception:  # the call itself will fail and say why
        return target.provider, None, None


def other_holders(
    ctx: Context, requests: Sequence[AccessRequest], *, jit_owned: bool = False
) -> dict[tuple[str, str], str]:
    """(email, target key) → another active request of the same person that holds
    this same access. The requests asked about never count as holders of each other's.

    With ``jit_owned`` (asked when a cloud reports access as already there): any
    other request of the person through which jit-bot may have put it there, even
    one being granted or revoked right now. Access found then is jit-bot's own, not
    standing, and is revoked when the last grant needing it ends; in doubt, access
    ends rather than stays."""
    with ctx.transaction() as session:
        return holding.other_holders(session, requests, jit_owned=jit_owned)
