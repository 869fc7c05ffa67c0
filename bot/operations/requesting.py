"""Asking for access: checking a request, storing it with its targets, and asking its
approvers (or approving it by rule and starting the grant)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import quotas
from bot.directory import Person
from bot.durations import format_duration
from bot.errors import NotEnoughApprovers, TargetsUnavailable
from bot.names import BOT_ACTOR, AuditAction
from bot.notify import RequesterNews, RequestState
from bot.operations import admin, audience, granting, people, store
from bot.operations.context import Context
from bot.operations.transition import audit
from bot.policy import RequestCheck, Standing, check_request, distinct_approvers
from bot.storage.models import AccessRequest, RequestTarget, Status
from providers.base import Provider, ProviderError, TargetSpec

_ID_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"

Unit = tuple[Provider, TargetSpec, str]


def new_request_id() -> str:
    return "R-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


def check(
    ctx: Context, requester_id: str, role: str, environment: str, duration: str, reason: str
) -> RequestCheck:
    """Validate a request without storing anything; raise a JitError naming the fix."""
    return check_request(
        ctx.config,
        role,
        environment,
        duration,
        reason,
        people.membership(ctx, requester_id),
        standing=people.standing(ctx, requester_id),
    )


def check_form(ctx: Context, role: str, environment: str, duration: str, reason: str) -> None:
    """What can be checked from the config alone, with no Slack lookup: the role and
    environment exist, the duration is valid and within the role's maximum, a reason
    is given. (The request modal's answer must carry these errors, and it has to
    come within Slack's three seconds; who may ask is checked by ``check``.)"""
    check_request(
        ctx.config,
        role,
        environment,
        duration,
        reason,
        lambda _: True,
        standing=Standing.MEMBER,
    )


def submit(
    ctx: Context, requester_id: str, checked: RequestCheck, *, origin: str | None = None
) -> AccessRequest:
    """Store a checked request, ask its approvers (or approve it by rule) and return it.

    ``origin`` names the Slack interaction that asked (its trigger_id): the same one
    delivered again, to this process or another, gets back the request it stored."""
    admin.follow_signals(ctx)
    if origin is not None and (earlier := by_origin(ctx, origin)) is not None:
        return earlier
    # Checked again when the request is stored; checking first spares Slack and the
    # clouds the lookups of a flood.
    with ctx.transaction() as session:
        quotas.check_request(session, ctx.config.settings, requester_id, ctx.now())
    requester = ctx.directory.person(requester_id)
    people.check_identity(ctx, requester, "request access")
    approvers = (
        [] if checked.rule.auto_approve else approvers_asked(ctx, requester_id, requester, checked)
    )
    found = units(ctx, checked.role, checked.environment)
    request = _new_request(ctx, requester_id, requester, checked, approvers, origin)
    try:
        _store(ctx, request, checked, found)
    except IntegrityError:
        earlier = by_origin(ctx, origin) if origin is not None else None
        if earlier is None:
            raise
        return earlier  # the same interaction, stored at once by another process
    if checked.rule.auto_approve:
        ctx.background(lambda: granting.grant(ctx, request.id))
    return request


def approvers_asked(
    ctx: Context,
    requester_id: str,
    requester: Person,
    checked: RequestCheck,
    *,
    self_approval: bool = True,
) -> list[str]:
    """Who will be asked; raises NotEnoughApprovers if too few people could approve.
    ``self_approval`` False: the requester may not approve this one whatever the rule
    says (an extension past the role's maximum)."""
    rule = checked.rule
    resolved = people.approvers_of(ctx, rule, checked.role)
    # People, not accounts: a second account of the requester cannot approve, and
    # two accounts of one approver count once (as the votes will be counted).
    found = distinct_approvers(
        {user: people.principals(ctx, ctx.directory.person(user).email) for user in resolved},
        requester=requester_id,
        requester_principals=people.principals(ctx, requester.email),
        allow_self_approval=self_approval and ctx.config.allows_self_approval(rule),
    )
    if found < rule.required_approvals:
        raise NotEnoughApprovers(
            f"`{checked.role}` in `{checked.environment}` needs "
            f"{rule.required_approvals} approval(s) but only {found} "
            "approver(s) other than you can be found in Slack; "
            "ask the bot's administrators to check approvers.yaml."
        )
    return sorted(resolved)


def _new_request(
    ctx: Context,
    requester_id: str,
    requester: Person,
    checked: RequestCheck,
    approvers: list[str],
    origin: str | None,
) -> AccessRequest:
    rule = checked.rule
    now = ctx.clock.now()
    heard = (
        {}
        if rule.auto_approve
        else audience.follow_up(ctx, rule, checked.role, requester_id, approvers, now)
    )
    return AccessRequest(
        id=new_request_id(),
        requester_id=requester_id,
        requester_email=requester.email,
        role=checked.role,
        environment=checked.environment,
        reason=checked.reason,
        duration_seconds=int(checked.duration.total_seconds()),
        status=Status.APPROVED if rule.auto_approve else Status.PENDING,
        rule_index=checked.rule_index,
        required_approvals=0 if rule.auto_approve else rule.required_approvals,
        auto_approve=rule.auto_approve,
        allow_self_approval=ctx.config.allows_self_approval(rule),
        approvers=approvers,
        created_at=now,
        updated_at=now,
        decided_at=now if rule.auto_approve else None,
        origin=origin,
        **heard,
    )


def by_origin(ctx: Context, origin: str) -> AccessRequest | None:
    with ctx.transaction() as session:
        return store.by_origin(session, origin)


def _store(
    ctx: Context,
    request: AccessRequest,
    checked: RequestCheck,
    found: Sequence[Unit],
) -> None:
    """The request, its targets, its audit event and its messages, in one transaction."""
    requester_id, rule, approvers = request.requester_id, checked.rule, request.approvers
    with ctx.transaction() as session:
        quotas.check_request(session, ctx.config.settings, requester_id, request.created_at)
        session.add(request)
        session.flush()
        targets = add_targets(session, request, found)
        audit(
            ctx,
            session,
            requester_id,
            AuditAction.REQUESTED,
            request,
            duration=format_duration(checked.duration),
            reason=checked.reason,
            requester_email=request.requester_email,
            approvers=approvers,
            **({"quiet_approvers": request.quiet_approvers} if request.quiet_approvers else {}),
            **({"watchers": request.watchers} if request.watchers else {}),
            targets=[t.description for t in targets],
        )
        if rule.auto_approve:
            audit(
                ctx,
                session,
                BOT_ACTOR,
                AuditAction.AUTO_APPROVED,
                request,
                rule=checked.rule_index + 1,
            )
        else:
            ctx.notify.ask_approvers(session, RequestState(request, targets))
        ctx.notify.tell_requester(session, RequestState(request, targets), RequesterNews.SUBMITTED)


def add_targets(
    session: Session, request: AccessRequest, units: Sequence[Unit]
) -> list[RequestTarget]:
    """Store the request's targets, in order, in the caller's transaction."""
    targets = [
        RequestTarget(
            request_id=request.id,
            position=i,
            provider=provider.name,
            spec=unit.model_dump(mode="json"),
            target_key=f"{provider.name}:{unit.key()}",
            description=description,
            principal=_known_principal(provider, request.requester_email),
        )
        for i, (provider, unit, description) in enumerate(units)
    ]
    session.add_all(targets)
    session.flush()
    return targets


def units(ctx: Context, role: str, environment: str) -> list[Unit]:
    """The concrete units a request grants, each with its description, asked of the
    clouds now (an OU's accounts, a permission set's ARN)."""
    found: list[Unit] = []
    for target in ctx.config.targets[(role, environment)]:
        provider = ctx.providers[target.provider]
        try:
            found.extend((provider, u, provider.describe(u)) for u in provider.expand(target))
        except ProviderError as exc:
            raise TargetsUnavailable(
                f"jit-bot could not work out what `{role}` in `{environment}` grants "
                f"({target.provider}: {exc}); nothing was requested. Try again in a "
                "minute; if it keeps failing, ask the bot's administrators to run "
                "`jit-bot check --live`."
            ) from None
    return found


def _known_principal(provider: Provider, email: str) -> str | None:
    """The account a target will be granted to, where the provider maps the email to
    another one without asking its cloud (GCP's domain map); None: the email itself, or
    only known once granted."""
    account = provider.account_email(email)
    return None if account == email.lower() else account
