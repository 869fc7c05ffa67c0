"""Slack lookups (who someone is, who is in a group) while Slack rate limits or fails:
tried again, and when Slack still gives no answer, nothing is decided from it."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import timedelta

import pytest
from slack_sdk import WebClient

from bot.clock import FakeClock
from bot.errors import DirectoryUnavailable
from bot.slack.directory import SlackDirectory
from tests.conftest import ALICE, BOB, Bot
from tests.e2e.helpers import click, force, submit


def test_a_rate_limited_lookup_waits_what_slack_asks_and_the_request_goes_through(
    make_bot: Callable[..., Bot],
) -> None:
    waits: list[float] = []
    bot = make_bot(sleep=waits.append)
    bot.slack.fail_next("users.info", times=2, retry_after=2)
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    # Alice's lookup met the 429s (her approvers' accounts are looked up after hers).
    lookups = [c for c in bot.slack.calls if c.method == "users.info"]
    assert [c.status for c in lookups if c.params["user"] == ALICE] == [429, 429, 200]
    assert [c.status for c in lookups if c.params["user"] != ALICE] == [200, 200]
    assert waits == [2.0, 2.0]
    assert bot.service.get(request_id).status == "pending"
    assert len(bot.dms_to(BOB)) == 1


def test_a_lookup_slack_keeps_failing_asks_the_requester_to_try_again_and_stores_nothing(
    bot: Bot,
) -> None:
    bot.slack.fail_next("users.info", times=3, status=503)
    answer = bot.command(ALICE, "request prod-support prod 1h INC-1")
    assert "Slack did not tell the bot who UALICE is: HTTP 503" in answer["text"]
    assert "try again in a minute" in answer["text"]
    assert [c.status for c in bot.slack.calls if c.method == "users.info"] == [503] * 3
    bot.settle()
    assert bot.service.mine(ALICE) == []
    assert bot.service.audit_events() == []
    assert not bot.slack.calls_to("chat.postMessage")
    # Slack is back: the same command works.
    assert submit(bot, ALICE, "prod-support prod 1h INC-1")


def test_an_approver_check_slack_cannot_answer_is_neither_a_yes_nor_a_no(bot: Bot) -> None:
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    bot.clock.advance(timedelta(minutes=2))  # past the directory cache
    # Longer than the bot waits on a listener thread: reported at once.
    bot.slack.fail_next("usergroups.list", retry_after=60)
    answer = click(bot, BOB, "approve", request_id)
    assert "Slack did not tell the bot its user groups: rate limited (429)" in answer
    assert "not an approver" not in answer
    assert bot.service.votes_of(request_id) == []
    assert bot.service.get(request_id).status == "pending"
    assert bot.provider.calls == []
    # The same click once Slack answers again counts.
    click(bot, BOB, "approve", request_id)
    assert bot.service.get(request_id).status == "active"
    assert bot.provider.holdings == {
        ("alice@example.com", "prod-db"),
        ("alice@example.com", "prod-logs"),
    }


def test_an_approved_grant_waits_while_slack_cannot_confirm_the_requester_is_eligible(
    bot: Bot,
) -> None:
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    force(bot, request_id, status="approved")  # the vote committed; the grant is the sweep's
    bot.clock.advance(timedelta(minutes=2))
    bot.slack.fail_next("usergroups.list", times=3, status=500)
    bot.service.sweep()
    assert bot.service.get(request_id).status == "approved"
    assert bot.provider.calls == []
    bot.service.sweep()
    assert bot.service.get(request_id).status == "active"
    assert {resource for _, resource in bot.provider.holdings} == {"prod-db", "prod-logs"}


def test_an_eligibility_check_slack_refuses_for_good_fails_the_grant_and_says_why(
    bot: Bot,
) -> None:
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    force(bot, request_id, status="approved")
    bot.clock.advance(timedelta(minutes=2))
    bot.slack.fail_next("usergroups.list", error="missing_scope")
    bot.service.sweep()
    request = bot.service.get(request_id)
    assert request.status == "failed"
    assert "Could not check that the requester may still request `prod-support`" in (
        request.error or ""
    )
    assert "missing_scope" in (request.error or "")
    assert bot.provider.calls == []
    assert "failed" in bot.dms_to(ALICE)[-1]["text"]


def test_a_lookup_slack_does_not_answer_at_all_is_no_answer_either() -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now: every call is refused
    waits: list[float] = []
    client = WebClient(token="xoxb-test", base_url=f"http://127.0.0.1:{port}/api/", timeout=2)
    directory = SlackDirectory(client, FakeClock(), sleep=waits.append)
    with pytest.raises(DirectoryUnavailable, match=r"who UALICE is: no answer \(URLError\)"):
        directory.person(ALICE)
    with pytest.raises(DirectoryUnavailable):
        directory.is_member(["alice@example.com"], ALICE)  # not "not a member"
    assert waits == [0.5, 1.0, 0.5, 1.0]
