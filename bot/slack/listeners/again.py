"""Listener for "Request again", the button on a finished request in ``/jit list`` and on
the App Home: it opens the request form filled in from that request, as the database
holds it when clicked, for its own requester only.

The button carries only the request id. Who may use it is checked first, from the
database alone (quick, well within the trigger_id's 3 s), so someone else is refused
where they clicked and nothing opens. The form then opens loading, as ``/jit request``'s
does, because what the person may request now takes Slack lookups. Sent, it is checked
and submitted as any request form is (``views``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.clock import Clock
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

log = logging.getLogger(__name__)


def register(app: App, service: AccessService, clock: Clock) -> None:
    def clicked(
        body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        user, trigger = body["user"]["id"], body["trigger_id"]
        # A click on a message is answered there. The Home tab has no conversation (Slack
        # sends no response_url): a refusal is a small modal, and once the form has
        # opened, what goes wrong is said in it alone.
        on_message = bool(body.get("response_url"))
        tell = ephemeral(respond) if on_message else _nowhere
        refuse = tell if on_message else _notice(client, trigger)
        with reply_errors(refuse):
            request = service.repeatable(parse_request_id(action.get("value", "")), user)

            def fill(modal: LoadingModal) -> None:
                template = service.template(request, user)
                roles = service.requestable(user)
                modal.show(request_form(service, roles, template.role, user, template))

            checked_modal(client, trigger, blocks.REQUEST_TITLE, tell, fill)

    app.action(blocks.REQUEST_AGAIN)(ack=just_ack, lazy=[clicked])


def _nowhere(text: str) -> None:
    """No conversation to answer in: the modal says it."""


def _notice(client: WebClient, trigger_id: str) -> Callable[[str], None]:
    """Say ``text`` in a small modal, opened with the click's trigger_id."""

    def say(text: str) -> None:
        try:
            client.views_open(
                trigger_id=trigger_id, view=blocks.notice_modal(blocks.REQUEST_TITLE, text)
            )
        except SlackApiError as exc:
            # The trigger_id has expired or been used: nowhere is left to say it.
            log.warning("could not say why Request again was refused: %s", exc)

    return say
