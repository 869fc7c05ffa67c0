"""Pure decisions about extending active access: whether this person may ask to keep
this access longer, by how much, and how the extension is decided. Functions of config
and plain values only, like ``bot.policy``; storing and applying an extension is
``bot.operations.extending``.

An extension follows the rule that covers the access now, as a new request would:

- an ``auto_approve`` rule extends without asking anyone;
- a rule's ``extend_without_approval_up_to`` extends by at most that much without asking
  (never a break-glass grant's, which nobody approved in the first place);
- otherwise its approvers decide, N of M, as for any request.

Whatever the rule, the total from the first grant passes the role's ``max_duration``
only when approvers approve that explicitly: such an extension always goes to them, and
is refused where the rule has nobody to ask.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.config import JitConfig
from bot.durations import format_duration
from bot.errors import BadDuration, NotAllowed, ReasonTooLong, WrongState
from bot.policy import Membership, RequestCheck, Standing, check_request
from bot.storage.models import AccessRequest, Status

REASON_MAX = 1000
USAGE = "/jit extend <request-id> <duration> <reason…>"


@dataclass(frozen=True)
class ExtensionCheck:
    """An extension that passed every static check: what it extends, the request as any
    request of that role would be checked (duration, reason, rule), and what it adds up to."""

    original: AccessRequest
    request: RequestCheck
    #: How long the person has held the access when asking.
    held_for: timedelta
    #: From the first grant to the end the extension would give.
    total: timedelta
    #: The total passes the role's max_duration: only approvers may allow it.
    over_maximum: bool
    #: Granted without asking anyone (an auto-approve rule, or within the rule's
    #: ``extend_without_approval_up_to``).
    without_approval: bool


def check_extension(
    config: JitConfig,
    original: AccessRequest,
    requester_id: str,
    duration_text: str,
    reason: str,
    is_member: Membership,
    *,
    standing: Standing,
    now: datetime,
) -> ExtensionCheck:
    """Raise the first problem with extending ``original``, saying how to fix it."""
    check_extendable(original, requester_id, now)
    if len(reason.strip()) > REASON_MAX:
        raise ReasonTooLong(
            f"The reason is {len(reason.strip())} characters long; say it in at most {REASON_MAX}."
        )
    checked = check_request(
        config,
        original.role,
        original.environment,
        duration_text,
        reason,
        is_member,
        standing=standing,
    )
    return decide(config, original, checked, now)


def decide(
    config: JitConfig, original: AccessRequest, checked: RequestCheck, now: datetime
) -> ExtensionCheck:
    """How an extension of ``original`` as it stands now is decided: what it adds up to,
    and whether it goes to approvers. Called again on the access's locked row when the
    extension is stored, so an extension applied meanwhile is counted."""
    expires_at, granted_at = _times(original)
    held_for = now - granted_at
    total = expires_at - granted_at + checked.duration
    maximum = config.roles[original.role].max_duration
    over = total > maximum
    rule = checked.rule
    quick = (
        rule.extend_without_approval_up_to is not None
        and checked.duration <= rule.extend_without_approval_up_to
        and not original.break_glass
    )
    if over and rule.auto_approve:
        room = maximum - (expires_at - granted_at)
        fix = (
            f"ask for {format_duration(room)} or less"
            if room >= timedelta(minutes=1)
            else "ask again with `/jit request` once this access has ended"
        )
        raise BadDuration(
            f"Extending `{original.role}` by {format_duration(checked.duration)} would make "
            f"it {format_duration(total)} in all, past its maximum of "
            f"{format_duration(maximum)}, and its rule approves automatically, so there is "
            f"no approver who could allow that; {fix}."
        )
    return ExtensionCheck(
        original=original,
        request=checked,
        held_for=held_for,
        total=total,
        over_maximum=over,
        without_approval=not over and (rule.auto_approve or quick),
    )


def check_extendable(original: AccessRequest, requester_id: str, now: datetime) -> None:
    """Raise unless ``requester_id`` may ask to extend ``original`` now: their own access,
    active and not yet ended."""
    if requester_id != original.requester_id:
        raise NotAllowed(
            f"Only the person who holds {original.id} can extend it; nothing was requested."
        )
    if original.extends is not None:
        raise WrongState(
            f"{original.id} is itself an extension; extend the access it extended, "
            f"{original.extends}."
        )
    if (
        original.status != Status.ACTIVE
        or original.expires_at is None
        or (original.expires_at <= now)
    ):
        raise WrongState(
            f"{original.id} is {original.status}, not active: only active access can be "
            "extended. Ask again with `/jit request`."
        )


def _times(original: AccessRequest) -> tuple[datetime, datetime]:
    """When the access ends and when it was first granted."""
    if original.expires_at is None or original.granted_at is None:
        raise WrongState(f"{original.id} has no grant time; only active access can be extended.")
    return original.expires_at, original.granted_at
