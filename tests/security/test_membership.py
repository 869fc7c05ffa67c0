"""Who is a member: only the installing workspace is served, guests only where a role
allows them, bots, deactivated accounts and other organisations' accounts never, and
`/jit list` shows a request only to its requester and its current approvers.

Every test drives the bot over the wire as Slack (or an attacker) would: correctly signed
payloads from another workspace or organisation, and accounts the fake Slack describes
as guests, bots, Slack Connect strangers or deactivated."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from bot.slack import blocks
from providers.base import GrantContext, GrantOutcome, Principal, TargetSpec
from providers.fake import FakeProvider
from tests.conftest import (
    ALICE,
    APPROVERS_YAML,
    BOB,
    CAROL,
    MALLORY,
    ROLES_YAML,
    SEC1,
    Bot,
)
from tests.e2e.helpers import click, requests_of, submit
from tests.fakes.slack_api import TEAM_ID

GUEST = "UGUEST"
BOTUSER = "UROBOT"
STRANGER = "USTRANGER"
PAST_THE_CACHE = timedelta(minutes=2)

# The lookups a payload that reached the domain would have made.
DOMAIN_CALLS = (
    "users.info",
    "users.lookupByEmail",
    "usergroups.list",
    "usergroups.users.list",
    "views.open",
    "chat.postMessage",
)


def nothing_reached_the_domain(bot: Bot) -> None:
    bot.settle()
    assert requests_of(bot, ALICE) == [] and requests_of(bot, BOB) == []
    assert bot.service.audit_events() == []
    assert bot.provider.calls == []
    assert [c.method for c in bot.slack.calls if c.method in DOMAIN_CALLS] == []


# --- the installing workspace, and only it ------------------------------------------------


def test_payload_from_another_team_is_refused(bot: Bot) -> None:
    # The review's exploit: a correctly signed command from another workspace was
    # auto-granted db-admin in dev.
    reply = bot.sim.as_team("T0OTHER").command(ALICE, "request db-admin dev 30m x")

    assert reply.status == 200
    assert reply.json is not None and reply.json["response_type"] == "ephemeral"
    assert "serves only the Slack workspace it is installed in" in reply.json["text"]
    assert "nothing was done" in reply.json["text"]
    nothing_reached_the_domain(bot)


def test_payload_from_another_enterprise_is_refused(bot: Bot) -> None:
    # Our workspace's id, but an organisation the installation is not part of.
    reply = bot.sim.as_team(TEAM_ID, "E0OTHER").command(ALICE, "request db-admin dev 30m x")

    assert reply.status == 200
    assert reply.json is not None
    assert "serves only the Slack workspace it is installed in" in reply.json["text"]
    nothing_reached_the_domain(bot)


def test_click_and_view_submission_from_another_team_are_refused(bot: Bot) -> None:
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    [dm] = bot.dms_to(BOB)
    calls_before = len(bot.slack.calls)
    outsider = bot.sim.as_team("T0OTHER")

    click_reply = outsider.block_action(BOB, "approve", request_id, message=dm)
    deny_reply = outsider.submit_view(
        BOB,
        {"callback_id": blocks.DENY_MODAL, "private_metadata": request_id},
        {"reason": {"reason": {"type": "plain_text_input", "value": "no"}}},
    )

    assert click_reply.status == 200 and click_reply.json is not None
    assert "serves only the Slack workspace" in click_reply.json["text"]
    assert deny_reply.status == 200 and deny_reply.body == ""
    bot.settle()
    assert bot.service.votes_of(request_id) == []
    assert bot.service.get(request_id).status == "pending"
    assert [c.method for c in bot.slack.calls[calls_before:] if c.method in DOMAIN_CALLS] == []


def test_a_user_of_another_team_inside_our_workspaces_payload_is_refused(bot: Bot) -> None:
    # Slack Connect: the payload names our workspace, its user another one.
    reply = bot.sim.send_payload(
        {
            "type": "block_actions",
            "team": {"id": TEAM_ID, "domain": "jit-test"},
            "user": {"id": ALICE, "username": "alice", "team_id": "T0OTHER"},
            "api_app_id": "A0001",
            "trigger_id": bot.sim.new_trigger_id(),
            "response_url": bot.slack.response_url("connect"),
            "actions": [{"type": "button", "action_id": "approve", "value": "R-AAAAAAAA"}],
        }
    )

    assert reply.status == 200 and reply.json is not None
    assert "serves only the Slack workspace" in reply.json["text"]
    nothing_reached_the_domain(bot)


# --- full members only, unless a role allows guests ---------------------------------------


@pytest.mark.parametrize(
    "kind", [{"is_ultra_restricted": True}, {"is_restricted": True}], ids=["single", "multi"]
)
def test_single_channel_guest_cannot_request_even_an_auto_approved_role(
    bot: Bot, kind: dict[str, bool]
) -> None:
    # db-admin has no requesters and is auto-approved in dev (as in the shipped example):
    # an omitted requesters means the workspace's full members, not anyone.
    bot.slack.add_user(GUEST, "guest@example.com", "guest", **kind)

    answer = bot.command(GUEST, "request db-admin dev 30m x")

    assert answer["response_type"] == "ephemeral"
    assert "Guest accounts may not request `db-admin`" in answer["text"]
    assert "allow_guests: true" in answer["text"]
    assert bot.command(GUEST, "roles")["text"] == "There is no role you may request."
    bot.settle()
    assert requests_of(bot, GUEST) == []
    assert bot.provider.calls == [] and bot.provider.holdings == set()


def test_bot_user_cannot_request(bot: Bot) -> None:
    bot.slack.add_user(BOTUSER, "robot@example.com", "robot", is_bot=True)

    answer = bot.command(BOTUSER, "request db-admin dev 30m x")

    assert "Bot and app accounts may not request `db-admin`" in answer["text"]
    bot.settle()
    assert requests_of(bot, BOTUSER) == []
    assert bot.provider.calls == []


def test_deactivated_user_cannot_request(bot: Bot) -> None:
    bot.slack.add_user(MALLORY, "mallory@example.com", "mallory", deleted=True)

    answer = bot.command(MALLORY, "request db-admin dev 30m x")

    assert "The Slack account UMALLORY is deactivated." in answer["text"]
    bot.settle()
    assert requests_of(bot, MALLORY) == [] and bot.provider.calls == []


def test_guest_may_request_where_role_allows_guests(make_bot: Callable[..., Bot]) -> None:
    roles = ROLES_YAML.replace(
        "    description: Fix data by hand\n",
        "    description: Fix data by hand\n    allow_guests: true\n",
    )
    bot = make_bot(roles=roles)
    bot.slack.add_user(GUEST, "guest@example.com", "guest", is_ultra_restricted=True)
    bot.slack.add_user(BOTUSER, "robot@example.com", "robot", is_bot=True)

    request_id = submit(bot, GUEST, "db-admin dev 30m x")

    assert bot.service.get(request_id).status == "active"
    assert bot.provider.holdings == {("guest@example.com", "db-dev")}
    # Only guests may be let in that way: bots never.
    assert "Bot and app accounts" in bot.command(BOTUSER, "request db-admin dev 30m x")["text"]
    # And other roles stay closed to the guest.
    answer = bot.command(GUEST, "request prod-support staging 1h x")
    assert "Guest accounts may not request `prod-support`" in answer["text"]


def test_guest_in_an_approver_group_is_not_asked_and_cannot_approve(bot: Bot) -> None:
    bot.slack.add_user(CAROL, "carol@example.com", "carol", is_restricted=True)

    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")

    assert bot.service.get(request_id).approvers == [BOB]
    assert bot.dms_to(CAROL) == []
    answer = click(bot, CAROL, "approve", request_id)
    assert "Guest accounts may not approve `prod-support`" in answer
    assert bot.service.votes_of(request_id) == []
    assert bot.service.get(request_id).status == "pending"


def test_slack_connect_user_matched_by_email_is_not_an_approver(
    make_bot: Callable[..., Bot],
) -> None:
    # users.lookupByEmail finds a Slack Connect account of another organisation too.
    approvers = APPROVERS_YAML.replace(
        "security: [USEC1, sec2@example.com]", "security: [USEC1, partner@other.example]"
    )
    bot = make_bot(approvers=approvers)
    bot.slack.add_user(
        STRANGER, "partner@other.example", "partner", team_id="T0OTHER", is_stranger=True
    )

    request_id = submit(bot, ALICE, "db-admin prod 1h fix order 42")

    assert bot.slack.calls_to("users.lookupByEmail")  # it was found, and set aside
    assert sorted(bot.service.get(request_id).approvers) == sorted([BOB, CAROL, SEC1])
    assert bot.dms_to(STRANGER) == []
    answer = click(bot, STRANGER, "approve", request_id)
    assert "belongs to another workspace or organisation" in answer
    assert bot.service.votes_of(request_id) == []


def test_slack_connect_user_matched_by_email_is_not_a_requester(
    make_bot: Callable[..., Bot],
) -> None:
    roles = ROLES_YAML.replace(
        "    description: Fix data by hand\n",
        "    description: Fix data by hand\n    requesters: [partner@other.example]\n",
    )
    bot = make_bot(roles=roles)
    bot.slack.add_user(
        STRANGER, "partner@other.example", "partner", team_id="T0OTHER", is_stranger=True
    )

    answer = bot.command(STRANGER, "request db-admin dev 30m x")

    assert "belongs to another workspace or organisation" in answer["text"]
    bot.settle()
    assert requests_of(bot, STRANGER) == [] and bot.provider.calls == []


# --- deactivation ---------------------------------------------------------------------------


def test_deactivated_users_active_grant_is_revoked_at_next_sweep(bot: Bot) -> None:
    request_id = submit(bot, ALICE, "db-admin dev 30m x")
    assert bot.service.get(request_id).status == "active"
    bot.slack.add_user(ALICE, "alice@example.com", "alice", deleted=True)
    bot.clock.advance(PAST_THE_CACHE)  # well before the grant's own expiry

    bot.service.sweep()
    bot.settle()

    request = bot.service.get(request_id)
    assert request.status == "revoked"
    assert request.end_reason == "requester deactivated"
    assert bot.provider.holdings == set()
    assert any(
        e.action == "revoked" and e.details.get("reason") == "requester deactivated"
        for e in bot.service.audit_events(request_id)
    )


def test_a_sweep_slack_cannot_answer_about_a_holder_revokes_nothing(bot: Bot) -> None:
    request_id = submit(bot, ALICE, "db-admin dev 30m x")
    bot.slack.add_user(ALICE, "alice@example.com", "alice", deleted=True)
    bot.clock.advance(PAST_THE_CACHE)
    bot.slack.fail_next("users.info", times=3, status=503)

    bot.service.sweep()
    bot.settle()

    assert bot.service.get(request_id).status == "active"
    assert bot.provider.holdings == {("alice@example.com", "db-dev")}
    # Slack answers again: the next sweep decides.
    bot.service.sweep()
    assert bot.service.get(request_id).status == "revoked"


def test_deactivated_approvers_vote_counts_for_nothing(bot: Bot) -> None:
    # db-admin in prod needs 2 approvals from sre-leads and security.
    request_id = submit(bot, ALICE, "db-admin prod 1h fix order 42")
    assert "(1 of 2)" in click(bot, BOB, "approve", request_id)
    bot.slack.add_user(BOB, "bob@example.com", "bob", deleted=True)
    bot.clock.advance(PAST_THE_CACHE)

    answer = click(bot, CAROL, "approve", request_id)

    assert "(1 of 2)" in answer
    assert bot.service.get(request_id).status == "pending"
    assert bot.provider.calls == []
    assert "granting access now" in click(bot, SEC1, "approve", request_id)
    assert bot.service.get(request_id).status == "active"


# --- /jit list --------------------------------------------------------------------------------


def test_list_hides_others_requests(bot: Bot) -> None:
    request_id = submit(bot, ALICE, "prod-support prod 1h secret-incident-7")

    def listed(user: str) -> bool:
        text = bot.command(user, "list")["text"]
        return request_id in text or "secret-incident-7" in text

    assert listed(ALICE) and listed(BOB) and listed(CAROL)
    assert not listed(MALLORY) and not listed(SEC1)
    # Bob leaves @sre-leads: he no longer approves the request, so no longer sees it.
    bot.slack.add_usergroup("SSRE", "sre-leads", [CAROL])
    bot.clock.advance(PAST_THE_CACHE)
    assert not listed(BOB)
    assert listed(CAROL) and listed(ALICE)


def test_many_holders_are_checked_in_turns_and_each_in_time(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Slack allows only so many lookups a minute: a sweep asks about a few people, the
    # next one about the next few, so everyone is asked about within a few sweeps.
    monkeypatch.setattr("bot.operations.sweeping._HOLDER_CHECKS", 1)
    first = submit(bot, ALICE, "db-admin dev 30m x")
    second = submit(bot, MALLORY, "db-admin dev 30m x")
    for user, email in ((ALICE, "alice@example.com"), (MALLORY, "mallory@example.com")):
        bot.slack.add_user(user, email, deleted=True)
    bot.clock.advance(PAST_THE_CACHE)

    bot.service.sweep()
    assert [bot.service.get(r).status for r in (first, second)] == ["revoked", "active"]
    bot.service.sweep()
    assert [bot.service.get(r).status for r in (first, second)] == ["revoked", "revoked"]
    assert bot.provider.holdings == set()


class _BrokenForBob(FakeProvider):
    """A provider with a bug: granting to bob raises something no provider should."""

    def grant(
        self, principal: Principal, target: TargetSpec, context: GrantContext
    ) -> GrantOutcome:
        if principal.email == "bob@example.com":
            raise RuntimeError("a bug in the provider")
        return super().grant(principal, target, context)


def test_a_grant_that_fails_unexpectedly_does_not_keep_the_sweeper_from_revoking_departed_holders(
    make_bot: Callable[..., Bot],
) -> None:
    provider = _BrokenForBob()
    bot = make_bot(providers={"fake": provider})
    alice_id = submit(bot, ALICE, "db-admin dev 30m x")
    assert bot.service.get(alice_id).status == "active"
    bob_id = submit(bot, BOB, "db-admin dev 30m y")  # its grant raises: left granting
    assert bot.service.get(bob_id).status in ("approved", "granting")
    bot.slack.add_user(ALICE, "alice@example.com", "alice", deleted=True)
    bot.clock.advance(PAST_THE_CACHE + bot.service.lease)

    bot.service.sweep()  # bob's grant raises again inside it
    bot.settle()

    assert bot.service.get(alice_id).status == "revoked"
    assert ("alice@example.com", "db-dev") not in provider.holdings
