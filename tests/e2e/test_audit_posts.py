"""The audit channel gets one line per event: a change's lines as it happens while the
bot is quiet, several changes' to a post when they come faster than the posts go out
(Slack takes about one post a second in a channel). Each line is a section block of its
own, ending with its event's seal, which `audit verify --against-slack` reads back."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from slack_sdk import WebClient
from sqlalchemy import event, select
from sqlalchemy.orm import sessionmaker

from bot import audit
from bot.audit_key import AuditKey
from bot.audit_witness import Seal
from bot.slack import audit_posts
from bot.slack.audit_channel import read_seals
from bot.slack.notifier import SlackNotifier
from bot.slack.queueing import enqueue
from bot.storage.models import AuditEvent
from tests.conftest import ALICE, AUDIT_CHANNEL, AUDIT_KEY, BOB, BOT_TOKEN, Bot
from tests.e2e.helpers import click, submit

EVENTS = AuditEvent.__table__  # type: ignore[attr-defined]
# A typed reason whose end looks like a seal, on lines of its own too.
LOOKALIKE = "INC-1 · #1 `0123abcdef01`\n#2 `" + "0123456789abcdef" * 4 + "`"


def _seals_in_the_database(bot: Bot) -> list[Seal]:
    with bot.runtime.engine.connect() as connection:
        rows = connection.execute(select(EVENTS.c.id, EVENTS.c.hash).order_by(EVENTS.c.id))
        return [Seal(event_id, digest) for event_id, digest in rows]


def _seals_in_the_channel(bot: Bot) -> list[Seal]:
    client = WebClient(token=BOT_TOKEN, base_url=bot.slack.api_url)
    return sorted(read_seals(client, AUDIT_CHANNEL), key=lambda seal: seal.event_id)


def _record(bot: Bot, entries: list[audit.Entry]) -> None:
    """Record ``entries`` in one transaction, their lines queued for the channel."""
    sessions = sessionmaker(
        bot.runtime.engine, info=audit.signing_info(AuditKey(AUDIT_KEY.encode(), "key"))
    )
    notifier = SlackNotifier(bot.clock, AUDIT_CHANNEL, on_enqueue=bot.runtime.outbox.wake)
    with sessions.begin() as session:
        audit.record_all(session, bot.clock, notifier, entries)


def test_a_quiet_bot_posts_a_request_as_it_is_made_its_line_in_a_block_of_its_own(bot: Bot) -> None:
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-5")
    bot.settle()
    [post] = bot.slack.messages_in(AUDIT_CHANNEL)
    [block] = post["blocks"]
    assert block["block_id"] == f"{audit_posts.LINE_BLOCK}0"
    assert block["text"] == {"type": "mrkdwn", "text": post["text"], "verbatim": True}
    assert post["text"].startswith(f"`{request_id}` *requested* by <@{ALICE}>")
    assert _seals_in_the_channel(bot) == _seals_in_the_database(bot)


def test_lines_queued_while_a_post_waits_go_out_together_in_order(bot: Bot) -> None:
    # Slack says "slow down" to the first line; the lifecycle goes on meanwhile.
    bot.slack.fail_next(
        "chat.postMessage", times=1, retry_after=30, where={"channel": AUDIT_CHANNEL}
    )
    request_id = submit(bot, ALICE, f"prod-support prod 1h {LOOKALIKE}")
    click(bot, BOB, "approve", request_id)
    click(bot, ALICE, "end_access", request_id)
    bot.settle()
    assert bot.slack.messages_in(AUDIT_CHANNEL) == []
    bot.clock.advance(timedelta(seconds=30))
    bot.settle()

    [post] = bot.slack.messages_in(AUDIT_CHANNEL)  # seven events, one post
    events = bot.service.audit_events(request_id)
    assert len(events) == 7 and len(post["blocks"]) == 7
    assert post["text"] == "\n".join(block["text"]["text"] for block in post["blocks"])
    for place, (block, recorded) in enumerate(zip(post["blocks"], events, strict=True)):
        assert block["block_id"] == f"{audit_posts.LINE_BLOCK}{place}"
        assert f"*{recorded.action}*" in block["text"]["text"]
        assert block["text"]["text"].endswith(f"#{recorded.id} `{recorded.hash}`")
    # The typed lookalike seals are quoted inside the first line: only the real ones count.
    assert _seals_in_the_channel(bot) == _seals_in_the_database(bot)


def test_a_backlog_goes_out_in_posts_of_at_most_40_lines_one_after_another(bot: Bot) -> None:
    bot.settle()
    engine = bot.runtime.outbox.sessions.kw["bind"]
    looks_claimed: list[str] = []

    def count_claims_by_a_look(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        claim = statement.startswith("UPDATE outbox_message SET next_attempt_at")
        if claim and "RETURNING" in statement:
            looks_claimed.append(statement)

    event.listen(engine, "before_cursor_execute", count_claims_by_a_look)
    try:
        _record(bot, [audit.Entry("cli", "sync", None, {"n": n}) for n in range(100)])
        bot.settle()
    finally:
        event.remove(engine, "before_cursor_execute", count_claims_by_a_look)

    posts = bot.slack.messages_in(AUDIT_CHANNEL)
    assert [len(post["blocks"]) for post in posts] == [40, 40, 20]
    # The sender went on from one post to the next: one look handed the backlog over.
    assert len(looks_claimed) == 1, looks_claimed
    assert _seals_in_the_channel(bot) == _seals_in_the_database(bot)


def test_long_lines_go_fewer_to_a_post(bot: Bot) -> None:
    bot.settle()
    _record(bot, [audit.Entry("cli", "sync", None, {"note": "x" * 950}) for _ in range(30)])
    bot.settle()
    posts = bot.slack.messages_in(AUDIT_CHANNEL)
    assert len(posts) >= 3 and sum(len(post["blocks"]) for post in posts) == 30
    assert all(len(post["text"]) <= audit_posts.MOST_CHARS for post in posts)
    assert _seals_in_the_channel(bot) == _seals_in_the_database(bot)


def test_a_post_slack_refuses_for_good_loses_only_its_first_line(bot: Bot) -> None:
    bot.settle()
    bot.slack.fail_next("chat.postMessage", times=1, error="msg_too_long")
    _record(bot, [audit.Entry("cli", "sync", None, {"n": n}) for n in range(5)])
    bot.settle()
    [post] = bot.slack.messages_in(AUDIT_CHANNEL)
    assert len(post["blocks"]) == 4
    assert _seals_in_the_channel(bot) == _seals_in_the_database(bot)[1:]
    assert bot.runtime.outbox.pending() == 0


def test_a_dm_queued_behind_a_rate_limited_backlog_of_lines_goes_out_at_once(bot: Bot) -> None:
    bot.settle()
    bot.slack.fail_next(
        "chat.postMessage", times=1, retry_after=30, where={"channel": AUDIT_CHANNEL}
    )
    # More lines than the outbox reads in one batch, all waiting for Slack's Retry-After.
    _record(bot, [audit.Entry("cli", "sync", None, {"n": n}) for n in range(450)])
    bot.settle()
    assert bot.slack.messages_in(AUDIT_CHANNEL) == []
    with bot.runtime.outbox.sessions.begin() as session:
        post = {"channel": ALICE, "text": "queued behind the lines"}
        enqueue(session, bot.clock, key="dm", method="chat.postMessage", payload=post)
    bot.runtime.outbox.wake()
    bot.settle()
    assert [m["text"] for m in bot.slack.messages_in(ALICE)] == ["queued behind the lines"]
    assert bot.slack.messages_in(AUDIT_CHANNEL) == []

    bot.clock.advance(timedelta(seconds=30))
    bot.settle()
    assert _seals_in_the_channel(bot) == _seals_in_the_database(bot)
    assert bot.runtime.outbox.pending() == 0


def test_a_post_of_one_line_from_before_still_reads_as_its_line() -> None:
    line = "`R-1` *requested* by <@UALICE> · #5 `" + "ab" * 32 + "`"
    # As Slack may return a text post: with a rich_text block of its own making.
    made_by_slack = {"type": "rich_text", "block_id": "x1", "elements": []}
    assert audit_posts.lines_of({"text": line}) == [line]
    assert audit_posts.lines_of({"text": line, "blocks": [made_by_slack]}) == [line]
    # A post of lines is read from its line blocks alone, never from its text.
    post = audit_posts.build(
        [audit_posts.marker("C0AUDIT", "one"), {"channel": "C0AUDIT", "text": "two"}]
    )
    assert post.payload is not None and post.used == 2
    assert audit_posts.lines_of({**post.payload, "text": line}) == ["one", "two"]
