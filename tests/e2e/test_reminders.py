"""Reminders to approvers: a request still pending after the rule's ``remind_after``
reminds the approvers it asked, in the thread of their DM, then after twice as long each
time; never once decided, cancelled or expired; once per reminder time across restarts and
replicas.

The bot also looks for due reminders by itself every 30 s of real time: a test asserts
what the approvers received, which is the same whichever run sent it, and that a run with
nothing due sends nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from tests.conftest import ALICE, APPROVERS_YAML, BOB, CAROL, SEC1, SEC2, Bot
from tests.e2e.helpers import at_once, click, submit


def _thread_of(bot: Bot, user: str, request_id: str) -> list[dict[str, Any]]:
    """The replies in the thread of ``user``'s DM about ``request_id``."""
    [dm] = [m for m in bot.dms_to(user) if m["text"].startswith(request_id)]
    return [m for m in bot.replies_to(user) if m["thread_ts"] == dm["ts"]]


def test_approvers_are_reminded_in_their_dms_thread_after_15m_then_after_twice_as_long(
    bot: Bot,
) -> None:
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1 checkout errors")
    bot.clock.advance(timedelta(minutes=14, seconds=59))
    assert bot.service.remind_approvers() == 0
    bot.clock.advance(timedelta(seconds=1))
    bot.service.remind_approvers()
    for approver in (BOB, CAROL):
        [reminder] = _thread_of(bot, approver, request_id)
        assert reminder["text"].startswith(f":bell: Reminder: {request_id} from <@{ALICE}>")
        assert "waited 15m" in reminder["text"]
        assert f"/jit approve {request_id}" in reminder["text"]
    # Once per reminder time, however often the job runs.
    assert bot.service.remind_approvers() == 0
    bot.clock.advance(timedelta(minutes=29))  # 44m: the next is at 45m (15m + 30m)
    assert bot.service.remind_approvers() == 0
    bot.clock.advance(timedelta(minutes=1))
    bot.service.remind_approvers()
    assert [len(_thread_of(bot, a, request_id)) for a in (BOB, CAROL)] == [2, 2]
    assert "waited 45m" in _thread_of(bot, BOB, request_id)[-1]["text"]
    # Nothing of the requester's DMs is threaded, and no one else is reminded.
    assert bot.replies_to(ALICE) == [] and bot.replies_to(SEC1) == []


def test_reminders_stop_once_the_request_is_decided_cancelled_or_expired(bot: Bot) -> None:
    approved = submit(bot, ALICE, "prod-support prod 1h INC-1")
    cancelled = submit(bot, ALICE, "prod-support prod 1h INC-2")
    expiring = submit(bot, ALICE, "prod-support prod 1h INC-3")
    assert "granting access now" in click(bot, BOB, "approve", approved)
    bot.command(ALICE, f"cancel {cancelled}")
    bot.clock.advance(timedelta(minutes=15))
    assert bot.service.remind_approvers() == 1  # only the one still pending
    assert _thread_of(bot, CAROL, approved) == [] and _thread_of(bot, CAROL, cancelled) == []
    assert len(_thread_of(bot, CAROL, expiring)) == 1
    bot.clock.advance(timedelta(minutes=45))  # pending_ttl (1h) has passed: it only expires
    assert bot.service.remind_approvers() == 0
    bot.service.sweep()
    assert bot.service.get(expiring).status == "expired"
    bot.clock.advance(timedelta(hours=2))
    assert bot.service.remind_approvers() == 0
    assert len(_thread_of(bot, CAROL, expiring)) == 1


def test_an_approver_who_voted_is_not_reminded_of_the_approvals_still_missing(bot: Bot) -> None:
    request_id = submit(bot, ALICE, "db-admin prod 1h migration")  # 2 of sre-leads, security
    assert "(1 of 2)" in click(bot, BOB, "approve", request_id)
    bot.clock.advance(timedelta(minutes=15))
    bot.service.remind_approvers()
    assert _thread_of(bot, BOB, request_id) == []
    for approver in (CAROL, SEC1, SEC2):
        assert len(_thread_of(bot, approver, request_id)) == 1


def test_a_restart_between_reminders_neither_loses_nor_repeats_one(
    make_bot: Callable[..., Bot],
) -> None:
    bot = make_bot()
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    bot.clock.advance(timedelta(minutes=15))
    bot.service.remind_approvers()
    bot.runtime.stop()
    bot.clock.advance(timedelta(minutes=30))  # the second reminder falls due while down
    restarted = make_bot()
    restarted.service.remind_approvers()
    assert restarted.service.remind_approvers() == 0
    assert len(_thread_of(restarted, BOB, request_id)) == 2
    # Down through several reminder times: one reminder on the way back, not a burst,
    # and the next one twice as long after the last reminder time passed.
    restarted.runtime.stop()
    restarted.clock.advance(timedelta(minutes=14))  # 59m: the 1h45m one is next
    again = make_bot()
    assert again.service.remind_approvers() == 0
    assert len(_thread_of(again, BOB, request_id)) == 2


def test_two_replicas_send_each_reminder_once(make_bot: Callable[..., Bot]) -> None:
    one, other = make_bot(), make_bot()
    request_id = submit(one, ALICE, "db-admin prod 1h migration")
    one.clock.advance(timedelta(minutes=15))
    counts = at_once([one, other], lambda bot: bot.service.remind_approvers())
    assert sum(counts) <= 1  # (a background run may have sent it)
    other.settle()
    for approver in (BOB, CAROL, SEC1, SEC2):
        assert len(_thread_of(one, approver, request_id)) == 1


def test_a_reminder_whose_dm_was_never_posted_is_posted_on_its_own(bot: Bot) -> None:
    bot.slack.fail_next("chat.postMessage", error="channel_not_found", where={"channel": BOB})
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    assert [m for m in bot.dms_to(BOB) if m["text"].startswith(request_id)] == []
    bot.clock.advance(timedelta(minutes=15))
    bot.service.remind_approvers()
    [reminder] = [m for m in bot.dms_to(BOB) if request_id in m["text"]]
    assert reminder["text"].startswith(f":bell: Reminder: {request_id}")
    assert f"/jit approve {request_id}" in reminder["text"]
    assert len(_thread_of(bot, CAROL, request_id)) == 1


def test_an_extension_waiting_for_approval_reminds_its_approvers(bot: Bot) -> None:
    request_id = submit(bot, ALICE, "prod-support prod 2h INC-1")
    assert "granting access now" in click(bot, BOB, "approve", request_id)
    answer = bot.command(ALICE, f"extend {request_id} 1h still on INC-1")
    extension = next(w.rstrip(":.") for w in answer["text"].split() if w.startswith("R-"))
    bot.settle()
    assert extension != request_id
    bot.clock.advance(timedelta(minutes=15))
    bot.service.remind_approvers()
    [reminder] = _thread_of(bot, CAROL, extension)
    assert reminder["text"].startswith(f":bell: Reminder: {extension} from <@{ALICE}>")


def test_a_rule_may_turn_reminders_off_or_remind_later(make_bot: Callable[..., Bot]) -> None:
    never = APPROVERS_YAML.replace(
        "    approvers: [sre-leads]\n", "    approvers: [sre-leads]\n    remind_after: null\n"
    )
    bot = make_bot(approvers=never)
    quiet = submit(bot, ALICE, "prod-support prod 1h INC-1")
    reminded = submit(bot, ALICE, "db-admin prod 1h migration")
    bot.clock.advance(timedelta(minutes=15))
    bot.service.remind_approvers()
    assert _thread_of(bot, BOB, quiet) == []
    assert len(_thread_of(bot, BOB, reminded)) == 1
