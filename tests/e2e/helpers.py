"""Small readers of what the fake Slack received, and writers of the state a crash leaves
behind, shared by the end-to-end and reliability tests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlmodel import col

from bot.slack import blocks
from bot.storage.models import AccessRequest, RequestTarget
from tests.conftest import ALICE, Bot


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        element
        for block in message.get("blocks") or []
        if block["type"] == "actions"
        for element in block["elements"]
    ]


def latest(message: dict[str, Any]) -> dict[str, Any]:
    """A message as it reads now, after any chat.update."""
    if message.get("updates"):
        return {**message, **message["updates"][-1]}
    return message


def at_once(bots: Sequence[Bot], job: Callable[[Bot], int]) -> list[int]:
    """Run ``job`` on every bot at the same moment (replicas racing for one piece of
    work); what each run returned."""
    counts: list[int] = []
    start = threading.Barrier(len(bots))

    def run(bot: Bot) -> None:
        start.wait()
        counts.append(job(bot))

    threads = [threading.Thread(target=run, args=(bot,)) for bot in bots]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts


def submit(bot: Bot, user: str, text: str) -> str:
    """Send an inline request that must succeed; return its request id."""
    answer = bot.command(user, f"request {text}")
    words = answer["text"].split()
    request_id = next((w.rstrip(":") for w in words if w.startswith("R-")), None)
    assert request_id, answer
    bot.settle()
    return request_id


def open_deny(bot: Bot, user: str, request_id: str) -> dict[str, Any]:
    """Click Deny; return the reason modal the bot opened, as it reads once filled in."""
    reply = bot.sim.block_action(user, "deny", request_id)
    assert reply.status == 200
    bot.settle()
    return opened_view(bot, reply.trigger_id)


def opened_view(bot: Bot, trigger_id: str | None) -> dict[str, Any]:
    """The view the bot opened with `trigger_id`, as it reads now. The bot opens its modals
    in a loading state and fills them in afterwards, so call it once the bot settled."""
    [opened] = [c for c in bot.slack.calls_to("views.open") if c.params["trigger_id"] == trigger_id]
    return bot.slack.view(opened.response["view"]["id"])


def open_request_modal(bot: Bot, user: str) -> dict[str, Any]:
    """Send ``/jit request``; return the request modal the bot opened, once filled in."""
    reply = bot.sim.command(user, "request")
    assert reply.status == 200, reply
    bot.settle()
    return opened_view(bot, reply.trigger_id)


def deny_forms(bot: Bot) -> list[dict[str, Any]]:
    """Every modal that offers to deny a request (the others only say something)."""
    return [v for v in bot.slack.views if v["callback_id"] == blocks.DENY_MODAL]


def click(bot: Bot, user: str, action: str, request_id: str) -> str:
    """Click a button as ``user``; return the ephemeral answer the bot sent back."""
    reply = bot.sim.block_action(user, action, request_id)
    assert reply.status == 200, reply
    answer = bot.slack.wait_for_response(name=reply.response_url_name)
    bot.settle()
    return str(answer["text"])


def requests_of(bot: Bot, user: str) -> list[AccessRequest]:
    """Every request ``user`` made, read from the database."""
    with bot.runtime.engine.connect() as connection:
        ids = list(
            connection.execute(
                select(col(AccessRequest.id)).where(col(AccessRequest.requester_id) == user)
            ).scalars()
        )
    return [bot.service.get(i) for i in ids]


def force(bot: Bot, request_id: str, **values: object) -> None:
    """Put a request into the state a crash would have left it in."""
    with bot.runtime.engine.begin() as connection:
        connection.execute(
            update(AccessRequest).where(col(AccessRequest.id) == request_id).values(**values)
        )


def force_target(bot: Bot, target_id: int | None, **values: object) -> None:
    """Put one target of a request into the state a crash would have left it in."""
    with bot.runtime.engine.begin() as connection:
        connection.execute(
            update(RequestTarget).where(col(RequestTarget.id) == target_id).values(**values)
        )


def footprint(bot: Bot) -> tuple[int, int, int, int]:
    """What a request that reached the bot would change: audit events, alice's requests,
    calls to Slack and response_url answers."""
    return (
        len(bot.service.audit_events()),
        len(bot.service.mine(ALICE)),
        len(bot.slack.calls),
        len(bot.slack.responses),
    )
