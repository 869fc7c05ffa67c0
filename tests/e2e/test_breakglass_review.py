"""The post-incident review of break-glass over the real Slack wire: each approver of the
rule but the requester is asked, the first review decides (checked at click time from
the database, whatever the button or the modal carried), "not justified" reaches the
security channel, unreviewed uses are reminded once a day (once, across restarts and
replicas), and `audit export --kind breakglass` lists every use with its review."""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from tests.conftest import ALICE, AUDIT_KEY, BOB, CAROL, MALLORY, Bot, stop
from tests.e2e.helpers import buttons, click, latest, opened_view, submit
from tests.e2e.test_breakglass import (
    BREAK_GLASS_YAML,
    LIVE,
    SECURITY,
    _export,
    _glass,
    _texts,
)
from tests.fakes.processes import run_cli
from tests.fakes.slack_client import text_value

JUSTIFIED, NOT_JUSTIFIED = "review_justified", "review_not_justified"
HOSTILE_NOTE = "<!channel> *justified by security* <@UMALLORY> <https://evil.example|ok>"


def _reviews(bot: Bot, user: str) -> list[dict[str, Any]]:
    """The review DMs (and reminders) ``user`` got, as they read now."""
    return [latest(m) for m in bot.dms_to(user) if "eview break-glass" in (m.get("text") or "")]


def _open(bot: Bot, user: str, action: str, request_id: str) -> tuple[str, dict[str, Any]]:
    """Click a review button; return the ephemeral answer (if any) and the modal opened."""
    reply = bot.sim.block_action(user, action, request_id)
    assert reply.status == 200, reply
    bot.settle()
    answered = [r for r in bot.slack.responses if r["_url_name"] == reply.response_url_name]
    return (str(answered[-1]["text"]) if answered else ""), opened_view(bot, reply.trigger_id)


def _submit(bot: Bot, user: str, view: dict[str, Any], note: str, **changed: str) -> str:
    """Submit the note modal (its fields as ``changed`` says); return the DM answer."""
    bot.sim.submit_view(user, {**view, **changed}, {"note": {"note": text_value(note)}})
    bot.settle()
    return str(bot.dms_to(user)[-1]["text"])


def test_not_justified_with_a_note_is_told_to_security_and_only_approvers_review_once(
    make_bot: Callable[..., Bot],
) -> None:
    bot = make_bot(approvers=BREAK_GLASS_YAML, security_channel=SECURITY)
    bot.slack.add_channel(SECURITY)
    routine = submit(bot, ALICE, "prod-support staging 1h INC-7 routine look")
    # Bob is an approver of the rule and breaks the glass himself.
    request_id = _glass(bot, BOB, "prod-support prod 30m INC-42 checkout is down").split(":")[0]

    [asked] = _reviews(bot, CAROL)
    assert _reviews(bot, BOB) == [] and _reviews(bot, ALICE) == []
    assert [b["action_id"] for b in buttons(asked)] == [JUSTIFIED, NOT_JUSTIFIED]
    assert {b["value"] for b in buttons(asked)} == {request_id}
    assert "INC-42" in _texts(asked) and "checkout is down" in _texts(asked)
    # Ending early works as for any grant, and the use is still reviewed afterwards.
    assert "Ending access" in click(bot, CAROL, "end_access", request_id)
    assert bot.service.get(request_id).status == "revoked" and bot.provider.holdings == set()

    refused = {
        (BOB, request_id): "You broke this glass yourself",
        (MALLORY, request_id): "Only the approvers of the rule",
        (CAROL, routine): "is not a break-glass use",
        (CAROL, "R-ZZZZZZZZ"): "no request",
        (CAROL, '{"id": "x", "verdict": "justified"}'): "no request",
    }
    for (user, value), says in refused.items():
        assert says in click(bot, user, JUSTIFIED, value), (user, value)
    answer, view = _open(bot, CAROL, NOT_JUSTIFIED, request_id)
    assert answer == "" and view["private_metadata"] == f"not_justified:{request_id}"
    # The modal's values are Slack's to carry, not to trust.
    tampered = {
        (CAROL, f"approved:{request_id}"): "neither justified nor not justified",
        (CAROL, f"justified:{routine}"): "is not a break-glass use",
        (CAROL, "justified:R-1; DROP TABLE vote"): "no request",
        (BOB, f"justified:{request_id}"): "You broke this glass yourself",
        (MALLORY, f"not_justified:{request_id}"): "Only the approvers of the rule",
    }
    for (user, metadata), says in tampered.items():
        assert says in _submit(bot, user, view, "fine", private_metadata=metadata), metadata
    assert bot.service.audit_events(request_id)[-1].action == "revoked"  # nothing reviewed

    said = _submit(bot, CAROL, view, HOSTILE_NOTE)

    assert said == f"You reviewed break-glass {request_id} as NOT justified."
    [shown] = _reviews(bot, CAROL)
    assert not buttons(shown) and f"NOT justified*, by <@{CAROL}>" in _texts(shown)
    [alert] = [m for m in bot.slack.messages_in(SECURITY) if "not justified" in _texts(m)]
    assert f"Break-glass {request_id} not justified" in _texts(alert)
    [event] = [e for e in bot.service.audit_events(request_id) if e.action.endswith("reviewed")]
    assert (event.action, event.actor) == ("break_glass_reviewed", CAROL)
    assert (event.details["verdict"], event.details["note"]) == ("not_justified", HOSTILE_NOTE)
    [post] = [p for p in bot.audit_posts() if "break_glass_reviewed" in p]
    for text in (_texts(shown), _texts(alert), post):
        assert "&lt;!channel&gt;" in text and "justified by security*" not in text
        assert not [live for live in LIVE if live in text], text
    # Later clicks, the same modal submitted again included, are told who decided.
    later = click(bot, CAROL, JUSTIFIED, request_id)
    assert "already reviewed" in later and f"NOT justified*, by <@{CAROL}>" in later
    assert "already reviewed" in _submit(bot, CAROL, view, "changed my mind")
    done = run_cli(
        ["audit", "export", "--kind", "breakglass", "--format", "csv"],
        {"DATABASE_URL": bot.settings.database_url, "JIT_AUDIT_KEY": AUDIT_KEY},
    )
    assert done.returncode == 0, done.stderr
    [row] = list(csv.DictReader(io.StringIO(done.stdout)))  # the routine request is not one
    assert row["request_id"] == request_id and row["incident"] == "INC-42"
    assert (row["requester"], row["role"], row["environment"]) == (BOB, "prod-support", "prod")
    assert (row["duration"], row["status"], row["ended_by"]) == ("30m", "revoked", CAROL)
    assert (row["review"], row["reviewed_by"], row["review_note"]) == (
        "not_justified",
        CAROL,
        HOSTILE_NOTE,
    )
    assert row["reviewed_at"] == event.at.isoformat()


def test_unreviewed_uses_are_reminded_once_a_day_across_restarts_and_replicas(
    make_bot: Callable[..., Bot],
) -> None:
    a = make_bot(approvers=BREAK_GLASS_YAML)
    b = make_bot(approvers=BREAK_GLASS_YAML)
    request_id = _glass(a, ALICE, "prod-support prod 30m INC-9 payments down").split(":")[0]
    assert [len(_reviews(a, u)) for u in (ALICE, BOB, CAROL)] == [0, 1, 1]
    # Expiry works as for any grant.
    a.clock.advance(timedelta(minutes=30, seconds=1))
    a.service.sweep()
    a.settle()
    assert a.service.get(request_id).status == "revoked"

    a.clock.advance(timedelta(hours=23, minutes=29))
    assert a.service.remind_reviews() == 0  # not a day yet
    a.clock.advance(timedelta(minutes=1))
    reminded: list[int] = []
    both = [
        threading.Thread(target=lambda r=r: reminded.append(r.service.remind_reviews()))
        for r in (a, b)
    ]
    for thread in both:
        thread.start()
    for thread in both:
        thread.join()

    assert sorted(reminded) == [0, 1]  # two replicas, one reminder
    a.settle()
    b.settle()
    for reviewer in (BOB, CAROL):
        first, again = _reviews(a, reviewer)
        assert first["text"].startswith(f"review break-glass {request_id}")
        assert again["text"].startswith(f"Reminder: review break-glass {request_id}")
        assert [x["action_id"] for x in buttons(again)] == [JUSTIFIED, NOT_JUSTIFIED]
    stop(a)
    c = make_bot(approvers=BREAK_GLASS_YAML)  # a restart reminds nobody again
    assert c.service.remind_reviews() == 0
    [row] = _export(c, "breakglass")
    assert (row["review"], row["reviewed_by"], row["status"]) == ("unreviewed", None, "revoked")
    c.clock.advance(timedelta(days=1))
    assert c.service.remind_reviews() == 1
    assert len(_reviews(c, BOB)) == 3

    _, view = _open(c, BOB, JUSTIFIED, request_id)
    assert _submit(c, BOB, view, "") == f"You reviewed break-glass {request_id} as justified."

    # The reminder's buttons too are answered from the database.
    assert "already reviewed" in click(c, CAROL, NOT_JUSTIFIED, request_id)
    c.clock.advance(timedelta(days=3))
    assert c.service.remind_reviews() == 0
    assert len(_reviews(c, BOB)) == 3 and len(_reviews(c, CAROL)) == 3
    for reviewer in (BOB, CAROL):  # the first DM shows the review; reminders keep theirs
        assert f"*justified*, by <@{BOB}>" in _texts(_reviews(c, reviewer)[0])
    [row] = _export(c, "breakglass")
    assert (row["review"], row["reviewed_by"], row["review_note"]) == ("justified", BOB, None)
    assert [p for p in c.audit_posts() if "break_glass_reviewed" in p and "justified" in p]


def test_an_approver_removed_since_the_glass_was_broken_cannot_review_it(
    make_bot: Callable[..., Bot],
) -> None:
    first = make_bot(approvers=BREAK_GLASS_YAML)
    request_id = _glass(first, BOB, "prod-support prod 30m INC-42 checkout is down").split(":")[0]
    assert _reviews(first, CAROL)
    stop(first)
    # CAROL leaves the rule's approvers (the group is now BOB and a newcomer).
    moved = BREAK_GLASS_YAML.replace('  sre-leads: ["@sre-leads"]', "  sre-leads: [UBOB, UDAN]", 1)
    assert moved != BREAK_GLASS_YAML
    second = make_bot(approvers=moved)

    answer = click(second, CAROL, JUSTIFIED, request_id)

    assert "Only the approvers of the rule" in answer
    assert [row["review"] for row in _export(second, "breakglass")] == ["unreviewed"]
