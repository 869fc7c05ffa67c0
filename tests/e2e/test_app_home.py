"""The App Home over the real Slack wire, on SQLite and PostgreSQL: opening it
(``app_home_opened``) publishes my access, my requests, what waits for my decision and
what I asked for lately, and for admins everyone's active access and the break-glass
uses to review. Its buttons are the DMs' (checked against the database at click time,
whatever the click carried), answered by a notice at the top of the re-published Home;
and a Home is refreshed when a change concerns its viewer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from tests.conftest import ALICE, BOB, CAROL, MALLORY, SEC1, SEC2, Bot, stop
from tests.e2e.helpers import click, opened_view, submit
from tests.e2e.test_breakglass import BREAK_GLASS_YAML, _glass
from tests.fakes.slack_client import text_value

# Mallory, in no group, is an admin by email; Carol, an approver, by id.
ADMINS_YAML = BREAK_GLASS_YAML.replace(
    "settings:\n", "settings:\n  admins: [mallory@example.com, UCAROL]\n", 1
)
ACCESS, PENDING, AWAITING, RECENT = (
    "Your access",
    "Your pending requests",
    "Waiting for your decision",
    "Recent requests",
)
EVERYONE, REVIEWS = "Everyone's active access", "Break-glass uses to review"


def _open(bot: Bot, user: str) -> dict[str, Any]:
    """``user`` opens the Home tab; return the Home the bot published."""
    reply = bot.sim.open_home(user)
    assert reply.status == 200, reply
    bot.settle()
    home = bot.slack.home(user)
    assert home is not None and home["type"] == "home", home
    return home


def _home(bot: Bot, user: str) -> dict[str, Any]:
    """The Home ``user`` sees now, without opening it again."""
    bot.settle()
    home = bot.slack.home(user)
    assert home is not None
    return home


def _press(bot: Bot, user: str, action: str, value: str) -> dict[str, Any]:
    """Click a button on ``user``'s Home (as published, whatever it shows: a forged click
    is a click too); return the Home re-published after it."""
    reply = bot.sim.block_action(user, action, value, view=bot.slack.home(user))
    assert reply.status == 200 and reply.response_url_name is None, reply
    bot.settle()
    return _home(bot, user)


def _section(home: dict[str, Any], title: str) -> list[dict[str, Any]]:
    """The blocks under the heading ``title``, up to the next heading; [] if absent."""
    found: list[dict[str, Any]] | None = None
    sections: dict[str, list[dict[str, Any]]] = {}
    for block in home["blocks"]:
        if block["type"] == "header":
            found = sections.setdefault(block["text"]["text"], [])
        elif block["type"] == "divider":
            found = None
        elif found is not None:
            found.append(block)
    return sections.get(title, [])


def _notice(home: dict[str, Any]) -> str:
    """What the Home says above its first heading (a click's outcome), or ""."""
    first = home["blocks"][0]
    return str(first["text"]["text"]) if first["type"] == "section" else ""


def _text(blocks: list[dict[str, Any]]) -> str:
    shown = []
    for block in blocks:
        if "text" in block:
            shown.append(block["text"]["text"])
        shown += [e["text"] for e in block.get("elements", []) if e.get("type") == "mrkdwn"]
    return "\n".join(shown)


def _buttons(blocks: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(action id, value) of every button, in order."""
    elements = [b["accessory"] for b in blocks if "accessory" in b]
    elements += [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    return [(e["action_id"], e["value"]) for e in elements if e["type"] == "button"]


def _granted(bot: Bot, text: str, requester: str = ALICE, approver: str = BOB) -> str:
    request_id = submit(bot, requester, text)
    assert "Approved" in click(bot, approver, "approve", request_id)
    assert bot.service.get(request_id).status == "active"
    return request_id


def test_opening_the_home_shows_my_access_requests_and_decisions_with_their_buttons(
    bot: Bot,
) -> None:
    active = _granted(bot, "prod-support staging 2h look at logs", approver=SEC1)
    cancelled = submit(bot, ALICE, "db-admin prod 1h fix a row")
    assert "Cancelled" in bot.command(ALICE, f"cancel {cancelled}")["text"]
    pending = submit(bot, ALICE, "prod-support prod 1h INC-9 checkout errors")

    home = _open(bot, ALICE)
    assert _notice(home) == ""
    assert _buttons(_section(home, ACCESS)) == [("extend", active), ("end_access", active)]
    assert "2h left" in _text(_section(home, ACCESS)) and "`staging`" in _text(
        _section(home, ACCESS)
    )
    assert _buttons(_section(home, PENDING)) == [("cancel_request", pending)]
    assert f"<@{BOB}>, <@{CAROL}>" in _text(_section(home, PENDING))
    assert "Nothing right now" in _text(_section(home, AWAITING))
    assert _buttons(_section(home, RECENT)) == [("request_again", cancelled)]
    assert "cancelled" in _text(_section(home, RECENT))
    assert _section(home, EVERYONE) == [] and _section(home, REVIEWS) == []

    approver = _open(bot, BOB)
    assert _buttons(_section(approver, AWAITING)) == [("approve", pending), ("deny", pending)]
    assert "INC-9 checkout errors" in _text(_section(approver, AWAITING))
    assert _buttons(_section(approver, ACCESS)) == []
    # The Messages tab opened is no Home to publish.
    calls = len(bot.slack.calls_to("views.publish"))
    bot.sim.event(CAROL, {"type": "app_home_opened", "channel": "DCAROL", "tab": "messages"})
    bot.settle()
    assert len(bot.slack.calls_to("views.publish")) == calls and bot.slack.home(CAROL) is None


def test_approve_on_the_home_counts_each_approver_once_and_refuses_what_it_may_not(
    bot: Bot,
) -> None:
    request_id = submit(bot, ALICE, "db-admin prod 1h migration")  # 2 of sre-leads, security
    for user in (BOB, CAROL, SEC1):
        assert ("approve", request_id) in _buttons(_section(_open(bot, user), AWAITING))

    home = _press(bot, BOB, "approve", request_id)
    assert "(1 of 2)" in _notice(home)
    assert _section(home, AWAITING) != [] and request_id not in str(_section(home, AWAITING))
    assert "already voted" in _notice(_press(bot, BOB, "approve", request_id))
    assert bot.service.get(request_id).status == "pending"

    assert "granting access now" in _notice(_press(bot, SEC1, "approve", request_id))
    assert bot.service.get(request_id).status == "active"
    assert bot.provider.holdings == {("alice@example.com", "db-prod")}
    # Carol's Home lost the row when Sec1 decided; her click on it now is refused.
    assert request_id not in str(_section(_home(bot, CAROL), AWAITING))
    assert "already been decided" in _notice(_press(bot, CAROL, "approve", request_id))

    own = submit(bot, BOB, "prod-support prod 1h INC-1")  # Bob is an sre-lead too
    assert own not in str(_section(_open(bot, BOB), AWAITING))
    assert "your own request" in _notice(_press(bot, BOB, "approve", own))
    _open(bot, MALLORY)
    assert "not an approver" in _notice(_press(bot, MALLORY, "approve", own))
    assert "There is no request" in _notice(_press(bot, BOB, "approve", "R-<!here>"))
    assert bot.service.get(own).status == "pending" and bot.service.votes_of(own) == []


def test_deny_on_the_home_opens_the_reason_form_and_the_row_moves_once_denied(bot: Bot) -> None:
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    _open(bot, ALICE)
    _open(bot, CAROL)
    # Mallory may not deny: no reason form, and her Home (and the modal) say why.
    reply = bot.sim.block_action(MALLORY, "deny", request_id, view=_open(bot, MALLORY))
    bot.settle()
    assert "not an approver" in _notice(_home(bot, MALLORY))
    assert opened_view(bot, reply.trigger_id)["callback_id"] != "jit_deny"

    reply = bot.sim.block_action(CAROL, "deny", request_id, view=bot.slack.home(CAROL))
    bot.settle()
    form = opened_view(bot, reply.trigger_id)
    assert (form["callback_id"], form["private_metadata"]) == ("jit_deny", request_id)
    bot.sim.submit_view(CAROL, form, {"reason": {"reason": text_value("change freeze")}})
    bot.settle()

    assert bot.service.get(request_id).status == "denied"
    assert request_id not in str(_section(_home(bot, CAROL), AWAITING))
    mine = _home(bot, ALICE)
    assert _section(mine, PENDING) and request_id not in str(_section(mine, PENDING))
    assert _buttons(_section(mine, RECENT)) == [("request_again", request_id)]
    assert "denied" in _text(_section(mine, RECENT))
    assert "already been decided" in _notice(_press(bot, CAROL, "deny", request_id))


def test_cancel_on_the_home_cancels_my_request_and_no_one_elses(bot: Bot) -> None:
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    _open(bot, ALICE)
    _open(bot, MALLORY)
    assert "Only the requester" in _notice(_press(bot, MALLORY, "cancel_request", request_id))
    assert bot.service.get(request_id).status == "pending"

    home = _press(bot, ALICE, "cancel_request", request_id)
    assert f"Cancelled {request_id}" in _notice(home)
    assert bot.service.get(request_id).status == "cancelled"
    assert "Nothing right now" in _text(_section(home, PENDING))
    assert _buttons(_section(home, RECENT)) == [("request_again", request_id)]
    assert "not pending" in _notice(_press(bot, ALICE, "cancel_request", request_id))


def test_extend_and_end_access_now_on_the_home_work_for_the_holder_only(bot: Bot) -> None:
    request_id = _granted(bot, "prod-support prod 1h INC-1")
    _open(bot, ALICE)
    _open(bot, MALLORY)
    reply = bot.sim.block_action(ALICE, "extend", request_id, view=bot.slack.home(ALICE))
    bot.settle()
    form = opened_view(bot, reply.trigger_id)
    assert (form["callback_id"], form["private_metadata"]) == ("jit_extend", request_id)
    values = {"duration": {"duration": text_value("30m")}, "reason": {"reason": text_value("more")}}
    bot.sim.submit_view(ALICE, form, values)
    # The extension is a request of its own: pending on Alice's Home, waiting on Bob's.
    [(cancel, extension)] = _buttons(_section(_home(bot, ALICE), PENDING))
    assert cancel == "cancel_request" and f"extends {request_id}" in str(_home(bot, ALICE))
    assert ("approve", extension) in _buttons(_section(_open(bot, BOB), AWAITING))
    assert "Only the person who holds" in _notice(_press(bot, MALLORY, "extend", request_id))

    refused = _notice(_press(bot, MALLORY, "end_access", request_id))
    assert "Only the requester or an approver" in refused
    assert bot.service.get(request_id).status == "active"

    assert f"Ending access for {request_id}" in _notice(
        _press(bot, ALICE, "end_access", request_id)
    )
    assert bot.service.get(request_id).status == "revoked" and bot.provider.holdings == set()
    home = _home(bot, ALICE)
    assert "Nothing right now" in _text(_section(home, ACCESS))
    assert "ended" in _text(_section(home, RECENT))


def test_the_home_is_refreshed_when_a_change_concerns_its_viewer_even_after_a_restart(
    make_bot: Callable[..., Bot],
) -> None:
    bot = make_bot()
    _open(bot, ALICE)
    _open(bot, CAROL)
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    assert _buttons(_section(_home(bot, ALICE), PENDING)) == [("cancel_request", request_id)]
    assert ("approve", request_id) in _buttons(_section(_home(bot, CAROL), AWAITING))

    # Bob decides from his DM: Carol's Home loses the row, Alice's shows her access.
    assert "Approved" in click(bot, BOB, "approve", request_id)
    assert request_id not in str(_section(_home(bot, CAROL), AWAITING))
    assert _buttons(_section(_home(bot, ALICE), ACCESS)) == [
        ("extend", request_id),
        ("end_access", request_id),
    ]
    # Only those who opened their Home are published to: Bob never did.
    assert {c.params["user_id"] for c in bot.slack.calls_to("views.publish")} == {ALICE, CAROL}

    # Who looks at the Home is in the database: a restarted bot keeps refreshing it.
    stop(bot)
    again = make_bot()
    click(again, ALICE, "end_access", request_id)
    assert again.service.get(request_id).status == "revoked"
    assert "ended" in _text(_section(_home(again, ALICE), RECENT))


def test_admins_see_everyones_access_and_the_reviews_others_do_not(
    make_bot: Callable[..., Bot],
) -> None:
    bot = make_bot(approvers=ADMINS_YAML)
    staging = _granted(bot, "prod-support staging 1h INC-3", approver=SEC2)
    glass = _glass(bot, BOB, "prod-support prod 30m INC-42 checkout down").split(":")[0]
    assert bot.service.get(glass).status == "active"

    admin = _open(bot, MALLORY)
    everyone = _text(_section(admin, EVERYONE))
    assert "`prod-support` in `prod`" in everyone and "`prod-support` in `staging`" in everyone
    assert f"<@{BOB}> until" in everyone and f"<@{ALICE}> until" in everyone
    assert "break-glass" in everyone and glass in everyone and staging in everyone
    assert glass in _text(_section(admin, REVIEWS)) and "INC-42" in _text(_section(admin, REVIEWS))
    assert _buttons(_section(admin, REVIEWS)) == []  # Mallory is no reviewer of the rule
    for user in (ALICE, BOB, SEC1):
        home = _open(bot, user)
        assert _section(home, EVERYONE) == [] and _section(home, REVIEWS) == []

    # Carol is an admin and a reviewer: she reviews from her Home.
    carol = _open(bot, CAROL)
    buttons = _buttons(_section(carol, REVIEWS))
    assert buttons == [("review_justified", glass), ("review_not_justified", glass)]
    reply = bot.sim.block_action(CAROL, "review_justified", glass, view=carol)
    bot.settle()
    form = opened_view(bot, reply.trigger_id)
    bot.sim.submit_view(CAROL, form, {"note": {"note": text_value("it was down")}})
    bot.settle()
    assert "Nothing right now" in _text(_section(_home(bot, MALLORY), REVIEWS))

    # Access ending refreshes the admins' Homes: Alice's row is gone from Mallory's.
    click(bot, ALICE, "end_access", staging)
    everyone = _text(_section(_home(bot, MALLORY), EVERYONE))
    assert staging not in everyone and glass in everyone


def test_what_people_typed_is_shown_escaped_on_the_home(bot: Bot) -> None:
    hostile = "<!channel> *approved by security* <@UMALLORY> <https://evil.example|ok>"
    request_id = submit(bot, ALICE, f"prod-support prod 1h {hostile}")
    shown = _text(_section(_open(bot, BOB), AWAITING))
    assert request_id in shown
    assert "<!channel>" not in shown and "<https://" not in shown and "<@UMALLORY>" not in shown
    assert "&lt;!channel&gt;" in shown and "*approved by security*" not in shown
    # Every line of the reason is quoted: none can pass for one of the bot's.
    assert "\n> &lt;!channel&gt; \u2217approved by security\u2217" in shown


def test_each_section_shows_a_few_rows_then_how_many_more(bot: Bot) -> None:
    asked = [submit(bot, ALICE, f"prod-support prod 1h INC-{n}") for n in range(10)]
    asked += [submit(bot, CAROL, f"prod-support prod 1h INC-1{n}") for n in range(2)]
    home = _open(bot, BOB)
    awaiting = _section(home, AWAITING)
    assert [v for a, v in _buttons(awaiting) if a == "approve"] == asked[:10]
    assert "…and 2 more. `/jit list` shows them all." in _text(awaiting)
    assert len(home["blocks"]) <= 100


def test_a_home_slack_refuses_for_now_is_sent_later_once_and_as_it_is_then(bot: Bot) -> None:
    _open(bot, ALICE)
    published = len(bot.slack.calls_to("views.publish"))
    bot.slack.fail_next("views.publish", status=429, retry_after=30)
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    bot.command(ALICE, f"cancel {request_id}")
    bot.settle()
    assert len(bot.slack.calls_to("views.publish")) == published  # waiting out the 429
    assert request_id not in str(bot.slack.home(ALICE))

    bot.clock.advance(timedelta(seconds=31))
    bot.runtime.outbox.wake()
    home = _home(bot, ALICE)
    # The Homes queued for the request and for its cancel went as one, built when sent.
    assert len(bot.slack.calls_to("views.publish")) == published + 1
    assert _buttons(_section(home, RECENT)) == [("request_again", request_id)]
    assert "Nothing right now" in _text(_section(home, PENDING))


def test_admins_see_the_last_seven_days_figures_and_others_do_not(
    make_bot: Callable[..., Bot],
) -> None:
    bot = make_bot(approvers=ADMINS_YAML)
    slow = submit(bot, ALICE, "prod-support prod 1h INC-1")
    bot.clock.advance(timedelta(minutes=10))
    assert "Approved" in click(bot, BOB, "approve", slow)
    fast = submit(bot, ALICE, "prod-support prod 1h INC-2")
    assert "Approved" in click(bot, BOB, "approve", fast)  # the same second: flagged
    submit(bot, ALICE, "db-admin dev 30m fix a row")  # approved by rule
    figures = _text(_section(_open(bot, MALLORY), "Last 7 days"))
    assert "*3* requests · *33%* approved by rule · *0* expired undecided" in figures
    assert "`prod-support` in `prod`: p50 5m, p90 9m (2 decided)" in figures
    assert f"<@{BOB}>: 2 decisions (100%), approves 100%, median 5m" in figures
    assert "jit-bot stats" in figures
    assert _section(_open(bot, ALICE), "Last 7 days") == []
    # A week later they are gone from the figures (kept a few minutes, then read again).
    bot.clock.advance(timedelta(days=7, minutes=10))
    assert "*0* requests" in _text(_section(_open(bot, MALLORY), "Last 7 days"))
