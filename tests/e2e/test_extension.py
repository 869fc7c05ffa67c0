"""Extending active access over the real Slack wire, on SQLite and PostgreSQL: the
Extend button and `/jit extend` ask for more time as a request of its own, linked to the
access; it is decided by the access's rule (approvers, or at once within
`extend_without_approval_up_to`, never past the role's maximum without an approver); on
approval the expiry moves with no moment without access and no second grant; undecided,
it expires with the access; the nudge before access ends offers Extend and End access now.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from bot.errors import JitError
from bot.storage.models import AccessRequest
from providers.base import ProviderError
from providers.fake import FakeProvider
from tests.conftest import ALICE, BOB, CAROL, MALLORY, Bot, stop
from tests.e2e.helpers import buttons, click, force, latest, opened_view, submit
from tests.e2e.test_breakglass import _export, _texts
from tests.fakes.slack_client import text_value
from tests.kit.configs import APPROVERS_YAML

PROD = {("alice@example.com", "prod-db"), ("alice@example.com", "prod-logs")}
PROD_RULE = "    environments: [prod]\n    approvers: [sre-leads]\n"
QUICK_YAML = APPROVERS_YAML.replace(
    PROD_RULE, PROD_RULE + "    extend_without_approval_up_to: 30m\n", 1
)


def _granted(bot: Bot, text: str, approver: str = BOB) -> AccessRequest:
    """Alice asks, ``approver`` approves; the request, active."""
    request_id = submit(bot, ALICE, text)
    assert "Approved" in click(bot, approver, "approve", request_id)
    request = bot.service.get(request_id)
    assert request.status == "active", request
    return request


def _end(request: AccessRequest) -> datetime:
    assert request.expires_at is not None, request
    return request.expires_at


def _begun(request: AccessRequest) -> datetime:
    assert request.granted_at is not None, request
    return request.granted_at


def _extend(bot: Bot, request_id: str, duration: str, reason: str, user: str = ALICE) -> str:
    """Click Extend on the access and send the form; return what the bot answered."""
    reply = bot.sim.block_action(user, "extend", request_id)
    assert reply.status == 200, reply
    bot.settle()
    view = opened_view(bot, reply.trigger_id)
    assert view["callback_id"] == "jit_extend", view
    form = {
        "duration": {"duration": text_value(duration)},
        "reason": {"reason": text_value(reason)},
    }
    sent = bot.sim.submit_view(user, view, form)
    assert sent.status == 200, sent
    bot.settle()
    return str(bot.dms_to(user)[-1]["text"])


def _extension_of(bot: Bot, request_id: str) -> AccessRequest:
    """The newest extension of the access, read from the database."""
    with bot.runtime.engine.connect() as connection:
        ids = list(
            connection.execute(
                select(col(AccessRequest.id))
                .where(col(AccessRequest.extends) == request_id)
                .order_by(col(AccessRequest.created_at))
            ).scalars()
        )
    assert ids, f"no extension of {request_id}"
    return bot.service.get(ids[-1])


def _asked(bot: Bot, user: str) -> list[dict[str, Any]]:
    return [latest(m) for m in bot.dms_to(user) if "Extension request" in _texts(m)]


def _actions(bot: Bot, request_id: str) -> list[str]:
    return [e.action for e in bot.service.audit_events(request_id)]


def test_the_extend_button_asks_the_approvers_and_moves_the_expiry_without_a_lapse(
    make_bot: Callable[..., Bot],
) -> None:
    bot = make_bot()
    access = _granted(bot, "prod-support prod 1h INC-1 checkout errors")
    old_end = access.expires_at
    assert old_end is not None
    [granted] = [m for m in bot.dms_to(ALICE) if "Access granted" in (m.get("text") or "")]
    assert [b["action_id"] for b in buttons(granted)] == ["extend", "end_access"]
    bot.clock.advance(timedelta(minutes=40))

    answer = _extend(bot, access.id, "30m", "still <!channel> on INC-1")

    extension = _extension_of(bot, access.id)
    assert answer == (
        f"Your request {extension.id} to extend `prod-support` in `prod` ({access.id}) by "
        f"30m was sent to <@{BOB}>, <@{CAROL}>."
    )
    assert (extension.status, extension.extends, extension.duration_seconds) == (
        "pending",
        access.id,
        1800,
    )
    for approver in (BOB, CAROL):
        [asked] = _asked(bot, approver)
        texts = _texts(asked)
        assert f"Extends* {access.id} by 30m" in texts and "Had it so far* 40m" in texts
        assert "1h30m in all" in texts and "Past the role's maximum" not in texts
        assert "&lt;!channel&gt;" in texts and "<!channel>" not in texts
        assert {b["value"] for b in buttons(asked)} == {extension.id}
    assert "cannot decide your own" in click(bot, ALICE, "approve", extension.id)

    assert "Approved" in click(bot, CAROL, "approve", extension.id)

    moved = bot.service.get(access.id)
    assert moved.status == "active" and moved.expires_at == old_end + timedelta(minutes=30)
    assert bot.service.get(extension.id).status == "extended"
    assert bot.provider.holdings == PROD
    assert [c.action for c in bot.provider.calls] == ["grant", "grant", "extend", "extend"]
    assert {c.request_id for c in bot.provider.calls} == {access.id}
    assert set(bot.provider.ends.values()) == {moved.expires_at}
    told = bot.dms_to(ALICE)[-1]
    assert told["text"].startswith("Extended: `prod-support` in `prod`")
    assert [b["action_id"] for b in buttons(told)] == ["extend", "end_access"]
    assert "Extended" in _texts(_asked(bot, CAROL)[0]) and not buttons(_asked(bot, CAROL)[0])
    assert _actions(bot, extension.id) == [
        "requested",
        "approval_recorded",
        "approved",
        "extension_started",
        "extended",
    ]
    assert _actions(bot, access.id)[-1] == "expiry_moved"
    rows = {row["request_id"]: row for row in _export(bot, "grants")}
    assert rows[access.id]["expires_at"] == moved.expires_at.isoformat()  # type: ignore[union-attr]
    assert rows[access.id]["extensions"] == [
        {"request_id": extension.id, "approved_by": [CAROL], "reason": "still <!channel> on INC-1"}
    ]

    # The old end passes: nothing is taken away.
    bot.clock.advance(old_end - bot.clock.now() + timedelta(seconds=1))
    bot.service.expire(access.id)  # the old expiry job, had it fired late
    bot.service.sweep()
    bot.settle()
    assert bot.service.get(access.id).status == "active" and bot.provider.holdings == PROD
    assert bot.provider.count("revoke") == {}

    # The new end: access ends, once, whole.
    bot.clock.advance(timedelta(minutes=30))
    bot.service.sweep()
    bot.settle()
    assert bot.service.get(access.id).status == "revoked" and bot.provider.holdings == set()


def test_jit_extend_in_one_line_extends_at_once_within_the_rule_and_asks_past_the_maximum(
    make_bot: Callable[..., Bot],
) -> None:
    bot = make_bot(approvers=QUICK_YAML)
    access = _granted(bot, "prod-support prod 3h30m INC-2 migration")

    quick = bot.command(ALICE, f"extend {access.id} 30m migration runs long")["text"]
    bot.settle()

    first = _extension_of(bot, access.id)
    assert quick == f"{first.id}: approved by rule; extending {access.id} now."
    assert bot.service.get(first.id).status == "extended" and _asked(bot, BOB) == []
    total = timedelta(hours=4)
    assert bot.service.get(access.id).expires_at == _begun(access) + total
    assert [
        e.details.get("extend_without_approval_up_to")
        for e in bot.service.audit_events(first.id)
        if e.action == "auto_approved"
    ] == ["30m"]

    # Past the role's maximum (4h) only approvers may allow it, and their DM says so.
    asked = bot.command(ALICE, f"extend {access.id} 15m a little more")["text"]
    bot.settle()
    second = _extension_of(bot, access.id)
    assert second.id != first.id and second.status == "pending"
    assert "asked to extend" in asked
    told = [m["text"] for m in bot.dms_to(ALICE) if second.id in (m.get("text") or "")]
    assert "past the role's maximum (4h), which only its approvers may allow" in told[-1]
    [dm] = _asked(bot, BOB)
    assert "Past the role's maximum" in _texts(dm) and "4h15m in all" in _texts(dm)
    assert [e.details.get("over_max_duration") for e in bot.service.audit_events(second.id)][
        :1
    ] == [True]

    refused = {
        f"extend {access.id} 10m again": f"{second.id} already asks to extend {access.id}",
        f"extend {access.id} 5h way more": "longer than prod-support allows",
        f"extend {access.id} 10m": "Say why you need access",
        f"extend {second.id} 10m nested": "is itself an extension",
        "extend R-ZZZZZZZZ 10m none": "no request",
        "extend": "know",
    }
    for command, says in refused.items():
        assert says in bot.command(ALICE, command)["text"], command
    assert (
        "Only the person who holds" in bot.command(MALLORY, f"extend {access.id} 10m mine")["text"]
    )

    assert "Approved" in click(bot, BOB, "approve", second.id)
    assert bot.service.get(access.id).expires_at == _begun(access) + total + timedelta(minutes=15)
    assert bot.provider.holdings == PROD and bot.provider.count("revoke") == {}


def test_an_extension_undecided_when_the_access_ends_expires_with_it(
    make_bot: Callable[..., Bot],
) -> None:
    bot = make_bot()
    access = _granted(bot, "prod-support prod 1h INC-3 look")
    bot.command(ALICE, f"extend {access.id} 30m need more")
    bot.settle()
    extension = _extension_of(bot, access.id)
    assert extension.status == "pending"

    bot.clock.advance(timedelta(hours=1, seconds=1))
    # A click after the end, before any sweep: refused, and the extension expires.
    assert "access it extends" in click(bot, BOB, "approve", extension.id)
    bot.service.sweep()
    bot.settle()

    assert bot.service.get(access.id).status == "revoked" and bot.provider.holdings == set()
    assert bot.service.get(extension.id).status == "expired"
    assert any(
        "expired without a decision; the access ends as planned" in m["text"]
        for m in bot.dms_to(ALICE)
    )
    assert "already been decided" in click(bot, CAROL, "approve", extension.id)
    assert bot.provider.count("extend") == {}


def test_a_pending_extension_of_access_ended_early_expires_at_the_next_sweep(
    make_bot: Callable[..., Bot],
) -> None:
    bot = make_bot()
    access = _granted(bot, "prod-support prod 1h INC-4 look")
    bot.command(ALICE, f"extend {access.id} 30m need more")
    bot.settle()
    extension = _extension_of(bot, access.id)
    assert "Ending access" in click(bot, ALICE, "end_access", access.id)

    bot.service.sweep()
    bot.settle()

    assert bot.service.get(extension.id).status == "expired"
    [event] = [e for e in bot.service.audit_events(extension.id) if e.action == "expired_undecided"]
    assert event.details["reason"] == "the access it extends ended"


def test_a_restart_between_the_approval_and_the_old_expiry_keeps_the_new_expiry(
    make_bot: Callable[..., Bot],
) -> None:
    first = make_bot()
    access = _granted(first, "prod-support prod 1h INC-5 look")
    old_end = access.expires_at
    assert old_end is not None
    first.command(ALICE, f"extend {access.id} 1h need more")
    first.settle()
    extension = _extension_of(first, access.id)
    assert "Approved" in click(first, BOB, "approve", extension.id)
    stop(first)  # a crash: the old expiry job dies with it

    second = make_bot()
    second.clock.advance(old_end - second.clock.now() + timedelta(seconds=1))
    second.service.sweep()
    second.settle()
    assert second.service.get(access.id).status == "active" and second.provider.holdings == PROD
    [(_, at)] = [e for e in second.service.upcoming_expiries() if e[0] == access.id]
    assert at == old_end + timedelta(hours=1)

    second.clock.advance(timedelta(hours=1))
    second.service.sweep()
    second.settle()
    assert second.service.get(access.id).status == "revoked" and second.provider.holdings == set()


def test_an_approved_extension_a_crash_left_unapplied_is_applied_by_the_next_sweep(
    make_bot: Callable[..., Bot],
) -> None:
    first = make_bot()
    access = _granted(first, "prod-support prod 1h INC-6 look")
    first.command(ALICE, f"extend {access.id} 30m need more")
    first.settle()
    extension = _extension_of(first, access.id)
    stop(first)
    # As a crash right after the approving vote leaves it: approved, nothing applied.
    force(first, extension.id, status="approved")

    second = make_bot()
    second.service.sweep()
    second.settle()

    assert second.service.get(extension.id).status == "extended"
    assert second.service.get(access.id).expires_at == _end(access) + timedelta(minutes=30)
    # And one a crash left half applied (granting, its new end fixed, the lease run
    # out) is finished by the next sweep, once, to the end it fixed.
    second.command(ALICE, f"extend {access.id} 30m more again")
    second.settle()
    again = _extension_of(second, access.id)
    before = _end(second.service.get(access.id))
    now = second.clock.now()
    fixed = before + timedelta(minutes=30)
    force(second, again.id, status="granting", expires_at=fixed, decided_at=now, updated_at=now)
    second.clock.advance(second.service.lease + timedelta(seconds=1))
    second.service.sweep()
    second.settle()
    assert second.service.get(again.id).status == "extended"
    assert second.service.get(access.id).expires_at == fixed
    assert _actions(second, again.id)[-2:] == ["extension_resumed", "extended"]


def test_two_replicas_apply_one_extension_once(make_bot: Callable[..., Bot]) -> None:
    a = make_bot()
    b = make_bot()
    access = _granted(a, "prod-support prod 1h INC-7 look")
    a.command(ALICE, f"extend {access.id} 30m need more")
    a.settle()
    extension = _extension_of(a, access.id)

    answers: list[str] = []
    clicks = [
        threading.Thread(target=lambda: answers.append(click(a, BOB, "approve", extension.id))),
        threading.Thread(target=lambda: answers.append(click(b, CAROL, "approve", extension.id))),
    ]
    for thread in clicks:
        thread.start()
    for thread in clicks:
        thread.join()
    for replica in (a, b):
        replica.service.sweep()
        replica.settle()

    assert sum("Approved" in answer for answer in answers) == 1, answers
    assert a.service.get(access.id).expires_at == _end(access) + timedelta(minutes=30)
    assert _actions(a, extension.id).count("extended") == 1
    assert _actions(a, access.id).count("expiry_moved") == 1
    assert a.provider.count("extend") == {
        ("alice@example.com", "prod-db"): 1,
        ("alice@example.com", "prod-logs"): 1,
    }


def test_a_cloud_that_refuses_to_extend_leaves_the_access_ending_as_planned(
    make_bot: Callable[..., Bot],
) -> None:
    bot = make_bot(approvers=QUICK_YAML)
    access = _granted(bot, "prod-support prod 1h INC-8 look")
    bot.provider.fail("extend", "prod-logs", "quota exceeded <!here>")

    bot.command(ALICE, f"extend {access.id} 30m need more")
    bot.settle()

    extension = _extension_of(bot, access.id)
    assert bot.service.get(extension.id).status == "failed"
    assert bot.service.get(access.id).expires_at == access.expires_at
    told = bot.dms_to(ALICE)[-1]
    assert "failed" in told["text"] and "nothing was extended" in told["text"]
    assert "Extension failed; nothing was extended" in _texts(told)
    assert _actions(bot, extension.id)[-1] == "extension_failed"
    assert "<!here>" not in _texts(told)
    bot.clock.advance(timedelta(hours=1, seconds=1))
    bot.service.sweep()
    bot.settle()
    assert bot.service.get(access.id).status == "revoked" and bot.provider.holdings == set()


def test_the_requester_is_nudged_once_before_each_expiry_with_extend_and_end_buttons(
    make_bot: Callable[..., Bot],
) -> None:
    bot = make_bot(approvers=QUICK_YAML)
    access = _granted(bot, "prod-support prod 1h INC-9 look")

    def nudges() -> list[dict[str, Any]]:
        return [m for m in bot.dms_to(ALICE) if "left: your" in (m.get("text") or "")]

    bot.clock.advance(timedelta(minutes=49))
    bot.service.nudge()
    assert nudges() == []
    bot.clock.advance(timedelta(minutes=1))
    bot.service.nudge()
    bot.service.nudge()
    [nudge] = nudges()
    assert nudge["text"].startswith(":alarm_clock: 10m left: your `prod-support` in `prod`")
    assert [(b["action_id"], b["value"]) for b in buttons(nudge)] == [
        ("extend", access.id),
        ("end_access", access.id),
    ]
    restarted = make_bot(approvers=QUICK_YAML)
    restarted.service.nudge()
    assert len(nudges()) == 1

    # Extend from the nudge: the new end is nudged about again, once.
    assert _extend(bot, access.id, "20m", "need a bit more").startswith("Extended:")
    bot.clock.advance(timedelta(minutes=19))
    bot.service.nudge()
    assert len(nudges()) == 1  # 11 minutes left of the new end
    bot.clock.advance(timedelta(minutes=1))
    bot.service.nudge()
    restarted.service.nudge()
    assert len(nudges()) == 2
    assert "End" in click(bot, ALICE, "end_access", access.id)
    assert bot.service.get(access.id).status == "revoked"


def test_overlapping_grants_each_end_on_their_own_when_one_is_extended(
    make_bot: Callable[..., Bot],
) -> None:
    """The end of one grant never takes away access another, extended, still needs."""
    bot = make_bot()
    first = _granted(bot, "prod-support prod 1h INC-10 first")
    second = _granted(bot, "prod-support prod 2h INC-10 second")
    bot.command(ALICE, f"extend {first.id} 2h longer than the second")
    bot.settle()
    assert "Approved" in click(bot, BOB, "approve", _extension_of(bot, first.id).id)

    bot.clock.advance(timedelta(hours=2, seconds=1))  # the second ends, the first goes on
    bot.service.sweep()
    bot.settle()
    assert bot.service.get(second.id).status == "revoked"
    assert bot.service.get(first.id).status == "active" and bot.provider.holdings == PROD
    assert bot.provider.count("revoke") == {}  # kept: still needed by the first

    bot.clock.advance(timedelta(hours=1))
    bot.service.sweep()
    bot.settle()
    assert bot.service.get(first.id).status == "revoked" and bot.provider.holdings == set()


def test_an_auto_approve_rule_extends_at_once_but_never_past_the_roles_maximum(
    make_bot: Callable[..., Bot],
) -> None:
    bot = make_bot()
    bot.command(ALICE, "request db-admin dev 1h fix a row")  # dev: auto-approved
    bot.settle()
    [access] = [r for r in bot.service.mine(ALICE) if r.environment == "dev"]
    assert access.status == "active"

    answer = bot.command(ALICE, f"extend {access.id} 30m one more row")["text"]
    bot.settle()
    assert "approved by rule" in answer
    assert bot.service.get(access.id).expires_at == _end(access) + timedelta(minutes=30)

    # db-admin allows 2h: 1h30m so far, 1h more would pass it and nobody could allow that.
    refused = bot.command(ALICE, f"extend {access.id} 1h much more")["text"]
    assert "past its maximum of 2h" in refused and "ask for 30m or less" in refused
    assert bot.service.get(access.id).expires_at == _end(access) + timedelta(minutes=30)


def test_a_break_glass_grant_is_extended_only_by_its_approvers(
    make_bot: Callable[..., Bot],
) -> None:
    glass = QUICK_YAML.replace(
        "    extend_without_approval_up_to: 30m\n",
        "    extend_without_approval_up_to: 30m\n"
        "    break_glass: {max_duration: 1h, per_person_per_day: 2}\n",
    )
    bot = make_bot(approvers=glass)
    answer = bot.command(ALICE, "breakglass prod-support prod 30m INC-11 checkout down")["text"]
    bot.settle()
    access = bot.service.get(answer.split(":")[0])
    assert access.status == "active" and access.break_glass

    bot.command(ALICE, f"extend {access.id} 15m still down")
    bot.settle()

    extension = _extension_of(bot, access.id)
    assert extension.status == "pending" and not extension.break_glass
    assert _asked(bot, BOB) and _asked(bot, CAROL)


def test_the_extend_form_and_list_read_from_the_database_not_from_the_click(
    make_bot: Callable[..., Bot],
) -> None:
    bot = make_bot()
    access = _granted(bot, "prod-support prod 1h INC-12 look")
    # Someone else clicks Alice's Extend button: refused before any form opens.
    assert "Only the person who holds" in click(bot, MALLORY, "extend", access.id)
    assert "no request" in click(bot, ALICE, "extend", '{"id": "x"}')
    reply = bot.sim.block_action(ALICE, "extend", access.id)
    bot.settle()
    view = opened_view(bot, reply.trigger_id)
    form = {"duration": {"duration": text_value("20m")}, "reason": {"reason": text_value("x")}}
    # Mallory sends the form (with Alice's request in it): refused, nothing asked.
    bot.sim.submit_view(MALLORY, view, form)
    bot.settle()
    assert "Only the person who holds" in bot.dms_to(MALLORY)[-1]["text"]
    # A form whose request id was changed names no request.
    bot.sim.submit_view(ALICE, {**view, "private_metadata": "R-1; DROP"}, form)
    bot.settle()
    assert "no request" in bot.dms_to(ALICE)[-1]["text"]
    # A duration the form cannot take is said under its field, in the form's answer.
    bad = {"duration": {"duration": text_value("soon")}, "reason": {"reason": text_value("x")}}
    answered = bot.sim.submit_view(ALICE, view, bad)
    assert answered.status == 200 and "duration" in answered.json["errors"]
    assert [r.id for r in bot.service.mine(ALICE)] == [access.id]

    bot.sim.submit_view(ALICE, view, form)
    bot.settle()
    extension = _extension_of(bot, access.id)
    mine = bot.command(ALICE, "list")["text"]
    assert f"{extension.id} extends {access.id}" in mine and "by 20m, waiting for" in mine
    theirs = bot.command(BOB, "list")["text"]
    assert f"{extension.id} <@{ALICE}> asks to extend {access.id}" in theirs


def test_remind_before_expiry_is_per_role_and_may_be_turned_off(
    make_bot: Callable[..., Bot],
) -> None:
    from tests.kit.configs import ROLES_YAML

    roles = ROLES_YAML.replace(
        "    max_duration: 4h\n", "    max_duration: 4h\n    remind_before_expiry: 20m\n", 1
    ).replace("    max_duration: 2h", "    max_duration: 2h\n    remind_before_expiry: null", 1)
    bot = make_bot(roles=roles)
    support = _granted(bot, "prod-support prod 1h INC-13 look")
    bot.command(ALICE, "request db-admin dev 1h fix a row")
    bot.settle()

    bot.clock.advance(timedelta(minutes=40))
    bot.service.nudge()

    nudged = [m["text"] for m in bot.dms_to(ALICE) if "left: your" in (m.get("text") or "")]
    assert nudged == [nudged[0]] and f"({support.id})" in nudged[0]
    assert nudged[0].startswith(":alarm_clock: 20m left")
    bot.clock.advance(timedelta(minutes=15))
    bot.service.nudge()
    assert len([m for m in bot.dms_to(ALICE) if "left: your" in (m.get("text") or "")]) == 1


def _slow_extend(bot: Bot, during: Callable[[], None], *, then_fail: bool = False) -> None:
    """Make the fake cloud's extend slow: ``during`` runs inside the call (time passes,
    the sweeper runs), then the call lands, or is refused."""
    real = type(bot.provider).extend

    def slow(self: FakeProvider, principal: Any, target: Any, context: Any) -> None:
        during()
        if then_fail:
            raise ProviderError("the cloud took too long and gave up")
        real(self, principal, target, context)

    bot.provider.extend = slow.__get__(bot.provider)  # type: ignore[method-assign]


def test_an_extension_approved_in_time_but_slow_to_apply_holds_the_access_past_the_old_end(
    make_bot: Callable[..., Bot],
) -> None:
    bot = make_bot(approvers=QUICK_YAML)
    access = _granted(bot, "prod-support prod 1h INC-14 look")
    bot.clock.advance(_end(access) - bot.clock.now() - timedelta(seconds=5))

    def meanwhile() -> None:
        bot.clock.advance(timedelta(seconds=20))  # past the old end, the write not back
        bot.service.expire(access.id)  # the old expiry job
        bot.service.sweep()

    _slow_extend(bot, meanwhile)
    bot.command(ALICE, f"extend {access.id} 30m need more")  # approved by rule at T-5s
    bot.settle()

    assert bot.service.get(_extension_of(bot, access.id).id).status == "extended"
    assert bot.service.get(access.id).status == "active"
    assert bot.service.get(access.id).expires_at == _end(access) + timedelta(minutes=30)
    assert bot.provider.count("revoke") == {} and bot.provider.holdings == PROD


def test_a_slow_extension_that_fails_past_the_old_end_ends_the_access_at_once(
    make_bot: Callable[..., Bot],
) -> None:
    bot = make_bot(approvers=QUICK_YAML)
    access = _granted(bot, "prod-support prod 1h INC-15 look")
    bot.clock.advance(_end(access) - bot.clock.now() - timedelta(seconds=5))

    def meanwhile() -> None:
        bot.clock.advance(timedelta(seconds=20))
        bot.service.sweep()
        assert bot.service.get(access.id).status == "active"  # held while it is applied

    _slow_extend(bot, meanwhile, then_fail=True)
    bot.command(ALICE, f"extend {access.id} 30m need more")
    bot.settle()

    assert bot.service.get(_extension_of(bot, access.id).id).status == "failed"
    assert bot.service.get(access.id).status == "revoked" and bot.provider.holdings == set()


def test_two_extensions_checked_at_once_never_pass_the_maximum_without_an_approver(
    make_bot: Callable[..., Bot],
) -> None:
    bot = make_bot(approvers=QUICK_YAML)
    access = _granted(bot, "prod-support prod 3h30m INC-16 migration")
    # Both checked before either is stored (two replicas): each sees 4h in all.
    first = bot.service.check_extension(ALICE, access.id, "30m", "one")
    second = bot.service.check_extension(ALICE, access.id, "30m", "two")
    assert first.without_approval and second.without_approval
    bot.service.extend(ALICE, first)
    bot.settle()

    with pytest.raises(JitError, match="was extended while you asked"):
        bot.service.extend(ALICE, second)

    assert bot.service.get(access.id).expires_at == _begun(access) + timedelta(hours=4)


def test_an_extension_approved_by_no_one_never_passes_the_maximum_when_applied(
    make_bot: Callable[..., Bot],
) -> None:
    """Whatever its row says by the time it is applied (here: forged to be approved by
    rule for 2h), an extension no approver voted for stops at the role's maximum."""
    bot = make_bot()
    access = _granted(bot, "prod-support prod 3h INC-17 look")
    bot.command(ALICE, f"extend {access.id} 30m need more")
    bot.settle()
    extension = _extension_of(bot, access.id)
    force(bot, extension.id, status="approved", auto_approve=True, duration_seconds=7200)

    bot.service.sweep()
    bot.settle()

    failed = bot.service.get(extension.id)
    assert failed.status == "failed" and "pass the role's maximum (4h)" in (failed.error or "")
    assert bot.service.get(access.id).expires_at == _end(access)
    assert bot.provider.count("extend") == {}


def test_past_the_maximum_the_requester_may_not_approve_even_where_the_rule_allows_it(
    make_bot: Callable[..., Bot],
) -> None:
    own = APPROVERS_YAML.replace(PROD_RULE, PROD_RULE + "    allow_self_approval: true\n", 1)
    bot = make_bot(approvers=own)
    request_id = submit(bot, BOB, "prod-support prod 3h30m INC-18 look")
    assert "Approved" in click(bot, CAROL, "approve", request_id)
    bot.command(BOB, f"extend {request_id} 1h more")
    bot.settle()
    extension = _extension_of(bot, request_id)
    assert not extension.allow_self_approval

    assert "cannot decide your own" in click(bot, BOB, "approve", extension.id)
    assert "Approved" in click(bot, CAROL, "approve", extension.id)
    assert bot.service.get(extension.id).status == "extended"
