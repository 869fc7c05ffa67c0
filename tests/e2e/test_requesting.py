"""Asking for access: the modal, the one-line form, routing to approvers, auto-approval,
and the read-only commands."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from datetime import timedelta

import pytest

from providers.base import ProviderError, TargetSpec
from providers.fake import FakeProvider
from tests.conftest import ALICE, BOB, CAROL, MALLORY, SEC1, SEC2, Bot, audit_lines
from tests.e2e.helpers import buttons, click, latest, open_request_modal, opened_view, submit
from tests.fakes.slack_client import select_value, text_value


def _options(view: dict, block_id: str) -> list[str]:  # type: ignore[type-arg]
    block = next(b for b in view["blocks"] if b.get("block_id") == block_id)
    return [o["value"] for o in block["element"]["options"]]


def test_request_without_text_opens_a_modal_with_only_the_roles_i_may_request(bot: Bot) -> None:
    reply = bot.sim.command(MALLORY, "request")
    assert reply.status == 200
    bot.settle()
    view = opened_view(bot, reply.trigger_id)
    assert _options(view, "role") == ["db-admin"]  # prod-support is for @engineering only

    reply = bot.sim.command(ALICE, "request")
    bot.settle()
    view = opened_view(bot, reply.trigger_id)
    assert _options(view, "role") == ["prod-support", "db-admin"]
    assert _options(view, "environment") == ["prod", "staging"]
    duration = next(b for b in view["blocks"] if b["block_id"] == "duration")
    assert duration["element"]["initial_value"] == "1h"
    assert "at most 4h" in duration["hint"]["text"]


def test_choosing_a_role_in_the_modal_offers_that_roles_environments(bot: Bot) -> None:
    reply = bot.sim.command(ALICE, "request")
    bot.settle()
    view = opened_view(bot, reply.trigger_id)
    bot.sim.select_action(ALICE, "role", "db-admin", view=view, block_id="role")
    bot.settle()
    updated = bot.slack.view(view["id"])
    assert _options(updated, "environment") == ["prod", "dev"]
    duration = next(b for b in updated["blocks"] if b["block_id"] == "duration")
    assert duration["element"]["initial_value"] == "30m"


def _form(role: str, env: str, duration: str, reason: str) -> dict:  # type: ignore[type-arg]
    return {
        "role": {"role": select_value(role)},
        "environment": {"environment": select_value(env)},
        "duration": {"duration": text_value(duration)},
        "reason": {"reason": text_value(reason)},
    }


@pytest.mark.parametrize(
    ("form", "field", "words"),
    [
        (("prod-support", "prod", "9h", "INC-1"), "duration", "4h"),
        (("prod-support", "prod", "soon", "INC-1"), "duration", "not a duration"),
        (("prod-support", "prod", "1h", "   "), "reason", "why"),
        (("prod-support", "qa", "1h", "INC-1"), "environment", "prod, staging"),
    ],
)
def test_an_invalid_modal_submission_gets_inline_field_errors(
    bot: Bot, form: tuple[str, str, str, str], field: str, words: str
) -> None:
    view = open_request_modal(bot, ALICE)
    reply = bot.sim.submit_view(ALICE, view, _form(*form))
    assert reply.status == 200
    assert reply.json is not None and reply.json["response_action"] == "errors"
    assert list(reply.json["errors"]) == [field]
    assert words in reply.json["errors"][field]
    bot.settle()
    assert bot.service.mine(ALICE) == []


def test_a_modal_submission_from_someone_not_eligible_is_refused_by_dm_after_the_ack(
    bot: Bot,
) -> None:
    # Who may ask is looked up in Slack, so it is not part of the modal's answer (which
    # must come within three seconds): the modal closes and the refusal comes as a DM.
    view = open_request_modal(bot, ALICE)
    reply = bot.sim.submit_view(MALLORY, view, _form("prod-support", "prod", "1h", "INC-1"))
    assert reply.status == 200 and not reply.body
    bot.settle()
    assert "not among the requesters of `prod-support`" in bot.dms_to(MALLORY)[-1]["text"]
    assert bot.service.mine(MALLORY) == []


def test_a_valid_modal_submission_stores_the_request_and_asks_the_approvers(bot: Bot) -> None:
    view = open_request_modal(bot, ALICE)
    reply = bot.sim.submit_view(ALICE, view, _form("prod-support", "prod", "90m", "INC-9"))
    assert reply.status == 200 and not reply.body
    bot.settle()
    [request] = bot.service.mine(ALICE)
    assert (request.role, request.environment, request.duration_seconds) == (
        "prod-support",
        "prod",
        5400,
    )
    assert request.reason == "INC-9"
    assert len(bot.dms_to(BOB)) == 1 and len(bot.dms_to(CAROL)) == 1


def test_one_slack_interaction_delivered_twice_is_one_request(bot: Bot) -> None:
    """A command or submission re-delivered where the replay guard cannot see it (another
    replica, a restarted process) has the trigger_id of the first: one request, one DM."""
    text = "request prod-support prod 1h INC-1"
    replies = [bot.sim.command(ALICE, text)]
    replies.append(bot.sim.command(ALICE, text, trigger_id=replies[0].trigger_id))
    answers = [bot.slack.wait_for_response(name=r.response_url_name)["text"] for r in replies]
    request_id = answers[0].split()[0]
    assert request_id.startswith("R-") and answers[1].split()[0] == request_id

    view = open_request_modal(bot, ALICE)
    form = _form("prod-support", "staging", "1h", "INC-2")
    submitted = bot.sim.submit_view(ALICE, view, form)
    bot.sim.submit_view(ALICE, view, form, trigger_id=submitted.trigger_id)
    bot.settle()

    assert sorted((r.environment, r.reason) for r in bot.service.mine(ALICE)) == [
        ("prod", "INC-1"),
        ("staging", "INC-2"),
    ]
    # One DM per request to its approvers, none for the re-deliveries.
    assert len(bot.dms_to(BOB)) == 1 and len(bot.dms_to(SEC1)) == 1
    assert [e.action for e in bot.service.audit_events(request_id)].count("requested") == 1


def test_one_interaction_on_two_replicas_at_once_is_one_request(
    make_bot: Callable[..., Bot],
) -> None:
    """Both replicas look for the interaction before either has stored it: the one that
    stores second breaks the unique origin and answers with the request stored first.

    Replica A is held inside its request, after that look, by Slack rate-limiting its
    approver lookup (its Retry-After wait is the test's to end); replica B then handles
    the same delivery from start to end."""
    entered, release = threading.Event(), threading.Event()

    def held(seconds: float) -> None:
        entered.set()
        assert release.wait(30), "replica A was never released"

    a = make_bot(sleep=held)
    b = make_bot()
    # One Slack app, two replicas: B's deliveries come from the same sim (its response_url
    # names go on counting), sent to B's address.
    to_b = copy.copy(a.sim)
    to_b.url = b.sim.url
    # A warms its directory on a request whose approvers are another group's, so its
    # next prod-support request reads @sre-leads afresh, after the look.
    a.command(ALICE, "request prod-support staging 1h INC-0")
    a.slack.fail_next("usergroups.users.list", retry_after=1, where={"usergroup": "SSRE"})
    text = "request prod-support prod 1h INC-1"
    first = a.sim.command(ALICE, text)
    assert entered.wait(30), "replica A never reached its approver lookup"
    # A was held on the approvers' group (sre-leads), which it reads after its look for
    # the interaction (the requesters' group is read before it, in the check).
    [limited] = [c for c in a.slack.calls if c.status == 429]
    assert limited.params.get("usergroup") == "SSRE"
    second = to_b.command(ALICE, text, trigger_id=first.trigger_id)
    answered_b = b.slack.wait_for_response(name=second.response_url_name)["text"]
    release.set()
    answered_a = a.slack.wait_for_response(name=first.response_url_name)["text"]

    request_id = answered_b.split()[0]
    assert request_id.startswith("R-") and answered_a.split()[0] == request_id
    a.settle()
    b.settle()
    assert sorted(r.reason for r in b.service.mine(ALICE)) == ["INC-0", "INC-1"]
    # The approvers and the audit channel heard of it once.
    for approver in (BOB, CAROL):
        assert [request_id in m["text"] for m in a.slack.messages_in(approver)] == [True]
    requested = [line for line in audit_lines(a.slack) if "*requested*" in line]
    assert sum(request_id in line for line in requested) == 1


class _CloudDown(FakeProvider):
    """A cloud that cannot say what a target stands for (an OU's accounts) right now."""

    def expand(self, target: TargetSpec) -> list[TargetSpec]:
        raise ProviderError("ThrottlingException: Rate exceeded", retryable=True)


def test_a_cloud_that_cannot_expand_the_targets_is_a_clear_refusal(make_bot) -> None:  # type: ignore[no-untyped-def]
    bot: Bot = make_bot(providers={"fake": _CloudDown()})

    answer = bot.command(ALICE, "request prod-support prod 1h INC-1")["text"]

    assert "could not work out what `prod-support` in `prod` grants" in answer
    assert "ThrottlingException" in answer and "nothing was requested" in answer
    assert "Something went wrong" not in answer
    assert bot.service.mine(ALICE) == [] and bot.dms_to(BOB) == []


@pytest.mark.parametrize(
    ("user", "text", "words"),
    [
        (ALICE, "request nope prod 1h x", ["no role `nope`", "prod-support, db-admin"]),
        (MALLORY, "request prod-support prod 1h x", ["not among the requesters", "db-admin"]),
        (ALICE, "request prod-support qa 1h x", ["no environment `qa`", "prod, staging"]),
        (ALICE, "request prod-support prod 5h x", ["longer than", "4h"]),
        (ALICE, "request prod-support prod 2hours x", ["not a duration", "30m"]),
        (ALICE, "request prod-support prod 1h", ["Say why"]),
        (ALICE, "request prod-support", ["no environment ``", "prod, staging"]),
    ],
)
def test_every_mistake_in_an_inline_request_is_explained_and_nothing_is_stored(
    bot: Bot, user: str, text: str, words: list[str]
) -> None:
    answer = bot.command(user, text)
    assert answer["response_type"] == "ephemeral"
    for word in words:
        assert word in answer["text"]
    bot.settle()
    assert bot.service.mine(user) == []
    assert bot.service.audit_events() == []
    assert not bot.slack.calls_to("chat.postMessage")


def test_approvers_come_from_ids_emails_and_user_groups_and_each_gets_the_concrete_targets(
    bot: Bot,
) -> None:
    request_id = submit(bot, ALICE, "db-admin prod 1h fix order 42")
    # @sre-leads → BOB, CAROL; security → USEC1 by id, sec2@example.com by email.
    assert bot.slack.calls_to("usergroups.users.list")
    assert [c.params["email"] for c in bot.slack.calls_to("users.lookupByEmail")] == [
        "sec2@example.com"
    ]
    for approver in (BOB, CAROL, SEC1, SEC2):
        [dm] = bot.dms_to(approver)
        body = str(dm["blocks"])
        for fact in (f"<@{ALICE}>", "db-admin", "prod", "1h", "fix order 42", "db-prod"):
            assert fact in body
        assert [(b["action_id"], b["value"]) for b in buttons(dm)] == [
            ("approve", request_id),
            ("deny", request_id),
        ]
    assert bot.dms_to(MALLORY) == [] and bot.dms_to(ALICE)[-1]["text"].count("<@U") == 4
    assert bot.service.get(request_id).approvers == sorted([BOB, CAROL, SEC1, SEC2])


def test_first_matching_rule_wins_by_role_environment_and_requester(make_bot, slack) -> None:  # type: ignore[no-untyped-def]
    approvers = """
    groups:
      sre-leads: ["@sre-leads"]
      security: [USEC1]
    rules:
      - roles: [db-admin]
        environments: [prod]
        requesters: [UMALLORY]
        approvers: [security]
      - roles: ["*"]
        environments: ["*"]
        approvers: [sre-leads]
    """
    bot = make_bot(approvers=approvers)
    submit(bot, MALLORY, "db-admin prod 1h x")
    submit(bot, ALICE, "db-admin prod 1h x")
    assert len(bot.dms_to(SEC1)) == 1  # only Mallory's request
    assert len(bot.dms_to(BOB)) == 1  # only Alice's request


def test_auto_approved_requests_are_granted_at_once_and_still_audited_and_posted(
    bot: Bot,
) -> None:
    answer = bot.command(ALICE, "request db-admin dev 30m seed data")
    assert "approved by rule" in answer["text"]
    bot.settle()
    assert bot.provider.holdings == {("alice@example.com", "db-dev")}
    [request] = bot.service.mine(ALICE)
    assert request.status == "active" and request.auto_approve
    actions = [e.action for e in bot.service.audit_events(request.id)]
    assert actions == ["requested", "auto_approved", "grant_started", "granted"]
    posts = bot.audit_posts()
    assert len(posts) == 4 and "auto_approved" in posts[1]
    assert not any(bot.dms_to(u) for u in (BOB, CAROL, SEC1, SEC2))


def test_list_shows_my_pending_and_active_requests_and_what_waits_for_me(bot: Bot) -> None:
    pending = submit(bot, ALICE, "prod-support prod 1h INC-7")
    bot.command(ALICE, "request db-admin dev 2h seed")
    bot.settle()
    bot.clock.advance(timedelta(minutes=30))
    mine = bot.command(ALICE, "list")["text"]
    assert pending in mine and "db-admin" in mine and "1h30m left" in mine
    theirs = bot.command(BOB, "list")["text"]
    assert "Waiting for your decision" in theirs and pending in theirs and "INC-7" in theirs
    assert pending not in bot.command(MALLORY, "list")["text"]


def test_roles_shows_what_i_may_request_where_for_how_long_approved_by_whom(bot: Bot) -> None:
    text = bot.command(ALICE, "roles")["text"]
    assert "prod-support" in text and "db-admin" in text
    assert "`prod`: up to 4h, 1 approval(s) from sre-leads" in text
    assert "`prod`: up to 2h, 2 approval(s) from sre-leads, security" in text
    assert "`dev`: up to 2h, approved automatically" in text
    assert "prod-support" not in bot.command(MALLORY, "roles")["text"]


@pytest.mark.parametrize("text", ["help", "", "frobnicate now"])
def test_help_and_unknown_subcommands_get_the_grammar(bot: Bot, text: str) -> None:
    answer = bot.command(ALICE, text)["text"]
    grammar = "/jit request &lt;role&gt; &lt;environment&gt; &lt;duration&gt; &lt;reason…&gt;"
    assert grammar in answer
    assert "Traceback" not in answer
    if text.startswith("frob"):
        assert "I don't know `/jit frobnicate now`" in answer


def test_requester_can_cancel_a_pending_request(bot: Bot) -> None:
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    assert "Cancelled" in bot.command(ALICE, f"cancel {request_id}")["text"]
    bot.settle()
    assert bot.service.get(request_id).status == "cancelled"
    assert not buttons(latest(bot.dms_to(BOB)[-1]))
    assert "already been decided" in click(bot, BOB, "approve", request_id)


def test_a_request_to_a_large_approver_group_reaches_every_approver(make_bot, slack) -> None:  # type: ignore[no-untyped-def]
    """Two hundred approvers would make the "Approvers:" line longer than the 3,000
    characters Slack takes in a text: the line names as many as fit, then how many more."""
    oncall = [f"UONCALL{n:03d}" for n in range(200)]
    for user in oncall:
        slack.add_user(user, f"{user.lower()}@example.com", user.lower())
    slack.add_usergroup("SONCALL", "oncall", oncall)
    approvers = """
    groups:
      oncall: ["@oncall"]
    rules:
      - roles: ["*"]
        environments: ["*"]
        approvers: [oncall]
    settings:
      allowed_email_domains: [example.com]
    """
    bot = make_bot(approvers=approvers)
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-7")
    bot.settle()
    for user in (oncall[0], oncall[-1]):
        [dm] = bot.dms_to(user)
        assert [b["value"] for b in buttons(dm)] == [request_id, request_id]
        [line] = [e["text"] for b in dm["blocks"] if b["type"] == "context" for e in b["elements"]]
        assert len(line) <= 3000 and line.endswith(" more")
        shown = line.count("<@UONCALL")
        assert f" and {200 - shown} more" in line and shown > 100
    # The requester is told, and /jit list shows it, each naming some and counting the rest.
    told = bot.dms_to(ALICE)[-1]
    assert request_id in told["text"] and " more" in told["text"]
    listed = bot.command(ALICE, "list")["text"]
    assert request_id in listed and " more" in listed and len(listed) < 3000
