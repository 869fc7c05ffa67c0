"""Listeners for extending access: the Extend button (on the "Access granted" DM and the
nudge before access ends) opens the Extend form once the clicker is checked against the
database, and the form's submission asks for the extension, checked again. The button
and the form carry only the request id: neither decides who may extend what."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.clock import Clock
from bot.errors import JitError
from bot.service import AccessService
from bot.slack import blocks
from bot.slack.listeners.common import (
    checked_modal,
    direct_message,
    ephemeral,
    just_ack,
    origin,
    parse_request_id,
    reply_errors,
    typed,
)
from bot.slack.loading import LoadingModal


def register(app: App, service: AccessService, clock: Clock) -> None:
    def clicked(
        body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        tell = ephemeral(respond)
        with reply_errors(tell):
            request_id = parse_request_id(action.get("value", ""))

            def fill(modal: LoadingModal) -> None:
                access = service.can_extend(request_id, body["user"]["id"])
                suggested = service.config.roles[access.role].effective_default
                modal.show(blocks.extend_modal(access, suggested))

            checked_modal(client, body["trigger_id"], blocks.EXTEND_TITLE, tell, fill)

    def check_form(ack: Ack, view: dict[str, Any]) -> None:
        # The form's answer carries its field errors; the rest is checked afterwards.
        duration, reason = _submitted(view)
        try:
            service.check_extension_form(duration, reason)
        except JitError as exc:
            field = exc.field if exc.field in ("duration", "reason") else "reason"
            ack(response_action="errors", errors={field: blocks.field_error(str(exc))})
            return
        ack()

    def submitted(body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        user = body["user"]["id"]
        tell = direct_message(client, user)
        with reply_errors(tell):
            request_id = parse_request_id(view.get("private_metadata", ""))
            asked = _submitted(view)
            checked = service.check_extension(user, request_id, *asked)
            # The form has closed; the bot's DM about the extension says it was sent.
            service.extend(user, checked, origin=origin(body.get("trigger_id")))

    app.action(blocks.EXTEND)(ack=just_ack, lazy=[clicked])
    app.view(blocks.EXTEND_MODAL)(ack=check_form, lazy=[submitted])


def _submitted(view: dict[str, Any]) -> tuple[str, str]:
    """How much longer and why, as the Extend form submitted them."""
    values = (view.get("state") or {}).get("values") or {}
    return typed(values, "duration"), typed(values, "reason")
