""" "Request again" over the real Slack wire, on SQLite and PostgreSQL: `/jit list` offers
it on the requester's recent finished requests; clicked, it opens the request form filled
in with that request's role, environment, duration and reason, read from the database at
the click, for its own requester only; where the config has moved on since (a role gone
or no longer theirs, an environment gone, a shorter maximum) the form says so; sent, the
form is a new request, checked and asked like any other."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from bot.slack import blocks
from tests.conftest import ALICE, BOB, CAROL, Bot, stop
from tests.e2e.helpers import open_deny, opened_view, requests_of, submit
from tests.fakes.slack_client import Reply, select_value, text_value
from tests.kit.configs import APPROVERS_YAML, ROLES_YAML

PROD_SUPPORT_RULE = """  - roles: [prod-support]
    environments: [prod]
    approvers: [sre-leads]
    required_approvals: 1
"""
PROD_SUPPORT_PROD = """      prod:
        - provider: fake
          resource: prod-db
        - provider: fake
          resource: prod-logs
"""
# db-admin alone: prod-support is gone, and so is the rule that approved it.
WITHOUT_PROD_SUPPORT = (
    ROLES_YAML[: ROLES_YAML.index("  prod-support:")]
    + ROLES_YAML[ROLES_YAML.index("  db-admin:") :]
)
# prod-support for Bob alone.
BOB_ONLY = ROLES_YAML.replace('requesters: ["@engineering"]', "requesters: [UBOB]")
# prod-support in staging only.
WITHOUT_PROD = ROLES_YAML.replace(PROD_SUPPORT_PROD, "")
# prod-support for at most 2h.
SHORTER = ROLES_YAML.replace("max_duration: 4h", "max_duration: 2h")
HOME = {"id": "VHOME", "type": "home", "callback_id": ""}


def _denied(bot: Bot, text: str = "prod-support prod 3h INC-7 checkout <errors> & 5xx") -> str:
    """Alice asks, Carol denies: the id of Alice's finished request."""
    request_id = submit(bot, ALICE, text)
    view = open_deny(bot, CAROL, request_id)
    assert bot.sim.submit_view(CAROL, view, {"reason": {"reason": text_value("no")}}).ok
    bot.settle()
    assert bot.service.get(request_id).status == "denied"
    return request_id


def _again(bot: Bot, user: str, request_id: str, **where: Any) -> Reply:
    """Click "Request again" on ``request_id`` as ``user`` (on a message, or ``view``)."""
    reply = bot.sim.block_action(user, blocks.REQUEST_AGAIN, request_id, **where)
    assert reply.status == 200, reply
    bot.settle()
    return reply


def _filled(view: dict[str, Any]) -> dict[str, str | None]:
    """What each field of a form shows as it opens: a select's chosen option, a text
    input's text (None: nothing)."""
    shown: dict[str, str | None] = {}
    for block in view["blocks"]:
        if block["type"] == "input":
            element = block["element"]
            chosen = (element.get("initial_option") or {}).get("value")
            shown[block["block_id"]] = chosen or element.get("initial_value")
    return shown


def _notes(view: dict[str, Any]) -> str:
    return "\n".join(b["text"]["text"] for b in view["blocks"] if b.get("block_id") == "again")


def _send(bot: Bot, view: dict[str, Any], shown: dict[str, str | None]) -> Reply:
    """Send the form as Alice, with what it shows."""
    values = {
        "role": {"role": select_value(str(shown["role"]))},
        "environment": {"environment": select_value(str(shown["environment"]))},
        "duration": {"duration": text_value(str(shown["duration"]))},
        "reason": {"reason": text_value(str(shown["reason"]))},
    }
    reply = bot.sim.submit_view(ALICE, view, values)
    assert reply.status == 200, reply
    bot.settle()
    return reply


def _again_buttons(answer: dict[str, Any]) -> list[str]:
    """The request ids the "Request again" buttons of a message carry, in order."""
    return [
        block["accessory"]["value"]
        for block in answer.get("blocks") or []
        if (block.get("accessory") or {}).get("action_id") == blocks.REQUEST_AGAIN
    ]


def test_list_offers_request_again_on_finished_requests_newest_first(bot: Bot) -> None:
    older = _denied(bot)
    bot.clock.advance(timedelta(minutes=1))
    newer = submit(bot, ALICE, "prod-support prod 1h INC-8")
    bot.command(ALICE, f"cancel {newer}")
    bot.clock.advance(timedelta(minutes=1))
    pending = submit(bot, ALICE, "prod-support prod 1h INC-9")

    answer = bot.command(ALICE, "list")

    assert _again_buttons(answer) == [newer, older]
    # The text fallback says what the blocks do, and the list keeps what it showed.
    text = answer["text"]
    assert "*Recently finished*" in text and f"{newer} `prod-support`" in text
    assert ": denied" in text and ": cancelled" in text
    assert "*Your pending requests*" in text and pending in text
    assert pending in str(answer["blocks"])
    assert _again_buttons(bot.command(BOB, "list")) == []


def test_request_again_opens_the_form_filled_in_and_sends_a_new_request(bot: Bot) -> None:
    denied = _denied(bot)

    view = opened_view(bot, _again(bot, ALICE, denied).trigger_id)

    assert view["callback_id"] == blocks.REQUEST_MODAL
    shown = _filled(view)
    assert shown == {
        "role": "prod-support",
        "environment": "prod",
        "duration": "3h",
        "reason": "INC-7 checkout <errors> & 5xx",  # plain text in an input: as typed
    }
    assert denied in _notes(view) and ":warning:" not in _notes(view)

    _send(bot, view, shown)

    [new] = [r for r in requests_of(bot, ALICE) if r.id != denied]
    assert (new.role, new.environment, new.duration_seconds, new.reason, new.status) == (
        "prod-support",
        "prod",
        3 * 3600,
        "INC-7 checkout <errors> & 5xx",
        "pending",
    )
    asked = bot.dms_to(CAROL)[-1]
    assert new.id in asked["text"] and "`prod-support` in `prod` for 3h" in asked["text"]
    assert "checkout &lt;errors&gt; &amp; 5xx" in str(asked["blocks"])


def test_an_expired_request_is_offered_again_and_opens_filled_in(bot: Bot) -> None:
    expired = submit(bot, ALICE, "db-admin prod 45m nightly fix")
    bot.clock.advance(timedelta(hours=1, minutes=1))
    bot.service.sweep()
    bot.settle()
    assert bot.service.get(expired).status == "expired"

    answer = bot.command(ALICE, "list")
    assert _again_buttons(answer) == [expired] and "expired without a decision" in answer["text"]

    view = opened_view(bot, _again(bot, ALICE, expired).trigger_id)
    assert _filled(view) == {
        "role": "db-admin",
        "environment": "prod",
        "duration": "45m",
        "reason": "nightly fix",
    }


def test_request_again_from_the_home_tab_opens_the_form(bot: Bot) -> None:
    denied = _denied(bot)

    reply = _again(bot, ALICE, denied, view=HOME)

    assert reply.response_url_name is None  # Slack gives a Home click no response_url
    assert _filled(opened_view(bot, reply.trigger_id))["role"] == "prod-support"


def test_someone_elses_request_is_refused_and_nothing_opens(bot: Bot) -> None:
    denied = _denied(bot)

    reply = _again(bot, BOB, denied)

    answer = bot.slack.wait_for_response(name=reply.response_url_name)
    assert f"{denied} is someone else's request" in answer["text"]
    assert not [
        c for c in bot.slack.calls_to("views.open") if c.params["trigger_id"] == reply.trigger_id
    ]
    assert [r.id for r in requests_of(bot, BOB)] == []


def test_someone_elses_request_from_the_home_tab_is_refused_in_a_small_modal(bot: Bot) -> None:
    denied = _denied(bot)

    reply = _again(bot, BOB, denied, view=HOME)

    notice = opened_view(bot, reply.trigger_id)
    assert "someone else's request" in str(notice["blocks"])
    assert notice.get("submit") is None and notice["callback_id"] != blocks.REQUEST_MODAL


@pytest.mark.parametrize("value", ["R-ZZZZZZZZ", "not an id"])
def test_a_request_that_is_not_there_is_refused(bot: Bot, value: str) -> None:
    reply = _again(bot, ALICE, value)
    answer = bot.slack.wait_for_response(name=reply.response_url_name)
    assert "no request" in answer["text"].lower()
    assert not bot.slack.calls_to("views.open")


def test_a_request_still_pending_is_not_offered_again(bot: Bot) -> None:
    pending = submit(bot, ALICE, "prod-support prod 1h INC-1")
    reply = _again(bot, ALICE, pending)
    answer = bot.slack.wait_for_response(name=reply.response_url_name)
    assert f"{pending} is pending, not finished" in answer["text"]
    assert not bot.slack.calls_to("views.open")


@pytest.mark.parametrize(
    ("roles", "approvers", "why"),
    [
        (
            WITHOUT_PROD_SUPPORT,
            APPROVERS_YAML.replace(PROD_SUPPORT_RULE, ""),
            "`prod-support` is no longer a role",
        ),
        (BOB_ONLY, APPROVERS_YAML, "You may no longer request `prod-support`"),
    ],
    ids=["gone", "no longer yours"],
)
def test_a_role_that_is_no_longer_requestable_is_left_out_and_the_form_says_why(
    make_bot: Callable[..., Bot], roles: str, approvers: str, why: str
) -> None:
    first = make_bot()
    denied = _denied(first)
    stop(first)
    bot = make_bot(roles=roles, approvers=approvers)

    view = opened_view(bot, _again(bot, ALICE, denied).trigger_id)

    assert _filled(view) == {
        "role": "db-admin",  # what /jit request opens with: the first role she may request
        "environment": "prod",
        "duration": "30m",
        "reason": "INC-7 checkout <errors> & 5xx",
    }
    assert why in _notes(view)


def test_an_environment_the_role_no_longer_has_is_left_unchosen(
    make_bot: Callable[..., Bot],
) -> None:
    first = make_bot()
    denied = _denied(first)
    stop(first)
    bot = make_bot(roles=WITHOUT_PROD, approvers=APPROVERS_YAML.replace(PROD_SUPPORT_RULE, ""))

    view = opened_view(bot, _again(bot, ALICE, denied).trigger_id)

    assert _filled(view) == {
        "role": "prod-support",
        "environment": None,
        "duration": "3h",
        "reason": "INC-7 checkout <errors> & 5xx",
    }
    assert "`prod-support` no longer has the environment `prod`" in _notes(view)


def test_a_duration_over_the_maximum_now_is_capped_with_a_note(
    make_bot: Callable[..., Bot],
) -> None:
    first = make_bot()
    denied = _denied(first)
    stop(first)
    bot = make_bot(roles=SHORTER)

    view = opened_view(bot, _again(bot, ALICE, denied).trigger_id)

    shown = _filled(view)
    assert shown["duration"] == "2h"
    assert "3h is longer than `prod-support` allows now" in _notes(view)
    _send(bot, view, shown)
    [new] = [r for r in requests_of(bot, ALICE) if r.id != denied]
    assert (new.duration_seconds, new.status) == (2 * 3600, "pending")
