"""Pure decisions: who may request what, which rule applies, who may decide, whether a
duration is allowed. Functions of config and plain values only, tested as tables.

Group membership is passed in as a predicate (``is_member(entries) -> bool``) so the
functions here need neither Slack nor a network.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from bot.config import JitConfig, Rule
from bot.directory import Person, Workspace
from bot.durations import InvalidDuration, format_duration, parse_duration
from bot.errors import (
    BadDuration,
    MissingReason,
    NoApprovalRule,
    NotEligible,
    UnknownEnvironment,
    UnknownRole,
    UnverifiedIdentity,
)

Membership = Callable[[Sequence[str]], bool]
"""Whether the person in question is named by any of the entries (ids, emails, @groups)."""


class Standing(StrEnum):
    """What kind of account someone has, as far as serving them goes."""

    MEMBER = "member"  # a full member of the installing workspace
    GUEST = "guest"  # a multi- or single-channel guest of it
    BOT = "bot"
    FOREIGN = "foreign"  # another workspace or organisation (Slack Connect)


def standing_of(person: Person, workspace: Workspace) -> Standing:
    if person.is_bot:
        return Standing.BOT
    if not workspace.includes(person):
        return Standing.FOREIGN
    if person.is_restricted or person.is_ultra_restricted:
        return Standing.GUEST
    return Standing.MEMBER


def admits(config: JitConfig, role: str, standing: Standing) -> bool:
    """Whether someone of this standing may request, approve or hold ``role``: full
    members always, guests where the role says ``allow_guests: true``, bots and accounts
    of other workspaces never."""
    spec = config.roles.get(role)
    return standing is Standing.MEMBER or (
        standing is Standing.GUEST and spec is not None and spec.allow_guests
    )


STANDING_TEXT = {
    Standing.GUEST: "Guest accounts may not {act} `{role}`: only roles with "
    "`allow_guests: true` in roles.yaml admit guests; ask the bot's administrators if this "
    "one should.",
    Standing.BOT: "Bot and app accounts may not {act} `{role}`.",
    Standing.FOREIGN: "Your Slack account belongs to another workspace or organisation, and "
    "jit-bot serves only accounts of the workspace it is installed in: you may not {act} "
    "`{role}`.",
}


def standing_refusal(standing: Standing, role: str, act: str) -> str:
    """Why someone of this standing may not ``act`` ("request", "approve") the role."""
    text = STANDING_TEXT.get(standing, "You may not {act} `{role}`.")
    return text.format(act=act, role=role)


def may_request(config: JitConfig, role: str, is_member: Membership, *, standing: Standing) -> bool:
    """An omitted ``requesters`` means the workspace's full members (and its guests
    where the role allows them), never anyone at all."""
    if not admits(config, role, standing):
        return False
    requesters = config.roles[role].requesters
    return requesters is None or is_member(requesters)


def requestable_roles(config: JitConfig, is_member: Membership, *, standing: Standing) -> list[str]:
    return [
        name for name in config.roles if may_request(config, name, is_member, standing=standing)
    ]


def match_rule(
    config: JitConfig, role: str, environment: str, is_member: Membership
) -> tuple[int, Rule] | None:
    """The first rule for this role and environment whose requester filter (if any)
    includes the requester."""
    for index, rule in enumerate(config.rules):
        if not rule.matches(role, environment):
            continue
        if rule.requesters is not None and not is_member(rule.requesters):
            continue
        return index, rule
    return None


def undecided_too_long(created_at: datetime, pending_ttl: timedelta, now: datetime) -> bool:
    """Whether a pending request has outlived ``pending_ttl`` and may no longer be decided."""
    return now - created_at >= pending_ttl


def parse_requested_duration(config: JitConfig, role: str, text: str) -> timedelta:
    limit = config.roles[role].max_duration
    try:
        duration = parse_duration(text)
    except InvalidDuration as exc:
        raise BadDuration(f"{exc}. {role} allows up to {format_duration(limit)}.") from None
    if duration > limit:
        raise BadDuration(
            f"{format_duration(duration)} is longer than {role} allows "
            f"({format_duration(limit)}); ask for {format_duration(limit)} or less."
        )
    return duration


@dataclass(frozen=True)
class RequestCheck:
    """A request that passed every static check."""

    role: str
    environment: str
    duration: timedelta
    reason: str
    rule_index: int
    rule: Rule


def check_request(
    config: JitConfig,
    role: str,
    environment: str,
    duration_text: str,
    reason: str,
    is_member: Membership,
    *,
    standing: Standing,
) -> RequestCheck:
    """Raise the first problem with a request, naming the valid choices."""
    allowed = requestable_roles(config, is_member, standing=standing)
    if role not in config.roles:
        choices = ", ".join(allowed) if allowed else "none: you may not request any role"
        raise UnknownRole(f"There is no role `{role}`. Roles you may request: {choices}.")
    if not admits(config, role, standing):
        raise NotEligible(standing_refusal(standing, role, "request") + " Nothing was requested.")
    if role not in allowed:
        choices = ", ".join(allowed) if allowed else "none"
        raise NotEligible(
            f"You are not among the requesters of `{role}`. Roles you may request: {choices}."
        )
    environments = config.environments(role)
    if environment not in environments:
        raise UnknownEnvironment(
            f"`{role}` has no environment `{environment}`. "
            f"Choose one of: {', '.join(environments)}."
        )
    duration = parse_requested_duration(config, role, duration_text)
    for target in config.targets.get((role, environment), []):
        shortest = target.shortest_grant()
        if shortest is not None and duration < shortest[0]:
            least = format_duration(shortest[0])
            raise BadDuration(
                f"{shortest[1]}, so `{role}` in `{environment}` cannot be granted for "
                f"{format_duration(duration)}; ask for {least} or more."
            )
    if not reason.strip():
        raise MissingReason(
            "Say why you need access (a ticket or incident id helps the approvers)."
        )
    matched = match_rule(config, role, environment, is_member)
    if matched is None:
        raise NoApprovalRule(
            f"No rule in {config.approvers_file} covers `{role}` in `{environment}` for you; "
            "ask the bot's administrators to add one."
        )
    index, rule = matched
    return RequestCheck(role, environment, duration, reason.strip(), index, rule)


def email_domain(email: str) -> str:
    return email.rpartition("@")[2].lower()


def check_identity(
    email: str, confirmed: bool, allowed_domains: Sequence[str], *, acting: str
) -> None:
    """Raise UnverifiedIdentity unless this Slack email may stand for a cloud principal:
    Slack confirmed it, and its domain is one of ``allowed_domains`` exactly (an empty
    list means no restriction: only allowed with the test-only fake provider). A
    subdomain is not its parent: whoever runs ``eu.example.com`` may not be who runs
    ``example.com``. ``acting`` says what was refused ("request access", "approve")."""
    if not confirmed:
        raise UnverifiedIdentity(
            f"Slack reports your email {email} as unconfirmed, so it cannot name the "
            f"account that gets access; you cannot {acting} until you confirm it "
            "(Slack sends a confirmation link to that address)."
        )
    domain = email_domain(email)
    if allowed_domains and domain not in allowed_domains:
        raise UnverifiedIdentity(
            f"Your Slack email {email} is outside the email domains this bot serves "
            f"({', '.join(allowed_domains)}), so you cannot {acting}. Change your Slack "
            "email to your work address, or ask the bot's administrators."
        )


def same_person(one: Collection[str], other: Collection[str]) -> bool:
    """Whether two sets of principals (an account's email and what each provider maps it
    to, see ``bot.operations.people.principals``) name one cloud identity."""
    return not set(one).isdisjoint(other)


def distinct_approvers(
    approvers: Mapping[str, Collection[str]],
    *,
    requester: str,
    requester_principals: Collection[str],
    allow_self_approval: bool,
) -> int:
    """How many people could cast an approval that counts, from the approvers' accounts
    (Slack id -> principals): accounts of the requester (by id or by principal) only
    where self-approval is allowed, and accounts that share a principal as one person."""
    people: list[set[str]] = []
    for account, principals in approvers.items():
        if not allow_self_approval and (
            account == requester or same_person(principals, requester_principals)
        ):
            continue
        names = set(principals) or {account}
        joined = [person for person in people if not person.isdisjoint(names)]
        for person in joined:
            people.remove(person)
            names |= person
        people.append(names)
    return len(people)


class Refusal(StrEnum):
    NOT_PENDING = "not_pending"
    NOT_AN_APPROVER = "not_an_approver"
    SELF_APPROVAL = "self_approval"
    ALREADY_VOTED = "already_voted"
    EXPIRED = "expired"
    REQUESTERS_PRINCIPAL = "requesters_principal"
    SAME_PRINCIPAL_VOTED = "same_principal_voted"


@dataclass(frozen=True)
class VoteDecision:
    allowed: bool
    refusal: Refusal | None = None


def decide_vote(
    *,
    status: str,
    voter: str,
    requester: str,
    approvers: Collection[str],
    allow_self_approval: bool,
    voted: Collection[str],
    voter_principals: Collection[str] = frozenset(),
    requester_principals: Collection[str] = frozenset(),
    voted_principals: Collection[str] = frozenset(),
    expired: bool = False,
) -> VoteDecision:
    """Whether ``voter`` may approve or deny now. ``approvers`` is the approver set as
    resolved at this moment, not as it was when the request was made.

    People are compared by Slack id and by principal (email after the providers' domain
    mapping): a second Slack account with the requester's email is the requester, and
    one person's accounts cast one vote between them (``voted_principals``: those of
    everyone who voted already). ``expired``: the request has waited longer than
    ``pending_ttl``; a click then must not decide it, even before the sweeper has marked it
    expired."""
    if status != "pending":
        return VoteDecision(False, Refusal.NOT_PENDING)
    if expired:
        return VoteDecision(False, Refusal.EXPIRED)
    if voter == requester and not allow_self_approval:
        return VoteDecision(False, Refusal.SELF_APPROVAL)
    if voter not in approvers:
        return VoteDecision(False, Refusal.NOT_AN_APPROVER)
    if same_person(voter_principals, requester_principals) and not allow_self_approval:
        return VoteDecision(False, Refusal.REQUESTERS_PRINCIPAL)
    if voter in voted:
        return VoteDecision(False, Refusal.ALREADY_VOTED)
    if same_person(voter_principals, voted_principals):
        return VoteDecision(False, Refusal.SAME_PRINCIPAL_VOTED)
    return VoteDecision(True)


REFUSAL_TEXT = {
    Refusal.NOT_PENDING: "This request has already been decided; nothing changed.",
    Refusal.NOT_AN_APPROVER: "You are not an approver of this request; nothing changed.",
    Refusal.SELF_APPROVAL: "You cannot decide your own request; nothing changed.",
    Refusal.ALREADY_VOTED: "You have already voted on this request; nothing changed.",
    Refusal.EXPIRED: (
        "This request expired: nobody decided it within the time allowed, so it can no "
        "longer be approved or denied (the requester can ask again); nothing changed."
    ),
    Refusal.REQUESTERS_PRINCIPAL: "Your Slack account has the same email (the same cloud "
    "identity) as the requester's, so this is your own request: you cannot decide it; "
    "nothing changed.",
    Refusal.SAME_PRINCIPAL_VOTED: "Another Slack account with your email (the same cloud "
    "identity) has already voted on this request, and one person counts once; nothing changed.",
}
