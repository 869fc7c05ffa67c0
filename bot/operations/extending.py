"""Extending active access: asking for more time, and moving the expiry once approved,
without a moment without the access and without a second grant.

An extension is a request of its own (``extends`` names the active request). It is
decided as any request is (``deciding``), by the rule that covers the access now, or at
once where the rule extends without approval (``bot.extension``). It grants nothing of
its own. Applying it, under the lease on the extension's row:

1. approved → granting, with the new expiry fixed on the extension's row (``expires_at``),
   so a process that takes over after a crash moves it to the same instant;
2. each cloud that ends access by itself is told the new end (``Provider.extend``: a GCP
   binding's condition, an Azure PIM schedule); the others keep the grant as it is;
3. in one transaction, the active request's expiry moves (a compare-and-set that loses to
   its own expiry's revocation if that came first), the extension is ``extended``, both
   are audited and the requester told; then its revocation job is rescheduled.

A failure anywhere leaves the access as it was: it ends at its old time, and the bot's
revocation then removes it whole, extended clouds included (they are found by the
original request's id). An extension still undecided when the access ends expires with it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from bot import quotas
from bot.durations import InvalidDuration, format_duration, parse_duration
from bot.errors import (
    BadDuration,
    DirectoryError,
    DirectoryUnavailable,
    JitError,
    MissingReason,
    ReasonTooLong,
    UnverifiedIdentity,
    WrongState,
)
from bot.extension import (
    REASON_MAX,
    ExtensionCheck,
    check_extendable,
    check_extension,
    decide,
)
from bot.names import BOT_ACTOR, AuditAction
from bot.notify import RequesterNews
from bot.operations import admin, leases, people, provider_calls, requesting, revoking, store
from bot.operations.context import Context
from bot.operations.transition import (
    EXTEND,
    audit,
    extension_failing,
    move,
    refresh,
    set_status,
    state_of,
    take_over,
)
from bot.storage.models import AccessRequest, RequestTarget, Status, TargetStatus
from providers.base import GrantContext, ProviderError

log = logging.getLogger(__name__)


def check(
    ctx: Context, requester_id: str, request_id: str, duration: str, reason: str
) -> ExtensionCheck:
    """Validate an extension without storing anything; raise a JitError naming the fix."""
    original = _load(ctx, request_id)
    return check_extension(
        ctx.config,
        original,
        requester_id,
        duration,
        reason,
        people.membership(ctx, requester_id),
        standing=people.standing(ctx, requester_id),
        now=ctx.now(),
    )


def can_extend(ctx: Context, request_id: str, requester_id: str) -> AccessRequest:
    """The access, if ``requester_id`` may ask to extend it now (the Extend button's
    check before its form opens); a JitError saying why not otherwise."""
    original = _load(ctx, request_id)
    check_extendable(original, requester_id, ctx.now())
    if original.role not in ctx.config.roles:
        raise WrongState(
            f"`{original.role}` is no longer a role, so {original.id} cannot be extended; it "
            "ends as planned."
        )
    with ctx.transaction() as session:
        _refuse_second(session, original.id)
    return original


def check_form(duration: str, reason: str) -> None:
    """What the Extend form's answer can say with no lookup: a duration and a reason."""
    try:
        parse_duration(duration)
    except InvalidDuration as exc:
        raise BadDuration(str(exc)) from None
    if not reason.strip():
        raise MissingReason("Say why you need the access for longer.")
    if len(reason.strip()) > REASON_MAX:
        raise ReasonTooLong(f"Say why in at most {REASON_MAX} characters.")


def submit(
    ctx: Context, requester_id: str, checked: ExtensionCheck, *, origin: str | None = None
) -> AccessRequest:
    """Store the extension, ask its approvers (or approve it by rule and apply it) and
    return it. ``origin`` names the Slack interaction that asked: delivered again, it
    gets back the extension it stored."""
    admin.follow_signals(ctx)
    if origin is not None and (earlier := requesting.by_origin(ctx, origin)) is not None:
        return earlier
    original = checked.original
    with ctx.transaction() as session:
        quotas.check_request(session, ctx.config.settings, requester_id, ctx.now())
    requester = ctx.directory.person(requester_id)
    people.check_identity(ctx, requester, "extend access")
    if requester.email != original.requester_email:
        raise WrongState(
            f"Your Slack email changed since {original.id} was granted (to "
            f"{original.requester_email}); it cannot be extended. Ask again with `/jit request`."
        )
    approvers = (
        []
        if checked.without_approval
        else requesting.approvers_asked(
            ctx, requester_id, requester, checked.request, self_approval=not checked.over_maximum
        )
    )
    extension = _new_extension(ctx, checked, approvers, origin)
    _store(ctx, extension, checked)
    if checked.without_approval:
        ctx.background(lambda: apply(ctx, extension.id))
    return extension


def _new_extension(
    ctx: Context, checked: ExtensionCheck, approvers: list[str], origin: str | None
) -> AccessRequest:
    original, asked, now = checked.original, checked.request, ctx.now()
    quick = checked.without_approval
    return AccessRequest(
        id=requesting.new_request_id(),
        requester_id=original.requester_id,
        requester_email=original.requester_email,
        role=original.role,
        environment=original.environment,
        reason=asked.reason,
        duration_seconds=int(asked.duration.total_seconds()),
        status=Status.APPROVED if quick else Status.PENDING,
        rule_index=asked.rule_index,
        required_approvals=0 if quick else asked.rule.required_approvals,
        auto_approve=quick,
        # Past the role's maximum only approvers may allow it: never the requester.
        allow_self_approval=ctx.config.allows_self_approval(asked.rule)
        and not checked.over_maximum,
        approvers=approvers,
        created_at=now,
        updated_at=now,
        decided_at=now if quick else None,
        origin=origin,
        extends=original.id,
        max_total_seconds=int(ctx.config.roles[original.role].max_duration.total_seconds()),
    )


def _store(ctx: Context, extension: AccessRequest, checked: ExtensionCheck) -> None:
    """The extension, its audit events and its messages, in one transaction that holds
    the access's row: two extensions asked at once cannot both be open."""
    original = checked.original
    with ctx.transaction() as session:
        quotas.check_request(session, ctx.config.settings, extension.requester_id, ctx.now())
        if not store.lock_active(session, original.id, ctx.now()):
            raise WrongState(f"{original.id} has ended; only active access can be extended.")
        _refuse_second(session, original.id)
        _same_as_checked(ctx, session, checked)
        session.add(extension)
        session.flush()
        details: dict[str, Any] = {
            "extends": original.id,
            "duration": format_duration(checked.request.duration),
            "reason": checked.request.reason,
            "held_for": format_duration(checked.held_for),
            "total": format_duration(checked.total),
            "requester_email": extension.requester_email,
            "approvers": extension.approvers,
        }
        if checked.over_maximum:
            details["over_max_duration"] = True
        audit(ctx, session, extension.requester_id, AuditAction.REQUESTED, extension, **details)
        if checked.without_approval:
            rule = checked.request.rule
            audit(
                ctx,
                session,
                BOT_ACTOR,
                AuditAction.AUTO_APPROVED,
                extension,
                rule=checked.request.rule_index + 1,
                **(
                    {}
                    if rule.auto_approve or rule.extend_without_approval_up_to is None
                    else {
                        "extend_without_approval_up_to": format_duration(
                            rule.extend_without_approval_up_to
                        )
                    }
                ),
            )
        state = state_of(session, extension, ([], []))
        if not checked.without_approval:
            ctx.notify.ask_approvers(session, state)
        ctx.notify.tell_requester(session, state, RequesterNews.SUBMITTED)


def _same_as_checked(ctx: Context, session: Session, checked: ExtensionCheck) -> None:
    """Decide the extension again on the access's locked row: an extension applied since
    it was checked (two asked at once, on two replicas) moves the total, and with it
    whether the role's maximum is passed and who must approve."""
    now_ = decide(ctx.config, store.load(session, checked.original.id), checked.request, ctx.now())
    if (now_.over_maximum, now_.without_approval) != (
        checked.over_maximum,
        checked.without_approval,
    ):
        raise JitError(
            f"{checked.original.id} was extended while you asked, so this extension would "
            "be decided differently; nothing was requested. Ask again."
        )


def _refuse_second(session: Session, request_id: str) -> None:
    earlier = store.open_extension(session, request_id)
    if earlier is not None:
        raise JitError(
            f"{earlier} already asks to extend {request_id}; wait for its decision, or "
            f"withdraw it with `/jit cancel {earlier}`."
        )


# --------------------------------------------------------------------------- applying


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
    if original.expires_at + store.EXTENSION_GRACE <= ctx.now():
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
