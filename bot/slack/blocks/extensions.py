"""What people see of extending access: the facts approvers decide an extension on (how
long the person has had the access, when it ends now and would end, and whether the
total passes the role's maximum), the Extend form, the buttons on access that may be
extended, and the nudge before access ends."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.durations import format_duration
from bot.extension import REASON_MAX
from bot.slack.blocks.common import (
    BREAK_GLASS_BADGE,
    END_ACCESS,
    EXTEND,
    EXTEND_MODAL,
    duration,
    when,
)
from bot.slack.blocks.section import MarkdownSection
from bot.slack.mrkdwn import inline
from bot.storage.models import AccessRequest, Status

EXTEND_TITLE = "Extend access"


def _until(
    extension: AccessRequest, original: AccessRequest
) -> tuple[timedelta, datetime, datetime]:
    """(the time added, the end before it, the end with it): fixed once the extension is
    applied (its own ``expires_at``), read off the access until then."""
    more = timedelta(seconds=extension.duration_seconds)
    after = extension.expires_at or (original.expires_at or extension.created_at) + more
    return more, after - more, after


def past_maximum(extension: AccessRequest, original: AccessRequest) -> timedelta | None:
    """The role's maximum, if this extension takes the total from the first grant past it."""
    if extension.max_total_seconds is None or original.granted_at is None:
        return None
    maximum = timedelta(seconds=extension.max_total_seconds)
    _, _, after = _until(extension, original)
    return maximum if after - original.granted_at > maximum else None


def facts(extension: AccessRequest, original: AccessRequest) -> list[Block]:
    """What approvers decide an extension on, below the summary of the access."""
    more, before, after = _until(extension, original)
    granted_at = original.granted_at or extension.created_at
    held = format_duration(max(extension.created_at - granted_at, timedelta(0)))
    total = format_duration(after - granted_at)
    lines = [
        f"*Extends* {original.id} by {format_duration(more)}",
        f"*Had it so far* {held}, since {when(granted_at)}",
        f"*Ends* {when(before)}; *if extended* {when(after)}, {total} in all",
    ]
    if original.break_glass:
        incident = inline(original.incident or "", 200)
        lines.append(
            f"{BREAK_GLASS_BADGE} It extends access taken with break-glass, with no "
            f"approval, for incident {incident}."
        )
    blocks: list[Block] = [MarkdownSection("\n".join(lines))]
    maximum = past_maximum(extension, original)
    if maximum is not None:
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(
                    text=f":warning: *Past the role's maximum.* {total} in all is more than "
                    f"`{original.role}` allows ({format_duration(maximum)}): approving this "
                    "extension is an explicit exception to that limit."
                )
            )
        )
    return blocks


def extension_line(extension: AccessRequest) -> str:
    """One line for lists: what the extension asks."""
    return (
        f"• {extension.id} extends {extension.extends} (`{extension.role}` in "
        f"`{extension.environment}`) by {duration(extension)}"
    )


def access_buttons(request: AccessRequest, block_id: str = "access") -> ActionsBlock:
    """Extend and End access now, for the person holding the access (``block_id``: unique
    where several are shown together, as on the Home)."""
    return ActionsBlock(
        block_id=block_id,
        elements=[
            ButtonElement(text="Extend", action_id=EXTEND, value=request.id, style="primary"),
            ButtonElement(
                text="End access now", action_id=END_ACCESS, value=request.id, style="danger"
            ),
        ],
    )


def nudge_message(request: AccessRequest, left: timedelta) -> tuple[str, list[dict[str, Any]]]:
    """The DM shortly before access ends."""
    minutes = max(1, math.ceil(left.total_seconds() / 60))
    until = when(request.expires_at) if request.expires_at else "soon"
    text = (
        f":alarm_clock: {format_duration(timedelta(minutes=minutes))} left: your "
        f"`{request.role}` in `{request.environment}` ({request.id}) ends at {until}."
    )
    blocks: list[Block] = [MarkdownSection(text)]
    if request.status == Status.ACTIVE:
        blocks.append(access_buttons(request))
    return text, [b.to_dict() for b in blocks]


def extend_modal(request: AccessRequest, suggested: timedelta) -> dict[str, Any]:
    """The Extend form: how much longer, and why. The access is named by its id only;
    who may extend it is checked again when the form is sent."""
    until = when(request.expires_at) if request.expires_at else "?"
    view = View(
        type="modal",
        callback_id=EXTEND_MODAL,
        private_metadata=request.id,
        title=PlainTextObject(text=EXTEND_TITLE),
        submit=PlainTextObject(text="Ask"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            SectionBlock(
                text=MarkdownTextObject(
                    text=f"Keep `{request.role}` in `{request.environment}` ({request.id}) "
                    f"longer than {until}."
                )
            ),
            InputBlock(
                block_id="duration",
                label="How much longer",
                hint="For example 30m, 1h or 1h30m.",
                element=PlainTextInputElement(
                    action_id="duration", initial_value=format_duration(suggested), max_length=20
                ),
            ),
            InputBlock(
                block_id="reason",
                label="Why",
                element=PlainTextInputElement(
                    action_id="reason", multiline=True, max_length=REASON_MAX
                ),
            ),
        ],
    )
    return view.to_dict()


def extension_sent(extension: AccessRequest) -> str:
    if extension.auto_approve:
        return f"{extension.id}: approved by rule; extending {extension.extends} now."
    return (
        f"{extension.id}: asked to extend {extension.extends} by {duration(extension)}; "
        "I'll DM you when it is decided."
    )
