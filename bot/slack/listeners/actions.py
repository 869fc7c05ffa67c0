"""Listeners for buttons and selects: approve, deny (which opens the deny modal), end
access, and a role chosen in the request modal (which re-renders it)."""

from __future__ import annotations

from typing import Any

from slack_bolt import App, Respond
from slack_sdk import WebClient

from bot.clock import Clock
from bot.names import Decision
from bot.service import AccessService
from bot.slack import blocks
from bot.slack.listeners.common import (
    checked_modal,
    ephemeral,
    just_ack,
    parse_request_id,
    reply_errors,
    request_form,
)
from bot.slack.loading import LoadingModal


def register(app: App, service: AccessService, clock: Clock) -> None:
    def role_chosen(body: dict[str, Any], client: WebClient) -> None:
        user = body["user"]["id"]
        view = body["view"]
        role = body["actions"][0]["selected_option"]["value"]
        roles = service.requestable(user)
        if role not in dict(roles):
            return
        client.views_update(
            view_id=view["id"], hash=view.get("hash"), view=request_form(service, roles, role, user)
        )

    def approve(body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        tell = ephemeral(respond)
        with reply_errors(tell):
            request_id = parse_request_id(action.get("value", ""))
            result = service.vote(request_id, body["user"]["id"], Decision.APPROVE)
            tell(blocks.approval_recorded(result.request, result.outcome, result.approvals))

    def deny(
        body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        tell = ephemeral(respond)
        with reply_errors(tell):
            request_id = parse_request_id(action.get("value", ""))

            def fill(modal: LoadingModal) -> None:
                service.can_decide(request_id, body["user"]["id"])
                modal.show(blocks.deny_modal(request_id))

            checked_modal(client, body["trigger_id"], blocks.DENY_TITLE, tell, fill)

    def end_access(body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        tell = ephemeral(respond)
        with reply_errors(tell):
            request_id = parse_request_id(action.get("value", ""))
            request = service.end_early(request_id, body["user"]["id"])
            tell(blocks.ending_access(request.id))

    app.action(blocks.ROLE_SELECT)(ack=just_ack, lazy=[role_chosen])
    app.action(blocks.APPROVE)(ack=just_ack, lazy=[approve])
    app.action(blocks.DENY)(ack=just_ack, lazy=[deny])
    app.action(blocks.END_ACCESS)(ack=just_ack, lazy=[end_access])
