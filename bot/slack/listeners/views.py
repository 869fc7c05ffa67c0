"""Listeners for modal submissions: the request form (checked in the ack, submitted
afterwards) and the deny form."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.clock import Clock
from bot.errors import JitError
from bot.names import Decision
from bot.service import AccessService
from bot.slack import blocks
from bot.slack.listeners.common import (
    direct_message,
    just_ack,
    origin,
    parse_request_id,
    reply_errors,
)


def register(app: App, service: AccessService, clock: Clock) -> None:
    def check_request(ack: Ack, view: dict[str, Any]) -> None:
        # The modal's answer carries its field errors, so the checks that need no lookup
        # are part of the ack; eligibility is checked again, fully, afterwards.
        values = view["state"]["values"]
        try:
            service.check_form(*_submitted(values))
        except JitError as exc:
            ack(
                response_action="errors",
                errors={exc.field or "reason": blocks.field_error(str(exc))},
            )
            return
        ack()

    def request_submitted(body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        user = body["user"]["id"]
        with reply_errors(direct_message(client, user)):
            checked = service.check(user, *_submitted(view["state"]["values"]))
            service.submit(user, checked, origin=origin(body.get("trigger_id")))

    def deny_submitted(body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        user = body["user"]["id"]
        reason = _text(view["state"]["values"], "reason") or None
        tell = direct_message(client, user)
        with reply_errors(tell):
            request_id = parse_request_id(view.get("private_metadata", ""))
            result = service.vote(request_id, user, Decision.DENY, reason)
            tell(blocks.denied(result.request.id))

    app.view(blocks.REQUEST_MODAL)(ack=check_request, lazy=[request_submitted])
    app.view(blocks.DENY_MODAL)(ack=just_ack, lazy=[deny_submitted])


def _submitted(values: dict[str, Any]) -> tuple[str, str, str, str]:
    """Role, environment, duration and reason as the request modal submitted them."""
    return (
        _selected(values, "role", blocks.ROLE_SELECT),
        _selected(values, "environment", "environment"),
        _text(values, "duration"),
        _text(values, "reason"),
    )


def _selected(values: dict[str, Any], block: str, action: str) -> str:
    option = (values.get(block, {}).get(action) or {}).get("selected_option") or {}
    return str(option.get("value") or "")


def _text(values: dict[str, Any], block: str) -> str:
    return str((values.get(block, {}).get(block) or {}).get("value") or "")
