"""What the listeners of every surface share: the one place errors become words, the
request-id check, the ways of answering, and the request form filled in from config
(and from a finished request, for "Request again")."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.errors import JitError, RequestNotFound
from bot.service import AccessService
from bot.slack import blocks
from bot.slack.loading import LoadingModal
from bot.templates import RequestTemplate

log = logging.getLogger(__name__)

REQUEST_ID = re.compile(r"^R-[0-9A-Z]{8}$")


@contextmanager
def reply_errors(tell: Callable[[str], Any]) -> Iterator[None]:
    """The one place domain errors and surprises are turned into words for the user."""
    try:
        yield
    except JitError as exc:
        tell(blocks.refusal(str(exc)))
    except Exception:
        incident = uuid.uuid4().hex[:8]
        log.exception("unexpected error (incident %s)", incident)
        tell(blocks.incident(incident))


def parse_request_id(value: str) -> str:
    """The request id a button, a form or a command carried, or RequestNotFound."""
    value = (value or "").strip()
    if not REQUEST_ID.match(value):
        raise RequestNotFound(blocks.no_such_request(value))
    return value


ErrorReplies = Callable[[Callable[[str], Any]], AbstractContextManager[None]]


def checked_modal(
    client: WebClient,
    trigger_id: str,
    title: str,
    tell: Callable[[str], Any],
    fill: Callable[[LoadingModal], None],
    *,
    errors: ErrorReplies | None = None,
) -> None:
    """Open a modal at once, in its loading state (its checks may outlast the trigger_id's
    3 s), and let ``fill`` check and show the form in it. A refusal is said in the modal,
    where the person looks, and in the conversation (``tell``), where the answers to the
    other buttons are."""
    modal = LoadingModal.open(client, trigger_id, title)

    def refuse(text: str) -> None:
        tell(text)
        modal.say(text)

    with (errors or reply_errors)(refuse):
        fill(modal)


def typed(values: dict[str, Any], block: str) -> str:
    """What was typed in a modal's text input (its block and action share one id); ""
    for a field missing or of another shape."""
    found = values.get(block) if isinstance(values, dict) else None
    field = found.get(block) if isinstance(found, dict) else None
    return str(field.get("value") or "") if isinstance(field, dict) else ""


def just_ack(ack: Ack) -> None:
    ack()


def ephemeral(respond: Respond) -> Callable[[str], Any]:
    """Answer in the conversation, seen only by the person who typed or clicked."""
    return lambda text: respond(text=text, response_type="ephemeral", replace_original=False)


def ephemeral_blocks(respond: Respond) -> Callable[[str, list[dict[str, Any]]], Any]:
    """``ephemeral`` with blocks, ``text`` their fallback."""
    return lambda text, blocks: respond(
        text=text, blocks=blocks, response_type="ephemeral", replace_original=False
    )


def direct_message(client: WebClient, user: str) -> Callable[[str], None]:
    """Answer by DM: a submitted modal has closed, so there is no conversation to answer in."""

    def tell(text: str) -> None:
        client.chat_postMessage(channel=user, text=text)

    return tell


def origin(trigger_id: str | None) -> str | None:
    """What makes one Slack interaction one request: a trigger_id is issued once per
    command or submission, and comes back unchanged when the same one is delivered again."""
    return f"slack:{trigger_id}" if trigger_id else None


def request_form(
    service: AccessService,
    roles: list[tuple[str, str]],
    role: str,
    user: str,
    template: RequestTemplate | None = None,
) -> dict[str, Any]:
    """The request modal with ``role`` chosen, its environments and durations from config,
    and "Break glass" where a rule lets ``user`` break it for the role; filled in from a
    finished request where ``template`` says how ("Request again")."""
    spec = service.config.roles[role]
    environments = service.config.environments(role)
    glass = [
        env
        for env in environments
        if (rule := service.approvers_for(role, env, user)) is not None and rule.break_glass
    ]
    return blocks.request_modal(
        roles, role, environments, spec.effective_default, spec.max_duration, glass, template
    )
