"""The "who can request what, who approves it" matrix printed by ``jit-bot check``."""

from __future__ import annotations

from bot.config import JitConfig, Rule
from bot.durations import format_duration

HEADER = (
    "ROLE",
    "ENVIRONMENT",
    "REQUESTERS",
    "APPROVERS",
    "APPROVALS",
    "AUTO",
    "MAX",
    "BREAK-GLASS",
)


def matrix_rows(config: JitConfig) -> list[tuple[str, ...]]:
    """One row per role × environment × rule that can apply to it. A rule limited to some
    requesters only shadows later rules for those requesters, so every rule up to and
    including the first unrestricted match can apply; a later row says whom the earlier
    ones took ("members except @dba"). "members" are the workspace's full members: an
    omitted ``requesters`` never means anyone at all."""
    rows: list[tuple[str, ...]] = []
    for name, role in config.roles.items():
        requesters = ", ".join(role.requesters) if role.requesters is not None else "members"
        if role.allow_guests:
            requesters += " (guests too)"
        for env in role.environments:
            taken: list[str] = []
            for rule in _applicable(config, name, env):
                who = requesters
                if rule.requesters is not None:
                    who = f"{requesters} ∩ {', '.join(rule.requesters)}"
                if taken:
                    who += f" except {', '.join(taken)}"
                taken += [e for e in rule.requesters or () if e not in taken]
                rows.append(
                    (
                        name,
                        env,
                        who,
                        _approvers(config, rule),
                        "-" if rule.auto_approve else str(rule.required_approvals),
                        "yes" if rule.auto_approve else "no",
                        format_duration(role.max_duration),
                        _break_glass(rule),
                    )
                )
    return rows


def _applicable(config: JitConfig, role: str, env: str) -> list[Rule]:
    rules = []
    for rule in config.rules:
        if rule.matches(role, env):
            rules.append(rule)
            if rule.requesters is None:
                break
    return rules


def _approvers(config: JitConfig, rule: Rule) -> str:
    if rule.auto_approve:
        return "(auto-approved)"
    quiet = set(rule.quiet_groups)
    groups = [
        f"{g}{' (quiet)' if g in quiet else ''} ({', '.join(config.groups[g])})"
        for g in rule.approver_groups
    ]
    suffix = "; self-approval allowed" if config.allows_self_approval(rule) else ""
    return "; ".join(groups) + suffix


def _break_glass(rule: Rule) -> str:
    """Where break-glass is allowed: its own maximum and how often per person."""
    if rule.break_glass is None:
        return "-"
    allowed = rule.break_glass
    return f"up to {format_duration(allowed.max_duration)}, {allowed.per_person_per_day}/day"


def render_matrix(config: JitConfig) -> str:
    rows = [HEADER, *matrix_rows(config)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
