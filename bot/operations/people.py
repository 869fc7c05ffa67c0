"""Who people are, asked of Slack and the config now: group membership, what kind of
account someone has, their names in the clouds, and who may approve a request. Shared by
requesting, deciding, granting, sweeping and the reads."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from bot import policy
from bot.config import Rule
from bot.directory import Person
from bot.errors import DirectoryError, DirectoryUnavailable
from bot.operations.context import Context
from bot.policy import (
    Standing,
    admits,
    match_rule,
    may_request,
    standing_of,
)
from bot.storage.models import AccessRequest

log = logging.getLogger(__name__)


def membership(ctx: Context, user_id: str) -> Callable[[Sequence[str]], bool]:
    return lambda entries: ctx.directory.is_member(entries, user_id)


def standing(ctx: Context, user_id: str) -> Standing:
    """What kind of account this is (raises Deactivated, DirectoryError)."""
    return standing_of(ctx.directory.person(user_id), ctx.directory.workspace())


def check_identity(ctx: Context, person: Person, acting: str) -> None:
    policy.check_identity(
        person.email,
        person.email_confirmed,
        ctx.config.settings.allowed_email_domains,
        acting=acting,
    )


def principals(ctx: Context, email: str) -> frozenset[str]:
    """Every name the person with this email has in the clouds jit-bot grants in:
    the email, and what each provider maps it to. Accounts sharing any of these are
    one person."""
    return frozenset({email.lower(), *(p.account_email(email) for p in ctx.providers.values())})


def own_principals(ctx: Context, user_id: str) -> frozenset[str]:
    """This account's principals, or none if Slack cannot say who it is now (then
    only its id tells its own requests apart)."""
    try:
        return principals(ctx, ctx.directory.person(user_id).email)
    except DirectoryError:
        return frozenset()


def approvers_of(ctx: Context, rule: Rule, role: str) -> set[str]:
    """The rule's approvers for this role: only accounts that may approve it now
    (deactivated ones, bots, other workspaces' accounts and, unless the role allows
    them, guests count for nothing)."""
    return members(ctx, rule.approver_groups, role)


def members(ctx: Context, groups: Sequence[str], role: str) -> set[str]:
    """The accounts of these groups that may take part in a request for ``role``."""
    entries = [entry for group in groups for entry in ctx.config.groups[group]]
    return {user for user in ctx.directory.resolve(entries) if _may_approve(ctx, user, role)}


def _may_approve(ctx: Context, user_id: str, role: str) -> bool:
    try:
        kind = standing(ctx, user_id)
    except DirectoryUnavailable:
        raise  # no answer: neither a yes nor a no
    except DirectoryError as exc:
        log.info("%s is not counted as an approver of %s: %s", user_id, role, exc)
        return False
    return admits(ctx.config, role, kind)


def current_approvers(ctx: Context, request: AccessRequest) -> set[str]:
    """The approvers of this request as the config and Slack say right now (with the
    escalation group once the request was escalated)."""
    rule = current_rule(ctx, request)
    if rule is None or rule.auto_approve:
        return set()
    found = members(ctx, rule.approver_groups, request.role)
    if request.escalated_at is not None and rule.escalate_to is not None:
        found |= escalation_members(ctx, rule.escalate_to, request)
    return found


def escalation_members(ctx: Context, group: str, request: AccessRequest) -> set[str]:
    """Who of the escalation group may decide this request: never the requester, nor an
    account of the same person, whatever self-approval allows (self-approval is for the
    rule's own approvers, not for anyone who waits long enough)."""
    requester = principals(ctx, request.requester_email)
    return {
        user
        for user in members(ctx, [group], request.role) - {request.requester_id}
        if not policy.same_person(own_principals(ctx, user), requester)
    }


def current_rule(ctx: Context, request: AccessRequest) -> Rule | None:
    """The rule that covers this request under the config as it is now."""
    matched = match_rule(
        ctx.config, request.role, request.environment, membership(ctx, request.requester_id)
    )
    return None if matched is None else matched[1]


def still_eligible(ctx: Context, request: AccessRequest) -> bool:
    """Eligibility is checked again when access is about to be granted: someone who
    left the role's requesters since asking gets nothing, and a break-glass whose rule
    no longer allows it (the config changed before a delayed grant) grants nothing."""
    role = ctx.config.roles.get(request.role)
    if role is None or request.environment not in role.environments:
        return False
    if request.break_glass and not _break_glass_allowed(ctx, request):
        return False
    return may_request(
        ctx.config,
        request.role,
        membership(ctx, request.requester_id),
        standing=standing(ctx, request.requester_id),
    )


def _break_glass_allowed(ctx: Context, request: AccessRequest) -> bool:
    matched = match_rule(
        ctx.config, request.role, request.environment, membership(ctx, request.requester_id)
    )
    allowance = matched[1].break_glass if matched is not None else None
    return allowance is not None and request.duration_seconds <= (
        allowance.max_duration.total_seconds()
    )
