"""Pure decisions about breaking the glass: whether this person may take this role in
this environment at once, without approval, for this long, and whether the incident
reference and reason they typed can be recorded and shown. Functions of config and plain
values only, like ``bot.policy``; the quota (a count in the database) is
``bot.quotas.check_break_glass``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from bot.config import BreakGlass, JitConfig
from bot.durations import InvalidDuration, format_duration, parse_duration
from bot.errors import BadDuration, BadIncident, NoBreakGlass, ReasonTooLong
from bot.policy import Membership, RequestCheck, Standing, check_request, match_rule

# What a person types is stored and shown in every alert: long enough for any ticket
# id or incident URL, short enough that no message about it overflows.
INCIDENT_MAX = 100
REASON_MAX = 1000
USAGE = "/jit breakglass <role> <environment> <duration> <incident-ref> <reason…>"


@dataclass(frozen=True)
class BreakGlassCheck:
    """A break-glass that passed every static check: the request as any other request
    would be checked, the incident it is for and the rule's break-glass limits."""

    request: RequestCheck
    incident: str
    allowance: BreakGlass


def check_break_glass(
    config: JitConfig,
    role: str,
    environment: str,
    duration_text: str,
    incident: str,
    reason: str,
    is_member: Membership,
    *,
    standing: Standing,
) -> BreakGlassCheck:
    """Raise the first problem with a break-glass, saying how to fix it."""
    incident = check_incident(incident)
    if len(reason.strip()) > REASON_MAX:
        raise ReasonTooLong(
            f"The reason is {len(reason.strip())} characters long; say it in at most "
            f"{REASON_MAX} (the incident reference points to the details)."
        )
    try:
        checked = check_request(
            config, role, environment, duration_text, reason, is_member, standing=standing
        )
    except BadDuration:
        # Over the role's maximum is over break-glass's too: say the limit that applies.
        allowance = _allowance(config, role, environment, is_member)
        duration = _parsed(duration_text)
        if allowance is None or duration is None or duration <= allowance.max_duration:
            raise
        raise _too_long(role, environment, duration, allowance) from None
    allowance = checked.rule.break_glass
    if allowance is None:
        raise NoBreakGlass(
            f"No rule in {config.approvers_file} allows you to break the glass for "
            f"`{role}` in `{environment}`. Ask for it with `/jit request {role} "
            f"{environment} <duration> <reason…>`, which its approvers decide, or ask the "
            "bot's administrators to add `break_glass` to the rule."
        )
    if checked.duration > allowance.max_duration:
        raise _too_long(role, environment, checked.duration, allowance)
    return BreakGlassCheck(checked, incident, allowance)


def check_incident(text: str) -> str:
    """The incident reference as it is stored and shown, or BadIncident saying the fix."""
    incident = " ".join(text.split())
    if not incident:
        raise BadIncident(f"Name the incident (a ticket id or link such as INC-123): `{USAGE}`.")
    if len(incident) > INCIDENT_MAX:
        raise BadIncident(
            f"The incident reference is {len(incident)} characters long; give one of at "
            f"most {INCIDENT_MAX} (a ticket id or a short link)."
        )
    return incident


def _allowance(
    config: JitConfig, role: str, environment: str, is_member: Membership
) -> BreakGlass | None:
    if role not in config.roles or environment not in config.roles[role].environments:
        return None
    matched = match_rule(config, role, environment, is_member)
    return matched[1].break_glass if matched is not None else None


def _parsed(text: str) -> timedelta | None:
    try:
        return parse_duration(text)
    except InvalidDuration:
        return None


def _too_long(
    role: str, environment: str, duration: timedelta, allowance: BreakGlass
) -> BadDuration:
    limit = format_duration(allowance.max_duration)
    return BadDuration(
        f"Break-glass allows `{role}` in `{environment}` for at most {limit}, not "
        f"{format_duration(duration)}; break it for {limit} or less (ask with "
        "`/jit request` for longer access, which its approvers decide)."
    )
