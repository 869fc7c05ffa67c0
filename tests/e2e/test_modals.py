"""The request and deny modals open at once, then fill in once the lookups are done.

Slack lets a trigger_id open a view within 3 s. The lookups behind these modals (users,
user groups) wait out Retry-After when Slack rate-limits them, for longer than that. Here
the directory is slow in Slack's own (fake) time: the bot's back-off advances the fake
Slack's clock (``sleep=slack.advance``), so each test knows exactly how many seconds the
lookups took and no test waits for real ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.slack import blocks
from tests.conftest import ALICE, BOB, BOT_TOKEN, CAROL, MALLORY, Bot
from tests.e2e.helpers import submit
from tests.fakes.slack_api import TRIGGER_TTL, FakeSlack
from tests.fakes.slack_client import select_value, text_value

LOOKUPS = ("users.info", "usergroups.list", "usergroups.users.list")
RETRY_AFTER = 2  # seconds Slack asks for on each 429; the bot waits at most 5


@pytest.fixture
def slow_bot(make_bot: Callable[..., Bot], slack: FakeSlack) -> Bot:
    """A bot whose back-off is spent on the fake Slack's clock."""
    return make_bot(sleep=slack.advance)


def slow_directory(bot: Bot) -> float:
    """Forget what the bot knows of people and groups, and make each lookup method answer
    429 twice first. Returns Slack's time now, to measure how long the lookups took."""
    bot.service.sync("jit-bot")
    for method in LOOKUPS:
        bot.slack.fail_next(method, times=2, retry_after=RETRY_AFTER)
    return bot.slack.now()


def rate_limited(slack: FakeSlack) -> int:
    return sum(1 for c in slack.calls if c.method in LOOKUPS and c.status == 429)


def options(view: dict[str, Any], block_id: str) -> list[str]:
    block = next(b for b in view["blocks"] if b.get("block_id") == block_id)
    return [o["value"] for o in block["element"]["options"]]


def the_only_view_opened_by(slack: FakeSlack, trigger_id: str | None) -> dict[str, Any]:
    """The one view opened with `trigger_id`, as Slack holds it now; it was opened in its
    loading state (no submit, nothing to fill in)."""
    [opened] = [c for c in slack.calls_to("views.open") if c.params["trigger_id"] == trigger_id]
    loading = opened.params["view"]
    assert "submit" not in loading and "Loading" in str(loading["blocks"]), loading
    return slack.view(opened.response["view"]["id"])


def stale_open(slack: FakeSlack, trigger_id: str, view: dict[str, Any]) -> str:
    """What Slack answers to opening `view` with `trigger_id` now: the old way, lookups
    first, would have opened its modal at this moment."""
    client = WebClient(token=BOT_TOKEN, base_url=slack.api_url, timeout=5)
    with pytest.raises(SlackApiError) as refused:
        client.views_open(trigger_id=trigger_id, view=view)
    return str(refused.value.response["error"])


def test_request_modal_opens_at_once_and_fills_in_after_a_slow_directory(
    slow_bot: Bot,
) -> None:
    bot, slack = slow_bot, slow_bot.slack
    started = slow_directory(bot)
    # Issued with the command's: a trigger of the same moment, kept unused.
    same_moment = slack.issue_trigger_id()

    reply = bot.sim.command(ALICE, "request")
    assert reply.status == 200
    bot.settle()

    waited = slack.now() - started
    assert rate_limited(slack) >= 2
    assert waited >= 2 * RETRY_AFTER > TRIGGER_TTL
    view = the_only_view_opened_by(slack, reply.trigger_id)
    assert view["callback_id"] == blocks.REQUEST_MODAL
    assert options(view, "role") == ["prod-support", "db-admin"]
    assert options(view, "environment") == ["prod", "staging"]
    assert [c.params["view_id"] for c in slack.calls_to("views.update")] == [view["id"]]
    assert stale_open(slack, same_moment, view) == "expired_trigger_id"


def test_the_filled_request_modal_submits_a_request(slow_bot: Bot) -> None:
    bot, slack = slow_bot, slow_bot.slack
    slow_directory(bot)
    reply = bot.sim.command(ALICE, "request")
    bot.settle()
    view = the_only_view_opened_by(slack, reply.trigger_id)

    values = {
        "role": {"role": select_value("prod-support")},
        "environment": {"environment": select_value("prod")},
        "duration": {"duration": text_value("1h")},
        "reason": {"reason": text_value("INC-7 checkout errors")},
    }
    assert bot.sim.submit_view(ALICE, view, values).status == 200
    bot.settle()
    [request] = bot.service.mine(ALICE)
    assert (request.role, request.environment, request.status) == (
        "prod-support",
        "prod",
        "pending",
    )


def test_deny_modal_opens_at_once_and_fills_in_after_a_slow_directory(slow_bot: Bot) -> None:
    bot, slack = slow_bot, slow_bot.slack
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    started = slow_directory(bot)
    same_moment = slack.issue_trigger_id()

    reply = bot.sim.block_action(CAROL, "deny", request_id)
    assert reply.status == 200
    bot.settle()

    assert rate_limited(slack) >= 2
    assert slack.now() - started > TRIGGER_TTL
    view = the_only_view_opened_by(slack, reply.trigger_id)
    assert (view["callback_id"], view["private_metadata"]) == (blocks.DENY_MODAL, request_id)
    assert stale_open(slack, same_moment, view) == "expired_trigger_id"

    reason = {"reason": {"reason": text_value("change freeze")}}
    assert bot.sim.submit_view(CAROL, view, reason).status == 200
    bot.settle()
    assert bot.service.get(request_id).status == "denied"


def test_a_directory_that_stays_down_is_told_in_the_modal(slow_bot: Bot) -> None:
    bot, slack = slow_bot, slow_bot.slack
    bot.service.sync("jit-bot")
    for method in LOOKUPS:
        slack.fail_next(method, times=10, retry_after=RETRY_AFTER)

    reply = bot.sim.command(ALICE, "request")
    bot.settle()

    view = the_only_view_opened_by(slack, reply.trigger_id)
    text = str(view["blocks"])
    assert "rate limited" in text and "try again in a minute" in text
    assert "submit" not in view or view["submit"] is None  # nothing to send
    assert bot.service.mine(ALICE) == []


def test_a_refused_deny_says_why_in_the_modal_and_offers_no_deny(slow_bot: Bot) -> None:
    bot, slack = slow_bot, slow_bot.slack
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    slow_directory(bot)

    reply = bot.sim.block_action(MALLORY, "deny", request_id)
    bot.settle()

    view = the_only_view_opened_by(slack, reply.trigger_id)
    assert view["callback_id"] != blocks.DENY_MODAL and not view["submit"]
    assert "not an approver" in str(view["blocks"])
    answer = slack.wait_for_response(name=reply.response_url_name)
    assert "not an approver" in answer["text"]
    assert bot.service.get(request_id).status == "pending"
    assert bot.service.votes_of(request_id) == []
    assert BOB in bot.service.get(request_id).approvers


def test_a_modal_closed_while_it_loads_is_left_alone(
    make_bot: Callable[..., Bot], slack: FakeSlack
) -> None:
    def close_while_waiting(seconds: float) -> None:
        # The person gives up on the loading modal while the bot waits out Retry-After.
        slack.advance(seconds)
        for view in slack.views:
            slack.close_view(view["id"])

    bot = make_bot(sleep=close_while_waiting)
    slow_directory(bot)

    reply = bot.sim.command(ALICE, "request")
    bot.settle()

    the_only_view_opened_by(slack, reply.trigger_id)
    refused = [c for c in slack.calls if c.method == "views.update"]
    assert [c.error for c in refused] == ["not_found"]  # one try, then nothing more
    assert not [r for r in slack.responses if r["_url_name"] == reply.response_url_name]
