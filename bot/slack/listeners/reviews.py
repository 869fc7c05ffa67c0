"""Listeners for the post-incident review of a break-glass use: "Justified" and "Not
justified" open the note modal (after the clicker is checked against the database), and
its submission records the review, checked again. The button carries only a request id
and the modal only the verdict and that id: neither decides who may review."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from slack_bolt import App, Respond
from slack_sdk import WebClient

from bot.clock import Clock
from bot.errors import NotAllowed
from bot.names import Verdict
from bot.operations.reviewing import AlreadyReviewed
from bot.service import AccessService
from bot.slack import blocks
from bot.slack.listeners.common import (
    checked_modal,
    direct_message,
    ephemeral,
    just_ack,
    parse_request_id,
    reply_errors,
)
from bot.slack.loading import LoadingModal

_CLICKED = {
    blocks.REVIEW_JUSTIFIED: Verdict.JUSTIFIED,
    blocks.REVIEW_NOT_JUSTIFIED: Verdict.NOT_JUSTIFIED,
}


@contextmanager
def _review_errors(tell: Callable[[str], Any]) -> Iterator[None]:
    """``reply_errors``, and a later review told who reviewed first, how and when."""
    with reply_errors(tell):
        try:
            yield
        except AlreadyReviewed as exc:
            tell(blocks.already_reviewed(exc.review))


def register(app: App, service: AccessService, clock: Clock) -> None:
    def clicked(
        body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        tell = ephemeral(respond)
        with reply_errors(tell):
            verdict = _CLICKED[action["action_id"]]
            request_id = parse_request_id(action.get("value", ""))

            def fill(modal: LoadingModal) -> None:
                service.can_review(request_id, body["user"]["id"])
                modal.show(blocks.review_modal(request_id, verdict))

            checked_modal(
                client, body["trigger_id"], blocks.REVIEW_TITLE, tell, fill, errors=_review_errors
            )

    def submitted(body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        user = body["user"]["id"]
        tell = direct_message(client, user)
        with _review_errors(tell):
            verdict, request_id = _metadata(view.get("private_metadata", ""))
            values = view["state"]["values"]
            note = str((values.get("note", {}).get("note") or {}).get("value") or "") or None
            tell(blocks.reviewed(service.review(request_id, user, verdict, note)))

    for action_id in _CLICKED:
        app.action(action_id)(ack=just_ack, lazy=[clicked])
    app.view(blocks.REVIEW_MODAL)(ack=just_ack, lazy=[submitted])


def _metadata(value: str) -> tuple[Verdict, str]:
    """The verdict and request id the note modal was opened for, or a refusal."""
    verdict, _, request_id = (value or "").partition(":")
    if verdict not in set(Verdict):
        raise NotAllowed("That review was neither justified nor not justified; nothing changed.")
    return Verdict(verdict), parse_request_id(request_id)
