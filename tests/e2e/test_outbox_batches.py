"""The outbox sends the messages of one key it hands over together in order, each claimed
in the transaction that marks the one before it sent: an update, or a reply in a thread,
queued with the post it refers to still finds where that post landed."""

from __future__ import annotations

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
