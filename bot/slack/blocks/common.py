"""What every message and modal shares: the ids Slack sends back when a button is clicked
or a form submitted, and the small formatting helpers (mentions, times, durations)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.durations import format_duration
from bot.slack.mrkdwn import escape
from bot.storage.models import AccessRequest

# Slack action ids and view callback ids: the listeners register on these.
APPROVE = "approve"
DENY = "deny"
END_ACCESS = "end_access"
EXTEND = "extend"
EXTEND_MODAL = "jit_extend"
REQUEST_MODAL = "jit_request"
REQUEST_AGAIN = "request_again"
DENY_MODAL = "jit_deny"
ROLE_SELECT = "role"
REVIEW_JUSTIFIED = "review_justified"
REVIEW_NOT_JUSTIFIED = "review_not_justified"
REVIEW_MODAL = "jit_review"

# What marks a break-glass request wherever it is shown.
BREAK_GLASS_BADGE = ":rotating_light: `break-glass`"


def badge(request: AccessRequest) -> str:
    """The break-glass badge and a space, or nothing for any other request."""
    return BREAK_GLASS_BADGE + " " if request.break_glass else ""


def mention(user_id: str) -> str:
    return f"<@{user_id}>"


def when(moment: datetime) -> str:
    """A time every reader sees in their own time zone (ISO UTC as the fallback)."""
    iso = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{iso}>"


def duration(request: AccessRequest) -> str:
    return format_duration(timedelta(seconds=request.duration_seconds))


def one_line(text: str) -> str:
    return escape(" ".join(text.splitlines()))


def literal(text: str) -> str:
    """Text from Slack profiles or clouds, shown as code and never as markup."""
    return "`" + escape(text).replace("`", "'") + "`"


def mentions(users: Sequence[str], limit: int = 2500) -> str:
    """Mentions of ``users``, as many as fit in ``limit`` characters (Slack refuses a
    text over 3,000, and the line around them needs room too), then how many more there
    are: a request to a large approver group is still asked and told."""
    shown: list[str] = []
    length = 0
    for user in users:
        more = mention(user)
        if length + len(more) + 2 > limit:
            return ", ".join(shown) + f" and {len(users) - len(shown)} more"
        shown.append(more)
        length += len(more) + 2
    return ", ".join(shown)
