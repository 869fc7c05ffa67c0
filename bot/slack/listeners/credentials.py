"""The "Show credentials" button of a grant with generated database passwords: checked
against the database at the click (the clicker's own active access), answered with the
fresh credentials ephemerally, in the conversation, seen by the clicker only. The
button carries only the request id; the password is never posted, logged or stored."""

from __future__ import annotations

from typing import Any

from slack_bolt import App, Respond

from bot.clock import Clock
from bot.service import AccessService
from bot.slack import blocks
from bot.slack.listeners.common import (
    ephemeral,
    ephemeral_blocks,
    just_ack,
    parse_request_id,
    reply_errors,
)


def register(app: App, service: AccessService, clock: Clock) -> None:
    def show(body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        with reply_errors(ephemeral(respond)):
            request_id = parse_request_id(action.get("value", ""))
            request, shown = service.show_credentials(request_id, body["user"]["id"])
            ephemeral_blocks(respond)(*blocks.credentials_message(request, shown))

    app.action(blocks.SHOW_CREDENTIALS)(ack=just_ack, lazy=[show])
