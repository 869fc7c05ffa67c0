"""Breaking the glass: access taken at once, with no approver's click, during an
incident, within the rule's ``break_glass`` limits, and announced loudly.

The bot grants nothing without a recorded approval. An auto-approve rule records one
(``auto_approved``); here it is the requester's own break-glass, recorded as a
``break_glass`` event with the incident, in the transaction that stores the request as
approved. From there the request takes the normal path: ``granting.grant``, expiry,
early end and revocation as for any grant. The rule's approvers and the security
channel are told at once, in a message that does not look like a routine request.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import quotas
from bot.break_glass import BreakGlassCheck, check_break_glass, check_incident
from bot.directory import Person
from bot.durations import format_duration
from bot.errors import JitError
from bot.names import AuditAction
from bot.notify import RequesterNews, RequestState
from bot.operations import admin, granting, people, requesting, reviewing
from bot.operations.context import Context
from bot.operations.transition import audit
from bot.storage.models import AccessRequest, Status


def check(
    ctx: Context,
    requester_id: str,
    role: str,
    environment: str,
    duration: str,
    incident: str,
    reason: str,
) -> BreakGlassCheck:
    """Validate a break-glass without storing anything; raise a JitError naming the fix."""
    return check_break_glass(
        ctx.config,
        role,
        environment,
        duration,
        incident,
        reason,
        people.membership(ctx, requester_id),
        standing=people.standing(ctx, requester_id),
    )


def check_form(
    ctx: Context, role: str, environment: str, duration: str, incident: str, reason: str
) -> None:
    """What the request modal's answer can say when "Break glass" is chosen, with no
    Slack lookup: the form's own checks and an incident named. The rule's break-glass
    limits, who may ask and the quota are checked by ``check`` once the modal closed."""
    check_incident(incident)
    requesting.check_form(ctx, role, environment, duration, reason)


def submit(
    ctx: Context, requester_id: str, checked: BreakGlassCheck, *, origin: str | None = None
) -> AccessRequest:
    """Store the break-glass as an approved request, alert the rule's approvers and the
    security channel, and start the grant; the request is returned at once.

    ``origin`` names the Slack interaction that asked: delivered again, it gets back the
    request it stored rather than breaking the glass twice."""
    admin.follow_signals(ctx)
    if origin is not None and (earlier := requesting.by_origin(ctx, origin)) is not None:
        return earlier
    # Checked again when the request is stored, under the person's lock.
    with ctx.transaction() as session:
        _check_quota(ctx, session, requester_id, checked)
    if not ctx.notify.announces_break_glass():
        # Loud by design, or not at all: a break-glass nobody hears of is refused.
        raise JitError(
            "Break-glass is turned off here: it must be announced in a channel, and none "
            "is set. Ask an admin to set JIT_SECURITY_CHANNEL (or JIT_AUDIT_CHANNEL), or "
            "use /jit request."
        )
    requester = ctx.directory.person(requester_id)
    people.check_identity(ctx, requester, "break the glass")
    approvers = sorted(people.approvers_of(ctx, checked.request.rule, checked.request.role))
    if not [a for a in approvers if a != requester_id]:
        # Nobody but the requester could review it afterwards (reviewing.reviewers).
        raise JitError(
            "Nobody but you could review this break-glass afterwards: the rule's approvers "
            "are you alone. Ask an admin to add a second approver to the rule, or use "
            "/jit request."
        )
    found = requesting.units(ctx, checked.request.role, checked.request.environment)
    request = _new_request(ctx, requester_id, requester, checked, approvers, origin)
    try:
        _store(ctx, request, checked, found)
    except IntegrityError:
        earlier = requesting.by_origin(ctx, origin) if origin is not None else None
        if earlier is None:
            raise
        return earlier  # the same interaction, stored at once by another process
    ctx.background(lambda: granting.grant(ctx, request.id))
    return request


def _check_quota(
    ctx: Context, session: Session, requester_id: str, checked: BreakGlassCheck
) -> None:
    per_day = checked.allowance.per_person_per_day
    quotas.check_break_glass(session, requester_id, per_day, ctx.now())


def _new_request(
    ctx: Context,
    requester_id: str,
    requester: Person,
    checked: BreakGlassCheck,
    approvers: list[str],
    origin: str | None,
) -> AccessRequest:
    asked = checked.request
    now = ctx.now()
    return AccessRequest(
        id=requesting.new_request_id(),
        requester_id=requester_id,
        requester_email=requester.email,
        role=asked.role,
        environment=asked.environment,
        reason=asked.reason,
        duration_seconds=int(asked.duration.total_seconds()),
        # Approved by the break-glass itself: no one is asked, no vote can count.
        status=Status.APPROVED,
        rule_index=asked.rule_index,
        required_approvals=0,
        auto_approve=False,
        allow_self_approval=False,
        # Not asked to decide: told, and may end the access early.
        approvers=approvers,
        created_at=now,
        updated_at=now,
        decided_at=now,
        origin=origin,
        break_glass=True,
        incident=checked.incident,
    )


def _store(
    ctx: Context, request: AccessRequest, checked: BreakGlassCheck, found: Sequence[requesting.Unit]
) -> None:
    """The request, its targets, its two audit events (requested, and the break-glass
    that approves it), the alerts and its post-incident review, in one transaction."""
    with ctx.transaction() as session:
        _check_quota(ctx, session, request.requester_id, checked)
        session.add(request)
        session.flush()
        targets = requesting.add_targets(session, request, found)
        audit(
            ctx,
            session,
            request.requester_id,
            AuditAction.REQUESTED,
            request,
            duration=format_duration(checked.request.duration),
            reason=checked.request.reason,
            incident=checked.incident,
            requester_email=request.requester_email,
            approvers=request.approvers,
            targets=[t.description for t in targets],
        )
        audit(
            ctx,
            session,
            request.requester_id,
            AuditAction.BREAK_GLASS,
            request,
            incident=checked.incident,
            rule=checked.request.rule_index + 1,
            max_duration=format_duration(checked.allowance.max_duration),
            per_person_per_day=checked.allowance.per_person_per_day,
        )
        state = RequestState(request, targets)
        ctx.notify.alert_break_glass(session, state)
        reviewing.open_review(ctx, session, request)
        ctx.notify.tell_requester(session, state, RequesterNews.SUBMITTED)
