"""The audit trail and the Slack outbox: every transition is recorded and posted, and a
Slack that rate-limits or is down delays posts without losing or repeating any."""

from __future__ import annotations

from datetime import timedelta

from tests.conftest import ALICE, AUDIT_CHANNEL, BOB, CAROL, Bot, audit_lines
from tests.e2e.helpers import click, submit


def _audit_texts(bot: Bot) -> list[str]:
    return audit_lines(bot.slack)


def test_every_transition_is_an_audit_event_with_time_actor_action_and_details(
    bot: Bot,
) -> None:
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-5")
    click(bot, BOB, "approve", request_id)
    click(bot, ALICE, "end_access", request_id)
    events = bot.service.audit_events(request_id)
    assert [(e.actor, e.action) for e in events] == [
        (ALICE, "requested"),
        (BOB, "approval_recorded"),
        ("jit-bot", "approved"),
        ("jit-bot", "grant_started"),
        ("jit-bot", "granted"),
        (ALICE, "revoke_started"),
        (ALICE, "revoked"),
    ]
    assert all(e.at == bot.clock.now() and e.request_id == request_id for e in events)
    assert events[0].details["reason"] == "INC-5"
    assert events[0].details["targets"] == ["fake resource `prod-db`", "fake resource `prod-logs`"]
    assert events[-1].details["reason"] == "ended early"
    posts = bot.audit_posts()
    assert len(posts) == len(events)
    for event, post in zip(events, posts, strict=True):
        assert request_id in post and event.action in post


def test_a_429_is_retried_after_its_retry_after_and_nothing_is_lost_or_doubled(bot: Bot) -> None:
    bot.slack.fail_next("chat.postMessage", times=1, retry_after=30, where={"channel": BOB})
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-5")
    posted = [c for c in bot.slack.calls if c.method == "chat.postMessage"]
    assert sorted((c.params["channel"], c.status) for c in posted) == [
        (AUDIT_CHANNEL, 200),  # the audit post has a key of its own: it does not wait
        (BOB, 429),
    ]
    # The refused DM waits, and with it what was queued after it about the request:
    # Carol's DM and the requester's.
    assert bot.runtime.outbox.pending() == 3
    bot.clock.advance(timedelta(seconds=29))
    bot.settle()
    assert bot.runtime.outbox.pending() == 3
    bot.clock.advance(timedelta(seconds=1))
    bot.settle()
    assert bot.runtime.outbox.pending() == 0
    assert len(bot.slack.messages_in(BOB)) == 1 and len(bot.slack.messages_in(CAROL)) == 1
    assert len(_audit_texts(bot)) == 1 and request_id in _audit_texts(bot)[0]


def test_a_slack_outage_delays_posts_and_loses_none_and_keeps_their_order(bot: Bot) -> None:
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-5")
    # An approver's email is checked when they click: one the bot looked up a moment ago
    # is still known during the outage (an unknown one is asked to try again).
    bot.service.person(BOB)
    bot.slack.outage(True)
    click(bot, BOB, "approve", request_id)  # the click itself is answered via response_url
    bot.clock.advance(timedelta(minutes=1))
    bot.service.sweep()
    bot.settle()
    # Who receives the access is read afresh from Slack at grant time (an email changed
    # since the request must not be granted), so the grant waits for Slack to answer.
    assert bot.service.get(request_id).status == "approved"
    waiting = bot.runtime.outbox.pending()
    assert waiting >= 3
    for _ in range(3):  # backoff grows while the outage lasts
        bot.clock.advance(timedelta(minutes=1))
        bot.runtime.outbox.wake()
        bot.settle()
    assert bot.runtime.outbox.pending() == waiting
    bot.slack.outage(False)
    bot.service.sweep()  # the sweeper's next round grants it
    assert bot.service.get(request_id).status == "active"
    bot.clock.advance(timedelta(minutes=10))
    bot.settle()
    assert bot.runtime.outbox.pending() == 0
    actions = [e.action for e in bot.service.audit_events(request_id)]
    posted = _audit_texts(bot)
    assert len(posted) == len(actions)
    assert [next(a for a in actions if f"*{a}*" in p) for p in posted] == actions
    assert "Access granted" in bot.slack.messages_in(ALICE)[-1]["text"]


def test_a_post_slack_refuses_for_good_is_set_aside_and_the_rest_flows(bot: Bot) -> None:
    bot.slack.fail_next("chat.postMessage", times=1, error="channel_not_found")
    submit(bot, ALICE, "prod-support prod 1h INC-5")
    assert bot.runtime.outbox.pending() == 0
    delivered = [c for c in bot.slack.calls_to("chat.postMessage")]
    assert len(delivered) == 3
