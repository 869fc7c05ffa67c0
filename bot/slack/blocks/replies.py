"""The short answers to a command, a click or a form, and the words for what went wrong."""

from __future__ import annotations

from collections.abc import Sequence

from bot.names import VoteOutcome
from bot.slack.blocks.common import mentions
from bot.slack.blocks.texts import HELP
from bot.slack.mrkdwn import clip, defuse, escape, inline
from bot.storage.models import AccessRequest

SYNCED = "Caches refreshed: users, groups, accounts and names are read afresh."
NOTHING_TO_REQUEST = "There is no role you may request. `/jit roles` shows who may request what."
# The answer to a payload from outside the installing workspace (bot/slack/workspace.py).
OTHER_WORKSPACE = (
    ":no_entry: jit-bot serves only the Slack workspace it is installed in, and this came "
    "from another workspace or organisation; nothing was done. Ask for access from an "
    "account of that workspace."
)


def refusal(message: str) -> str:
    """A domain error, for the person who caused it. Errors echo what was typed ("no role
    `X`") and what a cloud or Slack answered, so the message is escaped."""
    return f":warning: {escape(message)}"


def incident(incident_id: str) -> str:
    """An unexpected error: the id the person can quote, and that nothing changed."""
    return f":boom: Something went wrong on our side (incident `{incident_id}`); nothing changed."


def field_error(message: str) -> str:
    """A domain error shown under a modal's field (Slack allows 150 characters there)."""
    return clip(escape(message), 150)


def no_such_request(typed: str) -> str:
    """Not escaped here: it reaches the person through ``refusal``, which escapes."""
    return f"There is no request `{defuse(' '.join(typed.split()))[:40]}`."


def unknown_command(words: Sequence[str]) -> str:
    return f"I don't know `/jit {inline(' '.join(words), 60)}`.\n{HELP}"


def request_sent(request: AccessRequest) -> str:
    if request.auto_approve:
        return (
            f"{request.id}: approved by rule; granting `{request.role}` in "
            f"`{request.environment}` now."
        )
    return f"{request.id} sent to {mentions(request.approvers)}. I'll DM you when it is decided."


def break_glass_sent(request: AccessRequest) -> str:
    return (
        f"{request.id}: :rotating_light: `break-glass`: granting `{request.role}` in "
        f"`{request.environment}` now, with no approval; its approvers and the security "
        "channel have been told."
    )


def approval_recorded(request: AccessRequest, outcome: str, approvals: int) -> str:
    if outcome == VoteOutcome.APPROVED:
        return f"Approved {request.id}; granting access now."
    return (
        f"Your approval of {request.id} is recorded ({approvals} of {request.required_approvals})."
    )


def denied(request_id: str) -> str:
    return f"You denied {request_id}."


def ending_access(request_id: str) -> str:
    return f"Ending access for {request_id} now."


def cancelled(request_id: str) -> str:
    return f"Cancelled {request_id}."
