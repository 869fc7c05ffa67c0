"""Escalation, notify-only watchers and quiet approvers: who is asked, who is told, and
who may decide, every click checked from the database when it arrives."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from bot.storage.models import AuditEvent
from tests.conftest import ALICE, APPROVERS_YAML, BOB, CAROL, MALLORY, SEC1, SEC2, Bot
from tests.e2e.helpers import at_once, buttons, click, latest, submit

_PROD_RULE = "    approvers: [sre-leads]\n    required_approvals: 1\n"
ESCALATING = APPROVERS_YAML.replace(
    _PROD_RULE, _PROD_RULE + "    escalate_to: security\n    escalate_after: 30m\n"
)
NOTIFYING = APPROVERS_YAML.replace(_PROD_RULE, _PROD_RULE + "    notify: [security]\n")
QUIET = APPROVERS_YAML.replace(
    _PROD_RULE,
    "    approvers: [sre-leads, {group: security, quiet: true}]\n    required_approvals: 1\n",
)


def _about(messages: list[dict[str, Any]], request_id: str) -> list[dict[str, Any]]:
    return [m for m in messages if m["text"].startswith(request_id)]


def _escalations(bot: Bot, request_id: str) -> list[AuditEvent]:
    with bot.runtime.engine.connect() as connection:
        rows = connection.execute(
            select(AuditEvent).where(
                col(AuditEvent.request_id) == request_id, col(AuditEvent.action) == "escalated"
            )
        ).all()
    return [AuditEvent.model_validate(row._mapping) for row in rows]


def test_after_escalate_after_the_group_gets_working_buttons_and_the_approvers_are_told(
    make_bot: Callable[..., Bot],
) -> None:
    bot = make_bot(approvers=ESCALATING)
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1 checkout errors")
    assert _about(bot.dms_to(SEC1), request_id) == []
    # Before the escalation, the group may not decide.
    assert "not an approver" in click(bot, SEC1, "approve", request_id)
    bot.clock.advance(timedelta(minutes=29))
    assert bot.service.escalate() == 0
    bot.clock.advance(timedelta(minutes=1))
    bot.service.escalate()
    assert bot.service.escalate() == 0
    for member in (SEC1, SEC2):
        [dm] = _about(bot.dms_to(member), request_id)
        assert "Escalated to you (`security`)" in str(dm["blocks"])
        assert [b["action_id"] for b in buttons(dm)] == ["approve", "deny"]
    for approver in (BOB, CAROL):
        [dm] = _about(bot.dms_to(approver), request_id)
        [told] = [r for r in bot.replies_to(approver) if r["thread_ts"] == dm["ts"]]
        assert f"went to `security` too: <@{SEC1}>, <@{SEC2}>" in told["text"]
    [event] = _escalations(bot, request_id)
    assert event.details["group"] == "security"
    assert event.details["approvers"] == [SEC1, SEC2]
    assert bot.service.get(request_id).approvers == [BOB, CAROL, SEC1, SEC2]
    # The escalation group's click decides; everyone's DM shows it.
    assert "granting access now" in click(bot, SEC1, "approve", request_id)
    assert bot.service.get(request_id).status == "active"
    for person in (BOB, SEC2):
        assert not buttons(latest(_about(bot.dms_to(person), request_id)[0]))


def test_two_replicas_escalate_once_and_a_restart_does_not_escalate_again(
    make_bot: Callable[..., Bot],
) -> None:
    one, other = make_bot(approvers=ESCALATING), make_bot(approvers=ESCALATING)
    request_id = submit(one, ALICE, "prod-support prod 1h INC-1")
    one.clock.advance(timedelta(minutes=30))
    counts = at_once([one, other], lambda bot: bot.service.escalate())
    assert sum(counts) <= 1  # (a background run may have sent it)
    other.settle()
    assert len(_escalations(one, request_id)) == 1
    assert len(_about(one.dms_to(SEC1), request_id)) == 1
    one.runtime.stop()
    again = make_bot(approvers=ESCALATING)
    again.clock.advance(timedelta(minutes=5))
    assert again.service.escalate() == 0
    assert len(_about(again.dms_to(SEC2), request_id)) == 1


def test_a_request_decided_in_time_is_never_escalated(make_bot: Callable[..., Bot]) -> None:
    bot = make_bot(approvers=ESCALATING)
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    assert "granting access now" in click(bot, CAROL, "approve", request_id)
    bot.clock.advance(timedelta(minutes=45))
    assert bot.service.escalate() == 0
    assert _about(bot.dms_to(SEC1), request_id) == []
    assert _escalations(bot, request_id) == []


def test_notify_only_people_see_the_request_without_buttons_and_cannot_decide(
    make_bot: Callable[..., Bot],
) -> None:
    bot = make_bot(approvers=NOTIFYING)
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1 <!channel> *now*")
    for watcher in (SEC1, SEC2):
        [dm] = _about(bot.dms_to(watcher), request_id)
        assert buttons(dm) == []
        assert "For your information" in str(dm["blocks"])
        assert "&lt;!channel&gt;" in str(dm["blocks"]) and "<!channel>" not in str(dm["blocks"])
    assert bot.service.get(request_id).approvers == [BOB, CAROL]
    # A forged click from a watcher is refused; the approvers still decide.
    assert "not an approver" in click(bot, SEC1, "approve", request_id)
    assert "granting access now" in click(bot, BOB, "approve", request_id)
    # The watchers' copy shows the outcome.
    assert "Approved by" in str(latest(_about(bot.dms_to(SEC1), request_id)[0])["blocks"])


def test_notify_only_people_are_never_reminded(make_bot: Callable[..., Bot]) -> None:
    bot = make_bot(approvers=NOTIFYING)
    submit(bot, ALICE, "prod-support prod 1h INC-1")
    bot.clock.advance(timedelta(minutes=15))
    bot.service.remind_approvers()
    assert len(bot.replies_to(BOB)) == 1
    assert bot.replies_to(SEC1) == [] and bot.replies_to(SEC2) == []


def test_quiet_approvers_get_no_dm_but_may_approve_with_jit_approve(
    make_bot: Callable[..., Bot],
) -> None:
    bot = make_bot(approvers=QUIET)
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    stored = bot.service.get(request_id)
    assert stored.approvers == [BOB, CAROL, SEC1, SEC2]
    assert stored.quiet_approvers == [SEC1, SEC2]
    assert _about(bot.dms_to(SEC1), request_id) == []
    assert len(_about(bot.dms_to(BOB), request_id)) == 1
    # Quiet approvers are not reminded either; the others are.
    bot.clock.advance(timedelta(minutes=15))
    bot.service.remind_approvers()
    assert bot.replies_to(SEC1) == [] and len(bot.replies_to(BOB)) == 1
    answer = bot.command(SEC2, f"approve {request_id}")
    assert "granting access now" in answer["text"]
    bot.settle()
    assert bot.service.get(request_id).status == "active"
    assert _about(bot.dms_to(SEC2), request_id) == []  # still no DM to update


def test_jit_approve_and_deny_are_checked_like_the_buttons(bot: Bot) -> None:
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    assert "not an approver" in bot.command(MALLORY, f"approve {request_id}")["text"]
    assert "your own request" in bot.command(ALICE, f"approve {request_id}")["text"]
    assert "no request `R-NXPE2345`" in bot.command(BOB, "approve R-NXPE2345")["text"]
    too_long = "x" * 501
    assert "at most 500" in bot.command(BOB, f"deny {request_id} {too_long}")["text"]
    assert bot.service.get(request_id).status == "pending"
    answer = bot.command(BOB, f"deny {request_id} change freeze <!here>")
    assert request_id in answer["text"]
    assert bot.service.get(request_id).status == "denied"
    [vote] = bot.service.votes_of(request_id)
    assert (vote.voter_id, vote.decision, vote.reason) == (BOB, "deny", "change freeze <!here>")
    assert "&lt;!here&gt;" in str(bot.dms_to(ALICE)[-1]["blocks"])
    assert "already been decided" in bot.command(CAROL, f"approve {request_id}")["text"]


def test_a_requester_in_the_escalation_group_is_not_asked_to_decide_their_own_request(
    make_bot: Callable[..., Bot],
) -> None:
    approvers = ESCALATING.replace(
        "  security: [USEC1, sec2@example.com]\n",
        f"  security: [USEC1, sec2@example.com]\n  oncall: [{ALICE}, {MALLORY}]\n",
    ).replace("escalate_to: security", "escalate_to: oncall")
    bot = make_bot(approvers=approvers)
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    bot.clock.advance(timedelta(minutes=30))
    bot.service.escalate()
    assert bot.service.get(request_id).approvers == [BOB, CAROL, MALLORY]
    assert len(_about(bot.dms_to(MALLORY), request_id)) == 1
    assert not any("Escalated to you" in str(m["blocks"]) for m in bot.dms_to(ALICE))
    assert "your own request" in click(bot, ALICE, "approve", request_id)
    assert "granting access now" in click(bot, MALLORY, "approve", request_id)


def test_self_approval_never_reaches_the_requester_through_the_escalation_group(
    make_bot: Callable[..., Bot],
) -> None:
    approvers = (
        ESCALATING.replace(
            "  security: [USEC1, sec2@example.com]\n",
            f"  security: [USEC1, sec2@example.com]\n  oncall: [{ALICE}, {MALLORY}]\n",
        )
        .replace("escalate_to: security", "escalate_to: oncall")
        .replace("allow_self_approval: false", "allow_self_approval: true")
    )
    bot = make_bot(approvers=approvers)
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    bot.clock.advance(timedelta(minutes=30))
    bot.service.escalate()
    assert bot.service.get(request_id).escalated_at is not None
    assert "not an approver" in bot.command(ALICE, f"approve {request_id}")["text"]
    assert request_id not in bot.command(ALICE, "list")["text"].split("Waiting for your")[-1]
    assert bot.service.get(request_id).status == "pending"


def test_jit_list_shows_an_escalated_request_to_the_group_and_no_other(
    make_bot: Callable[..., Bot],
) -> None:
    bot = make_bot(approvers=ESCALATING)
    first = submit(bot, ALICE, "prod-support prod 1h INC-1")
    bot.clock.advance(timedelta(minutes=20))
    second = submit(bot, ALICE, "prod-support prod 1h INC-2")
    bot.clock.advance(timedelta(minutes=10))  # only the first has waited 30m
    bot.service.escalate()
    waiting = bot.command(SEC1, "list")["text"].split("Waiting for your decision")[-1]
    assert first in waiting and second not in waiting
    # Listed only where a click would count.
    assert "not an approver" in click(bot, SEC1, "approve", second)


def test_a_quiet_approver_in_the_escalation_group_is_asked_once_it_escalates(
    make_bot: Callable[..., Bot],
) -> None:
    approvers = QUIET.replace(
        "    required_approvals: 1\n",
        "    required_approvals: 1\n    escalate_to: security\n    escalate_after: 30m\n",
        1,
    )
    bot = make_bot(approvers=approvers)
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    assert _about(bot.dms_to(SEC1), request_id) == []
    bot.clock.advance(timedelta(minutes=30))
    bot.service.escalate()
    [dm] = _about(bot.dms_to(SEC1), request_id)
    assert [b["action_id"] for b in buttons(dm)] == ["approve", "deny"]
    stored = bot.service.get(request_id)
    assert stored.quiet_approvers == [] and stored.approvers == [BOB, CAROL, SEC1, SEC2]


def test_a_quiet_approver_decides_from_the_app_home(make_bot: Callable[..., Bot]) -> None:
    bot = make_bot(approvers=QUIET)
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    assert bot.sim.open_home(SEC1).status == 200
    bot.settle()
    home = bot.slack.home(SEC1)
    assert home is not None
    assert ("approve", request_id) in [
        (e["action_id"], e["value"])
        for b in home["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    ]
    bot.sim.block_action(SEC1, "approve", request_id, view=home)
    bot.settle()
    assert bot.service.get(request_id).status == "active"
    assert _about(bot.dms_to(SEC1), request_id) == []
