"""The Home tab: my access with Extend and End access now, my pending requests with
Cancel, what waits for my decision with Approve and Deny, my recent requests with
"Request again", and for admins everyone's active access and the break-glass uses to
review. Pure functions of what ``bot.operations.home`` reads.

Every button carries a request id only, as on the DMs (the same action ids), and is
checked against the database when clicked. Each section shows a few rows, then how many
more there are, so the Home stays within Slack's 100 blocks with room for more sections.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.durations import format_duration
from bot.operations.home import Home, Review
from bot.slack.blocks.again import request_again_button
from bot.slack.blocks.common import (
    APPROVE,
    DENY,
    REVIEW_JUSTIFIED,
    REVIEW_NOT_JUSTIFIED,
    badge,
    duration,
    mention,
    mentions,
    when,
)
from bot.slack.blocks.extensions import access_buttons
from bot.slack.blocks.section import MarkdownSection
from bot.slack.mrkdwn import clip, inline, quote
from bot.storage.models import AccessRequest, Status

# The action id of the Home's own Cancel button.
CANCEL_REQUEST = "cancel_request"

# Rows shown per section (so a Home takes at most 79 of Slack's 100 blocks).
ACCESS_ROWS = 5  # two blocks each
PENDING_ROWS = 10
AWAITING_ROWS = 10  # two blocks each
EVERYONE_ROWS = 10
REVIEW_ROWS = 5  # two blocks each

#: The blocks of one request's row.
Row = Callable[[AccessRequest], list[Block]]

_FINISHED = {
    Status.REVOKED: "ended",
    Status.DENIED: "denied",
    Status.EXPIRED: "expired without a decision",
    Status.CANCELLED: "cancelled",
    Status.FAILED: "failed",
}
_UNDER_WAY = {
    Status.APPROVED: "approved; being granted",
    Status.GRANTING: "being granted",
    Status.REVOKING: "being removed",
    Status.REVOKE_FAILED: "removing it FAILED; the bot keeps retrying",
}


def home_view(home: Home, admin: Sequence[Block]) -> dict[str, Any]:
    """One person's Home, what their last click on it did at the top; ``admin``: the
    admins' sections (empty for anyone else)."""
    blocks: list[Block] = []
    if home.notice:
        blocks.append(_text(home.notice))
    blocks += [
        *_section("Your access", home.access, ACCESS_ROWS, lambda r: _access(r, home.now)),
        *_section("Your pending requests", home.pending, PENDING_ROWS, _pending),
        *_section("Waiting for your decision", home.awaiting, AWAITING_ROWS, _awaiting),
        *_section("Recent requests", home.recent, len(home.recent), _recent),
        ContextBlock(
            elements=[MarkdownTextObject(text="Ask for access with `/jit request`; `/jit help`.")]
        ),
    ]
    if admin:
        blocks += [DividerBlock(), *admin]
    return View(type="home", blocks=blocks).to_dict()


def everyone_active(requests: Sequence[AccessRequest]) -> list[Block]:
    """Admins: everyone's access held now, by role and environment: who, and until when."""
    blocks: list[Block] = [_header("Everyone's active access")]
    shown = requests[:EVERYONE_ROWS]
    for (role, environment), group in groupby(shown, key=lambda r: (r.role, r.environment)):
        lines = [f"*`{role}` in `{environment}`*", *(_holder(r) for r in group)]
        blocks.append(_text("\n".join(lines)))
    if not requests:
        blocks.append(_nothing())
    return blocks + _rest(len(requests), len(shown), "")


def reviews_waiting(reviews: Sequence[Review], viewer: str) -> list[Block]:
    """Admins: break-glass uses nobody has reviewed yet, with the review buttons where
    the viewer is one of its reviewers."""
    blocks: list[Block] = [_header("Break-glass uses to review")]
    shown = reviews[:REVIEW_ROWS]
    for review in shown:
        blocks.append(_use(review))
        request = review.request
        if viewer in review.reviewers:
            blocks.append(
                ActionsBlock(
                    block_id=f"review:{request.id}",
                    elements=[
                        ButtonElement(
                            text="Justified", action_id=REVIEW_JUSTIFIED, value=request.id
                        ),
                        ButtonElement(
                            text="Not justified",
                            action_id=REVIEW_NOT_JUSTIFIED,
                            value=request.id,
                            style="danger",
                        ),
                    ],
                )
            )
    if not reviews:
        blocks.append(_nothing())
    return blocks + _rest(len(reviews), len(shown), "")


def _section(title: str, rows: Sequence[AccessRequest], limit: int, row: Row) -> list[Block]:
    """A heading, up to ``limit`` rows (each ``row(request)``'s blocks), and the rest
    counted."""
    blocks: list[Block] = [_header(title)]
    for request in rows[:limit]:
        blocks += row(request)
    if not rows:
        blocks.append(_nothing())
    return blocks + _rest(len(rows), limit, " `/jit list` shows them all.")


def _header(title: str) -> HeaderBlock:
    return HeaderBlock(text=PlainTextObject(text=title))


def _nothing() -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text="Nothing right now.")])


def _rest(count: int, shown: int, hint: str) -> list[Block]:
    if count <= shown:
        return []
    return [ContextBlock(elements=[MarkdownTextObject(text=f"…and {count - shown} more.{hint}")])]


def _text(text: str) -> SectionBlock:
    return MarkdownSection(clip(text, 3000))


def _what(request: AccessRequest) -> str:
    """``R-… `role` in `env` for 1h``, or what an extension adds to the access it extends."""
    if request.extends:
        return (
            f"*{request.id}* extends {request.extends} (`{request.role}` in "
            f"`{request.environment}`) by {duration(request)}"
        )
    return (
        f"{badge(request)}*{request.id}* `{request.role}` in `{request.environment}` "
        f"for {duration(request)}"
    )


def _access(request: AccessRequest, now: datetime) -> list[Block]:
    if request.status != Status.ACTIVE:
        state = _UNDER_WAY.get(Status(request.status), request.status)
        return [_text(f"{_what(request)}: {state}.")]
    if request.expires_at is None:  # the domain sets both at once; say so, never guess
        return [_text(f"{_what(request)}: active, with no end time; ask an admin to look.")]
    left = format_duration(_minutes(request.expires_at - now))
    text = f"{_what(request)}: *{left} left*, until {when(request.expires_at)}."
    return [_text(text), access_buttons(request, block_id=f"access:{request.id}")]


def _pending(request: AccessRequest) -> list[Block]:
    waiting = mentions(request.approvers, limit=1000) or "nobody"
    return [
        SectionBlock(
            text=MarkdownTextObject(text=clip(f"{_what(request)}, waiting for {waiting}.", 3000)),
            accessory=ButtonElement(
                text="Cancel", action_id=CANCEL_REQUEST, value=request.id, style="danger"
            ),
        )
    ]


def _awaiting(request: AccessRequest) -> list[Block]:
    asks = f"{mention(request.requester_id)} asks: {_what(request)}, because:"
    return [
        _text(f"{asks}\n{quote(request.reason, 1500)}"),
        ActionsBlock(
            block_id=f"decide:{request.id}",
            elements=[
                ButtonElement(text="Approve", action_id=APPROVE, value=request.id, style="primary"),
                ButtonElement(text="Deny", action_id=DENY, value=request.id, style="danger"),
            ],
        ),
    ]


def _recent(request: AccessRequest) -> list[Block]:
    finished = _FINISHED.get(Status(request.status), request.status)
    return [
        SectionBlock(
            text=MarkdownTextObject(
                text=f"{_what(request)}: {finished} {when(request.updated_at)}."
            ),
            accessory=request_again_button(request.id),
        )
    ]


def _holder(request: AccessRequest) -> str:
    until = when(request.expires_at) if request.expires_at else "?"
    failing = " (removing it FAILED; retrying)" if request.status == Status.REVOKE_FAILED else ""
    return (
        f"• {badge(request)}{mention(request.requester_id)} until {until} ({request.id}){failing}"
    )


def _use(review: Review) -> SectionBlock:
    request = review.request
    incident = inline(request.incident or "", 200)
    return _text(
        f"{mention(request.requester_id)} broke the glass for `{request.role}` in "
        f"`{request.environment}` for {duration(request)} at {when(request.created_at)}, "
        f"incident {incident} ({request.id}); to be reviewed by "
        f"{mentions(review.reviewers, limit=1000) or 'nobody'}:\n{quote(request.reason, 1000)}"
    )


def _minutes(left: timedelta) -> timedelta:
    """Time left, in whole minutes rounded up (nothing left shows as none)."""
    return timedelta(minutes=max(0, math.ceil(left.total_seconds() / 60)))
