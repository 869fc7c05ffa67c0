"""Listeners for the Home tab: opening it, and the buttons on it.

Opening the Home (``app_home_opened``) remembers who looks at it and queues it, built
when sent (bot/slack/home.py). Its Approve, Deny, End access now, Extend and review
buttons are the DMs' (same action ids, a request id as the value, the same checks
against the database at click time); a click on a Home carries no response_url, so the
listeners here take those clicks (registered before the DMs', they match only a Home's)
and show what the click did, or why not, at the top of the Home, re-published after the
action so the row has moved. Cancel is the Home's own button.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.clock import Clock
from bot.errors import JitError
from bot.names import Decision, Verdict
from bot.service import AccessService
from bot.slack import blocks
from bot.slack.listeners.common import checked_modal, just_ack, parse_request_id, reply_errors
from bot.slack.loading import LoadingModal

log = logging.getLogger(__name__)

_VERDICTS = {
    blocks.REVIEW_JUSTIFIED: Verdict.JUSTIFIED,
    blocks.REVIEW_NOT_JUSTIFIED: Verdict.NOT_JUSTIFIED,
}


@dataclass(frozen=True)
class Click:
    """A button clicked on a Home: by whom, on which request, and how to answer."""

    service: AccessService
    user: str
    request_id: str
    action_id: str
    trigger_id: str
    client: WebClient
    tell: Callable[[str], Any]


def on_home(body: dict[str, Any]) -> bool:
    """Whether a click was made on a Home tab (not on a message or in a modal)."""
    view = body.get("view")
    return isinstance(view, dict) and view.get("type") == "home"


def register(app: App, service: AccessService, clock: Clock) -> None:
    def opened(event: dict[str, Any]) -> None:
        user = event.get("user")
        if event.get("tab") != "home" or not isinstance(user, str):
            return  # the Messages tab: nothing to show
        try:
            service.home_opened(user)
        except JitError as exc:
            log.warning("could not show %s their Home: %s", user, exc)

    def clicked(act: Callable[[Click], None]) -> Callable[..., None]:
        """The listener of a Home button: ``act`` does the click; what it says is shown on
        the Home, re-published afterwards."""

        def lazy(body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
            user = body["user"]["id"]
            said: list[str] = []
            with reply_errors(said.append):
                request_id = parse_request_id(action.get("value", ""))
                trigger_id = str(body.get("trigger_id") or "")
                action_id = action["action_id"]
                act(Click(service, user, request_id, action_id, trigger_id, client, said.append))
            service.show_home(user, "\n".join(said) or None)

        return lazy

    app.event("app_home_opened")(ack=just_ack, lazy=[opened])
    for action_id, act in _CLICKS.items():
        app.action(action_id, matchers=[on_home])(ack=just_ack, lazy=[clicked(act)])
    # Only the Home has Cancel: a click on it is answered there, wherever it came from.
    app.action(blocks.CANCEL_REQUEST)(ack=just_ack, lazy=[clicked(_cancel)])


def _approve(click: Click) -> None:
    result = click.service.vote(click.request_id, click.user, Decision.APPROVE)
    click.tell(blocks.approval_recorded(result.request, result.outcome, result.approvals))


def _deny(click: Click) -> None:
    def fill(modal: LoadingModal) -> None:
        click.service.can_decide(click.request_id, click.user)
        modal.show(blocks.deny_modal(click.request_id))

    checked_modal(click.client, click.trigger_id, blocks.DENY_TITLE, click.tell, fill)


def _end_access(click: Click) -> None:
    click.service.end_early(click.request_id, click.user)
    click.tell(blocks.ending_access(click.request_id))


def _extend(click: Click) -> None:
    def fill(modal: LoadingModal) -> None:
        access = click.service.can_extend(click.request_id, click.user)
        suggested = click.service.config.roles[access.role].effective_default
        modal.show(blocks.extend_modal(access, suggested))

    checked_modal(click.client, click.trigger_id, blocks.EXTEND_TITLE, click.tell, fill)


def _review(click: Click) -> None:
    verdict = _VERDICTS[click.action_id]

    def fill(modal: LoadingModal) -> None:
        click.service.can_review(click.request_id, click.user)
        modal.show(blocks.review_modal(click.request_id, verdict))

    checked_modal(click.client, click.trigger_id, blocks.REVIEW_TITLE, click.tell, fill)


def _cancel(click: Click) -> None:
    click.service.cancel(click.request_id, click.user)
    click.tell(blocks.cancelled(click.request_id))


#: The DMs' buttons, as clicked on a Home.
_CLICKS: dict[str, Callable[[Click], None]] = {
    blocks.APPROVE: _approve,
    blocks.DENY: _deny,
    blocks.END_ACCESS: _end_access,
    blocks.EXTEND: _extend,
    blocks.REVIEW_JUSTIFIED: _review,
    blocks.REVIEW_NOT_JUSTIFIED: _review,
}
