"""Listeners for modal submissions: the request form (checked in the ack, submitted
afterwards; a request, or a break-glass where its "Kind" says so) and the deny form."""

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
    typed,
)


def register(app: App, service: AccessService, clock: Clock) -> None:
    def check_request(ack: Ack, view: dict[str, Any]) -> None:
        # The modal's answer carries its field errors, so the checks that need no lookup
        # are part of the ack; eligibility is checked again, fully, afterwards.
        values = view["state"]["values"]
        try:
            incident = _incident(values)
            if incident is None:
                service.check_form(*_submitted(values))
            else:
                role, environment, duration, reason = _submitted(values)
                service.check_break_glass_form(role, environment, duration, incident, reason)
        except JitError as exc:
            ack(
                response_action="errors",
                errors={exc.field or "reason": blocks.field_error(str(exc))},
            )
            return
        ack()

    def request_submitted(body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        user = body["user"]["id"]
        values = view["state"]["values"]
        asked = origin(body.get("trigger_id"))
        with reply_errors(direct_message(client, user)):
            incident = _incident(values)
            if incident is None:
                service.submit(user, service.check(user, *_submitted(values)), origin=asked)
                return
            role, environment, duration, reason = _submitted(values)
            glass = service.check_break_glass(user, role, environment, duration, incident, reason)
            service.break_glass(user, glass, origin=asked)

    def deny_submitted(body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        user = body["user"]["id"]
        reason = typed(view["state"]["values"], "reason") or None
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
        typed(values, "duration"),
        typed(values, "reason"),
    )


def _incident(values: dict[str, Any]) -> str | None:
    """The incident typed when the form's "Kind" is "Break glass"; None for a request
    (the form offers no "Kind" where the person may not break the glass)."""
    kind = _selected(values, "kind", "kind") or blocks.REQUEST_KIND
    if kind == blocks.REQUEST_KIND:
        return None
    if kind != blocks.BREAK_GLASS_KIND:
        raise JitError("Choose a request or break-glass.", field="kind")
    return typed(values, "incident")


def _selected(values: dict[str, Any], block: str, action: str) -> str:
    option = (values.get(block, {}).get(action) or {}).get("selected_option") or {}
    return str(option.get("value") or "")
