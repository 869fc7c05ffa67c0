"""What approvers are told after the first DM: the reminder of a request that still
waits for them, and that it was escalated, both as threaded replies to that DM; and the
heading of the copy notify-only watchers get."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from bot.durations import format_duration
from bot.slack.blocks.common import mention, mentions
from bot.storage.models import AccessRequest


def reminder_text(request: AccessRequest, waited: timedelta) -> str:
    """The reminder in the thread of an approver's DM."""
    return (
        f":bell: Reminder: {request.id} from {mention(request.requester_id)} "
        f"(`{request.role}` in `{request.environment}`) has waited "
        f"{format_duration(_minutes(waited))} for a decision: the buttons of its DM, or "
        f"`/jit approve {request.id}` / `/jit deny {request.id} &lt;reason&gt;`."
    )


def escalated_text(
    request: AccessRequest, group: str, added: Sequence[str], waited: timedelta
) -> str:
    """Told to the approvers asked first, in the thread of their DM."""
    who = mentions(added, limit=2000) if added else "nobody new (its members were asked already)"
    return (
        f":arrow_up: {request.id} waited {format_duration(_minutes(waited))} undecided, so it "
        f"went to `{group}` too: {who}. Whoever decides first decides."
    )


def escalation_heading(group: str, waited: timedelta) -> str:
    """Above the request, in the DM each member of the escalation group gets."""
    return (
        f":arrow_up: Escalated to you (`{group}`): this request has waited "
        f"{format_duration(_minutes(waited))} for its approvers."
    )


WATCHING = ":eyes: For your information: you are told of this request; its approvers decide it."


def _minutes(waited: timedelta) -> timedelta:
    """Whole minutes: "waited 15m", not "waited 15m 0.2s"."""
    return timedelta(minutes=max(int(waited.total_seconds() // 60), 1))
