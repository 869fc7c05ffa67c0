"""The outbox sends the messages of one key it hands over together in order: the first
claimed by the look that found them, each of the others in the transaction that marks the
one before it sent. An update, or a reply in a thread, queued with the post it refers to
still finds where that post landed; a look that fails hands nothing over for good."""

from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy import event

from bot.slack.outbox import OutboxWorker
from bot.slack.queueing import THREAD_OF, enqueue
from tests.conftest import ALICE, Bot


def test_a_post_its_update_and_a_reply_queued_together_go_out_in_order_on_the_post(
    bot: Bot,
) -> None:
    bot.settle()
    outbox = bot.runtime.outbox
    with outbox.sessions.begin() as session:
        queue = {"key": "batch", "method": "chat.postMessage"}
        enqueue(
            session,
            bot.clock,
            **queue,
            payload={"channel": ALICE, "text": "first"},
            message_ref="batch-post",
        )
        enqueue(
            session,
            bot.clock,
            key="batch",
            method="chat.update",
            payload={"text": "first, updated"},
            message_ref="batch-post",
        )
        enqueue(
            session,
            bot.clock,
            **queue,
            payload={"channel": ALICE, "text": "reply", THREAD_OF: "batch-post"},
        )
    assert outbox.pending() == 3
    bot.settle()

    sent = [
        c for c in bot.slack.calls if c.params.get("text") in {"first", "first, updated", "reply"}
    ]
    assert [(c.method, c.params["text"], c.ok) for c in sent] == [
        ("chat.postMessage", "first", True),
        ("chat.update", "first, updated", True),
        ("chat.postMessage", "reply", True),
    ]
    post = sent[0].response
    assert (sent[1].params["channel"], sent[1].params["ts"]) == (post["channel"], post["ts"])
    assert sent[2].params["thread_ts"] == post["ts"]
    assert outbox.pending() == 0


def test_a_look_that_fails_as_it_claims_leaves_the_messages_to_the_next_one(bot: Bot) -> None:
    bot.settle()
    outbox = bot.runtime.outbox
    engine = outbox.sessions.kw["bind"]
    failures: list[str] = []

    def fail_the_first_claim(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        claims = statement.startswith("UPDATE outbox_message") and "RETURNING" in statement
        if claims and not failures:
            failures.append(statement)
            raise RuntimeError("the database went away as the look claimed")

    event.listen(engine, "before_cursor_execute", fail_the_first_claim)
    try:
        with outbox.sessions.begin() as session:
            for text in ("one", "two"):
                enqueue(
                    session,
                    bot.clock,
                    key="flaky",
                    method="chat.postMessage",
                    payload={"channel": ALICE, "text": text},
                )
        with contextlib.suppress(RuntimeError):  # the look that fails may be this one
            outbox.deliver_due()
        bot.settle()
    finally:
        event.remove(engine, "before_cursor_execute", fail_the_first_claim)

    assert failures, "no look claimed anything"
    sent = [c.params["text"] for c in bot.slack.calls if c.params.get("text") in {"one", "two"}]
    assert sent == ["one", "two"]
    assert outbox.pending() == 0


def test_a_message_claimed_by_the_look_is_given_back_when_posts_are_to_wait(bot: Bot) -> None:
    bot.settle()
    running = bot.runtime.outbox
    running.stop()  # this test's worker is the only one looking
    waiting = [True]
    outbox = OutboxWorker(running.sessions, running.client, bot.clock, hold=lambda: waiting[0])
    with outbox.sessions.begin() as session:
        enqueue(
            session,
            bot.clock,
            key="held",
            method="chat.postMessage",
            payload={"channel": ALICE, "text": "held back"},
        )

    assert outbox.deliver_due() == 0  # claimed by the look, then told to wait
    waiting[0] = False
    assert outbox.deliver_due() == 1  # due again at once, not after the claim's 30 s
    assert [c.params["text"] for c in bot.slack.calls if c.params.get("text") == "held back"] == [
        "held back"
    ]
    outbox.stop()
