"""Who hears of a pending request besides the approvers' DMs, and when they hear again:
the rule's quiet approvers (they may decide, and get no DM), its notify-only watchers
(told, without buttons), when the approvers are first reminded and when the request is
escalated. Worked out once, when the request is stored; the reminders and the escalation
are then driven from the database (bot/operations/reminding.py, escalating.py)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from bot.config import Rule
from bot.operations import people
from bot.operations.context import Context


def follow_up(
    ctx: Context,
    rule: Rule,
    role: str,
    requester_id: str,
    approvers: Collection[str],
    now: datetime,
) -> dict[str, Any]:
    """The columns of a new pending request that say who else hears of it, and when."""
    asked = set(approvers)
    loud = [group for group in rule.approver_groups if group not in rule.quiet_groups]
    # Someone in a quiet group and in a loud one is asked: being named loudly wins.
    quiet = people.members(ctx, rule.quiet_groups, role) - people.members(ctx, loud, role)
    watchers = people.members(ctx, rule.notify, role) - asked - {requester_id}
    remind = rule.remind_after
    escalate = rule.escalate_after if rule.escalate_to is not None else None
    return {
        "quiet_approvers": sorted(quiet & asked),
        "watchers": sorted(watchers),
        "reminded_at": now if remind is not None else None,
        "next_reminder_at": now + remind if remind is not None else None,
        "escalate_at": now + escalate if escalate is not None else None,
    }
