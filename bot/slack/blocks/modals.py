"""The modals: the request form (empty, or filled in from a finished request), the deny
form, and what a modal shows while it loads or when it cannot show its form."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from slack_sdk.models.blocks import (
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.break_glass import INCIDENT_MAX
from bot.durations import format_duration
from bot.slack.blocks.again import template_notes
from bot.slack.blocks.common import DENY_MODAL, REQUEST_MODAL, ROLE_SELECT
from bot.slack.blocks.section import MarkdownSection
from bot.slack.mrkdwn import clip
from bot.templates import RequestTemplate

REQUEST_TITLE = "Request access"
# The request modal's "Kind" choices (offered where the person may break the glass).
REQUEST_KIND = "request"
BREAK_GLASS_KIND = "break_glass"
DENY_TITLE = "Deny request"

_SELECT_OPTIONS_MAX = 100  # Slack's limit for a static select
REASON_MAX = 1000  # what the request form's reason field takes


def loading_modal(title: str) -> dict[str, Any]:
    """What a modal shows from the moment it opens until its lookups are done: Slack gives
    a trigger_id 3 s, lookups may take longer. No submit: there is nothing to send yet."""
    return View(
        type="modal",
        title=PlainTextObject(text=title),
        close=PlainTextObject(text="Close"),
        blocks=[MarkdownSection(":hourglass_flowing_sand: Loading…")],
    ).to_dict()


def notice_modal(title: str, text: str) -> dict[str, Any]:
    """A modal that only says something (`text` is mrkdwn, escaped by the caller): why the
    form it was opened for cannot be shown, and what to do."""
    return View(
        type="modal",
        title=PlainTextObject(text=title),
        close=PlainTextObject(text="Close"),
        blocks=[MarkdownSection(clip(text, 3000))],
    ).to_dict()


def _role_input(roles: Sequence[tuple[str, str]], role: str) -> InputBlock:
    """The role select; choosing a role re-renders the modal (``dispatch_action``). Past
    Slack's 100 options the chosen role and the first others are offered, and the hint
    says how to ask for the rest."""
    shown = [r for r in roles if r[0] == role] + [r for r in roles if r[0] != role]
    shown = sorted(shown[:_SELECT_OPTIONS_MAX], key=roles.index)
    options = [
        Option(value=name, text=f"{name}: {description}"[:75] if description else name)
        for name, description in shown
    ]
    more_roles = (
        f"{len(roles) - len(shown)} more roles are not listed here. /jit roles lists them "
        "all; /jit request <role> <environment> <duration> <reason> asks for any of them."
        if len(roles) > len(shown)
        else None
    )
    return InputBlock(
        block_id="role",
        label="Role",
        hint=more_roles,
        dispatch_action=True,
        element=StaticSelectElement(
            action_id=ROLE_SELECT,
            options=options,
            initial_option=next(o for o in options if o.value == role),
        ),
    )


def _environment_input(environments: Sequence[str], chosen: str | None) -> InputBlock:
    """The environment select, with ``chosen`` chosen (None: none, for the person to choose)."""
    options = [Option(value=env, text=env) for env in environments[:_SELECT_OPTIONS_MAX]]
    return InputBlock(
        block_id="environment",
        label="Environment",
        element=StaticSelectElement(
            action_id="environment",
            options=options,
            initial_option=next((o for o in options if o.value == chosen), None),
        ),
    )


def request_modal(
    roles: Sequence[tuple[str, str]],
    role: str,
    environments: Sequence[str],
    default_duration: timedelta,
    max_duration: timedelta,
    break_glass: Sequence[str] = (),
    template: RequestTemplate | None = None,
) -> dict[str, Any]:
    """The /jit request modal. Choosing a role re-renders it with that role's choices.

    A select holds at most 100 options in Slack: past that the chosen role and the first
    others are offered, and the hint says how to ask for the rest. Where a rule lets the
    person break the glass for the role (in the environments ``break_glass``), the form
    offers it too, with the incident it needs. Filled in from a finished request
    (``template``, "Request again"), it opens with that request's environment, duration
    and reason, and says where it differs from it."""
    chosen = template.environment if template else environments[0]
    view = View(
        type="modal",
        callback_id=REQUEST_MODAL,
        title=PlainTextObject(text=REQUEST_TITLE),
        submit=PlainTextObject(text="Request"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            *(_notes(template) if template else []),
            _role_input(roles, role),
            _environment_input(environments, chosen),
            InputBlock(
                block_id="duration",
                label="Duration",
                hint=f"For example 30m, 2h or 1h30m; at most {format_duration(max_duration)}.",
                element=PlainTextInputElement(
                    action_id="duration",
                    initial_value=format_duration(
                        template.duration if template else default_duration
                    ),
                ),
            ),
            InputBlock(
                block_id="reason",
                label="Reason",
                hint="A ticket or incident id helps the approvers.",
                element=PlainTextInputElement(
                    action_id="reason",
                    multiline=True,
                    max_length=REASON_MAX,
                    # Plain text in an input: shown as typed, never read as mrkdwn.
                    initial_value=template.reason[:REASON_MAX] if template else None,
                ),
            ),
            *(_break_glass_inputs(break_glass) if break_glass else []),
        ],
    )
    return view.to_dict()


def _notes(template: RequestTemplate) -> list[SectionBlock]:
    """Where the form was filled in from, and why it differs from that request."""
    text = "\n".join(template_notes(template, REASON_MAX))
    return [SectionBlock(block_id="again", text=MarkdownTextObject(text=clip(text, 3000)))]


def _break_glass_inputs(environments: Sequence[str]) -> list[InputBlock]:
    """ "Break glass" as the kind of request, and the incident it must name."""
    where = ", ".join(environments)
    kinds = [
        Option(value=REQUEST_KIND, text="Request: its approvers decide"),
        Option(value=BREAK_GLASS_KIND, text="Break glass: now, with no approval"),
    ]
    return [
        InputBlock(
            block_id="kind",
            label="Kind",
            hint=clip(
                f"Break the glass only during an incident (allowed here in {where}): the "
                "approvers and the security channel are told at once, and it is reviewed "
                "afterwards.",
                2000,
            ),
            element=StaticSelectElement(action_id="kind", options=kinds, initial_option=kinds[0]),
        ),
        InputBlock(
            block_id="incident",
            label="Incident (required to break the glass)",
            hint="A ticket id or link, such as INC-123.",
            optional=True,
            element=PlainTextInputElement(action_id="incident", max_length=INCIDENT_MAX),
        ),
    ]


def deny_modal(request_id: str) -> dict[str, Any]:
    view = View(
        type="modal",
        callback_id=DENY_MODAL,
        private_metadata=request_id,
        title=PlainTextObject(text=DENY_TITLE),
        submit=PlainTextObject(text="Deny"),
        close=PlainTextObject(text="Back"),
        blocks=[
            MarkdownSection(f"Deny request *{request_id}*?"),
            InputBlock(
                block_id="reason",
                label="Reason (optional, shown to the requester)",
                optional=True,
                element=PlainTextInputElement(action_id="reason", multiline=True, max_length=500),
            ),
        ],
    )
    return view.to_dict()
