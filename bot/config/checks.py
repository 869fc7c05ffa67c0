"""Cross-checks that need more than one model: defaults within limits, targets that
can end in time, groups and roles that exist, a rule for every role and environment,
the email domains a provider that grants real access needs, targets that tell those
domains' people apart, and break-glass within
the roles' limits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import yaml

from bot.config.issues import ConfigIssue, Loc
from bot.config.messages import line_of, suggest
from bot.config.models import ApproversFile, RolesFile, Rule, Settings
from bot.durations import format_duration
from providers.base import TargetSpec

# Providers that hand out nothing real (tests, demos): no email domain restriction needed.
_NO_REAL_ACCESS = frozenset({"fake"})


def check_roles(roles: RolesFile, file: str, node: yaml.Node | None) -> list[ConfigIssue]:
    issues = []
    for name, role in roles.roles.items():
        if role.default_duration is not None and role.default_duration > role.max_duration:
            loc: Loc = ("roles", name, "default_duration")
            limit = format_duration(role.max_duration)
            issues.append(
                ConfigIssue(
                    file,
                    loc,
                    f"{format_duration(role.default_duration)} is longer than max_duration "
                    f"{limit}; expected at most {limit}",
                    line_of(node, loc),
                )
            )
    return issues


def check_shortest_grants(
    roles: RolesFile,
    targets: Mapping[tuple[str, str], list[TargetSpec]],
    file: str,
    node: yaml.Node | None,
) -> list[ConfigIssue]:
    """A target that cannot end access as soon as its role's max_duration would hold it
    longer than approvers were told."""
    issues = []
    for (role_name, env), parsed in targets.items():
        role = roles.roles.get(role_name)
        for i, target in enumerate(parsed):
            shortest = target.shortest_grant()
            if role is None or shortest is None or role.max_duration >= shortest[0]:
                continue
            loc: Loc = ("roles", role_name, "environments", env, i)
            least = format_duration(shortest[0])
            issues.append(
                ConfigIssue(
                    file,
                    loc,
                    f"{shortest[1]}, but the role's max_duration is "
                    f"{format_duration(role.max_duration)}; expected a max_duration of at "
                    f"least {least} (or a target that can end sooner)",
                    line_of(node, loc),
                )
            )
    return issues


def check_groups(approvers: ApproversFile, file: str, node: yaml.Node | None) -> list[ConfigIssue]:
    """Every group a rule names (to approve, to be told, to escalate to) is defined, and
    an escalation can happen before its requests expire."""
    issues = []
    groups = sorted(approvers.groups)
    expected = (
        f"one of: {', '.join(groups)}"
        if groups
        else "a group defined under 'groups' (none are defined)"
    )

    def add(loc: Loc, message: str) -> None:
        issues.append(ConfigIssue(file, loc, message, line_of(node, loc)))

    for r, rule in enumerate(approvers.rules):
        for loc, group in _named_groups(r, rule):
            if group not in approvers.groups:
                add(loc, f"unknown group '{group}'{suggest(group, groups)}; expected {expected}")
        ttl = approvers.settings.pending_ttl
        remind = rule.remind_after
        if "remind_after" in rule.model_fields_set and remind is not None and remind >= ttl:
            add(
                ("rules", r, "remind_after"),
                f"{format_duration(remind)} is not shorter than settings.pending_ttl "
                f"({format_duration(ttl)}), so no reminder would ever be sent; expected less "
                f"than {format_duration(ttl)}, or null for no reminders",
            )
        if rule.escalate_after is not None and rule.escalate_after >= ttl:
            add(
                ("rules", r, "escalate_after"),
                f"{format_duration(rule.escalate_after)} is not shorter than settings."
                f"pending_ttl ({format_duration(ttl)}), so no request would ever be "
                f"escalated; expected less than {format_duration(ttl)}",
            )
    return issues


def _named_groups(r: int, rule: Rule) -> list[tuple[Loc, str]]:
    named: list[tuple[Loc, str]] = []
    for i, entry in enumerate(rule.approvers):
        if isinstance(entry, str):
            named.append((("rules", r, "approvers", i), entry))
        else:
            named.append((("rules", r, "approvers", i, "group"), entry.group))
    named += [(("rules", r, "notify", i), group) for i, group in enumerate(rule.notify)]
    if rule.escalate_to is not None:
        named.append((("rules", r, "escalate_to"), rule.escalate_to))
    return named


def cross_check(
    roles: RolesFile,
    approvers: ApproversFile,
    rfile: str,
    afile: str,
    anode: yaml.Node | None,
    rnode: yaml.Node | None,
) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []

    def add(file: str, node: yaml.Node | None, loc: Loc, message: str) -> None:
        issues.append(ConfigIssue(file, loc, message, line_of(node, loc)))

    all_envs = sorted({env for role in roles.roles.values() for env in role.environments})
    for r, rule in enumerate(approvers.rules):
        for i, role in enumerate(rule.roles):
            if role != "*" and role not in roles.roles:
                add(
                    afile,
                    anode,
                    ("rules", r, "roles", i),
                    f"unknown role '{role}'{suggest(role, list(roles.roles))}; "
                    f"expected '*' or one of: {', '.join(roles.roles)}",
                )
        for i, env in enumerate(rule.environments):
            if env != "*" and env not in all_envs:
                add(
                    afile,
                    anode,
                    ("rules", r, "environments", i),
                    f"unknown environment '{env}'{suggest(env, all_envs)}; "
                    f"expected '*' or one of: {', '.join(all_envs)}",
                )
    for role_name, role_spec in roles.roles.items():
        for env in role_spec.environments:
            if not any(rule.matches(role_name, env) for rule in approvers.rules):
                add(
                    rfile,
                    rnode,
                    ("roles", role_name, "environments", env),
                    f"no rule in {afile} can approve role '{role_name}' in '{env}'; expected "
                    "a rule whose roles and environments match it (or '*')",
                )
    return issues


def check_email_domains(
    targets: Mapping[tuple[str, str], Sequence[TargetSpec]],
    settings: Settings,
    rfile: str,
    afile: str,
    anode: yaml.Node | None,
) -> list[ConfigIssue]:
    """A provider that grants real access needs ``settings.allowed_email_domains``."""
    if settings.allowed_email_domains:
        return []
    real = sorted({t.provider for units in targets.values() for t in units} - _NO_REAL_ACCESS)
    if not real:
        return []
    loc: Loc = ("settings", "allowed_email_domains")
    return [
        ConfigIssue(
            afile,
            loc,
            f"is required because {rfile} grants access through {', '.join(real)}: the "
            "Slack email names the cloud user, so only emails of your own domains may "
            "be served; expected a list of email domains, for example "
            "allowed_email_domains: [example.com]",
            line_of(anode, loc),
        )
    ]


def check_identities(
    targets: Mapping[tuple[str, str], Sequence[TargetSpec]],
    settings: Settings,
    file: str,
    node: yaml.Node | None,
) -> list[ConfigIssue]:
    """Each target tells apart the people of every allowed email domain: two people must
    never become one cloud user."""
    issues = []
    for (role_name, env), parsed in targets.items():
        for i, target in enumerate(parsed):
            problem = target.identity_problem(settings.allowed_email_domains)
            if problem is not None:
                loc: Loc = ("roles", role_name, "environments", env, i)
                issues.append(ConfigIssue(file, loc, problem, line_of(node, loc)))
    return issues


def check_break_glass(
    roles: RolesFile, approvers: ApproversFile, afile: str, anode: yaml.Node | None
) -> list[ConfigIssue]:
    """Break-glass never grants longer than a role allows at all: its max_duration is at
    most that of every role its rule covers in one of the rule's environments."""
    issues = []
    for r, rule in enumerate(approvers.rules):
        if rule.break_glass is None:
            continue
        limit = rule.break_glass.max_duration
        covered = [
            (name, role.max_duration)
            for name, role in roles.roles.items()
            if ("*" in rule.roles or name in rule.roles)
            and ("*" in rule.environments or set(role.environments) & set(rule.environments))
        ]
        shorter = [(name, most) for name, most in covered if most < limit]
        if not shorter:
            continue
        name, most = min(shorter, key=lambda pair: pair[1])
        loc: Loc = ("rules", r, "break_glass", "max_duration")
        issues.append(
            ConfigIssue(
                afile,
                loc,
                f"{format_duration(limit)} is longer than role '{name}' allows "
                f"(max_duration {format_duration(most)}); expected at most "
                f"{format_duration(most)}",
                line_of(anode, loc),
            )
        )
    return issues
