"""Asking to extend active access: checking the ask, storing the extension (a request of
its own whose ``extends`` names the active request) and asking its approvers, or
approving it by rule and applying it at once (``prolonging``).

An extension is decided as any request is (``deciding``), by the rule that covers the
access now (``bot.extension``): an auto-approve rule or ``extend_without_approval_up_to``
extends at once, its approvers decide otherwise, and past the role's ``max_duration`` only
they may, explicitly. It is decided again on the access's locked row as it is stored, so
two asked at once are counted one after the other. It grants nothing of its own. An
extension still undecided when the access ends expires with it (``sweeping``).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import quotas
from bot.durations import InvalidDuration, format_duration, parse_duration
from bot.errors import (
    BadDuration,
    JitError,
    MissingReason,
    ReasonTooLong,
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
from bot.operations import admin, audience, people, prolonging, requesting, store
from bot.operations.context import Context
from bot.operations.transition import audit, state_of
from bot.storage.models import AccessRequest, Status

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
            f"Your Slack email changed since {original.id} was granted to "
            f"{original.requester_email}, so it cannot be extended. Ask again with "
            "`/jit request`."
        )
    approvers = (
        []
        if checked.without_approval
        else requesting.approvers_asked(
            ctx, requester_id, requester, checked.request, self_approval=not checked.over_maximum
        )
    )
    extension = _new_extension(ctx, checked, approvers, origin)
    try:
        _store(ctx, extension, checked)
    except IntegrityError:
        earlier = requesting.by_origin(ctx, origin) if origin is not None else None
        if earlier is None:
            raise
        return earlier  # the same interaction, stored at once by another process
    if checked.without_approval:
        ctx.background(lambda: prolonging.apply(ctx, extension.id))
    return extension


def _new_extension(
    ctx: Context, checked: ExtensionCheck, approvers: list[str], origin: str | None
) -> AccessRequest:
    original, asked, now = checked.original, checked.request, ctx.now()
    quick = checked.without_approval
    heard = (
        {}
        if quick
        else audience.follow_up(
            ctx, asked.rule, original.role, original.requester_id, approvers, now
        )
    )
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
        **heard,
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
        checked = _same_as_checked(ctx, session, checked)
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
        if extension.quiet_approvers:
            details["quiet_approvers"] = extension.quiet_approvers
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


def _same_as_checked(ctx: Context, session: Session, checked: ExtensionCheck) -> ExtensionCheck:
    """Decide the extension again on the access's locked row, and return that decision:
    an extension applied since it was checked (two asked at once, on two replicas) moves
    the total, and with it whether the role's maximum is passed and who must approve."""
    now_ = decide(ctx.config, store.load(session, checked.original.id), checked.request, ctx.now())
    if (now_.over_maximum, now_.without_approval) != (
        checked.over_maximum,
        checked.without_approval,
    ):
        raise JitError(
            f"{checked.original.id} was extended while you asked, so this extension would "
            "be decided differently; nothing was requested. Ask again."
        )
    return now_


def _refuse_second(session: Session, request_id: str) -> None:
    earlier = store.open_extension(session, request_id)
    if earlier is not None:
        raise JitError(
            f"{earlier} already asks to extend {request_id}; wait for its decision, or "
            f"withdraw it with `/jit cancel {earlier}`."
        )


def _load(ctx: Context, request_id: str) -> AccessRequest:
    with ctx.transaction() as session:
        return store.load(session, request_id)
