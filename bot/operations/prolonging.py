"""Prolonging access: applying an approved extension, so that the access's end moves later
without a moment without the access and without a second grant. Under the lease on the
extension's row:

1. approved → granting, with the new end fixed on the extension's row (``expires_at``),
   so a process that takes over after a crash moves it to the same instant;
2. each cloud that ends access by itself is told the new end (``Provider.extend``: a GCP
   binding's condition, an Azure PIM schedule); the others keep the grant as it is;
3. in one transaction, the access's expiry moves from its old end (a compare-and-set that
   loses to its own expiry's revocation if that came first), the extension is
   ``extended``, both are audited and the requester told; then its revocation job is
   rescheduled.

A failure anywhere leaves the access as it was: it ends at its old time (at once, if
that has passed while the extension was being applied: ``due.EXTENSION_GRACE``), and
the bot's revocation removes it whole, extended clouds included (they are found by the
original request's id). An extension no approver voted for never moves the end past the
role's maximum, whatever its row says by then.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from bot.durations import format_duration
from bot.errors import DirectoryError, DirectoryUnavailable, UnverifiedIdentity
from bot.names import BOT_ACTOR, AuditAction
from bot.operations import due, leases, people, provider_calls, revoking, store
from bot.operations.context import Context
from bot.operations.transition import (
    EXTEND,
    audit,
    extension_failing,
    move,
    refresh,
    set_status,
    take_over,
)
from bot.storage.models import AccessRequest, RequestTarget, Status, TargetStatus
from providers.base import GrantContext, ProviderError

log = logging.getLogger(__name__)


def apply(ctx: Context, extension_id: str) -> None:
    """Apply an approved extension (or resume one a crash interrupted)."""
    with leases.claim(ctx, extension_id) as claimed:
        if claimed:
            _apply(ctx, extension_id)


def _apply(ctx: Context, extension_id: str) -> None:
    extension = _load(ctx, extension_id)
    if extension.extends is None:
        return  # not an extension: granting's, not ours
    started = _start(ctx, extension)
    if started is None:
        return
    leases.fence(ctx, [started])
    original = _load(ctx, extension.extends)
    until = started.expires_at
    problem = _cannot_apply(ctx, started, original)
    if problem is not None or until is None:
        _fail(ctx, extension_id, problem or _ENDED.format(id=original.id), reason="not_applied")
        return
    failure = _extend_targets(ctx, extension_id, original, until)
    if failure is not None:
        _fail(ctx, extension_id, failure)
        return
    _finish(ctx, extension_id, original, until - _more(started), until)


_ENDED = (
    "The access {id} ended before the extension could be applied, so nothing was "
    "extended. Ask again with `/jit request`."
)


def _more(extension: AccessRequest) -> timedelta:
    return timedelta(seconds=extension.duration_seconds)


def _cannot_apply(ctx: Context, extension: AccessRequest, original: AccessRequest) -> str | None:
    """Why the extension cannot move the access's end now, or None: the access has
    ended, or moved since the new end was fixed, or (approved by no one) the new end
    would pass the role's maximum, whatever was read when it was asked."""
    until = extension.expires_at
    if until is None or original.status != Status.ACTIVE or original.expires_at is None:
        return _ENDED.format(id=original.id)
    if original.expires_at != until - _more(extension):
        return _ENDED.format(id=original.id)
    if original.expires_at + due.EXTENSION_GRACE <= ctx.now():
        return _ENDED.format(id=original.id)  # too late: its expiry ends it now
    if extension.auto_approve and original.granted_at is not None:
        limit = _maximum(ctx, extension)
        total = until - original.granted_at
        if limit is not None and total > limit:
            return (
                f"Extending {original.id} to {format_duration(total)} in all would pass "
                f"the role's maximum ({format_duration(limit)}), which only its approvers "
                "may allow; nothing was extended."
            )
    return None


def _maximum(ctx: Context, extension: AccessRequest) -> timedelta | None:
    """The role's maximum: the lower of the one when asked and the one now."""
    found = []
    if extension.max_total_seconds is not None:
        found.append(timedelta(seconds=extension.max_total_seconds))
    role = ctx.config.roles.get(extension.role)
    if role is not None:
        found.append(role.max_duration)
    return min(found) if found else None


def _start(ctx: Context, extension: AccessRequest) -> AccessRequest | None:
    """Move an approved extension to granting (its new expiry fixed), or take over one a
    crash left there; the extension as this process now owns it, or None."""
    if extension.status == Status.APPROVED:
        try:
            problem = _why_not(ctx, extension)
        except DirectoryUnavailable as exc:
            # Not an answer: the extension stays approved and the sweeper asks again.
            log.warning("%s: eligibility not checked, extending later: %s", extension.id, exc)
            return None
        if problem is not None:
            _fail(ctx, extension.id, problem, current=Status.APPROVED)
            return None
    with ctx.transaction() as session:
        if extension.status == Status.APPROVED:
            original = store.load(session, extension.extends or "")
            if original.expires_at is None:
                return None
            until = original.expires_at + timedelta(seconds=extension.duration_seconds)
            if not set_status(
                ctx, session, extension.id, [Status.APPROVED], Status.GRANTING, expires_at=until
            ):
                return None
            extension = store.load(session, extension.id)
            audit(
                ctx,
                session,
                BOT_ACTOR,
                AuditAction.EXTENSION_STARTED,
                extension,
                extends=original.id,
                expires_at=original.expires_at,
                new_expires_at=until,
            )
        elif extension.status == Status.GRANTING:
            if not take_over(ctx, session, [extension.id], Status.GRANTING):
                return None
            extension = store.load(session, extension.id)
            audit(ctx, session, BOT_ACTOR, AuditAction.EXTENSION_RESUMED, extension)
        else:
            return None
    return extension


def _why_not(ctx: Context, extension: AccessRequest) -> str | None:
    """Why the requester may not keep the access longer now, or None. Checked again as
    the extension is applied, as a grant is: someone who left the role's requesters
    since asking gets nothing more."""
    try:
        person = ctx.directory.person_now(extension.requester_id)
        if person.email != extension.requester_email:
            return (
                "The requester's Slack email changed since the access was granted; "
                "nothing was extended."
            )
        people.check_identity(ctx, person, "keep access")
        if not people.still_eligible(ctx, extension):
            return f"The requester may no longer request `{extension.role}`; nothing was extended."
    except UnverifiedIdentity as exc:
        return f"The requester cannot keep access: {exc} Nothing was extended."
    except DirectoryUnavailable:
        raise  # no answer: the caller leaves it for the sweeper
    except DirectoryError as exc:
        return f"Could not check that the requester may still hold `{extension.role}`: {exc}"
    return None


def _extend_targets(
    ctx: Context, extension_id: str, original: AccessRequest, until: datetime
) -> str | None:
    """Tell each cloud holding the access the new end, in order; the first failure,
    or None. Standing access, and access kept for another grant, are left alone."""
    with ctx.transaction() as session:
        targets = store.snapshot(session, original.id)[0]
    context = GrantContext(
        request_id=original.id,
        role=original.role,
        environment=original.environment,
        reason=original.reason,
        expires_at=until,
    )
    for target in _extendable(targets):
        with ctx.transaction() as session:
            if not leases.renew(ctx, session, [extension_id]):
                return "another jit-bot process took this extension over"
        provider, spec = provider_calls.spec(ctx, target)
        principal = dataclasses.replace(
            provider_calls.principal(original), recorded=target.principal
        )
        try:
            provider.extend(principal, spec, context)
        except ProviderError as exc:
            return f"{target.description}: {exc}"
    return None


def _extendable(targets: Sequence[RequestTarget]) -> list[RequestTarget]:
    return [t for t in targets if t.status == TargetStatus.GRANTED and not t.preexisting]


def _finish(
    ctx: Context, extension_id: str, original: AccessRequest, old: datetime, until: datetime
) -> None:
    """Move the access's expiry from ``old`` to ``until`` and record the extension
    applied, in one transaction; then reschedule its revocation."""
    try:
        with ctx.transaction() as session:
            if not leases.renew(ctx, session, [extension_id]):
                return  # taken over: the other process finishes it
            if not store.move_expiry(session, original.id, old, until, ctx.now()):
                moved = False  # ended (or due) first: nothing was written
            else:
                moved = True
                _record_extended(ctx, session, extension_id, original, until)
    except _TakenOver:
        return
    if not moved:
        _fail(ctx, extension_id, _ENDED.format(id=original.id), reason="not_applied")
        return
    ctx.expiry.schedule(original.id, until)


class _TakenOver(Exception):
    """Another process owns the extension now: roll back the expiry just moved."""


def _record_extended(
    ctx: Context, session: Session, extension_id: str, original: AccessRequest, until: datetime
) -> None:
    extended = move(
        ctx,
        session,
        extension_id,
        EXTEND,
        actor=BOT_ACTOR,
        details={"extends": original.id, "from": original.expires_at, "to": until},
        fenced=True,
        granted_at=ctx.now(),
    )
    if extended is None:
        raise _TakenOver(extension_id)
    lasting = store.load(session, original.id)
    audit(
        ctx,
        session,
        BOT_ACTOR,
        AuditAction.EXPIRY_MOVED,
        lasting,
        extension=extension_id,
        # ``expires_at`` is the access's end now, as in every event that carries one.
        expires_at=until,
        previous_expires_at=original.expires_at,
    )
    refresh(ctx, session, lasting)


def _fail(
    ctx: Context,
    extension_id: str,
    error: str,
    *,
    current: Status = Status.GRANTING,
    **details: Any,
) -> None:
    """Nothing is extended: the extension fails and the access ends as it would have,
    at once if its old end has passed while the extension was being applied."""
    with ctx.transaction() as session:
        failed = move(
            ctx,
            session,
            extension_id,
            extension_failing(current),
            actor=BOT_ACTOR,
            details={"error": error, **details},
            fenced=current == Status.GRANTING,
            error=error,
            ended_at=ctx.now(),
        )
    if failed is not None and failed.extends is not None:
        revoking.expire(ctx, failed.extends)


def _load(ctx: Context, request_id: str) -> AccessRequest:
    with ctx.transaction() as session:
        return store.load(session, request_id)
