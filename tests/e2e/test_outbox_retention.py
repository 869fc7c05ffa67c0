"""The outbox deletes the messages it is done with once they are older than
``settings.keep_sent_messages`` (30 days unless configured), a bounded batch at a time,
and never a message still to be sent."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert, select

from bot.slack.outbox_retention import OutboxRetention
from bot.storage.models import OutboxMessage, OutboxStatus, table_of
from tests.conftest import ALICE, Bot

OUTBOX = table_of(OutboxMessage)


def _queue(bot: Bot, key: str, status: OutboxStatus, age: timedelta) -> None:
    """A message under ``key`` whose last attempt was ``age`` ago, in ``status``."""
    at = bot.clock.now() - age
    with bot.runtime.engine.begin() as connection:
        connection.execute(
            insert(OUTBOX).values(
                created_at=at,
                ordering_key=key,
                method="chat.postMessage",
                payload={"channel": ALICE, "text": key},
                status=status,
                attempts=0 if status == OutboxStatus.PENDING else 1,
                next_attempt_at=at,
                sent_at=at if status == OutboxStatus.SENT else None,
            )
        )


def _keys(bot: Bot) -> set[str]:
    with bot.runtime.engine.connect() as connection:
        return set(connection.scalars(select(OUTBOX.c.ordering_key)))


def test_messages_done_with_longer_ago_than_kept_go_and_pending_ones_stay(bot: Bot) -> None:
    bot.settle()
    bot.runtime.outbox.stop()  # the old pending message must stay pending here
    before = _keys(bot)
    _queue(bot, "sent-40-days-ago", OutboxStatus.SENT, timedelta(days=40))
    _queue(bot, "dead-31-days-ago", OutboxStatus.DEAD, timedelta(days=31))
    _queue(bot, "sent-29-days-ago", OutboxStatus.SENT, timedelta(days=29))
    _queue(bot, "pending-90-days", OutboxStatus.PENDING, timedelta(days=90))

    assert bot.runtime.prune_outbox() == 2  # kept 30 days: the default

    assert _keys(bot) - before == {"sent-29-days-ago", "pending-90-days"}
    assert bot.runtime.prune_outbox() == 0


def test_a_long_kept_outbox_is_cleared_a_bounded_batch_at_a_time(bot: Bot) -> None:
    bot.settle()
    for n in range(7):
        _queue(bot, f"old-{n}", OutboxStatus.SENT, timedelta(days=8))
    sessions = bot.runtime.outbox.sessions
    retention = OutboxRetention(sessions, bot.clock, timedelta(days=7), batch=3, batches=2)

    assert retention.prune() == 6  # two batches of three, then the run ends
    assert retention.prune() == 1
    assert retention.prune() == 0
    assert not any(key.startswith("old-") for key in _keys(bot))
