"""What people see of "Request again": the button on a finished request (in ``/jit list``
and the App Home), its line there, and what the request form filled in from it says
about where it differs from that request."""

from __future__ import annotations

from datetime import timedelta

from slack_sdk.models.blocks import ButtonElement

from bot.durations import format_duration
from bot.slack.blocks.common import REQUEST_AGAIN, badge, duration, literal, when
from bot.storage.models import AccessRequest, Status
from bot.templates import Note, RequestTemplate

# How each finished state reads after a request's line.
_FINISHED = {
    Status.REVOKED: "ended",
    Status.DENIED: "denied",
    Status.EXPIRED: "expired without a decision",
    Status.CANCELLED: "cancelled",
    Status.FAILED: "failed",
}


def request_again_button(request_id: str) -> ButtonElement:
    """ "Request again" on a finished request: opens the request form filled in from it.
    The value is the request id only: what fills the form is read from the database
    when it is clicked, and only its requester may."""
    return ButtonElement(text="Request again", action_id=REQUEST_AGAIN, value=request_id)


def finished_line(request: AccessRequest) -> str:
    """One finished request: what it asked for, how it ended and when."""
    ended = _FINISHED.get(Status(request.status), request.status)
    return (
        f"• {request.id} {badge(request)}{literal(request.role)} in "
        f"{literal(request.environment)} for {duration(request)}: {ended} "
        f"{when(request.updated_at)}"
    )


def template_notes(template: RequestTemplate, reason_max: int) -> list[str]:
    """The lines at the top of a form filled in from a finished request: where from, and
    why anything differs from it (``reason_max``: the most the form's reason field takes)."""
    source = template.source
    role, env = literal(source.role), literal(source.environment)
    asked = format_duration(timedelta(seconds=source.duration_seconds))
    texts = {
        Note.ROLE_GONE: f"{role} is no longer a role, so the form shows another: choose "
        "the one you need.",
        Note.ROLE_NOT_YOURS: f"You may no longer request {role}, so the form shows another "
        "role. `/jit roles` shows what you may request.",
        Note.ENVIRONMENT_GONE: f"{role} no longer has the environment {env}: choose one.",
        Note.ENVIRONMENT_NOT_COVERED: f"No rule covers you for {role} in {env} any more: "
        "choose another environment.",
        Note.DURATION_CAPPED: f"{asked} is longer than {role} allows now, so the duration "
        f"is its maximum, {format_duration(template.duration)}.",
    }
    lines = [f"Filled in from {source.id}. Check it, then send it as a new request."]
    lines += [f":warning: {texts[note]}" for note in template.notes]
    if len(template.reason) > reason_max:
        lines.append(
            f":warning: The reason is cut to {reason_max} characters, the most the form takes."
        )
    return lines
