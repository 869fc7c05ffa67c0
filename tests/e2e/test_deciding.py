"""Deciding: every click is re-checked from the database at the moment it arrives."""

from __future__ import annotations

import threading
from datetime import timedelta

from tests.conftest import ALICE, APPROVERS_YAML, BOB, CAROL, MALLORY, SEC1, Bot
from tests.e2e.helpers import buttons, click, deny_forms, latest, open_deny, submit
from tests.fakes.slack_client import text_value


def test_a_non_approver_click_is_refused_and_changes_nothing(bot: Bot) -> None:
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    assert "not an approver" in click(bot, MALLORY, "approve", request_id)
    assert "not an approver" in click(bot, SEC1, "approve", request_id)
    assert bot.service.get(request_id).status == "pending"
    assert bot.service.votes_of(request_id) == []
    assert bot.provider.calls == []


def test_the_requester_cannot_approve_their_own_request(bot: Bot) -> None:
    request_id = submit(bot, BOB, "prod-support prod 1h INC-1")  # BOB is an sre-lead too
    assert bot.service.get(request_id).approvers == [BOB, CAROL]
    assert "your own request" in click(bot, BOB, "approve", request_id)
    assert "your own request" in click(bot, BOB, "deny", request_id)
    assert bot.service.get(request_id).status == "pending"
    assert not deny_forms(bot)


def test_a_rule_can_allow_self_approval(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot = make_bot(
        approvers=APPROVERS_YAML.replace("allow_self_approval: false", "allow_self_approval: true")
    )
    request_id = submit(bot, BOB, "prod-support prod 1h INC-1")
    assert "granting access now" in click(bot, BOB, "approve", request_id)
    assert bot.service.get(request_id).status == "active"


def test_required_approvals_need_that_many_distinct_approvers(bot: Bot) -> None:
    request_id = submit(bot, ALICE, "db-admin prod 1h migration")
    assert "(1 of 2)" in click(bot, BOB, "approve", request_id)
    assert "already voted" in click(bot, BOB, "approve", request_id)
    assert bot.service.get(request_id).status == "pending"
    assert bot.provider.calls == []
    dm = latest(bot.dms_to(CAROL)[-1])
    assert "1 so far" in str(dm["blocks"])
    assert "granting access now" in click(bot, SEC1, "approve", request_id)
    assert bot.service.get(request_id).status == "active"
    assert bot.provider.holdings == {("alice@example.com", "db-prod")}
    outcome = str(latest(bot.dms_to(CAROL)[-1])["blocks"])
    assert f"<@{BOB}>" in outcome and f"<@{SEC1}>" in outcome
    assert "already been decided" in click(bot, CAROL, "approve", request_id)


def test_deny_records_who_and_why_and_tells_everyone(bot: Bot) -> None:
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    view = open_deny(bot, CAROL, request_id)
    assert view["private_metadata"] == request_id
    reply = bot.sim.submit_view(CAROL, view, {"reason": {"reason": text_value("change freeze")}})
    assert reply.status == 200
    bot.settle()
    assert bot.service.get(request_id).status == "denied"
    [vote] = bot.service.votes_of(request_id)
    assert (vote.voter_id, vote.decision, vote.reason) == (CAROL, "deny", "change freeze")
    assert "was denied" in bot.dms_to(ALICE)[-1]["text"]
    assert "change freeze" in str(bot.dms_to(ALICE)[-1]["blocks"])
    for approver in (BOB, CAROL):
        message = latest(bot.dms_to(approver)[0])
        assert not buttons(message)
        assert f"Denied by <@{CAROL}>:\\n> change freeze" in str(message["blocks"])
    assert any("denied" in post and "change freeze" in post for post in bot.audit_posts())
    assert bot.provider.calls == []


def test_a_deny_without_a_reason_is_fine(bot: Bot) -> None:
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    view = open_deny(bot, BOB, request_id)
    bot.sim.submit_view(BOB, view, {"reason": {"reason": text_value("")}})
    bot.settle()
    assert bot.service.get(request_id).status == "denied"
    assert bot.service.votes_of(request_id)[0].reason is None


def test_a_deny_submitted_after_another_approver_approved_changes_nothing(bot: Bot) -> None:
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    view = open_deny(bot, BOB, request_id)
    click(bot, CAROL, "approve", request_id)
    bot.sim.submit_view(BOB, view, {"reason": {"reason": text_value("no")}})
    bot.settle()
    assert bot.service.get(request_id).status == "active"
    assert "already been decided" in bot.dms_to(BOB)[-1]["text"]


def test_clicks_on_unknown_or_malformed_request_ids_are_refused(bot: Bot) -> None:
    submit(bot, ALICE, "prod-support prod 1h INC-1")
    for value in ("R-ZZZZZZZZ", "", "R-1; DROP TABLE vote", '{"id": "x", "role": "admin"}'):
        assert "no request" in click(bot, BOB, "approve", value)
    assert bot.provider.calls == []


def _race(bot: Bot, request_id: str, voters: list[str]) -> None:
    start = threading.Barrier(len(voters))

    def vote(user: str) -> None:
        start.wait()
        assert bot.sim.block_action(user, "approve", request_id).status == 200

    threads = [threading.Thread(target=vote, args=(user,)) for user in voters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    bot.settle()


def test_two_approvers_clicking_at_once_give_exactly_one_grant(bot: Bot) -> None:
    for _ in range(5):
        request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
        _race(bot, request_id, [BOB, CAROL])
        assert bot.service.get(request_id).status == "active"
        assert len(bot.service.votes_of(request_id)) == 1
        grants = [c for c in bot.provider.calls if c.request_id == request_id]
        assert sorted(c.resource for c in grants) == ["prod-db", "prod-logs"]


def test_the_last_two_approvals_arriving_at_once_complete_the_request_once(bot: Bot) -> None:
    for _ in range(5):
        request_id = submit(bot, ALICE, "db-admin prod 1h migration")
        _race(bot, request_id, [BOB, CAROL, SEC1])
        assert bot.service.get(request_id).status == "active"
        assert len(bot.service.votes_of(request_id)) == 2
        grants = [c for c in bot.provider.calls if c.request_id == request_id]
        assert [c.action for c in grants] == ["grant"]


def test_an_approver_removed_from_the_group_before_clicking_is_refused(bot: Bot) -> None:
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    bot.slack.add_usergroup("SSRE", "sre-leads", [BOB])
    bot.clock.advance(timedelta(minutes=2))  # past the directory cache
    assert "not an approver" in click(bot, CAROL, "approve", request_id)
    assert bot.service.get(request_id).status == "pending"
    assert bot.service.votes_of(request_id) == []  # the refused click left no vote
    assert bot.provider.calls == []


def test_a_requester_who_lost_eligibility_before_approval_gets_nothing(bot: Bot) -> None:
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    bot.slack.add_usergroup("SENG", "engineering", [BOB, CAROL])
    bot.clock.advance(timedelta(minutes=2))
    click(bot, BOB, "approve", request_id)
    request = bot.service.get(request_id)
    assert request.status == "failed" and "may no longer request" in (request.error or "")
    assert bot.provider.calls == []
    assert "failed" in bot.dms_to(ALICE)[-1]["text"]
